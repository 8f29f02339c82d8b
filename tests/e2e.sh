#!/usr/bin/env bash
# End-to-end tests: boot linuxrc in QEMU against a private NFS server (qemu/boot.sh) and check
# what the console says. Prints "ok NAME" or "FAIL NAME" per case, then "N passed, N failed";
# exits non-zero if any case failed.
#
#   tests/e2e.sh [--list] [CASE...]      (default: every case, in the order of CASES)
#
# To add a case: write a function case_<name> (dashes become underscores) that calls `boot` and
# any extra checks, returning non-zero on failure (`why` records the reason), and add a
# "name|description" line to CASES. The runner (and XFAIL, for a case that shows a known,
# reported linuxrc bug) is tests/lib.sh's.
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "$0")/../qemu/lib.sh"
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"

CASES=(
  "v3-overlay-root|NFSv3 boot reaches the real init, PID 1 on the overlay root"
  "v3-write-upper|a write lands in the tmpfs upper layer; the export stays byte-identical"
  "dhcp-lease|the address comes from DHCP (linuxrc's lease line, eth0 10.0.2.15/24)"
  "v4-only|NFSv4 boot against a v4-only ganesha, no rpcbind"
  "nfs-client-id|nfs.nfs4_unique_id= names the NFSv4 client instead of the MAC and reaches the nfs module as its parameter; a bad one is a named FATAL"
  "no-server|NFS server absent: FATAL names server and path, then waits, within the bound"
  "root-path|tap+dnsmasq: server and path from DHCP option 17, no nfsroot=; host name, DNS, net conf"
  "heads-root-path|DHCP option 17 lists heads .9+.1 (.9 absent): each MAC ranks them its own way; the node ranking .9 first fails over to .1"
  "static-ip|static ip= (with dns0) and no DHCP server at all: no DHCP, boots"
  "dead-first-nic|two NICs, no DHCP behind eth0: eth1 wins the race without waiting for eth0"
  "bootif|BOOTIF picks eth1 of two NICs that both have DHCP; eth0 is left alone"
  "mac-key|unionroot.mac= picks eth1 of two NICs that both have DHCP"
  "late-dhcp|DHCP server up only 40 s after the first DISCOVER (STP): backoff retries, boots"
  "no-dhcp|no DHCP server, unionroot.dhcp_timeout=10: FATAL dhcp within the bound, no panic"
  "e1000|an e1000 NIC: its driver found by PCI modalias, nothing named on the command line"
  "rogue-dhcp|a faster second DHCP server offers another root-path; nfsroot= pins the server"
  "rogue-hostname|rogue DHCP names the node ../node-b: per-node paths FATAL; ip= name boots; node-b untouched"
  "no-carrier|two NICs, eth0 without carrier: DHCP on eth1 at once, none on eth0"
  "late-carrier|eth0 (no DHCP) has carrier at once, eth1 (DHCP) 1 s later: boots on eth1"
  "pxe|real PXE boot (iPXE, pxelinux, TFTP root from unionroot pxe): lf1 DHCP, lf2 static"
)
OUT=$UR_OUT/e2e

# The fixtures: the busybox system tree and one initramfs, with e1000 as well (the e1000 case
# needs its driver, the others must not load it). Boots export the tree explicitly: no-server
# and no-dhcp have none.
fixtures() {
  TREE=$OUT/tree IMG=$OUT/initramfs.img
  ur_build_tree "$TREE"
  ur_build_initramfs "$KDIR" "$UR_LINUXRC" "$IMG" --module e1000
}

# tap-network boots (qemu/boot.sh --nic/--dhcp): bridge br0 is 192.168.77.0/24, the namespace
# (router, ganesha) is .1, dnsmasq number K leases .(100+50K)-.(149+50K).
SRV=192.168.77.1
BASE="console=ttyS0 panic=-1 unionroot.nfsvers=3"
PINNED="$BASE nfsroot=$SRV:/srv/system"
MAC0=52:54:00:77:00:01 MAC1=52:54:00:77:00:02
LEASE0='192\.168\.77\.1[0-4][0-9]/24'
# The guest reached its real init on the right root.
ROOTED=(--expect 'unionroot-demo: real init started' --expect 'PROOF root=overlay\b'
  --expect "PROOF lower=${SRV//./\\.}:/srv/system\\b" --forbid 'linuxrc: FATAL')

