# shellcheck shell=bash
# A single-node Ceph (issue 10) from Debian's packages, for qemu/ceph.sh: one mon, one mgr, one
# OSD (BlueStore on a sparse file), one MDS and a CephFS named "cephfs". Sourced inside the
# network namespace of qemu/serve.sh, so every daemon listens only inside it and dies with it.
#
# Auth is "none": the daemons and ganesha share a network that nothing else reaches, and
# cephx would add a keyring per daemon without testing anything of ours. Replication is 1 (one
# OSD). Everything lives below CEPH_DIR: ceph.conf, the daemons' data, logs and sockets.

# ceph_conf DIR FSID ADDR: writes DIR/ceph.conf; every daemon listens on ADDR.
ceph_conf() {
  local d=$1 fsid=$2 addr=$3
  cat >"$d/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:$addr:3300,v1:$addr:6789]
public addr = $addr
cluster addr = $addr
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 1
mon data avail crit = 0
run dir = $d/run
admin socket = $d/run/\$cluster-\$name.\$pid.asok
log file = $d/log/\$cluster-\$name.log
pid file = $d/run/\$cluster-\$name.pid
mon data = $d/mon/\$cluster-\$id
mgr data = $d/mgr/\$cluster-\$id
osd data = $d/osd/\$cluster-\$id
mds data = $d/mds/\$cluster-\$id
keyring = $d/keyring
# The harness's namespace has no syslog and a small /run.
log to stderr = false
err to stderr = true

[osd]
osd objectstore = bluestore
# BlueStore on a regular file: created sparse at mkfs, opened with O_DIRECT (not on tmpfs).
bluestore block create = true
bluestore block size = 4294967296
bluestore fsck on mkfs = false
bluestore fsck on mount = false
osd memory target = 939524096
osd max object name len = 460
osd max object namespace len = 64

[mds]
mds data = $d/mds/\$cluster-\$id
EOF
}

# ceph_q ARGS...: the ceph CLI against this cluster, bounded in time.
ceph_q() { timeout 30 ceph -c "$CEPH_DIR/ceph.conf" "$@"; }

# ceph_wait WHAT SECONDS CMD...: retries CMD every 0.5 s until it succeeds.
ceph_wait() {
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 2; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "ceph: $what not ready after ${secs}s (logs: $CEPH_DIR/log)" >&2
  return 1
}

# ceph_start DIR ADDR: creates and starts the cluster in DIR (emptied first), listening on
# ADDR, and a CephFS "cephfs"; sets CEPH_DIR and CEPH_PIDS. Prints a timing line per step.
ceph_start() {
  CEPH_DIR=$1 CEPH_PIDS=()
  local d=$1 addr=$2 fsid osd_uuid t0=${EPOCHREALTIME/./}
  step() { echo "ceph: +$(((${EPOCHREALTIME/./} - t0) / 1000)) ms $*" >&2; }
  rm -rf "$d"
  mkdir -p "$d"/{run,log,mon/ceph-a,mgr/ceph-x,osd/ceph-0,mds/ceph-a}
  fsid=$(uuidgen) osd_uuid=$(uuidgen)
  ceph_conf "$d" "$fsid" "$addr"
  monmaptool --create --fsid "$fsid" --addv a "[v2:$addr:3300,v1:$addr:6789]" \
    "$d/monmap" >/dev/null
  ceph-mon -c "$d/ceph.conf" --mkfs -i a --monmap "$d/monmap" 2>"$d/log/mkfs-mon.err" ||
    { cat "$d/log/mkfs-mon.err" >&2; return 1; }
  ceph-mon -c "$d/ceph.conf" -i a -f 2>"$d/log/mon.err" &
  CEPH_PIDS+=("$!")
  ceph_wait mon 30 ceph_q mon stat || return 1
  step "mon up"
  ceph-mgr -c "$d/ceph.conf" -i x -f 2>"$d/log/mgr.err" &
  CEPH_PIDS+=("$!")
  [ "$(ceph_q osd new "$osd_uuid")" = 0 ] || { echo "ceph: osd new did not give id 0" >&2; return 1; }
  ceph-osd -c "$d/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$d/log/mkfs-osd.out" 2>&1 ||
    { tail -n 20 "$d/log/mkfs-osd.out" >&2; return 1; }
  step "osd mkfs done"
  ceph-osd -c "$d/ceph.conf" -i 0 -f 2>"$d/log/osd.err" &
  CEPH_PIDS+=("$!")
  ceph-mds -c "$d/ceph.conf" -i a -f 2>"$d/log/mds.err" &
  CEPH_PIDS+=("$!")
  if ! { ceph_q osd pool create cephfs_metadata 8 && ceph_q osd pool create cephfs_data 8 &&
    ceph_q fs new cephfs cephfs_metadata cephfs_data; } >"$d/log/fs-new.out" 2>&1; then
    echo "ceph: creating the CephFS failed: $(tail -n 3 "$d/log/fs-new.out")" >&2
    return 1
  fi
  ceph_wait "osd 0 up" 60 sh -c "ceph -c '$d/ceph.conf' osd stat | grep -q '1 up'" || return 1
  step "osd up"
  ceph_wait "an active MDS" 90 sh -c "ceph -c '$d/ceph.conf' mds stat | grep -q 'up:active'" ||
    return 1
  step "mds active"
}

