//! The boot configuration: `/etc/unionroot.conf` (written by the host tool) overlaid by
//! `/proc/cmdline`, both in kernel command-line syntax (`Documentation/admin-guide/kernel-parameters.rst`:
//! whitespace-separated `key[=value]`, double quotes group). Understands the kernel's own `ip=`
//! and `nfsroot=` (`Documentation/admin-guide/nfs/nfsroot.rst`), pxelinux's `BOOTIF=`, and
//! unionroot's keys under `unionroot.`. Unknown `unionroot.` keys are warnings, never errors: a
//! typo must not stop a node from booting.

use crate::nfs::{NfsError, NfsRoot, NfsVersion};
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CmdlineError {
    #[error("ip= field {field} ({name}) = {value:?} is not a valid {what}")]
    IpField {
        field: usize,
        name: &'static str,
        value: String,
        what: &'static str,
    },
    #[error("ip= has {0} fields; at most 10 are allowed (client:server:gw:netmask:hostname:device:autoconf:dns0:dns1:ntp0)")]
    IpTooManyFields(usize),
    #[error("ip= autoconf {0:?} is not one of off, none, on, any, dhcp, bootp, rarp, both")]
    IpAutoconf(String),
    #[error(transparent)]
    Nfs(#[from] NfsError),
    #[error("{key}={value:?}: {why}")]
    BadValue {
        key: String,
        value: String,
        why: &'static str,
    },
}

/// Splits a command line into tokens the way the kernel does: whitespace separates, and double
/// quotes group (they are removed).
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// The `<autoconf>` field of `ip=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autoconf {
    Off,
    Dhcp,
}

/// A parsed `ip=` parameter:
/// `ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>:<ntp0>`
/// or one of the short forms `off`, `none`, `on`, `any`, `dhcp`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpConfig {
    pub client: Option<Ipv4Addr>,
    pub server: Option<Ipv4Addr>,
    pub gateway: Option<Ipv4Addr>,
    pub netmask: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub device: Option<String>,
    /// None when the field was empty or absent (the kernel's default is `any`).
    pub autoconf: Option<Autoconf>,
    pub dns: Vec<Ipv4Addr>,
    pub ntp: Option<Ipv4Addr>,
    /// The short form as written (`dhcp`, `off`, ...), kept so printing round-trips.
    short: Option<String>,
}

/// What the network phase must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMode {
    /// No network configuration at all (`ip=off`).
    Off,
    /// A fixed address from `ip=`; no DHCP.
    Static,
    /// Autoconfiguration by DHCP.
    Dhcp,
}

const IP_FIELDS: [&str; 10] = [
    "client-ip",
    "server-ip",
    "gw-ip",
    "netmask",
    "hostname",
    "device",
    "autoconf",
    "dns0-ip",
    "dns1-ip",
    "ntp0-ip",
];

impl IpConfig {
    pub fn dhcp() -> Self {
        IpConfig {
            autoconf: Some(Autoconf::Dhcp),
            short: Some("dhcp".into()),
            ..Default::default()
        }
    }

