//! An in-memory description of a file tree: directories, files, symlinks and device nodes, each
//! with its permission bits, keyed by a validated relative path.
//!
//! Both outputs of the host tool are built from it: [`crate::cpio`] encodes it as an initramfs and
//! [`crate::materialize`] writes it to a directory (the setup tree). Keeping the tree as data
//! means the `--dry-run` plan, the archive and the directory all come from one value, and that the
//! order is fixed: paths compare component by component, so every parent sorts before its
//! children and the same inputs always give the same sequence (see `inode(7)` for the mode bits).

use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
/// Permission, setuid/setgid and sticky bits: everything a tree entry may set besides its type.
pub const PERM_MASK: u32 = 0o7777;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TreeError {
    #[error("invalid path {path:?} in the tree: {why}")]
    BadPath { path: String, why: &'static str },
    #[error("{path:?} is given twice ({first} and {second}); drop one of them")]
    Duplicate {
        path: String,
        first: String,
        second: String,
    },
    #[error("{path:?} needs {parent:?} to be a directory, but {parent:?} is a {kind}")]
    ParentNotDir {
        path: String,
        parent: String,
        kind: &'static str,
    },
}

/// What an entry is. File contents are held in memory: the trees built here are a few MB.
#[derive(Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

impl fmt::Debug for Kind {
    // File contents can be megabytes; a failing assertion should show their size, not dump them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Dir => write!(f, "Dir"),
            Kind::File(d) => write!(f, "File({} bytes)", d.len()),
            Kind::Symlink(t) => write!(f, "Symlink({t:?})"),
            Kind::CharDev { major, minor } => write!(f, "CharDev({major}:{minor})"),
        }
    }
}

impl Kind {
    fn noun(&self) -> &'static str {
        match self {
            Kind::Dir => "directory",
            Kind::File(_) => "file",
            Kind::Symlink(_) => "symlink",
            Kind::CharDev { .. } => "character device",
        }
    }
}

/// One entry. `origin` says where it came from (`--init`, `modules.dep`, ...) so that conflicts
/// can name both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub perm: u32,
    pub kind: Kind,
    pub origin: String,
}

impl Entry {
    /// The full `st_mode`: type bits and permission bits.
    pub fn mode(&self) -> u32 {
        let ty = match self.kind {
            Kind::Dir => S_IFDIR,
            Kind::File(_) => S_IFREG,
            Kind::Symlink(_) => S_IFLNK,
            Kind::CharDev { .. } => S_IFCHR,
        };
        ty | (self.perm & PERM_MASK)
    }

    /// The size of the entry's data as stored: file length, or symlink target length.
    pub fn size(&self) -> usize {
        match &self.kind {
            Kind::File(d) => d.len(),
            Kind::Symlink(t) => t.len(),
            Kind::Dir | Kind::CharDev { .. } => 0,
        }
    }
}

