//! What linuxrc is told, and how: `/etc/unionroot.conf` (cluster-wide, in the initramfs and the
//! setup tree) and each node's kernel command line (`APPEND`), which linuxrc reads after the file
//! so that it wins. Both use kernel command-line syntax, parsed by `init/core/src/cmdline.rs`.
//!
//! [`linuxrc_keys`] is the only place that knows linuxrc's key names; a new key (issue 5 adds
//! some for the extra layers and mounts) is one more line there.

use crate::cluster::{Boot, BootMode, Cluster, IpMode, Node};
use std::net::Ipv4Addr;
use unionroot_core::nfs::NfsVersion;

/// The NFS pieces of the root, for `unionroot.lower=`, `unionroot.mount=` and
/// `unionroot.persist=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pieces<'a> {
    /// The servers, tried in order (linuxrc's `a|b:` failover).
    pub servers: &'a [Ipv4Addr],
    /// Mount options for every piece.
    pub options: &'a [String],
    pub version: NfsVersion,
    /// Read-only layers, bottom first: the system tree, then the extra layers.
    pub lowers: Vec<&'a str>,
    /// `(mount point, export, read-only)`.
    pub mounts: Vec<(&'a str, &'a str, bool)>,
    /// The per-node export and the paths kept in it.
    pub persist: Option<(&'a str, &'a [String])>,
}

/// One node's identity, for `ip=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIp<'a> {
    pub name: &'a str,
    pub address: Ipv4Addr,
    pub server: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
    pub netmask: Ipv4Addr,
    pub dns: &'a [Ipv4Addr],
}

/// `nfsvers=` in the form linuxrc's `unionroot.nfsvers` and the kernel's nfsroot accept.
pub fn version_str(v: NfsVersion) -> String {
    match v {
        NfsVersion::V3 => "3".into(),
        NfsVersion::V4(m) => format!("4.{m}"),
    }
}

/// `srv1[|srv2...]:path[,options]`, the shape of `nfsroot=`, linuxrc's pieces and DHCP option
/// 17 (root-path).
pub fn nfs_spec(servers: &[Ipv4Addr], path: &str, options: &[String]) -> String {
    let servers: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
    let mut s = format!("{}:{path}", servers.join("|"));
    for o in options {
        s.push(',');
        s.push_str(o);
    }
    s
}

