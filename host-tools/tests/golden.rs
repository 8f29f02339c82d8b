//! Every generator against golden files under `tests/golden/<case>/`, for each
//! `tests/golden/<case>.toml`; and the CLI's output against the same files, so the subcommands
//! are wired to the generators the goldens pin down.
//!
//! Regenerate after an intended change with `UNIONROOT_BLESS=1 cargo test -p unionroot --test
//! golden`, then review the diff. Without it, a golden file that is missing, differs, or is
//! no longer generated fails the test.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use unionroot::cluster::{self, Arch, Cluster};
use unionroot::{bootargs, dhcp, exports, kconfig, pxe, tftp};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn bless() -> bool {
    std::env::var_os("UNIONROOT_BLESS").is_some_and(|v| v == "1")
}

fn load(case: &str) -> Cluster {
    let path = golden_dir().join(format!("{case}.toml"));
    let text = fs::read_to_string(&path).unwrap();
    cluster::parse(
        &text,
        &format!("{case}.toml"),
        &golden_dir(),
        &cluster::probe_fs,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Every generated text of a case, by golden file name.
fn outputs(c: &Cluster) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), v);
    };
    put("unionroot.conf", bootargs::config_file(c));
    put("dhcpd.conf", dhcp::isc(c));
    put("dnsmasq-dhcp.conf", dhcp::dnsmasq(c));
    // knfsd serves no CephFS export (the CLI refuses it).
    if exports::refuse_knfsd_ceph(c).is_ok() {
        put("exports", exports::knfsd(c));
    }
    if c.heads.is_empty() {
        put("ganesha.conf", exports::ganesha(c, None));
    }
    for h in &c.heads {
        put(
            &format!("ganesha-{}.conf", h.name),
            exports::ganesha(c, Some(h)),
        );
    }
    put("inetd.conf", tftp::inetd(c));
    put("dnsmasq-tftp.conf", tftp::dnsmasq(c));
    put("pxelinux.cfg/default", pxe::pxelinux_default(c));
    // The PXE loaders serve the amd64 nodes, GRUB the arm64 ones (as `unionroot pxe` does).
    let nodes: Vec<_> = c.nodes.iter().filter(|n| n.arch == Arch::Amd64).collect();
    for n in &nodes {
        put(
            &format!("pxelinux.cfg/{}", n.mac.bootif()),
            pxe::pxelinux_node(c, n),
        );
    }
    put("boot.ipxe", pxe::ipxe_script(c, &nodes));
    if let Some(arm) = c.for_arch(Arch::Arm64) {
        put("arm64/unionroot.conf", bootargs::config_file(&arm));
        put("grub/grub.cfg", pxe::grub_dispatch());
        put("grub/nodes/default.cfg", pxe::grub_default(&arm));
        for n in &arm.nodes {
            put(
                &format!("grub/nodes/{}.cfg", n.mac),
                pxe::grub_node(&arm, n),
            );
        }
    }
    let appends: String = c
        .nodes
        .iter()
        .map(|n| format!("{}: {}\n", n.name, bootargs::node_append(c, n)))
        .collect();
    put("append.txt", appends);
    m
}

fn files_below(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                for f in files_below(&p) {
                    v.push(format!("{}/{f}", p.file_name().unwrap().to_string_lossy()));
                }
            } else {
                v.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    v.sort();
    v
}

/// Compares `got` with the files in `dir` (or writes them when blessing).
fn check_against(dir: &Path, got: &BTreeMap<String, String>) {
    if bless() {
        let _ = fs::remove_dir_all(dir);
        for (name, text) in got {
            let p = dir.join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, text).unwrap();
        }
        eprintln!("blessed {}", dir.display());
        return;
    }
    let have = files_below(dir);
    let want: Vec<String> = got.keys().cloned().collect();
    assert_eq!(
        have,
        want,
        "golden files in {} vs generated outputs (UNIONROOT_BLESS=1 regenerates)",
        dir.display()
    );
    for (name, text) in got {
        let golden = fs::read_to_string(dir.join(name)).unwrap();
        assert!(
            golden == *text,
            "{}/{name} differs from the generated text (UNIONROOT_BLESS=1 regenerates):\n{}",
            dir.display(),
            unionroot::diff::line_diff(&golden, text).join("\n")
        );
    }
}