    pub fn parse(text: &str) -> Result<Self, CmdlineError> {
        let autoconf_word = |w: &str| -> Result<Autoconf, CmdlineError> {
            match w {
                "off" | "none" => Ok(Autoconf::Off),
                "on" | "any" | "dhcp" | "bootp" | "rarp" | "both" => Ok(Autoconf::Dhcp),
                other => Err(CmdlineError::IpAutoconf(other.to_string())),
            }
        };
        if !text.contains(':') {
            let a = autoconf_word(text)?;
            return Ok(IpConfig {
                autoconf: Some(a),
                short: Some(text.to_string()),
                ..Default::default()
            });
        }
        let fields: Vec<&str> = text.split(':').collect();
        if fields.len() > IP_FIELDS.len() {
            return Err(CmdlineError::IpTooManyFields(fields.len()));
        }
        let get = |i: usize| fields.get(i).copied().filter(|s| !s.is_empty());
        let addr = |i: usize| -> Result<Option<Ipv4Addr>, CmdlineError> {
            get(i)
                .map(|v| {
                    v.parse::<Ipv4Addr>().map_err(|_| CmdlineError::IpField {
                        field: i + 1,
                        name: IP_FIELDS[i],
                        value: v.to_string(),
                        what: "IPv4 address",
                    })
                })
                .transpose()
        };
        let netmask = addr(3)?;
        if let Some(m) = netmask {
            if u32::from(m).leading_ones() + u32::from(m).trailing_zeros() != 32 {
                return Err(CmdlineError::IpField {
                    field: 4,
                    name: IP_FIELDS[3],
                    value: m.to_string(),
                    what: "netmask (ones followed by zeros)",
                });
            }
        }
        let hostname = get(4).map(String::from);
        if let Some(h) = &hostname {
            if h.len() > 64
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(CmdlineError::IpField {
                    field: 5,
                    name: IP_FIELDS[4],
                    value: h.clone(),
                    what: "host name (letters, digits, '-', '.', at most 64)",
                });
            }
        }
        let device = get(5).map(String::from);
        if let Some(d) = &device {
            if d.len() > 15 || d.contains('/') {
                return Err(CmdlineError::IpField {
                    field: 6,
                    name: IP_FIELDS[5],
                    value: d.clone(),
                    what: "interface name (at most 15 characters, no '/')",
                });
            }
        }
        let autoconf = get(6).map(autoconf_word).transpose()?;
        let dns = [addr(7)?, addr(8)?].into_iter().flatten().collect();
        Ok(IpConfig {
            client: addr(0)?,
            server: addr(1)?,
            gateway: addr(2)?,
            netmask,
            hostname,
            device,
            autoconf,
            dns,
            ntp: addr(9)?,
            short: None,
        })
    }

    /// What the network phase does. As in the kernel: autoconf `off`/`none` means static (or no
    /// network when no address is given); otherwise a given client address means static config,
    /// and no address means DHCP.
    pub fn mode(&self) -> IpMode {
        match (self.autoconf, self.client) {
            (Some(Autoconf::Off), Some(_)) => IpMode::Static,
            (Some(Autoconf::Off), None) => IpMode::Off,
            (Some(Autoconf::Dhcp), None) | (None, None) => IpMode::Dhcp,
            (Some(Autoconf::Dhcp), Some(_)) => IpMode::Dhcp,
            (None, Some(_)) => IpMode::Static,
        }
    }
}

impl fmt::Display for IpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.short {
            return f.write_str(s);
        }
        let a = |x: &Option<Ipv4Addr>| x.map(|v| v.to_string()).unwrap_or_default();
        let fields = [
            a(&self.client),
            a(&self.server),
            a(&self.gateway),
            a(&self.netmask),
            self.hostname.clone().unwrap_or_default(),
            self.device.clone().unwrap_or_default(),
            match self.autoconf {
                Some(Autoconf::Off) => "off".into(),
                Some(Autoconf::Dhcp) => "dhcp".into(),
                None => String::new(),
            },
            a(&self.dns.first().copied()),
            a(&self.dns.get(1).copied()),
            a(&self.ntp),
        ];
        let last = fields.iter().rposition(|s| !s.is_empty()).unwrap_or(0);
        // At least 2 fields so that the printed form is never mistaken for a short form.
        f.write_str(&fields[..=last.max(1)].join(":"))
    }
}

/// What PID 1 does when the boot fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFail {
    /// Start /bin/sh if the initramfs has one, else wait (the default).
    Shell,
    /// Wait, printing the reason again periodically.
    Wait,
    Reboot,
    Halt,
}

