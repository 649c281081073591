# comm::registry: the user's commreg registry for Tcl comm applications.
if {![package vsatisfies [package provide Tcl] 8.6]} return
package ifneeded comm::registry 0.1.0 [list source [file join $dir registry.tcl]]
