# The detached registry's log, ~/.tcl/comm/log/HOST.log, is trusted as
# the other files of the tree are (docs/security.md): a FIFO there must
# not block the registry (which holds the election's lock) for ever, a
# symbolic link or a file of another user is not written to, and in every
# case the caller's stderr is let go of, so a caller that reads it to its
# end (Tcl's exec, the comm::registry package) is not held up; where the
# log went is said on that stderr.  Before the fix, the FIFO case never
# answered, and the link case kept the caller's pipe open.
#
# The file is bounded (--log-size, 1 MiB by default): once full it becomes
# HOST.log.1 (the one before is dropped) and a new HOST.log is opened
# with the same checks; a log that cannot be put aside ends with a line
# that says why, and the registry serves on, logging nowhere.
source [file join [file dirname [info script]] lib.tcl]

# Start `commregd --detach` for HOME with stdout and stderr on a pipe we
# read to its end, bounded.  Returns dict eof (1 when the pipe closed
# within MS) out (what came) ms (how long).
proc detach_through_pipe {home {ms 8000}} {
    set t0 [clock milliseconds]
    set ch [open "|[list env HOME=$home [commregd_path] --detach \
        --home $home] 2>@1" r]
    fconfigure $ch -blocking 0
    set out ""
    set eof 0
    while {[clock milliseconds] - $t0 < $ms} {
        append out [read $ch]
        if {[eof $ch]} { set eof 1; break }
        after 20
    }
    # The parent commregd exits once the child listens; closing our end
    # reaps it (or kills it, if it is still there when eof never came).
    if {!$eof} {
        foreach pid [pid $ch] { catch {exec kill -KILL $pid} }
    }
    catch {close $ch}
    return [dict create eof $eof out $out \
                ms [expr {[clock milliseconds] - $t0}]]
}

proc logpath {home} {
    return [file join $home .tcl comm log "[shorthost].log"]
}

# Stop the registry that serves HOME, by its pid.
proc stop_registry {home} {
    if {[file_port $home] eq "" || [catch {registry_pid $home} pid]} return
    if {$pid ne ""} { kill_proc $pid }
}

# Start `commregd --detach -v --log-size SIZE` for HOME; returns its port.
proc detach_bounded {home size} {
    set r [run -home $home [commregd_path] --detach --home $home -v \
               --log-size $size]
    if {[dict get $r code] != 0} {
        error "commregd --detach: [dict get $r err]"
    }
    return [file_port $home]
}

# One connection that says hello and goes: a few debug lines in the log.
proc knock {port} {
    set s [raw_open $port]
    raw_call $s ProtocolVersion
    raw_close $s
}

