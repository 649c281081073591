#!/bin/sh
# bench/run.sh [BUILD_DIR]: build commregd, commreg and the test app
# capp (RelWithDebInfo, into BUILD_DIR, default build-bench/) and run the
# failover and election benchmarks (bench/bench.tcl).  Prints a markdown
# table on stdout, progress on stderr.  See docs/performance.md.
#
# Environment: BENCH_RUNS (5), BENCH_M ("10 100 500"), BENCH_N ("10 50"),
# BENCH_INPROC_M ("10 100"), BENCH_TCL_M ("10 50"); BENCH_NO_BUILD=1
# uses BUILD_DIR as it is (the CMake target `bench` does that).
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-bench}
if [ -z "${BENCH_NO_BUILD:-}" ]; then
	# -O2, as distributions build.
	mkdir -p "$build"
	if ! { cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
	    cmake --build "$build" -j"$(nproc)" --target commregd commreg capp \
	        commreg_kernel
	    } >"$build/bench-build.log" 2>&1; then
		cat "$build/bench-build.log" >&2
		echo "bench: build failed" >&2
		exit 1
	fi
fi
COMMREG_BIN=$build/local COMMREG_TOOLS=$build/tests COMMREG_SRC=$src
# The Tcl package's compiled helper (tcl/kernel.c), for the Tcl rows.
TCLLIBPATH=$build/tcl
export COMMREG_BIN COMMREG_TOOLS COMMREG_SRC TCLLIBPATH
exec tclsh "$src/bench/bench.tcl"
