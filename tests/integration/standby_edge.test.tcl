# The standby's failure paths (docs/election.md "The standby"):
#
#   the_port_file_removed_the_standby_does_not_take_over
#                     the registry's port file is removed, then the
#                     registry is SIGKILLed: nobody can find a registry
#                     through that file any more, so the standby leaves
#                     (saying so) instead of serving as a second registry
#                     no one finds; the next starter makes a new one
#   a_held_entry_registered_with_another_port_or_pid_is_not_taken_back
#                     during the grace after a SIGKILL, an entry held for
#                     the dead registry's application is registered again
#                     by someone else (another port, or another pid): it
#                     is not handed over silently as the held one; the
#                     newcomer gets a serial of its own, and the held
#                     entry goes at the grace's end, watchers told
#   junk_on_the_channel_the_standby_leaves_and_never_takes_over
#                     a standby given a frame longer than any registry
#                     writes, or one that is no Tcl list, leaves (only a
#                     live registry writes) and does not serve on the
#                     socket once the channel closes
source [file join [file dirname [info script]] lib.tcl]

proc fieldof {d key} {
    if {![dict exists $d $key]} { return "" }
    return [dict get $d $key]
}

# Does something answer the comm handshake on PORT within MS ms?
proc answers {port ms} {
    if {[catch {raw_connect $port} s]} { return 0 }
    raw_puts $s [list {3 2} 0]
    set o [raw_outcome $s $ms]
    raw_close $s
    return [expr {$o eq {msg {vers 3}}}]
}

# A registry's side of a standby, played by perl (perl-base is part of
# every Debian system): a listening socket on 127.0.0.1, a locked file
# standing for the port file and a socket pair, given to
# `commregd --standby-fds=C,L,K` as a registry gives them.  It writes
# one frame (MODE oversize: a length of 0x7fffffff; nonlist: a frame
# of 12 bytes that is no Tcl list; blocking: none, and the listening
# socket is left blocking, as no registry leaves it), prints "ready PORT PID" (PID the
# standby's), waits a moment, closes its end of the channel (to a
# standby still following, the registry's death), prints "closed", and
# keeps the listening socket open until killed (at most 60 s).
set fake_registry {
    use strict;
    use warnings;
    use Socket;
    use Fcntl qw(:flock F_GETFL F_SETFL O_NONBLOCK);
    use IO::Handle;
    BEGIN { $^F = 1000; }    # descriptors made here survive exec
    my ($exe, $home, $lockfile, $log, $mode) = @ARGV;
    socket(my $l, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
    bind($l, sockaddr_in(0, inet_aton("127.0.0.1"))) or die "bind: $!";
    listen($l, 64) or die "listen: $!";
    # Non-blocking, as a registry's is (the flag belongs to the socket,
    # which the standby shares).
    if ($mode ne "blocking") {
        fcntl($l, F_SETFL, fcntl($l, F_GETFL, 0) | O_NONBLOCK) or die "fcntl: $!";
    }
    my ($port) = sockaddr_in(getsockname($l));
    open(my $k, "+<", $lockfile) or die "$lockfile: $!";
    flock($k, LOCK_EX | LOCK_NB) or die "flock: $!";
    socketpair(my $ours, my $theirs, AF_UNIX, SOCK_STREAM, PF_UNSPEC)
        or die "socketpair: $!";
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close($ours);
        open(STDOUT, ">>", $log) or die "$log: $!";
        open(STDERR, ">>", $log) or die "$log: $!";
        $ENV{HOME} = $home;
        exec($exe, "--home", $home, "--standby-fds=" . fileno($theirs) .
            "," . fileno($l) . "," . fileno($k)) or die "exec: $!";
    }
    close($theirs);
    $ours->autoflush(1);
    select(undef, undef, undef, 0.3);
    if ($mode eq "oversize") {
        print $ours pack("N", 0x7fffffff), "add 1 \x7b";
    } elsif ($mode eq "nonlist") {
        print $ours pack("N", 12), "add 1 \x7bx y z";
    }
    STDOUT->autoflush(1);
    print "ready $port $pid\n";
    select(undef, undef, undef, 0.5);
    close($ours);
    print "closed\n";
    sleep 60;
}

# The fake registry in MODE (above) with its standby, for a new HOME:
# {CHANNEL PORT STANDBY-PID STANDBY-LOG}, the standby ended with the
# scope; {} after a failed check when it did not start.
proc fake_standby {mode} {
    set home [new_home]
    make_regdir $home
    set lock [newfile lock]
    write_file $lock "0\n"
    set log [newfile standby].log
    write_file $log ""
    set f [newfile fakereg].pl
    write_file $f $::fake_registry 0644
    set ch [spawn perl $f [commregd_path] $home $lock $log $mode]
    set line [readline $ch [slow 5000]]
    if {![regexp {^ready ([0-9]+) ([0-9]+)$} $line -> port sb]} {
        check "$mode: the fake registry started its standby ($line)" 0
        say [spawn_err $ch]
        return {}
    }
    remember $sb
    defer [list ::t::kill_proc $sb KILL]
    return [list $ch $port $sb $log]
}

