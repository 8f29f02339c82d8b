//! `unionroot backup`: the seed's "backing up the environment" (`dd if=/dev/hda of=/dev/hdc`
//! from a system that keeps both disks unmounted) as one safe command: copy a block device or
//! image file to another device or image file, then verify by reading both back and comparing
//! SHA-256 hashes.
//!
//! It refuses what the seed warns about: a source mounted read-write (the copy would be
//! inconsistent), a mounted destination (writing under a filesystem corrupts it), a destination
//! device smaller than the source, and a destination that exists without `--force`. "Mounted"
//! includes the device's partitions and the loop devices backed by an image file, from
//! `/proc/self/mountinfo` (proc(5)) and `/sys/dev/block` (sysfs-block ABI).
//!
//! An image file destination is written beside its final name and renamed only once it
//! verified, so a failed or interrupted backup never leaves a half image under that name.

use crate::cli::BackupArgs;
use crate::exit::{self, VERIFY_FAILED};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub dev: (u32, u32),
    pub mount_point: String,
    pub source: String,
    /// Read-only as a mount or as a superblock: either way nothing can write through it.
    pub read_only: bool,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/self/mountinfo` (proc(5)): `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] -
/// FSTYPE SOURCE SUPEROPTS`. Lines that do not parse are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            let (maj, min) = f.get(2)?.split_once(':')?;
            let ro = |opts: &str| opts.split(',').any(|o| o == "ro");
            Some(Mount {
                dev: (maj.parse().ok()?, min.parse().ok()?),
                mount_point: unescape(f.get(4)?),
                source: unescape(r.get(1)?),
                read_only: ro(f.get(5)?) || ro(r.get(2).unwrap_or(&"")),
            })
        })
        .collect()
}

/// The mounts that sit on any of `devs`.
pub fn mounts_on<'a>(devs: &[(u32, u32)], mounts: &'a [Mount]) -> Vec<&'a Mount> {
    mounts.iter().filter(|m| devs.contains(&m.dev)).collect()
}

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Device {
        path: PathBuf,
        dev: (u32, u32),
        size: u64,
    },
    Image {
        path: PathBuf,
        size: u64,
    },
    Absent {
        path: PathBuf,
    },
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Device { path, dev, size } => format!(
                "block device {} ({}:{}, {size} bytes)",
                path.display(),
                dev.0,
                dev.1
            ),
            Target::Image { path, size } => format!("image file {} ({size} bytes)", path.display()),
            Target::Absent { path } => format!("new image file {}", path.display()),
        }
    }
}

/// `major:minor` of a `dev_t` (Linux's encoding, as `gnu_dev_major`/`gnu_dev_minor`).
fn split_dev(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff);
    (major as u32, minor as u32)
}

fn inspect(path: &Path) -> Result<Target> {
    let md = match fs::metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Target::Absent {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    };
    if md.file_type().is_block_device() {
        let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // A block device's size is where seeking to its end lands.
        let size = f
            .seek(SeekFrom::End(0))
            .with_context(|| format!("cannot find the size of {}", path.display()))?;
        Ok(Target::Device {
            path: path.to_path_buf(),
            dev: split_dev(md.rdev()),
            size,
        })
    } else if md.is_file() {
        Ok(Target::Image {
            path: path.to_path_buf(),
            size: md.len(),
        })
    } else {
        bail!(
            "{} is neither a block device nor a regular file",
            path.display()
        )
    }
}

fn read_dev_file(p: &Path) -> Option<(u32, u32)> {
    let s = fs::read_to_string(p).ok()?;
    let (a, b) = s.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A device and everything mounted "through" it: its partitions and the devices stacked on it
/// (holders: device-mapper, md), recursively.
fn stacked(dev: (u32, u32), out: &mut Vec<(u32, u32)>) {
    if out.contains(&dev) {
        return;
    }
    out.push(dev);
    let sys = PathBuf::from(format!("/sys/dev/block/{}:{}", dev.0, dev.1));
    let Ok(entries) = fs::read_dir(&sys) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.join("partition").exists() {
            if let Some(d) = read_dev_file(&p.join("dev")) {
                stacked(d, out);
            }
        }
    }
    if let Ok(holders) = fs::read_dir(sys.join("holders")) {
        for h in holders.flatten() {
            if let Some(d) = read_dev_file(&h.path().join("dev")) {
                stacked(d, out);
            }
        }
    }
}

