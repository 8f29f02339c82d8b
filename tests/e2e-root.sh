#!/usr/bin/env bash
# End-to-end tests of the root pieces: stacked read-only lowers, the tmpfs upper,
# read-write NFS mounts, per-node persistent paths, NFSv3/v4, failover, a late server, a wrong
# path, a full upper, and the seed's init=/linuxrc-from-an-NFS-root mode. Each case boots linuxrc
# in QEMU against a private ganesha (qemu/boot.sh) and checks the console and the server's
# files. Prints "ok NAME" or "FAIL NAME" per case, then "N passed, N failed"; exits non-zero if
# any case failed.
#
#   tests/e2e-root.sh [--list] [CASE...]      (default: every case, in the order of CASES)
#
# Exports (qemu/boot.sh --export NAME=DIR): the base system tree is /srv/system (v4: /system),
# the cluster-software layer /srv/layer, and per case read-write /srv/home and /srv/persist.
# Cases are written as in tests/e2e.sh: case_<name> plus a "name|description" line in CASES;
# the runner is tests/lib.sh's.
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "$0")/../qemu/lib.sh"
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"

CASES=(
  "two-layers|two lowers from /etc/unionroot.conf: the cluster layer's file shadows the base's"
  "writes-tmpfs|writes land in the tmpfs upper; both read-only exports stay byte-identical"
  "home-rw|a write to the read-write NFS /home appears in the server's export"
  "persist|a per-node /var/log survives a second boot of node-a; node-b does not see it"
  "v4-only|the whole stack over NFSv4 against a v4-only ganesha (no rpcbind)"
  "v3|the whole stack over NFSv3"
  "failover|first server of a lower dead (dropping, then refusing): the second serves it"
  "late-server|ganesha starts 20 s after the first mount attempt: linuxrc keeps retrying, boots"
  "wrong-path|an export path the server does not have: FATAL at once, naming server:path"
  "upper-enospc|16 MB written into an 8 MB upper: ENOSPC in the client, nothing on the server"
  "nfsroot-pivot|init=/linuxrc from an NFS root (kernel from qemu/build-kernel.sh): pivot_root"
  "nfsroot-pivot-ro|the NFS-root mode with the setup tree exported read-only, as the seed does"
  "v3-rw-nolock|a v3 read-write /home with default options boots (nolock: no rpcbind in an initramfs)"
  "debian-v3|the host tool's Debian 12 image over NFSv3: systemd running, networkd renews, poweroff"
  "debian-v4|the same over NFSv4.2, with a read-write NFSv4 /home"
  "debian-image|the same Debian root as an EROFS image generation (image-pack), loop-mounted from NFSv3: systemd running"
  "debian-owner-names|ganesha sends NFSv4 owner names: linuxrc stops with a named reason, no hang"
  "image-v3|the busybox tree as a squashfs image, loop-mounted from NFSv3 under the cluster layer"
  "image-v4|the same image alone over NFSv4.2"
  "image-erofs|the busybox tree as an EROFS generation (image-pack --format erofs) over NFSv3: erofs's softdep crc32c loaded first"
  "image-ram|unionroot.image_ram: the image copied into RAM, the images export let go (no NFS mount left)"
  "image-switch|booted on generation 1, the host tool publishes generation 2 and runs gc (deleting generation 0): the node reads all of generation 1 again; the next boot pins generation 2"
  "image-cluster|everything from one cluster.toml ([images], exports.images): image-pack -c publishes, initramfs -c carries loop, erofs and the conf; the cluster layer stacks on the image"
  "image-missing|the pointer names a generation that is not there: FATAL naming it, at once"
  "image-truncated|a truncated generation: FATAL naming the truncation, at once"
  "image-corrupt|a generation with a good superblock and zeroed tables: the kernel refuses it, FATAL"
)
OUT=$UR_OUT/e2e-root

# Every boot exports the base system and the cluster layer (a case may set SYS for one boot).
boot_fixtures() { args+=(--export "$SYS" --export "layer=$LAYER"); }

# file_is FILE ERE: FILE exists and its content matches ERE (all of it, as one line per line).
file_is() {
  if [ ! -f "$1" ]; then
    why "no file $1 on the server"
    return 1
  fi
  grep -qE -- "$2" "$1" && return 0
  why "$1 is '$(head -c 200 "$1")', not /$2/"
  return 1
}

# none_in NAME DIR...: no file called NAME anywhere in the exported trees.
none_in() {
  local name=$1 hits
  shift
  hits=$(find "$@" -name "$name" 2>/dev/null)
  [ -z "$hits" ] && return 0
  why "leaked to the server: $hits"
  return 1
}

S=10.0.2.2
# End of a console line (the serial console ends lines with CR LF).
E=$'\r''?$'
BASE="console=ttyS0 panic=-1"
# The stack over NFSv3 (v3 paths) and over NFSv4 (pseudo paths).
LOWERS3="unionroot.lower=$S:/srv/system unionroot.lower=$S:/srv/layer"
LOWERS4="unionroot.lower=$S:/system unionroot.lower=$S:/layer"
# The guest reached its real init on the overlay.
ROOTED=(--expect 'unionroot-demo: real init started' --expect '^PROOF root=overlay\b'
  --expect '^PROOF done' --forbid 'linuxrc: FATAL')
# Both lowers mounted and stacked, the cluster layer on top.
LAYERED=(--expect '^PROOF lowerdir=/run/unionroot/lower1:/run/unionroot/lower'"$E"
  --expect '^PROOF layer=cluster-software'"$E")

# fresh DIR...: empty directories for read-write exports (what the case checks afterwards).
fresh() {
  local d
  for d in "$@"; do rm -rf "$d" && mkdir -p "$d"; done
}