# --- the cases ---------------------------------------------------------------------------------

case_v3_overlay_root() {
  boot --export "$TREE" --nfs v3 \
    --expect 'linuxrc: exec /sbin/init' --expect 'unionroot-demo: real init started' \
    --expect 'PROOF pid=1\b' --expect 'PROOF root=overlay\b' \
    --expect 'PROOF lower=10\.0\.2\.2:/srv/system\b' --expect 'PROOF nfsvers=3\b' \
    --forbid 'linuxrc: FATAL'
}

case_v3_write_upper() {
  # boot.sh compares the export's manifests before and after and fails the boot if they differ.
  boot --export "$TREE" --nfs v3 \
    --expect 'PROOF upper-has-write=yes' --expect 'PROOF lower-has-write=no' \
    --expect 'PROOF upper-fs=tmpfs' --forbid 'linuxrc: FATAL' || return 1
  grep -qE '^boot: export manifest: before ([0-9a-f]+) after \1 ' "$RUN/boot.out" ||
    { why "no matching before/after export manifest line in boot.out"; return 1; }
}

case_dhcp_lease() {
  boot --export "$TREE" --nfs v3 \
    --expect 'linuxrc: dhcp eth0: lease 10\.0\.2\.15/24' --expect 'PROOF addr=10\.0\.2\.15/24\b' \
    --forbid 'linuxrc: FATAL'
}

case_v4_only() {
  boot --export "$TREE" --nfs v4 \
    --expect 'unionroot-demo: real init started' --expect 'PROOF root=overlay\b' \
    --expect 'PROOF lower=10\.0\.2\.2:/system\b' --expect 'PROOF lower-type=nfs4\b' \
    --expect 'PROOF nfsvers=4' --forbid 'linuxrc: FATAL' \
    --expect 'linuxrc: nfs client identifier unionroot-525400123456 \(from the boot NIC.s MAC\)' \
    --expect 'PROOF nfs-client-id=unionroot-525400123456\b' \
    --expect 'PROOF nfs-module-unique-id=none\b' || return 1
  # The server really was v4-only: no rpcbind started, ganesha configured for 4 alone.
  [ ! -e "$RUN/rpcbind.log" ] || { why "rpcbind was started"; return 1; }
  grep -q 'Protocols = 4;' "$RUN/ganesha.conf" || { why "ganesha.conf is not v4-only"; return 1; }
}

case_nfs_client_id() {
  local d=$OUT/$CASE
  RUN=$d/1-named boot --export "$TREE" --nfs v4 --append "nfs.nfs4_unique_id=rack3-n12" \
    --expect 'linuxrc: echo rack3-n12 > /sys/fs/nfs/net/nfs_client/identifier' \
    --expect 'linuxrc: nfs client identifier rack3-n12 \(from nfs\.nfs4_unique_id= on the command line\)' \
    --expect 'PROOF nfs-client-id=rack3-n12\b' --expect 'PROOF lower-type=nfs4\b' \
    --expect 'linuxrc: insmod /lib/modules/[^ ]*/nfs\.ko[^ ]* nfs4_unique_id=rack3-n12\b' \
    --expect 'PROOF nfs-module-unique-id=rack3-n12\b' || return 1
  RUN=$d/2-bad boot --nfs none --append "nfs.nfs4_unique_id=../x" --timeout 60 \
    --until 'linuxrc: boot failed; waiting' \
    --expect 'linuxrc: FATAL: .*nfs\.nfs4_unique_id=\.\./x: .* is not a letter, digit or one of -\._:; e\.g\. nfs\.nfs4_unique_id=node07' \
    --forbid 'linuxrc: mount -t nfs' --forbid 'unionroot-demo: real init started'
}