#[test]
fn generators_match_golden_files() {
    for case in ["basic", "nfsroot", "mixed", "heads"] {
        let c = load(case);
        check_against(&golden_dir().join(case), &outputs(&c));
    }
}

/// linuxrc's own parser reads each golden `unionroot.conf` back to what the host tool meant
/// (the image spec with the cluster's NFS options included).
#[test]
fn linuxrc_reads_the_golden_config_files_back() {
    for case in ["basic", "nfsroot", "heads"] {
        let c = load(case);
        let back = unionroot_core::cmdline::Config::parse(bootargs::config_file(&c), "").unwrap();
        assert_eq!(back.image, bootargs::file_config(&c).image, "{case}");
        assert_eq!(back.lowers, bootargs::file_config(&c).lowers, "{case}");
        assert_eq!(back.mounts, bootargs::file_config(&c).mounts, "{case}");
    }
    // Several heads are equivalent (`+`), one server list a failover order.
    let heads = bootargs::file_config(&load("heads"));
    use unionroot_core::nfs::Join;
    assert_eq!(heads.lowers[0].join, Join::Heads);
    assert_eq!(heads.lowers[0].servers.len(), 3);
    assert_eq!(
        bootargs::file_config(&load("basic")).lowers[0].join,
        Join::Failover
    );
    assert!(bootargs::file_config(&load("basic")).image.is_some());
}

#[test]
fn kernel_check_report_matches_golden() {
    let cfg =
        fs::read_to_string(golden_dir().join("fixtures/debian-6.1.0-56-amd64.config")).unwrap();
    let modes = [kconfig::Mode::Initramfs, kconfig::Mode::NfsRoot];
    let (ok, report) = kconfig::report(&cfg, &modes, &kconfig::Target::default());
    assert!(!ok, "Debian's kernel cannot do the NFS-root mode");
    let mut m = BTreeMap::new();
    m.insert("debian.txt".to_string(), report);
    check_against(&golden_dir().join("kernel-check"), &m);
}

/// `check` on the mixed cluster: the arm64 tree's export, the arm64 initramfs's modules (the
/// MMIO transport first), and which nodes are arm64.
#[test]
fn check_shows_the_arm64_side() {
    let o = Command::new(env!("CARGO_BIN_EXE_unionroot"))
        .args(["check", "-c"])
        .arg(golden_dir().join("mixed.toml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    for line in [
        "export /srv/system-arm64 (arm64 system tree, ro)",
        "arm64 initramfs modules: virtio_mmio virtio_pci virtio_net nfsv3 overlay",
        "node a1 [arm64] 52:54:00:77:00:a1 ",
        "node x1 52:54:00:77:00:01 ",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(line)),
            "no {line:?} in:\n{out}"
        );
    }
}

