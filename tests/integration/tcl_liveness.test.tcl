# The liveness check of the Tcl package comm::registry (docs/tcl.md
# "Liveness", configure -liveness): a registry that hangs without closing
# the connection (here: SIGSTOP) is noticed and reported as lost, and the
# package gets back to it when it wakes up; a healthy registry answers
# the pings and nothing is lost; traffic from the registry counts as a
# sign of life; a private registry that hangs leaves the package
# orphaned; -liveness 0 turns the check off; no timer of the check
# outlives a loss or `disconnect`.
#
# The package runs in this process (as tcl_package's `use_home`); the
# registries are real commregd processes, stopped and continued by PID.
source [file join [file dirname [info script]] lib.tcl]
package require comm

set src [file dirname [file dirname [file dirname [file normalize [info script]]]]]
if {[info exists env(COMMREG_SRC)] && $env(COMMREG_SRC) ne ""} {
    set src $env(COMMREG_SRC)
}
lappend auto_path [file join $src tcl]
package require comm::registry
unset -nocomplain env(TCL_COMM_REGPORT)

# The default, before anything here changes it.
set default_liveness [comm::registry::configure -liveness]

# ---------------------------------------------------------------------------
# Helpers

# Use the package in this process with HOME until the scenario ends;
# -command notifications are appended to ::life.
proc use_home {home} {
    comm::registry::disconnect
    comm::registry::configure -home $home -commregd [commregd_path] \
        -command {apply {{args} {lappend ::life $args}}} \
        -liveness $::default_liveness
    set ::life {}
    defer {
        comm::registry::disconnect
        comm::registry::configure -command "" -liveness $::default_liveness
        unset -nocomplain ::env(TCL_COMM_REGPORT)
    }
}

# End, by PID, every commregd of HOME (those the package started too).
proc kill_registries {home} {
    foreach pid [commregds_of $home] {
        catch {exec kill -CONT $pid}
        kill_proc $pid TERM
    }
}

# Stop registry PID (SIGSTOP); it is continued when the scenario ends,
# before it is killed (scope cleanups run last first).
proc stop_registry {pid} {
    defer [list catch [list exec kill -CONT $pid]]
    exec kill -STOP $pid
}

# Pending `after` events of the liveness check.
proc liveness_timers {} {
    set l {}
    foreach id [after info] {
        if {![catch {after info $id} info]
            && [string match *::comm::registry::Liveness* [lindex $info 0]]} {
            lappend l $id
        }
    }
    return $l
}

# name -> entry of a Commreg/List over a raw connection to PORT.
proc table {port {pattern *}} {
    set s [raw_open $port]
    lassign [raw_call $s [list Commreg/List $pattern]] code res
    raw_close $s
    if {$code ne "0"} { error "Commreg/List: $res" }
    set d {}
    foreach e $res { dict set d [dict get $e name] $e }
    return $d
}

proc state {} {
    return [dict get [comm::registry::status] state]
}