case_no_server() {
  local timeout_s=5
  boot --nfs none --append "unionroot.mount_timeout=$timeout_s" --timeout 60 \
    --until 'linuxrc: boot failed; waiting' \
    --expect 'linuxrc: FATAL: .*10\.0\.2\.2:/srv/system' --expect 'linuxrc: hint: ' \
    --expect 'linuxrc: boot failed; waiting' \
    --forbid 'unionroot-demo: real init started' || return 1
  # The retry bound holds: from the first mount attempt to FATAL at most the timeout plus
  # slack for one attempt in flight; the waiting line follows FATAL promptly.
  within 'linuxrc: mount -t nfs' 'linuxrc: FATAL' $((timeout_s + 2)) &&
    within 'linuxrc: FATAL' 'linuxrc: boot failed; waiting' 2
}

case_root_path() {
  local mac=52:54:00:77:00:0a
  boot --export "$TREE" --cmdline "$BASE" --nic "br0 mac=$mac" \
    --dhcp "br0 root-path=$SRV:/srv/system dns=192.168.77.53 domain=cluster.test arg=--dhcp-host=$mac,node-a" \
    "${ROOTED[@]}" \
    --expect "linuxrc: dhcp eth0: lease $LEASE0 router 192\.168\.77\.1 server 192\.168\.77\.1\b" \
    --expect 'linuxrc: nfs server 192\.168\.77\.1, from DHCP option 17 \(root-path\)' \
    --expect 'linuxrc: hostname node-a' --expect 'PROOF hostname=node-a\b' \
    --expect 'PROOF resolv=192\.168\.77\.53\b' \
    --expect "PROOF netconf=eth0 proto=dhcp addr=${LEASE0%/24}/255\.255\.255\.0 gw=192\.168\.77\.1 dns0=192\.168\.77\.53 host=node-a rootserver=192\.168\.77\.1 rootpath=192\.168\.77\.1:/srv/system\b" \
    --expect "PROOF links=eth0:up:$LEASE0\b"
}

case_heads_root_path() {
  # Two equivalent heads in the root-path; only .1 exists. The rendezvous order of these two
  # MACs (init/core/src/heads.rs; 52:54:00:77:00:0b ranks .9 first, :0c ranks .1 first) is
  # what linuxrc must log, and the first node must fail over along it.
  local d=$OUT/$CASE rp="192.168.77.9+$SRV:/srv/system"
  RUN=$d/1-absent-first boot --export "$TREE" --cmdline "$BASE" --nic "br0 mac=52:54:00:77:00:0b" \
    --dhcp "br0 root-path=$rp" "${ROOTED[@]}" \
    --expect 'linuxrc: nfs server 192\.168\.77\.9, from DHCP option 17 \(root-path\)' \
    --expect 'linuxrc: heads 192\.168\.77\.9\+192\.168\.77\.1: ranked 192\.168\.77\.9, 192\.168\.77\.1 for MAC 52:54:00:77:00:0b \(rendezvous' \
    --expect 'linuxrc: /run/unionroot/lower: served by 192\.168\.77\.1 \(server 2 of 2, round 1\)' ||
    return 1
  RUN=$d/2-live-first boot --export "$TREE" --cmdline "$BASE" --nic "br0 mac=52:54:00:77:00:0c" \
    --dhcp "br0 root-path=$rp" "${ROOTED[@]}" \
    --expect 'linuxrc: heads 192\.168\.77\.9\+192\.168\.77\.1: ranked 192\.168\.77\.1, 192\.168\.77\.9 for MAC 52:54:00:77:00:0c \(rendezvous' \
    --expect 'linuxrc: /run/unionroot/lower: served by 192\.168\.77\.1 \(server 1 of 2, round 1\)'
}

case_static_ip() {
  # No --dhcp: nothing on the segment would answer a DISCOVER.
  boot --export "$TREE" --nic br0 \
    --cmdline "$PINNED ip=192.168.77.10:$SRV:$SRV:255.255.255.0:node-s:eth0:off:192.168.77.53" \
    "${ROOTED[@]}" --forbid 'linuxrc: dhcp' \
    --expect 'linuxrc: using eth0: named by ip=' \
    --expect 'linuxrc: eth0: static 192\.168\.77\.10/24 from ip=' \
    --expect 'PROOF addr=192\.168\.77\.10/24\b' --expect 'PROOF route=192\.168\.77\.1\b' \
    --expect 'PROOF hostname=node-s\b' --expect 'PROOF resolv=192\.168\.77\.53\b' \
    --expect 'PROOF netconf=eth0 proto=static addr=192\.168\.77\.10/255\.255\.255\.0 gw=192\.168\.77\.1 dns0=192\.168\.77\.53 host=node-s\b'
}

