#!/usr/bin/env bash
# PID 1 of the namespaces that qemu/boot.sh and qemu/serve.sh create; do not run it directly.
#
#   ns-init.sh boot SPEC QEMU-ARGV...   start the NFS server, run QEMU, watch its console
#   ns-init.sh serve SPEC CMD...        start the NFS server, run CMD, stop the server when CMD ends
#
# It is started by `unshare --net --mount --pid --fork --mount-proc` (for NFS=external, used
# when qemu/serve.sh already runs the server: without --net), so the server, rpcbind and QEMU
# see only loopback, every mount vanishes with the namespace, and when this script exits the
# kernel kills whatever it left behind.
#
# SPEC is the run's whole interface: a file of KEY=VALUE lines, one per key, the value quoted
# for bash (qemu/lib.sh's ur_spec writes it). The keys, their defaults and meaning are the
# UR_* assignments below; a key not among them is refused. serve mode hands CMD one more
# variable, UR_SERVED_NFS (the server's NFS mode), by which a qemu/boot.sh inside CMD knows
# that it runs next to this server.
UR_DIR=""          # run directory: every file below is written there
UR_NFS=v3          # v3: rpcbind + ganesha serving v3 and v4; v4: ganesha alone, v4 only;
                   # none: no server; external: the server of a qemu/serve.sh around us
UR_EXPORT=""       # the system tree, exported as /srv/system (v4 pseudo path /system)
UR_EXPORTS=""      # further exports, lines "NAME ro|rw DIR": /srv/NAME (v4 /NAME)
UR_NFS_OWNERS=numeric  # numeric|names: how NFSv4 owners go over the wire
UR_NFS_DELAY=0     # start ganesha this many seconds after QEMU ...
UR_NFS_AFTER=""    # ... counted from the first console line matching this ERE instead
# For boot only:
UR_LOG=""          # QEMU's console log
UR_TIMEOUT=60      # stop QEMU after this many seconds
UR_UNTIL=""        # EREs, one a line: stop QEMU once the console matches one
UR_FORBID=""       # EREs, one a line: likewise (boot.sh then fails the boot)
UR_NET=user        # user|tap|none: the guest's network (tap: bridges and taps set up here)
UR_TAPS=""         # tap: lines "TAP BRIDGE", one per QEMU NIC
UR_DHCP=""         # tap: lines, one per dnsmasq, in qemu/boot.sh's --dhcp syntax
UR_HMP=""          # lines "ERE SECONDS COMMAND...": monitor commands at port 4444 (--hmp)
UR_PCAP=0          # tap: 1 captures every bridge to net.pcap
#
# Writes into UR_DIR: ganesha.conf, ganesha.log, ganesha.out, rpcbind.log, dnsmasq-N.log,
# dnsmasq-N.out, hmp.log, net.pcap, timings and, for boot, "stop" (why QEMU ended).
set -euo pipefail

mode=$1 spec=$2
shift 2
# shellcheck source=qemu/ns-lib.sh
. "$(dirname "$0")/ns-lib.sh"
ns_load_spec ns-init "$spec"
pids=()
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
# udp_bound PORT PID: true once a UDP socket is bound to PORT in PID's network namespace.
udp_bound() {
  local hex
  hex=$(printf ':%04X ' "$1")
  grep -q "${hex}[0-9A-F:]* 07 " "/proc/$2/net/udp" 2>/dev/null
}
wait_listen() { # PORT WHAT PID [udp]
  for _ in $(seq 100); do
    if [ "${4:-tcp}" = udp ]; then udp_bound "$1" "$3" && return 0; else listening "$1" && return 0; fi
    kill -0 "$3" 2>/dev/null || { echo "ns-init: $2 died at startup; see $UR_DIR" >&2; exit 1; }
    sleep 0.05
  done
  echo "ns-init: $2 is not listening on port $1 after 5 s; see $UR_DIR" >&2
  exit 1
}

# later NAME ERE SECONDS CMD...: in the background, once the console matches ERE ("" or "-": at
# once), wait SECONDS, then run CMD (a command, exec'ed so that stopping it stops CMD, or a
# function). The timings get "NAME: console matched ERE; starting in S s" and "NAME starting
# (delay=S s)". For servers that boot after their clients and for monitor commands.
later() {
  local name=$1 re=$2 delay=$3
  shift 3
  (
    if [ -n "$re" ] && [ "$re" != - ]; then
      until grep -aqE -- "$re" "$UR_LOG" 2>/dev/null; do sleep 0.05; done
      note "$name: console matched $re; starting in $delay s"
    fi
    sleep "$delay"
    note "$name starting (delay=$delay s)"
    if declare -F "$1" >/dev/null; then "$@"; else exec "$@"; fi
  ) &
  pids=("$!" "${pids[@]}")
}

