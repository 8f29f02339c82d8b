#!/usr/bin/env bash
# Boot storms: N QEMU nodes boot at once on one bridge, with one dnsmasq and H NFS heads (see
# qemu/storm-ns.sh for the network), and qemu/storm-report.py says per node whether it booted,
# its phase timings (from linuxrc's console lines) and which head served it; per storm the time
# until all nodes were done against the CPU floor (N x one boot's CPU seconds / cores), and it
# draws a timeline per storm into the output directory.
#
#   qemu/storm.sh [--nodes "1 4 8"] [--heads H] [--kinds "linuxrc baseline"] [--kill K]
#                 [--every-head] [--solo R] [--out DIR]
#
#   --nodes LIST   storm sizes, run in this order (default "1 4 8")
#   --heads H      NFS heads (default 3); linuxrc nodes get nfsroot=<head1>+...+<headH>:/system
#                  and rank the heads by their MAC; busybox-baseline nodes cannot, so node I
#                  gets head ((I-1) mod H)+1 by a fixed table
#   --kinds LIST   linuxrc, baseline and/or control (default all three; the baseline is
#                  tests/fixtures/baseline-init.sh, as in qemu/bench.sh; the control is
#                  tests/fixtures/control-init.sh: same kernel and machine, an /init that powers
#                  off at once, so its storms measure what N guests on these cores cost alone)
#   --kill K       kill head K (ganesha SIGKILL, link cut) as soon as any node runs linuxrc;
#                  the storm then passes only if every node whose first head was K failed over
#   --every-head   pass only if every head served at least one node
#   --solo R       run the N=1 storm R times (default 3; out/KIND-n1, KIND-n1-r2, ...): the
#                  floor's one-boot CPU is the median of those boots, as one boot's CPU alone
#                  moves by up to 15 % from boot to boot
#   --out DIR      output directory (default $UNIONROOT_OUT/storm, i.e. out/storm)
#
# A storm passes only with zero failures. Exit status: 0 all storms passed, 1 a storm failed, 2
# usage or setup error.
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "$0")/lib.sh"

nodes_list="1 4 8" heads=3 kinds="linuxrc baseline control" kill="" every_head=0 solo=3 out=$UR_OUT/storm
usage() { sed -n '2,/^[^#]/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; }
need() { [ $# -ge 2 ] || { usage >&2; echo "storm.sh: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) need "$@"; nodes_list=$2; shift ;;
    --heads) need "$@"; heads=$2; shift ;;
    --kinds) need "$@"; kinds=$2; shift ;;
    --kill) need "$@"; kill=$2; shift ;;
    --every-head) every_head=1 ;;
    --solo) need "$@"; solo=$2; shift ;;
    --out) need "$@"; out=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; echo "storm.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
bad() { echo "storm.sh: $*" >&2; exit 2; }
# in_range V LO HI: V is a whole number from LO to HI.
in_range() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
for n in $nodes_list; do
  in_range "$n" 1 100 ||
    bad "--nodes: $n is not a node count from 1 to 100 (dnsmasq leases .100-.199)"
done
[ -n "$nodes_list" ] || bad "--nodes: give at least one storm size, e.g. --nodes \"1 4 8\""
in_range "$solo" 1 20 || bad "--solo $solo: give 1 to 20 runs of the N=1 storm"
in_range "$heads" 1 50 ||
  bad "--heads $heads: give 1 to 50 heads (they live at 192.168.77.11-60)"
for k in $kinds; do
  case $k in
    linuxrc | baseline | control) ;;
    *) bad "--kinds: $k is not linuxrc, baseline or control" ;;
  esac
done
if [ -n "$kill" ]; then
  in_range "$kill" 1 "$heads" ||
    bad "--kill $kill: name a head from 1 to $heads"
  [ "$heads" -ge 2 ] || bad "--kill needs at least 2 heads (--heads), or nothing can fail over"
  [ "$kinds" = linuxrc ] ||
    bad "--kill: only linuxrc nodes fail over (give --kinds linuxrc)"
fi
[ "$(id -u)" = 0 ] || bad "needs root (namespaces, bridges, ganesha)"
# Debian's python3-matplotlib is for Debian's python3: prefer it to another python3 on PATH.
py=""
for p in /usr/bin/python3 python3; do
  "$p" -c 'import matplotlib' 2>/dev/null && { py=$p; break; }
done
[ -n "$py" ] || bad "python3-matplotlib is missing (scripts/setup-host.sh installs it)"
# Each head's NFS traffic is captured: the report counts every node's calls from it.
command -v tcpdump >/dev/null || bad "tcpdump is missing (scripts/setup-host.sh installs it)"

ur_bins
KDIR=$(ur_kernel_dir) || bad "no kernel (qemu/fetch-kernel.sh failed)"
ver=$(cat "$KDIR/version")
rm -rf "$out"
mkdir -p "$out"
out=$(realpath "$out")

