//! NFS root description and mount(2) data, following the kernel's
//! `Documentation/admin-guide/nfs/nfsroot.rst` (`nfsroot=[<server-ip>:]<root-dir>[,<nfs-options>]`)
//! and nfs(5) for the option names. The kernel's in-mount parser takes text options, but it does
//! not resolve host names, so the server is always an address and `addr=` is always passed.

use std::fmt;
use std::net::Ipv4Addr;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NfsError {
    #[error(
        "nfsroot={0:?}: the root directory is empty; give nfsroot=[<server>:]<path>[,<options>]"
    )]
    EmptyPath(String),
    #[error("nfsroot={0:?}: the path must be absolute (start with '/')")]
    RelativePath(String),
    #[error("server {0:?} is not an IPv4 address; linuxrc does not resolve names, so give the server's address")]
    BadServer(String),
    #[error("servers {0:?} mix '+' (equivalent heads) and '|' (failover order); give one kind, e.g. 10.0.0.1+10.0.0.2:/srv/system")]
    MixedServers(String),
    #[error("NFS version {0:?} is not supported; use 3, 4, 4.0, 4.1 or 4.2")]
    BadVersion(String),
    #[error("nfsroot={0:?}: it contains a control character; give nfsroot=[<server>:]<path>[,<options>]")]
    Control(String),
    #[error(
        "nfsroot={0:?}: the path contains whitespace; e.g. nfsroot=10.0.0.1:/srv/system,vers=3"
    )]
    SpaceInPath(String),
}

/// The NFS protocol version used for a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NfsVersion {
    #[default]
    V3,
    /// NFSv4 with the given minor version (0, 1 or 2).
    V4(u8),
}

impl NfsVersion {
    pub fn parse(s: &str) -> Result<Self, NfsError> {
        match s.trim() {
            "3" => Ok(NfsVersion::V3),
            "4" | "4.2" => Ok(NfsVersion::V4(2)),
            "4.0" => Ok(NfsVersion::V4(0)),
            "4.1" => Ok(NfsVersion::V4(1)),
            other => Err(NfsError::BadVersion(other.to_string())),
        }
    }

    /// The kernel module that provides this version's client.
    pub fn module(self) -> &'static str {
        match self {
            NfsVersion::V3 => "nfsv3",
            NfsVersion::V4(_) => "nfsv4",
        }
    }

    pub fn fstype(self) -> &'static str {
        match self {
            NfsVersion::V3 => "nfs",
            NfsVersion::V4(_) => "nfs4",
        }
    }
}

impl fmt::Display for NfsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NfsVersion::V3 => write!(f, "3"),
            NfsVersion::V4(m) => write!(f, "4.{m}"),
        }
    }
}

/// How a piece's servers relate to each other (the same shape as the storm branch's, issue 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Join {
    /// `a|b|c`: tried in the order written (one server is this too).
    #[default]
    Failover,
    /// `a+b+c`: equivalent heads serving the same data; each node ranks them itself.
    Heads,
}

impl Join {
    fn separator(self) -> char {
        match self {
            Join::Failover => '|',
            Join::Heads => '+',
        }
    }
}

/// A parsed `nfsroot=` (or DHCP root-path, or a `unionroot.` piece: same shape). Several
/// servers may be given as `a|b|c:` for failover; they are tried in order. `a+b+c:` lists
/// equivalent heads ([`Join::Heads`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsRoot {
    pub servers: Vec<Ipv4Addr>,
    /// `|` or `+` between the servers.
    pub join: Join,
    pub path: String,
    /// Options exactly as given after the path, in order.
    pub options: Vec<String>,
}

