# Helpers of federation.test.tcl: gateways linked over TLS (docs/config.md
# [gateway] listen/certificate/key/ca and [remote NAME]), and "hosts" (a
# user registry with its own HOME and TCL_COMM_CONFIG_DIR, i.e. its own
# gateway) on this one machine.  Sourced after lib.tcl; everything here
# builds on its gw_* procs, so processes are ended by PID when the scope
# that started them ends.
#
# Gateway N is gwN.test and listens on 127.0.0.N (Linux routes all of
# 127/8 to lo); its certificate comes from tests/tools/mkcerts.sh.

namespace eval ::fed {
    variable certs ""        ;# directory of mkcerts.sh's output, made once
    variable ports           ;# N -> listen port of gwN in this run
    array set ports {}
}

# The certificates of this run (tests/tools/mkcerts.sh), made once.
# Raises an error with the script's output when it fails.
proc ::fed::certs {} {
    variable certs
    if {$certs ne "" && [file isdirectory $certs]} { return $certs }
    set d [tempdir certs 0755]
    set r [run -timeout 120 bash [file join [src_dir] tests tools mkcerts.sh] $d]
    if {[dict get $r code] != 0 || [dict get $r out] ne "" || [dict get $r err] ne ""} {
        error "mkcerts.sh $d: exit [dict get $r code]\nstdout: [dict get $r out]\nstderr: [dict get $r err]"
    }
    set certs $d
    return $d
}

proc ::fed::cert {base ext} {
    return [file join [certs] $base.$ext]
}

# A TCP port nothing listens on at 127.0.0.N (at this instant).
proc ::fed::free_port {n} {
    set s [socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.$n 0]
    set port [lindex [fconfigure $s -sockname] 2]
    close $s
    return $port
}

# The listen port of gwN for this run (chosen once, so a restarted
# gateway and the [remote] sections pointing at it agree).
proc ::fed::port {n} {
    variable ports
    if {![info exists ports($n)]} { set ports($n) [free_port $n] }
    return $ports($n)
}

proc ::fed::addr {n} { return 127.0.0.$n:[port $n] }

# remote NAME ?KEY VALUE ...?: one [remote NAME] section as a dict;
# defaults: address of gwN (NAME gwN), peer_name gwN.test, nothing
# exported or imported, upstream no, reexport no.
proc ::fed::remote {name args} {
    set d [dict create address "" peer_name "" export "" import "" \
               upstream no reexport no]
    if {[regexp {^gw([0-9]+)$} $name -> n]} {
        dict set d address [addr $n]
        dict set d peer_name gw$n.test
    }
    foreach {k v} $args {
        if {![dict exists $d $k]} { error "fed::remote: unknown key $k" }
        dict set d $k $v
    }
    return [list $name $d]
}

# conf N ?-cert BASE? ?-ca BASE? ?-listen 0|1? ?-lookup_ms MS?
#        ?-remotes {NAME DICT ...}? ?-global 0|1? ?-certdir DIR? ?-user U?
#        ?-gateway LINES? ?-quota N?
# A configuration directory for gateway N: its socket, TLS listener on
# 127.0.0.N, certificate BASE.crt/.key (default gwN), CA (default ca),
# all in DIR (default the run's certificates), [gateway] user U (default
# none), the rule allowing scope global, and the [remote] sections (from
# fed::remote); LINES more of [gateway], a [quota] default of N.  Files root's (we are root in CI) 0644, directory 0755.
proc ::fed::conf {n args} {
    set o [dict merge [dict create -cert gw$n -ca ca -listen 1 -lookup_ms 1500 \
                           -remotes {} -global 1 -certdir "" -user "" \
                           -gateway "" -quota ""] $args]
    set cd [dict get $o -certdir]
    if {$cd eq ""} { set cd [certs] }
    set gw "\[gateway\]\nsocket = @SOCKET@\n"
    if {[dict get $o -user] ne ""} { append gw "user = [dict get $o -user]\n" }
    if {[dict get $o -listen]} { append gw "listen = [addr $n]\n" }
    append gw "certificate = [file join $cd [dict get $o -cert].crt]\n"
    append gw "key = [file join $cd [dict get $o -cert].key]\n"
    append gw "ca = [file join $cd [dict get $o -ca].crt]\n"
    append gw "lookup_timeout_ms = [dict get $o -lookup_ms]\n"
    append gw [dict get $o -gateway]
    set files [dict create 00-gateway.ini $gw]
    if {[dict get $o -quota] ne ""} {
        dict set files 20-quota.ini "\[quota\]\ndefault = [dict get $o -quota]\n"
    }
    if {[dict get $o -global]} {
        dict set files 10-policy.ini "\[rule global\]\naction = allow\nscopes = global\n"
    }
    set rem ""
    foreach {name d} [dict get $o -remotes] {
        append rem "\[remote $name\]\n"
        dict for {k v} $d {
            if {$v eq ""} continue
            append rem "$k = $v\n"
        }
        append rem "\n"
    }
    if {$rem ne ""} { dict set files 30-remotes.ini $rem }
    return [gw_confdir $files]
}

