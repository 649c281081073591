# Helpers shared by the integration tests (tests/integration/*.test.tcl).
#
# Each test file sources this, then runs its scenarios inside
# `main { test name { ... } ... }`.  The helpers start the real commregd
# with a throwaway HOME, talk to it as tcllib clients or as raw comm
# sockets, and make sure everything they started is gone at the end, even
# when a scenario fails or hangs:
#
#   - every wait is bounded (polling through the event loop with `after`,
#     never a bare vwait); a blocking `comm send` is given a deadline by
#     `call`, and a file-wide watchdog ends a run that hangs anyway;
#   - every process is started here and ended by its PID;
#   - `check`, `check_equal` ... count passes and failures; a failure prints
#     its context and the tail of the commregd logs of that scenario; the
#     run ends with exactly one line "N passed, M failed" and exit status 1
#     if M > 0;  `skip` exits 77 (ctest's SKIP_RETURN_CODE).
#
# Environment (set by tests/CMakeLists.txt): COMMREG_BIN = directory with
# commregd and commreg; COMMREG_TOOLS, COMMREG_SRC; TCLLIBPATH names the
# build's tcl/, where the Tcl package's compiled helper
# comm::registry::kernel is built, and COMMREG_TCL_KERNEL says whether it
# was (1) or the package is to read /proc instead (0: set here before any
# `package require comm::registry`, and so in tests/tools/tclapp.tcl).
# Run by hand, the newest build*/local below the source tree is used.

package require Tcl 8.6

if {[info exists ::env(COMMREG_TCL_KERNEL)] && $::env(COMMREG_TCL_KERNEL) eq "0"} {
    namespace eval ::comm::registry { variable kernel 0 }
}

namespace eval ::t {
    variable libdir [file dirname [file normalize [info script]]]
    variable pass 0
    variable fail 0
    variable current ""      ;# the scenario being run
    variable scopes {}       ;# stack of scopes; see scope_push
    variable procs {}        ;# every PID we started
    variable dirs {}         ;# every temporary directory we made
    variable workdir ""      ;# logs, scripts, outputs of this run
    variable bin ""
    variable seq 0
    variable watchdog ""
    variable spawned         ;# chan -> dict pid err
    array set spawned {}
    variable rbuf            ;# raw socket -> unparsed input
    array set rbuf {}
    variable rqueue          ;# raw socket -> parsed messages not yet taken
    array set rqueue {}
    variable rserial         ;# raw socket -> last serial sent
    array set rserial {}
    variable cleanup_hooks {}
    namespace export *
}

# ---------------------------------------------------------------------------
# Counting and reporting

proc ::t::say {msg} {
    puts stdout $msg
    flush stdout
}

proc ::t::pass_ {name} {
    variable pass
    incr pass
    say "  ok   $name"
}

proc ::t::fail_ {name detail} {
    variable fail
    variable current
    incr fail
    set where [expr {$current eq "" ? "" : "\[$current\] "}]
    say "  FAIL $where$name"
    foreach line [split [string trimright $detail \n] \n] {
        say "       $line"
    }
}

proc ::t::oneline {s} {
    return [regsub -all {\s+} [string trim $s] " "]
}

# Short, printable form of a value for failure messages.
proc ::t::show {v {max 600}} {
    set s [string map {\n \\n \r \\r \t \\t} $v]
    if {[string length $s] > $max} {
        set s "[string range $s 0 $max]... ([string length $v] chars)"
    }
    return "«$s»"
}

# check NAME COND: COND is an expression evaluated in the caller.
proc ::t::check {name cond} {
    if {[catch {uplevel 1 [list expr $cond]} ok]} {
        fail_ $name "condition: $cond\nraised: $ok"
        return 0
    }
    if {[string is true -strict $ok]} {
        pass_ $name
        return 1
    }
    set values ""
    catch {set values [uplevel 1 [list subst -nobackslashes -nocommands $cond]]}
    fail_ $name "condition: [oneline $cond]\nvalues:    [oneline $values]"
    return 0
}

proc ::t::check_equal {name expected actual} {
    if {$expected eq $actual} {
        pass_ $name
        return 1
    }
    fail_ $name "expected: [show $expected]\nactual:   [show $actual]"
    return 0
}

proc ::t::check_match {name pattern actual} {
    if {[string match $pattern $actual]} {
        pass_ $name
        return 1
    }
    fail_ $name "pattern: [show $pattern]\nactual:  [show $actual]"
    return 0
}

proc ::t::check_regexp {name re actual} {
    if {[regexp -- $re $actual]} {
        pass_ $name
        return 1
    }
    fail_ $name "regexp: [show $re]\nactual: [show $actual]"
    return 0
}

# A set comparison of two lists (order ignored, duplicates count).
proc ::t::check_set {name expected actual} {
    set e [lsort $expected]
    set a [lsort $actual]
    if {$e eq $a} {
        pass_ $name
        return 1
    }
    set missing {}
    set extra {}
    foreach x $e { if {$x ni $a} { lappend missing $x } }
    foreach x $a { if {$x ni $e} { lappend extra $x } }
    fail_ $name "expected (any order): [show $e]\nactual:   [show $a]\nmissing: [show $missing]\nunexpected: [show $extra]"
    return 0
}

proc ::t::finish {} {
    variable pass
    variable fail
    puts stdout "$pass passed, $fail failed"
    flush stdout
    exit [expr {$fail > 0 ? 1 : 0}]
}

proc ::t::skip {reason} {
    say "SKIP: $reason"
    cleanup
    exit 77
}

# ---------------------------------------------------------------------------
# Scopes: a scenario (or the whole file) owns the daemons, clients and
# files it made; `defer` scripts run when its scope ends, last first, and
# the logs it registered are shown when one of its checks failed.

proc ::t::scope_push {name} {
    variable scopes
    variable fail
    # Where each log of the enclosing scopes stands now: a failure in this
    # scope shows only what was logged since.
    set marks {}
    foreach sc $scopes {
        foreach l [dict get $sc logs] {
            dict set marks [lindex $l 1] [file_size [lindex $l 1]]
        }
    }
    lappend scopes [dict create name $name defer {} logs {} fail0 $fail \
                        marks $marks]
}

proc ::t::defer {script} {
    variable scopes
    set i [expr {[llength $scopes] - 1}]
    set s [lindex $scopes $i]
    dict lappend s defer $script
    lset scopes $i $s
}

proc ::t::watch_log {label file} {
    variable scopes
    set i [expr {[llength $scopes] - 1}]
    set s [lindex $scopes $i]
    dict lappend s logs [list $label $file [file_size $file]]
    lset scopes $i $s
}

