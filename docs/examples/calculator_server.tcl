# calculator_server.tcl: a comm application that offers itself as
# "calculator" through the user's registry, and serves until stopped.
package require comm
package require comm::registry

# What other applications may call, with `comm::comm send ID add 2 3`.
proc add {a b} { return [expr {$a + $b}] }
proc mul {a b} { return [expr {$a * $b}] }

# Tell us when the registry goes away and comes back (the package does
# the work: a new registry is elected and the name registered again).
comm::registry::configure -command {apply {{event args} {
    puts "registry: $event $args"
    flush stdout
}}}

# Registers the port of this application's comm channel.  Another
# calculator already running makes this one "calculator #2".
set name [comm::registry::register calculator]
puts "registered as \"$name\" on comm port [comm::comm self]"
flush stdout

vwait forever
