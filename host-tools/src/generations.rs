//! Image generations in an images directory: content-addressed names, the pointer that names the
//! default generation, the publish log, and `gc`'s choice. This is the contract with linuxrc,
//! which reads the pointer over NFS:
//!
//! - a generation is the file `<name>-<hash>.<ext>`: `<hash>` is the first 16 hex digits of the
//!   SHA-256 of the image's bytes, `<ext>` is `sqfs` (squashfs) or `erofs`; it is never
//!   rewritten once it exists (same bytes, same name);
//! - the pointer is the file `<name>.current`: one line, the generation's file name (no
//!   directory, no `/`), ended by `\n`; it is replaced with `rename(2)`, so a reader sees the old
//!   line or the new one;
//! - the log is `<name>.generations`: one generation file name per line, in publish order
//!   (oldest first). The images' mtimes are fixed for reproducibility, so they cannot say which
//!   one is newer.
//!
//! Nodes pin the generation the pointer named when they booted and keep reading that file; `gc`
//! therefore keeps the current one and the newest K published, and never touches a file that is
//! not in the log. K must cover every generation a running node may still use.
//!
//! The naming, parsing and choosing here are pure; the file operations are in
//! [`crate::image_pack`].

use std::fmt;
use unionroot_core::image::{parse_pointer, ImageFs, ImageName};

/// The longest image name accepted, so that `<name>-<hash>.erofs` stays far below NAME_MAX.
pub const MAX_NAME: usize = 64;
/// Hex digits of the SHA-256 in a generation's name: 64 bits, ample for one directory.
pub const HASH_HEX: usize = 16;
/// Generations `gc` keeps besides the current one when not told otherwise.
pub const DEFAULT_KEEP: usize = 2;
/// EROFS: it keeps POSIX ACLs and builds 4-5x faster than mksquashfs here (host-tools/README.md
/// has the measurements). It boots since the module closure and linuxrc's loader follow
/// erofs -> libcrc32c -> softdep crc32c (e2e-root image-erofs).
pub const DEFAULT_FORMAT: Format = Format::Erofs;

/// The on-disk format of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Format {
    /// squashfs (mksquashfs, zstd); drops POSIX ACLs
    Squashfs,
    /// EROFS (mkfs.erofs, lz4hc); keeps POSIX ACLs
    Erofs,
}

impl Format {
    pub const ALL: [Format; 2] = [Format::Squashfs, Format::Erofs];

    /// The filesystem, whose rules (extension, mount type, magic number) linuxrc shares.
    pub fn fs(self) -> ImageFs {
        match self {
            Format::Squashfs => ImageFs::Squashfs,
            Format::Erofs => ImageFs::Erofs,
        }
    }

    fn of(fs: ImageFs) -> Format {
        match fs {
            ImageFs::Squashfs => Format::Squashfs,
            ImageFs::Erofs => Format::Erofs,
        }
    }

    /// The file name extension of its generations.
    pub fn ext(self) -> &'static str {
        self.fs().ext()
    }

    /// The `-t` of mount(8) and the kernel module that mounts it.
    pub fn fs_type(self) -> &'static str {
        self.fs().fstype()
    }

    /// Where its magic number is and what it is.
    pub fn magic(self) -> (usize, &'static [u8]) {
        self.fs().magic()
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.fs_type())
    }
}

/// Why a name, a generation or a file of the images directory was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("image name {0:?} is empty or longer than {MAX_NAME} bytes; choose e.g. \"debian\"")]
    Length(String),
    #[error(
        "image name {0:?} must start with a letter or digit and hold only A-Z a-z 0-9 . _ - \
         (it becomes a file name in the images directory)"
    )]
    Chars(String),
    #[error(
        "{found:?} is not a generation of {name:?}: expected {name}-<{HASH_HEX} hex digits>.sqfs \
         or .erofs"
    )]
    NotGeneration { name: String, found: String },
    #[error(
        "the pointer must hold one line, the generation's file name; found {0:?}. Repair it \
         with `unionroot image-switch`"
    )]
    Pointer(String),
}

/// A validated image name: linuxrc's [`ImageName`] (a safe single file-name component),
/// at most [`MAX_NAME`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(ImageName);

