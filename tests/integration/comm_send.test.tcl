# commregd as seen by plain `comm::comm send` and by raw sockets speaking
# the comm wire protocol v3 (docs/protocol.md): both payload forms,
# error replies, literal-only commands, the Commreg/1 extension (hello,
# register with serials, lookup, list, watch, stats), framing (CRLF,
# bytes trickling in, batches), and bad peers (oversize, garbage, silent)
# that lose their own connection and nothing else.
source [file join [file dirname [info script]] lib.tcl]
package require comm

set entry_keys {name serial base port host data scope uid pid since}

# "Commreg/Event TAG TYPE NAME PORT" of an event (or the event as is).
proc event_summary {ev} {
    if {[catch {
        concat [lrange $ev 0 2] [list [dict get [lindex $ev 3] name] \
                                     [dict get [lindex $ev 3] port]]
    } s]} {
        return $ev
    }
    return $s
}

# Names of a Commreg/List reply.
proc names_of {entries} {
    set l {}
    if {[catch {
        foreach e $entries { lappend l [dict get $e name] }
    }]} {
        return "<not a list of entries: $entries>"
    }
    return $l
}

# The values of KEYS in entry E ("<missing>" for an absent key).
proc fields {e keys} {
    set l {}
    foreach k $keys {
        if {[catch {dict get $e $k} v]} { set v <missing> }
        lappend l $v
    }
    return $l
}

# A comm channel of its own (= a connection of its own to the registry).
proc conn {name} {
    catch {$name destroy}
    comm::comm new $name
    defer [list catch [list $name destroy]]
    return $name
}

# Send the command CMD (a list) through channel CH; {code result}.
proc ask {ch cmd} {
    return [call {$ch send $::port $cmd}]
}

# The entry dict of NAME (from Commreg/List), or "".
proc entry_of {name} {
    lassign [ask ::comm::comm [list Commreg/List [string map {\\ \\\\ * \\* ? \\? [ \\[ ] \\]} $name]]] code res
    if {$code != 0 || [llength $res] != 1} { return "" }
    return [lindex $res 0]
}

