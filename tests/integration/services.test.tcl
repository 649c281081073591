# The daemons as services (docs/gateway.md "Running it under systemd",
# docs/election.md "From login"): what an operator or a unit file meets
# before anything is served.
#
#   daemons_say_their_version      commregd and commgwd --version: one
#                                  line with the project's version, exit 0
#   an_unknown_option_is_one_line  a word neither knows, an option
#                                  without its value, a value given to a
#                                  flag, a stray argument: one line that
#                                  names it and says "try --help", exit 2,
#                                  nothing on stdout, nothing started
#   a_gateway_left_root_says_so    started as root without [gateway] user
#                                  the gateway warns in its log; with a
#                                  user it does not
source [file join [file dirname [info script]] lib.tcl]

# The version CMake's project() gives, read from the top CMakeLists.txt.
proc project_version {} {
    set text [read_file [file join [src_dir] CMakeLists.txt]]
    if {![regexp {project\(commreg VERSION ([0-9.]+)} $text -> v]} {
        error "no project(commreg VERSION ...) in CMakeLists.txt"
    }
    return $v
}

proc daemons {} {
    return [list commregd [commregd_path] commgwd [gw_path]]
}

main {
    test daemons_say_their_version {
        set v [project_version]
        foreach {name exe} [daemons] {
            set r [run $exe --version]
            check_equal "$name --version: exit 0" 0 [dict get $r code]
            check_equal "$name --version: name and version" \
                "$name (commreg) $v\n" [dict get $r out]
            check_equal "$name --version: nothing on stderr" "" [dict get $r err]
        }
    }

    test an_unknown_option_is_one_line {
        set home [new_home]
        foreach {name exe} [daemons] {
            foreach {argv said} [list \
                {--no-such-option} {unknown option "--no-such-option"} \
                {-Z}               {unknown option "-Z"} \
                {-vZ}              {unknown option "-Z"} \
                {--config-dir}     {option "--config-dir" needs a value} \
                {--help=yes}       {option "--help" takes no value} \
                {stray}            {unexpected argument "stray"}] {
                set r [run -home $home $exe {*}$argv]
                check_equal "$name $argv: exit 2" 2 [dict get $r code]
                check_equal "$name $argv: one line naming it" \
                    "$name: $said; try \"$name --help\"\n" [dict get $r err]
                check_equal "$name $argv: nothing on stdout" "" [dict get $r out]
            }
        }
        check_equal "no registry was started for the bad command lines" \
            "" [file_port $home]
    }

    test a_gateway_left_root_says_so {
        if {[exec id -u] != 0} {
            say "  (skipped: the warning is for a gateway started as root)"
            return
        }
        set d [gw_confdir [dict create 00-gateway.ini \
            "\[gateway\]\nsocket = @SOCKET@\n"]]
        set g [gw_start $d]
        check "without user: the log warns that it serves as root" \
            {[gw_wait_log $g {commgwd: serving as root: nothing here needs it; set user = tclcomm}]}
        check_match "and names where to set it" "*\\\[gateway\\\] of $d/\\*.ini*" \
            [gw_log $g]
        stop $g

        set d2 [gw_confdir [dict create 00-gateway.ini \
            "\[gateway\]\nsocket = @SOCKET@\nuser = nobody\n"]]
        set g2 [gw_start $d2]
        check "with user = nobody: it says whom it runs as" \
            {[gw_wait_log $g2 {running as nobody}]}
        check "and gives no such warning" \
            {![string match "*serving as root*" [gw_log $g2]]}
        stop $g2
    }
}
