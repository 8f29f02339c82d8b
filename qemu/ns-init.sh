#!/usr/bin/env bash
# PID 1 of the namespaces that qemu/boot.sh and qemu/serve.sh create; do not run it directly.
#
#   ns-init.sh boot QEMU-ARGV...   start the NFS server (per UR_NFS), run QEMU, watch its console
#   ns-init.sh serve CMD...        start the NFS server, run CMD, stop the server when CMD ends
#
# It is started by `unshare --net --mount --pid --fork --mount-proc` (for UR_NFS=external, used
# when qemu/serve.sh already runs the server: without --net), so the server, rpcbind and QEMU
# see only loopback, every mount vanishes with the namespace, and when this script exits the
# kernel kills whatever it left behind.
#
# Environment (set by the caller): UR_DIR (run directory), UR_NFS (v3|v4|none|external),
# UR_EXPORT; for boot also UR_LOG (console log), UR_TIMEOUT (s), UR_UNTIL and UR_FORBID
# (newline-separated EREs). Writes into UR_DIR: ganesha.conf, ganesha.log, ganesha.out,
# rpcbind.log, timings and, for boot, "stop" (why QEMU ended).
set -euo pipefail

mode=$1
shift
pids=()
t_start=${EPOCHREALTIME/./}
# note WHAT: a timing line in the run directory's "timings".
note() { echo "+$(((${EPOCHREALTIME/./} - t_start) / 1000)) ms: $*" >>"$UR_DIR/timings"; }
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  local p
  trap - EXIT TERM INT HUP
  # Newest first, each gone before the next is asked: QEMU or CMD (holding the NFS client's
  # connection), dnsmasq, ganesha, then rpcbind. Stopping rpcbind together with ganesha made
  # ganesha's unregistering (rpcb_unset) wait out a 3 s RPC timeout.
  for p in ${pids[@]+"${pids[@]}"}; do
    kill -TERM "$p" 2>/dev/null || continue
    for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  note "stopped"
}
# As PID 1 of a namespace we only receive the signals we handle: handle them by cleaning up.
trap cleanup EXIT
trap '[ "$mode" = boot ] && echo "signal" >"$UR_DIR/stop"; exit 143' TERM INT HUP