main {
    set c [have_app capp]

    test the_port_file_removed_the_standby_does_not_take_over {
        set home [new_home]
        lassign [start_registry $home] rpid port
        set sb [standby_of $home]
        check "the registry has a standby" {$sb ne "" && $sb != $rpid}
        set mark [log_mark $rpid]
        file delete -- [portfile $home]
        exec kill -KILL $rpid
        check "the standby leaves" {[wait_until {![::t::alive $sb]} [slow 5000] 20]}
        check_match "saying why" \
            "*standby: the registry is gone and so is its port file: not taking over*" \
            [log_since $rpid $mark]
        check "it did not take over" {![string match "*took over*" [log_since $rpid $mark]]}
        check_equal "no port file was made again" 0 [file exists [portfile $home]]
        check_equal "nothing serves the old port" 0 [answers $port 300]
        # The next starter is elected as when there was no file.
        lassign [start_registry $home] rpid2 port2
        check "a new registry ($rpid2) answers" {[::t::registry_pid $home] eq $rpid2}
        check_equal "one registry" [list $rpid2] [one_commregd $home]
    }

    test a_held_entry_registered_with_another_port_or_pid_is_not_taken_back {
        if {!$c} return
        set home [new_home]
        lassign [start_registry $home] rpid port
        set sb [standby_of $home]
        check "a standby" {$sb ne ""}
        # Two applications (capp, real pids) each with its entry; both
        # stopped before the registry dies, so their entries are held
        # and they never come back for them.
        set pa [app_start c $home porty]
        set pb [app_start c $home pidly]
        check "registered" {[wait_until {[all_registered [list $pa $pb]]} [slow 10000]]}
        set ea [entry_named $port porty]
        set eb [entry_named $port pidly]
        foreach e [list $ea $eb] {
            check "entry [dict get $e name] listed with its port and pid" {
                [dict get $e port] > 0 && [dict get $e pid] > 0}
        }
        pause 100
        exec kill -STOP [app_pid $pa] [app_pid $pb]
        pause 50
        exec kill -KILL $rpid
        check "the standby answers as the registry" {[wait_until {
            [::t::registry_pid $home] eq $sb} [slow 5000] 20]}
        check_equal "both entries held" 2 [stats_held $port]
        set w [raw_open $port]
        check_equal "a watch on the new registry" 0 [lindex [raw_call $w {Commreg/Watch w *}] 0]
        set mark [log_mark $rpid]

        # Same name, serial, data and pid, another port: someone else's
        # entry.
        set s [raw_open $port]
        set other [expr {[dict get $ea port] + 1}]
        check_equal "porty on another port: a serial of its own" {0 {porty #2}} \
            [raw_call $s [list Commreg/Register porty $other -serial 1 \
                              -data [dict get $ea data] -pid [dict get $ea pid]]]
        # Same name, serial, port and data, another pid.
        set s2 [raw_open $port]
        check_equal "pidly with another pid: a serial of its own" {0 {pidly #2}} \
            [raw_call $s2 [list Commreg/Register pidly [dict get $eb port] -serial 1 \
                              -pid [pid]]]
        check_equal "both still held" 2 [stats_held $port]
        check_equal "the held porty keeps its port" [dict get $ea port] \
            [::fieldof [entry_named $port porty] port]
        check_equal "the held pidly keeps its pid" [dict get $eb pid] \
            [::fieldof [entry_named $port pidly] pid]

        # At the grace's end the held ones go, and the watcher is told.
        check "the held entries go after the grace" {[wait_until {
            [lsort [::t::reg_names $port]] eq {{pidly #2} {porty #2}}} [slow 8000] 20]}
        set evs {}
        wait_until {[llength [lappend evs {*}[watch_events $w]]] >= 4} [slow 3000] 20
        check_set "the watcher was told both newcomers came and the held ones went" \
            {{add {pidly #2}} {add {porty #2}} {remove pidly} {remove porty}} $evs
        check_equal "none held" 0 [stats_held $port]
        check_match "the log names porty" \
            "*\"porty\" was not registered again within the grace*" [log_since $rpid $mark]
        check_match "the log names pidly" \
            "*\"pidly\" was not registered again within the grace*" [log_since $rpid $mark]
        catch {exec kill -KILL [app_pid $pa] [app_pid $pb]}
    }

    test junk_on_the_channel_the_standby_leaves_and_never_takes_over {
        if {[auto_execok perl] eq ""} { skip "perl not installed" }
        foreach mode {oversize nonlist} {
            if {![llength [set fake [fake_standby $mode]]]} continue
            lassign $fake ch port sb log
            check "$mode: the standby leaves" {[wait_until {![::t::alive $sb]} [slow 5000] 20]}
            check_equal "$mode: the channel was closed after that" closed [readline $ch [slow 5000]]
            check_match "$mode: saying why" \
                "*standby: the registry sent what no registry sends (a frame of * bytes); leaving, not taking over*" \
                [read_file $log]
            check_equal "$mode: nobody serves on the socket" 0 [answers $port 500]
            check "$mode: it never said it took over" {![string match "*took over*" [read_file $log]]}
            stop $ch KILL
        }
    }

    test a_standby_given_a_blocking_listening_socket_serves_every_client {
        # The standby makes the socket it is given non-blocking itself:
        # libevent's listener accepts until EAGAIN, and on a blocking
        # socket the second accept(2) would wait there for a client that
        # is not coming, with every other client unserved.
        if {[auto_execok perl] eq ""} { skip "perl not installed" }
        if {![llength [set fake [fake_standby blocking]]]} return
        lassign $fake ch port sb log
        check_equal "the channel closed (the registry's death)" closed [readline $ch [slow 5000]]
        check "the standby took over" {[wait_until {
            [string match "*took over*" [read_file $log]]} [slow 5000] 20]}
        foreach i {1 2 3} {
            check "client $i is served" {[answers $port [slow 2000]]}
        }
        stop $ch KILL
    }
}
