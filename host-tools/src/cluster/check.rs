//! The checks every table shares: addresses, paths on this host and on the server, command-line
//! words, seconds, linuxrc's `[boot]` keys (judged by linuxrc's own parser) and `[image]`. Each
//! problem is recorded with its line, so one run reports them all.

use super::model::{Boot, Image, Images, IpMode};
use super::raw::{RawBoot, RawImage, RawImages, S};
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use unionroot_core::cmdline::Key;
use unionroot_core::validate::MountTarget;

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// The field in dotted form, e.g. `nodes[2].mac` (0-based index as in the file's order).
    pub field: String,
    pub message: String,
}

/// What exists at a path, as far as validation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Other,
}

/// The real filesystem probe.
pub fn probe_fs(p: &Path) -> Option<FileKind> {
    let md = std::fs::metadata(p).ok()?;
    Some(if md.is_file() {
        FileKind::File
    } else if md.is_dir() {
        FileKind::Dir
    } else {
        FileKind::Other
    })
}

/// 1-based line of byte offset `at` in `text`.
pub(super) fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Collects every problem (with its line) and warning while the tables are checked.
pub(super) struct Checker<'a> {
    pub(super) text: &'a str,
    pub(super) base: &'a Path,
    pub(super) probe: &'a dyn Fn(&Path) -> Option<FileKind>,
    pub(super) problems: Vec<Problem>,
    pub(super) warnings: Vec<String>,
}