# --- the cases ---------------------------------------------------------------------------------

case_two_layers() {
  # The lowers come from /etc/unionroot.conf in the initramfs; nothing on the command line but
  # the NFS version.
  IMG=$IMG_CONF boot --cmdline "$BASE unionroot.nfsvers=3" "${ROOTED[@]}" "${LAYERED[@]}" \
    --expect "linuxrc: mount -t nfs -o ro,vers=3,[^ ]* $S:/srv/system /run/unionroot/lower$E" \
    --expect "linuxrc: mount -t nfs -o ro,nodev,vers=3,[^ ]* $S:/srv/layer /run/unionroot/lower1$E" \
    --expect 'linuxrc: mount -t overlay -o lowerdir=/run/unionroot/lower1:/run/unionroot/lower,upperdir=/run/unionroot/rw/upper,workdir=/run/unionroot/rw/work,index=off,metacopy=off,redirect_dir=off,xino=off overlay /newroot'"$E" \
    --expect '^PROOF nfs-mounts=/run/unionroot/lower:3 /run/unionroot/lower1:3'"$E" || return 1
  # The shadowed file is still there, unchanged, in the base.
  file_is "$SYS/etc/unionroot-layer" '^base'"$E"
}

case_writes_tmpfs() {
  boot --cmdline "$BASE $LOWERS3" "${ROOTED[@]}" "${LAYERED[@]}" \
    --expect '^PROOF upper-fs=tmpfs'"$E" --expect '^PROOF upper-has-write=yes'"$E" \
    --expect '^PROOF lower-has-write=no'"$E" || return 1
  # boot.sh compared the manifests (type, mode, owner, size, sha256) of both exports.
  local m
  for m in manifest-before manifest-after manifest-before-layer manifest-after-layer; do
    [ -s "$RUN/$m" ] || { why "no $m: the export was not checked"; return 1; }
  done
  none_in proof-write "$SYS" "$LAYER"
}

case_home_rw() {
  fresh "$HOMEDIR"
  boot --export "home=$HOMEDIR:rw" \
    --cmdline "$BASE ip=::::node-h::dhcp $LOWERS3 unionroot.mount=/home=$S:/srv/home" \
    "${ROOTED[@]}" --expect '^PROOF home=10\.0\.2\.2:/srv/home write=ok'"$E" \
    --expect "linuxrc: mount -t nfs -o nosuid,nodev,vers=3,proto=tcp,[^ ]* $S:/srv/home /newroot/home$E" \
    --forbid "linuxrc: mount -t nfs -o ro,[^ ]* $S:/srv/home " || return 1
  file_is "$HOMEDIR/proof-home-node-h" '^written by node-h at [0-9.]+'"$E"
}

# persist_boot NAME NODE SEEN LAST: one boot of NODE with /var/log on the persist export; the
# real init must find SEEN earlier boots' lines there, the last one by LAST.
persist_boot() {
  RUN=$OUT/$CASE/$1
  boot --export "persist=$PERSIST:rw" \
    --cmdline "$BASE ip=::::$2::dhcp $LOWERS3 unionroot.persist=$S:/srv/persist unionroot.persist_paths=/var/log" \
    "${ROOTED[@]}" --expect "linuxrc: hostname $2$E" \
    --expect "linuxrc: mkdir -p -m 755 /run/unionroot/persist/nodes/$2/var/log$E" \
    --expect "linuxrc: mount --bind /run/unionroot/persist/nodes/$2/var/log /newroot/var/log$E" \
    --expect "^PROOF persist-seen=$3 persist-last=$4$E"
}

case_persist() {
  fresh "$PERSIST"
  persist_boot 1-node-a node-a 0 '' &&
    persist_boot 2-node-a-again node-a 1 node-a &&
    persist_boot 3-node-b node-b 0 '' || return 1
  file_is "$PERSIST/nodes/node-a/var/log/proof-persist" '^node-a boot at ' || return 1
  file_is "$PERSIST/nodes/node-b/var/log/proof-persist" '^node-b boot at ' || return 1
  local a b
  a=$(wc -l <"$PERSIST/nodes/node-a/var/log/proof-persist")
  b=$(wc -l <"$PERSIST/nodes/node-b/var/log/proof-persist")
  [ "$a/$b" = 2/1 ] || { why "boots recorded: node-a $a, node-b $b (want 2 and 1)"; return 1; }
}

# full_stack V LOWERS HOME-PATH PERSIST-PATH: two lowers, /home and a per-node /var/log, all
# over NFS version V.
full_stack() {
  fresh "$HOMEDIR" "$PERSIST"
  local nv=$1 t=nfs
  [ "$nv" = 3 ] || t=nfs4
  boot --nfs "v${nv%%.*}" --export "home=$HOMEDIR:rw" --export "persist=$PERSIST:rw" \
    --cmdline "$BASE ip=::::node-s::dhcp unionroot.nfsvers=${nv%%.*} $2 unionroot.mount=/home=$S:$3 unionroot.persist=$S:$4 unionroot.persist_paths=/var/log" \
    "${ROOTED[@]}" "${LAYERED[@]}" --forbid "linuxrc: mount -t nfs(4)? -o [^ ]*vers=[^${nv%%.*}]" \
    --expect "linuxrc: mount -t $t -o [^ ]*vers=$nv,[^ ]* $S:$3 /newroot/home$E" \
    --expect "^PROOF nfsvers=$nv$E" --expect "^PROOF home=$S:$3 write=ok$E" \
    --expect "^PROOF nfs-mounts=/run/unionroot/lower:$nv /run/unionroot/lower1:$nv /home:$nv /run/unionroot/persist:$nv /var/log:$nv$E" \
    --expect '^PROOF persist-seen=0 persist-last='"$E" || return 1
  file_is "$HOMEDIR/proof-home-node-s" '^written by node-s at ' &&
    file_is "$PERSIST/nodes/node-s/var/log/proof-persist" '^node-s boot at '
}

