//! Where the root comes from: which NFS server each piece is mounted from, with which mount
//! flags, and which system tree is the bottom layer when no `unionroot.lower=` is given. A
//! function of facts (the configuration, the DHCP lease, the network as configured, initramfs
//! or NFS root); `linuxrc` gathers them, logs the chosen server and runs the resulting
//! [`RootPlan`]. Server precedence follows `Documentation/admin-guide/nfs/nfsroot.rst`
//! ([`crate::nfs::choose_server`]).

use crate::addr::Mac;
use crate::cmdline::Config;
use crate::dhcp::Lease;
use crate::handoff::{NetInfo, Proto};
use crate::heads::Ranking;
use crate::ms;
use crate::nfs::{
    choose_server, mount_args, split_vfs_options, Access, ClientId, Join, NfsError, NfsRoot,
    ServerSource,
};
use crate::plan::{self, NfsPiece, Persist, RootPlan};
use std::net::Ipv4Addr;
use thiserror::Error;

/// What the root plan depends on.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub cfg: &'a Config,
    /// The lease linuxrc's DHCP client got, if it ran.
    pub lease: Option<&'a Lease>,
    /// The network as configured (by DHCP, `ip=` or the kernel); `None` with `ip=off`.
    pub net: Option<&'a NetInfo>,
    /// Why DHCP's host name was refused, if it was (see [`plan::node_name`]).
    pub hostname_refused: Option<&'a str>,
    /// The kernel's host name (`uname -n`), which its own autoconfig may have set.
    pub kernel_hostname: Option<&'a str>,
    /// `/` is a real (NFS) root: pivot_root instead of switch_root.
    pub pivot: bool,
    /// The boot NIC's MAC, which ranks `a+b+c` heads ([`crate::heads`]); `None` with `ip=off`.
    pub mac: Option<Mac>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RootError {
    #[error("DHCP root-path (option 17) {text:?}: {source}")]
    RootPath { text: String, source: NfsError },
    #[error("no NFS server known for {0}")]
    NoServer(NfsRoot),
    #[error(transparent)]
    Version(NfsError),
    #[error("no system tree to mount")]
    NoSystemTree { pivot: bool },
    #[error("per-node paths need a host name")]
    NoHostname,
    #[error("per-node paths need this node's host name, but {0}")]
    Hostname(String),
}

impl RootError {
    /// What the admin can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            RootError::RootPath { .. } => "fix option root-path on the DHCP server",
            RootError::NoServer(_) => "give the server in the piece, nfsroot= or DHCP",
            RootError::Version(_) => "",
            RootError::NoSystemTree { pivot: true } => {
                "from an NFS root, set unionroot.lower=<server>:<path> in the setup tree's /etc/unionroot.conf"
            }
            RootError::NoSystemTree { pivot: false } => {
                "give nfsroot=[<server>:]<path>, unionroot.lower=, or DHCP option 17 (root-path)"
            }
            RootError::NoHostname => "give one by DHCP option 12 or ip=",
            RootError::Hostname(_) => {
                "fix the host name on the DHCP server (option 12), or give it in ip=::::<name>"
            }
        }
    }
}

/// The plan, and the server that pieces without one of their own use (for the log).
#[derive(Debug, Clone)]
pub struct Planned {
    pub plan: RootPlan,
    pub server: Option<(Ipv4Addr, ServerSource)>,
    /// How each distinct list of `+` heads was ranked for this node (for the log), in plan
    /// order.
    pub heads: Vec<Ranking>,
}

/// The base system stays suid- and dev-capable (it is the system); extra layers and read-write
/// mounts get nodev (and nosuid for read-write), unless their options say otherwise.
const BASE_FLAGS: u64 = ms::RDONLY;
const LAYER_FLAGS: u64 = ms::RDONLY | ms::NODEV;
const RW_FLAGS: u64 = ms::NOSUID | ms::NODEV;

