#!/usr/bin/env bash
# Run every test of commreg: install what is missing, build twice (plain
# with -Werror, then ASan+UBSan), run ctest on both and the unit tests of
# the first under valgrind, and run the fuzzers (the wire's, the
# configuration's, the peer engine's and the name rules') for a bounded
# time when clang is there.  Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
status=0

echo "== build (release, -Werror)"
cmake -S . -B build/ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOMMREG_WERROR=ON >/dev/null
cmake --build build/ci -j "$jobs"
# The Tcl package's compiled helper must be there: without tcl8.6-dev
# the build leaves it out and the Tcl tests would run without it.
if ! compgen -G "build/ci/tcl/comm_registry_kernel*/commreg_kernel.so" >/dev/null; then
  echo "build: the Tcl helper comm::registry::kernel was not built (tcl8.6-dev?)"
  status=1
fi
echo "== tests (release)"
ctest --test-dir build/ci --output-on-failure -j "$jobs" || status=1

# The CUnit programs once more, under valgrind: invalid reads and writes,
# uses of uninitialised memory and definite leaks fail the run.  One at a
# time (test_async_failover has deadlines), each bounded.
echo "== unit tests under valgrind"
mkdir -p build/ci/valgrind
for t in build/ci/tests/test_*; do
  [ -f "$t" ] && [ -x "$t" ] || continue
  name=$(basename "$t")
  case $name in
    # Under valgrind, posix_spawn(3) of a program that cannot be executed
    # succeeds and the child exits 127, so "open gives up at once without
    # commregd" cannot pass; test_async_failover still runs the async
    # client under valgrind.
    test_async) echo "valgrind: $name excluded"; continue ;;
    # test_oom replaces malloc itself to fail chosen allocations, as
    # valgrind does to watch them: the two cannot both hold it.  It runs
    # under ASan instead.
    test_oom) echo "valgrind: $name excluded"; continue ;;
  esac
  log=build/ci/valgrind/$name.log
  rc=0
  # --child-silent-after-fork: children forked to play a peer end with
  # _exit and the parent's memory, which is not theirs to free.
  timeout 600 valgrind --error-exitcode=1 --leak-check=full \
    --errors-for-leak-kinds=definite --child-silent-after-fork=yes \
    -q "$t" > "$log" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "valgrind: $name ok"
  else
    # valgrind's reports, and CUnit's failed cases and assertions
    grep -E '^==[0-9]+==|FAILED|^    [0-9]+\. ' "$log" | head -n 80 || true
    if [ "$rc" -eq 124 ]; then echo "valgrind: $name timed out (600 s)"; fi
    echo "valgrind: $name FAILED (full output: $log)"
    status=1
  fi
done

echo "== build (ASan+UBSan)"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DCOMMREG_SANITIZE=ON -DCOMMREG_WERROR=ON >/dev/null
cmake --build build/asan -j "$jobs"
echo "== tests (ASan+UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan --output-on-failure -j "$jobs" || status=1

# fuzz NAME TARGET SECONDS MAXLEN CORPUS: build one libFuzzer target, run
# it bounded from its seed corpus and dictionary (fuzz/TARGET.dict), say
# how it went, and fail the run on a crash.
fuzz() {
  local name=$1 target=$2 secs=$3 maxlen=$4 corpus=$5
  local log=build/fuzz/$target.log
  cmake --build build/fuzz -j "$jobs" --target "$target"
  mkdir -p "build/fuzz/$corpus"
  cp "fuzz/$corpus"/* "build/fuzz/$corpus/" 2>/dev/null || true
  if "build/fuzz/fuzz/$target" -max_total_time="$secs" \
      -dict="fuzz/$target.dict" -max_len="$maxlen" "build/fuzz/$corpus" \
      > "$log" 2>&1; then
    tail -n 2 "$log"
    echo "$name: no crash in $secs s"
  else
    tail -n 40 "$log"
    echo "$name: FAILED"
    status=1
  fi
}

if command -v clang >/dev/null 2>&1; then
  echo "== fuzz (libFuzzer, bounded)"
  CC=clang cmake -S . -B build/fuzz -DCOMMREG_FUZZ=ON >/dev/null
  # The comm framer and literal-command parser (fuzz/frame-fuzzer.c).
  fuzz fuzz frame-fuzzer "${COMMREG_FUZZ_SECONDS:-60}" 4096 corpus
  # The /etc/tcl/comm parser and the policy (fuzz/config-fuzzer.c).
  fuzz "config fuzz" config-fuzzer "${COMMREG_CONFIG_FUZZ_SECONDS:-30}" 4096 \
    config-corpus
  # The peer engine fed a peer's bytes, in both roles (fuzz/peer-fuzzer.c).
  fuzz "peer fuzz" peer-fuzzer "${COMMREG_PEER_FUZZ_SECONDS:-30}" 8192 \
    peer-corpus
  # Names, serials, UTF-8, quoting, Register's options, federation's
  # names and entry dicts (fuzz/names-fuzzer.c).
  fuzz "names fuzz" names-fuzzer "${COMMREG_NAMES_FUZZ_SECONDS:-20}" 4096 \
    names-corpus
else
  # The README promises the fuzzers: say so loudly when they cannot run.
  echo "fuzz: clang is missing, the fuzzers did not run"
  status=1
fi

# The Debian packages: built (with lintian), installed with apt, run
# from the installed paths, purged, and nothing left behind
# (tests/packaging/cycle.sh; a minute or two).
echo "== packaging"
bash tests/packaging/cycle.sh || status=1
exit $status