/// The devices whose mounts would read or write `t`'s bytes.
fn devices_of(t: &Target) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    match t {
        Target::Device { dev, .. } => stacked(*dev, &mut out),
        Target::Image { path, .. } => {
            // Loop devices backed by this file.
            let want = fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            if let Ok(entries) = fs::read_dir("/sys/block") {
                for e in entries.flatten() {
                    let bf = e.path().join("loop/backing_file");
                    let Ok(backing) = fs::read_to_string(&bf) else {
                        continue;
                    };
                    if Path::new(backing.trim_end_matches('\n')) == want {
                        if let Some(d) = read_dev_file(&e.path().join("dev")) {
                            stacked(d, &mut out);
                        }
                    }
                }
            }
        }
        Target::Absent { .. } => {}
    }
    out
}

/// The safety checks, on already gathered facts, so they can be tested without devices.
pub fn refusals(
    src: &Target,
    dst: &Target,
    src_mounts: &[&Mount],
    dst_mounts: &[&Mount],
    same_file: bool,
    force: bool,
) -> Vec<String> {
    let mut r = Vec::new();
    if same_file {
        r.push("the source and the destination are the same".to_string());
    }
    if let Target::Absent { path } = src {
        r.push(format!("the source {} does not exist", path.display()));
    }
    for m in src_mounts.iter().filter(|m| !m.read_only) {
        r.push(format!(
            "the source is mounted read-write on {} ({}); unmount it or remount it read-only \
             (mount -o remount,ro {}) so the copy is consistent",
            m.mount_point, m.source, m.mount_point
        ));
    }
    for m in dst_mounts {
        r.push(format!(
            "the destination is mounted on {} ({}); writing under a mounted filesystem corrupts \
             it: unmount it first",
            m.mount_point, m.source
        ));
    }
    let src_size = match src {
        Target::Device { size, .. } | Target::Image { size, .. } => *size,
        Target::Absent { .. } => 0,
    };
    if let Target::Device { size, .. } = dst {
        if *size < src_size {
            r.push(format!(
                "the destination device holds {size} bytes, less than the source's {src_size}"
            ));
        }
    }
    if !force && !matches!(dst, Target::Absent { .. }) {
        r.push(format!(
            "the destination {} exists and would be overwritten; pass --force",
            dst.describe()
        ));
    }
    r
}

