# The Tcl package comm::registry never talks to a port another user holds
# (docs/security.md "A registry's port", docs/tcl.md "Finding the
# registry").  A registry that stopped leaves its port in its port file
# (and a private registry that died, in TCL_COMM_REGPORT); another local
# user who listens on that port must not be sent the application's names,
# port and pid, nor have its answers believed.  Here a throwaway user
# listens on such a port and records every connection and every byte it
# receives; the package (in this process, as root) must send it nothing,
# end up on a registry of its own uid, and say why.  Controls: a real
# registry of our own on the same port is used as before.
# Needs root (to make a throwaway user); skipped otherwise.
source [file join [file dirname [info script]] lib.tcl]
package require comm

set src [file dirname [file dirname [file dirname [file normalize [info script]]]]]
if {[info exists env(COMMREG_SRC)] && $env(COMMREG_SRC) ne ""} {
    set src $env(COMMREG_SRC)
}
lappend auto_path [file join $src tcl]
package require comm::registry
unset -nocomplain env(TCL_COMM_REGPORT)

# The squatter, run as the throwaway user: squatter.tcl PORT DIR MS
# ?ADDR?.  Listens on 127.0.0.1:PORT, or with ADDR "any" on every
# address (trying to bind again every few ms until it can, for at most
# MS ms), then says `bound PORT` on stdout and in
# DIR/bound; appends a line to DIR/conns for every connection and every
# byte it receives to DIR/bytes; exits after MS ms whatever happens.
set squatter_script {
    lassign $argv port dir ms addr
    after $ms exit
    set where [expr {$addr eq "any" ? {} : {-myaddr 127.0.0.1}}]
    proc record {file data} {
        set f [open $file {WRONLY APPEND CREAT BINARY} 0600]
        puts -nonewline $f $data
        close $f
    }
    proc accepted {c addr rport} {
        record $::dir/conns "$addr $rport\n"
        fconfigure $c -blocking 0 -translation binary
        fileevent $c readable [list got $c]
    }
    proc got {c} {
        if {[catch {read $c} data]} { set data "" }
        if {$data ne ""} { record $::dir/bytes $data }
        if {[catch {eof $c} e] || $e} { catch {close $c} }
    }
    set deadline [expr {[clock milliseconds] + $ms}]
    while {[catch {socket -server accepted {*}$where $port} srv]} {
        if {[clock milliseconds] >= $deadline} {
            puts "bindfail $srv"
            exit 1
        }
        after 2
    }
    record $dir/bound ""
    puts "bound $port"
    flush stdout
    vwait forever
}

# Start a squatter on PORT (ADDR: 127.0.0.1, or any) as the throwaway
# user.  Returns a dict: ch (its stdout, stopped by PID at the end of the
# scenario), dir, port.
proc squat {port {addr 127.0.0.1} {ms 60000}} {
    global ouid ogid user
    set dir [tempdir squat 0700]
    file attributes $dir -owner $user
    set f [newfile squatter].tcl
    write_file $f $::squatter_script 0644
    set ch [spawn env HOME=/ setpriv --reuid=$ouid --regid=$ogid --clear-groups \
                [info nameofexecutable] $f $port $dir $ms $addr]
    return [dict create ch $ch dir $dir port $port]
}

# Wait (bounded) for the squatter to listen; its line.
proc squat_ready {sq} {
    return [readline [dict get $sq ch] [slow 5000]]
}

# What the squatter received: bytes, and connections.
proc squat_bytes {sq} {
    return [file_size [file join [dict get $sq dir] bytes]]
}
proc squat_conns {sq} {
    return [llength [split [string trim [read_file [file join [dict get $sq dir] conns]]] \n]]
}

# Use the package in this process with HOME until the scenario ends;
# -command notifications are appended to ::life.
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

proc with_regport {value script {ms 15000}} {
    set ::env(TCL_COMM_REGPORT) $value
    try {
        return [uplevel 1 [list ::t::must $script $ms]]
    } finally {
        unset -nocomplain ::env(TCL_COMM_REGPORT)
    }
}

