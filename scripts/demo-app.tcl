# A small comm application for the demo: it listens with comm, registers
# itself with the user registry under NAME, and answers "greet WHO".
# usage: tclsh demo-app.tcl NAME ?PEER?   (with PEER: look it up and greet it)
package require comm

proc regport {} {
    set host [lindex [split [info hostname] .] 0]
    set f [open [file join $::env(HOME) .tcl comm registry $host]]
    set port [string trim [read $f]]
    close $f
    return $port
}

proc greet {who} {
    return "hello $who, this is $::myname (pid [pid])"
}

set reg [regport]
set ::myname [comm::comm send $reg Commreg/Register [lindex $argv 0] [comm::comm self]]
puts "[lindex $argv 0]: registered as \"$::myname\" on comm port [comm::comm self]"
flush stdout

if {[llength $argv] > 1} {
    set peer [lindex $argv 1]
    set id [comm::comm send $reg Commreg/Lookup $peer]
    puts "$::myname: looked up \"$peer\" -> comm id {$id}"
    puts "$::myname: asked it to greet me -> [comm::comm send $id greet $::myname]"
    flush stdout
}
vwait forever
