//! `image-pack`, `image-switch` and `image-gc`: a system tree becomes a read-only image
//! (squashfs via mksquashfs(1), EROFS via mkfs.erofs(1)), published as a content-named
//! generation in an images directory, with the pointer and the log of [`crate::generations`].
//!
//! Why EROFS is the default (measured on this project's Debian 12 tree, 17k entries, 676 MB,
//! two cores): mkfs.erofs (lz4hc) built it in 14-16 s, mksquashfs (zstd) in 62-69 s, and
//! mksquashfs drops the POSIX ACL xattrs (`system.posix_acl_*`, "Unrecognised xattr prefix";
//! the kernel's squashfs has no ACL support) that systemd puts on `/var/log/journal`, which
//! EROFS keeps. lz4 also decompresses much faster than zstd under emulation. squashfs makes
//! the smaller file (164 against 290 MiB: Debian 12's erofs-utils 1.5 has only lz4), so it
//! stays available with `--format squashfs`.
//!
//! Reproducible: every timestamp in the image is `$SOURCE_DATE_EPOCH` (or 0): mksquashfs
//! `-all-time -mkfs-time`, mkfs.erofs `-T`; EROFS's UUID is the nil UUID (`-U`). Both tools
//! write directory entries sorted by name, keep the tree's owners and modes, and, unlike the
//! tree's mtimes, nothing else varies between builds: the same tree gives the same bytes, the
//! same bytes the same generation. A re-copied tree (new mtimes) is the same generation too.
//!
//! Publishing never harms a node that runs a generation: the image is built under a hidden
//! temporary name in the images directory, fsynced, and renamed to its content name with
//! `RENAME_NOREPLACE` (an existing generation is the same bytes and is left as it is); only
//! then is the pointer switched, by writing a temporary file, fsync and `rename(2)`.

use crate::cli::{ImageGcArgs, ImagePackArgs, ImageSwitchArgs, ImagesArgs};
use crate::cluster;
use crate::exit;
use crate::generations::{self, Format, GcPlan, Generation, Name};
use crate::initramfs::mtime_from_env;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The program that builds `format`, and the Debian package that has it.
pub fn tool(format: Format) -> (&'static str, &'static str) {
    match format {
        Format::Squashfs => ("mksquashfs", "squashfs-tools"),
        Format::Erofs => ("mkfs.erofs", "erofs-utils"),
    }
}

/// The command line that builds `out` from `tree`, reproducibly, stamped `epoch`.
pub fn build_command(format: Format, tree: &Path, out: &Path, epoch: u32) -> Command {
    let (prog, _) = tool(format);
    let mut c = Command::new(prog);
    // Both tools read SOURCE_DATE_EPOCH themselves; mksquashfs refuses it beside -all-time.
    // The flags say the same thing explicitly.
    c.env_remove("SOURCE_DATE_EPOCH");
    match format {
        Format::Squashfs => {
            c.arg(tree).arg(out).args(["-noappend", "-comp", "zstd"]);
            c.arg("-all-time").arg(epoch.to_string());
            c.arg("-mkfs-time").arg(epoch.to_string());
            c.args(["-quiet", "-no-progress"]);
        }
        Format::Erofs => {
            c.args(["-zlz4hc", "-U", "00000000-0000-0000-0000-000000000000"]);
            c.arg(format!("-T{epoch}")).arg("--quiet");
            c.arg(out).arg(tree);
        }
    }
    c
}

