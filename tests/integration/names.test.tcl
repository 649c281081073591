# What a peer may put in a name, and what it may send as a serial or a
# protocol offer (docs/protocol.md §4, docs/security.md): one rule for
# every name (nns Bind as for Commreg/Register), UTF-8 with no control
# character; the CLI shows a client's data escaped; a serial beyond 64
# bits and an offer with a NUL in a version are refused, not
# misunderstood.  Each check would fail without the handling: before it,
# Bind took "evil\nline" and `commreg lookup` printed an escape raw.
source [file join [file dirname [info script]] lib.tcl]
package require nameserv

main {
    set home [new_home]
    lassign [start_registry $home] dpid port

    test bind_follows_the_register_rule {
        nameserv::configure -port $port -host localhost
        foreach {what name} [list \
                newline "evil\nfake 1 2" \
                escape "esc\033\[2J" \
                c1 "csi\u009b31m" \
                del "del\x7f"] {
            set code [catch {nameserv::bind $name {4000 localhost}} msg]
            check_equal "Bind $what: refused" 1 $code
            check_match "Bind $what: says why" "*control character*" $msg
            check "Bind $what: the message carries no raw control character" \
                {![regexp {[\x00-\x1f\x7f]} $msg]}
        }
        set names [dict keys [nameserv::search *]]
        check "none of them is listed" \
            {[lsearch -regexp $names {[\x00-\x1f\x7f\u0080-\u009f]}] < 0}
        # Printable UTF-8 stays a name like any other.
        check_equal "Bind café: allowed" 0 \
            [catch {nameserv::bind "café €" {4001 localhost}}]
        check "café is listed" {[lsearch -exact \
            [dict keys [nameserv::search *]] "café €"] >= 0}
        nameserv::release
    }

    test register_refuses_what_is_not_utf8 {
        set s [raw_open $port]
        fconfigure $s -encoding binary
        # "bad\xff": not UTF-8 on the wire.
        raw_puts $s "{send 1 {{Commreg/Register bad\xff 4002}}}"
        set r [raw_reply $s 1]
        check_equal "refused" 1 [dict get $r code]
        check_match "says why" "*not valid UTF-8*" [dict get $r result]
        raw_close $s
    }

    test cli_shows_a_clients_data_escaped {
        # A Bind's data is the client's own, and not a name: it may hold
        # anything, and the CLI must not pass an escape to the terminal.
        set s [raw_open $port]
        check_equal "Bind with an escape in its data" {0 {}} \
            [raw_call $s [list Bind dataesc "4003 host\033\[2J"]]
        set r [commreg $home lookup dataesc]
        check_equal "lookup: exit 0" 0 [dict get $r code]
        check "lookup: no raw escape on stdout" \
            {[string first \033 [dict get $r out]] < 0}
        check_match "lookup: the escape shown as \\x1b" {*\\x1b\[2J*} \
            [dict get $r out]
        raw_close $s
    }

    test a_serial_beyond_64_bits_is_refused {
        set mark [log_mark $dpid]
        set s [raw_open $port]
        raw_puts $s "{send 100000000000000000000000000 {{ProtocolVersion}}}"
        check_equal "closed, no reply" eof [raw_outcome $s 3000]
        check "logged with the reason" {[wait_until {[string match \
            "*serial*not a number*" [::t::log_since $dpid $mark]]} 3000]}
        check_equal "others still served" {0 1} \
            [raw_call [raw_open $port] ProtocolVersion]
    }

    test an_offer_with_a_nul_in_a_version_is_refused {
        set mark [log_mark $dpid]
        set s [raw_connect $port]
        fconfigure $s -encoding binary
        raw_puts $s "{3\x00 2} 0"
        check_equal "closed, no {vers 3}" eof [raw_outcome $s 3000]
        check "logged with the reason" {[wait_until {[string match \
            "*not a comm protocol offer*" [::t::log_since $dpid $mark]]} \
            3000]}
        # The same offer without the NUL is answered.
        set t [raw_open $port]
        check_equal "a clean offer is served" {0 1} \
            [raw_call $t ProtocolVersion]
    }
}