/// The full boot configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub ip: IpConfig,
    pub nfsroot: Option<NfsRoot>,
    /// `BOOTIF=01-aa-bb-cc-dd-ee-ff` from pxelinux `IPAPPEND 2`.
    pub bootif: Option<[u8; 6]>,
    /// `unionroot.mac=aa:bb:cc:dd:ee:ff`: boot from the interface with this MAC.
    pub mac: Option<[u8; 6]>,
    /// `unionroot.nfsvers=`; a version in the `nfsroot=` options wins over it.
    pub nfs_version: NfsVersion,
    /// tmpfs `size=` for the writable upper layer (`unionroot.size=`), e.g. `50%` or `512m`.
    pub overlay_size: String,
    /// The real init in the new root (`unionroot.init=`).
    pub init: String,
    /// Arguments after `--` on the command line, passed to the real init.
    pub init_args: Vec<String>,
    /// Read-only lower layers (`unionroot.lower=`, repeatable), bottom first. Empty means the
    /// one given by `nfsroot=` or DHCP's root-path.
    pub lowers: Vec<NfsRoot>,
    /// Read-write NFS mounts placed into the new root (`unionroot.mount=/home=<server>:<path>`).
    pub mounts: Vec<(String, NfsRoot)>,
    /// The export holding per-node directories (`unionroot.persist=<server>:<path>`); each of
    /// `persist_paths` is bind-mounted from `<export>/nodes/<hostname><path>`.
    pub persist: Option<NfsRoot>,
    /// `unionroot.persist_paths=/var/log,/etc/ssh`.
    pub persist_paths: Vec<String>,
    /// How long one server may take to accept a connection before the next is tried
    /// (`unionroot.server_timeout=`).
    pub server_timeout: Duration,
    /// Extra modules to load, e.g. NIC drivers (`unionroot.modules=a,b`).
    pub modules: Vec<String>,
    pub dhcp_timeout: Duration,
    pub mount_timeout: Duration,
    pub carrier_timeout: Duration,
    pub on_fail: OnFail,
    pub debug: bool,
    /// Problems that did not stop parsing: unknown keys, ignored values.
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ip: IpConfig::dhcp(),
            nfsroot: None,
            bootif: None,
            mac: None,
            nfs_version: NfsVersion::V3,
            overlay_size: "50%".into(),
            init: "/sbin/init".into(),
            init_args: Vec::new(),
            lowers: Vec::new(),
            mounts: Vec::new(),
            persist: None,
            persist_paths: Vec::new(),
            server_timeout: Duration::from_secs(3),
            modules: Vec::new(),
            dhcp_timeout: Duration::from_secs(120),
            mount_timeout: Duration::from_secs(60),
            carrier_timeout: Duration::from_secs(5),
            on_fail: OnFail::Shell,
            debug: false,
            warnings: Vec::new(),
        }
    }
}

impl Config {
    /// Parses the config file text and then the command line, so that the command line wins.
    pub fn parse(config_file: &str, cmdline: &str) -> Result<Config, CmdlineError> {
        let mut cfg = Config::default();
        let file_tokens = tokenize(&strip_comments(config_file));
        for t in &file_tokens {
            cfg.apply(t, true)?;
        }
        let mut tokens = tokenize(cmdline).into_iter();
        for t in tokens.by_ref() {
            if t == "--" {
                break;
            }
            cfg.apply(&t, false)?;
        }
        cfg.init_args = tokens.collect();
        Ok(cfg)
    }

    /// The NFS version in effect: a version in `nfsroot=`'s options wins over `unionroot.nfsvers`.
    pub fn effective_nfs_version(&self) -> Result<NfsVersion, CmdlineError> {
        let from_opts = match &self.nfsroot {
            Some(r) => r.version_in_options()?,
            None => None,
        };
        Ok(from_opts.unwrap_or(self.nfs_version))
    }

