#!/usr/bin/env bash
# PID 1 of one boot storm's namespaces; qemu/storm.sh starts it (`ur_ns_start --net --mount`),
# do not run it directly.
#
#   storm-ns.sh SPEC
#
# One bridge br0 (192.168.77.0/24, this namespace at .1: router and the one dnsmasq, leasing
# .100-.199), UR_HEADS NFS heads and UR_NODES QEMU nodes on it, all started at once. Head K
# (1-based) is a machine of its own on the segment: a network namespace `headK` at
# 192.168.77.(10+K), joined to the bridge by a veth, running its own ganesha (NFSv4 only, so no
# rpcbind, whose socket under /run the heads would otherwise share) that exports UR_EXPORT
# read-only as /system. Node I (1-based) is tap I with MAC 52:54:00:77:01:<I in hex>; its
# console, command line and outcome are in UR_DIR/node-I/.
#
# SPEC holds KEY=VALUE lines (qemu/lib.sh's ur_spec); the keys, defaults and meaning:
UR_DIR=""          # run directory
UR_EXPORT=""       # the system tree every head exports
UR_HEADS=1         # number of heads
UR_NODES=1         # number of nodes; node-I/cmdline holds each one's kernel command line
UR_KERNEL=""       # the vmlinux to boot
UR_INITRD=""       # the initramfs every node boots
UR_ACCEL=tcg       # QEMU accelerator
UR_MEM=256         # MB per node
UR_TIMEOUT=120     # seconds for the whole storm; nodes still running then are stopped
UR_KILL=""         # a head number to kill (ganesha SIGKILLed and its link cut) ...
UR_KILL_AFTER=""   # ... as soon as any node's console matches this ERE
UR_FATAL=""        # an ERE: a node whose console matches it has failed, and is stopped at once
#
# Writes: head-K.conf, head-K.log (ganesha), head-K.bytes (its link's tx and rx bytes at the
# end), head-K.pcap (every NFS packet head K saw, full length, from before the first node to
# after the last; qemu/storm-report.py counts each node's calls in it) and head-K.tcpdump
# (tcpdump's messages: its "packets dropped by kernel" count), head-K.tcp (head K's TCP
# counters at the end, `nstat -asz`: retransmissions, timeouts), vhead-K.stats (`ip -s link` of
# head K's bridge port), dnsmasq.log, timings (host times, ms from the start), and per node:
# console.log, mac, qemu-cmd, qemu.pid, start and end (host µs since the epoch), stat-end (and
# UR_DIR/stat-start: /proc/stat's cpu line as the nodes start and as each QEMU exits), rc (QEMU's exit
# status), cpu (QEMU's user and system CPU seconds, from bash's `times`), stop (why it ended:
# "exited rc=N", "fatal: LINE", "timeout"), tap.stats (`ip -s link` of its tap: drops when the
# tap's queue overflowed while its QEMU was descheduled).
set -euo pipefail

spec=$1
# shellcheck source=qemu/ns-lib.sh
. "$(dirname "$0")/ns-lib.sh"
ns_load_spec storm-ns "$spec"
pids=()
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  local p
  trap - EXIT TERM INT HUP
  for p in ${pids[@]+"${pids[@]}"}; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  note "stopped"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

# node_mac I: node I's MAC address (also in its run directory's "mac", for the report).
node_mac() { printf '52:54:00:77:01:%02x\n' "$1"; }

# listening NETNS PORT: a TCP socket listens on PORT in that network namespace.
listening() {
  local hex
  hex=$(printf ':%04X ' "$2")
  ip netns exec "$1" cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q "${hex}[0-9A-F:]* 0A "
}

mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib/nfs
mount -t tmpfs tmpfs /srv
ip link set lo up
mkdir -p /srv/system
mount --bind "$UR_EXPORT" /srv/system
mount -o remount,bind,ro /srv/system

ip link add br0 type bridge forward_delay 0 stp_state 0
ip addr add 192.168.77.1/24 dev br0
ip link set br0 up

head_pids=()
for k in $(seq "$UR_HEADS"); do
  addr=192.168.77.$((10 + k))
  ip netns add "head$k"
  ip link add "vhead$k" type veth peer name eth0 netns "head$k"
  ip link set "vhead$k" master br0
  ip link set "vhead$k" up
  ip -n "head$k" link set lo up
  ip -n "head$k" addr add "$addr/24" dev eth0
  ip -n "head$k" link set eth0 up
  # Graceless: a v4 client would otherwise wait out the 90 s grace period after mounting.
  cat >"$UR_DIR/head-$k.conf" <<EOC
NFS_CORE_PARAM { NFS_Port = 2049; Enable_NLM = false; Enable_RQUOTA = false;
                 Enable_UDP = false; Protocols = 4;
                 Plugins_Dir = /usr/lib/x86_64-linux-gnu/ganesha; }
NFSV4 { Graceless = true; Only_Numeric_Owners = true; }
EXPORT { Export_Id = 1; Path = /srv/system; Pseudo = /system; Access_Type = RO;
         Squash = No_Root_Squash; SecType = sys; Protocols = 4; Transports = TCP;
         FSAL { Name = VFS; } }
