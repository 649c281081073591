# The host gateway commgwd (docs/config.md, gateway/), as far as one user
# can see it: `--check-config` and the exact FILE:LINE message of each
# kind of mistake, a gateway that refuses to start on a broken
# configuration, and this user's own registrations through its registry:
# refused by a rule (file:line and message), by the default for scope
# global, by the quota, by the port check (nothing listens), allowed by
# the default and by a rule; the Tcl package's errors; SIGHUP withdrawing
# what a stricter policy refuses (the holders are told) and keeping the
# old policy when the new one is broken; a restarted gateway getting this
# user's entries back from its registry by itself.
#
# --check-config also judges the TLS files as the gateway will load them
# (a key of another certificate, a file that is no PEM) and every
# directory above the configuration and the TLS files (writable by
# others, a symbolic link; /tmp's sticky bit is fine).
#
# Runs as any user (as root, too: then root is the user).  What needs a
# second user (visibility, other uids' ports, groups, privilege drop) is
# in gateway_reload.test.tcl, which needs root.
source [file join [file dirname [info script]] lib.tcl]
source [file join [file dirname [info script]] federation_lib.tcl]

proc gw_conf_basic {{rules ""} {quota ""}} {
    set files [dict create 00-gateway.ini "\[gateway\]\nsocket = @SOCKET@\n"]
    if {$rules ne ""} { dict set files 10-policy.ini $rules }
    if {$quota ne ""} { dict set files 20-quota.ini $quota }
    return [gw_confdir $files]
}

# commgwd --check-config on DIR: dict code out err.
proc check_config {dir} {
    return [run [gw_path] --config-dir $dir --check-config]
}

# A configuration listening for other gateways with the TLS files CERT,
# KEY and CA of directory T.
proc tls_conf {t cert key ca} {
    return [gw_confdir [dict create 00-gateway.ini \
        "\[gateway\]\nsocket = @SOCKET@\nlisten = 127.0.0.1:7450\ncertificate = $t/$cert\nkey = $t/$key\nca = $t/$ca\n"]]
}

# A listener of ours (this process) on 127.0.0.1: its port.
proc own_listener {} {
    set s [socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.1 0]
    defer [list close $s]
    return [lindex [fconfigure $s -sockname] 2]
}

