//! `unionroot initramfs`: assembles the client initramfs from `/init`, its config, extra files
//! and a kernel-module closure, then writes it as a compressed cpio archive
//! (`Documentation/filesystems/ramfs-rootfs-initramfs.rst`).
//!
//! The layout is fixed here: the directories `linuxrc` mounts on or switches into, and the two
//! device nodes the kernel and early userspace need before devtmpfs is mounted (this kernel has
//! `DEVTMPFS_MOUNT` off, and the kernel opens `/dev/console` for `/init`'s stdio).

use crate::cli::{AddSpec, InitramfsArgs};
use crate::cluster;
use crate::cluster::Compress;
use crate::fstree::{Entry, Kind, Tree};
use crate::output::{plan_file, write_file_atomic, Outcome};
use crate::{cpio, kmod, modsig, modtrim};
use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// zstd level for the archive. Measured on the Debian 6.1 NFS/virtio/overlay closure (6.3 MB of
/// cpio): level 9 gives 1.13 MB in 0.3 s, level 19 gives 0.99 MB in 4-5 s. Decompression speed
/// hardly depends on the level and QEMU loads the image from memory, so the extra 13% is not
/// worth a 15x slower build in the test loop. Changing it changes every archive's bytes.
pub const ZSTD_LEVEL: i32 = 9;

/// Directories every initramfs has (0755).
pub const BASE_DIRS: [&str; 10] = [
    "dev", "proc", "sys", "run", "tmp", "newroot", "bin", "sbin", "etc", "lib",
];

pub const CONFIG_PATH: &str = "etc/unionroot.conf";

/// The fixed skeleton: [`BASE_DIRS`], `/dev/console` (c 5:1, 0600) and `/dev/null` (c 1:3, 0666).
pub fn base_layout() -> Tree {
    let mut t = Tree::new();
    let base = |path: &str, perm, kind| Entry {
        path: path.to_string(),
        perm,
        kind,
        origin: "base layout".to_string(),
    };
    let mut put = |e| t.insert(e).expect("the base layout has no conflicts");
    for d in BASE_DIRS {
        put(base(d, 0o755, Kind::Dir));
    }
    put(base(
        "dev/console",
        0o600,
        Kind::CharDev { major: 5, minor: 1 },
    ));
    put(base(
        "dev/null",
        0o666,
        Kind::CharDev { major: 1, minor: 3 },
    ));
    t
}

/// The archive's mtime from `$SOURCE_DATE_EPOCH` (https://reproducible-builds.org/specs/source-date-epoch/),
/// or 0 when it is unset or empty.
pub fn mtime_from_env(value: Option<&str>) -> Result<u32> {
    match value.map(str::trim) {
        None | Some("") => Ok(0),
        Some(v) => v.parse::<u32>().with_context(|| {
            format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds between 0 and {}; fix or unset it", u32::MAX)
        }),
    }
}

/// What goes into the archive, before encoding.
pub struct Plan {
    pub tree: Tree,
    pub release: String,
    pub modules: usize,
    pub builtin: Vec<String>,
    /// Signature bytes removed by `--strip-signatures`.
    pub stripped: u64,
}

fn read(path: &Path, what: &str, fix: &str) -> Result<Vec<u8>> {
    let md = fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}; {fix}", path.display()))?;
    if !md.is_file() {
        bail!("{what} {} is not a regular file; {fix}", path.display());
    }
    fs::read(path).with_context(|| format!("cannot read {what} {}; {fix}", path.display()))
}

fn read_text(path: &Path, what: &str, fix: &str) -> Result<String> {
    String::from_utf8(read(path, what, fix)?)
        .with_context(|| format!("{what} {} is not UTF-8 text; {fix}", path.display()))
}

fn exec_perm(path: &Path) -> Result<u32> {
    let mode = fs::metadata(path)
        .with_context(|| format!("cannot stat {}", path.display()))?
        .permissions()
        .mode();
    Ok(if mode & 0o111 != 0 { 0o755 } else { 0o644 })
}

/// The inputs after merging the flags with the cluster file (flags win; `--module` adds).
#[derive(Debug, Clone)]
pub struct Inputs {
    pub modules_dir: PathBuf,
    pub modules: Vec<String>,
    pub init: PathBuf,
    /// The config file's bytes and where they came from (`--config` or the cluster file).
    pub config: Option<(Vec<u8>, String)>,
    pub add: Vec<AddSpec>,
    pub compress: Compress,
    pub strip_signatures: bool,
    pub output: PathBuf,
}

