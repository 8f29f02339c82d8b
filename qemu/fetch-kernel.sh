#!/usr/bin/env bash
# Fetches Debian's stock kernel (the one linux-image-ARCH depends on), unpacks it into a cache
# outside the work tree keyed by version, runs depmod, and extracts the uncompressed kernel:
# on amd64 the ELF vmlinux (booted through PVH: under TCG that halves boot time, see
# shared/harness-notes.md), on arm64 the Image (Debian's vmlinuz there is a gzipped Image).
# Prints the cache directory on stdout; everything else goes to stderr.
#
#   qemu/fetch-kernel.sh [amd64|arm64]     (default amd64; arm64 needs
#                                           `dpkg --add-architecture arm64`, setup-host.sh does it)
set -euo pipefail
CACHE=${UNIONROOT_CACHE:-$HOME/.cache/unionroot}
arch=${1:-amd64}
case $arch in
  amd64 | arm64) ;;
  *) echo "fetch-kernel: unknown architecture $arch (amd64 or arm64)" >&2; exit 1 ;;
esac

pkg=${UNIONROOT_KERNEL_PKG:-}
[ "$arch" = amd64 ] || pkg=${UNIONROOT_KERNEL_PKG_ARM64:-}
if [ -z "$pkg" ]; then
  pkg=$(apt-cache depends "linux-image-$arch:$arch" 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ {sub(/:.*/, "", $2); print $2; exit}')
fi
[ -n "$pkg" ] || { echo "fetch-kernel: cannot resolve linux-image-$arch's kernel package; run 'dpkg --add-architecture $arch; apt-get update' (scripts/setup-host.sh)" >&2; exit 1; }
kver=${pkg#linux-image-}
[[ $kver == *-"$arch" ]] || { echo "fetch-kernel: $pkg is not an $arch kernel" >&2; exit 1; }
dir=$CACHE/kernel/$kver
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi

echo "fetch-kernel: downloading $pkg into $dir" >&2
tmp=$(mktemp -d "$CACHE/kernel/.tmp.XXXXXX" 2>/dev/null || { mkdir -p "$CACHE/kernel"; mktemp -d "$CACHE/kernel/.tmp.XXXXXX"; })
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download "$pkg:$arch" >&2)
dpkg-deb -x "$tmp"/*.deb "$tmp/root"
depmod -b "$tmp/root" "$kver"
if [ "$arch" = arm64 ]; then
  # QEMU's virt machine boots the arm64 Image directly (Documentation/arch/arm64/booting.rst).
  # Debian 12's vmlinuz is that Image, uncompressed (an EFI stub, no EFI_ZBOOT); should a later
  # one be gzipped, unpack it here once rather than on every boot. "ARMd" at offset 56 is the
  # Image's magic.
  if [ "$(head -c 2 "$tmp/root/boot/vmlinuz-$kver" | od -An -tx1 | tr -d ' ')" = 1f8b ]; then
    gzip -dc "$tmp/root/boot/vmlinuz-$kver" >"$tmp/Image"
  else
    cp "$tmp/root/boot/vmlinuz-$kver" "$tmp/Image"
  fi
  [ "$(tail -c +57 "$tmp/Image" | head -c 4)" = ARMd ] ||
    { echo "fetch-kernel: vmlinuz-$kver does not hold an arm64 Image (no ARMd magic)" >&2; exit 1; }
  mkdir -p "$dir"
  mv "$tmp/Image" "$dir/Image"
  mv "$tmp/root/boot/vmlinuz-$kver" "$dir/vmlinuz"
  mv "$tmp/root/boot/config-$kver" "$dir/config"
  mkdir -p "$dir/lib/modules"
  mv "$tmp/root/lib/modules/$kver" "$dir/lib/modules/$kver"
  echo "$kver" >"$dir/version"
  touch "$dir/.complete"
  echo "$dir"
  exit 0
fi
# vmlinuz is a bzImage whose payload is an xz stream; find its magic and decompress it.
# xz complains about the bytes after the stream ends; the ELF before them is complete.
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$tmp/root/boot/vmlinuz-$kver" | head -1 | cut -d: -f1)
[ -n "$off" ] || { echo "fetch-kernel: no xz payload in vmlinuz-$kver" >&2; exit 1; }
tail -c +"$((off + 1))" "$tmp/root/boot/vmlinuz-$kver" | xz -dc > "$tmp/vmlinux" 2>/dev/null || true
[ "$(head -c 4 "$tmp/vmlinux" | od -An -c | tr -d ' ')" = "177ELF" ] \
  || { echo "fetch-kernel: extracted vmlinux is not an ELF" >&2; exit 1; }
mkdir -p "$dir"
mv "$tmp/vmlinux" "$dir/vmlinux"
mv "$tmp/root/boot/vmlinuz-$kver" "$dir/vmlinuz"
mv "$tmp/root/boot/config-$kver" "$dir/config"
mkdir -p "$dir/lib/modules"
mv "$tmp/root/lib/modules/$kver" "$dir/lib/modules/$kver"
echo "$kver" > "$dir/version"
touch "$dir/.complete"
echo "$dir"