impl NfsRoot {
    /// Parses `[<server-ip>[|<server-ip>...]:]<root-dir>[,<nfs-options>]`. `%s` in the path is left for
    /// [`NfsRoot::expand`], which substitutes the client address once it is known.
    pub fn parse(text: &str) -> Result<Self, NfsError> {
        let text = text.trim();
        // The path and options reach mount(2), the log and /run/net-*.conf: no line breaks.
        if text.chars().any(char::is_control) {
            return Err(NfsError::Control(text.to_string()));
        }
        let (head, opts) = match text.split_once(',') {
            Some((h, o)) => (h, o),
            None => (text, ""),
        };
        let (servers, join, path) = match head.split_once(':') {
            Some((s, p)) => {
                let join = match (s.contains('|'), s.contains('+')) {
                    (true, true) => return Err(NfsError::MixedServers(s.to_string())),
                    (false, true) => Join::Heads,
                    _ => Join::Failover,
                };
                let servers = s
                    .split(join.separator())
                    .map(|a| {
                        a.parse::<Ipv4Addr>()
                            .map_err(|_| NfsError::BadServer(a.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (servers, join, p)
            }
            None => (Vec::new(), Join::Failover, head),
        };
        if path.is_empty() {
            return Err(NfsError::EmptyPath(text.to_string()));
        }
        if !path.starts_with('/') {
            return Err(NfsError::RelativePath(text.to_string()));
        }
        // A trailing space before the options (`/srv/x ,vers=3`) would become part of the
        // exported path the server is asked for; refuse rather than guess.
        if path.chars().any(char::is_whitespace) {
            return Err(NfsError::SpaceInPath(text.to_string()));
        }
        let options = opts
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(String::from)
            .collect();
        Ok(NfsRoot {
            servers,
            join,
            path: path.to_string(),
            options,
        })
    }

    /// Substitutes `%s` in the path with the client's address, as the kernel does.
    pub fn expand(&self, client: Ipv4Addr) -> String {
        self.path.replace("%s", &client.to_string())
    }

    /// The version named in the options (`vers=`, `nfsvers=`, `v3`, `v4`, `v4.1`), if any.
    pub fn version_in_options(&self) -> Result<Option<NfsVersion>, NfsError> {
        let mut found = None;
        for o in &self.options {
            let v = match o.split_once('=') {
                Some(("vers" | "nfsvers", v)) => Some(v),
                None => o
                    .strip_prefix('v')
                    .filter(|v| v.starts_with(['2', '3', '4'])),
                _ => None,
            };
            if let Some(v) = v {
                found = Some(NfsVersion::parse(v)?);
            }
        }
        Ok(found)
    }
}

impl fmt::Display for NfsRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.servers.is_empty() {
            let s: Vec<String> = self.servers.iter().map(|a| a.to_string()).collect();
            write!(f, "{}:", s.join(&self.join.separator().to_string()))?;
        }
        write!(f, "{}", self.path)?;
        for o in &self.options {
            write!(f, ",{o}")?;
        }
        Ok(())
    }
}

/// Everything mount(2) needs for one NFS mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsMountArgs {
    /// The server and the port its NFS service listens on (for the reachability probe).
    pub server: Ipv4Addr,
    pub port: u16,
    pub source: String,
    pub fstype: &'static str,
    pub data: String,
}

/// Builds the mount(2) arguments for an NFS mount.
///
/// Defaults: TCP, `timeo=600,retrans=2` (nfs(5)'s TCP defaults, stated so that a reader of the
/// log sees them), and `nolock` for every v3 piece: with NLM the kernel's lockd must register
/// with an rpcbind in the client at mount time, which no initramfs runs, and mount(2) then fails
/// with ECONNREFUSED ("svc: failed to register lockdv1"). So v3 locks are local to the node;
/// NFSv4 has locking in the protocol and needs no rpcbind, so use it where locks must be
/// cluster-wide. An explicit `lock` option is honoured. v4 passes `clientaddr=` because the kernel
/// cannot always pick the callback address by itself this early. Options given by the user
/// replace a default with the same key.
pub fn mount_args(
    server: Ipv4Addr,
    path: &str,
    version: NfsVersion,
    client: Option<Ipv4Addr>,
    user_options: &[String],
) -> NfsMountArgs {
    let mut opts: Vec<String> = Vec::new();
    match version {
        NfsVersion::V3 => {
            opts.extend(["vers=3", "proto=tcp", "nolock"].map(String::from));
        }
        NfsVersion::V4(minor) => {
            opts.push(format!("vers=4.{minor}"));
            opts.push("proto=tcp".into());
            if let Some(c) = client {
                opts.push(format!("clientaddr={c}"));
            }
        }
    }
    opts.extend(["timeo=600", "retrans=2"].map(String::from));
    for u in user_options {
        let key = option_key(u);
        // Version aliases and the transport shorthands collide with our defaults.
        let replaces = |d: &String| {
            let dk = option_key(d);
            dk == key
                || (is_version_key(key) && is_version_key(dk))
                || (is_proto_key(key) && is_proto_key(dk))
                || (key == "lock" && dk == "nolock")
        };
        opts.retain(|d| !replaces(d));
        opts.push(u.clone());
    }
    opts.retain(|o| option_key(o) != "addr");
    opts.push(format!("addr={server}"));
    let port = opts
        .iter()
        .find_map(|o| o.strip_prefix("port="))
        .and_then(|p| p.parse().ok())
        .filter(|p| *p != 0)
        .unwrap_or(2049);
    NfsMountArgs {
        server,
        port,
        source: format!("{server}:{path}"),
        fstype: version.fstype(),
        data: opts.join(","),
    }
}

fn option_key(o: &str) -> &str {
    o.split_once('=').map_or(o, |(k, _)| k)
}

fn is_version_key(k: &str) -> bool {
    matches!(
        k,
        "vers" | "nfsvers" | "v2" | "v3" | "v4" | "v4.0" | "v4.1" | "v4.2"
    )
}

fn is_proto_key(k: &str) -> bool {
    matches!(k, "proto" | "tcp" | "udp")
}

/// Splits mount(2) flag words (`ro`, `rw`, `nosuid`, `suid`, `nodev`, `dev`, `noexec`, `exec`)
/// out of a piece's options, applying them to `flags`; the rest is NFS mount data.
pub fn split_vfs_options(options: &[String], mut flags: u64) -> (u64, Vec<String>) {
    use crate::ms;
    let mut rest = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => flags |= ms::RDONLY,
            "rw" => flags &= !ms::RDONLY,
            "nosuid" => flags |= ms::NOSUID,
            "suid" => flags &= !ms::NOSUID,
            "nodev" => flags |= ms::NODEV,
            "dev" => flags &= !ms::NODEV,
            "noexec" => flags |= ms::NOEXEC,
            "exec" => flags &= !ms::NOEXEC,
            _ => rest.push(o.clone()),
        }
    }
    (flags, rest)
}

