//! `unionroot kernel-check`: reads a kernel `.config` (Documentation/kbuild/kconfig.rst:
//! `CONFIG_X=y|m|...` and `# CONFIG_X is not set`) and says, for each boot mode, which options
//! it needs that are missing or only modules.
//!
//! - **initramfs mode**: the kernel unpacks the initramfs and runs linuxrc, which loads the NIC,
//!   NFS and overlay modules itself, so those may be modules; what linuxrc needs before it can
//!   load anything (initramfs support, devtmpfs, tmpfs, module loading) must be built in.
//! - **nfsroot mode** (the seed's `root=/dev/nfs init=/linuxrc`): the kernel configures the NIC
//!   by DHCP and mounts the NFS root before any userspace runs, so all of it is built in
//!   (Documentation/admin-guide/nfs/nfsroot.rst).
//!
//! An arm64 config (`CONFIG_ARM64=y`) also needs the EFI stub: its nodes boot through UEFI,
//! where GRUB starts the kernel Image as an EFI application
//! (Documentation/arch/arm64/booting.rst, "UEFI"). virtio-net counts over either transport,
//! PCI or MMIO (QEMU's arm64 `virt` machine and device-tree boards use MMIO).

use crate::cli::{CheckMode, KernelCheckArgs};
use crate::cluster::{self, Cluster};
use crate::exit::{self, CHECK_FAILED};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write;
use unionroot_core::nfs::NfsVersion;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tristate {
    Yes,
    Module,
    No,
}

/// Parses a `.config`: options set to `y` or `m`; anything else (strings, numbers) counts as
/// set. Options absent or `is not set` are [`Tristate::No`] when looked up.
pub fn parse_config(text: &str) -> BTreeMap<String, Tristate> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# CONFIG_") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                m.insert(name.to_string(), Tristate::No);
            }
        } else if let Some(rest) = line.strip_prefix("CONFIG_") {
            if let Some((name, v)) = rest.split_once('=') {
                let t = match v {
                    "y" => Tristate::Yes,
                    "m" => Tristate::Module,
                    "n" => Tristate::No,
                    _ => Tristate::Yes,
                };
                m.insert(name.to_string(), t);
            }
        }
    }
    m
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    BuiltIn,
    /// `y` or `m`.
    Loadable,
}

/// One need: any one of `alternatives` with all its options set as `need` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub what: String,
    pub need: Need,
    /// Each alternative: a name for it and its options.
    pub alternatives: Vec<(String, Vec<&'static str>)>,
}

fn req(what: &str, need: Need, opts: &[&'static str]) -> Requirement {
    Requirement {
        what: what.to_string(),
        need,
        alternatives: vec![(String::new(), opts.to_vec())],
    }
}

/// The kernel options behind a NIC driver module (and the bus it sits on).
pub fn nic_options(module: &str) -> Option<&'static [&'static str]> {
    Some(match module {
        "virtio_net" => &["VIRTIO_NET", "VIRTIO_PCI"],
        "e1000" => &["E1000"],
        "e1000e" => &["E1000E"],
        "igb" => &["IGB"],
        "ixgbe" => &["IXGBE"],
        "r8169" => &["R8169"],
        "tg3" => &["TIGON3"],
        "bnx2" => &["BNX2"],
        "8139cp" => &["8139CP"],
        "8139too" => &["8139TOO"],
        "pcnet32" => &["PCNET32"],
        "ne2k_pci" => &["NE2K_PCI"],
        "vmxnet3" => &["VMXNET3"],
        _ => return None,
    })
}

/// Bus modules that come with a NIC driver; they are not NICs themselves.
const BUS_MODULES: [&str; 3] = ["virtio_pci", "virtio_mmio", "virtio"];

/// The ways to have a NIC driver module: its options, and for virtio_net each transport.
fn nic_alternatives(module: &str) -> Vec<(String, Vec<&'static str>)> {
    let Some(opts) = nic_options(module) else {
        return Vec::new();
    };
    let mut v = vec![(module.to_string(), opts.to_vec())];
    if module == "virtio_net" {
        v.push((
            "virtio_net over virtio-mmio".into(),
            vec!["VIRTIO_NET", "VIRTIO_MMIO"],
        ));
    }
    v
}

/// The architecture a `.config` is for, as Debian names it: `amd64` or `arm64`.
pub fn config_arch(cfg: &BTreeMap<String, Tristate>) -> Option<&'static str> {
    if state(cfg, "ARM64") == Tristate::Yes {
        Some("arm64")
    } else if state(cfg, "X86_64") == Tristate::Yes {
        Some("amd64")
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Initramfs,
    NfsRoot,
}