/// A command as the line `--dry-run` prints.
pub(crate) fn shell_line(c: &Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the builder, naming the package to install when it is missing.
fn run_builder(format: Format, mut cmd: Command) -> Result<()> {
    let (prog, pkg) = tool(format);
    let line = shell_line(&cmd);
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == ErrorKind::NotFound => bail!(
            "{prog} is not installed; install it with `apt-get install {pkg}` (or choose the \
             other --format)"
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot run {prog}")),
    };
    if !out.status.success() {
        bail!(
            "{line} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The SHA-256 of a file, read in 1 MiB pieces (a Debian image is hundreds of MiB).
fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut f = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let (mut h, mut buf) = (Sha256::new(), vec![0u8; 1 << 20]);
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(h.finalize().into()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}

fn fsync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the directory {}", dir.display()))
}

/// Reads a small text file of the images directory; `None` if it does not exist.
fn read_text(path: &Path) -> Result<Option<String>> {
    match fs::read(path) {
        Ok(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Replaces `path` with `text`: a temporary file in the same directory, fsync, `rename(2)`,
/// fsync of the directory. A reader (linuxrc over NFS) sees the old text or the new one.
pub fn replace_text(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".unionroot-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write a temporary file for {}", path.display()))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot chmod the temporary file for {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot rename a temporary file onto {}", path.display()))?;
    fsync_dir(dir)
}

/// An exclusive `flock(2)` on the images directory, held while the pointer, the log or the
/// generations change: a publish and a gc at once could otherwise point at a generation the gc
/// is deleting, or lose a log line. Released when dropped (the process's exit included).
pub struct DirLock {
    _dir: fs::File,
}

/// One images directory and one image name in it.
pub struct Store {
    pub dir: PathBuf,
    pub name: Name,
}

impl Store {
    pub fn new(dir: &Path, name: &str) -> Result<Store> {
        let name = Name::new(name).map_err(|e| exit::failure(exit::USAGE, e))?;
        let md = fs::metadata(dir).with_context(|| {
            format!(
                "the images directory {} is missing; create it (mkdir -p) and export it \
                 read-only to the nodes",
                dir.display()
            )
        })?;
        if !md.is_dir() {
            bail!(
                "{} is not a directory; --images takes the images directory",
                dir.display()
            );
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            name,
        })
    }

    /// Waits for, then takes, the directory's lock (another `unionroot image-*` may hold it).
    pub fn lock(&self) -> Result<DirLock> {
        let d = fs::File::open(&self.dir)
            .with_context(|| format!("cannot open {}", self.dir.display()))?;
        rustix::fs::flock(&d, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("cannot lock {} (flock)", self.dir.display()))?;
        Ok(DirLock { _dir: d })
    }

    pub fn pointer_path(&self) -> PathBuf {
        self.dir.join(self.name.pointer_file())
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(self.name.log_file())
    }

    pub fn path_of(&self, g: &Generation) -> PathBuf {
        self.dir.join(&g.file)
    }

    /// The generation the pointer names, if there is a pointer. Its file must exist.
    pub fn current(&self) -> Result<Option<Generation>> {
        let p = self.pointer_path();
        let Some(text) = read_text(&p)? else {
            return Ok(None);
        };
        let g = self
            .name
            .parse_pointer(&text)
            .with_context(|| format!("{} is not a valid pointer", p.display()))?;
        Ok(Some(g))
    }

    pub fn log(&self) -> Result<Vec<Generation>> {
        let p = self.log_path();
        let text = read_text(&p)?.unwrap_or_default();
        self.name.parse_log(&text).map_err(|(line, e)| {
            anyhow::anyhow!(
                "{}:{line}: {e}; fix or remove that line (gc deletes only what the log lists)",
                p.display()
            )
        })
    }

    /// The generation files of this name in the directory, sorted.
    pub fn present(&self) -> Result<Vec<Generation>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list {}", self.dir.display()))?
        {
            let e = e.with_context(|| format!("cannot list {}", self.dir.display()))?;
            if let Some(g) = e
                .file_name()
                .to_str()
                .and_then(|f| self.name.parse_generation(f).ok())
            {
                out.push(g);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The temporary images (`.NAME.tmp-<pid>.<ext>`) of builds in progress or crashed.
    pub fn leftovers(&self) -> Result<Vec<String>> {
        let prefix = format!(".{}.tmp-", self.name);
        let mut out: Vec<String> = fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list {}", self.dir.display()))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Checks that `g`'s file is a regular file with its format's magic number, so that a
    /// pointer never names a missing or foreign file.
    pub fn verify(&self, g: &Generation) -> Result<()> {
        let p = self.path_of(g);
        let md = fs::symlink_metadata(&p).with_context(|| {
            format!(
                "the generation {} is missing ({}); list the generations with `ls {}`",
                g,
                p.display(),
                self.dir.display()
            )
        })?;
        if !md.is_file() {
            bail!("{} is not a regular file", p.display());
        }
        let (at, magic) = g.format.magic();
        let mut head = vec![0u8; at + magic.len()];
        let ok = fs::File::open(&p)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
            && &head[at..] == magic;
        if !ok {
            bail!(
                "{} is not a {} image (no magic number at byte {at}); it is truncated or \
                 corrupt: publish the tree again",
                p.display(),
                g.format
            );
        }
        Ok(())
    }

    /// Points `<name>.current` at `g` (which must exist). Returns whether it changed.
    pub fn switch(&self, g: &Generation) -> Result<bool> {
        self.verify(g)?;
        if self.current().ok().flatten().as_ref() == Some(g) {
            return Ok(false);
        }
        replace_text(&self.pointer_path(), &self.name.pointer_text(g))?;
        Ok(true)
    }

    /// Moves the finished image `tmp` (in the images directory) to its content name, unless
    /// that generation exists: then the bytes are the same and `tmp` is removed. Returns the
    /// generation and whether it is new.
    pub fn publish_file(&self, tmp: &Path, format: Format) -> Result<(Generation, bool)> {
        fs::File::open(tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
        fs::set_permissions(tmp, fs::Permissions::from_mode(0o444))
            .with_context(|| format!("cannot chmod {}", tmp.display()))?;
        let g = self.name.generation(&sha256_file(tmp)?, format);
        let dest = self.path_of(&g);
        let new = match rustix::fs::renameat_with(
            rustix::fs::CWD,
            tmp,
            rustix::fs::CWD,
            &dest,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => true,
            Err(rustix::io::Errno::EXIST) => false,
            // The NFS client takes no rename flags (an images directory shared by several
            // hosts is often NFS-mounted): link(2) is atomic and never replaces either.
            Err(rustix::io::Errno::INVAL) => match fs::hard_link(tmp, &dest) {
                Ok(()) => true,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
                Err(e) => {
                    let _ = fs::remove_file(tmp);
                    return Err(e).with_context(|| {
                        format!("cannot link {} to {}", tmp.display(), dest.display())
                    });
                }
            },
            Err(e) => {
                let _ = fs::remove_file(tmp);
                return Err(e).with_context(|| {
                    format!("cannot rename {} to {}", tmp.display(), dest.display())
                });
            }
        };
        // Gone already after a rename; after a link, or when the generation existed (the same
        // bytes), the temporary name goes.
        if tmp.exists() {
            fs::remove_file(tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
        }
        fsync_dir(&self.dir)?;
        let log = self.log()?;
        let after = generations::log_after_publish(&log, &g);
        if after != log {
            replace_text(&self.log_path(), &log_text(&after))?;
        }
        Ok((g, new))
    }

    pub fn gc_plan(&self, keep: usize) -> Result<GcPlan> {
        let current = self.current()?;
        Ok(generations::gc_plan(
            &self.log()?,
            current.as_ref(),
            &self.present()?,
            keep,
        ))
    }
}

fn log_text(log: &[Generation]) -> String {
    log.iter().map(|g| format!("{}\n", g.file)).collect()
}

/// The store, format and K the command line and cluster.toml's `[images]` ask for (flags win).
pub(crate) fn resolve(a: &ImagesArgs) -> Result<(Store, Format, usize)> {
    let images = match &a.cluster {
        Some(c) => Some(cluster::load(c)?.images),
        None => None,
    };
    let missing = |flag: &str, key: &str| {
        exit::failure(
            exit::USAGE,
            anyhow::anyhow!(
                "no {flag}: give it, or set {key} in the [images] table of {}",
                a.cluster
                    .as_deref()
                    .map_or("cluster.toml".into(), |p| p.display().to_string())
            ),
        )
    };
    let dir = match (
        a.images.clone(),
        images.as_ref().and_then(|i| i.dir.clone()),
    ) {
        (Some(d), _) | (None, Some(d)) => d,
        (None, None) => return Err(missing("--images DIR", "dir")),
    };
    let name = match (&a.name, images.as_ref().and_then(|i| i.name.clone())) {
        (Some(n), _) => n.clone(),
        (None, Some(n)) => n.as_str().to_string(),
        (None, None) => return Err(missing("--name NAME", "name")),
    };
    let format = images
        .as_ref()
        .map_or(generations::DEFAULT_FORMAT, |i| i.format);
    let keep = images
        .as_ref()
        .map_or(generations::DEFAULT_KEEP, |i| i.keep);
    Ok((Store::new(&dir, &name)?, format, keep))
}

/// Builds `tree` into an image and publishes it; returns the generation, whether it is new, and
/// the directory's lock, to be held while the pointer is switched to it.
pub fn pack(
    store: &Store,
    tree: &Path,
    format: Format,
    epoch: u32,
) -> Result<(Generation, bool, DirLock)> {
    let md = fs::metadata(tree).with_context(|| {
        format!(
            "the tree {} is missing; build it first (`unionroot setup-tree` or `unionroot image`)",
            tree.display()
        )
    })?;
    if !md.is_dir() {
        bail!(
            "{} is not a directory; image-pack takes a system tree",
            tree.display()
        );
    }
    // A name no other build can have (created O_EXCL with a random part): the directory may
    // be shared by several hosts, whose pids collide. Removed on every early return.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.tmp-", store.name))
        .suffix(&format!(".{}", format.ext()))
        .tempfile_in(&store.dir)
        .with_context(|| format!("cannot create a temporary image in {}", store.dir.display()))?
        .into_temp_path();
    run_builder(format, build_command(format, tree, &tmp, epoch))?;
    let lock = store.lock()?;
    let (g, new) = store.publish_file(&tmp, format)?;
    Ok((g, new, lock))
}

pub fn run_pack(a: &ImagePackArgs) -> Result<()> {
    let (store, format, _) = resolve(&a.store)?;
    let format = a.format.unwrap_or(format);
    let epoch = mtime_from_env(std::env::var("SOURCE_DATE_EPOCH").ok().as_deref())?;
    if a.dry_run {
        let tmp = store
            .dir
            .join(format!(".{}.tmp-<pid>.{}", store.name, format.ext()));
        println!(
            "dry run: would run {}",
            shell_line(&build_command(format, &a.tree, &tmp, epoch))
        );
        println!(
            "dry run: would rename it to {}/{}-<sha256:16>.{}{}",
            store.dir.display(),
            store.name,
            format.ext(),
            if a.no_switch {
                ""
            } else {
                " and point the pointer at it"
            }
        );
        match store.current()? {
            Some(g) => println!("dry run: {} names {g}", store.pointer_path().display()),
            None => println!(
                "dry run: {} does not exist yet",
                store.pointer_path().display()
            ),
        }
        return Ok(());
    }
    let (g, new, _lock) = pack(&store, &a.tree, format, epoch)?;
    let path = store.path_of(&g);
    println!(
        "{} {}",
        if new {
            "published"
        } else {
            "unchanged (already published)"
        },
        path.display()
    );
    if !a.no_switch {
        switch_and_say(&store, &g)?;
    }
    Ok(())
}

/// Switches the pointer to `g` and says whether it changed.
fn switch_and_say(store: &Store, g: &Generation) -> Result<()> {
    let p = store.pointer_path();
    if store.switch(g)? {
        println!("{} now names {g}", p.display());
    } else {
        println!("{} already names {g}", p.display());
    }
    Ok(())
}

pub fn run_switch(a: &ImageSwitchArgs) -> Result<()> {
    let (store, _, _) = resolve(&a.store)?;
    let _lock = store.lock()?;
    let candidates: Vec<Generation> = store
        .name
        .resolve_arg(&a.generation)
        .into_iter()
        .filter(|g| store.path_of(g).exists())
        .collect();
    let g = match candidates.as_slice() {
        [g] => g.clone(),
        [] => bail!(
            "no generation {:?} of {} in {}; give a file name {}-<hash>.<sqfs|erofs> or its \
             hash, as listed in {}",
            a.generation,
            store.name,
            store.dir.display(),
            store.name,
            store.log_path().display()
        ),
        many => bail!(
            "{:?} matches {}; give the whole file name",
            a.generation,
            many.iter()
                .map(|g| g.file.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    };
    let p = store.pointer_path();
    if a.dry_run {
        store.verify(&g)?;
        println!("dry run: would point {} at {g}", p.display());
        return Ok(());
    }
    switch_and_say(&store, &g)
}

pub fn run_gc(a: &ImageGcArgs) -> Result<()> {
    let (store, _, keep) = resolve(&a.store)?;
    let _lock = store.lock()?;
    let plan = store.gc_plan(a.keep.unwrap_or(keep))?;
    if let Some(c) = store.current()? {
        store.verify(&c).with_context(|| {
            format!(
                "{} names a generation that cannot be used; repair it with `unionroot \
                 image-switch` before gc",
                store.pointer_path().display()
            )
        })?;
    }
    let verb = if a.dry_run {
        "dry run: would keep"
    } else {
        "keep"
    };
    for g in &plan.keep {
        println!("{verb} {g}");
    }
    for g in &plan.unknown {
        println!(
            "leave {g} (not in {}, so its age is unknown; delete it by hand if no node uses it)",
            store.name.log_file()
        );
    }
    // A crashed image-pack leaves its temporary image; a running one is still writing it, and
    // the directory may be shared by several hosts, so it is named, not deleted.
    for tmp in store.leftovers()? {
        println!(
            "leave {tmp} (a temporary image of image-pack; delete it if no image-pack is running)"
        );
    }
    for g in &plan.delete {
        if a.dry_run {
            println!("dry run: would delete {g}");
            continue;
        }
        let p = store.path_of(g);
        match fs::remove_file(&p) {
            Ok(()) => println!("deleted {g}"),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot delete {}", p.display())),
        }
    }
    if !a.dry_run {
        let log = store.log()?;
        if plan.log != log {
            replace_text(&store.log_path(), &log_text(&plan.log))?;
        }
        fsync_dir(&store.dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> Store {
        Store::new(dir, "deb").unwrap()
    }

    /// A fake image of `format` (its magic number and some bytes) at a temporary name.
    fn fake_image(dir: &Path, format: Format, fill: u8) -> PathBuf {
        let (at, magic) = format.magic();
        let mut b = vec![fill; 4096];
        b[at..at + magic.len()].copy_from_slice(magic);
        let p = dir.join(format!(".deb.tmp-test-{fill}.{}", format.ext()));
        fs::write(&p, b).unwrap();
        p
    }

    #[test]
    fn the_directory_lock_excludes_a_second_writer() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        let try_lock = || {
            let f = fs::File::open(d.path()).unwrap();
            rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        };
        let held = s.lock().unwrap();
        assert_eq!(try_lock(), Err(rustix::io::Errno::WOULDBLOCK));
        drop(held);
        assert_eq!(try_lock(), Ok(()));
    }

    #[test]
    fn bad_names_and_dirs_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = Store::new(d.path(), "../x").err().unwrap();
        assert_eq!(exit::code_of(&e), exit::USAGE);
        let e = Store::new(&d.path().join("nope"), "deb").err().unwrap();
        assert!(format!("{e:#}").contains("mkdir -p"), "{e:#}");
    }

    #[test]
    fn publish_never_overwrites_and_logs_once() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        let (g1, new) = s
            .publish_file(&fake_image(d.path(), Format::Erofs, 1), Format::Erofs)
            .unwrap();
        assert!(new);
        let p = s.path_of(&g1);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o444
        );
        let ino = rustix::fs::stat(&p).unwrap().st_ino;
        // The same bytes again: the file stays the same inode, the temporary file goes.
        let (again, new) = s
            .publish_file(&fake_image(d.path(), Format::Erofs, 1), Format::Erofs)
            .unwrap();
        assert_eq!((again.clone(), new), (g1.clone(), false));
        assert_eq!(rustix::fs::stat(&p).unwrap().st_ino, ino);
        assert_eq!(s.log().unwrap(), std::slice::from_ref(&g1));
        let (g2, _) = s
            .publish_file(&fake_image(d.path(), Format::Erofs, 2), Format::Erofs)
            .unwrap();
        assert_ne!(g1, g2);
        assert_eq!(s.log().unwrap(), [g1, g2]);
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(names.is_empty(), "temporary files left: {names:?}");
    }

    #[test]
    fn pointer_switches_atomically_and_only_to_real_images() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        let (g1, _) = s
            .publish_file(&fake_image(d.path(), Format::Squashfs, 1), Format::Squashfs)
            .unwrap();
        let (g2, _) = s
            .publish_file(&fake_image(d.path(), Format::Squashfs, 2), Format::Squashfs)
            .unwrap();
        assert!(s.current().unwrap().is_none());
        assert!(s.switch(&g1).unwrap());
        assert_eq!(
            fs::read_to_string(s.pointer_path()).unwrap(),
            format!("{}\n", g1.file)
        );
        // A reader holding the old pointer open keeps the old text: the file was replaced.
        let mut held = fs::File::open(s.pointer_path()).unwrap();
        assert!(s.switch(&g2).unwrap());
        assert!(!s.switch(&g2).unwrap());
        let mut old = String::new();
        held.read_to_string(&mut old).unwrap();
        assert_eq!(old, format!("{}\n", g1.file));
        assert_eq!(s.current().unwrap(), Some(g2.clone()));
        // A missing generation, or a file that is not an image, is never pointed at.
        let missing = s.name.generation(&[9; 32], Format::Squashfs);
        let e = s.switch(&missing).unwrap_err();
        assert!(format!("{e:#}").contains("is missing"), "{e:#}");
        let junk = s.name.generation(&[7; 32], Format::Erofs);
        fs::write(s.path_of(&junk), b"hsqs but short").unwrap();
        let e = s.switch(&junk).unwrap_err();
        assert!(format!("{e:#}").contains("truncated or corrupt"), "{e:#}");
        assert_eq!(s.current().unwrap(), Some(g2));
        // No temporary pointer files are left behind.
        assert!(fs::read_dir(d.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".unionroot-")));
    }

    #[test]
    fn commands_are_reproducible_by_construction() {
        let sq = shell_line(&build_command(
            Format::Squashfs,
            Path::new("/t"),
            Path::new("/o"),
            7,
        ));
        assert_eq!(
            sq,
            "mksquashfs /t /o -noappend -comp zstd -all-time 7 -mkfs-time 7 -quiet -no-progress"
        );
        let er = shell_line(&build_command(
            Format::Erofs,
            Path::new("/t"),
            Path::new("/o"),
            7,
        ));
        assert_eq!(
            er,
            "mkfs.erofs -zlz4hc -U 00000000-0000-0000-0000-000000000000 -T7 --quiet /o /t"
        );
    }
}
