# calculator_client.tcl: finds the calculator through the user's
# registry, waiting for it to come up if need be, and uses it.
package require comm
package require comm::registry

# The comm id of "calculator", waiting at most MS ms for it to register.
proc find {name ms} {
    if {![catch {comm::registry::lookup $name} id]} {
        return $id
    }
    puts "waiting for \"$name\"..."
    # A watch starts with the applications registered now (as "add"),
    # so one that registers between the lookup and here is not missed.
    set watch [comm::registry::watch $name {apply {{event entry} {
        if {$event eq "add"} {
            set ::found [list [dict get $entry port] [dict get $entry host]]
        }
    }}}]
    set timer [after $ms {set ::found ""}]
    vwait ::found
    after cancel $timer
    comm::registry::unwatch $watch
    if {$::found eq ""} {
        error "no application \"$name\" registered within $ms ms"
    }
    return $::found
}

set calculator [find calculator 10000]
puts "calculator is at $calculator"
puts "2 + 3 = [comm::comm send $calculator add 2 3]"
puts "6 * 7 = [comm::comm send $calculator mul 6 7]"

puts "applications registered now:"
foreach entry [comm::registry::list] {
    dict with entry {
        puts "  $name: port $port, pid $pid, since [clock format $since -format %T]"
    }
}
