# The daemons as services (docs/gateway.md "Running it under systemd",
# docs/election.md "From login"): what an operator or a unit file meets
# before anything is served.
#
#   daemons_say_their_version      commregd and commgwd --version: one
#                                  line with the project's version, exit 0
#   an_unknown_option_is_one_line  a word neither knows, an option
#                                  without its value, a value given to a
#                                  flag, a stray argument: one line that
#                                  names it and says "try --help", exit 2,
#                                  nothing on stdout, nothing started
#   a_gateway_left_root_says_so    started as root without [gateway] user
#                                  the gateway warns in its log; with a
#                                  user it does not
#   the_unit_umask_keeps_the_socket_reachable
#                                  under the unit's UMask=0077 the socket
#                                  directory the gateway makes is 0755
#                                  and its socket 0666
#   standby_takes_over_from_a_detached_registry
#                                  commregd --standby (the user unit's)
#                                  beside a registry an application
#                                  started: it waits, the port file and
#                                  its lock untouched; the registry killed,
#                                  it is elected on the same port at once
#   standby_takes_over_from_a_stopped_registry
#                                  the same when the registry stops
#                                  cleanly; with no registry, --standby
#                                  simply is the registry
#   a_tcllib_client_finds_the_standby
#                                  nameserv::auto's names, bound at a
#                                  registry an application started, are
#                                  back after that registry is killed,
#                                  nobody starting another: the standby
#                                  took over on the same port
#   standby_is_for_the_foreground  --standby with --detach or --private:
#                                  a usage error, exit 2
#   the_journal_gets_priorities_and_no_time
#                                  stderr being the stream JOURNAL_STREAM
#                                  names (systemd's way of saying "the
#                                  journal"): each line is "<N>prog: ..."
#                                  with the syslog priority (4 warning,
#                                  6 info, 3 the fatal line) and no time;
#                                  JOURNAL_STREAM naming another file, or
#                                  none: the time as ever
#   the_gateway_stays_inside_its_unit
#                                  commgwd under strace, as root with
#                                  user = nobody (privilege separation),
#                                  serving a registry, checking a port,
#                                  reloading and stopping: every system
#                                  call it makes is in the unit's
#                                  SystemCallFilter, and the only /proc
#                                  file it opens is one glibc does without
#                                  (so ProcSubset=pid and ProtectProc
#                                  take nothing it needs)
#   install_puts_units_with_its_paths
#                                  `cmake --install --prefix DIR` installs
#                                  commgwd.service (system) and
#                                  commregd.service (user) naming DIR's
#                                  programs, which are there; systemd
#                                  verifies both without a word
#   gateway_unit_is_hardened       systemd-analyze security --offline
#                                  rates the installed gateway unit 2.5
#                                  or less (issue 14's bar)
source [file join [file dirname [info script]] lib.tcl]
package require nameserv::auto

