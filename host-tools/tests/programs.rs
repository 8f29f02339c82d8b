//! The generated DHCP configurations checked by the real servers: ISC `dhcpd -t -cf FILE` and
//! `dnsmasq --test -C FILE` (scripts/setup-host.sh installs both). Each check also runs on a
//! deliberately broken copy, which must be rejected, so a checker that accepts anything (or is
//! not really run) fails the test. When a program is missing the test says so and skips it.

use std::fs;
use std::path::Path;
use std::process::Command;
use unionroot::cluster::{self, Cluster};
use unionroot::{dhcp, tftp};

fn load(case: &str) -> Cluster {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let text = fs::read_to_string(dir.join(format!("{case}.toml"))).unwrap();
    cluster::parse(&text, case, &dir, &cluster::probe_fs).unwrap_or_else(|e| panic!("{e}"))
}

/// The program's path, or `None` after printing why the check is skipped.
fn find(name: &str, package: &str) -> Option<String> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = format!("{dir}/{name}");
        if Path::new(&p).exists() {
            return Some(p);
        }
    }
    println!(
        "SKIPPED: {name} is not installed (apt-get install {package}; scripts/setup-host.sh does)"
    );
    None
}

/// Runs `prog args... FILE` on `text`: (success, combined output).
fn run_on(prog: &str, args: &[&str], text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("test.conf");
    fs::write(&f, text).unwrap();
    let o = Command::new(prog)
        .args(args)
        .arg(&f)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"));
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn dhcpd_accepts_the_isc_configs() {
    let Some(dhcpd) = find("dhcpd", "isc-dhcp-server") else {
        return;
    };
    for case in ["basic", "nfsroot", "mixed"] {
        let conf = dhcp::isc(&load(case));
        let (ok, out) = run_on(&dhcpd, &["-t", "-cf"], &conf);
        assert!(ok, "dhcpd -t rejects the {case} config:\n{out}\n{conf}");
        // Host declarations inside a subnet draw a warning; ours are global.
        assert!(!out.contains("WARNING"), "{case}: {out}");
        let broken = conf.replacen("fixed-address", "fixed-adress", 1);
        let (ok, out) = run_on(&dhcpd, &["-t", "-cf"], &broken);
        assert!(!ok, "dhcpd -t accepted a broken config:\n{out}");
    }
}

#[test]
fn dnsmasq_accepts_the_dhcp_and_tftp_configs() {
    let Some(dnsmasq) = find("dnsmasq", "dnsmasq") else {
        return;
    };
    for case in ["basic", "nfsroot", "mixed"] {
        let c = load(case);
        let (d, t) = (dhcp::dnsmasq(&c), tftp::dnsmasq(&c));
        for (what, text) in [
            ("DHCP", d.clone()),
            ("TFTP", t.clone()),
            ("DHCP+TFTP", format!("{d}{t}")),
        ] {
            let (ok, out) = run_on(&dnsmasq, &["--test", "-C"], &text);
            assert!(
                ok,
                "dnsmasq --test rejects the {case} {what} config:\n{out}\n{text}"
            );
            assert!(out.contains("syntax check OK"), "{out}");
        }
        let broken = d.replacen("dhcp-range=", "dhcp-rnage=", 1);
        let (ok, out) = run_on(&dnsmasq, &["--test", "-C"], &broken);
        assert!(!ok, "dnsmasq --test accepted a broken config:\n{out}");
    }
}

/// A cluster whose exports are real directories below `root`, for a server that checks them.
fn cluster_with_exports_in(root: &Path, version: &str) -> Cluster {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for d in ["system", "apps", "home", "data", "persist"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let r = root.display();
    let text = format!(
        r#"[server]
address = "10.0.2.2"
network = "10.0.2.0"
netmask = "255.255.255.0"
[nfs]
version = "{version}"
[exports]
system = "{r}/system"
layers = ["{r}/apps"]
[[exports.mounts]]
path = "{r}/home"
mount_point = "/home"
[[exports.mounts]]
path = "{r}/data"
mount_point = "/data"
read_only = true
[exports.persist]
path = "{r}/persist"
paths = ["/var/log"]
[paths]
setup_tree = "{r}/system"
tftp_root = "{r}/tftp"
initramfs = "{r}/initrd.img"
[kernel]
image = "fixtures/vmlinuz"
modules_dir = "fixtures/modules/6.1.0-test"
[initramfs]
linuxrc = "fixtures/linuxrc"
"#
    );
    cluster::parse(&text, "ganesha-test", &golden, &cluster::probe_fs)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Starts ganesha.nfsd on `conf` in private network, mount and PID namespaces (so it touches
/// nothing of the host and cannot outlive the test) and returns its log. Without rpcbind it
/// stops right after reading the configuration and creating the exports, which is the part
/// under test.
fn ganesha_log(ganesha: &str, conf: &Path, dir: &Path) -> String {
    let log = dir.join("ganesha.log");
    let script = format!(
        "mount -t tmpfs tmpfs /run && \
         {{ [ ! -d /var/lib/nfs ] || mount -t tmpfs tmpfs /var/lib/nfs; }} && \
         ip link set lo up 2>/dev/null; \
         timeout 10 {ganesha} -F -f {} -L {} -N NIV_EVENT -p /run/ganesha.pid; true",
        conf.display(),
        log.display()
    );
    let st = Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
            &script,
        ])
        .status()
        .unwrap();
    assert!(st.success(), "unshare failed");
    fs::read_to_string(&log).unwrap_or_default()
}

/// Configuration complaints in a ganesha log, less the one about a backend Debian does not ship.
fn config_complaints(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(":CONFIG :") && !l.contains("RADOS"))
        .collect()
}

#[test]
fn ganesha_accepts_the_exports() {
    let Some(ganesha) = find("ganesha.nfsd", "nfs-ganesha nfs-ganesha-vfs") else {
        return;
    };
    let is_root = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !is_root {
        println!("SKIPPED: starting ganesha in private namespaces needs root");
        return;
    }
    for version in ["3", "4.1"] {
        let d = tempfile::tempdir().unwrap();
        let c = cluster_with_exports_in(d.path(), version);
        let text = unionroot::exports::ganesha(&c, None);
        let conf = d.path().join("ganesha.conf");
        fs::write(&conf, &text).unwrap();
        let log = ganesha_log(&ganesha, &conf, d.path());
        assert!(
            log.contains("Configuration file successfully parsed"),
            "v{version}: {log}"
        );
        assert_eq!(
            config_complaints(&log),
            Vec::<&str>::new(),
            "v{version}:\n{text}"
        );
        // The control: a misspelt parameter is complained about.
        fs::write(
            &conf,
            text.replacen("Access_Type = RO;", "Acess_Type = RO;", 1),
        )
        .unwrap();
        let log = ganesha_log(&ganesha, &conf, d.path());
        let bad = config_complaints(&log);
        assert!(bad.iter().any(|l| l.contains("Acess_Type")), "{log}");
    }
}
