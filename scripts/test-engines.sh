#!/usr/bin/env bash
# The native-path tests again, on the classic engine (sendfile, send with MSG_ZEROCOPY, the
# loop's own epoll), after `tap` ran every test file on the default engine (io_uring where a
# ring opens). FASTIFY_ZERO_COPY_ENGINE sets the default engine of every registration, so the
# servers these tests start in child processes and workers take it too; test/helpers.js
# (ENGINE, FILE_PATH, ...) gives the figures that differ between the engines.
#
# Not here, on purpose:
#   ring-progress   the ring's own progress under failing io_uring_enter calls (io_uring only)
#   seccomp, fallback, container
#                   the engine there is what the machine allows, not a default: they run once,
#                   and show the classic engine where io_uring is refused
#   static-noaddon  no addon, so no engine: Fastify's path whatever the default
#   errno-name, install-hint, package, prebuilds
#                   no transfer: the package, its build and its messages
#   soak, slow      long stress runs of the same paths as abort, connection and timeout, left
#                   to the first run to keep `npm test` within CI's budget
# Tests within these files that are the ring's alone say so and are skipped on this engine.
set -euo pipefail
cd "$(dirname "$0")/.."

NATIVE_PATH_TESTS=(
  send connection abort abort-slow-read async-handler detached-body fastify hostile http-strict
  options pin-budget timeout isolation memlock unprivileged shutdown stalled-client worker workers worker-files
  file-http file-inline file-cached-read file-ownership file-resources large-offsets file-memory slow-fs
  file-truncate slow-reader static-options static-list static-large static-casefold static-precompressed static-cache static-dropin
  worker-terminate send-order send-pending send-stream-body garbage-after-request static-gate static-compat interop file-queued
)

# The run must be the classic engine's: fail loudly if it is not the one serving.
FASTIFY_ZERO_COPY_ENGINE=classic node -e "
const f = require('fastify')()
f.register(require('.')).then(() => {
  const c = f.zeroCopy.capabilities
  if (c.engine !== 'classic' || c.mode !== 'send_zc') { console.error('the classic engine is not serving: ' + JSON.stringify(c)); process.exit(1) }
  return f.close()
})
"

files=()
for name in "${NATIVE_PATH_TESTS[@]}"; do files+=("test/$name.test.js"); done
FASTIFY_ZERO_COPY_ENGINE=classic exec npx tap "$@" "${files[@]}"
