# Simulated hosts for the distributed registry's test and benchmark
# (tests/integration/distributed.test.tcl, bench/distributed/): network
# namespaces with a host name each (unshare --net --uts), joined by veth
# pairs to a bridge in a namespace of its own, one home for all.  Sourced
# after lib.tcl; needs root.  LIVENESS and NET are set by the caller: the
# registries' --liveness, and the first three octets of the hosts'
# addresses.

# ---- the simulated hosts ---------------------------------------------------

# A process holding a network and UTS namespace of its own with host name
# NAME; everything "on" that host is run with nsenter into both.
proc host_new {name} {
    set pid [exec unshare --net --uts sh -c "hostname $name && exec sleep 100000" &]
    t::remember $pid
    t::defer [list ::t::kill_proc $pid KILL]
    if {![t::wait_until {[string trim [t::read_file /proc/$pid/comm]] eq "sleep"} 3000]} {
        error "host $name: namespace holder did not start"
    }
    set ::hostpid($name) $pid
    return $pid
}

# The bridge every host is joined to.
proc hub_new {} {
    set pid [exec unshare --net sleep 100000 &]
    t::remember $pid
    t::defer [list ::t::kill_proc $pid KILL]
    t::wait_until {[string trim [t::read_file /proc/$pid/comm]] eq "sleep"} 3000
    set ::hubpid $pid
    exec nsenter -t $pid --net ip link add br0 type bridge
    exec nsenter -t $pid --net ip link set br0 up
}

# Join host NAME to the bridge with address NET.N.
proc host_join {name n} {
    set veth cr[expr {[pid] % 100000}]$n
    set ::veth($name) $veth
    exec ip link add $veth netns $::hubpid type veth peer name eth0 netns $::hostpid($name)
    exec nsenter -t $::hubpid --net ip link set $veth master br0 up
    exec nsenter -t $::hostpid($name) --net ip addr add $::NET.$n/24 dev eth0
    exec nsenter -t $::hostpid($name) --net ip link set eth0 up
    exec nsenter -t $::hostpid($name) --net ip link set lo up
    set ::hostaddr($name) $::NET.$n
}

# The command line ARGS run on host NAME.
proc on {name args} {
    return [list nsenter -t $::hostpid($name) --net --uts {*}$args]
}

# Cut host NAME off the network, or join it again.
proc host_link {name state} {
    exec nsenter -t $::hubpid --net ip link set $::veth($name) $state
}

# ---- registries and clients on a host ---------------------------------------

# Start the user registry of HOME on host NAME (in the foreground, as
# start_daemon does); returns its PID once its port file names its link
# address (or just its port, with -plain).
proc registry_on {name home args} {
    set plain 0
    if {[lindex $args 0] eq "-plain"} {
        set plain 1
        set args [lrange $args 1 end]
    }
    set log [t::newfile commregd-$name].log
    set pid [exec {*}[on $name env HOME=$home [t::commregd_path] --home $home \
                          --liveness $::LIVENESS {*}$args] </dev/null >& $log &]
    t::remember $pid
    set ::t::daemon_log($pid) $log
    t::watch_log "commregd on $name (pid $pid)" $log
    t::defer [list ::t::kill_proc $pid]
    set pf [file join [t::regdir $home] $name]
    set re [expr {$plain ? {^[0-9]+\n$} : {^[0-9]+\ndist [0-9.]+ [0-9]+\n$}}]
    if {![t::wait_until {[t::alive $pid] && [regexp $re [t::read_file $pf]]} 5000]} {
        error "registry on $name (pid $pid) not ready; port file\
               [t::show [t::read_file $pf]]\nlog:\n[t::daemon_log $pid]"
    }
    return $pid
}

set QUERY {
    package require comm
    lassign $argv home host cmd
    set f [open [file join $home .tcl comm registry $host]]
    gets $f port
    close $f
    # The command is one script, its words as the list has them.
    if {[catch {comm::comm send $port $cmd} r]} {
        puts [list error $r]
        exit 1
    }
    puts [list ok $r]
    exit 0
}

# Send CMD to the user registry of HOME on host NAME; its answer, or
# raises the error.
proc ask {name home cmd} {
    set f [file join [t::workdir] query.tcl]
    if {![file exists $f]} { t::write_file $f $::QUERY 0644 }
    set r [t::run -timeout 10 {*}[on $name [info nameofexecutable] $f $home $name $cmd]]
    set out [string trim [dict get $r out]]
    if {[dict get $r code] != 0 || [lindex $out 0] ne "ok"} {
        error "on $name: $cmd: [dict get $r code] $out [dict get $r err]"
    }
    return [lindex $out 1]
}

# Names listed on host NAME (sorted), or {-} when its registry does not
# answer.
proc names_on {name home {pattern *}} {
    if {[catch {ask $name $home [list Commreg/List $pattern]} l]} { return - }
    return [lsort [lmap e $l { dict get $e name }]]
}

# The entry dict of NAME on host H, or "".
proc entry_on {h home name} {
    if {[catch {ask $h $home [list Commreg/List $name]} l]} { return "" }
    foreach e $l {
        if {[dict get $e name] eq $name} { return $e }
    }
    return ""
}

set HOLDER {
    package require comm
    lassign $argv home host port names barrier
    set f [open [file join $home .tcl comm registry $host]]
    gets $f rport
    close $f
    if {$barrier ne ""} {
        # Connected and ready, then held until the test lets all go.
        comm::comm send $rport Commreg/Hello
        close [open $barrier r]
    }
    set got {}
    foreach n $names {
        lappend got [comm::comm send $rport Commreg/Register $n $port]
    }
    puts [list registered [llength $got] [lrange $got 0 9]]
    flush stdout
    vwait forever
}

# An application of host NAME that holds NAMES (registered for PORT on
# localhost) over one connection for as long as it runs.  Returns its
# channel once registered; ::hold_line(CHANNEL) is its line "registered
# COUNT FIRST-NAMES".
proc hold_on {name home port names} {
    set f [file join [t::workdir] holder.tcl]
    if {![file exists $f]} { t::write_file $f $::HOLDER 0644 }
    set ch [t::spawn {*}[on $name [info nameofexecutable] $f $home $name $port $names]]
    set line [t::readline $ch 20000]
    if {[lindex $line 0] ne "registered"} {
        error "holder on $name: $line [t::spawn_err $ch]"
    }
    set ::hold_line($ch) $line
    return $ch
}

proc cookie_make {home} {
    set r [t::run {*}[list [t::commreg_path] --home $home cookie]]
    if {[dict get $r code] != 0} { error "commreg cookie: $r" }
    return [string trim [dict get $r out]]
}

