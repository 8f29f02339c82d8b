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
  "arm64-uefi|real UEFI netboot (AAVMF, GRUB, TFTP) of the arm64 node of a cluster with an amd64 node: option 93 picks GRUB"
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

# toml_str S: S as a TOML basic string.
toml_str() {
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}

# The mixed cluster of the UEFI case: amd64 node x1 (PXE, pxelinux) and arm64 node a1 (UEFI,
# GRUB), each with its own kernel, initramfs and system tree; a1's MAC is boot.sh's default
# for NIC 0 on br0.
A1_MAC=52:54:00:77:00:01
uefi_cluster() {
  local d=$1 kver64 kdir64 grub
  kdir64=$(ur_kernel_dir amd64) kver64=$(cat "$kdir64/version")
  grub=$(ur_arm64_deb grub-efi-arm64-signed usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed)
  cat >"$d/cluster.toml" <<EOF
# Written by tests/e2e-arm64.sh (case arm64-uefi).
[server]
address = "192.168.77.1"
network = "192.168.77.0"
netmask = "255.255.255.0"
router = "192.168.77.1"

[exports]
system = "/srv/system"

[paths]
setup_tree = "setup"
tftp_root = "tftp"
initramfs = "initrd-amd64.img"

[kernel]
image = $(toml_str "$kdir64/vmlinuz")
modules_dir = $(toml_str "$kdir64/lib/modules/$kver64")
nic_modules = ["virtio_pci", "virtio_net"]

[initramfs]
linuxrc = $(toml_str "$UR_LINUXRC")
strip_signatures = true

[arm64]
kernel = $(toml_str "$KDIR/vmlinuz")
modules_dir = $(toml_str "$KDIR/lib/modules/$(cat "$KDIR/version")")
linuxrc = $(toml_str "$UR_LINUXRC_ARM64")
initramfs = "initrd-arm64.img"
grub = $(toml_str "$grub")
system = "/srv/arm64"

[boot]
kernel_args = ["console=ttyS0", "panic=-1"]

[groups.arm]
kernel_args = ["console=ttyAMA0"]

[[nodes]]
name = "x1"
mac = "52:54:00:77:00:09"
ip = "192.168.77.11"

[[nodes]]
name = "a1"
arch = "arm64"
mac = "$A1_MAC"
ip = "192.168.77.21"
groups = ["arm"]
EOF
}

case_arm64_uefi() {
  local d=$OUT/$CASE step
  uefi_cluster "$d"
  ur_build_tree "$d/tree-amd64" >>"$d/unionroot.out" 2>&1
  for step in "initramfs" "initramfs --arch arm64" "pxe"; do
    # shellcheck disable=SC2086 # the step's words
    "$UR_TOOL" $step -c "$d/cluster.toml" >>"$d/unionroot.out" 2>&1 ||
      { why "unionroot $step -c $d/cluster.toml failed; see $d/unionroot.out"; return 1; }
  done
  if ! "$UR_TOOL" dhcp -c "$d/cluster.toml" --format dnsmasq >"$d/dnsmasq-dhcp.conf" ||
    ! "$UR_TOOL" tftp -c "$d/cluster.toml" --format dnsmasq >"$d/dnsmasq-tftp.conf"; then
    why "unionroot dhcp/tftp --format dnsmasq -c $d/cluster.toml failed"
    return 1
  fi
  # The harness's dnsmasq with the host tool's DHCP and TFTP configuration: a1's fixed
  # address, the boot file by client architecture, TFTP from the tool's root.
  boot --uefi --initrd none --nic "br0 mac=$A1_MAC" \
    --dhcp "br0 arg=--conf-file=$d/dnsmasq-dhcp.conf arg=--conf-file=$d/dnsmasq-tftp.conf" \
    --export "$d/tree-amd64" --export "arm64=$TREE" --timeout 400 \
    --expect 'unionroot: booting node a1' \
    --expect 'Booting Linux on physical CPU' --expect 'efi: EFI v[0-9.]+ by EDK II' \
    --expect 'Kernel command line: .*console=ttyAMA0 .*ip=::::a1::dhcp BOOTIF=01-52-54-00-77-00-01' \
    --expect 'linuxrc: dhcp eth0: lease 192\.168\.77\.21/24 ' \
    --expect 'unionroot-demo: real init started' --expect 'PROOF pid=1\b' \
    --expect 'PROOF root=overlay\b' --expect 'PROOF lower=192\.168\.77\.1:/srv/arm64\b' \
    --forbid 'linuxrc: FATAL' || return 1
  # The firmware asked as arm64 UEFI (option 93 = 11) and got GRUB, by the tool's config.
  grep -aq 'PXEClient:Arch:00011' "$RUN/dnsmasq-0.log" ||
    { why "dnsmasq-0.log shows no arm64 UEFI client (vendor class PXEClient:Arch:00011)"; return 1; }
  grep -aqE 'option: 67 bootfile-name +grubnetaa64\.efi$' "$RUN/dnsmasq-0.log" ||
    { why "dnsmasq-0.log: grubnetaa64.efi was not the boot file"; return 1; }
  # Then over TFTP: GRUB, a1's own entry (by its MAC), the arm64 kernel and initramfs.
  local f
  for f in grubnetaa64.efi "grub/nodes/$A1_MAC.cfg" arm64/vmlinuz arm64/initrd.img; do
    grep -aqF "sent $d/tftp/$f to 192.168.77.21" "$RUN/dnsmasq-0.log" ||
      { why "dnsmasq-0.log: $f was not sent over TFTP"; return 1; }
  done
}

e2e_main "$@"
