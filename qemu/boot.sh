#!/usr/bin/env bash
# Boots one diskless client in QEMU against a private NFS server and says whether the boot did
# what was expected. Exit status: 0 pass, 1 fail, 2 usage or setup error.
#
# Everything runs in fresh namespaces (see qemu/ns-init.sh): nfs-ganesha exports DIR as
# /srv/system (v3 path) and /system (v4 pseudo path). With --net user (the default) the guest
# reaches it as 10.0.2.2 through QEMU user-mode networking (DHCP gives it 10.0.2.15/24). With
# --net tap the guest's NICs are taps on bridges in the namespace, brN being 192.168.(77+N).0/24
# with the namespace (router, NFS server) at .1, and DHCP is whatever dnsmasq --dhcp says.
# Nothing outlives the run: QEMU and the servers die with the PID namespace, and that is checked.
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<'EOF'
usage: qemu/boot.sh --initrd FILE [--export DIR] [options]

  --initrd FILE      initramfs to boot (required); "none" boots without one (a kernel that
                     mounts its own root, e.g. root=/dev/nfs from qemu/build-kernel.sh)
  --export DIR       system tree to serve over NFS (required unless --nfs none); its manifest
                     is taken before and after the boot and must not change
  --export NAME=DIR[:rw]
                     a further export (repeatable): v3 path /srv/NAME, v4 pseudo path /NAME;
                     read-only (and manifest-checked like DIR) unless :rw
  --nfs-delay SEC    start ganesha SEC seconds after QEMU (a server that boots late)
  --nfs-after ERE    ... SEC seconds after the first console line matching ERE instead
  --nfs MODE         v3   rpcbind + ganesha serving NFSv3 and v4, guest mounts v3 (default)
                     v4   ganesha serving NFSv4 only, no rpcbind, guest mounts v4
                     none no server at all (the guest's mount must fail)
                     external  use the server qemu/serve.sh runs around us (guest mounts
                          v4 if that server is v4-only, else v3)
  --nfs-owners MODE  numeric (default): NFSv4 owners go over the wire as numbers, which a
                     client without an idmapper (any initramfs) needs; names: as user@domain
                     names, ganesha's own default (the guest sees unmapped owners)
  --append ARGS      extra kernel command line (repeatable)
  --cmdline ARGS     replace the default command line (console=ttyS0 panic=-1
                     nfsroot=<10.0.2.2 or 192.168.77.1>:<path> unionroot.nfsvers=<3|4>)
  --expect ERE       must appear on the console (repeatable; all must match)
  --forbid ERE       must not appear (repeatable); QEMU is stopped as soon as it does
  --until ERE        stop QEMU as soon as this appears (for boots that wait forever)
  --timeout SEC      hard limit for the QEMU run (default 60); reaching it fails the boot
  --dir DIR          run directory for logs (default out/boot/<time>-<pid>)
  --log FILE         console log (default DIR/console.log)
  --console          show the console live on stdout
  --net MODE         user (default: -netdev user + virtio-net-pci), tap or none
                     tap: each --nic is a tap on a bridge brN (192.168.(77+N).1/24 is the
                     namespace: router and NFS server); no DHCP unless --dhcp says so
  --nic "BRIDGE [model=M] [mac=MAC]"
                     a NIC on bridge brN (repeatable, in PCI order: the first is the guest's
                     eth0; implies --net tap; default one virtio NIC on br0). M is
                     virtio-net-pci (default) or e1000; MAC defaults to 52:54:00:77:0N:<nic#>
  --dhcp "BRIDGE [KEY=VALUE]..."
                     a dnsmasq serving bridge brN (repeatable); server number K (from 0)
                     leases .(100+50K) to .(149+50K) with the bridge's .1 as router. Keys:
                       root-path=R    send option 17 (the guest must ask for it)
                       dns=IP domain=D  options 6 and 15
                       delay=S        start S seconds after QEMU (no server until then)
                       after=ERE      ... S seconds after a console line matches ERE (no
                                      spaces in it: use . for one)
                       reply-delay=S  dnsmasq --dhcp-reply-delay
                       host=IP        run as another machine on the segment: own netns
                                      with address IP, joined to the bridge by a veth
                       arg=OPTION     any other dnsmasq option, e.g.
                                      arg=--dhcp-host=52:54:00:77:00:01,node1
  --hmp "ERE S COMMAND..."
                     S seconds after a console line matches ERE (- for QEMU's start; no
                     spaces in ERE), send COMMAND to QEMU's human monitor (repeatable), e.g.
                     "- 0 set_link n1 off" then "linuxrc:.dhcp 1 set_link n1 on": NIC 1
                     without carrier until 1 s after DHCP starts (NIC i's netdev is ni)
  --pcap             with --net tap: capture every bridge's traffic to DIR/net.pcap
                     (needs tcpdump, which scripts/setup-host.sh does not install)
  --qemu-arg ARG     extra QEMU argument (repeatable)
  --arch A           amd64 (default: qemu-system-x86_64, PVH vmlinux) or arm64:
                     qemu-system-aarch64 -M virt -cpu cortex-a57 under TCG booting Debian's
                     arm64 Image (qemu/fetch-kernel.sh arm64), console ttyAMA0
  --netboot          a real firmware network boot from NIC 0 (bootindex 0) over --net tap:
                     arm64: UEFI, the AAVMF firmware of qemu-efi-aarch64 (its variable store
                     copied per boot; no option ROM); amd64: BIOS PXE, SeaBIOS and the NIC's
                     iPXE ROM. No -kernel/-initrd/-append: DHCP (--dhcp, e.g.
                     arg=--conf-file=the host tool's dnsmasq configs) and TFTP say everything;
                     no --initrd FILE, --cmdline or --append
  --user-nic MODEL   the --net user NIC: virtio-net-pci (default), e1000, or with --arch arm64
                     virtio-net-device (virtio over MMIO, found through the device tree)
  --mem MB           guest memory (default 512)
  --accel A          auto (default: KVM only if a probe boot works, else TCG), tcg or kvm
  --kernel-dir DIR   kernel cache dir (default: output of qemu/fetch-kernel.sh)
  --pxe TFTPDIR      a real PXE boot: no -kernel/-initrd/-append; -boot n, and the iPXE ROM
                     gets DHCP and TFTP from the user netdev (tftp=TFTPDIR, bootfile=
                     pxelinux.0), e.g. a TFTP root from `unionroot pxe`; needs --net user, no
                     --initrd FILE (only none), --cmdline or --append: pxelinux.cfg says those
  --mac MAC          the MAC of the --net user NIC (default QEMU's 52:54:00:12:34:56)
  -q, --quiet        print only the verdict line
EOF
}

initrd="" export_dir="" nfs=v3 cmdline="" timeout=60 dir="" log="" console=0 net=user
mem=512 accel=${UNIONROOT_ACCEL:-auto} kdir="" quiet=0 pcap=0
appends=() expects=() forbids=() untils=() qemu_extra=() nics=() dhcps=() hmps=()
exports=() nfs_delay=0 nfs_after="" nfs_owners=numeric
pxe_dir="" user_mac="" arch=amd64 user_model=virtio-net-pci netboot=0
AAVMF_DIR=${UNIONROOT_AAVMF_DIR:-/usr/share/AAVMF}
need() { [ $# -ge 2 ] || { usage >&2; echo "boot.sh: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case $1 in
    --initrd) need "$@"; initrd=$2; shift ;;
    --export) need "$@"; if [[ $2 == *=* ]]; then exports+=("$2"); else export_dir=$2; fi; shift ;;
    --nfs-delay) need "$@"; nfs_delay=$2; shift ;;
    --nfs-after) need "$@"; nfs_after=$2; shift ;;
    --nfs) need "$@"; nfs=$2; shift ;;
    --nfs-owners) need "$@"; nfs_owners=$2; shift ;;
    --append) need "$@"; appends+=("$2"); shift ;;
    --cmdline) need "$@"; cmdline=$2; shift ;;
    --expect) need "$@"; expects+=("$2"); shift ;;
    --forbid) need "$@"; forbids+=("$2"); shift ;;
    --until) need "$@"; untils+=("$2"); shift ;;
    --timeout) need "$@"; timeout=$2; shift ;;
    --dir) need "$@"; dir=$2; shift ;;
    --log) need "$@"; log=$2; shift ;;
    --console) console=1 ;;
    --net) need "$@"; net=$2; shift ;;
    --nic) need "$@"; nics+=("$2"); net=tap; shift ;;
    --dhcp) need "$@"; dhcps+=("$2"); shift ;;
    --hmp) need "$@"; hmps+=("$2"); shift ;;
    --pcap) pcap=1 ;;
    --qemu-arg) need "$@"; qemu_extra+=("$2"); shift ;;
    --mem) need "$@"; mem=$2; shift ;;
    --accel) need "$@"; accel=$2; shift ;;
    --kernel-dir) need "$@"; kdir=$2; shift ;;
    --pxe) need "$@"; pxe_dir=$2; shift ;;
    --mac) need "$@"; user_mac=$2; shift ;;
    --arch) need "$@"; arch=$2; shift ;;
    --user-nic) need "$@"; user_model=$2; shift ;;
    --netboot) netboot=1 ;;
    -q | --quiet) quiet=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; echo "boot.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
