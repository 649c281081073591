# Differential test of the wire layer's Tcl codec (wire/tcllist.c,
# wire/tclmatch.c) against this tclsh.  Deterministic: a fixed seed drives
# every generator, so a failure reproduces.
#
# Parts, each with thousands of generated cases:
#   format   tclsh makes element lists, C formats them: tclsh must parse
#            C's string back to the same elements, and C's string must be
#            byte-identical to tclsh's [list]
#   parse    tclsh formats lists (canonical and with odd white space),
#            C parses: same elements
#   garbage  random strings heavy in braces, quotes and backslash
#            sequences: C and [llength] agree on ok/error, error message
#            and elements
#   match    pattern/string pairs: C agrees with [string match] on plain
#            strings (Tcl_StringCaseMatch, code points)
#   concat   C's tl_concat agrees with [concat]
#   command  random scripts: when C accepts one literal command, a tclsh
#            interpreter whose only command is [unknown] receives exactly
#            the same words; when C reports a Tcl syntax error, tclsh
#            reports the same one
#
# All bytes cross to and from tests/tools/tlcodec through files in binary
# mode, with explicit utf-8 conversion, so NUL, CR and LF are exact.
#
# Run by ctest as "tclsh tcllist_diff.test.tcl" with COMMREG_TOOLS set to
# the directory holding tlcodec.  Exit 0 on success, 1 on any failure.

if {![info exists ::env(COMMREG_TOOLS)]} {
    puts stderr "COMMREG_TOOLS is not set (the directory holding tlcodec)"
    exit 77
}
set CODEC [file join $::env(COMMREG_TOOLS) tlcodec]
if {![file executable $CODEC]} {
    puts stderr "no tlcodec at $CODEC: build the tlcodec target"
    exit 1
}

# A fixed seed; TCLLIST_DIFF_SEED picks another one for exploration.
set SEED 20240611
if {[info exists ::env(TCLLIST_DIFF_SEED)]} {
    set SEED $::env(TCLLIST_DIFF_SEED)
}
expr {srand($SEED)}
set EMOJI [encoding convertfrom utf-8 "\xf0\x9f\x98\x80"]

set PASSED 0
set FAILED 0
set SHOWN 0

proc rnd {n} { expr {int(rand() * $n)} }
proc pick {l} { lindex $l [rnd [llength $l]] }
proc u8 {s} { encoding convertto utf-8 $s }
proc rec {bytes} { return "[string length $bytes]:$bytes" }

# Bytes shown readably: printable ASCII as is, the rest as \xHH.
proc show {bytes} {
    set out ""
    foreach c [split $bytes ""] {
        scan $c %c n
        if {$n >= 0x20 && $n < 0x7f && $c ne "\\"} {
            append out $c
        } else {
            append out [format \\x%02x $n]
        }
    }
    return "\"$out\""
}

proc ok {} { incr ::PASSED }
proc fail {part what args} {
    incr ::FAILED
    if {[incr ::SHOWN] <= 10} {
        puts "FAIL $part: $what"
        foreach {k v} $args { puts "    $k: $v" }
    }
}

# Run tlcodec MODE on the byte string INPUT, return its output bytes.
proc codec {mode input} {
    set fd [file tempfile inpath]
    fconfigure $fd -translation binary
    puts -nonewline $fd $input
    close $fd
    set fd [file tempfile outpath]
    close $fd
    try {
        exec $::CODEC $mode < $inpath > $outpath
        set fd [open $outpath rb]
        set data [read $fd]
        close $fd
    } finally {
        file delete $inpath $outpath
    }
    return $data
}

# Split tlcodec's output into records.
proc records {data} {
    set out {}
    set i 0
    set n [string length $data]
    while {$i < $n} {
        set colon [string first : $data $i]
        set len [string range $data $i [expr {$colon - 1}]]
        set i [expr {$colon + 1}]
        lappend out [string range $data $i [expr {$i + $len - 1}]]
        incr i $len
    }
    return $out
}

