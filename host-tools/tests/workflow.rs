//! The whole server side from one cluster.toml, through the binary as an admin runs it: every
//! subcommand writes its output, a second run changes nothing, a changed description is refused
//! without --force (exit 4, saying what would change), an invalid one writes nothing (exit 3).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PXELINUX: &str = "/usr/lib/PXELINUX/pxelinux.0";
const LDLINUX: &str = "/usr/lib/syslinux/modules/bios/ldlinux.c32";

/// Whether the syslinux files are installed; prints why the test is skipped if not.
mod common;
use common::{ok, stderr as err, stdout as out};

fn unionroot(args: &[&str]) -> Output {
    common::run(args, &[])
}

fn have_syslinux() -> bool {
    let ok = Path::new(PXELINUX).exists() && Path::new(LDLINUX).exists();
    if !ok {
        println!(
            "SKIPPED: pxelinux/syslinux-common not installed (scripts/setup-host.sh installs them)"
        );
    }
    ok
}

struct Site {
    dir: tempfile::TempDir,
}

const MODULES: [(&str, &str); 5] = [
    ("kernel/drivers/net/ethernet/intel/e1000/e1000.ko", ""),
    (
        "kernel/fs/nfs/nfsv3.ko",
        "kernel/fs/nfs/nfs.ko kernel/net/sunrpc/sunrpc.ko",
    ),
    ("kernel/fs/nfs/nfs.ko", "kernel/net/sunrpc/sunrpc.ko"),
    ("kernel/net/sunrpc/sunrpc.ko", ""),
    ("kernel/fs/overlayfs/overlay.ko", ""),
];

impl Site {
    /// A kernel, its modules, a linuxrc and a cluster.toml naming them, all relative.
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("vmlinuz"), b"MZ pretend kernel image").unwrap();
        fs::write(d.join("linuxrc"), b"\x7fELF pretend linuxrc").unwrap();
        let m = d.join("modules/6.1.0-t");
        let mut dep = String::new();
        for (p, deps) in MODULES {
            fs::create_dir_all(m.join(p).parent().unwrap()).unwrap();
            fs::write(m.join(p), format!("module {p}")).unwrap();
            dep += &format!("{p}:{}{deps}\n", if deps.is_empty() { "" } else { " " });
        }
        fs::write(m.join("modules.dep"), dep).unwrap();
        fs::create_dir(d.join("srv")).unwrap();
        let s = Site { dir };
        s.write_cluster("2g");
        s
    }

    fn write_cluster(&self, size: &str) {
        let d = self.dir.path().display();
        fs::write(
            self.path("cluster.toml"),
            format!(
                r#"[server]
address = "10.0.2.2"
network = "10.0.2.0"
netmask = "255.255.255.0"
router = "10.0.2.2"

[exports]
system = "{d}/srv/system"

[[exports.mounts]]
path = "/srv/home"
mount_point = "/home"

[paths]
setup_tree = "srv/system"
tftp_root = "srv/tftp"
initramfs = "srv/initrd.img"

[kernel]
image = "vmlinuz"
modules_dir = "modules/6.1.0-t"
nic_modules = ["e1000"]

[initramfs]
linuxrc = "linuxrc"

[boot]
kernel_args = ["console=ttyS0"]

[[nodes]]
name = "lf1"
mac = "52:54:00:12:34:01"
ip = "10.0.2.15"
boot = {{ size = "{size}" }}

[[nodes]]
name = "lf2"
mac = "52:54:00:12:34:02"
ip = "10.0.2.16"
"#
            ),
        )
        .unwrap();
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn s(&self, p: &str) -> String {
        self.path(p).to_str().unwrap().to_string()
    }

    /// Every command that writes, with its output inside the site.
    fn commands(&self) -> Vec<Vec<String>> {
        let c = self.s("cluster.toml");
        let o = |p: &str| self.s(p);
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        vec![
            v(&["setup-tree", "-c", &c]),
            v(&["initramfs", "-c", &c]),
            v(&["pxe", "-c", &c]),
            v(&["conf", "-c", &c, "-o", &o("unionroot.conf")]),
            v(&["dhcp", "-c", &c, "-o", &o("dhcpd.conf")]),
            v(&[
                "dhcp",
                "-c",
                &c,
                "--format",
                "dnsmasq",
                "-o",
                &o("dnsmasq.conf"),
            ]),
            v(&["exports", "-c", &c, "-o", &o("exports")]),
            v(&[
                "exports",
                "-c",
                &c,
                "--format",
                "ganesha",
                "-o",
                &o("ganesha.conf"),
            ]),
            v(&["tftp", "-c", &c, "-o", &o("inetd.conf")]),
            v(&[
                "tftp",
                "-c",
                &c,
                "--format",
                "dnsmasq",
                "-o",
                &o("tftp.conf"),
            ]),
        ]
    }

    fn run(&self, args: &[String]) -> Output {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        unionroot(&a)
    }
}