setup_fail() { echo "boot.sh: $*" >&2; exit 2; }
say() { [ "$quiet" = 1 ] || echo "boot: $*"; }
case $arch in
  amd64) console_dev=ttyS0 ;;
  arm64) console_dev=ttyAMA0
    # This host is x86_64: an aarch64 guest is always emulated.
    [ "$accel" != kvm ] || setup_fail "--accel kvm: an arm64 guest on this host runs under TCG only"
    accel=tcg
    [ -z "$pxe_dir" ] || setup_fail "--pxe is BIOS PXE (pxelinux), which arm64 has not" ;;
  *) setup_fail "--arch must be amd64 or arm64" ;;
esac
if [ "$netboot" = 1 ]; then
  [ -z "$pxe_dir" ] || setup_fail "--netboot and --pxe: choose one"
  case $initrd in
    "" | none) initrd=none ;;
    *) setup_fail "--netboot: the initramfs comes over TFTP, not --initrd" ;;
  esac
  if [ -n "$cmdline" ] || [ ${#appends[@]} -gt 0 ]; then
    setup_fail "--netboot: the command line comes from the loader's config, not --cmdline/--append"
  fi
  [ "$net" = tap ] || setup_fail "--netboot needs --net tap (a --nic) and --dhcp"
  if [ "$arch" = arm64 ]; then
    for f in AAVMF_CODE.fd AAVMF_VARS.fd; do
      [ -f "$AAVMF_DIR/$f" ] || setup_fail "--netboot: no $AAVMF_DIR/$f (install qemu-efi-aarch64)"
    done
  fi
  cmdline="(the loader's config over TFTP)"
fi
case $user_model/$arch in
  virtio-net-pci/* | e1000/* | virtio-net-device/arm64) ;;
  *) setup_fail "--user-nic $user_model: virtio-net-pci, e1000 or (arm64) virtio-net-device" ;;
esac
if [ -n "$pxe_dir" ]; then
  # The kernel, initramfs and command line come over TFTP: nothing of ours may stand in.
  case $initrd in
    "" | none) initrd=none ;;
    *) setup_fail "--pxe: the initramfs comes over TFTP, not --initrd" ;;
  esac
  if [ -n "$cmdline" ] || [ ${#appends[@]} -gt 0 ]; then
    setup_fail "--pxe: the command line comes from pxelinux.cfg, not --cmdline/--append"
  fi
  [ "$net" = user ] || setup_fail "--pxe needs --net user (QEMU's tftp= and bootfile=)"
  [ -f "$pxe_dir/pxelinux.0" ] || setup_fail "--pxe: no pxelinux.0 in $pxe_dir"
  pxe_dir=$(realpath "$pxe_dir")
  [[ $pxe_dir != *,* ]] || setup_fail "--pxe: $pxe_dir has a comma (QEMU's option separator)"
  cmdline="(pxelinux.cfg in $pxe_dir)"
fi
if [ -n "$user_mac" ]; then
  [ "$net" = user ] || setup_fail "--mac needs --net user (use --nic \"brN mac=MAC\" with tap)"
  [[ $user_mac =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] ||
    setup_fail "--mac $user_mac is not a lowercase aa:bb:cc:dd:ee:ff"
fi
[ -n "$initrd" ] || { usage >&2; setup_fail "--initrd is required"; }
[ "$initrd" = none ] || [ -f "$initrd" ] || setup_fail "no initramfs at $initrd"
case $nfs in
  v3 | v4 | none) ;;
  external) [ -n "${UR_SERVED_NFS:-}" ] || setup_fail "--nfs external outside qemu/serve.sh" ;;
  *) setup_fail "--nfs must be v3, v4, none or external" ;;
esac
case $net in user | none | tap) ;; *) setup_fail "--net must be user, tap or none" ;; esac
case $nfs_owners in numeric | names) ;; *) setup_fail "--nfs-owners must be numeric or names" ;; esac
if [ "$net" = tap ]; then
  # Bridges and taps in a network namespace of our own: not next to qemu/serve.sh's server.
  [ "$nfs" != external ] || setup_fail "--net tap does not work with --nfs external"
  [ ${#nics[@]} -gt 0 ] || nics=(br0)
  [ "$pcap" = 0 ] || command -v tcpdump >/dev/null || setup_fail "--pcap needs tcpdump"
else
  [ "$pcap" = 0 ] || setup_fail "--pcap needs --net tap"
  [ ${#dhcps[@]} -eq 0 ] || setup_fail "--dhcp needs --net tap (or a --nic)"
fi
is_bridge() { [[ $1 =~ ^br[0-9]$ ]]; }
# The NICs: QEMU arguments, and the "TAP BRIDGE" lines ns-init.sh creates the taps from.
nic_args=() taps=""
for i in "${!nics[@]}"; do
  read -r -a words <<<"${nics[i]}"
  br=${words[0]:-} model=virtio-net-pci mac=$(printf '52:54:00:77:%02x:%02x' "${br#br}" $((i + 1)))
  is_bridge "$br" || setup_fail "--nic ${nics[i]}: the first word must be a bridge br0..br9"
  for w in "${words[@]:1}"; do
    case $w in
      model=virtio-net-pci | model=e1000) model=${w#*=} ;;
      mac=*) mac=${w#*=}
        [[ $mac =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] ||
          setup_fail "--nic: mac=$mac is not a lowercase aa:bb:cc:dd:ee:ff" ;;
      *) setup_fail "--nic: unknown word $w (model=virtio-net-pci|e1000, mac=MAC)" ;;
    esac
  done
  dev="$model,netdev=n$i,mac=$mac"
  # --netboot boots from NIC 0. On arm64 AAVMF drives the NIC itself: QEMU's default option
  # ROM is x86 code.
  [ "$netboot" = 0 ] || [ "$i" != 0 ] || dev+=",bootindex=0"
  [ "$netboot" = 0 ] || [ "$arch" != arm64 ] || dev+=",romfile="
  nic_args+=(-netdev "tap,id=n$i,ifname=tap$i,script=no,downscript=no" -device "$dev")
  taps+="tap$i $br"$'\n'
done
for d in ${dhcps[@]+"${dhcps[@]}"}; do
  read -r -a words <<<"$d"
  is_bridge "${words[0]:-}" || setup_fail "--dhcp $d: the first word must be a bridge br0..br9"
  [[ " $taps" == *" ${words[0]}"$'\n'* ]] || setup_fail "--dhcp $d: no --nic on ${words[0]}"
  for w in "${words[@]:1}"; do
    case $w in
      delay=* | reply-delay=*) [[ ${w#*=} =~ ^[0-9]+$ ]] || setup_fail "--dhcp: $w: whole seconds" ;;
      host=*) [[ ${w#*=} =~ ^192\.168\.$((77 + ${words[0]#br}))\.[0-9]+$ ]] ||
        setup_fail "--dhcp: $w is not in ${words[0]}'s 192.168.$((77 + ${words[0]#br})).0/24" ;;
      after=?* | root-path=* | dns=* | domain=* | arg=*) ;;
      *) setup_fail "--dhcp: unknown word $w" ;;
    esac
  done
done
for h in ${hmps[@]+"${hmps[@]}"}; do
  # The monitor listens on the namespace's loopback: not next to qemu/serve.sh's server.
  [ "$nfs" != external ] || setup_fail "--hmp does not work with --nfs external"
  read -r -a words <<<"$h"
  if [ ${#words[@]} -lt 3 ] || ! [[ ${words[1]} =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
    setup_fail "--hmp $h: want ERE SECONDS COMMAND..."
  fi
done
[[ $timeout =~ ^[0-9]+$ ]] || setup_fail "--timeout takes whole seconds"
if [ "$nfs" = v3 ] || [ "$nfs" = v4 ]; then
  [ -n "$export_dir" ] || setup_fail "--export DIR is required with --nfs $nfs"
fi
if [ -n "$export_dir" ]; then
  [ -d "$export_dir" ] || setup_fail "export $export_dir is not a directory"
  export_dir=$(realpath "$export_dir")
fi
# The further exports, as lines "NAME ro|rw DIR" for ns-init.sh.
exports_spec=""
for e in ${exports[@]+"${exports[@]}"}; do
  ename=${e%%=*} edir=${e#*=} emode=ro
  case $edir in *:rw) edir=${edir%:rw} emode=rw ;; *:ro) edir=${edir%:ro} ;; esac
  [[ $ename =~ ^[a-z][a-z0-9_-]*$ && $ename != system ]] ||
    setup_fail "--export $e: NAME must be [a-z][a-z0-9_-]* and not system"
  [ -d "$edir" ] || setup_fail "--export $e: $edir is not a directory"
  exports_spec+="$ename $emode $(realpath "$edir")"$'\n'
done
[[ $nfs_delay =~ ^[0-9]+$ ]] || setup_fail "--nfs-delay takes whole seconds"
[ "$(id -u)" = 0 ] || setup_fail "needs root (namespaces, mounts, ganesha)"

if [ -z "$kdir" ] && [ "$arch" = arm64 ]; then
  kdir=$(ur_kernel_dir_arm64) || setup_fail "no kernel (qemu/fetch-kernel.sh arm64 failed)"
fi
[ -n "$kdir" ] || kdir=$(ur_kernel_dir) || setup_fail "no kernel (qemu/fetch-kernel.sh failed)"
vmlinux=$kdir/vmlinux
[ "$arch" = amd64 ] || vmlinux=$kdir/Image
[ -f "$vmlinux" ] || setup_fail "no ${vmlinux##*/} in $kdir (an $arch kernel from qemu/fetch-kernel.sh $arch?)"
[ -n "$dir" ] || dir=$UR_OUT/boot/$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$dir"
dir=$(realpath "$dir")
[ -n "$log" ] || log=$dir/console.log
mkdir -p "$(dirname "$log")"
log=$(realpath -m "$log")
rm -f "$log" "$dir/stop" "$dir/timings"

# KVM here may be a paravirtual one without VMX/SVM: QEMU then aborts or crawls. Trust it only
# after a probe boot (no initramfs: the kernel panics and, with panic=-1 and -no-reboot, QEMU
# exits) finishes in time; cache the answer per host kernel and QEMU version.
kvm_works() {
  [ -w /dev/kvm ] || return 1
  local key cache
  key=$(printf '%s %s' "$(uname -r)" "$(qemu-system-x86_64 --version | head -1)" | sha256sum | cut -c1-16)
  cache=${UNIONROOT_CACHE:-$HOME/.cache/unionroot}/kvm-probe-$key
  if [ ! -f "$cache" ]; then
    mkdir -p "$(dirname "$cache")"
    if timeout 20 qemu-system-x86_64 -accel kvm -cpu host -m 256 -nographic -no-reboot -nic none \
      -kernel "$vmlinux" -append "console=ttyS0 panic=-1" </dev/null 2>&1 |
      grep -aq 'Kernel panic'; then
      echo yes >"$cache"
    else
      echo no >"$cache"
    fi
  fi
  [ "$(cat "$cache")" = yes ]
}
case $accel in
  auto) if kvm_works; then accel=kvm; else accel=tcg; fi ;;
  tcg | kvm) ;;
  *) setup_fail "--accel must be auto, tcg or kvm" ;;