pub fn root_plan(f: &Facts) -> Result<Planned, RootError> {
    let cfg = f.cfg;
    let root_path = match f.lease.and_then(|l| l.root_path.as_deref()) {
        Some(rp) => Some(NfsRoot::parse(rp).map_err(|source| RootError::RootPath {
            text: rp.to_string(),
            source,
        })?),
        None => None,
    };
    // From an NFS root, nfsroot= names the kernel's own root (the setup tree), not the system.
    let nfsroot = if f.pivot { None } else { cfg.nfsroot.as_ref() };
    let server = choose_server(
        nfsroot,
        root_path.as_ref(),
        f.lease.and_then(|l| l.siaddr),
        f.lease.map(|l| l.server_id),
    )
    .or_else(|| {
        let n = f.net?;
        let source = match n.proto {
            Proto::Kernel => ServerSource::Kernel,
            Proto::Dhcp | Proto::Static => ServerSource::IpParam,
        };
        n.root_server.map(|s| (s, source))
    });
    let client = f.net.and_then(|n| n.address);
    let order = |piece: &NfsRoot| piece.ordered(f.mac).0;
    // A piece without servers uses the chosen server; when that came from a list of heads,
    // it uses the whole ranked list, so that it spreads and fails over like the root.
    let source_heads = server.and_then(|(_, source)| match source {
        ServerSource::Nfsroot => nfsroot,
        ServerSource::RootPath => root_path.as_ref(),
        _ => None,
    });
    let source_heads = source_heads.filter(|p| p.join == Join::Heads);
    // With heads, the server to name is this node's first choice, not the first written.
    let server = match (server, source_heads) {
        (Some((_, source)), Some(heads)) => heads
            .ordered(f.mac)
            .0
            .first()
            .map(|s| (*s, source))
            .or(server),
        _ => server,
    };
    let resolve = |piece: &NfsRoot, flags: u64| -> Result<NfsPiece, RootError> {
        let servers = match (piece.servers.is_empty(), source_heads) {
            (false, _) => order(piece),
            (true, Some(heads)) => order(heads),
            (true, None) => vec![server
                .map(|(s, _)| s)
                .ok_or_else(|| RootError::NoServer(piece.clone()))?],
        };
        let path = client.map_or(piece.path.clone(), |c| piece.expand(c));
        let version = piece
            .version_in_options()
            .map_err(RootError::Version)?
            .unwrap_or(cfg.nfs_version);
        let (flags, opts) = split_vfs_options(&piece.options, flags);
        let access = if flags & ms::RDONLY != 0 {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        let candidates = servers
            .iter()
            .map(|s| mount_args(*s, &path, version, client, &opts, access))
            .collect();
        Ok(NfsPiece { candidates, flags })
    };
    // An image is the system: the bottom layer, read-only as the base always is (its mount
    // flags apply to the images directory; the image itself is mounted ro from a read-only
    // loop device). `unionroot.lower=` pieces then stack above it as extra layers.
    let image = cfg
        .image
        .as_ref()
        .map(|i| {
            Ok::<_, RootError>(plan::ImagePlan {
                dir: resolve(&i.dir, BASE_FLAGS | ms::NODEV)?,
                name: i.name.clone(),
                ram: cfg.image_ram,
            })
        })
        .transpose()?;
    let lowers: Vec<NfsRoot> = if cfg.lowers.is_empty() && image.is_none() {
        let base = nfsroot
            .or(root_path.as_ref())
            .ok_or(RootError::NoSystemTree { pivot: f.pivot })?;
        vec![base.clone()]
    } else {
        cfg.lowers.clone()
    };
    let mut heads: Vec<Ranking> = Vec::new();
    let with_heads = cfg
        .image
        .iter()
        .map(|i| &i.dir)
        .chain(&lowers)
        .chain(cfg.mounts.iter().map(|(_, p)| p))
        .chain(cfg.persist.iter().filter(|_| !cfg.persist_paths.is_empty()))
        .chain(source_heads);
    for r in with_heads.filter_map(|p| p.ordered(f.mac).1) {
        if !heads.contains(&r) {
            heads.push(r);
        }
    }
    let lowers = lowers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let base = i == 0 && image.is_none();
            resolve(l, if base { BASE_FLAGS } else { LAYER_FLAGS })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rw_mounts = cfg
        .mounts
        .iter()
        .map(|(at, piece)| Ok((at.clone(), resolve(piece, RW_FLAGS)?)))
        .collect::<Result<Vec<_>, RootError>>()?;
    let persist = match &cfg.persist {
        Some(piece) if !cfg.persist_paths.is_empty() => {
            let node = plan::node_name(
                f.net.and_then(|n| n.hostname.as_ref()),
                f.hostname_refused,
                f.kernel_hostname,
                client,
            )
            .map_err(RootError::Hostname)?
            .ok_or(RootError::NoHostname)?;
            Some(Persist {
                piece: resolve(piece, RW_FLAGS)?,
                node,
                paths: cfg.persist_paths.clone(),
            })
        }
        _ => None,
    };
    Ok(Planned {
        plan: RootPlan {
            image,
            lowers,
            rw_mounts,
            persist,
            mount_timeout: cfg.mount_timeout,
            server_timeout: cfg.server_timeout,
            overlay_size: cfg.overlay_size.clone(),
            init: cfg.init.clone(),
            init_args: cfg.init_args.clone(),
            pivot: f.pivot,
            nfs_client_id: cfg.nfs_client_id.clone().or(f.mac.map(ClientId::from_mac)),
        },
        server,
        heads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Hostname;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn lease(root_path: Option<&str>, siaddr: Option<&str>) -> Lease {
        Lease {
            address: ip("10.0.2.15"),
            netmask: ip("255.255.255.0"),
            broadcast: None,
            routers: Vec::new(),
            dns: Vec::new(),
            hostname: None,
            domain: None,
            root_path: root_path.map(String::from),
            mtu: None,
            ntp: Vec::new(),
            server_id: ip("10.0.2.4"),
            siaddr: siaddr.map(ip),
            tftp_server: None,
            bootfile: None,
            lease_secs: Some(3600),
        }
    }

    fn net(proto: Proto, root_server: Option<&str>, hostname: Option<&str>) -> NetInfo {
        NetInfo {
            device: "eth0".into(),
            proto,
            address: Some(ip("10.0.2.15")),
            prefix: 24,
            root_server: root_server.map(ip),
            hostname: hostname.map(|h| Hostname::parse(h).unwrap()),
            ..NetInfo::default()
        }
    }

    /// `server[:port] source path flags` of every candidate, lowers then mounts then persist.
    fn shown(p: &Planned) -> Vec<String> {
        let piece = |what: &str, n: &NfsPiece| {
            n.candidates
                .iter()
                .map(|c| format!("{what} {} {} {:#x}", c.server, c.source, n.flags))
                .collect::<Vec<_>>()
        };
        let mut v: Vec<String> = p
            .plan
            .image
            .iter()
            .flat_map(|i| piece(&format!("image {}", i.name), &i.dir))
            .collect();
        v.extend(p.plan.lowers.iter().flat_map(|l| piece("lower", l)));
        for (at, m) in &p.plan.rw_mounts {
            v.extend(piece(&format!("mount {at}"), m));
        }
        if let Some(ps) = &p.plan.persist {
            v.extend(piece(&format!("persist {}", ps.node), &ps.piece));
        }
        v
    }

    struct Case {
        what: &'static str,
        cmdline: &'static str,
        lease: Option<Lease>,
        net: Option<NetInfo>,
        pivot: bool,
        kernel_hostname: Option<&'static str>,
        /// The default server and its source, or the error.
        server: Result<Option<(&'static str, ServerSource)>, RootError>,
        pieces: &'static [&'static str],
    }

    fn case(what: &'static str, cmdline: &'static str) -> Case {
        Case {
            what,
            cmdline,
            lease: None,
            net: None,
            pivot: false,
            kernel_hostname: None,
            server: Ok(None),
            pieces: &[],
        }
    }

    #[test]
    fn server_flags_and_fallback_lower_by_table() {
        let dhcp = |rp: Option<&str>, si: Option<&str>| {
            (
                Some(lease(rp, si)),
                Some(net(Proto::Dhcp, si.or(Some("10.0.2.4")), None)),
            )
        };
        let (l1, n1) = dhcp(Some("10.0.2.9:/srv/system"), Some("10.0.2.5"));
        let (l2, n2) = dhcp(None, Some("10.0.2.5"));
        let (l3, n3) = dhcp(Some("/srv/system"), None);
        let (l4, n4) = dhcp(Some("10.0.2.9:/srv/system"), None);
        let (l5, n5) = dhcp(Some("not a path"), None);
        let cases = [
            Case {
                server: Ok(Some(("10.0.2.1", ServerSource::Nfsroot))),
                pieces: &["lower 10.0.2.1 10.0.2.1:/srv/sys 0x1"],
                ..case(
                    "nfsroot= names the server and the system",
                    "nfsroot=10.0.2.1:/srv/sys",
                )
            },
            Case {
                lease: l1,
                net: n1,
                server: Ok(Some(("10.0.2.9", ServerSource::RootPath))),
                pieces: &["lower 10.0.2.9 10.0.2.9:/srv/system 0x1"],
                ..case("DHCP root-path when nfsroot= is absent", "")
            },
            Case {
                lease: l2,
                net: n2,
                server: Ok(Some(("10.0.2.5", ServerSource::NextServer))),
                pieces: &[
                    "lower 10.0.2.5 10.0.2.5:/srv/base 0x1",
                    "lower 10.0.2.7 10.0.2.7:/srv/apps 0x5",
                    "mount /home 10.0.2.5 10.0.2.5:/srv/home 0x6",
                    "mount /data 10.0.2.5 10.0.2.5:/srv/data 0x7",
                ],
                ..case(
                    "next-server for pieces without one; layers nodev, mounts nosuid,nodev",
                    "unionroot.lower=/srv/base unionroot.lower=10.0.2.7:/srv/apps \
                     unionroot.mount=/home=/srv/home unionroot.mount=/data=/srv/data,ro",
                )
            },
            Case {
                lease: l3,
                net: n3,
                server: Ok(Some(("10.0.2.4", ServerSource::ServerId))),
                pieces: &["lower 10.0.2.4 10.0.2.4:/srv/system 0x1"],
                ..case("the DHCP server itself when nothing else names one", "")
            },
            Case {
                lease: l4.clone(),
                net: n4.clone(),
                pivot: true,
                server: Ok(Some(("10.0.2.9", ServerSource::RootPath))),
                pieces: &["lower 10.0.2.9 10.0.2.9:/srv/system 0x1"],
                ..case(
                    "from an NFS root, nfsroot= is the kernel's root, not the system",
                    "nfsroot=10.0.2.1:/srv/setup",
                )
            },
            Case {
                net: Some(net(Proto::Kernel, Some("10.0.2.6"), None)),
                pivot: true,
                server: Ok(Some(("10.0.2.6", ServerSource::Kernel))),
                pieces: &["lower 10.0.2.6 10.0.2.6:/srv/system 0x1"],
                ..case(
                    "the kernel's bootserver from /proc/net/pnp",
                    "unionroot.lower=/srv/system",
                )
            },
            Case {
                net: Some(net(Proto::Static, Some("10.0.2.8"), None)),
                server: Ok(Some(("10.0.2.8", ServerSource::IpParam))),
                pieces: &["lower 10.0.2.8 10.0.2.8:/srv/system 0x1"],
                ..case(
                    "the server field of a static ip=",
                    "unionroot.lower=/srv/system",
                )
            },
            Case {
                net: Some(net(Proto::Static, Some("10.0.2.8"), None)),
                server: Ok(Some(("10.0.2.8", ServerSource::Nfsroot))),
                pieces: &["image system 10.0.2.2 10.0.2.2:/srv/images 0x5"],
                ..case(
                    "an image alone is the system: nfsroot= is not mounted beside it",
                    "nfsroot=10.0.2.8:/srv/system unionroot.image=10.0.2.2:/srv/images/system",
                )
            },
            Case {
                net: Some(net(Proto::Static, Some("10.0.2.8"), None)),
                server: Ok(Some(("10.0.2.8", ServerSource::IpParam))),
                pieces: &[
                    "image system 10.0.2.8 10.0.2.8:/srv/images 0x5",
                    "lower 10.0.2.8 10.0.2.8:/srv/layer 0x5",
                    "mount /home 10.0.2.8 10.0.2.8:/srv/home 0x6",
                ],
                ..case(
                    "an image under a lower, beside a read-write mount; server from ip=",
                    "unionroot.image=/srv/images/system unionroot.lower=/srv/layer \
                     unionroot.mount=/home=/srv/home",
                )
            },
            Case {
                net: Some(net(Proto::Static, None, None)),
                server: Err(RootError::NoServer(NfsRoot::parse("/srv/system").unwrap())),
                ..case("no server anywhere", "unionroot.lower=/srv/system")
            },
            Case {
                net: Some(net(Proto::Static, Some("10.0.2.8"), None)),
                server: Err(RootError::NoSystemTree { pivot: false }),
                ..case("no system tree", "")
            },
            Case {
                net: Some(net(Proto::Kernel, Some("10.0.2.8"), None)),
                pivot: true,
                server: Err(RootError::NoSystemTree { pivot: true }),
                ..case(
                    "no system tree from an NFS root",
                    "nfsroot=10.0.2.1:/srv/setup",
                )
            },
            Case {
                lease: l5,
                net: n5,
                server: Err(RootError::RootPath {
                    text: "not a path".into(),
                    source: NfsRoot::parse("not a path").unwrap_err(),
                }),
                ..case("a bad root-path is named", "")
            },
            Case {
                net: Some(net(Proto::Dhcp, Some("10.0.2.2"), Some("lf1"))),
                server: Ok(Some(("10.0.2.2", ServerSource::IpParam))),
                pieces: &[
                    "lower 10.0.2.2 10.0.2.2:/srv/system 0x1",
                    "persist lf1 10.0.2.2 10.0.2.2:/srv/nodes 0x6",
                ],
                ..case(
                    "per-node paths under the host name",
                    "unionroot.lower=/srv/system unionroot.persist=/srv/nodes \
                     unionroot.persist_paths=/var/log",
                )
            },
            Case {
                net: Some(net(Proto::Kernel, Some("10.0.2.2"), None)),
                kernel_hostname: Some("bad_name"),
                server: Err(RootError::Hostname(
                    "the kernel's host name \"bad_name\" (from its own autoconfig) is refused: \
                     it contains '_'; a host name has only letters, digits, '-' and dots between \
                     labels"
                        .into(),
                )),
                ..case(
                    "a refused kernel host name stops per-node paths",
                    "unionroot.lower=/srv/system unionroot.persist=/srv/nodes \
                     unionroot.persist_paths=/var/log",
                )
            },
            Case {
                server: Err(RootError::NoHostname),
                ..case(
                    "per-node paths without a network have no name",
                    "unionroot.lower=10.0.2.2:/srv/system unionroot.persist=10.0.2.2:/srv/nodes \
                     unionroot.persist_paths=/var/log",
                )
            },
        ];
        for c in &cases {
            let cfg = Config::parse("", c.cmdline).unwrap();
            let got = root_plan(&Facts {
                cfg: &cfg,
                lease: c.lease.as_ref(),
                net: c.net.as_ref(),
                hostname_refused: None,
                kernel_hostname: c.kernel_hostname,
                pivot: c.pivot,
                mac: None,
            });
            match (&got, &c.server) {
                (Ok(p), Ok(want)) => {
                    let want = want.map(|(s, src)| (ip(s), src));
                    assert_eq!(p.server, want, "{}", c.what);
                    assert_eq!(shown(p), c.pieces, "{}", c.what);
                    assert_eq!(p.plan.pivot, c.pivot, "{}", c.what);
                }
                (Err(e), Err(want)) => assert_eq!(e, want, "{}", c.what),
                _ => panic!("{}: got {got:?}, want {:?}", c.what, c.server),
            }
        }
    }

    #[test]
    fn a_refused_dhcp_host_name_never_becomes_a_path() {
        let cfg = Config::parse(
            "",
            "unionroot.lower=10.0.2.2:/s unionroot.persist=10.0.2.2:/n unionroot.persist_paths=/var/log",
        )
        .unwrap();
        let n = net(Proto::Dhcp, None, None);
        let f = Facts {
            cfg: &cfg,
            lease: None,
            net: Some(&n),
            hostname_refused: Some("DHCP option 12 (host name) \"..\" is refused"),
            kernel_hostname: Some("other"),
            pivot: false,
            mac: None,
        };
        let e = root_plan(&f).unwrap_err();
        assert!(
            matches!(e, RootError::Hostname(ref w) if w.contains("option 12")),
            "{e}"
        );
        assert!(e.hint().contains("option 12"));
    }

    /// A DHCP node with `cfg` and `n`, booting from an initramfs.
    fn dhcp_facts<'a>(cfg: &'a Config, n: &'a NetInfo, mac: Option<Mac>) -> Facts<'a> {
        Facts {
            cfg,
            lease: None,
            net: Some(n),
            hostname_refused: None,
            kernel_hostname: None,
            pivot: false,
            mac,
        }
    }

    #[test]
    fn each_node_gets_its_own_nfs_client_identifier_unless_the_command_line_names_one() {
        let n = net(Proto::Dhcp, None, None);
        let id = |cmdline: &str, mac: Option<Mac>| {
            let cfg = Config::parse("", cmdline).unwrap();
            root_plan(&dhcp_facts(&cfg, &n, mac))
                .unwrap()
                .plan
                .nfs_client_id
                .map(|c| (c.to_string(), c.from_cmdline))
        };
        let root = "nfsroot=10.0.0.1:/srv/system";
        let (a, b) = (Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]));
        assert_eq!(
            id(root, Some(a)),
            Some(("unionroot-020000000001".into(), false))
        );
        assert_ne!(id(root, Some(a)), id(root, Some(b)));
        let named = format!("{root} nfs.nfs4_unique_id=rack3-n12");
        assert_eq!(id(&named, Some(a)), Some(("rack3-n12".into(), true)));
        assert_eq!(id(&named, None), Some(("rack3-n12".into(), true)));
        assert_eq!(id(root, None), None);
        // A bad one is a named error, with the fix.
        let e = Config::parse("", "nfs.nfs4_unique_id=a/b")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nfs.nfs4_unique_id") && e.contains("e.g. nfs.nfs4_unique_id=node07"),
            "{e}"
        );
    }

    #[test]
    fn heads_are_ranked_by_the_nodes_mac_and_reach_serverless_pieces() {
        let cfg = Config::parse(
            "",
            "nfsroot=10.0.0.1+10.0.0.2+10.0.0.3:/srv/system \
             unionroot.mount=/home=/srv/home unionroot.mount=/data=10.0.0.9|10.0.0.8:/d",
        )
        .unwrap();
        let n = net(Proto::Dhcp, None, None);
        let heads = [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")];
        let mut firsts = std::collections::BTreeSet::new();
        for last in 0..=255u8 {
            let mac = Mac([0x52, 0x54, 0, 0x77, 0, last]);
            let p = root_plan(&dhcp_facts(&cfg, &n, Some(mac))).unwrap();
            let want = crate::heads::rank(&heads, mac);
            let servers = |piece: &NfsPiece| -> Vec<Ipv4Addr> {
                piece.candidates.iter().map(|c| c.server).collect()
            };
            assert_eq!(servers(&p.plan.lowers[0]), want);
            // /home names no server: it follows the root's heads, in the same order.
            assert_eq!(servers(&p.plan.rw_mounts[0].1), want);
            // A failover list stays as written.
            assert_eq!(
                servers(&p.plan.rw_mounts[1].1),
                [ip("10.0.0.9"), ip("10.0.0.8")]
            );
            assert_eq!(p.heads.len(), 1, "one line for the one list of heads");
            assert_eq!(p.heads[0].order, want);
            assert_eq!(p.heads[0].mac, Some(mac));
            assert_eq!(
                p.server,
                Some((want[0], ServerSource::Nfsroot)),
                "the logged server"
            );
            firsts.insert(want[0]);
        }
        assert_eq!(firsts.len(), 3, "every head serves some of 256 nodes");
        // Without a NIC (ip=off), heads are tried as written.
        let p = root_plan(&dhcp_facts(&cfg, &n, None)).unwrap();
        assert_eq!(
            p.plan.lowers[0]
                .candidates
                .iter()
                .map(|c| c.server)
                .collect::<Vec<_>>(),
            heads
        );
    }
}
