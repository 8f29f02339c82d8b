//! `image-sync` through the binary, with the real rsync and mkfs.erofs, onto heads that are
//! local directories: every generation and the pointer arrive, a second run changes nothing,
//! a generation a head holds is never rewritten, and a head that fails mid-way (its disk full
//! after the first generation) shows no partial generation and keeps its old pointer while
//! the other head is synced; what image-gc deleted here is deleted on the heads, and nothing
//! else is. Without rsync or mkfs.erofs it prints "skipped"; the full-disk
//! case needs root (a size-limited tmpfs) and is skipped otherwise.

mod common;

use common::{ok, run, stderr, stdout};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/fixtures")
}

/// A tree whose image is about `kib` KiB whatever the compression (pseudo-random bytes),
/// different for each `version`.
fn tree(at: &Path, version: u32, kib: usize) -> PathBuf {
    fs::create_dir_all(at.join("etc")).unwrap();
    fs::write(at.join("etc/version"), format!("{version}\n")).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(version);
    let bytes: Vec<u8> = (0..kib * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(at.join("etc/blob"), bytes).unwrap();
    at.to_path_buf()
}

/// A cluster file with two heads whose images go to `h1` and `h2`, and `[images]` at `images`.
fn cluster(d: &Path, images: &Path, h1: &Path, h2: &Path) -> PathBuf {
    let f = fixtures();
    let text = format!(
        r#"[server]
address = "10.0.2.2"
network = "10.0.2.0"
netmask = "255.255.255.0"

[[heads]]
name = "head1"
address = "10.0.2.11"
images = "{h1}"

[[heads]]
name = "head2"
address = "10.0.2.12"
images = "{h2}"

[exports]
system = "/srv/system"
images = "/srv/images"

[images]
dir = "{images}"
name = "sys"

[paths]
setup_tree = "/srv/system"
tftp_root = "/srv/tftp"
initramfs = "/srv/initrd.img"

[kernel]
image = "{vmlinuz}"
modules_dir = "{modules}"

[initramfs]
linuxrc = "{linuxrc}"
"#,
        h1 = h1.display(),
        h2 = h2.display(),
        images = images.display(),
        vmlinuz = f.join("vmlinuz").display(),
        modules = f.join("modules/6.1.0-test").display(),
        linuxrc = f.join("linuxrc").display(),
    );
    let p = d.join("cluster.toml");
    fs::write(&p, text).unwrap();
    p
}

fn pack(tree: &Path, c: &Path) -> String {
    let out = ok(&run(
        &[
            "image-pack",
            tree.to_str().unwrap(),
            "-c",
            c.to_str().unwrap(),
        ],
        &[],
    ));
    // "published sys-<hash>.erofs ..." or similar: take the generation's file name.
    out.split_whitespace()
        .find(|w| w.starts_with("sys-") && w.ends_with(".erofs"))
        .unwrap_or_else(|| panic!("no generation in {out:?}"))
        .trim_end_matches([',', ':', ')'])
        .to_string()
}

fn sync(c: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["image-sync", "-c", c.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args, &[])
}

fn listing(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn tools() -> bool {
    if !have("rsync") || !have("mkfs.erofs") {
        println!(
            "skipped: image-sync needs rsync and mkfs.erofs (apt-get install rsync erofs-utils)"
        );
        return false;
    }
    true
}

/// A temporary directory with an empty local images directory and two empty head
/// directories: (the directory, images, head 1, head 2).
fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let (images, h1, h2) = (
        d.path().join("images"),
        d.path().join("h1"),
        d.path().join("h2"),
    );
    for p in [&images, &h1, &h2] {
        fs::create_dir(p).unwrap();
    }
    (d, images, h1, h2)
}

/// [`dirs`], and the cluster file that names them: (the directory, images, head 1, head 2,
/// cluster file).
fn two_heads() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf, PathBuf) {
    let (d, images, h1, h2) = dirs();
    let c = cluster(d.path(), &images, &h1, &h2);
    (d, images, h1, h2, c)
}

