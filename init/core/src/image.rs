//! Image roots (issue 9): a read-only squashfs or EROFS image, published on an NFS export in
//! generations named by content, loop-mounted as the bottom layer of the union.
//!
//! `unionroot.image=<server>:<dir>/<name>` names the images directory and the image's name. In
//! `<dir>` the host tool keeps `<name>-<hash>.sqfs` (or `.erofs`) files, never rewritten once
//! published, and a pointer `<name>.current` holding one line: the file name of the default
//! generation. linuxrc reads the pointer once, at boot, and pins that generation for the node's
//! life: a later switch of the pointer does not move a running node.
//!
//! Everything here is untrusted text from the command line or the server, so the name is one
//! safe file-name component and the pointer must name a generation of that very name; anything
//! else is refused by name, never cleaned up. The filesystem is told by its superblock magic
//! (squashfs `hsqs` at offset 0, `fs/squashfs/squashfs_fs.h`; EROFS `0xE0F5E1E2` little-endian
//! at offset 1024, `fs/erofs/erofs_fs.h`), not by the file's extension, which only has to agree.

use crate::nfs::{NfsError, NfsRoot};
use crate::validate::shown;
use std::fmt;
use thiserror::Error;

/// The longest image name: with `-<hash>.erofs` after it, it still fits NAME_MAX.
pub const MAX_NAME: usize = 128;
/// The longest generation hash accepted from a pointer.
pub const MAX_HASH: usize = 64;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ImageError {
    #[error(transparent)]
    Nfs(#[from] NfsError),
    #[error("\"{}\" has no image name after the directory (expected <server>:<dir>/<name>)", shown(.0))]
    NoName(String),
    #[error("the image name \"{}\" {why}", shown(name))]
    BadName { name: String, why: &'static str },
}

/// An image's name: one file-name component of letters, digits, `.`, `_` and `-`, starting with
/// a letter or digit (so never `.`, `..`, hidden, or holding `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName(String);

impl ImageName {
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        let bad = |why| ImageError::BadName {
            name: s.to_string(),
            why,
        };
        if s.is_empty() {
            return Err(bad("is empty"));
        }
        if s.len() > MAX_NAME {
            return Err(bad("is longer than 128 bytes"));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(bad("must start with a letter or digit"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(bad("may hold only letters, digits, '.', '_' and '-'"));
        }
        Ok(ImageName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pointer's file name, `<name>.current`.
    pub fn pointer(&self) -> String {
        format!("{}.current", self.0)
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `unionroot.image=<server>:<dir>/<name>[,<nfs options>]`: the images directory (an NFS piece
/// like any other, mounted read-only) and the image's name in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub dir: NfsRoot,
    pub name: ImageName,
}

impl ImageSpec {
    pub fn parse(text: &str) -> Result<Self, ImageError> {
        let mut dir = NfsRoot::parse(text)?;
        let (parent, name) = dir
            .path
            .rsplit_once('/')
            .ok_or_else(|| ImageError::NoName(text.to_string()))?;
        if name.is_empty() {
            return Err(ImageError::NoName(text.to_string()));
        }
        let name = ImageName::parse(name)?;
        // `<dir>//<name>` is the same directory as `<dir>/<name>` (path_resolution(7)), and
        // the printed form has one slash: keep one, so that the spec prints back to itself.
        let parent = parent.trim_end_matches('/');
        dir.path = if parent.is_empty() {
            "/".into()
        } else {
            parent.to_string()
        };
        Ok(ImageSpec { dir, name })
    }
}

impl fmt::Display for ImageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut whole = self.dir.clone();
        whole.path = format!("{}/{}", self.dir.path.trim_end_matches('/'), self.name);
        whole.fmt(f)
    }
}

/// The filesystem of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFs {
    Squashfs,
    Erofs,
}

/// How many bytes of an image [`ImageFs::detect`] needs.
pub const HEAD_LEN: usize = 1028;

/// The longest pointer file there can be: `<name>-<hash>.erofs` and its newline. linuxrc reads
/// no more than this of it, so a pointer that is anything else cannot cost it memory.
pub const POINTER_MAX: usize = MAX_NAME + 1 + MAX_HASH + ".erofs\n".len();

impl ImageFs {
    /// The mount(2) type, also the name in /proc/filesystems and the module's name.
    pub fn fstype(self) -> &'static str {
        match self {
            ImageFs::Squashfs => "squashfs",
            ImageFs::Erofs => "erofs",
        }
    }

    /// The extension a generation of this filesystem carries.
    pub fn ext(self) -> &'static str {
        match self {
            ImageFs::Squashfs => "sqfs",
            ImageFs::Erofs => "erofs",
        }
    }

    pub fn from_ext(ext: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.ext() == ext)
    }

    /// Both filesystems.
    pub const ALL: [ImageFs; 2] = [ImageFs::Squashfs, ImageFs::Erofs];

    /// Where its superblock's magic number is and what it is: squashfs "hsqs" at 0
    /// (`SQUASHFS_MAGIC` little-endian), EROFS `EROFS_SUPER_MAGIC_V1` 0xE0F5E1E2 little-endian
    /// at 1024.
    pub fn magic(self) -> (usize, &'static [u8]) {
        match self {
            ImageFs::Squashfs => (0, b"hsqs"),
            ImageFs::Erofs => (1024, &[0xe2, 0xe1, 0xf5, 0xe0]),
        }
    }

    /// The filesystem whose superblock magic `head` (the image's first bytes) carries.
    pub fn detect(head: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|f| {
            let (at, magic) = f.magic();
            head.get(at..at + magic.len()) == Some(magic)
        })
    }

    /// The image's length as its superblock records it, when the format records one (squashfs
    /// `bytes_used`, a little-endian u64 at offset 40): a shorter file is truncated.
    pub fn recorded_len(self, head: &[u8]) -> Option<u64> {
        match self {
            ImageFs::Squashfs => head
                .get(40..48)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes),
            ImageFs::Erofs => None,
        }
    }
}

