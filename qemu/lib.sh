# shellcheck shell=bash disable=SC2034 # the UR_* variables are for the sourcing scripts
# Helpers shared by qemu/*.sh and tests/*.sh. Source it; it defines functions and UR_* paths
# and has no side effects beyond that.

UR_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UR_QEMU=$UR_ROOT/qemu
UR_FIXTURES=$UR_ROOT/tests/fixtures
UR_OUT=${UNIONROOT_OUT:-$UR_ROOT/out}
# The modules every test initramfs carries. virtio_pci is the transport virtio_net sits on; it is
# not a modules.dep dependency of virtio_net, so it has to be named.
UR_MODULES=(virtio_pci virtio_net nfsv3 nfsv4 overlay)

ur_die() { echo "${0##*/}: $*" >&2; exit 1; }
ur_log() { echo "${0##*/}: $*" >&2; }

# ur_signal_traps CMD: on INT, TERM or HUP run CMD, then die of that same signal, so that the
# caller (make, tests/e2e.sh, a shell loop) sees the interruption and stops as well.
ur_signal_traps() {
  local sig
  for sig in INT TERM HUP; do
    # shellcheck disable=SC2064 # expand $sig now, $$ later
    trap "$1; trap - EXIT $sig; kill -s $sig \$\$" "$sig"
  done
}

# ur_kernel_dir: the cached kernel directory (vmlinux, lib/modules/<ver>, version).
ur_kernel_dir() {
  if [ -n "${UNIONROOT_KERNEL_DIR:-}" ]; then echo "$UNIONROOT_KERNEL_DIR"; return; fi
  "$UR_QEMU/fetch-kernel.sh"
}

# ur_kernel_dir_arm64: the same for arm64 nodes (Image instead of vmlinux).
ur_kernel_dir_arm64() {
  if [ -n "${UNIONROOT_KERNEL_DIR_ARM64:-}" ]; then echo "$UNIONROOT_KERNEL_DIR_ARM64"; return; fi
  "$UR_QEMU/fetch-kernel.sh" arm64
}

# ur_bins: builds (unless UNIONROOT_NO_BUILD=1) and sets UR_TOOL (host tool) and UR_LINUXRC.
ur_bins() {
  UR_TOOL=${UNIONROOT_TOOL:-${CARGO_TARGET_DIR:-$UR_ROOT/target}/release/unionroot}
  UR_LINUXRC=${UNIONROOT_LINUXRC:-${CARGO_TARGET_DIR:-$UR_ROOT/target}/x86_64-unknown-linux-musl/release/linuxrc}
  if [ "${UNIONROOT_NO_BUILD:-0}" != 1 ]; then
    (cd "$UR_ROOT" &&
      cargo build -q --release --locked -p unionroot &&
      cargo build -q --release --locked --target x86_64-unknown-linux-musl -p linuxrc) >&2 ||
      ur_die "cargo build failed"
  fi
  [ -x "$UR_TOOL" ] || ur_die "no host tool at $UR_TOOL (cargo build --release -p unionroot)"
  [ -x "$UR_LINUXRC" ] || ur_die "no linuxrc at $UR_LINUXRC (make linuxrc)"
}

# ur_bins_arm64: builds (unless UNIONROOT_NO_BUILD=1) and sets UR_LINUXRC_ARM64, linuxrc for
# aarch64 nodes (make linuxrc-arm64). Call ur_bins first for the host tool.
ur_bins_arm64() {
  UR_LINUXRC_ARM64=${UNIONROOT_LINUXRC_ARM64:-${CARGO_TARGET_DIR:-$UR_ROOT/target}/aarch64-unknown-linux-musl/release/linuxrc}
  if [ "${UNIONROOT_NO_BUILD:-0}" != 1 ]; then
    (cd "$UR_ROOT" &&
      cargo build -q --release --locked --target aarch64-unknown-linux-musl -p linuxrc) >&2 ||
      ur_die "cargo build --target aarch64-unknown-linux-musl failed (scripts/setup-host.sh installs its linker)"
  fi
  [ -x "$UR_LINUXRC_ARM64" ] || ur_die "no aarch64 linuxrc at $UR_LINUXRC_ARM64 (make linuxrc-arm64)"
}