# Parse results: a list of {ok ELEMENTS} or {error MESSAGE}, bytes.
proc parse_results {data} {
    set recs [records $data]
    set out {}
    for {set i 0} {$i < [llength $recs]} {incr i} {
        set head [lindex $recs $i]
        if {$head eq "error"} {
            lappend out [list error [lindex $recs [incr i]]]
        } else {
            set n [lindex $head 1]
            lappend out [list ok [lrange $recs [expr {$i + 1}] \
                [expr {$i + $n}]]]
            incr i $n
        }
    }
    return $out
}

proc u8list {l} {
    set out {}
    foreach e $l { lappend out [u8 $e] }
    return $out
}

# ---------------------------------------------------------------- generators

set ELEM_CHARS [list \{ \{ \} \} \" \" \\ \\ \\ \$ \[ \] \; # # \
    " " " " \t \n \r \v \f \0 a b c x z 0 1 7 n u U x \
    \u00e9 \u00fc \u4e2d $EMOJI]

proc gen_string {chars max} {
    set s ""
    set n [rnd $max]
    for {set i 0} {$i < $n} {incr i} { append s [pick $chars] }
    return $s
}

proc gen_elem {{depth 0}} {
    switch [rnd 24] {
        0 { return "" }
        1 - 2 {
            if {$depth < 2} {
                return [list {*}[gen_elems [expr {$depth + 1}]]]
            }
        }
        3 { return "[gen_string $::ELEM_CHARS 4]\\" }
        4 {
            set a [gen_string $::ELEM_CHARS 4]
            return "$a\\\n[gen_string $::ELEM_CHARS 4]"
        }
        5 { return "#[gen_string $::ELEM_CHARS 5]" }
        6 { return "{*}[gen_string $::ELEM_CHARS 3]" }
    }
    return [gen_string $::ELEM_CHARS 10]
}

proc gen_elems {{depth 0}} {
    set l {}
    set n [rnd 6]
    for {set i 0} {$i < $n} {incr i} { lappend l [gen_elem $depth] }
    return $l
}

# Pieces of garbage: list syntax and every kind of backslash sequence, so
# that sequences run into each other ("\x4" then "1").
set GARBAGE [list \{ \{ \{ \} \} \} \" \" \" \\ \\ " " " " " " \
    \t \n \r \v \f \0 \
    a b x \u00e9 \u4e2d $EMOJI # \; \$ \[ \] 0 1 4 7 f F D \
    "\\x" "\\x4" "\\x41" "\\xfg" "\\xff" "\\u" "\\u4" "\\u00e9" "\\u4e2d" \
    "\\uD83D" "\\uDE00" "\\uDBFF\\uDFFF" "\\U" "\\U1F600" "\\U10FFFF" \
    "\\U110000" "\\U0000D83D" "\\U0000DE00" "\\U41" "\\0" "\\7" "\\77" \
    "\\377" "\\400" "\\777" "\\a" "\\b" "\\f" "\\n" "\\r" "\\t" "\\v" \
    "\\\n" "\\\n  \t" "\\{" "\\}" "\\\"" "\\\\" "\\ " "\\$EMOJI" \
    "\\\u00e9" "\\\0" "{}" "\"\"" \
    [string repeat x 17] [string repeat x 18] [string repeat x 19]]

proc gen_garbage {} {
    set s ""
    set n [rnd 14]
    for {set i 0} {$i < $n} {incr i} { append s [pick $::GARBAGE] }
    if {[rnd 8] == 0} {
        # Junk after a closing brace or quote, around Tcl's 20-byte cut.
        append s [pick {\{a\} \"a\"}] [string repeat x [expr {14 + [rnd 7]}]]
        for {set i [rnd 4]} {$i > 0} {incr i -1} {
            append s [pick [list \u00e9 \u4e2d $::EMOJI \0 y]]
        }
    }
    return $s
}

set WS [list " " " " "  " \t \n \r \v \f " \n "]

# ---------------------------------------------------------------- 1: format

proc part_format {ncases} {
    set cases {}
    set input ""
    for {set i 0} {$i < $ncases} {incr i} {
        set elems [gen_elems]
        lappend cases $elems
        append input [rec [llength $elems]]
        foreach e $elems { append input [rec [u8 $e]] }
    }
    set out [records [codec format $input]]
    set identical 0
    foreach elems $cases cbytes $out {
        set tbytes [u8 [list {*}$elems]]
        set s [encoding convertfrom utf-8 $cbytes]
        if {[catch {lrange $s 0 end} back]} {
            fail format "C's list does not parse in tclsh: $back" \
                elements [show [u8 [list {*}$elems]]] C [show $cbytes]
            continue
        }
        if {[u8list $back] ne [u8list $elems]} {
            fail format "round trip through tclsh changes the elements" \
                elements [show $tbytes] C [show $cbytes]
            continue
        }
        if {$cbytes ne $tbytes} {
            fail format "not byte-identical to \[list\]" \
                tclsh [show $tbytes] C [show $cbytes]
            continue
        }
        ok
    }
    puts "format: $ncases lists formatted by C, re-parsed by tclsh,\
        compared with \[list\]"
}

# ---------------------------------------------------------------- 2: parse

proc part_parse {ncases} {
    set cases {}
    set input ""
    for {set i 0} {$i < $ncases} {incr i} {
        set elems [gen_elems]
        if {[rnd 2]} {
            set s [list {*}$elems]
        } else {
            # Same list, odd white space between and around elements.
            set s [pick $::WS]
            foreach e $elems { append s [list $e] [pick $::WS] }
        }
        lappend cases [list $elems $s]
        append input [rec [u8 $s]]
    }
    set res [parse_results [codec parse $input]]
    foreach c $cases r $res {
        lassign $c elems s
        lassign $r status got
        if {$status ne "ok"} {
            fail parse "C refuses a list tclsh made: $got" list [show [u8 $s]]
        } elseif {$got ne [u8list $elems]} {
            fail parse "elements differ" list [show [u8 $s]] \
                tclsh [show [u8list $elems]] C [show $got]
        } else {
            ok
        }
    }
    puts "parse: $ncases lists formatted by tclsh, parsed by C"
}

# ---------------------------------------------------------------- 3: garbage

proc part_garbage {ncases} {
    set cases {}
    set input ""
    for {set i 0} {$i < $ncases} {incr i} {
        set s [gen_garbage]
        lappend cases $s
        append input [rec [u8 $s]]
    }
    set res [parse_results [codec parse $input]]
    set nerr 0
    foreach s $cases r $res {
        lassign $r status got
        # A fresh string, so tclsh parses it rather than reusing a list.
        set fresh [encoding convertfrom utf-8 [u8 $s]]
        if {[catch {llength $fresh}]} {
            catch {llength $fresh} msg
            incr nerr
            set want [u8 $msg]
            # tlist_parse's message is a C string: it stops at a NUL.
            set nul [string first \0 $want]
            if {$nul >= 0} {
                set want "[string range $want 0 [expr {$nul - 1}]]\"\
                    instead of space"
            }
            if {$status ne "error" || $got ne $want} {
                fail garbage "tclsh says error" input [show [u8 $s]] \
                    tclsh [show $want] C "$status [show $got]"
                continue
            }
        } else {
            set want [u8list [lrange $fresh 0 end]]
            if {$status ne "ok" || $got ne $want} {
                fail garbage "tclsh parses it" input [show [u8 $s]] \
                    tclsh [show $want] C "$status [show $got]"
                continue
            }
        }
        ok
    }
    puts "garbage: $ncases random strings ($nerr not lists), C vs llength"
}

# ---------------------------------------------------------------- 4: match

set MSTR [list a b c - \] \[ * ? \u00e9 \u4e2d $EMOJI \0 \\ z]
set MPAT [list * * ? ? \[ \] - \\ a b c \u00e9 \u4e2d $EMOJI \0 z]

# A pattern made from the pieces of s, so that many pairs match.
proc derive_pattern {pieces} {
    set p ""
    foreach c $pieces {
        switch [rnd 12] {
            0 { append p ? }
            1 { append p * }
            2 { append p * $c }
            3 { append p "\[$c\]" }
            4 { append p "\[[pick $::MSTR]-[pick $::MSTR]\]" }
            5 { append p "\[[pick $::MSTR]$c[pick $::MSTR]\]" }
            6 { append p "\\$c" }
            7 { append p [pick $::MPAT] }
            8 { }
            default {
                if {$c in {* ? [ \\}} { append p \\ }
                append p $c
            }
        }
    }
    if {[rnd 4] == 0} { append p [pick $::MPAT] }
    return $p
}

# [string match] as a Tcl server does it on text read from a socket: on
# fresh values the compiled [string match] calls Tcl_StringCaseMatch, which
# counts code points.  (On a value that already holds Tcl's UTF-16 form,
# e.g. after [string length], tclsh 8.6 counts UTF-16 units instead, so a
# character beyond U+FFFF is two; see wire/tclmatch.c.)
proc tcl_match {pbytes sbytes} {
    string match [encoding convertfrom utf-8 $pbytes] \
        [encoding convertfrom utf-8 $sbytes]
}

proc part_match {ncases} {
    set cases {}
    # A few fixed ones: backtracking over many stars.
    lappend cases [list *a*a*a*a*a*a*a*a*b [string repeat a 40]]
    lappend cases [list *a*a*a*a*a*a*a*a*a [string repeat a 40]]
    lappend cases [list {*[ab-]*a*a*a*a*c} "[string repeat a 30]c"]
    lappend cases [list {[ab-]*]} a*\]]
    while {[llength $cases] < $ncases} {
        set pieces {}
        set n [rnd 8]
        for {set j 0} {$j < $n} {incr j} { lappend pieces [pick $::MSTR] }
        if {[rnd 3] == 0} {
            set p [gen_string $::MPAT 9]
        } else {
            set p [derive_pattern $pieces]
        }
        lappend cases [list $p [join $pieces ""]]
    }
    set input ""
    foreach c $cases {
        lassign $c p s
        append input [rec [u8 $p]] [rec [u8 $s]]
    }
    set out [string trimright [codec match $input] \n]
    set nmatch 0
    foreach c $cases got [split $out ""] {
        lassign $c p s
        set want [tcl_match [u8 $p] [u8 $s]]
        incr nmatch $want
        if {$got ne $want} {
            fail match "C says $got, tclsh $want" pattern [show [u8 $p]] \
                string [show [u8 $s]]
        } else {
            ok
        }
    }
    puts "match: [llength $cases] pattern/string pairs ($nmatch match)"
}

# ---------------------------------------------------------------- 5: concat

proc part_concat {ncases} {
    set cases {}
    set input ""
    set chars [concat $::ELEM_CHARS $::WS $::WS \\ \\]
    for {set i 0} {$i < $ncases} {incr i} {
        set frags {}
        set n [rnd 5]
        for {set j 0} {$j < $n} {incr j} {
            lappend frags [gen_string $chars 8]
        }
        lappend cases $frags
        append input [rec [llength $frags]]
        foreach f $frags { append input [rec [u8 $f]] }
    }
    set out [records [codec concat $input]]
    foreach frags $cases got $out {
        # Fresh strings: [concat] of pure lists takes another path.
        set fresh {}
        foreach f $frags { lappend fresh [encoding convertfrom utf-8 [u8 $f]] }
        set want [u8 [concat {*}$fresh]]
        if {$got ne $want} {
            fail concat "differs" fragments [show [u8list $frags]] \
                tclsh [show $want] C [show $got]
        } else {
            ok
        }
    }
    puts "concat: $ncases fragment lists, C vs \[concat\]"
}

# ---------------------------------------------------------------- 6: command

set BARE [list a b x \u00e9 $EMOJI "\\n" "\\x41" "\\u00e9" "\\uD83D\\uDE00" \
    "\\U1F600" "\\ " "\\\"" "\\{" "\\\$" "\\\[" "\\;" "\\\\" "\\#" # \
    \" \{ \} \] \0 "\\\u00e9" "\\$EMOJI" "\\0" "\\" \$ \[]
set BRACED [list a " " "\\\n" "\\\n  \t" "\\}" "\\{" \{ \} \$ \[ \n \; \\ \" \
    "\\\\" # *]
set QUOTED [list a " " "\\\n  " "\\\"" \n \; \{ \} "\\x41" \\ "\\\\" \
    "\\uD83D" "\\uDE00" \$ \[ \] #]
set SEP [list " " " " \t "  " "\\\n" "\\\n\t " \v]
set PREFIX [list "" "" "" "# c\n" "\n" "\;" "  # c \\\n more\n" " " \
    "\n\n# x\n  "]
set SUFFIX [list "" "" "" "\;" "\n" "\n# comment\n" "\;\;" "\n  " "\; b" \
    "\nb" " \\\n" "\;# c"]

proc gen_word {} {
    switch [rnd 12] {
        0 - 1 { return "\{[gen_string $::BRACED 6]\}" }
        2 - 3 { return "\"[gen_string $::QUOTED 6]\"" }
        4 {
            return [pick [list "{*}" "{*}a" "{*}{a b}" "\$x" "\[a\]" "{}" \
                "\"\""]]
        }
        5 { return "\{[gen_string $::BRACED 6]" }
        6 { return "[pick [list \{a\} \"a\"]][pick $::BARE]" }
        default {
            set w [gen_string $::BARE 5]
            if {$w eq "" || [string index $w 0] in {\{ \" #}} { set w a$w }
            return $w
        }
    }
}

proc gen_script {} {
    set s [pick $::PREFIX]
    set n [rnd 5]
    for {set i 0} {$i < $n} {incr i} {
        if {$i > 0} { append s [pick $::SEP] }
        append s [gen_word]
    }
    append s [pick $::SUFFIX]
    return $s
}

proc capture {args} {
    lappend ::CAPTURED $args
    return
}

proc part_command {ncases} {
    # An interpreter with no visible command: every command is [unknown].
    set slave [interp create]
    foreach c [interp eval $slave {info commands}] {
        interp hide $slave $c
    }
    interp alias $slave unknown {} capture

    set cases {}
    set input ""
    for {set i 0} {$i < $ncases} {incr i} {
        set s [gen_script]
        lappend cases $s
        append input [rec [u8 $s]]
    }
    set res [parse_results [codec command $input]]
    set accepted 0
    set refused 0
    set syntax 0
    foreach s $cases r $res {
        lassign $r status got
        set ::CAPTURED {}
        set fresh [encoding convertfrom utf-8 [u8 $s]]
        set code [catch {interp eval $slave $fresh} msg]
        if {$status eq "ok"} {
            incr accepted
            # Zero words: no command runs; else exactly this one.
            set want [expr {[llength $got] ? [list $got] : {}}]
            set seen {}
            foreach cmd $::CAPTURED { lappend seen [u8list $cmd] }
            if {$code != 0 || $seen ne $want} {
                fail command "C accepts, tclsh differs" script [show [u8 $s]] \
                    C [show $got] tclsh "code $code [show [u8 $msg]]\
                    [show $::CAPTURED]"
                continue
            }
        } elseif {$got in {{missing close-brace} {missing "}
                {missing close-brace: possible unbalanced brace in comment}
                {extra characters after close-quote}
                {extra characters after close-brace}}} {
            incr syntax
            if {$code != 1 || [u8 $msg] ne $got || $::CAPTURED ne {}} {
                fail command "C: $got, tclsh differs" script [show [u8 $s]] \
                    tclsh "code $code [show [u8 $msg]] [show $::CAPTURED]"
                continue
            }
        } else {
            # Refused by policy ($, [, {*}, a second command): nothing to
            # compare, tclsh would substitute or run more.
            incr refused
        }
        ok
    }
    interp delete $slave
    puts "command: $ncases scripts ($accepted accepted, $syntax syntax\
        errors, $refused refused by policy), C vs tclsh's parser"
}

part_format 10000
part_parse 10000
part_garbage 12000
part_match 12000
part_concat 3000
part_command 6000

puts "$PASSED passed, $FAILED failed"
exit [expr {$FAILED != 0}]
