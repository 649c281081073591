# The distributed registry's figures (docs/performance.md, "Distributed
# registry"): three hosts as network namespaces on a bridge, one home
# (tests/integration/distributed_lib.tcl).  Run by bench/distributed/run.sh,
# which builds and sets COMMREG_BIN, COMMREG_SRC.  Measures:
#
#   propagation host -> host: an application on h1 registers DBENCH_N
#     names (200) one at a time, DBENCH_GAP_MS (10) apart; a watcher on h2
#     takes the time of each event.  The clock is the machine's (the
#     namespaces share it): from just before the application's send to
#     the watcher's event, median and p99;
#   purge: h1 holds DBENCH_PURGE names (100); its registry is killed
#     (SIGKILL); time until the watcher on h2 has had every remove (the
#     registries run with --no-standby: a standby would take over and
#     bring the names back for their applications, docs/election.md);
#   resync: h1 holds DBENCH_RESYNC names (10000); h2's registry is
#     killed and a new one started; time from its start until it holds
#     every copy (Commreg/Stats polled every 5 ms on h2);
#   memory per remote entry: h3's resident memory before and after h1's
#     DBENCH_RESYNC names arrive, per entry.
#
# Prints a markdown table on stdout, progress on stderr.  Needs root.
source [file join [file dirname [file normalize [info script]]] .. .. tests integration lib.tcl]
source [file join [file dirname [file normalize [info script]]] .. .. tests integration distributed_lib.tcl]

proc env_or {name default} {
    if {[info exists ::env($name)]} { return $::env($name) }
    return $default
}
proc progress {msg} {
    puts stderr "dbench: $msg"
    flush stderr
}

set N [env_or DBENCH_N 200]
set GAP [env_or DBENCH_GAP_MS 10]
set NPURGE [env_or DBENCH_PURGE 100]
set NRESYNC [env_or DBENCH_RESYNC 10000]
set LIVENESS 15000
set NET 10.[expr {64 + [pid] % 60}].[expr {[pid] % 250}]

set WATCHER {
    package require comm
    lassign $argv home host pattern
    set f [open [file join $home .tcl comm registry $host]]
    gets $f port
    close $f
    proc Commreg/Event {tag what e} {
        puts "[clock microseconds] $what [dict get $e name]"
        flush stdout
    }
    set snap [comm::comm send $port Commreg/Watch w $pattern]
    puts "ready [llength $snap]"
    flush stdout
    vwait forever
}

set REGISTRAR {
    package require comm
    lassign $argv home host n gap
    set f [open [file join $home .tcl comm registry $host]]
    gets $f port
    close $f
    for {set i 0} {$i < $n} {incr i} {
        set t [clock microseconds]
        comm::comm send $port Commreg/Register p$i 5000
        puts "$t p$i"
        flush stdout
        after $gap
    }
    puts done
    flush stdout
    vwait forever
}

set POLLER {
    package require comm
    lassign $argv home host want t0
    # The registry is starting: its port file, then its answers.
    set pf [file join $home .tcl comm registry $host]
    set port ""
    while 1 {
        if {$port eq "" && ![catch {open $pf} f]} {
            if {[gets $f line] > 0 && [string is integer -strict $line]} {
                set port $line
            }
            close $f
        }
        if {$port ne "" && ![catch {comm::comm send $port Commreg/Stats} s]
            && [dict get $s entries] >= $want} {
            puts "[clock microseconds] [dict get $s entries]"
            exit 0
        }
        if {[clock microseconds] - $t0 > 120000000} { puts "timeout"; exit 1 }
        after 5
    }
}

proc script {name text} {
    set f [file join [t::workdir] $name.tcl]
    if {![file exists $f]} { t::write_file $f $text 0644 }
    return $f
}

proc lines_until {ch pattern ms} {
    set l {}
    while 1 {
        set line [t::readline $ch $ms]
        if {[string match <*> $line]} { error "waiting for $pattern: $line" }
        lappend l $line
        if {[string match $pattern $line]} { return $l }
    }
}

proc rss_kib {pid} {
    regexp -line {^VmRSS:\s+([0-9]+)} [t::read_file /proc/$pid/status] -> k
    return $k
}

proc pct {sorted p} {
    set n [llength $sorted]
    set i [expr {min($n - 1, int(ceil($p * $n)) - 1)}]
    return [lindex $sorted [expr {max(0, $i)}]]
}