/// Merges `args` with the cluster file, if one is given.
pub fn resolve(args: &InitramfsArgs) -> Result<Inputs> {
    let c = match args.cluster.as_deref() {
        None => None,
        Some(path) => Some(cluster::load(path)?.for_arch(args.arch).ok_or_else(|| {
            anyhow::anyhow!(
                "--arch {}: {} has no [{}] table; add one naming that architecture's kernel, modules_dir, linuxrc, initramfs, grub and system",
                args.arch.name(),
                path.display(),
                args.arch.name()
            )
        })?),
    };
    let missing = |flag: &str| anyhow::anyhow!("pass {flag} or --cluster FILE");
    let config = match (&args.config, &c) {
        (Some(p), _) => Some((
            read(p, "--config", "pass the unionroot.conf to install")?,
            "--config".to_string(),
        )),
        (None, Some(c)) => Some((
            crate::bootargs::config_file(c).into_bytes(),
            "cluster file".to_string(),
        )),
        (None, None) => None,
    };
    let mut modules = c
        .as_ref()
        .map(|c| c.initramfs_modules())
        .unwrap_or_default();
    for m in &args.modules {
        if !modules.contains(m) {
            modules.push(m.clone());
        }
    }
    Ok(Inputs {
        modules_dir: args
            .modules_dir
            .clone()
            .or_else(|| c.as_ref().map(|c| c.modules_dir.clone()))
            .ok_or_else(|| missing("--modules-dir"))?,
        modules,
        init: args
            .init
            .clone()
            .or_else(|| c.as_ref().map(|c| c.linuxrc.clone()))
            .ok_or_else(|| missing("--init"))?,
        config,
        add: args.add.clone(),
        compress: args
            .compress
            .or(c.as_ref().map(|c| c.compress))
            .unwrap_or(Compress::Zstd),
        strip_signatures: args.strip_signatures || c.as_ref().is_some_and(|c| c.strip_signatures),
        output: args
            .output
            .clone()
            .or_else(|| c.as_ref().map(|c| c.initramfs.clone()))
            .ok_or_else(|| missing("-o"))?,
    })
}

/// Reads every input and lays out the archive.
pub fn plan(args: &Inputs) -> Result<Plan> {
    let dir = &args.modules_dir;
    let depmod_fix = "--modules-dir must be a kernel's lib/modules/<release> directory after depmod ran (depmod -b <root> <release>)";
    if !dir.is_dir() {
        bail!(
            "--modules-dir {} is not a directory; {depmod_fix}",
            dir.display()
        );
    }
    let release = fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .with_context(|| {
            format!(
                "cannot tell the kernel release from --modules-dir {}",
                dir.display()
            )
        })?;
    let dep = read_text(&dir.join("modules.dep"), "module index", depmod_fix)?;
    let optional = |name: &str| -> Result<Option<String>> {
        let p = dir.join(name);
        if p.exists() {
            Ok(Some(read_text(&p, "module index", depmod_fix)?))
        } else {
            Ok(None)
        }
    };
    let alias = optional("modules.alias")?;
    let softdep = optional("modules.softdep")?;
    let builtin = optional("modules.builtin")?;
    let sel = kmod::select(
        &dep,
        alias.as_deref().unwrap_or(""),
        softdep.as_deref().unwrap_or(""),
        builtin.as_deref().unwrap_or(""),
        &args.modules,
    )
    .with_context(|| format!("choosing modules from {}", dir.display()))?;

    let mut tree = base_layout();
    let put = |tree: &mut Tree, path: &str, perm: u32, data: Vec<u8>, origin: String| {
        tree.insert(Entry {
            path: path.to_string(),
            perm,
            kind: Kind::File(data),
            origin,
        })
        .context("two inputs want the same archive path")
    };
    let init = read(
        &args.init,
        "--init",
        "pass the linuxrc binary or an init script",
    )?;
    put(&mut tree, "init", 0o755, init, "--init".into())?;
    if let Some((data, origin)) = &args.config {
        put(&mut tree, CONFIG_PATH, 0o644, data.clone(), origin.clone())?;
    }
    for a in &args.add {
        let origin = format!("--add {}:/{}", a.src.display(), a.dest);
        let data = read(
            &a.src,
            "--add source",
            "SRC must be an existing regular file",
        )?;
        put(&mut tree, &a.dest, exec_perm(&a.src)?, data, origin)?;
    }

    let mdir = format!("lib/modules/{release}");
    let mut stripped = 0u64;
    for m in &sel.modules {
        let src = dir.join(&m.path);
        let data = read(&src, &format!("module {}", m.name), "the modules directory does not match its modules.dep; re-run depmod or re-extract the kernel")?;
        let data = if args.strip_signatures {
            let body = modsig::strip_signature(&data)
                .with_context(|| format!("cannot strip the signature of {}", src.display()))?;
            stripped += (data.len() - body.len()) as u64;
            // Unsigned now, so the bytes may change: skip the kernel's enum-map fixups too.
            let mut body = body.to_vec();
            modtrim::hide_eval_map(&mut body)
                .with_context(|| format!("cannot read the ELF sections of {}", src.display()))?;
            body
        } else {
            data
        };
        put(
            &mut tree,
            &format!("{mdir}/{}", m.path),
            0o644,
            data,
            format!("module {}", m.name),
        )?;
    }
    put(
        &mut tree,
        &format!("{mdir}/modules.dep"),
        0o644,
        sel.dep.into_bytes(),
        "modules.dep, filtered".into(),
    )?;
    if alias.is_some() {
        put(
            &mut tree,
            &format!("{mdir}/modules.alias"),
            0o644,
            sel.alias.into_bytes(),
            "modules.alias, filtered".into(),
        )?;
    }
    if softdep.is_some() {
        put(
            &mut tree,
            &format!("{mdir}/modules.softdep"),
            0o644,
            sel.softdep.into_bytes(),
            "modules.softdep, filtered".into(),
        )?;
    }
    if let Some(b) = builtin {
        put(
            &mut tree,
            &format!("{mdir}/modules.builtin"),
            0o644,
            b.into_bytes(),
            "modules.builtin".into(),
        )?;
    }
    Ok(Plan {
        tree,
        release,
        modules: sel.modules.len(),
        builtin: sel.builtin,
        stripped,
    })
}