EOC
  # `ip netns exec` gives the command a mount namespace of its own: each head gets its own
  # /var/lib/nfs (ganesha's v4 recovery state) without touching the others'. The shell execs
  # ganesha, so $! is ganesha's PID.
  ip netns exec "head$k" sh -c 'mount -t tmpfs tmpfs /var/lib/nfs && exec "$@"' sh \
    ganesha.nfsd -F -f "$UR_DIR/head-$k.conf" -L "$UR_DIR/head-$k.log" -N NIV_EVENT \
    -p "/run/ganesha-$k.pid" >"$UR_DIR/head-$k.out" 2>&1 &
  head_pids+=("$!")
  pids=("$!" "${pids[@]}")
done
for k in $(seq "$UR_HEADS"); do
  for _ in $(seq 200); do listening "head$k" 2049 && break; sleep 0.05; done
  listening "head$k" 2049 || { echo "storm-ns: head $k's ganesha is not listening; see $UR_DIR/head-$k.log" >&2; exit 1; }
  note "head $k up at 192.168.77.$((10 + k))"
done

# One capture per head, in its namespace, before any node starts. -s 0: whole packets, which
# rpcstat.py needs to follow the RPC records; --immediate-mode -U: each packet reaches the file
# as it comes, none waits in a buffer when tcpdump is stopped; -B: 16 MB against drops while
# the host is starved (a whole storm moves about 20 MB). A tcpdump that fails to start leaves
# no pcap (storm.sh checks that tcpdump exists; the report names a missing capture) but never
# holds the storm up.
tcpdump_pids=()
for k in $(seq "$UR_HEADS"); do
  ip netns exec "head$k" tcpdump -i eth0 -n -s 0 -B 16384 --immediate-mode -U \
    -w "$UR_DIR/head-$k.pcap" 'tcp port 2049' >"$UR_DIR/head-$k.tcpdump" 2>&1 &
  tcpdump_pids+=("$!")
  pids=("$!" "${pids[@]}")
done
for k in $(seq "$UR_HEADS"); do
  for _ in $(seq 100); do
    grep -q listening "$UR_DIR/head-$k.tcpdump" && break
    kill -0 "${tcpdump_pids[k - 1]}" 2>/dev/null || break
    sleep 0.05
  done
  if grep -q listening "$UR_DIR/head-$k.tcpdump"; then
    note "head $k: tcpdump capturing"
  else
    note "head $k: tcpdump did not start; see head-$k.tcpdump"
  fi
done

# shellcheck disable=SC2054 # the commas belong to dnsmasq's option syntax
dnsmasq -k --conf-file=/dev/null --user=root --port=0 --bind-interfaces --interface=br0 \
  --no-resolv --no-hosts --no-ping --log-dhcp --log-facility="$UR_DIR/dnsmasq.log" \
  --pid-file=/run/dnsmasq.pid --dhcp-leasefile=/run/dnsmasq.leases \
  --dhcp-range=192.168.77.100,192.168.77.199,255.255.255.0,1h \
  --dhcp-option=option:router,192.168.77.1 >"$UR_DIR/dnsmasq.out" 2>&1 &
pids=("$!" "${pids[@]}")
for _ in $(seq 100); do grep -q ':0043 ' "/proc/$!/net/udp" 2>/dev/null && break; sleep 0.05; done
note "dnsmasq up"

for i in $(seq "$UR_NODES"); do
  ip tuntap add dev "tap$i" mode tap
  ip link set "tap$i" master br0
  ip link set "tap$i" up
done
note "network up"

# The host's CPU line of /proc/stat (not namespaced) as the nodes start, and as each one's QEMU
# exits (node-I/stat-end): where the cores' time went during the storm (guests, other work,
# idle, stolen by the hypervisor this machine runs under).
grep '^cpu ' /proc/stat >"$UR_DIR/stat-start"
for i in $(seq "$UR_NODES"); do
  d=$UR_DIR/node-$i
  qemu=(qemu-system-x86_64 -accel "$UR_ACCEL" -m "$UR_MEM" -smp 1 -nographic -no-reboot
    -kernel "$UR_KERNEL" -initrd "$UR_INITRD" -append "$(cat "$d/cmdline")"
    -netdev "tap,id=n0,ifname=tap$i,script=no,downscript=no"
    -device "virtio-net-pci,netdev=n0,mac=$(node_mac "$i")")
  printf '%q ' "${qemu[@]}" >"$d/qemu-cmd"
  node_mac "$i" >"$d/mac"
  # The subshell's `times` reports QEMU's CPU (its child's, second line) once QEMU has exited.
  (
    echo "${EPOCHREALTIME/./}" >"$d/start"
    rc=0
    # SCHED_BATCH (every kind alike): a TCG guest is a CPU-bound process, and with 4 guests
    # per core the default policy's short slices made each boot burn more CPU (3.9-4.1 s
    # against 3.5 s alone); batch slices cut that to 3.6-3.8 s (docs/scale.md).
    chrt -b 0 "${qemu[@]}" </dev/null >"$d/console.log" 2>&1 &
    echo "$!" >"$d/qemu.pid"
    wait "$!" || rc=$?
    echo "${EPOCHREALTIME/./}" >"$d/end"
    grep '^cpu ' /proc/stat >"$d/stat-end"
    echo "$rc" >"$d/rc"
    # Not `times | ...`: the pipeline's subshell has no children of its own.
    times >"$d/times"
    sed -n 2p "$d/times" >"$d/cpu"
  ) &
  pids=("$!" "${pids[@]}")
