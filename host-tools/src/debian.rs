//! What Debian calls valid, for the values of cluster.toml's `[image]` that reach mmdebstrap's
//! argv: suites, mmdebstrap's variants, package names (Debian Policy 5.6.7) and archive URLs.
//! Its own module because two jobs use it: the cluster checks report a bad value at its line, and
//! `unionroot image` builds with the values those checks passed.

/// mmdebstrap's variants that install and configure a usable system. `extract` and `custom`
/// leave the package set or its configuration to the caller.
pub const VARIANTS: [&str; 8] = [
    "essential",
    "apt",
    "required",
    "minbase",
    "buildd",
    "important",
    "debootstrap",
    "standard",
];

/// A suite or codename: `bookworm`, `stable`, `bookworm-backports`.
pub fn check_suite(s: &str) -> Result<(), String> {
    let ok = s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a Debian suite; use a codename or suite such as \"bookworm\", \
             \"trixie\" or \"stable\""
        ))
    }
}

pub fn check_variant(s: &str) -> Result<(), String> {
    if VARIANTS.contains(&s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not an mmdebstrap variant that builds a bootable system; use one of {}",
            VARIANTS.join(", ")
        ))
    }
}

/// Debian Policy 5.6.7: lower-case letters, digits, `+`, `-` and `.`, at least two characters,
/// starting with a letter or digit. So a name can never be an option or split an argument list.
pub fn check_package(s: &str) -> Result<(), String> {
    let ok = s.len() >= 2
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a Debian package name (Policy 5.6.7: at least two of a-z 0-9 + - ., \
             starting with a letter or digit)"
        ))
    }
}

/// An archive URL for mmdebstrap's MIRROR argument: http, https or file, nothing that it would
/// read as a `deb ...` line, a file to paste, or an option.
pub fn check_mirror(s: &str) -> Result<(), String> {
    let scheme_ok = ["http://", "https://", "file:///"]
        .iter()
        .any(|p| s.starts_with(p) && s.len() > p.len());
    if !scheme_ok {
        return Err(format!(
            "{s:?} is not an archive URL; use http://, https:// or file:///, e.g. \
             \"http://deb.debian.org/debian\", or drop the key for mmdebstrap's default"
        ));
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"')
    {
        return Err(format!(
            "{s:?} must not contain whitespace, control characters or quotes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_debian_policy() {
        for ok in [
            "nfs-common",
            "libstdc++6",
            "g++",
            "0ad",
            "python3.11",
            "xz-utils",
        ] {
            check_package(ok).unwrap();
        }
        for bad in [
            "",
            "a",
            "-x",
            "--root=/",
            "Foo",
            "a b",
            "a,b",
            "vim:amd64",
            "vim=1.0",
            "+x",
            "pkg\n",
            "pkg;rm",
        ] {
            let e = check_package(bad).unwrap_err();
            assert!(e.contains("Policy 5.6.7"), "{bad:?}: {e}");
        }
        for ok in ["bookworm", "stable", "bookworm-backports", "trixie"] {
            check_suite(ok).unwrap();
        }
        for bad in [
            "",
            "-bookworm",
            "Bookworm",
            "book worm",
            "../x",
            "bookworm/updates",
            "1x",
        ] {
            assert!(check_suite(bad).is_err(), "{bad:?}");
        }
        check_variant("minbase").unwrap();
        assert!(check_variant("extract").unwrap_err().contains("minbase"));
        for ok in [
            "http://deb.debian.org/debian",
            "https://m/x",
            "file:///srv/mirror",
        ] {
            check_mirror(ok).unwrap();
        }
        for bad in [
            "deb http://x bookworm main",
            "/etc/apt/sources.list",
            "-",
            "http://",
            "http://a b",
            "ftp://x",
        ] {
            assert!(check_mirror(bad).is_err(), "{bad:?}");
        }
    }
}