/// Compares the hash taken while copying with the two taken by reading back.
pub fn verdict(copied: &[u8], source: &[u8], copy: &[u8]) -> Result<(), String> {
    if source != copied {
        return Err(format!(
            "the source changed while it was copied (sha256 {} while copying, {} read back); \
             is something writing to it?",
            hex(copied),
            hex(source)
        ));
    }
    if copy != source {
        return Err(format!(
            "the copy does not read back as written: sha256 {} of the source, {} of the copy",
            hex(source),
            hex(copy)
        ));
    }
    Ok(())
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(
            "{msg:>8} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b.set_message(what.to_string());
    b
}

/// Reads the first `len` bytes of `path` and hashes them, advancing `pb`.
fn hash_prefix(path: &Path, len: u64, block: usize, pb: &ProgressBar) -> Result<Vec<u8>> {
    let f =
        File::open(path).with_context(|| format!("cannot open {} to verify", path.display()))?;
    // Ask the kernel to drop its cached pages, so the hash is of what is on the medium
    // rather than what was just written (best effort: not every file supports it).
    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
    let mut r = f.take(len);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; block];
    let mut done = 0u64;
    loop {
        let n = r
            .read(&mut buf)
            .with_context(|| format!("cannot read {} to verify", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        done += n as u64;
        pb.inc(n as u64);
    }
    if done != len {
        bail!(
            "{} ended after {done} bytes while verifying {len}",
            path.display()
        );
    }
    Ok(h.finalize().to_vec())
}

/// Copies `len` bytes from `src` to `out`, returning the SHA-256 of what was read.
fn copy(src: &Path, out: &mut File, len: u64, block: usize, pb: &ProgressBar) -> Result<Vec<u8>> {
    let mut r = File::open(src)
        .with_context(|| format!("cannot open the source {}", src.display()))?
        .take(len);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; block];
    let mut done = 0u64;
    loop {
        let n = r
            .read(&mut buf)
            .with_context(|| format!("cannot read the source {} at byte {done}", src.display()))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .with_context(|| format!("cannot write the destination at byte {done}"))?;
        h.update(&buf[..n]);
        done += n as u64;
        pb.inc(n as u64);
    }
    if done != len {
        bail!("the source ended after {done} of {len} bytes");
    }
    out.sync_all().context("cannot flush the destination")?;
    Ok(h.finalize().to_vec())
}

pub fn run(args: &BackupArgs) -> Result<()> {
    if args.block_size == 0 {
        bail!("--block-size must be above 0");
    }
    let block = args.block_size;
    let src = inspect(&args.from)?;
    let dst = inspect(&args.to)?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo to see what is mounted")?;
    let mounts = parse_mountinfo(&mountinfo);
    let (sd, dd) = (devices_of(&src), devices_of(&dst));
    let same = match (fs::metadata(&args.from), fs::metadata(&args.to)) {
        (Ok(a), Ok(b)) => {
            (a.dev() == b.dev() && a.ino() == b.ino())
                || (a.file_type().is_block_device() && a.rdev() == b.rdev())
                || sd.iter().any(|d| dd.contains(d))
        }
        _ => false,
    };
    let problems = refusals(
        &src,
        &dst,
        &mounts_on(&sd, &mounts),
        &mounts_on(&dd, &mounts),
        same,
        args.force || args.dry_run,
    );
    let len = match &src {
        Target::Device { size, .. } | Target::Image { size, .. } => *size,
        Target::Absent { .. } => 0,
    };
    let plan = format!(
        "copy {} to {} in blocks of {block} bytes, then read both back and compare SHA-256",
        src.describe(),
        dst.describe()
    );
    if args.dry_run {
        println!("dry run: would {plan}");
        if matches!(dst, Target::Image { .. } | Target::Device { .. }) {
            println!("  (needs --force: the destination exists)");
        }
        for p in &problems {
            println!("  refused: {p}");
        }
        return if problems.is_empty() {
            Ok(())
        } else {
            Err(exit::refused(format!(
                "{} refusal(s), see above",
                problems.len()
            )))
        };
    }
    if !problems.is_empty() {
        return Err(exit::refused(format!(
            "not copying {} to {}:\n  {}",
            args.from.display(),
            args.to.display(),
            problems.join("\n  ")
        )));
    }
    eprintln!("unionroot: {plan}");

    // The file written to, and where it goes afterwards (image files only).
    let (mut out, written, tmp) = match &dst {
        Target::Device { path, .. } => (
            OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("cannot open {} for writing", path.display()))?,
            path.clone(),
            None,
        ),
        Target::Image { path, .. } | Target::Absent { path } => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let t = tempfile::Builder::new()
                .prefix(&format!(".{name}.tmp-"))
                .tempfile_in(dir)
                .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
            let f = t.reopen().context("cannot reopen the temporary image")?;
            (f, t.path().to_path_buf(), Some((t, path.clone())))
        }
    };

    let pb = bar(len, "copy");
    let copied = copy(&args.from, &mut out, len, block, &pb)?;
    pb.finish_and_clear();
    drop(out);
    let pb = bar(2 * len, "verify");
    let src_hash = hash_prefix(&args.from, len, block, &pb)?;
    let dst_hash = hash_prefix(&written, len, block, &pb)?;
    pb.finish_and_clear();
    if let Err(why) = verdict(&copied, &src_hash, &dst_hash) {
        let kept = if tmp.is_some() {
            " (the image was not kept)"
        } else {
            ""
        };
        return Err(exit::failure(
            VERIFY_FAILED,
            anyhow::anyhow!("{}: {why}{kept}", args.to.display()),
        ));
    }
    if let Some((t, path)) = tmp {
        // A disk image holds every secret of the disk.
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o600)).ok();
        t.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot rename the verified image to {}", path.display()))?;
    }
    println!(
        "copied {len} bytes from {} to {}; both read back with sha256 {}",
        args.from.display(),
        args.to.display(),
        hex(&src_hash)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: &str = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
        40 27 7:0 / /mnt/a\\040b rw,relatime shared:5 - ext4 /dev/loop0 rw\n\
        41 27 7:1 / /mnt/ro ro,relatime - ext4 /dev/loop1 rw\n\
        42 27 7:2 / /mnt/sro rw,relatime - ext4 /dev/loop2 ro,errors=continue\n\
        garbage line\n";

    #[test]
    fn mountinfo_parsing() {
        let m = parse_mountinfo(MI);
        assert_eq!(m.len(), 4);
        assert_eq!(
            m[1],
            Mount {
                dev: (7, 0),
                mount_point: "/mnt/a b".into(),
                source: "/dev/loop0".into(),
                read_only: false
            }
        );
        assert!(m[2].read_only, "mount option ro");
        assert!(m[3].read_only, "superblock option ro");
        assert_eq!(mounts_on(&[(7, 1), (9, 9)], &m), [&m[2]]);
    }

    #[test]
    fn dev_numbers_split_like_glibc() {
        assert_eq!(split_dev(0x0700), (7, 0));
        assert_eq!(split_dev(0x0801), (8, 1));
        // A large minor spills into the high bits.
        assert_eq!(split_dev((259 << 8) | 0x12 | (0x3 << 20)), (259, 0x312));
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(b"a", b"a", b"a"), Ok(()));
        let e = verdict(b"a", b"b", b"b").unwrap_err();
        assert!(
            e.contains("source changed") && e.contains("61 while copying"),
            "{e}"
        );
        let e = verdict(b"\x01", b"\x01", b"\x02").unwrap_err();
        assert!(e.contains("sha256 01 of the source, 02 of the copy"), "{e}");
    }

    #[test]
    fn refusals_cover_every_unsafe_case() {
        let m = parse_mountinfo(MI);
        let img = |s| Target::Image {
            path: "/x.img".into(),
            size: s,
        };
        let dev = |s| Target::Device {
            path: "/dev/loop9".into(),
            dev: (7, 9),
            size: s,
        };
        let absent = Target::Absent {
            path: "/new.img".into(),
        };
        assert!(refusals(&img(10), &absent, &[], &[], false, false).is_empty());
        assert!(refusals(&img(10), &dev(10), &[], &[], false, true).is_empty());
        // Read-only mounted source is fine.
        assert!(refusals(&img(10), &absent, &[&m[2], &m[3]], &[], false, false).is_empty());

        let one = |r: Vec<String>, word: &str| {
            assert_eq!(r.len(), 1, "{r:?}");
            assert!(r[0].contains(word), "{r:?}");
        };
        one(
            refusals(&img(10), &absent, &[&m[1]], &[], false, false),
            "mounted read-write on /mnt/a b",
        );
        one(
            refusals(&img(10), &dev(10), &[], &[&m[2]], false, true),
            "destination is mounted on /mnt/ro",
        );
        one(
            refusals(&img(11), &dev(10), &[], &[], false, true),
            "holds 10 bytes, less than the source's 11",
        );
        one(
            refusals(&img(10), &dev(10), &[], &[], false, false),
            "--force",
        );
        one(
            refusals(&img(10), &img(1), &[], &[], false, false),
            "--force",
        );
        one(
            refusals(&img(10), &img(1), &[], &[], true, true),
            "the same",
        );
        one(
            refusals(&absent, &img(1), &[], &[], false, true),
            "does not exist",
        );
    }
}
