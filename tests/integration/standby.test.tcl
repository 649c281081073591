# The registry's standby (docs/election.md "The standby"): a registry
# keeps a standby process holding its very listening socket and its port
# file's lock, and a copy of its table.  SIGKILL the registry and the
# port never stops accepting (probed in a tight loop all through), every
# name is back, and watchers of applications that registered again
# within the grace see no event at all; an application that died with
# the registry goes after the grace.  The standby's own death makes the
# registry make another; both dead, the election is the fallback; the
# registry killed in the middle of a takeover loses nothing either; and
# another user probing the port all through a failover can neither take
# it nor reach anything but the user's registry.
source [file join [file dirname [info script]] lib.tcl]

# A prober: probe.tcl PORT MS [bind]: for MS ms (bounded, 1 ms apart)
# connect to 127.0.0.1:PORT, counting connections made and refused, and
# with "bind" also try to listen on it, counting successes; prints
# "started", then at the end "probe ok N refused N bound N data N first
# T0 last T1" (data: connections on which something answered us).
set probe_script {
    lassign $argv port ms mode
    puts started
    flush stdout
    set t0 [clock milliseconds]
    set end [expr {$t0 + $ms}]
    set ok 0
    set refused 0
    set bound 0
    set data 0
    for {set i 0} {$i < 200000 && [clock milliseconds] < $end} {incr i} {
        if {$mode eq "bind"} {
            if {![catch {socket -server {apply {{c a p} {close $c}}} \
                        -myaddr 127.0.0.1 $port} srv]} {
                incr bound
                close $srv
            }
        }
        if {[catch {socket 127.0.0.1 $port} s]} {
            incr refused
        } else {
            incr ok
            if {$mode eq "bind"} {
                # Whatever listens there must say nothing to us.
                fconfigure $s -blocking 0 -translation binary
                after 2
                if {![catch {read $s} d] && $d ne ""} { incr data }
            }
            close $s
        }
        after 1
    }
    puts "probe ok $ok refused $refused bound $bound data $data first $t0 last [clock milliseconds]"
    flush stdout
}

proc probe_start {port ms {mode ""} {prefix {}}} {
    set f [newfile probe].tcl
    write_file $f $::probe_script 0644
    set ch [spawn {*}$prefix [info nameofexecutable] $f $port $ms $mode]
    readline $ch [slow 5000]
    return $ch
}

# Its final line, as a dict (ok refused bound data first last).
proc probe_result {ch ms} {
    set line [readline $ch $ms]
    if {![string match "probe *" $line]} { return {} }
    return [lrange $line 1 end]
}

# Watch lines since MARK that are events (add or remove).
proc events_since {w mark} {
    return [lsearch -all -inline -regexp [app_lines $w $mark] {^(add|remove) }]
}

proc start_set {home kinds} {
    set apps {}
    set i 0
    foreach kind $kinds {
        lappend apps [app_start $kind $home sb$i]
        incr i
    }
    return $apps
}