impl Mode {
    pub fn title(self) -> &'static str {
        match self {
            Mode::Initramfs => {
                "initramfs mode (pxelinux loads the kernel and the initramfs; linuxrc is /init)"
            }
            Mode::NfsRoot => "nfsroot mode (the seed's root=/dev/nfs ip=dhcp init=/linuxrc)",
        }
    }
}

/// What the check depends on besides the mode.
#[derive(Debug, Clone)]
pub struct Target {
    pub nfs_version: NfsVersion,
    pub nic_modules: Vec<String>,
    pub zstd: bool,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            nfs_version: NfsVersion::V3,
            nic_modules: ["virtio_net", "e1000", "e1000e"].map(String::from).to_vec(),
            zstd: true,
        }
    }
}

/// The requirements of `mode`.
pub fn requirements(mode: Mode, t: &Target) -> Vec<Requirement> {
    use Need::*;
    let nfs_v = match t.nfs_version {
        NfsVersion::V3 => "NFS_V3",
        NfsVersion::V4(_) => "NFS_V4",
    };
    let nic_need = if mode == Mode::Initramfs {
        Loadable
    } else {
        BuiltIn
    };
    let nics: Vec<(String, Vec<&'static str>)> = t
        .nic_modules
        .iter()
        .filter(|m| !BUS_MODULES.contains(&m.as_str()))
        .flat_map(|m| nic_alternatives(m))
        .collect();
    let nic = Requirement {
        what: "a NIC driver".into(),
        need: nic_need,
        alternatives: nics,
    };
    let mut v = vec![req("IPv4", BuiltIn, &["INET"])];
    match mode {
        Mode::Initramfs => {
            v.push(req("initramfs support", BuiltIn, &["BLK_DEV_INITRD"]));
            if t.zstd {
                v.push(req("zstd-compressed initramfs", BuiltIn, &["RD_ZSTD"]));
            }
            v.push(req("loadable modules", BuiltIn, &["MODULES"]));
            v.push(req(
                "devtmpfs, mounted on /dev by linuxrc first",
                BuiltIn,
                &["DEVTMPFS"],
            ));
            v.push(req(
                "tmpfs, the overlay's writable layer",
                BuiltIn,
                &["TMPFS"],
            ));
            v.push(req(
                "packet sockets for linuxrc's DHCP client (as a module: list af_packet in boot.modules)",
                Loadable,
                &["PACKET"],
            ));
            v.push(nic);
            v.push(req("NFS client", Loadable, &["NFS_FS", nfs_v]));
            v.push(req("overlayfs", Loadable, &["OVERLAY_FS"]));
        }
        Mode::NfsRoot => {
            v.push(req(
                "kernel IP autoconfiguration (ip=)",
                BuiltIn,
                &["IP_PNP"],
            ));
            v.push(req(
                "DHCP in IP autoconfiguration",
                BuiltIn,
                &["IP_PNP_DHCP"],
            ));
            v.push(req("packet sockets", BuiltIn, &["PACKET"]));
            v.push(nic);
            v.push(req("NFS client", BuiltIn, &["NFS_FS", nfs_v]));
            v.push(req("root over NFS (root=/dev/nfs)", BuiltIn, &["ROOT_NFS"]));
            v.push(req("devtmpfs", BuiltIn, &["DEVTMPFS"]));
            v.push(req(
                "tmpfs, the overlay's writable layer",
                BuiltIn,
                &["TMPFS"],
            ));
            v.push(req("overlayfs", BuiltIn, &["OVERLAY_FS"]));
        }
    }
    v
}

fn state(cfg: &BTreeMap<String, Tristate>, opt: &str) -> Tristate {
    cfg.get(opt).copied().unwrap_or(Tristate::No)
}

fn shown(cfg: &BTreeMap<String, Tristate>, opt: &str) -> String {
    match state(cfg, opt) {
        Tristate::Yes => format!("CONFIG_{opt}=y"),
        Tristate::Module => format!("CONFIG_{opt}=m"),
        Tristate::No => format!("CONFIG_{opt} unset"),
    }
}

/// The verdict on one requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    /// `built in`, `module`, `MISSING` or `ONLY MODULE`.
    pub status: &'static str,
    pub line: String,
}

