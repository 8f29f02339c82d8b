//! `image-pack`, `image-switch` and `image-gc` through the binary, with the real mksquashfs and
//! mkfs.erofs on small trees. A format whose tool is missing prints "skipped" (install
//! squashfs-tools / erofs-utils); everything else must pass.

mod common;

use common::{ok, run, stderr, stdout};
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const FORMATS: [(&str, &str, &str); 2] = [
    ("squashfs", "mksquashfs", "sqfs"),
    ("erofs", "mkfs.erofs", "erofs"),
];

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A small system tree. `reverse` creates the same entries in the opposite order, so that a
/// file system's directory order differs; `version` changes one file.
fn tree(at: &Path, reverse: bool, version: u32) -> PathBuf {
    let root = at.to_path_buf();
    let mut names: Vec<String> = (0..40).map(|i| format!("f{i:02}")).collect();
    if reverse {
        names.reverse();
    }
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    for n in &names {
        fs::write(root.join("usr/bin").join(n), n.repeat(100)).unwrap();
    }
    fs::write(root.join("etc/version"), format!("{version}\n")).unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    root
}

fn pack(tree: &Path, images: &Path, format: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "image-pack",
        tree.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--name",
        "node",
        "--format",
        format,
    ];
    args.extend_from_slice(extra);
    run(&args, &[])
}

fn generations(images: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(images)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("node-") && n.ends_with(&format!(".{ext}")))
        .collect();
    v.sort();
    v
}

/// The formats whose builder is installed, as (`--format`, extension); says "skipped" for the
/// others.
fn installed_formats() -> Vec<(&'static str, &'static str)> {
    FORMATS
        .into_iter()
        .filter(|(format, tool, _)| {
            let there = have(tool);
            if !there {
                eprintln!("skipped {format}: {tool} is not installed");
            }
            there
        })
        .map(|(format, _, ext)| (format, ext))
        .collect()
}

fn pointer(images: &Path) -> String {
    fs::read_to_string(images.join("node.current")).unwrap()
}

#[test]
fn same_tree_same_bytes_and_a_second_publish_changes_nothing() {
    for (format, ext) in installed_formats() {
        let d = tempfile::tempdir().unwrap();
        let t1 = tree(&d.path().join("t1"), false, 1);
        let t2 = tree(&d.path().join("t2"), true, 1);
        // The second tree's mtimes differ: the images do not (every timestamp is fixed).
        let st = Command::new("find")
            .arg(&t2)
            .args(["-exec", "touch", "-h", "-d", "@1000000", "{}", "+"])
            .status()
            .unwrap();
        assert!(st.success());
        let (i1, i2) = (d.path().join("i1"), d.path().join("i2"));
        fs::create_dir(&i1).unwrap();
        fs::create_dir(&i2).unwrap();
        let out = ok(&pack(&t1, &i1, format, &[]));
        assert!(out.contains("published"), "{out}");
        ok(&pack(&t2, &i2, format, &[]));
        let (g1, g2) = (generations(&i1, ext), generations(&i2, ext));
        assert_eq!(g1.len(), 1, "{format}: {g1:?}");
        assert_eq!(
            g1, g2,
            "{format}: the same tree must give the same generation"
        );
        let b1 = fs::read(i1.join(&g1[0])).unwrap();
        assert_eq!(b1, fs::read(i2.join(&g2[0])).unwrap(), "{format}");
        assert_eq!(pointer(&i1), format!("{}\n", g1[0]));
        assert_eq!(
            fs::read_to_string(i1.join("node.generations")).unwrap(),
            format!("{}\n", g1[0])
        );

        // Publishing it again: nothing is rewritten, no temporary file is left.
        let before = fs::metadata(i1.join(&g1[0])).unwrap();
        let out = ok(&pack(&t2, &i1, format, &[]));
        assert!(out.contains("unchanged"), "{out}");
        assert!(out.contains("already names"), "{out}");
        let after = fs::metadata(i1.join(&g1[0])).unwrap();
        assert_eq!(
            (before.ino(), before.mtime(), before.ctime()),
            (after.ino(), after.mtime(), after.ctime())
        );
        let mut names: Vec<_> = fs::read_dir(&i1)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                g1[0].clone(),
                "node.current".to_string(),
                "node.generations".to_string()
            ]
        );
        assert_eq!(
            fs::read_to_string(i1.join("node.generations")).unwrap(),
            format!("{}\n", g1[0])
        );
    }
}

