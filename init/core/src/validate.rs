//! The one validation layer for untrusted values: everything from DHCP, the kernel command line
//! or a config file passes through here before it becomes a path component, a mount target, a
//! host name or a line in a file. Values are refused with a named reason, never "cleaned up":
//! a repaired host name could be another node's, and a repaired path another directory.
//!
//! - Host and domain names follow RFC 1123 section 2.1 (over RFC 952): labels of 1 to 63
//!   letters, digits and `-`, not starting or ending with `-`, joined by single dots, at most 253
//!   characters in all. Such a name can never be `.`, `..` or contain `/`, so it is also a safe
//!   single path component.
//! - Paths joined onto a directory (mount targets, persistent paths) are absolute and normalized:
//!   empty and `.` components (`//`, `/./`, a trailing `/`) are collapsed because they mean the
//!   same directory to path_resolution(7), but a `..` component is refused (its meaning depends
//!   on symlinks in the tree it is joined to), and so is a path that collapses to `/` itself.
//! - Text that ends up in a file line (resolv.conf(5), `/run/net-*.conf`) has no control
//!   characters, so it cannot start a new line or hide one.

use std::fmt;
use std::net::Ipv4Addr;
use std::ops::Deref;
use thiserror::Error;

/// Why a value was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Invalid {
    #[error("it is empty")]
    Empty,
    #[error("it is {len} bytes long; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("it contains the control character {0:?}")]
    Control(char),
    #[error("it has an empty label (a dot at either end, or two dots in a row)")]
    EmptyLabel,
    #[error("its label {label:?} is {len} characters long; a label has at most 63")]
    LabelTooLong { label: String, len: usize },
    #[error("its label {0:?} starts or ends with '-'")]
    LabelHyphen(String),
    #[error(
        "it contains {0:?}; a host name has only letters, digits, '-' and dots between labels"
    )]
    NameChar(char),
    #[error("it is not an absolute path (it must start with '/')")]
    NotAbsolute,
    #[error("it has a '..' component, which could lead out of the directory it is joined to")]
    DotDot,
    #[error("it names / itself, which would cover the whole root")]
    Root,
    #[error("its component {0:?} is longer than 255 bytes (NAME_MAX)")]
    ComponentTooLong(String),
}

/// RFC 1123 limit on a whole name.
pub const MAX_NAME: usize = 253;
/// RFC 1123 limit on one label.
pub const MAX_LABEL: usize = 63;
/// Linux `PATH_MAX`, counting the terminating NUL.
pub const MAX_PATH: usize = 4095;
/// Linux `NAME_MAX`.
pub const MAX_COMPONENT: usize = 255;

fn no_control(s: &str) -> Result<(), Invalid> {
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(Invalid::Control(c)),
        None => Ok(()),
    }
}

/// Checks an RFC 1123 name (host or domain).
fn dns_name(s: &str) -> Result<(), Invalid> {
    if s.is_empty() {
        return Err(Invalid::Empty);
    }
    no_control(s)?;
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(Invalid::NameChar(c));
    }
    if s.len() > MAX_NAME {
        return Err(Invalid::TooLong {
            len: s.len(),
            max: MAX_NAME,
        });
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err(Invalid::EmptyLabel);
        }
        if label.len() > MAX_LABEL {
            return Err(Invalid::LabelTooLong {
                label: label.to_string(),
                len: label.len(),
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(Invalid::LabelHyphen(label.to_string()));
        }
    }
    Ok(())
}

/// A host name that passed RFC 1123: safe as a path component, in a file line and for
/// sethostname(2) (which additionally limits it to 64 bytes; see [`Hostname::fits_uts`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hostname(String);

