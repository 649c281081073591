# Federation's failure paths (docs/federation.md "Soft state, held for
# 3 s", the reload of "Two hosts, step by step"):
#
#   back_within_the_hold_without_an_entry
#                     gw2 -> gw3 <- gw4: gw3 is SIGKILLed and restarted
#                     at once with its export to gw4 narrowed: gw4 holds
#                     what gw3 gave, gw3 is back within the hold, and the
#                     entry it no longer offers goes when the hold ends
#                     (one remove); the one it offers again stays, no
#                     event
#   a_reload_that_removes_a_remote_drops_its_entries
#                     gw3 imports from gw2; its [remote gw2] section taken
#                     out and SIGHUP: what gw2 gave goes (one remove each)
#                     and nothing of gw2's is listed after
#   a_snapshot_that_is_not_a_list_is_refused
#                     a remote (openssl s_server with a good certificate)
#                     answers the watch with a snapshot that is no Tcl
#                     list: the link ends with a log line saying so
#                     (not "linked, 0 entries offered"), and the gateway
#                     serves on
#
# Every "host" is this machine, as in federation.test.tcl (gwN.test on
# 127.0.0.N, certificates from tests/tools/mkcerts.sh).
source [file join [file dirname [info script]] lib.tcl]
source [file join [file dirname [info script]] federation_lib.tcl]

