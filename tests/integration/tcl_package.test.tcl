# The Tcl package comm::registry (tcl/, docs/tcl.md) against the real
# commregd: registering (names and serials), lookup and comm send, list
# fields, watches (snapshot, add/remove, unwatch), unregister, starting
# commregd when none runs, refusing a loose ~/.tcl/comm, installation,
# and failover: the registry SIGKILLed under applications that come back
# whole (same port, names, serials), watchers that see no spurious
# change, applications that died meanwhile not coming back, and a name
# taken meanwhile reported as renamed.
#
# Applications are tests/tools/tclapp.tcl processes; some checks use the
# package in this process too (`use_home`).
source [file join [file dirname [info script]] lib.tcl]
package require comm

set src [file dirname [file dirname [file dirname [file normalize [info script]]]]]
if {[info exists env(COMMREG_SRC)] && $env(COMMREG_SRC) ne ""} {
    set src $env(COMMREG_SRC)
}
lappend auto_path [file join $src tcl]
package require comm::registry
set tclapp [file join $src tests tools tclapp.tcl]

# ---------------------------------------------------------------------------
# Helpers

# A tclapp process for HOME with ARGS (names, -watch PATTERN, ...).
proc app {home args} {
    return [spawn -home $home [info nameofexecutable] $::tclapp \
                -home $home -commregd [commregd_path] {*}$args]
}

# The next line of CH that matches PATTERN (string match), within MS ms;
# or "<eof>" / "<timeout>".  Lines read on the way are in ::seen.
proc next_match {ch pattern {ms 10000}} {
    set ::seen {}
    set deadline [expr {[clock milliseconds] + $ms}]
    while 1 {
        set left [expr {$deadline - [clock milliseconds]}]
        if {$left <= 0} { return "<timeout $ms ms>" }
        set l [readline $ch $left]
        if {[string match <*> $l]} { return $l }
        lappend ::seen $l
        if {[string match $pattern $l]} { return $l }
    }
}

# Start a tclapp registering NAME; wait for its "registered" line, which
# is checked against EXPECTED (the assigned name).  Returns the channel.
proc start_app {home name expected} {
    set ch [app $home $name]
    check_equal "$name registered as \"$expected\"" \
        [list registered $name $expected] [readline $ch 10000]
    return $ch
}

# Use the package in this process with HOME until the scenario ends.
proc use_home {home} {
    comm::registry::disconnect
    comm::registry::configure -home $home -commregd [commregd_path] -command ""
    defer comm::registry::disconnect
}

