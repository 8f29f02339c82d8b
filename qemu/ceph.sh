#!/usr/bin/env bash
# Two NFS heads over one CephFS (issue 10): a single-node Ceph (mon, mgr, one OSD with BlueStore
# on a file, one MDS; qemu/ceph-lib.sh) and two nfs-ganesha heads, each listening on its own
# address, both exporting the CephFS directory /home through FSAL_CEPH. Node A boots and writes
# /home/proof-home-node-a through head 1; node B boots and must read it through head 2; the
# file must be in the CephFS. Then the control: the file is removed from the CephFS directly,
# and a node C on head 2 must no longer see it.
#
#   qemu/ceph.sh [--dir RUNDIR]        (make ceph)
#
# The heads' ganesha files are `unionroot exports --heads-dir` of a generated cluster.toml
# (RUNDIR/cluster.toml: [[heads]], [ceph], /home with backend = "ceph"), and the nodes' root is
# that file's `unionroot.lower=` (both heads, `+`): the host tool's output is what boots. The
# boots run one after the other, with qemu/boot.sh --nfs external inside qemu/serve.sh's
# namespaces (--nfs none: no server of its own); the guests reach the heads' addresses through
# QEMU's user network, which connects from the namespace. Exit status: 0 pass, 1 fail, 2 setup.
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "$0")/lib.sh"

# The heads, each a machine of its own: a network namespace with a veth on the bridge brh
# (10.0.3.0/24; this namespace, where Ceph listens, is 10.0.3.1). Outside the guests'
# 10.0.2.0/24 (QEMU's user network answers ARP there only for its own addresses), so a guest
# routes to them through 10.0.2.2 and QEMU connects from this namespace, over brh.
# (Two ganesha 4.3 in one network namespace do not work, whatever Bind_addr says: the second
# dies binding its IPv6 socket, "Address already in use", and the first then answers on
# both addresses.)
HOSTS_NET=10.0.3 HEAD1=10.0.3.11 HEAD2=10.0.3.12

if [ "${1:-}" = --inside ]; then
  # In qemu/serve.sh's namespaces (fresh network, mounts and PIDs).
  run=$2
  # shellcheck source=qemu/ceph-lib.sh
  . "$UR_QEMU/ceph-lib.sh"
  gpids=()
  # shellcheck disable=SC2317 # called by the trap
  stop_all() {
    local p
    for p in ${gpids[@]+"${gpids[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done
    for p in ${gpids[@]+"${gpids[@]}"}; do wait "$p" 2>/dev/null || true; done
    gpids=()
    ceph_stop
    # The OSD's 4 GiB sparse block file: only its logs are worth keeping.
    rm -f "$run/ceph/osd/ceph-0/block"
  }
  trap stop_all EXIT
  ip link add brh type bridge forward_delay 0
  ip addr add "$HOSTS_NET.1/24" dev brh
  ip link set brh up
  t0=${EPOCHREALTIME/./}
  ceph_start "$run/ceph" "$HOSTS_NET.1"
  t_ceph=$(((${EPOCHREALTIME/./} - t0) / 1000))
  ceph_mkdir /home 1777
  echo "ceph: up in $t_ceph ms (mon, mgr, osd.0 BlueStore on a file, mds.a, CephFS cephfs)"

  # The system tree at the path the cluster file exports, read-only (VFS exports); the heads'
  # network namespaces share this mount namespace's view.
  mkdir -p /srv/system
  mount --bind "$run/tree" /srv/system
  mount -o remount,bind,ro /srv/system
  for h in head1 head2; do
    a=$HEAD1
    [ "$h" = head1 ] || a=$HEAD2
    ip netns add "$h"
    ip link add "v$h" type veth peer name eth0 netns "$h"
    ip link set "v$h" master brh up
    ip -n "$h" link set lo up
    ip -n "$h" addr add "$a/24" dev eth0
    ip -n "$h" link set eth0 up
    # The generated file, plus Graceless: these nodes boot once and have no state to reclaim,
    # and a 90 s grace period would hold their first open of /home.
    sed 's/^NFSV4 {$/NFSV4 {\n    Graceless = true;/' "$run/heads/ganesha-$h.conf" >"$run/$h.conf"
    # Also its own /var/lib/nfs (v4 recovery state) and host name (FSAL_CEPH names its CephFS
    # session after it; the MDS refuses a second session of the same name).
    # shellcheck disable=SC2016 # expanded by the inner sh
    ip netns exec "$h" unshare --mount --uts \
      sh -c 'hostname "$0" && mount -t tmpfs tmpfs /var/lib/nfs && exec "$@"' "$h" \
      ganesha.nfsd -F -f "$run/$h.conf" -L "$run/$h.log" -N NIV_EVENT -p "/run/ganesha-$h.pid" \
      >"$run/$h.out" 2>&1 &
    gpids+=("$!")
  done
  for h in head1 head2; do
    for _ in $(seq 150); do
      grep -q "NFS SERVER INITIALIZED" "$run/$h.log" 2>/dev/null && break
      sleep 0.1
    done
    grep -q "NFS SERVER INITIALIZED" "$run/$h.log" 2>/dev/null ||
      { echo "ceph.sh: ganesha of $h did not start: $(grep -E 'FATAL|CRIT :Could not' "$run/$h.log" | head -3)" >&2; exit 2; }
  done
  for a in $HEAD1 $HEAD2; do
    (: </dev/tcp/"$a"/2049) 2>/dev/null || { echo "ceph.sh: no ganesha on $a:2049" >&2; exit 2; }
  done
  echo "heads: ganesha on $HEAD1 and $HEAD2 after $(((${EPOCHREALTIME/./} - t0) / 1000)) ms"

  lower=$(grep '^unionroot.lower=' "$run/unionroot.conf")
  rc=0
  # node NAME HEAD EXPECT...: one boot whose /home comes from HEAD.
  node() {
    local name=$1 head=$2 t
    shift 2
    t=${EPOCHREALTIME/./}
    "$UR_QEMU/boot.sh" --nfs external --initrd "$run/initramfs.img" --export "$run/tree" \
      --dir "$run/boot-$name" --timeout "${CEPH_BOOT_TIMEOUT:-120}" \
      --cmdline "console=ttyS0 panic=-1 ip=::::$name::dhcp unionroot.nfsvers=4.2 $lower unionroot.mount=/home=$head:/home" \
      --expect "^PROOF home=$head:/home write=ok" "$@" || rc=1
    echo "boot $name (/home from $head): $(((${EPOCHREALTIME/./} - t) / 1000)) ms"
  }
  node node-a "$HEAD1"
  [ "$rc" = 0 ] || { ceph_diag "$run/ceph-diag.txt"; echo "ceph.sh: diagnostics in $run/ceph-diag.txt"; }
  node node-b "$HEAD2" --expect "^PROOF home-read proof-home-node-a: written by node-a at "
  for p in "${gpids[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "ceph.sh: FAIL: a ganesha head died (logs: $run/head*.log)" >&2; rc=1; }
  done
  # And the file is in the CephFS itself, not in some directory of one head.
  if got=$(ceph_cat /home/proof-home-node-a) && [[ $got == "written by node-a at "* ]]; then
    echo "cephfs: /home/proof-home-node-a: $got"
  else
    echo "ceph.sh: FAIL: /home/proof-home-node-a is not in the CephFS (got: ${got:-nothing})" >&2
    rc=1
  fi
  # The control: with the file removed from the CephFS (not through any head), a third node
  # on head 2 must no longer see it, so node B's line above came from the shared CephFS.
  if [ "$rc" = 0 ]; then
    ceph_rm /home/proof-home-node-a
    node node-c "$HEAD2" --forbid "^PROOF home-read proof-home-node-a"
  fi
  stop_all
  trap - EXIT
  exit "$rc"
fi

dir=""
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    *) echo "usage: qemu/ceph.sh [--dir RUNDIR]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || ur_die "needs root (namespaces, mounts, ganesha, ceph)"
for b in ceph-mon ceph-mgr ceph-osd ceph-mds monmaptool ganesha.nfsd uuidgen; do
  command -v "$b" >/dev/null || ur_die "$b is missing: run scripts/setup-host.sh (make setup)"
