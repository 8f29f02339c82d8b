#!/usr/bin/env bash
# End-to-end tests for aarch64 nodes: Debian's arm64 kernel and linuxrc built for
# aarch64-unknown-linux-musl boot in qemu-system-aarch64 (-M virt, TCG) against a private NFS
# server (qemu/boot.sh --arch arm64), onto an overlay over a tree whose busybox is Debian's
# arm64 busybox-static. Same runner and output as tests/e2e.sh (tests/lib.sh). Emulating
# aarch64 is slow, so the set is small: one boot per NFS version, one per virtio transport.
#
#   tests/e2e-arm64.sh [--list] [CASE...]
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "$0")/../qemu/lib.sh"
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"

ARCH=arm64
CASES=(
  "arm64-v3|aarch64, NFSv3, virtio-net-pci (PCI modalias): the real init runs as PID 1 on the overlay root"
  "arm64-v4|aarch64, NFSv4.2, virtio-net-device (virtio-mmio, device-tree modalias): the same"
)
OUT=$UR_OUT/e2e-arm64

# The arm64 tree (Debian's busybox-static:arm64) and one initramfs with the arm64 linuxrc and
# the arm64 kernel's modules, virtio_mmio included.
fixtures() {
  ur_bins_arm64
  TREE=$OUT/tree IMG=$OUT/initramfs.img
  ur_build_tree "$TREE" "$(ur_arm64_deb busybox-static bin/busybox)"
  ur_build_initramfs "$KDIR" "$UR_LINUXRC_ARM64" "$IMG" --module virtio_mmio
}
boot_fixtures() { args+=(--arch arm64 --timeout 300); }

# What every arm64 case proves: an aarch64 machine, linuxrc as /init, the real init on the
# overlay over the export.
AARCH64=(--expect 'Machine model: linux,dummy-virt' --expect 'CPU features: detected|Booting Linux on physical CPU'
  --expect 'linuxrc: exec /sbin/init' --expect 'unionroot-demo: real init started'
  --expect 'PROOF pid=1\b' --expect 'PROOF root=overlay\b' --forbid 'linuxrc: FATAL')

case_arm64_v3() {
  boot --export "$TREE" --nfs v3 "${AARCH64[@]}" \
    --expect 'linuxrc: pci devices need: .*virtio_pci' --expect 'linuxrc: virtio devices need: virtio_net' \
    --expect 'PROOF lower=10\.0\.2\.2:/srv/system\b' --expect 'PROOF nfsvers=3\b'
}

case_arm64_v4() {
  boot --export "$TREE" --nfs v4 --user-nic virtio-net-device --append unionroot.nfsvers=4.2 \
    "${AARCH64[@]}" --expect 'linuxrc: pci devices need: nothing shipped' \
    --expect 'linuxrc: platform devices need: .*virtio_mmio' \
    --expect 'linuxrc: virtio devices need: virtio_net' \
    --expect 'PROOF lower=10\.0\.2\.2:/system\b' --expect 'PROOF nfsvers=4\.2\b'
}

e2e_main "$@"
