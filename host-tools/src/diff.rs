//! "Say what would change": a line diff for text outputs and a path-by-path comparison of a
//! planned [`Tree`] with a directory on disk. The existing side is read by the caller (or by
//! [`read_dir_tree`]); the comparison itself is pure.

use crate::fstree::{Kind, Tree};
use similar::{Algorithm, ChangeTag, TextDiff};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// How many diff lines a refusal shows before eliding the rest.
pub const MAX_LINES: usize = 40;

/// A line diff of `old` → `new` (`-`/`+` lines, unchanged lines left out), by `similar`'s
/// Myers diff. Lines are compared as `str::lines` splits them, so a missing final newline is
/// not a change.
pub fn line_diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .diff_slices(&a, &b)
        .iter_all_changes()
        .filter_map(|c| match c.tag() {
            ChangeTag::Equal => None,
            ChangeTag::Delete => Some(format!("-{}", c.value())),
            ChangeTag::Insert => Some(format!("+{}", c.value())),
        })
        .collect()
}

/// What would change in a file: a line diff for UTF-8 text, sizes otherwise.
pub fn describe_file_change(old: &[u8], new: &[u8]) -> Vec<String> {
    match (std::str::from_utf8(old), std::str::from_utf8(new)) {
        (Ok(o), Ok(n)) if !o.contains('\0') && !n.contains('\0') => line_diff(o, n),
        _ => vec![format!(
            "binary contents differ ({} bytes now, {} bytes new)",
            old.len(),
            new.len()
        )],
    }
}

/// Shortens `lines` to [`MAX_LINES`].
pub fn elide(mut lines: Vec<String>) -> Vec<String> {
    if lines.len() > MAX_LINES {
        let more = lines.len() - MAX_LINES;
        lines.truncate(MAX_LINES);
        lines.push(format!("... and {more} more"));
    }
    lines
}

/// One entry of a directory as it is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnDisk {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(String),
    Other,
}

/// Reads every entry below `root` (not following symlinks), keyed by relative path.
pub fn read_dir_tree(root: &Path) -> io::Result<BTreeMap<String, OnDisk>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, OnDisk>) -> io::Result<()> {
        for e in fs::read_dir(dir)? {
            let p = e?.path();
            let md = fs::symlink_metadata(&p)?;
            let rel = p
                .strip_prefix(root)
                .map_err(io::Error::other)?
                .to_string_lossy()
                .into_owned();
            let perm = md.permissions().mode() & 0o7777;
            let t = md.file_type();
            let v = if t.is_symlink() {
                OnDisk::Symlink(fs::read_link(&p)?.to_string_lossy().into_owned())
            } else if t.is_dir() {
                walk(root, &p, out)?;
                OnDisk::Dir(perm)
            } else if t.is_file() {
                OnDisk::File(perm, fs::read(&p)?)
            } else {
                OnDisk::Other
            };
            out.insert(rel, v);
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out)?;
    Ok(out)
}

/// The differences between the planned `tree` and what is on disk, one line per path:
/// `+ /new`, `- /gone`, `~ /changed (why)`. Empty when they are the same.
pub fn tree_changes(tree: &Tree, disk: &BTreeMap<String, OnDisk>) -> Vec<String> {
    let mut out = Vec::new();
    for e in tree.entries() {
        let want = match &e.kind {
            Kind::Dir => OnDisk::Dir(e.perm),
            Kind::File(d) => OnDisk::File(e.perm, d.clone()),
            Kind::Symlink(t) => OnDisk::Symlink(t.clone()),
            Kind::CharDev { .. } => OnDisk::Other,
        };
        match disk.get(&e.path) {
            None => out.push(format!("+ /{}", e.path)),
            Some(have) if *have == want => {}
            Some(have) => {
                let why = match (have, &want) {
                    (OnDisk::File(p1, d1), OnDisk::File(p2, d2)) if d1 == d2 => {
                        format!("mode {p1:o} -> {p2:o}")
                    }
                    (OnDisk::File(_, d1), OnDisk::File(_, d2)) => {
                        format!("contents: {} -> {} bytes", d1.len(), d2.len())
                    }
                    (OnDisk::Dir(p1), OnDisk::Dir(p2)) => format!("mode {p1:o} -> {p2:o}"),
                    (OnDisk::Symlink(t1), OnDisk::Symlink(t2)) => {
                        format!("-> {t1} becomes -> {t2}")
                    }
                    _ => "a different kind of file".into(),
                };
                out.push(format!("~ /{} ({why})", e.path));
            }
        }
    }
    for p in disk.keys() {
        if tree.get(p).is_none() {
            out.push(format!("- /{p}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fstree::Entry;

    #[test]
    fn line_diff_marks_changes_only() {
        assert!(line_diff("a\nb\n", "a\nb\n").is_empty());
        assert_eq!(line_diff("a\nb\nc\n", "a\nx\nc\nd\n"), ["-b", "+x", "+d"]);
        assert_eq!(line_diff("", "a\n"), ["+a"]);
        assert_eq!(line_diff("a\n", ""), ["-a"]);
        assert!(
            line_diff("a\nb", "a\nb\n").is_empty(),
            "a final newline is no change"
        );
        // Removals before additions, as diff(1) prints them, and the shortest script.
        assert_eq!(
            line_diff("k=1\nx\ny\nz\n", "k=2\nx\ny\nz\nw\n"),
            ["-k=1", "+k=2", "+w"]
        );
        assert_eq!(
            describe_file_change(b"\0\x01", b"\0"),
            ["binary contents differ (2 bytes now, 1 bytes new)"]
        );
        let many: String = (0..100).map(|i| format!("{i}\n")).collect();
        let d = elide(line_diff("", &many));
        assert_eq!(d.len(), MAX_LINES + 1);
        assert_eq!(d.last().unwrap(), "... and 60 more");
    }

    #[test]
    fn tree_changes_lists_added_removed_changed() {
        let mut t = Tree::new();
        let file = |p: &str, perm, d: &[u8]| Entry {
            path: p.into(),
            perm,
            kind: Kind::File(d.to_vec()),
            origin: "t".into(),
        };
        t.insert(file("a", 0o644, b"1")).unwrap();
        t.insert(file("d/b", 0o644, b"2")).unwrap();
        t.insert(file("c", 0o755, b"3")).unwrap();
        let mut disk = BTreeMap::new();
        disk.insert("a".to_string(), OnDisk::File(0o644, b"1".to_vec()));
        disk.insert("d".to_string(), OnDisk::Dir(0o755));
        disk.insert("d/b".to_string(), OnDisk::File(0o644, b"22".to_vec()));
        disk.insert("c".to_string(), OnDisk::File(0o644, b"3".to_vec()));
        disk.insert("old".to_string(), OnDisk::Symlink("x".into()));
        assert_eq!(
            tree_changes(&t, &disk),
            [
                "~ /c (mode 644 -> 755)",
                "~ /d/b (contents: 2 -> 1 bytes)",
                "- /old"
            ]
        );
        disk.remove("old");
        disk.insert("c".to_string(), OnDisk::File(0o755, b"3".to_vec()));
        disk.insert("d/b".to_string(), OnDisk::File(0o644, b"2".to_vec()));
        assert!(tree_changes(&t, &disk).is_empty());
        disk.remove("a");
        assert_eq!(tree_changes(&t, &disk), ["+ /a"]);
    }
}