# ceph_mkdir PATH MODE: creates PATH in the CephFS through libcephfs (python3-cephfs), as a
# client of its own: the kernel's ceph module is not needed on the host.
ceph_mkdir() {
  /usr/bin/python3 - "$CEPH_DIR/ceph.conf" "$1" "$2" <<'EOF'
import sys, cephfs
fs = cephfs.LibCephFS(conffile=sys.argv[1])
fs.mount()
try:
    fs.mkdir(sys.argv[2], int(sys.argv[3], 8))
except cephfs.ObjectExists:
    pass
fs.chmod(sys.argv[2], int(sys.argv[3], 8))
fs.unmount()
fs.shutdown()
EOF
}

# ceph_cat PATH: prints a file of the CephFS, read through libcephfs.
ceph_cat() {
  /usr/bin/python3 - "$CEPH_DIR/ceph.conf" "$1" <<'EOF'
import sys, cephfs
fs = cephfs.LibCephFS(conffile=sys.argv[1])
fs.mount()
fd = fs.open(sys.argv[2], "r")
sys.stdout.write(fs.read(fd, 0, 65536).decode())
fs.close(fd)
fs.unmount()
fs.shutdown()
EOF
}

# ceph_rm PATH: removes a file of the CephFS through libcephfs.
ceph_rm() {
  /usr/bin/python3 - "$CEPH_DIR/ceph.conf" "$1" <<'EOF'
import sys, cephfs
fs = cephfs.LibCephFS(conffile=sys.argv[1])
fs.mount()
fs.unlink(sys.argv[2])
fs.unmount()
fs.shutdown()
EOF
}

# ceph_diag FILE: what the MDS and every client say about sessions and capabilities, for a
# failed run.
ceph_diag() {
  local a
  {
    echo "== ceph health detail"; ceph_q health detail
    echo "== mds session ls"; ceph_q tell mds.a session ls
    echo "== mds ops"; ceph_q tell mds.a ops
    for a in "$CEPH_DIR"/run/ceph-client.*.asok; do
      [ -S "$a" ] || continue
      echo "== $a status"; timeout 10 ceph --admin-daemon "$a" status
      echo "== $a mds_requests"; timeout 10 ceph --admin-daemon "$a" mds_requests
      echo "== $a dump_cache"; timeout 10 ceph --admin-daemon "$a" dump_cache
    done
  } >"$1" 2>&1
}

# ceph_stop: stops the daemons, newest first, and waits for them.
ceph_stop() {
  local i
  for ((i = ${#CEPH_PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${CEPH_PIDS[i]}" 2>/dev/null || true
    wait "${CEPH_PIDS[i]}" 2>/dev/null || true
  done
  CEPH_PIDS=()
}