#[test]
fn gc_keeps_the_current_and_the_newest_and_a_node_keeps_reading() {
    for (format, ext) in installed_formats() {
        let d = tempfile::tempdir().unwrap();
        let images = d.path().join("images");
        fs::create_dir(&images).unwrap();
        let mut published = Vec::new();
        for v in 1..=4 {
            let t = tree(&d.path().join(format!("t{v}")), false, v);
            let out = ok(&pack(&t, &images, format, &[]));
            let g = pointer(&images).trim_end().to_string();
            assert!(out.contains(&g), "{out}");
            published.push(g);
        }
        assert_eq!(generations(&images, ext).len(), 4);
        let log = fs::read_to_string(images.join("node.generations")).unwrap();
        assert_eq!(
            log,
            published
                .iter()
                .map(|g| format!("{g}\n"))
                .collect::<String>()
        );

        // A node booted on generation 1: roll the pointer back to it and hold it open.
        let dir = images.to_str().unwrap();
        let store = |sub: &str, extra: &[&str]| {
            let args = [sub, "--images", dir, "--name", "node"];
            ok(&run(&[&args[..], extra].concat(), &[]))
        };
        store("image-switch", &[&published[0]]);
        assert_eq!(pointer(&images), format!("{}\n", published[0]));
        let mut in_use = fs::File::open(images.join(&published[0])).unwrap();
        let want = fs::read(images.join(&published[0])).unwrap();

        // --dry-run deletes nothing.
        let out = store("image-gc", &["--dry-run"]);
        assert!(
            out.contains(&format!("would delete {}", published[1])),
            "{out}"
        );
        assert_eq!(generations(&images, ext).len(), 4);

        // A crashed build's temporary image is named, never deleted.
        let leftover = images.join(format!(".node.tmp-999999.{ext}"));
        fs::write(&leftover, b"half").unwrap();
        let out = store("image-gc", &[]);
        assert!(out.contains("leave .node.tmp-999999"), "{out}");
        assert!(leftover.exists());
        fs::remove_file(&leftover).unwrap();
        assert!(out.contains(&format!("deleted {}", published[1])), "{out}");
        let mut left = vec![
            published[0].clone(),
            published[2].clone(),
            published[3].clone(),
        ];
        left.sort();
        assert_eq!(generations(&images, ext), left);
        let mut got = Vec::new();
        in_use.read_to_end(&mut got).unwrap();
        assert_eq!(got, want, "the node's generation must read back whole");

        // --keep 1 with the pointer on the newest: only the newest stays.
        store("image-switch", &[&published[3]]);
        store("image-gc", &["--keep", "1"]);
        assert_eq!(generations(&images, ext), [published[3].clone()]);
        assert_eq!(
            fs::read_to_string(images.join("node.generations")).unwrap(),
            format!("{}\n", published[3])
        );
    }
}

