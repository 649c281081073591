# The Tk way of the Tcl package comm::registry (docs/tcl.md "The Tk
# way"), against the real commregd, with real tclsh applications on
# tcllib's comm: `send NAME SCRIPT` by name between two applications,
# `interps`, `appname` (a rename seen by a third application), `configure
# -register NAME` before comm is loaded (the application is registered as
# comm loads: by `package require comm`, by a package that requires comm,
# by a first call of `comm::comm`), a registration following comm's port,
# every -errorcode trapped with `try ... trap`, and sends to names that are
# gone (the application killed; its port dead; it exits while answering).
#
# The applications are small scripts written here (tkapp below); this
# process is the third application, using the package itself.
source [file join [file dirname [info script]] lib.tcl]
package require comm

set src [file dirname [file dirname [file dirname [file normalize [info script]]]]]
if {[info exists env(COMMREG_SRC)] && $env(COMMREG_SRC) ne ""} {
    set src $env(COMMREG_SRC)
}
lappend auto_path [file join $src tcl]
package require comm::registry
unset -nocomplain env(TCL_COMM_REGPORT)

# tkapp SRC COMMREGD MODE NAME ?PKGDIR?: loads comm::registry first, then
# gets a name the way MODE says:
#   early     configure -register NAME, then `package require comm`
#   autoload  configure -register NAME, then a first `comm::comm self`
#             (comm loaded by its auto_index entry)
#   nested    configure -register NAME, then `package require needscomm`
#             (from PKGDIR), a package whose load script requires comm
#   late      `package require comm`, then `appname NAME`
# It prints (one Tcl list per line, flushed): `loaded COMM` (1 if comm
# was loaded by comm::registry), `before APPNAME` (after configure
# -register, before comm), `registered APPNAME COMMPORT PID`, and
# `life EVENT ARG...` for the package's notifications.  Then it serves:
# `whoami` answers {APPNAME PID}, `add A B`, `relay NAME SCRIPT...` sends
# on by name with comm::registry::send.
set tkapp_script {
    lassign $argv src commregd mode name pkgdir
    lappend auto_path [file join $src tcl]
    proc out {args} { puts $args; flush stdout }
    package require comm::registry
    out loaded [expr {[package provide comm] ne ""}]
    comm::registry::configure -commregd $commregd \
        -command {apply {{args} {out life {*}$args}}}
    proc whoami {} { return [list [comm::registry::appname] [pid]] }
    proc add {a b} { return [expr {$a + $b}] }
    proc relay {name args} { return [comm::registry::send $name {*}$args] }
    switch -exact -- $mode {
        early {
            comm::registry::configure -register $name
            out before [comm::registry::appname]
            package require comm
        }
        autoload {
            comm::registry::configure -register $name
            out before [comm::registry::appname]
            comm::comm self
        }
        nested {
            comm::registry::configure -register $name
            out before [comm::registry::appname]
            lappend auto_path $pkgdir
            package require needscomm
        }
        late {
            package require comm
            comm::registry::appname $name
        }
    }
    out registered [comm::registry::appname] [comm::comm self] [pid]
    vwait forever
}
set tkapp [file join [workdir] tkapp.tcl]
write_file $tkapp $tkapp_script 0644

# Start a tkapp in HOME; returns {channel appname commport pid} once it
# says it is registered (an error with what it said otherwise).
proc tkapp {home mode name {pkgdir ""}} {
    set ch [spawn -home $home [info nameofexecutable] $::tkapp $::src \
                [commregd_path] $mode $name $pkgdir]
    set lines {}
    while 1 {
        set l [readline $ch 15000]
        if {[string match <*> $l]} {
            error "tkapp $mode $name: $l after [show $lines]; stderr: [spawn_err $ch]"
        }
        lappend lines $l
        if {[lindex $l 0] eq "registered"} break
    }
    set ::said($ch) $lines
    return [list $ch {*}[lrange $l 1 3]]
}

# Use the package in this process with HOME until the scenario ends.
proc use_home {home} {
    comm::registry::disconnect
    comm::registry::configure -home $home -commregd [commregd_path] \
        -command "" -timeout 10000
    defer comm::registry::disconnect
}

# name -> entry, from a Commreg/List over a raw connection to PORT.
proc table {port {pattern *}} {
    set s [raw_open $port]
    lassign [raw_call $s [list Commreg/List $pattern]] code res
    raw_close $s
    if {$code ne "0"} { error "Commreg/List: $res" }
    set d {}
    foreach e $res { dict set d [dict get $e name] $e }
    return $d
}