main {
    set home [new_home]
    lassign [start_registry $home] dpid port
    set uid [exec id -u]
    set user [exec id -un]

    test comm_send_accepts_both_payload_forms {
        # {send N {{Bind app {5555 host}}}}: one fragment, as nameserv sends.
        check_equal "Bind as one fragment" {0 {}} \
            [call {comm::comm send $port {Bind app {5555 host}}}]
        # {send N {Search *}}: two fragments.
        check_equal "Search * as fragments" {0 {app {5555 host}}} \
            [call {comm::comm send $port Search *}]
        check_equal "Search app as one fragment" {0 {app {5555 host}}} \
            [call {comm::comm send $port {Search app}}]
        # Fragments are joined as concat joins them.
        check_equal "fragments joined like concat" {0 {app {5555 host}}} \
            [call {comm::comm send $port " Search " " app "}]
        check_equal "ProtocolVersion" {0 1} [call {comm::comm send $port ProtocolVersion}]
        check_equal "ProtocolFeatures" {0 {Core Search/Continuous Commreg/1}} \
            [call {comm::comm send $port ProtocolFeatures}]
    }

    test errors_come_back_as_tcl_would_say_them {
        check_equal "unknown command" {1 {invalid command name "Bogus"}} \
            [call {comm::comm send $port Bogus}]
        check_equal "unknown command with arguments" {1 {invalid command name "Bogus"}} \
            [call {comm::comm send $port Bogus a {b c}}]
        lassign [call {comm::comm send $port Bind onlyname}] code msg
        check_equal "Bind with one argument fails" 1 $code
        check_match "Bind wrong # args" {wrong # args: should be "Bind *"} $msg
        lassign [call {comm::comm send $port Search a b}] code msg
        check_match "Search wrong # args" {wrong # args: should be "Search*"} $msg
        check_equal "ProtocolVersion wrong # args" \
            {1 {wrong # args: should be "ProtocolVersion"}} \
            [call {comm::comm send $port ProtocolVersion extra}]
        lassign [call {comm::comm send $port Commreg/Lookup nosuch}] code msg
        check_equal "lookup of an unknown name" \
            {1 {no application named "nosuch"}} [list $code $msg]
    }

    test substitutions_are_refused_not_evaluated {
        foreach script [list \
            {Search [exit]} \
            {Search $x} \
            {Search ${x}} \
            {Search {*}{a b}} \
            {Search a; Bogus} \
            "Search a\nSearch b" \
            {Search "a[exit]"} \
            {Bind "$x" y} \
        ] {
            lassign [call {comm::comm send $port $script}] code msg
            check_equal "[show $script] is an error" 1 $code
            check "[show $script] error says something else than unknown command: [show $msg]" {
                $msg ne "" && ![string match "invalid command name*" $msg]
            }
        }
        check "daemon still alive" {[alive $dpid]}
        check_equal "same connection still answers" {0 1} \
            [call {comm::comm send $port ProtocolVersion}]
        check_equal "nothing was bound by the refused commands" {app} \
            [lsort [dict keys [search $port *]]]
    }

    test literal_brackets_dollars_and_quotes_are_fine {
        check_equal "Bind braced literals" {0 {}} \
            [call {comm::comm send $port {Bind {[lit]} {$dat}}}]
        check_equal "found literally" {0 {{[lit]} {$dat}}} \
            [call {comm::comm send $port {Search {\[lit\]}}}]
        check_equal "double-quoted word without substitution" {0 {}} \
            [call {comm::comm send $port {Bind "q w" "data d"}}]
        check_equal "found" {0 {{q w} {data d}}} \
            [call {comm::comm send $port {Search {q w}}}]
        check_equal "backslash-quoted word" {0 {}} \
            [call {comm::comm send $port {Bind open\{brace x\ y}}]
        check_equal "found" {0 {open\{brace {x y}}} \
            [call {comm::comm send $port {Search open\\\{*}}]
    }

    test hello_proves_a_commreg_registry {
        lassign [call {comm::comm send $port Commreg/Hello}] code h
        check_equal "Hello succeeds" 0 $code
        check_set "Hello keys" {registry version protocol owner uid host pid port scope} \
            [dict keys $h]
        catch {
            check_equal "registry" commreg [dict get $h registry]
            check_equal "protocol" 1 [dict get $h protocol]
            check_equal "owner" $user [dict get $h owner]
            check_equal "uid" $uid [dict get $h uid]
            check_equal "host" [shorthost] [dict get $h host]
            check_equal "pid" $dpid [dict get $h pid]
            check_equal "port" $port [dict get $h port]
            check_equal "scope" user [dict get $h scope]
            check "version non-empty" {[dict get $h version] ne ""}
        }
        lassign [call {comm::comm send $port {Commreg/Hello 0.1}}] code h2
        check_equal "Hello with a client version" {0 commreg} \
            [list $code [expr {[catch {dict get $h2 registry} r] ? $h2 : $r}]]
    }

    test register_gives_serials_like_tk_appname {
        set before [clock seconds]
        conn ::c1; conn ::c2; conn ::c3
        check_equal "first" {0 foo} [ask ::c1 {Commreg/Register foo 5555}]
        check_equal "second connection" {0 {foo #2}} [ask ::c2 {Commreg/Register foo 5555}]
        check_equal "third connection" {0 {foo #3}} [ask ::c3 {Commreg/Register foo 5555}]
        check_equal "lookup foo #2" {0 {5555 localhost}} \
            [ask ::comm::comm {Commreg/Lookup {foo #2}}]
        check_equal "lookup foo" {0 {5555 localhost}} [ask ::comm::comm {Commreg/Lookup foo}]
        check_equal "nns clients see them with DATA = comm id" \
            {foo {5555 localhost} {foo #2} {5555 localhost} {foo #3} {5555 localhost}} \
            [lsort -stride 2 [search $port foo*]]

        lassign [ask ::comm::comm {Commreg/List foo*}] code list
        check_equal "List succeeds" 0 $code
        check_equal "List sorted by name" {foo {foo #2} {foo #3}} [names_of $list]
        set serial 0
        if {$code != 0} { set list {} }
        foreach e $list {
            incr serial
            set n [dict get $e name]
            check_equal "$n: keys in order" $entry_keys [dict keys $e]
            check_equal "$n: fields" \
                [list $serial foo 5555 localhost {5555 localhost} user $uid] \
                [fields $e {serial base port host data scope uid}]
            check "$n: pid is ours or empty" {[lindex [fields $e pid] 0] in [list "" [pid]]}
            check "$n: since is now" {
                [string is integer -strict [dict get $e since]]
                && [dict get $e since] >= $before - 1
                && [dict get $e since] <= [clock seconds] + 1
            }
        }

        # Closing a connection removes what it registered.
        ::c2 destroy
        check "foo #2 disappears with its connection" {[wait_until {
            [lindex [ask ::comm::comm {Commreg/Lookup {foo #2}}] 0] == 1} 2000]}
        check_equal "List after" {0 {foo {foo #3}}} \
            [list [lindex [ask ::comm::comm {Commreg/List foo*}] 0] \
                 [names_of [lindex [ask ::comm::comm {Commreg/List foo*}] 1]]]
        conn ::c4
        check_equal "freed serial is given again (lowest free)" {0 {foo #2}} \
            [ask ::c4 {Commreg/Register foo 5555}]

        conn ::c5; conn ::c6
        check_equal "-serial asks for a serial" {0 {foo #9}} \
            [ask ::c5 {Commreg/Register foo 5555 -serial 9}]
        check_equal "-serial taken: lowest free instead" {0 {foo #4}} \
            [ask ::c6 {Commreg/Register foo 5555 -serial 3}]

        check_equal "-host" {0 baz} [ask ::c1 {Commreg/Register baz 6001 -host otherhost}]
        check_equal "lookup gives PORT HOST" {0 {6001 otherhost}} \
            [ask ::comm::comm {Commreg/Lookup baz}]
        check_equal "nns DATA defaults to PORT HOST" {baz {6001 otherhost}} [search $port baz]
        check_equal "-host and -data" {0 bar} \
            [ask ::c1 {Commreg/Register bar 6000 -host otherhost -data {custom data}}]
        check_equal "lookup gives the comm id" {0 {6000 otherhost}} \
            [ask ::comm::comm {Commreg/Lookup bar}]
        check_equal "nns DATA is -data" {bar {custom data}} [search $port bar]
        check_equal "List fields of bar" {6000 otherhost {custom data}} \
            [fields [entry_of bar] {port host data}]

        check_equal "unregister own name" {0 {}} [ask ::c3 {Commreg/Unregister {foo #3}}]
        check_equal "gone" 1 [lindex [ask ::comm::comm {Commreg/Lookup {foo #3}}] 0]
        check_equal "unregister someone else's name fails" 1 \
            [lindex [ask ::c1 {Commreg/Unregister {foo #2}}] 0]
        check_equal "which is still there" {0 {5555 localhost}} \
            [ask ::comm::comm {Commreg/Lookup {foo #2}}]

        check_equal "Release drops registered names too" {0 {}} [ask ::c6 Release]
        check_equal "foo #4 gone" 1 [lindex [ask ::comm::comm {Commreg/Lookup {foo #4}}] 0]
    }

    test bind_and_register_share_one_namespace {
        conn ::c7
        check_equal "registered" {0 shared} [ask ::c7 {Commreg/Register shared 3333}]
        check_equal "Bind of a registered name refused" \
            {1 {Name "shared" is already bound}} [ask ::comm::comm {Bind shared x}]
        check_equal "Register of a bound name gets a serial" {0 {app #2}} \
            [ask ::c7 {Commreg/Register app 4444}]
        check_equal "lookup of a Bind entry gives its DATA" {0 {5555 host}} \
            [ask ::comm::comm {Commreg/Lookup app}]
        check_equal "Bind entry fields" {app 1 app 5555 host {5555 host} user} \
            [fields [entry_of app] {name serial base port host data scope}]
        check_equal "Bind with non-port DATA" {0 {}} \
            [ask ::comm::comm {Bind weird {not a port}}]
        check_equal "its port and host are empty" {{} {}} \
            [fields [entry_of weird] {port host}]
        check_equal "its lookup gives the DATA" {0 {not a port}} \
            [ask ::comm::comm {Commreg/Lookup weird}]
    }

    test names_are_checked {
        conn ::c8
        lassign [ask ::c8 [list Commreg/Register "a\tb" 1]] code msg
        check_equal "tab refused" 1 $code
        check_match "message names the problem" {*control character*} $msg
        check_equal "newline refused" 1 [lindex [ask ::c8 [list Commreg/Register "a\nb" 1]] 0]
        check_equal "CR refused" 1 [lindex [ask ::c8 [list Commreg/Register "a\rb" 1]] 0]
        check_equal "name ending in #N refused" 1 \
            [lindex [ask ::c8 {Commreg/Register {x #3} 1}] 0]
        check_equal "empty name refused" 1 [lindex [ask ::c8 {Commreg/Register {} 1}] 0]
        check_equal "256 bytes refused" 1 \
            [lindex [ask ::c8 [list Commreg/Register [string repeat n 256] 1]] 0]
        check_equal "255 bytes accepted" [list 0 [string repeat n 255]] \
            [ask ::c8 [list Commreg/Register [string repeat n 255] 1]]
        # 2-byte characters: 128 of them are 256 bytes.
        check_equal "256 UTF-8 bytes refused" 1 \
            [lindex [ask ::c8 [list Commreg/Register [string repeat \u00e9 128] 1]] 0]
        check_equal "non-numeric port refused" 1 \
            [lindex [ask ::c8 {Commreg/Register okname notaport}] 0]
        check_equal "unregister unknown name fails" 1 \
            [lindex [ask ::c8 {Commreg/Unregister nosuchname}] 0]
        check "daemon alive" {[alive $dpid]}
    }

    test watch_gives_snapshot_then_events {
        conn ::w1
        check_equal "pre-existing entry" {0 watch.pre} \
            [ask ::w1 {Commreg/Register watch.pre 7000}]
        set s [raw_open $port]
        lassign [raw_call $s {Commreg/Watch tag1 watch.*}] code snap
        check_equal "Watch succeeds" 0 $code
        check_equal "snapshot" {watch.pre} [names_of $snap]
        check_equal "snapshot entry has the entry keys" $entry_keys [dict keys [lindex $snap 0]]

        conn ::w2
        check_equal "register watched name" {0 watch.new} \
            [ask ::w2 {Commreg/Register watch.new 7001}]
        conn ::w3
        check_equal "register unwatched name" {0 other.name} \
            [ask ::w3 {Commreg/Register other.name 7002}]
        ::w2 destroy
        set ev [raw_wait_events $s 2]
        lappend ev {*}[raw_events $s 300]
        check_equal "two events" 2 [llength $ev]
        lassign $ev add remove
        check_equal "add event" {Commreg/Event tag1 add watch.new 7001} [event_summary $add]
        check_equal "remove event" {Commreg/Event tag1 remove watch.new 7001} \
            [event_summary $remove]
        check_equal "event entry has the entry keys" $entry_keys [dict keys [lindex $add 3]]

        check_equal "Unwatch" {0 {}} [raw_call $s {Commreg/Unwatch tag1}]
        conn ::w4
        ask ::w4 {Commreg/Register watch.late 7003}
        check_equal "no event after Unwatch" {} [raw_events $s 300]
        raw_close $s
    }

    test nns_continuous_search_over_the_wire {
        set s [raw_open $port]
        raw_send $s [list [list Search/Continuous/Start ctag cont.*]] async
        set ev [raw_wait_events $s 1]
        check_equal "initial empty add" {{Search/Continuous/Change ctag add {}}} $ev
        conn ::n1
        ask ::n1 {Bind cont.a {1 h}}
        check_equal "add" {{Search/Continuous/Change ctag add {cont.a {1 h}}}} \
            [raw_wait_events $s 1]
        ::n1 destroy
        check_equal "remove" {{Search/Continuous/Change ctag remove {cont.a {1 h}}}} \
            [raw_wait_events $s 1]
        raw_send $s [list [list Search/Continuous/Stop ctag]] async
        conn ::n2
        ask ::n2 {Bind cont.b {2 h}}
        check_equal "nothing after Stop" {} [raw_events $s 300]
        raw_close $s
    }

    test stats_counts {
        lassign [ask ::comm::comm Commreg/Stats] code st
        check_equal "Stats succeeds" 0 $code
        check_set "Stats keys" {entries connections watches uptime messages refused version} \
            [dict keys $st]
        # Connections of the previous scenario may still be closing: the
        # two agree once the registry has caught up.
        check "entries = length of List" {[wait_until {
            [dict exists [set st2 [lindex [ask ::comm::comm Commreg/Stats] 1]] entries]
            && [dict get $st2 entries]
               == [llength [lindex [ask ::comm::comm Commreg/List] 1]]} 2000 50]}
        foreach k {connections watches uptime messages refused} {
            check "$k is a count" {[dict exists $st $k]
                && [string is integer -strict [dict get $st $k]]}
        }
    }

    # ---- raw sockets ----

    test handshake_is_answered_with_vers_3 {
        set s [raw_connect $port]
        raw_puts $s {{3 2} 0}
        check_equal "first message" {msg {vers 3}} [raw_outcome $s]
        raw_close $s
        set s [raw_connect $port]
        raw_puts $s {3 12345}
        check_equal "offer of 3 alone" {msg {vers 3}} [raw_outcome $s]
        check_equal "then it works" {0 1} [raw_call $s ProtocolVersion]
        raw_close $s
    }

    test crlf_terminated_messages_are_accepted {
        set s [raw_connect $port]
        fconfigure $s -translation {lf crlf}
        raw_puts $s {{3 2} 0}
        check_equal "handshake over CRLF" {msg {vers 3}} [raw_outcome $s]
        check_equal "Search over CRLF" {0 {app {5555 host}}} [raw_call $s {Search app}]
        check_equal "second message over CRLF" {0 1} [raw_call $s ProtocolVersion]
        fconfigure $s -translation lf
        check_equal "then LF on the same connection" {0 1} [raw_call $s ProtocolVersion]
        raw_close $s
    }

    test message_trickling_in_byte_by_byte_is_accepted {
        set s [raw_connect $port]
        set text "{3 2} 0\n"
        append text [list [list send 1 [list [list Bind "split.\u00e9\u2603" {1 h}]]]] \n
        append text [list [list send 2 [list [list Search split.*]]]] \n
        set bytes [encoding convertto utf-8 $text]
        fconfigure $s -translation binary
        set ok 1
        foreach b [split $bytes ""] {
            if {![raw_write $s $b]} { set ok 0; break }
            pause 2
        }
        fconfigure $s -translation lf -encoding utf-8
        check "all bytes written" {$ok}
        check_equal "handshake" {msg {vers 3}} [raw_outcome $s]
        check_equal "Bind reply" {0 {}} [dict values [dict filter [raw_reply $s 1] key code result]]
        check_equal "Search reply, UTF-8 intact" [list 0 [list "split.\u00e9\u2603" {1 h}]] \
            [dict values [dict filter [raw_reply $s 2] key code result]]
        raw_close $s
    }

    test many_messages_in_one_write_are_all_answered {
        set s [raw_open $port]
        set batch ""
        for {set i 1} {$i <= 100} {incr i} {
            append batch [list [list send $i [list [list Search app]]]] \n
        }
        raw_write $s $batch
        set got {}
        set bad {}
        for {set i 1} {$i <= 100} {incr i} {
            if {[catch {raw_recv $s 3000} m]} { lappend bad "#$i: $m"; break }
            lassign $m kind ser payload
            lappend got $ser
            set r [decode_return $payload]
            if {$kind ne "reply" || [dict get $r code] ne "0"
                || [dict get $r result] ne {app {5555 host}}} {
                lappend bad $m
            }
        }
        check_equal "100 replies" 100 [llength $got]
        check_equal "serials 1..100 in order" [apply {{} {
            set l {}; for {set i 1} {$i <= 100} {incr i} { lappend l $i }; return $l}}] $got
        check_equal "all replies correct" {} $bad
        # Two messages on one line: the stream is one list.
        raw_write $s "[list [list send 201 ProtocolVersion]] [list [list send 202 ProtocolVersion]]\n"
        check_equal "two on one line: first" {0 1} \
            [dict values [dict filter [raw_reply $s 201] key code result]]
        check_equal "two on one line: second" {0 1} \
            [dict values [dict filter [raw_reply $s 202] key code result]]
        raw_close $s
    }

    test async_gets_no_reply_and_command_gets_a_callback {
        set s [raw_open $port]
        raw_puts $s [list [list async 5 [list [list Bind async.name {1 h}]]]]
        raw_puts $s [list [list send 6 [list [list Search async.*]]]]
        lassign [raw_recv $s] kind ser payload
        check_equal "next message is the reply to 6" {reply 6} [list $kind $ser]
        check_equal "the async Bind happened" {async.name {1 h}} \
            [dict get [decode_return $payload] result]
        raw_puts $s [list [list command 7 ProtocolVersion]]
        lassign [raw_recv $s] kind ser payload
        check_equal "command answered by callback" {callback 7 0 1} \
            [list $kind $ser [dict get [decode_return $payload] code] \
                 [dict get [decode_return $payload] result]]
        raw_puts $s [list [list send 8 Bogus]]
        lassign [raw_recv $s] kind ser payload
        set r [decode_return $payload]
        check_equal "error reply" {reply 8 1 {invalid command name "Bogus"}} \
            [list $kind $ser [dict get $r code] [dict get $r result]]
        raw_close $s
    }

    test oversize_message_closes_only_that_connection {
        set a [raw_open $port]
        set b [raw_open $port]
        check_equal "a works" {0 1} [raw_call $a ProtocolVersion]
        # Just under the default 64 KiB limit: fine.
        set data60 [string repeat y 60000]
        check_equal "60000-byte message accepted" {0 {}} [raw_call $b [list Bind big60 $data60]]
        check_equal "and stored whole" 60000 \
            [string length [lindex [raw_call $b {Search big60}] 1 1]]
        set mark [log_mark $dpid]
        raw_send $b [list [list Bind big70 [string repeat x 70000]]]
        check_equal "70000-byte message: connection closed, no reply" eof [raw_outcome $b 3000]
        check_equal "other connection unaffected" {0 1} [raw_call $a ProtocolVersion]
        check_equal "nothing bound" {} [search $port big70]
        check "daemon logged why" {[wait_until {[::t::log_since $dpid $mark] ne ""} 1000]}
        check_regexp "log names the reason" {(?i)(too (large|long|big)|size|limit|exceed|65536|64 ?ki?b)} \
            [log_since $dpid $mark]
        check "daemon alive" {[alive $dpid]}
        raw_close $a
    }

    test max_message_option_sets_the_limit {
        set home2 [new_home]
        lassign [start_registry $home2 --max-message 4096] pid2 port2
        set a [raw_open $port2]
        set b [raw_open $port2]
        check_equal "3000 bytes accepted" {0 {}} \
            [raw_call $b [list Bind small [string repeat s 3000]]]
        set mark [log_mark $pid2]
        raw_send $b [list [list Bind large [string repeat l 5000]]]
        check_equal "5000 bytes: closed, no reply" eof [raw_outcome $b 3000]
        check_equal "other connection unaffected" {0 1} [raw_call $a ProtocolVersion]
        check "logged" {[wait_until {[::t::log_since $pid2 $mark] ne ""} 1000]}
        check_regexp "log names the reason" {(?i)(too (large|long|big)|size|limit|exceed|4096)} \
            [log_since $pid2 $mark]
        # An unfinished message may not grow past the limit either.
        set c [raw_open $port2]
        raw_write $c "\{send 1 \{\{Bind x \{[string repeat u 6000]"
        check_equal "unterminated 6000 bytes: closed" eof [raw_outcome $c 3000]
        check_equal "other connection still unaffected" {0 1} [raw_call $a ProtocolVersion]
    }

    test bad_first_line_closes_only_that_connection {
        set a [raw_open $port]
        foreach {label first} [list \
            "HTTP request" "GET / HTTP/1.0\r\n\r\n" \
            "offer without 3" "{2} 0\n" \
            "junk words" "hello world\n" \
        ] {
            set mark [log_mark $dpid]
            set s [raw_connect $port]
            raw_write $s $first
            check_equal "$label: closed without a reply" eof [raw_outcome $s 3000]
            raw_close $s
            check_equal "$label: others fine" {0 1} [raw_call $a ProtocolVersion]
            check "$label: reason logged" {[wait_until {[::t::log_since $dpid $mark] ne ""} 1000]}
        }
        set mark [log_mark $dpid]
        set s [raw_open $port]
        raw_write $s "{send 1 {Search *}x}\n"
        check_equal "message that is not a list: closed" eof [raw_outcome $s 3000]
        check "reason logged" {[wait_until {[::t::log_since $dpid $mark] ne ""} 1000]}
        check_equal "others fine" {0 1} [raw_call $a ProtocolVersion]
        check "daemon alive" {[alive $dpid]}
    }

    test silent_and_stalled_peers_do_not_block_others {
        set silent [raw_connect $port]
        set stalled [raw_open $port]
        raw_write $stalled "\{send 1 \{\{Search"
        set half [raw_connect $port]
        raw_write $half "\{3 2"
        set t0 [clock milliseconds]
        set a [raw_open $port]
        check_equal "new connection served" {0 {app {5555 host}}} [raw_call $a {Search app} 1000]
        check "promptly (< 1 s)" {[clock milliseconds] - $t0 < 1000}
        check_equal "comm::comm too" {0 1} [call {comm::comm send $port ProtocolVersion} 1000]
        check_equal "stalled peer got nothing" timeout [raw_outcome $stalled 200]
        check_equal "silent peer got nothing" timeout [raw_outcome $silent 200]
    }
}
