# A user registry serves only its own user (docs/security.md): a tcllib
# client running as another uid is disconnected without a reply, the
# refusal is logged with that uid, and the owner's clients carry on.
# Needs root (to make a throwaway user); skipped otherwise.
source [file join [file dirname [info script]] lib.tcl]
package require comm

# comm send as tcllib does it; prints OK result / ERR message / TIMEOUT.
set comm_client {
    package require comm
    set port [lindex $argv 0]
    after 5000 {puts TIMEOUT; exit 0}
    if {[catch {comm::comm send $port ProtocolVersion} res]} {
        puts "ERR $res"
    } else {
        puts "OK $res"
    }
    exit 0
}

# Raw socket: offer v3 and send a command in one write, then print what
# came back: "GOT <text>" followed by EOF or TIMEOUT.
set raw_client {
    set port [lindex $argv 0]
    set s [socket 127.0.0.1 $port]
    fconfigure $s -blocking 0 -buffering full -translation lf
    puts -nonewline $s "{3 2} 0\n{send 1 {{Commreg/Register intruder 1}}}\n"
    catch {flush $s}
    set got ""
    set end TIMEOUT
    set deadline [expr {[clock milliseconds] + 3000}]
    while {[clock milliseconds] < $deadline} {
        if {[catch {read $s} data]} { set end EOF; break }
        append got $data
        if {[eof $s]} { set end EOF; break }
        after 10
    }
    puts "GOT [list $got]"
    puts $end
    exit 0
}

main {
    set uid [exec id -u]
    if {$uid != 0} {
        skip "needs root to create a throwaway user (running as uid $uid)"
    }
    foreach tool {useradd userdel setpriv} {
        if {[auto_execok $tool] eq ""} { skip "$tool not installed" }
    }
    set user commreg-test-[pid]
    set r [run useradd -M -s /usr/sbin/nologin $user]
    if {[dict get $r code] != 0} {
        error "useradd $user failed: [dict get $r err]"
    }
    on_cleanup [list catch [list exec userdel $user 2>@1]]
    set ouid [exec id -u $user]
    set ogid [exec id -g $user]

    set home [new_home]
    lassign [start_registry $home] dpid port

    # Run a Tcl client script as the other user.
    proc spawn_tcl_as {name script} {
        global ouid ogid port
        set f [newfile $name].tcl
        write_file $f $script 0644
        return [spawn env HOME=/ setpriv --reuid=$ouid --regid=$ogid --clear-groups \
                    [info nameofexecutable] $f $port]
    }

    test other_users_comm_send_is_disconnected_without_reply {
        set mark [log_mark $dpid]
        set c [spawn_tcl_as comm_client $comm_client]
        set line [readline $c 8000]
        check_match "comm send fails" "ERR *" $line
        check "it fails because the connection closed, not by timing out: [show $line]" {
            ![string match *timeout* [string tolower $line]] && $line ne "TIMEOUT"
        }
        check "daemon logs a refusal naming uid $ouid" {[wait_until {
            [regexp "(?i)refus\[^\n\]*\\m$ouid\\M" [::t::log_since $dpid $mark]]} 2000]}
        check "daemon alive" {[alive $dpid]}
    }

    test other_users_raw_connection_gets_nothing {
        set c [spawn_tcl_as raw_client $raw_client]
        set got [readline $c 8000]
        set end [readline $c 1000]
        check_equal "nothing came back (not even {vers 3})" "GOT {}" $got
        check_equal "connection closed by the registry" EOF $end
        check_equal "nothing was registered" {0 {}} \
            [call {comm::comm send $port {Commreg/List intruder*}}]
    }

    test owner_is_still_served_afterwards {
        check_equal "ProtocolVersion" {0 1} [call {comm::comm send $port ProtocolVersion}]
        set h [hello $port]
        check "Hello as owner" {[dict exists $h uid] && [dict get $h uid] == 0}
        check_equal "register as owner" {0 mine} \
            [call {comm::comm send $port {Commreg/Register mine 1234}}]
    }
}
