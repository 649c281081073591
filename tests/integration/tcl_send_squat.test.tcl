# comm::registry::send never sends a script to a port another user holds
# (docs/tcl.md "send ... checks the port").  An application's entry names
# its port; once the application is gone anyone may listen there, and
# would be sent the script and have its answer believed.  Here a
# throwaway user listens on a registered port and records every
# connection and every byte it gets; `send` (in this process, as root)
# must connect, see from the kernel whose socket accepted, close with
# nothing sent and fail with {COMMREG NOTOURS PORT UID}.  Controls: the
# application's own `comm::comm send` to that port is left alone (the
# check is the package's, for its send only), and a real application of
# ours on a registered port answers.
# Needs root (to make a throwaway user); skipped otherwise.
source [file join [file dirname [info script]] lib.tcl]
package require comm

set src [file dirname [file dirname [file dirname [file normalize [info script]]]]]
if {[info exists env(COMMREG_SRC)] && $env(COMMREG_SRC) ne ""} {
    set src $env(COMMREG_SRC)
}
lappend auto_path [file join $src tcl]
package require comm::registry
unset -nocomplain env(TCL_COMM_REGPORT)

# The squatter, run as the throwaway user: squatter.tcl PORT DIR MS
# ?any?.  Listens on 127.0.0.1:PORT (with "any": every address, IPv4 and
# IPv6), says `bound PORT`, appends a line to DIR/conns for every
# connection and every byte it receives to DIR/bytes, and exits after MS
# ms whatever happens.
set squatter_script {
    lassign $argv port dir ms addr
    after $ms exit
    set where [expr {$addr eq "any" ? {} : {-myaddr 127.0.0.1}}]
    proc record {file data} {
        set f [open $file {WRONLY APPEND CREAT BINARY} 0600]
        puts -nonewline $f $data
        close $f
    }
    proc accepted {c addr rport} {
        record $::dir/conns "$addr $rport\n"
        fconfigure $c -blocking 0 -translation binary
        fileevent $c readable [list got $c]
    }
    proc got {c} {
        if {[catch {read $c} data]} { set data "" }
        if {$data ne ""} { record $::dir/bytes $data }
        if {[catch {eof $c} e] || $e} { catch {close $c} }
    }
    if {[catch {socket -server accepted {*}$where $port} srv]} {
        puts "bindfail $srv"
        exit 1
    }
    puts "bound $port"
    flush stdout
    vwait forever
}

proc squat {port {addr 127.0.0.1}} {
    global ouid ogid user
    set dir [tempdir squat 0700]
    file attributes $dir -owner $user
    set f [newfile squatter].tcl
    write_file $f $::squatter_script 0644
    set ch [spawn env HOME=/ setpriv --reuid=$ouid --regid=$ogid --clear-groups \
                [info nameofexecutable] $f $port $dir 60000 $addr]
    set l [readline $ch [slow 5000]]
    if {$l ne "bound $port"} {
        error "squatter on $port: $l [spawn_err $ch]"
    }
    return $dir
}

proc squat_bytes {dir} {
    return [file_size [file join $dir bytes]]
}
proc squat_conns {dir} {
    set text [string trim [read_file [file join $dir conns]]]
    return [expr {$text eq "" ? 0 : [llength [split $text \n]]}]
}

proc use_home {home} {
    comm::registry::disconnect
    comm::registry::configure -home $home -commregd [commregd_path] -command ""
    defer comm::registry::disconnect
}

# The -errorcode and message of SCRIPT's error, trapped as COMMREG
# NOTOURS; "not trapped: ..." otherwise.
proc refused {script} {
    try {
        uplevel 1 $script
    } trap {COMMREG NOTOURS} {msg opts} {
        return [list [dict get $opts -errorcode] $msg]
    } on error {msg opts} {
        return [list "not trapped: $msg" [dict get $opts -errorcode]]
    }
    return "no error"
}

