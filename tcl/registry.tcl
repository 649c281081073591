# comm::registry -- the user's commreg registry, for Tcl comm applications.
#
# An application registers the port its own comm channel listens on
# under a name (`foo`, `foo #2` ... as Tk's `tk appname`), looks up other
# applications by name, lists them and watches them come and go.  The
# registry is the daemon commregd, one per user and host, found through
# the port file $HOME/.tcl/comm/registry/<short-hostname>
# (docs/election.md); this package speaks its Commreg/1 commands
# (docs/protocol.md §4) over a private comm channel, as tcllib's nameserv
# does for nns, and starts `commregd --detach` when no registry runs.
#
# When the registry dies, the package gets it back by itself: commregd is
# spawned again (the election in commregd makes exactly one registry, on
# the same port), every name is registered again with its old serial,
# every watch is started again and only the differences from the fresh
# snapshot reach the application.  All of that runs from the event loop
# with callbacks; nothing in it waits in vwait.  docs/tcl.md is the
# user's guide.
#
# Nothing is sent to a port before the kernel has said that the socket
# that accepted our connection there belongs to our own uid, and the
# user registry's port is not tried at all unless a live registry holds
# the lock on its port file (but in a failover's first try, to the port
# the lost registry had: TryConnect says why): a stopped registry's
# port, still in the port file or in TCL_COMM_REGPORT, may have been
# taken by another local user, who would otherwise get our names, port
# and pid and answer our lookups (docs/security.md).  `send` holds an
# application's port to the same rule: the socket that accepts must be
# held by a uid that registered that port (SendExpect, SendConnected).
#
# A private registry (`commreg run -- CMD` gives CMD's process group one,
# named by the environment variable TCL_COMM_REGPORT) is used instead
# when it answers.  It is never replaced: when it goes, its group is over,
# so the package drops every registration, ends every watch and becomes
# "orphaned"; lookups are then answered from what it remembers (marked
# stale with `lookup -stale VAR`) and everything else fails.
#
# A registration with -scope host or global is judged by the host
# gateway, through the user registry; the gateway may withdraw it later
# (Commreg/Withdrawn), and the package then forgets it and tells the
# application `dropped NAME REASON`.
#
# A registry that stops answering without closing the connection (a
# SIGSTOP, a hung host, a partition) is noticed by a liveness check
# (-liveness): after -liveness/3 ms without hearing from the registry
# the package sends it an empty script, which every comm peer answers
# with ""; no answer within the rest of -liveness and the connection is
# dropped and treated as lost, as if it had closed.
#
# On top of that, the commands Tk gives a Tk application (docs/tcl.md
# "The Tk way"): `send NAME SCRIPT` (look NAME up, comm-send to it),
# `interps` (as `winfo interps`) and `appname ?NAME?` (as `tk appname`:
# the one name of the application, following its comm port).  Errors
# carry -errorcode values that start with COMMREG, for `try ... trap`.
#
# As the design note's "Packaging" wants, this package may be loaded and
# configured before comm: `configure -register NAME` then makes the
# loading of comm register the application (see WatchCommLoad).  So comm
# is not loaded here unless it already is; it is loaded when the first
# command that needs it runs, or when the application calls `comm::comm`
# (an auto_index entry, for scripts that never said `package require
# comm` because this package used to load it).

package require Tcl 8.6
package require interp
if {[package provide comm] ne ""} {
    package require comm 4.6
} elseif {![info exists ::auto_index(::comm::comm)]} {
    set ::auto_index(::comm::comm) {package require comm 4.6}
}

namespace eval ::comm::registry {
    variable version 0.1.0

    # configure options (docs/tcl.md)
    variable opt
    array set opt {
        -home     ""
        -commregd ""
        -command  ""
        -timeout  10000
        -grace    3000
        -liveness 15000
        -register ""
    }
    variable optnames {-home -commregd -command -timeout -grace -liveness -register}
    # The smallest -liveness other than 0 (off).
    variable liveness_min 300

    # Connection.  state: idle (no registry connection; the next call
    # finds one), connecting (a call is finding it), connected,
    # recovering (lost, getting it back from the event loop), or
    # orphaned (the private registry we were bound to is gone; only
    # disconnect leaves this state).
    variable state idle
    variable private 0      ;# 1: bound to the TCL_COMM_REGPORT registry
    variable gone ""        ;# orphaned: why, as calls report it
    variable link ""        ;# the private comm channel
    variable sid ""         ;# the registry's comm id, {PORT 127.0.0.1}
    variable regport ""     ;# its port
    variable regscope ""    ;# what its Hello says it is: user, private, semi
    variable gen 0          ;# bumped at every loss: stale callbacks see it
    variable stamp 0        ;# bumped when a recovery ends (Connect waits)
    variable owed 0         ;# 1 when "lost" was told and "regained" not yet
    variable quiet 0        ;# >0 while we drop a connection ourselves
    variable helloed 0      ;# 1 once the registry on sid said hello
    variable uid ""         ;# our uid (cached)

    # Whose port is it (see "Whose port is it?" below): the kernel's
    # tables that say so (the tests point them elsewhere), how long a
    # connection to a registry may take to be set up, why the last
    # connection our channel tried was refused ({} or {MESSAGE
    # ERRORCODE}), the last refusal told to -command as `error` (told
    # once until a registry is found), and whether the want of /proc has
    # been told.
    variable procfile
    array set procfile {tcp /proc/net/tcp tcp6 /proc/net/tcp6 locks /proc/locks}
    variable connect_ms 3000
    # How long a connection in a registry's queue may wait to be accepted
    # when its owner cannot be told before (AcceptorOf).
    variable accept_ms 1000
    # 1 when the compiled helper comm::registry::kernel (tcl/kernel.c)
    # asks the kernel who accepted a connection, one socket at a time;
    # 0: /proc/net/tcp is read instead, which costs a walk of the whole
    # table each time.  Both refuse another uid's socket and one whose
    # owner cannot be told (Unowned); the helper also tells request
    # sockets' owners only once their handshake ends, and knows every
    # local address.  A script (or a test) that sets it to 0 before
    # `package require comm::registry` gets /proc.
    variable kernel
    if {![info exists kernel] || $kernel} {
        set kernel [expr {![catch {package require -exact comm::registry::kernel $version}]}]
    }
    variable refused {}
    variable told ""
    variable noproc_told 0

    # Our registrations: id -> dict base name serial port scope follow
    # (follow 1: PORT is comm's own, [comm::comm self], and follows it
    # when the application reconfigures comm; see FollowCommPort).
    variable regs
    array set regs {}
    variable regseq 0

    # The Tk way (docs/tcl.md "The Tk way").  appid: the id in regs of
    # the application's name (appname, configure -register), "" when it
    # has none.  loadwatch: 1 while a `package` trace waits for comm to
    # be loaded (configure -register before comm); pkgdepth: how deep in
    # `package` commands we are then (the registration waits for the
    # outermost to return).  sends: `send` calls waiting for their
    # answer, key -> "" or comm's callback options.
    variable appid ""
    variable loadwatch 0
    variable pkgdepth 0
    variable sends
    array set sends {}
    variable sendseq 0
    # While `send` connects: {NAME UIDS}, the uids that may hold the
    # port (SendConnected); and why its connection was refused, {} or
    # {MESSAGE ERRORCODE}.
    variable sendcheck ""
    variable sendrefused {}
    # Connections send checked (SendChecked): channel -> {its addresses,
    # the uids it was checked against}.
    variable sendchecked
    array set sendchecked {}

    # Our watches, by token: pattern, command, the entries the
    # application has been told of (name -> entry), and those that were
    # missing from the snapshot after a failover and are kept for -grace
    # ms in case their owner has not registered again yet.
    variable wpattern
    variable wcmd
    variable wknown
    variable wpending
    variable wtimer
    array set wpattern {}
    array set wcmd {}
    array set wknown {}
    array set wpending {}
    array set wtimer {}
    variable watchseq 0

    # Synchronous calls waiting for their answer: key -> "" or the
    # callback's option list.
    variable calls
    array set calls {}
    variable callseq 0

    # Recovery after a loss (see BeginRecovery).
    variable rec
    array set rec {start 0 attempt 0 reason "" timer "" pending 0 quick 0}
    variable spawnout
    array set spawnout {}
    variable giveup_ms 30000

    # What a private registry told us of other applications (name -> comm
    # id), from lookups, lists and watches, so that lookups can still be
    # answered once it is gone.  Kept only while bound to a private
    # registry.  Bounded: at most known_max names; when full, the oldest
    # (the one learnt or confirmed longest ago) is evicted to make room.
    variable known {}
    variable known_max 4096

    # The liveness check of the connection (see LivenessStart).  timer:
    # the one pending `after` of the check ("" when none); last: when the
    # registry was last heard from (clock milliseconds; any message, as
    # comm's eval, callback and reply hooks on our channel see it); sent:
    # when the ping now out was sent ("" when none).  pings and answers
    # count pings sent and answered (the tests read them).
    variable live
    array set live {timer "" last 0 sent "" pings 0 answers 0}

    # Notifications for the application, delivered in order from the
    # event loop: {watch TOKEN TYPE ENTRY} or {life EVENT ARG...}.
    variable queue {}
    variable flushing 0
    variable flushid ""
}

# ---------------------------------------------------------------------------
# API

