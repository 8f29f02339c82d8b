#!/usr/bin/env bash
# Boot-time benchmark: linuxrc against a busybox-script baseline doing the same job
# (tests/fixtures/baseline-init.sh), N boots each, interleaved, all against one NFSv3 server
# (qemu/serve.sh) in one run.
#
#   qemu/bench.sh [N [N_DEB [N_IMG]]]  (N default 5; N_DEB, N_IMG default $N_DEB, $N_IMG or 2;
#                                       0 skips a part)
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
#
# Then the image part (run_img below): the same Debian root as a file-level lower with several
# NFS mount options and as an EROFS image generation, N_IMG boots each: NFS calls by procedure
# (a capture on the server's loopback, qemu/rpcstat.py), READ bytes, /init -> "running".
# Then the aarch64 part: N_ARM64 (default 3; 0 skips) boots of the aarch64 linuxrc on Debian's
# arm64 kernel in qemu-system-aarch64 (-M virt, TCG; qemu/boot.sh --arch arm64) against the
# same kind of server, the busybox tree being Debian's arm64 busybox; its /init -> real init
# median is printed beside the x86_64 one.
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

# The image part: the same Debian root exported once ($OUT/debian: the tree in root/, its
# generations in images/), N_IMG boots of each kind below, the order rotating per round, each
# boot's NFS traffic captured on the server namespace's loopback (tcpdump) and counted by
# qemu/rpcstat.py. All kinds use one initramfs (linuxrc with loop, erofs and squashfs) and the probe's
# probe.quick: it says when the boot was over ("running", FinishTimestampMonotonic), looks up a
# name nobody has over the NFS mount (the mark that splits the calls), and powers off.
# KIND|LOWER OPTIONS: the file-level kinds mount the tree as the lower with these options added
# to linuxrc's (a user option replaces linuxrc's default of the same key); "image" loop-mounts
# the EROFS generation the pointer names (the host tool's default format), "squashfs" the same
# tree packed as squashfs.
# UNIONROOT_BENCH_IMG_KINDS="kernel image" measures only those.
IMG_KINDS=(
  "kernel|cto,acregmin=3,acregmax=60,acdirmin=30,acdirmax=60"
  "nocto|nocto,acregmin=3,acregmax=60,acdirmin=30,acdirmax=60"
  "actimeo|cto,actimeo=600"
  "lcpos|lookupcache=positive"
  "default|"
  "image|"
  "squashfs|"
)
picked=()
if [ -n "${UNIONROOT_BENCH_IMG_KINDS:-}" ]; then
  for k in "${IMG_KINDS[@]}"; do
    [[ " $UNIONROOT_BENCH_IMG_KINDS " == *" ${k%%|*} "* ]] && picked+=("$k")
  done
  [ ${#picked[@]} -gt 0 ] || ur_die "UNIONROOT_BENCH_IMG_KINDS names none of: ${IMG_KINDS[*]%%|*}"
  IMG_KINDS=("${picked[@]}")
fi
MARK=.unionroot-running-mark

# run_img N: the image part's measuring half, inside qemu/serve.sh.
run_img() {
  local n=$1 i r k kind opts lower args rc a m wall run pcap tcpd
  printf '%-4s %-8s %9s %11s %15s %7s %8s %8s %7s %9s %8s\n' run kind "/init (s)" "running (s)" \
    "/init->run (ms)" calls "@running" GETATTR LOOKUP "READ MiB" "wall (s)"
  for i in $(seq "$n"); do
    for r in $(seq 0 $((${#IMG_KINDS[@]} - 1))); do
      # Rotate the start of the order per round, so a drift in host load hits every kind alike.
      k=${IMG_KINDS[$(((r + i - 1) % ${#IMG_KINDS[@]}))]}
      kind=${k%%|*} opts=${k#*|}
      if [ "$kind" = image ]; then
        lower="unionroot.image=$DEB_SRV:/srv/system/images/debian"
      elif [ "$kind" = squashfs ]; then
        lower="unionroot.image=$DEB_SRV:/srv/system/images-sqfs/debian"
      else
        lower="unionroot.lower=$DEB_SRV:/srv/system/root${opts:+,$opts}"
      fi
      run=$OUT/runs/img-$kind-$i pcap=$OUT/runs/img-$kind-$i.pcap
      # --immediate-mode: every packet reaches the file as it comes, none waits in a buffer
      # when tcpdump is stopped.
      tcpdump -i lo -s 0 -B 65536 --immediate-mode -U -n -w "$pcap" \
        'tcp port 2049 or tcp port 111 or tcp port 20048' >"$run.tcpdump" 2>&1 &
      tcpd=$!
      for _ in $(seq 100); do grep -q listening "$run.tcpdump" && break; sleep 0.05; done
      rc=0
      # The Debian PROOF lines are not anchored: the serial getty's "login:" prompt can stand
      # before one.
      args=(--cmdline "console=ttyS0 panic=-1 $lower unionroot.nfsvers=3 probe.quick"
        --until 'PROOF done' --expect 'PROOF running-at=' --forbid 'linuxrc: FATAL' --timeout 300)
      "$UR_QEMU/boot.sh" -q --nfs external --initrd "$OUT/linuxrc-image.img" --mem 1024 \
        --kernel-dir "$KDIR" --dir "$run" "${args[@]}" --forbid 'Kernel panic' \
        >"$run.out" 2>&1 || rc=$?
      sleep 1
      kill -INT "$tcpd" 2>/dev/null
      wait "$tcpd" || true
      if grep -q '[1-9][0-9]* packets dropped by kernel' "$run.tcpdump"; then
        echo "bench: tcpdump dropped packets in $run: the counts would be low" >&2
        rc=1
      fi
      RPCSTAT_READS=$run.reads python3 "$UR_QEMU/rpcstat.py" "$pcap" "$MARK" >"$run/rpcstat" || rc=1
      rm -f "$pcap"
      a=$(ur_ktime "$T_INIT" "$run/console.log")
      m=$(sed -nE 's/.*PROOF running-at=([0-9.]+).*/\1/p' "$run/console.log" | head -1)
      wall=$(sed -n 's/^wall=//p' "$run/result" 2>/dev/null)
      if [ "$rc" != 0 ] || [ -z "$a" ] || [ -z "$m" ] || grep -q '^gaps=[1-9]' "$run/rpcstat"; then
        printf '%-4s %-8s FAILED: see %s\n' "$i" "$kind" "$run.out"
        echo "img-$kind" >>"$OUT/failed"
        continue
      fi
      st() { sed -n "s/^$1=//p" "$run/rpcstat"; }
      awk -v i="$i" -v k="$kind" -v a="$a" -v m="$m" -v t="$(st total)" -v b="$(st before_mark)" \
        -v g="$(st proc.GETATTR)" -v l="$(st proc.LOOKUP)" -v rb="$(st read_bytes)" -v w="${wall:--}" '
        BEGIN { printf "%-4s %-8s %9.3f %11.3f %15.0f %7d %8d %8d %7d %9.1f %8s\n", i, k, a, m,
          (m - a) * 1000, t, b, g, l, rb / 1048576, w }'
      echo "$a $m $(st total) $(st before_mark) $(st read_bytes)" >>"$OUT/img-$kind.times"
      cat "$run/rpcstat" >>"$OUT/img-$kind.procs"
    done
  done
}

# run_arm64 N KDIR64: the aarch64 part's measuring half, inside qemu/serve.sh.
run_arm64() {
  local n=$1 kdir=$2 i rc a b wall
  printf '%-4s %-9s %9s %13s %16s %8s\n' run init "/init (s)" "real init (s)" "/init->real (ms)" "wall (s)"
  for i in $(seq "$n"); do
    rc=0
    "$UR_QEMU/boot.sh" -q --arch arm64 --nfs external --initrd "$OUT/arm64/linuxrc.img" \
      --export "$OUT/arm64/tree" --kernel-dir "$kdir" --dir "$OUT/runs/arm64-$i" --timeout 120 \
      --expect "$T_REAL" --expect 'PROOF root=overlay' --forbid 'Kernel panic' \
      >"$OUT/runs/arm64-$i.out" 2>&1 || rc=$?
    a=$(ur_ktime "$T_INIT" "$OUT/runs/arm64-$i/console.log")
    b=$(ur_ktime "$T_REAL" "$OUT/runs/arm64-$i/console.log")
    wall=$(sed -n 's/^wall=//p' "$OUT/runs/arm64-$i/result" 2>/dev/null)
    if [ "$rc" != 0 ] || [ -z "$a" ] || [ -z "$b" ]; then
      printf '%-4s %-9s FAILED: see %s\n' "$i" aarch64 "$OUT/runs/arm64-$i.out"
      echo arm64 >>"$OUT/failed"
      continue
    fi
    awk -v i="$i" -v a="$a" -v b="$b" -v w="${wall:--}" 'BEGIN {
      printf "%-4s %-9s %9.3f %13.3f %16.0f %8s\n", i, "aarch64", a, b, (b - a) * 1000, w }'
    echo "$a $b" >>"$OUT/arm64.times"
  done
}

if [ "${1:-}" = --run ]; then
  KDIR=$2
  run "$3"
  exit 0
fi
if [ "${1:-}" = --run-arm64 ]; then
  run_arm64 "$2" "$3"
  exit 0
fi
if [ "${1:-}" = --run-deb ]; then
  KDIR=$2
  run_deb "$3" "$4"
  exit 0
fi
if [ "${1:-}" = --run-img ]; then
  KDIR=$2
  run_img "$3"
  exit 0
fi

n=${1:-5}
n_deb=${2:-${N_DEB:-2}}
n_img=${3:-${N_IMG:-2}}
[[ $n =~ ^[0-9]+$ && $n_deb =~ ^[0-9]+$ && $n_img =~ ^[0-9]+$ ]] ||
  ur_die "usage: qemu/bench.sh [N [N_DEB [N_IMG]]]"
[ "$n_img" = 0 ] || command -v tcpdump >/dev/null || ur_die "the image part needs tcpdump (scripts/setup-host.sh)"
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

n_arm64=${N_ARM64:-3}
[[ $n_arm64 =~ ^[0-9]+$ ]] || ur_die "N_ARM64=$n_arm64 is not a number of boots"
if [ "$n_arm64" -gt 0 ]; then
  echo
  ur_bins_arm64
  kdir_arm64=$(ur_kernel_dir_arm64)
  ur_log "building $OUT/arm64/{tree,linuxrc.img}"
  mkdir -p "$OUT/arm64"
  ur_build_tree "$OUT/arm64/tree" "$(ur_arm64_deb busybox-static bin/busybox)"
  ur_build_initramfs "$kdir_arm64" "$UR_LINUXRC_ARM64" "$OUT/arm64/linuxrc.img" --module virtio_mmio
  echo "bench: aarch64, $n_arm64 boots of linuxrc in qemu-system-aarch64 -M virt -cpu cortex-a57"
  echo "       (TCG), kernel $(cat "$kdir_arm64/version"), one NFSv3 ganesha"
  : >"$OUT/arm64.times"
  "$UR_QEMU/serve.sh" --export "$OUT/arm64/tree" --nfs v3 --dir "$OUT/server-arm64" -- \
    "$UR_QEMU/bench.sh" --run-arm64 "$n_arm64" "$kdir_arm64" || rc=$?
  echo
  for kind in linuxrc arm64; do
    [ -s "$OUT/$kind.times" ] || continue
    printf 'median %-15s /init->real init %6s ms   (real init at %s s uptime, /init at %s s; %d boots)\n' \
      "$([ "$kind" = arm64 ] && echo "aarch64 linuxrc" || echo "x86_64 linuxrc")" \
      "$(median_of "$kind.times" ms | whole)" "$(median_of "$kind.times" end)" \
      "$(median_of "$kind.times" init)" "$(wc -l <"$OUT/$kind.times")"
  done
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

if [ "$n_img" -gt 0 ]; then
  echo
  ur_log "building the Debian root and its EROFS generation (unionroot image, image-pack)"
  ur_debian_image "$KDIR" "$OUT/debian" "$DEB_SRV" ||
    ur_die "unionroot image failed: see $OUT/debian/image.log"
  # pack FORMAT DIR: the tree as a generation in $OUT/debian/DIR; prints the generation, its
  # size and how long the host tool took.
  pack() {
    local t0 t1 gen
    rm -rf "${OUT:?}/debian/$2" && mkdir -p "$OUT/debian/$2"
    t0=$(date +%s.%N)
    "$UR_TOOL" image-pack "$OUT/debian/root" --images "$OUT/debian/$2" --name debian --format "$1" \
      >"$OUT/debian/pack-$1.log" 2>&1 || ur_die "image-pack failed: see $OUT/debian/pack-$1.log"
    t1=$(date +%s.%N)
    gen=$(cat "$OUT/debian/$2/debian.current")
    echo "$gen, $(stat -c %s "$OUT/debian/$2/$gen") bytes, packed in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
  }
  packed=()
  [[ " ${IMG_KINDS[*]%%|*} " != *" image "* ]] || packed+=("EROFS $(pack erofs images)")
  [[ " ${IMG_KINDS[*]%%|*} " != *" squashfs "* ]] || packed+=("squashfs $(pack squashfs images-sqfs)")
  ur_build_initramfs "$KDIR" "$UR_LINUXRC" "$OUT/linuxrc-image.img" --module loop --module erofs \
    --module squashfs
  ur_manifest "$OUT/debian" >"$OUT/manifest-img-before"
  echo "bench: Debian 12 (systemd) root, file-level lowers with several NFS options against it as"
  echo "       image generations; $n_img boots each, interleaved, one NFSv3 ganesha, 1024 MB;"
  printf '       %s\n' "${packed[@]}"
  echo "       calls: the NFS, MOUNT and PORTMAP calls of a whole boot (to power-off), @running: those"
  echo "       before the boot was over; host load $(cut -d' ' -f1-3 /proc/loadavg)"
  for k in "${IMG_KINDS[@]}"; do : >"$OUT/img-${k%%|*}.times"; : >"$OUT/img-${k%%|*}.procs"; done
  "$UR_QEMU/serve.sh" --export "$OUT/debian" --nfs v3 --dir "$OUT/server-img" -- \
    "$UR_QEMU/bench.sh" --run-img "$KDIR" "$n_img" || rc=$?
  ur_manifest "$OUT/debian" >"$OUT/manifest-img-after"
  if ! cmp -s "$OUT/manifest-img-before" "$OUT/manifest-img-after"; then
    echo "bench: the exported Debian tree changed: diff $OUT/manifest-img-{before,after}" >&2
    echo export >>"$OUT/failed"
  fi
  echo
  # col FILE N: the median of column N of a kind's .times (1 /init, 2 running, 3 calls,
  # 4 calls before running, 5 READ bytes).
  col() { awk -v c="$2" '{ print $c }' "$OUT/$1" | ur_median; }
  printf '%-8s %15s %9s %11s %9s %9s %9s %s\n' median "/init->run (ms)" calls "@running" GETATTR \
    LOOKUP "READ MiB" "other procedures (whole boot, median)"
  for k in "${IMG_KINDS[@]}"; do
    kind=${k%%|*}
    [ -s "$OUT/img-$kind.times" ] || continue
    ms=$(awk '{ print ($2 - $1) * 1000 }' "$OUT/img-$kind.times" | ur_median)
    # Each procedure's median over the kind's boots (a boot without it counts 0): "MEDIAN NAME"
    # lines, the most frequent first. .procs has each boot's rpcstat lines after one another.
    procs=$(sed -n 's/^proc\.\([^=]*\)=.*/\1/p' "$OUT/img-$kind.procs" | sort -u | while read -r p; do
      awk -v p="$p" '/^total=/ { if (n++) print v + 0; v = 0 } $0 ~ "^proc\\." p "=" { sub(/.*=/, ""); v = $0 }
        END { print v + 0 }' "$OUT/img-$kind.procs" | ur_median | awk -v p="$p" '{ printf "%.0f %s\n", $1, p }'
    done | sort -rn)
    get() { awk -v p="$1" '$2 == p { print $1 }' <<<"$procs"; }
    printf '%-8s %15.0f %9s %11s %9s %9s %9.1f %s\n' "$kind" "$ms" "$(col "img-$kind.times" 3)" \
      "$(col "img-$kind.times" 4)" "$(get GETATTR)" "$(get LOOKUP)" \
      "$(awk -v b="$(col "img-$kind.times" 5)" 'BEGIN { print b / 1048576 }')" \
      "$(awk '$2 != "GETATTR" && $2 != "LOOKUP" { printf "%s=%s ", $2, $1 }' <<<"$procs")"
  done
  for k in kernel default; do
    for i in image squashfs; do
      if [ -s "$OUT/img-$k.times" ] && [ -s "$OUT/img-$i.times" ]; then
        awk -v k="$k" -v i="$i" -v f="$(col "img-$k.times" 4)" -v g="$(col "img-$i.times" 4)" 'BEGIN {
          printf "%s vs file-level %s: %.1f%% fewer calls before running\n", i, k, (1 - g / f) * 100 }'
      fi
    done
  done
  run_ms() { [ -s "$OUT/img-$1.times" ] && awk '{ print ($2 - $1) * 1000 }' "$OUT/img-$1.times" | ur_median || echo -; }
  for k in kernel default; do
    for i in image squashfs; do
      ratio "/init->running file-level $k/$i" "$(run_ms "$k")" "$(run_ms "$i")"
    done
  done
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
if [ -n "${UR_LINUXRC_ARM64:-}" ]; then
  printf 'linuxrc binary (aarch64): %s bytes (stripped as built)\n' "$(size "$UR_LINUXRC_ARM64")"
  printf 'initramfs aarch64 linuxrc: %s bytes (%s bytes uncompressed)\n' \
    "$(size "$OUT/arm64/linuxrc.img")" "$(raw "$OUT/arm64/linuxrc.img")"
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
