# Federation of host gateways over TLS (docs/config.md [gateway]
# listen/certificate/key/ca and [remote NAME], docs/gateway.md): entries
# of scope global cross from one gateway to another, filtered by export
# and import, through a tree of gateways with reexport, never back to
# their origin; every kind of peer that should be refused is refused and
# logged; a link that drops takes what it brought with it, and comes back
# by itself.
#
# Every "host" is this machine: gateway N is gwN.test on 127.0.0.N with a
# certificate from tests/tools/mkcerts.sh, and its users' registries run
# with their own HOME and TCL_COMM_CONFIG_DIR.  Needs openssl on PATH.
# Runs as root (as in CI: the configuration files are then root's, as the
# gateway requires) or as any user (everything is then that user's).
#
#   certificates      mkcerts.sh's output is what the others rely on
#   two_gateways      gw2 <-> gw3: a global entry of gw2 on gw3's host as
#                     NAME@USER@gw2.test with host 127.0.0.2 (lookup exact
#                     and bare, list with scope global, watch add/remove);
#                     scope host stays home; export and import filters
#                     (list, watch and forwarded lookups alike); a lookup
#                     of a name nobody has fails within lookup_timeout_ms,
#                     also when the other gateway does not answer at all;
#                     a local name wins over a federated one
#   refusals          no client certificate, TLS 1.1, plain TCP, a
#                     certificate of another CA, the wrong name, an
#                     expired certificate: each logged by the accepting
#                     gateway with the peer and the reason, and nothing
#                     crosses; a connecting gateway checks the listener's
#                     name too
#   tree              gw2 -> gw3 <- gw4 (gw3 the upstream of both):
#                     with reexport on gw3, gw4 sees gw2's entry (origin
#                     gw2.test) and gw2 sees gw4's; nothing comes back to
#                     its origin; without reexport, nothing passes gw3
#   middle_killed     SIGKILL of gw3: gw4's host is told the entry went
#                     once gw4's hold of what gw3 gave (3 s) is over; gw3
#                     restarted: gw4 sees it again (bounded)
#   no_flicker        gw2 -> gw3 <- gw4: a reload of gw3 (its links made
#                     again) and a restart of gw3 within the hold: the
#                     watchers on gw3's and gw4's hosts see no event for
#                     gw2's entry, and a change after is still told
#   three_levels      leaf gw2 -> site gw3 -> root gw4 <- site gw5 <- leaf
#                     gw6: gw2's entry reaches gw6's host in four hops,
#                     with its path; lookups from gw6 go up only
#   forged_entries    a remote with a good certificate offers names that
#                     are not NAME@USER@ORIGIN of its own origin: each is
#                     refused and logged, its own name is taken
#   mesh_second_path  gw2, gw3, gw4 all linked: gw4 learned gw2's entry
#                     through gw3 first; when gw3 dies the entry stays,
#                     offered again over the direct link to gw2
#   lying_snapshot_in_pieces  a remote sends a piece not asked for and a
#                     count its pieces do not make: the link ends, logged,
#                     nothing taken
#   certificate_name_not_a_host_name  a certificate calling the gateway
#                     "gw 8.test" is refused by --check-config, saying why
#   snapshot_in_pieces  gw3 takes at most 64 KiB in one message on its
#                     links (link_max_message) and gw2 offers 600 names,
#                     about 100 KB: the snapshot comes as many messages,
#                     all 600 cross, and changes flow after it
#   remote_lookup_flood a remote (openssl s_client with gw3's certificate)
#                     sends 20,000 lookups at once: each is answered, bare
#                     names and travelling names alike, from the table's
#                     indexes, while the gateway's own users are served
#   cert_renewal      gw2's certificate and key renewed in place (same CA,
#                     same name, a new serial), then SIGHUP: the listener
#                     presents the new one and gw3 links to it again; a
#                     certificate without its key fails the reload and
#                     keeps what is served.  With [gateway] user = nobody
#                     when root, so that the key is the root parent's to
#                     read
#
# FED_ONLY="two_gateways tree" (glob patterns) runs only those scenarios.
source [file join [file dirname [info script]] lib.tcl]
source [file join [file dirname [info script]] federation_lib.tcl]

