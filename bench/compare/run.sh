#!/usr/bin/env bash
# commregd side by side with tcllib's nnsd, a private dbus-daemon and a C
# echo floor (docs/performance-compare.md).  Builds commregd and the harness
# (RelWithDebInfo) unless BENCH_NO_BUILD is set, then runs the harness,
# which prints a markdown table on stdout and its progress on stderr.
#
#   bench/compare/run.sh [BUILD_DIR] [harness options]
#
# BUILD_DIR defaults to build/compare.  Harness options: --quick (a short
# run), --phases ABCD (A steady state, B registrations, C fan-out, D memory
# and idle connections), --rounds N, -v; see bench_compare --help.
# Needs: tcllib (nnsd), dbus-daemon, libdbus-1-dev.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build/compare
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
	build=$1
	shift
fi

if [ -z "${BENCH_NO_BUILD:-}" ]; then
	if [ ! -f "$build/CMakeCache.txt" ]; then
		cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
			>/dev/null
	fi
	cmake --build "$build" -j"$(nproc)" \
		--target commregd bench_echod bench_compare >/dev/null
fi

exe=$build/bench/compare/bench_compare
if [ ! -x "$exe" ]; then
	echo "run.sh: $exe not built (is libdbus-1-dev installed?)" >&2
	exit 1
fi
exec "$exe" "$@"
