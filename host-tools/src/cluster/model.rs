//! The validated cluster: what every generator (pxelinux, dhcpd, exports, the initramfs, the
//! setup tree) reads. Built only by [`super::parse`], so every value here has passed its check.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use unionroot_core::cmdline::Config;
use unionroot_core::nfs::NfsVersion;

pub use unionroot_core::addr::Mac;

/// An IPv4 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub netmask: Ipv4Addr,
}

impl Subnet {
    pub fn prefix_len(&self) -> u32 {
        u32::from(self.netmask).count_ones()
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !u32::from(self.netmask))
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & u32::from(self.netmask) == u32::from(self.network)
    }
    /// `10.0.2.0/24`.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network, self.prefix_len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub address: Ipv4Addr,
    pub subnet: Subnet,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub interface: Option<String>,
}

/// One exported directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The directory on the server (absolute).
    pub path: String,
    pub read_only: bool,
    pub root_squash: bool,
    /// Where the nodes mount it; `None` for the system tree and the layers, which become the
    /// overlay's lower layers.
    pub mount_point: Option<String>,
    /// What it is, for comments in generated files (`system tree`, `layer 1`, `/home`).
    pub role: String,
    /// What serves it on the heads.
    pub backend: Backend,
}

/// What serves an export (ganesha's FSAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// A directory of the head's own file system (`FSAL_VFS`): each head holds its copy.
    #[default]
    Vfs,
    /// A directory of the cluster's CephFS (`FSAL_CEPH`): every head serves the same files,
    /// for shared read-write data such as `/home`.
    Ceph,
}

/// One NFS head (`[[heads]]`): the heads serve the same exports, and each node ranks them
/// itself (linuxrc's `a+b+c:` lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// An RFC 1123 label; names its ganesha configuration.
    pub name: String,
    pub address: Ipv4Addr,
    /// Where `image-sync` copies the images directory; `None` without `exports.images`.
    pub images: Option<ImagesTarget>,
}

/// An rsync destination, by rsync's own rule: a `:` before the first `/` (or `rsync://`)
/// makes it remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImagesTarget {
    /// A directory of this host (e.g. a head's export mounted here).
    Local(PathBuf),
    /// `HOST:/path` (rsync over ssh) or `rsync://HOST/MODULE/path` (an rsync daemon).
    Remote(String),
}

impl std::fmt::Display for ImagesTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImagesTarget::Local(p) => write!(f, "{}", p.display()),
            ImagesTarget::Remote(s) => f.write_str(s),
        }
    }
}

/// `[ceph]`: the FSAL_CEPH settings; `None` fields are left to libcephfs's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ceph {
    /// The ceph.conf ganesha's libcephfs reads (`CEPH { Ceph_Conf }`).
    pub config: Option<String>,
    /// The cephx user, without `client.` (`FSAL { User_Id }`).
    pub user_id: Option<String>,
    /// The CephFS name (`FSAL { Filesystem }`).
    pub filesystem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exports {
    pub system: Export,
    /// Extra read-only layers over the system tree, bottom first (the stacking order).
    pub layers: Vec<Export>,
    pub mounts: Vec<Export>,
    /// The read-write export holding one directory per node, and the paths each node keeps
    /// there (bind-mounted from `<export>/nodes/<hostname><path>`).
    pub persist: Option<(Export, Vec<String>)>,
    /// The images directory (`exports.images`), read-only; with `images.name` the nodes boot
    /// from the image it holds.
    pub images: Option<Export>,
    /// Who may mount (an exports(5) client spec); defaults to the cluster's subnet.
    pub clients: String,
    /// Extra knfsd options for every export, e.g. `insecure_locks`.
    pub options: Vec<String>,
}