# server NAME PORT tcp|udp ERE SECONDS CMD...: runs CMD (output to NAME.out) as a server. Late
# (ERE given, or SECONDS > 0) it starts through `later`; otherwise this returns once CMD
# listens on PORT.
server() {
  local name=$1 port=$2 proto=$3 re=$4 delay=$5
  shift 5
  if [ -n "$re" ] || [ "$delay" != 0 ]; then
    later "$name" "$re" "$delay" "$@" >"$UR_DIR/$name.out" 2>&1
    return 0
  fi
  "$@" >"$UR_DIR/$name.out" 2>&1 &
  pids=("$!" "${pids[@]}")
  wait_listen "$port" "$name" "$!" "$proto"
  note "$name up"
}

# ganesha_export ID NAME ACCESS PROTOCOLS: the EXPORT block of /srv/NAME (v4 pseudo path /NAME).
ganesha_export() {
  cat <<EOC
EXPORT { Export_Id = $1; Path = /srv/$2; Pseudo = /$2; Access_Type = $3;
         Squash = No_Root_Squash; SecType = sys; Protocols = $4; Transports = TCP;
         FSAL { Name = VFS; } }
EOC
}

start_servers() {
  local protocols name edir emode id=0
  mount -t tmpfs tmpfs /run
  # Keep ganesha's state (the v4 recovery directory) and our mount point off the host's disk.
  mount -t tmpfs tmpfs /var/lib/nfs
  mount -t tmpfs tmpfs /srv
  ip link set lo up
  [ "$UR_NFS" != none ] || return 0
  protocols="3, 4"
  [ "$UR_NFS" = v3 ] || protocols="4"
  # Graceless: with the default 90 s grace period, v4 clients hang after mounting.
  # Only_Numeric_Owners: an initramfs has no idmapper, so owner names would show as unmapped ids.
  local numeric=true
  [ "$UR_NFS_OWNERS" = numeric ] || numeric=false
  cat >"$UR_DIR/ganesha.conf" <<EOC
NFS_CORE_PARAM { NFS_Port = 2049; MNT_Port = 20048; Enable_NLM = false; Enable_RQUOTA = false;
                 Enable_UDP = false; Protocols = $protocols;
                 Plugins_Dir = /usr/lib/x86_64-linux-gnu/ganesha; }
NFSV4 { Graceless = true; Only_Numeric_Owners = $numeric; }
EOC
  # The system tree first (Export_Id 1), then the further exports; each at /srv/NAME, read-only
  # at the VFS too unless rw: not even a misconfigured export can write to the tree.
  while read -r name emode edir; do
    [ -n "$name" ] || continue
    id=$((id + 1))
    mkdir -p "/srv/$name"
    mount --bind "$edir" "/srv/$name"
    [ "$emode" = rw ] || mount -o remount,bind,ro "/srv/$name"
    ganesha_export "$id" "$name" "${emode^^}" "$protocols" >>"$UR_DIR/ganesha.conf"
  done <<<"system ro $UR_EXPORT"$'\n'"$UR_EXPORTS"
  if [ "$UR_NFS" = v3 ]; then
    # ganesha registers its v3 services with rpcbind and dies without it.
    rpcbind -f >"$UR_DIR/rpcbind.log" 2>&1 &
    pids=("$!" ${pids[@]+"${pids[@]}"})
    wait_listen 111 rpcbind "$!"
  fi
  # boot.sh --nfs-delay/--nfs-after: a server that boots after its clients.
  server ganesha 2049 tcp "$UR_NFS_AFTER" "$UR_NFS_DELAY" ganesha.nfsd -F \
    -f "$UR_DIR/ganesha.conf" -L "$UR_DIR/ganesha.log" -N NIV_EVENT -p /run/ganesha.pid
}

# The guest's segments for UR_NET=tap. Bridge brN is 192.168.(77+N).0/24 with the namespace at
# .1 (the router, and where ganesha listens); each QEMU NIC is a tap on one bridge. All of it
# exists only in this network namespace. Forward delay 0 and no STP: a port forwards at once
# (the STP case is simulated by a late DHCP server instead).
subnet() { echo "192.168.$((77 + ${1#br}))"; }
start_net() {
  local tap br
  while read -r tap br; do
    [ -n "$tap" ] || continue
    # Not /sys/class/net: that sysfs was mounted in the host's network namespace.
    if ! ip link show dev "$br" >/dev/null 2>&1; then
      ip link add "$br" type bridge forward_delay 0 stp_state 0
      ip addr add "$(subnet "$br").1/24" dev "$br"
      ip link set "$br" up
    fi
    ip tuntap add dev "$tap" mode tap
    ip link set "$tap" master "$br"
    ip link set "$tap" up
  done <<<"$UR_TAPS"
}

