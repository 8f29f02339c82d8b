//! `[[nodes]] arch` and `[arm64]`: a cluster that mixes x86-64 and aarch64 nodes. The arm64
//! nodes have no BIOS PXE: their UEFI firmware asks DHCP for a boot file, saying its
//! architecture in option 93 (RFC 4578 §2.1; 0x0b is arm64 UEFI in IANA's "Processor
//! Architecture Types"), gets GRUB's EFI network image and boots their own kernel, initramfs
//! and system tree, all named here.

use super::check::{Checker, FileKind};
use super::model::{Arch, Arm64, Backend, BootMode, Export, Exports, Node};
use super::raw::{RawArm64, S};
use toml::Spanned;

/// A node's `arch` (default amd64).
pub(super) fn node_arch(c: &mut Checker, v: Option<&S>, node: &str) -> Arch {
    let Some(v) = v else {
        return Arch::Amd64;
    };
    Arch::parse(v.get_ref()).unwrap_or_else(|| {
        let names: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
        c.err(
            Some(v.span()),
            format!("{node}.arch"),
            format!(
                "{:?} is not an architecture unionroot boots; use one of {}",
                v.get_ref(),
                names.join(", ")
            ),
        );
        Arch::Amd64
    })
}

/// `[arm64]`: required once a node says `arch = "arm64"`; its system tree must be another
/// export than the amd64 one (an arm64 node cannot run x86-64 binaries).
pub(super) fn arm64(
    c: &mut Checker,
    raw: Option<&Spanned<RawArm64>>,
    nodes: &[Node],
    exports: &Exports,
    mode: BootMode,
) -> Option<Arm64> {
    let Some(raw) = raw else {
        if let Some(n) = nodes.iter().find(|n| n.arch == Arch::Arm64) {
            c.err(
                None,
                "arm64",
                format!(
                    "node {} has arch = \"arm64\" but the file has no [arm64] table; add one \
                     naming the arm64 kernel, modules_dir, linuxrc, initramfs, grub and system",
                    n.name
                ),
            );
        }
        return None;
    };
    let a = raw.get_ref();
    if mode == BootMode::NfsRoot {
        c.err(
            Some(raw.span()),
            "arm64",
            "arm64 nodes boot in initramfs mode only (their setup tree would be an arm64 one, and \
             Debian's arm64 kernel has no IP_PNP or ROOT_NFS); remove pxe.mode = \"nfsroot\" or \
             the [arm64] table"
                .to_string(),
        );
    }
    let kernel_image = c.input_file(
        &a.kernel,
        "arm64.kernel",
        FileKind::File,
        "point it at Debian's arm64 kernel (vmlinuz from linux-image-arm64: an EFI-stub Image)",
    );
    let modules_dir = c.modules_dir(&a.modules_dir, "arm64.modules_dir");
    let linuxrc = c.input_file(
        &a.linuxrc,
        "arm64.linuxrc",
        FileKind::File,
        "build it with `make linuxrc-arm64` (target/aarch64-unknown-linux-musl/release/linuxrc)",
    );
    let grub = c.input_file(
        &a.grub,
        "arm64.grub",
        FileKind::File,
        "point it at grubnetaa64.efi.signed from Debian's grub-efi-arm64-signed:arm64 \
         (apt-get download grub-efi-arm64-signed:arm64; dpkg-deb -x)",
    );
    let initramfs = c.local_path(&a.initramfs);
    let kernel_config = a.config.as_ref().map(|v| {
        c.input_file(
            v,
            "arm64.config",
            FileKind::File,
            "point it at the arm64 kernel's .config (Debian: /boot/config-<release>)",
        )
    });
    let system = Export {
        path: c.server_path(&a.system, "arm64.system"),
        read_only: true,
        root_squash: false,
        mount_point: None,
        role: "arm64 system tree".into(),
        backend: Backend::Vfs,
    };
    if let Some(e) = exports.all().find(|e| e.path == system.path) {
        c.err(
            Some(a.system.span()),
            "arm64.system",
            format!(
                "{} is already the {} export; the arm64 nodes need their own aarch64 tree",
                system.path, e.role
            ),
        );
    }
    let nic_modules = match &a.nic_modules {
        // QEMU's and most arm64 boards' virtio sits on MMIO (device tree) or on PCI.
        None => ["virtio_mmio", "virtio_pci", "virtio_net"]
            .map(String::from)
            .to_vec(),
        Some(v) => v
            .iter()
            .enumerate()
            .map(|(i, m)| c.word(m, &format!("arm64.nic_modules[{i}]")))
            .collect(),
    };
    if !nodes.iter().any(|n| n.arch == Arch::Arm64) {
        c.warnings
            .push("[arm64] is set but no node has arch = \"arm64\"".into());
    }
    Some(Arm64 {
        kernel_image,
        modules_dir,
        linuxrc,
        initramfs,
        grub,
        system,
        kernel_config,
        nic_modules,
    })
}