fn judge(cfg: &BTreeMap<String, Tristate>, r: &Requirement) -> Finding {
    let fits = |o: &str| {
        matches!(
            (r.need, state(cfg, o)),
            (_, Tristate::Yes) | (Need::Loadable, Tristate::Module)
        )
    };
    let describe = |(name, opts): &(String, Vec<&'static str>)| {
        let s: Vec<String> = opts.iter().map(|o| shown(cfg, o)).collect();
        if name.is_empty() {
            s.join(", ")
        } else {
            format!("{name} ({})", s.join(", "))
        }
    };
    if r.alternatives.is_empty() {
        return Finding {
            ok: false,
            status: "MISSING",
            line: format!("{}: no known driver among kernel.nic_modules", r.what),
        };
    }
    if let Some(alt) = r
        .alternatives
        .iter()
        .find(|(_, o)| o.iter().all(|o| fits(o)))
    {
        let module = alt.1.iter().any(|o| state(cfg, o) == Tristate::Module);
        return Finding {
            ok: true,
            status: if module { "module" } else { "built in" },
            line: format!("{}: {}", r.what, describe(alt)),
        };
    }
    let any_module = r
        .alternatives
        .iter()
        .any(|(_, o)| o.iter().all(|o| state(cfg, o) != Tristate::No));
    let alts: Vec<String> = r.alternatives.iter().map(describe).collect();
    let need = match r.need {
        Need::BuiltIn => "built in (=y)",
        Need::Loadable => "=y or =m",
    };
    Finding {
        ok: false,
        status: if any_module { "ONLY MODULE" } else { "MISSING" },
        line: format!(
            "{}: needs {}{need}, have {}",
            r.what,
            if alts.len() > 1 { "one of these " } else { "" },
            alts.join(" | ")
        ),
    }
}

/// Checks `cfg` for `mode`: every finding, and whether all are met.
pub fn check(cfg: &BTreeMap<String, Tristate>, mode: Mode, t: &Target) -> (bool, Vec<Finding>) {
    let mut reqs = requirements(mode, t);
    if config_arch(cfg) == Some("arm64") && mode == Mode::Initramfs {
        reqs.insert(
            1,
            req(
                "EFI stub: arm64 nodes boot by UEFI, where GRUB starts the Image as an EFI application",
                Need::BuiltIn,
                &["EFI", "EFI_STUB"],
            ),
        );
    }
    let f: Vec<Finding> = reqs.iter().map(|r| judge(cfg, r)).collect();
    (f.iter().all(|f| f.ok), f)
}

/// The report for `modes`, and whether every mode passed.
pub fn report(cfg_text: &str, modes: &[Mode], t: &Target) -> (bool, String) {
    let cfg = parse_config(cfg_text);
    let mut all_ok = true;
    let mut s = String::new();
    if let Some(a) = config_arch(&cfg) {
        let _ = writeln!(s, "architecture: {a}");
    }
    for (i, &m) in modes.iter().enumerate() {
        let (ok, findings) = check(&cfg, m, t);
        all_ok &= ok;
        let bad = findings.iter().filter(|f| !f.ok).count();
        if i > 0 {
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "{}: {}",
            m.title(),
            if ok {
                "OK".to_string()
            } else {
                format!("FAILS ({bad} missing or only modules)")
            }
        );
        for f in findings {
            let _ = writeln!(s, "  {:<12} {}", f.status, f.line);
        }
    }
    (all_ok, s)
}

