# Symbolic links where the user's files should be (docs/security.md,
# docs/distributed.md, docs/election.md): never followed, refused with a
# message naming the path and saying why.
#
#   commreg_cookie_refuses_a_symlink
#                     `commreg cookie` with ~/.tcl/comm/cookie a link (to
#                     a good secret, or to nothing): exit 1, "PATH: is a
#                     symbolic link; refusing to follow it", nothing
#                     written through it
#   a_cookie_that_is_a_symlink_is_refused_and_the_registry_serves
#                     the registry finds the cookie a link: the
#                     distributed registry is off, the log says why, the
#                     port file is just the port, and it serves (the same
#                     secret as a plain file turns it on)
#   another_hosts_port_file_that_is_a_symlink_is_not_dialled
#                     a link among the registry directory's port files,
#                     to a file naming a listener: not dialled, said in
#                     the log (the same file in its place is dialled)
#   a_client_refuses_a_port_file_that_is_a_symlink
#                     `commreg list` with the port file a link: exit 1,
#                     the path and why, said by the client before it
#                     tries or starts any registry
source [file join [file dirname [info script]] lib.tcl]

proc cookie_path {home} { return [file join $home .tcl comm cookie] }

# A good secret (32 random bytes, 0600) at PATH.
proc secret_at {path} {
    set f [open /dev/urandom rb]
    set key [read $f 32]
    close $f
    set o [open $path wb]
    puts -nonewline $o $key
    close $o
    file attributes $path -permissions 0600
}

# A distributed registry for HOME (its port file "PORT\ndist ...\n");
# returns its pid once its port file says where it links.
proc dist_registry {home} {
    set pid [start_daemon $home --dist-listen 127.0.0.1]
    if {![wait_until {[::t::alive $pid] && [regexp {^[0-9]+\ndist 127\.0\.0\.1 [0-9]+\n$} \
            [::t::read_file [::t::portfile $home]]]} [slow 5000] 20]} {
        error "the distributed registry of $home did not start:\n[daemon_log $pid]"
    }
    return $pid
}

# A listener on 127.0.0.1 counting the connections it is given; returns
# {port varname}.
proc counting_listener {} {
    set v ::accepted_[incr ::nlisteners]
    set $v 0
    set s [socket -server [list apply {{v c a p} { incr $v; close $c }} $v] \
               -myaddr 127.0.0.1 0]
    defer [list close $s]
    return [list [lindex [fconfigure $s -sockname] 2] $v]
}

main {
    test commreg_cookie_refuses_a_symlink {
        foreach kind {to-a-secret dangling} {
            set home [new_home]
            make_regdir $home
            set target [file join $home secret]
            if {$kind eq "to-a-secret"} { secret_at $target }
            set before [expr {[file exists $target] ? [read_file $target] : ""}]
            exec ln -s $target [cookie_path $home]
            set r [commreg $home cookie]
            check_equal "$kind: exit 1" 1 [dict get $r code]
            check_equal "$kind: nothing on stdout" "" [dict get $r out]
            check_equal "$kind: the path and why" \
                "commreg: [cookie_path $home]: is a symbolic link; refusing to follow it (remove it)" \
                [string trim [dict get $r err]]
            check_equal "$kind: the link left alone" link [file type [cookie_path $home]]
            if {$kind eq "dangling"} {
                check_equal "$kind: nothing made where it points" 0 [file exists $target]
            } else {
                check "$kind: the secret untouched" {[read_file $target] eq $before}
            }
        }
    }

    test a_cookie_that_is_a_symlink_is_refused_and_the_registry_serves {
        set home [new_home]
        make_regdir $home
        set secret [file join $home secret]
        secret_at $secret
        file link -symbolic [cookie_path $home] $secret
        set pid [start_daemon $home --dist-listen 127.0.0.1]
        # The port file is written at the election, before the cookie is
        # read: wait for what the log says of it.
        wait_until {[regexp {distributed registry( off|: links)} [::t::daemon_log $pid]]} [slow 5000] 20
        check_match "the log says why the distributed registry is off" \
            "*distributed registry off: [cookie_path $home]: is a symbolic link; refusing to follow it*" \
            [daemon_log $pid]
        check_regexp "the port file is just the port" {^[0-9]+\n$} [read_file [portfile $home]]
        check_equal "it serves" $pid [registry_pid $home]
        kill_proc $pid

        # The same secret, a plain file: the distributed registry is on,
        # so the link alone made the difference.
        set home [new_home]
        make_regdir $home
        secret_at [cookie_path $home]
        check "a plain cookie: the port file says where it links" {
            [catch {dist_registry $home} err] == 0}
    }

    test another_hosts_port_file_that_is_a_symlink_is_not_dialled {
        set home [new_home]
        make_regdir $home
        secret_at [cookie_path $home]
        set pid [dist_registry $home]
        lassign [counting_listener] lport count
        # "zz" sorts after any host name here: this registry is the one
        # that dials it.
        set body "4000\ndist 127.0.0.1 $lport\n"
        set real [file join $home zz-portfile]
        write_file $real $body 0600
        set zz [file join [regdir $home] zz]
        set mark [log_mark $pid]
        set tmp [file join [regdir $home] .zz]
        file link -symbolic $tmp $real
        file rename $tmp $zz
        check "the log says why it is not dialled" {[wait_until {
            [string match "*not linking to host zz: $::zz: is a symbolic link; refusing to follow it*" \
                 [::t::log_since $::pid $::mark]]} [slow 5000] 20]}
        pause [slow 2500]
        check_equal "nobody dialled the listener" 0 [set $count]
        # The same file in its place: dialled (so the link alone kept
        # the registry from dialling).
        file copy $real $tmp
        file attributes $tmp -permissions 0600
        file rename -force $tmp $zz
        check "a plain port file is dialled" {[wait_until {[set $::count] > 0} [slow 5000] 20]}
    }

    test a_client_refuses_a_port_file_that_is_a_symlink {
        set home [new_home]
        make_regdir $home
        set target [file join $home elsewhere]
        write_file $target "4000\n" 0600
        file link -symbolic [portfile $home] $target
        set r [commreg $home list]
        check_equal "exit 1" 1 [dict get $r code]
        # Said by the client itself, before any registry is tried or
        # started (commregd --detach would refuse the link too).
        check_equal "the path and why, from the client" \
            "commreg: [portfile $home]: is a symbolic link; refusing to follow it" \
            [string trim [dict get $r err]]
        check_equal "the target untouched" "4000\n" [read_file $target]
        check_equal "the link left alone" link [file type [portfile $home]]
        check_equal "no registry runs" {} [commregds_of $home]
    }
}