/// The linuxrc keys for `boot`, as command-line words in a fixed order.
///
/// - `pieces`: emits the root's pieces and `unionroot.nfsvers=` (the cluster-wide config file);
/// - `ip`: emits the node's `ip=` (its command line); with [`IpMode::Dhcp`] only the host name
///   is fixed there (`ip=::::NAME::dhcp`: linuxrc lets that field win over DHCP's);
/// - `base`: emit only what differs from `base` (the cluster's settings already in the file);
///   for the list keys only the additions, because linuxrc adds repeated lists up.
pub fn linuxrc_keys(
    pieces: Option<&Pieces>,
    ip: Option<&NodeIp>,
    boot: &Boot,
    base: Option<&Boot>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = pieces {
        for l in &p.lowers {
            out.push(format!(
                "unionroot.lower={}",
                nfs_spec(p.servers, l, p.options)
            ));
        }
        for (at, path, ro) in &p.mounts {
            let mut opts = p.options.to_vec();
            if *ro {
                opts.push("ro".into());
            }
            out.push(format!(
                "unionroot.mount={at}={}",
                nfs_spec(p.servers, path, &opts)
            ));
        }
        if let Some((path, paths)) = p.persist {
            out.push(format!(
                "unionroot.persist={}",
                nfs_spec(p.servers, path, p.options)
            ));
            out.push(format!("unionroot.persist_paths={}", paths.join(",")));
        }
        out.push(format!("unionroot.nfsvers={}", version_str(p.version)));
    }
    if let Some(n) = ip {
        out.push(match boot.ipconfig {
            IpMode::Dhcp => format!("ip=::::{}::dhcp", n.name),
            IpMode::Static => {
                let opt = |a: Option<&Ipv4Addr>| a.map(|a| a.to_string()).unwrap_or_default();
                let fields = [
                    n.address.to_string(),
                    n.server.to_string(),
                    opt(n.gateway.as_ref()),
                    n.netmask.to_string(),
                    n.name.to_string(),
                    String::new(),
                    "off".into(),
                    opt(n.dns.first()),
                    opt(n.dns.get(1)),
                ];
                let last = fields.iter().rposition(|f| !f.is_empty()).unwrap_or(0);
                format!("ip={}", fields[..=last].join(":"))
            }
        });
    }
    let changed = |get: &dyn Fn(&Boot) -> String| base.is_none_or(|b| get(b) != get(boot));
    let mut set = |key: &str, get: &dyn Fn(&Boot) -> String| {
        if changed(get) {
            out.push(format!("{key}={}", get(boot)));
        }
    };
    set("unionroot.size", &|b| b.size.clone());
    set("unionroot.init", &|b| b.init.clone());
    set("unionroot.dhcp_timeout", &|b| b.dhcp_timeout.to_string());
    set("unionroot.mount_timeout", &|b| b.mount_timeout.to_string());
    set("unionroot.carrier_timeout", &|b| {
        b.carrier_timeout.to_string()
    });
    set("unionroot.server_timeout", &|b| {
        b.server_timeout.to_string()
    });
    set("unionroot.onfail", &|b| b.onfail.clone());
    let added: Vec<&String> = boot
        .modules
        .iter()
        .filter(|m| base.is_none_or(|b| !b.modules.contains(m)))
        .collect();
    if !added.is_empty() {
        let names: Vec<&str> = added.iter().map(|s| s.as_str()).collect();
        out.push(format!("unionroot.modules={}", names.join(",")));
    }
    if boot.debug && !base.is_some_and(|b| b.debug) {
        out.push("unionroot.debug".into());
    }
    out
}

/// The cluster's pieces, in linuxrc's terms.
pub fn pieces(c: &Cluster) -> Pieces<'_> {
    Pieces {
        servers: &c.nfs_servers,
        options: &c.nfs_options,
        version: c.nfs_version,
        lowers: std::iter::once(&c.exports.system)
            .chain(&c.exports.layers)
            .map(|e| e.path.as_str())
            .collect(),
        mounts: c
            .exports
            .mounts
            .iter()
            .map(|m| {
                (
                    m.mount_point.as_deref().unwrap_or(""),
                    m.path.as_str(),
                    m.read_only,
                )
            })
            .collect(),
        persist: c
            .exports
            .persist
            .as_ref()
            .map(|(e, paths)| (e.path.as_str(), paths.as_slice())),
    }
}

fn node_ip<'a>(c: &'a Cluster, n: &'a Node) -> NodeIp<'a> {
    NodeIp {
        name: &n.name,
        address: n.ip,
        server: c.server.address,
        gateway: c.server.router,
        netmask: c.server.subnet.netmask,
        dns: &c.server.dns,
    }
}

/// The text of `/etc/unionroot.conf`.
pub fn config_file(c: &Cluster) -> String {
    let mut s = String::from(
        "# /etc/unionroot.conf, generated by `unionroot` from cluster.toml: edit that file instead.\n\
         # linuxrc reads this, then the kernel command line, which wins.\n",
    );
    for k in linuxrc_keys(Some(&pieces(c)), None, &c.boot, None) {
        s += &k;
        s.push('\n');
    }
    s
}

/// The setup tree as the kernel mounts it in nfsroot mode: first server, explicit version
/// (the kernel's default differs from linuxrc's).
fn setup_tree_spec(c: &Cluster) -> String {
    let mut opts = vec![format!("vers={}", version_str(c.nfs_version))];
    opts.extend(c.nfs_options.iter().cloned());
    nfs_spec(
        &c.nfs_servers[..1.min(c.nfs_servers.len())],
        &c.setup_tree.to_string_lossy(),
        &opts,
    )
}

