#!/usr/bin/env bash
# Builds the addon with AddressSanitizer and UndefinedBehaviorSanitizer and runs the test
# suite against it, then rebuilds the normal addon. Usage: npm run asan [-- test files...]
set -euo pipefail
cd "$(dirname "$0")/.."
asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
restore() { npx node-gyp rebuild >/dev/null 2>&1 || echo "asan.sh: rebuilding the normal addon failed" >&2; }
trap restore EXIT
ZERO_COPY_SANITIZE=1 npx node-gyp rebuild >/dev/null
npx tsc -p tsconfig.json
# Node itself is not instrumented: preload the runtimes; leak checking is off because V8's
# own allocations at exit are not ours. halt_on_error makes any report fail the run.
export LD_PRELOAD="$asan $ubsan"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# package.test.js and prebuilds.test.js pack a release and run its binaries, not the
# sanitized build; container.test.js runs its server in a container, whose environment does
# not preload the sanitizers: not here.
if [ "$#" -gt 0 ]; then npx tap "$@"; else npx tap $(ls test/*.test.js | grep -Ev '/(package|prebuilds|container)\.test\.js$'); fi