/// `kernel-check -c FILE --arch arm64` checks `arm64.config` against the arm64 nodes' NIC
/// drivers; the amd64 side of the same file has no `kernel.config`, and says so.
#[test]
fn kernel_check_takes_the_arm64_side_of_a_cluster() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_unionroot"))
            .arg("kernel-check")
            .arg("-c")
            .arg(golden_dir().join("mixed.toml"))
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["--arch", "arm64", "--mode", "initramfs"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("architecture: arm64"), "{out}");
    assert!(out.contains("debian-6.1.0-57-arm64.config"), "{out}");
    assert!(
        out.contains("a NIC driver: virtio_net (CONFIG_VIRTIO_NET=m, CONFIG_VIRTIO_PCI=m)"),
        "{out}"
    );
    let o = run(&[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no kernel.config"), "{err}");
}

/// Debian's arm64 config: the EFI stub is checked (GRUB boots the Image through UEFI), and
/// virtio-net counts over MMIO as over PCI.
#[test]
fn kernel_check_arm64_report_matches_golden() {
    let cfg =
        fs::read_to_string(golden_dir().join("fixtures/debian-6.1.0-57-arm64.config")).unwrap();
    let modes = [kconfig::Mode::Initramfs, kconfig::Mode::NfsRoot];
    let (ok, report) = kconfig::report(&cfg, &modes, &kconfig::Target::default());
    assert!(
        !ok,
        "Debian's arm64 kernel cannot do the NFS-root mode either"
    );
    assert!(report.starts_with("architecture: arm64\n"), "{report}");
    let mut m = BTreeMap::new();
    m.insert("debian-arm64.txt".to_string(), report);
    check_against(&golden_dir().join("kernel-check-arm64"), &m);

    let initramfs = [kconfig::Mode::Initramfs];
    assert!(kconfig::report(&cfg, &initramfs, &kconfig::Target::default()).0);
    let no_stub = cfg.replace("CONFIG_EFI_STUB=y", "# CONFIG_EFI_STUB is not set");
    let (ok, report) = kconfig::report(&no_stub, &initramfs, &kconfig::Target::default());
    assert!(!ok && report.contains("MISSING      EFI stub"), "{report}");
    // Only the MMIO transport: virtio_net still has a way onto the machine.
    let mmio_only = cfg.replace("CONFIG_VIRTIO_PCI=m", "# CONFIG_VIRTIO_PCI is not set");
    let (ok, report) = kconfig::report(&mmio_only, &initramfs, &kconfig::Target::default());
    assert!(
        ok && report
            .contains("virtio_net over virtio-mmio (CONFIG_VIRTIO_NET=m, CONFIG_VIRTIO_MMIO=m)"),
        "{report}"
    );
}

/// The CLI prints exactly the generators' texts.
#[test]
fn cli_prints_the_golden_texts() {
    if bless() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_unionroot");
    for case in ["basic", "nfsroot", "mixed"] {
        let toml = golden_dir().join(format!("{case}.toml"));
        let toml = toml.to_str().unwrap();
        let runs: [(&[&str], &str); 7] = [
            (&["conf"], "unionroot.conf"),
            (&["dhcp"], "dhcpd.conf"),
            (&["dhcp", "--format", "dnsmasq"], "dnsmasq-dhcp.conf"),
            (&["exports"], "exports"),
            (&["exports", "--format", "ganesha"], "ganesha.conf"),
            (&["tftp"], "inetd.conf"),
            (&["tftp", "--format", "dnsmasq"], "dnsmasq-tftp.conf"),
        ];
        for (args, golden) in runs {
            let o = Command::new(bin)
                .args(args)
                .args(["-c", toml])
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let want = fs::read_to_string(golden_dir().join(case).join(golden)).unwrap();
            assert_eq!(
                String::from_utf8(o.stdout).unwrap(),
                want,
                "{case} {args:?}"
            );
        }
        let c = load(case);
        for n in &c.nodes {
            let o = Command::new(bin)
                .args(["append", "-c", toml, &n.name])
                .output()
                .unwrap();
            assert!(o.status.success());
            assert_eq!(
                String::from_utf8(o.stdout).unwrap(),
                format!("{}\n", bootargs::node_append(&c, n))
            );
        }
    }
}

/// `exports --format ganesha` with heads: one head's file by `--head`, all of them by
/// `--heads-dir`, each the golden text; without either, or for knfsd (a CephFS export), a
/// usage error that names the way out.
#[test]
fn cli_writes_one_ganesha_file_per_head() {
    if bless() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_unionroot");
    let toml = golden_dir().join("heads.toml");
    let toml = toml.to_str().unwrap();
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .args(["-c", toml])
            .output()
            .unwrap()
    };
    let o = run(&["exports", "--format", "ganesha", "--head", "head2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = fs::read_to_string(golden_dir().join("heads/ganesha-head2.conf")).unwrap();
    assert_eq!(String::from_utf8(o.stdout).unwrap(), want);

    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_str().unwrap();
    let o = run(&["exports", "--format", "ganesha", "--heads-dir", dir]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for h in ["head1", "head2", "head3"] {
        let f = format!("ganesha-{h}.conf");
        assert_eq!(
            fs::read_to_string(d.path().join(&f)).unwrap(),
            fs::read_to_string(golden_dir().join("heads").join(&f)).unwrap(),
            "{f}"
        );
    }

    for (args, says) in [
        (
            &["exports", "--format", "ganesha"][..],
            "the cluster has heads (head1, head2, head3): give --head NAME",
        ),
        (
            &["exports", "--format", "ganesha", "--head", "head9"][..],
            "--head head9: no such head",
        ),
        (
            &["exports"][..],
            "/home has backend = \"ceph\", which knfsd cannot serve",
        ),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
