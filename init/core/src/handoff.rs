//! What linuxrc leaves for the real system, and what it reads from a kernel that configured the
//! network itself:
//! - `/run/net-<iface>.conf` in the format klibc's ipconfig writes and Debian's initramfs-tools
//!   passes on (read by initramfs-tools' `configure_networking`, cloud-init and ifupdown hooks);
//! - `/etc/resolv.conf` (resolv.conf(5));
//! - `/proc/net/pnp`, the kernel's IP autoconfig summary (`net/ipv4/ipconfig.c`), present when
//!   the kernel ran `ip=` itself (the `init=/linuxrc` NFS-root mode).
//!
//! Every text value here comes from DHCP or the kernel and lands in a file line, so [`NetInfo`]
//! holds only validated types ([`crate::validate`]): a domain with a newline cannot add a
//! `nameserver` line to resolv.conf.

use crate::dhcp::Lease;
use crate::validate::{shown, DomainName, Hostname, Line};
use std::fmt::Write;
use std::net::Ipv4Addr;

/// What configured the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proto {
    /// linuxrc's DHCP client.
    #[default]
    Dhcp,
    /// A fixed address from `ip=`.
    Static,
    /// The kernel's own autoconfig (`ip=` handled by IP_PNP).
    Kernel,
}

impl Proto {
    /// As written to `PROTO=` in `/run/net-<device>.conf`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Dhcp => "dhcp",
            Proto::Static => "static",
            Proto::Kernel => "kernel",
        }
    }
}

/// The network as it was configured, whatever configured it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetInfo {
    pub device: String,
    pub proto: Proto,
    pub address: Option<Ipv4Addr>,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<Hostname>,
    pub domain: Option<DomainName>,
    pub root_server: Option<Ipv4Addr>,
    pub root_path: Option<Line>,
    pub bootfile: Option<Line>,
    pub lease_secs: Option<u32>,
}

/// The text a DHCP server offered, validated for the hand-off. A refused value is left out and
/// named in `warnings`; a refused host name is also kept as `hostname_refused`, because per-node
/// directories then have no trustworthy name and must not fall back to another one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Offered {
    pub hostname: Option<Hostname>,
    pub hostname_refused: Option<String>,
    pub domain: Option<DomainName>,
    pub root_path: Option<Line>,
    pub bootfile: Option<Line>,
    pub warnings: Vec<String>,
}

/// Validates the text options of a lease (12 host name, 15 domain, 17 root-path, 67 boot file).
pub fn offered(lease: &Lease) -> Offered {
    let mut o = Offered::default();
    if let Some(h) = &lease.hostname {
        match Hostname::parse(h) {
            Ok(n) => o.hostname = Some(n),
            Err(e) => {
                let why = format!(
                    "DHCP option 12 (host name) \"{}\" is refused: {e}",
                    shown(h)
                );
                o.warnings.push(format!("{why}; not setting the host name"));
                o.hostname_refused = Some(why);
            }
        }
    }
    if let Some(d) = &lease.domain {
        match DomainName::parse(d) {
            Ok(n) => o.domain = Some(n),
            Err(e) => o.warnings.push(format!(
                "DHCP option 15 (domain) \"{}\" is refused: {e}; resolv.conf gets no search line",
                shown(d)
            )),
        }
    }
    let line = |v: &Option<String>, what: &str, warnings: &mut Vec<String>| {
        v.as_deref().and_then(|t| match Line::parse(t) {
            Ok(l) => Some(l),
            Err(e) => {
                warnings.push(format!("DHCP {what} \"{}\" is refused: {e}", shown(t)));
                None
            }
        })
    };
    o.root_path = line(&lease.root_path, "option 17 (root-path)", &mut o.warnings);
    o.bootfile = line(&lease.bootfile, "boot file name", &mut o.warnings);
    o
}

fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(
        u32::MAX
            .checked_shl(32 - u32::from(prefix.min(32)))
            .unwrap_or(0),
    )
}

fn quote(v: &str) -> String {
    // Shell single quotes: the file is sourced by sh.
    format!("'{}'", v.replace('\'', "'\\''"))
}

/// `/run/net-<device>.conf` in klibc ipconfig's shell-variable format.
pub fn initramfs_tools_conf(n: &NetInfo, uptime_secs: u64) -> String {
    let a = |x: Option<Ipv4Addr>| x.unwrap_or(Ipv4Addr::UNSPECIFIED).to_string();
    let mask = netmask(n.prefix);
    let bcast = n
        .address
        .map(|ad| Ipv4Addr::from(u32::from(ad) | !u32::from(mask)));
    let mut s = String::new();
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(s, "{k}={}", quote(&v));
    };
    kv("DEVICE", n.device.clone());
    kv("PROTO", n.proto.as_str().to_string());
    kv("IPV4ADDR", a(n.address));
    kv("IPV4BROADCAST", a(bcast));
    kv("IPV4NETMASK", mask.to_string());
    kv("IPV4GATEWAY", a(n.gateway));
    kv("IPV4DNS0", a(n.dns.first().copied()));
    kv("IPV4DNS1", a(n.dns.get(1).copied()));
    let text = |v: Option<&str>| v.unwrap_or_default().to_string();
    kv("HOSTNAME", text(n.hostname.as_deref()));
    kv("DNSDOMAIN", text(n.domain.as_deref()));
    kv("NISDOMAIN", String::new());
    kv("ROOTSERVER", a(n.root_server));
    kv("ROOTPATH", text(n.root_path.as_deref()));
    kv("filename", text(n.bootfile.as_deref()));
    kv("UPTIME", uptime_secs.to_string());
    kv("DHCPLEASETIME", n.lease_secs.unwrap_or(0).to_string());
    kv("DOMAINSEARCH", text(n.domain.as_deref()));
    s
}