/// `ls -l` style rendering of a mode, e.g. `drwxrwxrwt` or `crw-------`.
pub fn mode_string(mode: u32) -> String {
    let ty = match mode & 0o170000 {
        S_IFDIR => 'd',
        S_IFLNK => 'l',
        S_IFCHR => 'c',
        S_IFREG => '-',
        _ => '?',
    };
    let mut s = String::with_capacity(10);
    s.push(ty);
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, (bit, set_x, set_nox)) in special.iter().enumerate() {
        let shift = 6 - 3 * i;
        let rwx = (mode >> shift) & 7;
        s.push(if rwx & 4 != 0 { 'r' } else { '-' });
        s.push(if rwx & 2 != 0 { 'w' } else { '-' });
        let x = rwx & 1 != 0;
        s.push(match (mode & bit != 0, x) {
            (true, true) => *set_x,
            (true, false) => *set_nox,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

impl fmt::Display for Entry {
    /// One line of a `--dry-run` plan: mode, size (or device numbers), path, link target.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = match &self.kind {
            Kind::CharDev { major, minor } => format!("{major},{minor}"),
            _ => self.size().to_string(),
        };
        write!(
            f,
            "{} {:>10} /{}",
            mode_string(self.mode()),
            size,
            self.path
        )?;
        if let Kind::Symlink(t) = &self.kind {
            write!(f, " -> {t}")?;
        }
        write!(f, "  ({})", self.origin)
    }
}

/// Splits `path` into components, accepting an optional leading `/`. Rejects anything that
/// could escape the tree or that the kernel's cpio unpacker would treat oddly.
pub fn components(path: &str) -> Result<Vec<String>, TreeError> {
    let bad = |why| TreeError::BadPath {
        path: path.to_string(),
        why,
    };
    let rel = path.strip_prefix('/').unwrap_or(path);
    if rel.is_empty() {
        return Err(bad("it names the root itself"));
    }
    if rel.contains('\0') {
        return Err(bad("it contains a NUL byte"));
    }
    let rel = rel.strip_suffix('/').unwrap_or(rel);
    rel.split('/')
        .map(|c| match c {
            "" => Err(bad("it contains an empty component ('//')")),
            "." | ".." => Err(bad("it contains '.' or '..'")),
            c => Ok(c.to_string()),
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Slot {
    entry: Entry,
    /// Created only because a child needed it; an explicit directory entry may take it over.
    implicit: bool,
}

/// A set of entries with unique, validated paths; missing parent directories are added (0755).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    slots: BTreeMap<Vec<String>, Slot>,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `entry`, creating missing parents as 0755 directories. Two entries for one path are
    /// an error, except that an explicit directory may set the mode of an implicit one.
    pub fn insert(&mut self, mut entry: Entry) -> Result<(), TreeError> {
        let comps = components(&entry.path)?;
        entry.path = comps.join("/");
        self.check_parents(&comps, &entry.path)?;
        if let Some(old) = self.slots.get(&comps) {
            let both_dirs = old.entry.kind == Kind::Dir && entry.kind == Kind::Dir;
            let same = both_dirs && old.entry.perm == entry.perm;
            if !(both_dirs && (old.implicit || same)) {
                return Err(TreeError::Duplicate {
                    path: format!("/{}", entry.path),
                    first: old.entry.origin.clone(),
                    second: entry.origin,
                });
            }
        }
        for n in 1..comps.len() {
            let parent = &comps[..n];
            self.slots.entry(parent.to_vec()).or_insert_with(|| Slot {
                entry: Entry {
                    path: parent.join("/"),
                    perm: 0o755,
                    kind: Kind::Dir,
                    origin: "parent directory".to_string(),
                },
                implicit: true,
            });
        }
        self.slots.insert(
            comps,
            Slot {
                entry,
                implicit: false,
            },
        );
        Ok(())
    }

    /// Whether `path` could be added without a conflict: nothing is there, nothing is below it,
    /// and every existing ancestor is a directory.
    pub fn is_free(&self, path: &str) -> bool {
        let Ok(comps) = components(path) else {
            return false;
        };
        if self.check_parents(&comps, path).is_err() || self.slots.contains_key(&comps) {
            return false;
        }
        // Anything below `path` would be the first key after it in component order.
        !self
            .slots
            .range(comps.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&comps))
    }

    fn check_parents(&self, comps: &[String], path: &str) -> Result<(), TreeError> {
        for n in 1..comps.len() {
            if let Some(p) = self.slots.get(&comps[..n]) {
                if p.entry.kind != Kind::Dir {
                    return Err(TreeError::ParentNotDir {
                        path: path.to_string(),
                        parent: p.entry.path.clone(),
                        kind: p.entry.kind.noun(),
                    });
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.slots.get(&components(path).ok()?).map(|s| &s.entry)
    }

    /// Entries in their fixed order: by path components, so parents come before children.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.values().map(|s| &s.entry)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Total bytes of file and symlink data.
    pub fn data_size(&self) -> u64 {
        self.entries().map(|e| e.size() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(p: &str, perm: u32) -> Entry {
        Entry {
            path: p.into(),
            perm,
            kind: Kind::Dir,
            origin: "test".into(),
        }
    }
    fn file(p: &str, data: &[u8]) -> Entry {
        Entry {
            path: p.into(),
            perm: 0o644,
            kind: Kind::File(data.to_vec()),
            origin: "test".into(),
        }
    }

    #[test]
    fn parents_come_first_and_are_created() {
        let mut t = Tree::new();
        t.insert(file("/lib-x/a", b"1")).unwrap();
        t.insert(file("lib/modules/k/b.ko", b"2")).unwrap();
        t.insert(dir("lib", 0o700)).unwrap();
        t.insert(file("lib/z", b"3")).unwrap();
        let paths: Vec<_> = t.entries().map(|e| e.path.as_str()).collect();
        // Component order: "lib" and everything below it before "lib-x", although '-' < '/'.
        assert_eq!(
            paths,
            [
                "lib",
                "lib/modules",
                "lib/modules/k",
                "lib/modules/k/b.ko",
                "lib/z",
                "lib-x",
                "lib-x/a"
            ]
        );
        assert_eq!(
            t.get("/lib").unwrap().perm,
            0o700,
            "explicit dir takes over implicit one"
        );
        assert_eq!(t.get("lib/modules").unwrap().perm, 0o755);
    }

    #[test]
    fn conflicts_are_errors_naming_both_sides() {
        let mut t = Tree::new();
        t.insert(Entry {
            origin: "--init".into(),
            ..file("init", b"a")
        })
        .unwrap();
        let e = t.insert(Entry {
            origin: "--add x:/init".into(),
            ..file("/init", b"b")
        });
        assert_eq!(
            e.unwrap_err(),
            TreeError::Duplicate {
                path: "/init".into(),
                first: "--init".into(),
                second: "--add x:/init".into()
            }
        );
        let e = t.insert(file("init/x", b"")).unwrap_err();
        assert!(
            matches!(e, TreeError::ParentNotDir { ref parent, .. } if parent == "init"),
            "{e}"
        );
        t.insert(dir("etc", 0o755)).unwrap();
        t.insert(dir("etc", 0o755)).unwrap();
        assert!(
            t.insert(dir("etc", 0o700)).is_err(),
            "two explicit modes for one dir"
        );
        assert!(t.insert(file("etc", b"")).is_err());
    }

    #[test]
    fn bad_paths_are_rejected() {
        for p in ["", "/", "a/../b", "./a", "a//b", "a\0b", ".."] {
            assert!(components(p).is_err(), "{p:?}");
        }
        assert_eq!(components("/a/b/").unwrap(), ["a", "b"]);
    }

    #[test]
    fn is_free_sees_entries_children_and_non_dir_parents() {
        let mut t = Tree::new();
        t.insert(file("bin/busybox", b"")).unwrap();
        t.insert(dir("lib/modules", 0o755)).unwrap();
        assert!(!t.is_free("bin/busybox"));
        assert!(!t.is_free("bin/busybox/x"));
        assert!(!t.is_free("lib"), "lib has children");
        assert!(t.is_free("bin/ls"));
        assert!(t.is_free("usr/bin/awk"));
        assert!(t.is_free("lib-x"));
        assert!(!t.is_free("../x"));
    }

    #[test]
    fn mode_strings_match_ls() {
        assert_eq!(mode_string(S_IFDIR | 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(S_IFCHR | 0o600), "crw-------");
        assert_eq!(mode_string(S_IFREG | 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(S_IFLNK | 0o777), "lrwxrwxrwx");
    }
}
