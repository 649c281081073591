# The distributed user registry (docs/distributed.md): three hosts of
# one user, simulated on this machine as network namespaces with a host
# name each (unshare --net --uts), joined by veth pairs to a bridge in a
# fourth namespace, share one home directory, as hosts with an NFS home
# do.  With ~/.tcl/comm/cookie, their user registries link to each other
# over TLS keyed from the cookie and make one registry: what is
# registered on one host is seen on the others, and goes from them when
# its registry goes (SIGKILL, SIGSTOP past the liveness deadline, a
# partition), and comes back when it does.  A peer with a wrong cookie,
# or another user's registry, is refused; so are a peer that stalls in
# the TLS handshake, a port file that names another host's registry and
# one that is not to be trusted; out of descriptors, the link listener
# rests and resumes.
#
# Needs root (namespaces, a throwaway user's registry); skipped otherwise.
source [file join [file dirname [info script]] lib.tcl]
source [file join [file dirname [info script]] distributed_lib.tcl]

# Liveness of the registries here: a host that stops answering is dropped
# within this (a timing is measured by bench/, never asserted here).
set LIVENESS 1500
set NET 10.[expr {64 + [pid] % 60}].[expr {[pid] % 250}]


# Where host H's registry takes links: {ADDR PORT} from its port file.
proc dist_addr {home h} {
    if {![regexp {dist ([0-9.]+) ([0-9]+)} \
              [t::read_file [file join [t::regdir $home] $h]] -> a p]} {
        error "no link address in $h's port file"
    }
    return [list $a $p]
}

# A peer of host NAME that connects to ADDR:PORT, sends the bytes HEX (as
# hex; "" for none) and nothing more: "ready", then "closed" once the
# other end closes, or "still open" after 20 s.
set STALLER {
    lassign $argv addr port hex
    set s [socket $addr $port]
    fconfigure $s -translation binary -blocking 1
    if {$hex ne ""} {
        puts -nonewline $s [binary decode hex $hex]
        flush $s
    }
    puts ready
    flush stdout
    fconfigure $s -blocking 0
    set deadline [expr {[clock milliseconds] + 20000}]
    while {[clock milliseconds] < $deadline} {
        if {[catch {read $s} d]} { puts closed; exit 0 }
        if {[eof $s]} { puts closed; exit 0 }
        after 50
    }
    puts "still open"
}
proc staller_on {name addr port hex} {
    set f [file join [t::workdir] staller.tcl]
    if {![file exists $f]} { t::write_file $f $::STALLER 0644 }
    set ch [t::spawn {*}[on $name [info nameofexecutable] $f $addr $port $hex]]
    set l [t::readline $ch 5000]
    if {$l ne "ready"} { error "staller on $name: $l [t::spawn_err $ch]" }
    return $ch
}

# A TCP listener on host NAME that prints "connection" for every
# connection it accepts; returns {CHANNEL PORT}.
set LISTENER {
    lassign $argv addr
    proc took {s a p} { puts connection; flush stdout; close $s }
    set l [socket -server took -myaddr $addr 0]
    puts [lindex [fconfigure $l -sockname] 2]
    flush stdout
    vwait forever
}
proc listener_on {name} {
    set f [file join [t::workdir] listener.tcl]
    if {![file exists $f]} { t::write_file $f $::LISTENER 0644 }
    set ch [t::spawn {*}[on $name [info nameofexecutable] $f $::hostaddr($name)]]
    set port [t::readline $ch 5000]
    if {![string is integer -strict $port]} {
        error "listener on $name: $port [t::spawn_err $ch]"
    }
    return [list $ch $port]
}

# ---- the scenarios -----------------------------------------------------------