proc ::t::scope_pop {} {
    variable scopes
    variable fail
    set s [lindex $scopes end]
    if {$fail > [dict get $s fail0]} {
        # Show what every daemon of this scope and of the enclosing ones
        # said, from where each log stood when it was registered.
        set marks [dict get $s marks]
        foreach sc $scopes {
            foreach l [dict get $sc logs] {
                lassign $l label file from
                if {[dict exists $marks $file]} {
                    set from [dict get $marks $file]
                }
                dump_log $label $file $from
            }
        }
        # Shown once: the enclosing scopes count from here on.
        set n [llength $scopes]
        for {set i 0} {$i < $n - 1} {incr i} {
            set sc [lindex $scopes $i]
            dict set sc fail0 $fail
            lset scopes $i $sc
        }
    }
    foreach script [lreverse [dict get $s defer]] {
        if {[catch {uplevel #0 $script} err]} {
            say "  (cleanup step failed: $err)"
        }
    }
    set scopes [lrange $scopes 0 end-1]
}

proc ::t::file_size {file} {
    if {[catch {file size $file} n]} { return 0 }
    return $n
}

proc ::t::dump_log {label file {from 0} {max 4000}} {
    set text [read_file $file]
    set text [string range $text $from end]
    if {[string length $text] > $max} {
        set text "...[string range $text end-$max end]"
    }
    if {$text eq "" && ![string match commregd* $label]} return
    say "       --- $label: [file tail $file] ---"
    if {$text eq ""} { say "       (empty)" }
    foreach line [split [string trimright $text \n] \n] {
        say "       | $line"
    }
}

# test NAME BODY: one scenario.  An error inside it is a failure; the
# scenario's daemons and clients are stopped at its end.
proc ::t::test {name body} {
    variable current
    set current $name
    say "== $name"
    scope_push $name
    set code [catch {uplevel 1 $body} msg opts]
    if {$code == 1} {
        fail_ "scenario raised an error" \
            "$msg\n[dict get $opts -errorinfo]"
    }
    scope_pop
    set current ""
}

# main BODY: the whole file.  Runs BODY, cleans up whatever happens, then
# prints the summary and exits.
proc ::t::main {body {watchdog_s 90}} {
    variable watchdog
    set watchdog [after [expr {$watchdog_s * 1000}] \
                      [list ::t::watchdog_fired $watchdog_s]]
    scope_push file
    set code [catch {uplevel #0 $body} msg opts]
    if {$code == 1} {
        fail_ "test file raised an error" "$msg\n[dict get $opts -errorinfo]"
    }
    cleanup
    finish
}

proc ::t::watchdog_fired {secs} {
    variable current
    fail_ "watchdog" "the run was still going after $secs s (scenario: $current)"
    cleanup
    finish
}

proc ::t::on_cleanup {script} {
    variable cleanup_hooks
    lappend cleanup_hooks $script
}

proc ::t::cleanup {} {
    variable scopes
    variable procs
    variable dirs
    variable spawned
    variable cleanup_hooks
    variable watchdog
    after cancel $watchdog
    while {[llength $scopes]} {
        catch {scope_pop}
    }
    foreach ch [array names spawned] {
        catch {stop $ch}
    }
    foreach pid $procs {
        catch {kill_proc $pid TERM 2000}
    }
    # Daemons started indirectly (commreg starting commregd --detach) are
    # not our children: find whatever still runs with one of our
    # directories in its command line or its HOME, and end it by PID.
    foreach pid [strays] {
        catch {kill_proc $pid TERM 2000}
    }
    foreach script [lreverse $cleanup_hooks] {
        catch {uplevel #0 $script}
    }
    set cleanup_hooks {}
    foreach d $dirs {
        catch {file delete -force -- $d}
    }
    set dirs {}
}

# PIDs of processes (other than us) that mention one of our directories.
proc ::t::strays {} {
    variable dirs
    return [procs_mentioning {*}$dirs]
}

# PIDs of processes (other than us) whose command line or environment
# contains one of STRINGS.
proc ::t::procs_mentioning {args} {
    set found {}
    if {![llength $args]} { return {} }
    foreach p [glob -nocomplain -directory /proc -tails {[0-9]*}] {
        if {$p == [pid]} continue
        set text ""
        foreach f {cmdline environ} {
            if {![catch {open /proc/$p/$f rb} fh]} {
                catch {append text [string map {\0 " "} [read $fh]] " "}
                close $fh
            }
        }
        foreach d $args {
            if {[string first $d $text] >= 0} {
                lappend found $p
                break
            }
        }
    }
    return $found
}

# Running commregd processes whose command line or HOME mentions STRING:
# registries and those becoming one, not their standbys (standbys_of).
proc ::t::commregds_of {string} {
    set l {}
    foreach pid [procs_mentioning $string] {
        if {[string trim [read_file /proc/$pid/comm]] eq "commregd" && [alive $pid]
                && ![is_standby $pid]} {
            lappend l $pid
        }
    }
    return $l
}

# Is PID a registry's standby (commregd --standby-fds, docs/election.md)?
proc ::t::is_standby {pid} {
    if {[catch {read_file /proc/$pid/cmdline} cmd]} { return 0 }
    return [expr {[string first "\0--standby-fds=" $cmd] >= 0}]
}

# The standbys (running) whose command line or HOME mentions STRING.
proc ::t::standbys_of {string} {
    set l {}
    foreach pid [procs_mentioning $string] {
        if {[string trim [read_file /proc/$pid/comm]] eq "commregd" && [alive $pid]
                && [is_standby $pid]} {
            lappend l $pid
        }
    }
    return $l
}

# ---------------------------------------------------------------------------
# Waiting, bounded

proc ::t::pause {ms} {
    variable seq
    set v ::t::pause_[incr seq]
    set $v 0
    after $ms [list set $v 1]
    vwait $v
    unset $v
}

# wait_until COND ?MS? ?STEP?: poll COND (an expression in the caller)
# every STEP ms, at most MS ms and MS/STEP+2 times.  1 if it came true.
proc ::t::wait_until {cond {ms 5000} {step 20}} {
    set deadline [expr {[clock milliseconds] + $ms}]
    set rounds [expr {$ms / $step + 2}]
    for {set i 0} {$i < $rounds} {incr i} {
        if {[uplevel 1 [list expr $cond]]} { return 1 }
        if {[clock milliseconds] >= $deadline} { break }
        pause $step
    }
    return [uplevel 1 [list expr $cond]]
}

# call SCRIPT ?MS?: evaluate SCRIPT (typically a `comm send`) in the
# caller; if it waits for a reply longer than MS, the pending send fails
# with "timeout: no reply within MS ms".  Returns {code result}.
proc ::t::call {script {ms 5000}} {
    set timer [after $ms [list ::t::expire_sends $ms]]
    set code [catch {uplevel 1 $script} res]
    after cancel $timer
    return [list $code $res]
}

# Like call, but returns the result or raises the error.
proc ::t::must {script {ms 5000}} {
    set timer [after $ms [list ::t::expire_sends $ms]]
    set code [catch {uplevel 1 $script} res opts]
    after cancel $timer
    return -options $opts $res
}

proc ::t::expire_sends {ms} {
    if {![info exists ::comm::comm]} return
    foreach key [array names ::comm::comm *,return,*] {
        # A `send` waiting for its reply has return = "" (a -command
        # callback holds its script there instead).
        if {$::comm::comm($key) ne ""} continue
        if {![regexp {^(.*),return,([-0-9]+)$} $key -> chan ser]} continue
        set ::comm::comm($key) \
            [list -code 1 -errorinfo "" -errorcode {COMMREG TIMEOUT}]
        set ::comm::comm($chan,result,$ser) "timeout: no reply within $ms ms"
    }
}

# ---------------------------------------------------------------------------
# Files and directories

proc ::t::read_file {path} {
    if {[catch {open $path rb} f]} { return "" }
    set data [read $f]
    close $f
    return $data
}

proc ::t::write_file {path data {perm 0600}} {
    set f [open $path {WRONLY CREAT TRUNC BINARY} $perm]
    puts -nonewline $f $data
    close $f
}

proc ::t::tempdir {{tag it} {perm 0700}} {
    variable dirs
    set d [exec mktemp -d /tmp/commreg-$tag.XXXXXX]
    file attributes $d -permissions $perm
    lappend dirs $d
    return $d
}

# A fresh HOME (mode 0700, nothing in it).
proc ::t::new_home {} {
    return [tempdir home]
}

proc ::t::shorthost {} {
    return [lindex [split [info hostname] .] 0]
}

proc ::t::regdir {home} {
    return [file join $home .tcl comm registry]
}

proc ::t::portfile {home} {
    return [file join [regdir $home] [shorthost]]
}

# The port in HOME's port file if it is valid ("PORT\n"), else "".
proc ::t::file_port {home} {
    set data [read_file [portfile $home]]
    if {[regexp {^([0-9]+)\n$} $data -> port]} { return $port }
    return ""
}

# Make the registry directory as commregd would (modes 0700).
proc ::t::make_regdir {home} {
    foreach sub {.tcl .tcl/comm .tcl/comm/registry} {
        set d [file join $home $sub]
        file mkdir $d
        file attributes $d -permissions 0700
    }
    return [regdir $home]
}

proc ::t::perm {path} {
    return [format %04o [expr {[file attributes $path -permissions] & 07777}]]
}

# A TCP port on 127.0.0.1 that nothing listens on (at this instant).
proc ::t::free_port {} {
    # Below the kernel's ephemeral range (32768 and up by default), so
    # that no outgoing connection of another test takes it as its local
    # port before the test binds it (a registry then had to take another
    # port, once, under load).  Tried at random, bounded; else the
    # kernel's choice.
    for {set i 0} {$i < 50} {incr i} {
        set port [expr {20000 + int(rand() * 12000)}]
        if {![catch {socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.1 $port} s]} {
            close $s
            return $port
        }
    }
    set s [socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.1 0]
    set port [lindex [fconfigure $s -sockname] 2]
    close $s
    return $port
}

# Can we open a TCP connection to 127.0.0.1:PORT?
proc ::t::port_open {port} {
    if {$port eq "" || [catch {socket 127.0.0.1 $port} s]} { return 0 }
    close $s
    return 1
}

# ---------------------------------------------------------------------------
# Processes

proc ::t::alive {pid} {
    if {[catch {open /proc/$pid/stat r} f]} { return 0 }
    set s ""
    catch {set s [read $f]}
    close $f
    set i [string last ")" $s]
    set state [string index [string trimleft [string range $s [expr {$i + 1}] end]] 0]
    return [expr {$state ni {Z X ""}}]
}

# The start time of PID (field 22 of /proc/PID/stat), "" if none.  Kept
# for every process we start, so that a PID reused by someone else after
# ours ended is never signalled.
proc ::t::proc_start {pid} {
    if {[catch {open /proc/$pid/stat r} f]} { return "" }
    set s ""
    catch {set s [read $f]}
    close $f
    set i [string last ")" $s]
    return [lindex [string range $s [expr {$i + 1}] end] 19]
}

proc ::t::remember {pid} {
    variable procs
    lappend procs $pid
    set ::t::pstart($pid) [proc_start $pid]
}

proc ::t::ours {pid} {
    if {![info exists ::t::pstart($pid)]} { return 1 }
    return [expr {[proc_start $pid] eq $::t::pstart($pid)}]
}

proc ::t::kill_proc {pid {sig TERM} {ms 3000}} {
    if {![alive $pid] || ![ours $pid]} { return 1 }
    catch {exec kill -$sig $pid}
    if {[wait_until {![::t::alive $pid]} $ms]} { return 1 }
    if {[ours $pid]} { catch {exec kill -KILL $pid} }
    return [wait_until {![::t::alive $pid]} 2000]
}

proc ::t::workdir {} {
    variable workdir
    if {$workdir eq "" || ![file isdirectory $workdir]} {
        set workdir [tempdir work 0755]
    }
    return $workdir
}

proc ::t::newfile {prefix} {
    variable seq
    return [file join [workdir] $prefix-[incr seq]]
}

proc ::t::find_bin {} {
    variable bin
    variable libdir
    if {$bin ne ""} { return $bin }
    if {[info exists ::env(COMMREG_BIN)] && $::env(COMMREG_BIN) ne ""} {
        set bin $::env(COMMREG_BIN)
        foreach exe {commregd commreg} {
            if {![file executable [file join $bin $exe]]} {
                fail_ "binaries present" "COMMREG_BIN=$bin has no executable $exe"
                cleanup
                finish
            }
        }
        return $bin
    }
    # Run by hand: the most recently built build*/local.
    set best ""
    set when 0
    foreach d [glob -nocomplain -directory [file dirname [file dirname $libdir]] build*/local] {
        set exe [file join $d commregd]
        if {[file executable $exe] && [file mtime $exe] > $when} {
            set best $d
            set when [file mtime $exe]
        }
    }
    if {$best eq ""} {
        skip "no commregd built (set COMMREG_BIN or build into build*/)"
    }
    set bin $best
    return $bin
}

proc ::t::commregd_path {} { return [file join [find_bin] commregd] }
proc ::t::commreg_path {} { return [file join [find_bin] commreg] }

# start_daemon HOME ?ARG...?: run commregd in the foreground (in the
# background of this test), output to a log.  Returns its PID.  It is
# stopped when the current scope ends.
proc ::t::start_daemon {home args} {
    variable procs
    set log [newfile commregd].log
    set pid [exec env HOME=$home [commregd_path] --home $home {*}$args \
                 </dev/null >& $log &]
    remember $pid
    set ::t::daemon_log($pid) $log
    watch_log "commregd pid $pid ($args)" $log
    defer [list ::t::kill_proc $pid]
    return $pid
}

proc ::t::daemon_log {pid} {
    if {[info exists ::t::daemon_log($pid)]} {
        return [read_file $::t::daemon_log($pid)]
    }
    return ""
}

# Where PID's log stands now, and what it logged since MARK.
proc ::t::log_mark {pid} {
    return [file_size $::t::daemon_log($pid)]
}

proc ::t::log_since {pid mark} {
    return [string range [daemon_log $pid] $mark end]
}

# wait_ready HOME PID ?-not PORT? ?-timeout MS?: wait until the port file
# is valid (and names a port other than -not), the port accepts
# connections, and PID still runs.  Returns the port; raises an error with
# the daemon's log otherwise.
proc ::t::wait_ready {home pid args} {
    set opt [dict merge {-not "" -timeout 5000} $args]
    set not [dict get $opt -not]
    set ok [wait_until {[::t::alive $pid]
        && [set p [::t::file_port $home]] ne "" && $p ne $not
        && [::t::port_open $p]} [dict get $opt -timeout]]
    if {!$ok} {
        set state [expr {[alive $pid] ? "running" : "exited"}]
        error "commregd (pid $pid, $state) not ready within\
               [dict get $opt -timeout] ms; port file\
               [show [read_file [portfile $home]]]\nlog:\n[daemon_log $pid]"
    }
    return [file_port $home]
}

# Start a registry for HOME and wait for it.  Returns {pid port}.
proc ::t::start_registry {home args} {
    set pid [start_daemon $home {*}$args]
    set port [wait_ready $home $pid]
    return [list $pid $port]
}

# A private registry, as `commreg run` starts one (commregd --private,
# which says its port on stdout, here its log), with a HOME of its own.
# Returns {pid port home}.
proc ::t::start_private_registry {} {
    set other [new_home]
    set pid [start_daemon $other --private]
    if {![wait_until {[regexp {^([0-9]+)\n} [::t::daemon_log $pid]]} 5000] ||
        ![regexp {^([0-9]+)\n} [daemon_log $pid] -> port] ||
        ![port_open $port]} {
        error "commregd --private not ready:\n[daemon_log $pid]"
    }
    return [list $pid $port $other]
}

# run ?-timeout S? ?-home H? CMD ARG...: run a command to its end (killed
# after S seconds), return dict code out err.  code is the exit status,
# 124 on timeout, -1 if killed by a signal.
proc ::t::run {args} {
    set timeout 10
    set home ""
    while {[string match -* [lindex $args 0]]} {
        switch -- [lindex $args 0] {
            -timeout { set timeout [lindex $args 1] }
            -home    { set home [lindex $args 1] }
            default  { error "run: bad option [lindex $args 0]" }
        }
        set args [lrange $args 2 end]
    }
    set out [newfile run].out
    set err [newfile run].err
    set cmd [list timeout -k 2 $timeout]
    if {$home ne ""} { lappend cmd env HOME=$home }
    lappend cmd {*}$args
    set code 0
    if {[catch {exec {*}$cmd </dev/null >$out 2>$err} msg opts]} {
        set ec [dict get $opts -errorcode]
        switch -- [lindex $ec 0] {
            CHILDSTATUS { set code [lindex $ec 2] }
            CHILDKILLED { set code -1 }
            default     { set code -2; append_file $err "\n(exec: $msg)" }
        }
    }
    return [dict create code $code out [read_file $out] err [read_file $err]]
}

# run_bg ?-timeout S? ?-home H? CMD ARG...: like run, but in the
# background; returns a handle for wait_bg.  Output goes to files, so a
# daemon the command leaves behind cannot hold us up.
proc ::t::run_bg {args} {
    variable procs
    set timeout 10
    set home ""
    while {[string match -* [lindex $args 0]]} {
        switch -- [lindex $args 0] {
            -timeout { set timeout [lindex $args 1] }
            -home    { set home [lindex $args 1] }
            default  { error "run_bg: bad option [lindex $args 0]" }
        }
        set args [lrange $args 2 end]
    }
    set base [newfile bg]
    set cmd [list timeout -k 2 $timeout]
    if {$home ne ""} { lappend cmd env HOME=$home }
    lappend cmd {*}$args
    set pid [exec env T_OUT=$base.out T_ERR=$base.err T_RC=$base.rc sh -c \
        {"$@" </dev/null >"$T_OUT" 2>"$T_ERR"; echo $? >"$T_RC.tmp"; mv "$T_RC.tmp" "$T_RC"} \
        sh {*}$cmd </dev/null >/dev/null 2>/dev/null &]
    remember $pid
    return [dict create base $base pid $pid timeout $timeout]
}

# Wait for a run_bg command; dict code out err (code "timeout" if it did
# not end in time).
proc ::t::wait_bg {h} {
    set base [dict get $h base]
    set ms [expr {([dict get $h timeout] + 3) * 1000}]
    if {![wait_until {[file exists $base.rc]} $ms 20]} {
        return [dict create code timeout out [read_file $base.out] err [read_file $base.err]]
    }
    return [dict create code [string trim [read_file $base.rc]] \
                out [read_file $base.out] err [read_file $base.err]]
}

proc ::t::append_file {path data} {
    set f [open $path a]
    puts -nonewline $f $data
    close $f
}

proc ::t::commreg {home args} {
    return [run -home $home [commreg_path] --home $home {*}$args]
}

# spawn ?-home H? CMD ARG...: start a long-running command whose stdout we
# read line by line (readline); stderr goes to a file (spawn_err).
# Returns the channel; stop it with `stop`.
proc ::t::spawn {args} {
    variable spawned
    variable procs
    set home ""
    if {[lindex $args 0] eq "-home"} {
        set home [lindex $args 1]
        set args [lrange $args 2 end]
    }
    set err [newfile spawn].err
    set cmd {}
    if {$home ne ""} { lappend cmd env HOME=$home }
    lappend cmd {*}$args
    set ch [open |[list {*}$cmd </dev/null 2> $err] r]
    fconfigure $ch -blocking 0 -buffering line -encoding utf-8 -translation lf
    set pid [lindex [pid $ch] 0]
    remember $pid
    set spawned($ch) [dict create pid $pid err $err cmd $args]
    watch_log "stderr of [file tail [lindex $args 0]] (pid $pid)" $err
    defer [list ::t::stop $ch]
    return $ch
}

# Start `tclsh SCRIPT ARG...`, SCRIPT given as text.
proc ::t::spawn_tcl {name script args} {
    set f [newfile $name].tcl
    write_file $f $script 0644
    return [spawn [info nameofexecutable] $f {*}$args]
}

proc ::t::spawn_pid {ch} {
    return [dict get $::t::spawned($ch) pid]
}

proc ::t::spawn_err {ch} {
    return [read_file [dict get $::t::spawned($ch) err]]
}

# Next line of a spawned process's stdout, or "<eof>" / "<timeout N ms>".
proc ::t::readline {ch {ms 5000}} {
    set deadline [expr {[clock milliseconds] + $ms}]
    while 1 {
        if {[catch {gets $ch line} n]} { return "<eof>" }
        if {$n >= 0} { return $line }
        if {[eof $ch]} { return "<eof>" }
        if {[clock milliseconds] >= $deadline} { return "<timeout $ms ms>" }
        pause 10
    }
}

# Lines a spawned process prints within MS ms (until EOF at the latest).
proc ::t::readlines_for {ch ms} {
    set lines {}
    set deadline [expr {[clock milliseconds] + $ms}]
    while {[clock milliseconds] < $deadline} {
        set l [readline $ch [expr {max(1, $deadline - [clock milliseconds])}]]
        if {[string match <*> $l]} break
        lappend lines $l
    }
    return $lines
}

# End a spawned process (signal SIG, then KILL after a bound).
proc ::t::stop {ch {sig TERM}} {
    variable spawned
    if {![info exists spawned($ch)]} return
    set pid [dict get $spawned($ch) pid]
    kill_proc $pid $sig
    unset spawned($ch)
    # Non-blocking: close does not wait for the child (already gone).
    catch {fconfigure $ch -blocking 0}
    catch {close $ch}
}

# ---------------------------------------------------------------------------
# Raw comm wire protocol (docs/protocol.md §1)

proc ::t::raw_connect {port} {
    set s [socket 127.0.0.1 $port]
    # Full buffering and one flush per line: a line goes out as one TCP
    # segment (with -buffering none, Tcl writes the LF separately and
    # Nagle may hold it back, and the message is complete only with it).
    fconfigure $s -blocking 0 -buffering full -translation lf -encoding utf-8
    set ::t::rbuf($s) ""
    set ::t::rqueue($s) {}
    set ::t::rserial($s) 0
    defer [list ::t::raw_close $s]
    return $s
}

# Connect and do the v3 handshake.  Raises an error if it is not answered
# with {vers 3}.
proc ::t::raw_open {port} {
    set s [raw_connect $port]
    raw_puts $s [list {3 2} 0]
    set m [raw_recv $s]
    if {$m ne {vers 3}} {
        error "handshake answered with [show $m]"
    }
    return $s
}

proc ::t::raw_close {s} {
    catch {close $s}
    unset -nocomplain ::t::rbuf($s) ::t::rqueue($s) ::t::rserial($s)
}

# Write one line (LF added, or CRLF in crlf mode).  Returns 0 if the
# connection is broken.
proc ::t::raw_puts {s line} {
    if {[catch {puts -nonewline $s "$line\n"; flush $s}]} { return 0 }
    return 1
}

proc ::t::raw_write {s data} {
    if {[catch {puts -nonewline $s $data; flush $s}]} { return 0 }
    return 1
}

# Take complete messages off the front of the input buffer: the stream is
# one Tcl list, each element one message; an element is complete when the
# text up to some LF is a well-formed list.
proc ::t::raw_extract {s} {
    upvar #0 ::t::rbuf($s) buf
    set from 0
    while {[set nl [string first \n $buf $from]] >= 0} {
        set prefix [string range $buf 0 $nl]
        if {![catch {llength $prefix} n]} {
            set buf [string range $buf [expr {$nl + 1}] end]
            set from 0
            if {$n == 0} continue
            lappend ::t::rqueue($s) {*}[lrange $prefix 0 end]
            continue
        }
        set from [expr {$nl + 1}]
    }
}

# Next message from S.  Raises {COMMREG EOF} when the peer closed (or reset)
# the connection with nothing left, {COMMREG TIMEOUT} after MS ms.
proc ::t::raw_recv {s {ms 3000}} {
    set deadline [expr {[clock milliseconds] + $ms}]
    while 1 {
        if {[llength $::t::rqueue($s)]} {
            set m [lindex $::t::rqueue($s) 0]
            set ::t::rqueue($s) [lrange $::t::rqueue($s) 1 end]
            return $m
        }
        set gone 0
        if {[catch {read $s} data]} {
            set gone 1
        } else {
            append ::t::rbuf($s) $data
            raw_extract $s
            if {[llength $::t::rqueue($s)]} continue
            if {[eof $s]} { set gone 1 }
        }
        if {$gone} {
            return -code error -errorcode {COMMREG EOF} \
                "connection closed by the registry (unparsed: [show $::t::rbuf($s)])"
        }
        if {[clock milliseconds] >= $deadline} {
            return -code error -errorcode {COMMREG TIMEOUT} \
                "no message within $ms ms (unparsed: [show $::t::rbuf($s)])"
        }
        pause 5
    }
}

# What happens next on S within MS ms: "eof", "timeout", or "msg MESSAGE".
proc ::t::raw_outcome {s {ms 3000}} {
    if {[catch {raw_recv $s $ms} m opts]} {
        switch -- [lindex [dict get $opts -errorcode] 1] {
            EOF     { return eof }
            TIMEOUT { return timeout }
        }
        return [list error $m]
    }
    return [list msg $m]
}

# Send CMD (a list of script fragments, as comm's payload) with the next
# serial; KIND send|async|command.  Returns the serial.
proc ::t::raw_send {s cmd {kind send}} {
    set ser [incr ::t::rserial($s)]
    raw_puts $s [list [list $kind $ser $cmd]]
    return $ser
}

# Decode a reply payload "return -code N ?-opt val ...? RESULT" into a
# dict code, result, errorcode, errorinfo.
proc ::t::decode_return {payload} {
    set d [dict create code "" result [lindex $payload end] errorcode "" errorinfo ""]
    foreach {k v} [lrange $payload 1 end-1] {
        dict set d [string range $k 1 end] $v
    }
    return $d
}

# Wait for the reply (or callback) to serial SER; async messages met on
# the way are kept in ::t::rasync(S).  Returns the decoded reply.
proc ::t::raw_reply {s ser {ms 3000}} {
    set deadline [expr {[clock milliseconds] + $ms}]
    while 1 {
        set left [expr {max(1, $deadline - [clock milliseconds])}]
        set m [raw_recv $s $left]
        lassign $m kind mser payload
        if {$kind in {reply callback} && $mser eq $ser} {
            return [dict merge [decode_return $payload] [dict create kind $kind]]
        }
        lappend ::t::rasync($s) $m
    }
}

# One request/response: CMD is the command as a list, sent as one script
# fragment the way tcllib's nameserv sends it ({send 8 {{Bind a {1 h}}}}).
# Returns {code result} (code "eof" or "timeout" when no reply came).
proc ::t::raw_call {s cmd {ms 3000}} {
    set ser [raw_send $s [list $cmd]]
    if {[catch {raw_reply $s $ser $ms} r opts]} {
        return [list [string tolower [lindex [dict get $opts -errorcode] 1]] $r]
    }
    return [list [dict get $r code] [dict get $r result]]
}

# The command carried by a send/async message: its fragments joined as
# Tcl's concat joins them (docs/protocol.md §1), as a list.
proc ::t::msg_command {msg} {
    return [concat {*}[lindex $msg 2]]
}

# Wait up to MS ms for async messages on S (besides any already kept);
# returns the commands of all of them (and forgets them).
proc ::t::raw_events {s {ms 300}} {
    set deadline [expr {[clock milliseconds] + $ms}]
    while {[clock milliseconds] < $deadline} {
        if {[catch {raw_recv $s [expr {max(1, $deadline - [clock milliseconds])}]} m]} {
            break
        }
        lappend ::t::rasync($s) $m
    }
    set cmds {}
    foreach m [raw_async $s] {
        lappend cmds [msg_command $m]
    }
    return $cmds
}

# Wait until S has received N async messages (at most MS ms); returns the
# commands of those received (possibly fewer), forgetting them.
proc ::t::raw_wait_events {s n {ms 3000}} {
    set deadline [expr {[clock milliseconds] + $ms}]
    # Pings kept while something else was awaited are no events either.
    if {[info exists ::t::rasync($s)]} {
        set keep {}
        foreach m $::t::rasync($s) {
            if {[raw_is_ping $m]} {
                raw_puts $s [list [list reply [lindex $m 1] [list return -code 0 {}]]]
            } else {
                lappend keep $m
            }
        }
        set ::t::rasync($s) $keep
    }
    while {![info exists ::t::rasync($s)] || [llength $::t::rasync($s)] < $n} {
        set left [expr {$deadline - [clock milliseconds]}]
        if {$left <= 0 || [catch {raw_recv $s $left} m]} break
        # A liveness ping is no event: answered here, as raw_keepalive
        # would, and not counted (it came between two events once).
        if {[raw_is_ping $m]} {
            raw_puts $s [list [list reply [lindex $m 1] [list return -code 0 {}]]]
            continue
        }
        lappend ::t::rasync($s) $m
    }
    set cmds {}
    foreach m [raw_async $s] {
        if {[raw_is_ping $m]} {
            raw_puts $s [list [list reply [lindex $m 1] [list return -code 0 {}]]]
            continue
        }
        lappend cmds [msg_command $m]
    }
    return $cmds
}

# Async messages received so far on S (and forget them).
proc ::t::raw_async {s} {
    set l {}
    if {[info exists ::t::rasync($s)]} {
        set l $::t::rasync($s)
        unset ::t::rasync($s)
    }
    return $l
}

# The registry's Commreg/Hello dict on PORT, or "" if none.
proc ::t::hello {port} {
    if {[catch {raw_open $port} s]} { return "" }
    lassign [raw_call $s {Commreg/Hello}] code res
    raw_close $s
    if {$code ne "0"} { return "" }
    return $res
}

# nns Search over a fresh raw connection: the dict, or an error.
proc ::t::search {port {pattern *}} {
    set s [raw_open $port]
    lassign [raw_call $s [list Search $pattern]] code res
    raw_close $s
    if {$code ne "0"} { error "Search $pattern: code $code: $res" }
    return $res
}

# Put the ::t:: helpers at hand in the test files.
namespace eval :: { namespace import ::t::* }

# ---------------------------------------------------------------------------
# Test applications (election_race, failover and chaos tests).
#
# tests/tools/capp (C, on the client library; built into COMMREG_TOOLS) and
# tests/tools/tclapp.tcl (Tcl, on the package comm::registry in tcl/)
# register names and print one flushed line per event: `registered NAME
# ASSIGNED`, `lost REASON`, `regained PORT ?hosted|connected?`, `renamed
# OLD NEW`, `error TEXT`; with --watch/-watch: `snapshot N`, `add NAME`,
# `remove NAME`.  app_start keeps every line each app prints (read through
# the event loop, so lines pile up while a test waits).

proc ::t::tools_dir {} {
    if {[info exists ::env(COMMREG_TOOLS)] && $::env(COMMREG_TOOLS) ne ""} {
        return $::env(COMMREG_TOOLS)
    }
    # Run by hand: beside the commregd in use (build*/local -> build*/tests).
    return [file join [file dirname [find_bin]] tests]
}

proc ::t::src_dir {} {
    variable libdir
    if {[info exists ::env(COMMREG_SRC)] && $::env(COMMREG_SRC) ne ""} {
        return $::env(COMMREG_SRC)
    }
    return [file dirname [file dirname $libdir]]
}

# The C test app, or "" when it is not built.
proc ::t::capp_path {} {
    set p [file join [tools_dir] capp]
    return [expr {[file executable $p] ? $p : ""}]
}

# TCLLIBPATH for a Tcl process the tests start: DIR (where the package
# is) and the directories of the tests' own TCLLIBPATH (the build's tcl/,
# where its compiled helper is built: tests/CMakeLists.txt).
proc ::t::tcllibpath {dir} {
    set l [::list $dir]
    if {[info exists ::env(TCLLIBPATH)]} { lappend l {*}$::env(TCLLIBPATH) }
    return $l
}

# Should the package use its compiled helper here?  As the tests' build
# says (COMMREG_TCL_KERNEL), or, run by hand, as the package found it.
proc ::t::tcl_kernel_expected {} {
    if {[info exists ::env(COMMREG_TCL_KERNEL)] && $::env(COMMREG_TCL_KERNEL) in {0 1}} {
        return $::env(COMMREG_TCL_KERNEL)
    }
    return [expr {[info exists ::comm::registry::kernel] && $::comm::registry::kernel}]
}

# The directories of the package's compiled helper (comm_registry_kernel*)
# the tests use: {} when they use the package without it.
proc ::t::tcl_kernel_dirs {} {
    if {![info exists ::env(COMMREG_TCL_KERNEL)] || $::env(COMMREG_TCL_KERNEL) ne "1"
        || ![info exists ::env(TCLLIBPATH)]} {
        return {}
    }
    set dirs {}
    foreach d $::env(TCLLIBPATH) {
        lappend dirs {*}[glob -nocomplain -type d -directory $d comm_registry_kernel*]
    }
    return $dirs
}

# The Tcl test app, or "" when it (or the package it uses) is missing.
proc ::t::tclapp_path {} {
    set p [file join [src_dir] tests tools tclapp.tcl]
    if {![file exists $p]
        || ![llength [glob -nocomplain [file join [src_dir] tcl *.tcl] \
                          [file join [src_dir] tcl * *.tcl]]]} {
        return ""
    }
    return $p
}

# app_start KIND HOME ?ARG...?: start a test app for HOME; KIND is c,
# c-inprocess or tcl; ARGs are the names (or --watch PATTERN, given here as
# -watch PATTERN for either kind).  Returns its channel.
proc ::t::app_start {kind home args} {
    set wrap {}
    if {[lindex $args 0] eq "-barrier"} {
        # Held at a barrier until barrier_release (see barrier_new).
        set wrap [barrier_wrap [lindex $args 1]]
        set args [lrange $args 2 end]
    }
    set wargs {}
    if {[lindex $args 0] eq "-watch"} {
        set wargs [lrange $args 0 1]
        set args [lrange $args 2 end]
    }
    switch -- $kind {
        c - c-inprocess {
            set cmd [list [capp_path] --home $home --commregd [app_commregd_path]]
            if {$kind eq "c-inprocess"} { lappend cmd --inprocess }
            if {[llength $wargs]} { lappend cmd --watch [lindex $wargs 1] }
        }
        tcl {
            set cmd [list env TCLLIBPATH=[tcllibpath [file join [src_dir] tcl]] \
                         [info nameofexecutable] [tclapp_path] \
                         -home $home -commregd [app_commregd_path]]
            if {[llength $wargs]} { lappend cmd -watch [lindex $wargs 1] }
        }
        default { error "app_start: bad kind \"$kind\"" }
    }
    set ch [spawn -home $home {*}$wrap {*}$cmd {*}$args]
    set ::t::applines($ch) {}
    set ::t::appinfo($ch) [dict create kind $kind names $args \
        pid [spawn_pid $ch] t0 [clock milliseconds] eof 0]
    fileevent $ch readable [list ::t::app_drain $ch]
    return $ch
}

# The commregd apps run: ::t::app_commregd when set (a wrapper adding
# options, as the benchmarks' --no-standby), else the one built.
proc ::t::app_commregd_path {} {
    if {[info exists ::t::app_commregd]} { return $::t::app_commregd }
    return [commregd_path]
}

proc ::t::app_drain {ch} {
    if {![info exists ::t::appinfo($ch)]} return
    while 1 {
        if {[catch {gets $ch line} n]} { set n -1 }
        if {$n < 0} break
        lappend ::t::applines($ch) $line
    }
    if {[catch {eof $ch} e] || $e} {
        catch {fileevent $ch readable {}}
        dict set ::t::appinfo($ch) eof 1
    }
}

proc ::t::app_pid {ch} { return [dict get $::t::appinfo($ch) pid] }
proc ::t::app_kind {ch} { return [dict get $::t::appinfo($ch) kind] }
proc ::t::app_requested {ch} { return [dict get $::t::appinfo($ch) names] }

# Every line the app printed so far (from line FROM on).
proc ::t::app_lines {ch {from 0}} {
    if {[info exists ::t::appinfo($ch)]} { app_drain $ch }
    if {![info exists ::t::applines($ch)]} { return {} }
    return [lrange $::t::applines($ch) $from end]
}

proc ::t::app_mark {ch} { return [llength [app_lines $ch]] }

# How many of its lines (from FROM on) match the glob PATTERN.
proc ::t::app_count {ch pattern {from 0}} {
    return [llength [lsearch -all -glob [app_lines $ch $from] $pattern]]
}

# The words of an app's line: a Tcl list of N words (tclapp writes its
# lines as lists, `registered foo {foo #2}`), else split at the first N-1
# spaces, the last word taking the rest (`registered foo foo #2`).
proc ::t::app_words {line n} {
    if {[string is list $line] && [llength $line] == $n} {
        return $line
    }
    set w {}
    set rest $line
    for {set i 1} {$i < $n} {incr i} {
        set sp [string first " " $rest]
        if {$sp < 0} { return {} }
        lappend w [string range $rest 0 [expr {$sp - 1}]]
        set rest [string range $rest [expr {$sp + 1}] end]
    }
    lappend w $rest
    return $w
}

# The names the app holds now, as its lines tell: ASSIGNED of each
# `registered NAME ASSIGNED`, then `renamed OLD NEW` applied.
proc ::t::app_names {ch} {
    set held {}
    foreach line [app_lines $ch] {
        if {[string match "registered *" $line]} {
            lassign [app_words $line 3] - req got
            if {$req ne ""} { dict set held $req $got }
        } elseif {[string match "renamed *" $line]} {
            if {[string is list $line] && [llength $line] == 3} {
                lassign $line - old new
                foreach {req got} $held {
                    if {$got eq $old} { dict set held $req $new; break }
                }
                continue
            }
            # Plain text: OLD and NEW may each be "base #N"; OLD is a name
            # we hold, so NEW is what follows it.
            set rest [string range $line 8 end]
            foreach {req got} $held {
                if {[string match "$got *" $rest]} {
                    dict set held $req [string range $rest [string length "$got "] end]
                    break
                }
            }
        }
    }
    return [dict values $held]
}

# 1 once the app printed a `registered` line for every name it asked for.
proc ::t::app_registered {ch} {
    return [expr {[app_count $ch "registered *"] >= [llength [app_requested $ch]]}]
}

# Stop an app (SIGKILL by default) and forget its channel; its lines stay.
proc ::t::app_kill {ch {sig KILL}} {
    app_lines $ch
    unset -nocomplain ::t::appinfo($ch)
    stop $ch $sig
}

# The registry's table on PORT (Commreg/List): a list of entry dicts, or
# an error.
proc ::t::reg_list {port {pattern *}} {
    set s [raw_open $port]
    lassign [raw_call $s [list Commreg/List $pattern]] code res
    raw_close $s
    if {$code ne "0"} { error "Commreg/List: code $code: $res" }
    return $res
}

# The registry's names on PORT, or {-} when it does not answer.
proc ::t::reg_names {port {pattern *}} {
    if {$port eq "" || [catch {reg_list $port $pattern} l]} { return - }
    return [lmap e $l { dict get $e name }]
}

# PID of the registry answering on HOME's port file, or "".
proc ::t::registry_pid {home} {
    set h [hello [file_port $home]]
    if {[dict exists $h pid]} { return [dict get $h pid] }
    return ""
}

# A start barrier: commands wrapped as `sh -c {cat FIFO >/dev/null; exec
# CMD...}` block opening the FIFO until barrier_release opens and closes
# it, then all go at once.  Returns the FIFO's path.
proc ::t::barrier_new {} {
    set f [newfile barrier]
    exec mkfifo -m 0600 $f
    return $f
}

proc ::t::barrier_wrap {fifo args} {
    return [list sh -c {cat "$0" >/dev/null; exec "$@"} $fifo {*}$args]
}

# Let everyone waiting at FIFO go (bounded: nobody waiting is not a hang).
proc ::t::barrier_release {fifo} {
    catch {exec timeout 5 sh -c {: >"$0"} $fifo}
}

# Is the test app WHAT (capp or tclapp) there?  Missing while its source
# exists is a failure (it should have been built); not written yet, a note
# (the caller leaves out what needs it).
proc ::t::have_app {what} {
    switch -- $what {
        capp   { set p [capp_path]; set src [file join [src_dir] tests tools capp.c] }
        tclapp { set p [tclapp_path]; set src [file join [src_dir] tests tools tclapp.tcl] }
        default { error "have_app: capp or tclapp" }
    }
    if {$p ne ""} { return 1 }
    if {[file exists $src]} {
        check "$what is built and usable" 0
    } else {
        say "  note: $what does not exist yet; this part is not run"
    }
    return 0
}

proc ::t::all_registered {apps} {
    foreach a $apps {
        if {![app_registered $a]} { return 0 }
    }
    return 1
}

# For failure messages: the apps not registered yet, with what they said.
proc ::t::not_registered {apps} {
    set l {}
    foreach a $apps {
        if {![app_registered $a]} {
            lappend l "pid [app_pid $a] [app_requested $a]: [app_lines $a]"
        }
    }
    return [join $l \n]
}

# Names the apps say they hold (registered/renamed lines).
proc ::t::held_names {apps} {
    set l {}
    foreach a $apps { lappend l {*}[app_names $a] }
    return $l
}

# The registry's table on PORT as "NAME|PORT" strings (each name with the
# comm port it was registered with), or {-} when it does not answer.
proc ::t::reg_pairs {port} {
    if {$port eq "" || [catch {reg_list $port} l]} { return - }
    return [lmap e $l { string cat [dict get $e name] | [dict get $e port] }]
}

# What a watcher app (app_start ... -watch PATTERN) believes is
# registered: its first `snapshot N` then every `add NAME` / `remove NAME`;
# a later `snapshot N` (after a failover) is followed by the difference
# to what it had, so the set carries on.
proc ::t::watch_view {ch} {
    set view [dict create]
    foreach line [app_lines $ch] {
        if {[string match "add *" $line]} {
            dict set view [lindex [app_words $line 2] 1] 1
        } elseif {[string match "remove *" $line]} {
            dict unset view [lindex [app_words $line 2] 1]
        }
    }
    return [lsort [dict keys $view]]
}

# How much slower than a plain build this one runs: 3 when commregd was
# built with AddressSanitizer (every process start, and the many starts of
# a failover, cost several times more), else 1; COMMREG_TEST_SLOWDOWN
# overrides.  Time bounds of the stress tests are multiplied by it: the
# figures they assert are for the plain build, the sanitizer build checks
# correctness.
proc ::t::slowdown {} {
    variable slowdown_
    if {[info exists slowdown_]} { return $slowdown_ }
    if {[info exists ::env(COMMREG_TEST_SLOWDOWN)]
        && [string is double -strict $::env(COMMREG_TEST_SLOWDOWN)]} {
        return [set slowdown_ $::env(COMMREG_TEST_SLOWDOWN)]
    }
    set slowdown_ 1
    catch {
        set f [open [commregd_path] rb]
        set bin [read $f]
        close $f
        if {[string first __asan_init $bin] >= 0} { set slowdown_ 3 }
    }
    return $slowdown_
}

# MS scaled by slowdown, as an integer.
proc ::t::slow {ms} {
    return [expr {int($ms * [slowdown])}]
}

# Wait (bounded) until exactly one commregd runs for HOME: starters that
# lost the election may still be on their way out.  Returns their PIDs.
proc ::t::one_commregd {home {ms 5000}} {
    wait_until {[llength [::t::commregds_of $home]] == 1} [slow $ms] 50
    return [commregds_of $home]
}

# The procs above came after the import at the end of the original
# helpers: import again (only what is new to ::).
namespace eval :: { namespace import ::t::* }

# ---------------------------------------------------------------------------
# The host gateway (commgwd) and the users who talk to it
# (gateway.test.tcl, gateway_reload.test.tcl).
#
# A "user" here is a dict: name uid gid home conf bin; every process of
# it runs with HOME, TCL_COMM_CONFIG_DIR=conf and COMMREG_COMMREGD set,
# through setpriv when it is another uid than ours (its PID stays the one
# we started, so it is ended by PID as everything else).

# The commgwd beside the commregd in use (build*/local -> build*/gateway).
proc ::t::gw_path {} {
    return [file join [file dirname [find_bin]] gateway commgwd]
}

# A directory every user can read and traverse (0755) holding copies of
# commregd, commreg, capp and the Tcl package: the build directory may
# not be reachable by other users.  Made once per run.
proc ::t::gw_bindir {} {
    variable gw_bindir_
    if {[info exists gw_bindir_] && [file isdirectory $gw_bindir_]} {
        return $gw_bindir_
    }
    set d [tempdir gwbin 0755]
    foreach src [list [commregd_path] [commreg_path] [file join [tools_dir] capp]] {
        set dst [file join $d [file tail $src]]
        file copy -force -- $src $dst
        file attributes $dst -permissions 0755
    }
    file mkdir [file join $d tcl]
    file attributes [file join $d tcl] -permissions 0755
    foreach f [glob -directory [file join [src_dir] tcl] *.tcl] {
        set dst [file join $d tcl [file tail $f]]
        file copy -force -- $f $dst
        file attributes $dst -permissions 0644
    }
    # The package's compiled helper, as the tests use it.
    foreach k [tcl_kernel_dirs] {
        set kd [file join $d tcl [file tail $k]]
        file mkdir $kd
        file attributes $kd -permissions 0755
        foreach f [glob -directory $k *] {
            set dst [file join $kd [file tail $f]]
            file copy -force -- $f $dst
            file attributes $dst -permissions 0644
        }
    }
    set gw_bindir_ $d
    return $d
}

# A configuration directory (0755) with FILES (a dict file name -> text,
# each written 0644) and a socket path in a directory of its own.
# Returns the directory; the socket path is [gw_socket DIR].
proc ::t::gw_confdir {files {socket ""}} {
    set d [tempdir gwconf 0755]
    if {$socket eq ""} {
        set socket [file join [tempdir gwsock 0755] gw.sock]
    }
    set ::t::gw_socket_($d) $socket
    dict for {name text} $files {
        set text [string map [list @SOCKET@ $socket @DIR@ $d] $text]
        write_file [file join $d $name] $text 0644
        file attributes [file join $d $name] -permissions 0644
    }
    return $d
}

proc ::t::gw_socket {dir} { return $::t::gw_socket_($dir) }

# Like gw_confdir, the directory being PARENT/NAME (made 0755 there), so
# that a test can change what lies above it.  Returns the directory.
proc ::t::gw_confdir_in {parent name files {socket ""}} {
    set d [file join $parent $name]
    file mkdir $d
    file attributes $d -permissions 0755
    if {$socket eq ""} {
        set socket [file join [tempdir gwsock 0755] gw.sock]
    }
    set ::t::gw_socket_($d) $socket
    dict for {fname text} $files {
        set text [string map [list @SOCKET@ $socket @DIR@ $d] $text]
        write_file [file join $d $fname] $text 0644
        file attributes [file join $d $fname] -permissions 0644
    }
    return $d
}

# (Re)write one file of a configuration directory (0644 unless PERM).
proc ::t::gw_write {dir name text {perm 0644}} {
    set text [string map [list @SOCKET@ [gw_socket $dir] @DIR@ $dir] $text]
    set tmp [file join $dir .$name.tmp]
    write_file $tmp $text $perm
    file attributes $tmp -permissions $perm
    file rename -force -- $tmp [file join $dir $name]
}

# Start commgwd on DIR and wait for its "ready".  Returns its channel
# (stderr, its log, is [spawn_err CH]); raises an error if it is not
# ready in time.
proc ::t::gw_start {dir args} {
    set ch [spawn [gw_path] --config-dir $dir {*}$args]
    set l [readline $ch [slow 10000]]
    if {$l ne "ready"} {
        error "commgwd on $dir: [show $l] instead of ready; log:\n[spawn_err $ch]"
    }
    return $ch
}

proc ::t::gw_pid {ch} { return [spawn_pid $ch] }
proc ::t::gw_log {ch} { return [gw_err $ch] }

# What a spawned process wrote to stderr, also after gw_exit_code.
proc ::t::gw_err {ch} {
    if {[info exists ::t::spawned($ch)]} { return [spawn_err $ch] }
    if {[info exists ::t::gw_errfile_($ch)]} { return [read_file $::t::gw_errfile_($ch)] }
    return ""
}

# Wait until the gateway's log (from offset FROM) matches the regexp RE.
proc ::t::gw_wait_log {ch re {ms 5000} {from 0}} {
    return [wait_until {[regexp -- $re [string range [::t::gw_log $ch] $from end]]} [slow $ms] 20]
}

proc ::t::gw_log_mark {ch} { return [string length [gw_log $ch]] }

# The process that serves for gateway CH: with [gateway] user, started
# as root, commgwd forks and its child serves while the parent stays
# root to read the configuration (gw_pid); else gw_pid itself.  Taken
# from its log ("host gateway on ... (pid N)"), "" before that line.
proc ::t::gw_serving_pid {ch} {
    if {[regexp {host gateway on [^\n]* \(pid ([0-9]+)\)} [gw_log $ch] -> pid]} {
        return $pid
    }
    return ""
}

proc ::t::gw_signal {ch sig} {
    exec kill -$sig [gw_pid $ch]
}

# A user for config DIR: NAME "" is ourselves.  A fresh HOME (0700, the
# user's own).
proc ::t::gw_user {name conf} {
    set home [tempdir home 0700]
    if {$name eq ""} {
        set uid [exec id -u]
        set gid [exec id -g]
        set name [exec id -un]
        set self 1
    } else {
        set uid [exec id -u $name]
        set gid [exec id -g $name]
        exec chown $uid:$gid $home
        set self 0
    }
    return [dict create name $name uid $uid gid $gid home $home conf $conf \
                self $self bin [gw_bindir]]
}

# The command line running CMD ARG... as user U with its environment.
proc ::t::gw_cmd {u args} {
    set cmd {}
    if {![dict get $u self]} {
        lappend cmd setpriv --reuid=[dict get $u uid] --regid=[dict get $u gid] \
            --init-groups
    }
    lappend cmd env HOME=[dict get $u home] \
        TCL_COMM_CONFIG_DIR=[dict get $u conf] \
        COMMREG_COMMREGD=[file join [dict get $u bin] commregd] \
        TCLLIBPATH=[list [file join [dict get $u bin] tcl]]
    return [list {*}$cmd {*}$args]
}

proc ::t::gw_bin {u exe} { return [file join [dict get $u bin] $exe] }

# Start U's registry (commregd in the foreground, log to a file) and wait
# until it serves.  Returns its PID; stopped when the scope ends.
proc ::t::gw_registry {u} {
    set home [dict get $u home]
    set log [newfile commregd-[dict get $u name]].log
    set pid [exec {*}[gw_cmd $u [gw_bin $u commregd] --home $home] \
                 </dev/null >& $log &]
    remember $pid
    set ::t::daemon_log($pid) $log
    watch_log "commregd of [dict get $u name] (pid $pid)" $log
    defer [list ::t::kill_proc $pid]
    wait_ready $home $pid -timeout [slow 10000]
    return $pid
}

# Wait until U's registry says it is linked to the gateway (its log).
proc ::t::gw_linked {u pid {ms 5000} {from 0}} {
    return [wait_until {[string first "host gateway: linked" \
        [string range [::t::daemon_log $pid] $from end]] >= 0} [slow $ms] 20]
}

# `commreg ARG...` as U, to its end: dict code out err.
proc ::t::gw_commreg {u args} {
    return [run -timeout 20 {*}[gw_cmd $u [gw_bin $u commreg] \
                                    --home [dict get $u home] {*}$args]]
}

# `commreg register NAME PORT --scope SCOPE` as U.  Returns a dict:
# ok 1 ch CHANNEL (it holds the name; stop it to let go) when it printed
# the name, else ok 0 line WHAT-IT-PRINTED err STDERR code EXIT.
proc ::t::gw_register {u name port {scope host}} {
    set ch [spawn {*}[gw_cmd $u [gw_bin $u commreg] --home [dict get $u home] \
                          register $name $port --scope $scope]]
    set l [readline $ch [slow 10000]]
    if {$l eq $name} {
        return [dict create ok 1 ch $ch]
    }
    set errfile [dict get $::t::spawned($ch) err]
    set code [gw_exit_code $ch [slow 5000]]
    if {$code eq ""} {
        set code timeout
        stop $ch
    }
    set err [read_file $errfile]
    return [dict create ok 0 line $l err [string trim $err] code $code]
}

# The exit status of a spawned process that ended (closing its channel),
# or "" when it still runs after MS ms.
proc ::t::gw_exit_code {ch {ms 5000}} {
    set pid [spawn_pid $ch]
    if {![wait_until {![::t::alive $pid]} $ms]} { return "" }
    catch {fconfigure $ch -blocking 1}
    set code 0
    if {[catch {close $ch} msg opts]} {
        set ec [dict get $opts -errorcode]
        set code [expr {[lindex $ec 0] eq "CHILDSTATUS" ? [lindex $ec 2] : -1}]
    }
    set ::t::gw_errfile_($ch) [dict get $::t::spawned($ch) err]
    unset -nocomplain ::t::spawned($ch)
    return $code
}

# capp as U (app_lines, app_count ... work on the channel).
proc ::t::gw_capp {u args} {
    set ch [spawn {*}[gw_cmd $u [gw_bin $u capp] --home [dict get $u home] \
                          --commregd [gw_bin $u commregd] {*}$args]]
    set names {}
    for {set i 0} {$i < [llength $args]} {incr i} {
        set a [lindex $args $i]
        if {$a in {--scope --watch --lookup}} {
            incr i
        } elseif {![string match --* $a]} {
            lappend names $a
        }
    }
    set ::t::applines($ch) {}
    set ::t::appinfo($ch) [dict create kind c names $names \
        pid [spawn_pid $ch] t0 [clock milliseconds] eof 0]
    fileevent $ch readable [list ::t::app_drain $ch]
    return $ch
}

# Wait until app CH printed a line matching PATTERN (from line FROM).
proc ::t::gw_app_wait {ch pattern {ms 10000} {from 0}} {
    return [wait_until {[::t::app_count $ch $pattern $from] > 0} [slow $ms] 20]
}

# The first line of app CH matching PATTERN, or "".
proc ::t::gw_app_line {ch pattern {from 0}} {
    set l [lsearch -inline -glob [app_lines $ch $from] $pattern]
    return $l
}

# A TCP listener on 127.0.0.1 owned by U (a tclsh printing its port).
# Returns {channel port}.
proc ::t::gw_listener {u} {
    set f [newfile listener].tcl
    write_file $f {
        set s [socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.1 0]
        puts [lindex [fconfigure $s -sockname] 2]
        flush stdout
        vwait forever
    } 0644
    set ch [spawn {*}[gw_cmd $u [info nameofexecutable] $f]]
    set port [readline $ch [slow 10000]]
    if {![string is integer -strict $port]} {
        error "listener of [dict get $u name]: [show $port] [spawn_err $ch]"
    }
    return [list $ch $port]
}

# `commreg list` as U, as a list of dicts name port host user pid (user
# "" when the table has no USER column).
proc ::t::gw_list {u {pattern *}} {
    set r [gw_commreg $u list $pattern]
    if {[dict get $r code] != 0} {
        error "commreg list as [dict get $u name]: [dict get $r err]"
    }
    set lines [split [string trimright [dict get $r out] \n] \n]
    set hasuser [expr {[lsearch -exact [lindex $lines 0] USER] >= 0}]
    set rows {}
    foreach l [lrange $lines 1 end] {
        # Names here have no spaces: the columns are words.
        if {$hasuser} {
            lassign $l name port host user pid
        } else {
            lassign $l name port host pid
            set user ""
        }
        lappend rows [dict create name $name port $port host $host user $user pid $pid]
    }
    return $rows
}

proc ::t::gw_list_names {u {pattern *}} {
    if {[catch {gw_list $u $pattern} rows]} { return [list <error $rows>] }
    return [lmap r $rows { dict get $r name }]
}

# The row of NAME in U's list, or {}.
proc ::t::gw_row {u name} {
    if {[catch {gw_list $u} rows]} { return {} }
    foreach r $rows {
        if {[dict get $r name] eq $name} { return $r }
    }
    return {}
}

# Run the Tcl package as U: `comm::registry::register ARGS` in a fresh
# tclsh; returns {0 ASSIGNED} or {1 ERROR-MESSAGE} (or {timeout ...}).
proc ::t::gw_tcl_register {u args} {
    set f [newfile tclreg].tcl
    write_file $f {
        package require comm
        package require comm::registry
        comm::registry::configure -home $env(HOME) -commregd $env(COMMREG_COMMREGD)
        set code [catch {comm::registry::register {*}$argv} res]
        puts [list $code $res]
        flush stdout
        if {$code == 0} { vwait forever }
        exit 0
    } 0644
    set ch [spawn {*}[gw_cmd $u [info nameofexecutable] $f {*}$args]]
    set l [readline $ch [slow 15000]]
    if {[string match <*> $l]} {
        return [list timeout "$l [spawn_err $ch]" $ch]
    }
    return [list {*}$l $ch]
}

# Make a throwaway group (removed at the end of the run).
proc ::t::gw_groupadd {name} {
    set r [run groupadd $name]
    if {[dict get $r code] != 0} { error "groupadd $name: [dict get $r err]" }
    on_cleanup [list catch [list exec groupdel $name 2>@1]]
}

# Make a throwaway user with primary group GROUP and supplementary
# groups SUPP, no home of its own (removed at the end of the run; its
# processes are ended before).
proc ::t::gw_useradd {name group {supp {}}} {
    set cmd [list useradd -M -N -g $group -d /nonexistent -s /usr/sbin/nologin]
    if {[llength $supp]} { lappend cmd -G [join $supp ,] }
    set r [run {*}$cmd $name]
    if {[dict get $r code] != 0} { error "useradd $name: [dict get $r err]" }
    on_cleanup [list catch [list exec userdel $name 2>@1]]
}

namespace eval :: { namespace import ::t::* }

# ---------------------------------------------------------------------------
# Limits (limits.test.tcl, bad_peers.test.tcl): memory, stopped
# processes, raw peers that answer the liveness ping.

# PID's resident set (VmRSS of /proc/PID/status) in KiB, or "" when it
# is gone.
proc ::t::rss_kb {pid} {
    set text [read_file /proc/$pid/status]
    if {[regexp -line {^VmRSS:\s+([0-9]+)\s+kB} $text -> kb]} { return $kb }
    return ""
}

# Stop PID with SIGSTOP; a SIGCONT is deferred to the end of the current
# scope (it runs before the scope's earlier defers end the process, so a
# stopped process is never left behind nor signalled while stopped).
proc ::t::sigstop {pid} {
    if {![ours $pid]} { error "sigstop: pid $pid is not one of ours" }
    exec kill -STOP $pid
    defer [list ::t::sigcont $pid]
}

proc ::t::sigcont {pid} {
    if {[alive $pid] && [ours $pid]} { catch {exec kill -CONT $pid} }
}

# How many lines of PID's log since MARK match the glob PATTERN.
proc ::t::log_count {pid mark pattern} {
    set n 0
    foreach line [split [log_since $pid $mark] \n] {
        if {[string match $pattern $line]} { incr n }
    }
    return $n
}

# raw_keepalive S ?MS?: from now on answer the registry's liveness pings
# on the raw connection S (`send N {}`, an empty script, answered with an
# empty result as any comm peer does), checked every MS ms through the
# event loop, so that a raw peer that is otherwise quiet is not taken for
# a hung one.  Pings met by raw_recv/raw_reply meanwhile are answered
# too; every other message is left where they leave it.  Ends with the
# connection (raw_close).
proc ::t::raw_keepalive {s {ms 50}} {
    after $ms [list ::t::raw_keepalive_poll $s $ms]
}

# Is the raw message M a liveness ping: a send whose script is empty
# (`{send 7 {{}}}`: one empty fragment)?
proc ::t::raw_is_ping {m} {
    return [expr {[string is list $m] && [llength $m] == 3
                  && [lindex $m 0] eq "send"
                  && [string is list [lindex $m 2]]
                  && [string trim [msg_command $m]] eq ""}]
}

proc ::t::raw_keepalive_poll {s ms} {
    if {![info exists ::t::rbuf($s)]} return
    if {![catch {read $s} data]} {
        append ::t::rbuf($s) $data
        raw_extract $s
    }
    foreach var [list ::t::rqueue($s) ::t::rasync($s)] {
        if {![info exists $var]} continue
        set keep {}
        foreach m [set $var] {
            if {[raw_is_ping $m]} {
                raw_puts $s [list [list reply [lindex $m 1] [list return -code 0 {}]]]
            } else {
                lappend keep $m
            }
        }
        set $var $keep
    }
    if {[catch {eof $s} e] || $e} return
    after $ms [list ::t::raw_keepalive_poll $s $ms]
}

# Like gw_registry, with more commregd options (--liveness MS ...).
proc ::t::gw_registry_opts {u args} {
    set home [dict get $u home]
    set log [newfile commregd-[dict get $u name]].log
    set pid [exec {*}[gw_cmd $u [gw_bin $u commregd] --home $home {*}$args] \
                 </dev/null >& $log &]
    remember $pid
    set ::t::daemon_log($pid) $log
    watch_log "commregd of [dict get $u name] (pid $pid, $args)" $log
    defer [list ::t::kill_proc $pid]
    wait_ready $home $pid -timeout [slow 10000]
    return $pid
}

# ---------------------------------------------------------------------------
# Standbys, watches and listeners, as several test files look at them.

# Wait until HOME's registry has a standby; its pid ("" if none came).
proc ::t::standby_of {home} {
    wait_until {[llength [standbys_of $home]] == 1} [slow 5000] 20
    set l [standbys_of $home]
    return [expr {[llength $l] == 1 ? [lindex $l 0] : ""}]
}

# How many entries the registry on PORT holds for applications gone in a
# failover (its Commreg/Stats `held`), or "-" when it does not answer.
proc ::t::stats_held {port} {
    if {[catch {
        set s [raw_open $port]
        lassign [raw_call $s {Commreg/Stats}] code res
        raw_close $s
    }] || $code ne "0"} { return - }
    return [expr {[dict exists $res held] ? [dict get $res held] : 0}]
}

# The entry dict of NAME in the table on PORT, or {}.
proc ::t::entry_named {port name} {
    foreach e [reg_list $port] {
        if {[dict get $e name] eq $name} { return $e }
    }
    return {}
}

# The watch events (Commreg/Event TAG OP ENTRY) that came on the raw
# connection S within MS, as {OP NAME} pairs.
proc ::t::watch_events {s {ms 200}} {
    set l {}
    foreach cmd [raw_events $s $ms] {
        if {[lindex $cmd 0] ne "Commreg/Event"} continue
        lappend l [list [lindex $cmd 2] [dict get [lindex $cmd 3] name]]
    }
    return $l
}

# A connection to 127.0.0.1:PORT, waited for (at most 3 s) until it is
# up: with a listener of this process, it stays in the listener's queue,
# not accepted, while the event loop does not run.  Closed with the scope.
proc ::t::connect_queued {port} {
    set s [socket -async 127.0.0.1 $port]
    defer [list catch [list close $s]]
    set deadline [expr {[clock milliseconds] + 3000}]
    while {[fconfigure $s -connecting] && [clock milliseconds] < $deadline} {
        after 1
    }
    return $s
}

# The descriptor of PID's socket listening on PORT (read in its network
# namespace's /proc/PID/net/tcp), or "".
proc ::t::listening_fd {pid port} {
    set inode ""
    foreach line [lrange [split [read_file /proc/$pid/net/tcp] \n] 1 end] {
        set w [regexp -all -inline {\S+} $line]
        if {[llength $w] < 10} continue
        lassign [split [lindex $w 1] :] - hexport
        if {[lindex $w 3] eq "0A" && [scan $hexport %x] == $port} {
            set inode [lindex $w 9]
        }
    }
    if {$inode eq ""} { return "" }
    foreach f [glob -nocomplain /proc/$pid/fd/*] {
        if {![catch {file readlink $f} l] && $l eq "socket:\[$inode\]"} {
            return [file tail $f]
        }
    }
    return ""
}

# Is descriptor FD of PID in the set its event loop waits on (the
# epoll instance's fdinfo)?  An error when it has no epoll instance.
proc ::t::polled {pid fd} {
    foreach f [glob -nocomplain /proc/$pid/fd/*] {
        if {![catch {file readlink $f} l] && $l eq "anon_inode:\[eventpoll\]"} {
            set info [read_file /proc/$pid/fdinfo/[file tail $f]]
            return [regexp -line "^tfd:\\s+$fd\\s" $info]
        }
    }
    error "pid $pid has no epoll instance"
}

namespace eval :: { namespace import ::t::* }
