//! The keys linuxrc reads, each spelled once, and the writer that turns a [`Config`] back into
//! them. [`Config::parse`] reads what [`Config::words`] writes; the round-trip test in
//! `cmdline.rs` pins the two together, so the host tool (which builds a `Config` and prints it)
//! and linuxrc cannot drift apart.

use super::Config;
use std::time::Duration;

/// What a key is about, which tells who writes it: the host tool puts a node's identity on its
/// command line, the root's pieces into the cluster-wide file, and the settings into both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The node and its network: `ip=`, `nfsroot=`, `BOOTIF=`, `unionroot.mac=`,
    /// `nfs.nfs4_unique_id=`.
    Node,
    /// Where the root comes from: the layers, the mounts, the per-node export, the NFS version.
    Pieces,
    /// How linuxrc behaves: sizes, timeouts, modules, what to do on failure.
    Setting,
}

/// One key of the boot configuration, in the order [`Key::ALL`] (and so the host tool) writes
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Ip,
    NfsRoot,
    Bootif,
    Mac,
    NfsClientId,
    Lower,
    Image,
    ImageRam,
    Mount,
    Persist,
    PersistPaths,
    NfsVersion,
    Size,
    Init,
    DhcpTimeout,
    MountTimeout,
    CarrierTimeout,
    ServerTimeout,
    Jitter,
    OnFail,
    Modules,
    Debug,
}

impl Key {
    pub const ALL: [Key; 22] = [
        Key::Ip,
        Key::NfsRoot,
        Key::Bootif,
        Key::Mac,
        Key::NfsClientId,
        Key::Lower,
        Key::Image,
        Key::ImageRam,
        Key::Mount,
        Key::Persist,
        Key::PersistPaths,
        Key::NfsVersion,
        Key::Size,
        Key::Init,
        Key::DhcpTimeout,
        Key::MountTimeout,
        Key::CarrierTimeout,
        Key::ServerTimeout,
        Key::Jitter,
        Key::OnFail,
        Key::Modules,
        Key::Debug,
    ];

    /// The key as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Key::Ip => "ip",
            Key::NfsRoot => "nfsroot",
            Key::Bootif => "BOOTIF",
            Key::Mac => "unionroot.mac",
            // The `nfs` module's own parameter: linuxrc loads modules without modprobe, so it
            // reads this one itself (see `crate::nfs::ClientId`).
            Key::NfsClientId => "nfs.nfs4_unique_id",
            Key::Lower => "unionroot.lower",
            Key::Image => "unionroot.image",
            Key::ImageRam => "unionroot.image_ram",
            Key::Mount => "unionroot.mount",
            Key::Persist => "unionroot.persist",
            Key::PersistPaths => "unionroot.persist_paths",
            Key::NfsVersion => "unionroot.nfsvers",
            Key::Size => "unionroot.size",
            Key::Init => "unionroot.init",
            Key::DhcpTimeout => "unionroot.dhcp_timeout",
            Key::MountTimeout => "unionroot.mount_timeout",
            Key::CarrierTimeout => "unionroot.carrier_timeout",
            Key::ServerTimeout => "unionroot.server_timeout",
            Key::Jitter => "unionroot.jitter",
            Key::OnFail => "unionroot.onfail",
            Key::Modules => "unionroot.modules",
            Key::Debug => "unionroot.debug",
        }
    }

    pub fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What the key is about.
    pub fn kind(self) -> KeyKind {
        match self {
            Key::Ip | Key::NfsRoot | Key::Bootif | Key::Mac | Key::NfsClientId => KeyKind::Node,
            Key::Lower
            | Key::Image
            | Key::Mount
            | Key::Persist
            | Key::PersistPaths
            | Key::NfsVersion => KeyKind::Pieces,
            _ => KeyKind::Setting,
        }
    }

    /// The keys of one kind, in [`Key::ALL`]'s order.
    pub fn of(kind: KeyKind) -> impl Iterator<Item = Key> {
        Key::ALL.into_iter().filter(move |k| k.kind() == kind)
    }

    /// Keys linuxrc adds up when repeated (a later word adds to the list, never replaces it).
    pub fn is_list(self) -> bool {
        matches!(
            self,
            Key::Lower | Key::Mount | Key::PersistPaths | Key::Modules
        )
    }
}

/// A word as the kernel's tokenizer reads it back: quoted when empty or holding whitespace
/// (a value from the parser never holds a `"`: the tokenizer removes them).
fn word(w: String) -> String {
    if w.is_empty() || w.chars().any(|c| c.is_ascii_whitespace()) {
        format!("\"{w}\"")
    } else {
        w
    }
}