main {
    set myuid [exec id -u]
    if {$myuid != 0} {
        skip "needs root to create a throwaway user (running as uid $myuid)"
    }
    foreach tool {useradd userdel setpriv} {
        if {[auto_execok $tool] eq ""} { skip "$tool not installed" }
    }
    if {![file readable /proc/net/tcp]} {
        skip "no /proc/net/tcp here"
    }
    set user commreg-send-[pid]
    set r [run useradd -M -s /usr/sbin/nologin $user]
    if {[dict get $r code] != 0} {
        error "useradd $user failed: [dict get $r err]"
    }
    on_cleanup [list catch [list exec userdel $user 2>@1]]
    set ouid [exec id -u $user]
    set ogid [exec id -g $user]

    test send_to_a_port_another_user_holds_sends_nothing {
        set home [new_home]
        start_registry $home
        use_home $home
        set port [free_port]
        set dir [squat $port]
        comm::registry::register -port $port victim
        lassign [refused {comm::registry::send victim set x 1}] code msg
        check_equal "the error code" [list COMMREG NOTOURS $port $ouid] $code
        check_match "the message" \
            "refusing to send to \"victim\" ($port localhost): port $port is held by uid $ouid, not by uid $myuid that registered it*" \
            $msg
        lassign [refused {comm::registry::send -async victim set x 1}] code
        check_equal "-async too" [list COMMREG NOTOURS $port $ouid] $code
        check "the squatter was connected to (the check needs the connection)" \
            {[wait_until {[squat_conns $dir] >= 2}]}
        check_equal "... and got not one byte" 0 [squat_bytes $dir]
        # The application's own comm::comm send is its business: the
        # check does not change comm's behaviour outside `send`.
        catch {comm::comm send -async [list $port localhost] set x 1}
        check "comm::comm send itself still sends" \
            {[wait_until {[squat_bytes $dir] > 0}]}
    }

    test a_squatter_on_every_address_gets_nothing {
        set home [new_home]
        start_registry $home
        use_home $home
        set port [free_port]
        set dir [squat $port any]
        comm::registry::register -port $port victim
        lassign [refused {comm::registry::send victim set x 1}] code
        check_equal "refused" [list COMMREG NOTOURS $port $ouid] $code
        check_equal "no byte" 0 [squat_bytes $dir]
    }

    # comm files a connection a peer opened to us under the id that peer
    # claims: another user connects to our comm port saying it is
    # {PORT localhost}, PORT being a registered application's.  `send`
    # to that application must not take that connection for its own.
    test a_peer_posing_as_a_registered_id_gets_nothing {
        set home [new_home]
        start_registry $home
        use_home $home
        set port [free_port]
        comm::registry::register -port $port victim
        set dir [tempdir poser 0700]
        file attributes $dir -owner $user
        set f [newfile poser].tcl
        write_file $f {
            lassign $argv ourport claim dir
            after 30000 exit
            set s [socket 127.0.0.1 $ourport]
            fconfigure $s -translation binary -blocking 0
            puts $s [list 3 [list $claim localhost]]
            flush $s
            proc got {s} {
                if {[catch {read $s} data] || [eof $s]} { exit }
                set f [open $::dir/bytes {WRONLY APPEND CREAT BINARY} 0600]
                puts -nonewline $f $data
                close $f
            }
            fileevent $s readable [list got $s]
            puts offered
            flush stdout
            vwait forever
        } 0644
        set ch [spawn env HOME=/ setpriv --reuid=$ouid --regid=$ogid --clear-groups \
                    [info nameofexecutable] $f [comm::comm self] $port $dir]
        check_equal "the poser offered" offered [readline $ch [slow 5000]]
        check "comm files its connection under the id it claims" {
            [wait_until {[list $port localhost] in [comm::comm ids]} [slow 3000]]}
        lassign [refused {comm::registry::send victim set x 1}] code
        check_equal "send refuses it: the peer's socket is another user's" \
            [list COMMREG NOTOURS $ouid] [list {*}[lrange $code 0 1] [lindex $code 3]]
        lassign [refused {comm::registry::send -async victim set x 2}] code
        check_equal "-async too" [list COMMREG NOTOURS] [lrange $code 0 1]
        pause 300
        set got [read_file [file join $dir bytes]]
        check "the poser got no script" {[string first "set x" $got] < 0}
    }

    # An application of ours listening on [::] without IPV6_V6ONLY (the
    # default of C and of most languages) accepts an IPv4 connection as a
    # tcp6 socket with v4-mapped addresses: send must find it there, where
    # it once looked in tcp only and failed with NOACCEPTOR.
    test an_application_on_a_dual_stack_socket_is_ours {
        if {[capp_path] eq ""} { say "  (skipped: capp is not built)"; return }
        set home [new_home]
        start_registry $home
        use_home $home
        set app [spawn -home $home [capp_path] --home $home --commregd [commregd_path] \
                     --dual-stack dualapp]
        check_match "capp registers" "registered dualapp *" [readline $app [slow 10000]]
        set port [lindex [comm::registry::lookup dualapp] 0]
        # Its port, named by its IPv4 address.
        set reg [spawn -home $home [commreg_path] --home $home register dual4 $port \
                     --host 127.0.0.1]
        check_equal "registered at 127.0.0.1" dual4 [readline $reg [slow 5000]]
        set code [try {
            comm::registry::send -timeout 300 dual4 set x 1
            list no error
        } on error {m o} {
            dict get $o -errorcode
        }]
        check_equal "the port check passes; only an answer is missing (capp speaks no comm)" \
            {COMMREG TIMEOUT} [lrange $code 0 1]
    }

    test an_application_of_ours_answers {
        set home [new_home]
        start_registry $home
        use_home $home
        # This process's own comm port, registered by name.
        comm::registry::appname self
        proc ::hello {} { return "hello from [pid]" }
        check_equal "send to our own port" "hello from [pid]" \
            [comm::registry::send self hello]
    }
}