case_dead_first_nic() {
  # eth0 is alone on br1; br0 (eth1) has the server. Both have carrier.
  boot --export "$TREE" --cmdline "$PINNED" --nic "br1 mac=$MAC0" --nic "br0 mac=$MAC1" --dhcp br0 \
    "${ROOTED[@]}" \
    --expect 'linuxrc: no interface named by .*: trying all of eth0 eth1[[:space:]]*$' \
    --expect 'linuxrc: dhcp eth0: DISCOVER' --expect 'linuxrc: dhcp eth1: DISCOVER' \
    --expect "linuxrc: dhcp eth1: lease $LEASE0 " \
    --expect "PROOF links=eth0:down eth1:up:$LEASE0\b" --expect 'PROOF netconf=eth1 proto=dhcp' || return 1
  # Not serial (eth0's 120 s), not waiting for its first retransmission (4 s) or for a carrier
  # (5 s): the lease on eth1 follows the race's start (the first DISCOVER, after the
  # unionroot.jitter wait) within the 4 s.
  within 'linuxrc: dhcp eth[01]: DISCOVER' 'linuxrc: dhcp eth1: lease' 4
}

case_bootif() {
  boot --export "$TREE" --cmdline "$PINNED BOOTIF=01-${MAC1//:/-}" \
    --nic "br0 mac=$MAC0" --nic "br0 mac=$MAC1" --dhcp br0 "${ROOTED[@]}" \
    --expect "linuxrc: using eth1: its MAC $MAC1 is BOOTIF from pxelinux" \
    --expect "linuxrc: dhcp eth1: lease $LEASE0 " --forbid 'linuxrc: dhcp eth0' \
    --expect "PROOF links=eth0:down eth1:up:$LEASE0\b" --expect 'PROOF netconf=eth1 proto=dhcp'
}

case_mac_key() {
  boot --export "$TREE" --cmdline "$PINNED unionroot.mac=$MAC1" \
    --nic "br0 mac=$MAC0" --nic "br0 mac=$MAC1" --dhcp br0 "${ROOTED[@]}" \
    --expect "linuxrc: using eth1: its MAC $MAC1 is unionroot.mac" \
    --expect "linuxrc: dhcp eth1: lease $LEASE0 " --forbid 'linuxrc: dhcp eth0' \
    --expect "PROOF links=eth0:down eth1:up:$LEASE0\b"
}

case_late_dhcp() {
  # The server starts 40 s after the harness sees the first DISCOVER, as behind a switch port
  # that blocks for 40 s. With RFC 2131 backoff (4, 8, 16, 32 s, each +-1 s) the client sends at
  # about 0, 4, 12, 28 and 60 s: the lease comes with the 60 s one.
  boot --export "$TREE" --cmdline "$PINNED" --nic br0 --timeout 150 \
    --dhcp 'br0 delay=40 after=linuxrc:.dhcp.eth0:.DISCOVER' "${ROOTED[@]}" \
    --expect 'linuxrc: dhcp eth0: no OFFER yet, DISCOVER again \(attempt 4,' \
    --expect "linuxrc: dhcp eth0: lease $LEASE0 " || return 1
  within 'linuxrc: dhcp eth0: DISCOVER' 'linuxrc: dhcp eth0: lease' 70 40
}

case_no_dhcp() {
  local bound=10
  boot --nfs none --cmdline "$PINNED unionroot.dhcp_timeout=$bound" --nic br0 --timeout 60 \
    --until 'linuxrc: boot failed; waiting' \
    --expect 'linuxrc: dhcp eth0: DISCOVER' \
    --expect 'linuxrc: FATAL: dhcp: DHCP failed on every interface: eth0' \
    --expect 'linuxrc: hint: check the cabling and the DHCP server for eth0' \
    --forbid 'linuxrc: dhcp eth0: (OFFER|lease)' --forbid 'linuxrc: mount -t nfs' \
    --forbid 'unionroot-demo: real init started' || return 1
  # It waits out the bound, not less (give or take the 1 s jitter), and not much more.
  within 'linuxrc: dhcp eth0: DISCOVER' 'linuxrc: FATAL: dhcp' $((bound + 2)) $((bound - 1)) &&
    within 'linuxrc: FATAL: dhcp' 'linuxrc: boot failed; waiting' 2
}

