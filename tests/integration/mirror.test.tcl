# A copy of another registry's entries (local/mirror.c), as a
# semi-private group keeps its user registry's (docs/private.md):
#
#   an_entry_without_a_pid_does_not_flicker_across_a_failover
#                     the user registry is SIGKILLed and its standby
#                     takes over, holding the dead registry's entries;
#                     the group's link comes back and is offered them
#                     again: an entry registered with no pid (pid "" in
#                     its dict), like one with a pid, is the same entry
#                     offered again, and the group's watcher hears
#                     nothing of either
source [file join [file dirname [info script]] lib.tcl]

# Start `commreg run --semi -- sh -c 'echo $TCL_COMM_REGPORT; exec sleep 60'`
# for HOME; returns {channel port}.
proc group_start {home} {
    set ch [spawn -home $home [commreg_path] run --semi -- \
                sh -c {echo "$TCL_COMM_REGPORT"; exec sleep 60}]
    set port [readline $ch]
    if {![string is integer -strict $port]} {
        error "commreg run --semi: no port: [show $port]; stderr [show [spawn_err $ch]]"
    }
    return [list $ch $port]
}

main {
    test an_entry_without_a_pid_does_not_flicker_across_a_failover {
        set home [new_home]
        lassign [start_registry $home] rpid port
        set sb [standby_of $home]
        check "a standby" {$sb ne ""}
        # Two entries of one connection: one says no pid, one does.
        set s [raw_open $port]
        check_equal "nopid registered" {0 nopid} \
            [raw_call $s [list Commreg/Register nopid 4101]]
        check_equal "withpid registered" {0 withpid} \
            [raw_call $s [list Commreg/Register withpid 4102 -pid [pid]]]
        check_equal "nopid is listed with no pid" "" \
            [dict get [entry_named $port nopid] pid]

        lassign [group_start $home] g gport
        set w [raw_open $gport]
        lassign [raw_call $w {Commreg/Watch w *}] code snap
        check_equal "a watch on the group" 0 $code
        set names {}
        foreach e $snap { lappend names [dict get $e name] }
        check_set "the group's snapshot has both" {nopid withpid} $names

        exec kill -KILL $rpid
        check "the standby answers as the registry" {[wait_until {
            [::t::registry_pid $home] eq $sb} [slow 5000] 20]}
        # Both registered again in the grace, as an application does
        # after a failover: the held entries are taken back.
        set s2 [raw_open $port]
        check_equal "nopid taken back" {0 nopid} \
            [raw_call $s2 [list Commreg/Register nopid 4101 -serial 1]]
        check_equal "withpid taken back" {0 withpid} \
            [raw_call $s2 [list Commreg/Register withpid 4102 -serial 1 -pid [pid]]]
        # A new entry reaches the group only once its link is back and
        # was offered the table again.
        check_equal "later registered" {0 later} \
            [raw_call $s2 [list Commreg/Register later 4103 -pid [pid]]]
        set evs {}
        check "the group hears of later" {[wait_until {
            {add later} in [lappend evs {*}[watch_events $w 100]]} [slow 8000] 20]}
        # Past the mirror's and the standby's graces: nothing held goes.
        lappend evs {*}[watch_events $w [slow 3500]]
        check_equal "the group's watcher heard of later only" {{add later}} $evs
        check_equal "nopid is still listed in the group" 4101 \
            [dict get [entry_named $gport nopid] port]
        raw_close $s2
        raw_close $w
        stop $g
    }
}