/// resolv.conf(5) for the new root; `None` when there is nothing to say (keep the tree's own).
pub fn resolv_conf(n: &NetInfo) -> Option<String> {
    if n.dns.is_empty() && n.domain.is_none() {
        return None;
    }
    let mut s =
        String::from("# written by unionroot's linuxrc from the boot-time network configuration\n");
    if let Some(d) = &n.domain {
        let _ = writeln!(s, "search {d}");
    }
    for d in n.dns.iter().take(3) {
        let _ = writeln!(s, "nameserver {d}");
    }
    Some(s)
}

/// The kernel's `/proc/net/pnp`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pnp {
    /// `DHCP`, `BOOTP`, `RARP` or `MANUAL`, as `net/ipv4/ipconfig.c` writes them; `unknown` for
    /// any other word (refused, and named in `refused`: linuxrc logs this value).
    pub proto: String,
    pub domain: Option<DomainName>,
    pub nameservers: Vec<Ipv4Addr>,
    pub bootserver: Option<Ipv4Addr>,
    /// Values that failed validation, as warnings.
    pub refused: Vec<String>,
}

/// Parses `/proc/net/pnp`. Returns `None` when the kernel did no autoconfiguration (the file is
/// then absent or empty).
pub fn parse_pnp(text: &str) -> Option<Pnp> {
    let mut p = Pnp::default();
    let mut seen = false;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        match (it.next(), it.next()) {
            (Some("#PROTO:"), Some(v)) => {
                p.proto = match v {
                    "DHCP" | "BOOTP" | "RARP" => v.to_string(),
                    _ => {
                        p.refused.push(format!(
                            "/proc/net/pnp protocol \"{}\" is not one the kernel writes (DHCP, BOOTP, RARP)",
                            shown(v)
                        ));
                        "unknown".into()
                    }
                };
                seen = true;
            }
            (Some("#MANUAL"), _) => {
                p.proto = "MANUAL".into();
                seen = true;
            }
            (Some("domain"), Some(v)) => match DomainName::parse(v) {
                Ok(d) => p.domain = Some(d),
                Err(e) => p.refused.push(format!(
                    "/proc/net/pnp domain \"{}\" is refused: {e}",
                    shown(v)
                )),
            },
            (Some("nameserver"), Some(v)) => {
                if let Ok(a) = v.parse::<Ipv4Addr>() {
                    if !a.is_unspecified() {
                        p.nameservers.push(a);
                    }
                }
            }
            (Some("bootserver"), Some(v)) => {
                p.bootserver = v.parse().ok().filter(|a: &Ipv4Addr| !a.is_unspecified())
            }
            _ => {}
        }
    }
    seen.then_some(p)
}

