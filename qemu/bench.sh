#!/usr/bin/env bash
# Boot-time benchmark: linuxrc against a busybox-script baseline doing the same job
# (tests/fixtures/baseline-init.sh), N boots each, interleaved, all against one NFSv3 server
# (qemu/serve.sh) in one run.
#
#   qemu/bench.sh [N [N_DEB]]      (N default 5; N_DEB default $N_DEB or 2; 0 skips a part)
#
# Figure per boot: from the kernel's "Run /init as init process" to the real init's first
# action, "unionroot-demo: real init started", both kernel timestamps from the same console.
#
# Then the Debian part: the Debian 12 systemd root built by the host tool (`unionroot image`, as
# tests/e2e-root.sh builds it), exported by one NFSv3 ganesha, 1024 MB guests on QEMU's user
# network, N_DEB boots each of three kinds, interleaved (the order rotates per round):
#   linuxrc   the project's initramfs (overlay root);
#   baseline  the busybox-script baseline above (overlay root);
#   itools    Debian's own initramfs-tools (qemu/initramfs-tools.sh: BOOT=nfs, MODULES=netboot),
#             which mounts the NFS root itself, read-only and without an overlay: measured only
#             up to systemd's start, then stopped.
# Figures: /init -> systemd's first "systemd[1]:" line (kernel timestamps), and for
# linuxrc and baseline /init -> multi-user.target (the probe's "PROOF multi-user-at=", the
# kernel's monotonic clock; probe.quick makes it power off right after).
# Exits non-zero if any boot failed.
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "$0")/lib.sh"

OUT=$UR_OUT/bench
T_INIT='Run /init as init process'
T_REAL='unionroot-demo: real init started'
# One node alone has nobody to desynchronise from: linuxrc's random wait before its first
# DHCPDISCOVER (unionroot.jitter, default 500 ms) is off here, so that the figures compare the
# work of the inits (the baseline ignores the key). qemu/storm.sh measures with it on.
NO_JITTER=unionroot.jitter=0

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
        --kernel-dir "$KDIR" --dir "$OUT/runs/$kind-$i" --timeout 90 --append "$NO_JITTER" \
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

# systemd as PID 1: its first kernel-log line. On this console that is "systemd[1]: Inserted
# module 'autofs4'", ~0.2 s before the banner "systemd[1]: systemd 252... running in system mode".
T_SYSD='systemd\[1\]: '
DEB_SRV=10.0.2.2
# Both overlay initramfs kinds get the same command line; probe.quick: the probe powers off as
# soon as it has said when multi-user.target was reached. initramfs-tools reads nfsroot=
# SERVER:PATH[,OPTIONS] (scripts/nfs) and passes OPTIONS to klibc's nfsmount (which knows
# nfsvers=, tcp, udp, not vers=); ip=dhcp makes it run klibc's ipconfig. ganesha serves TCP only,
# hence tcp.
DEB_CMD_OVL="console=ttyS0 panic=-1 nfsroot=$DEB_SRV:/srv/system unionroot.nfsvers=3 probe.quick $NO_JITTER"
DEB_CMD_ITOOLS="console=ttyS0 panic=-1 root=/dev/nfs nfsroot=$DEB_SRV:/srv/system,nfsvers=3,tcp ip=dhcp"

