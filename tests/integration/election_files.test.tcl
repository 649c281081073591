# Finding or becoming the user registry (local/election.h,
# docs/election.md) and the trust checks on ~/.tcl/comm
# (docs/security.md): what commregd does with the port file in every
# state it can be found in.
source [file join [file dirname [info script]] lib.tcl]

# Is the port file locked by someone (flock(2), as the registry holds it)?
# 1 locked, 0 free, or the flock(1) result when it could not tell.
proc locked {path} {
    set r [run -timeout 5 flock -n -E 99 $path true]
    switch -- [dict get $r code] {
        99 { return 1 }
        0  { return 0 }
    }
    return "flock: [dict get $r code] [dict get $r err]"
}

proc inode {path} {
    file lstat $path st
    return $st(ino)
}

# Run commregd to its end (for the cases where it must exit by itself).
proc commregd_run {home args} {
    return [run -timeout 10 -home $home [commregd_path] --home $home {*}$args]
}

proc both {r} {
    return "[dict get $r out][dict get $r err]"
}

main {
    set uid [exec id -u]

    test clean_start_writes_port_file_0600_in_0700_dirs {
        set home [new_home]
        lassign [start_registry $home] pid port
        set pf [portfile $home]
        check_equal "content is PORT LF" "$port\n" [read_file $pf]
        check "port in range" {$port > 0 && $port < 65536}
        check_equal "port file mode" 0600 [perm $pf]
        check_equal "~/.tcl/comm mode" 0700 [perm [file join $home .tcl comm]]
        check_equal "registry dir mode" 0700 [perm [regdir $home]]
        file stat $pf st
        check_equal "port file owned by us" $uid $st(uid)
        check_equal "port file is a regular file" file [file type $pf]
        check_equal "registry holds the lock" 1 [locked $pf]
        check_equal "nothing else left in the registry dir" [list [shorthost]] \
            [lsort [lmap f [glob -nocomplain -tails -directory [regdir $home] * .*] {
                if {$f in {. ..}} continue; set f}]]
        set h [hello $port]
        check "Hello answers with this pid" {[dict exists $h pid] && [dict get $h pid] == $pid}
    }

    test second_commregd_sees_the_live_registry_and_exits_0 {
        set home [new_home]
        lassign [start_registry $home] pid port
        set pf [portfile $home]
        set ino [inode $pf]
        set mtime [file mtime $pf]
        pause 1100 ;# so that a rewrite would show in the mtime
        set r [commregd_run $home]
        check_equal "exit 0" 0 [dict get $r code]
        check_regexp "says a registry is running" {(?i)running|already} [both $r]
        check_equal "file content unchanged" "$port\n" [read_file $pf]
        check_equal "same inode" $ino [inode $pf]
        check_equal "not rewritten" $mtime [file mtime $pf]
        check "first registry still alive" {[alive $pid]}
        check_equal "and still the one answering" $pid \
            [expr {[dict exists [hello $port] pid] ? [dict get [hello $port] pid] : ""}]
        set r [commregd_run $home --detach]
        check_equal "--detach: exit 0 as well" 0 [dict get $r code]
        pause 200
        check_equal "--detach: still one commregd for this home" [list $pid] \
            [commregds_of $home]
    }

    test dead_registry_leaves_port_file_and_successor_reuses_the_port {
        set home [new_home]
        # With no standby: this is what clients see when none lives
        # (docs/election.md; the standby's own: standby.test.tcl).
        lassign [start_registry $home --no-standby] pid1 port
        set pf [portfile $home]
        kill_proc $pid1 KILL
        check_equal "after SIGKILL: file still names the port" "$port\n" [read_file $pf]
        check_equal "and is no longer locked" 0 [locked $pf]
        set pid2 [start_daemon $home]
        check_equal "successor on the same port" $port [wait_ready $home $pid2]
        check_equal "successor holds the lock" 1 [locked $pf]
        set h [hello $port]
        check "successor answers" {[dict exists $h pid] && [dict get $h pid] == $pid2}

        kill_proc $pid2 TERM
        check "SIGTERM ends it" {![alive $pid2]}
        check_equal "clean stop leaves the file" "$port\n" [read_file $pf]
        check_equal "unlocked" 0 [locked $pf]
        set pid3 [start_daemon $home]
        check_equal "third on the same port" $port [wait_ready $home $pid3]
    }

    test stale_file_with_a_free_port_is_reused {
        set home [new_home]
        make_regdir $home
        set q [free_port]
        write_file [portfile $home] "$q\n"
        set pid [start_daemon $home]
        check_equal "registry comes up on the remembered port" $q [wait_ready $home $pid]
        check_equal "file" "$q\n" [read_file [portfile $home]]
        check_equal "locked" 1 [locked [portfile $home]]
    }

    test stale_file_pointing_at_another_server_gets_a_new_port {
        set home [new_home]
        make_regdir $home
        set foreign [socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.1 0]
        defer [list close $foreign]
        set q [lindex [fconfigure $foreign -sockname] 2]
        write_file [portfile $home] "$q\n"
        set pid [start_daemon $home]
        set r [wait_ready $home $pid -not $q]
        check "registry on another port ($r, foreign $q)" {$r ne $q && $r > 0}
        check_equal "file rewritten" "$r\n" [read_file [portfile $home]]
        set h [hello $r]
        check "registry answers there" {[dict exists $h pid] && [dict get $h pid] == $pid}
        check "the foreign server still listens" {[port_open $q]}
    }

    # A port file may name a port its user cannot listen on (below 1024):
    # that must not block the election for good (before, commregd gave up
    # with "Permission denied" every time).  Run as a throwaway user.
    test a_port_the_user_may_not_have_gets_a_new_port {
        if {$uid != 0} {
            say "  (skipped: needs root to run commregd as another user)"
            return
        }
        set user commreg-elect-[pid]
        if {[dict get [run useradd -M -s /usr/sbin/nologin $user] code] != 0} {
            error "useradd $user failed"
        }
        defer [list catch [list exec userdel $user 2>@1]]
        set ouid [exec id -u $user]
        set ogid [exec id -g $user]
        set home [new_home]
        make_regdir $home
        write_file [portfile $home] "80\n"
        exec chown -R $ouid:$ogid $home
        set r [run -timeout 15 env HOME=$home setpriv --reuid=$ouid \
                   --regid=$ogid --clear-groups [commregd_path] --detach \
                   --home $home]
        set q [file_port $home]
        set log [read_file [file join $home .tcl comm log "[shorthost].log"]]
        if {[regexp {listening on 127.0.0.1:[0-9]+ \(pid ([0-9]+)\)} $log \
                -> rpid]} {
            remember $rpid
            defer [list ::t::kill_proc $rpid]
        }
        check_equal "commregd --detach succeeds" 0 [dict get $r code]
        check "a new port above 1023 ($q)" {$q ne "" && $q > 1023}
        check_match "the refusal of port 80 is said" \
            "*cannot listen on the remembered port 80*taking a new one*" \
            [both $r]
        check_match "the registry there is the user's" \
            "*registry for $user on * listening on 127.0.0.1:$q *" $log
        check "it listens" {$q ne "" && [port_open $q]}
    }

    test file_left_empty_by_a_dead_contender_is_taken_over_promptly {
        foreach {label content} {empty "" "no LF" "4242"} {
            set home [new_home]
            make_regdir $home
            write_file [portfile $home] $content
            set t0 [clock milliseconds]
            set pid [start_daemon $home]
            set port ""
            catch {set port [wait_ready $home $pid -timeout 5000]} err
            set took [expr {[clock milliseconds] - $t0}]
            check "$label: registry up ($err)" {$port ne ""}
            check "$label: within 2 s (took $took ms)" {$took < 2000}
            check "$label: locked" {[locked [portfile $home]] == 1}
            kill_proc $pid
        }
    }

    test live_contender_is_waited_for {
        set home [new_home]
        make_regdir $home
        set pf [portfile $home]
        write_file $pf ""
        # A contender that holds the lock on the empty file: one process
        # (sh, then sleep in its place, keeping fd 9).
        set holder [spawn sh -c {exec 9<"$0"; flock -n 9 || exit 3; echo LOCKED; exec sleep 30} $pf]
        check_equal "holder ready" LOCKED [readline $holder]
        check "contender holds the lock" {[wait_until {[locked $pf] == 1} 2000]}
        set pid [start_daemon $home]
        pause 700
        check "commregd waits (still running)" {[alive $pid]}
        check_equal "file still empty while the contender lives" "" [read_file $pf]
        stop $holder KILL
        set port ""
        catch {set port [wait_ready $home $pid -timeout 4000]} err
        check "takes over once the contender died ($err)" {$port ne ""}
    }

    test loose_or_foreign_tree_is_refused_naming_the_path {
        set home [new_home]
        make_regdir $home
        set comm [file join $home .tcl comm]
        file attributes $comm -permissions 0755
        set r [commregd_run $home]
        check_equal "~/.tcl/comm 0755: exit 1" 1 [dict get $r code]
        check_match "message names the path" "*$comm*" [both $r]
        check "no port file written" {![file exists [portfile $home]]}

        set home [new_home]
        make_regdir $home
        file attributes [regdir $home] -permissions 0770
        set r [commregd_run $home]
        check_equal "registry dir 0770: exit 1" 1 [dict get $r code]
        check_match "message names the path" "*[regdir $home]*" [both $r]

        set home [new_home]
        make_regdir $home
        write_file [portfile $home] "" 0644
        file attributes [portfile $home] -permissions 0644
        set r [commregd_run $home]
        check_equal "port file 0644: exit 1" 1 [dict get $r code]
        check_match "message names the path" "*[portfile $home]*" [both $r]

        if {$uid == 0} {
            set home [new_home]
            make_regdir $home
            set comm [file join $home .tcl comm]
            file attributes $comm -owner nobody
            set r [commregd_run $home]
            check_equal "~/.tcl/comm owned by nobody: exit 1" 1 [dict get $r code]
            check_match "message names the path" "*$comm*" [both $r]
        }
    }

    test symlinks_are_refused {
        set home [new_home]
        make_regdir $home
        set target [file join $home target]
        write_file $target "12345\n"
        file link -symbolic [portfile $home] $target
        set r [commregd_run $home]
        check "port file symlink: refused (exit [dict get $r code])" {
            [dict get $r code] != 0 && [dict get $r code] != 124
        }
        set out [both $r]
        check "message names the path or the link: [show $out]" {
            [string first [portfile $home] $out] >= 0
            || [regexp -nocase {symbolic|symlink|link} $out]
        }
        check_equal "target untouched" "12345\n" [read_file $target]
        check_equal "link left alone" link [file type [portfile $home]]

        set home [new_home]
        file mkdir [file join $home .tcl comm]
        file attributes [file join $home .tcl] -permissions 0700
        file attributes [file join $home .tcl comm] -permissions 0700
        set elsewhere [file join $home elsewhere]
        file mkdir $elsewhere
        file attributes $elsewhere -permissions 0700
        file link -symbolic [regdir $home] $elsewhere
        set r [commregd_run $home]
        check "registry dir symlink: refused (exit [dict get $r code])" {
            [dict get $r code] != 0 && [dict get $r code] != 124
        }
        check_equal "nothing written through the link" {} \
            [glob -nocomplain -tails -directory $elsewhere *]
    }

    test simultaneous_starters_elect_exactly_one {
        set home [new_home]
        set runs {}
        for {set i 0} {$i < 6} {incr i} {
            lappend runs [run_bg -timeout 30 -home $home [commregd_path] --home $home]
        }
        set port ""
        catch {
            wait_until {[::t::file_port $home] ne "" && [::t::port_open [::t::file_port $home]]} 5000
            set port [file_port $home]
        }
        check "a registry came up" {$port ne ""}
        # The losers see the winner and exit 0; the winner keeps running.
        check "all but one exit" {[wait_until {
            [llength [lmap h $runs {expr {[file exists [dict get $h base].rc] ? 1 : [continue]}}]] >= 5
        } 8000 50]}
        set codes {}
        foreach h $runs {
            if {[file exists [dict get $h base].rc]} {
                lappend codes [string trim [read_file [dict get $h base].rc]]
            }
        }
        check_equal "the five others exit 0" {0 0 0 0 0} $codes
        set live [commregds_of $home]
        check_equal "exactly one commregd left" 1 [llength $live]
        set h [hello $port]
        check "it is the one answering" {[dict exists $h pid] && [dict get $h pid] in $live}
        check_equal "file names its port" "$port\n" [read_file [portfile $home]]
        foreach p $live { kill_proc $p }
    }
}