# Does something accept TCP connections on gwN's listen address?
proc ::fed::listening {n} {
    if {[catch {socket 127.0.0.$n [port $n]} s]} { return 0 }
    close $s
    return 1
}

# Check the configuration, then start the gateway and wait for "ready".
# Returns its channel; raises an error (with the output) otherwise.
proc ::fed::start {dir} {
    set r [run [gw_path] --config-dir $dir --check-config]
    if {[dict get $r code] != 0} {
        error "commgwd --check-config $dir: [dict get $r out][dict get $r err]"
    }
    return [gw_start $dir]
}

# A "host": our own user with HOME and TCL_COMM_CONFIG_DIR for the
# gateway configured in DIR, and its registry linked to that gateway.
# Returns the user dict of lib.tcl (gw_user) plus rp, the registry's PID.
proc ::fed::host {dir} {
    set u [gw_user "" $dir]
    set rp [gw_registry $u]
    if {![gw_linked $u $rp 10000]} {
        error "the registry of HOME [dict get $u home] did not link to the gateway of $dir:\n[daemon_log $rp]"
    }
    dict set u rp $rp
    return $u
}

# capp on host U registering NAME with SCOPE (default global); waits for
# its "registered" line.  Returns the channel (app_kill to end it).
proc ::fed::app {u name {scope global}} {
    set ch [gw_capp $u --scope $scope $name]
    if {![gw_app_wait $ch "registered $name *" 10000]} {
        error "capp $name (scope $scope) did not register: [app_lines $ch]\n[spawn_err $ch]"
    }
    return $ch
}

# Names in U's `commreg list`.
proc ::fed::names {u {pattern *}} {
    return [gw_list_names $u $pattern]
}

proc ::fed::has {u name} {
    return [expr {[lsearch -exact [names $u] $name] >= 0}]
}

# Wait (bounded) until NAME is in U's list (present 1) or not (present 0).
proc ::fed::wait_name {u name {ms 8000} {present 1}} {
    return [wait_until {[::fed::has $u $name] == $present} [slow $ms] 100]
}

# KEY of dict D, or "" when D has none (an entry not found is {}).
proc ::fed::field {d key} {
    if {[catch {dict exists $d $key} ok] || !$ok} { return "" }
    return [dict get $d $key]
}

# The entry dict (name port host scope ...) of NAME in the table of U's
# registry (Commreg/List, which has every field), or {}.
proc ::fed::entry {u name} {
    set port [file_port [dict get $u home]]
    if {$port eq "" || [catch {reg_list $port} l]} { return {} }
    foreach e $l {
        if {[dict get $e name] eq $name} { return $e }
    }
    return {}
}

# `commreg lookup NAME` on U: "PORT HOST", or "error: MESSAGE".
proc ::fed::lookup {u name} {
    set r [gw_commreg $u lookup $name]
    if {[dict get $r code] != 0} {
        return "error: [string trim [dict get $r err]]"
    }
    return [string trim [dict get $r out]]
}

