# Elections under races (ARCHITECTURE.md §3, docs/election.md): many
# processes becoming the user registry at the same instant end with exactly
# one registry and every application registered; a contender or a registry
# that dies (SIGKILL) blocks the next starter for no more than about a
# second.  The SIGKILL at each step inside the election is unit-tested
# (tests/unit/test_election.c, crash hook); here are the process-level
# races: real commregd, C applications (tests/tools/capp, daemon and
# in-process registry) and Tcl applications (tests/tools/tclapp.tcl).
#
# Simultaneous means behind a start barrier (barrier_new): every starter
# is already running and blocked on a FIFO, and all are let go at once.
source [file join [file dirname [info script]] lib.tcl]

# Is the port file locked by someone (flock(2), as the registry holds it)?
proc locked {path} {
    set r [run -timeout 5 flock -n -E 99 $path true]
    switch -- [dict get $r code] {
        99 { return 1 }
        0  { return 0 }
    }
    return "flock: [dict get $r code] [dict get $r err]"
}

# Start N `commregd --detach` for HOME behind a barrier; returns the
# run_bg handles (the barrier is not yet released).
proc detach_starters {home fifo n} {
    set hs {}
    for {set i 0} {$i < $n} {incr i} {
        lappend hs [run_bg -timeout 20 -home $home \
            {*}[barrier_wrap $fifo [commregd_path] --home $home --detach]]
    }
    return $hs
}

proc finished {hs} {
    set n 0
    foreach h $hs {
        if {[file exists [dict get $h base].rc]} { incr n }
    }
    return $n
}

proc exit_codes {hs} {
    return [lmap h $hs {string trim [read_file [dict get $h base].rc]}]
}

# A process holding an flock on PATH (one process: sh, then sleep in its
# place, keeping fd 9), as a contender or a registry would.  Returns the
# spawn channel once the lock is held.
proc lock_holder {path} {
    set ch [spawn sh -c {exec 9<"$0"; flock -n 9 || exit 3; echo LOCKED; exec sleep 60} $path]
    set l [readline $ch]
    if {$l ne "LOCKED"} { error "lock holder: $l [spawn_err $ch]" }
    return $ch
}

# What the registry directory holds (dot files included).
proc regdir_files {home} {
    return [lsort [lmap f [glob -nocomplain -tails -directory [regdir $home] * .*] {
        if {$f in {. ..}} continue; set f}]]
}

# Wait (bounded) until the registry's table equals EXPECTED as a set of
# names; returns the names the registry has at the end.
proc wait_table {home expected ms} {
    set want [lsort $expected]
    wait_until {[lsort [reg_names [file_port $home]]] eq $want} [slow $ms] 100
    return [reg_names [file_port $home]]
}