main {
    if {[exec id -u] != 0} { skip "needs root for network namespaces" }
    foreach tool {unshare nsenter ip setpriv} {
        if {[auto_execok $tool] eq ""} { skip "$tool not installed" }
    }
    if {[catch {exec unshare --net --uts true} why]} {
        skip "cannot make network namespaces here: $why"
    }
    hub_new
    set n 0
    foreach h {h1 h2 h3 a0} {
        host_new $h
        host_join $h [incr n]
    }
    set home [t::new_home]

    test commreg_cookie_makes_a_private_secret {
        set path [cookie_make $home]
        check_equal "cookie path" [file join $home .tcl comm cookie] $path
        check_equal "mode 0600" 0600 [t::perm $path]
        check "at least 32 bytes" {[file size $path] >= 32}
        set before [t::read_file $path]
        cookie_make $home
        check "a second run keeps it" {[t::read_file $path] eq $before}
    }

    set reg(h1) [registry_on h1 $home]
    set reg(h2) [registry_on h2 $home]
    set reg(h3) [registry_on h3 $home]

    test port_file_starts_with_the_port_line {
        set data [t::read_file [file join [t::regdir $home] h1]]
        check_regexp "PORT, then the link address" \
            "^\[0-9\]+\ndist $::hostaddr(h1) \[0-9\]+\n\$" $data
        # The readers of before: the C library and the Tcl package take
        # the first line.
        set r [t::run -timeout 10 {*}[on h1 env HOME=$home [t::commreg_path] \
                                        --home $home port]]
        check_equal "commreg port reads the first line" \
            [lindex [split $data \n] 0] [string trim [dict get $r out]]
    }

    test registration_on_host1_seen_on_hosts_2_and_3 {
        set app [hold_on h1 $home 4711 {alpha beta}]
        foreach h {h2 h3} {
            check "$h sees alpha and beta" [list [t::wait_until \
                {[names_on $h $home] eq {alpha beta}} 5000 50]]
        }
        set e [entry_on h2 $home alpha]
        check_equal "the copy carries h1's address, not localhost" \
            $::hostaddr(h1) [dict get $e host]
        check_equal "its port" 4711 [dict get $e port]
        check_equal "its origin" h1 [dict get $e origin]
        check_equal "lookup alpha on h3" [list 4711 $::hostaddr(h1)] \
            [ask h3 $home {Commreg/Lookup alpha}]
        check_equal "lookup alpha@h1 on h3" [list 4711 $::hostaddr(h1)] \
            [ask h3 $home {Commreg/Lookup alpha@h1}]
        check_equal "alpha@h1 on h1 is its own" {4711 localhost} \
            [ask h1 $home {Commreg/Lookup alpha@h1}]
        # The C library (the commreg command) sees the same.
        set r [t::run -timeout 10 {*}[on h3 env HOME=$home [t::commreg_path] \
                                        --home $home lookup alpha]]
        check_equal "commreg lookup alpha on h3" "4711 $::hostaddr(h1)" \
            [string trim [dict get $r out]]
        # nns Search answers from the same table.
        check_equal "nns Search on h2" [list alpha [list 4711 $::hostaddr(h1)]] \
            [ask h2 $home {Search alph*}]
        t::stop $app
        foreach h {h2 h3} {
            check "$h drops them when the application goes" [list [t::wait_until \
                {[names_on $h $home] eq {}} 5000 50]]
        }
    }

    test sigkill_of_host1_registry_purged_on_the_others {
        set app [hold_on h1 $home 4712 {gamma}]
        check "h3 sees gamma" [list [t::wait_until {[names_on h3 $home] eq {gamma}} 5000 50]]
        set m2 [t::log_mark $reg(h2)]
        exec kill -KILL $reg(h1)
        t::wait_until {![t::alive $::reg(h1)]} 2000
        foreach h {h2 h3} {
            check "$h drops h1's gamma" [list [t::wait_until \
                {[names_on $h $home] eq {}} 5000 50]]
        }
        check_regexp "h2's log says why" {host h1: .*dropped its 1 entries} \
            [t::log_since $reg(h2) $m2]
        t::stop $app
    }

    test a_standby_taking_over_offers_only_its_own_hosts_entries {
        # h1's registry keeps a standby (docs/election.md), given h1's
        # table; when it takes over, h2's entries reach it again over
        # the links, never as h1's own.
        # (The registry h1 has now is the standby that took over when
        # the previous scenario killed its registry; it keeps one too.)
        set app [hold_on h2 $home 4740 omega]
        check "h1 sees omega" [list [t::wait_until {[names_on h1 $home] eq {omega}} 5000 50]]
        t::pause 500
        set before [dict get [ask h1 $home Commreg/Hello] pid]
        exec kill -KILL $before
        check "the standby answers on h1" [list [t::wait_until \
            {![catch {ask h1 $home Commreg/Hello} hi] && [dict get $hi pid] != $before} 5000 20]]
        set seen {}
        set deadline [expr {[clock milliseconds] + 3000}]
        while {[clock milliseconds] < $deadline} {
            foreach h {h1 h3} {
                foreach n [names_on $h $home] { if {$n ni $seen} { lappend seen $n } }
            }
            t::pause 100
        }
        check_equal "h1 and h3 only ever list omega, h2's" {omega} $seen
        check_equal "omega on h3 comes from h2" h2 [dict get [entry_on h3 $home omega] origin]
        t::stop $app
        foreach h {h1 h3} {
            t::wait_until {[names_on $h $home] eq {}} 5000 50
        }
    }

    test host1_elects_again_and_its_names_return {
        # An application that holds its name across a failover: commreg
        # register, which starts a registry itself when none runs.
        set wrap [t::newfile commregd-wrap]
        t::write_file $wrap "#!/bin/sh\nexec [t::commregd_path] --liveness $::LIVENESS \"\$@\"\n" 0755
        set ch [t::spawn {*}[on h1 env HOME=$home [t::commreg_path] --home $home \
                                 --commregd $wrap register delta 4713]]
        check_equal "registered" delta [t::readline $ch 10000]
        foreach h {h2 h3} {
            check "$h sees delta" [list [t::wait_until {[names_on $h $home] eq {delta}} 5000 50]]
        }
        set pid1 [dict get [ask h1 $home Commreg/Hello] pid]
        set m2 [t::log_mark $reg(h2)]
        exec kill -KILL $pid1
        check "h1 elects a new registry" [list [t::wait_until \
            {![catch {ask h1 $home Commreg/Hello} hi] && [dict get $hi pid] != $pid1} 10000 100]]
        # Its applications may be back in it before h2 has seen the old
        # link close: then h2 replaces the old link's entries by the new
        # one's snapshot, with no drop in between.
        check "h2 links to the new registry" [list [t::wait_until \
            {[regexp {host h1: linked} [t::log_since $::reg(h2) $m2]]} 10000 50]]
        foreach h {h2 h3} {
            check "delta returns on $h" [list [t::wait_until \
                {[names_on $h $home] eq {delta}} 10000 50]]
        }
        t::stop $ch
        foreach h {h2 h3} {
            t::wait_until {[names_on $h $home] eq {}} 5000 50
        }
        set reg(h1) [dict get [ask h1 $home Commreg/Hello] pid]
    }

    test a_host_whose_port_file_goes_is_purged {
        set app [hold_on h3 $home 4720 zeta]
        check "h1 sees zeta" [list [t::wait_until {[names_on h1 $home] eq {zeta}} 5000 50]]
        set pf [file join [t::regdir $home] h3]
        set data [t::read_file $pf]
        set m2 [t::log_mark $reg(h2)]
        file delete $pf
        foreach h {h1 h2} {
            check "$h drops h3's zeta" [list [t::wait_until \
                {[names_on $h $home] eq {}} 5000 50]]
        }
        check_regexp "h2's log says why" {host h3: its port file is gone} \
            [t::log_since $reg(h2) $m2]
        t::write_file $pf $data
        foreach h {h1 h2} {
            check "zeta returns on $h with the file" [list [t::wait_until \
                {[names_on $h $home] eq {zeta}} 5000 50]]
        }
        t::stop $app
    }

    test sigstop_of_host1_registry_purged_within_liveness {
        set app [hold_on h1 $home 4714 {epsilon}]
        check "h2 sees epsilon" [list [t::wait_until {[names_on h2 $home] eq {epsilon}} 5000 50]]
        set m2 [t::log_mark $reg(h2)]
        exec kill -STOP $reg(h1)
        t::defer [list catch [list exec kill -CONT $reg(h1)]]
        foreach h {h2 h3} {
            check "$h drops epsilon of the stopped host" [list [t::wait_until \
                {[names_on $h $home] eq {}} [expr {4 * $::LIVENESS + 3000}] 50]]
        }
        check_regexp "h2's log says it did not answer" \
            {host h1: .*(ping|answer|silent|live).*dropped its 1 entries} \
            [t::log_since $reg(h2) $m2]
        exec kill -CONT $reg(h1)
        foreach h {h2 h3} {
            check "epsilon returns on $h once h1 runs again" [list [t::wait_until \
                {[names_on $h $home] eq {epsilon}} 10000 50]]
        }
        t::stop $app
    }

    test a_peer_with_a_wrong_cookie_is_refused {
        # Host a0 sorts first, so it is the one that dials: its registry
        # is given h2's port file, in a home whose cookie is another.
        set other [t::new_home]
        cookie_make $other
        t::make_regdir $other
        t::write_file [file join [t::regdir $other] h2] \
            [t::read_file [file join [t::regdir $home] h2]]
        set m2 [t::log_mark $reg(h2)]
        set bad [registry_on a0 $other]
        set app [hold_on a0 $other 4715 {intruder}]
        check "h2 logs the refusal" [list [t::wait_until \
            {[regexp "refused registry link from $::hostaddr(a0):" \
                 [t::log_since $::reg(h2) $m2]]} 5000 50]]
        check_regexp "a0 cannot link" {host h2: cannot link to} [t::daemon_log $bad]
        check "h2 does not list a0's name" {[lsearch [names_on h2 $home] intruder*] < 0}
        check_equal "a0 sees none of h2's" {intruder} [names_on a0 $other]
        # Refusals again and again: still one line per source and 10 s.
        t::pause 2500
        set lines [regexp -all -line {refused registry link from} \
                       [t::log_since $reg(h2) $m2]]
        check "the refusals are rate-limited ($lines lines)" {$lines <= 2}
        check "h2 still serves" {[names_on h2 $home] ne "-"}
        t::stop $app
        t::kill_proc $bad
    }

    test another_user_cannot_join {
        set uid 65534
        set other [t::tempdir nobody 0700]
        file attributes $other -owner $uid
        # Its own cookie: a copy of ours is unreadable to it (0600, root's).
        exec setpriv --reuid=$uid --regid=$uid --clear-groups \
            env HOME=$other [t::commreg_path] --home $other cookie
        exec setpriv --reuid=$uid --regid=$uid --clear-groups \
            sh -c "umask 077 && cat > $other/.tcl/comm/registry/h2" \
            << [t::read_file [file join [t::regdir $home] h2]]
        set m2 [t::log_mark $reg(h2)]
        set log [t::newfile commregd-nobody].log
        set pid [exec {*}[on a0 setpriv --reuid=$uid --regid=$uid --clear-groups \
                              env HOME=$other [t::commregd_path] --home $other \
                              --liveness $::LIVENESS] </dev/null >& $log &]
        t::remember $pid
        set ::t::daemon_log($pid) $log
        t::watch_log "commregd of uid $uid on a0" $log
        t::defer [list ::t::kill_proc $pid]
        check "h2 refuses the other user's registry" [list [t::wait_until \
            {[regexp "refused registry link from $::hostaddr(a0):" \
                 [t::log_since $::reg(h2) $m2]]} 8000 50]]
        check "the other user's registry did not link" \
            {![regexp {host h2: linked} [t::daemon_log $pid]]}
        check_equal "h2 lists nothing of it" {} [names_on h2 $home]
    }

    test thousand_names_resynced_after_a_partition_heals {
        set names {}
        for {set i 0} {$i < 1000} {incr i} { lappend names n$i }
        set app [hold_on h1 $home 4716 $names]
        set want [lsort $names]
        foreach h {h2 h3} {
            check "$h sees the 1000 names" [list [t::wait_until \
                {[names_on $h $home] eq $want} 10000 100]]
        }
        set m2 [t::log_mark $reg(h2)]
        host_link h1 down
        foreach h {h2 h3} {
            check "$h drops them when h1 is cut off" [list [t::wait_until \
                {[names_on $h $home] eq {}} [expr {4 * $::LIVENESS + 5000}] 100]]
        }
        host_link h1 up
        foreach h {h2 h3} {
            check "$h has exactly the 1000 names again" [list [t::wait_until \
                {[names_on $h $home] eq $want} 20000 100]]
        }
        set l [ask h3 $home Commreg/List]
        check_equal "no duplicates on h3" 1000 [llength $l]
        t::stop $app
    }

    test a_host_keeps_its_names_across_its_registrys_failover {
        # h3 and h2 each hold "dup" (registered while h3 was cut off);
        # h3's registry is killed and its application registers again:
        # it gets "dup" back even when h2's copy came to the new
        # registry first (the copy moves to dup@h2).
        t::kill_proc $reg(h3)
        host_link h3 down
        set wrap [t::newfile commregd-wrap]
        t::write_file $wrap "#!/bin/sh\nexec [t::commregd_path] --liveness $::LIVENESS \"\$@\"\n" 0755
        set ch [t::spawn {*}[on h3 env HOME=$home [t::commreg_path] --home $home \
                                 --commregd $wrap register dup 4731]]
        check_equal "h3's application has dup" dup [t::readline $ch 10000]
        set c2 [hold_on h2 $home 4732 dup]
        check_equal "so has h2's, h3 being cut off" dup [lindex $::hold_line($c2) 2 0]
        host_link h3 up
        check "h3 sees h2's as dup@h2" [list [t::wait_until \
            {[names_on h3 $home] eq {dup dup@h2}} 10000 50]]
        check "h2 sees h3's as dup@h3" [list [t::wait_until \
            {[names_on h2 $home] eq {dup dup@h3}} 10000 50]]
        set pid3 [dict get [ask h3 $home Commreg/Hello] pid]
        exec kill -KILL $pid3
        check "h3 elects a new registry" [list [t::wait_until \
            {![catch {ask h3 $home Commreg/Hello} hi] && [dict get $hi pid] != $pid3} 10000 100]]
        check "h3 ends with its own dup and h2's dup@h2" [list [t::wait_until \
            {[names_on h3 $home] eq {dup dup@h2}} 10000 50]]
        check_equal "dup on h3 is h3's application" {4731 localhost} \
            [ask h3 $home {Commreg/Lookup dup}]
        set lines [t::readlines_for $ch 500]
        check "its application was not renamed: $lines" \
            {[lsearch -glob $lines renamed*] < 0}
        check "h2 still has dup and dup@h3" [list [t::wait_until \
            {[names_on h2 $home] eq {dup dup@h3}} 5000 50]]
        t::stop $ch
        t::stop $c2
        foreach h {h1 h2 h3} {
            t::wait_until {[names_on $h $home] eq {}} 5000 50
        }
    }

    test a_name_taken_on_another_host_gets_the_next_serial {
        set c2 [hold_on h2 $home 4902 later]
        check "h3 sees h2's later" [list [t::wait_until \
            {[names_on h3 $home] eq {later}} 5000 50]]
        set c3 [hold_on h3 $home 4903 later]
        check_equal "one registry: h3's later is \"later #2\"" \
            {later #2} [lindex $::hold_line($c3) 2 0]
        foreach h {h1 h2 h3} {
            check "$h lists both" [list [t::wait_until \
                {[names_on $h $home] eq {later {later #2}}} 5000 50]]
        }
        check_equal "{later #2} on h1 is h3's" [list 4903 $::hostaddr(h3)] \
            [ask h1 $home [list Commreg/Lookup {later #2}]]
        t::stop $c2
        t::stop $c3
        foreach h {h1 h2 h3} {
            t::wait_until {[names_on $h $home] eq {}} 5000 50
        }
    }

    test same_name_on_two_hosts_at_once {
        # Both connected, then let go at the same instant: each registers
        # "same" before the other's copy can have come, or just after;
        # either way the answers must end distinct and the same on every
        # host, whatever the order things arrived in.
        set f [file join [t::workdir] holder.tcl]
        set fifo [t::barrier_new]
        set c2 [t::spawn {*}[on h2 [info nameofexecutable] $f $home h2 4802 same $fifo]]
        set c3 [t::spawn {*}[on h3 [info nameofexecutable] $f $home h3 4803 same $fifo]]
        t::pause 1000
        t::barrier_release $fifo
        set l2 [t::readline $c2 10000]
        set l3 [t::readline $c3 10000]
        check_match "h2 registered" {registered 1 *} $l2
        check_match "h3 registered" {registered 1 *} $l3
        set n2 [lindex $l2 2 0]
        set n3 [lindex $l3 2 0]
        if {$n2 eq $n3} {
            # At once: each host has "same" for its own; the others see
            # the copy of the host that sorts first as "same".
            set view(h1) [lsort [list same same@h3]]
            set view(h2) [lsort [list same same@h3]]
            set view(h3) [lsort [list same same@h2]]
            set on_h1(same) [list 4802 $::hostaddr(h2)]
            set on_h1(same@h3) [list 4803 $::hostaddr(h3)]
            set on_h3(same) {4803 localhost}
            set on_h3(same@h2) [list 4802 $::hostaddr(h2)]
        } else {
            # One saw the other's first and took the next serial.
            check "distinct names ($n2, $n3)" {$n2 ne $n3}
            foreach h {h1 h2 h3} { set view($h) [lsort [list $n2 $n3]] }
            set on_h1($n2) [list 4802 $::hostaddr(h2)]
            set on_h1($n3) [list 4803 $::hostaddr(h3)]
            set on_h3($n3) {4803 localhost}
            set on_h3($n2) [list 4802 $::hostaddr(h2)]
        }
        t::say "  (h2 got \"$n2\", h3 got \"$n3\")"
        foreach h {h1 h2 h3} {
            check "$h ends with $view($h)" [list [t::wait_until \
                {[names_on $h $home] eq $view($h)} 5000 50]]
        }
        foreach n [array names on_h1] {
            check_equal "lookup $n on h1" $on_h1($n) \
                [ask h1 $home [list Commreg/Lookup $n]]
        }
        foreach n [array names on_h3] {
            check_equal "lookup $n on h3" $on_h3($n) \
                [ask h3 $home [list Commreg/Lookup $n]]
        }
        check_equal "$n3@h3 on h2 is h3's" [list 4803 $::hostaddr(h3)] \
            [ask h2 $home [list Commreg/Lookup $n3@h3]]
        # Stable: h1's registry restarted gets the same answers.
        t::kill_proc $reg(h1)
        set reg(h1) [registry_on h1 $home]
        check "h1 ends with the same view after its registry restarts" \
            [list [t::wait_until {[names_on h1 $home] eq $view(h1)} 5000 50]]
        foreach n [array names on_h1] {
            check_equal "lookup $n on h1 again" $on_h1($n) \
                [ask h1 $home [list Commreg/Lookup $n]]
        }
        t::stop $c2
        t::stop $c3
    }

    test an_unsafe_cookie_is_refused_and_the_registry_serves {
        foreach {what setup fix} {
            "mode 0644" {file attributes $c -permissions 0644} {run: chmod 600}
            "16 bytes" {t::write_file $c [string repeat x 16]} {fewer than 32}
        } {
            set bad [t::new_home]
            set c [cookie_make $bad]
            eval $setup
            set pid [registry_on h3 $bad -plain]
            # The port file is written at the election, before the
            # cookie is read: wait for what the log says of it.
            t::wait_until {[regexp "distributed registry off|listening" \
                                [t::daemon_log $pid]]} 5000 20
            check_regexp "$what: the log says why and how to fix it" \
                "distributed registry off: .*cookie: .*$fix" [t::daemon_log $pid]
            check_regexp "$what: the port file is just the port" {^[0-9]+\n$} \
                [t::read_file [file join [t::regdir $bad] h3]]
            check_equal "$what: it serves" {} [names_on h3 $bad]
            t::kill_proc $pid
        }
    }

    test a_linked_peer_that_talks_nonsense_is_closed {
        # A peer that holds the cookie (its key derived by openssl's own
        # HKDF, which checks ours) and then sends what no registry would:
        # refused or closed, logged, and h2 serves on.
        set key [binary encode hex [t::read_file [file join $home .tcl comm cookie]]]
        set r [t::run openssl kdf -keylen 32 -kdfopt digest:SHA256 \
                   -kdfopt hexkey:$key -kdfopt "salt:commreg distributed registry" \
                   -kdfopt "info:link psk v1 [exec id -un]" HKDF]
        set psk [string map {: ""} [string trim [dict get $r out]]]
        check "openssl derives a key" {[string length $psk] == 64}
        regexp {dist ([0-9.]+) ([0-9]+)} [t::read_file [file join [t::regdir $home] h2]] -> a p
        set m2 [t::log_mark $reg(h2)]
        set ch [open |[list {*}[on h3 openssl s_client -quiet -tls1_3 -psk $psk \
                                  -psk_identity "commreg-dist/1 [exec id -un]" \
                                  -connect $a:$p] 2>@1] r+]
        fconfigure $ch -blocking 0 -buffering line
        t::remember [pid $ch]
        t::defer [list ::t::kill_proc [pid $ch]]
        t::defer [list catch [list close $ch]]
        puts $ch [list {3 2} 0]
        set l {}
        # (Each line is one element of the stream's list: {vers 3}.)
        t::wait_until {[catch {lindex [set l [t::readline $ch 100]] 0} l] == 0
            && $l eq {vers 3}} 5000 10
        check_equal "TLS with the derived key, then the comm handshake" {vers 3} $l
        puts $ch [list [list send 1 [list [list Dist/Snapshot {}]]]]
        check_match "a snapshot before Dist/Hello is refused" \
            "*reply 1 ?return -code 1 *no Dist/Hello*" [t::readline $ch 3000]
        puts $ch [list [list send 2 [list [list Dist/Hello zz nobody]]]]
        check_match "a Dist/Hello of another user is refused" \
            "*reply 2 ?return -code 1 *refused*" [t::readline $ch 3000]
        puts $ch [list [list send 3 [list [list Dist/Hello zz [exec id -un]]]]]
        set got {}
        # Its reply, and h2's snapshot (quickly: h2 pings a link silent
        # for a third of its liveness, and this one does not answer).
        for {set i 0} {$i < 2} {incr i} { lappend got [t::readline $ch 3000] }
        check "Dist/Hello answered with h2's name" {[lsearch $got "*reply 3 ?return -code 0 h2?*"] >= 0}
        puts $ch [list [list async 4 [list [list Dist/Add {name}]]]]
        check "an entry that is no entry closes the link" [list [t::wait_until \
            {[regexp {host zz: bad entry: .*dropped its 0 entries} \
                 [t::log_since $::reg(h2) $m2]]} 5000 50]]
        check "h2 serves on" {[names_on h2 $home] ne "-"}
    }

    # The registry on h1 was ended with the scenario that started it.
    if {[catch {ask h1 $home Commreg/Hello}]} {
        set reg(h1) [registry_on h1 $home]
    }

    test a_peer_stalling_in_the_tls_handshake_is_dropped {
        # One peer sends nothing, another half a ClientHello (a record
        # that says 512 bytes follow, and 40 of them): h2 drops both at
        # its TLS deadline, and meanwhile serves, and links with a host
        # that joins.  The peers are on a host of their own, s5: h2's
        # refusals are logged one line per source address and 10 s, and
        # a0 was refused by h2 in the scenarios before.
        host_new s5
        host_join s5 5
        lassign [dist_addr $home h2] a p
        set m2 [t::log_mark $reg(h2)]
        set half 160301020001 ;# handshake record of 512 bytes: ClientHello
        append half 0001fc0303 [string repeat 00 35]
        set mute [staller_on s5 $a $p ""]
        set partial [staller_on s5 $a $p $half]
        set app [hold_on h1 $home 4750 stalled_not]
        check "h2 sees h1's name meanwhile" [list [t::wait_until \
            {[names_on h2 $home] eq {stalled_not}} 5000 50]]
        set joiner [registry_on a0 $home --no-standby]
        set japp [hold_on a0 $home 4751 joined]
        check "a host that joins meanwhile is linked with h2" [list [t::wait_until \
            {[names_on h2 $home] eq {joined stalled_not}} 5000 50]]
        check_equal "the silent peer is closed" closed [t::readline $mute 15000]
        check_equal "the half ClientHello is closed" closed [t::readline $partial 15000]
        check_regexp "h2 says why" \
            "refused registry link from $::hostaddr(s5):\[0-9\]+: TLS not set up within 5000 ms" \
            [t::log_since $reg(h2) $m2]
        check "h2 still has the host that joined" [list [t::wait_until \
            {[names_on h2 $home] eq {joined stalled_not}} 5000 50]]
        t::stop $japp
        t::stop $app
        t::kill_proc $joiner
        file delete [file join [t::regdir $home] a0]
        foreach h {h1 h2 h3} {
            t::wait_until {[names_on $h $home] eq {}} 5000 50
        }
    }

    test a_port_file_naming_another_host_is_refused_without_copies {
        # zz's port file names the address of h1's registry (as a stale
        # file would, its address taken since by h1).  Whoever dials "zz"
        # reaches h1: refused, logged, no copy of h1's entries kept as
        # zz's, and the links of h1 with the others are not disturbed.
        set app [hold_on h1 $home 4752 steady]
        foreach h {h2 h3} {
            check "$h sees steady" [list [t::wait_until \
                {[names_on $h $home] eq {steady}} 5000 50]]
        }
        set m1 [t::log_mark $reg(h1)]
        set m2 [t::log_mark $reg(h2)]
        set zz [file join [t::regdir $home] zz]
        t::write_file $zz [t::read_file [file join [t::regdir $home] h1]]
        t::defer [list file delete $zz]
        check "h2 says it cannot link to zz" [list [t::wait_until \
            {[regexp {host zz: cannot link to} [t::log_since $::reg(h2) $m2]]} 5000 50]]
        check "h1 refuses the link meant for zz" [list [t::wait_until \
            {[regexp -line "refused registry link from $::hostaddr(h2):\[0-9\]+: .*\"zz\"" \
                  [t::log_since $::reg(h1) $m1]]} 5000 50]]
        # Watch a while (bounded): h1's name is never shown as zz's.
        # (Whether it is shown at every look depends on the liveness
        # pings, which a loaded machine may delay: not looked at here.)
        set seen {}
        for {set i 0} {$i < 15} {incr i} {
            foreach h {h2 h3} {
                set e [entry_on $h $home steady]
                if {$e ne "" && [dict get $e origin] ne "h1"} {
                    lappend seen "$h: steady from [dict get $e origin]"
                }
                foreach n [names_on $h $home] {
                    if {$n ni {steady -}} { lappend seen "$h: $n" }
                }
            }
            t::pause 200
        }
        check_equal "steady is only ever h1's on h2 and h3, nothing else shows" \
            {} [lsort -unique $seen]
        set log2 [t::log_since $reg(h2) $m2]
        check "h2 took no copies as zz's" \
            {![regexp -line {host zz: (linked|[0-9]+ entries|.*dropped its [1-9])} $log2]}
        # h1 sorts before h2, so h1 dials h2: a link from h2 taken by h1
        # is h2's dial of zz, put in the place of their link.
        check "h1 took no link from h2 (which dials zz, not h1)" \
            {![regexp {host h2: linked \(from} [t::log_since $reg(h1) $m1]]}
        file delete $zz
        t::stop $app
        foreach h {h2 h3} {
            t::wait_until {[names_on $h $home] eq {}} 5000 50
        }
    }

    test untrusted_port_files_are_not_dialled_and_said_once {
        # A port file writable by others, and one of another owner, name
        # a listener on a0: not dialled while so, and each said once in
        # the log, with why, however often the directory is looked at
        # (every second; a line rate-limited would come again after 10 s).
        lassign [listener_on a0] lch lport
        set body "4000\ndist $::hostaddr(a0) $lport\n"
        set dir [t::regdir $home]
        set zy [file join $dir zy]
        set zx [file join $dir zx]
        t::defer [list file delete $zy $zx]
        set m2 [t::log_mark $reg(h2)]
        # Made under a name the registries pass over, then renamed, so
        # that no look at the directory sees them as they are being made.
        t::write_file $dir/.zy $body
        file attributes $dir/.zy -permissions 0666
        file rename $dir/.zy $zy
        t::write_file $dir/.zx $body
        file attributes $dir/.zx -owner 65534
        file rename $dir/.zx $zx
        set lines [t::readlines_for $lch 12000]
        check_equal "nobody dialled the listener" {} $lines
        set log [t::log_since $reg(h2) $m2]
        check_equal "the writable one is said once, with its mode" 1 \
            [regexp -all -line "not linking to host zy: .*mode 0666.*chmod 600" $log]
        check_equal "the other owner's once, with its owner" 1 \
            [regexp -all -line "not linking to host zx: .*owned by uid 65534" $log]
        check "no summary of more such lines" {![regexp {more like this from .*/z[xy]} $log]}
        # Trusted again: dialled (so the listener does hear a dial).
        file attributes $zy -permissions 0600
        check_equal "once 0600 it is dialled" connection [t::readline $lch 5000]
        file delete $zy $zx
        t::stop $lch
    }

    test out_of_descriptors_the_link_listener_rests_and_resumes {
        # h2 cannot accept (its descriptor limit lowered to the lowest
        # free number) while peers knock on its link listener: it takes
        # the listener out of its event loop for a moment instead of
        # being woken for it again and again, says so, and takes the
        # waiting connections once it can.
        if {[auto_execok prlimit] eq ""} { t::skip "prlimit not installed" }
        lassign [dist_addr $home h2] a p
        set pid $reg(h2)
        set lfd [listening_fd $pid $p]
        check "h2's link listener found" {$lfd ne ""}
        check "it is polled before" {[polled $pid $lfd]}
        set before [string trim [dict get [t::run prlimit --pid $pid \
            --nofile --noheadings --output SOFT,HARD] out]]
        set fds [lmap f [glob -nocomplain /proc/$pid/fd/*] { file tail $f }]
        for {set lim 0} {$lim in $fds} {incr lim} {}
        set m2 [t::log_mark $pid]
        check_equal "prlimit" 0 [dict get [t::run prlimit --pid $pid \
            --nofile=$lim:[lindex $before 1]] code]
        t::defer [list t::run prlimit --pid $pid --nofile=[join $before :]]
        set knock {}
        for {set i 0} {$i < 3} {incr i} { lappend knock [staller_on a0 $a $p ""] }
        check "h2 says it rests" [list [t::wait_until \
            {[regexp {registry links: accept: Too many open files; not accepting for 100 ms} \
                  [t::log_since $::reg(h2) $m2]]} 5000 50]]
        set out 0
        for {set i 0} {$i < 20 && !$out} {incr i} {
            set out [expr {![polled $pid $lfd]}]
            t::pause 10
        }
        check "the listener is taken out of the loop while it rests" {$out}
        check_equal "prlimit back" 0 [dict get [t::run prlimit --pid $pid \
            --nofile=[join $before :]] code]
        foreach ch $knock {
            check_equal "a waiting peer is taken (and dropped at the TLS deadline)" \
                closed [t::readline $ch 15000]
        }
        check "polled again" [list [t::wait_until {[polled $pid $lfd]} 3000 50]]
        set app [hold_on h1 $home 4753 after_emfile]
        check "h2 links and serves on" [list [t::wait_until \
            {[names_on h2 $home] eq {after_emfile}} 5000 50]]
        t::stop $app
    }

    test without_a_cookie_nothing_listens_beyond_loopback {
        set plain [t::new_home]
        set pid [registry_on h3 $plain -plain]
        t::wait_until {[regexp "listening" [t::daemon_log $pid]]} 5000 20
        check_regexp "port file is just the port" {^[0-9]+\n$} \
            [t::read_file [file join [t::regdir $plain] h3]]
        set r [t::run {*}[on h3 ss -Hltnp]]
        set mine [lsearch -all -inline [split [dict get $r out] \n] "*pid=$pid,*"]
        check "it listens on 127.0.0.1 only: $mine" \
            {[llength $mine] == 1 && [string match *127.0.0.1:* [lindex $mine 0]]}
        t::kill_proc $pid
    }
} 240
