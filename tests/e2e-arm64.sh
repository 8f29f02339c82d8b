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
  "arm64-no-mmio-driver|virtio-net-device and an initramfs without virtio_mmio: FATAL network with its hint, no panic"
  "arm64-uefi|mixed cluster.toml, one dnsmasq config: arm64 node UEFI-boots GRUB (option 93 = 11), amd64 node BIOS-PXE-boots pxelinux"
)
OUT=$UR_OUT/e2e-arm64

# The arm64 tree (Debian's busybox-static:arm64) and one initramfs with the arm64 linuxrc and
# the arm64 kernel's modules, virtio_mmio included.
fixtures() {
  ur_bins_arm64
  TREE=$OUT/tree IMG=$OUT/initramfs.img
  ur_build_tree "$TREE" "$(ur_arm64_deb busybox-static bin/busybox)"
  ur_build_initramfs "$KDIR" "$UR_LINUXRC_ARM64" "$IMG" --module virtio_mmio
  # The same without the MMIO transport's driver (arm64-no-mmio-driver).
  ur_build_initramfs "$KDIR" "$UR_LINUXRC_ARM64" "$OUT/initramfs-no-mmio.img"
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

case_arm64_no_mmio_driver() {
  # The negative control of arm64-v4: without virtio_mmio no NIC appears, and linuxrc says so.
  boot --initrd "$OUT/initramfs-no-mmio.img" --export "$TREE" --nfs v3 \
    --user-nic virtio-net-device --append unionroot.onfail=wait --until 'linuxrc: FATAL' \
    --timeout 120 --expect 'linuxrc: FATAL: network: no Ethernet interface appeared' \
    --expect "linuxrc: hint: is the NIC's driver in the initramfs" \
    --forbid 'linuxrc: platform devices need' --forbid 'linuxrc: exec /sbin/init'
}

# toml_str S: S as a TOML basic string.
toml_str() {
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}

# The mixed cluster of the UEFI case: amd64 node x1 (PXE, pxelinux) and arm64 node a1 (UEFI,
# GRUB), each with its own kernel, initramfs and system tree; a1's MAC is boot.sh's default
# for NIC 0 on br0.
A1_MAC=52:54:00:77:00:01 X1_MAC=52:54:00:77:00:09
uefi_cluster() {
  local d=$1 kver_amd64 kdir_amd64 grub
  kdir_amd64=$(ur_kernel_dir) kver_amd64=$(cat "$kdir_amd64/version")
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
image = $(toml_str "$kdir_amd64/vmlinuz")
modules_dir = $(toml_str "$kdir_amd64/lib/modules/$kver_amd64")
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
mac = "$X1_MAC"
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
  # The harness's dnsmasq with the host tool's DHCP and TFTP configuration: each node's fixed
  # address, the boot file by client architecture, TFTP from the tool's root.
  local dhcp="br0 arg=--conf-file=$d/dnsmasq-dhcp.conf arg=--conf-file=$d/dnsmasq-tftp.conf"
  local RUN=$d/a1
  boot --netboot --initrd none --nic "br0 mac=$A1_MAC" --dhcp "$dhcp" \
    --export "$d/tree-amd64" --export "arm64=$TREE" --timeout 400 \
    --expect 'unionroot: booting node a1' \
    --expect 'Booting Linux on physical CPU' --expect 'efi: EFI v[0-9.]+ by EDK II' \
    --expect 'Kernel command line: .*console=ttyAMA0 .*ip=::::a1::dhcp BOOTIF=01-52-54-00-77-00-01' \
    --expect 'linuxrc: dhcp eth0: lease 192\.168\.77\.21/24 ' \
    --expect 'unionroot-demo: real init started' --expect 'PROOF pid=1\b' \
    --expect 'PROOF root=overlay\b' --expect 'PROOF lower=192\.168\.77\.1:/srv/arm64\b' \
    --forbid 'linuxrc: FATAL' || return 1
  # The firmware asked as arm64 UEFI (option 93 = 11) and got GRUB, by the tool's config; then
  # over TFTP: GRUB, a1's own entry (by its MAC), the arm64 kernel and initramfs.
  served "$d" a1 192.168.77.21 'PXEClient:Arch:00011' grubnetaa64.efi \
    grubnetaa64.efi "grub/nodes/$A1_MAC.cfg" arm64/vmlinuz arm64/initrd.img || return 1

  # x1, amd64, from the same configuration: BIOS PXE (option 93 = 0) gets pxelinux, its own
  # pxelinux.cfg file, the amd64 kernel and initramfs, and the amd64 tree.
  RUN=$d/x1
  boot --arch amd64 --kernel-dir "$(ur_kernel_dir)" --netboot --initrd none \
    --nic "br0 mac=$X1_MAC" --dhcp "$dhcp" \
    --export "$d/tree-amd64" --export "arm64=$TREE" --timeout 300 \
    --expect 'Kernel command line: .*console=ttyS0 .*ip=::::x1::dhcp .*BOOTIF=01-52-54-00-77-00-09' \
    --expect 'linuxrc: dhcp eth0: lease 192\.168\.77\.11/24 ' \
    --expect 'unionroot-demo: real init started' --expect 'PROOF pid=1\b' \
    --expect 'PROOF root=overlay\b' --expect 'PROOF lower=192\.168\.77\.1:/srv/system\b' \
    --forbid 'linuxrc: FATAL' || return 1
  served "$d" x1 192.168.77.11 'PXEClient:Arch:00000' pxelinux.0 \
    pxelinux.0 ldlinux.c32 "pxelinux.cfg/01-${X1_MAC//:/-}" vmlinuz initrd.img
}

# served DIR NODE IP VENDOR BOOTFILE FILE...: $RUN/dnsmasq-0.log shows the firmware's vendor
# class VENDOR (PXEClient:Arch:<option 93>), BOOTFILE as the boot file, and each FILE of the
# TFTP root DIR/tftp sent to IP.
served() {
  local d=$1 node=$2 ip=$3 vendor=$4 bootfile=$5 f
  shift 5
  grep -aqF "vendor class: $vendor" "$RUN/dnsmasq-0.log" ||
    { why "$node: dnsmasq-0.log shows no client with vendor class $vendor"; return 1; }
  grep -aqE "option: 67 bootfile-name +${bootfile//./\\.}\$" "$RUN/dnsmasq-0.log" ||
    { why "$node: dnsmasq-0.log: $bootfile was not the boot file"; return 1; }
  for f in "$@"; do
    grep -aqF "sent $d/tftp/$f to $ip" "$RUN/dnsmasq-0.log" ||
      { why "$node: dnsmasq-0.log: $f was not sent over TFTP to $ip"; return 1; }
  done
}

e2e_main "$@"
