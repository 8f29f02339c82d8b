//! Atomic replacement of outputs, so a reader (a QEMU run, an NFS client, make) sees either the
//! old output or the new one, never a half-written one: build beside the target, then
//! `rename(2)`, which is atomic within one filesystem.
//!
//! Files: write a temporary file in the same directory, fsync, rename, fsync the directory.
//! Directories: build `<DIR>.tmp-<pid>`, move an old `DIR` aside to `<DIR>.old-<pid>`, rename
//! the new tree in, then delete the old one. A failure before the switch removes the temporary
//! tree; a failure during it puts the old tree back.

use crate::diff;
use crate::exit;
use crate::fstree::Tree;
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Replaced,
    /// The existing file already had exactly the new contents; nothing was written.
    Unchanged,
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{} does not name a file or directory", path.display()))
}

/// Whether `path` exists, not following a final symlink.
fn exists(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(md) => Ok(Some(md)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
}

/// Writes `bytes` to `out` (mode 0644) atomically. An existing `out` with the same bytes is left
/// alone; one with other bytes is replaced only with `force`.
pub fn write_file_atomic(out: &Path, bytes: &[u8], force: bool) -> Result<Outcome> {
    let existing = exists(out)?;
    if let Some(md) = &existing {
        if md.is_dir() {
            bail!(
                "{} is a directory; give -o the path of the archive file to write",
                out.display()
            );
        }
        if md.is_file() && md.len() == bytes.len() as u64 {
            let old = fs::read(out).with_context(|| format!("cannot read {}", out.display()))?;
            if old == bytes {
                return Ok(Outcome::Unchanged);
            }
        }
        if !force {
            let mut msg = format!(
                "{} already exists with different contents; pass --force to replace it, or choose another -o path",
                out.display()
            );
            if md.is_file() {
                let old =
                    fs::read(out).with_context(|| format!("cannot read {}", out.display()))?;
                msg += "\nwhat would change:";
                for l in diff::elide(diff::describe_file_change(&old, bytes)) {
                    msg += "\n  ";
                    msg += &l;
                }
            }
            return Err(exit::refused(msg));
        }
    }
    let dir = parent_dir(out);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.tmp-", file_name(out)?))
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "cannot create a temporary file in {}; check that the directory exists and is writable",
                dir.display()
            )
        })?;
    let tmp_path = tmp.path().to_path_buf();
    let write = |f: &mut fs::File| -> std::io::Result<()> {
        f.write_all(bytes)?;
        f.set_permissions(fs::Permissions::from_mode(0o644))?;
        f.sync_all()
    };
    write(tmp.as_file_mut()).with_context(|| format!("cannot write {}", tmp_path.display()))?;
    if force {
        tmp.persist(out).map(drop).map_err(|e| e.error)
    } else {
        // Without --force, never clobber a file that appeared since the check above.
        tmp.persist_noclobber(out).map(drop).map_err(|e| e.error)
    }
    .with_context(|| format!("cannot rename {} to {}", tmp_path.display(), out.display()))?;
    // Make the rename itself durable; failing to is not worth failing the build over.
    let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    Ok(if existing.is_some() {
        Outcome::Replaced
    } else {
        Outcome::Created
    })
}

/// What writing `bytes` to `out` would do, for `--dry-run`: the outcome and the changes.
pub fn plan_file(out: &Path, bytes: &[u8]) -> Result<(Outcome, Vec<String>)> {
    match exists(out)? {
        None => Ok((Outcome::Created, Vec::new())),
        Some(md) if md.is_file() => {
            let old = fs::read(out).with_context(|| format!("cannot read {}", out.display()))?;
            if old == bytes {
                Ok((Outcome::Unchanged, Vec::new()))
            } else {
                Ok((Outcome::Replaced, diff::describe_file_change(&old, bytes)))
            }
        }
        Some(_) => Ok((
            Outcome::Replaced,
            vec![format!("{} is not a regular file", out.display())],
        )),
    }
}

