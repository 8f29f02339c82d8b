//! The boot NIC's configuration for systemd's udev and networkd, written under `/run` (carried
//! into the new root), so that a real system takes the interface over without touching the
//! address the root filesystem lives behind. Follows systemd.link(5) and systemd.network(5):
//! - a `.link` that keeps the kernel's name: udev cannot rename an interface that is already up
//!   ("cannot rename"), and the link then stays "pending" in networkd for good;
//! - a `.network` with `KeepConfiguration=yes` (networkd otherwise drops addresses it did not set
//!   itself, the root's among them), DHCP with the client identifier linuxrc sent (`01` and the
//!   MAC, which `ClientIdentifier=mac` also sends), and `SendRelease=no`, so that no shutdown
//!   releases the lease under a mounted root. The same client identifier is what gets the same
//!   address back (RFC 2131 4.3.1: the server keeps the binding per client id). `RequestAddress=`
//!   would say it outright, but systemd 252 (Debian 12) does not know that key and logs a warning
//!   for it, so it is left out. With `KeepConfiguration=yes` networkd gives the DHCP address an
//!   infinite lifetime and still renews the lease at T1.
//!
//! Files in `/run/systemd/network` rank above `/usr/lib`'s and below `/etc`'s, so an admin's own
//! file of the same name in the image still wins.

use crate::addr::Mac;
use crate::handoff::NetInfo;
use std::fmt::Write;

/// Where networkd and udev look for runtime configuration.
pub const DIR: &str = "/run/systemd/network";

/// The runtime `.link` and `.network` for the boot interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// File name in [`DIR`] and contents of the `.link`.
    pub link: (String, String),
    /// File name in [`DIR`] and contents of the `.network`.
    pub network: (String, String),
}

/// The files for the interface in `n`, with MAC `mac`. `dhcp` says whether the address came
/// from a DHCP lease (then networkd renews that lease); otherwise the address is static.
pub fn files(n: &NetInfo, mac: Mac, dhcp: bool) -> Files {
    let dev = &n.device;
    // Sorts before udev's 99-default.link and any distribution file: the first match wins.
    let stem = format!("10-unionroot-{dev}");
    let link = format!(
        "# Written by unionroot's linuxrc: {dev} carries the NFS root, so it keeps its name.\n\
         [Match]\n\
         MACAddress={mac}\n\
         OriginalName={dev}\n\
         \n\
         [Link]\n\
         Name={dev}\n"
    );
    let mut net = format!(
        "# Written by unionroot's linuxrc: {dev} carries the NFS root. Its address stays while\n\
         # networkd starts, restarts and stops, and its lease is renewed, never released.\n\
         [Match]\n\
         MACAddress={mac}\n\
         Name={dev}\n\
         \n\
         [Network]\n\
         KeepConfiguration=yes\n"
    );
    if dhcp {
        net.push_str("DHCP=ipv4\n");
    } else {
        if let Some(a) = n.address {
            let _ = writeln!(net, "Address={a}/{}", n.prefix);
        }
        if let Some(g) = n.gateway {
            let _ = writeln!(net, "Gateway={g}");
        }
        for d in &n.dns {
            let _ = writeln!(net, "DNS={d}");
        }
        if let Some(d) = &n.domain {
            let _ = writeln!(net, "Domains={d}");
        }
    }
    if dhcp {
        net.push_str("\n[DHCPv4]\nClientIdentifier=mac\nSendRelease=no\n");
    }
    Files {
        link: (format!("{stem}.link"), link),
        network: (format!("{stem}.network"), net),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::Proto;
    use std::net::Ipv4Addr;

    const MAC: Mac = Mac([0x52, 0x54, 0, 0x77, 0, 1]);

    fn info() -> NetInfo {
        NetInfo {
            device: "eth0".into(),
            proto: Proto::Dhcp,
            address: Some(Ipv4Addr::new(192, 168, 77, 100)),
            prefix: 24,
            gateway: Some(Ipv4Addr::new(192, 168, 77, 1)),
            dns: vec![Ipv4Addr::new(192, 168, 77, 1)],
            domain: Some(crate::validate::DomainName::parse("cluster.lan").unwrap()),
            ..Default::default()
        }
    }

    /// `[Section]` → its `Key=Value` lines, in order.
    fn section<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        let header = format!("[{name}]");
        text.lines()
            .skip_while(|l| *l != header)
            .skip(1)
            .take_while(|l| !l.starts_with('['))
            .filter(|l| l.contains('='))
            .collect()
    }

    #[test]
    fn the_link_keeps_the_kernel_name_of_this_nic() {
        let f = files(&info(), MAC, true);
        assert_eq!(f.link.0, "10-unionroot-eth0.link");
        assert_eq!(
            section(&f.link.1, "Match"),
            ["MACAddress=52:54:00:77:00:01", "OriginalName=eth0"]
        );
        assert_eq!(section(&f.link.1, "Link"), ["Name=eth0"]);
    }

    #[test]
    fn dhcp_renews_the_same_lease_and_never_lets_go() {
        let f = files(&info(), MAC, true);
        assert_eq!(f.network.0, "10-unionroot-eth0.network");
        let n = &f.network.1;
        assert_eq!(
            section(n, "Match"),
            ["MACAddress=52:54:00:77:00:01", "Name=eth0"]
        );
        assert_eq!(
            section(n, "Network"),
            ["KeepConfiguration=yes", "DHCP=ipv4"]
        );
        assert_eq!(
            section(n, "DHCPv4"),
            ["ClientIdentifier=mac", "SendRelease=no"]
        );
        // DHCP brings its own DNS and domain: no static copies that would outlive a change.
        assert!(!n
            .lines()
            .any(|l| l.starts_with("DNS=") || l.starts_with("Address=")));
    }

    #[test]
    fn a_static_address_is_stated_and_kept() {
        let f = files(&info(), MAC, false);
        assert_eq!(
            section(&f.network.1, "Network"),
            [
                "KeepConfiguration=yes",
                "Address=192.168.77.100/24",
                "Gateway=192.168.77.1",
                "DNS=192.168.77.1",
                "Domains=cluster.lan"
            ]
        );
        assert!(section(&f.network.1, "DHCPv4").is_empty());
    }
}