# run_deb N ITOOLS-IMG: the Debian part's measuring half, inside qemu/serve.sh.
run_deb() {
  local n=$1 itools=$2 i kind order rc a s m wall img args note
  printf '%-4s %-9s %9s %12s %15s %15s %15s %8s  %s\n' run init "/init (s)" "systemd (s)" \
    "/init->sd (ms)" "multi-user (s)" "/init->mu (ms)" "wall (s)" note
  for i in $(seq "$n"); do
    # Rotate who goes first, so a drift in host load hits every kind alike.
    case $((i % 3)) in
      1) order="linuxrc baseline itools" ;;
      2) order="baseline itools linuxrc" ;;
      0) order="itools linuxrc baseline" ;;
    esac
    for kind in $order; do
      rc=0
      case $kind in
        itools)
          img=$itools
          args=(--cmdline "$DEB_CMD_ITOOLS" --until "$T_SYSD" --timeout 150) ;;
        *)
          img=$OUT/$kind.img
          args=(--cmdline "$DEB_CMD_OVL" --until '^PROOF done' --expect "$T_SYSD"
            --expect '^PROOF multi-user-at=' --forbid "$kind: FATAL" --timeout 240) ;;
      esac
      # No --export: the tree is big (a manifest per boot costs host CPU next to the guest);
      # its manifest is checked once around the whole part instead.
      "$UR_QEMU/boot.sh" -q --nfs external --initrd "$img" --mem 1024 \
        --kernel-dir "$KDIR" --dir "$OUT/runs/deb-$kind-$i" "${args[@]}" \
        --forbid 'Kernel panic' >"$OUT/runs/deb-$kind-$i.out" 2>&1 || rc=$?
      a=$(ur_ktime "$T_INIT" "$OUT/runs/deb-$kind-$i/console.log")
      s=$(ur_ktime "$T_SYSD" "$OUT/runs/deb-$kind-$i/console.log")
      m=$(sed -nE 's/^PROOF multi-user-at=([0-9.]+).*/\1/p' "$OUT/runs/deb-$kind-$i/console.log" |
        head -1)
      note=-
      if [ "$kind" = itools ]; then
        m=-
        # initramfs-tools runs klibc's ipconfig -t 2 as soon as the NIC exists, before its link
        # is up; that round gives up ("no response after 2 secs") and the next one gets the
        # lease. When the first round runs into an error (a failed send or receive), ipconfig
        # sets a 10 s retry timer and looks at -t only when it fires (klibc ipconfig/main.c), so
        # the round takes ~10 s instead of ~2 s: about half the boots here.
        # The note shows it: from udev naming the NIC (ens3; the kernel's "link becomes ready"
        # line is not always printed) to the nfs module loading for the mount.
        local c=$OUT/runs/deb-$kind-$i/console.log lu nf
        lu=$(ur_ktime 'virtio_net .*: renamed from' "$c") nf=$(ur_ktime 'FS-Cache: Loaded' "$c")
        note="ipconfig-gave-up=$(grep -ac 'IP-Config: no response' "$c")"
        [ -z "$lu" ] || [ -z "$nf" ] ||
          note+=$(awk -v a="$lu" -v b="$nf" 'BEGIN { printf " nic->nfs-module=%.1fs", b - a }')
      fi
      wall=$(sed -n 's/^wall=//p' "$OUT/runs/deb-$kind-$i/result" 2>/dev/null)
      if [ "$rc" != 0 ] || [ -z "$a" ] || [ -z "$s" ] || [ -z "$m" ]; then
        printf '%-4s %-9s FAILED: see %s\n' "$i" "$kind" "$OUT/runs/deb-$kind-$i.out"
        echo "deb-$kind" >>"$OUT/failed"
        continue
      fi
      awk -v i="$i" -v k="$kind" -v a="$a" -v s="$s" -v m="$m" -v w="${wall:--}" -v n="$note" '
        BEGIN { printf "%-4s %-9s %9.3f %12.3f %15.0f %15s %15s %8s  %s\n", i, k, a, s, (s - a) * 1000,
          m == "-" ? "-" : sprintf("%.3f", m), m == "-" ? "-" : sprintf("%.0f", (m - a) * 1000), w, n }'
      echo "$a $s $m" >>"$OUT/deb-$kind.times"
    done
  done
}

if [ "${1:-}" = --run ]; then
  KDIR=$2
  run "$3"
  exit 0
fi
if [ "${1:-}" = --run-deb ]; then
  KDIR=$2
  run_deb "$3" "$4"
  exit 0
fi

n=${1:-5}
n_deb=${2:-${N_DEB:-2}}
[[ $n =~ ^[0-9]+$ && $n_deb =~ ^[0-9]+$ ]] || ur_die "usage: qemu/bench.sh [N [N_DEB]]"
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

rc=0
# median_of FILE WHAT: the median over a kind's successful boots (lines "/init end [multi-user]"
# in $OUT/FILE) of WHAT: init, end or mu (seconds), ms (/init->end) or mums (/init->multi-user).
median_of() {
  awk -v w="$2" '{ print (w == "init" ? $1 : w == "end" ? $2 : w == "mu" ? $3 : \
    w == "ms" ? ($2 - $1) * 1000 : ($3 - $1) * 1000) }' "$OUT/$1" | ur_median
}
whole() { cut -d. -f1; }
ratio() { # LABEL NUMERATOR DENOMINATOR
  if [ "$2" != - ] && [ "$3" != - ]; then
    awk -v l="$1" -v a="$2" -v b="$3" 'BEGIN { printf "ratio %s: %.2fx\n", l, a / b }'
  fi
}

