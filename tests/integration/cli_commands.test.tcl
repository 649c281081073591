# The `commreg` command as a tool: --version, one-line usage errors,
# the table a person reads (escaped, one Tcl word per cell, ISO 8601 UTC
# times), the machine form (--json of list, status and watch), status
# saying why no registry runs, and stop (the registry ends cleanly, its
# applications elect a new one; a registry hosted in an application, or
# one whose Hello names another process, is not signalled).
source [file join [file dirname [info script]] lib.tcl]
package require json

proc lines_of {text} {
    return [split [string trimright $text \n] \n]
}

proc register {home name port} {
    return [spawn -home $home [commreg_path] --home $home register $name $port]
}

# `commreg ARGS` with TCL_COMM_REGPORT=PORT (the registry in use).
proc commreg_at {home port args} {
    return [run -home $home env TCL_COMM_REGPORT=$port [commreg_path] \
                --home $home {*}$args]
}

# The project's version, as CMakeLists.txt's project() says it.
proc project_version {} {
    set text [read_file [file join [src_dir] CMakeLists.txt]]
    regexp {project\(commreg VERSION ([0-9.]+)} $text -> v
    return $v
}

# A registry (tcllib comm) whose Hello says pid PID and port CLAIM (""
# for its own); prints its port.  Returns the channel.
proc liar {pid {claim ""} {tclsh ""}} {
    if {$tclsh eq ""} { set tclsh [info nameofexecutable] }
    set f [newfile liar].tcl
    write_file $f {
        package require comm
        lassign $argv victim claim
        ::comm::comm new ::reg -listen 1 -local 1 -port 0
        if {$victim eq "self"} { set victim [pid] }
        proc Commreg/Hello {args} {
            set p [expr {$::claim eq "" ? [::reg self] : $::claim}]
            list registry commreg version 0.1.0 protocol 1 \
                owner [exec id -un] uid [exec id -u] host h \
                pid $::victim port $p scope user
        }
        puts [::reg self]
        flush stdout
        vwait forever
    } 0644
    # SIGTERM ignored, as exec leaves it: a registry that will not stop.
    return [spawn sh -c {trap '' TERM; exec "$0" "$@"} $tclsh $f $pid $claim]
}

set iso_re {^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$}

main {
    unset -nocomplain ::env(TCL_COMM_REGPORT)
    set home [new_home]
    lassign [start_registry $home] dpid port

    test version_is_the_project_version {
        set r [run [commreg_path] --version]
        check_equal "exit 0" 0 [dict get $r code]
        check_equal "commreg (commreg) VERSION, as the daemons say theirs" "commreg (commreg) [project_version]\n" [dict get $r out]
        check_equal "nothing on stderr" "" [dict get $r err]
        # After a command too, as a person types it.
        set r [run [commreg_path] list --version]
        check_equal "after a command: the same" "commreg (commreg) [project_version]\n" [dict get $r out]
    }

    test usage_errors_are_one_line_naming_the_word {
        foreach {label args word hint} {
            "unknown option"              {--frobnicate list}  {"--frobnicate"} {"commreg --help"}
            "unknown short option"        {-q list}            {"-q"}           {"commreg --help"}
            "unknown command"             {frobnicate}         {"frobnicate"}   {"commreg --help"}
            "unknown option of a command" {list --frobnicate}  {"--frobnicate"} {"commreg list --help"}
            "another command's option"    {lookup foo --json}  {"--json"}       {"commreg lookup --help"}
            "a command's option first"    {--json list}        {"--json"}       {"commreg --help"}
            "a flag given a value"        {list --json=1}      {"--json" takes no value} {"commreg list --help"}
            "too many arguments"          {lookup a b}         {"b"}            {"commreg lookup --help"}
            "no command"                  {}                   {no command}     {"commreg --help"}
            "--prometheus without a file" {status --prometheus} {"--prometheus" needs a value} {"commreg status --help"}
            "run: unknown option"         {run --frob true}    {"--frob"}       {"commreg run --help"}
        } {
            set r [commreg $home {*}$args]
            set err [dict get $r err]
            check_equal "$label: exit 2" 2 [dict get $r code]
            check_equal "$label: nothing on stdout" "" [dict get $r out]
            check_equal "$label: one line on stderr [show $err]" 1 [llength [lines_of $err]]
            check "$label: names $word" {[string first $word $err] >= 0}
            check "$label: ends: try $hint" {[string match "*; try $hint" [string trimright $err \n]]}
        }
        # A word that would act on the terminal is named escaped.
        set r [commreg $home "bad\x1b\[31m"]
        check_equal "escape in a command name: exit 2" 2 [dict get $r code]
        check "escape in a command name: shown as \\x1b, never raw" {
            [string first "\x1b" [dict get $r err]] < 0
            && [string first {bad\x1b[31m} [dict get $r err]] >= 0
        }
    }

    test list_cells_are_words_times_are_iso_utc {
        set a [register $home plain 5101]
        check_equal "plain registered" plain [readline $a]
        set b [register $home plain 5101]
        check_equal "plain #2 registered" {plain #2} [readline $b]
        # A name made to look like more columns.
        set c [register $home {fake 5555 localhost} 5102]
        check_equal "the spacey name registered" {fake 5555 localhost} [readline $c]
        # A host with an escape sequence (the registry takes any host).
        set s [raw_open $port]
        raw_keepalive $s
        defer [list ::t::raw_close $s]
        lassign [raw_call $s [list Commreg/Register esc 5103 -host "ev\x1b\[2Jil"]] code res
        check_equal "esc registered" {0 esc} [list $code $res]

        set r [commreg $home list]
        check_equal "list: exit 0" 0 [dict get $r code]
        set out [dict get $r out]
        check "no escape character reaches the terminal" {[string first "\x1b" $out] < 0}
        set rows [lrange [lines_of $out] 1 end]
        check_equal "the header" {NAME PORT HOST PID SINCE} [regexp -all -inline {\S+} [lindex [lines_of $out] 0]]
        set byname {}
        foreach row $rows {
            check "row is a Tcl list of 5 cells: [show $row]" {[string is list $row] && [llength $row] == 5}
            dict set byname [lindex $row 0] $row
        }
        check_set "each name is one cell" {esc {fake 5555 localhost} plain {plain #2}} [dict keys $byname]
        set fake [dict get $byname {fake 5555 localhost}]
        check_equal "the spacey name's own port" 5102 [lindex $fake 1]
        check_equal "the escaped host" {ev\x1b[2Jil} [lindex [dict get $byname esc] 2]
        check_regexp "SINCE is ISO 8601 UTC" $::iso_re [lindex $fake 4]
        # It is now, in UTC (not local time).
        set t [clock scan [lindex $fake 4] -format {%Y-%m-%dT%H:%M:%SZ} -timezone :UTC]
        check "SINCE is the registration time ([lindex $fake 4])" {abs([clock seconds] - $t) < 60}
        check_equal "pid of a raw peer unknown: -" - [lindex [dict get $byname esc] 3]

        # The columns line up: every row's PORT cell ends where the header's does.
        set hdr [lindex [lines_of $out] 0]
        set end [expr {[string first PORT $hdr] + 4}]
        set aligned 1
        foreach row $rows {
            set p [lindex $row 1]
            if {[string range $row [expr {$end - [string length $p]}] [expr {$end - 1}]] ne $p} {
                set aligned 0
            }
        }
        check "PORT column aligned" {$aligned}

        # The machine form: every field, exactly as registered.
        set r [commreg $home list --json]
        check_equal "list --json: exit 0" 0 [dict get $r code]
        check "list --json: ASCII only" {[regexp {^[\x20-\x7e\n]*$} [dict get $r out]]}
        set v [json::json2dict [dict get $r out]]
        set names [lmap e $v {dict get $e name}]
        check_set "list --json: the names" {esc {fake 5555 localhost} plain {plain #2}} $names
        foreach e $v {
            if {[dict get $e name] eq "esc"} {
                check_equal "the host, escape and all" "ev\x1b\[2Jil" [dict get $e host]
                check_equal "pid unknown: null" null [dict get $e pid]
            }
            if {[dict get $e name] eq {plain #2}} {
                check_equal "serial" 2 [dict get $e serial]
                check_equal "base" plain [dict get $e base]
                check_equal "port is a number" 5101 [dict get $e port]
                check_equal "scope" user [dict get $e scope]
                check_regexp "since ISO 8601 UTC" $::iso_re [dict get $e since]
                check_equal "pid: the holder's" [spawn_pid $b] [dict get $e pid]
            }
        }
        set r [commreg $home list --json nomatch*]
        check_equal "no match: an empty array" {[]} [string trim [dict get $r out]]
        raw_close $s
        foreach ch [list $a $b $c] { stop $ch }
    }

    test watch_json_is_one_object_per_line {
        set w [spawn -home $home [commreg_path] --home $home watch --json j*]
        set r1 [register $home j1 5201]
        check_equal "j1 registered" j1 [readline $r1]
        set l [readline $w]
        set o [json::json2dict $l]
        check_equal "an add" {add j1 5201 localhost} \
            [list [dict get $o event] [dict get $o name] [dict get $o port] [dict get $o host]]
        check_regexp "since ISO" $::iso_re [dict get $o since]
        stop $r1
        set l2 [readline $w]
        check_equal "a remove" {remove j1} \
            [lmap k {event name} {dict get [json::json2dict $l2] $k}]
        check_regexp "compact, the event first" {^\{"event":"add","name":"j1",} $l
        stop $w

        # The registry goes and comes back: said as events too.
        set h [new_home]
        lassign [start_registry $h] p1 port1
        set w [spawn -home $h [commreg_path] --home $h watch --json]
        set k [register $h kept 5202]
        check_equal "kept registered" kept [readline $k]
        set add [json::json2dict [readline $w]]
        check_equal "kept's add" {add kept} [list [dict get $add event] [dict get $add name]]
        check_equal "stop: exit 0" 0 [dict get [commreg $h stop] code]
        set lost [json::json2dict [readline $w [slow 5000]]]
        check_equal "a lost event" lost [dict get $lost event]
        check "with its reason" {[dict get $lost reason] ne ""}
        set back [json::json2dict [readline $w [slow 10000]]]
        check_equal "a regained event, with the port" {regained 1} \
            [list [dict get $back event] [string is integer -strict [dict get $back port]]]
        foreach p [commregds_of $h] { defer [list ::t::kill_proc $p] }
        stop $w
        stop $k
    }

    test status_json_and_iso_start {
        set r [commreg $home status]
        check_equal "exit 0" 0 [dict get $r code]
        check "started: an ISO 8601 UTC time" {[regexp -line {^started\s+(\S+)$} [dict get $r out] -> t]
            && [regexp $::iso_re $t]}
        set r [commreg $home status --json]
        check_equal "--json: exit 0" 0 [dict get $r code]
        set o [json::json2dict [dict get $r out]]
        check_equal "running" true [dict get $o running]
        check_equal "port" $port [dict get $o port]
        check_equal "pid" $dpid [dict get $o pid]
        check_equal "version" [project_version] [dict get $o version]
        foreach k {entries connections watches messages refused uptime} {
            check "$k is a number" {[string is integer -strict [dict get $o $k]]}
        }
        check_regexp "started" $::iso_re [dict get $o started]
    }

    test status_says_why_nothing_runs {
        set empty [new_home]
        set r [commreg $empty status]
        check_equal "exit 3" 3 [dict get $r code]
        check_equal "nothing on stdout" "" [dict get $r out]
        set err [dict get $r err]
        check "says no registry runs, for whom" {[string match "*no registry is running for [exec id -un] on *" $err]}
        check "says why (no registry directory)" {[string first "$empty/.tcl/comm/registry" $err] >= 0}
        check "says what to do" {[string first "commregd --detach --home $empty" $err] >= 0}
        set r [commreg $empty status --json]
        check_equal "--json: exit 3" 3 [dict get $r code]
        set o [json::json2dict [dict get $r out]]
        check_equal "--json: running false" false [dict get $o running]
        check "--json: the reason" {[string first registry [dict get $o reason]] >= 0}
        # A port file left by a registry that is gone: the reason names it.
        make_regdir $empty
        set dead [free_port]
        write_file [portfile $empty] "$dead\n"
        set r [commreg $empty status]
        check_equal "stale port file: exit 3" 3 [dict get $r code]
        check "stale port file: says so (port $dead)" {[string first $dead [dict get $r err]] >= 0}
        check "status started nothing" {[llength [commregds_of $empty]] == 0}
    }

    test stop_ends_the_registry_and_apps_elect_again {
        set h [new_home]
        lassign [start_registry $h] pid1 port1
        set app [register $h keeper 5301]
        check_equal "keeper registered" keeper [readline $app]
        set r [commreg $h stop]
        check_equal "stop: exit 0" 0 [dict get $r code]
        check_match "stop says what it stopped" "stopped the user registry of * (port $port1, pid $pid1)\n" [dict get $r out]
        check "the registry is gone" {![alive $pid1]}
        check "its port file is given up" {[wait_until {[::t::file_port $h] ne $port1 || ![::t::port_open $port1]} 3000]}
        # The holder elects a new registry and registers again.
        check "the holder regains a registry" {[wait_until {[string match "*registry regained*" [::t::spawn_err $app]]} [slow 10000] 50]}
        check "keeper is there again" {[wait_until {[dict get [::t::commreg $h lookup keeper] code] == 0} [slow 5000] 100]}
        foreach p [commregds_of $h] { defer [list ::t::kill_proc $p] }
        stop $app
        # Nothing to stop.
        set e [new_home]
        set r [commreg $e stop]
        check_equal "nothing runs: exit 3" 3 [dict get $r code]
        check "nothing runs: says so" {[string match "*nothing to stop*" [dict get $r err]]}
    }

    test stop_leaves_an_application_hosting_the_registry {
        set h [new_home]
        set app [app_start c-inprocess $h hostapp]
        check "the app hosts the registry" {[wait_until {[::t::registry_pid $h] eq [::t::app_pid $app]} [slow 10000] 50]}
        set r [commreg $h stop]
        check_equal "exit 1" 1 [dict get $r code]
        check "says it is an application and nothing was signalled" {
            [string match "*served inside pid [app_pid $app] (capp)*nothing was signalled*" [dict get $r err]]
        }
        check "the app lives" {[alive [app_pid $app]]}
        check_equal "and still serves" [app_pid $app] [registry_pid $h]
    }

    test stop_signals_only_the_pid_the_kernel_confirms {
        # A registry whose Hello names another process of ours.
        set victim [exec sleep 60 &]
        remember $victim
        defer [list ::t::kill_proc $victim]
        set liar [liar $victim]
        set lport [readline $liar]
        check "the liar listens" {[string is integer -strict $lport]}
        set r [commreg_at $home $lport stop]
        check_equal "exit 1" 1 [dict get $r code]
        check "says the pid is not the one serving" {
            [string match "*says it is pid $victim, but that is not the process*nothing was signalled*" [dict get $r err]]
        }
        check "the named process lives" {[alive $victim]}
        check "the liar lives" {[alive [spawn_pid $liar]]}
        check "the real registry lives" {[alive $dpid]}
    }

    test port_is_the_checked_port_of_the_registry_in_use {
        set r [commreg $home port]
        check_equal "the user registry's" "$port\n" [dict get $r out]
        lassign [start_private_registry] ppid pport
        set r [commreg_at $home $pport port]
        check_equal "TCL_COMM_REGPORT's registry" [list 0 "$pport\n"] [list [dict get $r code] [dict get $r out]]
        # Something that is no registry there: the user registry's, said.
        set plain [socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.1 0]
        defer [list close $plain]
        set nport [lindex [fconfigure $plain -sockname] 2]
        set r [run_bg -home $home env TCL_COMM_REGPORT=$nport [commreg_path] --home $home port]
        set r [wait_bg $r]
        check_equal "no registry at TCL_COMM_REGPORT: the user registry's" "$port\n" [dict get $r out]
        check "no registry at TCL_COMM_REGPORT: said on stderr" {[string match "*TCL_COMM_REGPORT=$nport*" [dict get $r err]]}
        # A Hello that names another port than the one connected to.
        set l [liar [pid] 1]
        set lport [readline $l]
        set r [commreg_at $home $lport port]
        check_equal "a Hello naming another port: exit 1" 1 [dict get $r code]
        check_equal "nothing on stdout" "" [dict get $r out]
        check_match "says so" "*connected to on port $lport says its port is 1*" [dict get $r err]
    }

    test stop_says_when_the_registry_does_not_end {
        # A "commregd" (tclsh under that name) that serves as a registry,
        # names itself in its Hello, and ignores SIGTERM.
        set d [tempdir fake 0755]
        set fake [file join $d commregd]
        exec cp -L [info nameofexecutable] $fake
        file attributes $fake -permissions 0755
        set l [liar self "" $fake]
        set lport [readline $l]
        check "it listens" {[string is integer -strict $lport]}
        set r [commreg_at $home $lport stop]
        check_equal "exit 1" 1 [dict get $r code]
        check_match "says it still runs" "*was told to stop but still runs after 5 s*" [dict get $r err]
        check "it does still run" {[alive [spawn_pid $l]]}
        stop $l KILL
    }
}