impl Checker<'_> {
    pub(super) fn err(
        &mut self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) {
        self.problems.push(Problem {
            line: span.map(|s| line_of(self.text, s.start)),
            field: field.into(),
            message: msg.into(),
        });
    }

    pub(super) fn line(&self, span: Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    pub(super) fn ip(&mut self, v: &S, field: &str) -> Option<Ipv4Addr> {
        match v.get_ref().parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(
                    Some(v.span()),
                    field,
                    format!("{:?} is not an IPv4 address", v.get_ref()),
                );
                None
            }
        }
    }

    /// A path on this host, relative ones taken from the cluster file's directory.
    pub(super) fn local_path(&self, v: &S) -> PathBuf {
        let p = Path::new(v.get_ref());
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// An input file that must exist now.
    pub(super) fn input_file(&mut self, v: &S, field: &str, want: FileKind, fix: &str) -> PathBuf {
        let p = self.local_path(v);
        match (self.probe)(&p) {
            Some(k) if k == want => {}
            Some(_) => self.err(
                Some(v.span()),
                field,
                format!(
                    "{} is not a {}; {fix}",
                    p.display(),
                    if want == FileKind::Dir {
                        "directory"
                    } else {
                        "regular file"
                    }
                ),
            ),
            None => self.err(
                Some(v.span()),
                field,
                format!("{} does not exist; {fix}", p.display()),
            ),
        }
        p
    }

    /// A kernel's `lib/modules/<release>` directory, which must hold depmod's `modules.dep`.
    pub(super) fn modules_dir(&mut self, v: &S, field: &str) -> PathBuf {
        let dir = self.input_file(
            v,
            field,
            FileKind::Dir,
            "point it at that kernel's lib/modules/<release> directory",
        );
        if (self.probe)(&dir) == Some(FileKind::Dir)
            && (self.probe)(&dir.join("modules.dep")) != Some(FileKind::File)
        {
            self.err(
                Some(v.span()),
                field,
                format!(
                    "{} has no modules.dep; run depmod for that kernel",
                    dir.display()
                ),
            );
        }
        dir
    }

    /// An absolute path on the server (exports, mount points): never resolved locally.
    pub(super) fn server_path(&mut self, v: &S, field: &str) -> String {
        let s = v.get_ref();
        let bad = |why: &str| format!("{s:?} {why}");
        if !s.starts_with('/') {
            self.err(Some(v.span()), field, bad("must be an absolute path"));
        } else if s.len() > 1 && s.ends_with('/') {
            self.err(Some(v.span()), field, bad("must not end in '/'"));
        } else if s.split('/').any(|c| c == "." || c == "..") {
            self.err(Some(v.span()), field, bad("must not contain '.' or '..'"));
        } else if s.chars().any(char::is_control) {
            // linuxrc refuses these in a path (unionroot::validate); say so here first.
            self.err(
                Some(v.span()),
                field,
                bad("must not contain control characters"),
            );
        } else if s.chars().any(|c| c.is_whitespace() || c == ',' || c == '"') {
            // exports(5), dhcpd.conf and the kernel command line all split on these.
            self.err(
                Some(v.span()),
                field,
                bad("must not contain whitespace, ',' or '\"'"),
            );
        }
        s.clone()
    }

    /// A path linuxrc places into the new root: its own rule decides, so that what passes
    /// here is never refused at boot.
    pub(super) fn mount_target(&mut self, v: &S, field: &str) {
        if let Err(e) = MountTarget::parse(v.get_ref()) {
            self.err(Some(v.span()), field, format!("{:?}: {e}", v.get_ref()));
        }
    }

    /// One kernel command-line word: no whitespace, no quotes, not empty.
    pub(super) fn word(&mut self, v: &S, field: &str) -> String {
        let s = v.get_ref();
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '"') {
            self.err(
                Some(v.span()),
                field,
                format!("{s:?} must be one non-empty word without spaces or quotes"),
            );
        }
        s.clone()
    }

    /// `None` (and the problem recorded) when negative; the bounds beyond that are linuxrc's,
    /// checked by running the key through its parser.
    pub(super) fn secs(&mut self, v: &Spanned<i64>, field: &str) -> Option<u64> {
        match u64::try_from(*v.get_ref()) {
            Ok(n) => Some(n),
            Err(_) => {
                self.err(
                    Some(v.span()),
                    field,
                    format!("{} must be a number of seconds, 1 or more", v.get_ref()),
                );
                None
            }
        }
    }

    /// Applies `raw` over `base`; `what` names the table for error messages.
    /// `shared`: the table applies to more than one node (`[boot]`, a group), so it must not
    /// hold what names one node.
    pub(super) fn boot(&mut self, base: &Boot, raw: &RawBoot, what: &str, shared: bool) -> Boot {
        let mut b = base.clone();
        if let Some(v) = &raw.ipconfig {
            match v.get_ref().as_str() {
                "dhcp" => b.ipconfig = IpMode::Dhcp,
                "static" => b.ipconfig = IpMode::Static,
                o => self.err(
                    Some(v.span()),
                    format!("{what}.ipconfig"),
                    format!("{o:?} is neither \"dhcp\" nor \"static\""),
                ),
            }
        }
        // linuxrc's own parser is the judge of the values.
        let set = |c: &mut Self, b: &mut Boot, key: Key, v: &str, span: Range<usize>, f: &str| {
            if let Err(e) = b.linuxrc.set(key, Some(v)) {
                c.err(Some(span), format!("{what}.{f}"), e.to_string());
            }
        };
        if let Some(v) = &raw.size {
            let w = self.word(v, &format!("{what}.size"));
            set(self, &mut b, Key::Size, &w, v.span(), "size");
        }
        if let Some(v) = &raw.init {
            let w = self.word(v, &format!("{what}.init"));
            set(self, &mut b, Key::Init, &w, v.span(), "init");
        }
        for (i, m) in raw.modules.iter().enumerate() {
            let m = self.word(m, &format!("{what}.modules[{i}]"));
            if !b.linuxrc.modules.contains(&m) {
                b.linuxrc.modules.push(m);
            }
        }
        let timeouts = [
            (&raw.dhcp_timeout, Key::DhcpTimeout, "dhcp_timeout"),
            (&raw.mount_timeout, Key::MountTimeout, "mount_timeout"),
            (&raw.carrier_timeout, Key::CarrierTimeout, "carrier_timeout"),
            (&raw.server_timeout, Key::ServerTimeout, "server_timeout"),
        ];
        for (v, key, name) in timeouts {
            if let Some(v) = v {
                if let Some(n) = self.secs(v, &format!("{what}.{name}")) {
                    set(self, &mut b, key, &n.to_string(), v.span(), name);
                }
            }
        }
        if let Some(v) = &raw.onfail {
            set(self, &mut b, Key::OnFail, v.get_ref(), v.span(), "onfail");
        }
        if let Some(v) = &raw.debug {
            if base.linuxrc.debug && !v.get_ref() {
                self.err(
                    Some(v.span()),
                    format!("{what}.debug"),
                    "cannot turn off debug that a wider table turned on: linuxrc has no key for \
                     that; set debug per group or node instead",
                );
            }
            b.linuxrc.debug = *v.get_ref();
        }
        for (i, a) in raw.kernel_args.iter().enumerate() {
            let field = format!("{what}.kernel_args[{i}]");
            let key = a.get_ref().split('=').next().unwrap_or_default();
            if shared && Key::from_name(key) == Some(Key::NfsClientId) {
                self.err(
                    Some(a.span()),
                    &field,
                    format!(
                        "{key}= names one node's NFSv4 client: here every node would get the \
                         same one, and a server takes such nodes for one client and expires \
                         their state in turn; put it in one [[nodes]] entry's boot.kernel_args, \
                         or leave it out (linuxrc makes one from each node's MAC)"
                    ),
                );
            }
            b.kernel_args.push(self.word(a, &field));
        }
        b
    }
}