# The -errorcode SCRIPT (run in the caller) fails with, trapped by
# `try ... trap PREFIX`; "no error" or "not trapped: ..." otherwise.
proc trapped {prefix script} {
    try {
        uplevel 1 $script
    } trap $prefix {msg opts} {
        return [dict get $opts -errorcode]
    } on error {msg opts} {
        return "not trapped: $msg ([dict get $opts -errorcode])"
    }
    return "no error"
}

main {
    test configure_register_before_package_require_comm_registers_on_load {
        set home [new_home]
        lassign [start_registry $home] rpid rport
        lassign [tkapp $home early alpha] ch name cport pid
        check_equal "comm::registry did not load comm" {loaded 0} \
            [lindex $::said($ch) 0]
        check_equal "no name before comm is loaded" {before {}} \
            [lindex $::said($ch) 1]
        check_equal "registered as comm loaded" alpha $name
        set e [dict get [table $rport alpha] alpha]
        check_equal "the entry leads to its comm port" $cport [dict get $e port]
        check_equal "the entry has its pid" $pid [dict get $e pid]
    }

    test configure_register_then_a_package_that_requires_comm {
        set home [new_home]
        lassign [start_registry $home] rpid rport
        set pkgdir [tempdir pkg]
        write_file [file join $pkgdir pkgIndex.tcl] {
            package ifneeded needscomm 1.0 [list source [file join $dir needscomm.tcl]]
        } 0644
        # Its load script runs while no name is registered yet: the
        # registration waits for the outermost `package require`.
        write_file [file join $pkgdir needscomm.tcl] {
            package require comm
            set ::needscomm_saw [comm::registry::appname]
            package provide needscomm 1.0
        } 0644
        lassign [tkapp $home nested beta $pkgdir] ch name cport pid
        check_equal "registered as package require needscomm returned" beta $name
        check_equal "in the table" $cport \
            [dict get [table $rport beta] beta port]
        use_home $home
        check_equal "not yet inside the package's load script" {} \
            [comm::registry::send beta set ::needscomm_saw]
    }

    test configure_register_then_comm_loaded_by_its_first_call {
        set home [new_home]
        lassign [start_registry $home] rpid rport
        lassign [tkapp $home autoload gamma] ch name cport pid
        check_equal "comm::comm self loaded comm and registered" gamma $name
        check_equal "in the table" $cport \
            [dict get [table $rport gamma] gamma port]
    }

    test send_by_name_between_two_applications {
        set home [new_home]
        lassign [start_registry $home] rpid rport
        lassign [tkapp $home late alpha] a - - apid
        lassign [tkapp $home early beta] b - - bpid
        use_home $home
        check_equal "send alpha add 2 3" 5 [comm::registry::send alpha add 2 3]
        check_equal "script words are joined as Tk's send joins them" 7 \
            [comm::registry::send alpha expr 3 + 4]
        # beta sends to alpha by name (beta's own comm::registry::send).
        check_equal "beta relays to alpha by name" [list alpha $apid] \
            [comm::registry::send beta relay alpha whoami]
        check_equal "alpha relays to beta" [list beta $bpid] \
            [comm::registry::send alpha relay beta whoami]
        check_equal "-async returns at once, empty" "" \
            [comm::registry::send -async alpha set ::x 42]
        check_equal "... and the script ran" 42 \
            [comm::registry::send alpha set ::x]
        check_equal "-- ends the options" 9 \
            [comm::registry::send -timeout 5000 -- alpha add 4 5]
        # The application's own error comes back as it raised it.
        set r [trapped {MYAPP BAD} {comm::registry::send alpha {error "bad thing" "" {MYAPP BAD 7}}}]
        check_equal "the application's errorcode is kept" {MYAPP BAD 7} $r
        check_match "usage" {wrong # args*} \
            [expr {[catch {comm::registry::send alpha} m] ? $m : ""}]
        # Each connection send checked is noted with the uids it was
        # checked against (used again if comm must reconnect), and the
        # notes of closed connections go as a new one is noted.
        set aid [comm::registry::lookup alpha]
        set afid [comm::comm connect $aid]
        check_equal "alpha's connection: checked against our uid" [list [exec id -u]] \
            [lindex $::comm::registry::sendchecked($afid) 1]
        comm::comm shutdown $aid
        check_equal "a send to alpha again (a new connection)" 2 [comm::registry::send alpha add 1 1]
        set noted [array names ::comm::registry::sendchecked]
        check_equal "two connections noted: beta's and alpha's new one" 2 [llength $noted]
        foreach f $noted {
            check_equal "... each open, as it was noted" \
                [list [fconfigure $f -sockname] [fconfigure $f -peername]] \
                [lindex $::comm::registry::sendchecked($f) 0]
        }
    }

    test interps_lists_the_registered_names {
        set home [new_home]
        lassign [start_registry $home] rpid rport
        tkapp $home late zeta
        tkapp $home late alpha
        tkapp $home early alpha
        use_home $home
        check_equal "all names, sorted" [list alpha {alpha #2} zeta] \
            [comm::registry::interps]
        check_equal "a pattern" [list alpha {alpha #2}] \
            [comm::registry::interps alpha*]
        check_equal "another application sees the same" [list alpha {alpha #2} zeta] \
            [comm::registry::send zeta comm::registry::interps]
        check_equal "this application has no name" "" [comm::registry::appname]
        check_equal "appname names it" me [comm::registry::appname me]
        check_equal "... and interps lists it" [list alpha {alpha #2} me zeta] \
            [comm::registry::interps]
        comm::registry::configure -register ""
        check_equal "configure -register {} withdraws it" \
            [list {} [list alpha {alpha #2} zeta]] \
            [list [comm::registry::appname] [comm::registry::interps]]
        comm::registry::configure -register us
        check_equal "configure -register with comm loaded registers at once" \
            [list us [list alpha {alpha #2} us zeta]] \
            [list [comm::registry::appname] [comm::registry::interps]]
    }

    test appname_rename_is_seen_by_a_third_application {
        set home [new_home]
        lassign [start_registry $home] rpid rport
        lassign [tkapp $home late alpha] a - acport apid
        lassign [tkapp $home late beta] b
        use_home $home
        # This process is the third application: it watches, and sees
        # alpha go and gamma come.
        set ::events {}
        comm::registry::watch * {apply {{type entry} {
            lappend ::events [list $type [dict get $entry name]]
        }}}
        check_equal "alpha renames itself" gamma \
            [comm::registry::send alpha comm::registry::appname gamma]
        check_equal "its appname now" gamma \
            [lindex [comm::registry::send gamma whoami] 0]
        check_equal "interps" [list beta gamma] [comm::registry::interps]
        set e [dict get [table $rport gamma] gamma]
        check_equal "same process, same port" [list $acport $apid] \
            [list [dict get $e port] [dict get $e pid]]
        check "the watch saw gamma added and alpha removed" {[wait_until {
            "add gamma" in $::events && "remove alpha" in $::events}]}
        check_equal "the old name is gone" [list COMMREG NOTFOUND alpha] \
            [trapped {COMMREG NOTFOUND} {comm::registry::send alpha whoami}]
        check_equal "a taken name gets a serial" {beta #2} \
            [comm::registry::send gamma comm::registry::appname beta]
        # Words are joined as Tk's send joins them: a word with a space
        # goes in a list.
        check_equal "beta relays to its namesake" [list {beta #2} $apid] \
            [comm::registry::send beta [list relay {beta #2} whoami]]
        check_equal "renaming to its own name changes nothing" {beta #2} \
            [comm::registry::send {beta #2} comm::registry::appname beta]
        check_equal "configure -register follows appname" beta \
            [comm::registry::send {beta #2} comm::registry::configure -register]
        # A refused name leaves the old one.
        check_match "a refused rename" "COMMREG REFUSED registry *" \
            [comm::registry::send {beta #2} \
                 {catch {comm::registry::appname "x\ty"} m o; dict get $o -errorcode}]
        check_equal "still {beta #2}" [list beta {beta #2}] [comm::registry::interps]
    }

    test the_name_follows_comms_port {
        set home [new_home]
        lassign [start_registry $home] rpid rport
        lassign [tkapp $home early alpha] a - cport
        use_home $home
        set newport [free_port]
        # -async: reconfiguring comm closes its connections, this one too.
        comm::registry::send -async alpha comm::comm config -port $newport
        check "the entry leads to the new port" {[wait_until {
            [dict exists [set t [::table $rport alpha]] alpha]
            && [dict get $t alpha port] == $newport}]}
        check_equal "same name, reached there" alpha \
            [lindex [comm::registry::send alpha whoami] 0]
        comm::registry::send -async alpha comm::comm config -listen 0
        check "the name is withdrawn when comm stops listening" {[wait_until {
            ![dict exists [::table $rport alpha] alpha]}]}
        check "the application was told" {[wait_until {
            [string match "life dropped alpha *" [readline $a 100]]} 5000]}
    }

    test each_errorcode_can_be_trapped {
        set home [new_home]
        lassign [start_registry $home] rpid rport
        lassign [tkapp $home late alpha] a
        use_home $home
        check_equal "NOTFOUND" [list COMMREG NOTFOUND nosuch] \
            [trapped {COMMREG NOTFOUND} {comm::registry::send nosuch set x}]
        check_equal "NOTFOUND from lookup" [list COMMREG NOTFOUND nosuch] \
            [trapped {COMMREG NOTFOUND} {comm::registry::lookup nosuch}]
        check_match "REFUSED by the registry" \
            [list COMMREG REFUSED registry *control character*] \
            [trapped {COMMREG REFUSED} {comm::registry::register "a\tb"}]
        check_match "REFUSED: a name that looks like a serial" \
            [list COMMREG REFUSED registry *] \
            [trapped {COMMREG REFUSED registry} {comm::registry::appname "x #2"}]
        check_equal "NOTREGISTERED" [list COMMREG NOTREGISTERED nope] \
            [trapped {COMMREG NOTREGISTERED} {comm::registry::unregister nope}]
        check_equal "TIMEOUT of a send" [list COMMREG TIMEOUT alpha 300] \
            [trapped {COMMREG TIMEOUT} {comm::registry::send -timeout 300 alpha after 1500}]
        # The registry stopped: NOANSWER, then LOST when it dies.
        exec kill -STOP $rpid
        comm::registry::configure -timeout 500
        check_equal "NOANSWER" [list COMMREG NOANSWER Commreg/List 500] \
            [trapped {COMMREG NOANSWER} {comm::registry::interps}]
        comm::registry::configure -timeout 10000
        set k [after 300 [list exec kill -KILL $rpid]]
        check_match "LOST" {COMMREG LOST *} \
            [trapped {COMMREG LOST} {comm::registry::interps}]
        after cancel $k
        # No registry can be had: commregd cannot be started.
        comm::registry::disconnect
        comm::registry::configure -home [new_home] -commregd [file join [workdir] no-such-commregd]
        check_match "NOREGISTRY" {COMMREG NOREGISTRY *} \
            [trapped {COMMREG NOREGISTRY} {comm::registry::interps}]
        # A tree that is not to be trusted: nothing is started.
        comm::registry::disconnect
        set loose [new_home]
        file mkdir [file join $loose .tcl comm]
        file attributes [file join $loose .tcl] -permissions 0700
        file attributes [file join $loose .tcl comm] -permissions 0755
        comm::registry::configure -home $loose -commregd [commregd_path]
        check_match "NOREGISTRY: a refused tree" \
            {COMMREG NOREGISTRY {refusing *: mode 0755 is too open*}} \
            [trapped {COMMREG NOREGISTRY} {comm::registry::send alpha whoami}]
        check_equal "no registry was started there" {} [commregds_of $loose]
    }

    test send_to_a_name_that_is_gone {
        set home [new_home]
        lassign [start_registry $home] rpid rport
        lassign [tkapp $home late alpha] a - - apid
        lassign [tkapp $home late beta] b - - bpid
        lassign [tkapp $home late delta] d
        use_home $home
        # Killed: its connection to the registry closes and the name goes.
        kill_proc $apid KILL
        check "alpha leaves the registry" {[wait_until {
            "alpha" ni [comm::registry::interps]}]}
        check_equal "send to it: NOTFOUND" [list COMMREG NOTFOUND alpha] \
            [trapped {COMMREG NOTFOUND} {comm::registry::send alpha whoami}]
        # A name whose port nothing answers on (its application died and
        # the registry has not noticed, or it gave a dead port).
        set dead [free_port]
        comm::registry::register -port $dead ghost
        set r [trapped {COMMREG GONE} {comm::registry::send ghost whoami}]
        check_match "send to a dead port: GONE" \
            [list COMMREG GONE ghost [list $dead localhost] *] $r
        check_match "-async too" {COMMREG GONE ghost *} \
            [trapped {COMMREG GONE} {comm::registry::send -async ghost whoami}]
        # It exits while answering: GONE, with the reason.
        check_match "the application exits before answering" \
            {COMMREG GONE beta *} \
            [trapped {COMMREG GONE} {comm::registry::send beta exit}]
        check "beta's process is gone" {[wait_until {![::t::alive $bpid]}]}
        check_equal "the others still answer" delta \
            [lindex [comm::registry::send delta whoami] 0]
    }
}
