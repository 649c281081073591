#!/bin/bash
# bench/distributed/run.sh [BUILD_DIR]: the distributed registry's
# figures (docs/performance.md, "Distributed registry"): propagation
# host to host, purge of a killed host, resync of 10,000 entries, memory
# per remote entry.  Builds commregd and commreg (RelWithDebInfo, into
# BUILD_DIR, default build-bench/) unless BENCH_NO_BUILD=1; knobs in
# bench.tcl (DBENCH_*).  Must run as root (network namespaces).  Prints a
# markdown table on stdout, progress on stderr; about a minute.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build-bench}
say() { echo "dbench: $(date +%T) $*" >&2; }
[ "$(id -u)" = 0 ] || { say "must run as root (network namespaces)"; exit 1; }
if [ -z "${BENCH_NO_BUILD:-}" ]; then
	mkdir -p "$build"
	if ! { cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
	    cmake --build "$build" -j"$(nproc)" --target commregd commreg; } \
	    >"$build/bench-distributed-build.log" 2>&1; then
		cat "$build/bench-distributed-build.log" >&2
		say "build failed"
		exit 1
	fi
fi
export COMMREG_BIN=$build/local COMMREG_SRC=$src
exec tclsh "$src/bench/distributed/bench.tcl"