case_e1000() {
  # The initramfs carries e1000 next to virtio_net (see IMG below); the command line names no
  # module, so the driver must come from the device's PCI modalias.
  boot --export "$TREE" --cmdline "$PINNED" --nic 'br0 model=e1000' --dhcp br0 "${ROOTED[@]}" \
    --expect 'linuxrc: pci devices need: e1000[[:space:]]*$' \
    --expect 'linuxrc: insmod /lib/modules/[^ ]+/e1000\.ko' --forbid 'linuxrc: insmod .*/virtio' \
    --expect 'e1000 [^ ]+ eth0: Intel\(R\) PRO/1000' \
    --expect "linuxrc: dhcp eth0: lease $LEASE0 " --expect "PROOF links=eth0:up:$LEASE0\b" || return 1
  ! grep -q 'unionroot\.modules' "$RUN/qemu-cmd" || { why "unionroot.modules= in qemu-cmd"; return 1; }
}

case_rogue_dhcp() {
  # dnsmasq 0 is ours but answers 2 s late; dnsmasq 1 is another machine (192.168.77.66) on the
  # segment that offers at once, with a root-path to itself. The client takes its lease, but
  # nfsroot= wins over option 17.
  boot --export "$TREE" --cmdline "$PINNED" --nic br0 \
    --dhcp 'br0 reply-delay=2 root-path=192.168.77.1:/srv/system' \
    --dhcp 'br0 host=192.168.77.66 root-path=192.168.77.66:/srv/rogue' "${ROOTED[@]}" \
    --expect 'linuxrc: dhcp eth0: lease 192\.168\.77\.1[5-9][0-9]/24 router 192\.168\.77\.1 server 192\.168\.77\.66[[:space:]]*$' \
    --expect 'linuxrc: nfs server 192\.168\.77\.1, from nfsroot= on the command line' \
    --expect 'linuxrc: mount -t nfs .*addr=192\.168\.77\.1 192\.168\.77\.1:/srv/system ' \
    --forbid 'linuxrc: mount -t nfs .*(192\.168\.77\.66|/srv/rogue)'
}

# Hostile input: a rogue DHCP server (192.168.77.66, offering at once; ours answers
# 2 s late) names the node "../node-b" by a raw option 12 (dnsmasq has no option:hostname). The
# node has per-node persistent paths, and the export already holds node-b's directory. Boot 1
# has no other name: linuxrc must stop with the reason before it mounts anything. Boot 2 names
# itself node-a by ip= while the rogue still sends ../node-b: it boots with nodes/node-a.
# Neither boot may touch node-b's data or create anything outside nodes/node-a.
ROGUE_NAME='../node-b'
ROGUE=(--dhcp 'br0 reply-delay=2 root-path=192.168.77.1:/srv/system'
  --dhcp "br0 host=192.168.77.66 arg=--dhcp-option=12,$ROGUE_NAME")
PERSIST_ARGS="unionroot.persist=$SRV:/srv/persist unionroot.persist_paths=/var/log"
# No console line may make, mount or bind anything with node-b in it.
NO_NODE_B=(--forbid 'linuxrc: (mkdir|mount)\b.*node-b')

# export_state DIR: every entry of DIR (type, mode, owner, size, mtime, path), sorted by path.
export_state() {
  find "$1" -mindepth 1 -printf '%y %m %U:%G %s %T@ %P\n' | sort -k6
}

# rogue_boot NAME PERSIST-DIR ARGS...: one boot of the case into $OUT/$CASE/NAME, the rogue on
# the segment and PERSIST-DIR exported read-write as /srv/persist; the rogue's dnsmasq (server 1)
# must have sent its name, as its --log-dhcp lines show.
rogue_boot() {
  local RUN=$OUT/$CASE/$1 p=$2
  shift 2
  boot --export "$TREE" --export "persist=$p:rw" --nic br0 "${ROGUE[@]}" "${NO_NODE_B[@]}" "$@" ||
    return 1
  grep -qF "option: 12 hostname  $ROGUE_NAME" "$RUN/dnsmasq-1.log" && return 0
  why "$RUN/dnsmasq-1.log shows no option 12 $ROGUE_NAME sent"
  return 1
}

