//! `cluster.toml`: the one declarative description of a unionroot cluster (the server, its
//! exports, the kernel, the boot settings and the nodes), and its validation.
//!
//! Text in, typed value out: [`parse`] takes the file's text, the directory that relative paths
//! are relative to, and a probe that says whether an input file exists. It returns either a fully
//! validated [`Cluster`] or every problem found, each naming the field and the line
//! (`cluster.toml:42: nodes[3].mac: ...`), so an admin fixes them all in one pass and nothing is
//! written from a half-valid description. Syntax follows TOML 1.0 (https://toml.io); unknown keys
//! are errors, so a typo cannot be silently ignored.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use thiserror::Error;
use toml::Spanned;
use unionroot_core::addr::netmask_prefix;
use unionroot_core::cmdline::{Config, Key};
use unionroot_core::nfs::NfsVersion;
use unionroot_core::validate::MountTarget;

// ---------------------------------------------------------------------------------------------
// What the file may contain (serde). Fields that a validation error may need to point at are
// `Spanned`, so the error can carry the line.

type S = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    server: RawServer,
    #[serde(default)]
    dhcp: RawDhcp,
    #[serde(default)]
    nfs: RawNfs,
    exports: RawExports,
    paths: RawPaths,
    kernel: RawKernel,
    initramfs: RawInitramfs,
    #[serde(default)]
    setup_tree: RawSetupTree,
    #[serde(default)]
    pxe: RawPxe,
    #[serde(default)]
    boot: RawBoot,
    #[serde(default)]
    image: RawImage,
    #[serde(default)]
    groups: BTreeMap<String, Spanned<RawBoot>>,
    #[serde(default)]
    nodes: Vec<Spanned<RawNode>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    address: S,
    network: S,
    netmask: S,
    router: Option<S>,
    #[serde(default)]
    dns: Vec<S>,
    domain: Option<S>,
    interface: Option<S>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDhcp {
    lease_time: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNfs {
    servers: Option<Vec<S>>,
    version: Option<S>,
    #[serde(default)]
    options: Vec<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExports {
    system: S,
    #[serde(default)]
    layers: Vec<S>,
    clients: Option<S>,
    #[serde(default)]
    options: Vec<S>,
    #[serde(default)]
    mounts: Vec<Spanned<RawMount>>,
    persist: Option<Spanned<RawPersist>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPersist {
    path: S,
    paths: Vec<S>,
    root_squash: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMount {
    path: S,
    mount_point: S,
    #[serde(default)]
    read_only: bool,
    root_squash: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    setup_tree: S,
    tftp_root: S,
    initramfs: S,
    image: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    image: S,
    modules_dir: S,
    config: Option<S>,
    nic_modules: Option<Vec<S>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInitramfs {
    linuxrc: S,
    #[serde(default)]
    extra_modules: Vec<S>,
    compress: Option<S>,
    #[serde(default)]
    strip_signatures: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetupTree {
    busybox: Option<S>,
    init_script: Option<S>,
}

/// `[image]`: the Debian system tree `unionroot image` builds with mmdebstrap.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    suite: Option<S>,
    variant: Option<S>,
    #[serde(default)]
    packages: Vec<S>,
    mirror: Option<S>,
    files: Option<S>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPxe {
    mode: Option<S>,
    loader: Option<S>,
    pxelinux: Option<S>,
    ldlinux: Option<S>,
}

/// `[boot]`, `[groups.NAME]` and a node's `boot = { ... }`: linuxrc's settings. In a group or a
/// node, a value replaces the cluster's, except the lists, which add to it (linuxrc itself adds
/// up repeated `unionroot.modules=`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoot {
    ipconfig: Option<S>,
    size: Option<S>,
    init: Option<S>,
    #[serde(default)]
    modules: Vec<S>,
    dhcp_timeout: Option<Spanned<i64>>,
    mount_timeout: Option<Spanned<i64>>,
    carrier_timeout: Option<Spanned<i64>>,
    server_timeout: Option<Spanned<i64>>,
    onfail: Option<S>,
    debug: Option<Spanned<bool>>,
    #[serde(default)]
    kernel_args: Vec<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: S,
    mac: S,
    ip: S,
    #[serde(default)]
    groups: Vec<S>,
    #[serde(default)]
    boot: Option<RawBoot>,
}

// ---------------------------------------------------------------------------------------------
// The validated model.

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
    /// Who may mount (an exports(5) client spec); defaults to the cluster's subnet.
    pub clients: String,
    /// Extra knfsd options for every export, e.g. `insecure_locks`.
    pub options: Vec<String>,
}

impl Exports {
    /// Every export in a fixed order: system tree, layers, mounts, per-node export.
    pub fn all(&self) -> impl Iterator<Item = &Export> {
        std::iter::once(&self.system)
            .chain(&self.layers)
            .chain(&self.mounts)
            .chain(self.persist.as_ref().map(|(e, _)| e))
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub server: Server,
    pub lease_time: u32,
    /// The NFS servers the nodes mount from, in failover order (default: the server).
    pub nfs_servers: Vec<Ipv4Addr>,
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
            .chain(self.extra_modules.iter().map(String::as_str));
        for m in all {
            if !v.iter().any(|x| x == m) {
                v.push(m.to_string());
            }
        }
        v
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// The field in dotted form, e.g. `nodes[2].mac` (0-based index as in the file's order).
    pub field: String,
    pub message: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ClusterError {
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

fn render_problems(file: &str, problems: &[Problem]) -> String {
    let mut s = format!(
        "{file} has {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        s += "\n  ";
        s += &match p.line {
            Some(l) => format!("{file}:{l}: {}: {}", p.field, p.message),
            None => format!("{file}: {}: {}", p.field, p.message),
        };
    }
    s
}

/// What exists at a path, as far as validation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Other,
}

/// The real filesystem probe.
pub fn probe_fs(p: &Path) -> Option<FileKind> {
    let md = std::fs::metadata(p).ok()?;
    Some(if md.is_file() {
        FileKind::File
    } else if md.is_dir() {
        FileKind::Dir
    } else {
        FileKind::Other
    })
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

struct Checker<'a> {
    text: &'a str,
    base: &'a Path,
    probe: &'a dyn Fn(&Path) -> Option<FileKind>,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl Checker<'_> {
    fn err(
        &mut self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) {
        self.problems.push(Problem {
            line: span.map(|s| line_of(self.text, s.start)),
            field: field.into(),
            message: msg.into(),
        });
    }

    fn line(&self, span: Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    fn ip(&mut self, v: &S, field: &str) -> Option<Ipv4Addr> {
        match v.get_ref().parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(
                    Some(v.span()),
                    field,
                    format!("{:?} is not an IPv4 address", v.get_ref()),
                );
                None
            }
        }
    }

    /// A path on this host, relative ones taken from the cluster file's directory.
    fn local_path(&self, v: &S) -> PathBuf {
        let p = Path::new(v.get_ref());
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// An input file that must exist now.
    fn input_file(&mut self, v: &S, field: &str, want: FileKind, fix: &str) -> PathBuf {
        let p = self.local_path(v);
        match (self.probe)(&p) {
            Some(k) if k == want => {}
            Some(_) => self.err(
                Some(v.span()),
                field,
                format!(
                    "{} is not a {}; {fix}",
                    p.display(),
                    if want == FileKind::Dir {
                        "directory"
                    } else {
                        "regular file"
                    }
                ),
            ),
            None => self.err(
                Some(v.span()),
                field,
                format!("{} does not exist; {fix}", p.display()),
            ),
        }
        p
    }

    /// An absolute path on the server (exports, mount points): never resolved locally.
    fn server_path(&mut self, v: &S, field: &str) -> String {
        let s = v.get_ref();
        let bad = |why: &str| format!("{s:?} {why}");
        if !s.starts_with('/') {
            self.err(Some(v.span()), field, bad("must be an absolute path"));
        } else if s.len() > 1 && s.ends_with('/') {
            self.err(Some(v.span()), field, bad("must not end in '/'"));
        } else if s.split('/').any(|c| c == "." || c == "..") {
            self.err(Some(v.span()), field, bad("must not contain '.' or '..'"));
        } else if s.chars().any(char::is_control) {
            // linuxrc refuses these in a path (unionroot::validate); say so here first.
            self.err(
                Some(v.span()),
                field,
                bad("must not contain control characters"),
            );
        } else if s.chars().any(|c| c.is_whitespace() || c == ',' || c == '"') {
            // exports(5), dhcpd.conf and the kernel command line all split on these.
            self.err(
                Some(v.span()),
                field,
                bad("must not contain whitespace, ',' or '\"'"),
            );
        }
        s.clone()
    }

    /// A path linuxrc places into the new root: its own rule decides, so that what passes
    /// here is never refused at boot.
    fn mount_target(&mut self, v: &S, field: &str) {
        if let Err(e) = MountTarget::parse(v.get_ref()) {
            self.err(Some(v.span()), field, format!("{:?}: {e}", v.get_ref()));
        }
    }

    /// One kernel command-line word: no whitespace, no quotes, not empty.
    fn word(&mut self, v: &S, field: &str) -> String {
        let s = v.get_ref();
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '"') {
            self.err(
                Some(v.span()),
                field,
                format!("{s:?} must be one non-empty word without spaces or quotes"),
            );
        }
        s.clone()
    }

    /// `None` (and the problem recorded) when negative; the bounds beyond that are linuxrc's,
    /// checked by running the key through its parser.
    fn secs(&mut self, v: &Spanned<i64>, field: &str) -> Option<u64> {
        match u64::try_from(*v.get_ref()) {
            Ok(n) => Some(n),
            Err(_) => {
                self.err(
                    Some(v.span()),
                    field,
                    format!("{} must be a number of seconds, 1 or more", v.get_ref()),
                );
                None
            }
        }
    }

    /// Applies `raw` over `base`; `what` names the table for error messages.
    fn boot(&mut self, base: &Boot, raw: &RawBoot, what: &str) -> Boot {
        let mut b = base.clone();
        if let Some(v) = &raw.ipconfig {
            match v.get_ref().as_str() {
                "dhcp" => b.ipconfig = IpMode::Dhcp,
                "static" => b.ipconfig = IpMode::Static,
                o => self.err(
                    Some(v.span()),
                    format!("{what}.ipconfig"),
                    format!("{o:?} is neither \"dhcp\" nor \"static\""),
                ),
            }
        }
        // linuxrc's own parser is the judge of the values.
        let set = |c: &mut Self, b: &mut Boot, key: Key, v: &str, span: Range<usize>, f: &str| {
            if let Err(e) = b.linuxrc.set(key, Some(v)) {
                c.err(Some(span), format!("{what}.{f}"), e.to_string());
            }
        };
        if let Some(v) = &raw.size {
            let w = self.word(v, &format!("{what}.size"));
            set(self, &mut b, Key::Size, &w, v.span(), "size");
        }
        if let Some(v) = &raw.init {
            let w = self.word(v, &format!("{what}.init"));
            set(self, &mut b, Key::Init, &w, v.span(), "init");
        }
        for (i, m) in raw.modules.iter().enumerate() {
            let m = self.word(m, &format!("{what}.modules[{i}]"));
            if !b.linuxrc.modules.contains(&m) {
                b.linuxrc.modules.push(m);
            }
        }
        let timeouts = [
            (&raw.dhcp_timeout, Key::DhcpTimeout, "dhcp_timeout"),
            (&raw.mount_timeout, Key::MountTimeout, "mount_timeout"),
            (&raw.carrier_timeout, Key::CarrierTimeout, "carrier_timeout"),
            (&raw.server_timeout, Key::ServerTimeout, "server_timeout"),
        ];
        for (v, key, name) in timeouts {
            if let Some(v) = v {
                if let Some(n) = self.secs(v, &format!("{what}.{name}")) {
                    set(self, &mut b, key, &n.to_string(), v.span(), name);
                }
            }
        }
        if let Some(v) = &raw.onfail {
            set(self, &mut b, Key::OnFail, v.get_ref(), v.span(), "onfail");
        }
        if let Some(v) = &raw.debug {
            if base.linuxrc.debug && !v.get_ref() {
                self.err(
                    Some(v.span()),
                    format!("{what}.debug"),
                    "cannot turn off debug that a wider table turned on: linuxrc has no key for \
                     that; set debug per group or node instead",
                );
            }
            b.linuxrc.debug = *v.get_ref();
        }
        for (i, a) in raw.kernel_args.iter().enumerate() {
            b.kernel_args
                .push(self.word(a, &format!("{what}.kernel_args[{i}]")));
        }
        b
    }
}

impl Checker<'_> {
    /// `[image]`: every value reaches mmdebstrap's argv, so each must be exactly what its key
    /// means (a suite, a variant, package names, a URL) and nothing an argument parser would
    /// read as an option.
    fn image(&mut self, raw: &RawImage) -> Image {
        use crate::image::{check_mirror, check_package, check_suite, check_variant};
        let mut one =
            |v: Option<&S>, field: &str, default: &str, check: fn(&str) -> Result<(), String>| {
                match v {
                    None => default.to_string(),
                    Some(v) => {
                        if let Err(e) = check(v.get_ref()) {
                            self.err(Some(v.span()), field, e);
                        }
                        v.get_ref().clone()
                    }
                }
            };
        let suite = one(raw.suite.as_ref(), "image.suite", "bookworm", check_suite);
        let variant = one(
            raw.variant.as_ref(),
            "image.variant",
            "minbase",
            check_variant,
        );
        let mut packages = Vec::new();
        for (i, p) in raw.packages.iter().enumerate() {
            if let Err(e) = check_package(p.get_ref()) {
                self.err(Some(p.span()), format!("image.packages[{i}]"), e);
            } else if packages.contains(p.get_ref()) {
                self.err(
                    Some(p.span()),
                    format!("image.packages[{i}]"),
                    format!("{:?} is listed twice; drop one", p.get_ref()),
                );
            }
            packages.push(p.get_ref().clone());
        }
        let mirror = raw.mirror.as_ref().map(|v| {
            if let Err(e) = check_mirror(v.get_ref()) {
                self.err(Some(v.span()), "image.mirror", e);
            }
            v.get_ref().clone()
        });
        let files = raw.files.as_ref().map(|v| {
            self.input_file(
                v,
                "image.files",
                FileKind::Dir,
                "point it at a directory whose contents are copied over the image, or drop the key",
            )
        });
        Image {
            suite,
            variant,
            packages,
            mirror,
            files,
        }
    }
}

/// One RFC 1123 label, by linuxrc's own rule (which refuses any other node name at boot).
fn is_hostname_label(s: &str) -> bool {
    !s.contains('.') && unionroot_core::validate::Hostname::parse(s).is_ok()
}

/// Parses and validates `text`. `file` names it in messages; relative paths are taken from
/// `base`; `probe` tells what exists at an input path.
pub fn parse(
    text: &str,
    file: &str,
    base: &Path,
    probe: &dyn Fn(&Path) -> Option<FileKind>,
) -> Result<Cluster, ClusterError> {
    let raw: RawCluster = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        let line_start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
        ClusterError::Syntax {
            file: file.to_string(),
            line: line_of(text, at),
            column: at.saturating_sub(line_start) + 1,
            message: e.message().trim().to_string(),
        }
    })?;
    let mut c = Checker {
        text,
        base,
        probe,
        problems: Vec::new(),
        warnings: Vec::new(),
    };

    // [server]
    let s = &raw.server;
    let address = c.ip(&s.address, "server.address");
    let network = c.ip(&s.network, "server.network");
    let netmask = c.ip(&s.netmask, "server.netmask");
    if let Some(m) = netmask {
        if netmask_prefix(m).is_none() {
            c.err(
                Some(s.netmask.span()),
                "server.netmask",
                format!(
                    "{} is not a netmask (ones, then zeros, e.g. 255.255.255.0)",
                    s.netmask.get_ref()
                ),
            );
        }
    }
    // Checked below; from here on the network is taken without host bits, so that one wrong
    // digit there is one problem, not one per address.
    let subnet = network.zip(netmask).map(|(n, m)| Subnet {
        network: Ipv4Addr::from(u32::from(n) & u32::from(m)),
        netmask: m,
    });
    if let (Some(n), Some(sn)) = (network, subnet) {
        if n != sn.network {
            c.err(
                Some(s.network.span()),
                "server.network",
                format!(
                    "{n} has host bits set for netmask {}; the network is {}",
                    sn.netmask, sn.network
                ),
            );
        }
    }
    let in_subnet = |c: &mut Checker, ip: Option<Ipv4Addr>, v: &S, field: &str| {
        if let (Some(ip), Some(sn)) = (ip, subnet) {
            if !sn.contains(ip) {
                c.err(
                    Some(v.span()),
                    field,
                    format!("{ip} is outside the subnet {}", sn.cidr()),
                );
            } else if ip == sn.network || ip == sn.broadcast() {
                c.err(
                    Some(v.span()),
                    field,
                    format!("{ip} is the network or broadcast address of {}", sn.cidr()),
                );
            }
        }
    };
    in_subnet(&mut c, address, &s.address, "server.address");
    let router = s.router.as_ref().and_then(|r| {
        let ip = c.ip(r, "server.router");
        in_subnet(&mut c, ip, r, "server.router");
        ip
    });
    let dns: Vec<Ipv4Addr> = s
        .dns
        .iter()
        .enumerate()
        .filter_map(|(i, d)| c.ip(d, &format!("server.dns[{i}]")))
        .collect();
    if dns.len() > 2 {
        c.warnings.push(format!(
            "server.dns lists {} servers; the kernel's ip= carries only the first two",
            dns.len()
        ));
    }
    let domain = s.domain.as_ref().map(|d| {
        let v = d.get_ref();
        // linuxrc refuses what fails here (DHCP option 15 passes the same check).
        if let Err(e) = unionroot_core::validate::DomainName::parse(v) {
            c.err(
                Some(d.span()),
                "server.domain",
                format!("{v:?} is not a DNS domain name (labels of letters, digits and '-'): {e}"),
            );
        }
        v.clone()
    });
    let interface = s.interface.as_ref().map(|i| c.word(i, "server.interface"));

    // [dhcp]
    let lease_time = match &raw.dhcp.lease_time {
        None => 604_800,
        Some(v) => match u32::try_from(*v.get_ref()) {
            Ok(n) if n > 0 => n,
            _ => {
                c.err(
                    Some(v.span()),
                    "dhcp.lease_time",
                    format!("{} must be a number of seconds above 0", v.get_ref()),
                );
                0
            }
        },
    };

    // [nfs]
    let nfs_version = match &raw.nfs.version {
        None => NfsVersion::V3,
        Some(v) => NfsVersion::parse(v.get_ref()).unwrap_or_else(|_| {
            c.err(
                Some(v.span()),
                "nfs.version",
                format!("{:?} is not 3, 4, 4.0, 4.1 or 4.2", v.get_ref()),
            );
            NfsVersion::V3
        }),
    };
    let nfs_servers: Vec<Ipv4Addr> = match &raw.nfs.servers {
        None => address.into_iter().collect(),
        Some(v) if v.is_empty() => {
            c.err(
                None,
                "nfs.servers",
                "list at least one server, or drop the key",
            );
            Vec::new()
        }
        Some(v) => v
            .iter()
            .enumerate()
            .filter_map(|(i, s)| c.ip(s, &format!("nfs.servers[{i}]")))
            .collect(),
    };
    let mut nfs_options = Vec::new();
    for (i, o) in raw.nfs.options.iter().enumerate() {
        let field = format!("nfs.options[{i}]");
        let w = c.word(o, &field);
        let key = w.split('=').next().unwrap_or("");
        if key == "vers" || key == "nfsvers" || key == "v3" || key == "v4" {
            c.err(
                Some(o.span()),
                field,
                "set the NFS version with nfs.version, not in the options",
            );
        } else if w.contains(',') {
            c.err(Some(o.span()), field, "one option per list entry");
        }
        nfs_options.push(w);
    }

    // [exports]
    let e = &raw.exports;
    let clients = match &e.clients {
        Some(v) => c.word(v, "exports.clients"),
        None => subnet.map(|s| s.cidr()).unwrap_or_default(),
    };
    if clients == "*" {
        c.warnings.push(format!(
            "line {}: exports.clients = \"*\" lets every host mount the exports",
            e.clients.as_ref().map_or(0, |v| c.line(v.span()))
        ));
    }
    let ex_options: Vec<String> = e
        .options
        .iter()
        .enumerate()
        .map(|(i, o)| c.word(o, &format!("exports.options[{i}]")))
        .collect();
    let system = Export {
        path: c.server_path(&e.system, "exports.system"),
        read_only: true,
        root_squash: false,
        mount_point: None,
        role: "system tree".into(),
    };
    let layers: Vec<Export> = e
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| Export {
            path: c.server_path(l, &format!("exports.layers[{i}]")),
            read_only: true,
            root_squash: false,
            mount_point: None,
            role: format!("layer {}", i + 1),
        })
        .collect();
    let mut mounts = Vec::new();
    for (i, m) in e.mounts.iter().enumerate() {
        let f = format!("exports.mounts[{i}]");
        let r = m.get_ref();
        let path = c.server_path(&r.path, &format!("{f}.path"));
        let before = c.problems.len();
        let mp = c.server_path(&r.mount_point, &format!("{f}.mount_point"));
        if mp == "/" {
            c.err(
                Some(r.mount_point.span()),
                format!("{f}.mount_point"),
                "the root is the overlay; mount extra exports below it",
            );
        } else if c.problems.len() == before {
            c.mount_target(&r.mount_point, &format!("{f}.mount_point"));
        }
        let root_squash = r
            .root_squash
            .as_ref()
            .map_or(!r.read_only, |v| *v.get_ref());
        if !r.read_only && !root_squash {
            c.warnings.push(format!(
                "line {}: {f}: {path} is exported read-write with no_root_squash: root on any \
                 node (or anyone who can spoof a node's address) can change every file in it",
                c.line(m.span())
            ));
        }
        mounts.push(Export {
            path,
            read_only: r.read_only,
            root_squash,
            mount_point: Some(mp.clone()),
            role: mp,
        });
    }
    let persist = e.persist.as_ref().map(|sp| {
        let p = sp.get_ref();
        let path = c.server_path(&p.path, "exports.persist.path");
        if p.paths.is_empty() {
            c.err(
                Some(sp.span()),
                "exports.persist.paths",
                "list the paths each node keeps, e.g. [\"/var/log\", \"/etc/ssh\"]",
            );
        }
        let paths: Vec<String> = p
            .paths
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let f = format!("exports.persist.paths[{i}]");
                let before = c.problems.len();
                let s = c.server_path(v, &f);
                if s == "/" {
                    c.err(Some(v.span()), f, "the root cannot be kept per node");
                } else if c.problems.len() == before {
                    c.mount_target(v, &f);
                }
                s
            })
            .collect();
        let root_squash = p.root_squash.as_ref().is_none_or(|v| *v.get_ref());
        if !root_squash {
            c.warnings.push(format!(
                "line {}: exports.persist: {path} is exported read-write with no_root_squash: \
                 root on any node can change every node's files in it",
                c.line(sp.span())
            ));
        }
        (
            Export {
                path,
                read_only: false,
                root_squash,
                mount_point: None,
                role: "per-node directories".into(),
            },
            paths,
        )
    });
    let mut seen: HashMap<String, String> = HashMap::new();
    for (field, ex) in std::iter::once(("exports.system".to_string(), &system))
        .chain(
            layers
                .iter()
                .enumerate()
                .map(|(i, l)| (format!("exports.layers[{i}]"), l)),
        )
        .chain(
            mounts
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("exports.mounts[{i}].path"), m)),
        )
        .chain(
            persist
                .as_ref()
                .map(|(p, _)| ("exports.persist.path".to_string(), p)),
        )
    {
        if let Some(first) = seen.insert(ex.path.clone(), field.clone()) {
            c.err(
                None,
                field,
                format!("{} is already exported as {first}", ex.path),
            );
        }
    }
    let mut mps: HashMap<&str, usize> = HashMap::new();
    for (i, m) in e.mounts.iter().enumerate() {
        let mp = m.get_ref().mount_point.get_ref().as_str();
        if let Some(first) = mps.insert(mp, i) {
            c.err(
                Some(m.get_ref().mount_point.span()),
                format!("exports.mounts[{i}].mount_point"),
                format!("{mp} is already the mount point of exports.mounts[{first}]"),
            );
        }
    }

    // [paths]: outputs, so they need not exist yet.
    let setup_tree = c.local_path(&raw.paths.setup_tree);
    let tftp_root = c.local_path(&raw.paths.tftp_root);
    let initramfs = c.local_path(&raw.paths.initramfs);
    let image_dir = raw.paths.image.as_ref().map(|v| {
        let p = c.local_path(v);
        if p == setup_tree {
            c.err(
                Some(v.span()),
                "paths.image",
                "is also paths.setup_tree: `unionroot image` and `unionroot setup-tree` would \
                 replace each other's tree; give the Debian image its own directory",
            );
        }
        p
    });
    let image = c.image(&raw.image);

    // [kernel]
    let k = &raw.kernel;
    let kernel_image = c.input_file(
        &k.image,
        "kernel.image",
        FileKind::File,
        "point it at the kernel image (vmlinuz) the nodes boot",
    );
    let modules_dir = c.input_file(
        &k.modules_dir,
        "kernel.modules_dir",
        FileKind::Dir,
        "point it at that kernel's lib/modules/<release> directory",
    );
    if (c.probe)(&modules_dir) == Some(FileKind::Dir)
        && (c.probe)(&modules_dir.join("modules.dep")) != Some(FileKind::File)
    {
        c.err(
            Some(k.modules_dir.span()),
            "kernel.modules_dir",
            format!(
                "{} has no modules.dep; run depmod for that kernel",
                modules_dir.display()
            ),
        );
    }
    let kernel_config = k.config.as_ref().map(|v| {
        c.input_file(
            v,
            "kernel.config",
            FileKind::File,
            "point it at the kernel's .config (Debian: /boot/config-<release>)",
        )
    });
    let nic_modules = match &k.nic_modules {
        None => ["virtio_pci", "virtio_net", "e1000", "e1000e"]
            .map(String::from)
            .to_vec(),
        Some(v) => v
            .iter()
            .enumerate()
            .map(|(i, m)| c.word(m, &format!("kernel.nic_modules[{i}]")))
            .collect(),
    };

    // [initramfs]
    let ir = &raw.initramfs;
    let linuxrc = c.input_file(
        &ir.linuxrc,
        "initramfs.linuxrc",
        FileKind::File,
        "build it with `make linuxrc` (target/x86_64-unknown-linux-musl/release/linuxrc)",
    );
    let extra_modules = ir
        .extra_modules
        .iter()
        .enumerate()
        .map(|(i, m)| c.word(m, &format!("initramfs.extra_modules[{i}]")))
        .collect();
    let compress = match ir.compress.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "zstd")) => Compress::Zstd,
        Some((_, "none")) => Compress::None,
        Some((v, o)) => {
            c.err(
                Some(v.span()),
                "initramfs.compress",
                format!("{o:?} is neither \"zstd\" nor \"none\""),
            );
            Compress::Zstd
        }
    };

    // [setup_tree]
    let default_busybox = Spanned::new(0..0, "/bin/busybox".to_string());
    let bb = raw.setup_tree.busybox.as_ref().unwrap_or(&default_busybox);
    let busybox = c.input_file(
        bb,
        "setup_tree.busybox",
        FileKind::File,
        "install busybox-static or point it at a static busybox",
    );
    let init_script = raw.setup_tree.init_script.as_ref().map(|v| {
        c.input_file(
            v,
            "setup_tree.init_script",
            FileKind::File,
            "point it at the script to install as /sbin/init, or drop the key",
        )
    });

    // [pxe]
    let p = &raw.pxe;
    let mode = match p.mode.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "initramfs")) => BootMode::Initramfs,
        Some((_, "nfsroot")) => BootMode::NfsRoot,
        Some((v, o)) => {
            c.err(
                Some(v.span()),
                "pxe.mode",
                format!("{o:?} is neither \"initramfs\" nor \"nfsroot\""),
            );
            BootMode::Initramfs
        }
    };
    let loader = match p.loader.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "pxelinux")) => Loader::Pxelinux,
        Some((_, "ipxe")) => Loader::Ipxe,
        Some((v, o)) => {
            c.err(
                Some(v.span()),
                "pxe.loader",
                format!("{o:?} is neither \"pxelinux\" nor \"ipxe\""),
            );
            Loader::Pxelinux
        }
    };
    let syslinux_fix = "install Debian's pxelinux and syslinux-common, or point it at the file";
    let d_pxelinux = Spanned::new(0..0, "/usr/lib/PXELINUX/pxelinux.0".to_string());
    let d_ldlinux = Spanned::new(
        0..0,
        "/usr/lib/syslinux/modules/bios/ldlinux.c32".to_string(),
    );
    let pxelinux = c.input_file(
        p.pxelinux.as_ref().unwrap_or(&d_pxelinux),
        "pxe.pxelinux",
        FileKind::File,
        syslinux_fix,
    );
    let ldlinux = c.input_file(
        p.ldlinux.as_ref().unwrap_or(&d_ldlinux),
        "pxe.ldlinux",
        FileKind::File,
        syslinux_fix,
    );

    if mode == BootMode::NfsRoot && nfs_version != NfsVersion::V3 {
        c.warnings.push(
            "pxe.mode = \"nfsroot\" with NFSv4: the kernel mounts the setup tree itself over \
             NFSv4, which the kernel's NFS-root code supports less widely than v3"
                .into(),
        );
    }

    // [boot] and [groups.*]
    let boot = c.boot(&Boot::default(), &raw.boot, "boot");
    for (g, v) in &raw.groups {
        // Validate every group once, used or not; problems found again when a node applies
        // it are the same and reported once.
        c.boot(&boot, v.get_ref(), &format!("groups.{g}"));
        if !is_hostname_label(g) {
            c.err(
                Some(v.span()),
                format!("groups.{g}"),
                "a group name is letters, digits and '-'",
            );
        }
    }

    // [[nodes]]
    if raw.nodes.is_empty() {
        c.warnings
            .push("no [[nodes]]: only the default boot entry is generated".into());
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut macs: HashMap<Mac, usize> = HashMap::new();
    let mut ips: HashMap<Ipv4Addr, usize> = HashMap::new();
    for (i, sn) in raw.nodes.iter().enumerate() {
        let n = sn.get_ref();
        let f = format!("nodes[{i}]");
        let name = n.name.get_ref().clone();
        if !is_hostname_label(&name) {
            c.err(
                Some(n.name.span()),
                format!("{f}.name"),
                format!(
                    "{name:?} is not a host name (1-63 letters, digits and '-', not starting or \
                     ending with '-')"
                ),
            );
        }
        if let Some(first) = names.insert(name.to_ascii_lowercase(), i) {
            c.err(
                Some(n.name.span()),
                format!("{f}.name"),
                format!("{name:?} is already the name of nodes[{first}]"),
            );
        }
        let mac = match Mac::parse(n.mac.get_ref()) {
            Ok(m) if m.is_multicast() => {
                c.err(
                    Some(n.mac.span()),
                    format!("{f}.mac"),
                    format!(
                        "{:?} is a multicast address (lowest bit of the first byte set); a NIC's \
                         MAC never is",
                        n.mac.get_ref()
                    ),
                );
                m
            }
            Ok(m) => {
                if let Some(first) = macs.insert(m, i) {
                    c.err(
                        Some(n.mac.span()),
                        format!("{f}.mac"),
                        format!(
                            "{m} is already the MAC of nodes[{first}] ({})",
                            raw.nodes[first].get_ref().name.get_ref()
                        ),
                    );
                }
                m
            }
            Err(e) => {
                c.err(Some(n.mac.span()), format!("{f}.mac"), e.to_string());
                Mac::default()
            }
        };
        let ip = c.ip(&n.ip, &format!("{f}.ip"));
        in_subnet(&mut c, ip, &n.ip, &format!("{f}.ip"));
        if let Some(ip) = ip {
            if let Some(first) = ips.insert(ip, i) {
                c.err(
                    Some(n.ip.span()),
                    format!("{f}.ip"),
                    format!(
                        "{ip} is already the address of nodes[{first}] ({})",
                        raw.nodes[first].get_ref().name.get_ref()
                    ),
                );
            }
            for (other, what) in [(address, "server.address"), (router, "server.router")] {
                if other == Some(ip) {
                    c.err(
                        Some(n.ip.span()),
                        format!("{f}.ip"),
                        format!("{ip} is already the {what}"),
                    );
                }
            }
        }
        let mut b = boot.clone();
        let mut groups = Vec::new();
        for (j, g) in n.groups.iter().enumerate() {
            match raw.groups.get(g.get_ref()) {
                Some(raw_g) => {
                    b = c.boot(&b, raw_g.get_ref(), &format!("groups.{}", g.get_ref()));
                    groups.push(g.get_ref().clone());
                }
                None => c.err(
                    Some(g.span()),
                    format!("{f}.groups[{j}]"),
                    format!(
                        "no [groups.{}] table (have: {})",
                        g.get_ref(),
                        if raw.groups.is_empty() {
                            "none".to_string()
                        } else {
                            raw.groups.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ),
                ),
            }
        }
        if let Some(own) = &n.boot {
            b = c.boot(&b, own, &format!("{f}.boot"));
        }
        nodes.push(Node {
            name,
            mac,
            ip: ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            groups,
            boot: b,
        });
    }

    // Group errors are found once per node that uses the group; report each once.
    let mut unique = Vec::new();
    for p in c.problems {
        if !unique.contains(&p) {
            unique.push(p);
        }
    }
    if !unique.is_empty() {
        unique.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        return Err(ClusterError::Invalid {
            file: file.to_string(),
            problems: unique,
        });
    }
    Ok(Cluster {
        server: Server {
            address: address.unwrap_or(Ipv4Addr::UNSPECIFIED),
            subnet: subnet.unwrap_or(Subnet {
                network: Ipv4Addr::UNSPECIFIED,
                netmask: Ipv4Addr::UNSPECIFIED,
            }),
            router,
            dns,
            domain,
            interface,
        },
        lease_time,
        nfs_servers,
        nfs_version,
        nfs_options,
        exports: Exports {
            system,
            layers,
            mounts,
            persist,
            clients,
            options: ex_options,
        },
        setup_tree,
        tftp_root,
        initramfs,
        image_dir,
        image,
        kernel_image,
        modules_dir,
        kernel_config,
        nic_modules,
        linuxrc,
        extra_modules,
        compress,
        strip_signatures: ir.strip_signatures,
        busybox,
        init_script,
        mode,
        loader,
        pxelinux,
        ldlinux,
        boot,
        nodes,
        warnings: c.warnings,
    })
}

/// Reads and validates the cluster file at `path` against the real filesystem.
pub fn load(path: &Path) -> anyhow::Result<Cluster> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the cluster file {}", path.display()))?;
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let cluster = parse(&text, &path.display().to_string(), &base, &probe_fs)
        .map_err(|e| crate::exit::failure(crate::exit::INVALID_CONFIG, e))?;
    for w in &cluster.warnings {
        eprintln!("unionroot: warning: {w}");
    }
    Ok(cluster)
}
