//! The lease: what a DHCPACK grants a diskless node (address, routes, DNS, root path, ...),
//! decoded from the RFC 2132 options that the boot needs.

use std::fmt;
use std::net::Ipv4Addr;

use super::wire::{opt, text, Reply};

/// Netmask assumed when the ACK carries no option 1 (not derived from the address class).
pub const DEFAULT_NETMASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);

/// An acquired lease: everything from the DHCPACK that the boot needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// `yiaddr` of the ACK.
    pub address: Ipv4Addr,
    /// Option 1. When the server sends none, [`DEFAULT_NETMASK`] (255.255.255.0) is assumed;
    /// the mask is deliberately not derived from the (obsolete) address class.
    pub netmask: Ipv4Addr,
    /// Option 28.
    pub broadcast: Option<Ipv4Addr>,
    /// Option 3, in the server's order of preference.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Option 15.
    pub domain: Option<String>,
    /// Option 17, e.g. `10.0.2.2:/srv/nfsroot`.
    pub root_path: Option<String>,
    /// Option 26; values below the RFC 2132 minimum of 68 are dropped.
    pub mtu: Option<u16>,
    /// Option 42.
    pub ntp: Vec<Ipv4Addr>,
    /// Option 54 of the ACK, else the server identifier of the offer we requested.
    pub server_id: Ipv4Addr,
    /// BOOTP header `siaddr` ("next server"); `None` when 0.0.0.0.
    pub siaddr: Option<Ipv4Addr>,
    /// Option 66.
    pub tftp_server: Option<String>,
    /// Option 67, else the BOOTP header `file` field (unless option 52 overloads it).
    pub bootfile: Option<String>,
    /// Option 51, in seconds; 0xffffffff means infinite.
    pub lease_secs: Option<u32>,
}

impl Lease {
    /// The lease an ACK grants; `server_id` is the server it is bound to (the caller knows
    /// which: option 54, else the server that was asked).
    pub(super) fn from_reply(reply: &Reply<'_>, server_id: Ipv4Addr) -> Self {
        Self {
            address: reply.yiaddr,
            netmask: reply.ipv4(opt::SUBNET_MASK).unwrap_or(DEFAULT_NETMASK),
            broadcast: reply.ipv4(opt::BROADCAST),
            routers: reply.ipv4s(opt::ROUTER),
            dns: reply.ipv4s(opt::DNS),
            hostname: reply.string(opt::HOSTNAME),
            domain: reply.string(opt::DOMAIN),
            root_path: reply.string(opt::ROOT_PATH),
            mtu: reply.u16(opt::MTU).filter(|&m| m >= 68),
            ntp: reply.ipv4s(opt::NTP),
            server_id,
            siaddr: Some(reply.siaddr).filter(|a| !a.is_unspecified()),
            tftp_server: reply.string(opt::TFTP_SERVER),
            bootfile: reply
                .string(opt::BOOTFILE)
                .or_else(|| reply.file.and_then(text)),
            lease_secs: reply.u32(opt::LEASE_TIME),
        }
    }

    /// CIDR prefix length of [`Lease::netmask`]: its leading one bits (a non-contiguous mask,
    /// which is invalid anyway, counts only up to its first zero bit).
    pub fn prefix_len(&self) -> u8 {
        // At most 32, so the fallback is never taken.
        u8::try_from(u32::from(self.netmask).leading_ones()).unwrap_or(32)
    }
}

impl fmt::Display for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len())?;
        if let Some(gw) = self.routers.first() {
            write!(f, " gw {gw}")?;
        }
        write!(f, " server {}", self.server_id)?;
        if let Some(root) = &self.root_path {
            write!(f, " root-path {root}")?;
        }
        if let Some(secs) = self.lease_secs {
            write!(f, " lease {secs}s")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::testutil::{encode, raw_ack, reply, ADDR, S1};
    use dhcproto::v4::{DhcpOption, MessageType};

    /// The lease of an ACK from S1, as the client takes it.
    fn decoded(p: &[u8]) -> Lease {
        Lease::from_reply(&Reply::parse(p).unwrap(), S1)
    }

    #[test]
    fn prefix_len_and_default_netmask() {
        let cases = [
            (None, 24),
            (Some([255, 255, 0, 0]), 16),
            (Some([255, 255, 255, 252]), 30),
            (Some([255, 255, 255, 255]), 32),
            (Some([0, 0, 0, 0]), 0),
            (Some([255, 0, 255, 0]), 8), // non-contiguous: leading ones only
        ];
        for (mask, want) in cases {
            let mut m = reply(MessageType::Ack, 1, ADDR, S1);
            if let Some(mask) = mask {
                m.opts_mut()
                    .insert(DhcpOption::SubnetMask(Ipv4Addr::from(mask)));
            }
            let lease = decoded(&encode(&m));
            assert_eq!(lease.prefix_len(), want, "{mask:?}");
        }
    }

    #[test]
    fn lease_option_edge_cases() {
        type Case = (
            &'static str,
            &'static [u8],
            &'static [u8],
            fn(&Lease) -> bool,
        );
        let cases: &[Case] = &[
            (
                "bootfile falls back to the file field",
                b"pxelinux.0\0",
                &[],
                |l| l.bootfile.as_deref() == Some("pxelinux.0"),
            ),
            (
                "option 67 beats the file field",
                b"old.0\0",
                &[67, 5, b'n', b'e', b'w', b'.', b'0'],
                |l| l.bootfile.as_deref() == Some("new.0"),
            ),
            (
                "RFC 3396: split option 17 is concatenated",
                b"",
                &[
                    17, 3, b'h', b':', b'/', 1, 4, 255, 255, 0, 0, 17, 2, b'r', b'o',
                ],
                |l| l.root_path.as_deref() == Some("h:/ro") && l.prefix_len() == 16,
            ),
            (
                "trailing NUL of a string is dropped",
                b"",
                &[17, 4, b'/', b'n', b'f', 0],
                |l| l.root_path.as_deref() == Some("/nf"),
            ),
            (
                "non-UTF-8 host name hides no later option",
                b"",
                &[12, 2, b'n', 0xff, 1, 4, 255, 255, 0, 0],
                |l| l.hostname.as_deref() == Some("n\u{fffd}") && l.prefix_len() == 16,
            ),
            (
                "netmask of the wrong length counts as absent",
                b"",
                &[1, 3, 255, 255, 0],
                |l| l.netmask == DEFAULT_NETMASK,
            ),
            (
                "router list of a bad length counts as absent",
                b"",
                &[3, 6, 10, 0, 2, 2, 10, 0],
                |l| l.routers.is_empty(),
            ),
            ("MTU below 68 is dropped", b"", &[26, 2, 0, 67], |l| {
                l.mtu.is_none()
            }),
            ("MTU of 68 is kept", b"", &[26, 2, 0, 68], |l| {
                l.mtu == Some(68)
            }),
            (
                "pads between options",
                b"",
                &[0, 0, 51, 4, 0, 0, 0, 60, 0],
                |l| l.lease_secs == Some(60),
            ),
            ("empty string is absent", b"", &[15, 0], |l| {
                l.domain.is_none()
            }),
            // Option 52 = 1: the file field holds options (here option 17), not a file name.
            (
                "option overload moves options into file",
                &[17, 4, b'/', b'o', b'v', b'l', 255],
                &[52, 1, 1],
                |l| l.root_path.as_deref() == Some("/ovl") && l.bootfile.is_none(),
            ),
        ];
        for (name, file, options, check) in cases {
            let lease = decoded(&raw_ack(1, file, options));
            assert!(check(&lease), "{name}: {lease:?}");
        }
    }
}