/// The generation a pointer names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// The file name in the images directory, `<name>-<hash>.<ext>`.
    pub file: String,
    pub hash: String,
    /// The filesystem the extension promises (the superblock must agree).
    pub fs: ImageFs,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PointerError {
    #[error("it is not UTF-8 text")]
    NotUtf8,
    #[error("it is empty")]
    Empty,
    #[error("it holds more than one line, or the control character {0:?}")]
    Control(char),
    #[error("\"{}\" is a path, not a file name in the images directory", shown(.0))]
    Path(String),
    #[error(
        "\"{}\" is not a generation of image {name} (expected {name}-<hex>.sqfs or .erofs)",
        shown(found)
    )]
    OtherName { found: String, name: String },
}

/// Reads a pointer file's contents: one line (a final newline is allowed), the file name
/// `<name>-<hex>.sqfs` or `<name>-<hex>.erofs` of a generation of `name`.
pub fn parse_pointer(name: &ImageName, bytes: &[u8]) -> Result<Generation, PointerError> {
    let text = std::str::from_utf8(bytes).map_err(|_| PointerError::NotUtf8)?;
    let line = text.strip_suffix('\n').unwrap_or(text);
    if line.is_empty() {
        return Err(PointerError::Empty);
    }
    if let Some(c) = line.chars().find(|c| c.is_control()) {
        return Err(PointerError::Control(c));
    }
    if line.contains('/') {
        return Err(PointerError::Path(line.to_string()));
    }
    let other = || PointerError::OtherName {
        found: line.to_string(),
        name: name.to_string(),
    };
    let rest = line
        .strip_prefix(name.as_str())
        .and_then(|r| r.strip_prefix('-'))
        .ok_or_else(other)?;
    let (hash, ext) = rest.rsplit_once('.').ok_or_else(other)?;
    let fs = ImageFs::from_ext(ext).ok_or_else(other)?;
    if hash.is_empty()
        || hash.len() > MAX_HASH
        || !hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
    {
        return Err(other());
    }
    Ok(Generation {
        file: line.to_string(),
        hash: hash.to_string(),
        fs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ImageName {
        ImageName::parse(s).unwrap()
    }

    #[test]
    fn spec_splits_directory_and_name_and_prints_back() {
        let s = ImageSpec::parse("10.0.2.2|10.0.2.3:/srv/images/system,vers=3").unwrap();
        assert_eq!(s.dir.path, "/srv/images");
        assert_eq!(s.dir.servers.len(), 2);
        assert_eq!(s.dir.options, ["vers=3"]);
        assert_eq!(s.name.as_str(), "system");
        assert_eq!(s.to_string(), "10.0.2.2|10.0.2.3:/srv/images/system,vers=3");
        let twice = ImageSpec::parse("10.0.2.2:/srv/images//system").unwrap();
        assert_eq!(twice.to_string(), "10.0.2.2:/srv/images/system");
        let top = ImageSpec::parse("10.0.2.2:/system").unwrap();
        assert_eq!(
            (top.dir.path.as_str(), top.to_string().as_str()),
            ("/", "10.0.2.2:/system")
        );
        for bad in ["10.0.2.2:/srv/images/.hidden", "10.0.2.2:/srv/images/a*b"] {
            assert!(
                matches!(ImageSpec::parse(bad), Err(ImageError::BadName { .. })),
                "{bad}"
            );
        }
        for bad in ["10.0.2.2:srv/images/x", "nohost:/srv/x"] {
            assert!(
                matches!(ImageSpec::parse(bad), Err(ImageError::Nfs(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            ImageSpec::parse("10.0.2.2:/srv/images/"),
            Err(ImageError::NoName(_))
        ));
        assert!(matches!(
            ImageSpec::parse("10.0.2.2:/srv/images/.."),
            Err(ImageError::BadName { .. })
        ));
        assert!(ImageSpec::parse(&format!("10.0.2.2:/i/{}", "a".repeat(129))).is_err());
    }

    #[test]
    fn pointer_names_one_generation_of_this_image() {
        let g = parse_pointer(&name("system"), b"system-0123abcd.sqfs\n").unwrap();
        assert_eq!(
            g,
            Generation {
                file: "system-0123abcd.sqfs".into(),
                hash: "0123abcd".into(),
                fs: ImageFs::Squashfs
            }
        );
        let g = parse_pointer(&name("system"), b"system-ff.erofs").unwrap();
        assert_eq!(g.fs, ImageFs::Erofs);
    }

    #[test]
    fn hostile_pointers_are_refused_by_name() {
        let n = name("system");
        let other = |s: &str| PointerError::OtherName {
            found: s.into(),
            name: "system".into(),
        };
        let cases: [(&[u8], PointerError); 13] = [
            (b"", PointerError::Empty),
            (b"\n", PointerError::Empty),
            (b"../x", PointerError::Path("../x".into())),
            (
                b"/srv/system-ab.sqfs",
                PointerError::Path("/srv/system-ab.sqfs".into()),
            ),
            (
                b"system-ab.sqfs\nsystem-cd.sqfs",
                PointerError::Control('\n'),
            ),
            (b"system-ab.sqfs\n\n", PointerError::Control('\n')),
            (b"system-ab\0.sqfs", PointerError::Control('\0')),
            (b"system-\xff.sqfs", PointerError::NotUtf8),
            (b"other-ab.sqfs", other("other-ab.sqfs")),
            (b"system-ab.tar", other("system-ab.tar")),
            (b"system-AB.sqfs", other("system-AB.sqfs")),
            (b"system-.sqfs", other("system-.sqfs")),
            (b"systemab.sqfs", other("systemab.sqfs")),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_pointer(&n, text),
                Err(want),
                "{:?}",
                text.escape_ascii()
            );
        }
        // A name that is a prefix of another image's does not take that image's generations.
        assert!(parse_pointer(&name("sys"), b"system-ab.sqfs").is_err());
    }

    #[test]
    fn superblock_magic_tells_the_filesystem() {
        let mut sq = vec![0u8; HEAD_LEN];
        sq[..4].copy_from_slice(b"hsqs");
        sq[40..48].copy_from_slice(&4096u64.to_le_bytes());
        assert_eq!(ImageFs::detect(&sq), Some(ImageFs::Squashfs));
        assert_eq!(ImageFs::Squashfs.recorded_len(&sq), Some(4096));
        let mut ero = vec![0u8; HEAD_LEN];
        ero[1024..].copy_from_slice(&[0xe2, 0xe1, 0xf5, 0xe0]);
        assert_eq!(ImageFs::detect(&ero), Some(ImageFs::Erofs));
        assert_eq!(ImageFs::detect(&[0u8; HEAD_LEN]), None);
        assert_eq!(ImageFs::detect(b"hsq"), None);
        assert_eq!(ImageFs::detect(&ero[..1026]), None);
    }
}