main {
    if {![file executable [gw_path]]} {
        skip "commgwd is not built ([gw_path])"
    }
    set me [exec id -un]
    set myuid [exec id -u]

    test check_config_good_and_ignored_files {
        set d [gw_conf_basic "\[rule a\]\naction = deny\nports = 1-1023\n\n\[rule b\]\naction = allow\nscopes = global\nnames = pub-*\n" \
                   "\[quota\]\ndefault = 4\nuser $me = 5\n"]
        # Not read: editor files, other names, directories.
        write_file [file join $d .10-policy.ini.swp] "garbage\n" 0644
        write_file [file join $d 10-policy.ini~] "garbage\n" 0644
        write_file [file join $d README] "garbage\n" 0644
        file mkdir [file join $d sub.ini]
        set r [check_config $d]
        check_equal "exit 0" 0 [dict get $r code]
        check_equal "the OK line" "commgwd: $d: configuration OK (3 files, 2 rules, 0 remotes)\n" [dict get $r out]
        check_equal "nothing on stderr" "" [dict get $r err]
        # $TCL_COMM_CONFIG_DIR is read when --config-dir is not given.
        set r [run env TCL_COMM_CONFIG_DIR=$d [gw_path] --check-config]
        check_equal "TCL_COMM_CONFIG_DIR is read: exit 0" 0 [dict get $r code]
        check_match "and named" "commgwd: $d: configuration OK*" [dict get $r out]
        # The shipped samples load as they are (except where the users
        # and groups they name are missing on this host: 'staff',
        # 'www-data', and 'tclcomm', the gateway's own, which the
        # package makes).
        set samples [file join [src_dir] etc-tcl-comm]
        set sd [gw_confdir {}]
        foreach f [glob -directory $samples *.ini] {
            file copy -force -- $f [file join $sd [file tail $f]]
            file attributes [file join $sd [file tail $f]] -permissions 0644
        }
        set r [check_config $sd]
        if {[dict get $r code] == 0} {
            check_match "the samples load" "*configuration OK (4 files, 4 rules, 0 remotes)*" [dict get $r out]
        } else {
            check_regexp "the samples fail only for a user or group missing here" \
                {^(commgwd: [^\n]*: unknown (user|group) "(staff|www-data|tclcomm)"[^\n]*\n)+commgwd: [^\n]*: configuration refused\n$} \
                [dict get $r err]
        }
    }

    test check_config_each_mistake_exactly {
        set bad "nosuch-[pid]-x"
        # name -> {file text expected-line-after-"commgwd: DIR/FILE:"}
        set cases [list \
            unknown_key [list 10-policy.ini "\[rule r1\]\naction = deny\nportz = 5\n" \
                             {3: unknown key "portz" in [rule r1]}] \
            bad_port_range [list 10-policy.ini "; ports\n\[rule r2\]\naction = deny\nports = 2000-1000\n" \
                             {4: bad port range "2000-1000" in [rule r2] (N or LO-HI, 1..65535)}] \
            duplicate_section [list 20-more.ini "; again\n\n\[gateway\]\nmax_connections = 5\n" \
                             "3: duplicate section \[gateway\] (first at @DIR@/00-gateway.ini:1)"] \
            unknown_user [list 10-policy.ini "\[rule r3\]\naction = allow\nusers = $bad\n" \
                             "3: unknown user \"$bad\" in \[rule r3\]"] \
            unknown_group [list 10-policy.ini "\[rule r4\]\naction = allow\ngroups = $bad\n" \
                             "3: unknown group \"$bad\" in \[rule r4\]"] \
            bad_scope [list 10-policy.ini "\[rule r5\]\naction = allow\nscopes = planet\n" \
                             {3: unknown scope "planet" in [rule r5] (host or global)}] \
            bad_action [list 10-policy.ini "\[rule r6\]\naction = alow\n" \
                             {2: bad action "alow" in [rule r6] (allow or deny)}] \
            unknown_section [list 10-policy.ini "\[gatway\]\nsocket = /x\n" \
                             {1: unknown section [gatway]}] \
            bad_number [list 10-policy.ini "\[quota\]\ndefault = 12x\n" \
                             {2: bad number "12x" for default in [quota]}] \
            colon_syntax [list 10-policy.ini "\[rule r7\]\naction = deny\nports: 5\n" \
                             {3: expected KEY = VALUE, not "ports: 5"}] \
        ]
        foreach {name c} $cases {
            lassign $c file text expected
            set d [gw_conf_basic]
            gw_write $d $file $text
            set expected [string map [list @DIR@ $d] $expected]
            set r [check_config $d]
            check_equal "$name: exit 1" 1 [dict get $r code]
            check_equal "$name: the one line, then refused" \
                "commgwd: $d/$file:$expected\ncommgwd: $d: configuration refused\n" \
                [dict get $r err]
            check_equal "$name: nothing on stdout" "" [dict get $r out]
        }
        # Every mistake is reported, not only the first, in file order.
        set d [gw_conf_basic "\[rule x\]\nacton = allow\nports = 0-5\n" "\[quota\]\nuser $bad = 3\n"]
        set r [check_config $d]
        check_equal "several mistakes: exit 1" 1 [dict get $r code]
        set lines [split [string trimright [dict get $r err] \n] \n]
        check_set "several mistakes: all of them" [list \
            "commgwd: $d/10-policy.ini:2: unknown key \"acton\" in \[rule x\]" \
            "commgwd: $d/10-policy.ini:1: \[rule x\] has no action (action = allow or action = deny)" \
            "commgwd: $d/10-policy.ini:3: bad port range \"0-5\" in \[rule x\] (N or LO-HI, 1..65535)" \
            "commgwd: $d/20-quota.ini:2: unknown user \"$bad\" in \[quota\]" \
            "commgwd: $d: configuration refused"] $lines
    }

    test check_config_trust {
        # A group-writable file is refused, naming it and the fix.
        set d [gw_conf_basic "\[rule a\]\naction = allow\n"]
        set f [file join $d 10-policy.ini]
        file attributes $f -permissions 0664
        set r [check_config $d]
        check_equal "group-writable file: exit 1" 1 [dict get $r code]
        check_equal "group-writable file: named, with the fix" \
            "commgwd: $f: mode 0664 lets group/other write it; run: chmod go-w $f\ncommgwd: $d: configuration refused\n" \
            [dict get $r err]
        file attributes $f -permissions 0646
        set r [check_config $d]
        check_match "other-writable file: refused" "commgwd: $f: mode 0646 lets group/other write it;*" [dict get $r err]
        file attributes $f -permissions 0644
        # The directory too.
        file attributes $d -permissions 0775
        set r [check_config $d]
        check_equal "group-writable directory: exit 1" 1 [dict get $r code]
        check_match "group-writable directory: named" "commgwd: $d: mode 0775 lets group/other write in it; run: chmod go-w $d\n*" [dict get $r err]
        file attributes $d -permissions 0755
        # A symbolic link is not followed.
        set other [gw_conf_basic]
        file delete [file join $d 10-policy.ini]
        file link -symbolic [file join $d 10-policy.ini] [file join $other 00-gateway.ini]
        set r [check_config $d]
        check_equal "symlinked file: exit 1" 1 [dict get $r code]
        check_match "symlinked file: named" "commgwd: $d/10-policy.ini: is a symbolic link*" [dict get $r err]
        file delete [file join $d 10-policy.ini]
        if {$::myuid == 0} {
            # Read by root, a file must be root's.
            gw_write $d 10-policy.ini "\[rule a\]\naction = allow\n"
            exec chown 65534 $f
            set r [check_config $d]
            check_equal "as root, a file of uid 65534: refused" \
                "commgwd: $f: owned by uid 65534, not by root; run: chown root $f\ncommgwd: $d: configuration refused\n" \
                [dict get $r err]
        }
        # A missing directory is an error for the gateway.
        set r [check_config $d/nonexistent]
        check_equal "missing directory: exit 1" 1 [dict get $r code]
        check_match "missing directory: said" "commgwd: $d/nonexistent: no such directory*" [dict get $r err]
    }

    # The TLS files as the gateway will load them: --check-config used to
    # say OK to a key of another certificate, or to a certificate that is
    # no PEM, and the gateway then failed at start.
    test check_config_tls {
        if {[auto_execok openssl] eq ""} {
            say "  note: no openssl on PATH: no certificates to try"
            return
        }
        set c [::fed::certs]
        set t [tempdir tls 0755]
        foreach {f perm} {gw2.crt 0644 gw2.key 0600 gw3.key 0600 ca.crt 0644} {
            file copy -force -- $c/$f $t/$f
            file attributes $t/$f -permissions $perm
        }
        write_file $t/junk.crt "not a certificate\n" 0644
        write_file $t/junk.key "not a key either\n" 0600
        set d [tls_conf $t gw2.crt gw2.key ca.crt]
        set r [check_config $d]
        check_equal "the good set: exit 0" 0 [dict get $r code]
        check_equal "the good set: OK" "commgwd: $d: configuration OK (1 files, 0 rules, 0 remotes)\n" [dict get $r out]

        set d [tls_conf $t gw2.crt gw3.key ca.crt]
        set r [check_config $d]
        check_equal "a key of another certificate: exit 1" 1 [dict get $r code]
        check_equal "a key of another certificate: both files named" \
            "commgwd: key $t/gw3.key does not match the certificate $t/gw2.crt\ncommgwd: $d: configuration refused\n" \
            [dict get $r err]
        check_equal "nothing on stdout" "" [dict get $r out]
        # The gateway says the same, and does not start.
        set r [run -timeout 10 [gw_path] --config-dir $d]
        check_equal "the gateway with it: exit 1" 1 [dict get $r code]
        check_match "the gateway with it: the same reason" \
            "*key $t/gw3.key does not match the certificate $t/gw2.crt*" [dict get $r err]
        check_equal "the gateway with it: no ready" "" [dict get $r out]

        set d [tls_conf $t junk.crt gw2.key ca.crt]
        set r [check_config $d]
        check_equal "a certificate that is no PEM: exit 1" 1 [dict get $r code]
        check_match "a certificate that is no PEM: named, with the reason" \
            "commgwd: certificate $t/junk.crt: no PEM certificate in it (*)\ncommgwd: $d: configuration refused\n" \
            [dict get $r err]
        set d [tls_conf $t gw2.crt junk.key ca.crt]
        set r [check_config $d]
        check_match "a key that is no PEM: named" \
            "commgwd: key $t/junk.key: no PEM private key in it*" [dict get $r err]
        set d [tls_conf $t gw2.crt gw2.key junk.crt]
        set r [check_config $d]
        check_match "a CA file without a certificate: named" \
            "commgwd: ca $t/junk.crt: no PEM certificate in it*" [dict get $r err]

        # Where the TLS files are: a directory others may write.
        set d [tls_conf $t gw2.crt gw2.key ca.crt]
        file attributes $t -permissions 0777
        set r [check_config $d]
        file attributes $t -permissions 0755
        check_equal "TLS files in a world-writable directory: exit 1" 1 [dict get $r code]
        check_match "and it says which" \
            "*00-gateway.ini:5: key file $t/gw2.key: $t: mode 0777 lets group/other write in it (a directory above $t/gw2.key); run: chmod go-w $t\n*" \
            [dict get $r err]
    }

    # Every directory above the configuration (as sshd's StrictModes):
    # a parent others may write, or a symbolic link on the way, used to
    # pass.
    test check_config_parents {
        set p [tempdir above 0755]
        set d [gw_confdir_in $p etc [dict create 00-gateway.ini "\[gateway\]\nsocket = @SOCKET@\n"]]
        set r [check_config $d]
        check_equal "under a good parent: exit 0" 0 [dict get $r code]

        file attributes $p -permissions 0775
        set r [check_config $d]
        check_equal "a group-writable parent: exit 1" 1 [dict get $r code]
        check_equal "a group-writable parent: named, with the fix" \
            "commgwd: $p: mode 0775 lets group/other write in it (a directory above $d); run: chmod go-w $p\ncommgwd: $d: configuration refused\n" \
            [dict get $r err]
        # Sticky, as /tmp is (every test directory is below it): others
        # may add names there, not take or swap ours.
        file attributes $p -permissions 01777
        set r [check_config $d]
        check_equal "a sticky world-writable parent: exit 0" 0 [dict get $r code]
        file attributes $p -permissions 0755

        set l [file join [tempdir links 0755] link]
        file link -symbolic $l $p
        set r [check_config $l/etc]
        check_equal "a symbolic link above: exit 1" 1 [dict get $r code]
        check_equal "a symbolic link above: named" \
            "commgwd: $l: is a symbolic link (a directory above $l/etc); refusing to follow it\ncommgwd: $l/etc: configuration refused\n" \
            [dict get $r err]
        # The gateway will not start on it either.
        set r [run -timeout 10 [gw_path] --config-dir $l/etc]
        check_equal "the gateway on it: exit 1" 1 [dict get $r code]
    }

    test broken_config_no_start {
        set sockdir [file join [tempdir gwsock 0755] sub]
        set d [gw_confdir [dict create 00-gateway.ini "\[gateway\]\nsocket = $sockdir/gw.sock\n" \
                               10-policy.ini "\[rule r\]\naction = deny\nports = 9-x\n"] $sockdir/gw.sock]
        set r [run -timeout 10 [gw_path] --config-dir $d]
        check_equal "commgwd on a broken configuration: exit 1" 1 [dict get $r code]
        check_equal "the error said" \
            "commgwd: $d/10-policy.ini:3: bad port range \"9-x\" in \[rule r\] (N or LO-HI, 1..65535)\n" \
            [dict get $r err]
        check_equal "no ready" "" [dict get $r out]
        check "its socket (and directory) were not made" {![file exists $sockdir]}
        # A live gateway's socket is not taken over by a second one.
        set d2 [gw_conf_basic]
        set g [gw_start $d2]
        set r [run -timeout 10 [gw_path] --config-dir $d2]
        check_equal "second gateway on a served socket: exit 1" 1 [dict get $r code]
        check_match "and why" "*another gateway is serving [gw_socket $d2]*" [dict get $r err]
        check "the first still runs" {[alive [gw_pid $g]]}
    }

    test admission_of_own_registrations {
        set l1 [own_listener]
        set l2 [own_listener]
        set d [gw_conf_basic [join [list \
            "\[rule kept-port\]" "action = deny" "ports = $l1" "message = port $l1 is kept back" "" \
            "\[rule sys-names\]" "action = deny" "names = sys-*" "message = sys- names are the system's" "" \
            "\[rule pub-global\]" "action = allow" "users = $me" "names = pub-*" "scopes = global" ""] \n]]
        set g [gw_start $d]
        set u [gw_user "" $d]
        set rp [gw_registry $u]
        check "the registry links to the gateway" {[gw_linked $u $rp]}
        set pf "commreg: host gateway: refused"

        set r [gw_register $u p-kept $l1]
        check_equal "port rule: refused, exit 1" {0 1} [list [dict get $r ok] [dict get $r code]]
        check_equal "port rule: rule, file:line, message" \
            "$pf by rule \"kept-port\" ($d/10-policy.ini:1): port $l1 is kept back" [dict get $r err]

        set r [gw_register $u sys-x $l2]
        check_equal "name rule: refused" 0 [dict get $r ok]
        check_equal "name rule: rule, file:line, message" \
            "$pf by rule \"sys-names\" ($d/10-policy.ini:6): sys- names are the system's" [dict get $r err]

        set fp [free_port]
        set r [gw_register $u nobody-listens $fp]
        check_equal "nothing listens: refused" 0 [dict get $r ok]
        check_equal "nothing listens: the port check's message" \
            "$pf: the port must be a listening TCP socket of uid $myuid: nothing listens on TCP port $fp" \
            [dict get $r err]

        set r [gw_register $u other-g $l2 global]
        check_equal "scope global without a rule: refused" 0 [dict get $r ok]
        check_equal "scope global without a rule: message" "$pf: no rule allows scope global" [dict get $r err]

        set r [gw_register $u web $l2]
        check_equal "scope host, no rule: allowed" 1 [dict get $r ok]
        set r2 [gw_register $u pub-a $l2 global]
        check_equal "scope global by rule pub-global: allowed" 1 [dict get $r2 ok]
        check "the gateway logs both admissions" {[gw_wait_log $g "admitted \"web@$me\" port $l2 scope host\n"]
            && [gw_wait_log $g "admitted \"pub-a@$me\" port $l2 scope global by rule pub-global\n"]}
        set r3 [gw_register $u pub-b $l2 host]
        check_equal "pub-b scope host: the global rule does not match, default allows" 1 [dict get $r3 ok]

        set rows [gw_list $u]
        check_set "own list: own names, plain" {web pub-a pub-b} [lmap x $rows {dict get $x name}]
        check "own list: no USER column for own entries" {[lsearch -exact [lmap x $rows {dict get $x user}] $me] < 0}
        set r [gw_commreg $u lookup web]
        check_equal "lookup web: own port" "$l2 localhost" [string trim [dict get $r out]]
        set r [gw_commreg $u lookup web@$me]
        check_equal "lookup web@ME: own port" "$l2 localhost" [string trim [dict get $r out]]

        # Refused registrations left nothing behind, here or there.
        check "refused names are nowhere" {[lsearch -glob [gw_list_names $u] p-kept*] < 0
            && [lsearch -glob [gw_list_names $u] sys-*] < 0}
        check "the gateway logged the refusals" {[regexp "refused \"p-kept\" port $l1 scope host for $me: refused by rule \"kept-port\"" [gw_log $g]]}

        # Scope user never asks the gateway.
        set r [gw_register $u sys-local $fp user]
        check_equal "scope user: not judged by the gateway" 1 [dict get $r ok]
        check "scope user: the gateway never heard of it" {[string first sys-local [gw_log $g]] < 0}

        # Letting go withdraws it at the gateway too.
        stop [dict get $r3 ch]
        check "a released name leaves the own list" {[wait_until {[lsearch [::t::gw_list_names $u] pub-b] < 0} [slow 5000] 50]}
        # pub-b again: the gateway no longer holds it, so it may be had again.
        set r3 [gw_register $u pub-b $l2 host]
        check_equal "pub-b again after release" 1 [dict get $r3 ok]
        check "gateway alive" {[alive [gw_pid $g]]}

        # The sysadmin's counters: registrations admitted and refused
        # (before, Stats had only refused connections, and said 0).
        set r [run [file join [tools_dir] commcall] \
                   unix:[gw_socket $d] Commreg/Stats]
        check_equal "Stats from the gateway" 0 [dict get $r code]
        set st [string trim [dict get $r out]]
        check "admitted counts the four admissions ([dict get $st admitted])" \
            {[dict get $st admitted] == 4}
        check "registrations_refused counts the four refusals\
               ([dict get $st registrations_refused])" \
            {[dict get $st registrations_refused] == 4}
        check_equal "nothing withdrawn" 0 [dict get $st withdrawn]

        # Asking the policy without registering (sshd -T -C's idea).
        set r [run [gw_path] --config-dir $d --explain $me p-kept $l1 host]
        check_equal "explain a refusal: exit 1" 1 [dict get $r code]
        check_equal "explain names the rule and its file:line" \
            "$me p-kept port $l1 scope host: refused by rule \"kept-port\"\
             ($d/10-policy.ini:1): port $l1 is kept back" \
            [string trim [dict get $r out]]
        set r [run [gw_path] --config-dir $d --explain $me pub-z $l2 global]
        check_equal "explain an allowance: exit 0" 0 [dict get $r code]
        check_match "by rule pub-global" "*allowed by rule \"pub-global\"*" \
            [dict get $r out]
        set r [run [gw_path] --config-dir $d --explain $me x 0 host]
        check_equal "explain a bad port: exit 2" 2 [dict get $r code]
        set after [run [file join [tools_dir] commcall] \
                       unix:[gw_socket $d] Commreg/Stats]
        check_equal "explain registered nothing" [dict get $st admitted] \
            [dict get [string trim [dict get $after out]] admitted]
    }

    test quota {
        set l [own_listener]
        set d [gw_conf_basic "" "\[quota\]\ndefault = 2\n"]
        set g [gw_start $d]
        set u [gw_user "" $d]
        set rp [gw_registry $u]
        check "linked" {[gw_linked $u $rp]}
        set a [gw_register $u q1 $l]
        set b [gw_register $u q2 $l global]
        check_equal "q1 allowed" 1 [dict get $a ok]
        check_equal "q2 refused anyway (global needs a rule), not counted" 0 [dict get $b ok]
        set b [gw_register $u q2 $l]
        check_equal "q2 allowed" 1 [dict get $b ok]
        set c [gw_register $u q3 $l]
        check_equal "q3: refused, exit 1" {0 1} [list [dict get $c ok] [dict get $c code]]
        check_equal "q3: the quota message" \
            "commreg: host gateway: refused: quota of 2 entries reached for user $me" [dict get $c err]
        # capp: the same, through the C library.
        set app [gw_capp $u --scope host q4]
        check "capp q4: refused with the quota message" {[gw_app_wait $app "error cannot register q4: host gateway: refused: quota of 2 entries reached for user $me"]}
        # A slot freed is a slot again.
        stop [dict get $a ch]
        check "q1 gone" {[wait_until {[lsearch [::t::gw_list_names $u] q1] < 0} [slow 5000] 50]}
        set c [gw_register $u q3 $l]
        check_equal "q3 allowed once q1 is gone" 1 [dict get $c ok]
    }

    test tcl_package {
        set d [gw_conf_basic "\[rule sys-names\]\naction = deny\nnames = sys-*\nmessage = sys- names are the system's\n"]
        set g [gw_start $d]
        set u [gw_user "" $d]
        set rp [gw_registry $u]
        check "linked" {[gw_linked $u $rp]}
        lassign [gw_tcl_register $u -scope host sys-tcl] code res
        check_equal "refused: a Tcl error with the reason" \
            [list 1 "host gateway: refused by rule \"sys-names\" ($d/10-policy.ini:1): sys- names are the system's"] \
            [list $code $res]
        lassign [gw_tcl_register $u -scope global tclglob] code res
        check_equal "scope global: a Tcl error" {1 {host gateway: refused: no rule allows scope global}} [list $code $res]
        lassign [gw_tcl_register $u -scope host tcltool] code res ch
        check_equal "allowed: the assigned name" {0 tcltool} [list $code $res]
        check "the gateway admitted it on the package's comm port" {[gw_wait_log $g "admitted \"tcltool@$me\" port \[0-9\]+ scope host"]}
        check "it is in the own list" {[lsearch [gw_list_names $u] tcltool] >= 0}
        set fp [free_port]
        lassign [gw_tcl_register $u -scope host -port $fp tclnoport] code res
        check_equal "a port nobody listens on: a Tcl error" \
            [list 1 "host gateway: refused: the port must be a listening TCP socket of uid $myuid: nothing listens on TCP port $fp"] \
            [list $code $res]
    }

    test reload_withdraws_and_broken_reload_keeps {
        set l [own_listener]
        set d [gw_conf_basic "\[rule none\]\naction = deny\nnames = never-*\n"]
        set g [gw_start $d]
        set u [gw_user "" $d]
        set rp [gw_registry $u]
        check "linked" {[gw_linked $u $rp]}
        set app [gw_capp $u --scope host keep gone]
        check "capp holds keep and gone" {[gw_app_wait $app "registered keep keep"] && [gw_app_wait $app "registered gone gone"]}
        set memo [gw_register $u memo $l]
        check_equal "memo held by the CLI" 1 [dict get $memo ok]
        check_set "own list before" {keep gone memo} [gw_list_names $u]

        set mark [gw_log_mark $g]
        gw_write $d 10-policy.ini "\[rule no-gone\]\naction = deny\nnames = gone memo\nmessage = withdrawn by the test\n"
        gw_signal $g HUP
        set why "refused by rule \"no-gone\" ($d/10-policy.ini:1): withdrawn by the test"
        check "capp is told: dropped gone" {[gw_app_wait $app "dropped gone *"]}
        check_equal "capp: the reason" "dropped gone $why" [gw_app_line $app "dropped gone *"]
        set code [gw_exit_code [dict get $memo ch] [slow 5000]]
        check_equal "the CLI holding memo exits 1" 1 $code
        check_equal "the CLI says withdrawn and why" "commreg: withdrawn \"memo\": $why" \
            [string trim [gw_err [dict get $memo ch]]]
        check "the gateway logs the reload" {[gw_wait_log $g "configuration reloaded from $d: 2 files, 1 rules; 2 entries withdrawn" 5000 $mark]}
        check "own list: keep stays, gone and memo went" {[wait_until {[lsort [::t::gw_list_names $u]] eq "keep"} [slow 3000] 50]}
        check_equal "capp: keep not dropped" 0 [app_count $app "dropped keep*"]
        set r [gw_register $u gone $l]
        check_equal "gone again: refused by the new policy" "commreg: host gateway: $why" [dict get $r err]

        # A broken file: the reload fails, everything stays as it was.
        set mark [gw_log_mark $g]
        set lines0 [llength [app_lines $app]]
        gw_write $d 10-policy.ini "\[rule no-keep\]\naction = deny\nnames = keep\nnmes = x\n"
        gw_signal $g HUP
        check "log: reload failed, keeping the configuration" {[gw_wait_log $g "reload failed: keeping the configuration in use" 5000 $mark]}
        check "log: the mistake, with file:line" {[regexp "reload: $d/10-policy.ini:4: unknown key \"nmes\" in \\\[rule no-keep\\\]" [gw_log $g]]}
        pause [slow 300]
        check_equal "capp: nothing withdrawn" {} [app_lines $app $lines0]
        check_equal "own list unchanged" keep [gw_list_names $u]
        set r [gw_register $u gone $l]
        check_equal "the old policy is still in force (gone refused)" "commreg: host gateway: $why" [dict get $r err]
        set r [gw_register $u keep2 $l]
        check_equal "and what it allows is allowed" 1 [dict get $r ok]
        check "gateway alive" {[alive [gw_pid $g]]}
    }

    test reload_lowers_the_quota {
        set d [gw_conf_basic "" "\[quota\]\ndefault = 5\n"]
        set g [gw_start $d]
        set u [gw_user "" $d]
        set rp [gw_registry $u]
        check "linked" {[gw_linked $u $rp]}
        set app [gw_capp $u --scope host qa qb qc]
        check "qa qb qc registered" {[wait_until {[::t::app_count $app "registered *"] == 3} [slow 10000]]}
        gw_write $d 20-quota.ini "\[quota\]\ndefault = 2\n"
        gw_signal $g HUP
        check "one of them is dropped with the quota message" {[gw_app_wait $app "dropped * refused: quota of 2 entries reached for user $me"]}
        pause [slow 300]
        check_equal "exactly one dropped" 1 [app_count $app "dropped *"]
        check "two stay in the own list" {[wait_until {[llength [::t::gw_list_names $u]] == 2} [slow 3000] 50]}
    }

    test restart_republishes {
        set l [own_listener]
        set d [gw_conf_basic]
        set g [gw_start $d]
        set u [gw_user "" $d]
        set rp [gw_registry $u]
        check "linked" {[gw_linked $u $rp]}
        set app [gw_capp $u --scope host keep]
        check "capp holds keep" {[gw_app_wait $app "registered keep keep"]}
        set mark [log_mark $rp]
        stop $g TERM
        check "the registry notices the loss" {[wait_until {[string first "link lost" [::t::log_since $rp $mark]] >= 0} [slow 3000]]}
        check "the socket went with the gateway" {![file exists [gw_socket $d]]}
        pause [slow 200]
        check "the registry survives the gateway going away" {[alive $rp]}
        set r [gw_register $u meanwhile $l]
        check_match "scope host without a gateway: refused, saying why" \
            "*needs the host gateway, which cannot be reached*" [dict get $r err]
        set g2 [gw_start $d]
        check "the registry links again" {[gw_linked $u $rp 5000 $mark]}
        check "the new gateway admits keep again, nobody asking" {[gw_wait_log $g2 "admitted \"keep@$me\"" 5000]}
        check_equal "capp was not told anything" 0 [app_count $app "dropped*"]
        set r [gw_register $u after $l]
        check_equal "a new registration works" 1 [dict get $r ok]
        # The re-registered entry counts toward the quota there: a reload
        # with quota 1 keeps exactly one of the two.
        gw_write $d 20-quota.ini "\[quota\]\ndefault = 1\n"
        gw_signal $g2 HUP
        check "the reload withdraws one" {[gw_wait_log $g2 "1 entries withdrawn"]}
    }

    test a_peer_that_is_not_commgwd {
        # On the gateway's socket: something that speaks comm but is not
        # commgwd (tests/tools/fakegw.c).  The user registry must refuse
        # it and keep serving (it used to free its connection inside the
        # connection's own processing).
        set fake [file join [tools_dir] fakegw]
        if {![file executable $fake]} { skip "no fakegw in [tools_dir]" }
        set d [gw_conf_basic]
        set f [spawn $fake [gw_socket $d]]
        check_equal "fakegw is up" ready [readline $f]
        set u [gw_user "" $d]
        set rp [gw_registry $u]
        check "the registry says the peer is not commgwd" {[wait_until {
            [string first "not commgwd" [daemon_log $rp]] >= 0} [slow 5000]]}
        pause [slow 300]
        check "the registry survives it" {[alive $rp]}
        set r [gw_register $u nogw [own_listener]]
        check_match "scope host: refused, saying why" "*not commgwd*" [dict get $r err]
        set r [gw_register $u mine [own_listener] user]
        check_equal "scope user still works" 1 [dict get $r ok]
    }

    test a_gateway_that_never_greets {
        # A gateway that takes the connection and then says nothing: the
        # user registry gives up on the greeting (5 s) and links again,
        # rather than waiting on it for ever.
        set fake [file join [tools_dir] fakegw]
        if {![file executable $fake]} { skip "no fakegw in [tools_dir]" }
        set d [gw_conf_basic]
        set f [spawn $fake --silent [gw_socket $d]]
        check_equal "fakegw is up" ready [readline $f]
        set u [gw_user "" $d]
        set rp [gw_registry $u]
        check "the registry gives up on the greeting" {[wait_until {
            [string first "no answer to Commreg/Hello" [daemon_log $rp]] >= 0} [slow 9000]]}
        check "and keeps serving" {[alive $rp]}
    }

    test a_gateway_that_never_sends_its_entries {
        # A gateway that greets, then never answers the watch a user
        # registry sends for its copy of the others' entries: a list
        # waits for the copy at most 3 s (within the client's 5 s), then is answered with the
        # user's own entries, and the log says why; the registry serves
        # everyone meanwhile.
        set fake [file join [tools_dir] fakegw]
        if {![file executable $fake]} { skip "no fakegw in [tools_dir]" }
        set d [gw_conf_basic]
        set f [spawn $fake --no-entries [gw_socket $d]]
        check_equal "fakegw is up" ready [readline $f]
        set u [gw_user "" $d]
        set rp [gw_registry $u]
        check "the registry links to it" {[gw_linked $u $rp]}
        set r [gw_register $u mine [own_listener] user]
        check_equal "an application registers" 1 [dict get $r ok]
        set lister [spawn {*}[gw_cmd $u [gw_bin $u commreg] --home [dict get $u home] list]]
        # Meanwhile the registry answers others at once.
        check_match "a lookup meanwhile is answered" "* localhost" \
            [string trim [dict get [gw_commreg $u lookup mine] out]]
        set lines [readlines_for $lister [slow 9000]]
        check "the list is answered with the own entries" {
            [lsearch -glob $lines "mine *"] >= 0}
        check "the log says why" {[wait_until {
            [string first "its entries did not come within 3000 ms; answering without them" \
                 [daemon_log $rp]] >= 0} [slow 3000]]}
        check "and the registry serves on" {[alive $rp]}
    }
} 180