# listening PORT: true once a TCP socket listens on PORT in this network namespace.
listening() {
  local hex
  hex=$(printf ':%04X ' "$1")
  grep -q "${hex}[0-9A-F:]* 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
wait_listen() { # PORT WHAT PID
  for _ in $(seq 100); do
    listening "$1" && return 0
    kill -0 "$3" 2>/dev/null || { echo "ns-init: $2 died at startup; see $UR_DIR" >&2; exit 1; }
    sleep 0.05
  done
  echo "ns-init: $2 is not listening on port $1 after 5 s; see $UR_DIR" >&2
  exit 1
}

start_servers() {
  local protocols
  mount -t tmpfs tmpfs /run
  # Keep ganesha's state (the v4 recovery directory) and our mount point off the host's disk.
  mount -t tmpfs tmpfs /var/lib/nfs
  mount -t tmpfs tmpfs /srv
  ip link set lo up
  [ "$UR_NFS" != none ] || return 0
  mkdir -p /srv/system
  mount --bind "$UR_EXPORT" /srv/system
  # Read-only at the VFS too: not even a misconfigured export can write to the tree.
  mount -o remount,bind,ro /srv/system
  # Further exports (boot.sh --export NAME=DIR[:rw]), lines "NAME DIR ro|rw" in UR_EXPORTS:
  # each at /srv/NAME, read-only at the VFS too unless rw.
  local name edir emode id=1
  while read -r name edir emode; do
    [ -n "$name" ] || continue
    mkdir -p "/srv/$name"
    mount --bind "$edir" "/srv/$name"
    [ "$emode" = rw ] || mount -o remount,bind,ro "/srv/$name"
  done <<<"${UR_EXPORTS:-}"
  if [ "$UR_NFS" = v3 ]; then
    # ganesha registers its v3 services with rpcbind and dies without it.
    protocols="3, 4"
    rpcbind -f >"$UR_DIR/rpcbind.log" 2>&1 &
    pids=("$!" ${pids[@]+"${pids[@]}"})
    wait_listen 111 rpcbind "$!"
  else
    protocols="4"
  fi
  # Graceless: with the default 90 s grace period, v4 clients hang after mounting.
  cat >"$UR_DIR/ganesha.conf" <<EOF
NFS_CORE_PARAM { NFS_Port = 2049; MNT_Port = 20048; Enable_NLM = false; Enable_RQUOTA = false;
                 Enable_UDP = false; Protocols = $protocols;
                 Plugins_Dir = /usr/lib/x86_64-linux-gnu/ganesha; }
NFSV4 { Graceless = true; }
EXPORT { Export_Id = 1; Path = /srv/system; Pseudo = /system; Access_Type = RO;
         Squash = No_Root_Squash; SecType = sys; Protocols = $protocols; Transports = TCP;
         FSAL { Name = VFS; } }
EOF
  # The further exports: v3 path /srv/NAME, v4 pseudo path /NAME.
  while read -r name edir emode; do
    [ -n "$name" ] || continue
    id=$((id + 1))
    cat <<EOF
EXPORT { Export_Id = $id; Path = /srv/$name; Pseudo = /$name; Access_Type = ${emode^^};
         Squash = No_Root_Squash; SecType = sys; Protocols = $protocols; Transports = TCP;
         FSAL { Name = VFS; } }
EOF
  done <<<"${UR_EXPORTS:-}" >>"$UR_DIR/ganesha.conf"
  # boot.sh --nfs-delay S: ganesha starts S seconds from now (QEMU starts a few ms later), in
  # the background, as a server that boots after its clients.
  if [ "${UR_NFS_DELAY:-0}" != 0 ]; then
    (
      sleep "$UR_NFS_DELAY"
      note "ganesha starting (delay=$UR_NFS_DELAY s)"
      exec ganesha.nfsd -F -f "$UR_DIR/ganesha.conf" -L "$UR_DIR/ganesha.log" -N NIV_EVENT \
        -p /run/ganesha.pid
    ) >"$UR_DIR/ganesha.out" 2>&1 &
    pids=("$!" "${pids[@]}")
    return 0
  fi
  ganesha.nfsd -F -f "$UR_DIR/ganesha.conf" -L "$UR_DIR/ganesha.log" -N NIV_EVENT \
    -p /run/ganesha.pid >"$UR_DIR/ganesha.out" 2>&1 &
  pids=("$!" "${pids[@]}")
  wait_listen 2049 ganesha "$!"
}

case $UR_NFS in
  v3 | v4 | none) start_servers ;;
  external) ;;
  *) echo "ns-init: bad UR_NFS=$UR_NFS" >&2; exit 1 ;;
esac

note "servers up ($UR_NFS)"

if [ "$mode" = serve ]; then
  export UR_SERVED_NFS=$UR_NFS
  "$@" &
  pids=("$!" "${pids[@]}")
  rc=0
  wait "$!" || rc=$?
  exit "$rc"
fi

"$@" </dev/null >"$UR_LOG" 2>&1 &
qemu=$!
pids=("$qemu" "${pids[@]}")

# Watch the console until QEMU exits, a stop pattern shows up, or time runs out.
mapfile -t until_re <<<"$UR_UNTIL"
mapfile -t forbid_re <<<"$UR_FORBID"
deadline=$((${EPOCHREALTIME/./} + UR_TIMEOUT * 1000000))
seen() { [ -n "$1" ] && grep -aqE -- "$1" "$UR_LOG"; }
stop=""
while kill -0 "$qemu" 2>/dev/null; do
  for re in "${until_re[@]}"; do seen "$re" && stop="until: $re"; done
  for re in "${forbid_re[@]}"; do seen "$re" && stop="forbidden: $re"; done
  [ "${EPOCHREALTIME/./}" -ge "$deadline" ] && stop="timeout after ${UR_TIMEOUT} s"
  [ -n "$stop" ] && break
  sleep 0.05
done
if [ -z "$stop" ]; then
  rc=0
  wait "$qemu" || rc=$?
  stop="qemu exited rc=$rc"
fi
echo "$stop" >"$UR_DIR/stop"
note "$stop"