impl Hostname {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        dns_name(s)?;
        Ok(Hostname(s.to_string()))
    }

    /// An address is a valid name too (digits-only labels are allowed by RFC 1123): the last
    /// resort for naming a node's directory.
    pub fn from_addr(a: Ipv4Addr) -> Self {
        Hostname(a.to_string())
    }

    /// The kernel's `__NEW_UTS_LEN`: a longer name is a fine directory but not a `uname -n`.
    pub const UTS_MAX: usize = 64;

    pub fn fits_uts(&self) -> bool {
        self.0.len() <= Self::UTS_MAX
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A DNS domain name (DHCP option 15, `/proc/net/pnp`), same rules as a [`Hostname`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        dns_name(s)?;
        Ok(DomainName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute, normalized path other than `/`, without `..`: what may be joined onto the new
/// root (`unionroot.mount=` targets, `unionroot.persist_paths=`) or a node's directory.
/// Always starts with `/` and never ends with one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MountTarget(String);

impl MountTarget {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() {
            return Err(Invalid::Empty);
        }
        no_control(s)?;
        if !s.starts_with('/') {
            return Err(Invalid::NotAbsolute);
        }
        if s.len() > MAX_PATH {
            return Err(Invalid::TooLong {
                len: s.len(),
                max: MAX_PATH,
            });
        }
        let mut out = String::with_capacity(s.len());
        for c in s.split('/') {
            match c {
                "" | "." => {}
                ".." => return Err(Invalid::DotDot),
                c if c.len() > MAX_COMPONENT => {
                    return Err(Invalid::ComponentTooLong(c.to_string()))
                }
                c => {
                    out.push('/');
                    out.push_str(c);
                }
            }
        }
        if out.is_empty() {
            return Err(Invalid::Root);
        }
        Ok(MountTarget(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One line of text for a file (no control characters, so no line breaks).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Line(String);

impl Line {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        no_control(s)?;
        Ok(Line(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An interface name as the kernel's `dev_valid_name()` accepts it: 1 to 15 bytes, not `.` or
/// `..`, no `/`, `:` or whitespace (and here no control characters either).
pub fn check_ifname(s: &str) -> Result<(), Invalid> {
    const IFNAMSIZ: usize = 16;
    if s.is_empty() {
        return Err(Invalid::Empty);
    }
    no_control(s)?;
    if s.len() >= IFNAMSIZ {
        return Err(Invalid::TooLong {
            len: s.len(),
            max: IFNAMSIZ - 1,
        });
    }
    if s == "." || s == ".." {
        return Err(Invalid::DotDot);
    }
    if let Some(c) = s
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace())
    {
        return Err(Invalid::NameChar(c));
    }
    Ok(())
}

macro_rules! text_newtype {
    ($($t:ty),*) => {$(
        impl Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, o: &str) -> bool {
                self.0 == o
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, o: &&str) -> bool {
                self.0 == *o
            }
        }
        impl PartialEq<String> for $t {
            fn eq(&self, o: &String) -> bool {
                &self.0 == o
            }
        }
    )*};
}
text_newtype!(Hostname, DomainName, MountTarget, Line);

/// Shows untrusted text in a message without letting it break the line (control characters and
/// quotes are escaped as in Rust string literals, without the surrounding quotes).
pub fn shown(s: &str) -> String {
    s.escape_debug().to_string()
}

/// `s` with only its control characters escaped, for text that is shown in a log line as it
/// would be typed (quotes included), such as a module's parameter string.
pub fn controls_escaped(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_follow_rfc_1123() {
        for ok in [
            "node1",
            "n",
            "node-01.cluster.lan",
            "1node",
            "10.0.2.15",
            &"a".repeat(63),
            &[
                "a".repeat(63),
                "b".repeat(63),
                "c".repeat(63),
                "d".repeat(61),
            ]
            .join("."),
        ] {
            assert_eq!(Hostname::parse(ok).unwrap().as_str(), ok);
        }
        let long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(62),
        ]
        .join(".");
        for (bad, why) in [
            ("", Invalid::Empty),
            ("..", Invalid::EmptyLabel),
            (".", Invalid::EmptyLabel),
            ("node.", Invalid::EmptyLabel),
            ("a..b", Invalid::EmptyLabel),
            ("../node-b", Invalid::NameChar('/')),
            ("../../../../etc", Invalid::NameChar('/')),
            ("-node", Invalid::LabelHyphen("-node".into())),
            ("node.b-", Invalid::LabelHyphen("b-".into())),
            ("node_1", Invalid::NameChar('_')),
            ("node 1", Invalid::NameChar(' ')),
            ("node\n1", Invalid::Control('\n')),
            ("nöde", Invalid::NameChar('ö')),
            (
                &"a".repeat(64),
                Invalid::LabelTooLong {
                    label: "a".repeat(64),
                    len: 64,
                },
            ),
            (&long, Invalid::TooLong { len: 254, max: 253 }),
        ] {
            assert_eq!(Hostname::parse(bad), Err(why.clone()), "{bad:?}");
            assert_eq!(DomainName::parse(bad), Err(why), "{bad:?}");
        }
        assert!(Hostname::parse(&"a".repeat(64 - 2)).unwrap().fits_uts());
        assert!(
            !Hostname::parse(&["a".repeat(40), "b".repeat(40)].join("."))
                .unwrap()
                .fits_uts()
        );
    }

    #[test]
    fn mount_targets_are_normalized_and_contained() {
        for (given, normal) in [
            ("/home", "/home"),
            ("/etc/ssh/", "/etc/ssh"),
            ("//home", "/home"),
            ("/./var//log/.", "/var/log"),
            ("/a b", "/a b"),
            ("/...", "/..."),
            ("/..x", "/..x"),
        ] {
            assert_eq!(MountTarget::parse(given).unwrap().as_str(), normal);
        }
        for (bad, why) in [
            ("", Invalid::Empty),
            ("/", Invalid::Root),
            ("//", Invalid::Root),
            ("/./", Invalid::Root),
            ("/.", Invalid::Root),
            ("/..", Invalid::DotDot),
            ("/../../etc", Invalid::DotDot),
            ("/var/../etc", Invalid::DotDot),
            ("/var/log/..", Invalid::DotDot),
            ("home", Invalid::NotAbsolute),
            ("./home", Invalid::NotAbsolute),
            ("/ho\nme", Invalid::Control('\n')),
            ("/ho\0me", Invalid::Control('\0')),
        ] {
            assert_eq!(MountTarget::parse(bad), Err(why), "{bad:?}");
        }
        let long = format!("/{}", "a".repeat(256));
        assert!(matches!(
            MountTarget::parse(&long),
            Err(Invalid::ComponentTooLong(_))
        ));
        let huge = "/a".repeat(2048);
        assert!(matches!(
            MountTarget::parse(&huge),
            Err(Invalid::TooLong { .. })
        ));
    }

    #[test]
    fn lines_and_interfaces() {
        assert!(Line::parse("10.0.2.2:/srv/system").is_ok());
        assert_eq!(Line::parse("a\nb"), Err(Invalid::Control('\n')));
        assert_eq!(Line::parse("a\rb"), Err(Invalid::Control('\r')));
        assert_eq!(Line::parse("a\u{85}b"), Err(Invalid::Control('\u{85}')));
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("enp0s31f6").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "eth/0",
            "eth:0",
            "eth 0",
            "a\tb",
            "abcdefghijklmnop",
        ] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
        assert_eq!(shown("a\nb\"c"), "a\\nb\\\"c");
    }
}
