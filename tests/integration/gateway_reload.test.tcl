# The host gateway commgwd between two real users (docs/config.md,
# gateway/): identities come from SO_PEERCRED, so this needs root to make
# throwaway users A and B and a group G (A in G as a supplementary group,
# B not), and runs their registries and applications as them (setpriv).
#
#   policy_matrix      each of user, group, name, port and scope has an
#                      allowed and a refused case; refusals name the rule
#                      and FILE:LINE; scope global needs a rule; a port of
#                      another uid, or of nobody, is refused; the Tcl
#                      package gets refusals as Tcl errors
#   quota              default 2 for B; A gets the larger of its user and
#                      group lines
#   copy_on_demand     B's registry copies the others' entries only while
#                      a list or watch uses them; lists, watches and nns
#                      watches wait for the copy; the copy goes unused
#   visibility         NAME@USER in the other user's list and lookups;
#                      own entries plain; scope user stays private
#   reload             SIGHUP with a stricter policy withdraws (holders
#                      told, B's view updated); a broken reload keeps all
#   group_removal      A taken out of G (gpasswd -d) loses at the next
#                      reload what G's rule gave, and has it again once
#                      back in G
#   restart            a restarted gateway gets A's entries back from A's
#                      registry, and B sees them again, A doing nothing
#   privilege_drop     [gateway] user = A: the process that serves is A
#                      after "ready" (its parent stays root) and still
#                      serves (and reloads)
#   privsep_reload     user = A with TLS: SIGHUP to the root parent, or to
#                      the child, reloads (the key is not A's to read);
#                      the parent killed, the child says so once and
#                      serves on, without reloads
#   privsep_untrusted  user = A: a policy file of A's, or a world-writable
#                      directory above the configuration, fails the
#                      reload with the reason and keeps the policy
#   root_reload_trust  without user: a reload as root refuses a file of
#                      A's too
#
# The single-user part (check-config, own registrations, reload and
# restart as seen by the owner) is gateway.test.tcl, which needs no root.
source [file join [file dirname [info script]] lib.tcl]
source [file join [file dirname [info script]] federation_lib.tcl]

# A configuration with RULES (10-policy.ini) and QUOTA (20-quota.ini),
# its gateway, and the users A and B each with a fresh HOME and a
# registry linked to it.  Sets the caller's d g ua ub ra rb.
proc setup {{rules ""} {quota ""} {gateway ""}} {
    upvar 1 d d g g ua ua ub ub ra ra rb rb
    set files [dict create 00-gateway.ini "\[gateway\]\nsocket = @SOCKET@\n$gateway"]
    if {$rules ne ""} { dict set files 10-policy.ini $rules }
    if {$quota ne ""} { dict set files 20-quota.ini $quota }
    set d [gw_confdir $files]
    set g [gw_start $d]
    set ua [gw_user $::A $d]
    set ub [gw_user $::B $d]
    set ra [gw_registry $ua]
    set rb [gw_registry $ub]
    check "A's and B's registries link to the gateway" {[gw_linked $ua $ra] && [gw_linked $ub $rb]}
}

# Wait until U's list has (or, with -not, lacks) NAME.
proc sees {u name {ms 5000}} {
    return [wait_until {[lsearch -exact [::t::gw_list_names $u] $name] >= 0} [slow $ms] 50]
}
proc sees_not {u name {ms 5000}} {
    return [wait_until {[lsearch -exact [::t::gw_list_names $u] $name] < 0} [slow $ms] 50]
}

# A TCP listener owned by U on ADDR:PORT (PORT 0: any).  {channel port}.
proc listener_at {u addr port} {
    set f [newfile listener].tcl
    write_file $f {
        lassign $argv addr port
        set s [socket -server {apply {{c a p} {close $c}}} -myaddr $addr $port]
        puts [lindex [fconfigure $s -sockname] 2]
        flush stdout
        vwait forever
    } 0644
    set ch [spawn {*}[gw_cmd $u [info nameofexecutable] $f $addr $port]]
    set got [readline $ch [slow 10000]]
    if {![string is integer -strict $got]} {
        error "listener of [dict get $u name] at $addr:$port: [show $got]\
               [spawn_err $ch]"
    }
    return [list $ch $got]
}

# One command to the gateway of D as U, through tests/tools/commcall:
# {code result}.
proc gw_call {u d args} {
    set r [run {*}[gw_cmd $u [file join [tools_dir] commcall] \
                       unix:[gw_socket $d] {*}$args]]
    return [list [dict get $r code] [string trim [dict get $r out]]]
}

proc re_quote {s} {
    return [regsub -all {[][\\$^.*+?(){}|]} $s {\\&}]
}

# The watches the gateway of D has (its Commreg/Stats, asked as U).
proc gw_watches {u d} {
    lassign [gw_call $u $d Commreg/Stats] code r
    if {$code != 0 || [catch {dict get $r watches} n]} { return "?$r" }
    return $n
}

# How many entries U's registry copies from the gateway (commreg status).
proc ::t::copied {u} {
    set r [gw_commreg $u status]
    if {[regexp -line {^upstream_entries\s+([0-9]+)} [dict get $r out] -> n]} {
        return $n
    }
    return "no upstream_entries in: [dict get $r out] [dict get $r err]"
}
proc copied {u} { return [::t::copied $u] }

