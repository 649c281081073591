# Bounded chaos (ARCHITECTURE.md §3, issue 3): about 20 registry kills
# (SIGKILL) within about 30 s while C and Tcl applications come and go at
# random (started, SIGKILLed, stopped by SIGTERM).  Afterwards, within a
# bounded settling time, the registry's table equals exactly the names of
# the applications still alive: nothing lost, nothing extra (no ghost of a
# killed application), and watchers see the same set.  A second, shorter
# run mixes in C applications that host the registry in-process, so that
# a "registry kill" is sometimes the kill of an application.
#
# Random with a fixed seed (COMMREG_CHAOS_SEED overrides it), so a failing
# run can be replayed; the seed is printed, and every action when a check
# fails.
source [file join [file dirname [info script]] lib.tcl]

set seed 20251129
if {[info exists env(COMMREG_CHAOS_SEED)] && [string is integer -strict $env(COMMREG_CHAOS_SEED)]} {
    set seed $env(COMMREG_CHAOS_SEED)
}
set settle_ms [slow 20000]
set min_apps 4
set max_apps 12
set pool {alpha beta gamma delta eps}

expr {srand($seed)}
proc rnd {n} { return [expr {int(rand() * $n)}] }
proc pick {l} { return [lindex $l [rnd [llength $l]]] }

# State of one chaos run: the apps alive now (channels), what was done.
proc reset {} {
    set ::live {}
    set ::log {}
    set ::count {}
    set ::t0 [clock milliseconds]
}

proc note {msg} {
    lappend ::log "[format %6d [expr {[clock milliseconds] - $::t0}]] $msg"
}

proc start_one {home kinds} {
    set kind [pick $kinds]
    set names [list [pick $::pool]]
    if {[rnd 3] == 0} { lappend names "[pick $::pool]-[rnd 4]" }
    set a [app_start $kind $home {*}$names]
    lappend ::live $a
    dict incr ::count "$kind started"
    note "start $kind pid [app_pid $a] $names"
}

proc forget {a} {
    set ::live [lmap x $::live {if {$x eq $a} continue; set x}]
}

proc kill_one {{sig KILL}} {
    if {![llength $::live]} return
    set a [pick $::live]
    forget $a
    dict incr ::count "[app_kind $a] $sig"
    note "$sig app pid [app_pid $a] [app_names $a]"
    app_kill $a $sig
}

# SIGKILL whatever serves HOME's registry (the process answering
# Commreg/Hello on the port file's port): a commregd, or a live app that
# hosts it in-process.  1 if there was one to kill.  (Contenders still
# electing are left alone: killing those is the unit tests' business.)
proc kill_registry {home} {
    wait_until {[::t::registry_pid $home] ne ""} [slow 1000] 20
    set host [registry_pid $home]
    if {$host eq ""} {
        note "no registry answers: none killed"
        return 0
    }
    foreach a $::live {
        if {[app_pid $a] == $host} {
            forget $a
            dict incr ::count "registry host [app_kind $a] KILL"
            note "KILL registry host app pid $host [app_names $a]"
            app_kill $a KILL
            return 1
        }
    }
    if {$host ni [commregds_of $home]} {
        note "registry pid $host is neither an app nor a commregd of ours"
        return 0
    }
    catch {exec kill -KILL $host}
    dict incr ::count "commregd KILL"
    note "KILL registry commregd $host"
    return 1
}

# How many times a standby took over, by the registries' logs (the
# first registry's, which its standbys share, and the detached ones').
proc takeovers {home} {
    set text [read_file [file join $home .tcl comm log [shorthost].log]]
    foreach pid [array names ::t::daemon_log] { append text [daemon_log $pid] }
    return [regexp -all {took over from the registry that died} $text]
}

proc expected_names {} {
    set l {}
    foreach a $::live { lappend l {*}[app_names $a] }
    return [lsort $l]
}

proc expected_bases {} {
    set l {}
    foreach a $::live { lappend l {*}[app_requested $a] }
    return [lsort $l]
}

proc table_bases {port} {
    if {[catch {reg_list $port} l]} { return - }
    return [lsort [lmap e $l {dict get $e base}]]
}

proc settled {home watchers} {
    set port [file_port $home]
    set names [lsort [reg_names $port]]
    if {$names ne [expected_names]} { return 0 }
    if {[table_bases $port] ne [expected_bases]} { return 0 }
    foreach w $watchers {
        if {[watch_view $w] ne $names} { return 0 }
    }
    return 1
}

