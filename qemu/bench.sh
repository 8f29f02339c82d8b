#!/usr/bin/env bash
# Boot-time benchmark: linuxrc against a busybox-script baseline doing the same job
# (tests/fixtures/baseline-init.sh), N boots each, interleaved, all against one NFSv3 server
# (qemu/serve.sh) in one run.
#
#   qemu/bench.sh [N]      (default 5)
#
# Figure per boot: from the kernel's "Run /init as init process" to the real init's first
# action, "unionroot-demo: real init started", both kernel timestamps from the same console.
# Exits non-zero if any boot failed.
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "$0")/lib.sh"

OUT=$UR_OUT/bench
T_INIT='Run /init as init process'
T_REAL='unionroot-demo: real init started'

# run N: the measuring half, inside qemu/serve.sh.
run() {
  local n=$1 i kind order rc a b wall
  printf '%-4s %-9s %9s %13s %16s %8s\n' run init "/init (s)" "real init (s)" "/init->real (ms)" "wall (s)"
  for i in $(seq "$n"); do
    # Alternate who goes first, so a drift in host load hits both sides alike.
    if [ $((i % 2)) = 1 ]; then order="linuxrc baseline"; else order="baseline linuxrc"; fi
    for kind in $order; do
      rc=0
      "$UR_QEMU/boot.sh" -q --nfs external --initrd "$OUT/$kind.img" --export "$OUT/tree" \
        --kernel-dir "$KDIR" --dir "$OUT/runs/$kind-$i" --timeout 90 \
        --expect "$T_REAL" --expect 'PROOF root=overlay' --forbid 'Kernel panic' \
        >"$OUT/runs/$kind-$i.out" 2>&1 || rc=$?
      a=$(ur_ktime "$T_INIT" "$OUT/runs/$kind-$i/console.log")
      b=$(ur_ktime "$T_REAL" "$OUT/runs/$kind-$i/console.log")
      wall=$(sed -n 's/^wall=//p' "$OUT/runs/$kind-$i/result" 2>/dev/null)
      if [ "$rc" != 0 ] || [ -z "$a" ] || [ -z "$b" ]; then
        printf '%-4s %-9s FAILED: see %s\n' "$i" "$kind" "$OUT/runs/$kind-$i.out"
        echo "$kind" >>"$OUT/failed"
        continue
      fi
      awk -v i="$i" -v k="$kind" -v a="$a" -v b="$b" -v w="${wall:--}" 'BEGIN {
        printf "%-4s %-9s %9.3f %13.3f %16.0f %8s\n", i, k, a, b, (b - a) * 1000, w }'
      echo "$a $b" >>"$OUT/$kind.times"
    done
  done
}

if [ "${1:-}" = --run ]; then
  KDIR=$2
  run "$3"
  exit 0
fi

n=${1:-5}
[[ $n =~ ^[1-9][0-9]*$ ]] || ur_die "usage: qemu/bench.sh [N]"
ur_bins
KDIR=$(ur_kernel_dir)
ver=$(cat "$KDIR/version")
rm -rf "$OUT"
mkdir -p "$OUT/runs"

ur_log "building $OUT/{tree,linuxrc.img,baseline.img}"
ur_build_tree "$OUT/tree"
ur_build_initramfs "$KDIR" "$UR_LINUXRC" "$OUT/linuxrc.img"
# The baseline loads the same modules in modules.dep order, from a list fixed at build time
# (the seed's way); the initramfs carries the same module files as linuxrc's.
mdir=$KDIR/lib/modules/$ver
for v in 3 4; do
  for m in virtio_pci virtio_net "nfsv$v" overlay; do
    modprobe -d "$KDIR" -S "$ver" --show-depends "$m"
  done | awk '$1 == "insmod" { print $2 }' | sed "s|^$mdir/||" | awk '!seen[$0]++' \
    >"$OUT/baseline-modules.v$v"
done
ur_build_initramfs "$KDIR" "$UR_FIXTURES/baseline-init.sh" "$OUT/baseline.img" \
  --add "${UNIONROOT_BUSYBOX:-/bin/busybox}:/bin/busybox" \
  --add "$OUT/baseline-modules.v3:/etc/baseline-modules.v3" \
  --add "$OUT/baseline-modules.v4:/etc/baseline-modules.v4"

echo "bench: $n boots each of linuxrc and the busybox baseline, interleaved, one NFSv3 ganesha;"
echo "       accel ${UNIONROOT_ACCEL:-auto}, kernel $ver, host load $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$OUT/linuxrc.times"
: >"$OUT/baseline.times"
rc=0
"$UR_QEMU/serve.sh" --export "$OUT/tree" --nfs v3 --dir "$OUT/server" -- \
  "$UR_QEMU/bench.sh" --run "$KDIR" "$n" || rc=$?

echo
median_of() { # KIND init|real|ms: median over the kind's successful boots
  awk -v c="$2" '{ print (c == "init" ? $1 : c == "real" ? $2 : ($2 - $1) * 1000) }' \
    "$OUT/$1.times" | ur_median
}
ml=$(median_of linuxrc ms)
mb=$(median_of baseline ms)
for kind in linuxrc baseline; do
  printf 'median %-9s /init->real init %6s ms   (real init at %s s uptime, /init at %s s; %d boots)\n' \
    "$kind" "$(median_of "$kind" ms | cut -d. -f1)" \
    "$(median_of "$kind" real)" "$(median_of "$kind" init)" "$(wc -l <"$OUT/$kind.times")"
done
if [ "$ml" != - ] && [ "$mb" != - ]; then
  awk -v l="$ml" -v b="$mb" 'BEGIN { printf "ratio baseline/linuxrc: %.2fx\n", b / l }'
fi

size() { stat -c %s "$1"; }
raw() { zstd -dcq "$1" 2>/dev/null | wc -c || size "$1"; }
if strip -o "$OUT/linuxrc.stripped" "$UR_LINUXRC" 2>/dev/null; then
  printf 'linuxrc binary: %s bytes stripped (%s as built)\n' \
    "$(size "$OUT/linuxrc.stripped")" "$(size "$UR_LINUXRC")"
else
  printf 'linuxrc binary: %s bytes (strip failed)\n' "$(size "$UR_LINUXRC")"
fi
for kind in linuxrc baseline; do
  printf 'initramfs %-9s %9s bytes (%s bytes uncompressed)\n' \
    "$kind:" "$(size "$OUT/$kind.img")" "$(raw "$OUT/$kind.img")"
done

if [ -s "$OUT/failed" ] || [ "$rc" != 0 ]; then
  echo "bench: some boots failed ($(sort "$OUT/failed" 2>/dev/null | uniq -c | xargs)); see $OUT/runs" >&2
  exit 1
fi
