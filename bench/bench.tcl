# Failover and election benchmarks (docs/performance.md).  Run through
# bench/run.sh, which builds what is needed and sets the environment:
#
#   COMMREG_BIN    directory with commregd and commreg
#   COMMREG_TOOLS  directory with the test app capp (tests/tools/capp.c)
#   COMMREG_SRC    the source tree
#   BENCH_RUNS     repetitions per row (5)
#   BENCH_M        failover sizes, C apps ("100 500"), with and without
#                  the registry's standby
#   BENCH_N        election sizes ("10 50")
#   BENCH_INPROC_M in-process failover sizes ("10 100")
#   BENCH_TCL_M    failover sizes with Tcl apps ("100"), the same
#
# Applications are real processes, one per application, each with its own
# connection and one name: the C test app `capp` (tests/tools/capp.c, on
# the async C library), or for the Tcl rows tests/tools/tclapp.tcl (on the
# package comm::registry).  Times are measured at the registry:
# after the SIGKILL (or the barrier's release) the harness connects to the
# registry's port as soon as it accepts and asks Commreg/Stats every 2 ms
# until every name is there, then checks with Commreg/List that the table
# is the expected one (same names, serials and ports).  Prints a markdown
# table on stdout; progress goes to stderr.  Exits 0; a row whose runs did
# not all complete says so in its notes.
source [file join [file dirname [file normalize [info script]]] .. tests integration lib.tcl]

proc env_or {name default} {
    if {[info exists ::env($name)]} { return $::env($name) }
    return $default
}

set runs [env_or BENCH_RUNS 5]
set sizes_m [env_or BENCH_M "100 500"]
set sizes_n [env_or BENCH_N "10 50"]
set sizes_inproc [env_or BENCH_INPROC_M "10 100"]
set sizes_tcl [env_or BENCH_TCL_M "100"]
set rows {}

proc progress {msg} {
    puts stderr "bench: $msg"
    flush stderr
}

# Every process we start is ended by its PID at the end (lib.tcl's
# cleanup); a watchdog ends a run that hangs.
::t::scope_push bench
set bench_watchdog [after [expr {30 * 60 * 1000}] {
    progress "watchdog: still running after 30 min, giving up"
    ::t::cleanup
    exit 0
}]

proc median {l} {
    set l [lsort -integer $l]
    set n [llength $l]
    if {!$n} { return - }
    if {$n % 2} { return [lindex $l [expr {$n / 2}]] }
    return [expr {([lindex $l [expr {$n / 2 - 1}]] + [lindex $l [expr {$n / 2}]]) / 2}]
}

proc maxof {l} {
    if {![llength $l]} { return - }
    return [tcl::mathfunc::max {*}$l]
}

proc row {what size times wanted notes} {
    lappend ::rows [list $what $size "[llength $times]/$wanted" \
                        [median $times] [maxof $times] $notes]
    progress "$what, $size: [lsort -integer $times] ms"
}

# Time (ms from T0) at which the registry on PORT (or, when PORT is "",
# the one HOME's port file names) holds N entries, none of them only held
# for an application that has not come back (a standby's grace); "" if
# not within MS.  With ANSWERED, the caller's variable of that name is set
# to the time of the registry's first answer ("" if none).
proc wait_entries {home port n t0 ms {answered ""}} {
    if {$answered ne ""} {
        upvar 1 $answered first
        set first ""
    }
    set deadline [expr {$t0 + $ms}]
    set s ""
    set at ""
    while {[clock milliseconds] < $deadline} {
        set p [expr {$port ne "" ? $port : [::t::file_port $home]}]
        if {$s eq ""} {
            if {$p eq "" || [catch {::t::raw_open $p} s]} {
                set s ""
                ::t::pause 2
                continue
            }
        }
        lassign [::t::raw_call $s {Commreg/Stats} 2000] code res
        if {$code ne "0"} {
            ::t::raw_close $s
            set s ""
            ::t::pause 2
            continue
        }
        if {$answered ne "" && $first eq ""} {
            set first [expr {[clock milliseconds] - $t0}]
        }
        set held [expr {[dict exists $res held] ? [dict get $res held] : 0}]
        if {[dict get $res entries] >= $n && $held == 0} {
            set at [expr {[clock milliseconds] - $t0}]
            break
        }
        ::t::pause 2
    }
    if {$s ne ""} { ::t::raw_close $s }
    return $at
}

# Start apps (KIND c, c-inprocess or tcl) for HOME, one name each, in batches
# so that starting 500 is not itself a storm; wait until all registered.
proc start_capps {kind home names} {
    set apps {}
    set batch {}
    foreach n $names {
        set a [::t::app_start $kind $home $n]
        lappend apps $a
        lappend batch $a
        if {[llength $batch] >= 25} {
            ::t::wait_until {[::t::all_registered $batch]} 20000 20
            set batch {}
        }
    }
    if {![::t::wait_until {[::t::all_registered $apps]} 60000 50]} {
        error "not all [llength $names] apps registered:\n[::t::not_registered $apps]"
    }
    return $apps
}

