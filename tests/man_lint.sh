#!/bin/sh
# man_lint.sh PAGE...: format each manual page as man-db and groff do
# (all warnings on, UTF-8 terminal, 80 and 65 columns) and fail on any
# warning or error, naming the page.  groff exits 0 on warnings, so what
# it says is the verdict.
status=0
if ! command -v groff >/dev/null 2>&1 || ! command -v man >/dev/null 2>&1; then
  echo "man_lint: groff and man are needed (groff-base, man-db)" >&2
  exit 1
fi
[ $# -gt 0 ] || { echo "man_lint: no page given" >&2; exit 1; }
for page in "$@"; do
  if [ ! -s "$page" ]; then
    echo "$page: missing or empty"
    status=1
    continue
  fi
  out=$(
    LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null
    LC_ALL=C.UTF-8 groff -ww -z -man -Tutf8 "$page" 2>&1
    LC_ALL=C.UTF-8 groff -ww -z -man -Tutf8 -rLL=65n "$page" 2>&1
  )
  if [ -n "$out" ]; then
    echo "$page:"
    printf '%s\n' "$out" | sort -u
    status=1
  else
    echo "$page: ok"
  fi
done
exit $status