# `commreg watch PATTERN` on U, its lines kept as an app's (app_lines).
proc ::fed::watch {u {pattern *}} {
    set ch [spawn {*}[gw_cmd $u [gw_bin $u commreg] --home [dict get $u home] \
                          watch $pattern]]
    set ::t::applines($ch) {}
    set ::t::appinfo($ch) [dict create kind watch names {} \
        pid [spawn_pid $ch] t0 [clock milliseconds] eof 0]
    fileevent $ch readable [list ::t::app_drain $ch]
    return $ch
}

# The first line "OP NAME PORT HOST" of watch CH (from line FROM) for
# NAME, as a list, or {}.
proc ::fed::watch_line {ch op name {from 0}} {
    foreach l [app_lines $ch $from] {
        if {[catch {lindex $l 0} w0] || [catch {lindex $l 1} w1]} continue
        if {$w0 eq $op && $w1 eq $name} { return $l }
    }
    return {}
}

proc ::fed::watch_wait {ch op name {ms 8000} {from 0}} {
    return [wait_until {[llength [::fed::watch_line $ch $op $name $from]] > 0} [slow $ms] 50]
}

# Lines of gateway CH's log from offset FROM matching the regexp RE (nocase)
# and naming a peer (an address or a gateway name), leaving out lines
# about connecting out (the addresses it dials itself).
proc ::fed::log_lines {ch re {from 0}} {
    set out {}
    foreach l [split [string range [gw_log $ch] $from end] \n] {
        if {![regexp -nocase -- $re $l]} continue
        if {![regexp -nocase {127\.0\.0\.[0-9]+|gw[0-9]+\.test|other\.test|\[::1\]} $l]} continue
        if {[regexp -nocase {connection refused|econnrefused} $l]} continue
        lappend out $l
    }
    return $out
}

# Wait until such a line is logged; it is shown in the output (what the
# gateway said is worth reading when the match is loose).
proc ::fed::wait_log {ch re {ms 8000} {from 0}} {
    set ok [wait_until {[llength [::fed::log_lines $ch $re $from]] > 0} [slow $ms] 50]
    if {$ok} {
        say "       (logged: [lindex [::fed::log_lines $ch $re $from] 0])"
    }
    return $ok
}

# Skip the whole file unless what every federation test needs is here
# (commgwd, openssl for the certificates, loopback addresses beyond
# 127.0.0.1) and the tools ARGS name: capp (built here) or a program on
# PATH (prlimit ...).
proc ::fed::require {args} {
    if {![file executable [gw_path]]} {
        skip "commgwd is not built ([gw_path])"
    }
    if {[auto_execok openssl] eq ""} {
        skip "openssl is not on PATH (apt-get install openssl): the certificates cannot be made"
    }
    foreach tool $args {
        if {$tool eq "capp"} {
            if {[capp_path] eq ""} {
                skip "capp is not built ([file join [tools_dir] capp])"
            }
        } elseif {[auto_execok $tool] eq ""} {
            skip "$tool not installed"
        }
    }
    if {[catch {free_port 2}]} {
        skip "cannot bind 127.0.0.2 (loopback addresses beyond 127.0.0.1 are needed)"
    }
}

# gw2 -> gw3 <- gw4, gw3 in the middle passing on both ways: sets the
# caller's d2 d3 d4 (configurations) and g2 g3 g4 (running gateways).
proc ::fed::middle_tree {} {
    upvar 1 d2 d2 d3 d3 d4 d4 g2 g2 g3 g3 g4 g4
    set leaf [list export * import * upstream yes]
    set d2 [conf 2 -remotes [remote gw3 {*}$leaf]]
    set d4 [conf 4 -remotes [remote gw3 {*}$leaf]]
    set d3 [conf 3 -remotes [concat \
        [remote gw2 export * import * reexport yes] \
        [remote gw4 export * import * reexport yes]]]
    set g2 [start $d2]
    set g3 [start $d3]
    set g4 [start $d4]
}

# fed::test NAME BODY: lib.tcl's test, unless $FED_ONLY (glob patterns
# of scenario names, for running a part by hand) leaves it out.
proc ::fed::test {name body} {
    if {[info exists ::env(FED_ONLY)] && $::env(FED_ONLY) ne ""} {
        set hit 0
        foreach p $::env(FED_ONLY) {
            if {[string match $p $name]} { set hit 1 }
        }
        if {!$hit} { say "== $name (left out: FED_ONLY)"; return }
    }
    uplevel 1 [list ::t::test $name $body]
}

