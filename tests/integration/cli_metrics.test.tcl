# Operators' numbers: `commreg status --prometheus FILE` and
# `commreg gateway-status [--json|--prometheus FILE]`, the files
# node-exporter's textfile collector reads.  Each file is checked
# against a strict reading of the text exposition format (0.0.4: HELP
# and TYPE once per family before its samples, samples of a family
# together, label values escaped, counters named *_total, no series
# twice, a final newline), written whole (a temporary file renamed over
# it), mode 0644 whatever the umask; the numbers are those the real
# registry and the real gateway (commgwd, with a federation link)
# report; and "down" is a file that says up 0.
source [file join [file dirname [info script]] lib.tcl]
source [file join [file dirname [info script]] federation_lib.tcl]
package require json

# The problems of TEXT as a Prometheus text exposition; {} when none.
proc prom_problems {text} {
    set problems {}
    if {$text eq "" || [string index $text end] ne "\n"} {
        lappend problems "does not end in a newline"
    }
    set name_re {[a-zA-Z_:][a-zA-Z0-9_:]*}
    set lname_re {[a-zA-Z_][a-zA-Z0-9_]*}
    set lval_re {"(?:[^"\\\n]|\\[\\"n])*"}
    set pair "$lname_re=$lval_re"
    set labels_re "\\{(?:${pair}(?:,${pair})*)?\\}"
    set num_re {[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?}
    set value_re "(?:$num_re|\[-+\]?Inf|NaN)"
    set help {}
    set type {}
    set cur ""
    set series {}
    set n 0
    foreach line [split [string trimright $text \n] \n] {
        incr n
        if {[regexp "^# HELP ($name_re) (.*)$" $line -> m h]} {
            if {[dict exists $help $m]} {
                lappend problems "line $n: a second HELP for $m (family split)"
            }
            if {[regexp {\\[^\\n]} $h]} {
                lappend problems "line $n: bad escape in HELP: $h"
            }
            dict set help $m $h
            set cur $m
            continue
        }
        if {[regexp "^# TYPE ($name_re) (counter|gauge|histogram|summary|untyped)$" $line -> m t]} {
            if {[dict exists $type $m]} {
                lappend problems "line $n: a second TYPE for $m"
            }
            if {$m ne $cur} {
                lappend problems "line $n: TYPE of $m not right after its HELP"
            }
            dict set type $m $t
            continue
        }
        if {[string match #* $line]} {
            lappend problems "line $n: a comment neither HELP nor TYPE: $line"
            continue
        }
        if {![regexp "^($name_re)((?:$labels_re)?) ($value_re)$" $line -> m l v]} {
            lappend problems "line $n: not a sample: $line"
            continue
        }
        if {$m ne $cur} {
            lappend problems "line $n: $m outside its family (after $cur's HELP)"
        }
        if {![dict exists $type $m]} {
            lappend problems "line $n: $m has no TYPE"
        } elseif {[dict get $type $m] eq "counter" && ![string match *_total $m]} {
            lappend problems "line $n: counter $m not named *_total"
        }
        if {![string match commreg_* $m]} {
            lappend problems "line $n: $m lacks the commreg_ prefix"
        }
        if {"$m$l" in $series} {
            lappend problems "line $n: series $m$l twice"
        }
        lappend series "$m$l"
    }
    return $problems
}

# The value of the sample NAME{LABELS...} (LABELS: a glob on the label
# part, "" for none), or "".
proc prom_value {text name {labels ""}} {
    foreach line [split $text \n] {
        if {[string match #* $line]} continue
        if {![regexp {^([^ {]+)(\{[^}]*\})? (\S+)$} $line -> m l v]} continue
        if {$m ne $name} continue
        if {$labels eq "" ? $l ne "" && $l ne "{user=\"[exec id -un]\"}" : ![string match $labels $l]} continue
        return $v
    }
    return ""
}

# Files in DIR other than NAME (hidden ones too): what a write left.
proc leftovers {dir name} {
    set all [glob -nocomplain -tails -directory $dir * .*]
    return [lmap f $all {expr {$f in [list . .. $name] ? [continue] : $f}}]
}

proc umask_run {mask args} {
    return [run sh -c {umask "$0"; exec "$@"} $mask {*}$args]
}

main {
    unset -nocomplain ::env(TCL_COMM_REGPORT)
    unset -nocomplain ::env(TCL_COMM_CONFIG_DIR)
    set me [exec id -un]

    test the_format_check_finds_what_is_wrong {
        set good "# HELP commreg_a_total A.\n# TYPE commreg_a_total counter\ncommreg_a_total{user=\"x\\\"y\"} 3\n"
        check_equal "a good file passes" {} [prom_problems $good]
        foreach {label bad} [list \
            "no newline at the end" [string trimright $good \n] \
            "a sample without TYPE" "commreg_b 1\n" \
            "a raw quote in a label value" "# HELP commreg_b B.\n# TYPE commreg_b gauge\ncommreg_b{user=\"a\"b\"} 1\n" \
            "a series twice" "$good[lindex [split $good \n] 2]\n" \
            "a family split" "$good# HELP commreg_c C.\n# TYPE commreg_c gauge\ncommreg_c 1\n$good" \
            "a counter not *_total" "# HELP commreg_d D.\n# TYPE commreg_d counter\ncommreg_d 1\n" \
            "no commreg_ prefix" "# HELP node_d D.\n# TYPE node_d gauge\nnode_d 1\n" \
            "a value that is no number" "# HELP commreg_e E.\n# TYPE commreg_e gauge\ncommreg_e one\n" \
        ] {
            check "$label: found" {[llength [prom_problems $bad]] > 0}
        }
    }

    test status_prometheus_file {
        set home [new_home]
        lassign [start_registry $home] dpid port
        set a [spawn -home $home [commreg_path] --home $home register ma 5401]
        check_equal "ma registered" ma [readline $a]
        set b [spawn -home $home [commreg_path] --home $home register mb 5402]
        check_equal "mb registered" mb [readline $b]
        set w [spawn -home $home [commreg_path] --home $home watch]
        check "the watch has its snapshot" {[readline $w] ne ""}

        set dir [tempdir prom 0755]
        set f [file join $dir commreg.prom]
        set r [umask_run 077 [commreg_path] --home $home status --prometheus $f]
        check_equal "exit 0" 0 [dict get $r code]
        check_equal "nothing on stdout" "" [dict get $r out]
        check_equal "mode 0644 under umask 077" 0644 [perm $f]
        set text [read_file $f]
        check_equal "the format holds" {} [prom_problems $text]
        check_equal "up 1" 1 [prom_value $text commreg_registry_up]
        check_equal "entries 2" 2 [prom_value $text commreg_registry_entries]
        check_equal "watches 1" 1 [prom_value $text commreg_registry_watches]
        check "connections: the holders, the watch and us" {[prom_value $text commreg_registry_connections] >= 4}
        check_equal "info names version and port" 1 \
            [prom_value $text commreg_registry_info "*version=\"*\",scope=\"user\",port=\"$port\"*"]
        check "labelled with the user" {[string first "commreg_registry_entries{user=\"$me\"} 2" $text] >= 0}
        set start [prom_value $text commreg_registry_start_time_seconds]
        check "start time: within a minute of now ($start)" {abs([clock seconds] - $start) < 60}
        check_equal "nothing else left in the directory" {} [leftovers $dir commreg.prom]

        # Written again: replaced whole (a new file renamed over it).
        set ino [file stat $f fst; set fst(ino)]
        stop $b
        check "mb gone" {[wait_until {[dict get [::t::commreg $home lookup mb] code] == 1} 3000 50]}
        set r [commreg $home status --prometheus $f]
        check_equal "again: exit 0" 0 [dict get $r code]
        set text [read_file $f]
        check_equal "again: entries 1" 1 [prom_value $text commreg_registry_entries]
        check "again: a new inode (renamed over)" {[file stat $f fst2; set fst2(ino)] != $ino}
        check_equal "again: nothing left" {} [leftovers $dir commreg.prom]

        # "-": stdout, with --json beside it on the same run refused? no:
        # stdout alone.
        set r [commreg $home status --prometheus -]
        check_equal "stdout: exit 0" 0 [dict get $r code]
        check_equal "stdout: the format holds" {} [prom_problems [dict get $r out]]

        # A directory that is not there: exit 1, said, nothing written.
        set r [commreg $home status --prometheus [file join $dir nodir x.prom]]
        check_equal "no such directory: exit 1" 1 [dict get $r code]
        check_match "no such directory: named" "*$dir/nodir/x.prom*" [dict get $r err]

        # No registry: the file says so (up 0), status exits 3.
        set empty [new_home]
        set f0 [file join $dir none.prom]
        set r [commreg $empty status --prometheus $f0]
        check_equal "none runs: exit 3" 3 [dict get $r code]
        set text [read_file $f0]
        check_equal "none runs: the format holds" {} [prom_problems $text]
        check_equal "none runs: up 0" 0 [prom_value $text commreg_registry_up]
        check "none runs: said on stderr" {[string match "*no registry is running*" [dict get $r err]]}
        foreach ch [list $a $w] { stop $ch }
    }

    if {![file executable [gw_path]]} {
        say "  (commgwd is not built: gateway-status not tested)"
        return
    }

    test gateway_status_without_a_gateway {
        set r [run env TCL_COMM_CONFIG_DIR=/nonexistent/commreg-conf [commreg_path] gateway-status]
        check_equal "none configured: exit 3" 3 [dict get $r code]
        check_match "none configured: says so" "*no host gateway is configured*/nonexistent/commreg-conf*" [dict get $r err]
        set dir [tempdir prom 0755]
        set f [file join $dir gw.prom]
        set r [run [commreg_path] gateway-status --config-dir /nonexistent/commreg-conf --prometheus $f]
        check_equal "--config-dir, none configured: exit 3" 3 [dict get $r code]
        set text [read_file $f]
        check_equal "the format holds" {} [prom_problems $text]
        check_equal "up 0" 0 [prom_value $text commreg_gateway_up]

        # Configured, not running.
        set d [gw_confdir [dict create 00-gateway.ini "\[gateway\]\nsocket = @SOCKET@\n"]]
        set r [run [commreg_path] gateway-status --config-dir $d --json]
        check_equal "not running: exit 3" 3 [dict get $r code]
        check_match "not running: names the socket" "*does not answer on [gw_socket $d]*" [dict get $r err]
        set o [json::json2dict [dict get $r out]]
        check_equal "--json: running false" false [dict get $o running]

        # A configuration with a mistake: file:line, exit 1.
        set bad [gw_confdir [dict create 00-gateway.ini "\[gateway\]\nsocket = @SOCKET@\nno_such_key = 1\n"]]
        set r [run [commreg_path] gateway-status --config-dir $bad]
        check_equal "broken configuration: exit 1" 1 [dict get $r code]
        check_match "broken configuration: file:line" "*00-gateway.ini:3*" [dict get $r err]
    }

    test gateway_status_counts {
        set d [gw_confdir [dict create 00-gateway.ini "\[gateway\]\nsocket = @SOCKET@\n"]]
        set g [gw_start $d]
        set u [gw_user "" $d]
        set rp [gw_registry $u]
        check "linked" {[gw_linked $u $rp]}
        set l [socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.1 0]
        defer [list close $l]
        set lport [lindex [fconfigure $l -sockname] 2]
        set ok [gw_register $u web $lport host]
        check_equal "web admitted" 1 [dict get $ok ok]
        set no [gw_register $u gone [free_port] host]
        check_equal "gone refused (nothing listens)" 0 [dict get $no ok]

        set r [gw_commreg $u gateway-status]
        check_equal "text: exit 0" 0 [dict get $r code]
        check_regexp "text: admitted 1" {(?n)^admitted\s+1$} [dict get $r out]
        check_regexp "text: started, ISO 8601 UTC" {(?n)^started\s+[0-9-]+T[0-9:]+Z$} [dict get $r out]

        set r [gw_commreg $u gateway-status --json]
        check_equal "json: exit 0" 0 [dict get $r code]
        set o [json::json2dict [dict get $r out]]
        set st [string trim [dict get [run [file join [tools_dir] commcall] unix:[gw_socket $d] Commreg/Stats] out]]
        check_equal "json: running" true [dict get $o running]
        foreach k {admitted registrations_refused withdrawn entries} {
            check_equal "json: $k as the gateway says" [dict get $st $k] [dict get $o $k]
        }
        check_equal "json: admitted 1" 1 [dict get $o admitted]
        check_equal "json: refused 1" 1 [dict get $o registrations_refused]

        set dir [tempdir prom 0755]
        set f [file join $dir gw.prom]
        set r [gw_commreg $u gateway-status --prometheus $f]
        check_equal "prometheus: exit 0" 0 [dict get $r code]
        set text [read_file $f]
        check_equal "the format holds" {} [prom_problems $text]
        check_equal "perm 0644" 0644 [perm $f]
        check_equal "up 1" 1 [prom_value $text commreg_gateway_up]
        check_equal "admitted_total 1" 1 [prom_value $text commreg_gateway_registrations_admitted_total]
        check_equal "refused_total 1" 1 [prom_value $text commreg_gateway_registrations_refused_total]
        check_equal "withdrawn_total 0" 0 [prom_value $text commreg_gateway_registrations_withdrawn_total]
        check_equal "entries 1" 1 [prom_value $text commreg_gateway_entries]
        check_equal "nothing left" {} [leftovers $dir gw.prom]
        stop [dict get $ok ch]
    }

    test gateway_status_federation_links {
        if {[auto_execok openssl] eq "" || [catch {::fed::free_port 2}]} {
            say "  (openssl or 127.0.0.2 missing: links not tested)"
            return
        }
        set d2 [::fed::conf 2 -remotes [::fed::remote gw3 export * import *]]
        set d3 [::fed::conf 3 -remotes [::fed::remote gw2 export * import *]]
        set g2 [::fed::start $d2]
        set g3 [::fed::start $d3]
        check "gw2's link to gw3 is ready" {[wait_until {[string match "*remote gw3 direction out*state ready*" \
            [dict get [::t::run [file join [::t::tools_dir] commcall] unix:[::t::gw_socket $d2] Commreg/Stats] out]]} [slow 15000] 100]}
        set r [run [commreg_path] gateway-status --config-dir $d2 --prometheus -]
        check_equal "exit 0" 0 [dict get $r code]
        set text [dict get $r out]
        check_equal "the format holds" {} [prom_problems $text]
        check_equal "link gw3 out: ready" 1 \
            [prom_value $text commreg_gateway_link_ready "{remote=\"gw3\",direction=\"out\",address=\"127.0.0.3:*\"}"]
        check "link gw3 out: its entries counted" {[prom_value $text commreg_gateway_link_entries "\{remote=\"gw3\",direction=\"out\",*"] ne ""}
        set r [run [commreg_path] gateway-status --config-dir $d2 --json]
        set o [json::json2dict [dict get $r out]]
        check "json: links is an array of objects with remote gw3" {
            [lsearch -exact [lmap x [dict get $o links] {dict get $x remote}] gw3] >= 0
        }
        set r [run [commreg_path] gateway-status --config-dir $d2]
        check_regexp "text: the link" {(?n)^links\s+gw3 out 127\.0\.0\.3:[0-9]+ ready, [0-9]+ entries$} [dict get $r out]
    }
}