# End, by PID, every commregd of HOME (those applications started too).
proc kill_registries {home} {
    foreach pid [commregds_of $home] {
        kill_proc $pid TERM
    }
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

# The table as "name serial pid port" lines, sorted: easy to compare.
proc table_summary {port} {
    set l {}
    dict for {name e} [table $port] {
        lappend l [list $name [dict get $e serial] [dict get $e pid] [dict get $e port]]
    }
    return [lsort $l]
}

proc events_of {lines} {
    set l {}
    foreach line $lines {
        if {[lindex $line 0] in {add remove}} { lappend l $line }
    }
    return $l
}

main {
    test register_returns_the_assigned_name_with_its_serial {
        set home [new_home]
        lassign [start_registry $home] dpid port
        use_home $home
        check_equal "first foo" foo [must {comm::registry::register foo}]
        check_equal "second foo in the same application" "foo #2" \
            [must {comm::registry::register foo}]
        check_equal "names held" {foo {foo #2}} [comm::registry::names]
        set t [table $port foo*]
        check_equal "serials" {1 2} \
            [list [dict get $t foo serial] [dict get $t {foo #2} serial]]
        check_equal "base of foo #2" foo [dict get $t {foo #2} base]
        check_equal "registered port is comm::comm self" [comm::comm self] \
            [dict get $t foo port]
        check_equal "pid is ours" [pid] [dict get $t foo pid]
        check_equal "-port" other \
            [must {comm::registry::register -port 4711 -scope user other}]
        check_equal "-port registered" 4711 [dict get [table $port other] other port]
        lassign [call {comm::registry::register -scope host wide}] code res
        check_equal "-scope host refused by the registry" 1 $code
        check_match "the reason names the scope" {*scope "host"*} $res
        lassign [call {comm::registry::register -bogus 1 x}] code res
        check_equal "bad option" {1 {bad option "-bogus": must be -port or -scope}} \
            [list $code $res]
    }

    test second_application_gets_serial_2 {
        set home [new_home]
        lassign [start_registry $home] dpid port
        set a [start_app $home foo foo]
        set b [start_app $home foo {foo #2}]
        set t [table $port]
        check_equal "foo is the first app" [spawn_pid $a] [dict get $t foo pid]
        check_equal "foo #2 is the second app" [spawn_pid $b] [dict get $t {foo #2} pid]
    }

    test lookup_gives_a_comm_id_to_send_to {
        set home [new_home]
        lassign [start_registry $home] dpid port
        use_home $home
        set a [start_app $home greeter greeter]
        set id [must {comm::registry::lookup greeter}]
        check_regexp "comm id {PORT localhost}" {^[0-9]+ localhost$} $id
        check_equal "comm::comm send to it" {0 {hello bob from greeter}} \
            [call {comm::comm send $id greet bob}]
        check_equal "absent name" {1 {no application named "nope"}} \
            [call {comm::registry::lookup nope}]
    }

    test list_gives_every_field {
        set home [new_home]
        lassign [start_registry $home] dpid port
        use_home $home
        set a [start_app $home lister lister]
        set l [must {comm::registry::list lis*}]
        check_equal "one entry" 1 [llength $l]
        set e [lindex $l 0]
        check_equal "fields in order" {name serial base port host data scope uid pid since} \
            [dict keys $e]
        check_equal "name serial base host scope pid" \
            [list lister 1 lister localhost user [spawn_pid $a]] \
            [list {*}[dict values [dict remove $e port data uid since]]]
        check_equal "data is the comm id" [list [dict get $e port] localhost] \
            [dict get $e data]
        check "since is recent" {abs([clock seconds] - [dict get $e since]) < 60}
        check_equal "pattern matching nothing" {} [must {comm::registry::list zz*}]
        check_equal "every entry" 1 [llength [must {comm::registry::list}]]
    }

    test watch_reports_the_snapshot_then_changes {
        set home [new_home]
        lassign [start_registry $home] dpid port
        use_home $home
        set web [start_app $home web web]
        set ::events {}
        set w [must {comm::registry::watch web* {apply {{type entry} {
            lappend ::events [list $type [dict get $entry name]]
        }}}}]
        check_equal "entries at once" {web} \
            [lmap e [comm::registry::entries $w] {dict get $e name}]
        check "snapshot delivered as add" {[wait_until {[llength $::events] >= 1} 3000]}
        check_equal "snapshot" {{add web}} $::events
        set web2 [start_app $home web {web #2}]
        set other [start_app $home other other]
        check "add of web #2" {[wait_until {[llength $::events] >= 2} 3000]}
        stop $web2
        check "remove of web #2" {[wait_until {[llength $::events] >= 3} 3000]}
        pause 200
        check_equal "events (other does not match)" \
            {{add web} {add {web #2}} {remove {web #2}}} $::events
        check_equal "entries now" {web} \
            [lmap e [comm::registry::entries $w] {dict get $e name}]
        must {comm::registry::unwatch $w}
        set ::events {}
        set web3 [start_app $home web {web #2}]
        pause 300
        check_equal "no event after unwatch" {} $::events
        check_equal "unwatch again" {1 {no watch "w1"}} \
            [list [catch {comm::registry::unwatch $w} m] $m]
    }

    test tclapp_watch_prints_snapshot_and_changes {
        set home [new_home]
        lassign [start_registry $home] dpid port
        set a [start_app $home alpha alpha]
        set w [app $home -watch *]
        check_equal "snapshot line" {snapshot 1} [readline $w 10000]
        check_equal "snapshot entry" {add alpha} [readline $w 3000]
        set b [start_app $home beta beta]
        check_equal "add" {add beta} [readline $w 3000]
        stop $b
        check_equal "remove" {remove beta} [readline $w 3000]
    }

    test unregister_removes_the_name {
        set home [new_home]
        lassign [start_registry $home] dpid port
        use_home $home
        must {comm::registry::register keep}
        must {comm::registry::register gone}
        must {comm::registry::register gone}
        check_equal "unregister by assigned name" {0 {}} \
            [call {comm::registry::unregister {gone #2}}]
        check_equal "unregister by the name asked for" {0 {}} \
            [call {comm::registry::unregister gone}]
        check_equal "left in the registry" {keep} [dict keys [table $port]]
        check_equal "left in the package" {keep} [comm::registry::names]
        check_equal "unregister what we do not hold" \
            {1 {"gone" is not registered by this application}} \
            [call {comm::registry::unregister gone}]
    }

    test commregd_is_started_when_no_registry_runs {
        set home [new_home]
        defer [list kill_registries $home]
        use_home $home
        check_equal "register" solo [must {comm::registry::register solo} 10000]
        set port [file_port $home]
        check "port file written" {$port ne ""}
        check_equal "one commregd runs for this home" 1 [llength [commregds_of $home]]
        check_equal "it holds the name" {solo} [dict keys [table $port]]
    }

    test stale_port_file_is_taken_over_on_the_same_port {
        set home [new_home]
        defer [list kill_registries $home]
        make_regdir $home
        set old [free_port]
        write_file [portfile $home] "$old\n" 0600
        use_home $home
        check_equal "register" app [must {comm::registry::register app} 10000]
        check_equal "the registry took the port the file named" $old [file_port $home]
        check_equal "it holds the name" {app} [dict keys [table $old]]
    }

    test loose_comm_tree_is_refused_naming_the_path {
        set home [new_home]
        make_regdir $home
        set dir [file join $home .tcl comm]
        file attributes $dir -permissions 0755
        use_home $home
        lassign [call {comm::registry::register x}] code res
        check_equal "refused" 1 $code
        check_match "names the directory and its mode" "*$dir: mode 0755 is too open*" $res
        check_match "says the fix" "*chmod 700 $dir" $res
        check_equal "no commregd was started" {} [commregds_of $home]
        set a [app $home x]
        check_match "tclapp reports it" "error *$dir: mode 0755*" [readline $a 10000]

        file attributes $dir -permissions 0700
        write_file [portfile $home] "1\n" 0644
        lassign [call {comm::registry::register x}] code res
        check_match "a loose port file is refused" \
            "*[portfile $home]: mode 0644 is too open*" $res
        file attributes [portfile $home] -permissions 0600
        if {[exec id -u] == 0 && ![catch {exec id -u nobody}]} {
            file attributes [portfile $home] -owner nobody
            lassign [call {comm::registry::register x}] code res
            check_match "a port file of another user is refused" \
                "*[portfile $home]: it is owned by nobody*" $res
        }
        file delete [portfile $home]
        set reg [regdir $home]
        file delete $reg
        file link -symbolic $reg [tempdir elsewhere]
        lassign [call {comm::registry::register x}] code res
        check_match "a symbolic link is refused" "*$reg: it is a symbolic link*" $res
        check_equal "still no commregd" {} [commregds_of $home]
    }

    test install_puts_the_package_where_tclsh_finds_it {
        set build [file dirname [find_bin]]
        if {![file exists [file join $build cmake_install.cmake]] ||
            [auto_execok cmake] eq ""} {
            say "  (no build tree with cmake_install.cmake: not checked)"
            return
        }
        set prefix [tempdir prefix 0755]
        set r [run cmake --install $build --prefix $prefix --component tcl]
        check_equal "cmake --install --component tcl" 0 [dict get $r code]
        set version [package present comm::registry]
        check "installed as share/tcltk/comm_registry$version" \
            {[file exists [file join $prefix share tcltk comm_registry$version pkgIndex.tcl]]}
        set script [newfile req].tcl
        write_file $script "lappend auto_path [list [file join $prefix share tcltk]]
            puts \[package require comm::registry\]
            puts \[package ifneeded comm::registry \[package present comm::registry\]\]" 0644
        set r [run [info nameofexecutable] $script]
        check_equal "package require from the install" $version \
            [lindex [split [dict get $r out] \n] 0]
        check_match "... the installed copy" "*$prefix*" [dict get $r out]
        # The default prefix's share/tcltk is on a plain tclsh's auto_path.
        set cache [read_file [file join $build CMakeCache.txt]]
        if {[regexp -line {^CMAKE_INSTALL_PREFIX:PATH=(.*)$} $cache -> p]} {
            set script [newfile ap].tcl
            write_file $script {puts $auto_path} 0644
            set r [run env -u TCLLIBPATH [info nameofexecutable] $script]
            check "$p/share/tcltk is on tclsh's auto_path" \
                {[file join $p share tcltk] in [dict get $r out]}
        }
    }

    test failover_keeps_every_name_and_serial {
        set home [new_home]
        defer [list kill_registries $home]
        lassign [start_registry $home] dpid port
        set apps {}
        foreach {name expected} {svc svc svc {svc #2} svc {svc #3} alpha alpha beta beta} {
            lappend apps [start_app $home $name $expected]
        }
        set w [app $home -watch *]
        check_equal "watcher snapshot" {snapshot 5} [readline $w 10000]
        check_equal "watcher snapshot entries" \
            {{add alpha} {add beta} {add svc} {add {svc #2}} {add {svc #3}}} \
            [lmap i {1 2 3 4 5} {readline $w 3000}]
        set before [table_summary $port]
        check_equal "five names" 5 [llength $before]

        set t0 [clock milliseconds]
        exec kill -KILL $dpid
        set ok [wait_until {[llength [commregds_of $home]] == 1
            && [set rp [registry_pid $home]] ne "" && $rp != $dpid
            && [llength [dict keys [table [file_port $home]]]] == 5} 10000 50]
        check "a new registry with all five names within 10 s" {$ok}
        say "  (failover of 5 applications: [expr {[clock milliseconds] - $t0}] ms)"
        check_equal "on the same port" $port [file_port $home]
        check_equal "same names, serials, pids and comm ports" $before \
            [table_summary $port]
        set i 0
        foreach a $apps {
            incr i
            check_match "app $i: regained" "regained $port" [next_match $a regained* 10000]
            check_match "app $i: lost first, nothing else" \
                {{lost *} {regained *}} $::seen
        }
        check_match "watcher: regained" "regained $port" [next_match $w regained* 10000]
        check_match "watcher: lost, then regained" {{lost *} {regained *}} $::seen
        # The watcher may have come back before the others; what it missed
        # was held for the grace period (3 s) and came back meanwhile.
        set after [readlines_for $w 3800]
        check_equal "watcher: no spurious add or remove" {} $after
        pause 200
        check_equal "still exactly one commregd" 1 [llength [commregds_of $home]]
        set b [start_app $home svc {svc #4}]
        check_equal "watcher sees a new one" {add {svc #4}} [readline $w 3000]
    }

    test failover_does_not_bring_back_applications_that_died {
        set home [new_home]
        defer [list kill_registries $home]
        lassign [start_registry $home] dpid port
        set a [start_app $home stays stays]
        set b [start_app $home dies dies]
        set w [app $home -grace 1000 -watch *]
        check_equal "watcher snapshot" {snapshot 2} [readline $w 10000]
        check_equal "snapshot entries" {{add dies} {add stays}} \
            [list [readline $w 3000] [readline $w 3000]]
        # Both at once: `dies` cannot register again.
        exec kill -KILL [spawn_pid $b] $dpid
        check "registry back with only the survivor" {[wait_until {
            [set p [file_port $home]] ne "" && [registry_pid $home] ni {"" $dpid}
            && [dict keys [table $p]] eq {stays}} 10000 50]}
        check_match "survivor regained" "regained $port" [next_match $a regained* 10000]
        set lines [readlines_for $w 2500]
        check_equal "watcher: dies removed once, nothing else" {{remove dies}} \
            [events_of $lines]
        check_match "watcher: lost and regained" {*regained*} $lines
        pause 300
        check_equal "table" {stays} [dict keys [table $port]]
    }

    test watcher_back_before_the_applications_sees_no_change {
        set home [new_home]
        defer [list kill_registries $home]
        # With no standby: this is what clients see when none lives
        # (docs/election.md; the standby's own: standby.test.tcl).
        lassign [start_registry $home --no-standby] dpid port
        set apps {}
        foreach name {one two three} {
            lappend apps [start_app $home $name $name]
        }
        set w [app $home -watch *]
        check_equal "watcher snapshot" {snapshot 3} [readline $w 10000]
        readlines_for $w 300
        # The applications sleep through the failover, so the watcher's
        # new snapshot lacks all three ...
        set pids [lmap a $apps {spawn_pid $a}]
        exec kill -STOP {*}$pids
        defer [list catch [list exec kill -CONT {*}$pids]]
        exec kill -KILL $dpid
        check_equal "watcher: lost" lost [lindex [readline $w 5000] 0]
        check_equal "watcher: regained, the first one back" "regained $port" \
            [readline $w 10000]
        check_equal "the new registry has none of them yet" {} \
            [dict keys [table $port]]
        # ... two come back within the grace period, one never does.
        exec kill -KILL [lindex $pids 2]
        exec kill -CONT {*}[lrange $pids 0 1]
        check "one and two back" {[wait_until {
            [dict keys [table $port]] eq {one two}} 5000 50]}
        set lines [readlines_for $w 4000]
        check_equal "watcher: only three removed, after the grace period" \
            {{remove three}} $lines
    }

    test gives_up_after_a_bound_and_comes_back_on_the_next_call {
        set home [new_home]
        defer [list kill_registries $home]
        # With no standby: this is what clients see when none lives
        # (docs/election.md; the standby's own: standby.test.tcl).
        lassign [start_registry $home --no-standby] dpid port
        use_home $home
        set ::life {}
        comm::registry::configure -command {apply {{args} {lappend ::life $args}}}
        must {comm::registry::register patient}
        # No registry can be started now; give up after 1.5 s instead of
        # the 30 s of the package (a white-box knob, for this test).
        set saved $::comm::registry::giveup_ms
        set ::comm::registry::giveup_ms 1500
        defer [list set ::comm::registry::giveup_ms $saved]
        comm::registry::configure -commregd /bin/false
        exec kill -KILL $dpid
        check "told lost, then gave up" {[wait_until {[llength $::life] >= 2} 6000]}
        check_match "lost" {lost *} [lindex $::life 0]
        check_match "gave up" {lost {gave up after 1 s: *}} [lindex $::life 1]
        check_equal "nothing else" 2 [llength $::life]
        lassign [call {comm::registry::lookup patient}] code res
        check_equal "a call cannot connect" 1 $code
        comm::registry::configure -commregd [commregd_path]
        set ::life {}
        check_regexp "the next call finds a registry and registers again" \
            {^[0-9]+ localhost$} [must {comm::registry::lookup patient} 10000]
        check "regained told" {[wait_until {[llength $::life] >= 1} 2000]}
        check_equal "regained on the same port" [list [list regained $port]] $::life
    }

    test renamed_when_the_name_was_taken_during_failover {
        set home [new_home]
        defer [list kill_registries $home]
        # With no standby: this is what clients see when none lives
        # (docs/election.md; the standby's own: standby.test.tcl).
        lassign [start_registry $home --no-standby] dpid port
        set old [start_app $home foo foo]
        set oldpid [spawn_pid $old]
        # The holder of foo sleeps through the registry's death...
        exec kill -STOP $oldpid
        defer [list catch [list exec kill -CONT $oldpid]]
        exec kill -KILL $dpid
        check "registry gone" {[wait_until {![alive $dpid]} 3000]}
        # ... a new application takes foo (starting a new registry) ...
        set new [start_app $home foo foo]
        check_equal "new registry on the same port" $port [file_port $home]
        # ... and the old holder wakes up.
        exec kill -CONT $oldpid
        check_equal "old holder: renamed" {renamed foo {foo #2}} \
            [next_match $old renamed* 10000]
        check_match "old holder: lost before" {{lost *} *} $::seen
        check_equal "old holder: regained" "regained $port" [readline $old 5000]
        set t [table $port]
        check_equal "table" {foo {foo #2}} [lsort [dict keys $t]]
        check_equal "foo is the new application" [spawn_pid $new] [dict get $t foo pid]
        check_equal "foo #2 is the old one, serial 2" [list $oldpid 2] \
            [list [dict get $t {foo #2} pid] [dict get $t {foo #2} serial]]
        use_home $home
        set id [must {comm::registry::lookup foo}]
        check_equal "foo answers as foo" {0 {hello x from foo}} \
            [call {comm::comm send $id greet x}]
        set id [must {comm::registry::lookup {foo #2}}]
        check_equal "the old holder knows its new name" {0 {hello x from foo #2}} \
            [call {comm::comm send $id greet x}]
        check_equal "one commregd" 1 [llength [commregds_of $home]]
    }

    test failover_first_try_to_the_same_port_does_not_look_at_the_lock {
        # The first try after a loss goes to the port the lost registry
        # had without reading /proc/locks (a hundred applications reading
        # it at once waited in turn for it); who accepts is checked as
        # ever.  Here the package is shown a /proc/locks that lists no
        # lock: the failover to the standby still comes back on the same
        # port, and a fresh discovery still refuses the port.
        set home [new_home]
        defer [list kill_registries $home]
        lassign [start_registry $home] dpid port
        check "a standby waits" {[wait_until {[llength [standbys_of $home]] == 1} 5000]}
        use_home $home
        set ::life {}
        comm::registry::configure -command {apply {{args} {lappend ::life $args}}}
        check_equal "registered" quick [must {comm::registry::register quick}]
        set saved $::comm::registry::procfile(locks)
        defer [list set ::comm::registry::procfile(locks) $saved]
        set nolocks [newfile nolocks]
        write_file $nolocks ""
        set ::comm::registry::procfile(locks) $nolocks
        exec kill -KILL $dpid
        check "regained" {[wait_until {[llength $::life] >= 2} 10000]}
        check_equal "lost, then regained on the same port" \
            [list lost [list regained $port]] \
            [lmap e $::life {expr {[lindex $e 0] eq "lost" ? "lost" : $e}}]
        check_equal "connected there" \
            [dict create state connected port $port private 0] [comm::registry::status]
        check_equal "the name is back, held by this process" [list [pid] 1] \
            [list [dict get [table $port] quick pid] [dict get [table $port] quick serial]]
        check "the standby's registry holds it" {[registry_pid $home] ni [list "" $dpid]}
        # Finding the registry afresh reads the lock, and finds none here.
        comm::registry::disconnect
        lassign [call {comm::registry::register other} 15000] code res
        check_equal "a fresh connection is refused" 1 $code
        check_match "... as the port file is not locked" \
            "*is not locked by a running registry*" $res
        set ::comm::registry::procfile(locks) $saved
        check_equal "with /proc/locks again it works" other \
            [must {comm::registry::register other} 10000]
    }

    test a_private_registry_on_the_lost_port_is_not_the_user_registry {
        # The first try after a loss does not look at the port file's
        # lock: a private registry of ours that took the lost registry's
        # port answers Hello, but as scope private, and is not used; the
        # application elects a user registry elsewhere.
        set home [new_home]
        defer [list kill_registries $home]
        # No standby, so that the port can be taken.
        lassign [start_registry $home --no-standby] dpid port
        set a [start_app $home solo solo]
        set apid [spawn_pid $a]
        # The application sleeps through the death and the taking.
        exec kill -STOP $apid
        defer [list catch [list exec kill -CONT $apid]]
        exec kill -KILL $dpid
        check "registry gone" {[wait_until {![alive $dpid]} 3000]}
        set ppid [start_daemon [new_home] --private --port $port]
        check "a private registry of ours listens on the port" {[wait_until {
            ![catch {::t::hello $port} h] && [dict exists $h scope]
            && [dict get $h scope] eq "private"} 5000]}
        exec kill -CONT $apid
        set l [next_match $a regained* 15000]
        set q [file_port $home]
        check "regained elsewhere ($l; port file $q)" \
            {$q ne "" && $q != $port && $l eq "regained $q"}
        check_match "lost, then regained" {{lost *} {regained *}} $::seen
        check_equal "the user registry holds the name" {solo} [dict keys [table $q]]
        check_equal "the private registry holds nothing" {} [dict keys [table $port]]
        check "the private registry still runs" {[alive $ppid]}
    }

    test a_connection_reset_before_its_check_is_not_looked_for_again {
        # The check of who accepted a connection (run on every connection
        # to a registry) gives up at once on one the kernel has reset:
        # its acceptor is gone for good, and every look for it reads all
        # of /proc/net/tcp.  Here a listener of ours closes with the
        # connection still in its queue (as a registry dying while we
        # connect does), which resets it.
        set srv [socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.1 0]
        set port [lindex [fconfigure $srv -sockname] 2]
        # Not accepted: this process does not run its event loop here.
        set s [connect_queued $port]
        check_equal "connected (in the listener's queue)" 0 [fconfigure $s -connecting]
        # The first look finds nothing (the package is shown a table that
        # lists no socket) and the listener closes right after it: the
        # reset comes between two looks, as in a failover.
        # The package that reads /proc (without its compiled helper,
        # which asks the kernel of this one socket: one look is as cheap
        # as any other).
        defer [list set ::comm::registry::kernel $::comm::registry::kernel]
        set ::comm::registry::kernel 0
        set saved $::comm::registry::procfile(tcp)
        defer [list set ::comm::registry::procfile(tcp) $saved]
        set empty [newfile emptytcp]
        write_file $empty "  sl  local_address rem_address   st\n"
        set ::comm::registry::procfile(tcp) $empty
        set ::looks 0
        set close [list apply {{srv args} {
            if {[incr ::looks] == 1} { close $srv }
        }} $srv]
        trace add execution ::comm::registry::AcceptorUids leave $close
        defer [list trace remove execution ::comm::registry::AcceptorUids leave $close]
        lassign [call [list comm::registry::CheckAcceptor $s $port]] code res
        check_equal "refused" 1 $code
        check_match "... as reset, not as an acceptor not found" \
            "couldn't open socket: connection reset by peer" $res
        check_equal "after one look" 1 $::looks
    }

    test with_the_helper_a_connection_reset_before_its_check_reads_no_proc {
        # The helper says a connection that went is gone (no peer
        # address) rather than that it cannot ask the kernel: the
        # package then stops at once, reading no /proc (which it would
        # otherwise fall back to, five times).
        if {![tcl_kernel_expected]} {
            check_equal "no helper here" 0 $::comm::registry::kernel
            return
        }
        set srv [socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.1 0]
        set port [lindex [fconfigure $srv -sockname] 2]
        set s [connect_queued $port]
        check_equal "connected (in the listener's queue)" 0 [fconfigure $s -connecting]
        # The listener closes with it in its queue: reset.
        close $srv
        set deadline [expr {[clock milliseconds] + 3000}]
        while {![catch {fconfigure $s -peername}] && [clock milliseconds] < $deadline} {
            after 1
        }
        lassign [call [list comm::registry::kernel::acceptor $s]] code res
        check_equal "the helper: gone" 1 $code
        check_equal "... with its code" {COMMREG WENT} [lrange $::errorCode 0 1]
        set ::reads 0
        set count {apply {args { incr ::reads }}}
        trace add execution ::comm::registry::SocketUid enter $count
        defer [list trace remove execution ::comm::registry::SocketUid enter $count]
        lassign [call [list comm::registry::CheckAcceptor $s $port]] code res
        check_equal "refused" 1 $code
        check_match "... as reset" "couldn't open socket: *" $res
        check_equal "/proc/net/tcp was not read" 0 $::reads
    }

    test a_commregd_that_dies_while_starting_is_retried {
        set home [new_home]
        defer [list kill_registries $home]
        # A commregd that is killed the first time it runs, before any
        # registry listens (as in a chaos run); the second run is real.
        set wrap [file join [tempdir wrap] commregd.sh]
        set once $wrap.once
        write_file $wrap "#!/bin/sh\nif \[ ! -e '$once' \]; then : > '$once'; kill -KILL \$\$; fi\nexec '[commregd_path]' \"\$@\"\n" 0700
        set ch [spawn -home $home [info nameofexecutable] $::tclapp \
                    -home $home -commregd $wrap solo]
        check_equal "registered after the first commregd died" \
            {registered solo solo} [readline $ch 10000]
        check "the first commregd did run (and die)" {[file exists $once]}
        check_equal "one commregd" 1 [llength [commregds_of $home]]
    }
}
