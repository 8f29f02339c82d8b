//! The DHCP message on the wire (RFC 2131 §2, RFC 2132 options, RFC 3396 long options): what the
//! client sends, built byte by byte, and the bounds-checked parser of what it receives.
//!
//! Messages are built and parsed here rather than by `dhcproto`: dhcproto 0.15's decoder trips
//! `debug_assert!`s on short options 80/81/94 (a panic in any debug build, and PID 1 must never
//! panic), stops decoding at the first option it does not like (a non-UTF-8 host name silently
//! drops every option after it), and its `Message` constructors call `rand::random()`, i.e.
//! getrandom(2), which can block in early boot. The tests use dhcproto as an independent
//! implementation to build and check packets.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use thiserror::Error;

/// UDP port DHCP servers listen on.
pub const SERVER_PORT: u16 = 67;
/// UDP port DHCP clients listen on.
pub const CLIENT_PORT: u16 = 68;
/// What we announce in option 57: a 1500-byte Ethernet MTU minus IPv4 and UDP headers.
pub const MAX_MESSAGE_SIZE: u16 = 1472;
/// Option 55. 17 (root path) is essential: dnsmasq only sends options that the client asks for.
pub const PARAMETER_REQUEST_LIST: [u8; 13] = [1, 3, 6, 12, 15, 17, 26, 28, 42, 51, 54, 66, 67];

/// Minimum BOOTP message size (RFC 1542 §2.1): some relays drop anything shorter.
const MIN_MESSAGE_LEN: usize = 300;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
const BOOTREQUEST: u8 = 1;
pub(super) const BOOTREPLY: u8 = 2;
const HTYPE_ETHERNET: u8 = 1;
/// The broadcast bit of the BOOTP `flags` field: the server must broadcast its replies, as we
/// cannot receive unicast before the address is configured (RFC 2131 §4.1).
const FLAG_BROADCAST: u16 = 0x8000;

// Fixed BOOTP header layout (RFC 2131 §2, figure 1).
const OFF_XID: usize = 4;
const OFF_YIADDR: usize = 16;
const OFF_SIADDR: usize = 20;
const OFF_CHADDR: usize = 28;
const OFF_SNAME: usize = 44;
const OFF_FILE: usize = 108;
const OFF_COOKIE: usize = 236;
const OFF_OPTIONS: usize = 240;
const SNAME_LEN: usize = 64;
const FILE_LEN: usize = 128;

/// RFC 2132 option codes that the client sends or the lease reads.
pub(super) mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN: u8 = 15;
    pub const ROOT_PATH: u8 = 17;
    pub const MTU: u8 = 26;
    pub const BROADCAST: u8 = 28;
    pub const NTP: u8 = 42;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const CLIENT_ID: u8 = 61;
    pub const TFTP_SERVER: u8 = 66;
    pub const BOOTFILE: u8 = 67;
    pub const END: u8 = 255;
}

/// DHCP message types (option 53, RFC 2132 §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MsgType {
    Discover,
    Offer,
    Request,
    Ack,
    Nak,
    Other(u8),
}

impl MsgType {
    pub(super) fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            5 => Self::Ack,
            6 => Self::Nak,
            n => Self::Other(n),
        }
    }

    pub(super) fn code(self) -> u8 {
        match self {
            Self::Discover => 1,
            Self::Offer => 2,
            Self::Request => 3,
            Self::Ack => 5,
            Self::Nak => 6,
            Self::Other(n) => n,
        }
    }
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discover => f.write_str("DISCOVER"),
            Self::Offer => f.write_str("OFFER"),
            Self::Request => f.write_str("REQUEST"),
            Self::Ack => f.write_str("ACK"),
            Self::Nak => f.write_str("NAK"),
            Self::Other(n) => write!(f, "message type {n}"),
        }
    }
}

