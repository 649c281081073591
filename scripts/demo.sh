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
say "A private room: 'commreg run --semi' gives a process tree its own registry"
"$bin/commreg" run --semi -- sh -c "
  echo \"   inside: TCL_COMM_REGPORT=\$TCL_COMM_REGPORT\"
  '$bin/commreg' register helper 4100 >/dev/null & h=\$!
  sleep 0.5
  echo '   inside, commreg list (the group first, then the user registry):'
  '$bin/commreg' list | sed 's/^/     /'
  kill \$h; wait \$h 2>/dev/null"
echo "   outside, commreg list: the group's 'helper' never shows up here:"
"$bin/commreg" list | sed 's/^/     /'

say "The host gateway: the sysadmin's policy for offering applications to every user"
gwdir=$(mktemp -d /tmp/commreg-gw.XXXXXX)
chmod 755 "$gwdir"
printf '[gateway]\nsocket = %s/gateway.sock\n' "$gwdir" >"$gwdir/00-gateway.ini"
cat >"$gwdir/10-policy.ini" <<'EOF'
[rule no-low-ports]
action = deny
ports = 1-1023
message = ports below 1024 are not offered to the host
EOF
chmod 644 "$gwdir"/*.ini
gwbin=$PWD/build/demo/gateway/commgwd
"$gwbin" --config-dir "$gwdir" --check-config
"$gwbin" --config-dir "$gwdir" 2> >(sed -u 's/^/   [gateway] /') >/dev/null &
gwpid=$!; pids+=($gwpid)
sleep 0.3
# A user registry reads the host configuration when it starts: a fresh
# session (another throwaway HOME) of the same user, with the variable set.
export TCL_COMM_CONFIG_DIR=$gwdir
home2=$(mktemp -d /tmp/commreg-demo2.XXXXXX)
printf '%s\n' 'set s [socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.1 0]' \
  'puts [lindex [fconfigure $s -sockname] 2]; flush stdout' 'vwait forever' \
  >"$gwdir/listener.tcl"
exec 3< <(exec tclsh "$gwdir/listener.tcl")
pids+=($!)
read -r boardport <&3
echo "   a board application listens on port $boardport and offers itself to the host:"
HOME=$home2 "$bin/commreg" register board "$boardport" --scope host 2>&1 |
  sed -u 's/^/   [board] /' &
pids+=($!)
sleep 1
echo "   the sysadmin's rule refuses a low port; the gateway itself refuses a port"
echo "   that is no listening socket of ours, whatever the rules say:"
HOME=$home2 "$bin/commreg" register lowport 80 --scope host 2>&1 | sed 's/^/     /' || true
HOME=$home2 "$bin/commreg" register elsewhere $((boardport + 1)) --scope host 2>&1 |
  sed 's/^/     /' || true
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
  nhome=$(mktemp -d /tmp/commreg-nobody.XXXXXX); chown nobody "$nhome"; chmod 755 "$gwdir"
  echo "   user nobody's own registry lists it as board@$(id -un):"
  setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME="$nhome" \
    TCL_COMM_CONFIG_DIR="$gwdir" COMMREG_COMMREGD="$COMMREG_COMMREGD" \
    "$bin/commreg" list 2>&1 | sed 's/^/     /' || true
  setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME="$nhome" \
    "$bin/commreg" status >/dev/null 2>&1 || true
fi
echo "   the sysadmin now denies 'board' and reloads (SIGHUP): it is withdrawn, its holder told:"
cat >>"$gwdir/10-policy.ini" <<'EOF'

[rule no-boards]
action = deny
names = board*
message = boards are closed for the night
EOF
kill -HUP "$gwpid"; sleep 1
HOME=$home2 "$bin/commreg" list | sed 's/^/     /'
kill "$gwpid" 2>/dev/null || true
# The registries the demo's users started (detached): by PID, those whose
# HOME is one of the demo's (a process may end meanwhile: quietly).
for p in $(pgrep -x commregd); do
  if { tr '\0' '\n' </proc/$p/environ; } 2>/dev/null | grep -qE "^HOME=($home2|${nhome:-/nonexistent})$"; then kill "$p"; fi
done
rm -rf "$gwdir" "$home2" "${nhome:-}"
unset TCL_COMM_CONFIG_DIR

say "Two hosts' gateways linked over TLS: a global name crosses (127.0.0.2 -> 127.0.0.3)"
fdir=$(mktemp -d /tmp/commreg-fed.XXXXXX)
chmod 755 "$fdir"
bash tests/tools/mkcerts.sh "$fdir/tls"
for n in 2 3; do
  o=$((5 - n))
  mkdir -m 755 "$fdir/etc$n"
  mkdir -m 700 "$fdir/home$n"
  cat >"$fdir/etc$n/00-gateway.ini" <<EOF
[gateway]
socket = $fdir/gw$n.sock
listen = 127.0.0.$n:7443
certificate = $fdir/tls/gw$n.crt
key = $fdir/tls/gw$n.key
ca = $fdir/tls/ca.crt

[rule leave-host]
action = allow
scopes = global
names = calc*

[remote gw$o]
address = 127.0.0.$o:7443
peer_name = gw$o.test
export = calc*
import = calc*
EOF
  chmod 644 "$fdir/etc$n/00-gateway.ini"
  "$gwbin" --config-dir "$fdir/etc$n" 2> >(sed -u "s/^/   [gw$n] /") >/dev/null &
  pids+=($!)
done
sleep 1
printf '%s\n' 'set s [socket -server {apply {{c a p} {close $c}}} -myaddr 127.0.0.1 0]' \
  'puts [lindex [fconfigure $s -sockname] 2]; flush stdout' 'vwait forever' \
  >"$fdir/listener.tcl"
exec 4< <(exec tclsh "$fdir/listener.tcl")
pids+=($!)
read -r calcport <&4
HOME=$fdir/home3 TCL_COMM_CONFIG_DIR=$fdir/etc3 "$bin/commreg" watch 'calc*' \
  > >(sed -u 's/^/   [watch on host 3] /') &
pids+=($!)
sleep 1
echo "   host 2: an application registers calc with scope global:"
HOME=$fdir/home2 TCL_COMM_CONFIG_DIR=$fdir/etc2 "$bin/commreg" register calc "$calcport" --scope global \
  > >(sed -u 's/^/   [calc] /') 2>&1 &
calcpid=$!
sleep 1.5
echo "   host 3: commreg list and lookup see it, with host 2's address:"
HOME=$fdir/home3 TCL_COMM_CONFIG_DIR=$fdir/etc3 "$bin/commreg" list | sed 's/^/     /'
HOME=$fdir/home3 TCL_COMM_CONFIG_DIR=$fdir/etc3 "$bin/commreg" lookup calc | sed 's/^/     lookup calc -> /'
echo "   host 2's application exits: host 3's watcher is told"
kill "$calcpid" 2>/dev/null || true
sleep 1
# The watchers and gateways first: a watcher whose registry goes elects
# another, which would outlive the demo.
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
sleep 0.3
for p in $(pgrep -x commregd); do
  if { tr '\0' '\n' </proc/$p/environ; } 2>/dev/null | grep -qE "^HOME=$fdir/home[23]$"; then kill "$p"; fi
done
sleep 0.3
rm -rf "$fdir"

say "Done. Try it yourself: build/demo/local/commreg --help"
