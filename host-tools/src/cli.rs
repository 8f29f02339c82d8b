//! Command-line interface of the `unionroot` host tool (clap derive). Usage errors exit with 2
//! (clap's convention), failures with 1, success with 0.

use crate::cluster::Compress;
use crate::fstree;
use crate::generations::Format;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Builds what a unionroot diskless cluster needs from one cluster.toml: the busybox setup tree,
/// the clients' initramfs, the TFTP root, and the DHCP, NFS and TFTP server configuration; checks
/// a kernel config for netbooting; and backs up disks.
///
/// Every command that writes builds its output beside the target and renames it into place,
/// leaves an identical output alone, replaces a different one only with --force (saying what
/// would change), and prints its plan with --dry-run.
///
/// Exit status: 0 success (also "unchanged"), 1 failure, 2 usage error, 3 invalid cluster.toml,
/// 4 refused (output exists and differs without --force, or an unsafe backup), 5 kernel-check
/// found missing options, 6 backup did not verify.
#[derive(Debug, Parser)]
#[command(name = "unionroot", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a reproducible initramfs (cpio newc, zstd) holding /init, its config and the
    /// kernel modules needed to reach the NFS root.
    ///
    /// The archive always contains /dev/console (c 5:1) and /dev/null (c 1:3), because the
    /// kernel opens the console before running /init. Entries are sorted, owned by 0:0 and
    /// stamped with $SOURCE_DATE_EPOCH (or 0), so the same inputs give the same bytes.
    Initramfs(InitramfsArgs),
    /// Build the Debian system tree from cluster.toml's [image] with mmdebstrap, prepared for
    /// diskless nodes, with the boot kernel's modules.
    ///
    /// mmdebstrap's result is cached under ${UNIONROOT_CACHE:-~/.cache/unionroot}/images/<key>,
    /// keyed by suite, variant, packages, mirror, mmdebstrap's version, the architecture and
    /// $SOURCE_DATE_EPOCH. The image is a copy of it: an empty /etc/machine-id, no
    /// /etc/hostname, an fstab without disks, systemd-networkd and a serial getty on the
    /// kernel console enabled, ifupdown and NetworkManager masked, /usr/lib/modules/<release>
    /// with depmod's output, then [image] files. It is built beside DIR and renamed into place;
    /// the installed packages are listed in DIR/usr/share/unionroot/packages.lock. Needs root.
    Image(ImageArgs),
    /// Build a busybox root tree: static busybox, its applet links, the standard directories,
    /// and optionally /linuxrc, /etc/unionroot.conf and /sbin/init.
    ///
    /// The tree is built beside DIR and renamed into place, so DIR is never half-written.
    SetupTree(SetupTreeArgs),
    /// Validate a cluster.toml and print what it describes: server, exports, nodes, and each
    /// node's kernel command line.
    Check(CheckArgs),
    /// Print (or write) the /etc/unionroot.conf that linuxrc reads, generated from cluster.toml.
    Conf(TextArgs),
    /// Print one node's kernel command line (the APPEND of its pxelinux.cfg/01-<mac>).
    Append(AppendArgs),
    /// Build the TFTP root: pxelinux.0, ldlinux.c32, the kernel, the initramfs,
    /// pxelinux.cfg/default, one pxelinux.cfg/01-<mac> per node (APPEND and IPAPPEND 2), and the
    /// iPXE script boot.ipxe.
    ///
    /// The tree is compared with what is at DIR: identical means nothing is written; different
    /// needs --force, and is then built beside DIR and swapped in.
    Pxe(PxeArgs),
    /// Write the DHCP server's configuration: an ISC dhcpd.conf (check it with
    /// `dhcpd -t -cf FILE`) or a dnsmasq configuration (`dnsmasq --test -C FILE`).
    Dhcp(DhcpArgs),
    /// Write the NFS exports: /etc/exports lines for the kernel server, or an nfs-ganesha
    /// configuration. Warns about risky exports such as read-write with no_root_squash.
    Exports(ExportsArgs),
    /// Write the TFTP server's settings: the seed's inetd.conf line for in.tftpd, or dnsmasq's
    /// TFTP options.
    Tftp(TftpArgs),
    /// Read a kernel .config and say, for each boot mode, which options are missing or only
    /// modules. Exits 5 if a requested mode lacks options.
    KernelCheck(KernelCheckArgs),
    /// Copy a block device or image file to another device or image file with a progress bar,
    /// then read both back and compare SHA-256 hashes.
    ///
    /// Refuses a source mounted read-write, a mounted destination, a destination device smaller
    /// than the source, and an existing destination without --force. An image destination is
    /// written beside its name and renamed only after it verified.
    Backup(BackupArgs),
    /// Build a read-only image (EROFS or squashfs) of a system tree and publish it as a new
    /// generation NAME-<hash>.<ext> in an images directory, then point NAME.current at it.
    ///
    /// The image is reproducible (every timestamp is $SOURCE_DATE_EPOCH or 0, entries sorted,
    /// owners kept), so the same tree gives the same generation and publishing it again changes
    /// nothing. An existing generation is never rewritten; the pointer NAME.current (one line,
    /// the generation's file name) is replaced atomically. Needs read access to the whole tree
    /// (root, for a Debian tree).
    ImagePack(ImagePackArgs),
    /// Point NAME.current at another published generation (roll back or forward).
    ///
    /// Nodes read the pointer once at boot: running nodes keep their generation, the next boot
    /// takes the new one.
    ImageSwitch(ImageSwitchArgs),
    /// Delete old generations: keeps the one NAME.current names and the newest K published
    /// (NAME.generations lists the publish order).
    ///
    /// A node keeps reading the generation it booted with, so K must cover every generation a
    /// running node may still use. Files not in NAME.generations are never deleted.
    ImageGc(ImageGcArgs),
    /// Copy the images directory's generations to every head of [[heads]] with rsync: the
    /// generations first (never overwriting one a head holds, each renamed into place whole),
    /// then the log, then the pointer NAME.current, per head.
    ///
    /// A head that fails keeps its old pointer; the others are still synced (exit 1 names the
    /// failed heads). Destinations: heads.images, or ADDRESS:<exports.images> over ssh.
    ImageSync(ImageSyncArgs),
    /// Write the manual pages (unionroot.1, unionroot-<command>.1) generated from this CLI.
    Man(ManArgs),
}