case_rogue_hostname() {
  local d=$OUT/$CASE p=$OUT/$CASE/persist
  local log=$p/nodes/node-b/var/log marker="node-b's own log: no other node may read or change it"
  mkdir -p "$log"
  echo "$marker" >"$log/marker"
  touch -d '2020-01-02 03:04:05' "$log/marker"
  export_state "$p" >"$d/export-before"
  # 1: the only host name is the rogue's. FATAL right after the lease, no mount at all.
  rogue_boot 1-rogue-name "$p" --cmdline "$PINNED $PERSIST_ARGS" \
    --timeout 30 --until 'linuxrc: boot failed; waiting' \
    --expect 'linuxrc: dhcp eth0: lease 192\.168\.77\.1[5-9][0-9]/24 router 192\.168\.77\.1 server 192\.168\.77\.66[[:space:]]*$' \
    --expect 'linuxrc: DHCP option 12 \(host name\) "\.\./node-b" is refused: .*; not setting the host name' \
    --expect "linuxrc: FATAL: root: per-node paths need this node's host name, but DHCP option 12 \\(host name\\) \"\\.\\./node-b\" is refused: it contains '/'" \
    --expect 'linuxrc: hint: fix the host name on the DHCP server \(option 12\), or give it in ip=::::<name>' \
    --expect 'linuxrc: boot failed; waiting' \
    --forbid 'linuxrc: hostname ' --forbid 'linuxrc: mount (-t nfs|--bind)' \
    --forbid 'unionroot-demo: real init started' || return 1
  RUN=$d/1-rogue-name within 'linuxrc: dhcp eth0: lease' 'linuxrc: boot failed; waiting' 2 ||
    return 1
  export_state "$p" >"$d/export-after-1"
  cmp -s "$d/export-before" "$d/export-after-1" ||
    { why "boot 1 changed the persist export: diff $d/export-before $d/export-after-1"; return 1; }
  # 2: ip= names the node; the rogue's name is then not used at all.
  rogue_boot 2-ip-name "$p" --cmdline "$PINNED ip=::::node-a::dhcp $PERSIST_ARGS" \
    --forbid 'linuxrc: FATAL' \
    --expect 'linuxrc: dhcp eth0: lease 192\.168\.77\.1[5-9][0-9]/24 router 192\.168\.77\.1 server 192\.168\.77\.66[[:space:]]*$' \
    --expect 'linuxrc: hostname node-a[[:space:]]*$' \
    --expect 'linuxrc: mkdir -p -m 755 /run/unionroot/persist/nodes/node-a/var/log[[:space:]]*$' \
    --expect 'linuxrc: mount --bind /run/unionroot/persist/nodes/node-a/var/log /newroot/var/log[[:space:]]*$' \
    --expect 'unionroot-demo: real init started' --expect 'PROOF root=overlay\b' \
    --expect 'PROOF hostname=node-a\b' --expect 'PROOF persist-seen=0 persist-last=[[:space:]]*$' \
    --expect 'PROOF nfs-mounts=/run/unionroot/lower:3 /run/unionroot/persist:3 /var/log:3[[:space:]]*$' ||
    return 1
  # On the server: node-a's line in nodes/node-a; everything else exactly as it was, but for the
  # mtime of nodes/, which got node-a.
  grep -qE '^node-a boot at ' "$p/nodes/node-a/var/log/proof-persist" 2>/dev/null ||
    { why "no node-a line in $p/nodes/node-a/var/log/proof-persist"; return 1; }
  export_state "$p" >"$d/export-after-2"
  local other=(-e ' nodes$' -e ' nodes/node-a$' -e ' nodes/node-a/')
  grep -v "${other[@]}" "$d/export-after-2" | cmp -s - <(grep -v "${other[@]}" "$d/export-before") ||
    { why "boot 2 changed the export outside nodes/node-a: diff $d/export-{before,after-2}"; return 1; }
  [ "$(cat "$log/marker")" = "$marker" ] || { why "node-b's marker has new content"; return 1; }
  if [ -e "$d/node-b" ] || [ -e "$p/node-b" ]; then
    why "a node-b appeared outside nodes/"
    return 1
  fi
}