done
[ -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalceph.so ] ||
  ur_die "ganesha's FSAL_CEPH is missing: apt-get install nfs-ganesha-ceph (make setup)"
/usr/bin/python3 -c 'import cephfs' 2>/dev/null ||
  ur_die "python3-cephfs is missing (ceph-mgr brings it): run scripts/setup-host.sh"
[ -n "$dir" ] || dir=$UR_OUT/ceph/$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$dir"
run=$(realpath "$dir")
ur_bins
kdir=$(ur_kernel_dir)
ver=$(cat "$kdir/version")
ur_build_tree "$run/tree"
ur_build_initramfs "$kdir" "$UR_LINUXRC" "$run/initramfs.img"

# The cluster as the host tool sees it: the two heads, /home on the CephFS.
cat >"$run/cluster.toml" <<EOF
# Generated by qemu/ceph.sh: two heads over one CephFS.
[server]
address = "10.0.2.2"
network = "10.0.0.0"
netmask = "255.255.0.0"

[nfs]
version = "4.2"

[[heads]]
name = "head1"
address = "$HEAD1"

[[heads]]
name = "head2"
address = "$HEAD2"

[ceph]
config = "$run/ceph/ceph.conf"
filesystem = "cephfs"

[exports]
system = "/srv/system"

[[exports.mounts]]
path = "/home"
mount_point = "/home"
backend = "ceph"

[paths]
setup_tree = "/srv/system"
tftp_root = "$run/tftp"
initramfs = "$run/initramfs.img"

[kernel]
image = "$kdir/vmlinuz"
modules_dir = "$kdir/lib/modules/$ver"

[initramfs]
linuxrc = "$UR_LINUXRC"
EOF
mkdir -p "$run/heads"
"$UR_TOOL" exports -c "$run/cluster.toml" --format ganesha --heads-dir "$run/heads" --force >&2
"$UR_TOOL" conf -c "$run/cluster.toml" -o "$run/unionroot.conf" --force >&2
grep -q "^unionroot.lower=$HEAD1+$HEAD2:/srv/system$" "$run/unionroot.conf" ||
  ur_die "the host tool did not give the nodes both heads: $(grep lower "$run/unionroot.conf")"

t0=${EPOCHREALTIME/./}
rc=0
"$UR_QEMU/serve.sh" --nfs none --export "$run/tree" --dir "$run/serve" -- \
  "$UR_QEMU/ceph.sh" --inside "$run" || rc=$?
echo "ceph.sh: $([ "$rc" = 0 ] && echo PASS || echo FAIL) in $(((${EPOCHREALTIME/./} - t0) / 1000)) ms; run directory $run"
exit "$rc"