case_v4_only() {
  full_stack 4.2 "$LOWERS4" /home /persist || return 1
  # No rpcbind ran: ganesha served NFSv4 alone.
  if [ -s "$RUN/rpcbind.log" ] || ! grep -q 'Protocols = 4;' "$RUN/ganesha.conf"; then
    why "the server was not v4-only: see $RUN/ganesha.conf"
    return 1
  fi
}

case_v3() {
  full_stack 3 "$LOWERS3" /srv/home /srv/persist
}

# A v3 read-write mount with default options: linuxrc mounts it nolock. With NLM locking the
# kernel's lockd registers with an rpcbind in the client, which the initramfs does not have:
# mount(2) fails with ECONNREFUSED ("svc: failed to register lockdv1 RPC service (errno 111)")
# and linuxrc would retry it as an unreachable server until unionroot.mount_timeout.
case_v3_rw_nolock() {
  fresh "$HOMEDIR"
  boot --export "home=$HOMEDIR:rw" --timeout 45 \
    --cmdline "$BASE ip=::::node-l::dhcp $LOWERS3 unionroot.mount=/home=$S:/srv/home unionroot.mount_timeout=10" \
    "${ROOTED[@]}" --expect '^PROOF home=10\.0\.2\.2:/srv/home write=ok'"$E" \
    --expect "linuxrc: mount -t nfs -o nosuid,nodev,vers=3,proto=tcp,nolock,[^ ]* $S:/srv/home " \
    --forbid 'lockd_up: makesock failed' --forbid 'failed to register lockd'
}