# The version CMake's project() gives, read from the top CMakeLists.txt.
proc project_version {} {
    set text [read_file [file join [src_dir] CMakeLists.txt]]
    if {![regexp {project\(commreg VERSION ([0-9.]+)} $text -> v]} {
        error "no project(commreg VERSION ...) in CMakeLists.txt"
    }
    return $v
}

# The build tree in use (build*/local -> build*).
proc build_dir {} {
    return [file dirname [find_bin]]
}

# The tool, or a failure that says how to get it (scripts/deps.sh
# installs it; a check that cannot run must not pass).
proc need {tool package} {
    set exe [auto_execok $tool]
    if {$exe eq ""} {
        error "$tool not found: install $package (scripts/deps.sh does)"
    }
    return [lindex $exe 0]
}

# `cmake --install` of this build into a fresh prefix; returns it.
proc install_prefix {} {
    set prefix [tempdir prefix 0755]
    set r [run -timeout 60 [need cmake cmake] --install [build_dir] \
               --prefix $prefix]
    if {[dict get $r code] != 0} {
        error "cmake --install failed: [dict get $r err][dict get $r out]"
    }
    return $prefix
}

# The value of KEY= in a unit's text (the first such line).
proc unit_value {text key} {
    if {[regexp -line "^${key}=(.*)\$" $text -> v]} { return $v }
    return ""
}

# Start CMD ARG... in the background with stderr appended to FILE and
# JOURNAL_STREAM set to JS ("" : not set).  Returns its PID, ended with
# the scope.
proc start_logging_to {file js args} {
    set cmd [list env -u JOURNAL_STREAM]
    if {$js ne ""} { lappend cmd JOURNAL_STREAM=$js }
    set pid [exec {*}$cmd {*}$args </dev/null >/dev/null 2>>$file &]
    remember $pid
    defer [list ::t::kill_proc $pid]
    return $pid
}

# DEV:INODE of FILE, as systemd writes JOURNAL_STREAM.
proc dev_ino {file} {
    file stat $file st
    return "$st(dev):$st(ino)"
}

# The system calls a SystemCallFilter= line allows: its groups expanded,
# as systemd-analyze syscall-filter lists them, minus the ~ line's.
proc filter_members {analyze group {seen {}}} {
    set out {}
    set r [run $analyze syscall-filter $group]
    foreach l [lrange [split [dict get $r out] \n] 1 end] {
        set l [string trim $l]
        if {$l eq "" || [string match #* $l]} continue
        if {[string match @* $l]} {
            if {$l ni $seen} {
                lappend seen $l
                lappend out {*}[filter_members $analyze $l $seen]
            }
        } else {
            lappend out $l
        }
    }
    return [lsort -unique $out]
}

proc unit_syscalls_allowed {analyze unit_text} {
    set allow {}
    set deny {}
    foreach l [split $unit_text \n] {
        if {![regexp {^SystemCallFilter=(~?)(.*)$} $l -> neg groups]} continue
        foreach g $groups {
            set m [filter_members $analyze $g]
            if {$neg eq "~"} { lappend deny {*}$m } else { lappend allow {*}$m }
        }
    }
    return [lmap c [lsort -unique $allow] {expr {$c in $deny ? [continue] : $c}}]
}

proc daemons {} {
    return [list commregd [commregd_path] commgwd [gw_path]]
}

main {
    test daemons_say_their_version {
        set v [project_version]
        foreach {name exe} [daemons] {
            set r [run $exe --version]
            check_equal "$name --version: exit 0" 0 [dict get $r code]
            check_equal "$name --version: name and version" \
                "$name (commreg) $v\n" [dict get $r out]
            check_equal "$name --version: nothing on stderr" "" [dict get $r err]
        }
    }

    test an_unknown_option_is_one_line {
        set home [new_home]
        foreach {name exe} [daemons] {
            foreach {argv said} [list \
                {--no-such-option} {unknown option "--no-such-option"} \
                {-Z}               {unknown option "-Z"} \
                {-vZ}              {unknown option "-Z"} \
                {--config-dir}     {option "--config-dir" needs a value} \
                {--help=yes}       {option "--help" takes no value} \
                {stray}            {unexpected argument "stray"}] {
                set r [run -home $home $exe {*}$argv]
                check_equal "$name $argv: exit 2" 2 [dict get $r code]
                check_equal "$name $argv: one line naming it" \
                    "$name: $said; try \"$name --help\"\n" [dict get $r err]
                check_equal "$name $argv: nothing on stdout" "" [dict get $r out]
            }
        }
        check_equal "no registry was started for the bad command lines" \
            "" [file_port $home]
    }

    test a_gateway_left_root_says_so {
        if {[exec id -u] != 0} {
            say "  (skipped: the warning is for a gateway started as root)"
            return
        }
        set d [gw_confdir [dict create 00-gateway.ini \
            "\[gateway\]\nsocket = @SOCKET@\n"]]
        set g [gw_start $d]
        check "without user: the log warns that it serves as root" \
            {[gw_wait_log $g {commgwd: serving as root: nothing here needs it; set user = tclcomm}]}
        check_match "and names where to set it" "*\\\[gateway\\\] of $d/\\*.ini*" \
            [gw_log $g]
        stop $g

        set d2 [gw_confdir [dict create 00-gateway.ini \
            "\[gateway\]\nsocket = @SOCKET@\nuser = nobody\n"]]
        set g2 [gw_start $d2]
        check "with user = nobody: it says whom it runs as" \
            {[gw_wait_log $g2 {running as nobody}]}
        check "and gives no such warning" \
            {![string match "*serving as root*" [gw_log $g2]]}
        stop $g2
    }

    test install_puts_units_with_its_paths {
        set prefix [install_prefix]
        set sys [file join $prefix lib systemd system commgwd.service]
        set usr [file join $prefix lib systemd user commregd.service]
        check "the gateway's unit is installed" {[file isfile $sys]}
        check "the user registry's unit is installed" {[file isfile $usr]}
        set st [read_file $sys]
        set ut [read_file $usr]
        check_equal "commgwd.service starts the installed commgwd" \
            "$prefix/sbin/commgwd" [unit_value $st ExecStart]
        check_equal "and checks its configuration first" \
            "$prefix/sbin/commgwd --check-config" [unit_value $st ExecStartPre]
        check_equal "commregd.service runs the installed commregd, standing by" \
            "$prefix/bin/commregd --standby" [unit_value $ut ExecStart]
        # Not the main process alone: its standby takes over when it
        # dies, and must not be killed with it.
        check_equal "the user unit lives while the registry or its standby does" \
            cgroup [unit_value $ut ExitType]
        check_equal "and a stop ends both" "" [unit_value $ut KillMode]
        check "the programs they name are installed" \
            {[file executable $prefix/sbin/commgwd] && [file executable $prefix/bin/commregd]}
        check_equal "the gateway's unit names its man pages" \
            "man:commgwd(8) man:tcl-comm.ini(5)" [unit_value $st Documentation]
        check_equal "the user unit names its man pages" \
            "man:commregd(1) man:commreg(1)" [unit_value $ut Documentation]
        # Installed too, so that systemctl help finds them.
        foreach page {man8/commgwd.8 man5/tcl-comm.ini.5 man1/commregd.1 man1/commreg.1} {
            check "$page is installed" {[file isfile [file join $prefix share man $page]]}
        }
        foreach {text doc} [list $st gateway.md $ut election.md] {
            set want "file://$prefix/share/doc/commreg/$doc"
            check "a unit names $want" {[string first "Documentation=$want\n" $text] >= 0}
            check "which is installed" {[file isfile [string range $want 7 end]]}
        }
        check "no template placeholder is left" \
            {![string match *@COMMREG_* $st$ut]}

        set analyze [need systemd-analyze systemd]
        set r [run $analyze verify --man=no $sys]
        check_equal "systemd verifies commgwd.service: exit 0" 0 [dict get $r code]
        check_equal "without a word" "" [dict get $r err]
        # A user manager's paths need a runtime directory of its own.
        set xdg [tempdir xdg 0700]
        set r [run env XDG_RUNTIME_DIR=$xdg $analyze --user verify --man=no $usr]
        check_equal "systemd --user verifies commregd.service: exit 0" 0 [dict get $r code]
        check_equal "without a word" "" [dict get $r err]
    }

    test gateway_unit_is_hardened {
        set prefix [install_prefix]
        set sys [file join $prefix lib systemd system commgwd.service]
        set analyze [need systemd-analyze systemd]
        # --threshold is on systemd's scale of 0..100 (exposure x 10).
        set r [run $analyze security --offline=yes --threshold=25 $sys]
        set out [dict get $r out]
        check "systemd-analyze rates it" \
            {[regexp {Overall exposure level for commgwd.service: ([0-9.]+)} $out -> score]}
        if {[info exists score]} {
            say "  exposure: $score"
            check "exposure $score is at most 2.5" {$score <= 2.5}
        }
        check_equal "within the threshold: exit 0" 0 [dict get $r code]
        # Each of the settings issue 14 names is among those that add
        # nothing to the exposure (a line without a number at its end).
        set lines [split $out \n]
        foreach setting {PrivateDevices= ProtectKernelTunables= ProtectKernelModules=
            ProtectKernelLogs= ProtectSystem= ProtectHome= RestrictNamespaces=~user
            LockPersonality= MemoryDenyWriteExecute= UMask=
            SystemCallFilter=~@mount CapabilityBoundingSet=~CAP_SYS_ADMIN} {
            set i [lsearch -glob $lines "* $setting *"]
            check "it holds $setting" \
                {$i >= 0 && ![regexp {[0-9]\.[0-9]\s*$} [lindex $lines $i]]}
        }
    }

    test the_unit_umask_keeps_the_socket_reachable {
        set sockdir [file join [tempdir gwsock 0755] made-by-gateway]
        set d [gw_confdir [dict create 00-gateway.ini \
            "\[gateway\]\nsocket = $sockdir/gw.sock\n"] $sockdir/gw.sock]
        set ch [spawn sh -c {umask 077; exec "$0" "$@"} [gw_path] --config-dir $d]
        check_equal "the gateway starts" ready [readline $ch [slow 10000]]
        check_equal "the directory it made is 0755" 0755 [perm $sockdir]
        check_equal "its socket is 0666" 0666 [perm $sockdir/gw.sock]
        stop $ch
    }

    test standby_takes_over_from_a_detached_registry {
        set home [new_home]
        # With no standby: this is what clients see when none lives
        # (docs/election.md; the standby's own: standby.test.tcl).
        set r [run -home $home [commregd_path] --detach --home $home --no-standby]
        check_equal "an application's registry starts (--detach)" 0 [dict get $r code]
        set port [file_port $home]
        set first [registry_pid $home]
        check "it answers" {$first ne ""}
        if {$first eq ""} return
        remember $first
        defer [list ::t::kill_proc $first]
        set s [start_daemon $home --standby]
        check "the standby says it stands by" \
            {[wait_until {[string match "*port $port: standing by*" [::t::daemon_log $s]]} [slow 5000]]}
        pause 300
        check "it stays" {[alive $s]}
        check_equal "the port file is untouched" $port [file_port $home]
        check_equal "the registry there is still the first" $first [registry_pid $home]
        set text [read_file /proc/locks]
        check "the standby holds no lock" {![regexp "FLOCK +\\S+ +\\S+ +$s " $text]}

        kill_proc $first KILL
        check "killed, its registry is replaced by the standby" \
            {[wait_until {[::t::registry_pid $home] eq $s} [slow 5000] 50]}
        check_equal "on the same port" $port [file_port $home]
        check_equal "which answers as a registry" {0 1} \
            [raw_call [raw_open $port] ProtocolVersion]
        check_match "its log says so" "*stopped: electing*listening on 127.0.0.1:$port*" \
            [daemon_log $s]
        kill_proc $s
        check "SIGTERM stops it" {![alive $s]}
    }

    test standby_takes_over_from_a_stopped_registry {
        set home [new_home]
        lassign [start_registry $home] first port
        set s [start_daemon $home --standby]
        check "it stands by" \
            {[wait_until {[string match "*standing by*" [::t::daemon_log $s]]} [slow 5000]]}
        kill_proc $first TERM
        check "stopped cleanly, the registry is replaced by the standby" \
            {[wait_until {[::t::registry_pid $home] eq $s} [slow 5000] 50]}
        check_equal "on the same port" $port [file_port $home]
        kill_proc $s

        set home2 [new_home]
        set s2 [start_daemon $home2 --standby]
        set p2 [wait_ready $home2 $s2]
        check_equal "with no registry, --standby is the registry" $s2 [registry_pid $home2]
        check "and never stood by" {![string match "*standing by*" [daemon_log $s2]]}
    }

    test a_tcllib_client_finds_the_standby {
        set home [new_home]
        # With no standby of its own, which would take over first
        # (docs/election.md; standby.test.tcl).
        set r [run -home $home [commregd_path] --detach --home $home --no-standby]
        check_equal "an application's registry starts (--detach)" 0 [dict get $r code]
        set port [file_port $home]
        set first [registry_pid $home]
        if {$first eq ""} { error "no registry answers on $port" }
        remember $first
        defer [list ::t::kill_proc $first]
        set s [start_daemon $home --standby]
        check "the standby stands by" \
            {[wait_until {[string match "*standing by*" [::t::daemon_log $s]]} [slow 5000]]}
        must {nameserv::auto::configure -port $port -host localhost -delay 200}
        must {nameserv::auto::bind svc.login {7101 hostA}}
        # Let go while the standby still serves (deferred scripts run
        # last first), so that no rebinding outlives the scenario.
        defer {catch {nameserv::auto::release}}
        check_equal "a tcllib client's name is there" {svc.login {7101 hostA}} \
            [search $port svc.*]

        kill_proc $first KILL
        set ok [wait_until {
            [catch {::t::search $port svc.*} now] == 0 && $now eq {svc.login {7101 hostA}}
        } [slow 8000] 50]
        check "its name is back, nobody having started a registry" {$ok}
        check_equal "served by the standby, on the same port" $s [registry_pid $home]
    }

    test standby_is_for_the_foreground {
        set home [new_home]
        foreach other {--detach --private --semi} {
            set r [run -home $home [commregd_path] --home $home --standby $other]
            check_equal "--standby $other: exit 2" 2 [dict get $r code]
            check_match "and why" "commregd: --standby is for the user registry*" \
                [dict get $r err]
        }
        check_equal "nothing was started" "" [file_port $home]
    }

    test the_journal_gets_priorities_and_no_time {
        # A registry whose stderr is "the journal", with a host
        # configuration it refuses (a warning) beside its life cycle.
        set home [new_home]
        set bad [gw_confdir [dict create 00-gateway.ini "\[gateway\]\nsocket = relative\n"]]
        set j [newfile journal].log
        write_file $j ""
        set pid [start_logging_to $j [dev_ino $j] [commregd_path] --home $home \
                     --config-dir $bad]
        wait_ready $home $pid
        # The port answers from the election on: wait for the line that
        # says it serves, then stop it.
        wait_until {[string match "*listening on*" [::t::read_file $j]]} [slow 5000]
        kill_proc $pid
        set lines [split [string trimright [read_file $j] \n] \n]
        check "the registry logged" {[llength $lines] >= 3}
        check_equal "every line is <N>commregd: ..., without a time" {} \
            [lsearch -all -inline -not -regexp $lines {^<[0-7]>commregd: }]
        check "the refused configuration is a warning (4)" \
            {[lsearch -regexp $lines {^<4>commregd: host configuration refused}] >= 0}
        check "listening is info (6)" \
            {[lsearch -regexp $lines {^<6>commregd: registry for .* listening on}] >= 0}

        # The same registry's lines in a file that is not the journal.
        set home2 [new_home]
        set other [newfile other].log
        write_file $other ""
        foreach js [list "" [dev_ino $other]] {
            set f [newfile plain].log
            write_file $f ""
            set pid [start_logging_to $f $js [commregd_path] --home $home2]
            wait_ready $home2 $pid
            wait_until {[string match "*listening on*" [::t::read_file $f]]} [slow 5000]
            kill_proc $pid
            set text [read_file $f]
            check "JOURNAL_STREAM=[show $js]: lines keep their time" \
                {[regexp -line {^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ commregd: registry for} $text]}
            check "and no priority" {![regexp -line {^<\d>} $text]}
        }

        # The gateway: a warning, info, and the line it stops with.
        if {[exec id -u] == 0} {
            set d [gw_confdir [dict create 00-gateway.ini "\[gateway\]\nsocket = @SOCKET@\n"]]
            set j [newfile journal].log
            write_file $j ""
            set pid [start_logging_to $j [dev_ino $j] [gw_path] --config-dir $d]
            check "the gateway's root warning is <4>" \
                {[wait_until {[regexp -line {^<4>commgwd: serving as root} [::t::read_file $j]]} [slow 5000]]}
            check "its start is <6>" {[regexp -line {^<6>commgwd: host gateway on} [read_file $j]]}
            kill_proc $pid
        }
        set sockdir [tempdir gwsock 0755]
        write_file $sockdir/gw.sock "not a socket\n" 0644
        set d [gw_confdir [dict create 00-gateway.ini \
            "\[gateway\]\nsocket = $sockdir/gw.sock\n"] $sockdir/gw.sock]
        set j [newfile journal].log
        write_file $j ""
        set pid [start_logging_to $j [dev_ino $j] [gw_path] --config-dir $d]
        check "a gateway that cannot start says why at <3>" \
            {[wait_until {[regexp -line {^<3>commgwd: .*gw.sock exists and is not a socket} [::t::read_file $j]]} [slow 5000]]}

        # A configuration refused (the unit's ExecStartPre, or a start):
        # each error, and the verdict, are errors for the journal too.
        set d [gw_confdir [dict create 00-gateway.ini "\[gateway\]\nsocket = @SOCKET@\nbogus = 1\n"]]
        set said "<3>commgwd: $d/00-gateway.ini:3: unknown key \"bogus\" in \[gateway\]\n"
        foreach {argv want} [list --check-config "$said<3>commgwd: $d: configuration refused\n" \
                                 {} $said] {
            set j [newfile journal].log
            write_file $j ""
            set r [run env JOURNAL_STREAM=[dev_ino $j] J=$j sh -c {exec "$@" 2>>"$J"} \
                       sh [gw_path] --config-dir $d {*}$argv]
            check_equal "commgwd $argv on a bad configuration: exit 1" 1 [dict get $r code]
            check_equal "commgwd $argv: its errors are <3>" $want [read_file $j]
        }
        set r [run [gw_path] --config-dir $d --check-config]
        check_equal "on a terminal, the same lines without a priority" \
            "commgwd: $d/00-gateway.ini:3: unknown key \"bogus\" in \[gateway\]\ncommgwd: $d: configuration refused\n" \
            [dict get $r err]
    }

    test the_gateway_stays_inside_its_unit {
        if {[exec id -u] != 0} {
            say "  (skipped: the unit starts the gateway as root)"
            return
        }
        set strace [need strace strace]
        set analyze [need systemd-analyze systemd]
        set r [run $strace -qq -o /dev/null true]
        if {[dict get $r code] != 0} {
            say "  SKIPPED: strace cannot trace here: [string trim [dict get $r err]]"
            return
        }
        set trace [newfile gw].strace
        set d [gw_confdir [dict create 00-gateway.ini \
            "\[gateway\]\nsocket = @SOCKET@\nuser = nobody\n"]]
        # -D: strace is a grandchild, the gateway keeps the PID we signal.
        set g [spawn $strace -D -f -q -o $trace [gw_path] --config-dir $d]
        check_equal "the gateway starts under strace" ready [readline $g [slow 10000]]
        set u [gw_user "" $d]
        set reg [gw_registry $u]
        check "a registry links to it" {[gw_linked $u $reg]}
        lassign [gw_listener $u] - port
        check "a name is admitted, its port checked" \
            {[dict get [gw_register $u traced $port] ok]}
        set mark [gw_log_mark $g]
        gw_signal $g HUP
        check "it reloads" {[gw_wait_log $g "configuration reloaded from $d" 5000 $mark]}
        set pid [gw_pid $g]
        stop $g TERM
        check "it stops, and strace has written all" \
            {[wait_until {[regexp -line "^$pid +\\+\\+\\+ (exited|killed)" [::t::read_file $trace]]} [slow 5000]]}

        set calls {}
        set procs {}
        foreach l [split [read_file $trace] \n] {
            if {[regexp {^\d+ +([a-z0-9_]+)\(} $l -> c]} { lappend calls $c }
            foreach p [regexp -all -inline {"/proc/[^"]*"} $l] {
                lappend procs [string trim $p \"]
            }
        }
        set calls [lsort -unique $calls]
        check "strace saw the gateway's calls ([llength $calls])" {[llength $calls] > 20}
        set st [read_file [file join [build_dir] etc-tcl-comm commgwd.service]]
        set allowed [unit_syscalls_allowed $analyze $st]
        check "the unit's filter allows a plain daemon's calls" \
            {"epoll_wait" in $allowed && "setgroups" in $allowed && "mount" ni $allowed}
        check_equal "every call it made is in the unit's SystemCallFilter" {} \
            [lmap c $calls {expr {$c in $allowed ? [continue] : $c}}]
        # Its own /proc/self stays under ProcSubset=pid (a sanitizer
        # build reads it); nothing else of /proc but what glibc does
        # without.
        check_equal "of /proc it opens only its own, and what glibc does without" \
            {} [lmap p [lsort -unique $procs] {
                expr {$p eq "/proc/sys/kernel/ngroups_max" ||
                      [string match /proc/self/* $p] ? [continue] : $p}}]
    }
}
