//! `unionroot image` for real: mmdebstrap builds a bookworm tree (or a cached one is used), a rebuild
//! reuses the cache, the diskless preparation and the modules are on disk, an identical
//! build is "unchanged", and changed inputs are refused without --force.
//!
//! Needs mmdebstrap, root and the network. Without mmdebstrap or root it says so and passes;
//! with them, any failure fails. mmdebstrap's result is kept in $UNIONROOT_CACHE (which `make`
//! sets, so the QEMU tests' Debian image shares it) or else target/tmp/image-cache, so only
//! the first run (or one after its inputs changed) pays for mmdebstrap: 1.5 to 2.5 minutes on a
//! busy 2-core machine. `UNIONROOT_TEST_COLD=1` starts from an empty cache.

mod common;

use common::{ok, run, stderr};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn have_mmdebstrap() -> bool {
    std::process::Command::new("mmdebstrap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn cluster_toml(dir: &Path, console: &str) -> String {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/fixtures");
    format!(
        r#"
[server]
address = "10.0.2.2"
network = "10.0.2.0"
netmask = "255.255.255.0"

[exports]
system = "/srv/system"

[paths]
setup_tree = "{d}/setup"
tftp_root = "{d}/tftp"
initramfs = "{d}/initrd.img"
image = "{d}/image"

[kernel]
image = "{fx}/vmlinuz"
modules_dir = "{fx}/modules/6.1.0-test"

[initramfs]
linuxrc = "{fx}/linuxrc"

[image]
files = "{d}/files"

[boot]
kernel_args = ["{console}"]
"#,
        d = dir.display(),
        fx = fx.display()
    )
}

#[test]
fn image_is_built_cached_prepared_and_guarded() {
    if !have_mmdebstrap() {
        eprintln!("skipped: mmdebstrap is not installed (apt-get install mmdebstrap)");
        return;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: unionroot image needs root");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let cache = if std::env::var_os("UNIONROOT_TEST_COLD").is_some() {
        dir.join("cache")
    } else {
        std::env::var_os("UNIONROOT_CACHE").map_or_else(
            || Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-cache"),
            std::path::PathBuf::from,
        )
    };
    let complete = |c: &Path| -> usize {
        fs::read_dir(c.join("images")).map_or(0, |rd| {
            rd.filter(|e| e.as_ref().unwrap().path().join(".complete").is_file())
                .count()
        })
    };
    let before = complete(&cache);
    let env = [("UNIONROOT_CACHE", cache.to_str().unwrap())];
    fs::create_dir_all(dir.join("files/etc/ssh")).unwrap();
    fs::write(dir.join("files/etc/motd"), "unionroot test node\n").unwrap();
    let cfg = dir.join("cluster.toml");
    fs::write(&cfg, cluster_toml(dir, "console=ttyS0,115200")).unwrap();
    let c = cfg.to_str().unwrap();

    // mmdebstrap runs unless an earlier run cached the same inputs.
    let o = run(&["image", "-c", c], &env);
    let out = ok(&o);
    let ran = stderr(&o).contains("unionroot: mmdebstrap --mode=root");
    assert_eq!(ran, !out.contains("mmdebstrap: cached"), "{out}");
    assert!(out.contains("package list:"), "{out}");
    let img = dir.join("image");
    let entries: Vec<_> = fs::read_dir(cache.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        entries.iter().all(|e| e.join(".complete").is_file()),
        "complete entries only, no temporary leftovers: {entries:?}"
    );
    assert_eq!(complete(&cache), before + usize::from(ran));
    assert!(entries.iter().any(|e| fs::read_to_string(e.join("inputs"))
        .is_ok_and(|t| t.contains("suite=bookworm\nvariant=minbase\n"))));

    // The package list is dpkg-query -W's view of the image.
    let list = fs::read_to_string(img.join("usr/share/unionroot/packages.lock")).unwrap();
    // Multi-Arch: same packages carry their architecture (libnss-myhostname:amd64).
    let names: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split(['\t', ':']).next())
        .collect();
    for p in [
        "systemd-sysv",
        "udev",
        "nfs-common",
        "libnss-myhostname",
        "dbus",
    ] {
        assert!(names.contains(&p), "{p} missing from {names:?}");
    }
    let q = std::process::Command::new("dpkg-query")
        .arg(format!("--admindir={}/var/lib/dpkg", img.display()))
        .args(["-W", "-f", "${binary:Package}\t${Version}\n"])
        .output()
        .unwrap();
    let mut want: Vec<&str> = std::str::from_utf8(&q.stdout).unwrap().lines().collect();
    want.sort();
    assert_eq!(list.lines().collect::<Vec<_>>(), want);

    // Diskless preparation, modules, the overlay.
    assert_eq!(fs::metadata(img.join("etc/machine-id")).unwrap().len(), 0);
    assert!(fs::symlink_metadata(img.join("etc/hostname")).is_err());
    assert!(fs::read_to_string(img.join("etc/fstab"))
        .unwrap()
        .contains("No local disks"));
    let link = |p: &str| fs::read_link(img.join(p)).unwrap();
    assert_eq!(
        link("etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"),
        Path::new("/lib/systemd/system/serial-getty@.service")
    );
    assert_eq!(
        link("etc/systemd/system/multi-user.target.wants/systemd-networkd.service"),
        Path::new("/lib/systemd/system/systemd-networkd.service")
    );
    assert_eq!(
        link("etc/systemd/system/networking.service"),
        Path::new("/dev/null")
    );
    assert!(img.join("usr/lib/modules/6.1.0-test/modules.dep").is_file());
    assert!(img
        .join("usr/lib/modules/6.1.0-test/modules.dep.bin")
        .is_file());
    assert_eq!(
        fs::read_to_string(img.join("etc/motd")).unwrap(),
        "unionroot test node\n"
    );
    // Owned by root, setuid bits intact: what an NFS export of / needs.
    let su = fs::metadata(img.join("usr/bin/su")).unwrap();
    assert_eq!((su.uid(), su.mode() & 0o4000), (0, 0o4000));
    assert_eq!(fs::metadata(img.join("etc/motd")).unwrap().uid(), 0);

    // Same inputs: unchanged. Other inputs: refused (exit 4) and said why, then --force.
    let out = ok(&run(&["image", "-c", c], &env));
    assert!(out.contains("unchanged"), "{out}");
    fs::write(&cfg, cluster_toml(dir, "console=ttyS1")).unwrap();
    let o = run(&["image", "-c", c], &env);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--force") && stderr(&o).contains("prep="),
        "{}",
        stderr(&o)
    );
    assert!(img
        .join("etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service")
        .is_symlink());
    // The rebuild copies the cached tree again: mmdebstrap does not run.
    let o = run(&["image", "-c", c, "--force"], &env);
    let out = ok(&o);
    assert!(
        out.contains("replaced") && out.contains("mmdebstrap: cached"),
        "{out}"
    );
    assert!(
        !stderr(&o).contains("unionroot: mmdebstrap --"),
        "{}",
        stderr(&o)
    );
    assert!(img
        .join("etc/systemd/system/getty.target.wants/serial-getty@ttyS1.service")
        .is_symlink());
    assert!(!img
        .join("etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service")
        .exists());
    // A directory that is not an image is never replaced, not even with --force.
    fs::create_dir_all(dir.join("other/etc")).unwrap();
    let o = run(
        &[
            "image",
            "-c",
            c,
            "--force",
            "-o",
            dir.join("other").to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("did not build"), "{}", stderr(&o));
    assert!(dir.join("other/etc").is_dir());
    let leftovers: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-") || n.contains(".old-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