/// What replacing the directory `dir` by `tree` would change; `None` when `dir` does not exist.
pub fn plan_dir(dir: &Path, tree: &Tree) -> Result<Option<Vec<String>>> {
    match exists(dir)? {
        None => Ok(None),
        Some(md) if !md.is_dir() => bail!(
            "{} exists and is not a directory; remove it or choose another -o path",
            dir.display()
        ),
        Some(_) => {
            let disk = diff::read_dir_tree(dir)
                .with_context(|| format!("cannot read the existing tree {}", dir.display()))?;
            Ok(Some(diff::tree_changes(tree, &disk)))
        }
    }
}

/// Makes `dir` hold exactly `tree`: leaves an identical tree alone, refuses to replace a
/// different one without `force` (listing the changes), else builds the new one beside it with
/// `build` and swaps it in.
pub fn sync_dir(
    dir: &Path,
    tree: &Tree,
    force: bool,
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<Outcome> {
    if let Some(changes) = plan_dir(dir, tree)? {
        if changes.is_empty() {
            return Ok(Outcome::Unchanged);
        }
        if !force {
            let mut msg = format!(
                "{} already exists and differs; pass --force to replace it (the old tree is swapped out atomically), or choose another -o path\nwhat would change:",
                dir.display()
            );
            for l in diff::elide(changes) {
                msg += "\n  ";
                msg += &l;
            }
            return Err(exit::refused(msg));
        }
    }
    build_dir_atomic(dir, force, build)
}

/// A spinner on stderr for work that takes a noticeable moment (compressing, copying a tree);
/// indicatif draws nothing when stderr is not a terminal, so logs and tests stay clean.
pub fn spinner(msg: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// Removes a temporary tree when dropped, unless it was moved into place.
struct TempTree {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempTree {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// The sibling `<DIR><suffix>-<pid>` of `dir`.
fn sibling(dir: &Path, suffix: &str) -> Result<PathBuf> {
    let name = file_name(dir)?;
    Ok(parent_dir(dir).join(format!("{name}.{suffix}-{}", std::process::id())))
}

/// Refuses early (before any work) if `dir` exists and `force` is not set.
pub fn check_dir_target(dir: &Path, force: bool) -> Result<()> {
    match exists(dir)? {
        Some(md) if !md.is_dir() => bail!(
            "{} exists and is not a directory; remove it or choose another -o path",
            dir.display()
        ),
        Some(_) if !force => Err(exit::refused(format!(
            "{} already exists; pass --force to replace it (the old tree is swapped out atomically), or choose another -o path",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// Builds a directory tree with `build` in `<dir>.tmp-<pid>` and renames it to `dir`. With
/// `force`, an existing `dir` is replaced; the window in which neither tree is at `dir` is two
/// renames long.
pub fn build_dir_atomic(
    dir: &Path,
    force: bool,
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<Outcome> {
    check_dir_target(dir, force)?;
    let tmp = sibling(dir, "tmp")?;
    if exists(&tmp)?.is_some() {
        // Left by an earlier run that died with our pid; nothing else uses this name.
        fs::remove_dir_all(&tmp)
            .with_context(|| format!("cannot remove stale {}; remove it by hand", tmp.display()))?;
    }
    fs::create_dir(&tmp).with_context(|| {
        format!(
            "cannot create {}; check that {} exists and is writable",
            tmp.display(),
            parent_dir(dir).display()
        )
    })?;
    let mut guard = TempTree {
        path: tmp.clone(),
        armed: true,
    };
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot chmod 755 {}", tmp.display()))?;
    build(&tmp)
        .with_context(|| format!("building the tree in {} failed (removed it)", tmp.display()))?;

    let outcome = if exists(dir)?.is_some() {
        check_dir_target(dir, force)?;
        let old = sibling(dir, "old")?;
        fs::rename(dir, &old).with_context(|| {
            format!(
                "cannot move the old tree {} aside to {}",
                dir.display(),
                old.display()
            )
        })?;
        if let Err(e) = fs::rename(&tmp, dir) {
            let back = fs::rename(&old, dir);
            return Err(e).with_context(|| {
                format!(
                    "cannot rename {} to {} ({})",
                    tmp.display(),
                    dir.display(),
                    match back {
                        Ok(()) => "the old tree is back in place".to_string(),
                        Err(b) => format!(
                            "and putting the old tree back failed: {b}; it is at {}",
                            old.display()
                        ),
                    }
                )
            });
        }
        guard.armed = false;
        fs::remove_dir_all(&old).with_context(|| {
            format!("the new tree is in place, but the old one at {} could not be removed; remove it by hand", old.display())
        })?;
        Outcome::Replaced
    } else {
        fs::rename(&tmp, dir)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), dir.display()))?;
        guard.armed = false;
        Outcome::Created
    };
    let _ = fs::File::open(parent_dir(dir)).and_then(|d| d.sync_all());
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn file_create_unchanged_refuse_force() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("initrd.img");
        assert_eq!(
            write_file_atomic(&out, b"one", false).unwrap(),
            Outcome::Created
        );
        assert_eq!(
            fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(
            write_file_atomic(&out, b"one", false).unwrap(),
            Outcome::Unchanged
        );
        let e = write_file_atomic(&out, b"two", false).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains(out.to_str().unwrap()) && msg.contains("--force"),
            "{msg}"
        );
        assert_eq!(
            fs::read(&out).unwrap(),
            b"one",
            "refusal leaves the old file"
        );
        assert_eq!(
            write_file_atomic(&out, b"two", true).unwrap(),
            Outcome::Replaced
        );
        assert_eq!(fs::read(&out).unwrap(), b"two");
        assert_eq!(
            leftovers(d.path()),
            ["initrd.img"],
            "no temporary files left behind"
        );
    }

    #[test]
    fn file_into_missing_dir_or_onto_dir_fails_cleanly() {
        let d = tempfile::tempdir().unwrap();
        let e = write_file_atomic(&d.path().join("no/such/x"), b"x", true).unwrap_err();
        assert!(format!("{e:#}").contains("no/such"), "{e:#}");
        let e = write_file_atomic(d.path(), b"x", true).unwrap_err();
        assert!(format!("{e:#}").contains("is a directory"), "{e:#}");
    }

    #[test]
    fn dir_build_refuse_replace_and_failure_cleanup() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("setup");
        let put = |v: &'static str| {
            move |p: &Path| -> Result<()> {
                fs::write(p.join("v"), v)?;
                Ok(())
            }
        };
        assert_eq!(
            build_dir_atomic(&out, false, put("1")).unwrap(),
            Outcome::Created
        );
        let e = build_dir_atomic(&out, false, put("2")).unwrap_err();
        assert!(format!("{e:#}").contains("--force"), "{e:#}");
        assert_eq!(fs::read_to_string(out.join("v")).unwrap(), "1");

        // A failing build leaves the old tree and no temporary tree.
        let e = build_dir_atomic(&out, true, |p| {
            fs::write(p.join("half"), "x")?;
            bail!("injected failure")
        })
        .unwrap_err();
        assert!(format!("{e:#}").contains("injected failure"), "{e:#}");
        assert_eq!(fs::read_to_string(out.join("v")).unwrap(), "1");
        assert!(!out.join("half").exists());
        assert_eq!(leftovers(d.path()), ["setup"]);

        assert_eq!(
            build_dir_atomic(&out, true, put("2")).unwrap(),
            Outcome::Replaced
        );
        assert_eq!(fs::read_to_string(out.join("v")).unwrap(), "2");
        assert_eq!(
            leftovers(d.path()),
            ["setup"],
            "old and temporary trees are gone"
        );
        assert_eq!(
            fs::metadata(&out).unwrap().permissions().mode() & 0o7777,
            0o755
        );
    }

    #[test]
    fn dir_target_that_is_a_file_is_refused_even_with_force() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("f");
        fs::write(&out, "x").unwrap();
        let e = build_dir_atomic(&out, true, |_| Ok(())).unwrap_err();
        assert!(format!("{e:#}").contains("not a directory"), "{e:#}");
        assert_eq!(leftovers(d.path()), ["f"]);
    }
}
