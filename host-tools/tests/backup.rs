//! `unionroot backup` on image files, and on loop devices when the test runs as root with
//! losetup(8) available (it says so and skips those checks otherwise): the copy reads back
//! identical, and every unsafe case is refused with exit 4 and nothing written.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A test pattern that is not periodic in any block size, so a misplaced block shows.
mod common;
use common::{ok, stderr as err};

fn unionroot(args: &[&str]) -> Output {
    common::run(args, &[])
}

fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// sha256sum(1)'s verdict, independent of the tool's own hashing.
fn sha256sum(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn image_to_image_copies_and_verifies() {
    let d = tempfile::tempdir().unwrap();
    let (src, dst) = (d.path().join("disk.img"), d.path().join("backup.img"));
    // Not a multiple of the block size: the last block is short.
    fs::write(&src, pattern(1_000_003)).unwrap();
    let o = ok(&unionroot(&[
        "backup",
        "--from",
        s(&src),
        "--to",
        s(&dst),
        "--block-size",
        "65536",
    ]));
    let hash = sha256sum(&src);
    assert!(o.contains(&format!("sha256 {hash}")), "{o}");
    assert!(o.contains("copied 1000003 bytes"), "{o}");
    assert_eq!(fs::read(&dst).unwrap(), fs::read(&src).unwrap());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&dst).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let names: Vec<String> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");

    // An existing destination needs --force; refusing writes nothing.
    fs::write(&dst, b"older backup").unwrap();
    let o = unionroot(&["backup", "--from", s(&src), "--to", s(&dst)]);
    assert_eq!(o.status.code(), Some(4), "{}", err(&o));
    assert!(err(&o).contains("pass --force"), "{}", err(&o));
    assert_eq!(fs::read(&dst).unwrap(), b"older backup");
    // --dry-run says what would happen and writes nothing.
    let o = ok(&unionroot(&[
        "backup",
        "--from",
        s(&src),
        "--to",
        s(&dst),
        "--dry-run",
    ]));
    assert!(
        o.contains("dry run: would copy image file") && o.contains("needs --force"),
        "{o}"
    );
    assert_eq!(fs::read(&dst).unwrap(), b"older backup");
    ok(&unionroot(&[
        "backup",
        "--from",
        s(&src),
        "--to",
        s(&dst),
        "--force",
    ]));
    assert_eq!(sha256sum(&dst), hash);

    // Onto itself, from nowhere, into a directory that does not exist.
    let o = unionroot(&["backup", "--from", s(&src), "--to", s(&src), "--force"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(err(&o).contains("the same"), "{}", err(&o));
    let o = unionroot(&[
        "backup",
        "--from",
        s(&d.path().join("nope.img")),
        "--to",
        s(&dst),
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(4));
    assert!(err(&o).contains("does not exist"), "{}", err(&o));
    let o = unionroot(&[
        "backup",
        "--from",
        s(&src),
        "--to",
        s(&d.path().join("no/dir.img")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("temporary file"), "{}", err(&o));
    // An empty source is a valid (empty) copy.
    let empty = d.path().join("empty.img");
    fs::write(&empty, b"").unwrap();
    ok(&unionroot(&[
        "backup",
        "--from",
        s(&empty),
        "--to",
        s(&d.path().join("e2.img")),
    ]));
    assert_eq!(fs::read(d.path().join("e2.img")).unwrap(), b"");
}

/// Loop devices and mounts made for a test, undone in reverse order when dropped.
#[derive(Default)]
struct Loops {
    devices: Vec<String>,
    mounts: Vec<PathBuf>,
}

impl Loops {
    fn attach(&mut self, image: &Path) -> String {
        let o = Command::new("losetup")
            .args(["-f", "--show", s(image)])
            .output()
            .unwrap();
        assert!(o.status.success(), "losetup: {}", err(&o));
        let dev = String::from_utf8_lossy(&o.stdout).trim().to_string();
        self.devices.push(dev.clone());
        dev
    }

    fn mount(&mut self, dev: &str, at: &Path, opts: &str) {
        fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-o", opts, dev, s(at)])
            .status()
            .unwrap();
        assert!(st.success(), "mount {dev}");
        self.mounts.push(at.to_path_buf());
    }

    fn umount(&mut self, at: &Path) {
        let st = Command::new("umount").arg(at).status().unwrap();
        assert!(st.success());
        self.mounts.retain(|m| m != at);
    }
}

impl Drop for Loops {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg(m).status();
        }
        for d in self.devices.iter().rev() {
            let _ = Command::new("losetup").args(["-d", d]).status();
        }
    }
}

/// Whether loop devices can be used here; prints why not.
fn loops_usable(scratch: &Path) -> bool {
    let probe = scratch.join("probe.img");
    fs::write(&probe, vec![0u8; 4096]).unwrap();
    let o = Command::new("losetup")
        .args(["-f", "--show", s(&probe)])
        .output();
    match o {
        Ok(o) if o.status.success() => {
            let dev = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let _ = Command::new("losetup").args(["-d", &dev]).status();
            true
        }
        Ok(o) => {
            println!("SKIPPED (loop devices): losetup failed: {}", err(&o).trim());
            false
        }
        Err(e) => {
            println!("SKIPPED (loop devices): cannot run losetup: {e}");
            false
        }
    }
}

#[test]
fn loop_devices_copy_and_every_unsafe_case_is_refused() {
    let d = tempfile::tempdir().unwrap();
    if !loops_usable(d.path()) {
        return;
    }
    let mut l = Loops::default();
    let mib = 1 << 20;
    let (a, b, small) = (
        d.path().join("a.img"),
        d.path().join("b.img"),
        d.path().join("small.img"),
    );
    fs::write(&a, pattern(8 * mib)).unwrap();
    fs::write(&b, vec![0u8; 9 * mib]).unwrap();
    fs::write(&small, vec![0u8; 4 * mib]).unwrap();
    let (la, lb, ls) = (l.attach(&a), l.attach(&b), l.attach(&small));

    // Device to device: the first 8 MiB of the bigger device now match.
    let o = ok(&unionroot(&[
        "backup", "--from", &la, "--to", &lb, "--force",
    ]));
    assert!(o.contains(&format!("sha256 {}", sha256sum(&a))), "{o}");
    assert_eq!(fs::read(&b).unwrap()[..8 * mib], fs::read(&a).unwrap()[..]);
    // A device is an existing destination: it needs --force.
    let o = unionroot(&["backup", "--from", &la, "--to", &lb]);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        err(&o).contains("block device") && err(&o).contains("--force"),
        "{}",
        err(&o)
    );
    // A smaller device.
    let o = unionroot(&["backup", "--from", &la, "--to", &ls, "--force"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        err(&o).contains("holds 4194304 bytes, less than the source's 8388608"),
        "{}",
        err(&o)
    );
    assert!(
        fs::read(&small).unwrap().iter().all(|x| *x == 0),
        "nothing written"
    );

    // A filesystem on the source, mounted read-write: refused, for the device and for the
    // image file behind it; mounted read-only: fine.
    if !Path::new("/usr/sbin/mkfs.ext4").exists() && !Path::new("/sbin/mkfs.ext4").exists() {
        println!("SKIPPED (mounted cases): mkfs.ext4 not installed");
        return;
    }
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", &la])
        .status()
        .unwrap();
    assert!(st.success());
    let mnt = d.path().join("mnt");
    l.mount(&la, &mnt, "rw");
    for from in [la.as_str(), s(&a)] {
        let o = unionroot(&["backup", "--from", from, "--to", s(&d.path().join("x.img"))]);
        assert_eq!(o.status.code(), Some(4), "{from}: {}", err(&o));
        assert!(err(&o).contains("mounted read-write on"), "{}", err(&o));
    }
    assert!(!d.path().join("x.img").exists());
    l.umount(&mnt);
    l.mount(&la, &mnt, "ro");
    let out_img = d.path().join("fs.img");
    ok(&unionroot(&["backup", "--from", &la, "--to", s(&out_img)]));
    assert_eq!(sha256sum(&out_img), sha256sum(Path::new(&la)));

    // A mounted destination, as a device and as the image file behind it.
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", &lb])
        .status()
        .unwrap();
    assert!(st.success());
    let mnt_b = d.path().join("mnt-b");
    l.mount(&lb, &mnt_b, "ro");
    let before = fs::read(&b).unwrap();
    for to in [lb.as_str(), s(&b)] {
        let o = unionroot(&["backup", "--from", s(&small), "--to", to, "--force"]);
        assert_eq!(o.status.code(), Some(4), "{to}: {}", err(&o));
        assert!(
            err(&o).contains("the destination is mounted on"),
            "{}",
            err(&o)
        );
    }
    assert!(fs::read(&b).unwrap() == before, "nothing written");
}
