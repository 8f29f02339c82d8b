//! NFS root description and mount(2) data, following the kernel's
//! `Documentation/admin-guide/nfs/nfsroot.rst` (`nfsroot=[<server-ip>:]<root-dir>[,<nfs-options>]`)
//! and nfs(5) for the option names. The kernel's in-mount parser takes text options, but it does
//! not resolve host names, so the server is always an address and `addr=` is always passed.

use crate::addr::Mac;
use crate::heads::Ranking;
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
    #[error("NFS version {0:?} is not supported; use 3, 4, 4.0, 4.1 or 4.2")]
    BadVersion(String),
    #[error("nfsroot={0:?}: it contains a control character; give nfsroot=[<server>:]<path>[,<options>]")]
    Control(String),
    #[error(
        "nfsroot={0:?}: the path contains whitespace; e.g. nfsroot=10.0.0.1:/srv/system,vers=3"
    )]
    SpaceInPath(String),
    #[error("{0:?} mixes '+' (equivalent heads) and '|' (ordered failover); give either heads a+b+c (each node ranks them by its MAC and fails over along its order) or a failover list a|b|c")]
    MixedServers(String),
    #[error("{text:?} lists head {server} twice; list each equivalent head once (a+b+c)")]
    DuplicateHead { text: String, server: Ipv4Addr },
}

/// How a piece's servers relate to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Join {
    /// `a|b|c`: tried in the order written (one server is this too).
    #[default]
    Failover,
    /// `a+b+c`: equivalent heads, ranked per node by [`crate::heads::rank`] on its MAC.
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