case_no_carrier() {
  # set_link before the guest loads its driver: eth0 never gets carrier.
  boot --export "$TREE" --cmdline "$PINNED" --nic "br0 mac=$MAC0" --nic "br0 mac=$MAC1" \
    --dhcp br0 --hmp '- 0 set_link n0 off' "${ROOTED[@]}" \
    --expect "linuxrc: dhcp eth1: lease $LEASE0 " --forbid 'linuxrc: dhcp eth0' \
    --expect "PROOF links=eth0:[a-z]+ eth1:up:$LEASE0\b" || return 1
  grep -q '^+[0-9]* ms: hmp: set_link n0 off$' "$RUN/timings" ||
    { why "the monitor never took set_link n0 off"; return 1; }
  # Not waiting for eth0's carrier (unionroot.carrier_timeout, 5 s), from the race's start
  # (the first DISCOVER, after the unionroot.jitter wait).
  within 'linuxrc: dhcp eth[01]: DISCOVER' 'linuxrc: dhcp eth1: lease' 4
}

case_late_carrier() {
  # Real NICs negotiate their links a second or more apart. Here the NIC with the DHCP server
  # behind it (eth1) gets carrier 1 s after the race starts; eth0 has carrier but no server.
  # The race must still include eth1 (carrier_timeout is 5 s).
  boot --export "$TREE" --cmdline "$PINNED unionroot.dhcp_timeout=20" \
    --nic "br1 mac=$MAC0" --nic "br0 mac=$MAC1" --dhcp br0 --timeout 90 \
    --hmp '- 0 set_link n1 off' --hmp 'linuxrc:.no.interface.named 1 set_link n1 on' \
    --until 'linuxrc: boot failed; waiting' "${ROOTED[@]}" \
    --expect 'linuxrc: dhcp eth1: DISCOVER' --expect "linuxrc: dhcp eth1: lease $LEASE0 " \
    --expect "PROOF links=eth0:down eth1:up:$LEASE0\b" || return 1
  grep -q '^+[0-9]* ms: hmp: set_link n1 on$' "$RUN/timings" ||
    { why "the monitor never took set_link n1 on"; return 1; }
}

# A real PXE boot: the TFTP root, initramfs and setup tree all come from the host tool
# and a cluster.toml, nothing hand-built. SeaBIOS runs the iPXE ROM (-boot n), which gets DHCP and
# TFTP from QEMU's user network (boot.sh --pxe); pxelinux.0 reads the node's 01-<mac> file and
# loads the bzImage and initramfs; linuxrc mounts the harness's ganesha (10.0.2.2:/srv/system).
PXE_MAC1=52:54:00:12:34:01 PXE_MAC2=52:54:00:12:34:02

# toml_str S: S as a TOML basic string.
toml_str() {
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}

# pxe_cluster DIR: DIR/cluster.toml for QEMU's user network. lf1 takes DHCP (QEMU gives every MAC
# 10.0.2.15, which is lf1's address), lf2 is static. The outputs go beside the file.
pxe_cluster() {
  cat >"$1/cluster.toml" <<EOF
# Written by tests/e2e.sh (case pxe).
[server]
address = "10.0.2.2"
network = "10.0.2.0"
netmask = "255.255.255.0"
router = "10.0.2.2"

[nfs]
version = "3"

[exports]
system = "/srv/system"

[paths]
setup_tree = "tree"
tftp_root = "tftp"
initramfs = "initramfs.img"

[kernel]
image = $(toml_str "$KDIR/vmlinuz")
modules_dir = $(toml_str "$KDIR/lib/modules/$(cat "$KDIR/version")")
nic_modules = ["virtio_pci", "virtio_net"]

[initramfs]
linuxrc = $(toml_str "$UR_LINUXRC")

[setup_tree]
busybox = $(toml_str "${UNIONROOT_BUSYBOX:-/bin/busybox}")
init_script = $(toml_str "$UR_FIXTURES/real-init.sh")

[pxe]
mode = "initramfs"
loader = "pxelinux"

[boot]
ipconfig = "dhcp"
onfail = "wait"
kernel_args = ["console=ttyS0", "panic=-1"]

[[nodes]]
name = "lf1"
mac = "$PXE_MAC1"
ip = "10.0.2.15"

[[nodes]]
name = "lf2"
mac = "$PXE_MAC2"
ip = "10.0.2.16"
boot = { ipconfig = "static" }
EOF
}

