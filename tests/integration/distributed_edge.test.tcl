# The distributed registry's failure paths (docs/distributed.md), on
# this one host: the registry links on 127.0.0.1 (--dist-listen), and
# the other "host" is openssl s_client holding the cookie's key.
#
#   a_snapshot_that_is_not_a_list_is_refused
#                     a linked peer (it said Dist/Hello as host zz)
#                     sends a Dist/Snapshot that is no Tcl list: the
#                     link is closed, the log says why, nothing of it is
#                     taken, the registry serves on and takes the next
#                     link
source [file join [file dirname [info script]] lib.tcl]

# The link key of HOME's cookie, as the registries derive it (HKDF by
# openssl's own implementation, which checks ours).
proc link_psk {home} {
    set key [binary encode hex [read_file [file join $home .tcl comm cookie]]]
    set r [run openssl kdf -keylen 32 -kdfopt digest:SHA256 \
               -kdfopt hexkey:$key -kdfopt "salt:commreg distributed registry" \
               -kdfopt "info:link psk v1 [exec id -un]" HKDF]
    return [string map {: ""} [string trim [dict get $r out]]]
}

# A TLS link to HOME's registry at ADDR:PORT with the key, the comm
# handshake done; the channel (line by line: each line is one message).
proc fake_host {home addr port} {
    set ch [open |[list openssl s_client -quiet -tls1_3 -psk [link_psk $home] \
                       -psk_identity "commreg-dist/1 [exec id -un]" \
                       -connect $addr:$port 2>@1] r+]
    fconfigure $ch -blocking 0 -buffering line
    remember [pid $ch]
    defer [list ::t::kill_proc [pid $ch]]
    defer [list catch [list close $ch]]
    puts $ch [list {3 2} 0]
    set l {}
    wait_until {[catch {lindex [set l [::t::readline $ch 100]] 0} l] == 0
        && $l eq {vers 3}} [slow 5000] 10
    if {$l ne {vers 3}} { error "no comm handshake over the link: [show $l]" }
    return $ch
}

# Lines from CH for MS ms, or until it closes ("<eof>" last then).
proc lines_until_eof {ch ms} {
    set out {}
    set deadline [expr {[clock milliseconds] + $ms}]
    while {[clock milliseconds] < $deadline} {
        set l [readline $ch [expr {max(1, $deadline - [clock milliseconds])}]]
        if {[string match "<timeout*" $l]} break
        lappend out $l
        if {$l eq "<eof>"} break
    }
    return $out
}

main {
    if {[auto_execok openssl] eq ""} { skip "openssl is not on PATH" }

    test a_snapshot_that_is_not_a_list_is_refused {
        set home [new_home]
        make_regdir $home
        set r [commreg $home cookie]
        if {[dict get $r code] != 0} { error "commreg cookie: $r" }
        set pid [start_daemon $home --dist-listen 127.0.0.1]
        set pf [portfile $home]
        check "the distributed registry is on" {[wait_until {
            [regexp {^([0-9]+)\ndist (127\.0\.0\.1) ([0-9]+)\n$} [::t::read_file $pf]]} [slow 5000] 20]}
        if {![regexp {^([0-9]+)\ndist (127\.0\.0\.1) ([0-9]+)\n$} [read_file $pf] -> port a p]} return
        set s [raw_open $port]
        check_equal "an entry of this host" {0 mine} [raw_call $s {Commreg/Register mine 4321}]

        set mark [log_mark $pid]
        set ch [fake_host $home $a $p]
        puts $ch [list [list send 1 [list [list Dist/Hello zz [exec id -un]]]]]
        set got [list [readline $ch [slow 3000]] [readline $ch [slow 3000]]]
        check "Dist/Hello answered" {[lsearch $got "*reply 1 ?return -code 0 *"] >= 0}
        check "and this host's snapshot sent, with mine" {[lsearch $got "*Dist/Snapshot*mine*"] >= 0}
        puts $ch [list [list async 2 [list [list Dist/Snapshot "\{name x@zz port 1"]]]]
        set after [lines_until_eof $ch [slow 5000]]
        check_equal "the link is closed" <eof> [lindex $after end]
        check_match "the log says why" \
            "*bad snapshot: a snapshot that is not a list: *connection closed*" \
            [log_since $pid $mark]
        say "  ([lsearch -inline -all [split [log_since $pid $mark] \n] *snapshot*])"
        check_equal "nothing of it is taken" {} [lsearch -all -inline [reg_names $port] *zz*]
        check_equal "this host's entry stays" mine [reg_names $port]
        check_equal "the registry serves on" {0 {}} [raw_call $s {Commreg/Unregister mine}]

        # And takes the next link.
        set ch2 [fake_host $home $a $p]
        puts $ch2 [list [list send 1 [list [list Dist/Hello zz [exec id -un]]]]]
        set got [list [readline $ch2 [slow 3000]] [readline $ch2 [slow 3000]]]
        check "a new link is greeted" {[lsearch $got "*reply 1 ?return -code 0 *"] >= 0}
        check "the registry still runs" {[alive $pid]}
    }
}