esac

if [ -z "$cmdline" ]; then
  server=10.0.2.2
  [ "$net" != tap ] || server=192.168.77.1
  case $nfs/${UR_SERVED_NFS:-} in
    v4/* | external/v4) cmdline="console=$console_dev panic=-1 nfsroot=$server:/system unionroot.nfsvers=4" ;;
    *) cmdline="console=$console_dev panic=-1 nfsroot=$server:/srv/system unionroot.nfsvers=3" ;;
  esac
fi
for a in ${appends[@]+"${appends[@]}"}; do cmdline="$cmdline $a"; done

# The QEMU argv. The boot is QEMU's direct kernel boot, or with --pxe the firmware's: the iPXE
# ROM gets DHCP and TFTP from the user netdev, the kernel, initramfs and command line come over
# TFTP. --netboot is the firmware's too, with DHCP and TFTP from the --dhcp servers on the taps.
if [ "$arch" = arm64 ]; then
  # cortex-a57 rather than max: max emulates pointer authentication, which is slow under TCG.
  qemu=(qemu-system-aarch64 -M virt -cpu cortex-a57 -accel tcg)
else
  qemu=(qemu-system-x86_64 -accel "$accel")
  [ "$accel" = kvm ] && qemu+=(-cpu host)
fi
qemu+=(-m "$mem" -smp 1 -nographic -no-reboot)
user_net=user,id=n0 user_nic=$user_model,netdev=n0
if [ -n "$pxe_dir" ]; then
  qemu+=(-boot n)
  user_net+=",tftp=$pxe_dir,bootfile=pxelinux.0"
elif [ "$netboot" = 1 ] && [ "$arch" = amd64 ]; then
  qemu+=(-boot n)
elif [ "$netboot" = 1 ]; then
  # The code read-only and shared; the variable store written by the firmware, so a copy.
  cp "$AAVMF_DIR/AAVMF_VARS.fd" "$dir/AAVMF_VARS.fd"
  qemu+=(-drive "if=pflash,format=raw,readonly=on,file=$AAVMF_DIR/AAVMF_CODE.fd"
    -drive "if=pflash,format=raw,file=$dir/AAVMF_VARS.fd")
else
  qemu+=(-kernel "$vmlinux" -append "$cmdline")
  [ "$initrd" = none ] || qemu+=(-initrd "$(realpath "$initrd")")
fi
[ -z "$user_mac" ] || user_nic+=",mac=$user_mac"
case $net in
  user) qemu+=(-netdev "$user_net" -device "$user_nic") ;;
  tap) qemu+=("${nic_args[@]}") ;;
esac
# The port is in the boot's own network namespace (see --hmp).
[ ${#hmps[@]} -eq 0 ] || qemu+=(-monitor "tcp:127.0.0.1:4444,server=on,wait=off")
qemu+=(${qemu_extra[@]+"${qemu_extra[@]}"})
printf '%q ' "${qemu[@]}" >"$dir/qemu-cmd"
echo >>"$dir/qemu-cmd"

manifest_hash() { sha256sum "$1" | cut -c1-16; }
if [ -n "$export_dir" ]; then
  ur_manifest "$export_dir" >"$dir/manifest-before"
fi
# Each read-only further export: manifest-before-NAME and -after-NAME.
while read -r ename emode edir; do
  [ "$emode" = ro ] || continue
  ur_manifest "$edir" >"$dir/manifest-before-$ename"
done <<<"$exports_spec"

say "arch=$arch nfs=$nfs net=$net accel=$accel timeout=${timeout}s log=$log"
say "cmdline: $cmdline"
if [ "$net" = tap ]; then
  for i in "${!nics[@]}"; do say "nic $i: ${nics[i]}"; done
  for d in ${dhcps[@]+"${dhcps[@]}"}; do say "dhcp: $d"; done
  [ ${#dhcps[@]} -gt 0 ] || say "dhcp: no server"
fi

# The namespace side's whole input: qemu/ns-init.sh's header lists these keys, their defaults
# and meaning. Lists go as one value, an item a line.
lines() { [ $# -eq 0 ] || printf '%s\n' "$@"; }
ur_spec "$dir/spec" UR_DIR="$dir" UR_LOG="$log" UR_NFS="$nfs" UR_EXPORT="$export_dir" \
  UR_EXPORTS="$exports_spec" UR_NFS_OWNERS="$nfs_owners" UR_NFS_DELAY="$nfs_delay" \
  UR_NFS_AFTER="$nfs_after" UR_TIMEOUT="$timeout" \
  UR_UNTIL="$(lines ${untils[@]+"${untils[@]}"})" UR_FORBID="$(lines ${forbids[@]+"${forbids[@]}"})" \
  UR_NET="$net" UR_TAPS="$taps" UR_DHCP="$(lines ${dhcps[@]+"${dhcps[@]}"})" \
  UR_HMP="$(lines ${hmps[@]+"${hmps[@]}"})" UR_PCAP="$pcap"

t0=${EPOCHREALTIME/./}
# With --nfs external the server runs in our network namespace (qemu/serve.sh): share it.
ns_flags=(--mount)
[ "$nfs" = external ] || ns_flags+=(--net)
ur_ns_start "${ns_flags[@]}" -- boot "$dir/spec" "${qemu[@]}" >"$dir/ns-init.out" 2>&1

tailpid=""
# shellcheck disable=SC2317 # called by the trap
on_exit() {
  ur_ns_stop
  [ -z "$tailpid" ] || kill "$tailpid" 2>/dev/null || true
}
trap on_exit EXIT
# shellcheck disable=SC2317 # called by the trap
on_signal() {
  echo "boot: interrupted; log=$log" >&2
  on_exit
}
ur_signal_traps on_signal

if [ "$console" = 1 ]; then
  tail -n +1 -F -s 0.1 --pid="$UR_NS_UPID" "$log" 2>/dev/null &
  tailpid=$!
fi

# ns-init.sh enforces the timeout itself; this is the backstop in case it hangs.
ur_ns_wait $((timeout + 20)) || true
t1=${EPOCHREALTIME/./}
if [ -n "$tailpid" ]; then
  wait "$tailpid" 2>/dev/null || true
  tailpid=""
fi
wall=$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", d / 1e6 }')

failures=()
stop=$(cat "$dir/stop" 2>/dev/null ||
  echo "namespace setup failed: $(tail -3 "$dir/ns-init.out" | tr '\n' ' ')")

if [ -z "$UR_NS_ID" ]; then
  failures+=("could not identify the namespace's PID 1; leftovers unchecked")
else
  mapfile -t left < <(ur_ns_leftovers)
  if [ ${#left[@]} -gt 0 ]; then
    failures+=("processes left behind: ${left[*]}")
    kill -KILL "${left[@]}" 2>/dev/null || true
  fi
fi

case $stop in
  "qemu exited rc=0" | until:*) ;;
  *) failures+=("run ended by: $stop") ;;
esac
[ -s "$log" ] || failures+=("empty console log")
for re in ${expects[@]+"${expects[@]}"}; do
  grep -aqE -- "$re" "$log" 2>/dev/null || failures+=("missing: $re")
done
for re in ${forbids[@]+"${forbids[@]}"}; do
  grep -aqE -- "$re" "$log" 2>/dev/null && failures+=("forbidden: $re")
done

if [ -n "$export_dir" ]; then
  ur_manifest "$export_dir" >"$dir/manifest-after"
  hb=$(manifest_hash "$dir/manifest-before") ha=$(manifest_hash "$dir/manifest-after")
  say "export manifest: before $hb after $ha ($(wc -l <"$dir/manifest-after") entries)"
  if [ "$hb" != "$ha" ]; then
    failures+=("export changed: diff $dir/manifest-before $dir/manifest-after")
  fi
fi
while read -r ename emode edir; do
  [ "$emode" = ro ] || continue
  ur_manifest "$edir" >"$dir/manifest-after-$ename"
  hb=$(manifest_hash "$dir/manifest-before-$ename") ha=$(manifest_hash "$dir/manifest-after-$ename")
  say "export $ename manifest: before $hb after $ha"
  [ "$hb" = "$ha" ] ||
    failures+=("export $ename changed: diff $dir/manifest-before-$ename $dir/manifest-after-$ename")
done <<<"$exports_spec"

{
  echo "wall=$wall"
  echo "stop=$stop"
  echo "accel=$accel"
  echo "failures=${#failures[@]}"
} >"$dir/result"
for f in ${failures[@]+"${failures[@]}"}; do echo "boot: FAIL: $f"; done
if [ ${#failures[@]} -eq 0 ]; then
  echo "boot: PASS in ${wall}s ($stop; ${#expects[@]} expects) log=$log"
  exit 0
fi
echo "boot: FAIL in ${wall}s ($stop) log=$log"
exit 1
