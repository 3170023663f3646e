#!/usr/bin/env bash
# Makes a fresh checkout ready for `npm test` (the core tier): liburing-dev from Debian's
# packages (the native path needs its headers and archive), fuse3, libfuse3-dev and pkg-config
# (the tests' slow filesystem), runc and golang-github-containers-common (the container test:
# an OCI runtime and Podman's default seccomp profile), the npm dependencies, the addon and the
# compiled plugin. Idempotent: what is already there is not redone.
# The platform tier (the arm64 cross compiler, qemu, an arm64 kernel and Node, a Debian 11
# root: what the prebuilds and the packed tarball are checked with) is scripts/platforms.sh,
# run by `npm run test:platforms`, not here: the core suite needs none of it.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "$@" >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "$@" >/dev/null
  else
    echo "bootstrap: please install $* (apt-get install $*); continuing without it" >&2
  fi
}

if [ "$(uname -s)" = Linux ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  # The addon is compiled from the checkout (node-gyp): a C++ compiler, make, Python 3.
  command -v g++ >/dev/null 2>&1 || missing+=(g++)
  command -v make >/dev/null 2>&1 || missing+=(make)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  [ -f /usr/include/liburing.h ] || missing+=(liburing-dev)
  # The tests' slow filesystem (test/fixtures/slowfs.c): libfuse3 and fusermount3.
  command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
  [ -f /usr/include/fuse3/fuse_lowlevel.h ] || missing+=(libfuse3-dev)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  # test/container.test.js: runc runs the server in a container under Podman's default profile.
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  [ -f /usr/share/containers/seccomp.json ] || missing+=(golang-github-containers-common)
  # test/static-walk.test.js: a mount namespace of its own (unshare), a tmpfs and a bind mount.
  command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
  command -v mount >/dev/null 2>&1 || missing+=(mount)
  # test/static-cache.test.js counts a server's openat2 calls from outside.
  command -v strace >/dev/null 2>&1 || missing+=(strace)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    apt_install "${missing[@]}"
  fi
  if [ ! -f /usr/share/containers/seccomp.json ]; then
    echo "bootstrap: /usr/share/containers/seccomp.json is missing (golang-github-containers-common); the container test will fail" >&2
  fi
fi
if [ ! -d node_modules/fastify ] || [ ! -d node_modules/tap ]; then
  echo "bootstrap: npm install"
  npm install --no-audit --no-fund
fi
if [ ! -f build/Release/zerocopy.node ]; then
  # The checkout's own build, never a prebuild (node-gyp-build prefers build/): the tests run
  # the sources as they are.
  npx node-gyp rebuild --loglevel=warn >/dev/null
fi
npx tsc -p tsconfig.json
