# The Tcl package comm::registry and private registries (docs/tcl.md
# "Private registries"): TCL_COMM_REGPORT names the registry of the
# application's group; when it answers the package uses it (and only it),
# when it does not (nothing listens, not a registry, not a port number)
# the normal start-up follows and -command is told why; when it dies the
# package does not recover anything: -command gets lost and dropped,
# calls fail with a message naming it, lookups answer from memory (marked
# with -stale), status says orphaned, and disconnect starts over.
#
# `commreg run` (which starts a private registry) is the C side's; here a
# private registry is stood in for by a plain commregd with a HOME of its
# own: a real registry on its own port, which TCL_COMM_REGPORT names,
# while the applications' HOME has (or gets, or lacks) a user registry of
# its own.  Applications are tests/tools/tclapp.tcl processes, and the
# package in this process (application "A").
source [file join [file dirname [info script]] lib.tcl]
package require comm

set src [file dirname [file dirname [file dirname [file normalize [info script]]]]]
if {[info exists env(COMMREG_SRC)] && $env(COMMREG_SRC) ne ""} {
    set src $env(COMMREG_SRC)
}
lappend auto_path [file join $src tcl]
package require comm::registry
# Only the package calls that should see it get TCL_COMM_REGPORT (the
# daemons and applications started here get it explicitly or not at all).
unset -nocomplain env(TCL_COMM_REGPORT)

# ---------------------------------------------------------------------------
# Helpers

# A tclapp in the group of the private registry on REGPORT (any value:
# it is put into TCL_COMM_REGPORT as it is), for HOME.  Returns its
# channel (lib.tcl's app_* helpers read its lines).
proc group_app {home regport args} {
    set ::env(TCL_COMM_REGPORT) $regport
    try {
        return [app_start tcl $home {*}$args]
    } finally {
        unset -nocomplain ::env(TCL_COMM_REGPORT)
    }
}

# The first line of app CH matching PATTERN, waiting at most MS ms; "" if
# none came.
proc app_line {ch pattern {ms 10000}} {
    wait_until {[::t::app_count $ch $pattern] > 0} $ms
    return [lindex [lsearch -inline -all -glob [app_lines $ch] $pattern] 0]
}

# The text of app CH's `error TEXT` lines.
proc app_errors {ch} {
    set l {}
    foreach line [app_lines $ch] {
        if {[lindex $line 0] eq "error"} { lappend l [lindex $line 1] }
    }
    return $l
}

# Use the package in this process with HOME (its "user" HOME) until the
# scenario ends; -command notifications are appended to ::life.
proc use_home {home} {
    comm::registry::disconnect
    comm::registry::configure -home $home -commregd [commregd_path] \
        -command {apply {{args} {lappend ::life $args}}}
    set ::life {}
    defer {
        comm::registry::disconnect
        comm::registry::configure -command ""
        unset -nocomplain ::env(TCL_COMM_REGPORT)
    }
}

# Run SCRIPT (in the caller) with TCL_COMM_REGPORT=VALUE, returning what
# it returns (or raising its error, as `must` does).
proc with_regport {value script {ms 10000}} {
    set ::env(TCL_COMM_REGPORT) $value
    try {
        return [uplevel 1 [list ::t::must $script $ms]]
    } finally {
        unset -nocomplain ::env(TCL_COMM_REGPORT)
    }
}

# A private registry, as `commreg run` starts one (commregd --private,
# which says its port on stdout, here its log), with a HOME of its own.
# Returns {pid port home}.
proc start_private {} {
    set other [new_home]
    set pid [start_daemon $other --private]
    if {![wait_until {[regexp {^([0-9]+)\n} [::t::daemon_log $pid]]} 5000] ||
        ![regexp {^([0-9]+)\n} [daemon_log $pid] -> port] ||
        ![port_open $port]} {
        error "commregd --private not ready:\n[daemon_log $pid]"
    }
    return [list $pid $port $other]
}

proc kill_registries {home} {
    foreach pid [commregds_of $home] {
        kill_proc $pid TERM
    }
}

# SIGKILL a registry by PID and wait (bounded) until it is gone.
proc kill_registry {pid} {
    catch {exec kill -KILL $pid}
    return [wait_until {![::t::alive $pid]} 3000 10]
}

proc life_events {} {
    return [lmap e $::life {lindex $e 0}]
}

