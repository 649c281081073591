# TCL_COMM_REGPORT naming the user registry itself (a script that passes
# its own registry's port on, docs/private.md): the C library and the Tcl
# package must take it for what its Hello says it is, the user registry,
# and elect a new one when it dies.  Before, they took it for a private
# registry and, when it died, gave up for good (orphaned, names dropped).
source [file join [file dirname [info script]] lib.tcl]

main {
    set home [new_home]
    lassign [start_registry $home] dpid port

    foreach kind {c tcl} {
        test "${kind}_app_fails_over_from_a_regport_naming_the_user_registry" {
            set ::env(TCL_COMM_REGPORT) $port
            set app [app_start $kind $home r$kind]
            unset ::env(TCL_COMM_REGPORT)
            check "$kind: registered" {[wait_until {[::t::app_registered $app]} \
                [slow 10000]]}
            check "$kind: the name is in the user registry" \
                {[lsearch -exact [reg_names $port] r$kind] >= 0}
            kill_proc $dpid KILL
            check "$kind: it elects a registry again (regained)" \
                {[wait_until {[::t::app_count $app "regained *"] > 0} \
                      [slow 15000]]}
            check_equal "$kind: not orphaned, nothing dropped" 0 \
                [app_count $app "dropped *"]
            set port [file_port $home]
            check "$kind: its name is back" \
                {[wait_until {[lsearch -exact [::t::reg_names $port] r$kind] \
                    >= 0} [slow 10000]]}
            set dpid [registry_pid $home]
            remember $dpid
            app_kill $app
        }
    }
}
