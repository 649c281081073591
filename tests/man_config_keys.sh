#!/bin/sh
# man_config_keys.sh PAGE GWCONF_C: every key of the configuration's
# sections (the rows {"key", handler} of config/gwconf.c's key tables)
# must be described in tcl-comm.ini(5), so that a key added to the
# loader and not to the page fails the test.
page=$1
src=$2
status=0
keys=$(sed -n 's/^ *{"\([a-z_]*\)", *[a-z_]*},$/\1/p' "$src" | sort -u)
[ -n "$keys" ] || { echo "$src: no key table found"; exit 1; }
words=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$page" 2>/dev/null |
  tr -s ' \t' '\n\n')
for k in $keys; do
  if ! printf '%s\n' "$words" | grep -qx -- "$k"; then
    echo "$page: key \"$k\" (from $(basename "$src")) is not described"
    status=1
  fi
done
[ $status -eq 0 ] && echo "$page: all $(echo $keys | wc -w) keys of $(basename "$src") are in it"
exit $status