main {
    test a_fifo_at_the_log_path_does_not_block {
        set home [new_home]
        defer [list stop_registry $home]
        make_regdir $home
        file mkdir [file dirname [logpath $home]]
        file attributes [file dirname [logpath $home]] -permissions 0700
        exec mkfifo -m 600 [logpath $home]
        set r [detach_through_pipe $home]
        check "the caller's pipe closes" {[dict get $r eof]}
        check_match "it says where logging went" \
            "*not logging to a file*not a regular file*" [dict get $r out]
        set port [file_port $home]
        check "the registry serves" {$port ne "" && [port_open $port]}
        if {$port ne ""} {
            check_equal "and answers" {0 1} \
                [raw_call [raw_open $port] ProtocolVersion]
        }
        stop_registry $home
    }

    test a_symlink_at_the_log_path_is_not_followed {
        set home [new_home]
        defer [list stop_registry $home]
        make_regdir $home
        file mkdir [file dirname [logpath $home]]
        file attributes [file dirname [logpath $home]] -permissions 0700
        set target [file join [tempdir target] elsewhere.log]
        write_file $target ""
        file link -symbolic [logpath $home] $target
        set r [detach_through_pipe $home]
        check "the caller's pipe closes" {[dict get $r eof]}
        check_match "it says why" "*not logging to a file*symbolic link*" \
            [dict get $r out]
        check_equal "nothing written through the link" "" [read_file $target]
        set port [file_port $home]
        check "the registry serves" {$port ne "" && [port_open $port]}
        stop_registry $home
    }

    test a_good_log_file_gets_the_log_and_stderr_is_let_go {
        set home [new_home]
        defer [list stop_registry $home]
        set r [detach_through_pipe $home]
        check "the caller's pipe closes" {[dict get $r eof]}
        check "the log file has the registry's start" {[string match \
            "*listening on 127.0.0.1:*" [read_file [logpath $home]]]}
        check_equal "its mode" 0600 [perm [logpath $home]]
        stop_registry $home
    }

    test a_log_file_of_another_user_is_not_written {
        if {[exec id -u] != 0} {
            say "  (skipped: needs root to give a file away)"
            return
        }
        set home [new_home]
        defer [list stop_registry $home]
        make_regdir $home
        file mkdir [file dirname [logpath $home]]
        file attributes [file dirname [logpath $home]] -permissions 0700
        write_file [logpath $home] "" 0600
        file attributes [logpath $home] -owner nobody
        set r [detach_through_pipe $home]
        check "the caller's pipe closes" {[dict get $r eof]}
        check_match "it says whose the file is" "*not logging*owned by uid*" \
            [dict get $r out]
        check_equal "nothing appended" "" [read_file [logpath $home]]
        stop_registry $home
    }

    test the_log_file_is_bounded {
        set home [new_home]
        defer [list stop_registry $home]
        set size 4096
        set port [detach_bounded $home $size]
        set log [logpath $home]
        set old $log.1
        # A line is at most 2048 bytes: a file is put aside within one.
        set most [expr {$size + 2048}]
        set biggest 0
        set first ""
        set rotations 0
        for {set i 0} {$i < 400 && $rotations < 2} {incr i} {
            knock $port
            set biggest [expr {max($biggest, [file_size $log])}]
            if {[file exists $old]} {
                set head [lindex [split [read_file $old] \n] 0]
                if {$head ne $first} {
                    incr rotations
                    set first $head
                    check "HOST.log.1 holds the full log ([file size $old] bytes)" \
                        {[file size $old] >= $size && [file size $old] < $most}
                }
            }
        }
        check_equal "the log was put aside twice" 2 $rotations
        check "HOST.log never grew past $size bytes and a line ($biggest)" \
            {$biggest < $most}
        check_equal "one old log is kept, no more" \
            [list [file tail $log] [file tail $old]] \
            [lsort [lmap f [glob -directory [file dirname $log] *] {file tail $f}]]
        check_equal "the new log's mode" 0600 [perm $log]
        check_equal "the old log's mode" 0600 [perm $old]
        check_match "the old log says where it goes on" \
            "*this log is full ($old now): continued in $log\n" [read_file $old]
        set before [file_size $log]
        knock $port
        check "the registry serves on and logs to the new file" \
            {[file_size $log] > $before}
    }

    test a_log_that_cannot_be_put_aside_says_so_and_stops {
        set home [new_home]
        defer [list stop_registry $home]
        make_regdir $home
        file mkdir [file dirname [logpath $home]]
        file attributes [file dirname [logpath $home]] -permissions 0700
        set log [logpath $home]
        # HOST.log.1 taken by a directory with something in it: the
        # full log cannot be renamed onto it.
        file mkdir $log.1/keep
        set port [detach_bounded $home 4096]
        for {set i 0} {$i < 200 && ![string match "*goes nowhere*" [read_file $log]]} {incr i} {
            knock $port
        }
        check_match "the log's last line says why it stops" \
            "*$log is full and cannot rename it to $log.1: *; this registry's log goes nowhere from here\n" \
            [read_file $log]
        set before [file_size $log]
        knock $port
        knock $port
        check_equal "nothing is written after it" $before [file_size $log]
        check "the directory is left alone" {[file isdirectory $log.1/keep]}
        check_equal "the registry serves on" {0 1} \
            [raw_call [raw_open $port] ProtocolVersion]
    }
}