fn secs(d: Duration) -> String {
    d.as_secs().to_string()
}

impl Config {
    /// The values of `key` in this config as written after `key=`: one entry per list item,
    /// none for an unset option or an off flag, one empty entry for a flag that is on.
    fn entries(&self, key: Key) -> Vec<String> {
        let one = |s: String| vec![s];
        let opt = |s: Option<String>| s.into_iter().collect();
        match key {
            Key::Ip => one(self.ip.to_string()),
            Key::NfsRoot => opt(self.nfsroot.as_ref().map(|r| r.to_string())),
            Key::Bootif => opt(self.bootif.map(|m| m.bootif())),
            Key::Mac => opt(self.mac.map(|m| m.to_string())),
            Key::NfsClientId => opt(self.nfs_client_id.as_ref().map(|c| c.to_string())),
            Key::Lower => self.lowers.iter().map(|l| l.to_string()).collect(),
            Key::Image => opt(self.image.as_ref().map(|i| i.to_string())),
            Key::Mount => self
                .mounts
                .iter()
                .map(|(at, piece)| format!("{at}={piece}"))
                .collect(),
            Key::Persist => opt(self.persist.as_ref().map(|r| r.to_string())),
            Key::PersistPaths => self.persist_paths.iter().map(|p| p.to_string()).collect(),
            Key::NfsVersion => one(self.nfs_version.to_string()),
            Key::Size => one(self.overlay_size.clone()),
            Key::Init => one(self.init.clone()),
            Key::DhcpTimeout => one(secs(self.dhcp_timeout)),
            Key::MountTimeout => one(secs(self.mount_timeout)),
            Key::CarrierTimeout => one(secs(self.carrier_timeout)),
            Key::ServerTimeout => one(secs(self.server_timeout)),
            Key::Jitter => one(self.dhcp_jitter.as_millis().to_string()),
            Key::OnFail => one(self.on_fail.name().to_string()),
            Key::Modules => self.modules.clone(),
            Key::ImageRam => {
                if self.image_ram {
                    one(String::new())
                } else {
                    Vec::new()
                }
            }
            Key::Debug => {
                if self.debug {
                    one(String::new())
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// The words for `keys` that make linuxrc, having read `base` first, end up with this
    /// config's values; with no `base`, every value that is set (lists when not empty, flags
    /// when on). A value equal to `base`'s is left out; of a list only the entries `base` lacks
    /// are written, because linuxrc adds repeated lists up. What the syntax cannot say (turning
    /// a flag off, unsetting an option, dropping a list entry) is for the caller to refuse.
    pub fn words(&self, keys: &[Key], base: Option<&Config>) -> Vec<String> {
        let mut out = Vec::new();
        for &key in keys {
            let mine = self.entries(key);
            let new: Vec<String> = match base.map(|b| b.entries(key)) {
                None => mine,
                Some(theirs) if key.is_list() => {
                    mine.into_iter().filter(|v| !theirs.contains(v)).collect()
                }
                Some(theirs) if theirs == mine => Vec::new(),
                Some(_) => mine,
            };
            let name = key.name();
            match key {
                Key::Debug | Key::ImageRam if !new.is_empty() => out.push(name.to_string()),
                // One word for the whole list: linuxrc splits these at commas.
                Key::Modules | Key::PersistPaths if !new.is_empty() => {
                    out.push(word(format!("{name}={}", new.join(","))))
                }
                _ => out.extend(new.into_iter().map(|v| word(format!("{name}={v}")))),
            }
        }
        out
    }

    /// The whole config as one command line: every key, the module parameters, then `--` and
    /// the real init's arguments. `Config::parse("", c.to_cmdline())` gives `c` back (warnings
    /// aside).
    pub fn to_cmdline(&self) -> String {
        let mut w = self.words(&Key::ALL, None);
        for (module, params) in self.module_params.iter() {
            w.extend(params.iter().map(|p| {
                word(match &p.value {
                    Some(v) => format!("{module}.{}={v}", p.name),
                    None => format!("{module}.{}", p.name),
                })
            }));
        }
        if !self.init_args.is_empty() {
            w.push("--".into());
            w.extend(self.init_args.iter().cloned().map(word));
        }
        w.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Mac;
    use crate::cmdline::{IpConfig, OnFail};
    use crate::image::{ImageName, ImageSpec};
    use crate::nfs::{ClientId, NfsRoot, NfsVersion};
    use crate::validate::MountTarget;

    /// A small deterministic generator (xorshift), so that a failure names its seed.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next()).unwrap() % n
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
        fn coin(&mut self) -> bool {
            self.next() & 1 == 1
        }
        fn addr(&mut self) -> std::net::Ipv4Addr {
            let b = self.next().to_le_bytes();
            std::net::Ipv4Addr::from([10, 0, b[0], 1 + b[1] % 254])
        }
        fn some<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
            if self.coin() {
                Some(f(self))
            } else {
                None
            }
        }
        fn piece(&mut self) -> NfsRoot {
            let mut servers: Vec<String> = (0..self.below(3))
                .map(|_| self.addr().to_string())
                .collect();
            let join = if self.coin() { "|" } else { "+" };
            if join == "+" {
                // Heads are listed once each (a repeat is refused by name).
                servers.sort();
                servers.dedup();
            }
            let mut spec = if servers.is_empty() {
                String::new()
            } else {
                format!("{}:", servers.join(join))
            };
            spec += self.pick(&["/srv/system", "/srv/apps", "/export/nodes", "/srv/%s"]);
            for _ in 0..self.below(3) {
                spec.push(',');
                spec += self.pick(&["tcp", "ro", "rw", "nolock", "port=2050", "vers=4.1"]);
            }
            NfsRoot::parse(&spec).unwrap()
        }
        fn target(&mut self) -> MountTarget {
            MountTarget::parse(self.pick(&["/home", "/data", "/var/log", "/etc/ssh", "/opt/x y"]))
                .unwrap()
        }
        fn ip(&mut self) -> IpConfig {
            match self.below(4) {
                0 => IpConfig::dhcp(),
                1 => IpConfig::parse(self.pick(&["off", "none", "on", "any", "bootp"])).unwrap(),
                _ => {
                    let mut ip = IpConfig::default();
                    ip.client = self.some(Gen::addr);
                    ip.server = self.some(Gen::addr);
                    ip.gateway = self.some(Gen::addr);
                    ip.netmask = self.some(|g| {
                        g.pick(&["255.255.255.0", "255.255.0.0", "255.255.255.252"])
                            .parse()
                            .unwrap()
                    });
                    ip.hostname = self.some(|g| {
                        crate::validate::Hostname::parse(g.pick(&["lf1", "node-07", "a"])).unwrap()
                    });
                    ip.device = self.some(|g| g.pick(&["eth0", "enp1s0"]).to_string());
                    ip.autoconf = self.some(|g| {
                        if g.coin() {
                            crate::cmdline::Autoconf::Off
                        } else {
                            crate::cmdline::Autoconf::Dhcp
                        }
                    });
                    ip.dns = (0..self.below(3)).map(|_| self.addr()).collect();
                    ip.ntp = self.some(Gen::addr);
                    ip
                }
            }
        }
        fn secs(&mut self, max: u64) -> Duration {
            Duration::from_secs(1 + self.next() % max)
        }
        fn config(&mut self) -> Config {
            let list = |g: &mut Gen, n: usize| g.below(n);
            Config {
                ip: self.ip(),
                nfsroot: self.some(Gen::piece),
                bootif: self.some(|g| Mac(g.next().to_le_bytes()[..6].try_into().unwrap())),
                mac: self.some(|g| Mac(g.next().to_le_bytes()[2..].try_into().unwrap())),
                nfs_client_id: self
                    .some(|g| ClientId::parse(g.pick(&["node07", "a", "rack-3.n_12:x"])).unwrap()),
                nfs_version: [NfsVersion::V3, NfsVersion::V4(0), NfsVersion::V4(2)][self.below(3)],
                overlay_size: self
                    .pick(&["50%", "1%", "100%", "512m", "2G", "1048576", "4096k"])
                    .into(),
                init: self
                    .pick(&["/sbin/init", "/lib/systemd/systemd", "/bin/sh"])
                    .into(),
                init_args: (0..list(self, 3))
                    .map(|_| {
                        self.pick(&["single", "a b", "", "systemd.unit=rescue.target"])
                            .into()
                    })
                    .collect(),
                lowers: (0..list(self, 3)).map(|_| self.piece()).collect(),
                image: self.some(|g| {
                    let mut dir = g.piece();
                    dir.path = g.pick(&["/", "/srv/images", "/export/img"]).into();
                    ImageSpec {
                        dir,
                        name: ImageName::parse(g.pick(&["system", "base-12", "a.b_c"])).unwrap(),
                    }
                }),
                mounts: (0..list(self, 3))
                    .map(|_| (self.target(), self.piece()))
                    .collect(),
                persist: self.some(Gen::piece),
                persist_paths: (0..list(self, 3)).map(|_| self.target()).collect(),
                server_timeout: self.secs(600),
                modules: (0..list(self, 4))
                    .map(|_| {
                        self.pick(&["e1000", "virtio_net", "af_packet", "r8169"])
                            .into()
                    })
                    .collect(),
                module_params: {
                    let mut p = crate::cmdline::ModuleParams::default();
                    for _ in 0..list(self, 4) {
                        let module = self.pick(&["ixgbe", "virtio_net", "nfs", "e1000e"]);
                        let param = self.pick(&["napi_tx", "debug", "a.b", "x-y"]);
                        let value = self.some(|g| g.pick(&["1", "", "a b", "\u{e0}", "x=y"]));
                        p.push(module, param, value);
                    }
                    p
                },
                dhcp_timeout: self.secs(86_400),
                mount_timeout: self.secs(86_400),
                carrier_timeout: self.secs(600),
                dhcp_jitter: Duration::from_millis(self.next() % 10_001),
                on_fail: OnFail::ALL[self.below(4)],
                debug: self.coin(),
                image_ram: self.coin(),
                warnings: Vec::new(),
            }
        }
    }

    #[test]
    fn every_key_has_one_name() {
        for k in Key::ALL {
            assert_eq!(Key::from_name(k.name()), Some(k));
        }
        assert_eq!(Key::from_name("unionroot.sizes"), None);
    }

    #[test]
    fn parse_reads_back_what_print_writes() {
        assert_eq!(
            Config::parse("", Config::default().to_cmdline()).unwrap(),
            Config::default()
        );
        for seed in 1..=2000u64 {
            let mut g = Gen(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let c = g.config();
            let line = c.to_cmdline();
            let back =
                Config::parse("", &line).unwrap_or_else(|e| panic!("seed {seed}: {line}: {e}"));
            assert_eq!(back, c, "seed {seed}: {line}");
            // The same words in the file (without the real init's arguments and the module
            // parameters, which only the command line carries, and without the NFS client
            // identifier, which the file refuses: every node reads it) say the same.
            let keys: Vec<Key> = Key::ALL
                .into_iter()
                .filter(|k| *k != Key::NfsClientId)
                .collect();
            let file = c.words(&keys, None).join("\n");
            let back = Config::parse(&file, "").unwrap();
            assert_eq!(back.init_args, Vec::<String>::new(), "seed {seed}");
            assert_eq!(
                Config {
                    init_args: c.init_args.clone(),
                    nfs_client_id: c.nfs_client_id.clone(),
                    module_params: c.module_params.clone(),
                    ..back
                },
                c,
                "seed {seed}"
            );
            if c.nfs_client_id.is_some() {
                let all = c.words(&Key::ALL, None).join("\n");
                let e = Config::parse(&all, "").unwrap_err().to_string();
                assert!(e.contains("every node reads"), "seed {seed}: {e}");
            }
        }
    }

    #[test]
    fn the_line_after_the_file_says_only_what_differs() {
        for seed in 1..=1000u64 {
            let mut g = Gen(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
            let base = Config {
                init_args: Vec::new(),
                nfs_client_id: None,
                module_params: Default::default(),
                ..g.config()
            };
            // What a line can say after the file: any value, more list entries, debug on.
            let mut other = g.config();
            let mut node = base.clone();
            node.ip = other.ip.clone();
            node.overlay_size = other.overlay_size.clone();
            node.server_timeout = other.server_timeout;
            node.dhcp_jitter = other.dhcp_jitter;
            node.on_fail = other.on_fail;
            node.nfs_version = other.nfs_version;
            node.nfs_client_id = other.nfs_client_id.clone();
            node.debug |= other.debug;
            node.image_ram |= other.image_ram;
            other.modules.retain(|m| !base.modules.contains(m));
            node.modules.append(&mut other.modules);
            other.lowers.retain(|l| !base.lowers.contains(l));
            node.lowers.append(&mut other.lowers);
            node.persist = other.persist.or(node.persist);
            node.image = other.image.or(node.image);
            let file = base.words(&Key::ALL, None).join("\n");
            let line = node.words(&Key::ALL, Some(&base));
            let back = Config::parse(&file, line.join(" ")).unwrap();
            assert_eq!(back, node, "seed {seed}: {file}\n{line:?}");
            assert!(base.words(&Key::ALL, Some(&base)).is_empty());
        }
    }
}
