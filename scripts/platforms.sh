#!/usr/bin/env bash
# What building and checking the prebuilt addons needs beyond the host build, all from Debian's
# packages, cached outside the checkout and remade only when missing:
#   - the arm64 cross compiler and liburing-dev:arm64 (multiarch), to build prebuilds/linux-arm64
#   - qemu-user-static and an arm64 Node 18 unpacked from Debian's packages (dpkg -x): a place
#     to load the arm64 addon (Node-API 9 is enough for an addon built for Node-API 8)
#   - qemu-system-aarch64, Debian 12's arm64 kernel and an initramfs of that Node with busybox:
#     an arm64 Linux whose own kernel runs io_uring (qemu-user passes neither io_uring_setup
#     nor cachestat through: "Unsupported syscall: 425", "451")
#   - a Debian 11 root (glibc 2.31, made by debootstrap): a place to load the x64 addon on a
#     glibc older than the build machine's
# The platform tier: `npm run test:platforms` (test/prebuilds.test.js, test/package.test.js,
# whose `npm pack` builds the arm64 prebuild) and the release build need it; `npm test` does
# not. Prints the cache directory's path on its last line. Needs root (apt, dpkg, debootstrap;
# through sudo where there is one) unless everything is already there.
#   ZERO_COPY_PLATFORM_CACHE: where the roots live (default /var/cache/fastify-zero-copy)
set -euo pipefail

cache="${ZERO_COPY_PLATFORM_CACHE:-/var/cache/fastify-zero-copy}"
log() { echo "platforms: $*" >&2; }

ready() {
  for tool in aarch64-linux-gnu-g++ qemu-aarch64-static qemu-system-aarch64 readelf unshare; do
    command -v "$tool" >/dev/null 2>&1 || return 1
  done
  [ -f /usr/lib/aarch64-linux-gnu/liburing.a ] && [ -f "$cache/arm64-node/.complete" ] &&
    [ -f "$cache/arm64-vm/.complete" ] && [ -f "$cache/bullseye/.complete" ]
}
if ready; then
  echo "$cache"
  exit 0
fi

if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "the cross builds and roots are made on Debian/Ubuntu x86_64 only"
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  # sudo resets the environment: the cache's place is passed on explicitly.
  if command -v sudo >/dev/null 2>&1; then
    exec sudo ZERO_COPY_PLATFORM_CACHE="$cache" bash "$0" "$@"
  fi
  log "needs root (apt-get, dpkg, debootstrap)"
  exit 1
fi
mkdir -p "$cache"

apt_updated=0
apt_install() {
  [ "$apt_updated" = 1 ] || { apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64-static >/dev/null 2>&1 || missing+=(qemu-user-static)
command -v qemu-system-aarch64 >/dev/null 2>&1 || missing+=(qemu-system-arm)
command -v cpio >/dev/null 2>&1 || missing+=(cpio)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v readelf >/dev/null 2>&1 || missing+=(binutils)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

if [ ! -f /usr/lib/aarch64-linux-gnu/liburing.a ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "adding the arm64 architecture to dpkg"
    dpkg --add-architecture arm64
    apt_updated=0
  fi
  log "installing liburing-dev:arm64"
  apt_install liburing-dev:arm64
fi

# arm64 Node: Debian 12's nodejs and the libraries it loads, unpacked (not installed), so the
# host's dpkg database holds no arm64 Node. apt-get download needs the arm64 package lists.
node_root="$cache/arm64-node"
if [ ! -f "$node_root/.complete" ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    apt_updated=0
  fi
  [ "$apt_updated" = 1 ] || { apt-get update -qq; apt_updated=1; }
  log "unpacking an arm64 Node into $node_root"
  rm -rf "$node_root" "$cache/arm64-debs"
  mkdir -p "$cache/arm64-debs"
  (cd "$cache/arm64-debs" && apt-get download -qq -o APT::Sandbox::User=root \
    nodejs:arm64 libnode108:arm64 libuv1:arm64 libc6:arm64 libstdc++6:arm64 libgcc-s1:arm64 \
    libssl3:arm64 zlib1g:arm64 libicu72:arm64 libbrotli1:arm64 libc-ares2:arm64 libnghttp2-14:arm64 \
    node-cjs-module-lexer node-acorn node-undici node-busboy)
  mkdir -p "$node_root"
  for deb in "$cache"/arm64-debs/*.deb; do dpkg -x "$deb" "$node_root"; done
  rm -rf "$cache/arm64-debs"
  qemu-aarch64-static -L "$node_root" "$node_root/usr/bin/node" -e 'if (process.arch !== "arm64") process.exit(1)'
  touch "$node_root/.complete"
fi

# An arm64 machine: Debian 12's kernel (6.1: io_uring with SEND_ZC and SPLICE, no cachestat)
# and an initramfs holding the Node above and a static busybox (mount, ip, poweroff). A run
# appends its own small archive (init, driver, addon): the kernel unpacks both in turn.
vm="$cache/arm64-vm"
if [ ! -f "$vm/.complete" ]; then
  [ "$apt_updated" = 1 ] || { apt-get update -qq; apt_updated=1; }
  log "making an arm64 kernel and initramfs in $vm"
  rm -rf "$vm"
  mkdir -p "$vm/debs" "$vm/root"
  kernel=$(apt-cache depends linux-image-arm64:arm64 | sed -n 's/^ *Depends: \(linux-image-[^:]*\).*/\1/p' | head -1)
  [ -n "$kernel" ] || { log "no arm64 kernel package found"; exit 1; }
  (cd "$vm/debs" && apt-get download -qq -o APT::Sandbox::User=root "$kernel:arm64" busybox-static:arm64)
  dpkg-deb --fsys-tarfile "$vm"/debs/linux-image-*.deb | tar -x -C "$vm/debs" --wildcards './boot/vmlinuz-*'
  mv "$vm"/debs/boot/vmlinuz-* "$vm/vmlinuz"
  dpkg -x "$vm"/debs/busybox-static_*.deb "$vm/debs/busybox"
  cp -a "$node_root/." "$vm/root/"
  rm -rf "$vm/root/.complete" "$vm/root/usr/share/doc" "$vm/root/usr/share/man" "$vm/root/usr/lib/aarch64-linux-gnu/gconv"
  mkdir -p "$vm/root/bin" "$vm/root/proc" "$vm/root/dev" "$vm/root/tmp"
  cp "$vm/debs/busybox/bin/busybox" "$vm/root/bin/busybox"
  (cd "$vm/root" && find . | cpio -o -H newc -R 0:0 --quiet) >"$vm/base.cpio"
  rm -rf "$vm/debs" "$vm/root"
  chmod 0644 "$vm/vmlinuz" "$vm/base.cpio"
  touch "$vm/.complete"
fi

# Debian 11: glibc 2.31, libstdc++ of GCC 10. minbase is enough to run a copied-in Node.
old_root="$cache/bullseye"
if [ ! -f "$old_root/.complete" ]; then
  log "debootstrap bullseye into $old_root"
  rm -rf "$old_root"
  debootstrap --variant=minbase bullseye "$old_root" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 || {
    tail -20 "$cache/debootstrap.log" >&2
    exit 1
  }
  # Mount points for a run (bind mounts in a private mount namespace): this machine's Node,
  # and a folder with the driver and the addon.
  mkdir -p "$old_root/zc"
  : >"$old_root/usr/local/bin/node"
  touch "$old_root/.complete"
fi
echo "$cache"
