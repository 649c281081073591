#!/bin/sh
# man_tcl_commands.sh PAGE REGISTRY_TCL: every public command of the Tcl
# package (a proc ::comm::registry::NAME whose name starts lower case)
# and every option of its configure must be in comm::registry(3tcl).
page=$1
src=$2
status=0
cmds=$(sed -n 's/^proc ::\(comm::registry::[a-z][A-Za-z_]*\) .*/\1/p' "$src" |
  sort -u)
opts=$(sed -n 's/^ *variable optnames *{\(.*\)}.*/\1/p' "$src")
[ -n "$cmds" ] || { echo "$src: no command found"; exit 1; }
text=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$page" 2>/dev/null)
for w in $cmds $opts; do
  if ! printf '%s\n' "$text" | grep -q -- "$w\b"; then
    echo "$page: $w (from $(basename "$src")) is not in the page"
    status=1
  fi
done
[ $status -eq 0 ] && echo "$page: every command and configure option is in it"
exit $status