set rows {}
if {[exec id -u] != 0} {
    progress "needs root for network namespaces"
    exit 1
}
set started [clock seconds]
::t::scope_push bench
set code [catch {
    hub_new
    set n 0
    foreach h {h1 h2 h3} {
        host_new $h
        host_join $h [incr n]
    }
    set home [t::new_home]
    cookie_make $home
    foreach h {h1 h2 h3} { set reg($h) [registry_on $h $home --no-standby] }
    t::pause 1500

    # ---- propagation
    progress "propagation: $N names, $GAP ms apart"
    set w [t::spawn {*}[on h2 [info nameofexecutable] [script watcher $WATCHER] $home h2 p*]]
    lines_until $w "ready *" 10000
    set r [t::spawn {*}[on h1 [info nameofexecutable] [script registrar $REGISTRAR] $home h1 $N $GAP]]
    set sent {}
    foreach line [lines_until $r done 60000] {
        if {[llength $line] == 2} { dict set sent [lindex $line 1] [lindex $line 0] }
    }
    set got {}
    while {[dict size $got] < $N} {
        set line [t::readline $w 5000]
        if {[string match <*> $line]} break
        lassign $line t what name
        if {$what eq "add"} { dict set got $name $t }
    }
    set d {}
    dict for {name t} $got { lappend d [expr {($t - [dict get $sent $name]) / 1000.0}] }
    set d [lsort -real $d]
    lappend rows [list "propagation h1 -> h2 (register to watcher's event)" \
        "[format %.2f [pct $d 0.5]] ms median, [format %.2f [pct $d 0.99]] ms p99" \
        "[llength $d] of $N names"]
    t::stop $r
    t::stop $w

    # ---- purge of a killed host
    progress "purge: $NPURGE names"
    set w [t::spawn {*}[on h2 [info nameofexecutable] [script watcher $WATCHER] $home h2 q*]]
    lines_until $w "ready *" 10000
    set names {}
    for {set i 0} {$i < $NPURGE} {incr i} { lappend names q$i }
    set app [hold_on h1 $home 5001 $names]
    set adds 0
    while {$adds < $NPURGE} {
        set line [t::readline $w 10000]
        if {[string match <*> $line]} break
        if {[lindex $line 1] eq "add"} { incr adds }
    }
    set t0 [clock microseconds]
    exec kill -KILL $reg(h1)
    set removes 0
    set tlast $t0
    while {$removes < $NPURGE} {
        set line [t::readline $w 10000]
        if {[string match <*> $line]} break
        if {[lindex $line 1] eq "remove"} { incr removes; set tlast [lindex $line 0] }
    }
    lappend rows [list "purge of a killed host's $NPURGE names (SIGKILL to the last remove on h2)" \
        "[format %.2f [expr {($tlast - $t0) / 1000.0}]] ms" "$removes removes seen"]
    t::stop $app
    t::stop $w
    t::wait_until {![t::alive $::reg(h1)]} 2000
    set reg(h1) [registry_on h1 $home --no-standby]

    # ---- resync and memory
    progress "resync: $NRESYNC names"
    t::pause 1500
    set rss0 [rss_kib $reg(h3)]
    # A connection may hold 1024 names (--max-names): 1000 per holder.
    set apps {}
    for {set k 0} {$k < $NRESYNC} {incr k 1000} {
        set names {}
        for {set i $k} {$i < min($k + 1000, $NRESYNC)} {incr i} { lappend names r$i }
        lappend apps [hold_on h1 $home 5002 $names]
    }
    set ok [t::wait_until {[llength [names_on h3 $home r*]] == $::NRESYNC} 60000 200]
    t::pause 500
    set rss1 [rss_kib $reg(h3)]
    lappend rows [list "memory per remote entry (h3's RSS, $NRESYNC copies)" \
        "[format %.0f [expr {($rss1 - $rss0) * 1024.0 / $NRESYNC}]] bytes" \
        "[expr {$rss1 - $rss0}] KiB in all[expr {$ok ? {} : {; not all arrived}}]"]
    t::kill_proc $reg(h2) KILL
    t::wait_until {![t::alive $::reg(h2)]} 2000
    t::pause 500
    set t0 [clock microseconds]
    set p [t::spawn {*}[on h2 [info nameofexecutable] [script poller $POLLER] $home h2 $NRESYNC $t0]]
    set reg(h2) [registry_on h2 $home --no-standby]
    set line [t::readline $p 120000]
    if {[llength $line] == 2} {
        lappend rows [list "resync of $NRESYNC entries (h2's new registry: start to every copy)" \
            "[format %.0f [expr {([lindex $line 0] - $t0) / 1000.0}]] ms" \
            "includes the election and the link's TLS set-up"]
    } else {
        lappend rows [list "resync of $NRESYNC entries" "-" "no answer: $line"]
    }
    t::stop $p
    foreach app $apps { t::stop $app }

} err opts]
if {$code} {
    progress "failed: $err\n[dict get $opts -errorinfo]"
}
puts "| measure | result | notes |"
puts "|---|---|---|"
foreach row $rows { puts "| [join $row { | }] |" }
puts ""
puts "[exec nproc] CPUs, Linux [exec uname -r], Tcl [info patchlevel]; load\
      average [lrange [t::read_file /proc/loadavg] 0 2] at the end;\
      [expr {[clock seconds] - $started}] s."
flush stdout
::t::cleanup
exit [expr {$code ? 1 : 0}]
