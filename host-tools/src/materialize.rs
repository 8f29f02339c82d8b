//! Writes a [`Tree`] into an existing, empty directory: directories, regular files and
//! symlinks, each with its mode set explicitly so the caller's umask cannot change it (the
//! sticky `tmp` directories need `chmod(2)` after `mkdir(2)` anyway).
//!
//! Device nodes are refused: creating them needs `CAP_MKNOD`, and the setup tree gets `/dev`
//! from devtmpfs at boot.

use crate::fstree::{Kind, Tree};
use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Creates every entry of `tree` below `root`, parents first.
pub fn write_tree(tree: &Tree, root: &Path) -> Result<()> {
    for e in tree.entries() {
        let path = root.join(&e.path);
        let set_mode = |p: &Path| {
            fs::set_permissions(p, fs::Permissions::from_mode(e.perm))
                .with_context(|| format!("cannot chmod {:o} {}", e.perm, p.display()))
        };
        match &e.kind {
            Kind::Dir => {
                fs::create_dir(&path)
                    .with_context(|| format!("cannot create directory {}", path.display()))?;
                set_mode(&path)?;
            }
            Kind::File(data) => {
                fs::write(&path, data)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                set_mode(&path)?;
            }
            Kind::Symlink(target) => std::os::unix::fs::symlink(target, &path)
                .with_context(|| format!("cannot create symlink {} -> {target}", path.display()))?,
            Kind::CharDev { .. } => bail!(
                "cannot create device node {} ({}): device nodes belong in an initramfs, not in a directory tree",
                path.display(),
                e.origin
            ),
        }
    }
    Ok(())
}
