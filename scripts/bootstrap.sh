#!/usr/bin/env bash
# Makes a fresh checkout ready: liburing-dev from Debian's packages (the native path needs its
# headers and archive), the npm dependencies, the addon and the compiled plugin. Idempotent:
# what is already there is not redone.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "bootstrap: please install $* (apt-get install $*); continuing without it" >&2
  fi
}

if [ "$(uname -s)" = Linux ] && [ ! -f /usr/include/liburing.h ] && command -v apt-get >/dev/null 2>&1; then
  echo "bootstrap: installing liburing-dev"
  apt_install liburing-dev
fi
if [ ! -d node_modules/fastify ] || [ ! -d node_modules/tap ]; then
  echo "bootstrap: npm install"
  npm install --no-audit --no-fund
fi
if [ ! -f build/Release/zerocopy.node ]; then
  node scripts/install.js
fi
npx tsc -p tsconfig.json