impl Checker<'_> {
    /// `[image]`: every value reaches mmdebstrap's argv, so each must be exactly what its key
    /// means (a suite, a variant, package names, a URL) and nothing an argument parser would
    /// read as an option.
    pub(super) fn image(&mut self, raw: &RawImage) -> Image {
        use crate::debian::{check_mirror, check_package, check_suite, check_variant};
        let mut one =
            |v: Option<&S>, field: &str, default: &str, check: fn(&str) -> Result<(), String>| {
                match v {
                    None => default.to_string(),
                    Some(v) => {
                        if let Err(e) = check(v.get_ref()) {
                            self.err(Some(v.span()), field, e);
                        }
                        v.get_ref().clone()
                    }
                }
            };
        let suite = one(raw.suite.as_ref(), "image.suite", "bookworm", check_suite);
        let variant = one(
            raw.variant.as_ref(),
            "image.variant",
            "minbase",
            check_variant,
        );
        let mut packages = Vec::new();
        for (i, p) in raw.packages.iter().enumerate() {
            if let Err(e) = check_package(p.get_ref()) {
                self.err(Some(p.span()), format!("image.packages[{i}]"), e);
            } else if packages.contains(p.get_ref()) {
                self.err(
                    Some(p.span()),
                    format!("image.packages[{i}]"),
                    format!("{:?} is listed twice; drop one", p.get_ref()),
                );
            }
            packages.push(p.get_ref().clone());
        }
        let mirror = raw.mirror.as_ref().map(|v| {
            if let Err(e) = check_mirror(v.get_ref()) {
                self.err(Some(v.span()), "image.mirror", e);
            }
            v.get_ref().clone()
        });
        let files = raw.files.as_ref().map(|v| {
            self.input_file(
                v,
                "image.files",
                FileKind::Dir,
                "point it at a directory whose contents are copied over the image, or drop the key",
            )
        });
        Image {
            suite,
            variant,
            packages,
            mirror,
            files,
        }
    }
}

impl Checker<'_> {
    /// `[images]`: the name becomes a file name in the images directory, so it passes the same
    /// check as `--name`.
    pub(super) fn images(&mut self, raw: &RawImages) -> Images {
        use crate::generations::{Format, Name, DEFAULT_FORMAT, DEFAULT_KEEP};
        let dir = raw.dir.as_ref().map(|v| self.local_path(v));
        let name = raw
            .name
            .as_ref()
            .and_then(|v| match Name::new(v.get_ref()) {
                Ok(n) => Some(n),
                Err(e) => {
                    self.err(Some(v.span()), "images.name", e.to_string());
                    None
                }
            });
        let format = match &raw.format {
            None => DEFAULT_FORMAT,
            Some(v) => match Format::ALL.into_iter().find(|f| f.fs_type() == v.get_ref()) {
                Some(f) => f,
                None => {
                    self.err(
                        Some(v.span()),
                        "images.format",
                        format!("{:?} is not \"erofs\" or \"squashfs\"", v.get_ref()),
                    );
                    DEFAULT_FORMAT
                }
            },
        };
        let keep = match &raw.keep {
            None => DEFAULT_KEEP,
            Some(v) => match usize::try_from(*v.get_ref()) {
                Ok(k) if k >= 1 => k,
                _ => {
                    self.err(
                        Some(v.span()),
                        "images.keep",
                        format!(
                            "{} is not ≥ 1: gc keeps the current generation plus the newest K, \
                             and K must cover every generation a running node may still use",
                            v.get_ref()
                        ),
                    );
                    DEFAULT_KEEP
                }
            },
        };
        Images {
            dir,
            name,
            format,
            keep,
        }
    }
}

/// One RFC 1123 label, by linuxrc's own rule (which refuses any other node name at boot).
pub(super) fn is_hostname_label(s: &str) -> bool {
    !s.contains('.') && unionroot_core::validate::Hostname::parse(s).is_ok()
}
