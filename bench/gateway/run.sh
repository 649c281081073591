#!/bin/bash
# bench/gateway/run.sh [BUILD_DIR]: the host gateway at size
# (docs/performance.md, "Gateway at size").  Builds commgwd, commregd and
# fedbench (RelWithDebInfo, into BUILD_DIR, default build-bench/), makes
# GWBENCH_USERS throwaway users (100), starts one gateway and each user's
# registry linked to it, and one more registry (root's) that only looks
# up.  Then measures, side by side in one run:
#   lookups through root's registry, which lacks the names, so that the
#   gateway answers: a bare name another user holds (u1-00005, found
#   through the gateway's index of application names; before the index,
#   by a scan of every entry) and one nobody has; GWBENCH_LOOKUPS (3000)
#   of each with 10 entries at the gateway, then with GWBENCH_N (100000)
#   spread over the users;
#   the gateway's resident memory with 10 and with N entries, per entry;
#   the time to register the N names (GWBENCH_PARALLEL users at a time);
#   the user registries' memory, and how many watch the gateway: a user
#   registry copies the gateway's table only while a list or watch uses
#   it (docs/gateway.md), so with nobody listing, none;
#   one user's `commreg list` of every name: the first fetches the copy,
#   the second (within 10 s) answers from it.
# A user registry holds its user's host and global names on one
# connection, which the gateway caps at 1024 names: N/USERS must be at
# most that.  Prints a markdown table on stdout, progress on stderr; a
# few minutes.  Must run as root (useradd).  BENCH_NO_BUILD=1 uses
# BUILD_DIR as it is; GWBENCH_KEEP=1 keeps the work directory.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/bench/lib.sh"
build=${1:-$src/build-bench}
N=${GWBENCH_N:-100000}
U=${GWBENCH_USERS:-100}
L=${GWBENCH_LOOKUPS:-3000}
per=$(((N + U - 1) / U))

say() { echo "gwbench: $(date +%T) $*" >&2; }
[ "$(id -u)" = 0 ] || { say "must run as root (it makes $U users)"; exit 1; }
[ "$per" -le 1000 ] || { say "GWBENCH_N/GWBENCH_USERS = $per: at most 1000"; exit 1; }

if [ -z "${BENCH_NO_BUILD:-}" ]; then
	mkdir -p "$build"
	if ! { cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
	    cmake --build "$build" -j"$(nproc)" --target commgwd commregd \
	        commreg fedbench; } >"$build/bench-gateway-build.log" 2>&1; then
		cat "$build/bench-gateway-build.log" >&2
		say "build failed"
		exit 1
	fi
fi
GWD=$build/gateway/commgwd
REGD=$build/local/commregd
CR=$build/local/commreg
FB=$build/bench/federation/fedbench
for p in "$GWD" "$REGD" "$CR" "$FB"; do
	[ -x "$p" ] || { say "missing $p"; exit 1; }
done