/// A parsed `nfsroot=` (or DHCP root-path, or a `unionroot.` piece: same shape). Several
/// servers may be given as `a|b|c:` for failover (tried in order), or as `a+b+c:`, equivalent
/// heads that each node ranks by its MAC ([`NfsRoot::ordered`]). The two do not mix: the
/// ranking already is a failover order over every head, and a backup tier behind the heads
/// would be a second, untested policy.
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
    /// Parses `[<server-ip>[|<server-ip>...|+<server-ip>...]:]<root-dir>[,<nfs-options>]`. `%s` in the path is left for
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
                    (true, true) => return Err(NfsError::MixedServers(text.to_string())),
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
                // A head written twice would silently get a second weight-identical slot.
                if join == Join::Heads {
                    let dup = servers
                        .iter()
                        .enumerate()
                        .find_map(|(i, a)| servers.iter().take(i).find(|b| *b == a));
                    if let Some(dup) = dup {
                        return Err(NfsError::DuplicateHead {
                            text: text.to_string(),
                            server: *dup,
                        });
                    }
                }
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

    /// The servers in the order this node tries them, and for heads the ranking to log: `|`
    /// lists as written, `+` heads by rendezvous hash on `mac` (as written without one).
    pub fn ordered(&self, mac: Option<Mac>) -> (Vec<Ipv4Addr>, Option<Ranking>) {
        match self.join {
            Join::Failover => (self.servers.clone(), None),
            Join::Heads => {
                let r = Ranking::new(&self.servers, mac);
                (r.order.clone(), Some(r))
            }
        }
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
            let sep = self.join.separator().to_string();
            write!(f, "{}:", s.join(&sep))?;
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
///
/// A read-only piece (a lower, the images directory) also gets [`READ_ONLY_CACHE`]: `nocto` and
/// `actimeo=600`. overlayfs forbids changing a lower while it is mounted
/// (`Documentation/filesystems/overlayfs.rst`, "Changes to underlying filesystems"), so
/// revalidating what the node has cached buys nothing; close-to-open consistency makes every
/// `open(2)` a GETATTR and the short attribute timeouts repeat every lookup. Measured with
/// `make bench`'s image part (one Debian 12 systemd boot over a file-level NFSv3 lower, calls
/// before "running", median of 2, one run): the kernel's defaults 4,570 (2,287 GETATTR);
/// `nocto` 2,645 (352); `actimeo=600` alone 4,341 (2,078: `cto` still revalidates every open);
/// both 2,290 (0 GETATTR); `lookupcache=positive` on top changed nothing (2,291). The time to
/// "running" (23-26 s under TCG) did not separate the kinds beyond noise. A piece whose tree does change
/// under running nodes can ask for `cto` or any `ac*` option: a user's `cto`/`nocto` replaces
/// `nocto`, and `actimeo`, `acregmin`, `acregmax`, `acdirmin`, `acdirmax`, `ac` or `noac`
/// replace `actimeo=600`.
pub fn mount_args(
    server: Ipv4Addr,
    path: &str,
    version: NfsVersion,
    client: Option<Ipv4Addr>,
    user_options: &[String],
    access: Access,
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
    if access == Access::ReadOnly {
        opts.extend(READ_ONLY_CACHE.map(String::from));
    }
    // A user option replaces the defaults it collides with (the same key, a version alias, a
    // transport shorthand, the other cache option of its kind), never another user option:
    // `acregmin=3,acregmax=60` keeps both.
    let replaces = |key: &str, d: &str| {
        let dk = option_key(d);
        dk == key
            || (is_version_key(key) && is_version_key(dk))
            || (is_proto_key(key) && is_proto_key(dk))
            || (is_cto_key(key) && is_cto_key(dk))
            || (is_attr_cache_key(key) && is_attr_cache_key(dk))
            || (key == "lock" && dk == "nolock")
    };
    opts.retain(|d| !user_options.iter().any(|u| replaces(option_key(u), d)));
    opts.extend(user_options.iter().cloned());
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

/// How a piece is mounted, for its cache defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// The cache options every read-only piece gets (see [`mount_args`] for why).
pub const READ_ONLY_CACHE: [&str; 2] = ["nocto", "actimeo=600"];

fn is_cto_key(k: &str) -> bool {
    matches!(k, "cto" | "nocto")
}

fn is_attr_cache_key(k: &str) -> bool {
    matches!(
        k,
        "actimeo" | "acregmin" | "acregmax" | "acdirmin" | "acdirmax" | "ac" | "noac"
    )
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

/// Where the NFS client's identifier goes: the kernel puts it into the client owner string it
/// sends in NFSv4's EXCHANGE_ID/SETCLIENTID ("Linux NFSv4.2 <identifier>/<nodename>"; see
/// `Documentation/filesystems/nfs/client-identifier.rst`), and it wins over the `nfs` module's
/// `nfs4_unique_id` parameter.
pub const CLIENT_ID_PATH: &str = "/sys/fs/nfs/net/nfs_client/identifier";

/// The NFSv4 client identifier a node mounts with. NFSv4 servers tell clients apart by their
/// owner string alone; before linuxrc sets one, every node's is "Linux NFSv4.x (none)" (no host
/// name yet in the initramfs), so nodes on one server take each other for a reboot of the same
/// client and expire each other's state: measured in an 8-node storm, 5 nodes on one head made
/// about 3,000 calls each instead of 150, most of them EXCHANGE_ID and CREATE_SESSION. The
/// identifier must also stay the same across the node's reboots, so that the server can drop
/// the previous boot's state at once: the MAC does both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId {
    id: String,
    /// `nfs.nfs4_unique_id=` on the command line rather than the MAC.
    pub from_cmdline: bool,
}

impl ClientId {
    /// The `nfs` module's limit for `nfs4_unique_id` (NFS4_CLIENT_ID_UNIQ_LEN, 64 with the NUL).
    pub const MAX: usize = 63;
    pub const EXAMPLE: &'static str =
        "nfs.nfs4_unique_id=node07 (up to 63 letters, digits and -._:; by default the boot NIC's MAC)";

    /// `nfs.nfs4_unique_id=`: what the kernel would take as the module parameter, minus what
    /// has no place in an identifier (space, quotes, control bytes, non-ASCII).
    pub fn parse(s: &str) -> Result<ClientId, String> {
        if s.is_empty() || s.len() > Self::MAX {
            return Err(format!(
                "expected 1 to {} characters, not {}",
                Self::MAX,
                s.len()
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':')))
        {
            return Err(format!("{c:?} is not a letter, digit or one of -._:"));
        }
        Ok(ClientId {
            id: s.to_string(),
            from_cmdline: true,
        })
    }

    /// The default: `unionroot-` and the boot NIC's MAC in hex.
    pub fn from_mac(mac: Mac) -> ClientId {
        ClientId {
            id: format!("unionroot-{}", mac.to_string().replace(':', "")),
            from_cmdline: false,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn client_ids_are_short_plain_words_and_the_mac_one_is_stable() {
        let m = ClientId::from_mac(Mac([0x52, 0x54, 0, 0x77, 1, 0x0a]));
        assert_eq!(m.as_str(), "unionroot-52540077010a");
        assert!(!m.from_cmdline);
        assert_eq!(m, ClientId::from_mac(Mac([0x52, 0x54, 0, 0x77, 1, 0x0a])));
        assert_ne!(m, ClientId::from_mac(Mac([0x52, 0x54, 0, 0x77, 1, 0x0b])));
        for ok in ["a", "node-07", "rack3.n12", "a_b:c", &"x".repeat(63)] {
            let c = ClientId::parse(ok).unwrap();
            assert_eq!((c.as_str(), c.from_cmdline), (ok, true));
        }
        for (bad, why) in [
            ("", "1 to 63"),
            (&"x".repeat(64) as &str, "not 64"),
            ("a b", "' '"),
            ("a/b", "'/'"),
            ("a\nb", "'\\n'"),
            ("n\u{e9}", "'\u{e9}'"),
            ("a\"b", "'\"'"),
        ] {
            let e = ClientId::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
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
    fn heads_are_joined_by_plus_and_ranked_per_node() {
        let r = NfsRoot::parse("10.0.0.1+10.0.0.2+10.0.0.3:/srv/system,vers=3").unwrap();
        assert_eq!(r.join, Join::Heads);
        assert_eq!(r.servers, [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")]);
        assert_eq!(
            r.to_string(),
            "10.0.0.1+10.0.0.2+10.0.0.3:/srv/system,vers=3"
        );
        let mac = Mac([0x52, 0x54, 0, 0x77, 0, 1]);
        let (order, ranking) = r.ordered(Some(mac));
        assert_eq!(order, crate::heads::rank(&r.servers, mac));
        assert_eq!(ranking.unwrap().order, order);
        // Failover lists keep their written order and log no ranking.
        let f = NfsRoot::parse("10.0.0.3|10.0.0.1:/srv/system").unwrap();
        assert_eq!(
            f.ordered(Some(mac)),
            (vec![ip("10.0.0.3"), ip("10.0.0.1")], None)
        );
        // One server is a failover list of one.
        assert_eq!(NfsRoot::parse("10.0.0.1:/x").unwrap().join, Join::Failover);
        assert!(matches!(
            NfsRoot::parse("10.0.0.1+10.0.0.2|10.0.0.3:/x"),
            Err(NfsError::MixedServers(_))
        ));
        assert_eq!(
            NfsRoot::parse("10.0.0.1+10.0.0.2+10.0.0.1:/x").unwrap_err(),
            NfsError::DuplicateHead {
                text: "10.0.0.1+10.0.0.2+10.0.0.1:/x".into(),
                server: ip("10.0.0.1")
            }
        );
        assert_eq!(
            NfsRoot::parse("10.0.0.1+:/x").unwrap_err(),
            NfsError::BadServer(String::new())
        );
        let e = NfsRoot::parse("10.0.0.1|10.0.0.2+10.0.0.3:/x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a+b+c") && e.contains("a|b|c"), "{e}");
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
        let rw = Access::ReadWrite;
        let a = mount_args(ip("10.0.2.2"), "/srv/system", NfsVersion::V3, None, &[], rw);
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
            rw,
        );
        assert_eq!(a.fstype, "nfs4");
        assert_eq!(
            a.data,
            "vers=4.2,proto=tcp,clientaddr=10.0.2.15,timeo=600,retrans=2,addr=10.0.2.2"
        );

        let user: Vec<String> = ["udp", "timeo=14", "v3", "lock", "addr=1.2.3.4"]
            .map(String::from)
            .to_vec();
        let a = mount_args(ip("10.0.2.2"), "/x", NfsVersion::V3, None, &user, rw);
        assert_eq!(a.data, "retrans=2,udp,timeo=14,v3,lock,addr=10.0.2.2");
        assert_eq!(a.port, 2049);
        // Read-write v3 pieces get nolock too (NLM needs rpcbind in the client); port= is what
        // the probe checks.
        let user = vec!["port=2050".to_string()];
        let a = mount_args(ip("10.0.2.2"), "/home", NfsVersion::V3, None, &user, rw);
        assert_eq!(
            a.data,
            "vers=3,proto=tcp,nolock,timeo=600,retrans=2,port=2050,addr=10.0.2.2"
        );
        assert_eq!((a.server, a.port), (ip("10.0.2.2"), 2050));
    }

    #[test]
    fn read_only_pieces_cache_and_the_user_can_say_otherwise() {
        let ro = |user: &[&str]| {
            let user: Vec<String> = user.iter().map(|u| u.to_string()).collect();
            let a = mount_args(
                ip("10.0.2.2"),
                "/s",
                NfsVersion::V3,
                None,
                &user,
                Access::ReadOnly,
            );
            a.data
        };
        assert_eq!(
            ro(&[]),
            "vers=3,proto=tcp,nolock,timeo=600,retrans=2,nocto,actimeo=600,addr=10.0.2.2"
        );
        // Each cache option replaces the default it contradicts, and nothing else.
        assert_eq!(
            ro(&["cto"]),
            "vers=3,proto=tcp,nolock,timeo=600,retrans=2,actimeo=600,cto,addr=10.0.2.2"
        );
        for ac in ["actimeo=3", "acregmax=60", "acdirmin=30", "noac", "ac"] {
            assert_eq!(
                ro(&[ac]),
                format!("vers=3,proto=tcp,nolock,timeo=600,retrans=2,nocto,{ac},addr=10.0.2.2")
            );
        }
        assert_eq!(
            ro(&["cto", "acregmin=3", "acregmax=60"]),
            "vers=3,proto=tcp,nolock,timeo=600,retrans=2,cto,acregmin=3,acregmax=60,addr=10.0.2.2"
        );
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
