# Private registries (docs/private.md): `commreg run [--semi] -- CMD`,
# TCL_COMM_REGPORT in the C clients (commreg, capp on the async library),
# independent and semi-private groups, what the user registry never sees,
# orphaning when the private registry dies, nesting, and run's exit
# status.  Every registry here is the real commregd on 127.0.0.1.
source [file join [file dirname [info script]] lib.tcl]

proc lines_of {text} {
    return [split [string trimright $text \n] \n]
}

# Names (first column) of `commreg list` output, in order.
proc list_names {out} {
    set names {}
    foreach l [lrange [lines_of $out] 1 end] {
        # A name may hold a space ("foo #2"): everything before the port.
        if {[regexp {^(.*?\S)\s+[0-9]+\s} $l -> n]} { lappend names $n }
    }
    return $names
}

# `commreg ARG...` for HOME with TCL_COMM_REGPORT=PORT ("" to unset it).
proc creg {home port args} {
    if {$port eq ""} {
        return [run -home $home env -u TCL_COMM_REGPORT [commreg_path] {*}$args]
    }
    return [run -home $home env TCL_COMM_REGPORT=$port [commreg_path] {*}$args]
}

# Start `commreg register NAME PORT` inside a group (TCL_COMM_REGPORT=RP,
# "" for none); returns the channel, after it printed the assigned name.
proc hold {home rp name port} {
    set env [expr {$rp eq "" ? [list env -u TCL_COMM_REGPORT] : [list env TCL_COMM_REGPORT=$rp]}]
    set ch [spawn -home $home {*}$env [commreg_path] register $name $port]
    set got [readline $ch]
    if {$got ne $name} {
        error "register $name: got [show $got]; stderr [show [spawn_err $ch]]"
    }
    return $ch
}

# Start `commreg run ?--semi? -- sh -c 'echo $TCL_COMM_REGPORT; exec sleep 60'`
# and return {channel port}: the group stays up until `stop channel`.
proc group_start {home args} {
    set ch [spawn -home $home [commreg_path] run {*}$args -- \
                sh -c {echo "$TCL_COMM_REGPORT"; exec sleep 60}]
    set port [readline $ch]
    if {![string is integer -strict $port]} {
        error "commreg run $args: no port: [show $port]; stderr [show [spawn_err $ch]]"
    }
    return [list $ch $port]
}

proc status_field {out key} {
    foreach l [lines_of $out] {
        if {[regexp "^$key\\s+(.*)\$" $l -> v]} { return $v }
    }
    return ""
}

# nns Search * on a registry, as tcllib's nameserv asks it: the names.
proc nns_names {port} {
    set s [raw_open $port]
    set ser [raw_send $s [list Search *]]
    set r [raw_reply $s $ser]
    raw_close $s
    return [dict keys [dict get $r result]]
}

proc capp_path {} { return [file join [tools_dir] capp] }

# Private registries (commregd --private or --semi) of HOME still running.
proc private_commregds {home} {
    set l {}
    foreach pid [commregds_of $home] {
        set cl [string map {\0 " "} [read_file /proc/$pid/cmdline]]
        if {[regexp -- {--private|--semi} $cl]} { lappend l $pid }
    }
    return $l
}

