# Out of descriptors (docs/security.md): a registry that cannot accept
# (EMFILE) keeps serving who it has, rests its listener for a moment
# instead of spinning on the connection that waits in the kernel's
# queue, and says so once per interval.  Without the rest the listener
# fires again at once, for ever: a full core, and a log line each time.
source [file join [file dirname [info script]] lib.tcl]

# CPU seconds (user + system) the process has used so far.
proc cpu_seconds {pid} {
    set f [open /proc/$pid/stat]
    set stat [read $f]
    close $f
    # Fields after the command (which may hold spaces), from its ")".
    set rest [string range $stat [expr {[string last ")" $stat] + 2}] end]
    lassign [lrange $rest 11 12] utime stime
    return [expr {($utime + $stime) / 100.0}]
}

main {
    if {[auto_execok prlimit] eq ""} { skip "prlimit not installed" }
    set home [new_home]
    lassign [start_registry $home] dpid port
    set first [raw_open $port]
    check_equal "served before" {0 1} [raw_call $first ProtocolVersion]

    test out_of_descriptors_rests_instead_of_spinning {
        # The registry sized its connection limit from its descriptor
        # limit at start; lowering the limit now makes accept fail.
        set before [string trim [dict get [run prlimit --pid $dpid \
            --nofile --noheadings --output SOFT,HARD] out]]
        # No room for one more descriptor: accept itself fails.  The
        # kernel gives the lowest free number, so the limit is that.
        set fds {}
        foreach f [glob -nocomplain /proc/$dpid/fd/*] {
            lappend fds [file tail $f]
        }
        for {set lim 0} {$lim in $fds} {incr lim} {}
        check_equal "prlimit" 0 [dict get [run prlimit --pid $dpid \
            --nofile=$lim:[lindex $before 1]] code]
        set mark [log_mark $dpid]
        set socks {}
        for {set i 0} {$i < 12} {incr i} {
            if {[catch {socket 127.0.0.1 $port} s]} break
            lappend socks $s
        }
        defer [list apply {{socks} {foreach s $socks {catch {close $s}}}} \
                   $socks]
        # Let the listener meet EMFILE, then measure over 2 s.
        pause 300
        set c0 [cpu_seconds $dpid]
        pause 2000
        set used [expr {[cpu_seconds $dpid] - $c0}]
        check "the registry does not spin (used $used s of CPU in 2 s)" \
            {$used < 0.5}
        set log [log_since $dpid $mark]
        check_match "it says it rests" \
            "*accept: Too many open files; not accepting for 100 ms*" $log
        check "one line per interval, not one per try\
               ([regexp -all {accept: } $log] lines)" \
            {[regexp -all {accept: } $log] <= 2}
        check_equal "who it has is still served" {0 1} \
            [raw_call $first ProtocolVersion]
        check "alive" {[alive $dpid]}
        # Descriptors back: the waiting connections are taken.
        foreach s $socks { catch {close $s} }
        check_equal "prlimit back" 0 [dict get [run prlimit --pid $dpid \
            --nofile=[join $before :]] code]
        set late [raw_open $port]
        check_equal "a new peer is served again" {0 1} \
            [raw_call $late ProtocolVersion]
    }
}
