# Failover (ARCHITECTURE.md §3, docs/election.md): when the registry dies,
# every application sees it, one becomes the registry again on the same
# port and the others reconnect; every name comes back with its serial,
# watches resume with a fresh snapshot, and the names of an application
# that died with the registry do not come back.  When another application
# took a serial meanwhile, its old holder is told its new name; when
# something else took the port meanwhile, a fresh election moves everyone
# to a new port.  Applications are the test apps: tests/tools/capp (C
# library, commregd spawned or the registry run in-process) and
# tests/tools/tclapp.tcl (package comm::registry).
source [file join [file dirname [info script]] lib.tcl]

# Start KIND apps for HOME, one per element of NAMESETS (each a list of
# names); returns their channels.
proc start_apps {kind home namesets} {
    set l {}
    foreach names $namesets {
        lappend l [app_start $kind $home {*}$names]
    }
    return $l
}

# Apps (of APPS) whose lines since MARKS (dict app -> mark) lack one
# matching each of PATTERNS.
proc missing_lines {apps marks patterns} {
    set bad {}
    foreach a $apps {
        set lines [app_lines $a [dict get $marks $a]]
        foreach p $patterns {
            if {[lsearch -glob $lines $p] < 0} {
                lappend bad "pid [app_pid $a] [app_requested $a] has no «$p»: $lines"
                break
            }
        }
    }
    return $bad
}

proc lines_matching {apps marks pattern} {
    set l {}
    foreach a $apps {
        foreach line [app_lines $a [dict get $marks $a]] {
            if {[string match $pattern $line]} { lappend l "[app_pid $a]: $line" }
        }
    }
    return $l
}

proc marks_of {apps} {
    set m {}
    foreach a $apps { dict set m $a [app_mark $a] }
    return $m
}

proc kill_registry {pid} {
    catch {exec kill -KILL $pid}
    wait_until {![::t::alive $pid]} 2000 5
}