/// The archive bytes for `tree`: cpio, compressed as asked.
pub fn encode(tree: &Tree, mtime: u32, compress: Compress) -> Result<(Vec<u8>, Vec<u8>)> {
    let raw = cpio::encode(tree, mtime)?;
    let packed = match compress {
        Compress::None => raw.clone(),
        // The bulk API is single-threaded and records the content size in the frame header.
        Compress::Zstd => {
            zstd::bulk::compress(&raw, ZSTD_LEVEL).context("zstd compression failed")?
        }
    };
    Ok((raw, packed))
}

fn summary(p: &Plan, raw: usize, packed: usize, compress: Compress) -> String {
    let mut s = format!("{} modules for {}", p.modules, p.release);
    if !p.builtin.is_empty() {
        s += &format!(" ({} built in: {})", p.builtin.len(), p.builtin.join(", "));
    }
    if p.stripped > 0 {
        s += &format!(", {} signature bytes stripped", p.stripped);
    }
    s += &format!(", {raw} bytes uncompressed");
    if compress == Compress::Zstd {
        s += &format!(", {packed} bytes zstd -{ZSTD_LEVEL}");
    }
    s
}

pub fn run(cli: &InitramfsArgs) -> Result<()> {
    let mtime = mtime_from_env(std::env::var("SOURCE_DATE_EPOCH").ok().as_deref())?;
    let args = &resolve(cli)?;
    let plan = plan(args)?;
    let pb = crate::output::spinner("encoding and compressing the archive");
    let (raw, packed) = encode(&plan.tree, mtime, args.compress)?;
    pb.finish_and_clear();
    let line = summary(&plan, raw.len(), packed.len(), args.compress);
    let out = args.output.display();
    if cli.dry_run {
        for e in plan.tree.entries() {
            println!("{e}");
        }
        let what = match plan_file(&args.output, &packed)?.0 {
            Outcome::Created => "would write",
            Outcome::Replaced => "would replace (needs --force)",
            Outcome::Unchanged => "would leave unchanged",
        };
        println!("dry run: {what} {out}: {line}");
        return Ok(());
    }
    match write_file_atomic(&args.output, &packed, cli.force)? {
        Outcome::Unchanged => println!("{out} unchanged: {line}"),
        Outcome::Created => println!("wrote {out}: {line}"),
        Outcome::Replaced => println!("replaced {out}: {line}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_layout_has_console_null_and_dirs() {
        let t = base_layout();
        let console = t.get("dev/console").unwrap();
        assert_eq!(
            (console.kind.clone(), console.mode()),
            (Kind::CharDev { major: 5, minor: 1 }, 0o020600)
        );
        let null = t.get("/dev/null").unwrap();
        assert_eq!(
            (null.kind.clone(), null.mode()),
            (Kind::CharDev { major: 1, minor: 3 }, 0o020666)
        );
        for d in BASE_DIRS {
            assert_eq!(t.get(d).unwrap().mode(), 0o040755, "{d}");
        }
        assert_eq!(t.len(), BASE_DIRS.len() + 2);
    }

    #[test]
    fn source_date_epoch() {
        assert_eq!(mtime_from_env(None).unwrap(), 0);
        assert_eq!(mtime_from_env(Some("")).unwrap(), 0);
        assert_eq!(mtime_from_env(Some("1700000000\n")).unwrap(), 1_700_000_000);
        let e = mtime_from_env(Some("yesterday")).unwrap_err();
        assert!(format!("{e:#}").contains("SOURCE_DATE_EPOCH"), "{e:#}");
        assert!(mtime_from_env(Some("-1")).is_err());
        assert!(mtime_from_env(Some("4294967296")).is_err());
    }

    #[test]
    fn zstd_output_decompresses_to_the_cpio() {
        let (raw, packed) = encode(&base_layout(), 0, Compress::Zstd).unwrap();
        assert!(
            packed.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            "zstd frame magic"
        );
        assert_eq!(zstd::stream::decode_all(&packed[..]).unwrap(), raw);
        let (raw2, plain) = encode(&base_layout(), 0, Compress::None).unwrap();
        assert_eq!((raw2, plain), (raw.clone(), raw));
    }
}
