#!/bin/sh
# man_options.sh PAGE PROGRAM: every long option and every command
# PROGRAM's --help names, and every option of each command's own --help,
# must appear in its manual page, so that an option added to a program
# and not to its page fails the test.  Commands are the words indented
# under "commands:" in the usage (commreg's).
page=$1
prog=$2
status=0
help=$("$prog" --help) || { echo "$prog --help failed"; exit 1; }
# (a command's line starts with two spaces; a wrapped summary with more)
cmds=$(printf '%s\n' "$help" | sed -n '/^commands:/,/^$/p' |
  sed -n 's/^  \([a-z][a-z-]*\).*/\1/p')
for sub in $cmds; do
  sub_help=$("$prog" "$sub" --help) ||
    { echo "$prog $sub --help failed"; exit 1; }
  help="$help
$sub_help"
done
# The page as man renders it, one word per line, hyphens plain.
words=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$page" 2>/dev/null |
  sed 's/\xe2\x80\x90/-/g' | tr -s ' \t' '\n\n')
opts=$(printf '%s\n' "$help" | grep -o -- '--[a-z][a-z-]*' | sort -u)
for w in $opts $cmds; do
  if ! printf '%s\n' "$words" | grep -q -- "^\[*$w\b"; then
    echo "$page: $w (from $(basename "$prog") --help) is not in the page"
    status=1
  fi
done
[ $status -eq 0 ] && echo "$page: every option and command of $(basename "$prog") is in it"
exit $status