impl Exports {
    /// Every export in a fixed order: system tree, layers, mounts, per-node export, images.
    pub fn all(&self) -> impl Iterator<Item = &Export> {
        std::iter::once(&self.system)
            .chain(&self.layers)
            .chain(&self.mounts)
            .chain(self.persist.as_ref().map(|(e, _)| e))
            .chain(&self.images)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMode {
    /// linuxrc asks DHCP (the fixed address comes from dhcpd.conf / dnsmasq).
    Dhcp,
    /// The node's address is put on the kernel command line (`ip=` with autoconf `off`).
    Static,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMode {
    /// pxelinux loads the kernel and the initramfs; linuxrc is `/init`.
    Initramfs,
    /// The seed's mode: the kernel mounts the setup tree itself (`root=/dev/nfs`, IP_PNP) and
    /// runs `init=/linuxrc` from it.
    NfsRoot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// DHCP hands out `pxelinux.0`.
    Pxelinux,
    /// DHCP hands iPXE clients `boot.ipxe` and everything else `pxelinux.0`.
    Ipxe,
}

/// linuxrc's settings for one node (or the cluster's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub ipconfig: IpMode,
    /// The `[boot]` keys as linuxrc's own configuration, so that an empty `[boot]` keeps
    /// linuxrc's defaults and linuxrc's parser judges every value.
    pub linuxrc: Config,
    /// Extra kernel command-line arguments (`console=ttyS0`, ...).
    pub kernel_args: Vec<String>,
}

impl Default for Boot {
    fn default() -> Self {
        Boot {
            ipconfig: IpMode::Dhcp,
            linuxrc: Config::default(),
            kernel_args: Vec::new(),
        }
    }
}

/// A node's architecture (`[[nodes]] arch`), in Debian's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Arch {
    /// x86-64: BIOS PXE through pxelinux or iPXE, `[kernel]` and `[initramfs]`
    #[default]
    Amd64,
    /// aarch64: UEFI network boot through GRUB, everything from `[arm64]`
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// The name `cluster.toml` uses.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// `[arm64]`, validated: what the arm64 nodes boot instead of `[kernel]`, `[initramfs]`'s
/// linuxrc, `paths.initramfs` and `exports.system`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arm64 {
    pub kernel_image: PathBuf,
    pub modules_dir: PathBuf,
    pub linuxrc: PathBuf,
    pub initramfs: PathBuf,
    /// GRUB's monolithic EFI network image (Debian's grub-efi-arm64-signed:
    /// `grubnetaa64.efi.signed`), the boot file DHCP gives arm64 UEFI clients.
    pub grub: PathBuf,
    /// The arm64 system tree's export (read-only, like `exports.system`).
    pub system: Export,
    /// The arm64 kernel's `.config`, for `kernel-check --arch arm64`.
    pub kernel_config: Option<PathBuf>,
    pub nic_modules: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub arch: Arch,
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub groups: Vec<String>,
    /// The effective settings: `[boot]`, then each group in order, then the node's own.
    pub boot: Boot,
}

/// `[image]`, validated: what `unionroot image` asks mmdebstrap for, and what it adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub suite: String,
    pub variant: String,
    /// The admin's packages, on top of [`crate::image::BASE_PACKAGES`]; each a valid Debian
    /// package name.
    pub packages: Vec<String>,
    /// An archive URL; `None` is mmdebstrap's own default for the suite.
    pub mirror: Option<String>,
    /// A directory copied over the prepared tree, owned by root in the image.
    pub files: Option<PathBuf>,
}

/// How the initramfs archive is packed (`initramfs.compress`, or `--compress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compress {
    /// zstd at a fixed level, single-threaded (needs CONFIG_RD_ZSTD in the kernel)
    Zstd,
    /// a plain cpio archive
    None,
}