pub fn run(args: &KernelCheckArgs) -> Result<()> {
    let cluster: Option<Cluster> = match &args.cluster {
        None => None,
        Some(p) => Some(cluster::load(p)?.for_arch(args.arch).with_context(|| {
            format!(
                "--arch {0}: {1} has no [{0}] table; add one for the {0} nodes",
                args.arch.name(),
                p.display()
            )
        })?),
    };
    let path = match (&args.config, &cluster) {
        (Some(p), _) => p.clone(),
        (None, Some(c)) => match &c.kernel_config {
            Some(p) => p.clone(),
            None => bail!(
                "the cluster file has no {}; set it or pass --config FILE",
                match args.arch {
                    cluster::Arch::Amd64 => "kernel.config",
                    cluster::Arch::Arm64 => "arm64.config",
                }
            ),
        },
        (None, None) => bail!("pass --config FILE (a kernel .config) or --cluster FILE"),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the kernel config {}", path.display()))?;
    if !text.lines().any(|l| l.starts_with("CONFIG_")) {
        bail!(
            "{} has no CONFIG_ lines; is it a kernel .config?",
            path.display()
        );
    }
    let target = match &cluster {
        Some(c) => Target {
            nfs_version: c.nfs_version,
            nic_modules: c.nic_modules.clone(),
            zstd: c.compress == crate::cluster::Compress::Zstd,
        },
        None => Target::default(),
    };
    let modes: Vec<Mode> = match args.mode {
        CheckMode::All => vec![Mode::Initramfs, Mode::NfsRoot],
        CheckMode::Initramfs => vec![Mode::Initramfs],
        CheckMode::Nfsroot => vec![Mode::NfsRoot],
    };
    let (ok, text) = report(&text, &modes, &target);
    println!("kernel config {}", path.display());
    print!("{text}");
    if ok {
        Ok(())
    } else {
        Err(exit::failure(
            CHECK_FAILED,
            anyhow::anyhow!(
                "{} lacks options a requested boot mode needs (see above)",
                path.display()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "#\n# Automatically generated file\nCONFIG_INET=y\nCONFIG_BLK_DEV_INITRD=y\n\
        CONFIG_RD_ZSTD=y\nCONFIG_MODULES=y\nCONFIG_DEVTMPFS=y\nCONFIG_TMPFS=y\nCONFIG_PACKET=y\n\
        CONFIG_VIRTIO_NET=m\nCONFIG_VIRTIO_PCI=m\nCONFIG_E1000=y\nCONFIG_NFS_FS=m\nCONFIG_NFS_V3=m\n\
        # CONFIG_NFS_V4 is not set\nCONFIG_OVERLAY_FS=m\n# CONFIG_IP_PNP is not set\n\
        CONFIG_LOCALVERSION=\"-x\"\n";

    #[test]
    fn parses_y_m_unset_and_strings() {
        let c = parse_config(CFG);
        assert_eq!(c["INET"], Tristate::Yes);
        assert_eq!(c["NFS_FS"], Tristate::Module);
        assert_eq!(c["NFS_V4"], Tristate::No);
        assert_eq!(c["LOCALVERSION"], Tristate::Yes);
        assert_eq!(state(&c, "NOT_THERE"), Tristate::No);
    }

    #[test]
    fn initramfs_mode_accepts_modules_nfsroot_mode_does_not() {
        let c = parse_config(CFG);
        let (ok, f) = check(&c, Mode::Initramfs, &Target::default());
        assert!(ok, "{f:#?}");
        let nic = f.iter().find(|f| f.line.starts_with("a NIC")).unwrap();
        // The first alternative that fits wins: virtio_net as modules.
        assert_eq!(nic.status, "module");
        assert!(nic.line.contains("virtio_net"), "{}", nic.line);

        let (ok, f) = check(&c, Mode::NfsRoot, &Target::default());
        assert!(!ok);
        let bad: Vec<(&str, &str)> = f
            .iter()
            .filter(|f| !f.ok)
            .map(|f| (f.status, f.line.split(':').next().unwrap()))
            .collect();
        assert_eq!(
            bad,
            [
                ("MISSING", "kernel IP autoconfiguration (ip=)"),
                ("MISSING", "DHCP in IP autoconfiguration"),
                ("ONLY MODULE", "NFS client"),
                ("MISSING", "root over NFS (root=/dev/nfs)"),
                ("ONLY MODULE", "overlayfs"),
            ]
        );
        // e1000 is built in, so the NIC need is met even though virtio_net is a module.
        assert!(f.iter().any(|f| f.ok && f.line.contains("e1000")));
    }

    #[test]
    fn version_and_nic_list_change_the_needs() {
        let c = parse_config(CFG);
        let v4 = Target {
            nfs_version: NfsVersion::V4(2),
            ..Target::default()
        };
        let (ok, f) = check(&c, Mode::Initramfs, &v4);
        assert!(!ok);
        let nfs = f.iter().find(|f| f.line.starts_with("NFS client")).unwrap();
        assert_eq!(nfs.status, "MISSING");
        assert!(nfs.line.contains("CONFIG_NFS_V4 unset"), "{}", nfs.line);

        let only_unknown = Target {
            nic_modules: vec!["virtio_pci".into(), "mystery".into()],
            ..Target::default()
        };
        let (ok, f) = check(&c, Mode::Initramfs, &only_unknown);
        assert!(!ok);
        assert!(f
            .iter()
            .any(|f| !f.ok && f.line.contains("no known driver")));

        let no_zstd = "CONFIG_RD_ZSTD=n\n";
        let (_, f) = check(&parse_config(no_zstd), Mode::Initramfs, &Target::default());
        assert!(f.iter().any(|f| !f.ok && f.line.contains("RD_ZSTD")));
        let (_, f) = check(
            &parse_config(no_zstd),
            Mode::Initramfs,
            &Target {
                zstd: false,
                ..Target::default()
            },
        );
        assert!(!f.iter().any(|f| f.line.contains("RD_ZSTD")));
    }
}
