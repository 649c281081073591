# The two-application example of docs/tcl.md (docs/examples/): a server
# that registers "calculator" and a client that finds it (waiting for it
# when it is not there yet) and calls it, run as a user would, with
# nothing but HOME, TCLLIBPATH and where commregd is.  The files must be
# what docs/tcl.md shows.
source [file join [file dirname [info script]] lib.tcl]

set src [file dirname [file dirname [file dirname [file normalize [info script]]]]]
if {[info exists env(COMMREG_SRC)] && $env(COMMREG_SRC) ne ""} {
    set src $env(COMMREG_SRC)
}
set examples [file join $src docs examples]
set server [file join $examples calculator_server.tcl]
set client [file join $examples calculator_client.tcl]

# The environment the example runs in: the package from the source tree
# (after `cmake --install` it needs none of this).
proc example_env {} {
    return [list env TCLLIBPATH=[tcllibpath [file join $::src tcl]] \
                COMMREG_COMMREGD=[commregd_path]]
}

proc start_server {home} {
    return [spawn -home $home {*}[example_env] [info nameofexecutable] $::server]
}

proc run_client {home} {
    return [run -timeout 20 -home $home {*}[example_env] \
                [info nameofexecutable] $::client]
}

proc kill_registries {home} {
    foreach pid [commregds_of $home] {
        kill_proc $pid TERM
    }
}

# Lines of the client's output, checked against the example's promises.
proc check_client_output {label out server_port} {
    set lines [split [string trimright $out \n] \n]
    if {[lindex $lines 0] eq {waiting for "calculator"...}} {
        set lines [lrange $lines 1 end]
    }
    check_equal "$label: where" "calculator is at $server_port localhost" \
        [lindex $lines 0]
    check_equal "$label: answers" {{2 + 3 = 5} {6 * 7 = 42}} [lrange $lines 1 2]
    check_equal "$label: list header" "applications registered now:" [lindex $lines 3]
    check_regexp "$label: list entry" \
        "^  calculator: port $server_port, pid \[0-9\]+, since \[0-9:\]+$" \
        [lindex $lines 4]
}

main {
    test the_documentation_shows_the_example_files {
        set doc [read_file [file join $src docs tcl.md]]
        foreach f [list $server $client] {
            set text [read_file $f]
            set shown [expr {$text ne "" && [string first $text $doc] >= 0}]
            check "[file tail $f] is in docs/tcl.md verbatim" {$shown}
        }
    }

    test client_waits_for_the_server_then_calls_it {
        set home [new_home]
        defer [list kill_registries $home]
        set h [run_bg -timeout 20 -home $home {*}[example_env] \
                   [info nameofexecutable] $client]
        # The client starts the registry and waits for a calculator.
        check "client is waiting" {[wait_until {
            [string match {waiting for "calculator"...*} [read_file [dict get $h base].out]]} 10000]}
        set s [start_server $home]
        set line [readline $s 10000]
        check_regexp "server registered" \
            {^registered as "calculator" on comm port [0-9]+$} $line
        set sport [lindex $line end]
        set r [wait_bg $h]
        check_equal "client exit status" 0 [dict get $r code]
        check_equal "client stderr" "" [dict get $r err]
        check_equal "client said it waited" {waiting for "calculator"...} \
            [lindex [split [dict get $r out] \n] 0]
        check_client_output "waiting client" [dict get $r out] $sport
        check_equal "one registry" 1 [llength [commregds_of $home]]

        # A client started when the server runs finds it at once.
        set r [run_client $home]
        check_equal "second client exit status" 0 [dict get $r code]
        check "second client did not wait" {![string match waiting* [dict get $r out]]}
        check_client_output "second client" [dict get $r out] $sport

        # The server stays registered through a failover.
        set port [file_port $home]
        exec kill -KILL {*}[commregds_of $home]
        check_match "server told lost" {registry: lost *} [readline $s 5000]
        check_equal "server told regained" "registry: regained $port" [readline $s 10000]
        set r [run_client $home]
        check_equal "client after failover" 0 [dict get $r code]
        check_client_output "client after failover" [dict get $r out] $sport

        # A second calculator is "calculator #2".
        set s2 [start_server $home]
        check_regexp "second server" \
            {^registered as "calculator #2" on comm port [0-9]+$} [readline $s2 10000]
    }
}
