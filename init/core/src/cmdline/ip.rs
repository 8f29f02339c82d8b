//! The kernel's `ip=` parameter (`Documentation/admin-guide/nfs/nfsroot.rst`), parsed and
//! printed: what [`IpConfig::parse`] reads, its `Display` writes.

use super::CmdlineError;
use crate::addr::{mask_prefix, netmask_prefix};
use crate::validate::{self, Hostname, Invalid};
use std::fmt;
use std::net::Ipv4Addr;

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
    /// A contiguous mask other than 0.0.0.0.
    pub netmask: Option<Ipv4Addr>,
    /// RFC 1123, and at most 64 bytes as the kernel's own `ip=` parser allows.
    pub hostname: Option<Hostname>,
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
        let field_err = |i: usize, value: &str, what: String| CmdlineError::IpField {
            field: i + 1,
            name: IP_FIELDS.get(i).copied().unwrap_or("?"),
            value: value.to_string(),
            what,
        };
        let addr = |i: usize| -> Result<Option<Ipv4Addr>, CmdlineError> {
            get(i)
                .map(|v| {
                    v.parse::<Ipv4Addr>().map_err(|_| {
                        let what = if i == 3 {
                            "netmask, e.g. 255.255.255.0"
                        } else {
                            "IPv4 address, e.g. 10.0.0.5"
                        };
                        field_err(i, v, what.into())
                    })
                })
                .transpose()
        };
        let netmask = addr(3)?;
        if let Some(m) = netmask {
            if netmask_prefix(m).is_none() {
                return Err(field_err(
                    3,
                    &m.to_string(),
                    "netmask (ones followed by zeros, not 0.0.0.0), e.g. 255.255.255.0".into(),
                ));
            }
        }
        let hostname = match get(4) {
            None => None,
            Some(h) => {
                let name = Hostname::parse(h)
                    .map_err(|e| field_err(4, h, format!("host name: {e}; e.g. node-01")))?;
                if !name.fits_uts() {
                    return Err(field_err(
                        4,
                        h,
                        format!(
                            "host name: {}; e.g. node-01",
                            Invalid::TooLong {
                                len: h.len(),
                                max: Hostname::UTS_MAX
                            }
                        ),
                    ));
                }
                Some(name)
            }
        };
        let device = get(5).map(String::from);
        if let Some(d) = &device {
            validate::check_ifname(d)
                .map_err(|e| field_err(5, d, format!("interface name: {e}; e.g. eth0")))?;
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

    /// The prefix length of the netmask, if one was given.
    pub fn prefix(&self) -> Option<u8> {
        self.netmask.map(mask_prefix)
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
            self.hostname
                .as_ref()
                .map(|h| h.to_string())
                .unwrap_or_default(),
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
        let shown = fields.get(..=last.max(1)).unwrap_or(&fields);
        f.write_str(&shown.join(":"))
    }
}