#[test]
fn every_head_gets_the_generations_then_the_pointer_and_nothing_is_rewritten() {
    if !tools() {
        return;
    }
    let (d, images, h1, h2, c) = two_heads();
    let g1 = pack(&tree(&d.path().join("t1"), 1, 16), &c);
    let g2 = pack(&tree(&d.path().join("t2"), 2, 16), &c);
    assert_ne!(g1, g2);

    let dry = ok(&sync(&c, &["--dry-run"]));
    assert!(
        dry.contains("dry run: head head1:") && dry.contains("--ignore-existing"),
        "{dry}"
    );
    assert_eq!(
        listing(&h1),
        Vec::<String>::new(),
        "a dry run copies nothing"
    );

    let out = ok(&sync(&c, &[]));
    assert!(
        out.contains(&format!(
            "head head2: 2 generation(s) present, pointer {g2}"
        )),
        "{out}"
    );
    for h in [&h1, &h2] {
        let mut want = vec![
            g1.clone(),
            g2.clone(),
            "sys.current".into(),
            "sys.generations".into(),
        ];
        want.sort();
        assert_eq!(listing(h), want);
        for f in [&g1, &g2] {
            assert_eq!(
                fs::read(h.join(f)).unwrap(),
                fs::read(images.join(f)).unwrap()
            );
            assert_eq!(fs::metadata(h.join(f)).unwrap().mode() & 0o777, 0o444);
        }
        assert_eq!(
            fs::read_to_string(h.join("sys.current")).unwrap(),
            format!("{g2}\n")
        );
    }

    // Again: the generations a head holds stay the same files.
    let ino = fs::metadata(h1.join(&g1)).unwrap().ino();
    ok(&sync(&c, &[]));
    assert_eq!(fs::metadata(h1.join(&g1)).unwrap().ino(), ino);

    // A generation is never rewritten, even one that differs (rsync --ignore-existing).
    fs::remove_file(h2.join(&g1)).unwrap();
    fs::write(h2.join(&g1), b"held by a node").unwrap();
    ok(&sync(&c, &["--head", "head2"]));
    assert_eq!(fs::read(h2.join(&g1)).unwrap(), b"held by a node");

    // Named errors: an unknown head, a head directory that is missing.
    let o = sync(&c, &["--head", "head9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--head head9: no such head; the cluster's heads are head1, head2"));
    fs::remove_dir_all(&h1).unwrap();
    let o = sync(&c, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "head head1: the images directory {} is missing",
            h1.display()
        )),
        "{e}"
    );
    assert!(
        e.contains("failed for head(s) head1 (the others are synced)"),
        "{e}"
    );
    assert!(stdout(&o).contains("head head2: 2 generation(s) present"));
}

#[test]
fn what_gc_deletes_here_is_deleted_on_the_heads_and_nothing_else() {
    if !tools() {
        return;
    }
    let (d, images, h1, h2, c) = two_heads();
    let g: Vec<String> = (1..=3)
        .map(|v| pack(&tree(&d.path().join(format!("t{v}")), v, 16), &c))
        .collect();
    ok(&sync(&c, &[]));
    // What else a head may hold, none of it a generation of this image as this tool names it.
    let others = [
        "sys-12-0123456789abcdef.erofs",
        "sysx-0123456789abcdef.erofs",
        "other-0123456789abcdef.sqfs",
        "sys-0123456789ABCDEF.erofs",
        "sys-extra.erofs",
        ".sys-0123456789abcdef.erofs.Xy12ab",
    ];
    for f in others {
        fs::write(h1.join(f), b"not ours").unwrap();
    }
    let dry = ok(&sync(&c, &["--dry-run"]));
    assert!(
        dry.contains("--delete") && dry.contains("--existing"),
        "{dry}"
    );
    // gc here (the newest 2 kept) deletes the oldest; the next sync deletes it on the heads.
    ok(&run(&["image-gc", "-c", c.to_str().unwrap()], &[]));
    assert!(!images.join(&g[0]).exists());
    assert!(h1.join(&g[0]).exists(), "gc here alone touches no head");
    ok(&sync(&c, &[]));
    for h in [&h1, &h2] {
        assert!(
            !h.join(&g[0]).exists(),
            "{} still holds {}",
            h.display(),
            g[0]
        );
        for f in [&g[1], &g[2]] {
            assert_eq!(
                fs::read(h.join(f)).unwrap(),
                fs::read(images.join(f)).unwrap()
            );
        }
        assert_eq!(
            fs::read_to_string(h.join("sys.current")).unwrap(),
            format!("{}\n", g[2])
        );
    }
    for f in others {
        assert_eq!(
            fs::read(h1.join(f)).unwrap(),
            b"not ours",
            "{f} was touched"
        );
    }
}