main {
    test failover_keeps_every_name_of_fifty_c_and_tcl_apps {
        set c [have_app capp]
        set tcl [have_app tclapp]
        if {!$c || !$tcl} return
        set home [new_home]
        lassign [start_registry $home] rpid port

        # A watcher first: it sees every registration as an add.
        set watcher [app_start c $home -watch *]
        check "watcher starts with an empty snapshot" \
            {[wait_until {[::t::app_count $watcher "snapshot *"] > 0} [slow 5000]]}
        check_equal "first snapshot" {snapshot 0} [lindex [app_lines $watcher] 0]

        # 25 C and 25 Tcl apps; 5 of each share one name (serials 1..5),
        # two of each hold a second name.
        set csets {}
        set tsets {}
        for {set i 0} {$i < 25} {incr i} {
            set cn [expr {$i < 5 ? "fc" : "c$i"}]
            set tn [expr {$i < 5 ? "ft" : "t$i"}]
            if {$i >= 23} { lappend cn "c$i-extra"; lappend tn "t$i-extra" }
            lappend csets $cn
            lappend tsets $tn
        }
        set capps {}
        set tapps {}
        # Started in a few batches so that 50 processes do not all start
        # at the very same time on a small machine; serials follow order
        # within a batch only, so "fc"/"ft" start one by one first.
        foreach cn [lrange $csets 0 4] tn [lrange $tsets 0 4] {
            lappend capps [app_start c $home {*}$cn]
            lappend tapps [app_start tcl $home {*}$tn]
            wait_until {[::t::app_registered [lindex $capps end]]
                && [::t::app_registered [lindex $tapps end]]} [slow 5000]
        }
        lappend capps {*}[start_apps c $home [lrange $csets 5 end]]
        lappend tapps {*}[start_apps tcl $home [lrange $tsets 5 end]]
        set apps [concat $capps $tapps]
        if {![check "all 50 apps registered" {[wait_until {[all_registered $apps]} [slow 30000] 50]}]} {
            say "       not registered:\n[not_registered $apps]"
        }
        set expected {}
        foreach base {fc ft} {
            lappend expected $base
            foreach s {2 3 4 5} { lappend expected "$base #$s" }
        }
        for {set i 5} {$i < 25} {incr i} { lappend expected c$i t$i }
        foreach i {23 24} { lappend expected c$i-extra t$i-extra }
        check_set "the registry holds the 54 names" $expected [reg_names $port]
        set before [reg_pairs $port]
        check "the watcher saw them all" \
            {[wait_until {[::t::watch_view $watcher] eq [lsort $expected]} [slow 5000]]}

        set marks [marks_of $apps]
        set wmark [app_mark $watcher]
        set t0 [clock milliseconds]
        kill_registry $rpid
        set back [wait_until {[::t::file_port $home] eq $port
            && [lsort [::t::reg_pairs $port]] eq [lsort $before]} [slow 15000] 50]
        set took [expr {[clock milliseconds] - $t0}]
        say "  (all names back $took ms after the SIGKILL)"
        check "within [expr {[slow 15000] / 1000}] s every name is back with its serial and port" {$back}
        check_equal "the port file names the same port" $port [file_port $home]
        set live [one_commregd $home]
        check_equal "exactly one commregd for this HOME" 1 [llength $live]
        set newpid [registry_pid $home]
        check "a new registry answers there ($newpid, was $rpid)" \
            {$newpid ne "" && $newpid != $rpid && $newpid in $live}
        check_set "the table: same names, each with the same app's port" \
            $before [reg_pairs $port]
        wait_until {[llength [missing_lines $apps $marks {lost* regained*}]] == 0} [slow 3000]
        check_equal "every app printed lost then regained" {} \
            [missing_lines $apps $marks {lost* regained*}]
        check_equal "no app was renamed" {} [lines_matching $apps $marks renamed*]
        # "no registry for N ms" is the library's report that re-election
        # is slow (a loaded machine): allowed.  Any other error is not.
        set errs [lines_matching $apps $marks error*]
        set slow [lsearch -all -inline -glob $errs "*: error*no registry for *"]
        if {[llength $slow]} {
            say "  ([llength $slow] reports of a slow re-election, e.g. [show [lindex $slow 0] 160])"
        }
        check_equal "no app printed an error (but slowness)" {} \
            [lsearch -all -inline -not -glob $errs "*: error*no registry for *"]
        check_set "the apps hold the names they held" $expected [held_names $apps]

        set wl [app_lines $watcher $wmark]
        check "the watcher printed a fresh snapshot" \
            {[wait_until {[::t::app_count $watcher "snapshot *" $wmark] > 0} [slow 5000]]}
        wait_until {[::t::watch_view $watcher] eq [lsort $expected]} [slow 3000]
        check_equal "and after the diff lines its view is unchanged" \
            [lsort $expected] [watch_view $watcher]
        set wl [app_lines $watcher $wmark]
        set net {}
        foreach line $wl {
            if {[string match "add *" $line] || [string match "remove *" $line]} {
                lassign [app_words $line 2] op n
                dict incr net $n [expr {$op eq "add" ? 1 : -1}]
            }
        }
        set changed [dict filter $net value {[1-9-]*}]
        check_equal "no net add or remove in the watcher's lines since the kill" {} $changed
        say "  (watcher after the kill: [llength $wl] lines, first [show [lrange $wl 0 2] 120])"

        # Again, and this time four apps (two C, two Tcl, two of them holding
        # two names) die with the registry: their names must not come back.
        set victims [list [lindex $capps 2] [lindex $capps 24] [lindex $tapps 7] [lindex $tapps 23]]
        set dead {}
        foreach v $victims { lappend dead {*}[app_names $v] }
        set apps [lmap a $apps {if {$a in $victims} continue; set a}]
        set expected [lmap n $expected {if {$n in $dead} continue; set n}]
        set before [lmap p $before {if {[lindex [split $p |] 0] in $dead} continue; set p}]
        set rpid [registry_pid $home]
        set wmark [app_mark $watcher]
        foreach v $victims { catch {exec kill -KILL [app_pid $v]} }
        kill_registry $rpid
        foreach v $victims { app_kill $v KILL }
        set back [wait_until {[lsort [::t::reg_pairs $port]] eq [lsort $before]} [slow 15000] 50]
        check "second kill: the survivors' names are back, the dead apps' are not" {$back}
        check_set "second kill: table" $before [reg_pairs $port]
        check_equal "second kill: six names gone" 6 [llength $dead]
        wait_until {[::t::watch_view $watcher] eq [lsort $expected]} [slow 5000]
        check_equal "second kill: the watcher's view lost exactly the dead apps' names" \
            [lsort $expected] [watch_view $watcher]
        check_equal "second kill: one commregd" 1 [llength [one_commregd $home]]

        foreach a $apps { app_kill $a TERM }
        app_kill $watcher TERM
        foreach p [commregds_of $home] { kill_proc $p KILL }
    }

    test in_process_registry_moves_to_another_app_on_the_same_port {
        if {![have_app capp]} return
        set home [new_home]
        # A hosts the registry (first to start); B, C, D join it.
        set a [app_start c-inprocess $home ip ipA]
        check "first app registered" {[wait_until {[::t::app_registered $a]} [slow 8000]]}
        set port [file_port $home]
        check_equal "it hosts the registry" [app_pid $a] [registry_pid $home]
        set others {}
        foreach n {B C D} {
            lappend others [app_start c-inprocess $home ip ip$n]
            wait_until {[::t::app_registered [lindex $others end]]} [slow 8000]
        }
        set watcher [app_start c-inprocess $home -watch ip*]
        set apps [concat [list $a] $others]
        check "all registered" {[wait_until {[all_registered $apps]
            && [::t::app_count $watcher "snapshot *"] > 0} [slow 8000]]}
        set all {ip ipA "ip #2" ipB "ip #3" ipC "ip #4" ipD}
        check_set "the registry holds the 8 names" $all [reg_names $port]
        check_equal "no commregd anywhere" {} [commregds_of $home]

        # Round 1: kill the host (A).  Round 2: kill whoever took over.
        set victim $a
        set survivors [concat $others [list $watcher]]
        set gone {ip ipA}
        for {set round 1} {$round <= 2} {incr round} {
            set vpid [app_pid $victim]
            set pids [lmap s $survivors {app_pid $s}]
            set expected [lmap n $all {if {$n in $gone} continue; set n}]
            set marks [marks_of $survivors]
            set before [lmap p [reg_pairs $port] {
                if {[lindex [split $p |] 0] in $gone} continue; set p}]
            set t0 [clock milliseconds]
            app_kill $victim KILL
            set ok [wait_until {[::t::file_port $home] eq $port
                && [::t::registry_pid $home] in $pids
                && [lsort [::t::reg_pairs $port]] eq [lsort $before]} [slow 15000] 50]
            set took [expr {[clock milliseconds] - $t0}]
            say "  (round $round: registry and names back in $took ms)"
            check "round $round: another app hosts on port $port and the names are back" {$ok}
            set host [registry_pid $home]
            check "round $round: the host is a survivor ($host)" {$host in $pids}
            check_set "round $round: the killed app's names are gone, the rest kept serials" \
                $before [reg_pairs $port]
            check_set "round $round: names" $expected [reg_names $port]
            check_equal "round $round: no commregd was spawned" {} [commregds_of $home]
            set hosted [lines_matching $survivors $marks "regained * hosted"]
            check_equal "round $round: exactly one survivor says it hosts" 1 [llength $hosted]
            check_match "round $round: and it is the registry" "$host: *" [lindex $hosted 0]
            set workers [lmap s $survivors {if {$s eq $watcher} continue; set s}]
            wait_until {[llength [missing_lines $workers $marks {lost* regained*}]] == 0} [slow 3000]
            check_equal "round $round: every survivor printed lost and regained" {} \
                [missing_lines $workers $marks {lost* regained*}]
            if {$watcher in $survivors} {
                wait_until {[::t::watch_view $watcher] eq [lsort $expected]} [slow 3000]
                check_equal "round $round: the watcher's view lost exactly the dead app's names" \
                    [lsort $expected] [watch_view $watcher]
                check "round $round: the watcher printed a fresh snapshot" \
                    {[app_count $watcher "snapshot *" [dict get $marks $watcher]] > 0}
            }
            # Next victim: the new host.
            set victim ""
            foreach s $survivors {
                if {[app_pid $s] == $host} { set victim $s }
            }
            if {$victim eq ""} break
            set survivors [lmap s $survivors {if {$s eq $victim} continue; set s}]
            lappend gone {*}[app_names $victim]
        }

        # A newcomer asking for "ip" gets the lowest free serial: 1, as
        # the first holder is gone.
        set e [app_start c-inprocess $home ip]
        check "a newcomer registers" {[wait_until {[::t::app_registered $e]} [slow 8000]]}
        check_equal "and gets \"ip\" (serial 1 is free again)" {ip} [app_names $e]
        foreach s [concat $survivors [list $e]] { app_kill $s TERM }
    }

    test serial_taken_meanwhile_app_is_told_its_new_name {
        # A holds "x", B "x #2".  B is frozen while the registry dies and A
        # comes back; a newcomer C then gets "x #2".  When B resumes, its
        # serial is taken: it gets "x #3" and is told so (renamed).
        set kinds {}
        if {[have_app capp]} { lappend kinds c }
        if {[have_app tclapp]} { lappend kinds tcl }
        foreach kind $kinds {
            set home [new_home]
            lassign [start_registry $home] rpid port
            set a [app_start c $home x]
            check "$kind: A registered" {[wait_until {[::t::app_registered $a]} [slow 8000]]}
            set b [app_start $kind $home x]
            check "$kind: B registered" {[wait_until {[::t::app_registered $b]} [slow 8000]]}
            check_equal "$kind: B is x #2" {{x #2}} [app_names $b]
            set bport [lindex [split [lsearch -inline [reg_pairs $port] "x #2|*"] |] 1]
            exec kill -STOP [app_pid $b]
            defer [list catch [list exec kill -CONT [app_pid $b]]]
            set bmark [app_mark $b]
            kill_registry $rpid
            check "$kind: A is back alone" {[wait_until {[::t::reg_names $port] eq "x"} [slow 10000] 20]}
            set c [app_start c $home x]
            check "$kind: newcomer C registered" {[wait_until {[::t::app_registered $c]} [slow 8000]]}
            check_equal "$kind: C got the free serial 2" {{x #2}} [app_names $c]
            exec kill -CONT [app_pid $b]
            check "$kind: B comes back" {[wait_until {
                [llength [::t::reg_names $port]] == 3} [slow 10000] 20]}
            check_set "$kind: table x, x #2 (C), x #3 (B)" {x {x #2} {x #3}} [reg_names $port]
            check "$kind: B printed renamed" {[wait_until {
                [::t::app_count $b "renamed *" $bmark] > 0} [slow 3000]]}
            check_equal "$kind: B now holds x #3" {{x #3}} [app_names $b]
            check_match "$kind: x #3 is registered with B's port" "x #3|$bport" \
                [lsearch -inline [reg_pairs $port] "x #3|*"]
            foreach app [list $a $b $c] { app_kill $app TERM }
            foreach p [commregds_of $home] { kill_proc $p KILL }
        }
    }

    test registry_port_taken_meanwhile_apps_elect_on_a_new_port {
        set c [have_app capp]
        set tcl [have_app tclapp]
        if {!$c && !$tcl} return
        set home [new_home]
        # The election's fallback, with no standby: with one, the port
        # is never free to be taken (standby.test.tcl).
        lassign [start_registry $home --no-standby] rpid port
        set apps {}
        set expected {}
        set k 0
        for {set i 0} {$i < 3} {incr i} {
            foreach kind {c tcl} {
                if {($kind eq "c" && !$c) || ($kind eq "tcl" && !$tcl)} continue
                lappend apps [app_start $kind $home moved]
                wait_until {[::t::app_registered [lindex $apps end]]} [slow 8000]
                incr k
                lappend expected [expr {$k == 1 ? "moved" : "moved #$k"}]
            }
        }
        check "all registered" {[wait_until {[all_registered $apps]} [slow 10000]]}
        set before [reg_pairs $port]
        check_set "the registry holds them" $expected [reg_names $port]
        # Freeze the apps, kill the registry, take its port, let them go:
        # they must elect a registry elsewhere and all come back.
        foreach a $apps { exec kill -STOP [app_pid $a] }
        defer [list apply {{apps} {
            foreach a $apps { catch {exec kill -CONT [::t::app_pid $a]} }
        }} $apps]
        set marks [marks_of $apps]
        kill_registry $rpid
        set foreign [socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.1 $port]
        defer [list close $foreign]
        set t0 [clock milliseconds]
        foreach a $apps { exec kill -CONT [app_pid $a] }
        set ok [wait_until {[set p2 [::t::file_port $home]] ne "" && $p2 ne $port
            && [lsort [::t::reg_pairs $p2]] eq [lsort $before]} [slow 15000] 50]
        set took [expr {[clock milliseconds] - $t0}]
        say "  (registry on a new port with every name in $took ms)"
        check "a registry on another port holds every name, serials kept" {$ok}
        set p2 [file_port $home]
        check_set "table" $before [reg_pairs $p2]
        check_equal "exactly one commregd" 1 [llength [one_commregd $home]]
        wait_until {[llength [missing_lines $apps $marks [list lost* "regained $p2*"]]] == 0} [slow 3000]
        check_equal "every app says it regained the registry on the new port" {} \
            [missing_lines $apps $marks [list lost* "regained $p2*"]]
        foreach a $apps { app_kill $a TERM }
        foreach p [commregds_of $home] { kill_proc $p KILL }
    }
} [expr {min(270, 90 * [slowdown])}]