/// `--images DIR --name NAME`: one image's generations (default: cluster.toml's `[images]`).
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Take the images directory, the name, the format and K from this cluster description's
    /// [images]; the flags override it
    #[arg(short = 'c', long = "cluster", value_name = "FILE")]
    pub cluster: Option<PathBuf>,

    /// The images directory, exported read-only to the nodes [default: images.dir]
    #[arg(
        long = "images",
        value_name = "DIR",
        required_unless_present = "cluster"
    )]
    pub images: Option<PathBuf>,

    /// The image's name: its generations are NAME-<hash>.<ext>, its pointer NAME.current
    /// (A-Z a-z 0-9 . _ -, starting with a letter or digit) [default: images.name]
    #[arg(
        long = "name",
        value_name = "NAME",
        required_unless_present = "cluster"
    )]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImagePackArgs {
    /// The system tree to pack (e.g. paths.setup_tree or paths.image)
    #[arg(value_name = "TREE")]
    pub tree: PathBuf,

    #[command(flatten)]
    pub store: ImagesArgs,

    /// The image's filesystem [default: images.format, or erofs]. EROFS keeps POSIX ACLs and
    /// builds 4-5x faster here; squashfs (zstd) makes a smaller file but drops the ACLs
    #[arg(long, value_enum, value_name = "KIND")]
    pub format: Option<Format>,

    /// Publish the generation but leave NAME.current as it is
    #[arg(long)]
    pub no_switch: bool,

    /// Print the build command and the pointer's state; write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ImageSwitchArgs {
    #[command(flatten)]
    pub store: ImagesArgs,

    /// The generation: its file name (NAME-<hash>.<ext>) or its 16-digit hash
    #[arg(value_name = "GENERATION")]
    pub generation: String,

    /// Check the generation and say what would change; write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ImageGcArgs {
    #[command(flatten)]
    pub store: ImagesArgs,

    /// How many of the newest published generations to keep besides the current one (≥ 1)
    /// [default: images.keep, or 2]
    #[arg(long, value_parser = crate::generations::parse_keep, value_name = "K")]
    pub keep: Option<usize>,

    /// Say what would be kept and deleted; delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ImageSyncArgs {
    #[command(flatten)]
    pub store: ImagesArgs,

    /// Only this head (by name; repeatable) [default: every head]
    #[arg(long, value_name = "NAME")]
    pub head: Vec<String>,

    /// Print the rsync commands per head; copy nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `-c/--cluster FILE`, for the commands that work from the cluster description alone.
#[derive(Debug, Args)]
pub struct ClusterArg {
    /// The cluster description (see examples/cluster.toml); relative paths in it are relative to
    /// its directory
    #[arg(short = 'c', long = "cluster", value_name = "FILE")]
    pub cluster: PathBuf,
}

/// Where a generated text goes.
#[derive(Debug, Args)]
pub struct OutArgs {
    /// Write to FILE (atomically) instead of standard output
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Replace FILE if it exists with different contents
    #[arg(long)]
    pub force: bool,

    /// Say whether FILE would be created, replaced (with a diff) or left alone; write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub cluster: ClusterArg,
}

#[derive(Debug, Args)]
pub struct TextArgs {
    #[command(flatten)]
    pub cluster: ClusterArg,
    #[command(flatten)]
    pub out: OutArgs,
}

#[derive(Debug, Args)]
pub struct AppendArgs {
    #[command(flatten)]
    pub cluster: ClusterArg,
    /// The node's name, as in cluster.toml
    #[arg(value_name = "NODE")]
    pub node: String,
}

#[derive(Debug, Args)]
pub struct PxeArgs {
    /// The cluster description
    #[arg(short = 'c', long = "cluster", value_name = "FILE")]
    pub cluster: PathBuf,

    /// Only these nodes get a pxelinux.cfg/01-<mac> file and an iPXE entry (repeatable;
    /// default: all)
    #[arg(long = "node", value_name = "NAME")]
    pub nodes: Vec<String>,

    /// The initramfs to serve (default: paths.initramfs)
    #[arg(long, value_name = "FILE")]
    pub initramfs: Option<PathBuf>,

    /// The TFTP root to build (default: paths.tftp_root)
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Replace DIR if it exists and differs
    #[arg(long)]
    pub force: bool,

    /// Print the tree and what would change; write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DhcpFormat {
    /// ISC dhcpd's dhcpd.conf
    Isc,
    /// a dnsmasq configuration file
    Dnsmasq,
}

#[derive(Debug, Args)]
pub struct DhcpArgs {
    #[command(flatten)]
    pub cluster: ClusterArg,
    /// Which server the configuration is for
    #[arg(long, value_enum, default_value_t = DhcpFormat::Isc, value_name = "KIND")]
    pub format: DhcpFormat,
    #[command(flatten)]
    pub out: OutArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportsFormat {
    /// /etc/exports lines for the kernel NFS server (exportfs -ra)
    Knfsd,
    /// an nfs-ganesha configuration file
    Ganesha,
}

#[derive(Debug, Args)]
pub struct ExportsArgs {
    #[command(flatten)]
    pub cluster: ClusterArg,
    /// Which server the exports are for
    #[arg(long, value_enum, default_value_t = ExportsFormat::Knfsd, value_name = "KIND")]
    pub format: ExportsFormat,
    /// Refuse (exit 4) instead of warning when an export is risky
    #[arg(long)]
    pub strict: bool,
    /// With [[heads]] and --format ganesha: the configuration of this head (by name)
    #[arg(long, value_name = "NAME", conflicts_with = "heads_dir")]
    pub head: Option<String>,
    /// With [[heads]] and --format ganesha: write every head's configuration into DIR, as
    /// ganesha-NAME.conf
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub heads_dir: Option<PathBuf>,
    #[command(flatten)]
    pub out: OutArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TftpFormat {
    /// the inetd.conf line for tftpd-hpa's in.tftpd
    Inetd,
    /// dnsmasq's built-in TFTP server
    Dnsmasq,
}

#[derive(Debug, Args)]
pub struct TftpArgs {
    #[command(flatten)]
    pub cluster: ClusterArg,
    /// Which server the settings are for
    #[arg(long, value_enum, default_value_t = TftpFormat::Inetd, value_name = "KIND")]
    pub format: TftpFormat,
    #[command(flatten)]
    pub out: OutArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckMode {
    /// both modes
    All,
    /// pxelinux loads kernel and initramfs; linuxrc is /init and loads modules
    Initramfs,
    /// the seed's root=/dev/nfs init=/linuxrc: everything built in
    Nfsroot,
}

#[derive(Debug, Args)]
pub struct KernelCheckArgs {
    /// The kernel's .config (default: kernel.config from --cluster)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Take the NFS version, NIC drivers and compression from this cluster description
    #[arg(short = 'c', long = "cluster", value_name = "FILE")]
    pub cluster: Option<PathBuf>,

    /// With --cluster: check the kernel of these nodes (arm64: arm64.config and
    /// arm64.nic_modules)
    #[arg(
        long,
        value_enum,
        value_name = "ARCH",
        default_value = "amd64",
        requires = "cluster"
    )]
    pub arch: crate::cluster::Arch,

    /// Which boot mode to check
    #[arg(long, value_enum, default_value_t = CheckMode::All, value_name = "MODE")]
    pub mode: CheckMode,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The block device or image file to copy
    #[arg(long = "from", value_name = "SRC")]
    pub from: PathBuf,

    /// The block device or image file to write
    #[arg(long = "to", value_name = "DST")]
    pub to: PathBuf,

    /// Bytes per read and write
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    pub block_size: usize,

    /// Overwrite an existing destination
    #[arg(long)]
    pub force: bool,

    /// Print the plan and the safety checks' verdict; write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write the pages into (created if missing)
    #[arg(long = "out", value_name = "DIR")]
    pub out: PathBuf,

    /// Replace pages that differ
    #[arg(long)]
    pub force: bool,

    /// Say which pages would be created, replaced or left alone; write nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// One `--add SRC:DEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddSpec {
    pub src: PathBuf,
    /// Archive path, normalised to have no leading `/`.
    pub dest: String,
}

/// Parses `SRC:DEST`, splitting at the last `:` so that SRC may contain colons.
pub fn parse_add(s: &str) -> Result<AddSpec, String> {
    let (src, dest) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not SRC:DEST (e.g. /usr/bin/strace:/bin/strace)"))?;
    if src.is_empty() {
        return Err(format!("{s:?} has an empty SRC; write SRC:DEST"));
    }
    let dest = fstree::components(dest)
        .map_err(|e| e.to_string())?
        .join("/");
    Ok(AddSpec {
        src: PathBuf::from(src),
        dest,
    })
}

#[derive(Debug, Args)]
pub struct InitramfsArgs {
    /// Take the modules directory, the modules, linuxrc, the config, the compression and the
    /// output from this cluster description; the other flags override it (--module adds)
    #[arg(short = 'c', long = "cluster", value_name = "FILE")]
    pub cluster: Option<PathBuf>,

    /// With --cluster: the initramfs of the nodes of this architecture (arm64: the modules,
    /// linuxrc, NIC drivers, system tree and output of the [arm64] table)
    #[arg(
        long,
        value_enum,
        value_name = "ARCH",
        default_value = "amd64",
        requires = "cluster"
    )]
    pub arch: crate::cluster::Arch,

    /// A kernel's lib/modules/<release> directory with depmod's output (modules.dep); its
    /// basename is the release
    #[arg(long, value_name = "DIR", required_unless_present = "cluster")]
    pub modules_dir: Option<PathBuf>,

    /// A module to include with all its dependencies (repeatable), e.g. virtio_net, nfsv3,
    /// overlay. Modules built into the kernel are skipped
    #[arg(long = "module", value_name = "NAME")]
    pub modules: Vec<String>,

    /// The program to run as /init (mode 0755): linuxrc, or a busybox shell script
    #[arg(long, value_name = "FILE", required_unless_present = "cluster")]
    pub init: Option<PathBuf>,

    /// Installed as /etc/unionroot.conf (mode 0644)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Copy the file SRC to DEST in the archive, keeping its exec bit (repeatable)
    #[arg(long = "add", value_name = "SRC:DEST", value_parser = parse_add)]
    pub add: Vec<AddSpec>,

    /// Compression of the archive [default: zstd, or initramfs.compress]
    #[arg(long, value_enum, value_name = "KIND")]
    pub compress: Option<Compress>,

    /// Drop the PKCS#7 signatures appended to the modules, and rename their _ftrace_eval_map
    /// section so the kernel skips trace enum-map fixups. Halves module loading under
    /// emulation (no sha256 over each module); the kernel logs "module verification failed",
    /// taints E, and refuses them under module.sig_enforce=1 or lockdown
    #[arg(long)]
    pub strip_signatures: bool,

    /// Where to write the archive (atomically: a temporary file beside it is renamed)
    #[arg(
        short = 'o',
        long = "output",
        value_name = "OUT",
        required_unless_present = "cluster"
    )]
    pub output: Option<PathBuf>,

    /// Replace OUT if it exists with different contents
    #[arg(long)]
    pub force: bool,

    /// Print the archive's contents (path, mode, size) and write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The cluster description; its [image] table says what to install
    #[arg(short = 'c', long = "cluster", value_name = "FILE")]
    pub cluster: PathBuf,

    /// The directory to build (default: paths.image)
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Replace DIR if it was built from other inputs (the old tree is swapped out, then deleted)
    #[arg(long)]
    pub force: bool,

    /// Run mmdebstrap again even if its result is cached (the archive has newer packages)
    #[arg(long)]
    pub refresh: bool,

    /// Print the mmdebstrap command (or the cache entry) and the preparation steps; write
    /// nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct SetupTreeArgs {
    /// Take busybox, linuxrc, the config, the init script and the output from this cluster
    /// description (the config is generated from it); the other flags override it
    #[arg(short = 'c', long = "cluster", value_name = "FILE")]
    pub cluster: Option<PathBuf>,

    /// A statically linked busybox (Debian: /bin/busybox from busybox-static); it is run
    /// with --list-full to learn its applets
    #[arg(long, value_name = "FILE", required_unless_present = "cluster")]
    pub busybox: Option<PathBuf>,

    /// Installed as /linuxrc (mode 0755)
    #[arg(long, value_name = "FILE")]
    pub linuxrc: Option<PathBuf>,

    /// Installed as /etc/unionroot.conf (mode 0644)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Installed as /sbin/init (mode 0755) instead of busybox's init applet
    #[arg(long, value_name = "FILE")]
    pub init_script: Option<PathBuf>,

    /// The directory to create
    #[arg(
        short = 'o',
        long = "output",
        value_name = "DIR",
        required_unless_present = "cluster"
    )]
    pub output: Option<PathBuf>,

    /// Replace DIR if it exists and differs (the old tree is swapped out, then deleted)
    #[arg(long)]
    pub force: bool,

    /// Print the tree (path, mode, size, link target) and write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn add_specs() {
        assert_eq!(
            parse_add("/a:b/c:/usr/bin/x").unwrap(),
            AddSpec {
                src: "/a:b/c".into(),
                dest: "usr/bin/x".into()
            }
        );
        assert!(parse_add("nocolon").is_err());
        assert!(parse_add(":/x").is_err());
        assert!(parse_add("/a:/").is_err());
        assert!(parse_add("/a:../etc/passwd").is_err());
    }

    #[test]
    fn usage_errors() {
        let bad = [
            &["unionroot", "initramfs", "--init", "x", "-o", "y"][..], // no --modules-dir
            &[
                "unionroot",
                "initramfs",
                "--modules-dir",
                "m",
                "--init",
                "x",
                "-o",
                "y",
                "--compress",
                "xz",
            ],
            &["unionroot", "setup-tree", "-o", "d"], // no --busybox
        ];
        for args in bad {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
        let ok = Cli::try_parse_from([
            "unionroot",
            "initramfs",
            "--modules-dir",
            "m",
            "--module",
            "a",
            "--module",
            "b",
            "--init",
            "x",
            "--add",
            "s:/d",
            "--compress",
            "none",
            "-o",
            "y",
        ])
        .unwrap();
        let Command::Initramfs(a) = ok.command else {
            panic!("wrong subcommand")
        };
        assert_eq!(a.modules, ["a", "b"]);
        assert_eq!(a.compress, Some(Compress::None));
        // With a cluster file, the paths may come from it.
        let ok = Cli::try_parse_from(["unionroot", "initramfs", "-c", "cluster.toml"]).unwrap();
        assert!(matches!(ok.command, Command::Initramfs(_)));
        let ok = Cli::try_parse_from(["unionroot", "setup-tree", "--cluster", "c.toml"]).unwrap();
        assert!(matches!(ok.command, Command::SetupTree(_)));
    }
}