proc stop_all {apps} {
    foreach a $apps { catch {::t::app_kill $a KILL} }
}

proc kill_pid {pid} {
    catch {exec kill -KILL $pid}
}

proc end_registries {home} {
    foreach p [::t::standbys_of $home] { ::t::kill_proc $p KILL }
    foreach p [::t::commregds_of $home] { ::t::kill_proc $p KILL }
}

# ---------------------------------------------------------------------------
# Failover, commregd spawned by the apps: SIGKILL the registry, time until
# its port accepts a connection again, until a registry answers there, and
# until all M names are back (same port, same serials, same ports) held by
# their applications again (Commreg/Stats "held" 0: not a standby's hold
# of the dead registry's entries, docs/election.md).  SB 1: the registry
# keeps a standby (the default); SB 0: no registry of the run keeps one
# (the apps run commregd through a wrapper adding --no-standby), so the
# apps elect a new registry as when no standby lives.

# A commregd that keeps no standby, for the apps to run.
proc no_standby_commregd {} {
    set f [::t::newfile commregd-nosb]
    ::t::write_file $f "#!/bin/sh\nexec [::t::commregd_path] --no-standby \"\$@\"\n" 0755
    return $f
}

# Ms from T0 (the SIGKILL of PID) until 127.0.0.1:PORT accepts (tried
# every ms once PID is dead), until a
# registry answers Commreg/Stats there, and until it holds N entries none
# of which is held; "" for those not reached within MS.
proc failover_times {pid port n t0 ms} {
    set deadline [expr {$t0 + $ms}]
    # Dead first (its descriptors closed: gone, or a zombie), or a probe
    # made while SIGKILL is still on its way reaches it.
    while {[clock milliseconds] < $deadline && ![catch {::t::read_file /proc/$pid/stat} st]
           && [lindex [split [lindex [split $st )] end]] 1] ne "Z"} {}
    set conn ""
    while {[clock milliseconds] < $deadline} {
        if {![catch {socket 127.0.0.1 $port} s]} {
            set conn [expr {[clock milliseconds] - $t0}]
            close $s
            break
        }
        after 1
    }
    set all [wait_entries "" $port $n $t0 $ms answer]
    return [list $conn $answer $all]
}

# CHECK (Tcl apps): kernel, the package's compiled helper asks the kernel
# who accepted a connection; proc, the package reads /proc/net/tcp
# (tests/tools/tclapp.tcl reads COMMREG_TCL_KERNEL).
proc bench_failover {kind m {sb 1} {check kernel}} {
    global runs
    set ::env(COMMREG_TCL_KERNEL) [expr {$check eq "kernel"}]
    set home [::t::new_home]
    if {$sb} {
        lassign [::t::start_registry $home] rpid port
    } else {
        lassign [::t::start_registry $home --no-standby] rpid port
        set ::t::app_commregd [no_standby_commregd]
    }
    set names {}
    for {set i 0} {$i < $m} {incr i} { lappend names fo$i }
    if {$kind eq "tcl" && [::t::tclapp_path] eq ""} { error "no tests/tools/tclapp.tcl" }
    progress "failover M=$m, [expr {$sb ? "standby" : "no standby"}]: starting $m $kind apps"
    set apps [start_capps $kind $home $names]
    unset -nocomplain ::t::app_commregd
    set before [lsort [::t::reg_pairs $port]]
    set tconn {}
    set tanswer {}
    set times {}
    set notes {}
    set bad 0
    for {set r 0} {$r < $runs} {incr r} {
        if {$sb && ![::t::wait_until {[llength [::t::standbys_of $home]] == 1} 5000 20]} {
            lappend notes "run [expr {$r + 1}]: no standby"
        }
        set rpid [::t::registry_pid $home]
        if {$rpid eq ""} {
            incr bad
            lappend notes "run [expr {$r + 1}]: no registry answers"
            break
        }
        # The standby has the whole table (streamed as the apps came).
        ::t::pause 100
        set t0 [clock milliseconds]
        kill_pid $rpid
        lassign [failover_times $rpid $port $m $t0 60000] c a t
        if {$c ne ""} { lappend tconn $c }
        if {$a ne ""} { lappend tanswer $a }
        if {$t eq ""} {
            incr bad
            lappend notes "run [expr {$r + 1}]: not all back within 60 s"
            ::t::wait_until {[lsort [::t::reg_pairs $port]] eq $before} 30000 100
            continue
        }
        set same [::t::wait_until {[lsort [::t::reg_pairs $port]] eq $before} 5000 20]
        if {!$same} {
            incr bad
            lappend notes "run [expr {$r + 1}]: table differs"
        }
        lappend times $t
        # Let the losing `commregd --detach` starters exit before the next.
        ::t::wait_until {[llength [::t::commregds_of $home]] == 1} 5000 50
        ::t::pause 300
    }
    if {!$bad} { lappend notes "table identical after every run" }
    set who [expr {$kind eq "c" ? "C apps, commregd spawned"
                   : "Tcl apps (comm::registry, [expr {$check eq "kernel" ? "its helper asks the kernel" : "reading /proc"}])"}]
    set how [expr {$sb ? "with standby" : "no standby"}]
    row "failover, $who, $how: SIGKILL → port accepts again" $m $tconn $runs \
        [expr {$sb ? "probed once the harness sees the registry dead; it never stops accepting (standby.test.tcl)" : ""}]
    row "failover, $who, $how: SIGKILL → a registry answers" $m $tanswer $runs ""
    row "failover, $who, $how: SIGKILL → all M names back" $m $times $runs [join $notes "; "]
    stop_all $apps
    end_registries $home
}

