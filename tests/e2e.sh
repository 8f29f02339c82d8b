#!/usr/bin/env bash
# End-to-end tests: boot linuxrc in QEMU against a private NFS server (qemu/boot.sh) and check
# what the console says. Prints "ok NAME" or "FAIL NAME" per case, then "N passed, N failed";
# exits non-zero if any case failed.
#
#   tests/e2e.sh [--list] [CASE...]      (default: every case, in the order of CASES)
#
# To add a case: write a function case_<name> (dashes become underscores) that calls `boot` and
# any extra checks, returning non-zero on failure (`why` records the reason), and add a
# "name|description" line to CASES.
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "$0")/../qemu/lib.sh"

CASES=(
  "v3-overlay-root|NFSv3 boot reaches the real init, PID 1 on the overlay root"
  "v3-write-upper|a write lands in the tmpfs upper layer; the export stays byte-identical"
  "dhcp-lease|the address comes from DHCP (linuxrc's lease line, eth0 10.0.2.15/24)"
  "v4-only|NFSv4 boot against a v4-only ganesha, no rpcbind"
  "no-server|NFS server absent: FATAL names server and path, then waits, within the bound"
)

# Checked in every boot: the kernel must never die, whatever linuxrc runs into.
ALWAYS_FORBID=('Kernel panic' 'BUG: ' 'Oops: ')

OUT=$UR_OUT/e2e
# The case being run, and the file its extra failure reasons go to.
CASE="" REASONS=""

why() { echo "$*" >>"$REASONS"; }

# boot ARGS...: one qemu/boot.sh run for the current case, with its default fixtures; the
# verdict's details go to $OUT/$CASE/boot.out (boot.sh's FAIL lines become reasons).
boot() {
  local rc=0 f
  local args=(--initrd "$IMG" --kernel-dir "$KDIR" --dir "$OUT/$CASE" --log "$OUT/$CASE/console.log")
  for f in "${ALWAYS_FORBID[@]}"; do args+=(--forbid "$f"); done
  mkdir -p "$OUT/$CASE"
  "$UR_QEMU/boot.sh" "${args[@]}" "$@" >"$OUT/$CASE/boot.out" 2>&1 || rc=$?
  grep '^boot: FAIL: ' "$OUT/$CASE/boot.out" | sed 's/^boot: FAIL: //' >>"$REASONS" || true
  [ "$rc" = 0 ] || why "qemu/boot.sh exited $rc; see $OUT/$CASE/boot.out"
  return "$rc"
}
console() { echo "$OUT/$CASE/console.log"; }

# within FROM-ERE TO-ERE SECONDS: the kernel timestamps of the first lines matching FROM and TO
# are at most SECONDS apart (and in that order).
within() {
  local a b
  a=$(ur_ktime "$1" "$(console)") b=$(ur_ktime "$2" "$(console)")
  if [ -z "$a" ] || [ -z "$b" ]; then
    why "no timestamped line for '$1' or '$2'"
    return 1
  fi
  if awk -v a="$a" -v b="$b" -v s="$3" 'BEGIN { exit !(b >= a && b - a <= s) }'; then
    return 0
  fi
  why "'$2' came $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b - a }') s after '$1'; bound ${3} s"
  return 1
}

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
  grep -qE '^boot: export manifest: before ([0-9a-f]+) after \1 ' "$OUT/$CASE/boot.out" ||
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
    --expect 'PROOF nfsvers=4' --forbid 'linuxrc: FATAL' || return 1
  # The server really was v4-only: no rpcbind started, ganesha configured for 4 alone.
  [ ! -e "$OUT/$CASE/rpcbind.log" ] || { why "rpcbind was started"; return 1; }
  grep -q 'Protocols = 4;' "$OUT/$CASE/ganesha.conf" || { why "ganesha.conf is not v4-only"; return 1; }
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

# --- runner ------------------------------------------------------------------------------------

names=()
for c in "${CASES[@]}"; do names+=("${c%%|*}"); done
if [ "${1:-}" = --list ]; then
  for c in "${CASES[@]}"; do printf '%-18s %s\n' "${c%%|*}" "${c#*|}"; done
  exit 0
fi
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${names[@]}")
for s in "${selected[@]}"; do
  [[ " ${names[*]} " == *" $s "* ]] || ur_die "no case named $s (see --list)"
done

ur_bins
KDIR=$(ur_kernel_dir)
TREE=$OUT/tree IMG=$OUT/initramfs.img
mkdir -p "$OUT"
ur_build_tree "$TREE"
ur_build_initramfs "$KDIR" "$UR_LINUXRC" "$IMG"

# shellcheck disable=SC2317 # called by the trap
on_signal() { echo "interrupted during $CASE" >&2; }
ur_signal_traps on_signal
passed=0 failed=0
for CASE in "${selected[@]}"; do
  rm -rf "${OUT:?}/$CASE"
  mkdir -p "$OUT/$CASE"
  REASONS=$OUT/$CASE/reasons
  : >"$REASONS"
  t0=$SECONDS
  if "case_${CASE//-/_}"; then
    echo "ok $CASE ($((SECONDS - t0)) s)"
    passed=$((passed + 1))
  else
    echo "FAIL $CASE ($((SECONDS - t0)) s) log: $(console)"
    sed 's/^/    /' "$REASONS"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