if [ "$n" -gt 0 ]; then
  echo "bench: $n boots each of linuxrc and the busybox baseline, interleaved, one NFSv3 ganesha;"
  echo "       accel ${UNIONROOT_ACCEL:-auto}, kernel $ver, host load $(cut -d' ' -f1-3 /proc/loadavg)"
  : >"$OUT/linuxrc.times"
  : >"$OUT/baseline.times"
  "$UR_QEMU/serve.sh" --export "$OUT/tree" --nfs v3 --dir "$OUT/server" -- \
    "$UR_QEMU/bench.sh" --run "$KDIR" "$n" || rc=$?

  echo
  for kind in linuxrc baseline; do
    printf 'median %-9s /init->real init %6s ms   (real init at %s s uptime, /init at %s s; %d boots)\n' \
      "$kind" "$(median_of "$kind.times" ms | whole)" \
      "$(median_of "$kind.times" end)" "$(median_of "$kind.times" init)" "$(wc -l <"$OUT/$kind.times")"
  done
  ratio baseline/linuxrc "$(median_of baseline.times ms)" \
    "$(median_of linuxrc.times ms)"
fi

if [ "$n_deb" -gt 0 ]; then
  echo
  ur_log "building the Debian root (unionroot image) and Debian's initramfs (initramfs-tools)"
  ur_debian_image "$KDIR" "$OUT/debian" "$DEB_SRV" ||
    ur_die "unionroot image failed: see $OUT/debian/image.log"
  itools=$("$UR_QEMU/initramfs-tools.sh" "$KDIR")
  cp "$itools" "$OUT/itools.img"
  ur_manifest "$OUT/debian/root" >"$OUT/debian/manifest-before"
  echo "bench: Debian 12 (systemd) root, $n_deb boots each of linuxrc, the busybox baseline and"
  echo "       Debian's initramfs-tools (BOOT=nfs, MODULES=netboot), interleaved, one NFSv3 ganesha,"
  echo "       1024 MB, user network; accel ${UNIONROOT_ACCEL:-auto}, kernel $ver,"
  echo "       host load $(cut -d' ' -f1-3 /proc/loadavg)"
  for kind in linuxrc baseline itools; do : >"$OUT/deb-$kind.times"; done
  "$UR_QEMU/serve.sh" --export "$OUT/debian/root" --nfs v3 --dir "$OUT/server-deb" -- \
    "$UR_QEMU/bench.sh" --run-deb "$KDIR" "$n_deb" "$OUT/itools.img" || rc=$?
  ur_manifest "$OUT/debian/root" >"$OUT/debian/manifest-after"
  if ! cmp -s "$OUT/debian/manifest-before" "$OUT/debian/manifest-after"; then
    echo "bench: the exported Debian tree changed: diff $OUT/debian/manifest-{before,after}" >&2
    echo export >>"$OUT/failed"
  fi

  echo
  for kind in linuxrc baseline itools; do
    printf 'median Debian %-9s /init->systemd %6s ms' "$kind" \
      "$(median_of "deb-$kind.times" ms | whole)"
    [ "$kind" = itools ] ||
      printf '   /init->multi-user %6s ms' "$(median_of "deb-$kind.times" mums | whole)"
    printf '   (systemd at %s s uptime, /init at %s s; %d boots)\n' \
      "$(median_of "deb-$kind.times" end)" "$(median_of "deb-$kind.times" init)" \
      "$(wc -l <"$OUT/deb-$kind.times")"
  done
  sd() { median_of "deb-$1.times" ms; }
  mu() { median_of "deb-$1.times" mums; }
  ratio "/init->systemd baseline/linuxrc" "$(sd baseline)" "$(sd linuxrc)"
  ratio "/init->systemd initramfs-tools/linuxrc" "$(sd itools)" "$(sd linuxrc)"
  ratio "/init->multi-user baseline/linuxrc" "$(mu baseline)" "$(mu linuxrc)"
fi

echo
size() { stat -c %s "$1"; }
raw() { zstd -dcq "$1" 2>/dev/null | wc -c || size "$1"; }
if strip -o "$OUT/linuxrc.stripped" "$UR_LINUXRC" 2>/dev/null; then
  printf 'linuxrc binary: %s bytes stripped (%s as built)\n' \
    "$(size "$OUT/linuxrc.stripped")" "$(size "$UR_LINUXRC")"
else
  printf 'linuxrc binary: %s bytes (strip failed)\n' "$(size "$UR_LINUXRC")"
fi
for kind in linuxrc baseline itools; do
  [ -f "$OUT/$kind.img" ] || continue
  printf 'initramfs %-9s %9s bytes (%s bytes uncompressed)\n' \
    "$kind:" "$(size "$OUT/$kind.img")" "$(raw "$OUT/$kind.img")"
done

if [ -s "$OUT/failed" ] || [ "$rc" != 0 ]; then
  echo "bench: some boots failed ($(sort "$OUT/failed" 2>/dev/null | uniq -c | xargs)); see $OUT/runs" >&2
  exit 1
fi