/// DHCP option 17 (root-path): the system tree in initramfs mode (linuxrc falls back to it
/// when no piece is configured); in nfsroot mode the setup tree, which the kernel mounts.
pub fn dhcp_root_path(c: &Cluster) -> String {
    match c.mode {
        BootMode::Initramfs => nfs_spec(
            &c.nfs_servers[..1.min(c.nfs_servers.len())],
            &c.exports.system.path,
            &c.nfs_options,
        ),
        BootMode::NfsRoot => setup_tree_spec(c),
    }
}

/// The words in front of everything in nfsroot mode: the kernel mounts the setup tree itself
/// and runs linuxrc from it (linuxrc then takes its pieces from the setup tree's config).
fn mode_words(c: &Cluster) -> Vec<String> {
    match c.mode {
        BootMode::Initramfs => Vec::new(),
        BootMode::NfsRoot => vec![
            "root=/dev/nfs".into(),
            format!("nfsroot={}", setup_tree_spec(c)),
            "init=/linuxrc".into(),
        ],
    }
}

/// The kernel command line of `node` (pxelinux `APPEND`, without `initrd=` and `BOOTIF=`,
/// which the loader adds).
pub fn node_append(c: &Cluster, node: &Node) -> String {
    let mut words = mode_words(c);
    words.extend(node.boot.kernel_args.iter().cloned());
    words.extend(linuxrc_keys(
        None,
        Some(&node_ip(c, node)),
        &node.boot,
        Some(&c.boot),
    ));
    words.join(" ")
}