main {
    ::fed::require capp
    set me [exec id -un]

    ::fed::test back_within_the_hold_without_an_entry {
        ::fed::middle_tree
        set h2 [::fed::host $d2]
        set h4 [::fed::host $d4]
        set keep [::fed::app $h2 keep]
        set drop [::fed::app $h2 drop]
        set tk keep@$me@gw2.test
        set td drop@$me@gw2.test
        set w4 [::fed::watch $h4 *]
        check "gw4's host sees $tk" {[::fed::watch_wait $w4 add $tk 15000]}
        check "gw4's host sees $td" {[::fed::watch_wait $w4 add $td 15000]}
        set from [app_mark $w4]

        # gw3 again at once, exporting to gw4 only keep*.
        set rf [file join $d3 30-remotes.ini]
        set text [read_file $rf]
        check_equal "gw4's export narrowed in gw3's configuration" 1 \
            [regsub {(\[remote gw4\][^\[]*?export = )\*} $text {\1keep*} text]
        gw_write $d3 30-remotes.ini $text
        set m4 [gw_log_mark $g4]
        set t0 [clock milliseconds]
        gw_signal $g3 KILL
        catch {stop $g3}
        set g3b [::fed::start $d3]
        check "gw4 kept both entries gw3 gave" {
            [gw_wait_log $g4 {remote gw3: keeping the 2 entries it gave for 3000 ms} 5000 $m4]}
        check "gw4 linked to the new gw3 within the hold" {
            [gw_wait_log $g4 {remote gw3: linked} 15000 $m4]
            && ![regexp {remote gw3: not back within} [string range [gw_log $g4] $m4 end]]}
        check "watch on gw4's host: remove $td" {[::fed::watch_wait $w4 remove $td 12000 $from]}
        set dt [expr {[clock milliseconds] - $t0}]
        check "when the hold ended (took $dt ms)" {$dt >= 2500 && $dt < [slow 10000]}
        check "gw4 says what it dropped" {
            [gw_wait_log $g4 {remote gw3: 1 entries it no longer offers dropped} 3000 $m4]}
        check "gw4's host no longer lists $td" {[::fed::wait_name $h4 $td 3000 0]}
        pause [slow 1000]
        check_equal "$tk stayed: the only event is the remove of $td" \
            [list [list remove $td]] [lmap l [app_lines $w4 $from] {lrange $l 0 1}]
        check "gw4's host still lists $tk" {[::fed::has $h4 $tk]}
        check "gw2's host still has drop" {[::fed::has $h2 drop]}
    }

    ::fed::test a_reload_that_removes_a_remote_drops_its_entries {
        set d2 [::fed::conf 2 -remotes [::fed::remote gw3 export * import *]]
        set d3 [::fed::conf 3 -remotes [concat \
            [::fed::remote gw2 export * import *] \
            [::fed::remote gw4 export * import *]]]
        set d4 [::fed::conf 4 -remotes [::fed::remote gw3 export * import *]]
        set g2 [::fed::start $d2]
        set g3 [::fed::start $d3]
        set g4 [::fed::start $d4]
        set h2 [::fed::host $d2]
        set h3 [::fed::host $d3]
        set h4 [::fed::host $d4]
        set a2 [::fed::app $h2 one]
        set b2 [::fed::app $h2 two]
        set a4 [::fed::app $h4 four]
        set w3 [::fed::watch $h3 *]
        foreach t [list one@$me@gw2.test two@$me@gw2.test four@$me@gw4.test] {
            check "gw3's host sees $t" {[::fed::watch_wait $w3 add $t 15000]}
        }
        set from [app_mark $w3]
        set m3 [gw_log_mark $g3]
        set rf [file join $d3 30-remotes.ini]
        set text [read_file $rf]
        check_equal "\[remote gw2\] taken out of gw3's configuration" 1 \
            [regsub {\[remote gw2\][^\[]*} $text {} text]
        gw_write $d3 30-remotes.ini $text
        gw_signal $g3 HUP
        check "gw3 reloaded, linked to gw4 again" {
            [gw_wait_log $g3 {remote gw4: linked} 10000 $m3]}
        check "gw3's host is told one@ went" {[::fed::watch_wait $w3 remove one@$me@gw2.test 8000 $from]}
        check "gw3's host is told two@ went" {[::fed::watch_wait $w3 remove two@$me@gw2.test 8000 $from]}
        check "gw3's host lists nothing of gw2's" {[wait_until {
            [lsearch -glob [::fed::names $h3] *@gw2.test] < 0} [slow 3000] 50]}
        # Past the hold: nothing of gw2's comes back, and gw4's stayed.
        pause [slow 3500]
        check_equal "no entry of gw2's on gw3's host" {} [lsearch -all -inline -glob [::fed::names $h3] *@gw2.test]
        check "gw3's host still lists four@" {[::fed::has $h3 four@$me@gw4.test]}
        check_equal "the events: the two removes, nothing of four@" \
            [lsort [list [list remove one@$me@gw2.test] [list remove two@$me@gw2.test]]] \
            [lsort [lmap l [app_lines $w3 $from] {lrange $l 0 1}]]
        check "lookup one@ on gw3's host fails" {[string match "error: *" [::fed::lookup $h3 one@$me@gw2.test]]}
        check "gw3 alive" {[alive [gw_pid $g3]]}
    }

    ::fed::test a_snapshot_that_is_not_a_list_is_refused {
        # "gw5" answers the handshake, Hello (no pieces: the snapshot is
        # the watch's reply) and Watch, with a reply that is no Tcl list.
        set data "[list [list vers 3]]\n"
        append data "[list [list reply 1 [list return -code 0 {gateway commgwd name gw5.test}]]]\n"
        append data "[list [list reply 2 [list return -code 0 "\{name x@root@gw5.test"]]]\n"
        set p5 [::fed::free_port 5]
        set log [newfile s_server].log
        set pid [exec openssl s_server -accept 127.0.0.5:$p5 -naccept 1 \
                     -cert [::fed::cert gw5 crt] -key [::fed::cert gw5 key] \
                     -CAfile [::fed::cert ca crt] -Verify 1 -quiet << $data >& $log &]
        remember $pid
        defer [list ::t::kill_proc $pid]
        check "s_server listens" {[wait_until {
            ![catch {exec ss -Hltn "sport = :$p5"} o] && [string match *LISTEN* $o]} [slow 5000] 50]}
        set d6 [::fed::conf 6 -listen 0 \
                    -remotes [::fed::remote g5 address 127.0.0.5:$p5 peer_name gw5.test export * import *]]
        set g6 [::fed::start $d6]
        set h6 [::fed::host $d6]
        check "the link ends, saying the snapshot is not a list" {
            [::fed::wait_log $g6 {its snapshot is not a list} 15000]}
        check "it was not taken as a snapshot offering nothing" {
            ![regexp {remote g5: linked} [gw_log $g6]]}
        check "nothing of it is taken" {[lsearch -glob [::fed::names $h6] *@gw5.test] < 0}
        check "gw6 alive" {[alive [gw_pid $g6]]}
        set a [::fed::app $h6 after]
        check "gw6's host is served" {[::fed::has $h6 after]}
    }
} 240
