//! `unionroot image`: the Debian system tree that the nodes mount read-only as their bottom
//! layer, built by mmdebstrap(1) from cluster.toml's `[image]`, then prepared for diskless use
//! ([`crate::diskless`]), given the boot kernel's modules, and the admin's files.
//!
//! mmdebstrap's result depends only on its inputs (suite, variant, packages, mirror, its own
//! version, the architecture and `SOURCE_DATE_EPOCH`) and on the archive's state, so it is cached
//! under `${UNIONROOT_CACHE:-~/.cache/unionroot}/images/<key>/`, keyed by a hash of those inputs;
//! `--refresh` rebuilds an entry when the archive has moved on. The image is a copy of the cached
//! tree (`cp -a`: owners, modes, setuid bits, hard links and xattrs kept), built beside the output
//! and renamed into place ([`crate::output::build_dir_atomic`]).
//!
//! Package names follow Debian Policy 5.6.7 and are checked before they reach mmdebstrap's argv.

use crate::cli::ImageArgs;
use crate::cluster::{self, Cluster};
use crate::diskless::{self, contained, remove_nondir};
use crate::exit;
use crate::output::{build_dir_atomic, Outcome};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// What a diskless systemd node needs on top of any variant: systemd as init, udev, the tools
/// the boot and an admin use, the NFS client helpers, dbus (logind and hostnamectl fail without
/// it) and libnss-myhostname (the node's own name resolves without a line in the shared
/// /etc/hosts). networkd is part of `systemd` on bookworm.
pub const BASE_PACKAGES: [&str; 9] = [
    "dbus",
    "iproute2",
    "kmod",
    "libnss-myhostname",
    "nfs-common",
    "procps",
    "systemd-sysv",
    "udev",
    "util-linux",
];

/// The package list inside the image: `dpkg-query -W`'s format, one package per line.
pub const PACKAGE_LIST: &str = "usr/share/unionroot/packages.lock";
/// The digest of everything the image was built from; equal digests mean "unchanged".
pub const INPUTS_FILE: &str = "usr/share/unionroot/image.inputs";
/// Bumped when the cache entry's layout or its meaning changes.
const CACHE_FORMAT: &str = "unionroot-image-cache 1";