# KEY of a row of gw_list (or "" when there is no such row).
proc field {row key} {
    if {[dict exists $row $key]} { return [dict get $row $key] }
    return ""
}

proc refusal {r} {
    return [list [dict get $r ok] [dict get $r code] [dict get $r err]]
}

# The numeric fields of "Uid:" (or "Gid:") in /proc/PID/status.
proc proc_ids {pid field} {
    foreach l [split [read_file /proc/$pid/status] \n] {
        if {[regexp "^${field}:(.*)\$" $l -> v]} { return [regexp -all -inline {[0-9]+} $v] }
    }
    return ""
}

main {
    if {[exec id -u] != 0} {
        skip "needs root to create users and groups"
    }
    foreach tool {useradd userdel groupadd groupdel setpriv} {
        if {[auto_execok $tool] eq ""} { skip "$tool not installed" }
    }
    if {![file executable [gw_path]]} {
        skip "commgwd is not built ([gw_path])"
    }
    set tag cgw[pid]
    set ::G ${tag}g
    set ::A ${tag}a
    set ::B ${tag}b
    gw_groupadd ${tag}pa
    gw_groupadd ${tag}pb
    gw_groupadd $::G
    gw_useradd $::A ${tag}pa [list $::G]
    gw_useradd $::B ${tag}pb
    set UA [exec id -u $::A]
    set UB [exec id -u $::B]
    set A $::A
    set B $::B
    set G $::G
    # The binaries and the package, where A and B can reach them.
    gw_bindir

    test policy_matrix {
        # Ports first: the rules name one of them.
        set u0 [gw_confdir {}]
        lassign [gw_listener [gw_user $A $u0]] - la1
        lassign [gw_listener [gw_user $A $u0]] - la2
        lassign [gw_listener [gw_user $B $u0]] - lb
        setup [join [list \
            "\[rule kept-port\]" "action = deny" "ports = $la1" "message = port $la1 is kept back" "" \
            "\[rule ed-group\]" "action = allow" "groups = $G" "names = ed*" "" \
            "\[rule ed-others\]" "action = deny" "names = ed*" "message = ed* names are for group $G" "" \
            "; B keeps its secrets" \
            "\[rule no-b-secret\]" "action = deny" "users = $B" "names = secret*" "message = not from $B" "" \
            "\[rule a-global\]" "action = allow" "users = $A" "names = pub*" "scopes = global" ""] \n]
        set f $d/10-policy.ini
        set pf "commreg: host gateway: refused"

        # group: A (in G, supplementary) yes, B no
        set r [gw_register $ua editor $la2]
        check_equal "group: A editor allowed" 1 [dict get $r ok]
        check "group: by rule ed-group" {[gw_wait_log $g "admitted \"editor@$A\" port $la2 scope host by rule ed-group\n"]}
        check_equal "group: B editor refused by ed-others, file:line" \
            [list 0 1 "$pf by rule \"ed-others\" ($f:11): ed* names are for group $G"] \
            [refusal [gw_register $ub editor $lb]]
        # name: B may offer what is not ed*
        check_equal "name: B notes allowed (no rule matched)" 1 [dict get [gw_register $ub notes $lb] ok]
        check "name: logged without a rule" {[gw_wait_log $g "admitted \"notes@$B\" port $lb scope host\n"]}
        # user: secret* is refused to B only
        check_equal "user: B secret1 refused by no-b-secret" \
            [list 0 1 "$pf by rule \"no-b-secret\" ($f:17): not from $B"] \
            [refusal [gw_register $ub secret1 $lb]]
        check_equal "user: A secret1 allowed" 1 [dict get [gw_register $ua secret1 $la2] ok]
        # port: la1 is kept back, la2 is not (editor above)
        check_equal "port: A on the kept port refused" \
            [list 0 1 "$pf by rule \"kept-port\" ($f:1): port $la1 is kept back"] \
            [refusal [gw_register $ua kept $la1]]
        # scope: global needs a rule; a-global gives it to A for pub*
        check_equal "scope: A pub1 global allowed by a-global" 1 [dict get [gw_register $ua pub1 $la2 global] ok]
        check "scope: logged with its rule" {[gw_wait_log $g "admitted \"pub1@$A\" port $la2 scope global by rule a-global\n"]}
        check_equal "scope: B pub1 global refused (no rule)" \
            [list 0 1 "$pf: no rule allows scope global"] [refusal [gw_register $ub pub1 $lb global]]
        check_equal "scope: A other global refused (the rule is for pub*)" \
            [list 0 1 "$pf: no rule allows scope global"] [refusal [gw_register $ua other $la2 global]]
        check_equal "scope: A pub2 host allowed (a-global is for global only)" 1 [dict get [gw_register $ua pub2 $la2 host] ok]
        # the port must be the registering uid's
        check_equal "port owner: B on A's port refused with both uids" \
            [list 0 1 "$pf: the port must be a listening TCP socket of uid $UB: TCP port $la2 at 127.0.0.1 is listened on by uid $UA, not by uid $UB"] \
            [refusal [gw_register $ub stolen $la2]]
        check_equal "port owner: A on B's port refused" \
            [list 0 1 "$pf: the port must be a listening TCP socket of uid $UA: TCP port $lb at 127.0.0.1 is listened on by uid $UB, not by uid $UA"] \
            [refusal [gw_register $ua stolen $lb]]
        set fp [free_port]
        check_equal "port owner: nothing listening refused" \
            [list 0 1 "$pf: the port must be a listening TCP socket of uid $UB: nothing listens on TCP port $fp"] \
            [refusal [gw_register $ub empty $fp]]
        # capp (the C library) as A: allowed by the group rule
        set app [gw_capp $ua --scope host edcapp]
        check "capp as A: edcapp registered" {[gw_app_wait $app "registered edcapp edcapp"]}
        set app2 [gw_capp $ub --scope host edcapp]
        check "capp as B: edcapp refused with the rule" {[gw_app_wait $app2 "error cannot register edcapp: host gateway: refused by rule \"ed-others\" ($f:11): ed* names are for group $G"]}

        # The Tcl package, as each user.
        lassign [gw_tcl_register $ub -scope host edtcl] code res
        check_equal "Tcl as B: refusal as a Tcl error" \
            [list 1 "host gateway: refused by rule \"ed-others\" ($f:11): ed* names are for group $G"] [list $code $res]
        lassign [gw_tcl_register $ua -scope host edtcl] code res
        check_equal "Tcl as A: the assigned name" {0 edtcl} [list $code $res]
        lassign [gw_tcl_register $ub -scope global pubtcl] code res
        check_equal "Tcl as B: global refused" {1 {host gateway: refused: no rule allows scope global}} [list $code $res]
        lassign [gw_tcl_register $ua -scope global pubtcl] code res
        check_equal "Tcl as A: global by the rule" {0 pubtcl} [list $code $res]

        # What was allowed is what B sees of A, no more.
        check "B sees A's edtcl" {[sees $ub edtcl@$A]}
        check_set "B's view of A" [list editor@$A secret1@$A pub1@$A pub2@$A edcapp@$A edtcl@$A pubtcl@$A] \
            [lsearch -all -inline -glob [gw_list_names $ub] *@$A]
        check_set "A's view of B" [list notes@$B] [lsearch -all -inline -glob [gw_list_names $ua] *@$B]
        check "gateway alive" {[alive [gw_pid $g]]}
    }

    test quota {
        setup "" "\[quota\]\ndefault = 2\ngroup $G = 3\nuser $A = 4\n"
        set qb [gw_capp $ub --scope host b1 b2 b3]
        check "B: two of three registered" {[wait_until {[::t::app_count $qb "registered *"] == 2
            && [::t::app_count $qb "error *"] == 1} [slow 10000]]}
        check_match "B: the third refused with B's quota" \
            "error cannot register b?: host gateway: refused: quota of 2 entries reached for user $B" \
            [gw_app_line $qb "error *"]
        set qa [gw_capp $ua --scope host a1 a2 a3 a4 a5]
        check "A: four of five registered (user line 4 beats group line 3)" {[wait_until {[::t::app_count $qa "registered *"] == 4
            && [::t::app_count $qa "error *"] == 1} [slow 10000]]}
        check_match "A: the fifth refused with A's quota" \
            "error cannot register a?: host gateway: refused: quota of 4 entries reached for user $A" \
            [gw_app_line $qa "error *"]
        check "B sees A's four" {[wait_until {[llength [lsearch -all [::t::gw_list_names $ub] *@$A]] == 4} [slow 5000] 50]}
        # The quota counts entries at the gateway, per user: B's CLI
        # registration is refused too, A's count is not B's.
        lassign [gw_listener $ub] - lb
        set r [gw_register $ub b4 $lb]
        check_equal "B's CLI: refused by the quota" \
            "commreg: host gateway: refused: quota of 2 entries reached for user $B" [dict get $r err]
    }

    test visibility {
        setup
        set app [gw_capp $ua --scope host editor]
        check "A holds editor" {[gw_app_wait $app "registered editor editor"]}
        set priv [gw_capp $ua privonly]
        check "A holds privonly (scope user)" {[gw_app_wait $priv "registered privonly privonly"]}
        set own [gw_row $ua editor]
        set port [expr {[dict exists $own port] ? [dict get $own port] : ""}]
        check "A's own list: editor, plain, with its port" {[string is integer -strict $port]}
        check "A's own list has no editor@A" {[lsearch [gw_list_names $ua] editor@*] < 0}
        check "B sees editor@A" {[sees $ub editor@$A]}
        set row [gw_row $ub editor@$A]
        check_equal "B's row: port, host, user A" [list $port localhost $A] \
            [list [field $row port] [field $row host] [field $row user]]
        set r [gw_commreg $ub list]
        check_match "B's table has a USER column" "NAME *PORT HOST *USER *PID SINCE*" [dict get $r out]
        check_equal "B: lookup editor" "$port localhost" [string trim [dict get [gw_commreg $ub lookup editor] out]]
        check_equal "B: lookup editor@A" "$port localhost" [string trim [dict get [gw_commreg $ub lookup editor@$A] out]]
        check "B does not see A's scope-user privonly" {[lsearch -glob [gw_list_names $ub] privonly*] < 0}
        set r [gw_commreg $ub lookup privonly]
        check "B: lookup privonly fails" {[dict get $r code] != 0 && [dict get $r out] eq ""}
        check_match "B: said not found" "*no application named*privonly*" [dict get $r err]
        set r [gw_commreg $ub lookup privonly@$A]
        check "B: lookup privonly@A fails" {[dict get $r code] != 0 && [dict get $r out] eq ""}
        # B's own editor: own first for each, exact with @USER.
        set appb [gw_capp $ub --scope host editor]
        check "B holds its own editor" {[gw_app_wait $appb "registered editor editor"]}
        set bport [field [gw_row $ub editor] port]
        check "A sees editor@B" {[sees $ua editor@$B]}
        check_equal "A's row of editor@B: user B" $B [field [gw_row $ua editor@$B] user]
        check_equal "B: lookup editor is B's own" "$bport localhost" [string trim [dict get [gw_commreg $ub lookup editor] out]]
        check_equal "B: lookup editor@A still A's" "$port localhost" [string trim [dict get [gw_commreg $ub lookup editor@$A] out]]
        check_equal "A: lookup editor is A's own" "$port localhost" [string trim [dict get [gw_commreg $ua lookup editor] out]]
        check_equal "A: lookup editor@B is B's" "$bport localhost" [string trim [dict get [gw_commreg $ua lookup editor@$B] out]]
        # A second editor of A: "editor #2", and "editor #2@A" for B.
        set app3 [gw_capp $ua --scope host editor]
        check "A's second editor is editor #2" {[gw_app_wait $app3 "registered editor editor #2"]}
        set p2 [string trim [dict get [gw_commreg $ua lookup "editor #2"] out]]
        check_match "A: lookup editor #2" "* localhost" $p2
        check "B: lookup {editor #2@A} gives it" {[wait_until {[string trim [dict get [::t::gw_commreg $ub lookup "editor #2@$A"] out]] eq $p2} [slow 5000] 100]}
        check "the gateway holds it as {editor #2@A}" {[gw_wait_log $g "admitted \"editor #2@$A\""]}
        app_kill $app3 TERM
        # Gone when A lets go.
        app_kill $app TERM
        check "B no longer sees editor@A once A's app ends" {[sees_not $ub editor@$A]}
        check_equal "B: lookup editor@A fails now" "" [string trim [dict get [gw_commreg $ub lookup editor@$A] out]]
    }

    # A user registry copies the other users' entries from the gateway
    # only while they are used (docs/gateway.md, "What a registry
    # copies"): until then the gateway watches for nobody and tells
    # nobody of a change, which is what lets one gateway serve a
    # thousand users.  A list, a watch (Commreg/Watch, and nns
    # Search/Continuous from tcllib's nameserv) waits for the copy and
    # sees the others' entries at once; the copy goes once unused.
    test copy_on_demand {
        setup
        set app [gw_capp $ua --scope host editor]
        check "A holds editor" {[gw_app_wait $app "registered editor editor"]}
        check "the gateway admitted it" {[gw_wait_log $g "admitted \"editor@$A\""]}
        check_equal "the gateway watches for nobody" 0 [gw_watches $ua $d]
        check_equal "B's registry holds no copy" 0 [copied $ub]
        # Not polled: the first list must already have it.
        check "B's first list has editor@A" {[lsearch -exact [gw_list_names $ub] editor@$A] >= 0}
        check_equal "B's registry now copies: one watch at the gateway" 1 [gw_watches $ua $d]
        check "and holds the copy" {[copied $ub] >= 1}
        # The copy goes once unused; a watch fetches it again, and its
        # snapshot has editor@A (snapshot 0 if it did not wait).
        check "the copy goes once unused" {[wait_until {[copied $ub] == 0} [slow 20000] 200]}
        check_equal "the gateway watches for nobody again" 0 [gw_watches $ua $d]
        set w [gw_capp $ub --watch editor*]
        check "B's watch starts with editor@A" {[gw_app_wait $w "snapshot 1"]}
        set app2 [gw_capp $ua --scope host editor]
        check "A's second editor" {[gw_app_wait $app2 "registered editor editor #2"]}
        check "B's watch is told of it" {[gw_app_wait $w "add editor #2@$A"]}
        # tcllib's nameserv, unmodified: its first Change has editor@A.
        app_kill $w TERM
        check "the copy goes again" {[wait_until {[copied $ub] == 0} [slow 20000] 200]}
        set f [newfile nns].tcl
        write_file $f {
            package require nameserv
            nameserv::configure -port [lindex $argv 0]
            set r [nameserv::search -continuous editor*]
            set end [expr {[clock milliseconds] + 10000}]
            while {![$r filled] && [clock milliseconds] < $end} {
                after 20 {set ::tick 1}
                vwait ::tick
            }
            puts [list [$r filled] [lsort [$r names]]]
            exit 0
        } 0644
        set port [string trim [lindex [split [read_file [file join [dict get $ub home] .tcl comm registry [info hostname]]] \n] 0]]
        set r [run -timeout 20 {*}[gw_cmd $ub [info nameofexecutable] $f $port]]
        check_equal "nameserv's first Change: A's editors" [list 1 [lsort [list editor@$A "editor #2@$A"]]] [string trim [dict get $r out]]
        # Lookups never needed the copy.
        check "the copy goes after nameserv's watch" {[wait_until {[::t::copied $ub] == 0} [slow 20000] 200]}
        check_match "B: lookup editor@A" "* localhost" [string trim [dict get [gw_commreg $ub lookup editor@$A] out]]
        check_equal "and that made none" 0 [copied $ub]
    }

    # The port check is what makes a registration "not dangerous"
    # (docs/gateway.md); each of these walked around it before: a
    # listener of A's on another address, a -data nobody checked, a check
    # made only once.  And a pid nobody can check is marked a claim.
    test port_owner_holes {
        setup
        set pf "commreg: host gateway: refused"
        # B's service on 127.0.0.1:P; A listens on 127.0.0.2:P.
        lassign [listener_at $ub 127.0.0.1 0] - p
        lassign [listener_at $ua 127.0.0.2 $p] - -
        check_equal "A naming B's service (A listens on another address)" \
            [list 0 1 "$pf: the port must be a listening TCP socket of uid $UA: TCP port $p at 127.0.0.1 is listened on by uid $UB, not by uid $UA"] \
            [refusal [gw_register $ua hijack $p]]
        check "B never sees hijack@A" {[sees_not $ub hijack@$A 300]}

        # -data is what a nameserv client is handed: checked the same.
        lassign [gw_listener $ua] - la
        lassign [gw_listener $ub] - lb
        lassign [gw_call $ua $d Commreg/Register viadata $la -scope host \
                     -data "$lb localhost"] code res
        check_equal "-data naming B's port: refused" 1 $code
        check_match "-data: B's uid named" \
            "*TCP port $lb at 127.0.0.1 is listened on by uid $UB*" $res
        lassign [gw_call $ua $d Commreg/Register viadata2 $la -scope host \
                     -data "not a comm id"] code res
        check_equal "-data that is no comm id: refused" 1 $code
        check_match "-data: says why" "*-data must be a comm id*" $res
        # One connection: the entry lives as long as it does.
        set r [run {*}[gw_cmd $ua [file join [tools_dir] commcall] \
            unix:[gw_socket $d] Commreg/Register good $la -scope host \
            -data "$la localhost" -pid 4242 \; Commreg/List good@$A]]
        lassign [split [string trim [dict get $r out]] \n] res list
        check_equal "-data naming A's own port: admitted" {0 good} \
            [list [dict get $r code] $res]
        # A pid passed on from the application is a claim: said so.
        set e [lindex $list 0]
        check_equal "its pid, as claimed" 4242 [field $e pid]
        check_equal "marked as a claim" pid [field $e claimed]

        # Checked again while it lives: A closes its port, B takes it.
        lassign [gw_listener $ua] lach lm
        set memo [gw_register $ua memo $lm]
        check_equal "A's CLI holds memo" 1 [dict get $memo ok]
        check "B sees memo@A" {[sees $ub memo@$A]}
        stop $lach KILL
        lassign [listener_at $ub 127.0.0.1 $lm] - -
        check_equal "the CLI holding memo is told, and exits 1" 1 \
            [gw_exit_code [dict get $memo ch] [slow 10000]]
        # The check comes every 2 s: it may find B there already, or
        # nothing between A's going and B's coming; either way not A's.
        check_regexp "withdrawn: the port is no longer A's" \
            "^commreg: withdrawn \"memo\": the port is no longer a listening TCP socket of uid $UA: (TCP port $lm at 127\\.0\\.0\\.1 is listened on by uid $UB, not by uid $UA|nothing listens on TCP port $lm.*)\$" \
            [string trim [gw_err [dict get $memo ch]]]
        check "B no longer sees memo@A" {[sees_not $ub memo@$A]}
        lassign [gw_call $ub $d Commreg/Stats] code res
        check "the gateway counts it withdrawn" {[dict get $res withdrawn] >= 1}
    }

    test reload {
        setup "\[rule nothing\]\naction = deny\nnames = never*\n"
        set app [gw_capp $ua --scope host editor notes]
        check "A holds editor and notes" {[gw_app_wait $app "registered editor editor"] && [gw_app_wait $app "registered notes notes"]}
        lassign [gw_listener $ua] - la
        set memo [gw_register $ua memo $la]
        check_equal "A's CLI holds memo" 1 [dict get $memo ok]
        check "B sees all three" {[sees $ub editor@$A] && [sees $ub notes@$A] && [sees $ub memo@$A]}

        set mark [gw_log_mark $g]
        gw_write $d 10-policy.ini "\[rule no-notes\]\naction = deny\nusers = $A\nnames = notes memo\nmessage = not any more\n"
        gw_signal $g HUP
        set why "refused by rule \"no-notes\" ($d/10-policy.ini:1): not any more"
        check "capp is told: dropped notes" {[gw_app_wait $app "dropped notes *"]}
        check_equal "capp: with the reason" "dropped notes $why" [gw_app_line $app "dropped notes *"]
        check_equal "the CLI holding memo exits 1" 1 [gw_exit_code [dict get $memo ch] [slow 5000]]
        check_equal "the CLI says withdrawn" "commreg: withdrawn \"memo\": $why" [string trim [gw_err [dict get $memo ch]]]
        check "B no longer sees notes@A" {[sees_not $ub notes@$A]}
        check "B no longer sees memo@A" {[sees_not $ub memo@$A]}
        check "B still sees editor@A" {[sees $ub editor@$A 500]}
        check_equal "A's own list: editor only" editor [gw_list_names $ua]
        check "log: withdrawn, reloaded" {[gw_wait_log $g [re_quote "withdrawn \"notes@$A\": $why"] 5000 $mark]
            && [gw_wait_log $g "configuration reloaded from $d: 2 files, 1 rules; 2 entries withdrawn" 5000 $mark]}

        # Broken: unknown user.  Nothing changes.
        set mark [gw_log_mark $g]
        set n0 [llength [app_lines $app]]
        gw_write $d 10-policy.ini "\[rule no-editor\]\naction = deny\nnames = editor\nusers = nosuch-[pid]-x\n"
        gw_signal $g HUP
        check "log: reload failed" {[gw_wait_log $g "reload failed: keeping the configuration in use" 5000 $mark]}
        check "log: why, with file:line" {[regexp "reload: $d/10-policy.ini:4: unknown user \"nosuch-[pid]-x\"" [gw_log $g]]}
        pause [slow 300]
        check_equal "capp told nothing" {} [app_lines $app $n0]
        check "B still sees editor@A" {[sees $ub editor@$A 500]}
        check_equal "notes is still refused (the old policy)" \
            "commreg: host gateway: $why" [dict get [gw_register $ua notes $la] err]
        check "gateway alive" {[alive [gw_pid $g]]}
    }

    # The gateway used to keep the groups it read when a user first came:
    # a user taken out of a group kept what the group's rule gave.
    test group_removal {
        if {[auto_execok gpasswd] eq ""} {
            say "  note: no gpasswd here: left out"
            return
        }
        setup [join [list \
            "\[rule ed-group\]" "action = allow" "groups = $G" "names = ed*" "" \
            "\[rule ed-others\]" "action = deny" "names = ed*" "message = ed* names are for group $G" ""] \n]
        set app [gw_capp $ua --scope host editor]
        check "A, in G, holds editor" {[gw_app_wait $app "registered editor editor"]}
        check "B sees editor@A" {[sees $ub editor@$A]}
        # Whatever happens below, A is in G again at the end.
        defer [list catch [list exec gpasswd -a $A $G]]
        set r [run gpasswd -d $A $G]
        check_equal "gpasswd -d A G" 0 [dict get $r code]
        set mark [gw_log_mark $g]
        gw_signal $g HUP
        set why "refused by rule \"ed-others\" ($d/10-policy.ini:6): ed* names are for group $G"
        check "capp is told: dropped editor" {[gw_app_wait $app "dropped editor *"]}
        check_equal "by the rule for those outside G" "dropped editor $why" \
            [gw_app_line $app "dropped editor *"]
        check "B no longer sees editor@A" {[sees_not $ub editor@$A]}
        check "log: reloaded, 1 withdrawn" {[gw_wait_log $g "configuration reloaded from $d: 2 files, 2 rules; 1 entries withdrawn" 5000 $mark]}
        lassign [gw_listener $ua] - la
        set r [gw_register $ua edit2 $la]
        check_equal "a new ed* of A: refused too" "commreg: host gateway: $why" \
            [expr {[dict exists $r err] ? [dict get $r err] : "admitted"}]
        # Back in G: the next reload gives it back.
        set r [run gpasswd -a $A $G]
        check_equal "gpasswd -a A G" 0 [dict get $r code]
        set mark [gw_log_mark $g]
        gw_signal $g HUP
        check "reloaded" {[gw_wait_log $g "configuration reloaded from $d" 5000 $mark]}
        check_equal "A may offer ed* again" 1 [dict get [gw_register $ua edit3 $la] ok]
    }

    test restart {
        setup
        set app [gw_capp $ua --scope host editor]
        check "A holds editor" {[gw_app_wait $app "registered editor editor"]}
        check "B sees editor@A" {[sees $ub editor@$A]}
        set port [field [gw_row $ub editor@$A] port]
        set ma [log_mark $ra]
        set mb [log_mark $rb]
        stop $g TERM
        pause [slow 300]
        check "A's and B's registries survive the gateway going away" {[alive $ra] && [alive $rb]}
        # B keeps its copy a while (3 s), then lets it go.
        check "B's view empties without the gateway" {[sees_not $ub editor@$A 10000]}
        set g2 [gw_start $d]
        set t0 [clock milliseconds]
        check "B sees editor@A again, A doing nothing" {[sees $ub editor@$A 5000]}
        say "  note: back for B after [expr {[clock milliseconds] - $t0}] ms"
        check_equal "same port" $port [field [gw_row $ub editor@$A] port]
        check "both registries linked again" {[gw_linked $ua $ra 5000 $ma] && [gw_linked $ub $rb 5000 $mb]}
        check_equal "capp never told" 0 [app_count $app "dropped*"]
        check_equal "B: lookup editor@A through the new gateway" "$port localhost" \
            [string trim [dict get [gw_commreg $ub lookup editor@$A] out]]
        # A quick restart (within B's holdover): B ends with the entry.
        set mb [log_mark $rb]
        stop $g2 TERM
        set g3 [gw_start $d]
        check "B linked to the third gateway" {[gw_linked $ub $rb 5000 $mb]}
        check "the third gateway has editor@A again" {[gw_wait_log $g3 "admitted \"editor@$A\""]}
        pause [slow 3500]
        check "after the holdover B still sees editor@A" {[sees $ub editor@$A 500]}
    }

    test privilege_drop {
        setup "" "" "user = $A\n"
        set pid [gw_serving_pid $g]
        check "the gateway that serves is a child of the one started" \
            {$pid ne "" && $pid != [gw_pid $g]}
        check_equal "the one started stays root, to read the configuration" \
            {0 0 0 0} [proc_ids [gw_pid $g] Uid]
        check_equal "the gateway's uids are A's" [list $UA $UA $UA $UA] [proc_ids $pid Uid]
        set ga [exec id -g $A]
        check_equal "its gids are A's primary" [list $ga $ga $ga $ga] [proc_ids $pid Gid]
        check "its groups are A's (G among them)" {[lsearch [proc_ids $pid Groups] [exec getent group $G | cut -d: -f3]] >= 0}
        check "logged: running as A" {[regexp "running as $A \\(uid $UA\\)" [gw_log $g]]}
        set app [gw_capp $ub --scope host svc]
        check "B registers svc through it" {[gw_app_wait $app "registered svc svc"]}
        check "A sees svc@B" {[sees $ua svc@$B]}
        lassign [gw_listener $ub] - lb
        check_equal "it still checks port owners" \
            "commreg: host gateway: refused: the port must be a listening TCP socket of uid $UA: TCP port $lb at 127.0.0.1 is listened on by uid $UB, not by uid $UA" \
            [dict get [gw_register $ua stolen $lb] err]
        set mark [gw_log_mark $g]
        gw_signal $g HUP
        check "it reloads as A" {[gw_wait_log $g "configuration reloaded from $d" 5000 $mark]}
        stop $g TERM
        check "SIGTERM to the one started stops the one that serves" \
            {[wait_until {![::t::alive $pid]} [slow 3000]]}
        # Its socket, in root's directory, is removed by the parent.
        check "the socket went with them" {![file exists [gw_socket $d]]}
        pause [slow 300]
        check "A's and B's registries survive the gateway going away" {[alive $ra] && [alive $rb]}
        set g2 [gw_start $d]
        check "a new gateway serves the same socket" {[alive [gw_pid $g2]]}
        check "B's svc comes back" {[gw_wait_log $g2 "admitted \"svc@$B\""]}
    }

    # With [gateway] user = A and TLS, a reload used to fail for good:
    # the gateway, now A, could not read the key again.  Its root parent
    # reads the configuration now, the key among it, and hands it over.
    test privsep_reload {
        if {[auto_execok openssl] eq ""} {
            say "  note: no openssl on PATH: no certificates, left out"
            return
        }
        set c [::fed::certs]
        set t [tempdir tls 0755]
        foreach {f perm} {gw1.crt 0644 gw1.key 0600 ca.crt 0644} {
            file copy -force -- $c/$f $t/$f
            file attributes $t/$f -permissions $perm
        }
        set lp [free_port]
        setup "\[rule nothing\]\naction = deny\nnames = never*\n" "" \
            "user = $A\nlisten = 127.0.0.1:$lp\ncertificate = $t/gw1.crt\nkey = $t/gw1.key\nca = $t/ca.crt\n"
        set ppid [gw_pid $g]
        set cpid [gw_serving_pid $g]
        check "a root parent and a child that serves" {$cpid ne "" && $cpid != $ppid}
        check_equal "the child is A" [list $UA $UA $UA $UA] [proc_ids $cpid Uid]
        check "the TLS listener answers" {[port_open $lp]}
        set app [gw_capp $ua --scope host editor notes]
        check "A holds editor and notes" {[gw_app_wait $app "registered editor editor"] && [gw_app_wait $app "registered notes notes"]}
        check "B sees both" {[sees $ub editor@$A] && [sees $ub notes@$A]}

        # SIGHUP to the one started (systemd's MAINPID).
        set mark [gw_log_mark $g]
        gw_write $d 10-policy.ini "\[rule no-notes\]\naction = deny\nnames = notes\nmessage = not any more\n"
        gw_signal $g HUP
        set why "refused by rule \"no-notes\" ($d/10-policy.ini:1): not any more"
        check "capp is told: dropped notes" {[gw_app_wait $app "dropped notes *"]}
        check_equal "with the reason" "dropped notes $why" [gw_app_line $app "dropped notes *"]
        check "B no longer sees notes@A" {[sees_not $ub notes@$A]}
        check "log: reloaded" {[gw_wait_log $g "configuration reloaded from $d: 2 files, 1 rules; 1 entries withdrawn" 5000 $mark]}
        check "no reload failed" {[string first "reload failed" [gw_log $g]] < 0}
        check "the TLS listener still answers" {[port_open $lp]}

        # SIGHUP to the child: it asks its parent.
        set mark [gw_log_mark $g]
        gw_write $d 10-policy.ini "\[rule no-editor\]\naction = deny\nnames = editor notes\nmessage = none of these\n"
        exec kill -HUP $cpid
        check "capp is told: dropped editor" {[gw_app_wait $app "dropped editor *"]}
        check "log: the child asked the parent" {[gw_wait_log $g "asking the privileged process \\(pid $ppid\\)" 5000 $mark]}
        check "B no longer sees editor@A" {[sees_not $ub editor@$A]}

        # The parent killed: the child says so, once, and serves on.
        remember $cpid
        defer [list ::t::kill_proc $cpid]
        set mark [gw_log_mark $g]
        exec kill -KILL $ppid
        check "the child says its parent is gone" {[gw_wait_log $g \
            "the privileged process \\(pid $ppid\\) is gone \[^\n\]*: serving on, but without reloads from now on" 5000 $mark]}
        check "the child still runs" {[alive $cpid]}
        set app2 [gw_capp $ua --scope host other]
        check "A registers other through it" {[gw_app_wait $app2 "registered other other"]}
        check "B sees other@A" {[sees $ub other@$A]}
        exec kill -HUP $cpid
        check "a SIGHUP now says why it does not reload" {[gw_wait_log $g \
            "SIGHUP: not reloading: the privileged process that reads the configuration is gone" 5000 $mark]}
        check_equal "the loss said once" 1 \
            [regexp -all {serving on, but without reloads} [string range [gw_log $g] $mark end]]
        check "still serving" {[alive $cpid] && [sees $ub other@$A 500]}
    }

    # A reload used to be read by the gateway once it was A, and as A it
    # skipped the root-owner check: a policy file of A's was believed.
    # The root parent reads it now, with the checks of a start (also for
    # a SIGHUP sent to the child), and the directories above too.
    test privsep_untrusted {
        set p [tempdir above 0755]
        set d [gw_confdir_in $p etc [dict create \
            00-gateway.ini "\[gateway\]\nsocket = @SOCKET@\nuser = $A\n" \
            10-policy.ini "\[rule nothing\]\naction = deny\nnames = never*\n"]]
        set g [gw_start $d]
        set ua [gw_user $A $d]
        set ub [gw_user $B $d]
        set ra [gw_registry $ua]
        set rb [gw_registry $ub]
        check "A's and B's registries link" {[gw_linked $ua $ra] && [gw_linked $ub $rb]}
        set app [gw_capp $ua --scope host editor]
        check "A holds editor" {[gw_app_wait $app "registered editor editor"]}
        check "B sees editor@A" {[sees $ub editor@$A]}

        # A policy file of A's.
        set f $d/20-a.ini
        gw_write $d 20-a.ini "\[rule no-editor\]\naction = deny\nnames = editor\n"
        file attributes $f -owner $A
        set mark [gw_log_mark $g]
        gw_signal $g HUP
        check "a file of A's: refused, saying why" {[gw_wait_log $g \
            [re_quote "reload: $f: owned by uid $UA, not by root; run: chown root $f"] 5000 $mark]}
        check "and the reload failed" {[gw_wait_log $g "reload failed: keeping the configuration in use" 5000 $mark]}
        set mark [gw_log_mark $g]
        exec kill -HUP [gw_serving_pid $g]
        check "through the child: refused the same" {[gw_wait_log $g \
            [re_quote "reload: $f: owned by uid $UA, not by root"] 5000 $mark]}
        pause [slow 300]
        check_equal "capp told nothing" 0 [app_count $app "dropped*"]
        check "B still sees editor@A" {[sees $ub editor@$A 500]}

        # A world-writable directory above the configuration.
        file delete $f
        file attributes $p -permissions 0777
        set mark [gw_log_mark $g]
        gw_write $d 20-a.ini "\[rule no-editor\]\naction = deny\nnames = editor\n"
        gw_signal $g HUP
        check "a world-writable directory above: refused, saying why" {[gw_wait_log $g \
            [re_quote "reload: $p: mode 0777 lets group/other write in it (a directory above $d); run: chmod go-w $p"] 5000 $mark]}
        check "and the reload failed" {[gw_wait_log $g "reload failed: keeping the configuration in use" 5000 $mark]}
        pause [slow 300]
        check_equal "capp still told nothing" 0 [app_count $app "dropped*"]

        # Put right, the same file is taken.
        file attributes $p -permissions 0755
        set mark [gw_log_mark $g]
        gw_signal $g HUP
        check "then the reload goes through" {[gw_wait_log $g "configuration reloaded from $d: 3 files, 2 rules; 1 entries withdrawn" 5000 $mark]}
        check "capp is told: dropped editor" {[gw_app_wait $app "dropped editor *"]}
    }

    # Without user = the gateway stays root, and so does its reload's
    # check: a file of A's is refused.
    test root_reload_trust {
        set d [gw_confdir [dict create 00-gateway.ini "\[gateway\]\nsocket = @SOCKET@\n"]]
        set g [gw_start $d]
        check_equal "one process, root" {0 0 0 0} [proc_ids [gw_pid $g] Uid]
        set f $d/10-a.ini
        gw_write $d 10-a.ini "\[rule a\]\naction = deny\nnames = x\n"
        file attributes $f -owner $A
        set mark [gw_log_mark $g]
        gw_signal $g HUP
        check "a file of A's: refused" {[gw_wait_log $g \
            [re_quote "reload: $f: owned by uid $UA, not by root; run: chown root $f"] 5000 $mark]}
        check "and the reload failed" {[gw_wait_log $g "reload failed: keeping the configuration in use" 5000 $mark]}
    }
} 300
