# tcllib's own nameserv client against commregd (docs/protocol.md §3):
# bind, duplicate bind, glob search, exact round-trip of awkward names and
# data, protocol version and features, continuous search fed by other
# processes, release.
source [file join [file dirname [info script]] lib.tcl]
package require nameserv

# A separate tclsh that binds NAME with DATA through nameserv, prints
# BOUND (or ERR msg), and stays connected until killed (30 s at most).
set binder_script {
    package require nameserv
    lassign $argv port name data
    after 30000 exit
    nameserv::configure -port $port -host localhost
    if {[catch {nameserv::bind $name $data} err]} {
        puts "ERR $err"
    } else {
        puts BOUND
    }
    flush stdout
    vwait forever
}

# Escape a string so that `string match` takes it literally.
proc literal {s} {
    return [string map {\\ \\\\ * \\* ? \\? [ \\[ ] \\]} $s]
}

proc record {var type response} {
    lappend ::$var [list $type $response]
}

main {
    set home [new_home]
    lassign [start_registry $home] dpid port
    nameserv::configure -port $port -host localhost
    # An independent second client connection in this process.
    comm::comm new ::other
    set oid [list $port 127.0.0.1]

    test bind_then_search_finds_the_name {
        check_equal "bind returns empty" "" [must {nameserv::bind app {5555 host}}]
        check_equal "search app" {app {5555 host}} [must {nameserv::search app}]
        check_equal "search without pattern means *" {app {5555 host}} \
            [must {nameserv::search}]
    }

    test duplicate_bind_is_refused_with_tcllibs_message {
        lassign [call {nameserv::bind app other}] code msg
        check_equal "same client: error" 1 $code
        check_equal "same client: message" {Name "app" is already bound} $msg
        lassign [call {::other send $oid [list Bind app other]}] code msg
        check_equal "other connection: error" 1 $code
        check_equal "other connection: message" {Name "app" is already bound} $msg
        check_equal "first binding kept" {app {5555 host}} [must {nameserv::search app}]
    }

    test search_uses_tcl_string_match_globs {
        must {nameserv::release}
        check_equal "registry empty after release" {} [must {nameserv::search *}]
        set all {a ab abc b ba bb cb x*y xay}
        foreach n $all { must {nameserv::bind $n d-$n} }
        foreach {pattern expected} [list \
            *          $all \
            a*         {a ab abc} \
            ?b         {ab bb cb} \
            {[ab]*}    {a ab abc b ba bb} \
            {[a-b]?}   {ab ba bb} \
            {x\*y}     {x*y} \
            x*y        {x*y xay} \
            *c         {abc} \
            ?          {a b} \
            AB         {} \
            nomatch*   {} \
        ] {
            set res [must {nameserv::search $pattern}]
            check_set "search [list $pattern] names" $expected [dict keys $res]
            set wrong {}
            dict for {k v} $res { if {$v ne "d-$k"} { lappend wrong $k $v } }
            check_equal "search [list $pattern] data" {} $wrong
        }
        must {nameserv::release}
    }

    test awkward_names_and_data_round_trip_exactly {
        set cases [list \
            {hello world}       {data with spaces} \
            {br{ace}}           {da{ta}} \
            "open\{only"        "close\}only" \
            {q"uote}            {"quoted" data} \
            {back\slash}        {a\\b \n \{ \} \\} \
            "endslash\\"        "\\" \
            {dollar$x}          {$HOME $::env(X)} \
            {[cmd]}             {[exit 1]} \
            {semi;colon}        {a; b} \
            {#hash}             {# not a comment} \
            "\u00fcn\u00efc\u00f8d\u00e9 \u2603" "\u65e5\u672c\u8a9e \u00a7" \
            emptydata           {} \
            {  lead}            {trail  } \
        ]
        foreach {name data} $cases {
            lassign [call {nameserv::bind $name $data}] code msg
            check_equal "bind [show $name]" {0 {}} [list $code $msg]
        }
        foreach {name data} $cases {
            lassign [call {nameserv::search [literal $name]}] code res
            check_equal "search [show $name] literally" [list $name $data] $res
            lassign [call {::other send $oid [list Search [literal $name]]}] code res
            check_equal "other connection sees [show $name]" [list $name $data] $res
        }
        set everything [must {nameserv::search *}]
        check_equal "search * has every name once" \
            [llength $cases] [llength $everything]
        foreach {name data} $cases {
            check "search * has [show $name] with its data" {
                [dict exists $everything $name]
                && [dict get $everything $name] eq $data
            }
        }
        must {nameserv::release}
    }

    test protocol_version_is_1_and_features_announced {
        check_equal "server_protocol" 1 [must {nameserv::server_protocol}]
        set features [must {nameserv::server_features}]
        foreach f {Core Search/Continuous Commreg/1} {
            check "feature $f in [show $features]" {$f in $features}
        }
    }

    test continuous_search_follows_other_processes {
        must {nameserv::release}
        check_equal "nothing bound" {} [search $port *]
        set ::ev_all {}
        set ::ev_none {}
        set r [must {nameserv::search -continuous *}]
        $r configure -command [list record ev_all]
        set r2 [must {nameserv::search -continuous nomatch*}]
        $r2 configure -command [list record ev_none]

        check "initial notification arrives" {[wait_until {[llength $::ev_all] >= 1}]}
        check_equal "initial add is empty" {{add {}}} $::ev_all
        check "receiver filled" {[$r filled]}

        set child [spawn_tcl binder $binder_script $port cont.child {1234 childhost}]
        check_equal "child bound" BOUND [readline $child]
        check "add notification arrives" {[wait_until {[llength $::ev_all] >= 2}]}
        check_equal "add for the child's name" \
            {add {cont.child {1234 childhost}}} [lindex $::ev_all 1]
        check_equal "receiver knows the name" {cont.child} [$r names]

        stop $child KILL
        check "remove notification arrives" {[wait_until {[llength $::ev_all] >= 3}]}
        check_equal "remove for the child's name" \
            {remove {cont.child {1234 childhost}}} [lindex $::ev_all 2]
        check_equal "receiver forgot the name" {} [$r names]

        pause 300
        check_equal "no more events" 3 [llength $::ev_all]
        check_equal "non-matching search saw only its initial add" \
            {{add {}}} $::ev_none

        # A stopped search hears nothing more (the receiver itself reports
        # its own "stop" on destruction).
        $r destroy
        $r2 destroy
        pause 50
        set child [spawn_tcl binder $binder_script $port cont.after x]
        check_equal "second child bound" BOUND [readline $child]
        pause 300
        check_equal "no event after stop" {{stop {}}} [lrange $::ev_all 3 end]
        stop $child

        # A search started while names exist gets them in its first add.
        must {nameserv::bind pre.x {1 h}}
        must {nameserv::bind other.y {2 h}}
        set ::ev_pre {}
        set r3 [must {nameserv::search -continuous pre.*}]
        $r3 configure -command [list record ev_pre]
        check "initial notification (non-empty)" {[wait_until {[llength $::ev_pre] >= 1}]}
        check_equal "initial add holds the current matches" \
            {{add {pre.x {1 h}}}} $::ev_pre
        $r3 destroy
        must {nameserv::release}
    }

    test release_drops_all_names_of_this_client_only {
        must {nameserv::bind r1 one}
        must {nameserv::bind r2 two}
        must {::other send $oid [list Bind r3 three]}
        check_equal "three names" {r1 r2 r3} [lsort [dict keys [search $port r*]]]
        check_equal "release returns empty" "" [must {nameserv::release}]
        check_equal "only the other client's name is left" {r3 three} [search $port r*]
        check_equal "a released name can be bound again" "" [must {nameserv::bind r1 again}]
        ::other shutdown $oid
        check "closing a connection drops its names" \
            {[wait_until {[dict keys [::t::search $port r3]] eq ""} 2000]}
        must {nameserv::release}
        check "daemon still running" {[alive $dpid]}
    }
}