ur_log "building $out/{tree,linuxrc.img,baseline.img,control.img}"
ur_build_tree "$out/tree"
ur_build_initramfs "$KDIR" "$UR_LINUXRC" "$out/linuxrc.img"
if [[ " $kinds " == *" baseline "* ]]; then
  # As qemu/bench.sh builds it: the same modules, loaded from a list fixed at build time.
  mdir=$KDIR/lib/modules/$ver
  for m in virtio_pci virtio_net nfsv4 overlay; do
    modprobe -d "$KDIR" -S "$ver" --show-depends "$m"
  done | awk '$1 == "insmod" { print $2 }' | sed "s|^$mdir/||" | awk '!seen[$0]++' \
    >"$out/baseline-modules.v4"
  ur_build_initramfs "$KDIR" "$UR_FIXTURES/baseline-init.sh" "$out/baseline.img" \
    --add "${UNIONROOT_BUSYBOX:-/bin/busybox}:/bin/busybox" \
    --add "$out/baseline-modules.v4:/etc/baseline-modules.v4"
fi
if [[ " $kinds " == *" control "* ]]; then
  # The same modules as the others (ur_build_initramfs's UR_MODULES) and busybox, so that the
  # kernel unpacks about as much; none of them is loaded.
  ur_build_initramfs "$KDIR" "$UR_FIXTURES/control-init.sh" "$out/control.img" \
    --add "${UNIONROOT_BUSYBOX:-/bin/busybox}:/bin/busybox"
fi

head_list=""
for k in $(seq "$heads"); do head_list+=${head_list:++}192.168.77.$((10 + k)); done
accel=${UNIONROOT_ACCEL:-auto}
[ "$accel" != auto ] || accel=tcg # the KVM probe lives in boot.sh; storms are TCG figures

# What marks a node that failed, on its console: storm-ns.sh stops such a node at once, and the
# report fails it even when its QEMU ended by itself (panic=-1 ends the VM within milliseconds).
fatal_re='linuxrc: FATAL|baseline: FATAL|Kernel panic'
runs=()
# storm KIND N [SUFFIX]: one storm, in out/KIND-nN[SUFFIX].
storm() {
  local kind=$1 n=$2 dir i head cmd
  dir=$out/$kind-n$n${3:-}
  mkdir -p "$dir"
  for i in $(seq "$n"); do
    mkdir -p "$dir/node-$i"
    if [ "$kind" = linuxrc ]; then
      head=$head_list
    else
      head=192.168.77.$((11 + (i - 1) % heads))
    fi
    # no_timer_check: on a starved host (8 TCG guests on 2 busy cores) the kernel's IO-APIC
    # timer check sometimes misses its ticks and panics ("IO-APIC + timer doesn't work!",
    # seen in storm-failover at load 12) before any init runs; it is the usual VM setting.
    cmd="console=ttyS0 panic=-1 no_timer_check nfsroot=$head:/system unionroot.nfsvers=4"
    echo "$cmd" >"$dir/node-$i/cmdline"
  done
  local img=$out/$kind.img
  ur_spec "$dir/spec" UR_DIR="$dir" UR_EXPORT="$(realpath "$out/tree")" UR_HEADS="$heads" \
    UR_NODES="$n" UR_KERNEL="$KDIR/vmlinux" UR_INITRD="$img" UR_ACCEL="$accel" UR_MEM=256 \
    UR_TIMEOUT=$((90 + 20 * n)) UR_KILL="$kill" UR_KILL_AFTER='linuxrc: ' \
    UR_FATAL="$fatal_re"
  ur_log "storm $kind N=$n heads=$heads${kill:+ (head $kill killed)}: host load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "load=$(cut -d' ' -f1-3 /proc/loadavg)" >"$dir/load-before"
  UR_NS_SCRIPT=$UR_QEMU/storm-ns.sh ur_ns_start --net --mount -- "$dir/spec" >"$dir/ns.out" 2>&1
  ur_ns_wait $((90 + 20 * n + 30)) || echo "storm-ns: ended with an error; see $dir/ns.out" >>"$dir/ns.out"
  echo "load=$(cut -d' ' -f1-3 /proc/loadavg)" >"$dir/load-after"
  mapfile -t left < <(ur_ns_leftovers)
  [ ${#left[@]} -eq 0 ] || {
    echo "leftovers: ${left[*]}" >>"$dir/ns.out"
    kill -KILL "${left[@]}" 2>/dev/null || true
  }
  runs+=("$dir")
}
ur_signal_traps ur_ns_stop

# Interleave the kinds per size, so that a drift in host load hits both alike.
for n in $nodes_list; do
  reps=1
  [ "$n" != 1 ] || reps=$solo
  for r in $(seq "$reps"); do
    suffix=""
    [ "$r" = 1 ] || suffix=-r$r
    for kind in $kinds; do storm "$kind" "$n" "$suffix"; done
  done
done

args=(--heads "$heads" --cores "$(nproc)" --fatal "$fatal_re")
[ -z "$kill" ] || args+=(--killed "$kill")
[ "$every_head" = 0 ] || args+=(--every-head)
"$py" "$UR_QEMU/storm-report.py" "${args[@]}" "${runs[@]}"