# KILLS registry kills spread over about MS ms, two or three random app
# actions (KINDS to start from) between kills; then the checks.
proc chaos {home kinds watchers kills_wanted ms} {
    for {set i 0} {$i < 6} {incr i} { start_one $home $kinds }
    wait_until {[all_registered $::live]} [slow 10000] 50

    # Rounds last 20% to 180% of the mean, so that some kills come while
    # the apps are still restoring after the previous one.
    set kills 0
    set round_ms [expr {$ms / $kills_wanted}]
    set started [clock milliseconds]
    set next $started
    for {set k 0} {$k < $kills_wanted} {incr k} {
        if {[clock milliseconds] - $started > $ms + [slow 5000]} break
        set next [expr {max($next + $round_ms / 5 + [rnd [expr {$round_ms * 8 / 5}]],
                            [clock milliseconds] + 50)}]
        set actions [expr {2 + [rnd 2]}]
        for {set j 0} {$j < $actions} {incr j} {
            set n [llength $::live]
            if {$n < $::min_apps} {
                start_one $home $kinds
            } elseif {$n >= $::max_apps} {
                kill_one
            } else {
                switch -- [rnd 6] {
                    0 - 1 - 2 { start_one $home $kinds }
                    3 - 4     { kill_one KILL }
                    5         { kill_one TERM }
                }
            }
            pause [expr {max(10, ($next - [clock milliseconds]) / ($actions - $j + 1))}]
        }
        pause [expr {max(10, $next - [clock milliseconds])}]
        incr kills [kill_registry $home]
    }
    set took [expr {[clock milliseconds] - $started}]
    say "  ($kills registry kills in $took ms;\
           [join [lmap {k v} $::count {string cat "$v $k"}] ", "];\
           [llength $::live] apps alive)"
    check "at least [expr {$kills_wanted * 3 / 4}] registry kills happened ($kills)" \
        {$kills >= $kills_wanted * 3 / 4}
    check "the chaos took at most [expr {$ms / 1000 + 10}] s ($took ms)" {$took < $ms + [slow 10000]}

    set t1 [clock milliseconds]
    set ok [wait_until {[settled $home $watchers]} $::settle_ms 100]
    say "  (settled [expr {[clock milliseconds] - $t1}] ms after the last kill)"
    if {![check "the registry settles within [expr {$::settle_ms / 1000}] s" {$ok}]} {
        say "       actions:\n       [join $::log "\n       "]"
        foreach a [concat $::live $watchers] {
            say "       app pid [app_pid $a] [app_requested $a]: [app_lines $a]"
        }
    }
    set port [file_port $home]
    check "a registry answers" {$port ne "" && [hello $port] ne ""}
    set names [lsort [reg_names $port]]
    check_set "the table equals the names the live apps hold" [expected_names] $names
    check_set "one entry per name each live app asked for (bases)" \
        [expected_bases] [table_bases $port]
    set pids [lmap a $::live {app_pid $a}]
    set ghosts {}
    catch {
        foreach e [reg_list $port] {
            set p [dict get $e pid]
            if {$p ne "" && $p ni $pids} { lappend ghosts "[dict get $e name] (pid $p)" }
        }
    }
    check_equal "no entry belongs to a process that is not a live app" {} $ghosts
    foreach w $watchers {
        check_equal "watcher pid [app_pid $w] sees the same set" $names [watch_view $w]
    }
    set dead {}
    foreach a [concat $::live $watchers] {
        if {![alive [app_pid $a]]} { lappend dead "[app_pid $a]: [app_lines $a]" }
    }
    check_equal "every app that was not killed is still running" {} $dead
    set errors {}
    foreach a [concat $::live $watchers] {
        foreach l [app_lines $a] {
            if {[string match error* $l]} { lappend errors "[app_pid $a]: $l" }
        }
    }
    if {[llength $errors]} {
        say "  (error lines printed by live apps during the run: [llength $errors],\
             first: [show [lindex $errors 0] 200])"
    }
    # One registry: a commregd, or (none and) a live app hosting it.
    set host [registry_pid $home]
    wait_until {[::t::commregds_of $home] eq ($host in $pids ? "" : $host)} [slow 5000] 50
    set regs [commregds_of $home]
    if {$host in $pids} {
        check_equal "the registry is a live app and no commregd runs" {} $regs
    } else {
        check_equal "exactly one commregd, the one answering" [list $host] $regs
        # Failovers went through standbys (docs/election.md): the last
        # registry has one too.
        check "and one standby" {[wait_until {[llength [::t::standbys_of $home]] == 1} [slow 5000] 50]}
    }

    foreach a [concat $::live $watchers] { app_kill $a TERM }
    # Standbys first: a standby whose registry is killed before it takes
    # over, and the count of takeovers below would have one more than
    # the kills made.
    foreach p [standbys_of $home] { kill_proc $p KILL }
    foreach p [commregds_of $home] { kill_proc $p KILL }
}

main {
    set c [have_app capp]
    set tcl [have_app tclapp]

    test registry_kills_while_apps_come_and_go_lose_nothing_and_keep_no_ghost {
        set kinds {}
        if {$c} { lappend kinds c c c }
        if {$tcl} { lappend kinds tcl tcl }
        if {![llength $kinds]} return
        say "  seed $seed (COMMREG_CHAOS_SEED to replay)"
        reset
        set home [new_home]
        start_registry $home
        set watchers {}
        if {$c} { lappend watchers [app_start c $home -watch *] }
        if {$tcl} { lappend watchers [app_start tcl $home -watch *] }
        chaos $home $kinds $watchers 20 30000
        set n [takeovers $home]
        say "  (the registries' logs count $n takeovers by a standby)"
        check "standbys took over ($n times)" {$n > 0}
    }

    test in_process_hosts_among_them_killed_too {
        # Apps that host the registry in-process, apps that spawn
        # commregd, Tcl apps: whoever serves the registry is killed.
        if {!$c} return
        set kinds {c-inprocess c-inprocess c}
        if {$tcl} { lappend kinds tcl }
        reset
        set home [new_home]
        set watchers [list [app_start c $home -watch *]]
        chaos $home $kinds $watchers 10 15000
    }
}