# ---------------------------------------------------------------------------
# Failover, registry in-process: SIGKILL the app hosting it, time until
# another app hosts it and the M-1 others are back.

proc bench_failover_inproc {m} {
    global runs
    set home [::t::new_home]
    set names {}
    for {set i 0} {$i < $m} {incr i} { lappend names ip$i }
    progress "in-process failover M=$m: starting $m capps"
    set apps [start_capps c-inprocess $home $names]
    set port [::t::file_port $home]
    set times {}
    set notes {}
    set bad 0
    for {set r 0} {$r < $runs} {incr r} {
        set host [::t::registry_pid $home]
        set victim ""
        foreach a $apps { if {[::t::app_pid $a] == $host} { set victim $a } }
        if {$victim eq ""} {
            incr bad
            lappend notes "run [expr {$r + 1}]: the registry host ($host) is none of the apps"
            break
        }
        set apps [lmap a $apps {if {$a eq $victim} continue; set a}]
        set expected [lsort [lmap p [::t::reg_pairs $port] {
            if {[lindex [split $p |] 0] in [::t::app_names $victim]} continue; set p}]]
        set t0 [clock milliseconds]
        ::t::app_kill $victim KILL
        set t [wait_entries $home $port [llength $apps] $t0 60000]
        if {$t eq ""} {
            incr bad
            lappend notes "run [expr {$r + 1}]: not all back within 60 s"
            ::t::wait_until {[lsort [::t::reg_pairs $port]] eq $expected} 30000 100
            continue
        }
        if {![::t::wait_until {[lsort [::t::reg_pairs $port]] eq $expected} 5000 20]} {
            incr bad
            lappend notes "run [expr {$r + 1}]: table differs"
        }
        lappend times $t
        ::t::pause 300
    }
    if {!$bad} { lappend notes "table exact after every run (M-1, M-2 ... apps left)" }
    row "failover, registry in-process: SIGKILL of the host → all others back" $m $times $runs [join $notes "; "]
    stop_all $apps
}

# ---------------------------------------------------------------------------
# Election: N apps start at once with no registry; time from the barrier's
# release until all N names are registered (one registry).

proc bench_election {kind n} {
    global runs
    set times {}
    set notes {}
    set bad 0
    for {set r 0} {$r < $runs} {incr r} {
        set home [::t::new_home]
        set fifo [::t::barrier_new]
        set apps {}
        set names {}
        for {set i 0} {$i < $n} {incr i} {
            lappend apps [::t::app_start $kind $home -barrier $fifo el$i]
            lappend names el$i
        }
        # Every starter blocked at the barrier before it opens.
        ::t::pause [expr {300 + 10 * $n}]
        set t0 [clock milliseconds]
        ::t::barrier_release $fifo
        set t [wait_entries $home "" $n $t0 60000]
        if {$t eq ""} {
            incr bad
            lappend notes "run [expr {$r + 1}]: not all registered in 60 s"
        } else {
            lappend times $t
            set regs [expr {$kind eq "c" ? [llength [::t::commregds_of $home]] : 0}]
            if {$kind eq "c" && $regs != 1} {
                incr bad
                lappend notes "run [expr {$r + 1}]: $regs commregd"
            }
            if {[lsort [::t::reg_names [::t::file_port $home]]] ne [lsort $names]} {
                incr bad
                lappend notes "run [expr {$r + 1}]: table differs"
            }
        }
        stop_all $apps
        end_registries $home
    }
    if {!$bad} { lappend notes "one registry, every name, every run" }
    set what [expr {$kind eq "c" ? "election, N apps spawning commregd: release → all registered"
                    : "election, N apps with in-process registry: release → all registered"}]
    row $what $n $times $runs [join $notes "; "]
}

