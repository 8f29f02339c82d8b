#!/usr/bin/env bash
# Debian's own initramfs for the cached kernel, for qemu/bench.sh: initramfs-tools' mkinitramfs
# with BOOT=nfs and MODULES=netboot, everything else Debian's default (busybox, zstd), built in a
# chroot of its own so the host system is never touched. Prints the image's path.
#
#   qemu/initramfs-tools.sh KDIR
#
# Cached under $UNIONROOT_CACHE/bench/ (default ~/.cache/unionroot/bench):
#   itools-<key>/root   an mmdebstrap tree (bookworm minbase + initramfs-tools, busybox, zstd),
#                       keyed by suite, variant, packages and mmdebstrap's version;
#   initrd-<key>.img    the image, keyed by the kernel (version, modules.dep, config), the tree's
#                       installed packages (dpkg-query -W), the conf and this script.
# The kernel's modules are bind-mounted read-only into the chroot (usr/lib/modules/<ver>), in a
# mount namespace of its own, only while mkinitramfs runs.
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "$0")/lib.sh"

{ [ $# = 1 ] && [ -d "$1" ]; } || ur_die "usage: qemu/initramfs-tools.sh KDIR"
kdir=$(realpath "$1")
ver=$(cat "$kdir/version")
mods=$kdir/lib/modules/$ver
[ -f "$mods/modules.dep" ] || ur_die "no modules.dep in $mods"
[ "$(id -u)" = 0 ] || ur_die "needs root (mmdebstrap --mode=root, chroot)"
cache=${UNIONROOT_CACHE:-$HOME/.cache/unionroot}/bench
mkdir -p "$cache"

SUITE=bookworm VARIANT=minbase PKGS=initramfs-tools,busybox,zstd
# What the bench changes in Debian's defaults (/etc/initramfs-tools/initramfs.conf).
CONF='MODULES=netboot
BOOT=nfs
'

inputs="suite=$SUITE
variant=$VARIANT
packages=$PKGS
mmdebstrap=$(mmdebstrap --version | awk '{ print $2 }')
arch=$(uname -m)
"
tkey=$(printf '%s' "$inputs" | sha256sum | cut -c1-16)
tdir=$cache/itools-$tkey
if [ ! -f "$tdir/done" ]; then
  ur_log "building the initramfs-tools tree $tdir (mmdebstrap, about a minute)"
  rm -rf "$tdir"
  mkdir -p "$tdir"
  printf '%s' "$inputs" >"$tdir/inputs"
  nice mmdebstrap --mode=root --format=directory --variant="$VARIANT" --include="$PKGS" \
    "$SUITE" "$tdir/root" >"$tdir/mmdebstrap.log" 2>&1 ||
    ur_die "mmdebstrap failed: see $tdir/mmdebstrap.log"
  touch "$tdir/done"
fi
root=$tdir/root

key=$({
  echo "kernel=$ver"
  sha256sum <"$mods/modules.dep"
  sha256sum <"$kdir/config"
  chroot "$root" dpkg-query -W
  printf '%s' "$CONF"
  sha256sum <"$0"
} | sha256sum | cut -c1-16)
img=$cache/initrd-$ver-$key.img
if [ ! -f "$img" ]; then
  ur_log "mkinitramfs (BOOT=nfs, MODULES=netboot) for $ver into $img"
  rm -rf "$root/etc/initramfs-tools-bench"
  cp -a "$root/etc/initramfs-tools" "$root/etc/initramfs-tools-bench"
  printf '%s' "$CONF" >"$root/etc/initramfs-tools-bench/conf.d/unionroot-bench"
  mkdir -p "$root/usr/lib/modules/$ver" "$root/boot"
  cp "$kdir/config" "$root/boot/config-$ver"
  rm -f "$root/tmp/initrd.img"
  # shellcheck disable=SC2016 # expanded by the inner shell
  SOURCE_DATE_EPOCH=0 unshare --mount --fork sh -euc '
    mount --make-rprivate /
    mount --bind "$2" "$1/usr/lib/modules/$3"
    mount -o remount,bind,ro "$1/usr/lib/modules/$3"
    mount -t proc proc "$1/proc"
    chroot "$1" mkinitramfs -d /etc/initramfs-tools-bench -o /tmp/initrd.img "$3"
  ' sh "$root" "$mods" "$ver" >"$cache/initrd-$ver-$key.log" 2>&1 ||
    ur_die "mkinitramfs failed: see $cache/initrd-$ver-$key.log"
  mv "$root/tmp/initrd.img" "$img.tmp"
  mv "$img.tmp" "$img"
fi
echo "$img"