/// The command line for a MAC that has no node: the cluster's settings only.
pub fn default_append(c: &Cluster) -> String {
    let mut words = mode_words(c);
    if c.mode == BootMode::NfsRoot {
        words.push("ip=dhcp".into());
    }
    words.extend(c.boot.kernel_args.iter().cloned());
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use unionroot_core::cmdline::{Config, IpMode as CoreIp, OnFail};

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn every_key_is_understood_by_linuxrc() {
        let boot = Boot {
            ipconfig: IpMode::Static,
            size: "2g".into(),
            init: "/lib/systemd/systemd".into(),
            modules: vec!["e1000".into(), "af_packet".into()],
            dhcp_timeout: 7,
            mount_timeout: 8,
            carrier_timeout: 9,
            server_timeout: 4,
            onfail: "reboot".into(),
            debug: true,
            kernel_args: vec![],
        };
        let opts = vec!["tcp".to_string()];
        let servers = [ip("10.0.2.2"), ip("10.0.2.9")];
        let persist_paths = vec!["/var/log".to_string(), "/etc/ssh".to_string()];
        let root = Pieces {
            servers: &servers,
            options: &opts,
            version: NfsVersion::V4(1),
            lowers: vec!["/srv/system", "/srv/apps"],
            mounts: vec![("/home", "/srv/home", false), ("/data", "/srv/data", true)],
            persist: Some(("/srv/nodes", &persist_paths)),
        };
        let dns = [ip("10.0.2.3"), ip("10.0.2.4"), ip("10.0.2.5")];
        let n = NodeIp {
            name: "lf1",
            address: ip("10.0.2.15"),
            server: ip("10.0.2.2"),
            gateway: Some(ip("10.0.2.1")),
            netmask: ip("255.255.255.0"),
            dns: &dns,
        };
        let words = linuxrc_keys(Some(&root), Some(&n), &boot, None);
        let cfg = Config::parse(words.join("\n"), "").unwrap();
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert_eq!(cfg.nfs_version, NfsVersion::V4(1));
        let lowers: Vec<(&[Ipv4Addr], &str, &[String])> = cfg
            .lowers
            .iter()
            .map(|l| (&l.servers[..], l.path.as_str(), &l.options[..]))
            .collect();
        assert_eq!(
            lowers,
            [
                (&servers[..], "/srv/system", &opts[..]),
                (&servers[..], "/srv/apps", &opts[..])
            ]
        );
        let mounts: Vec<(&str, &str, Vec<String>)> = cfg
            .mounts
            .iter()
            .map(|(at, p)| (at.as_str(), p.path.as_str(), p.options.clone()))
            .collect();
        assert_eq!(
            mounts,
            [
                ("/home", "/srv/home", vec!["tcp".to_string()]),
                (
                    "/data",
                    "/srv/data",
                    vec!["tcp".to_string(), "ro".to_string()]
                )
            ]
        );
        assert_eq!(cfg.persist.as_ref().unwrap().path, "/srv/nodes");
        assert_eq!(cfg.persist_paths, persist_paths);
        assert_eq!(cfg.server_timeout.as_secs(), 4);
        assert_eq!(cfg.ip.mode(), CoreIp::Static);
        assert_eq!(cfg.ip.client, Some(ip("10.0.2.15")));
        assert_eq!(cfg.ip.gateway, Some(ip("10.0.2.1")));
        assert_eq!(cfg.ip.hostname.as_deref(), Some("lf1"));
        assert_eq!(cfg.ip.dns, [ip("10.0.2.3"), ip("10.0.2.4")]);
        assert_eq!(cfg.overlay_size, "2g");
        assert_eq!(cfg.init, "/lib/systemd/systemd");
        assert_eq!(cfg.modules, ["e1000", "af_packet"]);
        assert_eq!(cfg.dhcp_timeout.as_secs(), 7);
        assert_eq!(cfg.mount_timeout.as_secs(), 8);
        assert_eq!(cfg.carrier_timeout.as_secs(), 9);
        assert_eq!(cfg.on_fail, OnFail::Reboot);
        assert!(cfg.debug);

        let dhcp = Boot {
            ipconfig: IpMode::Dhcp,
            ..Boot::default()
        };
        let w = linuxrc_keys(None, Some(&n), &dhcp, Some(&Boot::default()));
        assert_eq!(w, ["ip=::::lf1::dhcp"]);
        let cfg = Config::parse("", w.join(" ")).unwrap();
        assert_eq!(
            (cfg.ip.mode(), cfg.ip.hostname.as_deref()),
            (CoreIp::Dhcp, Some("lf1"))
        );
    }

    #[test]
    fn file_then_node_line_gives_the_node_settings() {
        // linuxrc reads the file, then the command line: the node's words must turn the
        // cluster's settings into the node's, lists included.
        let base = Boot {
            modules: vec!["e1000".into()],
            ..Boot::default()
        };
        let node = Boot {
            modules: vec!["e1000".into(), "r8169".into()],
            size: "1g".into(),
            debug: true,
            ..base.clone()
        };
        let file = linuxrc_keys(None, None, &base, None).join("\n");
        let line = linuxrc_keys(None, None, &node, Some(&base));
        assert_eq!(
            line,
            [
                "unionroot.size=1g",
                "unionroot.modules=r8169",
                "unionroot.debug"
            ]
        );
        let cfg = Config::parse(&file, line.join(" ")).unwrap();
        assert_eq!(cfg.modules, ["e1000", "r8169"]);
        assert_eq!(cfg.overlay_size, "1g");
        assert!(cfg.debug);
        assert!(linuxrc_keys(None, None, &base, Some(&base)).is_empty());
    }

    #[test]
    fn static_ip_without_router_or_dns_is_short() {
        let n = NodeIp {
            name: "n",
            address: ip("192.168.1.5"),
            server: ip("192.168.1.1"),
            gateway: None,
            netmask: ip("255.255.255.0"),
            dns: &[],
        };
        let b = Boot {
            ipconfig: IpMode::Static,
            ..Boot::default()
        };
        let w = linuxrc_keys(None, Some(&n), &b, Some(&b));
        assert_eq!(w, ["ip=192.168.1.5:192.168.1.1::255.255.255.0:n::off"]);
    }
}
