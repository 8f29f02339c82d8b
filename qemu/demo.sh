#!/usr/bin/env bash
# Builds the demo (a busybox system tree whose /sbin/init is tests/fixtures/real-init.sh, and an
# initramfs with linuxrc as /init) into out/demo/ and boots it once, console shown, against a
# private NFS server. Extra arguments go to qemu/boot.sh (e.g. --nfs v4, --append ...).
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "$0")/lib.sh"

out=$UR_OUT/demo
ur_bins
kdir=$(ur_kernel_dir)
mkdir -p "$out"
ur_log "building $out/tree and $out/initramfs.img"
ur_build_tree "$out/tree"
ur_build_initramfs "$kdir" "$UR_LINUXRC" "$out/initramfs.img"

rc=0
"$UR_QEMU/boot.sh" --initrd "$out/initramfs.img" --export "$out/tree" --kernel-dir "$kdir" \
  --dir "$out/run" --console \
  --expect 'unionroot-demo: real init started' --expect 'PROOF root=overlay' \
  --forbid 'Kernel panic' --forbid 'linuxrc: FATAL' "$@" || rc=$?

log=$out/run/console.log
t_init=$(ur_ktime 'Run /init as init process' "$log")
t_real=$(ur_ktime 'unionroot-demo: real init started' "$log")
echo
echo "== demo summary =="
grep -a '^PROOF ' "$log" | tr -d '\r' || true
# linuxrc's own account of where the time went.
grep -aE 'linuxrc: .*(phase|[0-9]+ ms)' "$log" | tr -d '\r' || true
if [ -n "$t_init" ] && [ -n "$t_real" ]; then
  awk -v a="$t_init" -v b="$t_real" 'BEGIN {
    printf "kernel ran /init at %.3f s; real init started at %.3f s: /init to real init %.0f ms\n",
      a, b, (b - a) * 1000 }'
fi
sed -n 's/^wall=/QEMU run wall time: /p' "$out/run/result" 2>/dev/null | sed 's/$/ s/'
exit "$rc"
