//! Encodes a [`Tree`] as a cpio "newc" archive (magic `070701`), the format the kernel unpacks
//! into the initramfs: `Documentation/driver-api/early-userspace/buffer-format.rst`, with
//! `init/initramfs.c` as the reader and `usr/gen_init_cpio.c` as the reference writer.
//!
//! The output is a pure function of the tree and the mtime: entries in tree order, inode numbers
//! assigned sequentially from 1, uid/gid 0, device 0:0. Regular files get `nlink` 1 because the
//! kernel treats a file with `nlink >= 2` as a hard link to an earlier entry with the same inode.

use crate::fstree::{Entry, Kind, Tree};
use thiserror::Error;

pub const MAGIC: &[u8; 6] = b"070701";
pub const TRAILER: &str = "TRAILER!!!";
/// Header length: the magic and 13 eight-digit hex fields.
pub const HEADER_LEN: usize = 6 + 13 * 8;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CpioError {
    #[error("/{path} is {size} bytes; a newc archive cannot hold files of 4 GiB or more")]
    TooLarge { path: String, size: u64 },
}

/// The fields of one newc header, in on-disk order (minus the magic and the zero checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub filesize: u32,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// Appends one header, the NUL-terminated name and the data, each padded to 4 bytes.
pub fn write_record(out: &mut Vec<u8>, h: &Header, name: &str, data: &[u8]) {
    debug_assert_eq!(out.len() % 4, 0, "records start 4-byte aligned");
    let fields = [
        h.ino,
        h.mode,
        h.uid,
        h.gid,
        h.nlink,
        h.mtime,
        h.filesize,
        h.dev_major,
        h.dev_minor,
        h.rdev_major,
        h.rdev_minor,
        name.len() as u32 + 1,
        0, // checksum: only used by the "070702" variant
    ];
    out.extend_from_slice(MAGIC);
    for f in fields {
        // Upper-case hex like gen_init_cpio; the kernel accepts either case.
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn entry_data(e: &Entry) -> &[u8] {
    match &e.kind {
        Kind::File(d) => d,
        Kind::Symlink(t) => t.as_bytes(),
        Kind::Dir | Kind::CharDev { .. } => &[],
    }
}

/// Encodes `tree` with every entry's mtime set to `mtime`. The trailer is padded to a multiple
/// of 512 bytes, as gen_init_cpio does, so the archive can be concatenated with others.
pub fn encode(tree: &Tree, mtime: u32) -> Result<Vec<u8>, CpioError> {
    let mut out = Vec::with_capacity(tree.data_size() as usize + tree.len() * 256 + 512);
    for (i, e) in tree.entries().enumerate() {
        let data = entry_data(e);
        let filesize = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge {
            path: e.path.clone(),
            size: data.len() as u64,
        })?;
        let (rdev_major, rdev_minor) = match e.kind {
            Kind::CharDev { major, minor } => (major, minor),
            _ => (0, 0),
        };
        let h = Header {
            ino: i as u32 + 1,
            mode: e.mode(),
            nlink: if e.kind == Kind::Dir { 2 } else { 1 },
            mtime,
            filesize,
            rdev_major,
            rdev_minor,
            ..Header::default()
        };
        write_record(&mut out, &h, &e.path, data);
    }
    let trailer = Header {
        nlink: 1,
        ..Header::default()
    };
    write_record(&mut out, &trailer, TRAILER, &[]);
    while out.len() % 512 != 0 {
        out.push(0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fstree::{Entry, Kind, Tree};
    use std::io::Read;

    fn sample() -> Tree {
        let mut t = Tree::new();
        let mut add = |path: &str, perm, kind| {
            t.insert(Entry {
                path: path.into(),
                perm,
                kind,
                origin: "test".into(),
            })
            .unwrap()
        };
        add("dev/console", 0o600, Kind::CharDev { major: 5, minor: 1 });
        add("dev/null", 0o666, Kind::CharDev { major: 1, minor: 3 });
        add("init", 0o755, Kind::File(b"#!/bin/sh\necho hi\n".to_vec()));
        add("etc/empty", 0o644, Kind::File(Vec::new()));
        add("tmp", 0o1777, Kind::Dir);
        add("bin/sh", 0o777, Kind::Symlink("busybox".into()));
        // Lengths 1..=4 exercise every padding case of name and data.
        add("a", 0o644, Kind::File(b"x".to_vec()));
        add("ab", 0o644, Kind::File(b"xy".to_vec()));
        add("abc", 0o644, Kind::File(b"xyz".to_vec()));
        add("abcd", 0o644, Kind::File(b"wxyz".to_vec()));
        t
    }

    /// What an independent reader (the `cpio` crate) sees.
    #[derive(Debug, PartialEq, Eq)]
    struct Seen {
        name: String,
        ino: u32,
        mode: u32,
        uid: u32,
        gid: u32,
        nlink: u32,
        mtime: u32,
        rdev: (u32, u32),
        data: Vec<u8>,
    }

    fn read_back(mut bytes: &[u8]) -> Vec<Seen> {
        let mut seen = Vec::new();
        loop {
            let mut r = cpio::NewcReader::new(bytes).expect("valid newc header");
            if r.entry().is_trailer() {
                break;
            }
            let e = r.entry();
            let mut s = Seen {
                name: e.name().to_string(),
                ino: e.ino(),
                mode: e.mode(),
                uid: e.uid(),
                gid: e.gid(),
                nlink: e.nlink(),
                mtime: e.mtime(),
                rdev: (e.rdev_major(), e.rdev_minor()),
                data: Vec::new(),
            };
            r.read_to_end(&mut s.data).unwrap();
            seen.push(s);
            bytes = r.finish().unwrap();
        }
        seen
    }

    #[test]
    fn round_trip_through_an_independent_reader() {
        let tree = sample();
        let bytes = encode(&tree, 1_700_000_000).unwrap();
        assert_eq!(bytes.len() % 512, 0);
        let seen = read_back(&bytes);
        let want: Vec<Seen> = tree
            .entries()
            .enumerate()
            .map(|(i, e)| Seen {
                name: e.path.clone(),
                ino: i as u32 + 1,
                mode: e.mode(),
                uid: 0,
                gid: 0,
                nlink: if e.kind == Kind::Dir { 2 } else { 1 },
                mtime: 1_700_000_000,
                rdev: match e.kind {
                    Kind::CharDev { major, minor } => (major, minor),
                    _ => (0, 0),
                },
                data: entry_data(e).to_vec(),
            })
            .collect();
        assert_eq!(seen, want);
        let console = seen.iter().find(|s| s.name == "dev/console").unwrap();
        assert_eq!((console.mode, console.rdev), (0o020600, (5, 1)));
        let tmp = seen.iter().find(|s| s.name == "tmp").unwrap();
        assert_eq!(tmp.mode, 0o041777);
        let sh = seen.iter().find(|s| s.name == "bin/sh").unwrap();
        assert_eq!((sh.mode, sh.data.as_slice()), (0o120777, &b"busybox"[..]));
        let names: Vec<_> = seen.iter().map(|s| s.name.as_str()).collect();
        assert!(
            names.iter().position(|n| *n == "bin") < names.iter().position(|n| *n == "bin/sh"),
            "parents first: {names:?}"
        );
    }

    #[test]
    fn header_layout_matches_gen_init_cpio() {
        let mut t = Tree::new();
        t.insert(Entry {
            path: "dev/console".into(),
            perm: 0o600,
            kind: Kind::CharDev { major: 5, minor: 1 },
            origin: "test".into(),
        })
        .unwrap();
        let bytes = encode(&t, 0).unwrap();
        // Second record (after "dev"), as `gen_init_cpio` writes for "nod /dev/console 0600 0 0 c 5 1"
        // apart from the inode number.
        let rec = &bytes[(HEADER_LEN + "dev\0".len()).next_multiple_of(4)..];
        let want = "070701\
            00000002000021800000000000000000000000010000000000000000\
            00000000000000000000000500000001\
            0000000C00000000dev/console\0";
        assert_eq!(std::str::from_utf8(&rec[..want.len()]).unwrap(), want);
        // Name padded to 4 bytes, then (no data) the trailer record.
        assert_eq!(&rec[want.len()..want.len() + 2], b"\0\0");
        assert_eq!(&rec[want.len() + 2..want.len() + 8], MAGIC);
    }

    #[test]
    fn same_tree_same_bytes_and_mtime_matters() {
        assert_eq!(encode(&sample(), 0).unwrap(), encode(&sample(), 0).unwrap());
        assert_ne!(encode(&sample(), 0).unwrap(), encode(&sample(), 1).unwrap());
    }
}