/// The default route's gateway on `iface` from `/proc/net/route` (hex, little-endian fields).
pub fn default_gateway(route: &str, iface: &str) -> Option<Ipv4Addr> {
    route.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            [name, "00000000", gw, ..] if *name == iface => u32::from_str_radix(gw, 16)
                .ok()
                .map(|g| Ipv4Addr::from(g.swap_bytes())),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn info() -> NetInfo {
        NetInfo {
            device: "eth0".into(),
            proto: Proto::Dhcp,
            address: Some(ip("10.0.2.15")),
            prefix: 24,
            gateway: Some(ip("10.0.2.2")),
            dns: vec![ip("10.0.2.3")],
            hostname: Some(Hostname::parse("node1").unwrap()),
            domain: Some(DomainName::parse("cluster.lan").unwrap()),
            root_server: Some(ip("10.0.2.2")),
            root_path: Some(Line::parse("/srv/system").unwrap()),
            bootfile: None,
            lease_secs: Some(86400),
        }
    }

    #[test]
    fn net_conf_has_the_klibc_variables() {
        let s = initramfs_tools_conf(&info(), 3);
        for line in [
            "DEVICE='eth0'",
            "PROTO='dhcp'",
            "IPV4ADDR='10.0.2.15'",
            "IPV4BROADCAST='10.0.2.255'",
            "IPV4NETMASK='255.255.255.0'",
            "IPV4GATEWAY='10.0.2.2'",
            "IPV4DNS0='10.0.2.3'",
            "IPV4DNS1='0.0.0.0'",
            "HOSTNAME='node1'",
            "DNSDOMAIN='cluster.lan'",
            "ROOTSERVER='10.0.2.2'",
            "ROOTPATH='/srv/system'",
            "UPTIME='3'",
            "DHCPLEASETIME='86400'",
        ] {
            assert!(s.lines().any(|l| l == line), "missing {line} in\n{s}");
        }
        let quoted = NetInfo {
            root_path: Some(Line::parse("/srv/it's").unwrap()),
            ..info()
        };
        assert!(initramfs_tools_conf(&quoted, 0).contains("ROOTPATH='/srv/it'\\''s'"));
    }

    #[test]
    fn netmask_edges() {
        assert_eq!(netmask(0), ip("0.0.0.0"));
        assert_eq!(netmask(8), ip("255.0.0.0"));
        assert_eq!(netmask(32), ip("255.255.255.255"));
    }

    #[test]
    fn resolv_conf_only_when_there_is_something() {
        assert_eq!(
            resolv_conf(&info())
                .unwrap()
                .lines()
                .skip(1)
                .collect::<Vec<_>>(),
            ["search cluster.lan", "nameserver 10.0.2.3"]
        );
        assert_eq!(resolv_conf(&NetInfo::default()), None);
    }

    #[test]
    fn default_gateway_from_proc_net_route() {
        let r =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_gateway(r, "eth0"), Some(ip("10.0.2.2")));
        assert_eq!(default_gateway(r, "eth1"), None);
    }

    #[test]
    fn pnp_from_the_kernel() {
        let p = parse_pnp("#PROTO: DHCP\ndomain cluster.lan\nnameserver 10.0.2.3\nnameserver 0.0.0.0\nbootserver 10.0.2.2\n")
            .unwrap();
        assert_eq!(p.proto, "DHCP");
        assert_eq!(p.domain.as_deref(), Some("cluster.lan"));
        assert_eq!(p.nameservers, [ip("10.0.2.3")]);
        assert_eq!(p.bootserver, Some(ip("10.0.2.2")));
        assert_eq!(parse_pnp(""), None);
        assert_eq!(parse_pnp("#MANUAL\n").unwrap().proto, "MANUAL");
        let p = parse_pnp("#PROTO: DHCP\ndomain ../x\x1b[2J\n").unwrap();
        assert_eq!(p.domain, None);
        assert_eq!(p.refused.len(), 1);
        // Found by the fuzz tier (pnp target): the protocol word reached a log line as it was.
        let p = parse_pnp("#PROTO: DH\x1bCP\n").unwrap();
        assert_eq!(p.proto, "unknown");
        assert_eq!(p.refused.len(), 1);
        assert!(!p.refused[0].contains(char::is_control), "{:?}", p.refused);
        assert_eq!(parse_pnp("#PROTO: BOOTP\n").unwrap().proto, "BOOTP");
    }

    fn lease(hostname: &str, domain: &str) -> Lease {
        Lease {
            address: ip("10.0.2.15"),
            netmask: ip("255.255.255.0"),
            broadcast: None,
            routers: Vec::new(),
            dns: vec![ip("10.0.2.3")],
            hostname: Some(hostname.into()),
            domain: Some(domain.into()),
            root_path: Some("10.0.2.2:/srv/system\nIPV4DNS0='6.6.6.6'".into()),
            mtu: None,
            ntp: Vec::new(),
            server_id: ip("10.0.2.2"),
            siaddr: None,
            tftp_server: None,
            bootfile: Some("pxelinux.0".into()),
            lease_secs: None,
        }
    }

    #[test]
    fn hostile_dhcp_text_never_reaches_a_file_line() {
        let o = offered(&lease("../node-b", "cluster.lan\nnameserver 6.6.6.6"));
        assert_eq!(o.hostname, None);
        assert!(o.hostname_refused.as_deref().unwrap().contains("../node-b"));
        assert_eq!(o.domain, None);
        assert_eq!(o.root_path, None);
        assert_eq!(o.bootfile.as_deref(), Some("pxelinux.0"));
        assert_eq!(o.warnings.len(), 3, "{:?}", o.warnings);
        assert!(
            o.warnings.iter().all(|w| !w.contains('\n')),
            "{:?}",
            o.warnings
        );
        let n = NetInfo {
            hostname: o.hostname,
            domain: o.domain,
            root_path: o.root_path,
            ..info()
        };
        let r = resolv_conf(&n).unwrap();
        assert_eq!(
            r.lines().skip(1).collect::<Vec<_>>(),
            ["nameserver 10.0.2.3"]
        );
        let conf = initramfs_tools_conf(&n, 1);
        assert_eq!(conf.lines().count(), 17, "{conf}");
        assert!(!conf.contains("6.6.6.6"), "{conf}");

        let o = offered(&lease("node-07", "cluster.lan"));
        assert_eq!(o.hostname.as_deref(), Some("node-07"));
        assert_eq!(o.domain.as_deref(), Some("cluster.lan"));
        assert_eq!(o.warnings.len(), 1, "only the root-path: {:?}", o.warnings);
    }
}
