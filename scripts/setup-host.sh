#!/usr/bin/env bash
# Installs everything `make demo` / `make test` need on a fresh Debian 12 machine (python3:
# the harness hashes export manifests with it; rsync: `unionroot image-sync` copies image
# generations to the heads; ceph-* and nfs-ganesha-ceph: `make ceph`'s single-node CephFS).
# Idempotent: each step is skipped when its result is already present.
set -euo pipefail

PKGS=(qemu-system-x86 busybox-static nfs-ganesha nfs-ganesha-vfs rpcbind dnsmasq
      pxelinux syslinux-common ipxe-qemu isc-dhcp-server cpio zstd xz-utils kmod iproute2
      flex bison bc libelf-dev libssl-dev shellcheck mmdebstrap
      squashfs-tools erofs-utils python3
      rsync ceph-mon ceph-mgr ceph-osd ceph-mds ceph-common nfs-ganesha-ceph)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Services shipped by these packages must not start on the host: the harness runs its own,
  # inside private namespaces.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  $SUDO rm -f /usr/sbin/policy-rc.d
fi

if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  echo "setup: adding rustup target x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl
fi
echo "setup: host ready"
