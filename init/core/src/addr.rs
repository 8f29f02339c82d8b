//! Small network domain types, each parsed and printed in one place: the Ethernet [`Mac`] (as
//! `ip link` shows it, as pxelinux's `BOOTIF=` carries it) and the IPv4 netmask.

use std::fmt;
use std::net::Ipv4Addr;
use thiserror::Error;

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{0:?} is not a MAC address (want six hex pairs such as 52:54:00:12:34:56)")]
pub struct MacError(pub String);

/// Two hex digits, strictly (`from_str_radix` alone would take a sign: `+f`).
fn hex_byte(h: &str) -> Option<u8> {
    if h.len() != 2 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(h, 16).ok()
}

impl Mac {
    /// Six hex pairs separated by `:` or by `-` (not mixed), any case.
    pub fn parse(s: &str) -> Result<Mac, MacError> {
        let bad = || MacError(s.to_string());
        let sep = if s.contains(':') { ':' } else { '-' };
        let parts: Vec<&str> = s.split(sep).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (m, h) in mac.iter_mut().zip(&parts) {
            *m = hex_byte(h).ok_or_else(bad)?;
        }
        Ok(Mac(mac))
    }

    /// pxelinux's `BOOTIF=01-aa-bb-cc-dd-ee-ff` (hardware type 1, Ethernet), the inverse of
    /// [`Mac::bootif`].
    pub fn parse_bootif(s: &str) -> Result<Mac, MacError> {
        match s.strip_prefix("01-") {
            Some(rest) if !rest.contains(':') => Mac::parse(rest),
            _ => Err(MacError(s.to_string())),
        }
    }

    /// The lowest bit of the first byte: a group address, which no NIC has as its own.
    pub fn is_multicast(&self) -> bool {
        self.0.first().is_some_and(|b| b & 1 != 0)
    }

    /// `52-54-00-12-34-56`.
    pub fn hyphens(&self) -> String {
        self.joined("-")
    }

    /// `01-52-54-00-12-34-56` (ARP type 1, Ethernet): what pxelinux's `IPAPPEND 2` passes as
    /// `BOOTIF=`, and the name of its per-MAC config file.
    pub fn bootif(&self) -> String {
        format!("01-{}", self.hyphens())
    }

    fn joined(&self, sep: &str) -> String {
        self.0
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(sep)
    }
}

/// `52:54:00:12:34:56`, as `ip link` and networkd's `MACAddress=` write it.
impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.joined(":"))
    }
}

/// The prefix length of a netmask that is ones followed by zeros and not 0.0.0.0; `None` for
/// anything else.
pub fn netmask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    if bits == 0 || bits.leading_ones() + bits.trailing_zeros() != 32 {
        return None;
    }
    u8::try_from(bits.leading_ones()).ok()
}

/// The prefix length of the leading ones of `mask` (at most 32, so it fits a `u8`), for masks
/// the kernel already holds.
pub fn mask_prefix(mask: Ipv4Addr) -> u8 {
    let ones = u32::from(mask).leading_ones();
    u8::try_from(ones).unwrap_or(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_and_print_in_every_form() {
        let m = Mac([0x52, 0x54, 0, 0xab, 0xcd, 0x0f]);
        for s in [
            "52:54:00:ab:cd:0f",
            "52-54-00-AB-CD-0F",
            "52:54:00:Ab:cd:0F",
        ] {
            assert_eq!(Mac::parse(s), Ok(m), "{s}");
        }
        assert_eq!(m.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!(m.hyphens(), "52-54-00-ab-cd-0f");
        assert_eq!(m.bootif(), "01-52-54-00-ab-cd-0f");
        assert_eq!(Mac::parse_bootif(&m.bootif()), Ok(m));
        assert_eq!(Mac::parse(&m.to_string()), Ok(m));
        for bad in [
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0g",
            "52:54:00:ab:cd:0f:00",
            "52:54:00:12:34:+5",
            "+2:54:00:12:34:56",
            "525:4:00:ab:cd:0f",
            "52:54:00-ab:cd:0f",
            "",
        ] {
            assert_eq!(Mac::parse(bad), Err(MacError(bad.into())), "{bad}");
        }
        for bad in [
            "06-52-54-00-12-34-56",
            "01-52-54-00-12-34-+5",
            "01-52:54:00:12:34:56",
        ] {
            assert!(Mac::parse_bootif(bad).is_err(), "{bad}");
        }
        assert!(Mac([1, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(!m.is_multicast());
    }

    #[test]
    fn netmasks_are_ones_then_zeros() {
        let p = |s: &str| netmask_prefix(s.parse().unwrap());
        assert_eq!(p("255.255.255.0"), Some(24));
        assert_eq!(p("255.255.255.255"), Some(32));
        assert_eq!(p("128.0.0.0"), Some(1));
        assert_eq!(p("0.0.0.0"), None);
        assert_eq!(p("255.0.255.0"), None);
        assert_eq!(p("0.255.255.255"), None);
        assert_eq!(mask_prefix("255.255.252.0".parse().unwrap()), 22);
    }
}