# failover_boot NAME DEAD: one boot whose lower lists DEAD before the live server; the probe's
# verdict on DEAD and the time it cost go to the case's "gaps".
failover_boot() {
  local dead=${2//./\\.}
  RUN=$OUT/$CASE/$1
  boot --cmdline "$BASE unionroot.lower=$2|$S:/srv/system" "${ROOTED[@]}" \
    --expect "linuxrc: mount -t nfs -o ro,[^ ]* $dead:/srv/system /run/unionroot/lower \(failover: $S:/srv/system\)$E" \
    --expect "linuxrc: $dead:/srv/system: E[A-Z]+: " \
    --expect "linuxrc: /run/unionroot/lower: served by $S \(server 2 of 2, round 1\)$E" \
    --expect "^PROOF lower=$S:/srv/system$E" || return 1
  grep -aoE "linuxrc: $dead:/srv/system: E[A-Z]+: [^(]*" "$(console)" | head -1 |
    sed "s/^linuxrc: /$1: /" >>"$OUT/$CASE/gaps"
}

case_failover() {
  # 10.0.2.5 is inside QEMU's user network, but nothing answers its ARP requests: a dropping
  # server. linuxrc's probe gives up on it at its 3 s bound (logged as EIO: Rust's
  # connect_timeout reports a timeout without an errno) and the second server serves.
  failover_boot 1-drop 10.0.2.5 &&
    within 'linuxrc: mount -t nfs .*10\.0\.2\.5' 'served by' 4.5 2.5 || return 1
  # 192.0.2.1 (TEST-NET-1) goes through the gateway to QEMU, whose connect() in our namespace
  # (loopback only) fails at once: QEMU answers ICMP net unreachable, a refusing server.
  failover_boot 2-refuse 192.0.2.1 &&
    within 'linuxrc: mount -t nfs .*192\.0\.2\.1' 'served by' 1
}

case_late_server() {
  # ganesha starts 20 s after linuxrc's first NFS mount line (not after QEMU's start: on a
  # loaded machine the guest may need more than 20 s to get there).
  boot --nfs-delay 20 --nfs-after 'linuxrc: mount -t nfs' --timeout 120 \
    --cmdline "$BASE $LOWERS3" "${ROOTED[@]}" "${LAYERED[@]}" \
    --expect "linuxrc: $S:/srv/system: ECONNREFUSED: " \
    --expect 'linuxrc: no NFS server for /run/unionroot/lower yet; retrying for up to [0-9]+ s'"$E" \
    --expect "linuxrc: /run/unionroot/lower: served by $S \(server 1 of 1, round ([2-9]|[1-9][0-9]+)\)$E" ||
    return 1
  # The namespace's timings: when the console matched, and when ganesha started (ms).
  local matched started
  matched=$(sed -nE 's/^\+([0-9]+) ms: ganesha: console matched.*/\1/p' "$RUN/timings")
  started=$(sed -nE 's/^\+([0-9]+) ms: ganesha starting.*/\1/p' "$RUN/timings")
  echo "ganesha started $((${started:-0} - ${matched:-0})) ms after the first mount line" >>"$OUT/$CASE/gaps"
  if [ -z "$matched" ] || [ -z "$started" ] || [ $((started - matched)) -lt 20000 ]; then
    why "ganesha did not start 20 s after the first mount line: see $RUN/timings"
    return 1
  fi
  # linuxrc waited those 20 s (plus at most one 2 s back-off step) in the guest's time too.
  within 'linuxrc: mount -t nfs .*/srv/system ' 'served by' 26 19
}

case_wrong_path() {
  boot --cmdline "$BASE unionroot.lower=$S:/srv/nonexistent" --timeout 40 \
    --until 'linuxrc: boot failed; waiting' \
    --expect "linuxrc: FATAL: root: .*$S:/srv/nonexistent" \
    --expect "linuxrc: hint: the server $S refused the path" \
    --forbid 'linuxrc: no NFS server for' --forbid 'unionroot-demo: real init started' || return 1
  within 'linuxrc: mount -t nfs .*/srv/nonexistent' 'linuxrc: FATAL' 2
}

case_upper_enospc() {
  boot --cmdline "$BASE $LOWERS3 unionroot.size=8m proof.fill_mb=16" "${ROOTED[@]}" \
    --expect 'linuxrc: mount -t tmpfs -o size=8m,mode=0755 tmpfs /run/unionroot/rw'"$E" \
    --expect '^PROOF enospc=yes rc=1 filled=[0-9]+ upper-size=8192k'"$E" || return 1
  local filled
  filled=$(grep -aoE '^PROOF enospc=yes rc=1 filled=[0-9]+' "$(console)" | sed 's/.*filled=//')
  echo "filled $filled bytes of the 8 MB upper before ENOSPC" >>"$OUT/$CASE/gaps"
  if [ "$filled" -le $((6 << 20)) ] || [ "$filled" -gt $((8 << 20)) ]; then
    why "wrote $filled bytes: not the upper's 8 MB"
    return 1
  fi
  none_in proof-fill "$SYS" "$LAYER"
}

# pivot_boot SETUP-EXPORT-SUFFIX: the seed's mode. The kernel mounts the setup tree (busybox,
# /linuxrc, /etc/unionroot.conf naming the lower) as its root and runs /linuxrc from it: no
# initramfs. linuxrc must reuse the kernel's network, build the stack and pivot_root into it.
pivot_boot() {
  local kdir
  kdir=$(nfsroot_kernel) || return 1
  KDIR=$kdir IMG=none boot --export "setup=$SETUP$1" \
    --cmdline "$BASE root=/dev/nfs nfsroot=$S:/srv/setup,vers=3,tcp ip=dhcp init=/linuxrc" \
    "${ROOTED[@]}" \
    --expect 'IP-Config: Complete' --expect 'VFS: Mounted root \(nfs filesystem\)' \
    --expect 'Run /linuxrc as init process' \
    --expect 'linuxrc: no /lib/modules/[^ ]+/modules.dep: assuming the drivers are built in' \
    --expect 'linuxrc: eth0: 10\.0\.2\.15/24 configured by the kernel \([^)]*\), reusing it: no DHCP'"$E" \
    --forbid 'linuxrc: dhcp eth0: DISCOVER' \
    --expect 'linuxrc: / is a real filesystem \(init=/linuxrc from an NFS root\): will pivot_root'"$E" \
    --expect "linuxrc: mount -t nfs -o ro,vers=3,[^ ]* $S:/srv/system /run/unionroot/lower$E" \
    --expect 'linuxrc: pivot_root /newroot /newroot/run/unionroot/oldroot; umount -l /run/unionroot/oldroot; exec /sbin/init'"$E" \
    --expect 'linuxrc: mount --move /run /newroot/run'"$E" \
    --expect '^PROOF pid=1'"$E" --expect "^PROOF lower=$S:/srv/system$E" \
    --expect '^PROOF layer=base'"$E" --expect '^PROOF upper-has-write=yes'"$E" \
    --expect '^PROOF oldroot=detached'"$E"
}

case_nfsroot_pivot() {
  # The setup tree is exported read-write here (nfsroot-pivot-ro has it read-only); linuxrc must
  # leave it unchanged all the same.
  ur_manifest "$SETUP" >"$OUT/$CASE/setup-manifest-before"
  pivot_boot :rw || return 1
  ur_manifest "$SETUP" >"$OUT/$CASE/setup-manifest-after"
  cmp -s "$OUT/$CASE/setup-manifest-before" "$OUT/$CASE/setup-manifest-after" ||
    { why "the setup tree changed: diff $OUT/$CASE/setup-manifest-{before,after}"; return 1; }
}

# The seed's layout, /client/setup exported read-only: linuxrc must not mkdir what exists there
# (mkdir(2) says EROFS before EEXIST on a read-only mount).
case_nfsroot_pivot_ro() {
  pivot_boot ""
}

# --- a real distribution: Debian 12 with systemd ------------------------------------------------

# The Debian node on the tap network: its MAC, the name and the 2-minute lease dnsmasq gives it
# (networkd must renew within the boot), and the server it sees.
DEB_MAC=52:54:00:77:00:01 DEB_NAME=deb-node DEB_SRV=192.168.77.1
DEB_NET=(--nic "br0 mac=$DEB_MAC" --dhcp "br0 arg=--dhcp-host=$DEB_MAC,$DEB_NAME,2m" --mem 1024)
DEB=""

# debian_image: the Debian root, built once per run by the host tool (`unionroot image`) from a
# cluster.toml with the test probe (tests/fixtures/debian/files) as its [image] files
# (ur_debian_image in qemu/lib.sh, shared with qemu/bench.sh). mmdebstrap's result is cached
# under $UNIONROOT_CACHE, keyed by its inputs.
debian_image() {
  [ -z "$DEB" ] || return 0
  local d=$OUT/debian
  if ! ur_debian_image "$KDIR" "$d" "$DEB_SRV"; then
    why "unionroot image failed: see $d/image.log"
    return 1
  fi
  DEB=$d/root
}

# debian_boot NFS-VERSION ROOT-ARGS EXTRA-ARGS...: boots the Debian image until its probe
# (tests/fixtures/debian/files/usr/local/sbin/unionroot-probe) powers it off, and checks what the
# probe saw and what the DHCP server saw. The PROOF lines are not anchored: the serial getty's
# "login:" prompt shares the console and can stand before one.
debian_boot() {
  local nv=$1 root=$2
  shift 2
  debian_image || return 1
  SYS=$DEB boot "${DEB_NET[@]}" --timeout 400 \
    --cmdline "$BASE $root unionroot.nfsvers=$nv" "$@" \
    --expect 'PROOF system=running'"$E" --expect 'PROOF failed-units=none'"$E" \
    --expect 'PROOF root=overlay'"$E" --expect "PROOF hostname=$DEB_NAME$E" \
    --expect 'PROOF machine-id=33'"$E" --expect 'PROOF kernel-modules=yes'"$E" \
    --expect 'PROOF networkd=configured/routable'"$E" --expect 'PROOF upper-has-write=yes'"$E" \
    --expect 'PROOF lease-renewed=yes' --expect 'PROOF addresses-deleted=0'"$E" \
    --expect 'PROOF done'"$E" --expect 'reboot: Power down' \
    --expect "linuxrc: hostname $DEB_NAME$E" \
    --forbid 'linuxrc: FATAL' --forbid 'blocked for more than' \
    --forbid 'cannot rename to' --forbid 'Unknown key' || return 1
  # networkd's own client (the second xid the server acknowledged, after linuxrc's) renewed:
  # the server acknowledged it more than once.
  local log=$RUN/dnsmasq-0.log xids nd acks addrs
  mapfile -t xids < <(sed -nE "s/.* ([0-9]+) DHCPACK\(br0\) [0-9.]+ $DEB_MAC.*/\1/p" "$log" | uniq)
  nd=${xids[1]:-none}
  acks=$(grep -cE " $nd DHCPACK\(br0\) [0-9.]+ $DEB_MAC" "$log" || true)
  echo "DHCP clients (xid): ${xids[*]}; ACKs to networkd's: $acks" >>"$OUT/$CASE/gaps"
  if [ "$acks" -lt 2 ]; then
    why "networkd did not renew its lease: see $log"
    return 1
  fi
  # Every lease went to one address: nothing renumbered the interface under the root.
  addrs=$(sed -nE "s/.* DHCPACK\(br0\) ([0-9.]+) $DEB_MAC.*/\1/p" "$log" | sort -u | wc -l)
  [ "$addrs" = 1 ] || { why "the node was given $addrs addresses: see $log"; return 1; }
}

case_debian_v3() {
  debian_boot 3 "nfsroot=$DEB_SRV:/srv/system"
}

case_debian_v4() {
  fresh "$HOMEDIR"
  debian_boot 4.2 "nfsroot=$DEB_SRV:/system unionroot.mount=/home=$DEB_SRV:/home" \
    --nfs v4 --export "home=$HOMEDIR:rw" --expect 'PROOF home=write-ok'"$E" \
    --expect "linuxrc: ! stat -c '%u %g' /run/unionroot/lower \| grep -qwE '65534\|4294967294'$E" ||
    return 1
  file_is "$HOMEDIR/proof-home" "^written by $DEB_NAME$E"
}

# The Debian root as an image: the host tool packs it (EROFS, the default) into a generation,
# and the node boots it loop-mounted from the images export; the tree itself is exported too
# (debian_boot's manifest check covers it) but not mounted.
case_debian_image() {
  local imgs=$OUT/$CASE/images gen
  debian_image || return 1
  rm -rf "$imgs" && mkdir -p "$imgs"
  "$UR_TOOL" image-pack "$DEB" --images "$imgs" --name debian >"$OUT/$CASE/pack.log" 2>&1 ||
    { why "image-pack failed: see $OUT/$CASE/pack.log"; return 1; }
  gen=$(cat "$imgs/debian.current")
  IMG=$IMG_IMAGE debian_boot 3 "unionroot.image=$DEB_SRV:/srv/images/debian" \
    --export "images=$imgs" \
    --expect "linuxrc: image debian from $DEB_SRV:/srv/images: pinned generation ${gen:7:16} \\($gen\\)$E" \
    --expect "linuxrc: mount -t erofs -o ro /dev/loop[0-9]+ /run/unionroot/lower$E" \
    --forbid 'mount -t nfs[^ ]* [^ ]* [^ ]*:/srv/system '
}

# Without numeric owners the lower's root shows as owned by the unmapped ids: the boot must stop
# there, named, instead of reaching systemd and hanging minutes later in request-key.
case_debian_owner_names() {
  debian_image || return 1
  SYS=$DEB boot "${DEB_NET[@]}" --nfs v4 --nfs-owners names --timeout 60 \
    --cmdline "$BASE nfsroot=$DEB_SRV:/system unionroot.nfsvers=4.2" \
    --until 'linuxrc: boot failed; waiting' \
    --expect 'linuxrc: FATAL: root: .*owned by 4294967294:4294967294, the ids of an NFSv4 owner this node cannot map' \
    --expect 'linuxrc: hint: .*Only_Numeric_Owners' \
    --forbid 'systemd\[1\]' --forbid 'blocked for more than' || return 1
  within 'linuxrc: mount -t nfs4 ' 'linuxrc: FATAL' 3
}

# nfsroot_kernel: the cache directory of qemu/build-kernel.sh's kernel, built on first use (that
# takes minutes); UNIONROOT_NFSROOT_KERNEL_DIR names one instead.
nfsroot_kernel() {
  if [ -n "${UNIONROOT_NFSROOT_KERNEL_DIR:-}" ]; then
    echo "$UNIONROOT_NFSROOT_KERNEL_DIR"
    return
  fi
  local d
  d=$("$UR_QEMU/build-kernel.sh" 2>"$OUT/$CASE/build-kernel.err") ||
    { why "qemu/build-kernel.sh failed: see $OUT/$CASE/build-kernel.err"; return 1; }
  [ -f "$d/vmlinux" ] || { why "no vmlinux in $d"; return 1; }
  echo "$d"
}

# --- image roots (issue 9) ---------------------------------------------------------------------

# image_boot IMAGES-DIR SPEC EXTRA-CMDLINE ARGS...: a boot with IMAGES-DIR exported read-only as
# /srv/images (v4: /images) and unionroot.image=SPEC, from the initramfs that carries loop,
# squashfs and erofs.
image_boot() {
  local dir=$1 spec=$2 extra=$3
  shift 3
  IMG=$IMG_IMAGE boot --export "images=$dir" --cmdline "$BASE unionroot.image=$spec $extra" "$@"
}

case_image_v3() {
  image_boot "$IMAGES" "$S:/srv/images/system" "unionroot.nfsvers=3 unionroot.lower=$S:/srv/layer" \
    "${ROOTED[@]}" "${LAYERED[@]}" "${IMAGED[@]}" \
    --expect "linuxrc: mount -t nfs -o ro,nodev,vers=3,[^ ]* $S:/srv/images /run/unionroot/images$E" \
    --expect '^PROOF lower-has-write=no'"$E"
}

case_image_v4() {
  image_boot "$IMAGES" "$S:/images/system" "unionroot.nfsvers=4.2" \
    "${ROOTED[@]}" "${IMAGED[@]}" \
    --expect "linuxrc: mount -t nfs4 -o ro,nodev,vers=4.2,[^ ]* $S:/images /run/unionroot/images$E" \
    --expect '^PROOF lowerdir=/run/unionroot/lower'"$E" --expect '^PROOF layer=base'"$E"
}

case_image_erofs() {
  image_boot "$IMAGES_EROFS" "$S:/srv/images/system" "unionroot.nfsvers=3" "${ROOTED[@]}" \
    --expect "linuxrc: insmod [^ ]*crc32c_generic\\.ko" --expect "linuxrc: insmod [^ ]*libcrc32c\\.ko" \
    --expect "linuxrc: image system from $S:/srv/images: pinned generation $GEN_EROFS \\(system-$GEN_EROFS\\.erofs\\)$E" \
    --expect "linuxrc: mount -t erofs -o ro /dev/loop[0-9]+ /run/unionroot/lower$E" \
    --expect '^PROOF lowerdir=/run/unionroot/lower'"$E" --expect '^PROOF layer=base'"$E"
}

case_image_ram() {
  image_boot "$IMAGES" "$S:/srv/images/system" "unionroot.nfsvers=3 unionroot.image_ram" \
    "${ROOTED[@]}" \
    --expect "linuxrc: image system from $S:/srv/images: pinned generation $GEN1 " \
    --expect "linuxrc: cp /run/unionroot/images/system-$GEN1\\.sqfs /run/unionroot/image-ram/system-$GEN1\\.sqfs$E" \
    --expect "linuxrc: image in RAM: [0-9]+ bytes \\([0-9]+ MiB\\) in [0-9]+\\.[0-9]{3} s$E" \
    --expect "linuxrc: losetup --read-only --find --show /run/unionroot/image-ram/system-$GEN1\\.sqfs$E" \
    --expect "linuxrc: umount -l /run/unionroot/images$E" \
    --expect '^PROOF lowerdir=/run/unionroot/lower'"$E" --expect '^PROOF nfs-mounts='"$E"
}

# The host tool's publish, as the tests do it: the new generation's file first (written under a
# temporary name, then renamed), then the pointer, atomically by rename.
# publish TREE DIR [ARGS...]: the host tool packs TREE as a new generation of the image "system"
# in DIR (EROFS, the default format) and switches the pointer to it; prints the generation's file.
publish() {
  local tree=$1 dir=$2
  shift 2
  "$UR_TOOL" image-pack "$tree" --images "$dir" --name system "$@" >>"$OUT/$CASE/publish.log" 2>&1 ||
    { why "image-pack $tree failed: see $OUT/$CASE/publish.log"; return 1; }
  cat "$dir/system.current"
}

# The node boots on generation 1 (an older generation 0 is in the log too). While it runs, the
# host tool publishes generation 2 and runs gc with its default K (2): gc deletes generation 0,
# keeps the one the node runs on, and the node then reads its whole image again.
case_image_switch() {
  local imgs=$OUT/images-switch home=$OUT/home-switch sys0=$OUT/system0 g0 g1 g2 sum1 pub i
  rm -rf "$imgs" "$sys0" && mkdir -p "$imgs" && cp -a "$SYS" "$sys0"
  echo gen0 >"$sys0/etc/unionroot-layer"
  fresh "$home"
  g0=$(publish "$sys0" "$imgs") && g1=$(publish "$SYS" "$imgs") || return 1
  sum1=$(sha256sum <"$imgs/$g1")
  mkdir -p "$RUN" && rm -f "$RUN/console.log"
  # The publisher: once the node waits, publish generation 2, gc, and tell the node (/home/go).
  (
    for ((i = 0; i < 600; i++)); do
      grep -aq '^PROOF gen-switch waiting' "$RUN/console.log" 2>/dev/null && break
      sleep 0.2
    done
    publish "$OUT/system2" "$imgs" >"$OUT/$CASE/gen2" &&
      "$UR_TOOL" image-gc --images "$imgs" --name system >>"$OUT/$CASE/publish.log" 2>&1 &&
      : >"$home/go"
  ) &
  pub=$!
  image_boot "$imgs:rw" "$S:/srv/images/system" \
    "unionroot.nfsvers=3 unionroot.mount=/home=$S:/srv/home proof.gen_switch" \
    --export "home=$home:rw" "${ROOTED[@]}" \
    --expect "linuxrc: image system from $S:/srv/images: pinned generation ${g1:7:16} \\($g1\\)$E" \
    --expect "linuxrc: mount -t erofs -o ro /dev/loop[0-9]+ /run/unionroot/lower$E" \
    --expect "^PROOF gen-pinned=$g1$E" --expect '^PROOF layer=base'"$E" \
    --expect "^PROOF gen-read=ok tar-bytes=[1-9][0-9]* dev-bytes=[1-9][0-9]*$E" || {
    kill "$pub" 2>/dev/null
    return 1
  }
  wait "$pub" || { why "publishing generation 2 or gc failed: see $OUT/$CASE/publish.log"; return 1; }
  g2=$(cat "$OUT/$CASE/gen2")
  [ "$(sha256sum <"$imgs/$g1")" = "$sum1" ] || { why "generation 1 changed on the server"; return 1; }
  [ ! -e "$imgs/$g0" ] || { why "gc kept generation 0 ($g0): see $OUT/$CASE/publish.log"; return 1; }
  [ -e "$imgs/$g2" ] || { why "generation 2 ($g2) is gone"; return 1; }
  file_is "$imgs/system.current" "^$g2\$" || return 1
  # The node's own view of the pointer is not asserted: ganesha serves a name changed behind its
  # back from its cache for a while. A new boot (a new server) pins generation 2.
  RUN=$OUT/$CASE/2-next-boot
  image_boot "$imgs" "$S:/srv/images/system" "unionroot.nfsvers=3" "${ROOTED[@]}" \
    --expect "linuxrc: image system from $S:/srv/images: pinned generation ${g2:7:16} " \
    --expect '^PROOF layer=gen2'"$E"
}

# A cluster that boots from an image, driven by its cluster.toml alone: the host tool publishes
# the base system into [images] dir and builds the initramfs (with /etc/unionroot.conf naming
# the image and the cluster layer); the command line says nothing about the root.
case_image_cluster() {
  local d=$OUT/$CASE ver gen
  ver=$(cat "$KDIR/version")
  rm -rf "$d/images" "$d/initrd.img" && mkdir -p "$d/images"
  cat >"$d/cluster.toml" <<EOF
[server]
address = "$S"
network = "10.0.2.0"
netmask = "255.255.255.0"

[exports]
system = "/srv/layer"
images = "/srv/images"

[images]
dir = "images"
name = "system"

[paths]
setup_tree = "$d/setup"
tftp_root = "$d/tftp"
initramfs = "$d/initrd.img"

[kernel]
image = "$KDIR/vmlinuz"
modules_dir = "$KDIR/lib/modules/$ver"

[initramfs]
linuxrc = "$UR_LINUXRC"
EOF
  if ! { "$UR_TOOL" image-pack -c "$d/cluster.toml" "$SYS" &&
    "$UR_TOOL" initramfs -c "$d/cluster.toml"; } >"$d/host-tool.log" 2>&1; then
    why "the host tool failed: see $d/host-tool.log"
    return 1
  fi
  gen=$(cat "$d/images/system.current")
  IMG=$d/initrd.img boot --export "images=$d/images" --cmdline "$BASE" "${ROOTED[@]}" "${LAYERED[@]}" \
    --expect "linuxrc: image system from $S:/srv/images: pinned generation ${gen:7:16} \\($gen\\)$E" \
    --expect "linuxrc: mount -t erofs -o ro /dev/loop[0-9]+ /run/unionroot/lower$E" \
    --expect "linuxrc: mount -t nfs -o ro,nodev,vers=3,[^ ]* $S:/srv/layer /run/unionroot/lower1$E"
}

case_image_missing() {
  image_boot "$IMAGES_MISSING" "$S:/srv/images/system" "unionroot.nfsvers=3" --timeout 40 \
    --until 'linuxrc: boot failed; waiting' \
    --expect "linuxrc: FATAL: root: .*image system generation $GEN1 \\($S:/srv/images/system-$GEN1\\.sqfs\\): cannot read it: ENOENT" \
    --forbid 'unionroot-demo: real init started' || return 1
  within 'linuxrc: cat /run/unionroot/images/system.current' 'linuxrc: FATAL' 2
}

case_image_truncated() {
  image_boot "$IMAGES_TRUNC" "$S:/srv/images/system" "unionroot.nfsvers=3" --timeout 40 \
    --until 'linuxrc: boot failed; waiting' \
    --expect "linuxrc: FATAL: root: .*image system generation $GEN1 \\($S:/srv/images/system-$GEN1\\.sqfs\\): truncated: the file has [0-9]+ bytes, its squashfs superblock records [0-9]+" \
    --forbid 'linuxrc: losetup' --forbid 'unionroot-demo: real init started' || return 1
  within 'linuxrc: cat /run/unionroot/images/system.current' 'linuxrc: FATAL' 2
}

case_image_corrupt() {
  image_boot "$IMAGES_CORRUPT" "$S:/srv/images/system" "unionroot.nfsvers=3" --timeout 40 \
    --until 'linuxrc: boot failed; waiting' \
    --expect "linuxrc: losetup --read-only --find --show /run/unionroot/images/system-$GEN1\\.sqfs$E" \
    --expect "linuxrc: FATAL: root: .*image system generation $GEN1 \\($S:/srv/images/system-$GEN1\\.sqfs\\): \`mount -t squashfs -o ro /dev/loop0 /run/unionroot/lower\` failed: E[A-Z]+" \
    --expect '\] unable to read id index table' --forbid 'unionroot-demo: real init started' || return 1
  within 'linuxrc: cat /run/unionroot/images/system.current' 'linuxrc: FATAL' 2
}

# image_fixtures: the base system as a reproducible squashfs, published as the host tool does
# (system-<hash>.sqfs and the pointer system.current) in IMAGES; IMAGES_MISSING has only the
# pointer; IMAGES_TRUNC has the image cut to half its length; IMAGES_CORRUPT keeps its length
# and superblock (the first 96 bytes) but has everything after them zeroed.
image_fixtures() {
  command -v mksquashfs >/dev/null || ur_die "mksquashfs is missing: apt-get install squashfs-tools"
  IMAGES=$OUT/images IMAGES_MISSING=$OUT/images-missing IMAGES_TRUNC=$OUT/images-trunc
  IMAGES_CORRUPT=$OUT/images-corrupt
  rm -rf "$IMAGES" "$IMAGES_MISSING" "$IMAGES_TRUNC" "$IMAGES_CORRUPT"
  mkdir -p "$IMAGES" "$IMAGES_MISSING" "$IMAGES_TRUNC" "$IMAGES_CORRUPT"
  mksquashfs "$SYS" "$OUT/system.sqfs" -noappend -all-root -mkfs-time 0 -all-time 0 \
    -no-progress -quiet >&2
  GEN1=$(sha256sum "$OUT/system.sqfs" | cut -c1-16)
  mv "$OUT/system.sqfs" "$IMAGES/system-$GEN1.sqfs"
  echo "system-$GEN1.sqfs" | tee "$IMAGES_MISSING/system.current" "$IMAGES_TRUNC/system.current" \
    "$IMAGES_CORRUPT/system.current" >"$IMAGES/system.current"
  # Generation 2 (image-switch): the same tree, saying so in /etc/unionroot-layer.
  rm -rf "$OUT/system2" && cp -a "$SYS" "$OUT/system2"
  echo gen2 >"$OUT/system2/etc/unionroot-layer"
  head -c "$(($(stat -c %s "$IMAGES/system-$GEN1.sqfs") / 2))" "$IMAGES/system-$GEN1.sqfs" \
    >"$IMAGES_TRUNC/system-$GEN1.sqfs"
  local size
  size=$(stat -c %s "$IMAGES/system-$GEN1.sqfs")
  { head -c 96 "$IMAGES/system-$GEN1.sqfs"; head -c "$((size - 96))" /dev/zero; } \
    >"$IMAGES_CORRUPT/system-$GEN1.sqfs"
  # The image's console lines: the pointer read once, the generation pinned, attached, mounted.
  IMAGED=(--expect "linuxrc: cat /run/unionroot/images/system.current$E"
    --expect "linuxrc: image system from $S:/(srv/)?images: pinned generation $GEN1 \\(system-$GEN1\\.sqfs\\)$E"
    --expect "linuxrc: losetup --read-only --find --show /run/unionroot/images/system-$GEN1\\.sqfs$E"
    --expect "linuxrc: mount -t squashfs -o ro /dev/loop[0-9]+ /run/unionroot/lower$E")
  # The same tree as an EROFS generation, published by the host tool itself.
  IMAGES_EROFS=$OUT/images-erofs
  rm -rf "$IMAGES_EROFS" && mkdir -p "$IMAGES_EROFS"
  "$UR_TOOL" image-pack "$SYS" --images "$IMAGES_EROFS" --name system --format erofs >&2
  GEN_EROFS=$(sed -n 's/^system-\([0-9a-f]*\)\.erofs$/\1/p' "$IMAGES_EROFS/system.current")
  [ -n "$GEN_EROFS" ] || ur_die "image-pack --format erofs published no system-<hash>.erofs"
  # erofs needs libcrc32c, which needs crc32c by a softdep: the closure carries both.
  IMG_IMAGE=$OUT/initramfs-image.img
  ur_build_initramfs "$KDIR" "$UR_LINUXRC" "$IMG_IMAGE" --module loop --module squashfs --module erofs
}

# The fixtures: the base system (real-init.sh as /sbin/init) and a cluster-software layer over
# it, both saying which they are in /etc/unionroot-layer so that the file seen shows which layer
# is on top; an initramfs without and one with /etc/unionroot.conf; the seed's setup tree.
fixtures() {
  SYS=$OUT/system LAYER=$OUT/layer SETUP=$OUT/setup HOMEDIR=$OUT/home PERSIST=$OUT/persist
  ur_build_tree "$SYS"
  echo base >"$SYS/etc/unionroot-layer"
  rm -rf "$LAYER"
  mkdir -p "$LAYER/etc" "$LAYER/opt/cluster"
  echo cluster-software >"$LAYER/etc/unionroot-layer"
  echo "cluster software 1.0" >"$LAYER/opt/cluster/VERSION"
  IMG=$OUT/initramfs.img IMG_CONF=$OUT/initramfs-conf.img
  ur_build_initramfs "$KDIR" "$UR_LINUXRC" "$IMG"
  printf '%s\n' '# two read-only lowers, bottom first' "unionroot.lower=$S:/srv/system" \
    "unionroot.lower=$S:/srv/layer" >"$OUT/unionroot.conf"
  ur_build_initramfs "$KDIR" "$UR_LINUXRC" "$IMG_CONF" --config "$OUT/unionroot.conf"
  # The seed's /client/setup: busybox and linuxrc, with the system's lower in its config.
  printf '%s\n' "unionroot.lower=$S:/srv/system" >"$OUT/setup.conf"
  "$UR_TOOL" setup-tree --busybox "${UNIONROOT_BUSYBOX:-/bin/busybox}" --linuxrc "$UR_LINUXRC" \
    --config "$OUT/setup.conf" -o "$SETUP" --force >&2
  image_fixtures
}

e2e_main "$@"
