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
    for case in ["basic", "nfsroot"] {
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
    for case in ["basic", "nfsroot"] {
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