/// `[images]`, validated: the defaults of `image-pack`, `image-switch` and `image-gc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// The images directory (`images.dir`), if set.
    pub dir: Option<PathBuf>,
    /// The image's name (`images.name`), if set.
    pub name: Option<crate::generations::Name>,
    pub format: crate::generations::Format,
    /// Generations gc keeps besides the current one (≥ 1).
    pub keep: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub server: Server,
    pub lease_time: u32,
    /// The NFS servers the nodes mount from, in failover order (default: the server), or the
    /// heads' addresses.
    pub nfs_servers: Vec<Ipv4Addr>,
    /// The equivalent NFS heads, in file order; empty without `[[heads]]`.
    pub heads: Vec<Head>,
    /// `[ceph]`, or the defaults when a mount uses `backend = "ceph"` without it.
    pub ceph: Option<Ceph>,
    pub nfs_version: NfsVersion,
    /// Mount options for every piece (no version: that is `nfs_version`).
    pub nfs_options: Vec<String>,
    pub exports: Exports,
    pub setup_tree: PathBuf,
    pub tftp_root: PathBuf,
    pub initramfs: PathBuf,
    /// Where `unionroot image` builds the Debian system tree (`paths.image`), if set.
    pub image_dir: Option<PathBuf>,
    pub image: Image,
    pub images: Images,
    pub kernel_image: PathBuf,
    pub modules_dir: PathBuf,
    pub kernel_config: Option<PathBuf>,
    /// NIC driver modules (and their buses) the initramfs carries.
    pub nic_modules: Vec<String>,
    pub linuxrc: PathBuf,
    pub extra_modules: Vec<String>,
    pub compress: Compress,
    pub strip_signatures: bool,
    pub busybox: PathBuf,
    pub init_script: Option<PathBuf>,
    pub mode: BootMode,
    pub loader: Loader,
    pub pxelinux: PathBuf,
    pub ldlinux: PathBuf,
    pub boot: Boot,
    pub nodes: Vec<Node>,
    /// Risky but legal choices, e.g. a read-write export without root squashing.
    pub warnings: Vec<String>,
    /// `[arm64]`, present when the cluster has arm64 nodes.
    pub arm64: Option<Arm64>,
}

impl Cluster {
    /// Every module the initramfs needs: the NIC drivers, the NFS client of the chosen version,
    /// overlayfs, then the extras, without repeats.
    pub fn initramfs_modules(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        let all = self
            .nic_modules
            .iter()
            .map(String::as_str)
            .chain([self.nfs_version.module(), "overlay"])
            .chain(self.image_modules())
            .chain(self.extra_modules.iter().map(String::as_str));
        for m in all {
            if !v.iter().any(|x| x == m) {
                v.push(m.to_string());
            }
        }
        v
    }

    /// Whether the nodes boot from an image: the images directory is exported and the image
    /// is named.
    pub fn uses_image(&self) -> bool {
        self.exports.images.is_some() && self.images.name.is_some()
    }

    /// What an image root needs in the initramfs: loop(4) and the image's filesystem.
    fn image_modules(&self) -> Vec<&'static str> {
        if self.uses_image() {
            vec!["loop", self.images.format.fs_type()]
        } else {
            Vec::new()
        }
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Every export, the arm64 system tree included.
    pub fn all_exports(&self) -> impl Iterator<Item = &Export> {
        self.exports
            .all()
            .chain(self.arm64.as_ref().map(|a| &a.system))
    }

    /// The cluster as the nodes of `arch` see it: for arm64, `[arm64]`'s kernel, modules,
    /// linuxrc, initramfs, NIC drivers and system tree in place of the amd64 ones, so that every
    /// generator (the initramfs and its unionroot.conf, the command lines) works unchanged.
    /// `None` for arm64 without an `[arm64]` table.
    pub fn for_arch(&self, arch: Arch) -> Option<Cluster> {
        let mut c = self.clone();
        if let Arch::Arm64 = arch {
            let a = self.arm64.as_ref()?;
            c.kernel_image = a.kernel_image.clone();
            c.modules_dir = a.modules_dir.clone();
            c.kernel_config = a.kernel_config.clone();
            c.linuxrc = a.linuxrc.clone();
            c.initramfs = a.initramfs.clone();
            c.nic_modules = a.nic_modules.clone();
            c.exports.system = a.system.clone();
        }
        c.nodes.retain(|n| n.arch == arch);
        Some(c)
    }
}
