#!/usr/bin/env bash
# Builds the kernel for the seed's NFS-root mode (ip=dhcp root=/dev/nfs nfsroot=... init=/linuxrc),
# which Debian's stock kernel cannot boot (no IP_PNP, no ROOT_NFS): Debian's linux-source-6.1,
# `make tinyconfig` plus the fragment qemu/nfsroot-kernel.config, everything built in.
#
#   qemu/build-kernel.sh [FRAGMENT]
#
# Prints the cache directory on stdout (everything else goes to stderr), like qemu/fetch-kernel.sh:
#   ${UNIONROOT_CACHE:-~/.cache/unionroot}/kernel-nfsroot/<source version>-<fragment sha256:12>/
#     vmlinux    uncompressed ELF, booted by QEMU's -kernel through PVH
#     config     the final .config
#     version    the kernel release (uname -r)
#     source     the source package and its version; fragment: the fragment it was built from
#     .complete  present in every entry (the entry appears by one rename, whole)
# A second run with the same source version and fragment is instant; a changed fragment gets a
# new key. The build runs in a temporary directory next to the entries (the same file system, so
# the final rename is atomic) and the source tree (~1.3 GB) is deleted with it: rebuilding only
# happens when the fragment or the source package changes, and then the ~25 s of unpacking is
# noise next to the build (make -j2 vmlinux: ~17-20 min wall, ~18 CPU-min, on this project's
# 2-core machines while other jobs ran). A signal stops make at once and removes the temporary
# directory; one that is left anyway (SIGKILL) is removed by the next run. Compiler temporaries
# go there too (TMPDIR); nothing goes into the work tree.
#
# Fails, listing them, when options of the fragment did not survive into the final .config
# (tinyconfig silently drops options whose dependencies are off). Build dependencies: flex bison
# bc libelf-dev libssl-dev (scripts/setup-host.sh installs them).
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "$0")/lib.sh"

pkg=linux-source-6.1
frag=$(realpath "${1:-$UR_QEMU/nfsroot-kernel.config}")
[ -f "$frag" ] || ur_die "no config fragment at $frag"
root=${UNIONROOT_CACHE:-$HOME/.cache/unionroot}/kernel-nfsroot

srcver=$(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" { print $2; exit }')
case $srcver in
  "" | "(none)") ur_die "apt knows no candidate for $pkg; run 'apt-get update'" ;;
esac
key=${srcver//:/_}-$(sha256sum "$frag" | cut -c1-12)
dir=$root/$key
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi

mkdir -p "$root"
# One build at a time: a second caller waits, then finds the first one's entry.
exec 9>"$root/.lock"
if ! flock -n 9; then
  ur_log "waiting for another build (lock $root/.lock)"
  # Polled, not a blocking flock: a blocked child would outlive us if we were killed meanwhile.
  until flock -n 9; do sleep 1; done
fi
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi
# Holding the lock, any temporary directory is an interrupted build's: remove it. So is an
# entry without .complete (this script never makes one, but an older or killed one might have).
rm -rf "$root"/.tmp.* "$dir"

tmp=$(mktemp -d "$root/.tmp.XXXXXX")
job=""
# run CMD...: runs CMD as its own process group and waits for it. Bash runs a trap only after the
# foreground command ends, so a killed build would otherwise go on for minutes; waiting on a
# background job lets the trap run at once and stop the whole group (make and its compilers).
run() {
  local rc=0
  setsid "$@" &
  job=$!
  wait "$job" || rc=$?
  job=""
  return "$rc"
}
# shellcheck disable=SC2317 # called by the traps
cleanup() {
  if [ -n "$job" ]; then
    kill -TERM -- "-$job" 2>/dev/null || true
    wait "$job" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
ur_signal_traps cleanup

t0=$SECONDS
ur_log "building $key in $tmp"
ur_log "fetching $pkg=$srcver"
# _apt cannot enter the temporary directory: download as root, without apt's warning about it.
cd "$tmp"
run apt-get download -q -o APT::Sandbox::User=root "$pkg=$srcver" >&2
ur_log "unpacking"
dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/deb"
run tar -C "$tmp" -xf "$tmp/deb/usr/src/$pkg.tar.xz"
rm -rf "$tmp/deb" "$tmp"/*.deb
src=$tmp/$pkg
[ -f "$src/Makefile" ] || ur_die "no $pkg/Makefile in the source tarball"

ur_log "configuring: tinyconfig + ${frag#"$UR_ROOT"/}"
# Their chatter (every override tinyconfig's own merge makes) is shown only when a step fails.
{
  make -C "$src" -s tinyconfig &&
    (cd "$src" && scripts/kconfig/merge_config.sh -m .config "$frag") &&
    make -C "$src" -s olddefconfig
} >"$tmp/config.log" 2>&1 || { cat "$tmp/config.log" >&2; ur_die "configuring failed"; }

# Every `CONFIG_X=value` of the fragment must be in .config as written, and every
# `# CONFIG_X is not set` must not be set.
dropped=()
while IFS= read -r line; do
  case $line in
    CONFIG_*=*)
      grep -qxF -- "$line" "$src/.config" ||
        dropped+=("$line (have: $(grep -E "^(# )?${line%%=*}[= ]" "$src/.config" || echo absent))")
      ;;
    "# CONFIG_"*" is not set")
      opt=${line#"# "}
      opt=${opt%" is not set"}
      ! grep -qE "^$opt=" "$src/.config" ||
        dropped+=("$line (have: $(grep -E "^$opt=" "$src/.config"))")
      ;;
  esac
done <"$frag"
if [ ${#dropped[@]} -gt 0 ]; then
  ur_log "the final .config lost ${#dropped[@]} option(s) of the fragment (a dependency is off;"
  ur_log "add it to the fragment):"
  printf '  %s\n' "${dropped[@]}" >&2
  exit 1
fi
ur_log "all $(grep -cE '^(CONFIG_|# CONFIG_.* is not set$)' "$frag") options of the fragment are in .config"

ur_log "make -j$(nproc) vmlinux (~17-20 min on 2 busy cores)"
t1=$SECONDS
TMPDIR=$tmp run make -C "$src" -s -j"$(nproc)" KBUILD_BUILD_USER=unionroot KBUILD_BUILD_HOST=unionroot vmlinux >&2
ur_log "built in $((SECONDS - t1)) s"

# QEMU boots the ELF through PVH only if it carries the Xen PHYS32_ENTRY note.
readelf -n "$src/vmlinux" | grep -q 'Xen' || ur_die "vmlinux has no PVH (Xen) ELF note"

out=$tmp/entry
mkdir "$out"
mv "$src/vmlinux" "$out/vmlinux"
cp "$src/.config" "$out/config"
make -C "$src" -s kernelrelease >"$out/version"
echo "$pkg $srcver" >"$out/source"
cp "$frag" "$out/fragment"
touch "$out/.complete"
mv -T "$out" "$dir"
ur_log "cached in $dir after $((SECONDS - t0)) s"
echo "$dir"