# start_dhcp N SPEC...: dnsmasq number N (0-based), as the words of one --dhcp spec say; it
# hands out .(100+50N) to .(149+50N) of its bridge's subnet, so servers never overlap. With
# delay=S it starts S seconds from now (with after=ERE: from the first console line matching
# ERE), in the background; otherwise this returns once it is bound to port 67. With host=IP it
# runs as a separate machine on the segment: in a network namespace of its own, joined to the
# bridge by a veth pair.
# shellcheck disable=SC2054 # the commas belong to dnsmasq's option syntax
start_dhcp() {
  local n=$1 br=$2 w host="" delay=0 after="" iface net lo
  shift 2
  net=$(subnet "$br") iface=$br lo=$((100 + 50 * n))
  local args=(dnsmasq -k --conf-file=/dev/null --user=root --port=0 --bind-interfaces
    --no-resolv --no-hosts --no-ping --log-dhcp --log-facility="$UR_DIR/dnsmasq-$n.log"
    --pid-file="/run/dnsmasq-$n.pid" --dhcp-leasefile="/run/dnsmasq-$n.leases"
    --dhcp-range="$net.$lo,$net.$((lo + 49)),255.255.255.0,1h"
    --dhcp-option=option:router,"$net.1")
  for w in "$@"; do
    case $w in
      root-path=*) args+=(--dhcp-option=option:root-path,"${w#*=}") ;;
      dns=*) args+=(--dhcp-option=option:dns-server,"${w#*=}") ;;
      domain=*) args+=(--dhcp-option=option:domain-name,"${w#*=}") ;;
      reply-delay=*) args+=(--dhcp-reply-delay="${w#*=}") ;;
      arg=*) args+=("${w#*=}") ;;
      delay=*) delay=${w#*=} ;;
      after=*) after=${w#*=} ;;
      host=*) host=${w#*=} ;;
      *) echo "ns-init: bad --dhcp word $w" >&2; exit 1 ;;
    esac
  done
  if [ -n "$host" ]; then
    # `ip netns` keeps its handle under /run/netns, our tmpfs: it goes with this namespace.
    ip netns add "dhcp$n"
    ip link add "vdhcp$n" type veth peer name eth0 netns "dhcp$n"
    ip link set "vdhcp$n" master "$br"
    ip link set "vdhcp$n" up
    ip -n "dhcp$n" addr add "$host/24" dev eth0
    ip -n "dhcp$n" link set eth0 up
    args=(ip netns exec "dhcp$n" "${args[@]}" --interface=eth0)
  else
    args+=(--interface="$iface")
  fi
  server "dnsmasq-$n" 67 udp "$after" "$delay" "${args[@]}"
}

# hmp_send COMMAND...: sends COMMAND to QEMU's monitor on 127.0.0.1:4444 (bash's /dev/tcp; QEMU
# may not listen yet when this starts, so keep trying to connect).
hmp_send() {
  local line banner
  for _ in $(seq 100); do
    if exec 3<>/dev/tcp/127.0.0.1/4444; then
      # A command sent before the monitor's banner can be lost: wait for the banner. Then
      # the answer goes to hmp.log; reading it also lets the monitor take the command
      # before the connection closes.
      banner=""
      IFS= read -r -t 10 banner <&3 || true
      if [[ $banner == *monitor* ]]; then
        echo "$*" >&3
        { echo "$banner"
          while IFS= read -r -t 0.5 line <&3; do echo "$line"; done
        } | sed 's/\x1b\[[0-9]*[A-Z]//g' | tr -d '\r' >>"$UR_DIR/hmp.log" || true
        exec 3>&-
        note "hmp: $*"
        return 0
      fi
      exec 3>&-
    fi 2>/dev/null
    sleep 0.05
  done
  note "hmp: could not reach the monitor for: $*"
}

# late SPEC...: true if this --dhcp spec starts late (after=ERE, or delay=S with S > 0).
late() {
  local w
  for w in "$@"; do
    [[ $w != after=* ]] || return 0
    [[ $w != delay=* ]] || [ "${w#*=}" = 0 ] || return 0
  done
  return 1
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

# The tap network and the DHCP servers that answer at once come up before QEMU; late ones
# (delay=, after=) count from QEMU's start, so they are started after it.
dhcp_specs=()
if [ "$UR_NET" = tap ]; then
  start_net
  [ -z "$UR_DHCP" ] || mapfile -t dhcp_specs <<<"$UR_DHCP"
  for n in "${!dhcp_specs[@]}"; do
    # shellcheck disable=SC2086 # a spec is whitespace-separated words
    late ${dhcp_specs[n]} || start_dhcp "$n" ${dhcp_specs[n]}
  done
  if [ "$UR_PCAP" = 1 ]; then
    # Every bridge port's frames, guest NICs and the DHCP servers' veths alike.
    tcpdump -i any -n -U -w "$UR_DIR/net.pcap" 'not port 2049' >"$UR_DIR/tcpdump.out" 2>&1 &
    pids=("$!" "${pids[@]}")
    for _ in $(seq 100); do grep -q listening "$UR_DIR/tcpdump.out" && break; sleep 0.05; done
  fi
  note "network up (taps: $(echo "$UR_TAPS" | paste -sd' ' | sed 's/ *$//'))"
fi

"$@" </dev/null >"$UR_LOG" 2>&1 &
qemu=$!
pids=("$qemu" "${pids[@]}")
for n in "${!dhcp_specs[@]}"; do
  # shellcheck disable=SC2086
  ! late ${dhcp_specs[n]} || start_dhcp "$n" ${dhcp_specs[n]}
done
while read -r -a words; do
  [ ${#words[@]} -eq 0 ] || later hmp "${words[0]}" "${words[1]}" hmp_send "${words[@]:2}"
done <<<"$UR_HMP"
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