/// Builds a DISCOVER or, with `requested` (the offered address and the server that offered
/// it), a SELECTING-state REQUEST (RFC 2131 §4.4.1, table 5). `secs` is the time since the
/// client began acquisition.
pub(super) fn client_message(
    kind: MsgType,
    xid: u32,
    secs: u16,
    mac: [u8; 6],
    hostname: Option<&str>,
    requested: Option<(Ipv4Addr, Ipv4Addr)>,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(MIN_MESSAGE_LEN + 64);
    m.extend_from_slice(&[BOOTREQUEST, HTYPE_ETHERNET, 6, 0]);
    m.extend_from_slice(&xid.to_be_bytes());
    m.extend_from_slice(&secs.to_be_bytes());
    m.extend_from_slice(&FLAG_BROADCAST.to_be_bytes());
    m.extend_from_slice(&[0; 16]); // ciaddr, yiaddr, siaddr, giaddr
    m.extend_from_slice(&mac);
    m.extend_from_slice(&[0; 10]); // rest of chaddr
    m.extend_from_slice(&[0; SNAME_LEN + FILE_LEN]);
    m.extend_from_slice(&MAGIC_COOKIE);

    put_option(&mut m, opt::MESSAGE_TYPE, &[kind.code()]);
    let mut client_id = [1u8; 7];
    for (dst, src) in client_id.iter_mut().skip(1).zip(mac) {
        *dst = src;
    }
    put_option(&mut m, opt::CLIENT_ID, &client_id);
    put_option(
        &mut m,
        opt::MAX_MESSAGE_SIZE,
        &MAX_MESSAGE_SIZE.to_be_bytes(),
    );
    put_option(&mut m, opt::PARAMETER_LIST, &PARAMETER_REQUEST_LIST);
    if let Some(name) = hostname.filter(|n| !n.is_empty()) {
        put_option(&mut m, opt::HOSTNAME, name.as_bytes());
    }
    if let Some((address, server)) = requested {
        put_option(&mut m, opt::REQUESTED_IP, &address.octets());
        put_option(&mut m, opt::SERVER_ID, &server.octets());
    }
    m.push(opt::END);
    if m.len() < MIN_MESSAGE_LEN {
        m.resize(MIN_MESSAGE_LEN, opt::PAD);
    }
    m
}

/// Appends one option, split into 255-byte pieces as RFC 3396 allows when it is longer.
fn put_option(m: &mut Vec<u8>, code: u8, data: &[u8]) {
    for chunk in data.chunks(usize::from(u8::MAX)) {
        m.push(code);
        // chunks() yields at most 255 bytes.
        m.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
        m.extend_from_slice(chunk);
    }
}

/// Why a received packet could not be parsed as a DHCP message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(super) enum Malformed {
    #[error("truncated: {0} bytes, a DHCP message has at least 240")]
    Short(usize),
    #[error("no DHCP magic cookie")]
    NoCookie,
    #[error("option {code} runs past the end of the {area} field")]
    Overrun { code: u8, area: &'static str },
}

/// A parsed BOOTREPLY, borrowing from the packet.
#[derive(Debug)]
pub(super) struct Reply<'a> {
    pub(super) op: u8,
    pub(super) xid: u32,
    pub(super) yiaddr: Ipv4Addr,
    pub(super) siaddr: Ipv4Addr,
    pub(super) chaddr: &'a [u8],
    /// The `file` header field, unless option 52 says it holds options.
    pub(super) file: Option<&'a [u8]>,
    /// Option data by code, with repeated codes concatenated (RFC 3396).
    pub(super) options: BTreeMap<u8, Vec<u8>>,
}

impl<'a> Reply<'a> {
    pub(super) fn parse(p: &'a [u8]) -> Result<Self, Malformed> {
        let short = || Malformed::Short(p.len());
        let op = *p.first().ok_or_else(short)?;
        let xid = be_u32(p, OFF_XID).ok_or_else(short)?;
        let yiaddr = Ipv4Addr::from(be_u32(p, OFF_YIADDR).ok_or_else(short)?);
        let siaddr = Ipv4Addr::from(be_u32(p, OFF_SIADDR).ok_or_else(short)?);
        let chaddr = p.get(OFF_CHADDR..OFF_SNAME).ok_or_else(short)?;
        let sname = p.get(OFF_SNAME..OFF_FILE).ok_or_else(short)?;
        let file = p.get(OFF_FILE..OFF_COOKIE).ok_or_else(short)?;
        let cookie = p.get(OFF_COOKIE..OFF_OPTIONS).ok_or_else(short)?;
        if cookie != MAGIC_COOKIE {
            return Err(Malformed::NoCookie);
        }
        let mut options = BTreeMap::new();
        walk_options(
            p.get(OFF_OPTIONS..).unwrap_or_default(),
            "options",
            &mut options,
        )?;
        // RFC 2131 §4.1 / RFC 3396: option 52 moves more options into `file` (1), `sname` (2)
        // or both (3), read in that order after the options field.
        let overload = options
            .get(&opt::OVERLOAD)
            .and_then(|v| v.first().copied())
            .unwrap_or(0);
        let mut extra = BTreeMap::new();
        if overload & 1 != 0 {
            walk_options(file, "file", &mut extra)?;
        }
        if overload & 2 != 0 {
            walk_options(sname, "sname", &mut extra)?;
        }
        for (code, data) in extra {
            if code != opt::OVERLOAD {
                options.entry(code).or_default().extend(data);
            }
        }
        Ok(Self {
            op,
            xid,
            yiaddr,
            siaddr,
            chaddr,
            file: (overload & 1 == 0).then_some(file),
            options,
        })
    }