work=$(mktemp -d /tmp/gwbench.XXXXXX)
chmod 755 "$work"
tag=gwb$$
pids=()
users=()
cleanup() {
	local p u
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	bench_remove_users "${users[@]}"
	sleep 0.3
	if [ -z "${GWBENCH_KEEP:-}" ]; then rm -rf "$work"; else say "kept $work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mkdir -p "$work/etc"
chmod 755 "$work/etc"
cat >"$work/etc/00-gateway.ini" <<EOF
[gateway]
socket = $work/gw.sock
max_connections = $((U + 64))

[rule bench]
action = allow
scopes = global

[quota]
default = 1100
EOF
chmod 644 "$work/etc/00-gateway.ini"
"$GWD" --config-dir "$work/etc" >/dev/null 2>>"$work/gw.log" &
gwpid=$!
pids+=("$gwpid")
for i in $(seq 100); do [ -S "$work/gw.sock" ] && break; sleep 0.05; done

say "making $U users"
for i in $(seq "$U"); do
	u=$tag-$i
	useradd -M -d "$work/h$i" -s /usr/sbin/nologin "$u"
	users+=("$u")
	mkdir -p "$work/h$i"
	chown "$u:" "$work/h$i"
	chmod 700 "$work/h$i"
done
as() { # I CMD...: run CMD as user I with its HOME
	local u=$tag-$1
	shift
	env HOME="$work/h${u##*-}" setpriv --reuid="$u" --regid="$u" \
	    --clear-groups "$@"
}
say "starting $U user registries and root's"
mkdir -p "$work/look"
"$REGD" --home "$work/look" --config-dir "$work/etc" >/dev/null 2>>"$work/reg.log" &
pids+=($!)
regpids=($!)
for i in $(seq "$U"); do
	as "$i" "$REGD" --home "$work/h$i" --config-dir "$work/etc" \
	    >/dev/null 2>>"$work/reg.log" &
	pids+=($!)
	regpids+=($!)
done
for t in $(seq 300); do
	n=0
	for i in $(seq "$U"); do
		[ -s "$work/h$i/.tcl/comm/registry/$(hostname)" ] && n=$((n + 1))
	done
	[ "$n" -ge "$U" ] && break
	sleep 0.1
done
export COMMREG_COMMREGD=/bin/false # every registry is started above

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$gwpid/status"; }
stats() { bench_stats 3; } # values on stdin -> "median p99 max"
# lookups LABEL: 2L lookups alternating u1-00005 and a name nobody has.
lookups() {
	local out
	out=$("$FB" lookups $((2 * L)) "$work/look" u1-00005 nobody-here)
	[ "${out%% *}" = ok ] || { say "lookups failed: $out"; exit 1; }
	# Half of them name u1-00005, which must be found every time.
	found=$(echo "$out" | cut -d' ' -f2)
	[ "$found" = "$L" ] || { say "$1: u1-00005 found $found times of $L"; exit 1; }
	echo "$out" | tr ' ' '\n' | tail -n +3 | awk 'NR % 2 == 1' | stats >"$work/have.$1"
	echo "$out" | tr ' ' '\n' | tail -n +3 | awk 'NR % 2 == 0' | stats >"$work/none.$1"
}
# fill I COUNT: user I registers uI-00000 ... in the background.
fill() {
	# Not through as(): a function in the background is a subshell,
	# and its pid is not fedbench's (setpriv and env exec).
	env HOME="$work/h$1" setpriv --reuid="$tag-$1" --regid="$tag-$1" \
	    --clear-groups env FEDBENCH_PREFIX="u$1-" "$FB" fill "$2" \
	    "$work/h$1" >"$work/fill$1.out" 2>&1 &
	pids+=($!)
	eval "fillpid$1=\$!"
}
# wait_fills I...: until each says "ok SECONDS" (bounded).
wait_fills() {
	local i t st s
	for i in "$@"; do
		for t in $(seq 6000); do
			[ -s "$work/fill$i.out" ] && break
			sleep 0.05
		done
		read -r st s <"$work/fill$i.out" || true
		[ "$st" = ok ] || { say "fill of user $i: $(cat "$work/fill$i.out")"; tail -5 "$work/gw.log" >&2; exit 1; }
	done
}

say "10 names, $L lookups of each kind"
fill 1 10
wait_fills 1
sleep 0.5
lookups small
rss_small=$(rss)
kill "$fillpid1"
sleep 1
rm -f "$work/fill1.out"

say "$N names, $per for each of $U users"
t0=$(date +%s.%N)
# GWBENCH_PARALLEL users fill at once (default 4): all of them at once
# puts hundreds of processes on the CPUs, and a registration waits its
# turn longer than the 5 s a user registry gives its gateway.
P=${GWBENCH_PARALLEL:-4}
i=1
while [ "$i" -le "$U" ]; do
	batch=()
	for j in $(seq "$i" $((i + P - 1))); do
		[ "$j" -le "$U" ] || break
		fill "$j" "$per"
		batch+=("$j")
	done
	wait_fills "${batch[@]}"
	i=$((i + P))
done
t1=$(date +%s.%N)
sleep 1
lookups big
rss_big=$(rss)
regs_kb=$(for p in "${regpids[@]}"; do awk '/^VmRSS/ { print $2 }' "/proc/$p/status"; done |
    awk '{ s += $1 } END { print s + 0 }')
# Each registry's standby (local/standby.c), a child of its own.
sb_kb=$(for p in "${regpids[@]}"; do pgrep -P "$p"; done |
    while read -r c; do awk '/^VmRSS/ { print $2 }' "/proc/$c/status" 2>/dev/null; done |
    awk '{ s += $1; n++ } END { printf "%d %d\n", s, n }')
load=$(cut -d' ' -f1-3 /proc/loadavg)
# The gateway's watches: one per user registry that copies its table.
gw_watches() {
	"$CR" gateway-status --config-dir "$work/etc" |
	    awk '$1 == "watches" { print $2 }'
}
watching=$(gw_watches)
# One user lists every name: the first list fetches the copy.
list_ms() { # I: ms and lines of user I's `commreg list`
	local a b n
	a=$(date +%s%N)
	n=$(as "$1" "$CR" --home "$work/h$1" list | wc -l)
	b=$(date +%s%N)
	echo "$(((b - a) / 1000000)) $n"
}
read -r list1 lines1 <<<"$(list_ms 2)"
read -r list2 lines2 <<<"$(list_ms 2)"
watching_after=$(gw_watches)
# The lookups again once every user but the first has let go (100
# entries left): the machine's load changes between phases, and this
# puts a phase with few entries after the one with many as well.
gw_entries() {
	"$CR" gateway-status --config-dir "$work/etc" |
	    awk '$1 == "entries" { print $2 }'
}
for i in $(seq 2 "$U"); do eval "kill \$fillpid$i" 2>/dev/null || true; done
for t in $(seq 600); do
	[ "$(gw_entries)" -le "$per" ] && break
	sleep 0.1
done
left=$(gw_entries)
lookups after

read -r hm hp hx <"$work/have.small"
read -r Hm Hp Hx <"$work/have.big"
read -r nm np nx <"$work/none.small"
read -r Nm Np Nx <"$work/none.big"
read -r am ap ax <"$work/have.after"
read -r bm bp bx <"$work/none.after"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
echo "| measure | with 10 entries | with $N entries | ratio | after, with $left entries | ratio to after |"
echo "|---|---|---|---|---|---|"
echo "| lookup of a bare name another user holds, median ms (p99) | $hm ($hp) | $Hm ($Hp) | $(ratio "$hm" "$Hm") | $am ($ap) | $(ratio "$am" "$Hm") |"
echo "| lookup of a name nobody has, median ms (p99) | $nm ($np) | $Nm ($Np) | $(ratio "$nm" "$Nm") | $bm ($bp) | $(ratio "$bm" "$Nm") |"
echo "| gateway RSS, KiB | $rss_small | $rss_big | $(awk -v a="$rss_small" -v b="$rss_big" -v n="$N" 'BEGIN { printf "%.2f KiB per entry", (b - a) / (n - 10) }') |"
echo "| register the $N names ($P users at a time) | | $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f s", b - a }') | |"
echo "| the $((U + 1)) user registries' RSS in all, KiB | | $regs_kb ($(awk -v k="$regs_kb" -v u="$((U + 1))" 'BEGIN { printf "%.0f", k / u }') each) | |"
echo "| their standbys' RSS in all, KiB (standbys) | | ${sb_kb% *} (${sb_kb#* }) | |"
echo "| user registries watching the gateway (copying its table), nobody listing | | $watching | |"
echo "| one user's \`commreg list\`: first (fetches the copy) | | $list1 ms, $lines1 lines | |"
echo "| the same again within 10 s (answered from the copy) | | $list2 ms, $lines2 lines; $watching_after watching | |"
echo
echo "load average at the end: $load; $(nproc) CPUs"