/// The base set plus the admin's packages, sorted and without repeats: the `--include` list
/// and part of the cache key.
pub fn package_set(image: &cluster::Image) -> Vec<String> {
    let mut v: Vec<String> = BASE_PACKAGES
        .iter()
        .map(|s| s.to_string())
        .chain(image.packages.iter().cloned())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Everything mmdebstrap's result depends on, besides the archive's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInputs {
    pub suite: String,
    pub variant: String,
    /// Sorted, without repeats ([`package_set`]).
    pub packages: Vec<String>,
    pub mirror: Option<String>,
    pub mmdebstrap_version: String,
    pub arch: String,
    pub source_date_epoch: Option<String>,
}

impl KeyInputs {
    /// One `key=value` per line; hashed for the key and stored in the entry for people.
    pub fn text(&self) -> String {
        format!(
            "{CACHE_FORMAT}\nsuite={}\nvariant={}\npackages={}\nmirror={}\nmmdebstrap={}\n\
             arch={}\nsource_date_epoch={}\n",
            self.suite,
            self.variant,
            self.packages.join(","),
            // mmdebstrap's default for a stable suite (deb.debian.org, -updates, -security)
            // is fixed by its version, which is part of the key.
            self.mirror.as_deref().unwrap_or("(mmdebstrap default)"),
            self.mmdebstrap_version,
            self.arch,
            self.source_date_epoch.as_deref().unwrap_or("(unset)"),
        )
    }

    /// 32 hex digits of the SHA-256 of [`Self::text`].
    pub fn key(&self) -> String {
        hex(&Sha256::digest(self.text().as_bytes()))[..32].to_string()
    }

    /// mmdebstrap's arguments (after the program name) to build into `target`. Options end at
    /// `--`, so nothing after it can be read as one.
    pub fn mmdebstrap_args(&self, target: &Path) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec![
            "--mode=root".into(),
            "--format=directory".into(),
            format!("--variant={}", self.variant).into(),
            format!("--include={}", self.packages.join(",")).into(),
            "--".into(),
            self.suite.clone().into(),
            target.as_os_str().to_owned(),
        ];
        if let Some(m) = &self.mirror {
            a.push(m.into());
        }
        a
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// The installed packages of a dpkg status file, as `dpkg-query -W` prints them
/// (`${binary:Package}\t${Version}`, architecture-qualified for `Multi-Arch: same`), sorted.
pub fn package_list(status: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for stanza in status.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let (Some(pkg), Some(ver), Some(st)) =
            (field("Package"), field("Version"), field("Status"))
        else {
            continue;
        };
        if st != "install ok installed" {
            continue;
        }
        let name = match (field("Multi-Arch"), field("Architecture")) {
            (Some("same"), Some(arch)) => format!("{pkg}:{arch}"),
            _ => pkg.to_string(),
        };
        lines.push(format!("{name}\t{ver}\n"));
    }
    lines.sort();
    lines.concat()
}

/// A digest of a directory's contents: every path, type, mode, link target and file content, in
/// sorted order. `None` hashes as `none`.
pub fn digest_dir(dir: &Path) -> Result<String> {
    fn walk(h: &mut Sha256, root: &Path, rel: &Path) -> Result<()> {
        let dir = root.join(rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("cannot list {}", dir.display()))?;
        names.sort();
        for n in names {
            let r = rel.join(&n);
            let p = root.join(&r);
            let md = fs::symlink_metadata(&p)
                .with_context(|| format!("cannot inspect {}", p.display()))?;
            h.update(format!("{}\0{:o}\0", r.display(), md.mode()).as_bytes());
            if md.is_dir() {
                walk(h, root, &r)?;
            } else if md.file_type().is_symlink() {
                h.update(fs::read_link(&p)?.as_os_str().as_encoded_bytes());
            } else if md.is_file() {
                let mut f =
                    fs::File::open(&p).with_context(|| format!("cannot read {}", p.display()))?;
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = std::io::Read::read(&mut f, &mut buf)
                        .with_context(|| format!("cannot read {}", p.display()))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
            h.update(b"\n");
        }
        Ok(())
    }
    let mut h = Sha256::new();
    walk(&mut h, dir, Path::new(""))?;
    Ok(hex(&h.finalize()))
}

/// The cache's root: `$UNIONROOT_CACHE`, else `$HOME/.cache/unionroot`.
pub fn cache_root() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("UNIONROOT_CACHE").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither UNIONROOT_CACHE nor HOME is set; set UNIONROOT_CACHE to a directory")?;
    Ok(PathBuf::from(home).join(".cache/unionroot"))
}

/// `mmdebstrap --version` → `1.3.5`.
fn mmdebstrap_version() -> Result<String> {
    let out = Command::new("mmdebstrap").arg("--version").output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == ErrorKind::NotFound => bail!(
            "mmdebstrap is not installed; install it (apt-get install mmdebstrap, or \
             scripts/setup-host.sh)"
        ),
        Err(e) => return Err(e).context("cannot run mmdebstrap --version"),
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.split_whitespace()
        .nth(1)
        .filter(|v| out.status.success() && v.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_string)
        .with_context(|| format!("cannot read mmdebstrap's version from {:?}", text.trim()))
}

/// The release of a kernel modules directory (its name), which becomes a path component.
fn kernel_release(modules_dir: &Path) -> Result<String> {
    let r = modules_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if r.is_empty()
        || r.starts_with('.')
        || !r
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
    {
        bail!(
            "kernel.modules_dir {} does not end in a kernel release (e.g. 6.1.0-57-amd64)",
            modules_dir.display()
        );
    }
    Ok(r)
}

/// Runs a program, failing with its name and status.
fn run_program(cmd: &mut Command, what: &str) -> Result<()> {
    let st = cmd
        .status()
        .with_context(|| format!("cannot run {what}; is it installed?"))?;
    if !st.success() {
        bail!("{what} failed ({st})");
    }
    Ok(())
}

/// `cp -a SRC/. DST/`: GNU cp keeps owners, modes, setuid bits, hard links, xattrs and device
/// nodes, which a re-implementation would have to get all right; reflinks where the file system
/// has them.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    run_program(
        Command::new("cp")
            .arg("-a")
            .arg("--reflink=auto")
            .arg("--")
            .arg(src.join("."))
            .arg(dst),
        &format!("cp -a {} {}", src.display(), dst.display()),
    )
}

/// A cache entry is used only once its marker, written last, is there.
fn cached(entry: &Path, refresh: bool) -> bool {
    !refresh && entry.join(".complete").is_file()
}