impl Name {
    pub fn new(s: &str) -> Result<Name, NameError> {
        if s.is_empty() || s.len() > MAX_NAME {
            return Err(NameError::Length(s.into()));
        }
        ImageName::parse(s)
            .map(Name)
            .map_err(|_| NameError::Chars(s.into()))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The pointer's file name, `<name>.current`.
    pub fn pointer_file(&self) -> String {
        self.0.pointer()
    }

    /// The publish log's file name, `<name>.generations`.
    pub fn log_file(&self) -> String {
        format!("{}.generations", self.0)
    }

    /// Wildcard patterns (rsync's filter syntax, anchored at the directory with `/`) that match
    /// this image's generation files as this tool names them, `<name>-<HASH_HEX lowercase hex
    /// digits>.<ext>`, and nothing else: not another image whose name starts with this one
    /// (`base` and `base-12-…`), not the log or the pointer, not rsync's hidden temporaries.
    /// The name's characters (letters, digits, `.`, `_`, `-`) are not wildcards.
    pub fn generation_patterns(&self) -> Vec<String> {
        let hex = "[0-9a-f]".repeat(HASH_HEX);
        ImageFs::ALL
            .iter()
            .map(|fs| format!("/{}-{hex}.{}", self.0, fs.ext()))
            .collect()
    }

    /// The generation of `format` whose bytes have this SHA-256.
    pub fn generation(&self, sha256: &[u8; 32], format: Format) -> Generation {
        let hash: String = sha256[..HASH_HEX / 2]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Generation {
            file: format!("{}-{hash}.{}", self.0, format.ext()),
            format,
        }
    }

    /// Reads `file` as a generation of this name, or says why it is not one: linuxrc's grammar
    /// (`parse_pointer`), with exactly [`HASH_HEX`] hex digits, the length this tool writes.
    pub fn parse_generation(&self, file: &str) -> Result<Generation, NameError> {
        let not = || NameError::NotGeneration {
            name: self.0.to_string(),
            found: file.into(),
        };
        if file.ends_with('\n') {
            return Err(not());
        }
        let g = parse_pointer(&self.0, file.as_bytes()).map_err(|_| not())?;
        if g.hash.len() != HASH_HEX {
            return Err(not());
        }
        Ok(Generation {
            file: g.file,
            format: Format::of(g.fs),
        })
    }

    /// A generation given on the command line: its file name, or only its hash (a `<hash>`
    /// matches whichever format exists, which the caller decides).
    pub fn resolve_arg(&self, arg: &str) -> Vec<Generation> {
        if let Ok(g) = self.parse_generation(arg) {
            return vec![g];
        }
        Format::ALL
            .into_iter()
            .filter_map(|f| {
                self.parse_generation(&format!("{}-{arg}.{}", self.0, f.ext()))
                    .ok()
            })
            .collect()
    }

    /// The pointer's contents naming `g`.
    pub fn pointer_text(&self, g: &Generation) -> String {
        format!("{}\n", g.file)
    }

    /// The generation a pointer's contents name. Exactly one line with its `\n` (a pointer
    /// without the newline may be a torn write by another tool, so it is refused too).
    pub fn parse_pointer(&self, text: &str) -> Result<Generation, NameError> {
        let line = text
            .strip_suffix('\n')
            .filter(|l| !l.contains('\n'))
            .ok_or_else(|| NameError::Pointer(text.into()))?;
        self.parse_generation(line)
    }

    /// The log's generations, oldest first. A line that is not a generation of this name is an
    /// error naming it: the log decides what may be deleted, so it is not guessed at.
    pub fn parse_log(&self, text: &str) -> Result<Vec<Generation>, (usize, NameError)> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| self.parse_generation(l.trim()).map_err(|e| (i + 1, e)))
            .collect()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// One image file, by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Generation {
    pub file: String,
    pub format: Format,
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)
    }
}

/// The `--keep` value: at least 1, since the newest generation may be booting somewhere.
pub fn parse_keep(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(k) if k >= 1 => Ok(k),
        _ => Err(format!(
            "{s:?} is not a whole number ≥ 1 (gc keeps the current generation plus the newest K)"
        )),
    }
}

/// The log after publishing `g`: appended, unless it is already the newest entry (publishing
/// the same tree twice is a no-op). An older entry for `g` moves to the end, since it is now
/// the newest published.
pub fn log_after_publish(log: &[Generation], g: &Generation) -> Vec<Generation> {
    if log.last() == Some(g) {
        return log.to_vec();
    }
    let mut out: Vec<Generation> = log.iter().filter(|x| *x != g).cloned().collect();
    out.push(g.clone());
    out
}

