#!/bin/sh
# man_c_functions.sh PAGE HEADER: every function commreg.h declares (a
# commreg_* name followed by "(") must be named in libcommreg(3), so
# that a call added to the library and not to its page fails the test.
page=$1
header=$2
status=0
funcs=$(grep -o '\bcommreg_[a-z_]*(' "$header" | tr -d '(' | sort -u)
[ -n "$funcs" ] || { echo "$header: no function found"; exit 1; }
for f in $funcs; do
  if ! grep -q "\b$f\b" "$page"; then
    echo "$page: $f (from $(basename "$header")) is not in the page"
    status=1
  fi
done
[ $status -eq 0 ] && echo "$page: all $(echo $funcs | wc -w) functions of $(basename "$header") are in it"
exit $status