# pxe_boot NODE MAC ARGS...: boot.sh --pxe for one node, in the run directory $OUT/$CASE/NODE,
# with what every PXE boot must show: iPXE fetched pxelinux.0 over TFTP, pxelinux ran and loaded
# the kernel and initramfs, the kernel's command line got BOOTIF (IPAPPEND 2), linuxrc picked the
# NIC by it, and the real init runs on the overlay with the node's host name. The firmware's
# lines are checked in console.txt, the console without the cursor moves that SeaBIOS's serial
# console puts into them (e.g. "PX\e[25;16H\e[25;17HE").
pxe_boot() {
  local node=$1 mac=$2
  shift 2
  local d=$OUT/$CASE
  local RUN=$d/$node IMG=none # boot() passes --initrd "$IMG": none, it comes over TFTP
  boot --pxe "$d/tftp" --mac "$mac" --export "$d/tree" --nfs v3 \
    --timeout 90 --forbid 'linuxrc: FATAL' \
    --expect "Command line: BOOT_IMAGE=vmlinuz .* BOOTIF=01-${mac//:/-}\\b" \
    --expect "linuxrc: using eth0: its MAC $mac is BOOTIF from pxelinux" \
    --expect 'unionroot-demo: real init started' --expect 'PROOF root=overlay\b' \
    --expect 'PROOF lower=10\.0\.2\.2:/srv/system\b' --expect "PROOF hostname=$node\\b" "$@" ||
    return 1
  # Firmware boot, not QEMU's direct kernel boot.
  if ! grep -q -- ' -boot n' "$RUN/qemu-cmd" ||
    grep -qE -- ' -(kernel|initrd|append) ' "$RUN/qemu-cmd"; then
    why "$node: $RUN/qemu-cmd is not a -boot n PXE boot"
    return 1
  fi
  local re
  sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' "$(console)" >"$RUN/console.txt"
  for re in 'tftp://10\.0\.2\.2/pxelinux\.0\.\.\. ok' 'PXELINUX [0-9.]+ PXE ' \
    'Loading vmlinuz\.\.\. ?ok' 'Loading initrd\.img\.\.\. ?ok'; do
    grep -aqE -- "$re" "$RUN/console.txt" || why "$node: missing in console.txt: $re"
  done
  [ ! -s "$REASONS" ]
}

case_pxe() {
  local d=$OUT/$CASE step
  pxe_cluster "$d"
  for step in setup-tree initramfs pxe; do
    "$UR_TOOL" "$step" -c "$d/cluster.toml" >>"$d/unionroot.out" 2>&1 ||
      { why "unionroot $step -c $d/cluster.toml failed; see $d/unionroot.out"; return 1; }
  done
  # lf1: the per-node file's APPEND (ip= with its host name, DHCP), DHCP's 10.0.2.15.
  pxe_boot lf1 "$PXE_MAC1" \
    --expect "Command line: .* ip=::::lf1::dhcp " \
    --expect 'linuxrc: dhcp eth0: lease 10\.0\.2\.15/24 ' --expect 'PROOF addr=10\.0\.2\.15/24\b' ||
    return 1
  # lf2: static, its address from its own pxelinux.cfg file; no DHCP at all.
  pxe_boot lf2 "$PXE_MAC2" \
    --expect 'Command line: .* ip=10\.0\.2\.16:10\.0\.2\.2:10\.0\.2\.2:255\.255\.255\.0:lf2::off ' \
    --expect 'linuxrc: eth0: static 10\.0\.2\.16/24 from ip=' --forbid 'linuxrc: dhcp' \
    --expect 'PROOF addr=10\.0\.2\.16/24\b'
}

e2e_main "$@"
