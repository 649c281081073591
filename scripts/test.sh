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

if command -v clang >/dev/null 2>&1; then
  echo "== fuzz (libFuzzer, bounded)"
  CC=clang cmake -S . -B build/fuzz -DCOMMREG_FUZZ=ON >/dev/null
  cmake --build build/fuzz -j "$jobs" --target frame-fuzzer
  mkdir -p build/fuzz/corpus
  cp fuzz/corpus/* build/fuzz/corpus/ 2>/dev/null || true
  if build/fuzz/fuzz/frame-fuzzer -max_total_time="${COMMREG_FUZZ_SECONDS:-60}" \
      -dict=fuzz/frame-fuzzer.dict -max_len=4096 build/fuzz/corpus \
      > build/fuzz/fuzz.log 2>&1; then
    tail -n 2 build/fuzz/fuzz.log
    echo "fuzz: no crash in ${COMMREG_FUZZ_SECONDS:-60} s"
  else
    tail -n 40 build/fuzz/fuzz.log
    echo "fuzz: FAILED"
    status=1
  fi
  # The /etc/tcl/comm parser and the policy (fuzz/config-fuzzer.c).
  cmake --build build/fuzz -j "$jobs" --target config-fuzzer
  mkdir -p build/fuzz/config-corpus
  cp fuzz/config-corpus/* build/fuzz/config-corpus/ 2>/dev/null || true
  if build/fuzz/fuzz/config-fuzzer -max_total_time="${COMMREG_CONFIG_FUZZ_SECONDS:-30}" \
      -dict=fuzz/config-fuzzer.dict -max_len=4096 build/fuzz/config-corpus \
      > build/fuzz/config-fuzz.log 2>&1; then
    tail -n 2 build/fuzz/config-fuzz.log
    echo "config fuzz: no crash in ${COMMREG_CONFIG_FUZZ_SECONDS:-30} s"
  else
    tail -n 40 build/fuzz/config-fuzz.log
    echo "config fuzz: FAILED"
    status=1
  fi
  # The peer engine fed a peer's bytes, in both roles (fuzz/peer-fuzzer.c).
  cmake --build build/fuzz -j "$jobs" --target peer-fuzzer
  mkdir -p build/fuzz/peer-corpus
  cp fuzz/peer-corpus/* build/fuzz/peer-corpus/ 2>/dev/null || true
  if build/fuzz/fuzz/peer-fuzzer -max_total_time="${COMMREG_PEER_FUZZ_SECONDS:-30}" \
      -dict=fuzz/peer-fuzzer.dict -max_len=8192 build/fuzz/peer-corpus \
      > build/fuzz/peer-fuzz.log 2>&1; then
    tail -n 2 build/fuzz/peer-fuzz.log
    echo "peer fuzz: no crash in ${COMMREG_PEER_FUZZ_SECONDS:-30} s"
  else
    tail -n 40 build/fuzz/peer-fuzz.log
    echo "peer fuzz: FAILED"
    status=1
  fi
  # Names, serials, UTF-8, quoting, Register's options, federation's
  # names and entry dicts (fuzz/names-fuzzer.c).
  cmake --build build/fuzz -j "$jobs" --target names-fuzzer
  mkdir -p build/fuzz/names-corpus
  cp fuzz/names-corpus/* build/fuzz/names-corpus/ 2>/dev/null || true
  if build/fuzz/fuzz/names-fuzzer -max_total_time="${COMMREG_NAMES_FUZZ_SECONDS:-20}" \
      -dict=fuzz/names-fuzzer.dict -max_len=4096 build/fuzz/names-corpus \
      > build/fuzz/names-fuzz.log 2>&1; then
    tail -n 2 build/fuzz/names-fuzz.log
    echo "names fuzz: no crash in ${COMMREG_NAMES_FUZZ_SECONDS:-20} s"
  else
    tail -n 40 build/fuzz/names-fuzz.log
    echo "names fuzz: FAILED"
    status=1
  fi
fi
exit $status