/// `gc`'s verdict.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GcPlan {
    /// Kept: the current generation and the newest `keep` of the log, newest first.
    pub keep: Vec<Generation>,
    /// To delete: older generations of the log whose file exists.
    pub delete: Vec<Generation>,
    /// Generation files not in the log: their age is unknown, so they are left alone.
    pub unknown: Vec<Generation>,
    /// The log after the deletions.
    pub log: Vec<Generation>,
}

/// Chooses what `gc` deletes. `log` is the publish log (oldest first), `current` what the
/// pointer names, `present` the generation files in the directory, `keep` ≥ 1.
pub fn gc_plan(
    log: &[Generation],
    current: Option<&Generation>,
    present: &[Generation],
    keep: usize,
) -> GcPlan {
    let mut plan = GcPlan::default();
    let mut newest: Vec<&Generation> = Vec::new();
    for g in log.iter().rev() {
        if !newest.contains(&g) {
            newest.push(g);
        }
    }
    for (i, g) in newest.iter().enumerate() {
        let kept = i < keep || Some(*g) == current;
        if kept {
            plan.keep.push((*g).clone());
        } else if present.contains(g) {
            plan.delete.push((*g).clone());
        }
    }
    if let Some(c) = current {
        if !plan.keep.contains(c) {
            plan.keep.insert(0, c.clone());
        }
    }
    let mut unknown: Vec<Generation> = present
        .iter()
        .filter(|g| !log.contains(g) && Some(*g) != current)
        .cloned()
        .collect();
    unknown.sort();
    plan.unknown = unknown;
    plan.log = log
        .iter()
        .filter(|g| !plan.delete.contains(g))
        .cloned()
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> Name {
        Name::new("deb").unwrap()
    }

    fn g(hash_digit: char) -> Generation {
        name()
            .parse_generation(&format!("deb-{}.sqfs", hash_digit.to_string().repeat(16)))
            .unwrap()
    }

    #[test]
    fn keep_values() {
        assert_eq!(parse_keep("1"), Ok(1));
        assert_eq!(parse_keep("10"), Ok(10));
        for bad in ["0", "-1", "x", ""] {
            assert!(parse_keep(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        for ok in ["debian", "deb12", "a", "x.y_z-1", &"n".repeat(MAX_NAME)] {
            assert!(Name::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            &"n".repeat(MAX_NAME + 1),
            ".hidden",
            "-x",
            "a/b",
            "..",
            "a b",
            "a\nb",
            "é",
            "a:b",
        ] {
            assert!(Name::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generation_names_round_trip() {
        let n = name();
        let mut sha = [0u8; 32];
        sha[0] = 0xab;
        sha[7] = 0x01;
        sha[8] = 0xff; // beyond the 16 hex digits
        let gen = n.generation(&sha, Format::Erofs);
        assert_eq!(gen.file, "deb-ab00000000000001.erofs");
        assert_eq!(n.parse_generation(&gen.file).unwrap(), gen);
        let sq = n.generation(&sha, Format::Squashfs);
        assert_eq!(sq.file, "deb-ab00000000000001.sqfs");
        assert_eq!(sq.format, Format::Squashfs);
    }

    #[test]
    fn not_generations() {
        let n = name();
        for bad in [
            "deb-ab00000000000001.img",
            "deb-AB00000000000001.sqfs",
            "deb-ab0000000000001.sqfs",
            "deb-ab000000000000011.sqfs",
            "deb-ab0000000000000g.sqfs",
            "debx-ab00000000000001.sqfs",
            "other-ab00000000000001.sqfs",
            "deb-ab00000000000001.sqfs/x",
            "../deb-ab00000000000001.sqfs",
            "deb.current",
            "deb.generations",
            ".deb.tmp-1.sqfs",
        ] {
            assert!(n.parse_generation(bad).is_err(), "{bad}");
        }
        // A name with a dash does not swallow another name's generations.
        let n2 = Name::new("deb-ab00000000000001").unwrap();
        assert!(n2.parse_generation("deb-ab00000000000001.sqfs").is_err());
    }

    #[test]
    fn command_line_generations() {
        let n = name();
        assert_eq!(n.resolve_arg("deb-0000000000000000.sqfs").len(), 1);
        let both = n.resolve_arg("0000000000000000");
        assert_eq!(
            both.iter().map(|g| g.file.as_str()).collect::<Vec<_>>(),
            ["deb-0000000000000000.sqfs", "deb-0000000000000000.erofs"]
        );
        assert!(n.resolve_arg("../etc/passwd").is_empty());
        assert!(n.resolve_arg("000").is_empty());
    }

    #[test]
    fn pointer_round_trip_and_refusals() {
        let n = name();
        let gen = g('1');
        let text = n.pointer_text(&gen);
        assert_eq!(text, "deb-1111111111111111.sqfs\n");
        assert_eq!(n.parse_pointer(&text).unwrap(), gen);
        for bad in [
            "",
            "\n",
            "deb-1111111111111111.sqfs",
            "deb-1111111111111111.sqfs\n\n",
            "deb-1111111111111111.sqfs\nx\n",
            "/srv/deb-1111111111111111.sqfs\n",
            "deb-1111111111111111.sqfs \n",
        ] {
            assert!(n.parse_pointer(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn log_parsing() {
        let n = name();
        let text = "deb-1111111111111111.sqfs\n\ndeb-2222222222222222.sqfs\n";
        assert_eq!(n.parse_log(text).unwrap(), [g('1'), g('2')]);
        let e = n
            .parse_log("deb-1111111111111111.sqfs\nrm -rf /\n")
            .unwrap_err();
        assert_eq!(e.0, 2);
    }

    #[test]
    fn publish_appends_once() {
        let (a, b) = (g('a'), g('b'));
        assert_eq!(log_after_publish(&[], &a), vec![g('a')]);
        assert_eq!(log_after_publish(&[g('a')], &a), vec![g('a')]);
        assert_eq!(log_after_publish(&[g('a')], &b), vec![g('a'), g('b')]);
        // Publishing an older tree again makes it the newest.
        assert_eq!(
            log_after_publish(&[g('a'), g('b')], &a),
            vec![g('b'), g('a')]
        );
    }

    #[test]
    fn gc_choices() {
        let [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map(g);
        let all = [a.clone(), b.clone(), c.clone(), d.clone(), e.clone()];
        struct Case<'a> {
            log: &'a [Generation],
            current: Option<&'a Generation>,
            present: &'a [Generation],
            keep: usize,
            delete: &'a [Generation],
            unknown: &'a [Generation],
        }
        let cases = [
            // The newest two kept, the current one is among them.
            Case {
                log: &all,
                current: Some(&e),
                present: &all,
                keep: 2,
                delete: &[c.clone(), b.clone(), a.clone()],
                unknown: &[],
            },
            // Rolled back to an old generation: it stays, besides the newest two.
            Case {
                log: &all,
                current: Some(&b),
                present: &all,
                keep: 2,
                delete: &[c.clone(), a.clone()],
                unknown: &[],
            },
            Case {
                log: &all,
                current: Some(&a),
                present: &all,
                keep: 1,
                delete: &[d.clone(), c.clone(), b.clone()],
                unknown: &[],
            },
            // Fewer generations than K: nothing to do.
            Case {
                log: &[a.clone(), b.clone()],
                current: Some(&b),
                present: &[a.clone(), b.clone()],
                keep: 2,
                delete: &[],
                unknown: &[],
            },
            // Files already gone are not "deleted" again; files not in the log are left alone.
            Case {
                log: &[a.clone(), b.clone(), c.clone()],
                current: Some(&c),
                present: &[b.clone(), c.clone(), d.clone()],
                keep: 1,
                delete: &[g('b')],
                unknown: &[g('d')],
            },
            // No pointer: only the newest K.
            Case {
                log: &all,
                current: None,
                present: &all,
                keep: 3,
                delete: &[b.clone(), a.clone()],
                unknown: &[],
            },
            // A current generation missing from the log is kept, not unknown.
            Case {
                log: &[a.clone(), b.clone()],
                current: Some(&e),
                present: &[a.clone(), b.clone(), e.clone()],
                keep: 1,
                delete: &[g('a')],
                unknown: &[],
            },
        ];
        for (i, k) in cases.iter().enumerate() {
            let p = gc_plan(k.log, k.current, k.present, k.keep);
            assert_eq!(p.delete, k.delete, "case {i}");
            assert_eq!(p.unknown, k.unknown, "case {i}");
            if let Some(cur) = k.current {
                assert!(p.keep.contains(cur), "case {i}");
                assert!(!p.delete.contains(cur), "case {i}");
            }
            for newest in k.log.iter().rev().take(k.keep) {
                assert!(p.keep.contains(newest), "case {i}");
            }
            assert!(p.log.iter().all(|x| !p.delete.contains(x)), "case {i}");
        }
    }
}