main {
    test private_registry_is_used_when_it_answers {
        set home [new_home]
        lassign [start_registry $home] upid uport
        lassign [start_private] ppid pport
        set a [group_app $home $pport inside]
        check "the app registered" {[wait_until {[::t::app_registered $a]}]}
        check_equal "as \"inside\"" {inside} [app_names $a]
        check_equal "the private registry holds it" {inside} [reg_names $pport]
        check_equal "the user registry does not" {} [reg_names $uport]
        check_equal "the app's pid is recorded there" [app_pid $a] \
            [dict get [lindex [reg_list $pport inside] 0] pid]
        pause 200
        check_equal "no notification for the app" {} [app_errors $a]

        use_home $home
        check_equal "this process registers there too" here \
            [with_regport $pport {comm::registry::register here}]
        check_equal "status: bound to the private registry" \
            [dict create state connected port $pport private 1] \
            [comm::registry::status]
        check_equal "the private registry holds both" {here inside} [reg_names $pport]
        check_equal "the user registry holds neither" {} [reg_names $uport]
        set id [must {comm::registry::lookup -stale s inside}]
        check_equal "lookup -stale gives the comm id" \
            [list [dict get [lindex [reg_list $pport inside] 0] port] localhost] $id
        check_equal "... and says it is fresh" 0 $s
        check_equal "the app answers on it" {0 {hello me from inside}} \
            [call {comm::comm send $id greet me}]
        check_equal "plain lookup, as before" $id [must {comm::registry::lookup inside}]
        check_equal "list goes to the private registry" {here inside} \
            [lmap e [must {comm::registry::list}] {dict get $e name}]
        check_equal "no -command notification" {} $::life
    }

    test dead_port_falls_back_to_the_user_registry {
        set home [new_home]
        lassign [start_registry $home] upid uport
        set dead [free_port]
        set a [group_app $home $dead outside]
        check "the app registered" {[wait_until {[::t::app_registered $a]}]}
        check_equal "in the user registry" {outside} [reg_names $uport]
        set err [app_line $a "error *" 3000]
        check_match "-command got error naming the port" \
            "TCL_COMM_REGPORT=$dead: * using the user registry" [lindex $err 1]
        check_match "... and why" "*no registry answers on port $dead*" [lindex $err 1]
        check_equal "one notification only" 1 [llength [app_errors $a]]

        use_home $home
        check_equal "this process too" fallback \
            [with_regport $dead {comm::registry::register fallback}]
        check_equal "status: the user registry" \
            [dict create state connected port $uport private 0] \
            [comm::registry::status]
        check "told" {[wait_until {[llength $::life] >= 1} 2000]}
        check_match "the notification" \
            "error {TCL_COMM_REGPORT=$dead: *; using the user registry}" [lindex $::life 0]
        check_equal "nothing listens there still" 0 [port_open $dead]
    }

    test garbage_value_falls_back_with_its_message {
        # No user registry runs: the normal start-up starts one.
        set home [new_home]
        defer [list kill_registries $home]
        set a [group_app $home abc gb]
        check "the app registered" {[wait_until {[::t::app_registered $a]} 15000]}
        set err [app_line $a "error *" 3000]
        check_equal "-command got the message" \
            {error {TCL_COMM_REGPORT="abc" is not a port number; using the user registry}} \
            $err
        check_equal "a user registry was started for its HOME" 1 \
            [llength [one_commregd $home]]
        check_equal "it holds the name" {gb} [reg_names [file_port $home]]
        foreach bad {0 65536 -1 " 1" 1x 00000000000000000000001} {
            use_home $home
            set ::life {}
            with_regport $bad {comm::registry::lookup gb}
            wait_until {[llength $::life] >= 1} 2000
            check_equal "\"$bad\" is no port number either" \
                [list [list error "TCL_COMM_REGPORT=\"$bad\" is not a port number; using the user registry"]] \
                $::life
            check_equal "... user registry used" 0 [dict get [comm::registry::status] private]
        }
    }

    test not_a_registry_or_empty_falls_back {
        set home [new_home]
        lassign [start_registry $home] upid uport
        # Something listens, but closes every connection at once.
        set srv [socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.1 0]
        defer [list close $srv]
        set np [lindex [fconfigure $srv -sockname] 2]
        set a [group_app $home $np notreg]
        check "the app registered" {[wait_until {[::t::app_registered $a]} 15000]}
        check_equal "in the user registry" {notreg} [reg_names $uport]
        check_match "-command got error naming the port" \
            "TCL_COMM_REGPORT=$np: *; using the user registry" \
            [lindex [app_line $a "error *" 3000] 1]

        # An empty TCL_COMM_REGPORT is as none: no notification.
        set b [group_app $home "" empty]
        check "an app with TCL_COMM_REGPORT= registered" \
            {[wait_until {[::t::app_registered $b]}]}
        pause 300
        check_equal "in the user registry" {empty notreg} [reg_names $uport]
        check_equal "without notification" {} [app_errors $b]
    }

    test orphaned_when_the_private_registry_dies {
        # The user's HOME has no registry, and must get none.
        set home [new_home]
        defer [list kill_registries $home]
        lassign [start_private] ppid pport other
        set b [group_app $home $pport peerB]
        set c [group_app $home $pport peerC]
        check "B and C registered" {[wait_until {[all_registered [list $b $c]]}]}

        use_home $home
        check_equal "A registers" appA [with_regport $pport {comm::registry::register appA}]
        check_equal "A registers a second instance" {appA #2} \
            [must {comm::registry::register appA}]
        set bid [must {comm::registry::lookup peerB}]
        check_equal "A sends to B" {0 {hello a from peerB}} \
            [call {comm::comm send $bid greet a}]
        set ::wev {}
        set w [must {comm::registry::watch peer* {apply {{type entry} {
            lappend ::wev [list $type [dict get $entry name]]
        }}}}]
        # D comes and goes while A watches: A forgets it.
        set d [group_app $home $pport peerD]
        check "D registered" {[wait_until {[::t::app_registered $d]}]}
        app_kill $d
        check "the watch saw D come and go" {[wait_until {"remove peerD" in $::wev}]}
        check_equal "watch events" {{add peerB} {add peerC} {add peerD} {remove peerD}} $::wev
        check_equal "the private registry's table" {appA {appA #2} peerB peerC} \
            [reg_names $pport]
        check_equal "no port file for the user's HOME" 0 [file exists [portfile $home]]
        set cid [list [dict get [lindex [reg_list $pport peerC] 0] port] localhost]

        set bmark [app_mark $b]
        set cmark [app_mark $c]
        check "the private registry is SIGKILLed" {[kill_registry $ppid]}
        check "A is told" {[wait_until {[llength $::life] >= 3}]}
        set gone "the private registry on port $pport is gone (TCL_COMM_REGPORT): "
        check_equal "A: lost, then each name dropped" {lost dropped dropped} [life_events]
        check_match "A: lost names the registry" [list lost "$gone*"] [lindex $::life 0]
        check_match "A: dropped appA" [list dropped appA "$gone*"] [lindex $::life 1]
        check_match "A: dropped appA #2" [list dropped {appA #2} "$gone*"] [lindex $::life 2]
        check_equal "A: status orphaned" \
            [dict create state orphaned port $pport private 1] [comm::registry::status]
        check_equal "A: holds no name" {} [comm::registry::names]
        foreach {app name mark} [list $b peerB $bmark $c peerC $cmark] {
            check "$name: lost and dropped" {[wait_until {
                [::t::app_count $app "dropped *" $mark] > 0}]}
            set lines [app_lines $app $mark]
            check_match "$name: lost names the registry" [list lost "$gone*"] [lindex $lines 0]
            check_match "$name: then dropped $name" [list dropped $name "$gone*"] [lindex $lines 1]
        }

        # Nothing is recovered: no commregd, no port file, no regained.
        pause 1500
        check_equal "no commregd for the user's HOME" {} [commregds_of $home]
        check_equal "none for the private registry's" {} [commregds_of $other]
        check_equal "the user's port file is still absent" 0 [file exists [portfile $home]]
        check_equal "nothing listens on the private registry's port" 0 [port_open $pport]
        check_equal "A: nothing after dropped" 3 [llength $::life]
        foreach {app name mark} [list $b peerB $bmark $c peerC $cmark] {
            check_equal "$name: nothing after dropped" 2 [llength [app_lines $app $mark]]
        }

        # Comm connections carry on without the registry.
        check_match "A's comm::comm send to B still works" {0 {hello a from*}} \
            [call {comm::comm send $bid greet a}]
        lassign [call {comm::registry::lookup -stale s peerB}] code id
        check_equal "lookup -stale s peerB: B's id from memory" [list 0 $bid] [list $code $id]
        check_equal "... marked stale" 1 $s
        check_equal "plain lookup peerB: the same" [list 0 $bid] \
            [call {comm::registry::lookup peerB}]
        check_equal "peerC, known from the watch snapshot" [list 0 $cid] \
            [call {comm::registry::lookup -stale s2 peerC}]
        check_equal "... stale too" 1 $s2
        set s3 x
        lassign [call {comm::registry::lookup -stale s3 nope}] code msg
        check_equal "lookup of a name never seen fails" 1 $code
        check_match "... saying the registry is gone and the name never seen" \
            "$gone*\"nope\" was never seen*" $msg
        check_equal "... -stale variable cleared" 0 $s3
        check_match "peerD was removed before: forgotten" "$gone*\"peerD\" was never seen*" \
            [lindex [call {comm::registry::lookup peerD}] 1]
        check_equal "the error code" [list COMMREG ORPHANED $pport] \
            [expr {[catch {comm::registry::lookup nope} m o] ? [dict get $o -errorcode] : ""}]
        foreach cmd {{register again} {list} {watch * list}} {
            lassign [call [linsert [lrange $cmd 1 end] 0 comm::registry::[lindex $cmd 0]]] code msg
            check_equal "[lindex $cmd 0] fails" 1 $code
            check_match "... with the documented error" "$gone*" $msg
        }
        check_equal "unregister: nothing is registered" \
            {1 {"appA" is not registered by this application}} \
            [call {comm::registry::unregister appA}]

        # The watch ended: no more events; its last view stays.
        check_equal "no watch event since" {{add peerB} {add peerC} {add peerD} {remove peerD}} $::wev
        check_equal "entries: the last view" {peerB peerC} \
            [lmap e [comm::registry::entries $w] {dict get $e name}]
        check_equal "unwatch" {0 {}} [call {comm::registry::unwatch $w}]
        pause 300
        check_equal "still no commregd for the user's HOME" {} [commregds_of $home]
    }

    test disconnect_after_orphaning_starts_over {
        set home [new_home]
        defer [list kill_registries $home]
        lassign [start_private] ppid pport
        use_home $home
        check_equal "registered" one [with_regport $pport {comm::registry::register one}]
        must {comm::registry::lookup one}
        kill_registry $ppid
        check "orphaned" {[wait_until {[dict get [comm::registry::status] state] eq "orphaned"}]}
        check_equal "disconnect" {0 {}} [call comm::registry::disconnect]
        check_equal "status after disconnect" \
            [dict create state idle port "" private 0] [comm::registry::status]
        check_equal "nothing remembered" {} $::comm::registry::known

        lassign [start_private] ppid2 pport2
        set ::life {}
        check_equal "register with TCL_COMM_REGPORT naming a live registry" one \
            [with_regport $pport2 {comm::registry::register one}]
        check_equal "status: bound to it" \
            [dict create state connected port $pport2 private 1] [comm::registry::status]
        check_equal "it holds the name" {one} [reg_names $pport2]
        check_equal "lookup asks the new registry" \
            {1 {no application named "two"}} [call {comm::registry::lookup two}]
        check_equal "no user registry was started" {} [commregds_of $home]
        check_equal "no notification" {} $::life
    }

    test remembered_names_only_for_a_private_registry_and_bounded {
        set home [new_home]
        lassign [start_registry $home] upid uport
        use_home $home
        foreach n {u1 u2} { must [list comm::registry::register -port 40001 $n] }
        must {comm::registry::lookup u1}
        must {comm::registry::list}
        check_equal "the user registry: status" \
            [dict create state connected port $uport private 0] [comm::registry::status]
        check_equal "the user registry: nothing remembered" {} $::comm::registry::known
        check_equal "lookup -stale" {{40001 localhost} 0} \
            [list [must {comm::registry::lookup -stale s u1}] $s]
        comm::registry::disconnect

        lassign [start_private] ppid pport
        set saved $::comm::registry::known_max
        set ::comm::registry::known_max 3
        defer [list set ::comm::registry::known_max $saved]
        with_regport $pport {comm::registry::register -port 40001 n1}
        foreach n {n2 n3 n4 n5} {
            must [list comm::registry::register -port 4000[string index $n 1] $n]
        }
        foreach n {n1 n2 n3 n4 n5} { must [list comm::registry::lookup $n] }
        check_equal "at most known_max names, the oldest evicted" {n3 n4 n5} \
            [dict keys $::comm::registry::known]
        must {comm::registry::lookup n3}
        must {comm::registry::lookup n1}
        check_equal "a name looked up again counts as new" {n5 n3 n1} \
            [dict keys $::comm::registry::known]
        must {comm::registry::unregister n5}
        check_equal "list n5*" {} [must {comm::registry::list n5*}]
        check_equal "list forgets what it no longer finds" {n3 n1} \
            [dict keys $::comm::registry::known]
        must {comm::registry::unregister n3}
        check_equal "lookup of a name gone" \
            {1 {no application named "n3"}} [call {comm::registry::lookup n3}]
        check_equal "a failed lookup forgets the name" {n1} \
            [dict keys $::comm::registry::known]
        kill_registry $ppid
        check "orphaned" {[wait_until {[dict get [comm::registry::status] state] eq "orphaned"}]}
        check_equal "n1 from memory" {{40001 localhost} 1} \
            [list [must {comm::registry::lookup -stale s n1}] $s]
        check_match "n4 was evicted" {*"n4" was never seen*} \
            [lindex [call {comm::registry::lookup n4}] 1]
        check_match "n3 was forgotten" {*"n3" was never seen*} \
            [lindex [call {comm::registry::lookup n3}] 1]
    }
}