main {
    set home [new_home]
    lassign [start_registry $home] upid uport
    set u1 [hold $home "" userapp 4001]
    # A watcher of everything on the user registry, from the start: a
    # group's name must never reach it.
    set uwatch [spawn -home $home env -u TCL_COMM_REGPORT [commreg_path] watch]
    check_equal "user watcher sees userapp" {add userapp 4001 localhost} [readline $uwatch]

    test run_exit_status {
        set r [run -home $home [commreg_path] run -- sh -c {exit 7}]
        check_equal "exit 7 passed on" 7 [dict get $r code]
        set r [run -home $home [commreg_path] run -- sh -c {kill -TERM $$}]
        check_equal "killed by TERM: 128+15" 143 [dict get $r code]
        set r [run -home $home [commreg_path] run -- /nonexistent/cmd]
        check_equal "command not found: 127" 127 [dict get $r code]
        check_match "not found is said" "*/nonexistent/cmd*No such file*" [dict get $r err]
        set r [run -home $home [commreg_path] run --semi -- true]
        check_equal "true under --semi: 0" 0 [dict get $r code]
        set r [run -home $home [commreg_path] run]
        check_equal "no command: usage error" 2 [dict get $r code]
        check_match "no command: said" "*no command given*" [dict get $r err]
        set r [run -home $home [commreg_path] run --bogus true]
        check_equal "unknown option: usage error" 2 [dict get $r code]
        check_match "unknown option named" "*--bogus*" [dict get $r err]
        set r [run -home $home [commreg_path] --commregd /bin/false run -- true]
        check_equal "registry that cannot start: 125" 125 [dict get $r code]
        check_match "and it says so" "*private registry*did not start*" [dict get $r err]
    }

    test run_sets_the_port_and_cleans_up {
        set f [newfile port]
        set r [run -home $home [commreg_path] run -- sh -c "echo \$TCL_COMM_REGPORT > $f; [commreg_path] status"]
        check_equal "status inside: exit 0" 0 [dict get $r code]
        set p [string trim [read_file $f]]
        check "TCL_COMM_REGPORT is a port: [show $p]" {[string is integer -strict $p] && $p > 0}
        check_equal "status inside names that port" $p [status_field [dict get $r out] port]
        check_match "status inside: scope private" "*scope private)*" [status_field [dict get $r out] registry]
        check "the private registry is gone after run" {![port_open $p]}
        check_equal "no private commregd left" {} [private_commregds $home]
    }

    test independent_group_sees_only_itself {
        lassign [group_start $home] g gport
        set a [hold $home $gport grpA 4101]
        set b [hold $home $gport grpB 4102]
        set r [creg $home $gport list]
        check_equal "group list: its own" {grpA grpB} [list_names [dict get $r out]]
        set r [creg $home $gport lookup grpB]
        check_equal "lookup inside" "4102 localhost" [string trim [dict get $r out]]
        set r [creg $home $gport lookup userapp]
        check_equal "the user's app is not seen" 1 [dict get $r code]
        set r [creg $home "" list]
        check_equal "user registry: only userapp" {userapp} [list_names [dict get $r out]]
        check_equal "nns Search on the user registry" {userapp} [nns_names $uport]
        stop $a
        stop $b
        stop $g
    }

    test semi_private_sees_up_nothing_goes_up {
        set r [creg $home "" status]
        set base_conns [status_field [dict get $r out] connections]
        lassign [group_start $home --semi] g gport
        set a [hold $home $gport grpA 4201]
        set b [hold $home $gport grpB 4202]
        set c [hold $home $gport userapp 4203]
        # The group's own first, then the user registry's.
        set ok [wait_until {[llength [list_names [dict get [creg $home $gport list] out]]] == 3}]
        set r [creg $home $gport list]
        check_equal "merged list, the group's own first, hiding the user's userapp" \
            {grpA grpB userapp} [list_names [dict get $r out]]
        check_match "the group's userapp is the one listed" "*4203*" [dict get $r out]
        set r [creg $home $gport lookup userapp]
        check_equal "own userapp shadows the user's" "4203 localhost" [string trim [dict get $r out]]
        set w0 [spawn -home $home env TCL_COMM_REGPORT=$gport [commreg_path] watch userapp]
        check_equal "a group watcher sees the group's userapp" {add userapp 4203 localhost} [readline $w0]
        stop $c
        check_equal "it goes" {remove userapp 4203 localhost} [readline $w0]
        check_equal "and the user's shows again" {add userapp 4001 localhost} [readline $w0]
        stop $w0
        set r [creg $home $gport lookup userapp]
        check_equal "then the user's userapp answers" "4001 localhost" [string trim [dict get $r out]]
        check_equal "nns Search inside: each name once" {grpA grpB userapp} [lsort [nns_names $gport]]
        # What neither the group nor its copy holds is asked above: the
        # user registry answers NAME@USER of its own user.
        set me [exec id -un]
        set r [creg $home $gport lookup userapp@$me]
        check_equal "a lookup the group cannot answer goes up" "4001 localhost" [string trim [dict get $r out]]

        # A watch in the group sees the user's applications come and go.
        set w [spawn -home $home env TCL_COMM_REGPORT=$gport [commreg_path] watch user*]
        check_equal "group watch snapshot" {add userapp 4001 localhost} [readline $w]
        set u2 [hold $home "" user2 4002]
        check_equal "group watch: user2 added above" {add user2 4002 localhost} [readline $w]
        stop $u2
        check_equal "group watch: user2 removed above" {remove user2 4002 localhost} [readline $w]
        stop $w

        # Nothing of the group went up, and one connection did.
        set r [creg $home "" list]
        check_equal "user registry: only userapp" {userapp} [list_names [dict get $r out]]
        check_equal "nns Search on the user registry" {userapp} [nns_names $uport]
        set r [creg $home "" status]
        check_equal "the group holds one connection upward" \
            [expr {$base_conns + 1}] [status_field [dict get $r out] connections]
        set r [creg $home $gport status]
        check_match "status inside: semi-private" "*scope semi-private)*" [status_field [dict get $r out] registry]
        stop $a
        stop $b
        stop $g
        set ok [wait_until {[status_field [dict get [creg $home "" status] out] connections] == $base_conns}]
        check "the group's connection went with it" {$ok}
    }

    test scope_user_refused_in_a_private_registry {
        lassign [group_start $home] g gport
        set s [raw_open $gport]
        set ser [raw_send $s [list Commreg/Register x 4300 -scope user]]
        set r [raw_reply $s $ser]
        check_equal "refused" 1 [dict get $r code]
        check_match "the reason says private" "*private registry*" [dict get $r result]
        set ser [raw_send $s [list Commreg/Register x 4300 -scope private]]
        set r [raw_reply $s $ser]
        check_equal "scope private is fine" {0 x} [list [dict get $r code] [dict get $r result]]
        raw_close $s
        stop $g
    }

    test nested_semi_groups_chain_up {
        set ch [spawn -home $home [commreg_path] run --semi -- sh -c \
            "echo \"\$TCL_COMM_REGPORT\"; exec [commreg_path] run --semi -- sh -c 'echo \"\$TCL_COMM_REGPORT\"; exec sleep 60'"]
        set outer [readline $ch]
        set inner [readline $ch]
        check "two ports: [show [list $outer $inner]]" {[string is integer -strict $outer] && [string is integer -strict $inner] && $outer != $inner}
        set m [hold $home $outer middle 4401]
        set i [hold $home $inner innermost 4402]
        wait_until {[llength [list_names [dict get [creg $home $inner list] out]]] == 3}
        set r [creg $home $inner list]
        check_equal "innermost sees itself, the middle and the user" \
            {innermost middle userapp} [list_names [dict get $r out]]
        set r [creg $home $outer list]
        check_equal "middle sees itself and the user, not the inner" \
            {middle userapp} [list_names [dict get $r out]]
        set r [creg $home "" list]
        check_equal "user sees neither" {userapp} [list_names [dict get $r out]]
        stop $m
        set ok [wait_until {[list_names [dict get [creg $home $inner list] out]] eq {innermost userapp}}]
        check "the middle's removal reaches the innermost" {$ok}
        stop $i
        stop $ch
        # A stopped registry closes its listener as it exits, a moment
        # after the stop returns.
        check "both private registries gone" {[wait_until {
            ![port_open $outer] && ![port_open $inner]} [slow 5000] 20]}
    }

    test unreachable_or_bad_regport_falls_back {
        set dead [free_port]
        set r [creg $home $dead lookup userapp]
        check_equal "dead port: the user registry answers" "4001 localhost" [string trim [dict get $r out]]
        check_match "and a warning names the variable" "*TCL_COMM_REGPORT=$dead*using the user registry*" [dict get $r err]
        set r [creg $home abc lookup userapp]
        check_equal "garbage: the user registry answers" "4001 localhost" [string trim [dict get $r out]]
        check_match "and a warning says why" {*TCL_COMM_REGPORT="abc" is not a port number*} [dict get $r err]
        if {[file executable [capp_path]]} {
            set c [spawn -home $home env TCL_COMM_REGPORT=$dead [capp_path] fallbackapp]
            check_equal "C library: registered in the user registry" \
                {registered fallbackapp fallbackapp} [readline $c]
            set r [creg $home "" lookup fallbackapp]
            check_equal "the user registry has it" 0 [dict get $r code]
            stop $c
        }
    }

    test orphaned_clients_do_not_elect {
        if {![file executable [capp_path]]} { skip "no capp in [tools_dir]" }
        set before [file_port $home]
        lassign [group_start $home] g gport
        set r [creg $home $gport status]
        set rpid [status_field [dict get $r out] pid]
        check "private registry pid: [show $rpid]" {[string is integer -strict $rpid] && [alive $rpid]}
        set b [spawn -home $home env TCL_COMM_REGPORT=$gport [capp_path] orphB]
        check_equal "B registered" {registered orphB orphB} [readline $b]
        check_equal "B is bound" "private $gport" [readline $b]
        set a [spawn -home $home env TCL_COMM_REGPORT=$gport [capp_path] \
                   --lookup orphB --lookup nosuch orphA]
        check_equal "A registered" {registered orphA orphA} [readline $a]
        check_equal "A is bound" "private $gport" [readline $a]
        exec kill -USR1 [spawn_pid $a]
        set l1 [readline $a]
        set l2 [readline $a]
        check_match "A looks B up, fresh" {lookup orphB ok * localhost} $l1
        set bport [lindex $l1 3]
        check_match "unknown name: error" {lookup nosuch error *} $l2

        exec kill -KILL $rpid
        check_match "A: lost" "lost the private registry on port $gport*" [readline $a]
        check_match "A: its name dropped" "dropped orphA the private registry*" [readline $a]
        check_match "B: lost" "lost the private registry*" [readline $b]
        exec kill -USR1 [spawn_pid $a]
        set l1 [readline $a]
        set l2 [readline $a]
        check_equal "A still finds B, marked stale" "lookup orphB stale $bport localhost" $l1
        check_match "a name never seen: error, saying so" {lookup nosuch error *gone*"nosuch" was never seen*} $l2
        pause 500
        check "no registry is elected on the dead port" {![port_open $gport]}
        check_equal "no commregd started for the group" {} [private_commregds $home]
        check_equal "the user registry's port file unchanged" $before [file_port $home]
        check "both apps keep running" {[alive [spawn_pid $a]] && [alive [spawn_pid $b]]}
        stop $a
        stop $b
        stop $g
    }

    test user_registry_never_saw_a_group_name {
        # Everything the user-registry watcher printed since the start.
        set seen [readlines_for $uwatch 300]
        set bad {}
        foreach l $seen {
            if {[regexp {grp|middle|innermost|orph} $l]} { lappend bad $l }
        }
        check_equal "no group name reached a user-registry watcher" {} $bad
    }

    test semi_private_rides_out_a_user_registry_failover {
        lassign [group_start $home --semi] g gport
        set w [spawn -home $home env TCL_COMM_REGPORT=$gport [commreg_path] watch]
        check_equal "group watch: userapp" {add userapp 4001 localhost} [readline $w]
        set ghost [hold $home "" ghost 4004]
        check_equal "group watch: ghost" {add ghost 4004 localhost} [readline $w]
        set uport_before [file_port $home]
        # ghost dies with the registry and does not come back: stopped
        # first, so that the dying registry cannot see it go.
        exec kill -STOP [spawn_pid $ghost]
        exec kill -KILL $upid
        # userapp's holder elects a new user registry on the same port
        # and registers again; the group's copy is kept meanwhile.
        set ok [wait_until {[dict get [creg $home "" lookup userapp] code] == 0} 8000]
        check "the user registry is back with userapp" {$ok}
        check_equal "on the same port" $uport_before [file_port $home]
        exec kill -KILL [spawn_pid $ghost]
        set u3 [hold $home "" user3 4003]
        check_equal "the group sees a new user app after the failover" \
            {add user3 4003 localhost} [readline $w]
        set r [creg $home $gport lookup userapp]
        check_equal "lookup through the group" "4001 localhost" [string trim [dict get $r out]]
        set seen [readlines_for $w 300]
        check_equal "the group's watcher saw no flicker of userapp" {} \
            [lsearch -all -inline $seen *userapp*]
        # ghost is held for the grace (3 s), then its removal is told.
        if {[llength $seen] == 0} { set seen [list [readline $w 6000]] }
        check_equal "ghost's removal is told after the grace" \
            {remove ghost 4004 localhost} [lindex $seen 0]
        set r [creg $home $gport lookup ghost]
        check_equal "ghost is gone from the group's view" 1 [dict get $r code]
        stop $u3
        stop $w
        stop $g
    }
}