main {
    test twenty_five_commregd_detach_starters_elect_exactly_one {
        set home [new_home]
        set fifo [barrier_new]
        set hs [detach_starters $home $fifo 25]
        pause 500
        set t0 [clock milliseconds]
        barrier_release $fifo
        check "all 25 starters return" {[wait_until {[finished $hs] == 25} [slow 15000] 20]}
        set took [expr {[clock milliseconds] - $t0}]
        say "  (25 starters returned in $took ms)"
        check_equal "every starter exits 0 (the winner once listening)" \
            [lrepeat 25 0] [exit_codes $hs]
        set live [one_commregd $home]
        check_equal "exactly one commregd for this HOME" 1 [llength $live]
        set port [file_port $home]
        check "port file valid" {$port ne ""}
        check_equal "port file locked by the registry" 1 [locked [portfile $home]]
        check "the one commregd answers on that port" {[registry_pid $home] in $live}
        check_equal "no temporary files left (.HOST.PID.N.tmp)" [list [shorthost]] \
            [regdir_files $home]
        pause 300
        check_equal "still exactly one a moment later" $live [commregds_of $home]
        foreach p $live { kill_proc $p KILL }
    }

    test twenty_five_c_apps_with_no_registry_all_register_with_one {
        if {![have_app capp]} return
        set home [new_home]
        set fifo [barrier_new]
        set apps {}
        set expected {}
        # 20 distinct names and one name five times (serials 1..5).
        for {set i 0} {$i < 25} {incr i} {
            if {$i < 20} {
                set name race$i
                lappend expected $name
            } else {
                set name same
                lappend expected [expr {$i == 20 ? "same" : "same #[expr {$i - 19}]"}]
            }
            lappend apps [app_start c $home -barrier $fifo $name]
        }
        pause 500
        set t0 [clock milliseconds]
        barrier_release $fifo
        if {![check "all 25 apps say registered" {[wait_until {[all_registered $apps]} [slow 20000] 50]}]} {
            say "       not registered: [not_registered $apps]"
        }
        say "  (25 C apps registered in [expr {[clock milliseconds] - $t0}] ms)"
        set live [one_commregd $home]
        check_equal "exactly one commregd for this HOME" 1 [llength $live]
        set names [wait_table $home $expected 5000]
        check_set "the registry holds every name, serials 1..5 for the shared one" \
            $expected $names
        check_set "the apps hold the names the registry has" $expected [held_names $apps]
        set pids [lmap a $apps {app_pid $a}]
        set foreign {}
        catch {
            foreach e [reg_list [file_port $home]] {
                if {[dict get $e pid] ne "" && [dict get $e pid] ni $pids} {
                    lappend foreign [dict get $e name]
                }
            }
        }
        check_equal "every entry is owned by one of the apps" {} $foreign
        set errs 0
        foreach a $apps { incr errs [app_count $a "error *"] }
        check_equal "no app printed an error" 0 $errs
        check_equal "no temporary files left" [list [shorthost]] [regdir_files $home]
        foreach a $apps { app_kill $a TERM }
        foreach p $live { kill_proc $p KILL }
    }

    test twenty_five_in_process_c_apps_elect_one_host {
        if {![have_app capp]} return
        set home [new_home]
        set fifo [barrier_new]
        set apps {}
        set expected {}
        for {set i 0} {$i < 25} {incr i} {
            lappend apps [app_start c-inprocess $home -barrier $fifo inproc$i]
            lappend expected inproc$i
        }
        pause 500
        set t0 [clock milliseconds]
        barrier_release $fifo
        if {![check "all 25 apps say registered" {[wait_until {[all_registered $apps]} [slow 20000] 50]}]} {
            say "       not registered: [not_registered $apps]"
        }
        say "  (25 in-process C apps registered in [expr {[clock milliseconds] - $t0}] ms)"
        set pids [lmap a $apps {app_pid $a}]
        set host [registry_pid $home]
        check "the registry is one of the apps (pid $host)" {$host in $pids}
        check_equal "no commregd was started" {} [commregds_of $home]
        check_equal "port file locked" 1 [locked [portfile $home]]
        check_set "the registry holds every name" $expected [wait_table $home $expected 5000]
        set hosted 0
        foreach a $apps { incr hosted [app_count $a "*hosted*"] }
        check "at most one app says it hosts ($hosted)" {$hosted <= 1}
        check_equal "no temporary files left" [list [shorthost]] [regdir_files $home]
        foreach a $apps { app_kill $a TERM }
    }

    test mixed_starters_c_tcl_and_commregd_elect_one {
        set c [have_app capp]
        set tcl [have_app tclapp]
        if {!$c && !$tcl} return
        set home [new_home]
        set fifo [barrier_new]
        set apps {}
        set expected {}
        for {set i 0} {$i < 10} {incr i} {
            if {$c} {
                lappend apps [app_start c $home -barrier $fifo mixc$i]
                lappend expected mixc$i
            }
            if {$tcl && $i < 8} {
                lappend apps [app_start tcl $home -barrier $fifo mixt$i]
                lappend expected mixt$i
            }
        }
        set hs [detach_starters $home $fifo 7]
        pause 800
        set t0 [clock milliseconds]
        barrier_release $fifo
        if {![check "all [llength $apps] apps say registered" {[wait_until {[all_registered $apps]} [slow 25000] 50]}]} {
            say "       not registered: [not_registered $apps]"
        }
        say "  ([llength $apps] apps + 7 commregd registered in\
               [expr {[clock milliseconds] - $t0}] ms)"
        check "the commregd starters return" {[wait_until {[finished $hs] == 7} [slow 10000] 50]}
        check_equal "they exit 0" [lrepeat 7 0] [exit_codes $hs]
        set live [one_commregd $home]
        check_equal "exactly one commregd for this HOME" 1 [llength $live]
        check_set "the registry holds every name" $expected [wait_table $home $expected 5000]
        foreach a $apps { app_kill $a TERM }
        foreach p $live { kill_proc $p KILL }
    }

    test contender_killed_on_empty_file_blocks_starters_briefly {
        # A contender that created the empty port file and holds its lock
        # (the state right after link(2), before a port is written), while
        # starters wait for it; then it is SIGKILLed.
        set home [new_home]
        make_regdir $home
        set pf [portfile $home]
        write_file $pf ""
        set holder [lock_holder $pf]
        set fifo [barrier_new]
        set hs [detach_starters $home $fifo 10]
        set apps {}
        set expected {}
        if {[have_app capp]} {
            for {set i 0} {$i < 5} {incr i} {
                lappend apps [app_start c $home -barrier $fifo waiter$i]
                lappend expected waiter$i
            }
        }
        if {[have_app tclapp]} {
            for {set i 0} {$i < 3} {incr i} {
                lappend apps [app_start tcl $home -barrier $fifo tclwaiter$i]
                lappend expected tclwaiter$i
            }
        }
        pause 400
        barrier_release $fifo
        pause 600
        check_equal "while the contender lives, the file stays empty" "" [read_file $pf]
        check_equal "and no starter has given up" 0 [finished $hs]
        set t0 [clock milliseconds]
        stop $holder KILL
        set up [wait_until {[::t::file_port $home] ne "" && [::t::port_open [::t::file_port $home]]} [slow 5000] 10]
        set took [expr {[clock milliseconds] - $t0}]
        check "a registry listens after the kill ($took ms)" {$up}
        check "within 1.5 s of the kill (took $took ms)" {$took < [slow 1500]}
        check "the starters return" {[wait_until {[finished $hs] == 10} [slow 8000] 20]}
        check_equal "every starter exits 0" [lrepeat 10 0] [exit_codes $hs]
        if {[llength $apps]} {
            if {![check "the waiting apps register" {[wait_until {[all_registered $apps]} [slow 10000] 50]}]} {
                say "       not registered: [not_registered $apps]"
            }
            set took [expr {[clock milliseconds] - $t0}]
            say "  (apps registered $took ms after the kill)"
            check_set "the registry holds their names" $expected [wait_table $home $expected 3000]
        }
        set live [one_commregd $home]
        check_equal "exactly one commregd" 1 [llength $live]
        check_equal "the port file is locked again" 1 [locked $pf]
        foreach a $apps { app_kill $a TERM }
        foreach p $live { kill_proc $p KILL }
    }

    test contender_killed_on_empty_file_blocks_in_process_apps_briefly {
        # The same with applications that elect in-process: they retry by
        # timer while the contender lives and one of them takes over.
        if {![have_app capp]} return
        set home [new_home]
        make_regdir $home
        set pf [portfile $home]
        write_file $pf ""
        set holder [lock_holder $pf]
        set fifo [barrier_new]
        set apps {}
        set expected {}
        for {set i 0} {$i < 5} {incr i} {
            lappend apps [app_start c-inprocess $home -barrier $fifo inwait$i]
            lappend expected inwait$i
        }
        pause 400
        barrier_release $fifo
        pause 600
        check_equal "while the contender lives, the file stays empty" "" [read_file $pf]
        check_equal "and no app registered" 0 [llength [lmap a $apps {
            expr {[app_registered $a] ? 1 : [continue]}}]]
        set t0 [clock milliseconds]
        stop $holder KILL
        set up [wait_until {[::t::file_port $home] ne "" && [::t::port_open [::t::file_port $home]]} [slow 5000] 10]
        set took [expr {[clock milliseconds] - $t0}]
        check "an app hosts the registry after the kill ($took ms)" {$up}
        check "within 1.5 s of the kill (took $took ms)" {$took < [slow 1500]}
        if {![check "all apps register" {[wait_until {[all_registered $apps]} [slow 10000] 50]}]} {
            say "       not registered: [not_registered $apps]"
        }
        check_set "the registry holds their names" $expected [wait_table $home $expected 3000]
        check "the registry is one of them" {[registry_pid $home] in [lmap a $apps {app_pid $a}]}
        check_equal "no commregd" {} [commregds_of $home]
        check_equal "the port file is locked again" 1 [locked $pf]
        foreach a $apps { app_kill $a TERM }
    }

    test registry_killed_leaves_a_file_the_next_starter_takes_on_its_port {
        # "PORT\n", locked by a process that then dies by SIGKILL, nothing
        # listening on PORT: a registry killed outright.  Starters come
        # after the kill, all at once.
        set home [new_home]
        make_regdir $home
        set pf [portfile $home]
        set q [free_port]
        write_file $pf "$q\n"
        set holder [lock_holder $pf]
        stop $holder KILL
        check_equal "unlocked once its holder died" 0 [locked $pf]
        set fifo [barrier_new]
        set hs [detach_starters $home $fifo 10]
        set apps {}
        set expected {}
        if {[have_app capp]} {
            for {set i 0} {$i < 5} {incr i} {
                lappend apps [app_start c $home -barrier $fifo after$i]
                lappend expected after$i
            }
        }
        pause 400
        set t0 [clock milliseconds]
        barrier_release $fifo
        set up [wait_until {[::t::port_open $q] && [::t::hello $q] ne ""} [slow 5000] 10]
        set took [expr {[clock milliseconds] - $t0}]
        check "a registry answers on the remembered port $q ($took ms)" {$up}
        check "within 1.5 s (took $took ms)" {$took < [slow 1500]}
        check "the starters return" {[wait_until {[finished $hs] == 10} [slow 8000] 20]}
        check_equal "every starter exits 0" [lrepeat 10 0] [exit_codes $hs]
        check_equal "the file still names that port" "$q\n" [read_file $pf]
        if {[llength $apps]} {
            if {![check "the apps register" {[wait_until {[all_registered $apps]} [slow 10000] 50]}]} {
                say "       not registered: [not_registered $apps]"
            }
            check_set "the registry holds their names" $expected [wait_table $home $expected 3000]
        }
        set live [one_commregd $home]
        check_equal "exactly one commregd" 1 [llength $live]
        check "it is the one answering" {[registry_pid $home] in $live}
        foreach a $apps { app_kill $a TERM }
        foreach p $live { kill_proc $p KILL }
    }
} [expr {min(270, 100 * [slowdown])}]
