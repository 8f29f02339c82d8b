//! Command-line interface of the `unionroot` host tool (clap derive). Usage errors exit with 2
//! (clap's convention), failures with 1, success with 0.

use crate::fstree;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Builds what a unionroot diskless cluster needs: the clients' initramfs and the busybox-based
/// setup tree that the server exports.
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
    /// Build a busybox root tree: static busybox, its applet links, the standard directories,
    /// and optionally /linuxrc, /etc/unionroot.conf and /sbin/init.
    ///
    /// The tree is built beside DIR and renamed into place, so DIR is never half-written.
    SetupTree(SetupTreeArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compress {
    /// zstd at a fixed level, single-threaded (needs CONFIG_RD_ZSTD in the kernel)
    Zstd,
    /// a plain cpio archive
    None,
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
    /// A kernel's lib/modules/<release> directory with depmod's output (modules.dep); its
    /// basename is the release
    #[arg(long, value_name = "DIR")]
    pub modules_dir: PathBuf,

    /// A module to include with all its dependencies (repeatable), e.g. virtio_net, nfsv3,
    /// overlay. Modules built into the kernel are skipped
    #[arg(long = "module", value_name = "NAME")]
    pub modules: Vec<String>,

    /// The program to run as /init (mode 0755): linuxrc, or a busybox shell script
    #[arg(long, value_name = "FILE")]
    pub init: PathBuf,

    /// Installed as /etc/unionroot.conf (mode 0644)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Copy the file SRC to DEST in the archive, keeping its exec bit (repeatable)
    #[arg(long = "add", value_name = "SRC:DEST", value_parser = parse_add)]
    pub add: Vec<AddSpec>,

    /// Compression of the archive
    #[arg(long, value_enum, default_value_t = Compress::Zstd, value_name = "KIND")]
    pub compress: Compress,

    /// Drop the PKCS#7 signatures appended to the modules (smaller; the kernel then loads
    /// them unsigned, which is allowed unless MODULE_SIG_FORCE is set, and taints it)
    #[arg(long)]
    pub strip_signatures: bool,

    /// Where to write the archive (atomically: a temporary file beside it is renamed)
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,

    /// Replace OUT if it exists with different contents
    #[arg(long)]
    pub force: bool,

    /// Print the archive's contents (path, mode, size) and write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct SetupTreeArgs {
    /// A statically linked busybox (Debian: /bin/busybox from busybox-static); it is run
    /// with --list-full to learn its applets
    #[arg(long, value_name = "FILE")]
    pub busybox: PathBuf,

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
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,

    /// Replace DIR if it exists (the old tree is swapped out, then deleted)
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
        assert_eq!(a.compress, Compress::None);
    }
}