main {
    set c [have_app capp]
    set tcl [have_app tclapp]

    test sigkill_of_the_registry_the_port_never_refuses_and_nobody_leaves {
        if {!$c || !$tcl} return
        set home [new_home]
        lassign [start_registry $home] rpid port
        set sb [standby_of $home]
        check "the registry has a standby" {$sb ne "" && $sb != $rpid}
        set cw [app_start c $home -watch *]
        set tw [app_start tcl $home -grace 0 -watch *]
        set apps [start_set $home {c c c c c tcl tcl tcl tcl tcl}]
        check "ten apps registered" {[wait_until {[all_registered $apps]} [slow 20000] 50]}
        set names [lsort [lmap a $apps {app_names $a}]]
        check "both watchers see them" {[wait_until {
            [::t::watch_view $cw] eq $names && [::t::watch_view $tw] eq $names} [slow 5000]]}
        set before [lsort [reg_pairs $port]]
        # The standby has had the table streamed to it by now (the apps
        # registered through the registry long since); give it a moment.
        pause 100
        set cm [app_mark $cw]
        set tm [app_mark $tw]
        set marks {}
        foreach a $apps { dict set marks $a [app_mark $a] }

        set pr [probe_start $port [slow 1500]]
        pause 200
        set tkill [clock milliseconds]
        exec kill -KILL $rpid
        set res [probe_result $pr [slow 10000]]
        check "the probe ran through the kill" {[dict size $res] > 0
            && [dict get $res first] < $tkill && [dict get $res last] > $tkill + 500}
        check "the probe connected all through ([dict get $res ok] times)" \
            {[dict get $res ok] > 100}
        check_equal "not one probe was refused: the port was never free" 0 \
            [dict get $res refused]
        set newpid [registry_pid $home]
        check_equal "the standby answers as the registry" $sb $newpid
        check_equal "on the same port" $port [file_port $home]
        check "every name is back with its serial and port" {[wait_until {
            [lsort [::t::reg_pairs $port]] eq $before} [slow 5000] 20]}
        check "every app took its entry back: none held" {[wait_until {
            [stats_held $port] eq "0"} [slow 5000] 20]}
        check "every app printed lost and regained" {[wait_until {
            [llength [lmap a $apps {expr {[::t::app_count $a "regained *" [dict get $marks $a]] ? [continue] : $a}}]] == 0
        } [slow 5000]]}
        # Past the grace: nothing may come late either.
        pause [expr {2000 + 500}]
        check_equal "the C watcher saw no add and no remove" {} [events_since $cw $cm]
        check_equal "the Tcl watcher (-grace 0) saw no add and no remove" {} [events_since $tw $tm]
        check "the C watcher resynchronised (a fresh snapshot)" {
            [::t::app_count $cw "snapshot *" $cm] > 0}
        say "  (C watcher since the kill: [app_lines $cw $cm]; Tcl watcher: [app_lines $tw $tm])"
        check_equal "no app was renamed" {} [lmap a $apps {
            expr {[::t::app_count $a "renamed *" [dict get $marks $a]] ? $a : [continue]}}]
        set sb2 [standby_of $home]
        check "a new standby was made ($sb2)" {$sb2 ne "" && $sb2 != $sb}
        check_equal "one registry" [list $newpid] [commregds_of $home]

        # Again, from the new registry: the chain goes on.
        set cm [app_mark $cw]
        set pr [probe_start $port [slow 1000]]
        pause 100
        exec kill -KILL $newpid
        set res [probe_result $pr [slow 10000]]
        check_equal "second kill: not one probe refused" 0 [dict get $res refused]
        check_equal "second kill: the new standby answers" $sb2 [registry_pid $home]
        check "second kill: every name back" {[wait_until {
            [lsort [::t::reg_pairs $port]] eq $before} [slow 5000] 20]}
        pause 2500
        check_equal "second kill: no event for the C watcher" {} [events_since $cw $cm]
    }

    test an_app_that_dies_with_the_registry_goes_after_the_grace {
        if {!$c} return
        set home [new_home]
        lassign [start_registry $home] rpid port
        standby_of $home
        set w [app_start c $home -watch *]
        set keep [app_start c $home keep]
        set die [app_start c $home die]
        check "registered" {[wait_until {[all_registered [list $keep $die]]} [slow 10000]]}
        check "watched" {[wait_until {[::t::watch_view $w] eq {die keep}} [slow 5000]]}
        pause 100
        set m [app_mark $w]
        # Stopped first, so that its connection is still the registry's
        # when the registry dies (the standby holds its entry); it never
        # registers again.
        exec kill -STOP [app_pid $die]
        pause 50
        exec kill -KILL $rpid
        pause 300
        exec kill -KILL [app_pid $die]
        check "its entry is held meanwhile, then removed" {[wait_until {
            [::t::reg_names $port] eq "keep"} [slow 8000] 20]}
        # The watcher is told after the table changed: wait for it (a
        # loaded machine once read its lines before they came).
        wait_until {[llength [::events_since $w $m]] > 0} [slow 5000] 20
        pause 100
        check_equal "the watcher saw exactly its remove" {{remove die}} [events_since $w $m]
        check_equal "none held" 0 [stats_held $port]
        check_match "the registry's log says it was not registered again" \
            "*\"die\" was not registered again within the grace*" \
            [daemon_log $rpid]
    }

    test sigkill_of_the_standby_the_registry_makes_another {
        if {!$c} return
        set home [new_home]
        lassign [start_registry $home] rpid port
        set sb [standby_of $home]
        set a [app_start c $home st]
        check "registered" {[wait_until {[::t::app_registered $a]} [slow 10000]]}
        exec kill -KILL $sb
        wait_until {![::t::alive $sb]} 2000 5
        set sb2 [standby_of $home]
        check "a new standby ($sb2, was $sb)" {$sb2 ne "" && $sb2 != $sb}
        check_equal "the registry is the same" $rpid [registry_pid $home]
        check_match "its log says so" "*standby (pid $sb) is gone*" [daemon_log $rpid]
        pause 100
        set pr [probe_start $port [slow 1000]]
        pause 100
        exec kill -KILL $rpid
        set res [probe_result $pr [slow 10000]]
        check_equal "the new standby takes over: not one probe refused" 0 \
            [dict get $res refused]
        check_equal "it answers" $sb2 [registry_pid $home]
        check "the name is back" {[wait_until {[::t::reg_names $port] eq "st"} [slow 5000]]}
    }

    # An entry larger than a fixed frame limit of the standby's once made
    # the standby think the registry broken: it took over beside the live
    # registry.  The limit follows --max-message now.
    test a_large_entry_does_not_make_the_standby_take_over {
        set home [new_home]
        lassign [start_registry $home --max-message 4194304] rpid port
        set sb [standby_of $home]
        check "a standby" {$sb ne ""}
        set s [raw_open $port]
        set big [string repeat x 1500000]
        check_equal "a Bind of 1.5 MB of data" {0 {}} [raw_call $s [list Bind big $big] [slow 10000]]
        pause 500
        check "the standby did not take over" {![string match "*taking over*" [daemon_log $rpid]]}
        check_equal "the standby is still the standby" [list $sb] [standbys_of $home]
        check_equal "the registry answers" $rpid [registry_pid $home]
        raw_close $s
    }

    # A standby that stops reading (SIGSTOP: wedged, swapped out, a
    # debugger) while the table changes: the registry queues what it has
    # not read, up to 64 MiB, then says so, kills it and makes another;
    # it serves everyone all along.  The entries here carry 60 KB of data
    # each, so that the cap is passed in about 1,100 changes.  The old
    # standby, let run again, does not come back: it was killed (a
    # standby that ran on would read the closed channel as the
    # registry's death and take over beside it, on the same socket).
    test a_standby_that_stops_reading_is_replaced_and_never_takes_over {
        if {!$c} return
        set home [new_home]
        lassign [start_registry $home] rpid port
        set sb [standby_of $home]
        check "a standby" {$sb ne ""}
        set apps [start_set $home {c c c}]
        check "three apps registered" {[wait_until {[all_registered $apps]} [slow 10000]]}
        pause 100
        exec kill -STOP $sb
        defer [list catch [list exec kill -CONT $sb]]
        set s [raw_open $port]
        set big [string repeat x 60000]
        set mark [log_mark $rpid]
        set rounds 0
        set bad {}
        # 20 Binds, then Release: 20 adds and 20 dels a round, 1.2 MB;
        # at most 200 rounds (240 MB), or until the registry gives up on
        # the standby.
        for {set r 0} {$r < 200} {incr r} {
            set sers {}
            for {set i 0} {$i < 20} {incr i} {
                lappend sers [raw_send $s [list [list Bind churn$i $big]]]
            }
            lappend sers [raw_send $s [list Release]]
            foreach ser $sers {
                if {[catch {raw_reply $s $ser [slow 10000]} rep]} {
                    lappend bad "round $r: $rep"
                    break
                }
                if {[dict get $rep code] ne "0"} {
                    lappend bad "round $r: [dict get $rep result]"
                }
            }
            incr rounds
            if {[llength $bad] || [string match "*standby (pid $sb) is stuck*" \
                    [log_since $rpid $mark]]} break
        }
        say "  ($rounds rounds of 20 Binds of 60 KB and a Release)"
        check_equal "every Bind and Release was answered 0" {} $bad
        check_match "the registry says why it dropped the standby" \
            "*standby (pid $sb) is stuck: it reads nothing, and * bytes of changes wait for it (more than the 64 MiB a standby may be behind, beyond the * bytes of the table it was given); making a new one*" \
            [log_since $rpid $mark]
        check "the stopped standby was killed" {[wait_until {![::t::alive $sb]} [slow 5000] 20]}
        set sb2 [standby_of $home]
        check "a new standby was made ($sb2, was $sb)" {$sb2 ne "" && $sb2 != $sb}
        check_equal "the registry is the same" $rpid [registry_pid $home]
        check_equal "the churner is still served" {0 {}} [raw_call $s [list Bind after 1] [slow 5000]]
        raw_close $s
        set late [app_start c $home late]
        check "an app registers meanwhile" {[wait_until {[::t::app_registered $late]} [slow 10000]]}
        lappend apps $late
        check "the apps' names are all there, and only they" {[wait_until {
            [llength [::t::reg_pairs $port]] == 4} [slow 5000] 20]}
        set before [lsort [reg_pairs $port]]

        # Let the old one run again: there is nothing left of it to run,
        # and the registry and its new standby are the only ones.
        catch {exec kill -CONT $sb}
        pause 300
        check "the old standby is gone" {![alive $sb]}
        check_equal "one registry, the same" [list $rpid] [commregds_of $home]
        check_equal "one standby, the new one" [list $sb2] [standbys_of $home]
        check_equal "nothing took over" 0 [regexp -all {took over} [daemon_log $rpid]]

        # The new standby has the table: a SIGKILL of the registry loses
        # no name.
        pause 200
        exec kill -KILL $rpid
        check "the new standby answers as the registry" {[wait_until {
            [::t::registry_pid $home] eq $sb2} [slow 5000] 20]}
        check "every name is back" {[wait_until {
            [lsort [::t::reg_pairs $port]] eq $before
            && [::stats_held $port] eq "0"} [slow 5000] 20]}
        check_equal "the apps still run" {} [lmap a $apps {
            expr {[alive [app_pid $a]] ? [continue] : [app_pid $a]}}]
    }

    # A new standby is given the whole table at once: a table larger
    # than the cap on what may wait for a standby (64 MiB, entries of up
    # to --max-message) once made every new standby look stuck at birth,
    # killed and made again for ever, and a takeover left the new
    # registry without one.
    test a_table_larger_than_the_cap_is_given_to_a_new_standby {
        set home [new_home]
        lassign [start_registry $home --max-message 4194304] rpid port
        set sb [standby_of $home]
        check "a standby" {$sb ne ""}
        set s [raw_open $port]
        set big [string repeat y 3900000]
        set bad {}
        set names {}
        # 18 entries of 3.9 MB: 70 MB, more than 64 MiB.
        for {set i 0} {$i < 18} {incr i} {
            lappend names big$i
            set r [raw_call $s [list Bind big$i $big] [slow 20000]]
            if {$r ne {0 {}}} { lappend bad "big$i: $r" }
        }
        check_equal "18 Binds of 3.9 MB" {} $bad
        pause 300
        set mark [log_mark $rpid]
        exec kill -KILL $sb
        wait_until {![::t::alive $sb]} 2000 5
        set sb2 [standby_of $home]
        check "a new standby ($sb2, was $sb)" {$sb2 ne "" && $sb2 != $sb}
        check "the log says it was given the 18 entries" {[wait_until {
            [string match "*standby (pid $sb2) made, * 18 entries*" [::t::log_since $rpid $mark]]} [slow 5000] 20]}
        # Time for it to read the table, or to be given up on.
        pause [slow 2000]
        check "it was not taken for stuck" {![string match "*is stuck*" [log_since $rpid $mark]]}
        check_equal "it is still the standby" [list $sb2] [standbys_of $home]
        # And it takes over with them.
        exec kill -KILL $rpid
        check "the new standby answers as the registry" {[wait_until {
            [::t::registry_pid $home] eq $sb2} [slow 5000] 20]}
        check_match "holding the 18 entries" \
            "*(pid $sb2): took over from the registry that died, holding its 18 entries*" \
            [daemon_log $rpid]
        raw_close $s
    }

    test sigkill_of_both_the_election_is_the_fallback {
        if {!$c || !$tcl} return
        set home [new_home]
        lassign [start_registry $home] rpid port
        set sb [standby_of $home]
        set apps [start_set $home {c c tcl tcl}]
        check "registered" {[wait_until {[all_registered $apps]} [slow 10000]]}
        set before [lsort [reg_pairs $port]]
        exec kill -KILL $sb $rpid
        check "every name is back, by the election" {[wait_until {
            [::t::file_port $home] eq $port
            && [lsort [::t::reg_pairs $port]] eq $before} [slow 15000] 50]}
        set newpid [registry_pid $home]
        check "a new registry ($newpid)" {$newpid ne "" && $newpid ni [list $rpid $sb]}
        check_equal "one registry" [list $newpid] [one_commregd $home]
        set sb2 [standby_of $home]
        check "with a standby of its own" {$sb2 ne ""}
    }

    test sigkill_of_the_registry_during_a_takeover {
        if {!$c || !$tcl} return
        set home [new_home]
        lassign [start_registry $home] rpid port
        standby_of $home
        set w [app_start c $home -watch *]
        set apps [start_set $home {c c c tcl tcl}]
        check "registered" {[wait_until {[all_registered $apps]} [slow 10000]]}
        set before [lsort [reg_pairs $port]]
        check "watched" {[wait_until {[::t::watch_view $w] eq [lsort [lmap a $apps {app_names $a}]]} [slow 5000]]}
        # Kill the registry, then the standby as it takes over (at once,
        # and a little later), three times.
        foreach delay {0 5 30} {
            set r [registry_pid $home]
            set s [standby_of $home]
            if {$r eq "" || $s eq ""} {
                check "a registry and a standby before the kill (delay $delay)" 0
                break
            }
            exec kill -KILL $r
            if {$delay} { pause $delay }
            catch {exec kill -KILL $s}
            check "delay $delay: every name is back" {[wait_until {
                [lsort [::t::reg_pairs [::t::file_port $home]]] eq $before
                && [::stats_held [::t::file_port $home]] eq "0"} [slow 15000] 50]}
            check_equal "delay $delay: the same port" $port [file_port $home]
            check_equal "delay $delay: one registry" 1 [llength [one_commregd $home]]
        }
        check "the watcher's view is the table" {[wait_until {
            [::t::watch_view $w] eq [lsort [lmap a $apps {app_names $a}]]} [slow 5000]]}
        check_equal "every app still runs" {} [lmap a $apps {
            expr {[alive [app_pid $a]] ? [continue] : [app_pid $a]}}]
    }

    test standby_fds_that_are_not_a_registrys_are_refused {
        set home [new_home]
        set r [run -home $home [commregd_path] --home $home --standby-fds=1,2]
        check_equal "two descriptors: exit 2" 2 [dict get $r code]
        check_match "the option and the value named" \
            "*--standby-fds: \"1,2\" is not three open descriptors*" [dict get $r err]
        set r [run -home $home [commregd_path] --home $home --standby-fds=7,8,9]
        check_equal "closed descriptors: exit 2" 2 [dict get $r code]
        set r [run -home $home [commregd_path] --home $home --detach --standby-fds=0,1,2]
        check_equal "with --detach: exit 2" 2 [dict get $r code]
        check_equal "no registry was made" "" [file_port $home]
    }

    # The standby is started with its registry's own options.  Spelt
    # -dv (detach and verbose) they once gave it --detach beside
    # --standby-fds, which it refused (exit 2), again at every respawn:
    # the registry had no standby.
    test a_registry_started_with_short_options_has_a_standby {
        set home [new_home]
        set r [run -home $home [commregd_path] --home $home -dv]
        check_equal "commregd -dv: exit 0 once the registry serves" 0 [dict get $r code]
        set rpid [registry_pid $home]
        check "a registry answers" {$rpid ne ""}
        if {$rpid ne ""} {
            ::t::remember $rpid
            defer [list ::t::kill_proc $rpid]
        }
        set sb [standby_of $home]
        check "it has a standby" {$sb ne ""}
        if {$sb ne ""} { defer [list ::t::kill_proc $sb] }
        pause [slow 1500]
        check_equal "the same standby a moment later (not made again and again)" \
            $sb [standby_of $home]
    }

    test another_user_probing_through_a_failover_reaches_only_the_registry {
        if {!$c} return
        if {[exec id -u] != 0} { skip "needs root to make a throwaway user" }
        foreach tool {useradd userdel setpriv} {
            if {[auto_execok $tool] eq ""} { skip "$tool not installed" }
        }
        set user commreg-sbp-[pid]
        set r [run useradd -M -s /usr/sbin/nologin $user]
        if {[dict get $r code] != 0} { error "useradd $user: [dict get $r err]" }
        on_cleanup [list catch [list exec userdel $user 2>@1]]
        set ouid [exec id -u $user]
        set ogid [exec id -g $user]
        set home [new_home]
        lassign [start_registry $home] rpid port
        standby_of $home
        set a [app_start c $home fo]
        check "registered" {[wait_until {[::t::app_registered $a]} [slow 10000]]}
        set pr [probe_start $port [slow 1500] bind \
                    [list env HOME=/ setpriv --reuid=$ouid --regid=$ogid --clear-groups]]
        pause 200
        set tkill [clock milliseconds]
        exec kill -KILL $rpid
        set res [probe_result $pr [slow 10000]]
        check "the probe ran through the kill" {[dict size $res] > 0
            && [dict get $res first] < $tkill && [dict get $res last] > $tkill + 500}
        check_equal "the other user never bound the port" 0 [dict get $res bound]
        check_equal "... its connections were never refused (the port was never free)" \
            0 [dict get $res refused]
        check_equal "... and nothing answered it" 0 [dict get $res data]
        check "... its connections were all the registry's to refuse" \
            {[dict get $res ok] > 0}
        set newpid [registry_pid $home]
        check_match "the registries refused uid $ouid" \
            "*uid $ouid is not the owner of this registry*" \
            "[daemon_log $rpid]"
        check "the app's name is back" {[wait_until {[::t::reg_names $port] eq "fo"} [slow 5000]]}
    }
}