# N `commregd --detach` at once: release → every starter returned.  Each
# starter's stdout is a pipe to us; it reaches EOF when the starter exits
# (the detached registry has its stdout on /dev/null).
proc bench_election_commregd {n} {
    global runs
    set times {}
    set notes {}
    set bad 0
    for {set r 0} {$r < $runs} {incr r} {
        set home [::t::new_home]
        set fifo [::t::barrier_new]
        set chans {}
        for {set i 0} {$i < $n} {incr i} {
            set ch [open |[list env HOME=$home {*}[::t::barrier_wrap $fifo \
                [::t::commregd_path] --home $home --detach] </dev/null 2>/dev/null] r]
            fconfigure $ch -blocking 0
            ::t::remember [pid $ch]
            lappend chans $ch
        }
        ::t::pause [expr {300 + 10 * $n}]
        set t0 [clock milliseconds]
        ::t::barrier_release $fifo
        set open $chans
        set deadline [expr {$t0 + 30000}]
        while {[llength $open] && [clock milliseconds] < $deadline} {
            set still {}
            foreach ch $open {
                catch {read $ch}
                if {[eof $ch]} continue
                lappend still $ch
            }
            set open $still
            if {[llength $open]} { ::t::pause 2 }
        }
        set t [expr {[clock milliseconds] - $t0}]
        set codes {}
        foreach ch $chans {
            fconfigure $ch -blocking [expr {$ch ni $open}]
            if {[catch {close $ch} msg opts]} {
                set ec [dict get $opts -errorcode]
                lappend codes [expr {[lindex $ec 0] eq "CHILDSTATUS" ? [lindex $ec 2] : "?"}]
            } else {
                lappend codes 0
            }
        }
        if {[llength $open]} {
            incr bad
            lappend notes "run [expr {$r + 1}]: [llength $open] not returned in 30 s"
        } elseif {[lsort -unique $codes] ne "0"} {
            incr bad
            lappend notes "run [expr {$r + 1}]: exit codes [lsort -unique $codes]"
        } else {
            lappend times $t
            set k [llength [::t::commregds_of $home]]
            if {$k != 1} {
                incr bad
                lappend notes "run [expr {$r + 1}]: $k commregd"
            }
        }
        end_registries $home
    }
    if {!$bad} { lappend notes "one registry, every starter exits 0, every run" }
    row "election, N `commregd --detach`: release → all returned" $n $times $runs [join $notes "; "]
}

# ---------------------------------------------------------------------------

if {[::t::capp_path] eq ""} {
    progress "no capp in [::t::tools_dir]: build tests/tools/capp.c first"
    ::t::cleanup
    exit 1
}
proc loadavg {} {
    return [lrange [::t::read_file /proc/loadavg] 0 2]
}
proc cpu_model {} {
    regexp -line {^model name\s*:\s*(.*)$} [::t::read_file /proc/cpuinfo] -> m
    return [expr {[info exists m] ? $m : "?"}]
}
set load0 [loadavg]
set started [clock seconds]
foreach what [list {*}[lmap n $sizes_n {list election_commregd $n}] \
                  {*}[lmap n $sizes_n {list election c $n}] \
                  {*}[lmap n $sizes_n {list election c-inprocess $n}] \
                  {*}[concat {*}[lmap m $sizes_m {list [list failover c $m 1] [list failover c $m 0]}]] \
                  {*}[concat {*}[lmap m $sizes_tcl {list [list failover tcl $m 1 kernel] [list failover tcl $m 1 proc] [list failover tcl $m 0 kernel] [list failover tcl $m 0 proc]}]] \
                  {*}[lmap m $sizes_inproc {list failover_inproc $m}]] {
    if {[catch {bench_[lindex $what 0] {*}[lrange $what 1 end]} err]} {
        progress "[join $what]: $err"
        lappend rows [list [join $what] - - - - "failed: [string range $err 0 200]"]
    }
    ::t::cleanup
    ::t::scope_push bench
}

puts "| benchmark | size | runs | median ms | max ms | notes |"
puts "|---|---:|---:|---:|---:|---|"
foreach r $rows {
    puts "| [join $r " | "] |"
}
puts ""
puts "[exec nproc] × [cpu_model], Linux [exec uname -r], Tcl [info patchlevel];\
      load average (1, 5, 15 min) [join $load0 {, }] at the start,\
      [join [loadavg] {, }] at the end; [expr {[clock seconds] - $started}] s."
progress "done in [expr {[clock seconds] - $started}] s"
::t::cleanup
exit 0
