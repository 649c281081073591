# Peers that cost the registry something and give nothing back lose their
# own connection, with the reason logged, and nobody else notices:
# a peer that never sends its protocol offer (handshake timeout) and a
# peer that sends requests but never reads the replies (output limit).
source [file join [file dirname [info script]] lib.tcl]

main {
    test silent_peer_is_closed_after_the_handshake_timeout {
        set home [new_home]
        lassign [start_registry $home --handshake-timeout 1] dpid port
        set mark [log_mark $dpid]
        set silent [raw_connect $port]
        set a [raw_open $port]
        # Before the timeout the silent peer is still connected...
        check_equal "silent peer still open at first" timeout \
            [raw_outcome $silent 300]
        # ...and after it the registry has closed it.
        check_equal "silent peer closed" eof [raw_outcome $silent 3000]
        check_match "reason logged" "*no protocol offer within 1 s*" \
            [log_since $dpid $mark]
        # A peer that did its handshake is not subject to the timeout.
        check_equal "other peer still served" {0 1} \
            [raw_call $a ProtocolVersion]
        raw_close $silent
        raw_close $a
    }

    test peer_that_never_reads_is_dropped_at_the_output_limit {
        # A listing larger than max_output/4 is written in pieces as the
        # peer reads, and the registry reads none of that peer's further
        # requests meanwhile: a greedy peer that asks for many and reads
        # nothing fills the kernel's buffers, its reply stops moving, and
        # it is closed after the liveness deadline (1.5 s here) with
        # "not reading" (should something be queued beyond the output
        # limit first, the cap closes it, also with "not reading").
        set home [new_home]
        lassign [start_registry $home --max-output 65536 --liveness 1500] dpid port
        set a [raw_open $port]
        # a stays quiet between its calls: answer the registry's pings.
        raw_keepalive $a
        # A table whose listing is about 100 KiB, well above 65536/4.
        set data [string repeat x 1000]
        for {set i 0} {$i < 100} {incr i} {
            check_equal "bind $i" {0 {}} [raw_call $a [list Bind name$i $data]]
        }
        set mark [log_mark $dpid]
        set greedy [raw_open $port]
        # Ask for ~40 MB of replies (far more than the kernel buffers
        # of a connection hold) and read none of them.  Bounded: at most
        # 400 requests, stop as soon as the registry gives up.
        for {set i 0} {$i < 400} {incr i} {
            if {![raw_puts $greedy [list [list send [expr {$i + 100}] {Search *}]]]} {
                break
            }
            if {$i % 20 == 19 && [string match "*not reading*" [log_since $dpid $mark]]} {
                break
            }
        }
        set t0 [clock milliseconds]
        check "registry gave up on the reader within the liveness deadline and slack" \
            {[wait_until {[string match "*not reading*" [::t::log_since $dpid $mark]]} [slow 8000]]}
        set took [expr {[clock milliseconds] - $t0}]
        check_match "log names the peer and reason" "*peer 127.0.0.1:* not reading*; connection closed*" \
            [log_since $dpid $mark]
        check_equal "exactly one peer closed" 1 [log_count $dpid $mark "*connection closed*"]
        check "daemon alive" {[alive $dpid]}
        check_equal "others still served" {0 1} [raw_call $a ProtocolVersion]
        set b [raw_open $port]
        check_equal "new peers served the full listing" 100 \
            [llength [dict keys [lindex [raw_call $b {Search *}] 1]]]
        say "  (greedy peer closed after $took ms)"
        raw_close $greedy
        raw_close $a
        raw_close $b
    }
}