# The `error` notifications received so far.
proc life_errors {} {
    set l {}
    foreach e $::life {
        if {[lindex $e 0] eq "error"} { lappend l [lindex $e 1] }
    }
    return $l
}

# The registry the package started for HOME (its Hello on the port file's
# port): ended by PID when the scenario ends.  Returns its Hello dict.
proc adopt_registry {home} {
    set h [hello [file_port $home]]
    if {[dict exists $h pid]} {
        defer [list ::t::kill_proc [dict get $h pid]]
    }
    return $h
}

# Is HOME's port file locked (by any process)?  /proc/locks lists each
# flock as "N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE ..." (hex device
# numbers, as glibc's major() and minor() split st_dev).
proc port_file_locked {home} {
    file stat [portfile $home] st
    set dev [expr {$st(dev) & 0xFFFFFFFFFFFFFFFF}]
    set maj [expr {(($dev >> 8) & 0xfff) | (($dev >> 32) & 0xfffff000)}]
    set min [expr {($dev & 0xff) | (($dev >> 12) & 0xffffff00)}]
    foreach {- a b ino} [regexp -all -inline -line \
            {^[0-9]+: FLOCK +\S+ +\S+ +-?[0-9]+ ([0-9a-f]+):([0-9a-f]+):([0-9]+) } \
            [read_file /proc/locks]] {
        if {$ino == $st(ino) && [scan $a %x] == $maj && [scan $b %x] == $min} {
            return 1
        }
    }
    return 0
}