/// Unmounts on drop, so a failing assertion leaves no mount behind.
struct Mounted(PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_head_that_fails_mid_way_keeps_its_pointer_and_shows_no_partial_generation() {
    if !tools() {
        return;
    }
    if !is_root() {
        println!("skipped: the full-disk head needs root (a size-limited tmpfs)");
        return;
    }
    let (d, images, h1, h2) = dirs();
    // Head 2's disk holds one generation (about 300 KiB) but not two.
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=480k", "tmpfs"])
        .arg(&h2)
        .status()
        .unwrap();
    assert!(st.success());
    let _m = Mounted(h2.clone());
    let c = cluster(d.path(), &images, &h1, &h2);
    let g1 = pack(&tree(&d.path().join("t1"), 1, 300), &c);
    ok(&sync(&c, &[]));
    assert_eq!(
        fs::read_to_string(h2.join("sys.current")).unwrap(),
        format!("{g1}\n")
    );

    let g2 = pack(&tree(&d.path().join("t2"), 2, 300), &c);
    let o = sync(&c, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let e = stderr(&o);
    assert!(e.contains("head head2 ("), "{e}");
    assert!(e.contains("copying 2 generation(s) failed"), "{e}");
    assert!(e.contains("its pointer was not changed"), "{e}");
    assert!(
        e.contains("failed for head(s) head2 (the others are synced)"),
        "{e}"
    );
    // Head 1 is synced; head 2 still points at generation 1, which it holds whole, and shows
    // neither generation 2 nor a temporary file.
    assert_eq!(
        fs::read_to_string(h1.join("sys.current")).unwrap(),
        format!("{g2}\n")
    );
    assert_eq!(
        listing(&h2),
        [g1.clone(), "sys.current".into(), "sys.generations".into()]
    );
    assert_eq!(
        fs::read(h2.join(&g1)).unwrap(),
        fs::read(images.join(&g1)).unwrap()
    );
    assert_eq!(
        fs::read_to_string(h2.join("sys.current")).unwrap(),
        format!("{g1}\n")
    );
}

/// Kills the rsync daemon on drop.
struct Daemon(std::process::Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A head reached through an rsync daemon (`rsync://HOST:PORT/MODULE`, no ssh), as a remote
/// head is: the same files arrive, in the same order of steps.
#[test]
fn a_head_behind_an_rsync_daemon_gets_the_same() {
    if !tools() {
        return;
    }
    if !is_root() {
        println!("skipped: the rsync daemon writes as root here (uid = 0 in its module)");
        return;
    }
    let (d, images, h1, h2) = dirs();
    // A free port: bind, note it, let go (the daemon takes it right after).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = d.path().join("rsyncd.conf");
    fs::write(
        &conf,
        format!(
            "use chroot = no\nuid = 0\ngid = 0\npid file = {}\n[img]\npath = {}\nread only = no\n",
            d.path().join("rsyncd.pid").display(),
            h2.display()
        ),
    )
    .unwrap();
    let _daemon = Daemon(
        Command::new("rsync")
            .args(["--daemon", "--no-detach", "--address", "127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--config={}", conf.display()))
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("rsync://127.0.0.1:{port}/img");
    let c = cluster(d.path(), &images, &h1, Path::new(&url));
    let g1 = pack(&tree(&d.path().join("t1"), 1, 16), &c);
    let out = ok(&sync(&c, &["--head", "head2"]));
    assert!(
        out.contains(&format!(
            "head head2: 1 generation(s) present, pointer {g1}"
        )),
        "{out}"
    );
    assert_eq!(
        listing(&h1),
        Vec::<String>::new(),
        "only head2 was asked for"
    );
    assert_eq!(
        listing(&h2),
        [g1.clone(), "sys.current".into(), "sys.generations".into()]
    );
    assert_eq!(
        fs::read(h2.join(&g1)).unwrap(),
        fs::read(images.join(&g1)).unwrap()
    );
    assert_eq!(
        fs::read_to_string(h2.join("sys.current")).unwrap(),
        format!("{g1}\n")
    );
}