    fn apply(&mut self, token: &str, from_file: bool) -> Result<(), CmdlineError> {
        let (key, value) = match token.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (token, None),
        };
        let bad = |why: &'static str| CmdlineError::BadValue {
            key: key.to_string(),
            value: value.unwrap_or("").to_string(),
            why,
        };
        let secs = |v: Option<&str>| -> Result<Duration, CmdlineError> {
            v.and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs)
                .ok_or_else(|| bad("expected a whole number of seconds"))
        };
        match (key, value) {
            ("ip", Some(v)) => self.ip = IpConfig::parse(v)?,
            ("nfsroot", Some(v)) => self.nfsroot = Some(NfsRoot::parse(v)?),
            ("BOOTIF", Some(v)) => {
                self.bootif =
                    Some(parse_bootif(v).ok_or_else(|| bad("expected 01-aa-bb-cc-dd-ee-ff"))?)
            }
            ("unionroot.mac", Some(v)) => {
                self.mac = Some(
                    parse_mac(v).ok_or_else(|| bad("expected a MAC such as 52:54:00:12:34:56"))?,
                )
            }
            ("unionroot.nfsvers", Some(v)) => self.nfs_version = NfsVersion::parse(v)?,
            ("unionroot.size", Some(v)) => {
                if !valid_tmpfs_size(v) {
                    return Err(bad("expected a tmpfs size such as 512m, 2g or 50%"));
                }
                self.overlay_size = v.to_string();
            }
            ("unionroot.init", Some(v)) => {
                if !v.starts_with('/') {
                    return Err(bad("the real init must be an absolute path"));
                }
                self.init = v.to_string();
            }
            ("unionroot.lower", Some(v)) => self.lowers.push(NfsRoot::parse(v)?),
            ("unionroot.mount", Some(v)) => {
                let (target, spec) = v
                    .split_once('=')
                    .ok_or_else(|| bad("expected <mount point>=[<server>:]<path>[,<options>]"))?;
                if !target.starts_with('/') || target == "/" {
                    return Err(bad("the mount point must be an absolute path other than /"));
                }
                self.mounts
                    .push((target.to_string(), NfsRoot::parse(spec)?));
            }
            ("unionroot.persist", Some(v)) => self.persist = Some(NfsRoot::parse(v)?),
            ("unionroot.persist_paths", Some(v)) => {
                for p in v.split(',').filter(|p| !p.is_empty()) {
                    if !p.starts_with('/') || p == "/" || p.split('/').any(|c| c == "..") {
                        return Err(bad(
                            "each persistent path must be absolute, not /, and without '..'",
                        ));
                    }
                    self.persist_paths.push(p.trim_end_matches('/').to_string());
                }
            }
            ("unionroot.server_timeout", v) => self.server_timeout = secs(v)?,
            ("unionroot.modules", Some(v)) => self
                .modules
                .extend(v.split(',').filter(|m| !m.is_empty()).map(String::from)),
            ("unionroot.dhcp_timeout", v) => self.dhcp_timeout = secs(v)?,
            ("unionroot.mount_timeout", v) => self.mount_timeout = secs(v)?,
            ("unionroot.carrier_timeout", v) => self.carrier_timeout = secs(v)?,
            ("unionroot.onfail", Some(v)) => {
                self.on_fail = match v {
                    "shell" => OnFail::Shell,
                    "wait" => OnFail::Wait,
                    "reboot" => OnFail::Reboot,
                    "halt" => OnFail::Halt,
                    _ => return Err(bad("expected shell, wait, reboot or halt")),
                }
            }
            ("unionroot.debug", None) => self.debug = true,
            (k, _) if k.starts_with("unionroot.") => {
                let origin = if from_file {
                    "/etc/unionroot.conf"
                } else {
                    "the kernel command line"
                };
                self.warnings.push(format!(
                    "ignoring unknown or malformed key {token:?} from {origin}"
                ));
            }
            _ if from_file => self.warnings.push(format!(
                "ignoring {token:?} in /etc/unionroot.conf: not a unionroot setting"
            )),
            // Everything else on the kernel command line belongs to the kernel or to the real init.
            _ => {}
        }
        Ok(())
    }
}

fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| l.split_once('#').map_or(l, |(a, _)| a))
        .collect::<Vec<_>>()
        .join("\n")
}

/// pxelinux's `BOOTIF=01-aa-bb-cc-dd-ee-ff` (hardware type 1, Ethernet) into a MAC.
pub fn parse_bootif(v: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = match parts.as_slice() {
        ["01", rest @ ..] if rest.len() == 6 => rest,
        _ => return None,
    };
    let mut mac = [0u8; 6];
    for (m, h) in mac.iter_mut().zip(hex) {
        if h.len() != 2 {
            return None;
        }
        *m = u8::from_str_radix(h, 16).ok()?;
    }
    Some(mac)
}

/// `aa:bb:cc:dd:ee:ff` (also with `-` separators) into a MAC.
pub fn parse_mac(v: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = v.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (m, h) in mac.iter_mut().zip(&parts) {
        if h.len() != 2 {
            return None;
        }
        *m = u8::from_str_radix(h, 16).ok()?;
    }
    Some(mac)
}

