//! End-to-end tests of the `unionroot` binary: real files in temporary directories, archives read
//! back with the independent `cpio` crate, exit codes and error messages as a user sees them.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{ok, run as unionroot, stderr};

const RELEASE: &str = "6.1.0-test-amd64";
const SIG_MAGIC: &[u8] = b"~Module signature appended~\n";

/// A module file that ends in a fake appended signature of `sig_len` bytes.
fn signed_module(body: &[u8], sig_len: usize) -> Vec<u8> {
    let mut v = body.to_vec();
    v.extend(std::iter::repeat_n(0xa5, sig_len));
    v.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
    v.extend_from_slice(&(sig_len as u32).to_be_bytes());
    v.extend_from_slice(SIG_MAGIC);
    v
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A kernel modules dir shaped like Debian's, an init program, a config and an extra file.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("lib/modules").join(RELEASE);
        let modules = [
            (
                "kernel/fs/nfs/nfsv3.ko",
                "kernel/fs/nfs/nfs.ko kernel/net/sunrpc/sunrpc.ko",
            ),
            ("kernel/fs/nfs/nfs.ko", "kernel/net/sunrpc/sunrpc.ko"),
            ("kernel/net/sunrpc/sunrpc.ko", ""),
            ("kernel/fs/overlayfs/overlay.ko", ""),
            ("kernel/drivers/net/e1000.ko", ""),
        ];
        let mut dep = String::new();
        for (path, deps) in modules {
            dep += &format!("{path}: {deps}\n").replace(": \n", ":\n");
            let p = m.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(
                &p,
                signed_module(format!("\x7fELF body of {path}").as_bytes(), 100),
            )
            .unwrap();
        }
        fs::write(m.join("modules.dep"), dep).unwrap();
        fs::write(
            m.join("modules.alias"),
            "# Aliases extracted from modules themselves.\nalias fs-overlay overlay\n\
             alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000\nalias nfs3 nfsv3\n",
        )
        .unwrap();
        fs::write(m.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
        fs::write(m.join("modules.dep.bin"), "binary index, not shipped").unwrap();
        let init = dir.path().join("linuxrc");
        fs::write(&init, "\x7fELF pretend linuxrc").unwrap();
        fs::write(dir.path().join("unionroot.conf"), "server = 10.0.2.2\n").unwrap();
        let tool = dir.path().join("tool");
        fs::write(&tool, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(dir.path().join("motd"), "hello\n").unwrap();
        Fixture { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn s(&self, p: &str) -> String {
        self.path(p).to_str().unwrap().to_string()
    }

    /// The standard initramfs command line, writing to `out`, plus `extra` arguments.
    fn initramfs(&self, out: &str, extra: &[&str]) -> Output {
        self.initramfs_env(out, extra, &[])
    }

    fn initramfs_env(&self, out: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mdir = self.s(&format!("lib/modules/{RELEASE}"));
        let (init, conf, out) = (self.s("linuxrc"), self.s("unionroot.conf"), self.s(out));
        let (tool, motd) = (
            format!("{}:/usr/bin/tool", self.s("tool")),
            format!("{}:etc/motd", self.s("motd")),
        );
        let mut args = vec![
            "initramfs",
            "--modules-dir",
            &mdir,
            "--module",
            "nfsv3",
            "--module",
            "overlay",
            "--init",
            &init,
            "--config",
            &conf,
            "--add",
            &tool,
            "--add",
            &motd,
            "-o",
            &out,
        ];
        args.extend_from_slice(extra);
        unionroot(&args, env)
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Member {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u32,
    rdev: (u32, u32),
    data: Vec<u8>,
}

/// Decompresses (if zstd) and reads every member, in archive order.
fn read_archive(bytes: &[u8]) -> Vec<(String, Member)> {
    let raw = if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::decode_all(bytes).unwrap()
    } else {
        bytes.to_vec()
    };
    let mut rest: &[u8] = &raw;
    let mut out = Vec::new();
    loop {
        let mut r = cpio::NewcReader::new(rest).unwrap();
        if r.entry().is_trailer() {
            rest = r.finish().unwrap();
            break;
        }
        let e = r.entry();
        let name = e.name().to_string();
        let mut m = Member {
            mode: e.mode(),
            uid: e.uid(),
            gid: e.gid(),
            mtime: e.mtime(),
            rdev: (e.rdev_major(), e.rdev_minor()),
            data: Vec::new(),
        };
        r.read_to_end(&mut m.data).unwrap();
        out.push((name, m));
        rest = r.finish().unwrap();
    }
    assert!(
        rest.iter().all(|b| *b == 0),
        "only padding after the trailer"
    );
    out
}

fn archive_map(path: &Path) -> BTreeMap<String, Member> {
    read_archive(&fs::read(path).unwrap()).into_iter().collect()
}

#[test]
fn initramfs_contents() {
    let f = Fixture::new();
    let out = ok(&f.initramfs("initrd.img", &["--strip-signatures"]));
    assert!(
        out.contains("4 modules") && out.contains("bytes zstd"),
        "{out}"
    );
    let members = read_archive(&fs::read(f.path("initrd.img")).unwrap());
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    for (i, n) in names.iter().enumerate() {
        if let Some((parent, _)) = n.rsplit_once('/') {
            let p = names.iter().position(|x| *x == parent);
            assert!(
                p.is_some_and(|p| p < i),
                "{parent} must precede {n}: {names:?}"
            );
        }
    }
    let a: BTreeMap<_, _> = members.into_iter().collect();
    for d in [
        "dev", "proc", "sys", "run", "tmp", "newroot", "bin", "sbin", "etc", "lib",
    ] {
        assert_eq!(a[d].mode, 0o040755, "{d}");
    }
    assert_eq!(
        (a["dev/console"].mode, a["dev/console"].rdev),
        (0o020600, (5, 1))
    );
    assert_eq!((a["dev/null"].mode, a["dev/null"].rdev), (0o020666, (1, 3)));
    assert_eq!(a["init"].mode, 0o100755);
    assert_eq!(a["init"].data, b"\x7fELF pretend linuxrc");
    assert_eq!(a["etc/unionroot.conf"].mode, 0o100644);
    assert_eq!(a["usr/bin/tool"].mode, 0o100755, "exec bit kept");
    assert_eq!(a["usr"].mode, 0o040755, "parents of --add created");
    assert_eq!(a["etc/motd"].mode, 0o100644);
    assert!(a.values().all(|m| m.uid == 0 && m.gid == 0 && m.mtime == 0));

    let md = format!("lib/modules/{RELEASE}");
    let mut mods: Vec<&str> = a
        .keys()
        .filter(|k| k.ends_with(".ko"))
        .map(|k| k.as_str())
        .collect();
    mods.sort();
    let want: Vec<String> = [
        "kernel/fs/nfs/nfs.ko",
        "kernel/fs/nfs/nfsv3.ko",
        "kernel/fs/overlayfs/overlay.ko",
        "kernel/net/sunrpc/sunrpc.ko",
    ]
    .iter()
    .map(|p| format!("{md}/{p}"))
    .collect();
    assert_eq!(
        mods,
        want.iter().map(String::as_str).collect::<Vec<_>>(),
        "closure only, no e1000"
    );
    assert_eq!(
        a[&format!("{md}/kernel/fs/nfs/nfs.ko")].data,
        b"\x7fELF body of kernel/fs/nfs/nfs.ko"
    );
    assert_eq!(
        String::from_utf8_lossy(&a[&format!("{md}/modules.dep")].data),
        "kernel/fs/nfs/nfsv3.ko: kernel/fs/nfs/nfs.ko kernel/net/sunrpc/sunrpc.ko\n\
         kernel/fs/nfs/nfs.ko: kernel/net/sunrpc/sunrpc.ko\n\
         kernel/net/sunrpc/sunrpc.ko:\n\
         kernel/fs/overlayfs/overlay.ko:\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&a[&format!("{md}/modules.alias")].data),
        "alias fs-overlay overlay\nalias nfs3 nfsv3\n"
    );
    assert_eq!(
        a[&format!("{md}/modules.builtin")].data,
        b"kernel/fs/ext4/ext4.ko\n"
    );
    assert!(!a.contains_key(&format!("{md}/modules.dep.bin")));
}

#[test]
fn signatures_are_kept_unless_stripped() {
    let f = Fixture::new();
    ok(&f.initramfs("signed.img", &["--compress", "none"]));
    ok(&f.initramfs(
        "stripped.img",
        &["--compress", "none", "--strip-signatures"],
    ));
    let ko = format!("lib/modules/{RELEASE}/kernel/fs/overlayfs/overlay.ko");
    let signed = archive_map(&f.path("signed.img"));
    let stripped = archive_map(&f.path("stripped.img"));
    assert_eq!(
        signed[&ko].data,
        fs::read(f.path(&ko)).unwrap(),
        "copied as-is"
    );
    assert!(signed[&ko].data.ends_with(SIG_MAGIC));
    assert_eq!(
        stripped[&ko].data,
        b"\x7fELF body of kernel/fs/overlayfs/overlay.ko"
    );
    let plain = fs::read(f.path("signed.img")).unwrap();
    assert!(
        plain.starts_with(b"070701"),
        "--compress none is a bare cpio"
    );
    assert_eq!(plain.len() % 512, 0);
}

#[test]
fn output_is_reproducible() {
    let f = Fixture::new();
    ok(&f.initramfs("a.img", &[]));
    ok(&f.initramfs("b.img", &[]));
    assert_eq!(
        fs::read(f.path("a.img")).unwrap(),
        fs::read(f.path("b.img")).unwrap()
    );
    // SOURCE_DATE_EPOCH sets every mtime, and only the mtimes differ.
    ok(&f.initramfs_env("c.img", &[], &[("SOURCE_DATE_EPOCH", "1700000000")]));
    let (a, c) = (archive_map(&f.path("a.img")), archive_map(&f.path("c.img")));
    assert!(c.values().all(|m| m.mtime == 1_700_000_000));
    assert_eq!(a.len(), c.len());
    for (k, m) in &a {
        assert_eq!(
            Member {
                mtime: 1_700_000_000,
                data: m.data.clone(),
                ..*m
            },
            c[k],
            "{k}"
        );
    }
    let bad = f.initramfs_env("d.img", &[], &[("SOURCE_DATE_EPOCH", "soon")]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("SOURCE_DATE_EPOCH"),
        "{}",
        stderr(&bad)
    );
    assert!(!f.path("d.img").exists());
}

#[test]
fn overwrite_rules_unchanged_refuse_force() {
    let f = Fixture::new();
    ok(&f.initramfs("initrd.img", &[]));
    let first = fs::read(f.path("initrd.img")).unwrap();
    let ino = fs::metadata(f.path("initrd.img")).unwrap().ino();
    let again = ok(&f.initramfs("initrd.img", &[]));
    assert!(again.contains("unchanged"), "{again}");
    assert_eq!(
        fs::metadata(f.path("initrd.img")).unwrap().ino(),
        ino,
        "file not rewritten"
    );

    let o = f.initramfs("initrd.img", &["--compress", "none"]);
    assert_eq!(o.status.code(), Some(4), "refused");
    let e = stderr(&o);
    assert!(
        e.contains(&f.s("initrd.img"))
            && e.contains("--force")
            && e.contains("binary contents differ"),
        "{e}"
    );
    assert_eq!(
        fs::read(f.path("initrd.img")).unwrap(),
        first,
        "refusal leaves it intact"
    );

    ok(&f.initramfs("initrd.img", &["--compress", "none", "--force"]));
    assert!(fs::read(f.path("initrd.img"))
        .unwrap()
        .starts_with(b"070701"));
    let left: Vec<_> = fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn dry_run_prints_plan_and_writes_nothing() {
    let f = Fixture::new();
    let out = ok(&f.initramfs("initrd.img", &["--dry-run"]));
    assert!(!f.path("initrd.img").exists());
    assert!(out.contains("crw-------        5,1 /dev/console"), "{out}");
    assert!(out.contains("-rwxr-xr-x         20 /init"), "{out}");
    assert!(
        out.contains(&format!("/lib/modules/{RELEASE}/kernel/fs/nfs/nfsv3.ko")),
        "{out}"
    );
    assert!(out.contains("dry run: would write"), "{out}");
}

#[test]
fn unknown_module_names_module_and_dir() {
    let f = Fixture::new();
    let o = f.initramfs("initrd.img", &["--module", "virtio_net"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("\"virtio_net\"") && e.contains(&format!("lib/modules/{RELEASE}")),
        "{e}"
    );
    assert!(!f.path("initrd.img").exists());
    // A built-in module needs no file and is not an error.
    let out = ok(&f.initramfs("initrd.img", &["--module", "ext4", "--dry-run"]));
    assert!(out.contains("built in: ext4"), "{out}");
}

#[test]
fn input_errors_name_the_path_and_usage_errors_exit_2() {
    let f = Fixture::new();
    let o = unionroot(
        &[
            "initramfs",
            "--modules-dir",
            &f.s("nope"),
            "--init",
            &f.s("linuxrc"),
            "-o",
            &f.s("x"),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&f.s("nope")) && stderr(&o).contains("depmod"),
        "{}",
        stderr(&o)
    );

    let o = f.initramfs("x", &["--add", &format!("{}:/init", f.s("motd"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/init") && stderr(&o).contains("--init"),
        "{}",
        stderr(&o)
    );

    assert_eq!(unionroot(&["initramfs"], &[]).status.code(), Some(2));
    assert_eq!(unionroot(&["frobnicate"], &[]).status.code(), Some(2));
    assert_eq!(
        f.initramfs("x", &["--compress", "xz"]).status.code(),
        Some(2)
    );
    for sub in [
        &["--help"][..],
        &["initramfs", "--help"],
        &["setup-tree", "--help"],
    ] {
        let o = unionroot(sub, &[]);
        assert!(ok(&o).contains("Usage"), "{sub:?}");
    }
}

// ---- setup-tree ----

/// Every entry below `root`: kind, mode and contents or link target.
fn snapshot(root: &Path) -> BTreeMap<String, (String, u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (String, u32, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let mode = md.permissions().mode() & 0o7777;
            if md.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap();
                out.insert(
                    rel,
                    ("link".into(), 0, t.to_string_lossy().as_bytes().to_vec()),
                );
            } else if md.is_dir() {
                out.insert(rel, ("dir".into(), mode, Vec::new()));
                walk(root, &p, out);
            } else {
                out.insert(rel, ("file".into(), mode, fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn siblings(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn setup_tree_from_static_busybox() {
    let f = Fixture::new();
    fs::write(f.path("init.sh"), "#!/bin/sh\nexec /bin/sh\n").unwrap();
    let tree = f.path("setup");
    let args = [
        "setup-tree",
        "--busybox",
        "/bin/busybox",
        "--linuxrc",
        &f.s("linuxrc"),
        "--config",
        &f.s("unionroot.conf"),
        "--init-script",
        &f.s("init.sh"),
        "-o",
        &f.s("setup"),
    ];
    let out = ok(&unionroot(&args, &[]));
    assert!(
        out.contains("applet links") && out.contains("linuxrc"),
        "{out}"
    );
    let s = snapshot(&tree);
    assert_eq!(
        s["bin/busybox"],
        ("file".into(), 0o755, fs::read("/bin/busybox").unwrap())
    );
    assert_eq!(s["bin/sh"], ("link".into(), 0, b"busybox".to_vec()));
    assert_eq!(
        s["sbin/ifconfig"],
        ("link".into(), 0, b"../bin/busybox".to_vec())
    );
    assert_eq!(s["usr/bin/env"].2, b"../../bin/busybox");
    assert_eq!(
        s["sbin/init"],
        ("file".into(), 0o755, b"#!/bin/sh\nexec /bin/sh\n".to_vec())
    );
    assert_eq!(
        s["linuxrc"],
        ("file".into(), 0o755, b"\x7fELF pretend linuxrc".to_vec())
    );
    assert_eq!(
        s["etc/unionroot.conf"],
        ("file".into(), 0o644, b"server = 10.0.2.2\n".to_vec())
    );
    for d in [
        "dev",
        "proc",
        "sys",
        "mnt",
        "run",
        "etc",
        "home",
        "newroot",
        "lib/modules",
    ] {
        assert_eq!(s[d], ("dir".into(), 0o755, Vec::new()), "{d}");
    }
    assert_eq!(s["tmp"].1, 0o1777);
    assert_eq!(s["var/tmp"].1, 0o1777);
    assert_eq!(
        fs::metadata(&tree).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    // The links work: the tree's own busybox runs as the `true` applet through one.
    let t = Command::new(tree.join("bin/true")).status().unwrap();
    assert!(t.success());
    let links = s.values().filter(|v| v.0 == "link").count();
    let listed = Command::new("/bin/busybox")
        .arg("--list-full")
        .output()
        .unwrap()
        .stdout;
    let listed = String::from_utf8(listed).unwrap();
    let skipped = ["linuxrc", "sbin/init", "bin/busybox"];
    let want = listed.lines().filter(|l| !skipped.contains(l)).count();
    assert!(want > 200, "busybox-static lists its applets: {want}");
    assert_eq!(links, want, "every applet but {skipped:?}");

    // A second run with the same inputs changes nothing, not even the directory's inode.
    let ino = fs::metadata(&tree).unwrap().ino();
    let again = ok(&unionroot(&args, &[]));
    assert!(again.contains("unchanged"), "{again}");
    assert_eq!(fs::metadata(&tree).unwrap().ino(), ino);
    assert_eq!(snapshot(&tree), s);

    // Different inputs: refused without --force (exit 4), naming what would change, and the
    // tree is untouched.
    fs::write(f.path("other.conf"), "unionroot.debug\n").unwrap();
    let mut changed = args.to_vec();
    let other = f.s("other.conf");
    changed[6] = &other;
    let o = unionroot(&changed, &[]);
    assert_eq!(o.status.code(), Some(4));
    let e = stderr(&o);
    assert!(
        e.contains(&f.s("setup"))
            && e.contains("--force")
            && e.contains("~ /etc/unionroot.conf (contents: 18 -> 16 bytes)"),
        "{e}"
    );
    assert_eq!(snapshot(&tree), s);

    // --force rebuilds the tree and leaves nothing beside it.
    changed.push("--force");
    let out = ok(&unionroot(&changed, &[]));
    assert!(out.contains("replaced"), "{out}");
    let s2 = snapshot(&tree);
    assert_eq!(s2["etc/unionroot.conf"].2, b"unionroot.debug\n");
    assert_eq!(s2.len(), s.len());
    assert!(
        siblings(f.dir.path())
            .iter()
            .all(|n| !n.starts_with("setup.")),
        "{:?}",
        siblings(f.dir.path())
    );
}

#[test]
fn setup_tree_without_extras_links_init_and_dry_run_writes_nothing() {
    let f = Fixture::new();
    let o = ok(&unionroot(
        &[
            "setup-tree",
            "--busybox",
            "/bin/busybox",
            "-o",
            &f.s("t"),
            "--dry-run",
        ],
        &[],
    ));
    assert!(
        o.contains("lrwxrwxrwx         14 /sbin/init -> ../bin/busybox"),
        "{o}"
    );
    assert!(o.contains("drwxrwxrwt          0 /var/tmp"), "{o}");
    assert!(!f.path("t").exists());
    ok(&unionroot(
        &["setup-tree", "--busybox", "/bin/busybox", "-o", &f.s("t")],
        &[],
    ));
    let s = snapshot(&f.path("t"));
    assert_eq!(s["sbin/init"].2, b"../bin/busybox");
    assert!(
        !s.contains_key("linuxrc"),
        "busybox's linuxrc applet is never linked"
    );
}

#[test]
fn setup_tree_refuses_dynamic_busybox_and_leaves_nothing() {
    let f = Fixture::new();
    let o = unionroot(
        &["setup-tree", "--busybox", "/bin/ls", "-o", &f.s("t")],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("/bin/ls") && e.contains("ld-linux") && e.contains("busybox-static"),
        "{e}"
    );
    assert!(!f.path("t").exists());

    // A bad input found after busybox was checked leaves no tree and no temporary directory.
    let before = siblings(f.dir.path());
    let o = unionroot(
        &[
            "setup-tree",
            "--busybox",
            "/bin/busybox",
            "--config",
            &f.s("missing.conf"),
            "-o",
            &f.s("t"),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing.conf"), "{}", stderr(&o));
    assert_eq!(siblings(f.dir.path()), before);
}
