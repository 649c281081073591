# The `commreg` command as a user runs it: register (held until killed),
# lookup, list, watch, status, help and usage errors, and starting
# commregd by itself when no registry runs.
source [file join [file dirname [info script]] lib.tcl]

# Start `commreg --home HOME register NAME PORT` (it holds the name until
# it is killed).
proc register {home name port} {
    return [spawn -home $home [commreg_path] --home $home register $name $port]
}

proc lines_of {text} {
    return [split [string trimright $text \n] \n]
}

# Lines of `commreg list` output that show NAME: those containing NAME
# and not a longer name "NAME #N".
proc list_lines {out name} {
    set found {}
    foreach l [lines_of $out] {
        set i [string first $name $l]
        if {$i < 0} continue
        set after [string range $l [expr {$i + [string length $name]}] end]
        if {[regexp {^ #[0-9]} $after]} continue
        lappend found $l
    }
    return $found
}

main {
    set home [new_home]
    lassign [start_registry $home] dpid port

    test register_prints_the_assigned_name_and_holds_it {
        set r1 [register $home foo 5555]
        check_equal "first register" foo [readline $r1]
        set r2 [register $home foo 5555]
        check_equal "second register" {foo #2} [readline $r2]
        pause 300
        check "both keep running" {[alive [spawn_pid $r1]] && [alive [spawn_pid $r2]]}

        set r [commreg $home lookup foo]
        check_equal "lookup foo" {0 {5555 localhost
} {}} [list [dict get $r code] [dict get $r out] [dict get $r err]]
        set r [commreg $home lookup {foo #2}]
        check_equal "lookup foo #2" {0 {5555 localhost
}} [list [dict get $r code] [dict get $r out]]

        set r [commreg $home lookup nosuch]
        check_equal "lookup absent: exit 1" 1 [dict get $r code]
        check_equal "lookup absent: no stdout" "" [dict get $r out]
        check_match "lookup absent: stderr names it" *nosuch* [dict get $r err]

        set r [commreg $home list]
        check_equal "list exit 0" 0 [dict get $r code]
        set out [dict get $r out]
        set lf [list_lines $out foo]
        set lf2 [list_lines $out {foo #2}]
        check "list shows foo once, with its port: [show $out]" {
            [llength $lf] == 1 && [string match *5555* [lindex $lf 0]]
        }
        check "list shows foo #2 once, with its port" {
            [llength $lf2] == 1 && [string match *5555* [lindex $lf2 0]]
        }
        set r [commreg $home list {foo #*}]
        check "list 'foo #*' shows foo #2 only: [show [dict get $r out]]" {
            [dict get $r code] == 0
            && [llength [list_lines [dict get $r out] {foo #2}]] == 1
            && [llength [list_lines [dict get $r out] foo]] == 0
        }
        set r [commreg $home list nomatch*]
        check "list nomatch* shows no foo" {
            [dict get $r code] == 0 && ![string match *foo* [dict get $r out]]
        }

        # A registration lives as long as its process.
        stop $r2 TERM
        check "foo #2 gone after its process ends" {[wait_until {
            [dict get [::t::commreg $home lookup {foo #2}] code] == 1} 3000 100]}
        set r [commreg $home list]
        check "list no longer shows foo #2" {
            [llength [list_lines [dict get $r out] {foo #2}]] == 0
            && [llength [list_lines [dict get $r out] foo]] == 1
        }
        stop $r1 KILL
        check "foo gone after SIGKILL of its process" {[wait_until {
            [dict get [::t::commreg $home lookup foo] code] == 1} 3000 100]}
    }

    test watch_prints_snapshot_then_changes {
        set w1 [register $home w1 5001]
        check_equal "w1 registered" w1 [readline $w1]
        set watch [spawn -home $home [commreg_path] --home $home watch w*]
        check_equal "snapshot" {add w1 5001 localhost} [readline $watch]
        set other [register $home other.x 5009]
        check_equal "other.x registered" other.x [readline $other]
        set w2 [register $home w2 5002]
        check_equal "w2 registered" w2 [readline $w2]
        check_equal "add line (non-matching name skipped)" {add w2 5002 localhost} \
            [readline $watch]
        stop $w2
        check_equal "remove line" {remove w2 5002 localhost} [readline $watch]
        check_equal "nothing else" {} [readlines_for $watch 300]
        check "watch still running" {[alive [spawn_pid $watch]]}
        stop $watch
        stop $w1
        stop $other
    }

    test status_describes_the_running_registry {
        set r [commreg $home status]
        check_equal "exit 0" 0 [dict get $r code]
        check_regexp "shows the port" "\\m$port\\M" [dict get $r out]
        check_regexp "shows the pid" "\\m$dpid\\M" [dict get $r out]

        set empty [new_home]
        set r [commreg $empty status]
        check "no registry: non-zero exit ([dict get $r code])" {[dict get $r code] != 0}
        check "no registry: says so" {[dict get $r out] ne "" || [dict get $r err] ne ""}
        pause 200
        check "status did not start a registry" {
            [file_port $empty] eq "" && [llength [commregds_of $empty]] == 0
        }
    }

    test help_and_usage_errors {
        set r [run [commreg_path] --help]
        check_equal "--help exits 0" 0 [dict get $r code]
        check_match "--help shows usage" "*usage*" [string tolower [dict get $r out]]
        foreach sub {list lookup register watch status} {
            check_match "--help mentions $sub" "*$sub*" [dict get $r out]
        }
        foreach {label args} {
            "unknown command" {frobnicate}
            "no command" {}
            "lookup without name" {lookup}
            "lookup with two names" {lookup a b}
            "register without port" {register foo}
            "unknown option" {--no-such-option list}
        } {
            set r [commreg $home {*}$args]
            check_equal "$label: exit 2" 2 [dict get $r code]
            check "$label: message on stderr" {[dict get $r err] ne ""}
        }
    }

    test commreg_starts_commregd_when_none_runs {
        set h2 [new_home]
        set r [commreg $h2 list]
        check_equal "list in an empty home succeeds" 0 [dict get $r code]
        set p2 [file_port $h2]
        check "port file written" {$p2 ne ""}
        set hl [hello $p2]
        check_equal "a commreg registry answers there" commreg \
            [expr {[dict exists $hl registry] ? [dict get $hl registry] : $hl}]
        set dp [expr {[dict exists $hl pid] ? [dict get $hl pid] : 0}]
        check_equal "it is a commregd process" commregd \
            [string trim [read_file /proc/$dp/comm]]
        defer [list ::t::kill_proc $dp]

        set r2 [register $h2 auto 7000]
        check_equal "register there" auto [readline $r2]
        set r [commreg $h2 lookup auto]
        check_equal "lookup there" "7000 localhost\n" [dict get $r out]
        stop $r2

        # Several at once in an empty home: one registry comes out.
        set h3 [new_home]
        set runs {}
        for {set i 0} {$i < 4} {incr i} {
            lappend runs [run_bg -home $h3 [commreg_path] --home $h3 lookup nosuch$i]
        }
        set codes {}
        foreach h $runs {
            set res [wait_bg $h]
            lappend codes [dict get $res code]
            if {[dict get $res code] != 1} {
                say "       (lookup: code [dict get $res code], stderr [show [dict get $res err]])"
            }
        }
        check_equal "each concurrent lookup ran and found nothing (exit 1)" {1 1 1 1} $codes
        set p3 [file_port $h3]
        set hl3 [hello $p3]
        check "a registry runs for that home" {[dict exists $hl3 pid]}
        if {[dict exists $hl3 pid]} { defer [list ::t::kill_proc [dict get $hl3 pid]] }
        pause 300
        check_equal "exactly one commregd for that home" 1 [llength [commregds_of $h3]]
    }

    # The checked port, for tcllib's nameserv and nns (docs/security.md).
    test port_prints_the_checked_port {
        set h4 [new_home]
        set r [commreg $h4 port]
        check_equal "exit 0" 0 [dict get $r code]
        set p4 [string trim [dict get $r out]]
        check_equal "the port file's port (a registry was started)" \
            [file_port $h4] $p4
        set hl4 [hello $p4]
        check "a registry of ours answers there" {[dict exists $hl4 pid]}
        if {[dict exists $hl4 pid]} { defer [list ::t::kill_proc [dict get $hl4 pid]] }
        set r [commreg $h4 port extra]
        check_equal "an argument: usage error (exit 2)" 2 [dict get $r code]
    }
}