# Run `openssl s_client` against gwN's listener with ARGS (e.g. -cert
# and -key); dict code out err.  Its stdin is empty: it ends once the
# handshake is over (or refused).
proc ::fed::s_client {n args} {
    return [run -timeout 10 openssl s_client -connect [addr $n] \
                -servername gw$n.test -CAfile [cert ca crt] -verify_return_error \
                {*}$args]
}

# A plain TCP connection to gwN's listener writing a comm handshake
# line; returns what happened next within MS ms: "eof", "timeout" or
# {data BYTES eof|timeout} (whatever came back first), or {refused MSG}
# when nothing listens.
proc ::fed::plain_probe {n {ms 5000}} {
    if {[catch {socket 127.0.0.$n [port $n]} s]} { return [list refused $s] }
    fconfigure $s -blocking 0 -translation binary -buffering none
    catch {puts -nonewline $s "[list {3 2} 0]\n"; flush $s}
    set got ""
    set deadline [expr {[clock milliseconds] + $ms}]
    set outcome timeout
    while {[clock milliseconds] < $deadline} {
        if {[catch {read $s} data]} { set outcome eof; break }
        append got $data
        if {[eof $s]} { set outcome eof; break }
        pause 20
    }
    catch {close $s}
    if {$got ne ""} { return [list data $got $outcome] }
    return $outcome
}

# openssl ARG..., its output; raises an error with it when it fails.
proc ::fed::ossl {args} {
    set r [run -timeout 60 openssl {*}$args]
    if {[dict get $r code] != 0} {
        error "openssl $args: [dict get $r out][dict get $r err]"
    }
    return [dict get $r out]
}

# The serial of the certificate in FILE, as "serial=HEX".
proc ::fed::serial {file} {
    return [string trim [ossl x509 -in $file -noout -serial]]
}

# renew DIR N ?both|cert?: gwN's certificate renewed in DIR: a new key
# and a new certificate from the run's CA with the same name (CN and DNS
# gwN.test, IP 127.0.0.N) and a new serial, put in place of DIR/gwN.crt
# and DIR/gwN.key (modes 0644, 0600) by rename, as an administrator
# would.  With "cert" only the certificate is replaced: the key in place
# no longer goes with it.  Returns the new serial.
proc ::fed::renew {dir n {what both}} {
    set c [certs]
    set w [tempdir renew 0700]
    write_file $w/ext [join [list \
        "basicConstraints = critical,CA:FALSE" \
        "keyUsage = critical,digitalSignature,keyAgreement" \
        "extendedKeyUsage = serverAuth,clientAuth" \
        "subjectAltName = DNS:gw$n.test,IP:127.0.0.$n" ""] \n]
    ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $w/new.key
    ossl req -new -key $w/new.key -out $w/new.csr -subj "/O=commreg tests/CN=gw$n.test"
    set sn 0x[string trim [ossl rand -hex 16]]
    ossl x509 -req -in $w/new.csr -CA $c/ca.crt -CAkey $c/ca.key \
        -set_serial $sn -days 30 -sha256 -extfile $w/ext -out $w/new.crt
    file attributes $w/new.crt -permissions 0644
    file attributes $w/new.key -permissions 0600
    file rename -force -- $w/new.crt $dir/gw$n.crt
    if {$what eq "both"} { file rename -force -- $w/new.key $dir/gw$n.key }
    return [serial $dir/gw$n.crt]
}

# The serial of the certificate gwN's listener presents now, as
# "serial=HEX" (openssl s_client -showcerts, as gw3 with its own
# certificate), or "" when none came.
proc ::fed::served_serial {n} {
    set r [s_client $n -showcerts -cert [cert gw3 crt] -key [cert gw3 key]]
    if {![regexp -- {-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----} \
              [dict get $r out] pem]} {
        return ""
    }
    set f [newfile served].crt
    write_file $f "$pem\n" 0644
    return [serial $f]
}

namespace eval ::fed { namespace export * }