main {
    test default_and_invalid_values {
        check_equal "default -liveness" 15000 $::default_liveness
        check_match "listed by configure" "* -liveness 15000*" \
            [comm::registry::configure]
        foreach bad {-1 abc 1.5 "" 299 0x 86400001} {
            lassign [call {comm::registry::configure -liveness $bad}] code res
            check_equal "\"$bad\" refused" \
                [list 1 "-liveness: expected 0 (no liveness check) or milliseconds from 300 to 86400000 but got \"$bad\""] \
                [list $code $res]
        }
        check_equal "still the default" 15000 [comm::registry::configure -liveness]
        check_equal "0 accepted" {0 {}} [call {comm::registry::configure -liveness 0}]
        check_equal "... and kept" 0 [comm::registry::configure -liveness]
        check_equal "300 accepted" {0 {}} [call {comm::registry::configure -liveness 300}]
        comm::registry::configure -liveness $::default_liveness
    }

    test a_stopped_registry_is_lost_then_regained {
        set home [new_home]
        defer [list kill_registries $home]
        lassign [start_registry $home] dpid port
        use_home $home
        comm::registry::configure -liveness 3000
        check_equal "register" alive [must {comm::registry::register alive}]
        check_equal "connected" connected [state]
        check_equal "one check pending" 1 [llength [liveness_timers]]

        set t0 [clock milliseconds]
        stop_registry $dpid
        # A lookup sent to the stopped registry waits for its answer (at
        # most -timeout, 10 s) ... until the liveness check gives up on it.
        lassign [call {comm::registry::lookup alive} 15000] code res
        set dl [expr {[clock milliseconds] - $t0}]
        check_equal "the waiting lookup fails with the reason" \
            {1 {lost the connection to the registry: registry did not answer a liveness ping within 2000 ms (-liveness 3000)}} \
            [list $code $res]
        check "... before its -timeout" {$dl < 9000}
        check "lost told within 10 s" {[wait_until {[llength $::life] >= 1} 10000 20]}
        set dt [expr {[clock milliseconds] - $t0}]
        say "  (a stopped registry noticed after $dt ms with -liveness 3000)"
        # (No tight timing: only that it was not instant, and the bound above.)
        check "not at once" {$dt >= 1000}
        check_equal "told lost, with the reason" \
            [list [list lost "registry did not answer a liveness ping within 2000 ms (-liveness 3000)"]] \
            $::life
        check_equal "status no longer connected" recovering [state]
        check_equal "no liveness timer while recovering" {} [liveness_timers]
        check "the name is kept for the recovery" {[comm::registry::names] eq {alive}}

        # Stopped for a while longer: the recovery cannot get an answer.
        pause 1500
        check_equal "still recovering" recovering [state]
        check_equal "still only lost" 1 [llength $::life]

        exec kill -CONT $dpid
        check "regained within 15 s of SIGCONT" \
            {[wait_until {[llength $::life] >= 2} 15000 20]}
        check_equal "told regained, on the same port" [list regained $port] \
            [lindex $::life 1]
        check_equal "nothing else told" 2 [llength $::life]
        check_equal "connected again" connected [state]
        check_equal "the same registry" [list $dpid $port] \
            [list [registry_pid $home] [file_port $home]]
        set t [table $port]
        check_equal "the name is registered again" {alive} [dict keys $t]
        check_equal "... by this process, serial 1" [list [pid] 1] \
            [list [dict get $t alive pid] [dict get $t alive serial]]
        check_equal "names" {alive} [comm::registry::names]
        check_equal "the check runs again" 1 [llength [liveness_timers]]
        must {comm::registry::disconnect}
        check_equal "no timer survives disconnect" {} [liveness_timers]
    }

    test a_healthy_registry_answers_the_pings {
        set home [new_home]
        lassign [start_registry $home] dpid port
        use_home $home
        comm::registry::configure -liveness 1500
        must {comm::registry::register healthy}
        set pings0 $::comm::registry::live(pings)
        set answers0 $::comm::registry::live(answers)
        # Nothing else happens on the connection: only the pings (one
        # after every 500 ms of silence, ~9 in 5 s) keep it alive.  A ping
        # unanswered for 1000 ms would lose it.
        pause 5000
        set pings [expr {$::comm::registry::live(pings) - $pings0}]
        set answers [expr {$::comm::registry::live(answers) - $answers0}]
        say "  ($pings pings, $answers answered, in 5 s with -liveness 1500)"
        check "pings were sent" {$pings >= 4}
        check "every ping was answered (but the one maybe still out)" \
            {$answers >= $pings - 1 && $answers >= 3}
        check_equal "nothing lost" {} $::life
        check_equal "still connected" connected [state]
        check_equal "the name is still there" {healthy} [dict keys [table $port]]
        check_regexp "lookups work" {^[0-9]+ localhost$} \
            [must {comm::registry::lookup healthy}]
    }

    test traffic_from_the_registry_counts_as_life {
        set home [new_home]
        lassign [start_registry $home] dpid port
        use_home $home
        comm::registry::configure -liveness 3000
        must {comm::registry::register busy}
        set pings0 $::comm::registry::live(pings)
        # An answer every 100 ms: never 1000 ms of silence, so no ping.
        for {set i 0} {$i < 30} {incr i} {
            must {comm::registry::lookup busy}
            pause 100
        }
        check_equal "no ping was needed" 0 \
            [expr {$::comm::registry::live(pings) - $pings0}]
        check_equal "nothing lost" {} $::life
        check_equal "connected" connected [state]
    }

    test liveness_0_turns_the_check_off {
        set home [new_home]
        lassign [start_registry $home] dpid port
        use_home $home
        comm::registry::configure -liveness 0
        must {comm::registry::register quiet}
        check_equal "no timer" {} [liveness_timers]
        set pings0 $::comm::registry::live(pings)
        stop_registry $dpid
        pause 2500
        check_equal "no ping" 0 [expr {$::comm::registry::live(pings) - $pings0}]
        check_equal "nothing lost" {} $::life
        check_equal "still connected (nothing checks)" connected [state]
        exec kill -CONT $dpid
        # Turning it on while connected starts it; off again stops it.
        comm::registry::configure -liveness 1500
        check_equal "on: a timer" 1 [llength [liveness_timers]]
        check "a ping is sent and answered" {[wait_until {
            $::comm::registry::live(answers) > 0
            && $::comm::registry::live(pings) > $pings0} 3000]}
        comm::registry::configure -liveness 0
        check_equal "off: no timer" {} [liveness_timers]
        check_equal "nothing lost" {} $::life
    }

    test a_stopped_private_registry_leaves_the_package_orphaned {
        set home [new_home]
        lassign [start_private_registry] ppid pport other
        use_home $home
        comm::registry::configure -liveness 1500
        set ::env(TCL_COMM_REGPORT) $pport
        try {
            check_equal "register in the private registry" inside \
                [must {comm::registry::register inside}]
        } finally {
            unset -nocomplain ::env(TCL_COMM_REGPORT)
        }
        check_equal "bound to it" [dict create state connected port $pport private 1] \
            [comm::registry::status]
        stop_registry $ppid
        check "lost and dropped told within 10 s" \
            {[wait_until {[llength $::life] >= 2} 10000 20]}
        set gone "the private registry on port $pport is gone (TCL_COMM_REGPORT): registry did not answer a liveness ping within 1000 ms (-liveness 1500)"
        check_equal "lost, then dropped" \
            [list [list lost $gone] [list dropped inside $gone]] $::life
        check_equal "orphaned" orphaned [state]
        check_equal "no timer" {} [liveness_timers]
        check_equal "calls fail with the reason" [list 1 $gone] \
            [call {comm::registry::register again}]
        check_equal "no commregd was started for the user" {} [commregds_of $home]
        must {comm::registry::disconnect}
        check_equal "idle after disconnect" idle [state]
    }
}