/// Path → (inode, mode, contents or link target) of everything below `root`.
fn snapshot(root: &Path) -> BTreeMap<String, (u64, u32, Vec<u8>)> {
    let mut m = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let data = if md.file_type().is_symlink() {
                fs::read_link(&p)
                    .unwrap()
                    .to_string_lossy()
                    .as_bytes()
                    .to_vec()
            } else if md.is_dir() {
                stack.push(p.clone());
                Vec::new()
            } else {
                fs::read(&p).unwrap()
            };
            m.insert(rel, (md.ino(), md.mode(), data));
        }
    }
    m
}

#[test]
fn every_output_then_a_second_run_changes_nothing() {
    if !have_syslinux() {
        return;
    }
    let site = Site::new();
    for cmd in site.commands() {
        let o = ok(&site.run(&cmd));
        assert!(!o.contains("unchanged"), "{cmd:?}: {o}");
    }
    let before = snapshot(site.dir.path());
    for cmd in site.commands() {
        let o = ok(&site.run(&cmd));
        assert!(o.contains("unchanged"), "second run of {cmd:?}: {o}");
    }
    assert_eq!(
        snapshot(site.dir.path()),
        before,
        "nothing rewritten, not even in place"
    );

    // What the pieces hold.
    let conf = fs::read_to_string(site.path("unionroot.conf")).unwrap();
    let lower = format!(
        "unionroot.lower=10.0.2.2:{}/srv/system\n",
        site.dir.path().display()
    );
    assert!(conf.contains(&lower), "{conf}");
    assert!(
        conf.contains("unionroot.mount=/home=10.0.2.2:/srv/home\n"),
        "{conf}"
    );
    assert_eq!(
        fs::read_to_string(site.path("srv/system/etc/unionroot.conf")).unwrap(),
        conf,
        "the setup tree carries the generated config"
    );
    assert_eq!(
        fs::read(site.path("srv/system/linuxrc")).unwrap(),
        b"\x7fELF pretend linuxrc"
    );
    let tftp = site.path("srv/tftp");
    assert_eq!(
        fs::read(tftp.join("pxelinux.0")).unwrap(),
        fs::read(PXELINUX).unwrap()
    );
    assert_eq!(
        fs::read(tftp.join("ldlinux.c32")).unwrap(),
        fs::read(LDLINUX).unwrap()
    );
    assert_eq!(
        fs::read(tftp.join("vmlinuz")).unwrap(),
        b"MZ pretend kernel image"
    );
    assert_eq!(
        fs::read(tftp.join("initrd.img")).unwrap(),
        fs::read(site.path("srv/initrd.img")).unwrap()
    );
    let mut cfgs: Vec<String> = fs::read_dir(tftp.join("pxelinux.cfg"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cfgs.sort();
    assert_eq!(
        cfgs,
        ["01-52-54-00-12-34-01", "01-52-54-00-12-34-02", "default"]
    );
    let lf1 = fs::read_to_string(tftp.join("pxelinux.cfg/01-52-54-00-12-34-01")).unwrap();
    let append = ok(&unionroot(&[
        "append",
        "-c",
        &site.s("cluster.toml"),
        "lf1",
    ]));
    assert_eq!(append, "console=ttyS0 ip=::::lf1::dhcp unionroot.size=2g\n");
    assert!(lf1.contains(&format!("    APPEND {append}")), "{lf1}");
    assert!(
        lf1.contains("    INITRD initrd.img\n    APPEND") && lf1.contains("IPAPPEND 2\n"),
        "{lf1}"
    );
    let ipxe = fs::read_to_string(tftp.join("boot.ipxe")).unwrap();
    assert!(ipxe.starts_with("#!ipxe\n"), "{ipxe}");
    assert!(
        ipxe.contains("iseq ${netX/mac} 52:54:00:12:34:02 && goto node-lf2"),
        "{ipxe}"
    );
}

#[test]
fn the_initramfs_from_the_cluster_carries_config_and_module_closure() {
    let site = Site::new();
    ok(&unionroot(&[
        "initramfs",
        "-c",
        &site.s("cluster.toml"),
        "--compress",
        "none",
        "--dry-run",
    ]));
    assert!(
        !site.path("srv/initrd.img").exists(),
        "dry run writes nothing"
    );
    let o = ok(&unionroot(&[
        "initramfs",
        "-c",
        &site.s("cluster.toml"),
        "--compress",
        "none",
        "-o",
        &site.s("plain.img"),
    ]));
    assert!(o.contains("5 modules for 6.1.0-t"), "{o}");
    let raw = fs::read(site.path("plain.img")).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let conf = ok(&unionroot(&["conf", "-c", &site.s("cluster.toml")]));
    assert!(
        text.contains(&conf),
        "the archive holds the generated config"
    );
    for (p, _) in MODULES {
        assert!(text.contains(&format!("module {p}")), "{p}");
    }
    // Flags still win: a --module that the cluster lacks is an error naming it.
    let o = unionroot(&[
        "initramfs",
        "-c",
        &site.s("cluster.toml"),
        "--module",
        "nope",
        "-o",
        &site.s("x.img"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("\"nope\""), "{}", err(&o));
}

#[test]
fn a_changed_description_is_refused_listed_and_forced() {
    if !have_syslinux() {
        return;
    }
    let site = Site::new();
    for cmd in site.commands() {
        ok(&site.run(&cmd));
    }
    let before = snapshot(site.dir.path());
    site.write_cluster("4g");
    let c = site.s("cluster.toml");

    let o = unionroot(&["pxe", "-c", &c]);
    assert_eq!(o.status.code(), Some(4), "{}", err(&o));
    assert!(
        err(&o).contains("~ /boot.ipxe")
            && err(&o).contains("~ /pxelinux.cfg/01-52-54-00-12-34-01"),
        "{}",
        err(&o)
    );
    let o = ok(&unionroot(&["pxe", "-c", &c, "--dry-run"]));
    assert!(
        o.contains("would replace") && o.contains("~ /pxelinux.cfg/01-52-54-00-12-34-01"),
        "{o}"
    );
    let mut after = snapshot(site.dir.path());
    after.remove("cluster.toml");
    let mut b = before.clone();
    b.remove("cluster.toml");
    assert_eq!(after, b, "refusals and dry runs write nothing");

    ok(&unionroot(&["pxe", "-c", &c, "--force"]));
    let lf1 = fs::read_to_string(site.path("srv/tftp/pxelinux.cfg/01-52-54-00-12-34-01")).unwrap();
    assert!(lf1.contains("unionroot.size=4g"), "{lf1}");

    // Text outputs: the refusal shows the diff. Same DHCP config, though: sizes are not in it.
    ok(&unionroot(&["dhcp", "-c", &c, "-o", &site.s("dhcpd.conf")]));
    fs::write(site.path("dhcpd.conf"), "# edited by hand\n").unwrap();
    let o = unionroot(&["dhcp", "-c", &c, "-o", &site.s("dhcpd.conf")]);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        err(&o).contains("-# edited by hand") && err(&o).contains("+host lf1 {"),
        "{}",
        err(&o)
    );
    let o = ok(&unionroot(&[
        "dhcp",
        "-c",
        &c,
        "-o",
        &site.s("dhcpd.conf"),
        "--dry-run",
    ]));
    assert!(
        o.contains("would replace") && o.contains("(needs --force)"),
        "{o}"
    );
    assert_eq!(
        fs::read_to_string(site.path("dhcpd.conf")).unwrap(),
        "# edited by hand\n"
    );
    ok(&unionroot(&[
        "dhcp",
        "-c",
        &c,
        "-o",
        &site.s("dhcpd.conf"),
        "--force",
    ]));
    assert!(fs::read_to_string(site.path("dhcpd.conf"))
        .unwrap()
        .contains("host lf2"));
}

#[test]
fn pxe_for_one_node() {
    if !have_syslinux() {
        return;
    }
    let site = Site::new();
    let c = site.s("cluster.toml");
    ok(&unionroot(&["initramfs", "-c", &c]));
    let o = ok(&unionroot(&[
        "pxe",
        "-c",
        &c,
        "--node",
        "lf2",
        "-o",
        &site.s("one"),
    ]));
    assert!(o.contains("1 node entries"), "{o}");
    assert!(site.path("one/pxelinux.cfg/01-52-54-00-12-34-02").exists());
    assert!(!site.path("one/pxelinux.cfg/01-52-54-00-12-34-01").exists());
    let o = unionroot(&["pxe", "-c", &c, "--node", "lf9", "-o", &site.s("two")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("no node \"lf9\"") && err(&o).contains("lf1, lf2"),
        "{}",
        err(&o)
    );
    // Without the initramfs, pxe says how to make it.
    fs::remove_file(site.path("srv/initrd.img")).unwrap();
    let o = unionroot(&["pxe", "-c", &c, "-o", &site.s("three")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("unionroot initramfs --cluster"),
        "{}",
        err(&o)
    );
    assert!(!site.path("three").exists());
}

#[test]
fn an_invalid_description_exits_3_and_writes_nothing() {
    let site = Site::new();
    let text = fs::read_to_string(site.path("cluster.toml")).unwrap();
    fs::write(
        site.path("cluster.toml"),
        text.replace("52:54:00:12:34:02", "52:54:00:12:34:01"),
    )
    .unwrap();
    let before = snapshot(site.dir.path());
    let mut cmds = site.commands();
    cmds.push(vec!["check".into(), "-c".into(), site.s("cluster.toml")]);
    for cmd in cmds {
        let o = site.run(&cmd);
        assert_eq!(o.status.code(), Some(3), "{cmd:?}: {}", err(&o));
        assert!(
            err(&o)
                .contains("nodes[1].mac: 52:54:00:12:34:01 is already the MAC of nodes[0] (lf1)"),
            "{}",
            err(&o)
        );
    }
    assert_eq!(snapshot(site.dir.path()), before);
    let o = unionroot(&["check", "-c", &site.s("missing.toml")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("missing.toml"), "{}", err(&o));
}

#[test]
fn strict_exports_refuse_risky_ones() {
    let site = Site::new();
    let text = fs::read_to_string(site.path("cluster.toml")).unwrap();
    fs::write(
        site.path("cluster.toml"),
        text.replace(
            "mount_point = \"/home\"",
            "mount_point = \"/home\"\nroot_squash = false",
        ),
    )
    .unwrap();
    let c = site.s("cluster.toml");
    let o = ok(&unionroot(&["exports", "-c", &c]));
    assert!(
        o.contains("# WARNING: /srv/home is read-write with no_root_squash"),
        "{o}"
    );
    let o = unionroot(&["exports", "-c", &c]);
    assert!(
        err(&o).contains("warning:") && err(&o).contains("no_root_squash"),
        "{}",
        err(&o)
    );
    let o = unionroot(&["exports", "-c", &c, "--strict"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(err(&o).contains("--strict"), "{}", err(&o));
}

#[test]
fn help_everywhere_and_man_pages() {
    let subs = [
        "initramfs",
        "image",
        "setup-tree",
        "check",
        "conf",
        "append",
        "pxe",
        "dhcp",
        "exports",
        "tftp",
        "kernel-check",
        "backup",
        "image-pack",
        "image-switch",
        "image-gc",
        "image-sync",
        "man",
    ];
    assert!(ok(&unionroot(&["--help"])).contains("Exit status"));
    for s in subs {
        let o = ok(&unionroot(&[s, "--help"]));
        assert!(o.contains("Usage: unionroot"), "{s}: {o}");
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("man1");
    let o = ok(&unionroot(&[
        "man",
        "--out",
        dir.to_str().unwrap(),
        "--dry-run",
    ]));
    assert!(
        o.contains("would create") && o.contains("unionroot-pxe.1"),
        "{o}"
    );
    assert!(!dir.exists(), "a dry run writes nothing");
    let o = ok(&unionroot(&["man", "--out", dir.to_str().unwrap()]));
    assert!(o.contains(&format!("{} man pages", subs.len() + 1)), "{o}");
    let top = fs::read_to_string(dir.join("unionroot.1")).unwrap();
    assert!(
        top.starts_with(".ie") || top.contains(".TH unionroot 1"),
        "{top}"
    );
    for s in subs {
        let page = fs::read_to_string(dir.join(format!("unionroot-{s}.1"))).unwrap();
        assert!(page.contains(&format!(".TH unionroot-{s} 1")), "{s}");
    }
    assert!(fs::read_to_string(dir.join("unionroot-pxe.1"))
        .unwrap()
        .contains("IPAPPEND"));
    let o = ok(&unionroot(&["man", "--out", dir.to_str().unwrap()]));
    assert!(o.contains("(0 written"), "{o}");
    // man(1) can render a page, when it is installed.
    if Path::new("/usr/bin/man").exists() {
        let r = Command::new("man")
            .arg("-l")
            .arg(dir.join("unionroot-backup.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert!(String::from_utf8_lossy(&r.stdout).contains("--block-size"));
    }
}

#[test]
fn kernel_check_modes_and_exit_codes() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/fixtures/debian-6.1.0-56-amd64.config");
    let mut configs = vec![fixture];
    // The real Debian config from the kernel cache (qemu/fetch-kernel.sh), when there is one.
    let cache = std::env::var_os("UNIONROOT_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/unionroot")))
        .map(|c| c.join("kernel"));
    let real: Vec<PathBuf> = cache
        .and_then(|k| fs::read_dir(k).ok())
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path().join("config"))
        .filter(|p| p.exists())
        .collect();
    if real.is_empty() {
        println!("SKIPPED (real config): no kernel in the cache yet (make kernel fetches it)");
    }
    configs.extend(real);
    for cfg in configs {
        let cfg = cfg.to_str().unwrap();
        let o = ok(&unionroot(&[
            "kernel-check",
            "--config",
            cfg,
            "--mode",
            "initramfs",
        ]));
        assert!(o.contains("initramfs mode") && o.contains(": OK"), "{o}");
        let o = unionroot(&["kernel-check", "--config", cfg, "--mode", "nfsroot"]);
        assert_eq!(o.status.code(), Some(5), "{cfg}");
        let s = out(&o);
        for missing in [
            "CONFIG_IP_PNP unset",
            "CONFIG_ROOT_NFS unset",
            "CONFIG_NFS_FS=m",
        ] {
            assert!(s.contains(missing), "{cfg}: {s}");
        }
        let o = unionroot(&["kernel-check", "--config", cfg]);
        assert_eq!(o.status.code(), Some(5));
        assert!(out(&o).contains("initramfs mode") && out(&o).contains("nfsroot mode"));
    }
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("not-a-config");
    fs::write(&p, "hello\n").unwrap();
    let o = unionroot(&["kernel-check", "--config", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no CONFIG_ lines"), "{}", err(&o));
}

/// A cluster booting from an image: `initramfs -c` ships loop and the image's filesystem with
/// its dependencies and its softdeps (erofs -> libcrc32c -> softdep crc32c, an alias), and the
/// filtered modules.softdep that tells linuxrc to load crc32c first.
#[test]
fn an_image_cluster_gets_loop_and_erofs_with_its_softdeps() {
    let site = Site::new();
    let m = site.path("modules/6.1.0-t");
    let extra = [
        ("kernel/drivers/block/loop.ko", ""),
        ("kernel/fs/erofs/erofs.ko", "kernel/lib/libcrc32c.ko"),
        ("kernel/lib/libcrc32c.ko", ""),
        ("kernel/crypto/crc32c_generic.ko", ""),
        ("kernel/arch/x86/crypto/crc32c-intel.ko", ""),
    ];
    let mut dep = fs::read_to_string(m.join("modules.dep")).unwrap();
    for (p, deps) in extra {
        fs::create_dir_all(m.join(p).parent().unwrap()).unwrap();
        fs::write(m.join(p), format!("module {p}")).unwrap();
        dep += &format!("{p}:{}{deps}\n", if deps.is_empty() { "" } else { " " });
    }
    fs::write(m.join("modules.dep"), dep).unwrap();
    fs::write(
        m.join("modules.alias"),
        "alias crc32c crc32c_intel\nalias crc32c crc32c_generic\nalias fs-erofs erofs\n",
    )
    .unwrap();
    fs::write(
        m.join("modules.softdep"),
        "softdep ext4 pre: crypto-crc32c\nsoftdep libcrc32c pre: crc32c\n",
    )
    .unwrap();
    let toml = fs::read_to_string(site.path("cluster.toml")).unwrap();
    let toml = toml
        .replacen(
            "\n[[exports.mounts]]",
            "images = \"/srv/images\"\n\n[[exports.mounts]]",
            1,
        )
        .replacen("\n[paths]", "\n[images]\nname = \"node\"\n\n[paths]", 1)
        .replacen("[initramfs]\n", "[initramfs]\ncompress = \"none\"\n", 1);
    fs::write(site.path("cluster.toml"), toml).unwrap();
    let c = site.s("cluster.toml");
    ok(&unionroot(&["initramfs", "-c", &c]));
    let cpio = fs::read(site.path("srv/initrd.img")).unwrap();
    let has = |s: &str| cpio.windows(s.len()).any(|w| w == s.as_bytes());
    for p in [
        "kernel/drivers/block/loop.ko",
        "kernel/fs/erofs/erofs.ko",
        "kernel/lib/libcrc32c.ko",
        "kernel/crypto/crc32c_generic.ko",
        "softdep libcrc32c pre: crc32c",
        "modules.softdep",
    ] {
        assert!(has(p), "{p} is not in the initramfs");
    }
    assert!(!has("crc32c-intel.ko"), "only the generic crc32c is needed");
    assert!(!has("squashfs"), "the default format is erofs");
}