/// Makes sure the cache entry for `k` exists (running mmdebstrap if not, or with `refresh`),
/// and returns its directory and whether it was a hit.
fn ensure_cache(entry: &Path, k: &KeyInputs, refresh: bool) -> Result<bool> {
    if cached(entry, refresh) {
        return Ok(true);
    }
    let parent = entry.parent().context("cache entry has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let started = Instant::now();
    build_dir_atomic(entry, true, |tmp| {
        let root = tmp.join("root");
        let args = k.mmdebstrap_args(&root);
        eprintln!(
            "unionroot: mmdebstrap {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        run_program(Command::new("mmdebstrap").args(&args), "mmdebstrap")?;
        let status = fs::read_to_string(root.join("var/lib/dpkg/status"))
            .context("mmdebstrap left no var/lib/dpkg/status")?;
        let list = contained(&root, PACKAGE_LIST)?;
        fs::write(&list, package_list(&status))
            .with_context(|| format!("cannot write {}", list.display()))?;
        fs::set_permissions(&list, fs::Permissions::from_mode(0o644))?;
        fs::write(tmp.join("inputs"), k.text())?;
        // Last: an entry is used only if this marker made it.
        fs::write(tmp.join(".complete"), "")?;
        Ok(())
    })
    .with_context(|| format!("building the cache entry {}", entry.display()))?;
    eprintln!(
        "unionroot: mmdebstrap result cached in {} ({:.1} s)",
        entry.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(false)
}

/// Copies the admin's overlay directory over the tree: directories, files and symlinks, owned by
/// root, modes kept (new directories only; an existing one keeps its mode, so a stray 0700
/// `etc` in the overlay cannot lock out the system). Refuses to write through a symlink.
pub fn copy_overlay(src: &Path, root: &Path) -> Result<usize> {
    fn walk(src: &Path, rel: &str, root: &Path, n: &mut usize) -> Result<()> {
        let dir = if rel.is_empty() {
            src.to_path_buf()
        } else {
            src.join(rel)
        };
        let mut names: Vec<String> = Vec::new();
        for e in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let name = e?.file_name();
            let Some(name) = name.to_str() else {
                bail!("{} holds a file name that is not UTF-8", dir.display());
            };
            names.push(name.to_string());
        }
        names.sort();
        for name in names {
            let r = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let from = src.join(&r);
            let md = fs::symlink_metadata(&from)
                .with_context(|| format!("cannot inspect {}", from.display()))?;
            let to = contained(root, &r)?;
            let chown = |p: &Path| {
                std::os::unix::fs::lchown(p, Some(0), Some(0))
                    .with_context(|| format!("cannot chown 0:0 {}", p.display()))
            };
            let ft = md.file_type();
            if ft.is_dir() {
                match fs::symlink_metadata(&to) {
                    Ok(m) if m.is_dir() => {}
                    Ok(m) => bail!(
                        "[image] files: {r} is a directory, but the image has a {} there; \
                         put the files under the path it points to (e.g. usr/lib, not lib)",
                        if m.file_type().is_symlink() {
                            "symlink"
                        } else {
                            "file"
                        }
                    ),
                    Err(_) => {
                        fs::create_dir(&to)
                            .with_context(|| format!("cannot create {}", to.display()))?;
                        fs::set_permissions(&to, fs::Permissions::from_mode(md.mode() & 0o7777))?;
                        chown(&to)?;
                    }
                }
                walk(src, &r, root, n)?;
            } else if ft.is_file() {
                remove_nondir(&to)?;
                fs::copy(&from, &to).with_context(|| {
                    format!("cannot copy {} to {}", from.display(), to.display())
                })?;
                chown(&to)?;
                // After chown, which clears setuid bits.
                fs::set_permissions(&to, fs::Permissions::from_mode(md.mode() & 0o7777))?;
            } else if ft.is_symlink() {
                remove_nondir(&to)?;
                std::os::unix::fs::symlink(fs::read_link(&from)?, &to)
                    .with_context(|| format!("cannot create {}", to.display()))?;
                chown(&to)?;
            } else {
                bail!(
                    "[image] files: {} is neither a file, a directory nor a symlink",
                    from.display()
                );
            }
            *n += 1;
        }
        Ok(())
    }
    let mut n = 0;
    walk(src, "", root, &mut n)?;
    Ok(n)
}

/// Copies the boot kernel's modules to `usr/lib/modules/<release>` and runs depmod there, so
/// that modprobe on the node finds them (Debian's image has no /lib/modules of its own).
fn install_modules(modules_dir: &Path, release: &str, root: &Path) -> Result<()> {
    let dst = contained(root, &format!("usr/lib/modules/{release}"))?;
    if fs::symlink_metadata(&dst).is_ok() {
        fs::remove_dir_all(&dst).with_context(|| format!("cannot replace {}", dst.display()))?;
    }
    fs::create_dir(&dst).with_context(|| format!("cannot create {}", dst.display()))?;
    fs::set_permissions(&dst, fs::Permissions::from_mode(0o755))?;
    // Without ownership: a copy made by root is root's, whoever owns the kernel cache.
    run_program(
        Command::new("cp")
            .args([
                "-R",
                "--no-dereference",
                "--preserve=mode,timestamps,links",
                "--",
            ])
            .arg(modules_dir.join("."))
            .arg(&dst),
        &format!("cp -R {} {}", modules_dir.display(), dst.display()),
    )?;
    // depmod looks in ROOT/lib/modules; merged /usr makes `lib` a relative link to usr/lib.
    // An absolute one would lead depmod to the build host's /usr/lib/modules.
    if let Ok(t) = fs::read_link(root.join("lib")) {
        if t.is_absolute() {
            bail!(
                "the image's /lib is a link to the absolute path {}; depmod would follow it on \
                 the build host",
                t.display()
            );
        }
    }
    run_program(
        Command::new("depmod").arg("-b").arg(root).arg(release),
        &format!("depmod -b {} {release}", root.display()),
    )
}

/// The inputs record of an image: one line per input, so a refusal can say which changed.
fn inputs_record(
    key: &str,
    k: &KeyInputs,
    steps: &[diskless::Step],
    modules: &str,
    files: &str,
) -> String {
    let mut prep = Sha256::new();
    for s in steps {
        prep.update(format!("{s:?}\n").as_bytes());
    }
    format!(
        "# what unionroot image built this tree from; it is rebuilt when a line changes\n\
         tool=unionroot {}\nmmdebstrap={key} ({} {}, {} packages, mirror {})\nprep={}\n\
         modules={modules}\nfiles={files}\n",
        env!("CARGO_PKG_VERSION"),
        k.suite,
        k.variant,
        k.packages.len(),
        k.mirror.as_deref().unwrap_or("default"),
        &hex(&prep.finalize())[..32],
    )
}

/// How the inputs record of the image at `output` differs from `record`: `None` if there is no
/// record (no image, or another kind of tree), else the changed lines (none: unchanged).
fn compare(output: &Path, record: &str) -> Result<Option<Vec<String>>> {
    let p = output.join(INPUTS_FILE);
    match fs::read_to_string(&p) {
        Ok(old) if old == record => Ok(Some(Vec::new())),
        Ok(old) => Ok(Some(crate::diff::describe_file_change(
            old.as_bytes(),
            record.as_bytes(),
        ))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
    }
}

pub fn run(args: &ImageArgs) -> Result<()> {
    let c: Cluster = cluster::load(&args.cluster)?;
    let output = args
        .output
        .clone()
        .or_else(|| c.image_dir.clone())
        .context("set paths.image in the cluster file, or pass -o DIR")?;
    if !args.dry_run && !rustix::process::geteuid().is_root() {
        bail!(
            "unionroot image must run as root: mmdebstrap's root mode and an NFS-exported \
             system tree need files owned by root (uid 0) with their setuid bits"
        );
    }
    let k = KeyInputs {
        suite: c.image.suite.clone(),
        variant: c.image.variant.clone(),
        packages: package_set(&c.image),
        mirror: c.image.mirror.clone(),
        mmdebstrap_version: mmdebstrap_version()?,
        arch: std::env::consts::ARCH.to_string(),
        source_date_epoch: std::env::var("SOURCE_DATE_EPOCH").ok(),
    };
    let key = k.key();
    let entry = cache_root()?.join("images").join(&key);
    let release = kernel_release(&c.modules_dir)?;
    let out = output.display();

    // The diskless steps depend on the cached tree, so the record of a build's inputs (and
    // whether the output is unchanged) is known only with a cache entry.
    let prepare = |steps: Vec<diskless::Step>| -> Result<(Vec<diskless::Step>, String)> {
        let modules = format!("{release} {}", &digest_dir(&c.modules_dir)?[..32]);
        let files = match &c.image.files {
            Some(f) => digest_dir(f)?[..32].to_string(),
            None => "none".into(),
        };
        let record = inputs_record(&key, &k, &steps, &modules, &files);
        Ok((steps, record))
    };
    let plan = |root: &Path| -> Result<Vec<diskless::Step>> {
        diskless::plan(&diskless::gather(root)?, &c.boot.kernel_args)
    };

    if args.dry_run {
        let mut record = None;
        if cached(&entry, args.refresh) {
            println!("dry run: mmdebstrap result cached in {}", entry.display());
            let (steps, r) = prepare(plan(&entry.join("root"))?)?;
            for s in steps {
                println!("  {s}");
            }
            record = Some(r);
        } else {
            let args = k.mmdebstrap_args(&entry.join("root"));
            let shown: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
            println!("dry run: would run mmdebstrap {}", shown.join(" "));
            println!("  then prepare it for diskless nodes (machine-id, hostname, fstab, units)");
        }
        println!(
            "  install {} as /usr/lib/modules/{release}, depmod",
            c.modules_dir.display()
        );
        if let Some(f) = &c.image.files {
            println!("  copy {} over the tree (owned by root)", f.display());
        }
        let force = if args.force { "" } else { " (needs --force)" };
        match (
            fs::symlink_metadata(&output),
            record.map(|r| compare(&output, &r)),
        ) {
            (Err(_), _) => println!("dry run: would build {out}"),
            (Ok(_), Some(Ok(Some(ch)))) if ch.is_empty() => {
                println!("dry run: {out} is up to date")
            }
            (Ok(_), Some(Ok(Some(ch)))) => {
                println!("dry run: would replace {out}{force}:");
                for l in ch {
                    println!("  {l}");
                }
            }
            (Ok(_), _) => println!("dry run: would replace {out}{force}"),
        }
        return Ok(());
    }

    if ensure_cache(&entry, &k, args.refresh)? {
        println!(
            "mmdebstrap: cached {} (inputs in {}/inputs)",
            entry.display(),
            entry.display()
        );
    }
    let cached = entry.join("root");
    let (steps, record) = prepare(plan(&cached)?)?;
    let comparison = compare(&output, &record)?;
    if comparison.is_none() && fs::read_dir(&output).is_ok_and(|mut d| d.next().is_some()) {
        // Running as root with --force, a mistyped paths.image must not swap out /usr.
        return Err(exit::refused(format!(
            "{out} is a directory with contents that `unionroot image` did not build (it has no \
             {INPUTS_FILE}); even with --force it is not replaced: remove it yourself or choose \
             another -o path"
        )));
    }
    match comparison {
        Some(ch) if ch.is_empty() => {
            println!("{out} unchanged (its {INPUTS_FILE} matches)");
            println!("package list: {}", output.join(PACKAGE_LIST).display());
            return Ok(());
        }
        Some(ch) if !args.force => {
            let mut msg = format!(
                "{out} already exists from other inputs; pass --force to replace it (the old tree \
                 is swapped out atomically), or choose another -o path\nwhat would change:"
            );
            for l in ch {
                msg += "\n  ";
                msg += &l;
            }
            return Err(exit::refused(msg));
        }
        _ => {}
    }
    let started = Instant::now();
    let outcome = build_dir_atomic(&output, args.force, |tmp| {
        copy_tree(&cached, tmp)?;
        diskless::apply(tmp, &steps)?;
        install_modules(&c.modules_dir, &release, tmp)?;
        if let Some(f) = &c.image.files {
            copy_overlay(f, tmp)?;
        }
        let p = contained(tmp, INPUTS_FILE)?;
        fs::write(&p, &record)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644))?;
        Ok(())
    })?;
    let n = fs::read_to_string(output.join(PACKAGE_LIST))
        .map(|t| t.lines().count())
        .unwrap_or(0);
    println!(
        "{} {out}: Debian {} ({}), {n} packages, kernel modules {release} ({:.1} s)",
        match outcome {
            Outcome::Replaced => "replaced",
            _ => "built",
        },
        k.suite,
        k.variant,
        started.elapsed().as_secs_f64()
    );
    println!("package list: {}", output.join(PACKAGE_LIST).display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> KeyInputs {
        KeyInputs {
            suite: "bookworm".into(),
            variant: "minbase".into(),
            packages: vec!["kmod".into(), "udev".into()],
            mirror: None,
            mmdebstrap_version: "1.3.5".into(),
            arch: "x86_64".into(),
            source_date_epoch: None,
        }
    }

    #[test]
    fn the_key_changes_with_every_input() {
        let base = inputs();
        assert_eq!(base.key(), inputs().key(), "same inputs, same key");
        assert_eq!(base.key().len(), 32);
        let changes: [fn(&mut KeyInputs); 8] = [
            |k| k.suite = "trixie".into(),
            |k| k.variant = "standard".into(),
            |k| k.packages.push("vim".into()),
            |k| k.packages = vec!["kmod".into()],
            |k| k.mirror = Some("http://deb.debian.org/debian".into()),
            |k| k.mmdebstrap_version = "1.4.0".into(),
            |k| k.arch = "aarch64".into(),
            |k| k.source_date_epoch = Some("0".into()),
        ];
        let mut keys = vec![base.key()];
        for change in changes {
            let mut k = inputs();
            change(&mut k);
            keys.push(k.key());
        }
        let mut uniq = keys.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), keys.len(), "{keys:?}");
    }

    #[test]
    fn package_set_is_sorted_and_includes_the_base() {
        let img = cluster::Image {
            suite: "bookworm".into(),
            variant: "minbase".into(),
            packages: vec!["vim".into(), "udev".into(), "openssh-server".into()],
            mirror: None,
            files: None,
        };
        let p = package_set(&img);
        let mut sorted = p.clone();
        sorted.sort();
        assert_eq!(p, sorted);
        assert_eq!(p.iter().filter(|x| *x == "udev").count(), 1);
        for b in BASE_PACKAGES {
            assert!(p.iter().any(|x| x == b), "{b}");
        }
        assert!(p.contains(&"openssh-server".to_string()));
    }

    #[test]
    fn mmdebstrap_argv_ends_options_before_values() {
        let mut k = inputs();
        k.mirror = Some("http://m/debian".into());
        let a: Vec<String> = k
            .mmdebstrap_args(Path::new("/t/root"))
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            a,
            [
                "--mode=root",
                "--format=directory",
                "--variant=minbase",
                "--include=kmod,udev",
                "--",
                "bookworm",
                "/t/root",
                "http://m/debian"
            ]
        );
    }

    #[test]
    fn package_list_like_dpkg_query() {
        let status = "Package: zlib1g\nStatus: install ok installed\nMulti-Arch: same\n\
            Architecture: amd64\nVersion: 1:1.2.13.dfsg-1\n\n\
            Package: adduser\nStatus: install ok installed\nArchitecture: all\nVersion: 3.134\n\
            Description: add users\n Version: not this\n\n\
            Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n";
        assert_eq!(
            package_list(status),
            "adduser\t3.134\nzlib1g:amd64\t1:1.2.13.dfsg-1\n"
        );
    }

    #[test]
    fn releases_are_one_clean_component() {
        assert_eq!(
            kernel_release(Path::new("/x/lib/modules/6.1.0-57-amd64")).unwrap(),
            "6.1.0-57-amd64"
        );
        assert!(kernel_release(Path::new("/x/..")).is_err());
        assert!(kernel_release(Path::new("/x/a b")).is_err());
    }

    #[test]
    fn overlay_is_copied_owned_by_root_without_following_links() {
        let src = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("etc/ssh")).unwrap();
        fs::write(s.join("etc/ssh/sshd_config"), "PermitRootLogin no\n").unwrap();
        fs::set_permissions(
            s.join("etc/ssh/sshd_config"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("/dev/null", s.join("etc/motd")).unwrap();
        fs::create_dir(root.path().join("etc")).unwrap();
        fs::set_permissions(root.path().join("etc"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(s.join("etc"), fs::Permissions::from_mode(0o700)).unwrap();
        let euid_root = rustix::process::geteuid().is_root();
        let r = copy_overlay(s, root.path());
        if !euid_root {
            // lchown to 0 needs root; the error must say so rather than leave foreign owners.
            assert!(format!("{:#}", r.unwrap_err()).contains("chown"));
            return;
        }
        assert_eq!(r.unwrap(), 4);
        let f = root.path().join("etc/ssh/sshd_config");
        let md = fs::metadata(&f).unwrap();
        assert_eq!((md.uid(), md.mode() & 0o7777), (0, 0o600));
        assert_eq!(
            fs::read_link(root.path().join("etc/motd")).unwrap(),
            Path::new("/dev/null")
        );
        assert_eq!(
            fs::metadata(root.path().join("etc")).unwrap().mode() & 0o7777,
            0o755,
            "an existing directory keeps its mode"
        );
        // A symlinked directory in the image is never written through.
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("lib")).unwrap();
        fs::create_dir_all(s.join("lib/x")).unwrap();
        fs::write(s.join("lib/x/f"), "x").unwrap();
        let e = copy_overlay(s, root.path()).unwrap_err();
        assert!(format!("{e:#}").contains("symlink"), "{e:#}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