done
note "$UR_NODES nodes started"

if [ -n "$UR_KILL" ]; then
  (
    # No `cat | grep -q`: under pipefail, cat's SIGPIPE when grep stops early fails the test.
    until grep -aqE -- "$UR_KILL_AFTER" "$UR_DIR"/node-*/console.log 2>/dev/null; do
      sleep 0.05
    done
    kill -KILL "${head_pids[UR_KILL - 1]}" 2>/dev/null || true
    # A dead machine also stops answering ARP and TCP: cut its link, so that nodes see a
    # timeout rather than a polite refusal.
    ip link set "vhead$UR_KILL" down
    note "head $UR_KILL killed (ganesha SIGKILL, link down) after a console matched $UR_KILL_AFTER"
  ) &
  pids=("$!" "${pids[@]}")
fi

deadline=$((ns_t_start + UR_TIMEOUT * 1000000))
# stop_node I WHY: node I ends now (its QEMU killed) for WHY.
stop_node() {
  echo "$2" >"$UR_DIR/node-$1/stop"
  kill -KILL "$(cat "$UR_DIR/node-$1/qemu.pid")" 2>/dev/null || true
  note "node $1: ${2%%:*}"
}
# The watch costs the guests CPU, which the storm's floor does not count: one grep over all
# running consoles per round (not one per node), and rounds of 0.5 s. Time-to-all does not
# depend on this period: each node's end is written by its own subshell when QEMU exits.
while :; do
  running=() consoles=()
  for ((i = 1; i <= UR_NODES; i++)); do
    d=$UR_DIR/node-$i
    [ -e "$d/stop" ] && continue
    if [ -e "$d/rc" ]; then
      echo "exited rc=$(cat "$d/rc")" >"$d/stop"
      note "node $i: $(cat "$d/stop")"
      continue
    fi
    running+=("$i")
    consoles+=("$d/console.log")
  done
  [ ${#running[@]} -gt 0 ] || break
  # A node that failed waits forever (its initramfs has no shell): stop it at once.
  while IFS= read -r f; do
    i=${f%/console.log}
    i=${i##*/node-}
    stop_node "$i" "fatal: $(grep -aE -m1 -- "$UR_FATAL" "$f")"
  done < <([ -z "$UR_FATAL" ] || grep -alE -- "$UR_FATAL" "${consoles[@]}" 2>/dev/null || true)
  if [ "${EPOCHREALTIME/./}" -ge "$deadline" ]; then
    for i in "${running[@]}"; do
      [ -e "$UR_DIR/node-$i/stop" ] || stop_node "$i" "timeout after $UR_TIMEOUT s"
    done
  fi
  sleep 0.5
done
note "all nodes done"
# SIGINT: tcpdump writes out what it holds and prints its counts. Waited for (5 s at most,
# then killed), so that the report reads whole files, and then left out of cleanup's kills.
kill -INT "${tcpdump_pids[@]}" 2>/dev/null || true
for _ in $(seq 100); do
  alive=0
  for p in "${tcpdump_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ "$alive" = 1 ] || break
  sleep 0.05
done
kill -KILL "${tcpdump_pids[@]}" 2>/dev/null || true
keep=()
for p in "${pids[@]}"; do
  [[ " ${tcpdump_pids[*]} " == *" $p "* ]] || keep+=("$p")
done
pids=("${keep[@]}")
for p in "${tcpdump_pids[@]}"; do wait "$p" 2>/dev/null || true; done
note "captures stopped"
# Losses on the segment: a tap drops frames when its queue overflows while its QEMU is
# descheduled; a head retransmits what the nodes did not acknowledge in time.
for i in $(seq "$UR_NODES"); do
  ip -s link show "tap$i" >"$UR_DIR/node-$i/tap.stats" 2>&1 || true
done
for k in $(seq "$UR_HEADS"); do
  ip -s link show "vhead$k" >"$UR_DIR/vhead-$k.stats" 2>&1 || true
  # -s: no history file (it would go to the host's /tmp).
  ip netns exec "head$k" nstat -asz >"$UR_DIR/head-$k.tcp" 2>&1 || true
done
# What each head sent and received on the segment (NFS, ARP), for bytes per node served.
for k in $(seq "$UR_HEADS"); do
  ip netns exec "head$k" sh -c 'cat /sys/class/net/eth0/statistics/tx_bytes /sys/class/net/eth0/statistics/rx_bytes' |
    paste -sd' ' >"$UR_DIR/head-$k.bytes" || true
done