fn valid_tmpfs_size(v: &str) -> bool {
    let digits = v.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', '%']);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && v.len() - digits.len() <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn tokenize_handles_quotes_and_runs_of_space() {
        assert_eq!(
            tokenize("  a=1   b=\"x y\" \"c=d e\"\n"),
            ["a=1", "b=x y", "c=d e"]
        );
        assert!(tokenize("   ").is_empty());
    }

    #[test]
    fn ip_short_forms() {
        for (t, mode) in [
            ("dhcp", IpMode::Dhcp),
            ("on", IpMode::Dhcp),
            ("any", IpMode::Dhcp),
            ("off", IpMode::Off),
            ("none", IpMode::Off),
        ] {
            let c = IpConfig::parse(t).unwrap();
            assert_eq!(c.mode(), mode, "{t}");
            assert_eq!(c.to_string(), t);
        }
        assert_eq!(
            IpConfig::parse("dchp").unwrap_err(),
            CmdlineError::IpAutoconf("dchp".into())
        );
    }

    #[test]
    fn ip_full_static_form() {
        let c = IpConfig::parse("10.0.0.5:10.0.0.1:10.0.0.254:255.255.255.0:node5:eth1:off:10.0.0.53:10.0.0.54:10.0.0.123")
            .unwrap();
        assert_eq!(c.client, Some(ip("10.0.0.5")));
        assert_eq!(c.server, Some(ip("10.0.0.1")));
        assert_eq!(c.gateway, Some(ip("10.0.0.254")));
        assert_eq!(c.netmask, Some(ip("255.255.255.0")));
        assert_eq!(c.hostname.as_deref(), Some("node5"));
        assert_eq!(c.device.as_deref(), Some("eth1"));
        assert_eq!(c.dns, [ip("10.0.0.53"), ip("10.0.0.54")]);
        assert_eq!(c.ntp, Some(ip("10.0.0.123")));
        assert_eq!(c.mode(), IpMode::Static);
    }

    #[test]
    fn ip_partial_forms_pick_the_kernel_mode() {
        assert_eq!(
            IpConfig::parse(":::::eth1:dhcp").unwrap().mode(),
            IpMode::Dhcp
        );
        assert_eq!(IpConfig::parse(":::::eth1").unwrap().mode(), IpMode::Dhcp);
        assert_eq!(
            IpConfig::parse("10.0.0.5::::::").unwrap().mode(),
            IpMode::Static
        );
        assert_eq!(
            IpConfig::parse(":::::eth1:off").unwrap().mode(),
            IpMode::Off
        );
    }

    #[test]
    fn ip_bad_fields_are_named() {
        let e = IpConfig::parse("10.0.0.300:::").unwrap_err();
        assert!(
            matches!(
                e,
                CmdlineError::IpField {
                    field: 1,
                    name: "client-ip",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = IpConfig::parse("10.0.0.5::10.0.0.1:255.0.255.0").unwrap_err();
        assert!(
            matches!(
                e,
                CmdlineError::IpField {
                    field: 4,
                    name: "netmask",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = IpConfig::parse("::::bad_host!").unwrap_err();
        assert!(matches!(e, CmdlineError::IpField { field: 5, .. }), "{e:?}");
        let e = IpConfig::parse(":::::eth0:sometimes").unwrap_err();
        assert_eq!(e, CmdlineError::IpAutoconf("sometimes".into()));
        assert!(e.to_string().contains("off, none"));
        assert_eq!(
            IpConfig::parse("1:2:3:4:5:6:7:8:9:10:11").unwrap_err(),
            CmdlineError::IpTooManyFields(11)
        );
    }

    /// Parse and print round-trip over generated field combinations.
    #[test]
    fn ip_round_trips() {
        let clients = ["", "10.1.2.3"];
        let masks = ["", "255.255.0.0"];
        let hosts = ["", "n1"];
        let devs = ["", "eth0"];
        let autos = ["", "off", "dhcp"];
        let dnss = ["", "10.0.0.53"];
        let mut n = 0;
        for c in clients {
            for m in masks {
                for h in hosts {
                    for d in devs {
                        for a in autos {
                            for dns in dnss {
                                let text = format!("{c}::{c}:{m}:{h}:{d}:{a}:{dns}");
                                let p = IpConfig::parse(&text).unwrap();
                                let printed = p.to_string();
                                assert_eq!(
                                    IpConfig::parse(&printed).unwrap(),
                                    p,
                                    "{text} -> {printed}"
                                );
                                n += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(n, 96);
    }

    #[test]
    fn config_file_then_cmdline_wins() {
        let file = "# written by unionroot\nunionroot.nfsvers=4\nunionroot.size=256m\nnfsroot=10.0.0.1:/srv/a\n";
        let c = Config::parse(file, "BOOT_IMAGE=/vmlinuz console=ttyS0 nfsroot=10.0.2.2:/srv/system unionroot.size=1g -- single x").unwrap();
        assert_eq!(c.nfs_version, NfsVersion::V4(2));
        assert_eq!(c.overlay_size, "1g");
        assert_eq!(c.nfsroot.as_ref().unwrap().servers, [ip("10.0.2.2")]);
        assert_eq!(c.init_args, ["single", "x"]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.ip.mode(), IpMode::Dhcp);
    }

    #[test]
    fn root_pieces() {
        let file = "unionroot.lower=10.0.0.1|10.0.0.2:/srv/base\nunionroot.lower=10.0.0.3:/srv/tools,nodev\n\
                    unionroot.mount=/home=10.0.0.1:/srv/home,rw\nunionroot.persist=10.0.0.1:/srv/nodes\n\
                    unionroot.persist_paths=/var/log,/etc/ssh/\n";
        let c = Config::parse(file, "").unwrap();
        assert_eq!(c.lowers.len(), 2);
        assert_eq!(c.lowers[0].servers, [ip("10.0.0.1"), ip("10.0.0.2")]);
        assert_eq!(c.lowers[1].path, "/srv/tools");
        assert_eq!(c.mounts[0].0, "/home");
        assert_eq!(c.mounts[0].1.options, ["rw"]);
        assert_eq!(c.persist.as_ref().unwrap().path, "/srv/nodes");
        assert_eq!(c.persist_paths, ["/var/log", "/etc/ssh"]);
        for bad in [
            "unionroot.mount=home=1.2.3.4:/x",
            "unionroot.mount=/home",
            "unionroot.persist_paths=/var/../etc",
        ] {
            assert!(
                matches!(Config::parse("", bad), Err(CmdlineError::BadValue { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn defaults() {
        let c = Config::parse("", "").unwrap();
        assert_eq!(c.init, "/sbin/init");
        assert_eq!(c.nfs_version, NfsVersion::V3);
        assert_eq!(c.overlay_size, "50%");
        assert_eq!(c.ip.mode(), IpMode::Dhcp);
        assert_eq!(c.on_fail, OnFail::Shell);
    }

    #[test]
    fn unknown_unionroot_key_is_a_warning() {
        let c = Config::parse("", "unionroot.sise=1g unionroot.debug quiet").unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("unionroot.sise=1g"));
        assert!(c.debug);
    }

    #[test]
    fn bad_values_are_named_errors() {
        for (line, key) in [
            ("unionroot.size=lots", "unionroot.size"),
            ("unionroot.init=sbin/init", "unionroot.init"),
            ("unionroot.mount_timeout=soon", "unionroot.mount_timeout"),
            ("unionroot.onfail=panic", "unionroot.onfail"),
            ("BOOTIF=aa-bb", "BOOTIF"),
        ] {
            match Config::parse("", line) {
                Err(CmdlineError::BadValue { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{line}: {other:?}"),
            }
        }
        assert!(matches!(
            Config::parse("", "nfsroot=host:/x"),
            Err(CmdlineError::Nfs(NfsError::BadServer(_)))
        ));
    }

    #[test]
    fn bootif_and_version_precedence() {
        assert_eq!(
            parse_bootif("01-52-54-00-12-34-56"),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert_eq!(parse_bootif("06-52-54-00-12-34-56"), None);
        let c = Config::parse("unionroot.mac=52:54:00:AB:cd:01", "").unwrap();
        assert_eq!(c.mac, Some([0x52, 0x54, 0, 0xab, 0xcd, 1]));
        assert_eq!(parse_mac("52:54:00:ab:cd"), None);
        assert_eq!(parse_mac("52:54:00:ab:cd:0g"), None);
        let c = Config::parse("", "unionroot.nfsvers=4 nfsroot=/x,vers=3").unwrap();
        assert_eq!(c.effective_nfs_version().unwrap(), NfsVersion::V3);
    }
}