#[test]
fn failures_name_the_file_and_the_fix() {
    let d = tempfile::tempdir().unwrap();
    let images = d.path().join("images");
    fs::create_dir(&images).unwrap();
    let dir = images.to_str().unwrap();

    let o = pack(&d.path().join("no-tree"), &images, "erofs", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no-tree is missing"), "{}", stderr(&o));

    let o = pack(
        &d.path().join("t"),
        &d.path().join("no-images"),
        "erofs",
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("mkdir -p"), "{}", stderr(&o));

    let o = run(
        &[
            "image-gc", "--images", dir, "--name", "../etc", "--keep", "2",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run(
        &["image-gc", "--images", dir, "--name", "node", "--keep", "0"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let o = run(
        &[
            "image-switch",
            "--images",
            dir,
            "--name",
            "node",
            "0123456789abcdef",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no generation"), "{}", stderr(&o));

    // A pointer naming a missing image stops gc before it deletes anything.
    fs::write(images.join("node.current"), "node-0123456789abcdef.erofs\n").unwrap();
    let o = run(&["image-gc", "--images", dir, "--name", "node"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("node.current") && e.contains("is missing"),
        "{e}"
    );
    assert!(e.contains("image-switch"), "{e}");
    assert!(stdout(&o).is_empty());
}

#[test]
fn dry_run_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let t = tree(&d.path().join("t"), false, 1);
    let images = d.path().join("images");
    fs::create_dir(&images).unwrap();
    let out = ok(&pack(&t, &images, "squashfs", &["--dry-run"]));
    assert!(out.contains("would run mksquashfs"), "{out}");
    assert_eq!(fs::read_dir(&images).unwrap().count(), 0);
}

#[test]
fn the_cluster_file_gives_the_defaults_and_flags_win() {
    if !have("mkfs.erofs") {
        eprintln!("skipped: mkfs.erofs is not installed");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let t = tree(&d.path().join("t"), false, 1);
    let images = d.path().join("images");
    fs::create_dir(&images).unwrap();
    // A minimal cluster whose build inputs exist (in the tempdir); only [images] matters here.
    for f in ["vmlinuz", "linuxrc"] {
        fs::write(d.path().join(f), b"x").unwrap();
    }
    fs::create_dir(d.path().join("modules")).unwrap();
    fs::write(d.path().join("modules/modules.dep"), b"").unwrap();
    let text = String::from(
        "[server]\naddress = \"10.0.2.2\"\nnetwork = \"10.0.2.0\"\nnetmask = \"255.255.255.0\"\n\n\
         [exports]\nsystem = \"/srv/system\"\n\n\
         [paths]\nsetup_tree = \"out/setup\"\ntftp_root = \"out/tftp\"\ninitramfs = \"out/initrd.img\"\n\n\
         [kernel]\nimage = \"vmlinuz\"\nmodules_dir = \"modules\"\nnic_modules = []\n\n\
         [initramfs]\nlinuxrc = \"linuxrc\"\n\n\
         [images]\ndir = \"images\"\nname = \"node\"\nkeep = 1\n"
    );
    let c = d.path().join("cluster.toml");
    fs::write(&c, text).unwrap();
    let o = run(
        &["image-pack", t.to_str().unwrap(), "-c", c.to_str().unwrap()],
        &[],
    );
    // --format overrides the file's default.
    let pack_sqfs = |tree: &Path| {
        let args = [
            "image-pack",
            tree.to_str().unwrap(),
            "-c",
            c.to_str().unwrap(),
        ];
        ok(&run(
            &[&args[..], &["--format", "squashfs", "--no-switch"]].concat(),
            &[],
        ))
    };
    ok(&o);
    assert_eq!(generations(&images, "erofs").len(), 1);
    pack_sqfs(&t);
    assert_eq!(generations(&images, "sqfs").len(), 1);
    assert_eq!(
        pointer(&images),
        format!("{}\n", generations(&images, "erofs")[0]),
        "--no-switch"
    );
    let first_sqfs = generations(&images, "sqfs")[0].clone();
    let t2 = tree(&d.path().join("t2"), false, 2);
    pack_sqfs(&t2);
    // keep = 1 from the file: the erofs one is current, the second squashfs one the newest.
    let gc = |extra: &[&str]| {
        let mut args = vec!["image-gc", "-c", c.to_str().unwrap(), "--dry-run"];
        args.extend_from_slice(extra);
        ok(&run(&args, &[]))
    };
    let out = gc(&[]);
    assert!(out.contains(&format!("would delete {first_sqfs}")), "{out}");
    assert_eq!(out.matches("would delete").count(), 1, "{out}");
    // --keep overrides it.
    assert!(!gc(&["--keep", "2"]).contains("would delete"));
    // Without -c, --images and --name are required (usage error).
    let o = run(&["image-gc", "--name", "node"], &[]);
    assert_eq!(o.status.code(), Some(2));
}
