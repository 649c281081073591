# tcllib's nameserv::auto survives a registry crash: the restarted
# commregd comes back on the port the stale port file remembers
# (local/election.h), and the client's automatic rebind finds it there.
source [file join [file dirname [info script]] lib.tcl]
package require nameserv::auto

main {
    test auto_client_rebinds_after_registry_is_killed_and_restarted {
        set home [new_home]
        # With no standby: this is what clients see when none lives
        # (docs/election.md; the standby's own: standby.test.tcl).
        lassign [start_registry $home --no-standby] pid1 port
        must {nameserv::auto::configure -port $port -host localhost -delay 200}
        check_equal "delay configured" 200 [nameserv::auto::cget -delay]

        must {nameserv::auto::bind auto.one {7001 hostA}}
        must {nameserv::auto::bind auto.two {7002 hostB}}
        set expected {auto.one {7001 hostA} auto.two {7002 hostB}}
        check_equal "both names visible to another connection" \
            $expected [lsort -stride 2 [search $port auto.*]]

        # Crash: SIGKILL, nothing gets to clean up.
        kill_proc $pid1 KILL
        check "first registry gone" {![alive $pid1]}
        check_equal "port file still remembers the port" "$port\n" \
            [read_file [portfile $home]]
        check "nothing listens on the port" {![port_open $port]}

        # Let the client notice the loss (and fail a few reconnects).
        pause 500

        set pid2 [start_daemon $home]
        set port2 [wait_ready $home $pid2]
        check_equal "restarted registry is on the same port" $port $port2
        set h [hello $port2]
        check "the registry on that port is the new process" {
            [dict exists $h pid] && [dict get $h pid] == $pid2
        }

        set ok [wait_until {
            [catch {::t::search $port2 auto.*} now] == 0
            && [lsort -stride 2 $now] eq $expected
        } 8000 50]
        check "both names are back within 8 s" {$ok}
        if {[info exists now]} {
            check_equal "names and data after rebind" $expected [lsort -stride 2 $now]
        }
        check_equal "client's own search sees them" $expected \
            [lsort -stride 2 [must {nameserv::auto::search auto.*}]]

        # The rebinding client is an ordinary live connection: binding one
        # of its names from elsewhere is refused.
        set s [raw_open $port2]
        lassign [raw_call $s {Bind auto.one stolen}] code msg
        check_equal "name is taken again" {1 {Name "auto.one" is already bound}} \
            [list $code $msg]
        raw_close $s
    }
}