    pub(super) fn msg_type(&self) -> Option<MsgType> {
        match self.options.get(&opt::MESSAGE_TYPE)?.as_slice() {
            [code] => Some(MsgType::from_code(*code)),
            _ => None,
        }
    }

    /// A single address; any length other than 4 counts as absent.
    pub(super) fn ipv4(&self, code: u8) -> Option<Ipv4Addr> {
        let bytes: [u8; 4] = self.options.get(&code)?.as_slice().try_into().ok()?;
        Some(Ipv4Addr::from(bytes))
    }

    /// A list of addresses; a length that is not a multiple of 4 counts as absent.
    pub(super) fn ipv4s(&self, code: u8) -> Vec<Ipv4Addr> {
        let Some(data) = self.options.get(&code) else {
            return Vec::new();
        };
        if data.len() % 4 != 0 {
            return Vec::new();
        }
        data.chunks_exact(4)
            .filter_map(|c| <[u8; 4]>::try_from(c).ok())
            .map(Ipv4Addr::from)
            .collect()
    }

    pub(super) fn u16(&self, code: u8) -> Option<u16> {
        let bytes: [u8; 2] = self.options.get(&code)?.as_slice().try_into().ok()?;
        Some(u16::from_be_bytes(bytes))
    }

    pub(super) fn u32(&self, code: u8) -> Option<u32> {
        let bytes: [u8; 4] = self.options.get(&code)?.as_slice().try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }

    pub(super) fn string(&self, code: u8) -> Option<String> {
        text(self.options.get(&code)?)
    }
}

/// Collects the options of one area (options field, or an overloaded `file`/`sname`).
fn walk_options(
    area: &[u8],
    name: &'static str,
    out: &mut BTreeMap<u8, Vec<u8>>,
) -> Result<(), Malformed> {
    let mut rest = area;
    while let Some((&code, tail)) = rest.split_first() {
        match code {
            opt::PAD => rest = tail,
            opt::END => break,
            _ => {
                let overrun = Malformed::Overrun { code, area: name };
                let (&len, tail) = tail.split_first().ok_or(overrun.clone())?;
                let len = usize::from(len);
                let data = tail.get(..len).ok_or(overrun.clone())?;
                out.entry(code).or_default().extend_from_slice(data);
                rest = tail.get(len..).ok_or(overrun)?;
            }
        }
    }
    Ok(())
}

/// A DHCP string: up to the first NUL (servers may NUL-terminate), lossily decoded so that one
/// bad byte is visible in the log instead of silently dropping the value; empty means absent.
pub(super) fn text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let s = String::from_utf8_lossy(bytes.get(..end).unwrap_or_default());
    (!s.is_empty()).then(|| s.into_owned())
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::testutil::{decode, raw_ack, MAC};
    use dhcproto::v4::{DhcpOption, OptionCode};

    #[test]
    fn sent_packets_are_at_least_300_bytes_and_split_long_options() {
        let long = "n".repeat(300);
        let raw = client_message(MsgType::Discover, 1, 0, MAC, Some(&long), None);
        assert!(raw.len() >= 300, "{}", raw.len());
        // RFC 3396: dhcproto concatenates the two option-12 pieces back.
        assert_eq!(
            decode(&raw).opts().get(OptionCode::Hostname),
            Some(&DhcpOption::Hostname(long))
        );

        let short = client_message(MsgType::Discover, 1, 0, MAC, None, None);
        assert_eq!(short.len(), 300);
    }

    #[test]
    fn overloaded_sname_and_overrun_inside_file() {
        // Option 52 = 3: options continue in file, then in sname (at offset 44).
        let mut p = raw_ack(1, &[17, 2, b'/', b'a', 255], &[52, 1, 3]);
        p[44..49].copy_from_slice(&[17, 2, b'/', b'b', 255]);
        assert_eq!(
            Reply::parse(&p).unwrap().string(opt::ROOT_PATH).as_deref(),
            Some("/a/b")
        );
        // An option that runs past the end of the file field is malformed.
        let mut file = vec![0u8; 128];
        file[126] = 17;
        file[127] = 9;
        let p = raw_ack(1, &file, &[52, 1, 1]);
        let why = Reply::parse(&p).unwrap_err().to_string();
        assert!(
            why.contains("option 17 runs past the end of the file field"),
            "{why}"
        );
    }
}
