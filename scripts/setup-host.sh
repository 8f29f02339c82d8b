#!/usr/bin/env bash
# Installs everything `make demo` / `make test` need on a fresh Debian 12 machine (python3:
# the harness hashes export manifests with it; tcpdump: `make bench` counts NFS calls from a
# capture; python3-matplotlib: `make storm` draws its timelines with it; rsync: `unionroot
# image-sync` copies image generations to the heads; ceph-* and nfs-ganesha-ceph: `make ceph`'s
# single-node CephFS).
# Idempotent: each step is skipped when its result is already present.
set -euo pipefail

PKGS=(qemu-system-x86 busybox-static nfs-ganesha nfs-ganesha-vfs rpcbind dnsmasq
      pxelinux syslinux-common ipxe-qemu isc-dhcp-server cpio zstd xz-utils kmod iproute2
      flex bison bc libelf-dev libssl-dev shellcheck mmdebstrap
      squashfs-tools erofs-utils python3 python3-matplotlib tcpdump
      gcc-aarch64-linux-gnu qemu-system-arm qemu-efi-aarch64 qemu-user
      rsync ceph-mon ceph-mgr ceph-osd ceph-mds ceph-common nfs-ganesha-ceph)
# aarch64 nodes: gcc-aarch64-linux-gnu links linuxrc for aarch64-unknown-linux-musl
# (.cargo/config.toml), qemu-system-arm boots the virt machine, qemu-efi-aarch64 is its UEFI
# firmware (AAVMF). Their kernel, busybox and GRUB are arm64 packages, fetched with
# `apt-get download PKG:arm64`: dpkg must know the architecture (below). qemu-user runs the
# arm64 busybox on this host, for `unionroot setup-tree` to list its applets.

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
arm64_lists=1
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup: adding dpkg architecture arm64 (for apt-get download of arm64 packages)"
  $SUDO dpkg --add-architecture arm64
  arm64_lists=0
fi
apt-cache show linux-image-arm64:arm64 >/dev/null 2>&1 || arm64_lists=0

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && [ "$arm64_lists" = 0 ]; then
  echo "setup: apt-get update (arm64 package lists)"
  $SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Services shipped by these packages must not start on the host: the harness runs its own,
  # inside private namespaces.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  $SUDO rm -f /usr/sbin/policy-rc.d
fi

for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  if ! rustup target list --installed | grep -qx "$t"; then
    echo "setup: adding rustup target $t"
    rustup target add "$t"
  fi
done
echo "setup: host ready"