/// Where the NFS server's address came from, for the log line that says which one was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSource {
    Nfsroot,
    RootPath,
    NextServer,
    ServerId,
    /// The server field of a static `ip=`.
    IpParam,
    /// The kernel's own autoconfig (`bootserver` in /proc/net/pnp).
    Kernel,
}

impl fmt::Display for ServerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerSource::Nfsroot => "nfsroot= on the command line",
            ServerSource::RootPath => "DHCP option 17 (root-path)",
            ServerSource::NextServer => "DHCP next-server (siaddr)",
            ServerSource::ServerId => "DHCP server identifier (option 54)",
            ServerSource::IpParam => "the server field of ip=",
            ServerSource::Kernel => "the kernel's autoconfig (/proc/net/pnp bootserver)",
        })
    }
}

/// Picks the NFS server: the `nfsroot=` host, then the root-path host, then siaddr, then the DHCP
/// server id. The DHCP server is often not the boot server, so it comes last.
pub fn choose_server(
    nfsroot: Option<&NfsRoot>,
    root_path: Option<&NfsRoot>,
    siaddr: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
) -> Option<(Ipv4Addr, ServerSource)> {
    nfsroot
        .and_then(|r| r.servers.first().copied())
        .map(|s| (s, ServerSource::Nfsroot))
        .or_else(|| {
            root_path
                .and_then(|r| r.servers.first().copied())
                .map(|s| (s, ServerSource::RootPath))
        })
        .or_else(|| {
            siaddr
                .filter(|a| !a.is_unspecified())
                .map(|s| (s, ServerSource::NextServer))
        })
        .or_else(|| server_id.map(|s| (s, ServerSource::ServerId)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn nfsroot_forms_from_nfsroot_rst() {
        let cases: &[(&str, Option<&str>, &str, &[&str])] = &[
            ("/srv/system", None, "/srv/system", &[]),
            ("10.0.2.2:/srv/system", Some("10.0.2.2"), "/srv/system", &[]),
            (
                "10.0.2.2:/srv/system,vers=3,tcp",
                Some("10.0.2.2"),
                "/srv/system",
                &["vers=3", "tcp"],
            ),
            ("/nodes/%s,rsize=8192", None, "/nodes/%s", &["rsize=8192"]),
        ];
        for (text, server, path, opts) in cases {
            let r = NfsRoot::parse(text).unwrap();
            assert_eq!(r.servers.first().copied(), server.map(ip), "{text}");
            assert_eq!(r.path, *path, "{text}");
            assert_eq!(
                r.options,
                opts.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{text}"
            );
            assert_eq!(r.to_string(), *text, "round trip");
        }
        assert_eq!(
            NfsRoot::parse("/nodes/%s").unwrap().expand(ip("10.0.2.15")),
            "/nodes/10.0.2.15"
        );
    }

    #[test]
    fn failover_servers_and_vfs_flags() {
        let r = NfsRoot::parse("10.0.0.1|10.0.0.2:/srv/tools,vers=4,nodev,rw").unwrap();
        assert_eq!(r.servers, [ip("10.0.0.1"), ip("10.0.0.2")]);
        assert_eq!(
            r.to_string(),
            "10.0.0.1|10.0.0.2:/srv/tools,vers=4,nodev,rw"
        );
        assert_eq!(
            NfsRoot::parse("10.0.0.1|x:/a").unwrap_err(),
            NfsError::BadServer("x".into())
        );
        use crate::ms;
        let (flags, rest) = split_vfs_options(&r.options, ms::RDONLY | ms::NOSUID);
        assert_eq!(flags, ms::NOSUID | ms::NODEV);
        assert_eq!(rest, ["vers=4"]);
    }

    #[test]
    fn equivalent_heads_round_trip_and_do_not_mix_with_failover() {
        let r = NfsRoot::parse("10.0.0.1+10.0.0.2+10.0.0.3:/srv/system,vers=4.2").unwrap();
        assert_eq!(r.servers, [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")]);
        assert_eq!(r.join, Join::Heads);
        assert_eq!(
            r.to_string(),
            "10.0.0.1+10.0.0.2+10.0.0.3:/srv/system,vers=4.2"
        );
        assert_eq!(
            NfsRoot::parse("10.0.0.1|10.0.0.2:/a").unwrap().join,
            Join::Failover
        );
        assert_eq!(NfsRoot::parse("10.0.0.1:/a").unwrap().join, Join::Failover);
        assert_eq!(
            NfsRoot::parse("10.0.0.1+10.0.0.2|10.0.0.3:/a").unwrap_err(),
            NfsError::MixedServers("10.0.0.1+10.0.0.2|10.0.0.3".into())
        );
        assert_eq!(
            NfsRoot::parse("10.0.0.1+:/a").unwrap_err(),
            NfsError::BadServer(String::new())
        );
    }

    #[test]
    fn bad_nfsroot_is_a_named_error() {
        assert_eq!(
            NfsRoot::parse("10.0.2.2:").unwrap_err(),
            NfsError::EmptyPath("10.0.2.2:".into())
        );
        assert_eq!(
            NfsRoot::parse("srv").unwrap_err(),
            NfsError::RelativePath("srv".into())
        );
        assert_eq!(
            NfsRoot::parse("nfs.example:/x").unwrap_err(),
            NfsError::BadServer("nfs.example".into())
        );
        assert_eq!(
            NfsRoot::parse("10.0.2.2:/srv/x ,vers=3").unwrap_err(),
            NfsError::SpaceInPath("10.0.2.2:/srv/x ,vers=3".into())
        );
        assert_eq!(
            NfsRoot::parse("10.0.2.2:/srv/x\t").unwrap(),
            NfsRoot::parse("10.0.2.2:/srv/x").unwrap(),
            "surrounding whitespace of the whole value is not part of it"
        );
        assert!(matches!(
            NfsRoot::parse("10.0.2.2:/srv/x,vers=3\nnameserver 1.2.3.4"),
            Err(NfsError::Control(_))
        ));
        assert!(matches!(
            NfsRoot::parse("10.0.2.2:/srv/\x1bx"),
            Err(NfsError::Control(_))
        ));
        assert_eq!(
            NfsVersion::parse("5").unwrap_err(),
            NfsError::BadVersion("5".into())
        );
    }

    #[test]
    fn version_from_options() {
        let v = |t: &str| NfsRoot::parse(t).unwrap().version_in_options().unwrap();
        assert_eq!(v("/x,vers=4.1"), Some(NfsVersion::V4(1)));
        assert_eq!(v("/x,nfsvers=3"), Some(NfsVersion::V3));
        assert_eq!(v("/x,v4"), Some(NfsVersion::V4(2)));
        assert_eq!(v("/x,tcp"), None);
        assert!(NfsRoot::parse("/x,vers=9")
            .unwrap()
            .version_in_options()
            .is_err());
    }

    #[test]
    fn mount_args_defaults_and_overrides() {
        let a = mount_args(ip("10.0.2.2"), "/srv/system", NfsVersion::V3, None, &[]);
        assert_eq!(a.source, "10.0.2.2:/srv/system");
        assert_eq!(a.fstype, "nfs");
        assert_eq!(
            a.data,
            "vers=3,proto=tcp,nolock,timeo=600,retrans=2,addr=10.0.2.2"
        );

        let a = mount_args(
            ip("10.0.2.2"),
            "/system",
            NfsVersion::V4(2),
            Some(ip("10.0.2.15")),
            &[],
        );
        assert_eq!(a.fstype, "nfs4");
        assert_eq!(
            a.data,
            "vers=4.2,proto=tcp,clientaddr=10.0.2.15,timeo=600,retrans=2,addr=10.0.2.2"
        );

        let user: Vec<String> = ["udp", "timeo=14", "v3", "lock", "addr=1.2.3.4"]
            .map(String::from)
            .to_vec();
        let a = mount_args(ip("10.0.2.2"), "/x", NfsVersion::V3, None, &user);
        assert_eq!(a.data, "retrans=2,udp,timeo=14,v3,lock,addr=10.0.2.2");
        assert_eq!(a.port, 2049);
        // Read-write v3 pieces get nolock too (NLM needs rpcbind in the client); port= is what
        // the probe checks.
        let user = vec!["port=2050".to_string()];
        let a = mount_args(ip("10.0.2.2"), "/home", NfsVersion::V3, None, &user);
        assert_eq!(
            a.data,
            "vers=3,proto=tcp,nolock,timeo=600,retrans=2,port=2050,addr=10.0.2.2"
        );
        assert_eq!((a.server, a.port), (ip("10.0.2.2"), 2050));
    }

    #[test]
    fn server_choice_priority() {
        let pinned = NfsRoot::parse("10.0.0.1:/a").unwrap();
        let rp = NfsRoot::parse("10.0.0.2:/b").unwrap();
        let bare = NfsRoot::parse("/b").unwrap();
        let (s3, s4) = (Some(ip("10.0.0.3")), Some(ip("10.0.0.4")));
        assert_eq!(
            choose_server(Some(&pinned), Some(&rp), s3, s4),
            Some((ip("10.0.0.1"), ServerSource::Nfsroot))
        );
        assert_eq!(
            choose_server(Some(&bare), Some(&rp), s3, s4),
            Some((ip("10.0.0.2"), ServerSource::RootPath))
        );
        assert_eq!(
            choose_server(None, Some(&bare), s3, s4),
            Some((ip("10.0.0.3"), ServerSource::NextServer))
        );
        assert_eq!(
            choose_server(None, None, Some(Ipv4Addr::UNSPECIFIED), s4),
            Some((ip("10.0.0.4"), ServerSource::ServerId))
        );
        assert_eq!(choose_server(None, None, None, None), None);
    }
}
