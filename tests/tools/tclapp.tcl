# tclapp: a Tcl comm application that uses the comm::registry package,
# for the tests (tcl_package, failover and others).
#
#   tclsh tclapp.tcl ?-home DIR? ?-commregd PATH? ?-grace MS? ?-scope SCOPE? ?-watch PATTERN? ?--? NAME...
#
# Starts comm (the default channel listens), registers each NAME through
# the package and then runs until killed, printing one line per happening
# to stdout, flushed, each line a Tcl list:
#
#   registered NAME ASSIGNED      register returned ASSIGNED for NAME
#   lost REASON                   the registry connection was lost
#   regained PORT                 ... and everything is back, registry on PORT
#   renamed OLD NEW               a name came back under another serial
#   error TEXT                    a call failed (or the package said so)
#   dropped NAME REASON           NAME is gone for good: its private
#                                 registry died, or the host gateway
#                                 withdrew it (-scope host or global)
#
# -scope SCOPE is passed to every register (user, host or global).
#
# With -watch PATTERN (instead of, or besides, names) it also watches:
#
#   snapshot N                    N entries matched when the watch started
#   add NAME / remove NAME        the watch's command was called (the N
#                                 snapshot entries come first, as adds)
#
# Other processes may call `comm::comm send ID greet WHO` on it; the
# answer is "hello WHO from NAME" (NAME: its first name now).
package require Tcl 8.6

set here [file dirname [file normalize [info script]]]
if {[info exists env(COMMREG_SRC)] && $env(COMMREG_SRC) ne ""} {
    lappend auto_path [file join $env(COMMREG_SRC) tcl]
}
lappend auto_path [file join [file dirname [file dirname $here]] tcl]
package require comm
# The tests' choice of check (tests/integration/lib.tcl).
if {[info exists env(COMMREG_TCL_KERNEL)] && $env(COMMREG_TCL_KERNEL) eq "0"} {
    namespace eval ::comm::registry { variable kernel 0 }
}
package require comm::registry

proc out {args} {
    # One line per happening, whatever the text holds.
    set l {}
    foreach a $args {
        lappend l [string map {\n " " \r " "} $a]
    }
    puts stdout $l
    flush stdout
}

proc lifecycle {event args} {
    out $event {*}$args
}

proc watched {type entry} {
    out $type [dict get $entry name]
}

proc greet {who} {
    return "hello $who from [lindex [comm::registry::names] 0]"
}

proc usage {} {
    puts stderr "usage: tclsh tclapp.tcl ?-home DIR? ?-commregd PATH? ?-grace MS? ?-scope SCOPE? ?-watch PATTERN? ?--? NAME..."
    exit 2
}

set conf {}
set pattern ""
set regopts {}
while {[llength $argv]} {
    set a [lindex $argv 0]
    if {$a eq "--"} {
        set argv [lrange $argv 1 end]
        break
    }
    if {![string match -* $a]} break
    if {[llength $argv] < 2} usage
    set v [lindex $argv 1]
    switch -exact -- $a {
        -home - -commregd - -grace { lappend conf $a $v }
        -watch { set pattern $v }
        -scope { lappend regopts -scope $v }
        default usage
    }
    set argv [lrange $argv 2 end]
}
if {![llength $argv] && $pattern eq ""} usage

# Errors raised in callbacks: report them as everything else.
proc bgerror {msg} {
    out error $msg
}

comm::registry::configure -command lifecycle {*}$conf
foreach name $argv {
    if {[catch {comm::registry::register {*}$regopts $name} assigned]} {
        out error $assigned
    } else {
        out registered $name $assigned
    }
}
if {$pattern ne ""} {
    if {[catch {comm::registry::watch $pattern watched} token]} {
        out error $token
    } else {
        out snapshot [llength [comm::registry::entries $token]]
    }
}
vwait forever