# ur_arm64_deb PKG FILE: prints the path of FILE (a path inside the package) from Debian's arm64
# package PKG, downloaded with `apt-get download PKG:arm64` and unpacked once into
# $UNIONROOT_CACHE/debs/<PKG>_<version>_arm64, keyed by the candidate version.
ur_arm64_deb() {
  local pkg=$1 file=$2 ver dir tmp
  ver=$(apt-cache policy "$pkg:arm64" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
  case $ver in "" | "(none)") ur_die "no arm64 $pkg in apt's lists: run scripts/setup-host.sh (dpkg --add-architecture arm64; apt-get update)" ;; esac
  dir=${UNIONROOT_CACHE:-$HOME/.cache/unionroot}/debs/${pkg}_${ver//:/%}_arm64
  if [ ! -f "$dir/.complete" ]; then
    mkdir -p "${dir%/*}"
    tmp=$(mktemp -d "$dir.tmp.XXXXXX")
    (cd "$tmp" && apt-get download "$pkg:arm64" >/dev/null 2>&1) ||
      { rm -rf "$tmp"; ur_die "apt-get download $pkg:arm64 failed"; }
    dpkg-deb -x "$tmp"/*.deb "$tmp/root" || { rm -rf "$tmp"; ur_die "cannot unpack $pkg:arm64"; }
    rm -rf "$dir"
    mv "$tmp/root" "$dir"
    rm -rf "$tmp"
    touch "$dir/.complete"
  fi
  [ -e "$dir/$file" ] || ur_die "$pkg:arm64 $ver has no $file"
  echo "$dir/$file"
}

# ur_build_tree DIR [BUSYBOX]: the exported busybox system tree, with
# tests/fixtures/real-init.sh as /sbin/init (BUSYBOX: default $UNIONROOT_BUSYBOX or /bin/busybox).
ur_build_tree() {
  "$UR_TOOL" setup-tree --busybox "${2:-${UNIONROOT_BUSYBOX:-/bin/busybox}}" \
    --init-script "$UR_FIXTURES/real-init.sh" -o "$1" --force >&2
}

# ur_build_initramfs KDIR INIT OUT [extra host-tool args...]: an initramfs with INIT as /init and
# the UR_MODULES (and their dependencies) of the kernel in KDIR.
ur_build_initramfs() {
  local kdir=$1 init=$2 out=$3 ver m
  shift 3
  ver=$(cat "$kdir/version")
  local args=(initramfs --modules-dir "$kdir/lib/modules/$ver" --init "$init" -o "$out" --force)
  # Unsigned modules skip the kernel's sha256 over every module, which runs as generic C under
  # TCG and was measured at half of linuxrc's module phase. The kernel logs "module verification
  # failed" and taints E; UNIONROOT_STRIP_SIGNATURES=0 keeps the signatures. Applies to linuxrc
  # and baseline alike. The old name is refused rather than silently ignored.
  [ -z "${UR_STRIP_SIGNATURES+set}" ] ||
    ur_die "UR_STRIP_SIGNATURES is now UNIONROOT_STRIP_SIGNATURES"
  [ "${UNIONROOT_STRIP_SIGNATURES:-1}" = 0 ] || args+=(--strip-signatures)
  for m in "${UR_MODULES[@]}"; do args+=(--module "$m"); done
  "$UR_TOOL" "${args[@]}" "$@" >&2
}

# ur_debian_image KDIR DIR SERVER: the Debian 12 root as the host tool builds it (`unionroot
# image`), from a generated DIR/cluster.toml with the test probe (tests/fixtures/debian/files) as
# its [image] files, for the kernel in KDIR and a node network SERVER/24. The tree lands in
# DIR/root, the tool's output in DIR/image.log. mmdebstrap's result is cached under
# $UNIONROOT_CACHE (default ~/.cache/unionroot/images), keyed by its inputs, so this is quick
# after the first time. Needs ur_bins. Used by tests/e2e-root.sh and qemu/bench.sh.
ur_debian_image() {
  local kdir=$1 d=$2 srv=$3 ver
  ver=$(cat "$kdir/version")
  mkdir -p "$d"
  cat >"$d/cluster.toml" <<EOF
[server]
address = "$srv"
network = "${srv%.*}.0"
netmask = "255.255.255.0"

[exports]
system = "/srv/system"

[paths]
setup_tree = "$d/setup"
tftp_root = "$d/tftp"
initramfs = "$d/initrd.img"
image = "$d/root"

[kernel]
image = "$kdir/vmlinuz"
modules_dir = "$kdir/lib/modules/$ver"

[initramfs]
linuxrc = "$UR_LINUXRC"

[image]
files = "$UR_FIXTURES/debian/files"

[boot]
kernel_args = ["console=ttyS0"]
EOF
  "$UR_TOOL" image -c "$d/cluster.toml" --force >"$d/image.log" 2>&1
}

# ur_ktime ERE LOG: the kernel timestamp (seconds) of the first kernel-timestamped console line
# matching ERE; prints nothing (and still succeeds) when there is none.
ur_ktime() {
  { grep -aE -- "$1" "$2" 2>/dev/null |
    sed -nE '/^[^[]*\[ *[0-9]+\.[0-9]+\]/ { s/^[^[]*\[ *([0-9]+\.[0-9]+)\].*/\1/p; q }'; } || true
}

