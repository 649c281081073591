# The federation's listener out of descriptors (docs/security.md, as the
# registry's own listener in accept_rest.test.tcl and the distributed
# registry's in distributed.test.tcl): a gateway that cannot accept a
# link (EMFILE) takes its federation listener out of its event loop for
# a moment instead of being woken for the waiting connection again and
# again, says so once per interval, and listens again once it can.
#
# gw2 on 127.0.0.2, certificates from tests/tools/mkcerts.sh, as in
# federation.test.tcl.
source [file join [file dirname [info script]] lib.tcl]
source [file join [file dirname [info script]] federation_lib.tcl]

main {
    ::fed::require prlimit

    ::fed::test out_of_descriptors_the_federation_listener_rests_and_resumes {
        set g2 [::fed::start [::fed::conf 2]]
        # No [gateway] user: no privileged parent, the gateway's process
        # is the one that listens.
        set pid [gw_pid $g2]
        set lfd ""
        wait_until {[set lfd [listening_fd $pid [::fed::port 2]]] ne ""} \
            [slow 5000] 50
        check "gw2's federation listener found" {$lfd ne ""}
        check "it is polled before" {[polled $pid $lfd]}
        set before [string trim [dict get [run prlimit --pid $pid \
            --nofile --noheadings --output SOFT,HARD] out]]
        # No room for one more descriptor: the kernel gives the lowest
        # free number, so the limit is that.
        set fds [lmap f [glob -nocomplain /proc/$pid/fd/*] { file tail $f }]
        for {set lim 0} {$lim in $fds} {incr lim} {}
        set from [string length [gw_log $g2]]
        check_equal "prlimit" 0 [dict get [run prlimit --pid $pid \
            --nofile=$lim:[lindex $before 1]] code]
        defer [list run prlimit --pid $pid --nofile=[join $before :]]
        set socks {}
        for {set i 0} {$i < 3} {incr i} {
            if {[catch {socket 127.0.0.2 [::fed::port 2]} s]} break
            lappend socks $s
        }
        defer [list apply {{socks} {foreach s $socks {catch {close $s}}}} \
                   $socks]
        check "gw2 says it rests" {[gw_wait_log $g2 \
            {federation: accept: Too many open files; not accepting for 100 ms} \
            5000 $from]}
        set out 0
        for {set i 0} {$i < 20 && !$out} {incr i} {
            set out [expr {![polled $pid $lfd]}]
            pause 10
        }
        check "the listener is taken out of the loop while it rests" {$out}
        pause 500
        set lines [regexp -all {federation: accept: } \
                       [string range [gw_log $g2] $from end]]
        check "one line per interval, not one per try ($lines lines)" \
            {$lines <= 2}
        check_equal "prlimit back" 0 [dict get [run prlimit --pid $pid \
            --nofile=[join $before :]] code]
        check "polled again" [list [wait_until {[polled $pid $lfd]} \
            [slow 3000] 50]]
        check "gw2 alive" {[alive $pid]}
    }
} 120