# register ?-scope S? ?-port P? NAME -> the assigned name ("foo", "foo #2")
proc ::comm::registry::register {args} {
    variable regs
    variable regseq
    set usage {wrong # args: should be "comm::registry::register ?-scope scope? ?-port port? name"}
    if {[llength $args] % 2 != 1} {
        return -code error $usage
    }
    set name [lindex $args end]
    set port ""
    set scope ""
    foreach {o v} [lrange $args 0 end-1] {
        switch -exact -- $o {
            -scope {
                # private: what a private registry serves (and gives
                # anyway); host and global: judged by the host gateway.
                if {$v ni {user host global private}} {
                    return -code error "bad scope \"$v\": must be user, host or global"
                }
                set scope $v
            }
            -port {
                if {![string is integer -strict $v] || $v < 1 || $v > 65535} {
                    return -code error "expected a port number 1-65535 but got \"$v\""
                }
                set port $v
            }
            default {
                return -code error "bad option \"$o\": must be -port or -scope"
            }
        }
    }
    set id [Register $name $port $scope]
    return [dict get $regs($id) name]
}

# Register NAME for PORT ("": comm's own port, followed when it changes)
# with SCOPE; returns the id of the registration in regs.
proc ::comm::registry::Register {name port scope} {
    variable regs
    variable regseq
    set follow 0
    if {$port eq ""} {
        NeedComm
        set port [::comm::comm self]
        if {!$port} {
            return -code error -errorcode {COMMREG NOTLISTENING} \
                "this application's comm channel does not listen (comm::comm self is 0): configure it with -listen 1 or give -port"
        }
        set follow 1
        WatchCommPort
    }
    Connect
    set assigned [Call [RegisterCommand $name $port $scope ""]]
    set id r[incr regseq]
    set regs($id) [dict create base $name name $assigned \
        serial [SerialOf $name $assigned] port $port scope $scope \
        follow $follow]
    return $id
}

# unregister NAME: NAME as register returned it (or as asked for, when
# this application holds only one instance of it).
proc ::comm::registry::unregister {name} {
    set id [FindReg $name]
    if {$id eq ""} {
        return -code error -errorcode [::list COMMREG NOTREGISTERED $name] \
            "\"$name\" is not registered by this application"
    }
    UnregisterId $id
    return
}

# Withdraw the registration ID (forgotten here even if the registry's
# answer is an error).
proc ::comm::registry::UnregisterId {id} {
    variable regs
    variable state
    set assigned [dict get $regs($id) name]
    unset regs($id)
    if {$state eq "connected"} {
        Call [::list Commreg/Unregister $assigned]
    }
    # Otherwise the registry that had it is gone, and it will not be
    # registered again.
}

# lookup ?-stale VARNAME? NAME -> comm id {PORT HOST}, ready for
# `comm::comm send`.  With -stale, VARNAME (in the caller) is set to 1
# when the answer comes from memory because the private registry is
# gone, else 0.
proc ::comm::registry::lookup {args} {
    variable state
    variable private
    variable known
    switch -exact -- [llength $args] {
        1 { set name [lindex $args 0] }
        3 {
            if {[lindex $args 0] ne "-stale"} {
                return -code error "bad option \"[lindex $args 0]\": must be -stale"
            }
            upvar 1 [lindex $args 1] stale
            set stale 0
            set name [lindex $args 2]
        }
        default {
            return -code error {wrong # args: should be "comm::registry::lookup ?-stale varName? name"}
        }
    }
    if {$state eq "orphaned"} {
        if {[dict exists $known $name]} {
            set stale 1
            return [dict get $known $name]
        }
        Gone "; \"$name\" was never seen while it lived"
    }
    Connect
    if {[catch {Call [::list Commreg/Lookup $name]} id opts]} {
        if {[string match "no application named *" $id]} {
            if {$private} {
                Forget $name
            }
            dict set opts -errorcode [::list COMMREG NOTFOUND $name]
        }
        return -options $opts $id
    }
    if {$private} {
        Remember $name $id
    }
    return $id
}

# list ?PATTERN? -> entry dicts (docs/protocol.md §4), sorted by name
proc ::comm::registry::list {{pattern *}} {
    variable private
    variable known
    Connect
    set entries [Call [::list Commreg/List $pattern]]
    if {$private} {
        # Names matching PATTERN that are not in the answer are gone.
        set seen {}
        foreach e $entries {
            if {![catch {dict get $e name} name]} {
                dict set seen $name 1
            }
        }
        foreach name [dict keys $known] {
            if {![dict exists $seen $name] && [string match $pattern $name]} {
                Forget $name
            }
        }
        foreach e $entries {
            RememberEntry $e
        }
    }
    return $entries
}

# status -> dict state (idle, connecting, connected, recovering or
# orphaned), port (the registry's, or "") and private (1 when bound to
# the private registry TCL_COMM_REGPORT names).
proc ::comm::registry::status {} {
    variable state
    variable regport
    variable private
    set port [expr {$state in {connected recovering orphaned} ? $regport : ""}]
    return [dict create state $state port $port private $private]
}

# port -> the port of the registry this application uses, found and
# checked as every call finds and checks it (the user's registry,
# started if need be; or the private one TCL_COMM_REGPORT names).  For
# tcllib clients (nameserv, nns), which would otherwise take a port from
# the port file without checking who listens there.
proc ::comm::registry::port {} {
    variable regport
    Connect
    return $regport
}

# watch PATTERN CMD -> token.  CMD is called with "add ENTRY" for every
# entry matching now, then "add ENTRY" / "remove ENTRY" as they come and
# go, from the event loop.
proc ::comm::registry::watch {pattern cmd} {
    variable watchseq
    variable wpattern
    variable wcmd
    variable wknown
    variable wpending
    Connect
    set tag w[incr watchseq]
    set wpattern($tag) $pattern
    set wcmd($tag) $cmd
    set wknown($tag) {}
    set wpending($tag) {}
    # The snapshot is applied as its answer is read, before any event of
    # the watch that follows it on the connection (docs/protocol.md §4).
    if {[catch {Call [::list Commreg/Watch $tag $pattern] "" \
                     [::list ::comm::registry::Resnapshot $tag -first 1]} \
             res opts]} {
        DropWatch $tag
        return -options $opts $res
    }
    return $tag
}

proc ::comm::registry::unwatch {token} {
    variable wcmd
    variable state
    if {![info exists wcmd($token)]} {
        return -code error "no watch \"$token\""
    }
    DropWatch $token
    if {$state eq "connected"} {
        catch {Call [::list Commreg/Unwatch $token]}
    }
    return
}

# entries TOKEN -> the entries the watch's command has been told of and
# not told are gone, sorted by name.
proc ::comm::registry::entries {token} {
    variable wknown
    variable wpending
    if {![info exists wknown($token)]} {
        return -code error "no watch \"$token\""
    }
    set view [dict merge $wpending($token) $wknown($token)]
    set l {}
    foreach name [lsort [dict keys $view]] {
        lappend l [dict get $view $name]
    }
    return $l
}

# names -> the names this application holds now (after any renaming)
proc ::comm::registry::names {} {
    variable regs
    set l {}
    foreach id [RegIds] {
        lappend l [dict get $regs($id) name]
    }
    return $l
}

proc ::comm::registry::configure {args} {
    variable opt
    variable optnames
    variable state
    if {![llength $args]} {
        set l {}
        foreach o $optnames { lappend l $o $opt($o) }
        return $l
    }
    if {[llength $args] == 1} {
        set o [lindex $args 0]
        if {$o ni $optnames} {
            return -code error "bad option \"$o\": must be [join $optnames {, }]"
        }
        return $opt($o)
    }
    if {[llength $args] % 2} {
        return -code error "value for \"[lindex $args end]\" missing"
    }
    foreach {o v} $args {
        switch -exact -- $o {
            -home {
                if {$v ne $opt(-home) && $state ne "idle"} {
                    return -code error "cannot change -home while connected to a registry (call comm::registry::disconnect first)"
                }
            }
            -timeout - -grace {
                if {![string is integer -strict $v] || $v < ($o eq "-timeout")} {
                    return -code error "$o: expected milliseconds but got \"$v\""
                }
            }
            -liveness {
                variable liveness_min
                if {![string is integer -strict $v] || ($v != 0 && $v < $liveness_min)
                    || $v > 86400000} {
                    return -code error "-liveness: expected 0 (no liveness check) or milliseconds from $liveness_min to 86400000 but got \"$v\""
                }
            }
            -commregd - -command - -register {}
            default {
                return -code error "bad option \"$o\": must be [join $optnames {, }]"
            }
        }
    }
    set old $opt(-liveness)
    set newargs {}
    foreach {o v} $args {
        if {$o eq "-register"} {
            set register $v
        } else {
            lappend newargs $o $v
        }
    }
    array set opt $newargs
    if {$opt(-liveness) != $old} {
        # The check of a live connection goes on with the new value (or
        # stops, for 0).
        LivenessStart
    }
    if {[info exists register]} {
        # After the other options, which the registration may need
        # (-home, -commregd).
        ConfigureRegister $register
    }
    return
}

# configure -register NAME: the application's name, registered when
# comm is loaded (the design note's "Packaging": the registry is
# configured before comm launches the service), or at once when comm
# already is; "" withdraws it.  An error (comm is loaded, the
# registration failed) leaves the option as it was.
proc ::comm::registry::ConfigureRegister {name} {
    variable opt
    if {![CommLoaded]} {
        set opt(-register) $name
        if {$name eq ""} {
            UnwatchCommLoad
        } else {
            WatchCommLoad
        }
        return
    }
    UnwatchCommLoad
    if {$name eq ""} {
        variable appid
        variable regs
        if {$appid ne "" && [info exists regs($appid)]} {
            set id $appid
            set appid ""
            UnregisterId $id
        }
        set appid ""
    } else {
        appname $name
    }
    set opt(-register) $name
}

# disconnect: close the registry connection and forget every
# registration and watch (the registry removes them as the connection
# closes).  The next call finds a registry again.
proc ::comm::registry::disconnect {} {
    variable regs
    variable wcmd
    variable state
    variable gen
    variable owed
    variable private
    variable gone
    variable known
    variable regport
    incr gen
    CancelRecovery
    LivenessStop
    foreach tag [array names wcmd] {
        DropWatch $tag
    }
    array unset regs
    array set regs {}
    set ::comm::registry::appid ""
    set state idle
    set owed 0
    DropConnection
    # Orphaned or not, start over: the next call looks at
    # TCL_COMM_REGPORT again.
    set private 0
    set gone ""
    set known {}
    set regport ""
    return
}

# ---------------------------------------------------------------------------
# The Tk way (docs/tcl.md "The Tk way"): send by name, interps, appname,
# and the registration that loading comm makes.

# send ?-async? ?-timeout MS? ?--? NAME CMD ?ARG ...? -> CMD's result in
# the application registered as NAME (as Tk's send).  The script goes
# through the application's own comm channel, as `comm::comm send` would
# send it, so NAME sees the sender's comm id as `comm::comm remoteid`.
proc ::comm::registry::send {args} {
    variable sends
    variable sendseq
    set usage {wrong # args: should be "comm::registry::send ?-async? ?-timeout ms? ?--? name cmd ?arg ...?"}
    set async 0
    set ms ""
    while {[llength $args] && [string match -* [lindex $args 0]]} {
        set args [lassign $args o]
        switch -exact -- $o {
            -async { set async 1 }
            -timeout {
                if {![llength $args]} {
                    return -code error $usage
                }
                set args [lassign $args ms]
                if {![string is integer -strict $ms] || $ms < 1} {
                    return -code error "-timeout: expected milliseconds but got \"$ms\""
                }
            }
            -- break
            default {
                return -code error "bad option \"$o\": must be -async, -timeout or --"
            }
        }
    }
    if {[llength $args] < 2} {
        return -code error $usage
    }
    set script [lassign $args name]
    if {![info complete $script]} {
        return -code error "incomplete command: $script"
    }
    set id [lookup $name]
    NeedComm
    # A connection comm opens for this send is checked before a byte
    # goes on it (SendConnected).  One comm has already is checked too,
    # once: comm files a connection a peer opened to us under the id that
    # peer *claims*, so any local user could pose as {PORT localhost}.
    # Its other end must be a socket of the uid that registered NAME.
    if {$id in [::comm::comm ids]} {
        set fid [::comm::comm connect $id]
        set expect [SendChecked $fid]
        if {![llength $expect]} {
            set expect [SendExpect $name $id]
            if {[catch {CheckPeerOwner $fid $expect} err opts]} {
                return -code error -errorcode [dict get $opts -errorcode] \
                    "application \"$name\" ($id): $err"
            }
            SendChecked $fid $expect
        }
    } else {
        set expect [SendExpect $name $id]
    }
    WatchSendConnect
    variable sendcheck [::list $name $expect]
    variable sendrefused {}
    if {$async} {
        set code [catch {::comm::comm send -async $id {*}$script} err opts]
        set sendcheck ""
        if {$code} {
            Unreachable $name $id $err $opts
        }
        return
    }
    set key [incr sendseq]
    set sends($key) ""
    set code [catch {::comm::comm send -command \
                         [::list ::comm::registry::SendDone $key] \
                         $id {*}$script} err opts]
    set sendcheck ""
    if {$code} {
        unset sends($key)
        Unreachable $name $id $err $opts
    }
    if {$ms ne ""} {
        set timer [after $ms [::list ::comm::registry::SendDone $key -code timeout]]
    }
    while {$sends($key) eq ""} {
        vwait ::comm::registry::sends($key)
    }
    if {$ms ne ""} {
        after cancel $timer
    }
    set r $sends($key)
    unset sends($key)
    set code [dict get $r -code]
    set result [expr {[dict exists $r -result] ? [dict get $r -result] : ""}]
    switch -exact -- $code {
        0 - "" { return $result }
        1 {
            # The application's own error, as it raised it.
            set ec [expr {[dict exists $r -errorcode] ? [dict get $r -errorcode] : "NONE"}]
            set ei [expr {[dict exists $r -errorinfo] ? [dict get $r -errorinfo] : $result}]
            return -code error -errorcode $ec -errorinfo $ei $result
        }
        -1 {
            return -code error -errorcode [::list COMMREG GONE $name $id $result] \
                "application \"$name\" ($id) went before it answered: $result"
        }
        timeout {
            return -code error -errorcode [::list COMMREG TIMEOUT $name $ms] \
                "application \"$name\" ($id) did not answer within $ms ms"
        }
        default {
            return -code $code $result
        }
    }
}

# comm's answer (or our timer) for the send KEY.
proc ::comm::registry::SendDone {key args} {
    variable sends
    if {![info exists sends($key)] || $sends($key) ne ""} return
    set sends($key) $args
}

# `comm::comm send` failed at once (ERR, OPTS): if comm could not connect
# to ID, the application registered as NAME is gone (it died, and the
# registry has not yet seen its connection close); anything else is
# passed on as it is.
proc ::comm::registry::Unreachable {name id err opts} {
    variable sendrefused
    if {[llength $sendrefused]} {
        # Connected, but to a socket that is not the application's.
        lassign $sendrefused msg code
        set sendrefused {}
        return -code error -level 2 -errorcode $code \
            "refusing to send to \"$name\" ($id): $msg"
    }
    if {[string match "Connect to remote failed:*" $err]} {
        set why [string trim [string range $err 25 end]]
        return -code error -level 2 \
            -errorcode [::list COMMREG GONE $name $id $why] \
            "application \"$name\" ($id) cannot be reached: $why"
    }
    dict set opts -level 2
    return -options $opts $err
}

# Whose port is it, for `send` (docs/tcl.md "send ... checks the port").
# An application's entry says which port it listens on; once it has died,
# anyone may listen there, and would be sent the script and believed.  So
# a connection comm opens for `send` to a port of this host is checked as
# the registry's are (OwnedSocket): the kernel must list the socket that
# accepted it as held by a uid that registered that port (the uid of an
# entry leading there, under NAME or NAME@USER; ours when the registry
# lists none: a user or private registry holds only our own entries), or
# comm's connect fails with nothing sent.  A connection comm already has
# is checked the same way once (send, SendChecked); a port of another
# host cannot be checked here.

# The uids that may hold the port of ID, registered as NAME.
proc ::comm::registry::SendExpect {name id} {
    set uids {}
    set pattern "[string map {\\ \\\\ * \\* ? \\? [ \\[ ] \\]} $name]*"
    if {![catch {::comm::registry::list $pattern} entries]} {
        foreach e $entries {
            if {![catch {dict get $e uid} u] && [string is integer -strict $u]
                && [IdOf $e] eq $id && $u ni $uids} {
                lappend uids $u
            }
        }
    }
    if {![llength $uids]} {
        lappend uids [Uid]
    }
    return $uids
}

# Put SendConnected into comm's connected hook of its default channel
# (again, if the application replaced that hook).  comm runs the hook in
# commConnect, where `fid` is the new connection, before it writes
# anything on it; an error there closes it and fails the send.
proc ::comm::registry::WatchSendConnect {} {
    set script {::comm::registry::SendConnected $fid}
    if {[catch {::comm::comm hook connected} current]} {
        set current ""
    }
    if {[string first $script $current] < 0} {
        ::comm::comm hook connected +$script
    }
}

# comm's connected hook: only while `send` connects (sendcheck), check
# the connection FID; otherwise (the application's own comm::comm send)
# nothing.
proc ::comm::registry::SendConnected {fid} {
    variable sendcheck
    variable sendrefused
    if {$sendcheck eq ""} return
    # EXPECT: the uids that may hold NAME's port (when comm had a
    # connection as send began, yet opens one because it went meanwhile,
    # those it was checked against).
    lassign $sendcheck name expect
    set sendcheck ""
    if {[catch {CheckPeerOwner $fid $expect} err opts]} {
        set sendrefused [::list $err [dict get $opts -errorcode]]
        return -code error $err
    }
    SendChecked $fid $expect
}

# SendChecked FID: the uids connection FID was checked against
# (CheckPeerOwner) for send, {} when it was not.  SendChecked FID EXPECT:
# note that it was, against EXPECT.  Kept by the connection's addresses
# as well as its channel name, which Tcl may give a later connection;
# the notes of closed channels go as a new one is made.
proc ::comm::registry::SendChecked {fid {expect {}}} {
    variable sendchecked
    if {[catch {::list [fconfigure $fid -sockname] [fconfigure $fid -peername]} key]} {
        return {}
    }
    if {[llength $expect]} {
        set open [chan names]
        foreach f [array names sendchecked] {
            if {$f ni $open} { unset sendchecked($f) }
        }
        set sendchecked($fid) [::list $key $expect]
        return $expect
    }
    if {[info exists sendchecked($fid)] && [lindex $sendchecked($fid) 0] eq $key} {
        return [lindex $sendchecked($fid) 1]
    }
    return {}
}

# How /proc/net/tcp (tcp6) writes ADDR: {KIND HEX}, or {} for an address
# this check does not know (an IPv6 address other than ::1 and
# ::ffff:a.b.c.d).  Each 32-bit word as the kernel holds it (network
# order), printed as a number of this machine's byte order.
proc ::comm::registry::AddrHex {addr} {
    set le [expr {$::tcl_platform(byteOrder) eq "littleEndian"}]
    set v4 {}
    if {[regexp {^(?:::ffff:)?([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)$} $addr -> a b c d]} {
        set v4 [expr {$le ? [format %02X%02X%02X%02X $d $c $b $a]
                          : [format %02X%02X%02X%02X $a $b $c $d]}]
    }
    if {$v4 ne "" && ![string match ::ffff:* $addr]} {
        return [::list tcp $v4]
    }
    if {$v4 ne ""} {
        return [::list tcp6 "0000000000000000[expr {$le ? {FFFF0000} : {0000FFFF}}]$v4"]
    }
    if {$addr eq "::1"} {
        return [::list tcp6 "000000000000000000000000[expr {$le ? {01000000} : {00000001}}]"]
    }
    return {}
}

# The connection FID must have been accepted by a socket of one of the
# uids EXPECT, when its other end is on this host (a loopback address,
# or our own address of the connection).
proc ::comm::registry::CheckPeerOwner {fid expect} {
    lassign [fconfigure $fid -peername] paddr - pport
    lassign [fconfigure $fid -sockname] maddr
    set loop [expr {[string match 127.* $paddr] || [string match ::ffff:127.* $paddr]
                    || $paddr eq "::1"}]
    if {!$loop && $paddr ne $maddr} return
    if {[catch {AcceptorOf $fid $pport} u opts]} {
        if {[lindex [dict get $opts -errorcode] 1] eq "WENT"} {
            return -code error -errorcode [::list COMMREG NOACCEPTOR $pport] \
                "cannot tell who holds port $pport: the connection went ($u)"
        }
        return -options $opts $u
    }
    if {$u ni $expect} {
        return -code error -errorcode [::list COMMREG NOTOURS $pport $u] \
            "port $pport is held by uid $u, not by [expr {[llength $expect] == 1 ? "uid $expect" : "uid [join $expect { or }]"}] that registered it: not the registered application"
    }
}

# interps ?PATTERN? -> the names of the registered applications (as
# `winfo interps`), sorted; those matching PATTERN (string match).
proc ::comm::registry::interps {{pattern *}} {
    set names {}
    foreach e [::comm::registry::list $pattern] {
        if {![catch {dict get $e name} name]} {
            lappend names $name
        }
    }
    return $names
}

# appname ?NAME? -> the application's name (as `tk appname`): the one
# registered for its comm port by appname or configure -register, "" if
# none.  With NAME, the application is registered as NAME (NAME #2 ...
# when taken) and then its old name, if any, is withdrawn; an error
# leaves the old name in place.
proc ::comm::registry::appname {args} {
    variable appid
    variable regs
    variable opt
    if {[llength $args] > 1} {
        return -code error {wrong # args: should be "comm::registry::appname ?newName?"}
    }
    set held [expr {$appid ne "" && [info exists regs($appid)]}]
    if {!$held} {
        set appid ""
    }
    if {![llength $args]} {
        return [expr {$held ? [dict get $regs($appid) name] : ""}]
    }
    set name [lindex $args 0]
    if {$held && $name in [::list [dict get $regs($appid) name] \
                               [dict get $regs($appid) base]]} {
        return [dict get $regs($appid) name]
    }
    set id [Register $name "" ""]
    set old $appid
    set appid $id
    set opt(-register) $name
    if {$old ne "" && [info exists regs($old)]} {
        set oldname [dict get $regs($old) name]
        if {[catch {UnregisterId $old} err]} {
            Notify life error "cannot withdraw the old name \"$oldname\": $err"
        }
    }
    return [dict get $regs($id) name]
}

# Is comm loaded, its default channel made?
proc ::comm::registry::CommLoaded {} {
    expr {[package provide comm] ne "" && [llength [info commands ::comm::comm]]}
}

# Load comm if it is not: every command that needs comm calls this first.
# (With configure -register, loading it registers the application.)
proc ::comm::registry::NeedComm {} {
    if {[package provide comm] eq ""} {
        uplevel #0 {package require comm 4.6}
    }
}

# configure -register before comm is loaded: watch every `package`
# command (an execution trace), and once comm is there and the outermost
# `package` command has returned, register.  Whatever loads comm is
# seen: the application's `package require comm`, a package that
# requires it, this package's own commands, or a first call of
# `comm::comm` (auto_index).  Waiting for the outermost `package`
# command means the registration (which runs the event loop, as every
# call to the registry does) is never made from inside a package's load
# script but the one that loaded comm returned: when a package X
# requires comm, the application is registered as `package require X`
# returns.
proc ::comm::registry::WatchCommLoad {} {
    variable loadwatch
    variable pkgdepth
    if {$loadwatch} return
    set loadwatch 1
    set pkgdepth 0
    trace add execution ::package enter ::comm::registry::PackageEntered
    trace add execution ::package leave ::comm::registry::PackageLeft
}

proc ::comm::registry::UnwatchCommLoad {} {
    variable loadwatch
    if {!$loadwatch} return
    set loadwatch 0
    trace remove execution ::package enter ::comm::registry::PackageEntered
    trace remove execution ::package leave ::comm::registry::PackageLeft
}

proc ::comm::registry::PackageEntered {args} {
    variable pkgdepth
    incr pkgdepth
}

proc ::comm::registry::PackageLeft {args} {
    variable pkgdepth
    # A trace added from inside a `package` command sees it leave but
    # not enter: never below 0.
    if {$pkgdepth > 0} {
        incr pkgdepth -1
    }
    if {$pkgdepth > 0 || ![CommLoaded]} return
    UnwatchCommLoad
    CommArrived
}

# comm is loaded: register the name configure -register asked for.  A
# failure cannot be an error of whatever loaded comm (the application
# did not call us there): it goes to -command as `error`.
proc ::comm::registry::CommArrived {} {
    variable opt
    set name $opt(-register)
    if {$name eq ""} return
    if {[catch {appname $name} err]} {
        Notify life error "cannot register \"$name\" (configure -register) as comm was loaded: $err"
    }
}

# A registration of comm's own port (register without -port, appname)
# follows it: when the application reconfigures comm's default channel
# (`comm::comm config -port 5000`, or -listen 0), the name is registered
# again for the new port, or withdrawn when comm no longer listens.  An
# execution trace on ::comm::comm sees the reconfiguration.
proc ::comm::registry::WatchCommPort {} {
    set cb ::comm::registry::CommConfigured
    if {[catch {trace info execution ::comm::comm} traces]} return
    foreach t $traces {
        if {[lindex $t 1] eq $cb} return
    }
    trace add execution ::comm::comm leave $cb
}

proc ::comm::registry::CommConfigured {cmd code result op} {
    # Only `comm::comm config|configure -opt value ...` changes anything.
    if {$code != 0 || [catch {llength $cmd} n] || $n < 4
        || ![string match conf* [lindex $cmd 1]]} return
    FollowCommPort
}

proc ::comm::registry::FollowCommPort {} {
    variable regs
    variable state
    variable appid
    if {[catch {::comm::comm self} port]} return
    foreach id [RegIds] {
        set r $regs($id)
        if {![dict exists $r follow] || ![dict get $r follow]
            || [dict get $r port] == $port} continue
        set old [dict get $r name]
        if {!$port} {
            # Nothing answers on the old port any more.
            catch {UnregisterId $id}
            Notify life dropped $old "comm's channel no longer listens (comm::comm self is 0)"
            continue
        }
        dict set regs($id) port $port
        # Not connected: the recovery under way registers the new port.
        if {$state ne "connected"} continue
        if {[catch {
            Call [::list Commreg/Unregister $old]
            Call [RegisterCommand [dict get $r base] $port \
                      [dict get $r scope] [dict get $r serial]]
        } res]} {
            unset regs($id)
            Notify life dropped $old "cannot register it again for comm's new port $port: $res"
            continue
        }
        Reregistered $id 0 $res
    }
}

# ---------------------------------------------------------------------------
# Finding the registry (docs/election.md)

proc ::comm::registry::Home {} {
    variable opt
    if {$opt(-home) ne ""} { return $opt(-home) }
    if {[info exists ::env(HOME)] && $::env(HOME) ne ""} { return $::env(HOME) }
    return [file normalize ~]
}

proc ::comm::registry::PortFile {} {
    return [file join [Home] .tcl comm registry \
                [lindex [split [info hostname] .] 0]]
}

# Our real uid, as commregd takes it (getuid).
proc ::comm::registry::Uid {} {
    variable uid
    if {$uid ne ""} { return $uid }
    if {![catch {open /proc/self/status r} f]} {
        set text [read $f]
        close $f
        if {[regexp -line {^Uid:\s+([0-9]+)} $text -> uid]} {
            return $uid
        }
    }
    set uid [exec id -u]
    return $uid
}

# Refuse what commreg refuses (docs/security.md): a tree or port file that
# is a symbolic link, not ours, or open to group/other.  0 when PATH is
# not there (nothing to refuse, nothing to read), 1 when it passes.
proc ::comm::registry::CheckPath {path kind mask} {
    if {[catch {file lstat $path st}]} { return 0 }
    if {$st(type) eq "link"} {
        error "refusing $path: it is a symbolic link, which commreg does not follow there"
    }
    if {$st(type) ne $kind} {
        error "refusing $path: it is not a [expr {$kind eq "file" ? "regular file" : $kind}]"
    }
    if {$st(uid) != [Uid]} {
        set owner $st(uid)
        catch {set owner [file attributes $path -owner]}
        error "refusing $path: it is owned by $owner, not by you (uid [Uid])"
    }
    set mode [expr {$st(mode) & 07777}]
    if {$mode & $mask} {
        set fix [expr {$kind eq "file" ? "chmod 600" :
                       $mask == 022 ? "chmod go-w" : "chmod 700"}]
        set who [expr {$mask == 022 ? "group/other may write" : "group/other may read or write"}]
        error "refusing $path: mode [format %04o $mode] is too open ($who); run: $fix $path"
    }
    return 1
}

# The port in the port file, or "" if there is none (yet).  Raises an
# error naming the path when the tree is not to be trusted.
proc ::comm::registry::ReadPortFile {} {
    set dir [file join [Home] .tcl]
    foreach {sub mask} {"" 022 comm 077 comm/registry 077} {
        set d [file join $dir {*}[split $sub /]]
        if {![CheckPath $d directory $mask]} { return "" }
    }
    set f [PortFile]
    if {![CheckPath $f file 077]} { return "" }
    if {[catch {open $f r} fh]} { return "" }
    fconfigure $fh -translation binary
    set data [read $fh 1024]
    close $fh
    # Valid only when it ends in LF: a half-written file is never believed.
    # The port is the first line; the distributed registry's addresses
    # may follow (docs/distributed.md).
    if {[string index $data end] eq "\n"
        && [regexp {^([0-9]{1,5})\n} $data -> port]} {
        scan $port %d port
        if {$port >= 1 && $port <= 65535} { return $port }
    }
    return ""
}

# ---------------------------------------------------------------------------
# Whose port is it?  (docs/security.md "A registry's port")
#
# A port is only a number.  Once a registry has stopped (cleanly, by a
# crash, at a reboot), its port file still names its port, as may a
# TCL_COMM_REGPORT whose private registry is gone, and any local user may
# listen there.  Whoever did would be told the application's names, port
# and pid, and its answers to lookups would be believed, so that the
# application's `comm::comm send` would go to it (and comm evaluates what
# a peer sends).  Hence, before anything is sent:
#
# * the user registry's port is tried only while a registry holds the
#   flock on the port file (docs/election.md): an unlocked port file is a
#   stopped registry's, whatever listens on its port (CheckPortFile; not
#   in a failover's first try, to the port the lost registry had, see
#   TryConnect);
# * every connection our channel opens, to any registry, is checked as
#   comm opens it (OwnedSocket, its -socketcmd): the kernel's table of
#   TCP sockets must show that the socket that accepted that very
#   connection belongs to our uid.  Else the connection is closed with
#   nothing sent on it.
#
# Who accepted a connection is asked of the kernel for that one socket
# (inet_diag, as the C library does) by the compiled helper
# comm::registry::kernel when it is installed, and read from
# /proc/net/tcp otherwise; the lock is read from /proc/locks.  What
# cannot be told is refused: without /proc (or the helper) nothing can
# be checked, and no registry is used: that is said once to -command,
# and every call fails saying so.

# The text of one of the kernel's tables (KIND: tcp, tcp6, locks), read
# whole.  An error with -errorcode {COMMREG NOPROC FILE} when it cannot
# be read; for tcp6 (no IPv6 here) "" instead.
proc ::comm::registry::ProcRead {kind} {
    variable procfile
    set path $procfile($kind)
    if {[catch {
        set f [open $path r]
        try {
            fconfigure $f -translation lf -encoding iso8859-1
            read $f
        } finally {
            close $f
        }
    } data]} {
        if {$kind eq "tcp6"} { return "" }
        return -code error -errorcode [::list COMMREG NOPROC $path] $data
    }
    return $data
}

# The refusal for want of /proc: ERR is ProcRead's error; WHAT says what
# could not be checked.
proc ::comm::registry::NoProc {err what} {
    return -code error -level 2 -errorcode [::list COMMREG NOPROC] \
        "cannot tell $what ($err): without /proc no registry can be checked, and none is used (docs/security.md)"
}

# The uid of the socket that the kernel's table KIND (tcp or tcp6) lists
# with local address LOCAL and remote address REMOTE (each HEX:PORT as the
# table writes them, the port in 4 hex digits) in state ESTABLISHED (01)
# or SYN_RECV (03); "" when it lists none; "pending" when it lists one
# with uid 0 and inode 0 (see Unowned).  A socket in another state is
# not one serving us (and one in TIME_WAIT lists uid 0 whoever owned it).
# The columns: sl local_address rem_address st tx:rx tr:when retrnsmt
# uid timeout inode ...  An error with -errorcode {COMMREG NOPROC FILE} when the table
# cannot be read; for tcp6 (no IPv6 here) "" instead.
#
# The table is read a page at a time, and no further than the line
# sought: printing it walks every bucket of the kernel's hash table of
# connections, empty or not (a millisecond and more of CPU on a machine
# with much memory, however few sockets it holds), and after a failover
# every application reads it at once.  Stopping at the first line is
# safe: the kernel keeps one socket per pair of addresses in these
# states (a request socket is replaced by the connection it becomes),
# and another uid cannot have one whose local port is a port we reached
# (it would have to hold that port, or accept our connection: the very
# case refused).
proc ::comm::registry::SocketUid {kind local remote} {
    variable procfile
    set path $procfile($kind)
    # As the kernel prints them (%08X:%04X): upper case.
    set needle " [string toupper $local] [string toupper $remote] "
    set re "^\\s*\[0-9\]+:${needle}(?:01|03) \\S+ \\S+ \\S+ +(\[0-9\]+) +\[0-9\]+ +(\[0-9\]+) "
    set uid ""
    if {[catch {
        set f [open $path rb]
        try {
            set tail ""
            while {$uid eq ""} {
                set text $tail[read $f 4096]
                if {[eof $f]} {
                    set tail ""
                } else {
                    # Whole lines only; the rest waits for the next page.
                    set cut [string last \n $text]
                    set tail [string range $text [expr {$cut + 1}] end]
                    set text [string range $text 0 $cut]
                }
                set at 0
                while {[set i [string first $needle $text $at]] >= 0} {
                    set at [expr {$i + 1}]
                    set end [string first \n $text $i]
                    set line [string range $text \
                        [expr {[string last \n $text $i] + 1}] \
                        [expr {$end < 0 ? "end" : $end - 1}]]
                    if {[regexp $re $line -> uid inode]} {
                        if {[Unowned $uid $inode]} { set uid pending }
                        break
                    }
                }
                if {$tail eq "" && [eof $f]} break
            }
        } finally {
            close $f
        }
    } err]} {
        if {$kind eq "tcp6"} { return "" }
        return -code error -errorcode [::list COMMREG NOPROC $path] $err
    }
    return $uid
}

# Is a socket the kernel lists with UID and INODE one whose owner it
# cannot tell of it?  A connection in a listener's queue, not yet
# accepted, is held by no process (inode 0), and older kernels (before
# 6.13 or so) say uid 0 of such a socket whoever owns the listener
# (sock_i_uid() of a socket without a file); newer ones say the
# listener's uid.  Uid 0 there is not root's word: were it believed, a
# squatter that delays accept(2) would pass as root's registry.  The
# owner of such a connection is the listener's (a listener is held by a
# process, so its uid is told on every kernel): asked then.
proc ::comm::registry::Unowned {uid inode} {
    return [expr {$uid == 0 && $inode == 0}]
}

# The uid of the socket that accepted connection S, as inet_diag tells
# it of that one socket (comm::registry::kernel): the uid, "" when the
# kernel lists no connection there, "pending" when it cannot tell the
# owner yet.  established: a connection, accepted or still in the
# listener's queue (Unowned); syn_recv: a request socket, of which
# inet_diag says uid 0 whoever owns it (pending: the handshake ends in a
# moment); anything else: closed, or only a listener has the port.  An
# error (-errorcode {COMMREG NODIAG}) when the kernel cannot be asked,
# {COMMREG WENT} when the connection went.
proc ::comm::registry::KernelAcceptor {s} {
    lassign [kernel::acceptor $s] state uid inode
    switch -exact -- $state {
        established {
            if {![Unowned $uid $inode]} { return $uid }
            # In a listener's queue: the listener's.  A connection stays
            # in the queue of the listener that took it, or is reset
            # when that one closes, and only that one can listen there.
            lassign [kernel::listener $s] lstate luid linode
            if {$lstate eq "listen" && $linode != 0} { return $luid }
            return pending
        }
        syn_recv { return pending }
    }
    return ""
}

# The uid of the socket that accepted connection S, whose other end is
# PADDR:PPORT and ours MADDR:MPORT: the uid, "" when none is listed,
# "pending" when its owner cannot be told yet (Unowned).  From the kernel
# (KernelAcceptor) when comm::registry::kernel is there and can ask it;
# else from /proc/net/tcp or tcp6 (SocketUid): an IPv4 connection
# accepted by a dual-stack IPv6 socket (one on [::] without V6ONLY) is
# listed in tcp6 only, by its v4-mapped addresses, so both are read for
# it.  An error with -errorcode {COMMREG NOPROC FILE} when the table
# cannot be read, {COMMREG NOACCEPTOR PORT} for an address these tables
# do not know.
proc ::comm::registry::AcceptorUids {s paddr pport maddr mport} {
    variable kernel
    if {$kernel} {
        if {![catch {KernelAcceptor $s} said opts]} { return $said }
        # Gone: nothing to read /proc for.  Anything else the helper
        # could not ask (netlink refused): /proc instead.
        if {[lindex [dict get $opts -errorcode] 1] eq "WENT"} {
            return -options $opts $said
        }
    }
    lassign [AddrHex $paddr] kind phex
    lassign [AddrHex $maddr] mkind mhex
    if {$kind eq "" || $kind ne $mkind} {
        return -code error -errorcode [::list COMMREG NOACCEPTOR $pport] \
            "cannot tell who holds port $pport at $paddr"
    }
    set where [::list [::list $kind $phex $mhex]]
    if {$kind eq "tcp"} {
        lappend where [::list {*}[AddrHex ::ffff:$paddr] [lindex [AddrHex ::ffff:$maddr] 1]]
    }
    foreach w $where {
        lassign $w k ph mh
        if {[catch {SocketUid $k $ph:[format %04X $pport] \
                        $mh:[format %04X $mport]} uid opts]} {
            # No IPv6 here: the IPv4 table is the answer.
            if {$k eq $kind} { return -options $opts $uid }
            continue
        }
        # Listed in one table only (SocketUid: one socket at most).
        if {$uid eq "pending" && $paddr in {127.0.0.1 ::ffff:127.0.0.1}} {
            # In a listener's queue (Unowned): the listener's, when the
            # tables agree on one.
            set luids [ListenerUids $pport]
            if {[llength $luids] == 1} { return [lindex $luids 0] }
        }
        if {$uid ne ""} { return $uid }
    }
    return ""
}

# Who accepted the connection S to port PORT: its uid.  Looked for a few
# times when the kernel lists none (it may list it a moment after the
# connection is up, and a line may be missed while the table changes
# under a read), and not again once the connection went: its acceptor is
# gone for good (a listener closed with it in its queue, as when the
# registry dies while we connect), and each look at a table that lacks
# the line reads all of it (25 looks, as there were, kept 100
# applications failing over without a standby busy for seconds).  Looked
# for until it is accepted, for at most accept_ms, when its owner cannot
# be told before (Unowned).  Errors: {COMMREG WENT ERR} when the
# connection went, {COMMREG NOACCEPTOR PORT} when no owner is known,
# NoProc's when /proc cannot be read.
proc ::comm::registry::AcceptorOf {s port} {
    variable accept_ms
    if {[catch {
        lassign [fconfigure $s -peername] paddr - pport
        lassign [fconfigure $s -sockname] maddr - mport
    } err]} {
        return -code error -errorcode [::list COMMREG WENT $err] $err
    }
    set deadline [expr {[clock milliseconds] + $accept_ms}]
    set none 0
    for {set i 0} {1} {incr i} {
        if {$i} {
            set err [fconfigure $s -error]
            if {$err ne ""} {
                return -code error -errorcode [::list COMMREG WENT $err] $err
            }
            after [expr {$i < 2 ? 0 : 1}]
        }
        if {[catch {AcceptorUids $s $paddr $pport $maddr $mport} uid opts]} {
            switch -exact -- [lindex [dict get $opts -errorcode] 1] {
                NOPROC { NoProc $uid "who holds port $port" }
                WENT {
                    # As the channel says it (a reset, say), when it does.
                    set err [fconfigure $s -error]
                    if {$err eq ""} { set err $uid }
                    return -code error -errorcode [::list COMMREG WENT $err] $err
                }
            }
            return -options $opts $uid
        }
        switch -exact -- $uid {
            "" { if {[incr none] >= 5} break }
            pending {
                if {[clock milliseconds] >= $deadline} {
                    return -code error -errorcode [::list COMMREG NOACCEPTOR $port] \
                        "cannot tell who holds port $port: no process accepted our connection to it within $accept_ms ms"
                }
            }
            default { return $uid }
        }
    }
    return -code error -errorcode [::list COMMREG NOACCEPTOR $port] \
        "cannot tell who holds port $port: the kernel lists no socket accepting our connection to it"
}

# The uids of the sockets listening on PORT where a connection to
# 127.0.0.1 would reach them (127.0.0.1, 0.0.0.0, ::ffff:127.0.0.1, ::);
# {} when none, or when it cannot be told.  Said when a port is refused;
# relied on only for a connection in a listener's queue whose owner the
# kernel does not tell (AcceptorUids), when it names one uid.
proc ::comm::registry::ListenerUids {port} {
    set v4 [lindex [AddrHex 127.0.0.1] 1]
    set v6 [lindex [AddrHex ::ffff:127.0.0.1] 1]
    set p [format %04X $port]
    set uids {}
    foreach {kind addrs} [::list tcp [::list $v4 00000000] \
                              tcp6 [::list $v6 [string repeat 0 32]]] {
        if {[catch {ProcRead $kind} data]} continue
        foreach a $addrs {
            set re "^\\s*\[0-9\]+: $a:$p \[0-9A-F:\]+ 0A \\S+ \\S+ \\S+ +(\[0-9\]+) "
            foreach {- uid} [regexp -all -inline -line -nocase $re $data] {
                if {$uid ni $uids} { lappend uids $uid }
            }
        }
    }
    return $uids
}

proc ::comm::registry::NotOurs {port uid} {
    return -code error -level 2 -errorcode [::list COMMREG NOTOURS $port $uid] \
        "port $port is held by uid $uid, not by you (uid [Uid]): not your registry; refusing to use it"
}

# comm's -socketcmd for our channel: `OwnedSocket HOST PORT` opens the
# connection comm will use and returns it only once the kernel has said
# that our uid accepted it; nothing has been sent on it then.  Otherwise
# the connection is closed and the error says why (comm's send then
# fails; Open and TryConnect take the reason from `refused`).
proc ::comm::registry::OwnedSocket {args} {
    variable refused
    if {[lindex $args 0] eq "-server"} {
        # Never: the channel does not listen.
        return [::socket {*}$args]
    }
    lassign $args host port
    if {$host ne "127.0.0.1"} {
        set refused [::list "refusing to connect to $host: a registry is on 127.0.0.1" \
                         [::list COMMREG NOTLOCAL $host]]
        error [lindex $refused 0]
    }
    set s [::socket -async 127.0.0.1 $port]
    if {[catch {CheckAcceptor $s $port} err opts]} {
        catch {close $s}
        set code [dict get $opts -errorcode]
        if {[lindex $code 0] eq "COMMREG"} {
            set refused [::list $err $code]
        }
        return -options $opts $err
    }
    return $s
}

# Wait (bounded) for the connection S to 127.0.0.1:PORT to be set up,
# then find the socket that accepted it (bounded retries: the kernel may
# list it a moment after the connection is up) and make sure it is ours.
proc ::comm::registry::CheckAcceptor {s port} {
    variable connect_ms
    # Not through the event loop (comm's own connect blocks the same way);
    # `fconfigure -connecting` moves the connection on as it looks.
    set deadline [expr {[clock milliseconds] + $connect_ms}]
    for {set i 0} {[fconfigure $s -connecting]} {incr i} {
        if {[clock milliseconds] >= $deadline || $i > $connect_ms} {
            error "couldn't open socket: no connection to 127.0.0.1:$port within $connect_ms ms"
        }
        after 1
    }
    set err [fconfigure $s -error]
    if {$err ne ""} {
        error "couldn't open socket: $err"
    }
    # On loopback the accepting socket is listed by the time we are
    # connected (as SYN_RECV, then ESTABLISHED).
    if {[catch {AcceptorOf $s $port} uid opts]} {
        switch -exact -- [lindex [dict get $opts -errorcode] 1] {
            WENT { error "couldn't open socket: $uid" }
            NOACCEPTOR { return -options $opts "$uid; refusing to use it" }
        }
        return -options $opts $uid
    }
    if {$uid != [Uid]} { NotOurs $port $uid }
}

# glibc's major() and minor() of a device number (as `file stat` gives
# st_dev), as /proc/locks prints them.
proc ::comm::registry::DevNumbers {dev} {
    set dev [expr {$dev & 0xFFFFFFFFFFFFFFFF}]
    return [::list [expr {(($dev >> 8) & 0xfff) | (($dev >> 32) & 0xfffff000)}] \
                [expr {($dev & 0xff) | (($dev >> 12) & 0xffffff00)}]]
}

# Does a live process hold an flock on PATH?  Read from /proc/locks, as
# the C library does (trying the lock with flock(2) itself could make a
# starter that tries it at that instant take a stopped registry's file
# for a live one; and Tcl has no flock).  Its lines: "N: FLOCK ADVISORY
# WRITE PID MAJ:MIN:INODE START END", MAJ and MIN in hex; a waiter's
# line ("N: -> FLOCK ...") holds nothing.  Where stat's device is an
# anonymous one (major 0: btrfs subvolumes, overlayfs), it may not be
# the one the kernel prints there: a lock on the same inode number of
# another anonymous device is taken then (the socket check still
# stands behind it).
proc ::comm::registry::Locked {path} {
    file stat $path st
    lassign [DevNumbers $st(dev)] maj min
    set data [ProcRead locks]
    set anon 0
    foreach {- kmaj kmin ino} [regexp -all -inline -line \
        {^\s*[0-9]+:\s+FLOCK\s+\S+\s+\S+\s+-?[0-9]+\s+([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9]+)\s} $data] {
        if {$ino != $st(ino)} continue
        scan $kmaj %x kmaj
        scan $kmin %x kmin
        if {$kmaj == $maj && $kmin == $min} { return 1 }
        if {$kmaj == 0 && $maj == 0} { set anon 1 }
    }
    return $anon
}

# The user registry's port PORT, read from the port file, is tried only
# while a registry holds the port file's lock; else an error saying why
# (naming whoever listens on PORT, when it is not us).
proc ::comm::registry::CheckPortFile {port} {
    set f [PortFile]
    if {[catch {Locked $f} locked opts]} {
        if {[lindex [dict get $opts -errorcode] 1] eq "NOPROC"} {
            NoProc $locked "whether a registry holds $f"
        }
        # The file went since it was read.
        error "no registry port in $f"
    }
    if {$locked} return
    foreach u [ListenerUids $port] {
        if {$u != [Uid]} { NotOurs $port $u }
    }
    error "$f is not locked by a running registry: port $port is a stopped registry's, and is not tried"
}

# Tell -command (as `error`) why a port was refused, when that matters
# to the user: MSG and OPTS are the refusal's message and error options.
# Another user on the port is told once until a registry is found; the
# want of /proc once for good.
proc ::comm::registry::Refused {msg opts} {
    variable told
    variable noproc_told
    if {![dict exists $opts -errorcode]} return
    set code [dict get $opts -errorcode]
    if {[lindex $code 0] ne "COMMREG"} return
    switch -exact -- [lindex $code 1] {
        NOTOURS {
            if {$msg ne "" && $msg ne $told} {
                set told $msg
                Notify life error $msg
            }
        }
        NOPROC {
            if {!$noproc_told && $msg ne ""} {
                set noproc_told 1
                Notify life error $msg
            }
        }
    }
}

# The command that starts a registry unless one runs (docs/election.md).
proc ::comm::registry::CommregdCommand {} {
    variable opt
    if {$opt(-commregd) ne ""} {
        set cmd [::list $opt(-commregd)]
    } elseif {[info exists ::env(COMMREG_COMMREGD)] && $::env(COMMREG_COMMREGD) ne ""} {
        set cmd [::list $::env(COMMREG_COMMREGD)]
    } else {
        set cmd [auto_execok commregd]
        if {$cmd eq ""} {
            error "cannot start a registry: commregd not found (configure -commregd PATH, set COMMREG_COMMREGD, or put it in PATH)"
        }
    }
    lappend cmd --detach
    if {$opt(-home) ne ""} {
        lappend cmd --home $opt(-home)
    }
    return $cmd
}

# Run `commregd --detach`; it returns once a registry listens.
proc ::comm::registry::SpawnSync {} {
    set cmd [CommregdCommand]
    if {[catch {exec {*}$cmd </dev/null 2>@1} out]} {
        error "cannot start a registry ([join $cmd]): [string trim $out]"
    }
}

proc ::comm::registry::MakeLink {} {
    variable link
    if {$link ne "" && [llength [info commands $link]]} return
    # As tcllib's nameserv: a comm channel of our own whose interpreter
    # holds nothing but the commands the registry sends us.  It does not
    # listen: nobody but the registry, on the connection we open, has
    # anything to tell it.
    set ip [interp::createEmpty]
    interp alias $ip Commreg/Event {} ::comm::registry::Event
    interp alias $ip Commreg/Withdrawn {} ::comm::registry::Withdrawn
    # Every connection it opens is checked before comm sends a byte on
    # it (OwnedSocket).
    set link [::comm::comm new ::comm::registry::link \
                  -listen 0 -local 1 -interp $ip \
                  -socketcmd ::comm::registry::OwnedSocket]
    $link hook lost ::comm::registry::Lost
    # Whatever the registry sends (an event, an answer, its own ping) is
    # a sign of life.  The eval hook must not fail (comm would not run
    # the command then): hence the catch.
    foreach event {eval callback reply} {
        $link hook $event {catch ::comm::registry::Heard}
    }
}

# Close the registry connection without treating it as a loss.
proc ::comm::registry::DropConnection {} {
    variable link
    variable sid
    variable quiet
    variable helloed
    set helloed 0
    LivenessStop
    if {$link eq "" || $sid eq ""} return
    incr quiet
    catch {$link shutdown $sid}
    incr quiet -1
}

proc ::comm::registry::IsRegistry {hello} {
    return [expr {![catch {dict get $hello registry} what] && $what eq "commreg"}]
}

# Connect to PORT and make sure a registry answers there.  When the
# connection was refused because PORT is not ours (OwnedSocket), the
# error is that refusal, with its -errorcode.
proc ::comm::registry::Open {port} {
    variable sid
    variable regport
    variable version
    variable helloed
    variable refused
    MakeLink
    set sid [::list $port 127.0.0.1]
    set refused {}
    if {[catch {Call [::list Commreg/Hello comm::registry/$version] 3000} hello]} {
        DropConnection
        if {[llength $refused]} {
            lassign $refused msg code
            return -code error -errorcode $code $msg
        }
        error "no registry answers on port $port: $hello"
    }
    if {![IsRegistry $hello]} {
        DropConnection
        error "port $port does not answer as a commreg registry"
    }
    set regport $port
    set helloed 1
    # What it is (user, private, semi): what its Hello says.
    variable regscope
    if {[catch {dict get $hello scope} regscope]} { set regscope user }
}

# The private registry's port from TCL_COMM_REGPORT: "" when it is not
# set (or empty), else the port; an error (the notification's text) when
# it is not a port number.
proc ::comm::registry::EnvRegport {} {
    if {![info exists ::env(TCL_COMM_REGPORT)]} { return "" }
    set v $::env(TCL_COMM_REGPORT)
    if {$v eq ""} { return "" }
    if {[regexp {^[0-9]{1,5}$} $v] && [scan $v %d port] == 1
        && $port >= 1 && $port <= 65535} {
        return $port
    }
    if {[string length $v] > 64} {
        set v "[string range $v 0 63]..."
    }
    error "TCL_COMM_REGPORT=\"$v\" is not a port number; using the user registry"
}

# Find the registry: the private one TCL_COMM_REGPORT names if it
# answers (then we are bound to it), else the user's, starting commregd
# when there is none; bounded.
proc ::comm::registry::Discover {} {
    variable private
    variable noproc_told
    set private 0
    if {[catch EnvRegport port]} {
        Notify life error $port
    } elseif {$port ne ""} {
        if {![catch {Open $port} err opts]} {
            variable regscope
            # A TCL_COMM_REGPORT that names the user registry itself is
            # used as what it is: lost, it is elected again, not
            # mourned as a private registry whose group is over.
            if {$regscope eq "user"} {
                Notify life error "TCL_COMM_REGPORT=$port names the user\
                    registry, not a private one; using it as the user\
                    registry"
                return
            }
            set private 1
            return
        }
        # The design note: "when it cannot be reached, normal start-up".
        # (A port another user holds, or that cannot be checked, is one
        # that cannot be reached.)
        Notify life error "TCL_COMM_REGPORT=$port: $err; using the user registry"
        if {[lrange [dict get $opts -errorcode] 0 1] eq {COMMREG NOPROC}} {
            set noproc_told 1
        }
    }
    set why ""
    for {set i 0} {$i < 4} {incr i} {
        if {[catch ReadPortFile port]} {
            # The tree is not to be trusted: nothing is started.
            return -code error -errorcode [::list COMMREG NOREGISTRY $port] $port
        }
        if {$port ne ""} {
            if {![catch {CheckPortFile $port; Open $port} err opts]} return
            Refused $err $opts
            set why $err
            # Without /proc no registry can be checked: final.
            if {[lrange [dict get $opts -errorcode] 0 1] eq {COMMREG NOPROC}} break
        } else {
            set why "no registry port in [PortFile]"
        }
        if {$i == 3} break
        if {$i > 0} { after [expr {100 * $i}] }
        # A commregd that dies before the registry listens (killed, or
        # beaten mid-election) is no reason to give up: look again, as
        # the C library does.  Only a missing commregd is final.
        if {[catch SpawnSync err]} {
            set why $err
            if {[string match "*commregd not found*" $err]} break
        }
    }
    return -code error -errorcode [::list COMMREG NOREGISTRY $why] \
        "no registry: $why"
}

# Make sure we are connected; called by every API command that talks to
# the registry.
proc ::comm::registry::Connect {} {
    variable state
    variable opt
    variable rec
    variable helloed
    # Before anything else: loading comm may register the application
    # (configure -register), which connects, in a call of its own.
    NeedComm
    if {$state eq "connected"} return
    if {$state eq "orphaned"} Gone
    if {$state eq "connecting"} {
        # This call runs in an event handler, inside the event loop of
        # the call that is connecting (an outer frame: it cannot finish
        # before we do, so waiting for it is no use).
        if {$helloed} return
        return -code error -errorcode {COMMREG NOREGISTRY {still connecting}} \
            "no registry yet: this application is still connecting to it"
    }
    if {$state eq "recovering"} {
        # Wait, bounded, for the recovery under way (it runs from the
        # event loop).
        set deadline [expr {[clock milliseconds] + $opt(-timeout)}]
        while {$state eq "recovering" && [clock milliseconds] < $deadline} {
            set t [after 50 {incr ::comm::registry::stamp}]
            vwait ::comm::registry::stamp
            after cancel $t
        }
        if {$state eq "connected"} return
        if {$state eq "recovering"} {
            return -code error -errorcode [::list COMMREG LOST $rec(reason)] \
                "the registry was lost ($rec(reason)) and is not back yet"
        }
    }
    set state connecting
    if {[catch {Discover; RestoreSync} err opts]} {
        # Start from scratch next time (nothing half restored stays).
        DropConnection
        set state idle
        set ::comm::registry::private 0
        return -options $opts $err
    }
    Regained
}

# Fail the way every call fails once the private registry is gone
# (MORE is appended to the message).
proc ::comm::registry::Gone {{more ""}} {
    variable gone
    variable regport
    return -code error -level 2 -errorcode [::list COMMREG ORPHANED $regport] \
        "$gone$more"
}

# ---------------------------------------------------------------------------
# Calls to the registry

proc ::comm::registry::RegisterCommand {name port scope serial} {
    set cmd [::list Commreg/Register $name $port -pid [pid]]
    if {$scope ne ""} { lappend cmd -scope $scope }
    if {$serial ne ""} { lappend cmd -serial $serial }
    return $cmd
}

# Send CMD (a list: one literal command, docs/protocol.md §2) and wait,
# at most MS ms, for the answer.  ONANSWER, if given, is called with
# comm's callback options (-code, -result ...) as the answer is read.
proc ::comm::registry::Call {cmd {ms ""} {onanswer ""}} {
    variable link
    variable sid
    variable opt
    variable calls
    variable callseq
    if {$ms eq ""} { set ms $opt(-timeout) }
    set key [incr callseq]
    set calls($key) ""
    if {[catch {$link send -command \
                    [::list ::comm::registry::Answer $key $onanswer] \
                    $sid $cmd} err]} {
        unset calls($key)
        return -code error -errorcode [::list COMMREG LOST $err] \
            "cannot reach the registry on port [lindex $sid 0]: $err"
    }
    set timer [after $ms [::list ::comm::registry::Answer $key "" -code timeout]]
    while {$calls($key) eq ""} {
        vwait ::comm::registry::calls($key)
    }
    after cancel $timer
    set r $calls($key)
    unset calls($key)
    set code [dict get $r -code]
    switch -exact -- $code {
        0 - "" { return [dict get $r -result] }
        1 {
            # The registry refused (docs/protocol.md §4: a message for a
            # person); "host gateway: ..." when the gateway did.
            set msg [dict get $r -result]
            set ec [expr {[dict exists $r -errorcode] ? [dict get $r -errorcode] : ""}]
            if {[lindex $ec 0] ne "COMMREG"} {
                set src [expr {[string match "host gateway:*" $msg] ? "gateway" : "registry"}]
                set ec [::list COMMREG REFUSED $src $msg]
            }
            return -code error -errorcode $ec $msg
        }
        timeout {
            return -code error -errorcode [::list COMMREG NOANSWER [lindex $cmd 0] $ms] \
                "the registry on port [lindex $sid 0] did not answer [lindex $cmd 0] within $ms ms"
        }
        -1 {
            return -code error -errorcode [::list COMMREG LOST [dict get $r -result]] \
                "lost the connection to the registry: [dict get $r -result]"
        }
        default {
            return -code $code [dict get $r -result]
        }
    }
}

proc ::comm::registry::Answer {key onanswer args} {
    variable calls
    if {![info exists calls($key)] || $calls($key) ne ""} return
    if {$onanswer ne ""} {
        {*}$onanswer {*}$args
    }
    set calls($key) $args
}

# Send CMD without waiting; CALLBACK gets comm's -code/-result options.
proc ::comm::registry::SendAsync {cmd callback} {
    variable link
    variable sid
    $link send -command $callback $sid $cmd
}

# ---------------------------------------------------------------------------
# Registrations

proc ::comm::registry::SerialOf {base assigned} {
    if {$assigned ne $base &&
        [regexp {^(.*) #([0-9]+)$} $assigned -> b n] && $b eq $base} {
        return $n
    }
    return 1
}

# Registration ids in the order they were made.
proc ::comm::registry::RegIds {} {
    variable regs
    return [lsort -dictionary [array names regs]]
}

proc ::comm::registry::FindReg {name} {
    variable regs
    set bybase {}
    foreach id [RegIds] {
        if {[dict get $regs($id) name] eq $name} { return $id }
        if {[dict get $regs($id) base] eq $name} { lappend bybase $id }
    }
    if {[llength $bybase] == 1} { return [lindex $bybase 0] }
    return ""
}

# A registration came back under NEWNAME (or could not come back).
proc ::comm::registry::Reregistered {id code result} {
    variable regs
    variable link
    variable sid
    if {![info exists regs($id)]} {
        # Unregistered while it was on its way back.
        if {$code == 0} {
            catch {$link send -async $sid [::list Commreg/Unregister $result]}
        }
        return
    }
    set old [dict get $regs($id) name]
    if {$code != 0} {
        unset regs($id)
        Notify life error "cannot register \"$old\" again: $result"
        return
    }
    if {$result ne $old} {
        dict set regs($id) name $result
        dict set regs($id) serial [SerialOf [dict get $regs($id) base] $result]
        Notify life renamed $old $result
    }
}

# Commreg/Withdrawn NAME REASON, sent by the registry: the host gateway
# withdrew our host or global registration NAME (its policy changed) and
# the registry has removed the entry.  Forget it, so that no failover
# registers it again, and tell the application as when a private registry
# dies.
proc ::comm::registry::Withdrawn {args} {
    variable regs
    if {[llength $args] < 1 || [llength $args] > 2} return
    lassign $args name reason
    if {$reason eq ""} {
        set reason "withdrawn by the host gateway"
    }
    foreach id [RegIds] {
        if {[dict get $regs($id) name] eq $name} {
            unset regs($id)
            Notify life dropped $name $reason
            return
        }
    }
    return
}

# ---------------------------------------------------------------------------
# Watches

proc ::comm::registry::DropWatch {tag} {
    variable wpattern
    variable wcmd
    variable wknown
    variable wpending
    variable wtimer
    if {[info exists wtimer($tag)]} {
        after cancel $wtimer($tag)
    }
    unset -nocomplain wpattern($tag) wcmd($tag) wknown($tag) \
        wpending($tag) wtimer($tag)
}

# Entries are "the same application" when they point at the same place.
# (since changes at every registration; pid and uid follow from these.)
proc ::comm::registry::Same {a b} {
    foreach k {name port host data} {
        if {[catch {expr {[dict get $a $k] eq [dict get $b $k]}} same]
            || !$same} {
            return 0
        }
    }
    return 1
}

# Commreg/Event TAG add|remove ENTRY, sent by the registry.
proc ::comm::registry::Event {args} {
    variable wcmd
    variable wknown
    variable wpending
    if {[llength $args] != 3} return
    lassign $args tag type entry
    if {![info exists wcmd($tag)]} return
    if {[catch {dict get $entry name} name]} return
    if {$::comm::registry::private} {
        switch -exact -- $type {
            add { RememberEntry $entry }
            remove { Forget $name }
        }
    }
    switch -exact -- $type {
        add {
            if {[dict exists $wpending($tag) $name]} {
                # Back after a failover, as it was: nothing to tell.
                set old [dict get $wpending($tag) $name]
                dict unset wpending($tag) $name
            } elseif {[dict exists $wknown($tag) $name]} {
                set old [dict get $wknown($tag) $name]
            } else {
                set old ""
            }
            dict set wknown($tag) $name $entry
            if {$old ne "" && [Same $old $entry]} return
            if {$old ne ""} {
                Notify watch $tag remove $old
            }
            Notify watch $tag add $entry
        }
        remove {
            if {[dict exists $wknown($tag) $name]} {
                dict unset wknown($tag) $name
            } elseif {[dict exists $wpending($tag) $name]} {
                dict unset wpending($tag) $name
            } else {
                return
            }
            Notify watch $tag remove $entry
        }
    }
    return
}

# Apply a snapshot: the first one (FIRST) is told as it is; after a
# failover only what differs from what the application knows is told,
# and what is missing is held for -grace ms, as its owner may still be
# on its way back to the new registry.
#
# Called as a comm answer callback: Resnapshot TAG ?-first 1? -code C
# -result SNAPSHOT ...
proc ::comm::registry::Resnapshot {tag args} {
    variable wknown
    variable wpending
    variable wtimer
    variable opt
    set first [expr {[dict exists $args -first] && [dict get $args -first]}]
    if {[dict get $args -code] != 0} return
    set snapshot [dict get $args -result]
    if {![info exists wknown($tag)]} return
    if {[info exists wtimer($tag)]} {
        after cancel $wtimer($tag)
        unset wtimer($tag)
    }
    set view [dict merge $wpending($tag) $wknown($tag)]
    set wknown($tag) {}
    set wpending($tag) {}
    foreach entry $snapshot {
        if {[catch {dict get $entry name} name]} continue
        dict set wknown($tag) $name $entry
        if {$::comm::registry::private} {
            RememberEntry $entry
        }
        if {[dict exists $view $name]} {
            set old [dict get $view $name]
            dict unset view $name
            if {[Same $old $entry]} continue
            Notify watch $tag remove $old
        }
        Notify watch $tag add $entry
    }
    if {$first || ![dict size $view]} return
    set wpending($tag) $view
    set wtimer($tag) [after $opt(-grace) [::list ::comm::registry::GraceOver $tag]]
}

proc ::comm::registry::GraceOver {tag} {
    variable wpending
    variable wtimer
    unset -nocomplain wtimer($tag)
    if {![info exists wpending($tag)]} return
    foreach name [lsort [dict keys $wpending($tag)]] {
        Notify watch $tag remove [dict get $wpending($tag) $name]
    }
    set wpending($tag) {}
}

# ---------------------------------------------------------------------------
# Notifications, in order, from the event loop (never nested in comm's
# own processing, so a command may call this package again).

proc ::comm::registry::Notify {args} {
    variable queue
    variable flushing
    variable flushid
    lappend queue $args
    if {!$flushing && $flushid eq ""} {
        set flushid [after 0 ::comm::registry::Flush]
    }
}

proc ::comm::registry::Flush {} {
    variable queue
    variable flushing
    variable flushid
    variable wcmd
    variable opt
    set flushid ""
    if {$flushing} return
    set flushing 1
    while {[llength $queue]} {
        set item [lindex $queue 0]
        set queue [lrange $queue 1 end]
        set args [lassign $item kind]
        if {$kind eq "watch"} {
            set args [lassign $args tag]
            if {![info exists wcmd($tag)]} continue
            set cmd $wcmd($tag)
        } else {
            set cmd $opt(-command)
        }
        if {$cmd eq ""} continue
        if {[catch {uplevel #0 [linsert $cmd end {*}$args]} msg o]} {
            catch {{*}[interp bgerror {}] $msg $o}
        }
    }
    set flushing 0
}

# ---------------------------------------------------------------------------
# Losing the registry and getting it back (docs/tcl.md "Failover")

# comm's lost hook on our channel: runs in comm's commLostConn.
proc ::comm::registry::Lost {} {
    variable quiet
    variable sid
    variable state
    upvar 1 id id reason reason
    if {$quiet || ![info exists id] || $id ne $sid} return
    # While a call connects, its own calls fail and it cleans up.
    if {$state in {idle connecting}} {
        set ::comm::registry::helloed 0
        return
    }
    if {$state eq "orphaned"} return
    set why [expr {[info exists reason] ? $reason : "connection lost"}]
    if {$::comm::registry::private} {
        Orphan $why
        return
    }
    BeginRecovery $why
}

# The private registry is gone: it is never replaced (its group is
# over), so there is nothing to recover.  Tell lost, drop every
# registration (telling each), end every watch (keeping its last view
# for `entries`), and fail later calls but lookups of names we knew.
proc ::comm::registry::Orphan {why} {
    variable state
    variable gen
    variable regs
    variable wtimer
    variable wknown
    variable wpending
    variable gone
    variable regport
    variable owed
    incr gen
    CancelRecovery
    LivenessStop
    set state orphaned
    set owed 0
    set gone "the private registry on port $regport is gone (TCL_COMM_REGPORT): $why"
    incr ::comm::registry::stamp
    Notify life lost $gone
    foreach id [RegIds] {
        set name [dict get $regs($id) name]
        unset regs($id)
        Notify life dropped $name $gone
    }
    # No event can come any more (the connection is closed); a grace
    # timer cannot be running (there is no failover here), but be sure.
    foreach tag [array names wtimer] {
        after cancel $wtimer($tag)
        unset wtimer($tag)
        set wknown($tag) [dict merge $wpending($tag) $wknown($tag)]
        set wpending($tag) {}
    }
}

# ---------------------------------------------------------------------------
# Liveness (docs/tcl.md "Liveness"): a registry that hangs without
# closing the connection (SIGSTOP, a partition) is noticed and treated as
# lost.  While connected, when nothing has come from the registry for
# P = -liveness/3 ms, it is sent an empty script (every comm peer answers
# it with "", evaluating nothing).  The registry is lost when that ping
# has been out for the remaining W = -liveness - P ms and nothing at all
# has come for -liveness ms: the connection is then dropped and treated
# as closed.  So a hang is noticed at most -liveness ms after the last
# message (given a timely event loop).  One `after` at most is pending
# (live(timer)); every loss, DropConnection and disconnect cancel it.
# Nothing here waits.

# Start (or restart) the check of the connection now up; stop it when
# not connected or -liveness is 0.
proc ::comm::registry::LivenessStart {} {
    variable live
    variable opt
    variable state
    LivenessStop
    if {$state ne "connected" || $opt(-liveness) <= 0} return
    set live(last) [clock milliseconds]
    LivenessArm [expr {$opt(-liveness) / 3}]
}

proc ::comm::registry::LivenessStop {} {
    variable live
    if {$live(timer) ne ""} {
        after cancel $live(timer)
        set live(timer) ""
    }
    set live(sent) ""
}

proc ::comm::registry::LivenessArm {ms} {
    variable live
    variable gen
    if {$live(timer) ne ""} {
        after cancel $live(timer)
    }
    set live(timer) [after [expr {max(0, $ms)}] \
                         [::list ::comm::registry::LivenessCheck $gen 0]]
}

# comm's eval, callback and reply hooks on our channel: something came
# from the registry (the hook runs in comm's commExec, whose `id` names
# the sender).  Only a time is noted: the timer looks at it when it
# fires.
proc ::comm::registry::Heard {} {
    variable sid
    variable live
    upvar 1 id id
    if {[info exists id] && $id eq $sid} {
        set live(last) [clock milliseconds]
    }
}

# The timer of the check.  G: the generation it was armed in (a loss or
# disconnect since makes it stale).  With DECIDE 0, a ping past its time
# is not judged at once: the application may have been too busy to read
# an answer that did come, so what is waiting on the connection is read
# first (file events come before `after 0` timers, and comm runs what it
# read from `after idle`, before ours), then it is judged (DECIDE 1).
proc ::comm::registry::LivenessCheck {g decide} {
    variable live
    variable gen
    variable state
    variable opt
    variable link
    variable sid
    set live(timer) ""
    if {$g != $gen || $state ne "connected" || $opt(-liveness) <= 0} return
    set ms $opt(-liveness)
    set ping [expr {$ms / 3}]
    set wait [expr {$ms - $ping}]
    set now [clock milliseconds]
    if {$live(sent) ne ""} {
        # A ping is out.  Something else heard since it went (the
        # registry was alive then) moves the end of the wait.
        set due [expr {max($live(sent) + $wait, $live(last) + $ms)}]
        if {$now < $due} {
            LivenessArm [expr {$due - $now}]
        } elseif {!$decide} {
            set live(timer) [after 0 [::list ::comm::registry::LivenessDrain $g]]
        } else {
            LivenessLost "registry did not answer a liveness ping within $wait ms (-liveness $ms)"
        }
        return
    }
    set quiet [expr {$now - $live(last)}]
    if {$quiet < $ping} {
        LivenessArm [expr {$ping - $quiet}]
        return
    }
    # Never blocks: the connection is open (comm would otherwise connect
    # anew) and comm's sockets do not block.
    set n [incr live(pings)]
    if {[catch {$link send -command [::list ::comm::registry::Pong $g $n] \
                    $sid {}} err]} {
        LivenessLost "cannot send a liveness ping to the registry: $err"
        return
    }
    set live(sent) $now
    LivenessArm $wait
}

proc ::comm::registry::LivenessDrain {g} {
    variable live
    set live(timer) [after idle [::list ::comm::registry::LivenessCheck $g 1]]
}

# The answer to ping N (comm's callback options): any answer will do, the
# registry reads and answers.  The next ping goes after P ms of silence.
proc ::comm::registry::Pong {g n args} {
    variable gen
    variable live
    variable opt
    if {$g != $gen} return
    # -1: the connection went; the lost hook takes it from there.
    if {![dict exists $args -code] || [dict get $args -code] == -1} return
    if {$live(sent) eq "" || $n != $live(pings)} return
    incr live(answers)
    set live(sent) ""
    set live(last) [clock milliseconds]
    LivenessArm [expr {$opt(-liveness) / 3}]
}

# The registry did not answer: drop the connection and go on as if it
# had closed (Lost): a private registry leaves us orphaned, the user
# registry is recovered.  Calls waiting for an answer fail with WHY.
proc ::comm::registry::LivenessLost {why} {
    variable calls
    variable private
    LivenessStop
    foreach key [array names calls] {
        if {$calls($key) eq ""} {
            set calls($key) [::list -code -1 -result $why]
        }
    }
    DropConnection
    if {$private} {
        Orphan $why
    } else {
        BeginRecovery $why
    }
}

# ---------------------------------------------------------------------------
# What a private registry told us (see `known` above)

# The comm id Commreg/Lookup gives for ENTRY (docs/protocol.md §4): PORT
# HOST, or the DATA of an nns entry without both.
proc ::comm::registry::IdOf {entry} {
    if {[catch {dict get $entry port} port] || [catch {dict get $entry host} host]
        || $port eq "" || $host eq ""} {
        if {[catch {dict get $entry data} data]} { return "" }
        return $data
    }
    return [::list $port $host]
}

proc ::comm::registry::Remember {name id} {
    variable known
    variable known_max
    if {$id eq ""} return
    # Re-inserted, so that the dict's order is oldest first.
    dict unset known $name
    while {[dict size $known] >= $known_max && [dict size $known]} {
        dict for {oldest -} $known break
        dict unset known $oldest
    }
    if {$known_max > 0} {
        dict set known $name $id
    }
}

proc ::comm::registry::RememberEntry {entry} {
    if {![catch {dict get $entry name} name]} {
        Remember $name [IdOf $entry]
    }
}

proc ::comm::registry::Forget {name} {
    variable known
    dict unset known $name
}

proc ::comm::registry::BeginRecovery {why} {
    variable state
    variable gen
    variable rec
    variable regs
    variable wcmd
    set first [expr {$state eq "connected"}]
    incr gen
    CancelRecovery
    LivenessStop
    if {$first} {
        set rec(start) [clock milliseconds]
        set rec(attempt) 0
        set rec(reason) $why
        if {![array size regs] && ![array size wcmd]} {
            # Nothing to restore: the next call finds a registry.
            set state idle
            TellLost $why
            return
        }
        set state recovering
        TellLost $why
        # Connect first, at once: a registry's standby accepts on the
        # same port the moment it dies (docs/election.md).  Only when
        # nothing answers there, the jitter spreads simultaneous losers
        # a little before they run commregd; the election in commregd
        # makes one registry out of any number anyway.
        set rec(quick) 1
        set rec(timer) [after 0 [::list ::comm::registry::QuickStep $gen]]
    } else {
        set rec(reason) $why
        Retry
    }
}

proc ::comm::registry::Jitter {} {
    return [expr {([clock microseconds] + [pid] * 7919) % 51}]
}

proc ::comm::registry::CancelRecovery {} {
    variable rec
    if {$rec(timer) ne ""} {
        after cancel $rec(timer)
        set rec(timer) ""
    }
}

# Try again later: 50, 100, 200 ... ms, at most ~1 s apart.  A connection
# that got half way is closed, so that nothing is registered twice on it.
# (Never called from a callback comm makes for a lost connection: comm is
# still tidying that connection up then; its lost hook calls us after.)
proc ::comm::registry::Retry {} {
    variable gen
    variable rec
    incr gen
    CancelRecovery
    DropConnection
    if {$rec(quick)} {
        # The first, quick try found no registry: elect as before.
        set rec(quick) 0
        set rec(timer) [after [Jitter] [::list ::comm::registry::RecoverStep $gen]]
        return
    }
    set delay [expr {min(1000, 50 << min($rec(attempt), 5)) + [Jitter]}]
    set rec(timer) [after $delay [::list ::comm::registry::RecoverStep $gen]]
}

proc ::comm::registry::QuickStep {g} {
    variable gen
    variable rec
    if {$g != $gen} return
    set rec(timer) ""
    TryConnect $g
}

proc ::comm::registry::RecoverStep {g} {
    variable gen
    variable rec
    variable giveup_ms
    if {$g != $gen} return
    set rec(timer) ""
    if {[clock milliseconds] - $rec(start) > $giveup_ms} {
        GiveUp
        return
    }
    incr rec(attempt)
    SpawnAsync $g
}

# Start `commregd --detach` without blocking: its output and exit are
# read from the event loop; then TryConnect.
proc ::comm::registry::SpawnAsync {g} {
    variable rec
    variable spawnout
    if {[catch {CommregdCommand} cmd]} {
        set rec(reason) $cmd
        Retry
        return
    }
    if {[catch {open |[concat $cmd [::list </dev/null 2>@1]] r} fh]} {
        set rec(reason) "cannot run [join $cmd]: $fh"
        Retry
        return
    }
    fconfigure $fh -blocking 0
    set spawnout($fh) [::list $cmd "" \
        [after 15000 [::list ::comm::registry::Spawned $g $fh 1]]]
    fileevent $fh readable [::list ::comm::registry::Spawned $g $fh 0]
}

proc ::comm::registry::Spawned {g fh expired} {
    variable spawnout
    variable gen
    variable rec
    if {![info exists spawnout($fh)]} return
    lassign $spawnout($fh) cmd out timer
    if {!$expired} {
        if {[catch {read $fh} data]} { set data "" }
        append out $data
        lset spawnout($fh) 1 $out
        if {![eof $fh]} return
    }
    after cancel $timer
    unset spawnout($fh)
    fileevent $fh readable {}
    set failed 0
    if {$expired} {
        # Still running after 15 s: leave it to finish on its own.
        catch {close $fh}
        set failed 1
        set err "[join $cmd] did not return within 15 s"
    } else {
        fconfigure $fh -blocking 1
        if {[catch {close $fh} err]} {
            set failed 1
            set err "[join $cmd]: [string trim "$out $err"]"
        }
    }
    if {$g != $gen} return
    if {$failed} {
        set rec(reason) $err
        # A registry may run all the same (another process's): try it.
    }
    TryConnect $g
}

proc ::comm::registry::TryConnect {g} {
    variable rec
    variable sid
    variable link
    variable version
    variable refused
    variable regport
    if {[catch {ReadPortFile} port]} {
        set rec(reason) $port
        Retry
        return
    }
    if {$port eq ""} {
        set rec(reason) "no registry port in [PortFile]"
        Retry
        return
    }
    # The port file's lock is not looked up in the quick try to the port
    # the lost registry had (regport), which passed both checks when we
    # connected.  What keeps another user from getting anything is the
    # check of the accepting socket's uid, made on this connection too
    # before a byte is sent (OwnedSocket); the lock adds that the port is
    # a live registry's of this HOME, not some other process of our own
    # uid.  Here it would only tell what the answer to Hello does (a
    # process of ours that is not a registry is dropped), except for a
    # registry of ours serving another HOME that took this very port in
    # the instant since ours died: possible only without a standby
    # (with one, the listening socket and the lock outlive the registry,
    # docs/election.md), and a matter of which registry, not of trust,
    # as our own uid can read all we would tell it.  The C library never
    # looks at the lock before connecting.  The cost is real: reading
    # /proc/locks takes the kernel's lock table for writing (stalling
    # every flock(2) on the machine meanwhile), and after a failover
    # every application does it at once: 100 of them waited 0.1-0.25 s
    # in turn there.  When the quick try fails, electing checks the lock
    # as always.
    if {!($rec(quick) && $port == $regport)
        && [catch {CheckPortFile $port} err opts]} {
        # The quick try says nothing: the way after it (electing) tells
        # of a port that is not ours, once, if it still matters then.
        if {!$rec(quick)} { Refused $err $opts }
        set rec(reason) $err
        Retry
        return
    }
    MakeLink
    set sid [::list $port 127.0.0.1]
    set refused {}
    if {[catch {SendAsync [::list Commreg/Hello comm::registry/$version] \
                    [::list ::comm::registry::RecoverHello $g $port]} err]} {
        if {[llength $refused]} {
            lassign $refused err code
            if {!$rec(quick)} { Refused $err [::list -errorcode $code] }
            set rec(reason) $err
        } else {
            set rec(reason) "no registry answers on port $port: $err"
        }
        Retry
        return
    }
    set rec(timer) [after 3000 [::list ::comm::registry::RecoverHello $g $port \
        -code timeout -result "no answer within 3000 ms"]]
}

proc ::comm::registry::RecoverHello {g port args} {
    variable gen
    variable rec
    variable regport
    if {$g != $gen} return
    CancelRecovery
    set code [dict get $args -code]
    set result [dict get $args -result]
    if {$code == -1} {
        # The connection went: the lost hook (which comm runs right after
        # this) takes it from here.
        set rec(reason) $result
        return
    }
    if {$code != 0 || ![IsRegistry $result]} {
        set rec(reason) "port $port does not answer as a commreg registry ($result)"
        DropConnection
        Retry
        return
    }
    # The port file names the user registry; a private registry of ours
    # that took its port (the quick try does not look at the lock) is
    # not it.
    if {![catch {dict get $result scope} scope] && $scope ne "user"} {
        set rec(reason) "port $port answers as a $scope registry, not as the user registry"
        DropConnection
        Retry
        return
    }
    set regport $port
    Reestablish $g
}

# Register every name again (asking for its old serial) and start every
# watch again, all at once; regained when all have answered.
proc ::comm::registry::Reestablish {g} {
    variable regs
    variable wpattern
    variable rec
    set rec(pending) 0
    set cmds {}
    foreach id [RegIds] {
        set r $regs($id)
        lappend cmds [RegisterCommand [dict get $r base] [dict get $r port] \
                          [dict get $r scope] [dict get $r serial]] \
            [::list ::comm::registry::Reestablished $g reg $id]
    }
    foreach tag [lsort -dictionary [array names wpattern]] {
        lappend cmds [::list Commreg/Watch $tag $wpattern($tag)] \
            [::list ::comm::registry::Reestablished $g watch $tag]
    }
    foreach {cmd cb} $cmds {
        if {[catch {SendAsync $cmd $cb} err]} {
            set rec(reason) $err
            Retry
            return
        }
        incr rec(pending)
    }
    if {!$rec(pending)} {
        Regained
    }
}

proc ::comm::registry::Reestablished {g kind what args} {
    variable gen
    variable rec
    if {$g != $gen} return
    set code [dict get $args -code]
    set result [dict get $args -result]
    if {$code == -1} return ;# lost again: the lost hook starts over
    if {$kind eq "reg"} {
        Reregistered $what $code $result
    } elseif {$code == 0} {
        Resnapshot $what -code 0 -result $result
    } else {
        Notify life error "cannot watch again ($what): $result"
    }
    if {[incr rec(pending) -1] == 0} {
        Regained
    }
}

proc ::comm::registry::Regained {} {
    variable state
    variable regport
    variable owed
    variable told
    set state connected
    set told ""
    LivenessStart
    incr ::comm::registry::stamp
    if {$owed} {
        set owed 0
        Notify life regained $regport
    }
}

proc ::comm::registry::TellLost {why} {
    variable owed
    set owed 1
    Notify life lost $why
}

proc ::comm::registry::GiveUp {} {
    variable state
    variable gen
    variable rec
    variable giveup_ms
    incr gen
    CancelRecovery
    DropConnection
    # Registrations and watches are kept: the next call that finds a
    # registry brings them back (RestoreSync).
    set state idle
    incr ::comm::registry::stamp
    TellLost "gave up after [expr {$giveup_ms / 1000}] s: $rec(reason)"
}

# After a give-up, the first call that connects restores everything,
# synchronously (it runs in the application's call, not in a callback).
proc ::comm::registry::RestoreSync {} {
    variable regs
    variable wpattern
    if {![array size regs] && ![array size wpattern]} return
    foreach id [RegIds] {
        set r $regs($id)
        set code [catch {Call [RegisterCommand [dict get $r base] \
            [dict get $r port] [dict get $r scope] [dict get $r serial]]} res]
        Reregistered $id $code $res
    }
    foreach tag [lsort -dictionary [array names wpattern]] {
        if {[catch {Call [::list Commreg/Watch $tag $wpattern($tag)] "" \
                         [::list ::comm::registry::Resnapshot $tag]} res]} {
            Notify life error "cannot watch again ($tag): $res"
        }
    }
}

package provide comm::registry 0.1.0