main {
    ::fed::require capp
    set me [exec id -un]

    ::fed::test certificates {
        # mkcerts.sh made everything, quietly, and what it made is what the
        # other scenarios rely on.
        set c [::fed::certs]
        foreach f {ca rogue-ca gw1 gw2 gw3 gw4 gw5 gw6 rogue expired wrongname} {
            check "$f.crt and $f.key exist" {[file exists $c/$f.crt] && [file exists $c/$f.key]}
            check_equal "$f.key is mode 0600" 0600 [perm $c/$f.key]
        }
        set r [run openssl verify -CAfile $c/ca.crt $c/gw2.crt $c/gw3.crt $c/gw4.crt]
        check_equal "gw2..gw4 verify against ca.crt" 0 [dict get $r code]
        set r [run openssl x509 -in $c/gw3.crt -noout -ext subjectAltName,extendedKeyUsage]
        check_regexp "gw3: DNS:gw3.test first, IP 127.0.0.3" {DNS:gw3\.test, IP Address:127\.0\.0\.3} [dict get $r out]
        check_regexp "gw3: server and client auth" {Server Authentication, TLS Web Client Authentication} [dict get $r out]
        set r [run openssl verify -CAfile $c/ca.crt $c/rogue.crt]
        check "rogue.crt does not verify against ca.crt" {[dict get $r code] != 0}
        set r [run openssl verify -CAfile $c/ca.crt $c/expired.crt]
        check_regexp "expired.crt: expired" {certificate has expired} "[dict get $r out][dict get $r err]"
        set r [run openssl verify -CAfile $c/ca.crt -verify_hostname gw5.test $c/wrongname.crt]
        check "wrongname.crt is not gw5.test" {[dict get $r code] != 0}
    }

    ::fed::test two_gateways {
        # gw2 exports calc, imp-* and hostapp; gw3 imports calc and hostapp:
        #   calc     global  -> seen on gw3
        #   noexp    global  -> not exported by gw2
        #   imp-x    global  -> exported, not imported by gw3
        #   hostapp  host    -> scope host never leaves the host
        #   back     global on gw3 -> seen on gw2 (the link works both ways)
        # mark: exported and imported, registered after the ones that must
        # not cross; once it is on gw3's host, they had their chance.
        # ghost-*: exported and imported, but nobody has such a name (the
        # lookups that must go out to gw2 and come back empty).
        set d2 [::fed::conf 2 -remotes [::fed::remote gw3 export "calc imp-* hostapp mark ghost-*" import *]]
        set d3 [::fed::conf 3 -remotes [::fed::remote gw2 export * import "calc hostapp mark ghost-*"]]
        set g2 [::fed::start $d2]
        set g3 [::fed::start $d3]
        set h2 [::fed::host $d2]
        set h3 [::fed::host $d3]
        set w3 [::fed::watch $h3 *]

        set calc [::fed::app $h2 calc]
        set cport [::fed::field [gw_row $h2 calc] port]
        check "calc's port is known on gw2's host" {[string is integer -strict $cport]}
        set g "calc@$me@gw2.test"
        check "gw3's host lists $g" {[::fed::wait_name $h3 $g 10000]}
        set row [gw_row $h3 $g]
        check_equal "its port is calc's, its host gw2's listen address" \
            [list $cport 127.0.0.2] [list [::fed::field $row port] [::fed::field $row host]]
        set e [::fed::entry $h3 $g]
        check_equal "its scope is global" global [::fed::field $e scope]
        check_equal "lookup $g" "$cport 127.0.0.2" [::fed::lookup $h3 $g]
        check_equal "lookup calc (no local calc)" "$cport 127.0.0.2" [::fed::lookup $h3 calc]
        check "watch on gw3's host: add $g $cport 127.0.0.2" {[::fed::watch_wait $w3 add $g]}
        check_equal "the add line" [list add $g $cport 127.0.0.2] [::fed::watch_line $w3 add $g]
        check "gw2's own list keeps it as calc" {[::fed::has $h2 calc] && ![::fed::has $h2 $g]}

        # The other way.
        set back [::fed::app $h3 back]
        check "gw2's host lists back@$me@gw3.test" {[::fed::wait_name $h2 back@$me@gw3.test 10000]}
        check_equal "its host is gw3's listen address" 127.0.0.3 [::fed::field [gw_row $h2 back@$me@gw3.test] host]

        # Each link's state, as the sysadmin asks for it (Commreg/Stats).
        set r [run [file join [tools_dir] commcall] unix:[gw_socket $d3] \
                   Commreg/Stats]
        set links [dict get [string trim [dict get $r out]] links]
        set out [lsearch -inline -index 3 $links out]
        check_equal "gw3's link to gw2: ready" ready [dict get $out state]
        check_equal "it names the remote" gw2 [dict get $out remote]
        check "it counts what gw2 gave ([dict get $out entries])" \
            {[dict get $out entries] >= 1}
        check "gw2's link into gw3 is there too" \
            {[lsearch -index 3 $links in] >= 0}

        # What must not cross.
        set noexp [::fed::app $h2 noexp]
        set impx [::fed::app $h2 imp-x]
        set hostapp [::fed::app $h2 hostapp host]
        set mark [::fed::app $h2 mark]
        check "mark reached gw3's host" {[::fed::wait_name $h3 mark@$me@gw2.test 10000]}
        pause [slow 1500]
        set l3 [::fed::names $h3]
        check "noexp (not in gw2's export) is not on gw3's host" {[lsearch -glob $l3 noexp*] < 0}
        check "imp-x (not in gw3's import) is not on gw3's host" {[lsearch -glob $l3 imp-*] < 0}
        check "hostapp (scope host) is not on gw3's host" {[lsearch -glob $l3 hostapp*] < 0}
        foreach n [list noexp@$me@gw2.test hostapp@$me@gw2.test] {
            check_match "lookup $n on gw3's host fails" "error: *" [::fed::lookup $h3 $n]
        }
        check_match "lookup noexp on gw3's host fails" "error: *" [::fed::lookup $h3 noexp]
        check_match "lookup hostapp on gw3's host fails" "error: *" [::fed::lookup $h3 hostapp]
        check_match "lookup imp-x on gw3's host fails (not imported)" "error: *" [::fed::lookup $h3 imp-x]
        check "the watch on gw3's host never saw them" {
            [llength [::fed::watch_line $w3 add noexp@$me@gw2.test]] == 0
            && [llength [::fed::watch_line $w3 add imp-x@$me@gw2.test]] == 0
            && [llength [::fed::watch_line $w3 add hostapp@$me@gw2.test]] == 0}

        # A name nobody has: the lookup is forwarded (ghost-* is imported
        # from gw2) and fails within lookup_timeout_ms (1500 here) plus a
        # margin.
        set t0 [clock milliseconds]
        set r [::fed::lookup $h3 ghost-1]
        set dt [expr {[clock milliseconds] - $t0}]
        check_match "lookup of an unknown name fails" "error: *" $r
        check "and within the lookup timeout (took $dt ms)" {$dt < [slow 4500]}
        # The same while gw2 does not answer at all (stopped): the forwarded
        # lookup is given up after lookup_timeout_ms, not before.
        gw_signal $g2 STOP
        set t0 [clock milliseconds]
        set r [::fed::lookup $h3 ghost-2]
        set dt [expr {[clock milliseconds] - $t0}]
        gw_signal $g2 CONT
        check_match "lookup while gw2 is stopped: fails" "error: *" $r
        check "after lookup_timeout_ms (1500), not much later (took $dt ms)" {
            $dt >= 1400 && $dt < [slow 4500]}
        check "gw3's host still has calc from gw2 afterwards" {[::fed::wait_name $h3 $g 5000]}

        # A local name wins over the federated one.
        set local [gw_register $h3 calc [::fed::field [gw_row $h3 back] port] user]
        check_equal "a local calc (scope user) on gw3's host" 1 [::fed::field $local ok]
        check_equal "lookup calc on gw3's host: the local one" \
            "[::fed::field [gw_row $h3 back] port] localhost" [::fed::lookup $h3 calc]
        check_equal "lookup $g still gives gw2's" "$cport 127.0.0.2" [::fed::lookup $h3 $g]
        catch {stop [dict get $local ch]}

        # calc exits: gone from gw3's host, the watch told.
        app_kill $calc
        check "watch on gw3's host: remove $g" {[::fed::watch_wait $w3 remove $g 8000]}
        check "gw3's host no longer lists it" {[::fed::wait_name $h3 $g 5000 0]}
        check_match "lookup $g fails now" "error: *" [::fed::lookup $h3 $g]
        check "back still on gw2's host" {[::fed::has $h2 back@$me@gw3.test]}
        check "both gateways alive" {[alive [gw_pid $g2]] && [alive [gw_pid $g3]]}
    }

    ::fed::test refusals {
        # gw2 accepts links from gw5, gw7 and gw9 by its [remote] sections
        # (their addresses lead nowhere: only what comes in is tested).  The
        # peers present the wrong thing; each is refused at gw2 and logged
        # with the peer and the reason, and nothing crosses either way.
        set nowhere5 127.0.0.5:[::fed::free_port 5]
        set nowhere7 127.0.0.7:[::fed::free_port 7]
        set nowhere9 127.0.0.9:[::fed::free_port 9]
        set d2 [::fed::conf 2 -remotes [concat \
            [::fed::remote g5 address $nowhere5 peer_name gw5.test export * import *] \
            [::fed::remote g7 address $nowhere7 peer_name gw7.test export * import *] \
            [::fed::remote g9 address $nowhere9 peer_name gw9.test export * import *]]]
        set g2 [::fed::start $d2]
        set h2 [::fed::host $d2]
        set secret [::fed::app $h2 secret]
        check "gw2 listens on [::fed::addr 2]" {[::fed::listening 2]}

        # No client certificate.
        set m [gw_log_mark $g2]
        set r [::fed::s_client 2]
        check "no client certificate: refused, logged with the reason" {
            [::fed::wait_log $g2 {certificate} 8000 $m]}
        set lines [::fed::log_lines $g2 {certificate} $m]
        check_regexp "no client certificate: the line says none was given" \
            {(?i)\m(no|none|without|missing|not|required|absent|did not)\M} [join $lines \n]

        # TLS 1.1 is refused, with a certificate gw2 accepts over TLS 1.2
        # (gw5.test is one of its remotes).
        set m [gw_log_mark $g2]
        set r [::fed::s_client 2 -tls1_1 -cipher DEFAULT@SECLEVEL=0 \
                   -cert [::fed::cert gw5 crt] -key [::fed::cert gw5 key]]
        if {[regexp -nocase {no protocols available|unknown option|no ciphers available} [dict get $r out][dict get $r err]]} {
            say "  note: this openssl cannot speak TLS 1.1 at all; that check is left out"
        } else {
            check "TLS 1.1: refused, logged" {
                [::fed::wait_log $g2 {protocol|version|tls|ssl|handshake} 8000 $m]}
        }
        check "TLS 1.1: no link from it" {![regexp {link from [^\n]*: remote g5} [string range [gw_log $g2] $m end]]}
        set m [gw_log_mark $g2]
        set r [::fed::s_client 2 -tls1_2 -cert [::fed::cert gw5 crt] -key [::fed::cert gw5 key]]
        check "TLS 1.2 with gw5's certificate: accepted as remote g5 (the control)" {
            [::fed::wait_log $g2 {link from .*remote g5} 8000 $m]}

        # Plain TCP, a comm handshake line instead of TLS.
        set m [gw_log_mark $g2]
        set out [::fed::plain_probe 2]
        check "plain TCP: the connection is closed" {[lindex $out end] eq "eof"}
        check "plain TCP: no comm reply" {[string first "vers" $out] < 0}
        check "plain TCP: refused, logged with the reason" {
            [::fed::wait_log $g2 {tls|ssl|handshake|wrong version|record|plain|http} 8000 $m]}

        # Gateways with the wrong certificate, each with a host of its own
        # exporting a global entry.  A gateway that will not start with its
        # certificate (commgwd may check its own at start) is replaced by
        # openssl s_client presenting the same.
        set cases [list \
            wrong_ca  9 rogue     gw9.test {certificate|verify|unknown ca|issuer|unable to get|untrusted} \
            wrong_name 5 wrongname gw5.test {name|other\.test} \
            expired   7 expired   gw7.test {expired} ]
        foreach {what n base expect re} $cases {
            set m [gw_log_mark $g2]
            set dn [::fed::conf $n -cert $base -listen 0 \
                        -remotes [::fed::remote gw2 export * import *]]
            if {[catch {::fed::start $dn} gn]} {
                say "  note: $what: the gateway with $base.crt does not start; s_client presents it instead"
                say "        [lindex [split $gn \n] 0]"
                set r [::fed::s_client 2 -cert [::fed::cert $base crt] -key [::fed::cert $base key]]
                check "$what: refused, logged with the reason" {[::fed::wait_log $g2 $re 8000 $m]}
                continue
            }
            set hn [::fed::host $dn]
            set leak [::fed::app $hn leak$n]
            check "$what: refused by gw2, logged with the peer and the reason" {
                [::fed::wait_log $g2 $re 10000 $m]}
            pause [slow 1500]
            check "$what: leak$n did not cross to gw2's host" {
                [lsearch -glob [::fed::names $h2] leak*] < 0}
            check_match "$what: lookup leak$n on gw2's host fails" "error: *" [::fed::lookup $h2 leak$n]
            check "$what: secret did not cross to the peer's host" {
                [lsearch -glob [::fed::names $hn] secret*] < 0}
            check "$what: gw2 alive" {[alive [gw_pid $g2]]}
            stop $gn
        }
        check "gw2 still serves its host" {[::fed::has $h2 secret]}

        # The connecting side checks the listener's name: gw6 links to
        # "gw5.test" at an openssl s_server presenting wrongname.crt.
        set p5 [::fed::free_port 5]
        set srv [spawn openssl s_server -accept 127.0.0.5:$p5 -naccept 50 \
                     -cert [::fed::cert wrongname crt] -key [::fed::cert wrongname key] \
                     -CAfile [::fed::cert ca crt] -Verify 1 -quiet]
        check "s_server listens" {[wait_until {![catch {close [socket 127.0.0.5 $p5]}]} [slow 5000] 50]}
        set d6 [::fed::conf 6 -listen 0 \
                    -remotes [::fed::remote g5 address 127.0.0.5:$p5 peer_name gw5.test export * import *]]
        set g6 [::fed::start $d6]
        check "gw6 refuses a listener whose certificate is not gw5.test, saying so" {
            [::fed::wait_log $g6 {name|other\.test} 10000]}
    }

    ::fed::test tree {
        # gw2 (leaf) -> gw3 (site) <- gw4 (leaf); gw3 is the upstream of
        # both.  With reexport on gw3's sections, entries pass gw3 both
        # ways; without, they stop at gw3.
        set leaf [list export * import * upstream yes]
        set d2 [::fed::conf 2 -remotes [::fed::remote gw3 {*}$leaf]]
        set d4 [::fed::conf 4 -remotes [::fed::remote gw3 {*}$leaf]]
        set site_re [concat \
            [::fed::remote gw2 export * import * reexport yes] \
            [::fed::remote gw4 export * import * reexport yes]]
        set d3 [::fed::conf 3 -remotes $site_re]
        set g2 [::fed::start $d2]
        set g3 [::fed::start $d3]
        set g4 [::fed::start $d4]
        set h2 [::fed::host $d2]
        set h3 [::fed::host $d3]
        set h4 [::fed::host $d4]
        set w4 [::fed::watch $h4 *]
        set tree [::fed::app $h2 tree]
        set tport [::fed::field [gw_row $h2 tree] port]
        set leaf4 [::fed::app $h4 leaf4]
        set t "tree@$me@gw2.test"
        set l4 "leaf4@$me@gw4.test"
        check "gw3's host sees $t (one hop)" {[::fed::wait_name $h3 $t 10000]}
        check "gw4's host sees $t (two hops, origin gw2.test)" {[::fed::wait_name $h4 $t 10000]}
        check_equal "on gw4's host: lookup $t" "$tport 127.0.0.2" [::fed::lookup $h4 $t]
        check_equal "on gw4's host: lookup tree" "$tport 127.0.0.2" [::fed::lookup $h4 tree]
        check "gw2's host sees $l4 (two hops the other way)" {[::fed::wait_name $h2 $l4 10000]}
        pause [slow 1500]
        set n2 [::fed::names $h2]
        set n4 [::fed::names $h4]
        check "no loop: gw2's host has no entry of origin gw2.test" {[lsearch -glob $n2 *@gw2.test] < 0}
        check "no loop: gw4's host has no entry of origin gw4.test" {[lsearch -glob $n4 *@gw4.test] < 0}
        check "gw4's host has $t once, under its origin's name only" {
            [llength [lsearch -all -glob $n4 tree*]] == 1}
        check "gw2's host has $l4 once" {[llength [lsearch -all -glob $n2 leaf4*]] == 1}
        check_equal "the watch on gw4's host: one add of $t" 1 \
            [llength [lsearch -all -glob [app_lines $w4] "add $t *"]]
        foreach g [list $g2 $g3 $g4] {
            check "gateway [gw_pid $g] alive" {[alive [gw_pid $g]]}
        }

        # The same tree, gw3 without reexport.
        stop $g3
        check "gw3 gone: gw4's host loses $t" {[::fed::wait_name $h4 $t 8000 0]}
        set d3n [::fed::conf 3 -remotes [concat \
            [::fed::remote gw2 export * import *] \
            [::fed::remote gw4 export * import *]]]
        set g3n [::fed::start $d3n]
        # A registry of its own: the one of gw3's host before is linked
        # to the old gw3's socket (what it showed of gw3's table after
        # gw3 went was a stale copy).
        set h3n [::fed::host $d3n]
        check "without reexport: gw3's host sees $t again" {[::fed::wait_name $h3n $t 20000]}
        check "without reexport: gw3's host sees $l4" {[::fed::wait_name $h3n $l4 10000]}
        pause [slow 2000]
        check "without reexport: gw4's host does not see $t" {![::fed::has $h4 $t]}
        check "without reexport: gw2's host does not see $l4" {![::fed::has $h2 $l4]}
        check_match "without reexport: a lookup of $t from gw4's host fails" \
            "error: *" [::fed::lookup $h4 $t]
    }

    ::fed::test middle_killed {
        ::fed::middle_tree
        set h2 [::fed::host $d2]
        set h4 [::fed::host $d4]
        set tree [::fed::app $h2 tree]
        set t "tree@$me@gw2.test"
        set w4 [::fed::watch $h4 *]
        check "gw4's host sees $t" {[::fed::watch_wait $w4 add $t 15000]}
        set from [app_mark $w4]

        set t0 [clock milliseconds]
        gw_signal $g3 KILL
        # What gw3 gave is held 3 s (no_flicker), then goes.
        check "watch on gw4's host: remove $t" {[::fed::watch_wait $w4 remove $t 12000 $from]}
        set dt [expr {[clock milliseconds] - $t0}]
        check "after the hold (took $dt ms)" {$dt >= 2500 && $dt < [slow 8000]}
        check "gw4 says it kept them, then that gw3 is not back" {
            [gw_wait_log $g4 {remote gw3: keeping the 1 entries it gave for 3000 ms} 2000]
            && [gw_wait_log $g4 {remote gw3: not back within 3000 ms} 2000]}
        check "gw4's host no longer lists it" {[::fed::wait_name $h4 $t 3000 0]}
        check_match "lookup $t on gw4's host fails" "error: *" [::fed::lookup $h4 $t]
        check "gw2 and gw4 survive" {[alive [gw_pid $g2]] && [alive [gw_pid $g4]]}
        check "gw2's host still has tree" {[::fed::has $h2 tree]}
        catch {stop $g3}

        # gw3 again, the same configuration: the leaves link again by
        # themselves (backoff starts at 0.5 s) and resynchronise.
        pause [slow 1000]
        set from [app_mark $w4]
        set t0 [clock milliseconds]
        set g3b [::fed::start $d3]
        check "watch on gw4's host: add $t again" {[::fed::watch_wait $w4 add $t 20000 $from]}
        set dt [expr {[clock milliseconds] - $t0}]
        say "  (back on gw4's host $dt ms after gw3 restarted)"
        check "gw4's host lists it again" {[::fed::wait_name $h4 $t 5000]}
        check_equal "lookup $t on gw4's host" \
            "[::fed::field [gw_row $h2 tree] port] 127.0.0.2" [::fed::lookup $h4 $t]
        # Fully resynchronised: what goes now is told too.
        app_kill $tree
        check "tree exits: gw4's host is told" {[::fed::watch_wait $w4 remove $t 8000 $from]}
    }

    ::fed::test no_flicker {
        ::fed::middle_tree
        set h2 [::fed::host $d2]
        set h3 [::fed::host $d3]
        set h4 [::fed::host $d4]
        set app [::fed::app $h2 steady]
        set t "steady@$me@gw2.test"
        set w3 [::fed::watch $h3 *]
        set w4 [::fed::watch $h4 *]
        check "gw3's host sees $t" {[::fed::watch_wait $w3 add $t 15000]}
        check "gw4's host sees $t" {[::fed::watch_wait $w4 add $t 15000]}

        # A reload makes gw3's links again: what they gave is kept and
        # compared with what they give again.
        set f3 [app_mark $w3]
        set f4 [app_mark $w4]
        set m3 [gw_log_mark $g3]
        gw_signal $g3 HUP
        check "gw3 reloaded and linked to gw2 again" {
            [gw_wait_log $g3 {remote gw2: linked, 1 entries offered} 10000 $m3]}
        # Longer than the hold: a removal would have come by then.
        pause [slow 4000]
        check_equal "reload: no event on gw3's host" {} [app_lines $w3 $f3]
        check_equal "reload: no event on gw4's host" {} [app_lines $w4 $f4]
        check "gw3's host still lists it" {[::fed::has $h3 $t]}

        # gw3 killed and back within the hold.
        set f4 [app_mark $w4]
        set m4 [gw_log_mark $g4]
        gw_signal $g3 KILL
        catch {stop $g3}
        set g3b [::fed::start $d3]
        check "gw4 kept what gw3 gave" {
            [gw_wait_log $g4 {remote gw3: keeping the 1 entries it gave} 5000 $m4]}
        check "gw4 linked to the new gw3" {
            [gw_wait_log $g4 {remote gw3: linked} 15000 $m4]}
        pause [slow 4000]
        check_equal "restart: no event on gw4's host" {} [app_lines $w4 $f4]
        check "gw4's host still lists it" {[::fed::has $h4 $t]}
        check_equal "gw4's lookup" \
            "[::fed::field [gw_row $h2 steady] port] 127.0.0.2" [::fed::lookup $h4 $t]
        # Still in step: a change after is told.
        app_kill $app
        check "steady exits: gw4's host is told" {[::fed::watch_wait $w4 remove $t 8000 $f4]}

        # What a reload no longer lets in goes, though it was kept
        # through the reload: gw3 now imports only steady* from gw2.
        set app2 [::fed::app $h2 second]
        set t2 "second@$me@gw2.test"
        check "gw3's host sees $t2" {[::fed::watch_wait $w3 add $t2 15000]}
        set f3 [app_mark $w3]
        set rf [file join $d3 30-remotes.ini]
        set text [read_file $rf]
        check_equal "gw2's import narrowed in gw3's configuration" 1 \
            [regsub {(\[remote gw2\][^\[]*?import = )\*} $text {\1steady*} text]
        gw_write $d3 30-remotes.ini $text
        gw_signal $g3b HUP
        check "gw3's host is told $t2 went" {[::fed::watch_wait $w3 remove $t2 10000 $f3]}
        check "gw3's host no longer lists it" {[::fed::wait_name $h3 $t2 5000 0]}
    }

    ::fed::test three_levels {
        # A tree of three levels: the organisation's root gw4, two sites
        # gw3 and gw5 under it, a leaf under each (gw2 under gw3, gw6
        # under gw5).  Each child names its parent upstream; parents pass
        # on what they learn (reexport) to their other links.
        set me [exec id -un]
        set up [list export * import * upstream yes]
        set down [list export * import * reexport yes]
        set d2 [::fed::conf 2 -remotes [::fed::remote gw3 {*}$up]]
        set d3 [::fed::conf 3 -remotes [concat [::fed::remote gw4 {*}$up reexport yes] [::fed::remote gw2 {*}$down]]]
        set d4 [::fed::conf 4 -remotes [concat [::fed::remote gw3 {*}$down] [::fed::remote gw5 {*}$down]]]
        set d5 [::fed::conf 5 -remotes [concat [::fed::remote gw4 {*}$up reexport yes] [::fed::remote gw6 {*}$down]]]
        set d6 [::fed::conf 6 -remotes [::fed::remote gw5 {*}$up]]
        set gs {}
        foreach d [list $d2 $d3 $d4 $d5 $d6] { lappend gs [::fed::start $d] }
        set h2 [::fed::host $d2]
        set h6 [::fed::host $d6]
        set app [::fed::app $h2 deep]
        set port [::fed::field [gw_row $h2 deep] port]
        set t deep@$me@gw2.test
        check "the leaf under the other site sees $t (four hops)" {[::fed::wait_name $h6 $t 20000]}
        check_equal "lookup from there" "$port 127.0.0.2" [::fed::lookup $h6 $t]
        set e [::fed::entry $h6 $t]
        check_equal "its path, origin first" {gw2.test gw3.test gw4.test gw5.test} \
            [expr {[dict exists $e path] ? [dict get $e path] : ""}]
        set leaf6 [::fed::app $h6 far]
        check "and the other way" {[::fed::wait_name $h2 far@$me@gw6.test 20000]}
        pause [slow 1000]
        check "no loop: gw2's host has nothing of origin gw2.test" \
            {[lsearch -glob [::fed::names $h2] *@gw2.test] < 0}
        foreach g $gs { check "gateway [gw_pid $g] alive" {[alive [gw_pid $g]]} }
    }

    ::fed::test forged_entries {
        # "gw5" is openssl s_server with gw5's real certificate, answering
        # gw6's comm handshake, Hello and Watch with a snapshot of three
        # entries: one without its origin (it would take over a local
        # user's name), one claiming another origin, one well formed.
        set e {{name %s serial 1 base %s port %d host 127.0.0.5 data {%d 127.0.0.5} scope global pid 1 since 1 path %s}}
        # And two of two hops: one truly through gw5, one whose path says
        # it came through gw7 while gw5 sends it (gw5 would speak for gw7).
        set snap [list \
            [format [lindex $e 0] calc@root calc 4000 4000 gw5.test] \
            [format [lindex $e 0] fake@root@gw9.test fake 4001 4001 gw5.test] \
            [format [lindex $e 0] good@root@gw5.test good 4002 4002 gw5.test] \
            [format [lindex $e 0] relay@root@gw9.test relay 4003 4003 \
                 {{gw9.test gw5.test}}] \
            [format [lindex $e 0] forged@root@gw9.test forged 4004 4004 \
                 {{gw9.test gw7.test}}]]
        # Each comm message is one list on a line ({vers 3}, {reply ...}).
        set data "[list [list vers 3]]\n"
        append data "[list [list reply 1 [list return -code 0 {gateway commgwd name gw5.test}]]]\n"
        append data "[list [list reply 2 [list return -code 0 $snap]]]\n"
        set p5 [::fed::free_port 5]
        set log [newfile s_server].log
        set pid [exec openssl s_server -accept 127.0.0.5:$p5 -naccept 1 \
                     -cert [::fed::cert gw5 crt] -key [::fed::cert gw5 key] \
                     -CAfile [::fed::cert ca crt] -Verify 1 -quiet << $data >& $log &]
        remember $pid
        defer [list ::t::kill_proc $pid]
        # Asked of ss, not by connecting: s_server gives its input to the
        # first connection it gets.
        check "s_server listens" {[wait_until {
            ![catch {exec ss -Hltn "sport = :$p5"} o] && [string match *LISTEN* $o]} [slow 5000] 50]}
        set d6 [::fed::conf 6 -listen 0 \
                    -remotes [::fed::remote g5 address 127.0.0.5:$p5 peer_name gw5.test export * import *]]
        set g6 [::fed::start $d6]
        # s_server closes once its input is sent: the one entry taken is
        # then dropped with the link, which the log says.
        check "the well-formed entries, and only they, are taken" {
            [wait_until {[regexp {remote g5: dropped the 2 entries} [gw_log $g6]]} [slow 15000] 50]}
        check "an entry whose path does not end with its sender is refused" {
            [::fed::wait_log $g6 {refused entry "forged@root@gw9.test"} 5000]}
        check "an entry without its origin is refused, and logged" {
            [::fed::wait_log $g6 {refused entry "calc@root"} 5000]}
        check "an entry of another origin is refused, and logged" {
            [::fed::wait_log $g6 {refused entry "fake@root@gw9.test"} 5000]}
    }

    # The TLS listener's caps: links from one address are capped (a flood
    # of half-open set-ups from one place must not take the room of the
    # gateways that link from others), and a set-up that trickles in a
    # byte at a time is given its 10 s in all, not 10 s per byte.
    ::fed::test listener_caps {
        set d2 [::fed::conf 2 -remotes [::fed::remote gw3 export * import *]]
        set d3 [::fed::conf 3 -remotes [::fed::remote gw2 export * import *]]
        set g2 [::fed::start $d2]
        set p2 [::fed::port 2]
        set mark [gw_log_mark $g2]
        # Twelve plain connections from 127.0.0.9 that never speak TLS.
        set socks {}
        for {set i 0} {$i < 12} {incr i} {
            set s [socket -myaddr 127.0.0.9 127.0.0.2 $p2]
            fconfigure $s -blocking 0 -translation binary
            lappend socks $s
        }
        defer [list apply {{socks} {foreach s $socks {catch {close $s}}}} $socks]
        pause 500
        set closed 0
        foreach s $socks {
            if {[catch {read $s}] || [eof $s]} { incr closed }
        }
        check_equal "four of twelve from one address closed at once" 4 $closed
        check "the refusal is said, naming the address" {[gw_wait_log $g2 \
            {refused link from 127.0.0.9:[0-9]+: already 8 links from 127.0.0.9 \(limit\)} \
            3000 $mark]}
        # Meanwhile a gateway from another address links as ever.
        set g3 [::fed::start $d3]
        set h2 [::fed::host $d2]
        set h3 [::fed::host $d3]
        set app [::fed::app $h3 capped]
        check "gw2's host sees gw3's entry through the link" \
            {[::fed::wait_name $h2 capped@[exec id -un]@gw3.test 10000]}

        # A TLS record header announcing 16 KiB, then a byte every
        # 500 ms of it (OpenSSL waits for the whole record): closed at
        # 10 s in all.
        set t [socket -myaddr 127.0.0.8 127.0.0.2 $p2]
        fconfigure $t -blocking 0 -translation binary
        defer [list catch [list close $t]]
        puts -nonewline $t [binary format H* 1603014000]
        flush $t
        set t0 [clock milliseconds]
        set gone 0
        while {[clock milliseconds] - $t0 < [slow 16000]} {
            if {[catch {puts -nonewline $t \x00; flush $t}] ||
                    [catch {read $t}] || [eof $t]} {
                set gone 1
                break
            }
            after 500
        }
        set took [expr {[clock milliseconds] - $t0}]
        check "the trickling set-up is closed ($took ms)" {$gone}
        check "at its total deadline, not before (10 s)" \
            {$took >= 9000 && $took < [slow 14000]}
    }

    # A mesh in which one route takes an entry back while another still
    # offers it: the entry stays, taken from the other route.  Before,
    # the remove over one route dropped it for good.  gw4 learns
    # tree@ME@gw2 through gw3 first (its direct way to gw2 is a proxy
    # that is not up yet), then directly too; then gw3's own link to gw2
    # (also through a proxy) is cut: gw3 takes it back from gw4.
    ::fed::test mesh_remove_over_one_route {
        set me [exec id -un]
        set all [list export * import * reexport yes]
        set p36 [::fed::free_port 6]
        set p47 [::fed::free_port 7]
        set d2 [::fed::conf 2 -remotes [concat [::fed::remote gw3 {*}$all] \
            [::fed::remote gw4 {*}$all]]]
        set d3 [::fed::conf 3 -remotes [concat \
            [::fed::remote gw2 address 127.0.0.6:$p36 {*}$all] \
            [::fed::remote gw4 {*}$all]]]
        set d4 [::fed::conf 4 -remotes [concat \
            [::fed::remote gw2 address 127.0.0.7:$p47 {*}$all] \
            [::fed::remote gw3 {*}$all]]]
        set proxy [newfile proxy].tcl
        write_file $proxy {
            lassign $argv lhost lport rhost rport
            proc done {c r args} { catch {close $c}; catch {close $r} }
            proc accept {c a p} {
                global rhost rport
                set r [socket $rhost $rport]
                fconfigure $c -translation binary -blocking 0
                fconfigure $r -translation binary -blocking 0
                fcopy $c $r -command [list done $c $r]
                fcopy $r $c -command [list done $c $r]
            }
            socket -server accept -myaddr $lhost $lport
            puts ready
            flush stdout
            after 120000 exit
            vwait forever
        } 0644
        set g2 [::fed::start $d2]
        set x36 [spawn [info nameofexecutable] $proxy 127.0.0.6 $p36 \
                     127.0.0.2 [::fed::port 2]]
        check_equal "gw3's way to gw2 is up" ready [readline $x36 5000]
        set g3 [::fed::start $d3]
        set h2 [::fed::host $d2]
        set h3 [::fed::host $d3]
        set tree [::fed::app $h2 tree]
        set t tree@$me@gw2.test
        check "gw3's host has it" {[::fed::wait_name $h3 $t 10000]}
        set g4 [::fed::start $d4]
        set h4 [::fed::host $d4]
        check "gw4's host has it through gw3" {[::fed::wait_name $h4 $t 10000]}
        check_equal "its path says so" "gw2.test gw3.test" \
            [::fed::field [::fed::entry $h4 $t] path]
        set x47 [spawn [info nameofexecutable] $proxy 127.0.0.7 $p47 \
                     127.0.0.2 [::fed::port 2]]
        check_equal "gw4's direct way to gw2 is up" ready [readline $x47 5000]
        check "gw4 links to gw2 directly" \
            {[gw_wait_log $g4 {remote gw2: linked} [slow 20000]]}
        set w4 [::fed::watch $h4 *]
        check "gw4's watch sees it" {[::fed::watch_wait $w4 add $t]}
        stop $x36 KILL
        check "gw3 loses gw2" {[gw_wait_log $g3 {remote gw2 .*link lost} 10000]}
        check "gw4 takes it by the direct way" {[wait_until {
            [::fed::field [::fed::entry $h4 $t] path] eq "gw2.test"} \
            [slow 10000] 100]}
        # Its owner changed (another route, another path): watchers are
        # told it went and came, in that order, and it stays.
        set last ""
        foreach l [app_lines $w4] {
            if {![catch {lindex $l 1} n] && $n eq $t} { set last [lindex $l 0] }
        }
        check_equal "gw4's watch: it is there (last event add)" add $last
        check "gw4's host has it" {[::fed::has $h4 $t]}
        check "and gw3's host gets it back, through gw4" {[wait_until {
            [::fed::field [::fed::entry $h3 $t] path] eq "gw2.test gw4.test"} \
            [slow 10000] 100]}
    }

    # A renewed certificate used never to be served: a reload kept the
    # context made at start whenever the files had the same names, and
    # with [gateway] user the gateway could not read the key again at
    # all.
    ::fed::test cert_renewal {
        set t [tempdir renewed 0755]
        foreach {f perm} {gw2.crt 0644 gw2.key 0600 ca.crt 0644} {
            file copy -force -- [::fed::cert [file rootname $f] [string range [file extension $f] 1 end]] $t/$f
            file attributes $t/$f -permissions $perm
        }
        set user ""
        if {[exec id -u] == 0 && ![catch {exec id -u nobody}]} { set user nobody }
        set d2 [::fed::conf 2 -certdir $t -user $user \
                    -remotes [::fed::remote gw3 export * import *]]
        set d3 [::fed::conf 3 -remotes [::fed::remote gw2 export * import *]]
        set g2 [::fed::start $d2]
        set g3 [::fed::start $d3]
        if {$user ne ""} {
            check "gw2 serves as $user" {[regexp "running as $user" [gw_log $g2]]}
        }
        set h2 [::fed::host $d2]
        set h3 [::fed::host $d3]
        set calc [::fed::app $h2 calc]
        set e calc@$me@gw2.test
        check "gw3's host sees $e" {[::fed::wait_name $h3 $e 10000]}
        set old [::fed::serial $t/gw2.crt]
        check_equal "gw2 presents its certificate" $old [::fed::served_serial 2]

        # Renewed in place, then SIGHUP.
        set new [::fed::renew $t 2]
        check "the new certificate has another serial" {$new ne $old}
        set m2 [gw_log_mark $g2]
        set m3 [gw_log_mark $g3]
        gw_signal $g2 HUP
        check "gw2 reloads" {[gw_wait_log $g2 "configuration reloaded from $d2" 10000 $m2]}
        check "no reload failed" {![regexp {reload failed} [string range [gw_log $g2] $m2 end]]}
        check "its listener presents the new certificate" {[wait_until {
            [::fed::served_serial 2] eq $new} [slow 5000] 200]}
        check "gw3 links to it again" {[gw_wait_log $g3 {remote gw2: linked} [slow 15000] $m3]}
        check "and its host sees $e again" {[::fed::wait_name $h3 $e 15000]}

        # A certificate whose key was not renewed with it: the reload
        # fails, saying why, and the one in use stays.
        set bad [::fed::renew $t 2 cert]
        set m2 [gw_log_mark $g2]
        gw_signal $g2 HUP
        check "a certificate without its key: the reload fails" {[gw_wait_log $g2 "reload failed: keeping the configuration in use" 10000 $m2]}
        check "saying why" {[gw_wait_log $g2 \
            "reload: key $t/gw2.key does not match the certificate $t/gw2.crt" 1000 $m2]}
        check_equal "the listener still presents the good one" $new [::fed::served_serial 2]
        check "gw3's host still sees $e" {[::fed::wait_name $h3 $e 5000]}
        check "gw2 alive" {[alive [gw_pid $g2]]}
    }

    ::fed::test mesh_second_path {
        set me [exec id -un]
        set all [list export * import * reexport yes]
        set d2 [::fed::conf 2 -remotes [concat [::fed::remote gw3 {*}$all] [::fed::remote gw4 {*}$all]]]
        set d3 [::fed::conf 3 -remotes [concat [::fed::remote gw2 {*}$all] [::fed::remote gw4 {*}$all]]]
        set d4 [::fed::conf 4 -remotes [concat [::fed::remote gw2 {*}$all] [::fed::remote gw3 {*}$all]]]
        set g2 [::fed::start $d2]
        set g3 [::fed::start $d3]
        set h2 [::fed::host $d2]
        set h3 [::fed::host $d3]
        set tree [::fed::app $h2 tree]
        set t tree@$me@gw2.test
        check "gw3's host has it" {[::fed::wait_name $h3 $t 10000]}
        # gw2 stopped: gw4 can learn it only through gw3.
        gw_signal $g2 STOP
        set g4 [::fed::start $d4]
        set h4 [::fed::host $d4]
        check "gw4's host has it, through gw3" {[::fed::wait_name $h4 $t 10000]}
        gw_signal $g2 CONT
        check "gw4 links to gw2 directly" {[gw_wait_log $g4 {remote gw2: linked} 10000]}
        gw_signal $g3 KILL
        check "gw4 asks gw2 again when gw3 goes" {[gw_wait_log $g4 {remote gw3: dropped} 10000]}
        pause 1500
        check "gw4's host still has it (offered by gw2 directly)" {[::fed::has $h4 $t]}
        check_equal "lookup on gw4's host" "[::fed::field [gw_row $h2 tree] port] 127.0.0.2" [::fed::lookup $h4 $t]
    }

    ::fed::test lying_snapshot_in_pieces {
        # "gw5" (openssl s_server with gw5's certificate) offers pieces in
        # its Hello, then lies: a piece before any watch was asked, one
        # piece of one entry after it, and a reply counting two.  gw6
        # takes no piece it did not ask for, ends the link over the
        # count, and keeps nothing of it.
        set e {{name %s serial 1 base %s port %d host 127.0.0.5 data {%d 127.0.0.5} scope global pid 1 since 1 path gw5.test}}
        set early [list [format [lindex $e 0] early@root@gw5.test early 4010 4010]]
        set late [list [format [lindex $e 0] late@root@gw5.test late 4011 4011]]
        set data "[list [list vers 3]]\n"
        append data "[list [list async 1 [list [list Gateway/Event fed snap $early]]]]\n"
        append data "[list [list reply 1 [list return -code 0 {gateway commgwd name gw5.test features pieces}]]]\n"
        append data "[list [list async 2 [list [list Gateway/Event fed snap $late]]]]\n"
        append data "[list [list reply 2 [list return -code 0 2]]]\n"
        set p5 [::fed::free_port 5]
        set log [newfile s_server].log
        set pid [exec openssl s_server -accept 127.0.0.5:$p5 -naccept 1 \
                     -cert [::fed::cert gw5 crt] -key [::fed::cert gw5 key] \
                     -CAfile [::fed::cert ca crt] -Verify 1 -quiet << $data >& $log &]
        remember $pid
        defer [list ::t::kill_proc $pid]
        check "s_server listens" {[wait_until {
            ![catch {exec ss -Hltn "sport = :$p5"} o] && [string match *LISTEN* $o]} [slow 5000] 50]}
        set d6 [::fed::conf 6 -listen 0 \
                    -remotes [::fed::remote g5 address 127.0.0.5:$p5 peer_name gw5.test export * import *]]
        set g6 [::fed::start $d6]
        set h6 [::fed::host $d6]
        check "the count is checked: one entry came of two (the unasked piece not counted)" {
            [::fed::wait_log $g6 {remote g5.*its snapshot came incomplete \(1 entries of 2\)} 15000]}
        check "nothing of it is taken" {
            [lsearch -glob [::fed::names $h6] *@gw5.test] < 0}
        check "gw6 alive" {[alive [gw_pid $g6]]}
    }

    ::fed::test certificate_name_not_a_host_name {
        # Its certificate would call the gateway "gw 8.test": refused by
        # --check-config and at start, saying why.
        set d8 [::fed::conf 8 -cert spacename]
        set r [run [gw_path] --config-dir $d8 --check-config]
        check "--check-config fails" {[dict get $r code] != 0}
        check_regexp "... saying the name is no host name" \
            {calls this gateway "gw 8\.test", which is not a host name} \
            "[dict get $r out][dict get $r err]"
    }

    ::fed::test snapshot_in_pieces {
        set d2 [::fed::conf 2 -quota 1000 -remotes [concat [::fed::remote gw3 export * import *] [::fed::remote gw4 export * import *]]]
        set d3 [::fed::conf 3 -gateway "link_max_message = 65536\n" \
                    -remotes [::fed::remote gw2 export * import *]]
        set g2 [::fed::start $d2]
        set h2 [::fed::host $d2]
        set names {}
        for {set i 0} {$i < 600} {incr i} { lappend names [format piece-%03d $i] }
        set ch [gw_capp $h2 --scope global {*}$names]
        check "600 global names registered on gw2's host" {
            [wait_until {[app_count $ch "registered *"] >= 600} [slow 60000] 50]}
        set g3 [::fed::start $d3]
        set h3 [::fed::host $d3]
        # Whole, the snapshot would be one message of about 100 KB, which
        # gw3 refuses: the link would fail at every try.
        check "gw3 links and takes all 600" {
            [gw_wait_log $g3 {remote gw2: linked, 600 entries offered} 20000]}
        check "gw2 gave them in pieces" {
            [regexp {remote gw3 watches: 600 entries given, in pieces} [gw_log $g2]]}
        check "no message over the limit on gw3" {![regexp {longer than the limit} [gw_log $g3]]}
        check_equal "gw3's host lists the 600" 600 [llength [::fed::names $h3 piece-*]]
        # Events flow once the snapshot is in.
        set late [::fed::app $h2 late-piece]
        check "a name registered later crosses too" {
            [::fed::wait_name $h3 late-piece@$me@gw2.test 10000]}
        # What one remote may make a gateway hold is bounded: gw4 takes
        # at most 64 KiB of snapshot, and says so when gw2's is more.
        set d4 [::fed::conf 4 -gateway "link_max_snapshot = 65536\n" \
                    -remotes [::fed::remote gw2 export * import *]]
        set g4 [::fed::start $d4]
        check "gw4 ends a snapshot beyond link_max_snapshot, saying so" {
            [gw_wait_log $g4 {remote gw2.*larger than link_max_snapshot \(65536 bytes\)} 15000]}
        check "gw2 and gw4 alive" {[alive [gw_pid $g2]] && [alive [gw_pid $g4]]}
    }

    ::fed::test remote_lookup_flood {
        set d2 [::fed::conf 2 -quota 1000 -remotes [::fed::remote gw3 export * import *]]
        set g2 [::fed::start $d2]
        set h2 [::fed::host $d2]
        set names {}
        for {set i 0} {$i < 300} {incr i} { lappend names [format flood-%03d $i] }
        set ch [gw_capp $h2 --scope global {*}$names]
        check "300 global names registered on gw2's host" {
            [wait_until {[app_count $ch "registered *"] >= 300} [slow 60000] 50]}
        set port [::fed::field [gw_row $h2 flood-000] port]
        # The comm handshake, then 20,000 lookups in one go: bare names,
        # names as they travel (NAME@USER@gw2.test), and names nobody has.
        set n 20000
        set in [newfile flood].in
        set f [open $in w]
        puts $f "{3 2} 0"
        set nhave 0
        set nnone 0
        for {set i 1} {$i <= $n} {incr i} {
            switch [expr {$i % 3}] {
                0 { set q [format flood-%03d [expr {$i % 300}]]; incr nhave }
                1 { set q [format flood-%03d@%s@gw2.test [expr {$i % 300}] $me]; incr nhave }
                2 { set q nobody-$i; incr nnone }
            }
            puts $f [list [list send $i [list Commreg/Lookup $q]]]
        }
        close $f
        # -quiet implies -ign_eof: s_client reads replies until it is
        # stopped, by PID (spawn).
        set sc [spawn sh -c "exec openssl s_client -quiet -connect [::fed::addr 2] \
            -servername gw2.test -CAfile [::fed::cert ca crt] -cert [::fed::cert gw3 crt] \
            -key [::fed::cert gw3 key] < $in"]
        set got [list [::fed::lookup $h2 flood-001]]
        set polls 0
        set deadline [expr {[clock milliseconds] + [slow 60000]}]
        set ok 0
        set bad 0
        set missing 0
        while {[clock milliseconds] < $deadline && $ok + $missing < $n} {
            if {[gets $sc line] < 0} {
                if {[eof $sc]} break
                # Meanwhile the gateway's own users are served.
                if {[incr polls] % 50 == 0} { lappend got [::fed::lookup $h2 flood-001] }
                after 20
                continue
            }
            if {![regexp {^\{reply ([0-9]+) \{return -code ([01]) (.*)\}\}$} $line -> ser code res]} continue
            set want [expr {$ser % 3}]
            if {$want == 2} {
                if {$code == 1} { incr missing } else { incr bad }
            } elseif {$code == 0 && $res eq "{$port 127.0.0.2}"} {
                incr ok
            } else {
                incr bad
                if {$bad < 3} { say "  unexpected: $line" }
            }
        }
        check_equal "every lookup of a name it has answered with the name's port" \
            $nhave $ok
        check_equal "every lookup of a name nobody has refused" $nnone $missing
        check_equal "no wrong answer" 0 $bad
        set local [::fed::lookup $h2 flood-001]
        check_regexp "a local lookup after it" "^$port " $local
        check "every local lookup during the flood answered alike" {
            [lsearch -exact -not $got $local] < 0}
        say "       ([llength $got] local lookups during the flood)"
        check "gw2 alive" {[alive [gw_pid $g2]]}
    }
} 290