# ur_median: the median of the numbers on stdin, one a line ("-" when there are none).
ur_median() {
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "-"; exit }
    if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ur_manifest DIR: one line per entry of DIR, not crossing mounts (type, mode, owner, size, then
# the sha256 of a file, the target of a symlink or "-", then the path), sorted, so two manifests
# compare byte for byte. One process for the whole tree: a Debian root has ~17,000 entries, and a
# sha256sum per file took minutes on a busy machine.
ur_manifest() {
  python3 - "$1" <<'PY'
import hashlib, os, stat, sys
root = sys.argv[1]
dev = os.lstat(root).st_dev
out = []
for top, dirs, files in os.walk(root):
    for name in dirs + files:
        path = os.path.join(top, name)
        st = os.lstat(path)
        rel = "./" + os.path.relpath(path, root)
        if stat.S_ISDIR(st.st_mode) and st.st_dev != dev:
            dirs.remove(name)  # a mount point: list it, never cross it
        if stat.S_ISREG(st.st_mode):
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            what, kind = h.hexdigest(), "f"
        elif stat.S_ISLNK(st.st_mode):
            what, kind = "->" + os.readlink(path), "l"
        else:
            what, kind = "-", stat.filemode(st.st_mode)[0]
        out.append((rel, "%s %o %d:%d %d %s %r" % (kind, stat.S_IMODE(st.st_mode), st.st_uid,
                                                 st.st_gid, st.st_size, what, rel)))
for _, line in sorted(out):
    print(line)
PY
}

# Running qemu/ns-init.sh in fresh namespaces, and proving nothing of it survives.
#
# ur_spec FILE KEY=VALUE...: writes the spec that ns-init.sh reads (its header lists the keys,
# their defaults and meaning), one line per key, the value quoted for bash.
ur_spec() {
  local file=$1 kv
  shift
  for kv in "$@"; do printf '%s=%q\n' "${kv%%=*}" "${kv#*=}"; done >"$file"
}
#
# ur_ns_start UNSHARE-FLAGS... -- ARGS...: starts `unshare FLAGS ns-init.sh ARGS` in the
# background (UR_NS_SCRIPT, when set, names another PID 1 script: qemu/storm-ns.sh); sets
# UR_NS_UPID (unshare), UR_NS_INIT (the namespace's PID 1) and UR_NS_ID (its PID
# namespace, e.g. pid:[4026532300]). Stdout/stderr are inherited.
ur_ns_start() {
  local flags=()
  while [ "$1" != -- ]; do flags+=("$1"); shift; done
  shift
  # --kill-child: should our caller be killed outright, unshare dies and takes the namespace along.
  unshare "${flags[@]}" --pid --fork --mount-proc --kill-child=SIGKILL "${UR_NS_SCRIPT:-$UR_QEMU/ns-init.sh}" "$@" &
  UR_NS_UPID=$! UR_NS_INIT="" UR_NS_ID=""
  for _ in $(seq 300); do
    UR_NS_INIT=$(cat "/proc/$UR_NS_UPID/task/$UR_NS_UPID/children" 2>/dev/null || true)
    UR_NS_INIT=${UR_NS_INIT%% *}
    [ -z "$UR_NS_INIT" ] || UR_NS_ID=$(readlink "/proc/$UR_NS_INIT/ns/pid" 2>/dev/null || true)
    if [ -n "$UR_NS_ID" ]; then
      # Hold the namespace open until this shell exits: its inode number, which identifies it,
      # is not reused by another harness run's namespace meanwhile, so ur_ns_leftovers never
      # counts (and boot.sh never kills) another run's processes as ours.
      exec {UR_NS_FD}<"/proc/$UR_NS_INIT/ns/pid" 2>/dev/null || UR_NS_FD=""
      [ -n "$UR_NS_FD" ] && [ "$(readlink "/proc/$$/fd/$UR_NS_FD")" = "$UR_NS_ID" ] && return 0
      UR_NS_ID="" # the init died before the open; nothing of ours can be told apart
      return 0
    fi
    kill -0 "$UR_NS_UPID" 2>/dev/null || return 0
    sleep 0.01
  done
}

# ur_ns_stop: asks the namespace's PID 1 to clean up, then kills the whole namespace.
ur_ns_stop() {
  # Only while that PID still is the namespace's init: never signal a recycled PID.
  [ -n "${UR_NS_INIT:-}" ] && [ "$(readlink "/proc/$UR_NS_INIT/ns/pid" 2>/dev/null)" = "$UR_NS_ID" ] ||
    return 0
  kill -TERM "$UR_NS_INIT" 2>/dev/null || return 0
  for _ in $(seq 40); do kill -0 "$UR_NS_UPID" 2>/dev/null || return 0; sleep 0.1; done
  # SIGKILL to a PID namespace's init kills every process in that namespace.
  kill -KILL "$UR_NS_INIT" 2>/dev/null || true
}

# ur_ns_wait [SECONDS]: waits for the namespace to end (stopping it after SECONDS); returns
# ns-init's exit status.
ur_ns_wait() {
  local rc=0
  if [ -n "${1:-}" ]; then
    for _ in $(seq $(($1 * 10))); do kill -0 "$UR_NS_UPID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$UR_NS_UPID" 2>/dev/null && ur_ns_stop
  fi
  wait "$UR_NS_UPID" 2>/dev/null || rc=$?
  UR_NS_INIT=""
  return "$rc"
}

# ur_ns_leftovers: prints the PIDs of processes still in the namespace (normally none).
ur_ns_leftovers() {
  local p
  [ -n "${UR_NS_ID:-}" ] || return 0
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$UR_NS_ID" ] && echo "${p#/proc/}"
  done
  return 0
}
