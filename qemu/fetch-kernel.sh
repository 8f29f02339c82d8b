#!/usr/bin/env bash
# Fetches Debian's stock kernel (the one linux-image-amd64 depends on), unpacks it into a cache
# outside the work tree keyed by version, runs depmod, and extracts the uncompressed ELF vmlinux
# (booted through PVH: under TCG that halves boot time, see shared/harness-notes.md).
# Prints the cache directory on stdout; everything else goes to stderr.
set -euo pipefail
CACHE=${UNIONROOT_CACHE:-$HOME/.cache/unionroot}

pkg=${UNIONROOT_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$pkg" ] || { echo "fetch-kernel: cannot resolve linux-image-amd64's kernel package; run 'apt-get update'" >&2; exit 1; }
kver=${pkg#linux-image-}
dir=$CACHE/kernel/$kver
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi

echo "fetch-kernel: downloading $pkg into $dir" >&2
tmp=$(mktemp -d "$CACHE/kernel/.tmp.XXXXXX" 2>/dev/null || { mkdir -p "$CACHE/kernel"; mktemp -d "$CACHE/kernel/.tmp.XXXXXX"; })
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download "$pkg" >&2)
dpkg-deb -x "$tmp"/*.deb "$tmp/root"
depmod -b "$tmp/root" "$kver"
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
