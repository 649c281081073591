#!/usr/bin/env bash
# commreg in action: install, build, start this user's registry, and watch
# Tcl comm applications register, find each other, talk, and go away.
# Everything happens in a throwaway HOME, and is cleaned up at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/demo -j "$(nproc)" >/dev/null
export COMMREG_COMMREGD=$PWD/build/demo/local/commregd
bin=$PWD/build/demo/local
export HOME=$(mktemp -d /tmp/commreg-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${regpid:-}" ] && kill "$regpid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$HOME"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "HOME=$HOME: no registry yet. 'commreg status':"
"$bin/commreg" status || true

say "Starting the watcher (commreg watch), which starts the registry itself"
"$bin/commreg" watch > >(sed -u 's/^/   [watch] /') &
pids+=($!)
for _ in $(seq 50); do "$bin/commreg" status >/dev/null 2>&1 && break; sleep 0.1; done
regpid=$("$bin/commreg" status | awk '/pid/ {print $2; exit}')
"$bin/commreg" status
echo "port file: $(ls "$HOME"/.tcl/comm/registry/) -> $(cat "$HOME"/.tcl/comm/registry/*)"

say "Three Tcl applications register (two share a name: Tk-style serial)"
tclsh scripts/demo-app.tcl editor & pids+=($!)
tclsh scripts/demo-app.tcl editor & pids+=($!)
sleep 0.5
tclsh scripts/demo-app.tcl viewer editor & pids+=($!)
sleep 1

say "commreg list"
"$bin/commreg" list
say "commreg lookup 'editor #2'"
"$bin/commreg" lookup 'editor #2'

say "tcllib's own nameserv client sees the same table"
tclsh <<TCL
package require nameserv
nameserv::configure -port [string trim [exec cat {*}[glob $HOME/.tcl/comm/registry/*]]]
foreach {n d} [nameserv::search *] { puts "   nameserv: [list \$n] -> \$d" }
TCL

say "The viewer exits: its name goes, and the watcher is told"
kill "${pids[3]}"; sleep 0.5

say "Another user's process is refused (the kernel tells the registry who connects)"
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
  port=$(cat "$HOME"/.tcl/comm/registry/*)
  setpriv --reuid=nobody --regid=nogroup --clear-groups tclsh <<TCL || true
package require comm
if {[catch {comm::comm send $port Search *} m]} { puts "   as nobody: refused (\$m)" } else { puts "   as nobody: answered?! \$m" }
TCL
  sleep 0.2
  grep refused "$HOME"/.tcl/comm/log/*.log 2>/dev/null | tail -n 1 | sed 's/^/   [log] /' || true
fi
say "Done. Try it yourself: build/demo/local/commreg --help"