main {
    set myuid [exec id -u]
    if {$myuid != 0} {
        skip "needs root to create a throwaway user (running as uid $myuid)"
    }
    foreach tool {useradd userdel setpriv flock} {
        if {[auto_execok $tool] eq ""} { skip "$tool not installed" }
    }
    if {![file readable /proc/net/tcp] || ![file readable /proc/locks]} {
        skip "no /proc/net/tcp or /proc/locks here"
    }
    set user commreg-squat-[pid]
    set r [run useradd -M -s /usr/sbin/nologin $user]
    if {[dict get $r code] != 0} {
        error "useradd $user failed: [dict get $r err]"
    }
    on_cleanup [list catch [list exec userdel $user 2>@1]]
    set ouid [exec id -u $user]
    set ogid [exec id -g $user]
    set refusal "port %d is held by uid $ouid, not by you (uid $myuid): not your registry; refusing to use it"

    test stopped_registrys_port_taken_by_another_user_gets_nothing {
        set home [new_home]
        lassign [start_registry $home] dpid port
        kill_proc $dpid TERM
        check_equal "the stopped registry's port file keeps its port" $port [file_port $home]
        check_equal "... unlocked" 0 [port_file_locked $home]
        set sq [squat $port]
        check_equal "another user listens on it" "bound $port" [squat_ready $sq]

        use_home $home
        check_equal "register works" app [must {comm::registry::register app} 15000]
        set st [comm::registry::status]
        set q [dict get $st port]
        check_equal "the squatter received no byte" 0 [squat_bytes $sq]
        check_equal "... not even a connection (an unlocked port file is not tried)" 0 \
            [squat_conns $sq]
        check "the package is on another port ($q, not $port)" {
            [dict get $st state] eq "connected" && $q ne "" && $q != $port
            && ![dict get $st private]
        }
        check_equal "the port file says so" $q [file_port $home]
        set h [adopt_registry $home]
        check "a registry of our own uid answers there" {
            [dict exists $h uid] && [dict get $h uid] == $myuid
        }
        check "... the commregd the package started for this HOME" {
            [dict exists $h pid] && [dict get $h pid] in [::t::commregds_of $home]
        }
        check_equal "it holds the name" {app} [reg_names $q]
        check "-command was told why the old port is refused" \
            {[wait_until {[llength [life_errors]] >= 1} 3000]}
        check_equal "... naming the user who holds it" \
            [list [format $refusal $port]] [life_errors]
        check_equal "lookup goes to our registry" [list [comm::comm self] localhost] \
            [must {comm::registry::lookup app}]
        check_equal "comm::registry::port gives the checked port" $q \
            [must {comm::registry::port}]
        pause 100
        check_equal "still no byte for the squatter" 0 [squat_bytes $sq]
    }

    test locked_port_file_but_port_of_another_user_is_refused {
        # The window where the file is locked but its port is not the
        # registry's: here a process of ours holds the lock while another
        # user listens on the port.  The connection itself is checked.
        set home [new_home]
        lassign [start_registry $home] dpid port
        kill_proc $dpid TERM
        set sq [squat $port]
        check_equal "another user listens on the port" "bound $port" [squat_ready $sq]
        # One process holds it (sh opens the file, flock(1) locks that
        # open file, sh becomes sleep): ending it by PID ends the lock.
        set locker [spawn sh -c {exec 9<"$0" && flock -n 9 && exec sleep 60} \
                        [portfile $home]]
        check "the port file is locked" {[wait_until {[port_file_locked $home]} 3000]}

        use_home $home
        lassign [call {comm::registry::register app} 15000] code res
        check_equal "register fails" 1 $code
        check_match "... saying who holds the port" "*[format $refusal $port]*" $res
        check_equal "the squatter received no byte" 0 [squat_bytes $sq]
        check "... though it was connected to (and checked)" {[squat_conns $sq] >= 1}
        check "-command was told" {[wait_until {[llength [life_errors]] >= 1} 3000]}
        check_equal "... once" [list [format $refusal $port]] [life_errors]
        check_equal "state idle" idle [dict get [comm::registry::status] state]

        # The lock goes: the next call starts a registry elsewhere.
        stop $locker
        check_equal "register works then" app [must {comm::registry::register app} 15000]
        set q [dict get [comm::registry::status] port]
        adopt_registry $home
        check "on another port ($q)" {$q ne "" && $q != $port}
        check_equal "still no byte for the squatter" 0 [squat_bytes $sq]
    }

    # The C library (the commreg command, the blocking client, and capp,
    # the async client) asks the kernel whose listener it reached before
    # its first byte: the comm offer and its Hello never reach a squatter,
    # whether the port file is locked or not, and TCL_COMM_REGPORT.
    test c_clients_send_a_squatter_nothing {
        if {[capp_path] eq ""} { say "  (skipped: capp is not built)"; return }
        set home [new_home]
        lassign [start_registry $home] dpid port
        kill_proc $dpid TERM
        set sq [squat $port]
        check_equal "another user listens on the port" "bound $port" [squat_ready $sq]
        # Locked port file: the clients connect, check, and refuse.
        set locker [spawn sh -c {exec 9<"$0" && flock -n 9 && exec sleep 60} \
                        [portfile $home]]
        check "the port file is locked" {[wait_until {[port_file_locked $home]} 3000]}
        set r [commreg $home list]
        check "commreg list fails" {[dict get $r code] != 0}
        check_match "... saying whose port it is" "*port $port*uid $ouid*" [dict get $r err]
        check "the squatter was connected to (and checked)" {[squat_conns $sq] >= 1}
        check_equal "the squatter received no byte from commreg" 0 [squat_bytes $sq]
        set app [spawn -home $home [capp_path] --home $home --commregd [commregd_path] capp-a]
        pause 1500
        stop $app
        check_equal "... nor from the async client" 0 [squat_bytes $sq]
        stop $locker
        # TCL_COMM_REGPORT naming the squatter.
        set app [spawn -home $home env TCL_COMM_REGPORT=$port [capp_path] --home $home \
                     --commregd [commregd_path] capp-b]
        check_match "capp registers on a registry of its own" "registered capp-b capp-b" \
            [readline $app [slow 15000]]
        stop $app
        check_equal "... and the squatter still received no byte" 0 [squat_bytes $sq]
        catch {adopt_registry $home}
    }

    test regport_held_by_another_user_falls_back_to_the_user_registry {
        set home [new_home]
        lassign [start_registry $home] upid uport
        # On every address this time: the connection to 127.0.0.1 is
        # accepted by its listener on 0.0.0.0.
        set sq [squat [free_port] any]
        set sport [dict get $sq port]
        check_equal "another user listens (on every address)" "bound $sport" \
            [squat_ready $sq]

        use_home $home
        check_equal "register works" app2 [with_regport $sport {comm::registry::register app2}]
        check_equal "on the user registry" \
            [dict create state connected port $uport private 0] [comm::registry::status]
        check_equal "which holds the name" {app2} [reg_names $uport]
        check_equal "the squatter received no byte" 0 [squat_bytes $sq]
        check "... though it was connected to (and checked)" {[squat_conns $sq] >= 1}
        check "-command was told" {[wait_until {[llength [life_errors]] >= 1} 3000]}
        check_equal "... why, and that the user registry is used" \
            [list "TCL_COMM_REGPORT=$sport: [format $refusal $sport]; using the user registry"] \
            [life_errors]
        check_equal "lookup works" [list [comm::comm self] localhost] \
            [must {comm::registry::lookup app2}]
        check_equal "still no byte for the squatter" 0 [squat_bytes $sq]
    }

    test failover_while_another_user_takes_the_port {
        set home [new_home]
        # With no standby: this is what clients see when none lives
        # (docs/election.md; the standby's own: standby.test.tcl).
        lassign [start_registry $home --no-standby] dpid port
        use_home $home
        check_equal "registered" fo [must {comm::registry::register fo}]
        check_equal "on the registry" $port [dict get [comm::registry::status] port]
        # The squatter tries the port from now on; the registry dies, and
        # this process does not run its event loop (so the package cannot
        # notice) until the squatter has the port.
        set sq [squat $port]
        exec kill -KILL $dpid
        set bound [file join [dict get $sq dir] bound]
        set deadline [expr {[clock milliseconds] + [slow 5000]}]
        while {![file exists $bound] && [clock milliseconds] < $deadline} {
            after 2
        }
        check "another user took the port" {[file exists $bound]}
        check "the package regained a registry" {[wait_until {
            [lsearch -glob $::life "regained *"] >= 0} [slow 15000]]}
        set q [file_port $home]
        adopt_registry $home
        check "elsewhere ($q, not $port)" {$q ne "" && $q != $port}
        check_equal "told lost, then regained on it" [list lost [list regained $q]] \
            [lmap e $::life {expr {[lindex $e 0] eq "lost" ? "lost" : $e}}]
        check_equal "the name is back" {fo} [reg_names $q]
        check_equal "the squatter received no byte" 0 [squat_bytes $sq]
    }

    test failover_to_a_locked_port_file_whose_port_another_user_holds {
        # As above, but a process of ours holds the port file's lock when
        # the package looks: the registry it spawns finds the file locked
        # and leaves it be, and the recovery's own connection is refused
        # until the lock goes.
        set home [new_home]
        # With no standby: this is what clients see when none lives
        # (docs/election.md; the standby's own: standby.test.tcl).
        lassign [start_registry $home --no-standby] dpid port
        use_home $home
        check_equal "registered" fo2 [must {comm::registry::register fo2}]
        set sq [squat $port]
        exec kill -KILL $dpid
        set bound [file join [dict get $sq dir] bound]
        set deadline [expr {[clock milliseconds] + [slow 5000]}]
        while {![file exists $bound] && [clock milliseconds] < $deadline} {
            after 2
        }
        check "another user took the port" {[file exists $bound]}
        set locker [spawn sh -c {exec 9<"$0" && flock -n 9 && exec sleep 60} \
                        [portfile $home]]
        while {![port_file_locked $home] && [clock milliseconds] < $deadline} {
            after 2
        }
        check "a process of ours holds the port file's lock" {[port_file_locked $home]}
        check "the package says why it does not use the port" {[wait_until {
            [llength [life_errors]] >= 1} [slow 10000]]}
        check_equal "... naming the user who holds it" \
            [list [format $refusal $port]] [life_errors]
        check_equal "still recovering" recovering [dict get [comm::registry::status] state]
        pause 1500
        stop $locker
        check "the package regained a registry once the lock went" {[wait_until {
            [lsearch -glob $::life "regained *"] >= 0} [slow 15000]]}
        set q [file_port $home]
        adopt_registry $home
        check "elsewhere ($q, not $port)" {$q ne "" && $q != $port}
        check_equal "told lost, why, and regained (the refusal once)" \
            [list lost [list error [format $refusal $port]] [list regained $q]] \
            [lmap e $::life {expr {[lindex $e 0] eq "lost" ? "lost" : $e}}]
        check_equal "the name is back" {fo2} [reg_names $q]
        check_equal "the squatter received no byte" 0 [squat_bytes $sq]
        check "... though it was connected to (and checked)" {[squat_conns $sq] >= 1}
    }

    test control_our_own_registry_on_the_same_port_is_used {
        set home [new_home]
        lassign [start_registry $home] dpid port
        kill_proc $dpid TERM
        # Ours again, on the same port (the stopped one's port file says it).
        lassign [start_registry $home] dpid2 port2
        check_equal "the new registry took the same port" $port $port2
        use_home $home
        check_equal "register works" mine [must {comm::registry::register mine}]
        check_equal "on that registry" \
            [dict create state connected port $port private 0] [comm::registry::status]
        check_equal "it holds the name" {mine} [reg_names $port]
        check_equal "comm::registry::port" $port [must {comm::registry::port}]
        check_equal "one commregd for the HOME" [list $dpid2] [commregds_of $home]
        pause 100
        check_equal "no notification" {} $::life

        # docs/tcl.md's example: tcllib's nameserv on the checked port.
        set ns [spawn_tcl nameserv_client {
            lassign $argv tcldir home commregd
            lappend auto_path $tcldir
            after 10000 {puts TIMEOUT; exit}
            package require nameserv
            package require comm::registry
            comm::registry::configure -home $home -commregd $commregd
            nameserv::configure -host 127.0.0.1 -port [comm::registry::port]
            nameserv::bind viaport {1234 localhost}
            puts [list OK [nameserv::search viaport]]
            flush stdout
            exit
        } [file join $::src tcl] $home [commregd_path]]
        check_equal "nameserv, configured with comm::registry::port, works" \
            {OK {viaport {1234 localhost}}} [readline $ns [slow 12000]]

        # A private registry of our own (commregd --private).
        lassign [start_private_registry] ppid pport other
        use_home $home
        check_equal "TCL_COMM_REGPORT of ours is used" inside \
            [with_regport $pport {comm::registry::register inside}]
        check_equal "bound to it" \
            [dict create state connected port $pport private 1] [comm::registry::status]
        check_equal "comm::registry::port gives it" $pport [must {comm::registry::port}]
        pause 100
        check_equal "no notification" {} $::life
    }

    test without_proc_no_registry_is_used_and_that_is_said_once {
        # The package without its compiled helper (tcl/kernel.c), which
        # asks the kernel without /proc.
        set home [new_home]
        lassign [start_registry $home] dpid port
        use_home $home
        defer [list set ::comm::registry::kernel $::comm::registry::kernel]
        set ::comm::registry::kernel 0
        set saved $::comm::registry::procfile(tcp)
        defer [list set ::comm::registry::procfile(tcp) $saved]
        set ::comm::registry::procfile(tcp) [file join $home no-such-proc-net-tcp]
        foreach i {1 2} {
            lassign [call {comm::registry::register np} 15000] code res
            check_equal "register $i fails" 1 $code
            check_match "... saying why" \
                "*cannot tell who holds port $port (*): without /proc no registry can be checked, and none is used*" \
                $res
        }
        pause 200
        check_equal "-command was told once" 1 [llength [life_errors]]
        check_match "... that" "*without /proc no registry can be checked*" [lindex [life_errors] 0]
        check_equal "nothing was registered" {} [reg_names $port]
        set ::comm::registry::procfile(tcp) $saved
        check_equal "with /proc back, register works" np [must {comm::registry::register np}]
    }

    test the_check_asks_the_kernel_of_one_socket_where_the_helper_is_built {
        # With comm::registry::kernel (the build's tcl/, COMMREG_TCL_KERNEL
        # 1) who accepted a connection is asked of the kernel for that
        # socket: /proc/net/tcp is never read, and not needed.  Without
        # it (0), it is read.
        set home [new_home]
        lassign [start_registry $home] dpid port
        use_home $home
        set ::reads 0
        set count {apply {args { incr ::reads }}}
        trace add execution ::comm::registry::SocketUid enter $count
        defer [list trace remove execution ::comm::registry::SocketUid enter $count]
        if {[tcl_kernel_expected]} {
            check_equal "the helper is loaded" 1 $::comm::registry::kernel
            defer [list array set ::comm::registry::procfile [array get ::comm::registry::procfile]]
            foreach k {tcp tcp6} {
                set ::comm::registry::procfile($k) [file join $home no-such-proc-net-$k]
            }
            check_equal "register works without /proc/net/tcp" kh [must {comm::registry::register kh}]
            check_equal "... which was never read" 0 $::reads
            check_equal "lookup too" [comm::comm self] [lindex [must {comm::registry::lookup kh}] 0]
            check_equal "the registry has it" kh [reg_names $port]
        } else {
            check_equal "the package reads /proc" 0 $::comm::registry::kernel
            check_equal "register works" kh [must {comm::registry::register kh}]
            check "... having read /proc/net/tcp" {$::reads > 0}
        }
    }

    test a_connection_not_yet_accepted_said_to_be_uid_0_is_the_listeners {
        # A connection still in a listener's queue is held by no process
        # (inode 0), and kernels before about 6.13 say uid 0 of it
        # whoever listens: were that believed, a squatter that delays
        # accept(2) would pass as root's registry when the user is root.
        # Such a connection is its listener's, whose uid every kernel
        # tells; when no listener is told either, it is looked at again
        # until accepted, for at most accept_ms, then refused.  The
        # kernel's answers are played here (this kernel says the
        # listener's uid), through the helper and through /proc/net/tcp.
        set srv [socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.1 0]
        defer [list close $srv]
        set port [lindex [fconfigure $srv -sockname] 2]
        defer [list set ::comm::registry::accept_ms $::comm::registry::accept_ms]
        set ::comm::registry::accept_ms 200
        defer [list set ::comm::registry::kernel $::comm::registry::kernel]
        defer [list array set ::comm::registry::procfile [array get ::comm::registry::procfile]]
        set me [::comm::registry::Uid]
        set other [expr {$me == 4242 ? 4243 : 4242}]
        # Through /proc: a table whose lines are our connection, with
        # UID and INODE, and a listener on PORT of LUID when given.
        proc table_with {s uid inode {luid ""}} {
            lassign [fconfigure $s -peername] - - pport
            lassign [fconfigure $s -sockname] - - mport
            set a [lindex [::comm::registry::AddrHex 127.0.0.1] 1]
            set t "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
            set line "   %d: %s:%04X %s:%04X %s 00000000:00000000 00:00000000 00000000 %5d        0 %d 1 0000000000000000 20 4 30 10 -1\n"
            if {$luid ne ""} {
                append t [format $line 0 $a $pport 00000000 0 0A $luid 777]
            }
            append t [format $line 1 $a $pport $a $mport 01 $uid $inode]
            set f [newfile tcp]
            write_file $f $t
            return $f
        }
        set ::comm::registry::kernel 0
        set ::comm::registry::procfile(tcp6) [file join [workdir] no-tcp6]
        set s [connect_queued $port]
        set ::comm::registry::procfile(tcp) [table_with $s 0 0]
        set t0 [clock milliseconds]
        set code [catch {::comm::registry::CheckAcceptor $s $port} res opts]
        check_equal "/proc: uid 0 without an inode, no listener told: refused" 1 $code
        check_equal "... for want of an acceptor" [list COMMREG NOACCEPTOR $port] \
            [dict get $opts -errorcode]
        check_match "... as not known within accept_ms" \
            "cannot tell who holds port $port: no process accepted our connection to it within 200 ms; refusing to use it" $res
        check "... after looking for it that long" {[clock milliseconds] - $t0 >= 200}
        set ::comm::registry::procfile(tcp) [table_with $s 0 0 $other]
        set code [catch {::comm::registry::CheckAcceptor $s $port} res opts]
        check_equal "/proc: ... in another uid's listener's queue: refused as not ours" \
            [list COMMREG NOTOURS $port $other] [dict get $opts -errorcode]
        set ::comm::registry::procfile(tcp) [table_with $s 0 0 $me]
        lassign [call [list ::comm::registry::CheckAcceptor $s $port]] code res
        check_equal "/proc: ... in our listener's queue: ours" 0 $code
        set ::comm::registry::procfile(tcp) [table_with $s $me 4242]
        lassign [call [list ::comm::registry::CheckAcceptor $s $port]] code res
        check_equal "/proc: our uid with an inode passes" 0 $code
        close $s
        if {[llength [info commands ::comm::registry::kernel::acceptor]]} {
            set ::comm::registry::kernel 1
            foreach c {acceptor listener} {
                rename ::comm::registry::kernel::$c ::comm::registry::kernel::real_$c
                defer [list apply {{c} {
                    rename ::comm::registry::kernel::$c {}
                    rename ::comm::registry::kernel::real_$c ::comm::registry::kernel::$c
                }} $c]
            }
            # The answers to play, in turn (the last one stays).
            proc ::comm::registry::kernel::acceptor {s} {
                if {[llength $::said] > 1} {
                    set ::said [lassign $::said a]
                    return $a
                }
                return [lindex $::said 0]
            }
            proc ::comm::registry::kernel::listener {s} { return $::listens }
            set s [connect_queued $port]
            set ::said [list {established 0 0}]
            set ::listens {}
            set code [catch {::comm::registry::CheckAcceptor $s $port} res opts]
            check_equal "helper: uid 0 without an inode, no listener: refused" \
                [list COMMREG NOACCEPTOR $port] [dict get $opts -errorcode]
            check_match "... as not known within accept_ms" "*no process accepted our connection to it within 200 ms*" $res
            set ::listens [list listen $other 777]
            set code [catch {::comm::registry::CheckAcceptor $s $port} res opts]
            check_equal "helper: ... in another uid's listener's queue: refused as not ours" \
                [list COMMREG NOTOURS $port $other] [dict get $opts -errorcode]
            set ::listens [list listen $me 777]
            lassign [call [list ::comm::registry::CheckAcceptor $s $port]] code res
            check_equal "helper: ... in our listener's queue: ours" 0 $code
            set ::listens {}
            set ::said [list {syn_recv 0 0} {established 0 0} {established 0 0} [list established $me 4242]]
            lassign [call [list ::comm::registry::CheckAcceptor $s $port]] code res
            check_equal "helper: once accepted, with an inode, it passes" 0 $code
            close $s
        }
    }

    test a_helper_that_cannot_ask_the_kernel_leaves_the_check_to_proc {
        # Where netlink is refused (a seccomp filter, say), the helper's
        # error is its own, and the package reads /proc instead of
        # refusing every registry.
        if {![tcl_kernel_expected]} {
            check_equal "no helper here: the package reads /proc" 0 $::comm::registry::kernel
            return
        }
        set f [open [newfile notasocket] w]
        defer [list close $f]
        lassign [call [list comm::registry::kernel::acceptor $f]] code res
        check_equal "asked of a channel that is no socket: an error" 1 $code
        check_match "... saying why" "*non-socket*" $res
        lassign [call {comm::registry::kernel::acceptor}] code res
        check_match "... and without one, its usage" "wrong # args*channel*" $res
        set home [new_home]
        lassign [start_registry $home] dpid port
        use_home $home
        rename ::comm::registry::kernel::acceptor ::comm::registry::kernel::saved
        defer {
            rename ::comm::registry::kernel::acceptor {}
            rename ::comm::registry::kernel::saved ::comm::registry::kernel::acceptor
        }
        proc ::comm::registry::kernel::acceptor {s} {
            return -code error -errorcode {COMMREG NODIAG} "netlink sock_diag unavailable: Permission denied"
        }
        set ::reads 0
        set count {apply {args { incr ::reads }}}
        trace add execution ::comm::registry::SocketUid enter $count
        defer [list trace remove execution ::comm::registry::SocketUid enter $count]
        check_equal "register works" kf [must {comm::registry::register kf}]
        check "... /proc/net/tcp having been read" {$::reads > 0}
        check_equal "the registry has it" kf [reg_names $port]
    }
}
