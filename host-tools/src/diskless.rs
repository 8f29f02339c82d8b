//! Preparing a Debian tree for diskless nodes that share it read-only over NFS: what LTSP's
//! client hooks and Warewulf's overlays do to an installed system, as a list of steps.
//!
//! Every node boots the same bytes, so nothing in the image may be one machine's identity
//! (machine-id(5): an empty `/etc/machine-id` means "first boot", and systemd makes a fresh id
//! per boot; no `/etc/hostname`, which linuxrc writes into the node's upper layer from DHCP or
//! `ip=`; no build host's `/etc/resolv.conf`). There are no local disks (an fstab without them,
//! no fstrim or e2scrub). And nothing may touch the NIC that carries the root filesystem:
//! systemd-networkd takes over the configuration linuxrc writes to `/run/systemd/network/`,
//! while ifupdown, NetworkManager and any shipped `.network` that would match every Ethernet
//! NIC are masked (systemd.unit(5) "masked", systemd.network(5) for the `/dev/null` override).
//!
//! [`gather`] reads the few facts the plan depends on from a tree, [`plan`] turns facts into
//! [`Step`]s (pure, table-tested), and [`apply`] performs them below a root, refusing to write
//! through a symlink so that an absolute link in the image can never reach the build host.

use crate::fstree::components;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where Debian ships units and `.network` files (merged /usr: `/lib` is a link to it).
pub const UNIT_DIR: &str = "usr/lib/systemd/system";
pub const NETWORK_DIRS: [&str; 2] = ["usr/lib/systemd/network", "etc/systemd/network"];
/// The path unit links point at, as `systemctl enable` writes them on Debian 12.
const UNIT_LINK_DIR: &str = "/lib/systemd/system";

/// Units masked on every node, and why.
pub const MASKED: [(&str, &str); 11] = [
    (
        "systemd-network-generator.service",
        "linuxrc writes the boot NIC's .network; this would write a second one from ip=",
    ),
    (
        "networking.service",
        "ifupdown would reconfigure or take down the NFS NIC",
    ),
    ("ifup@.service", "ifupdown's hotplug would reconfigure NICs"),
    ("ifupdown-pre.service", "ifupdown is not used"),
    (
        "NetworkManager.service",
        "NetworkManager would take over the NFS NIC",
    ),
    ("connman.service", "connman would take over the NFS NIC"),
    (
        "apt-daily.timer",
        "the shared image is updated on the server, not per node",
    ),
    (
        "apt-daily-upgrade.timer",
        "the shared image is updated on the server, not per node",
    ),
    ("fstrim.timer", "no local disks"),
    ("e2scrub_all.timer", "no local disks"),
    ("e2scrub_reap.service", "no local disks"),
];

pub const FSTAB: &str = "\
# /etc/fstab of a unionroot diskless node, written by `unionroot image`.
# No local disks: / is the overlay that linuxrc assembled from NFS exports and a tmpfs, and the
# NFS mounts of cluster.toml's [exports] are made by linuxrc before systemd starts.
";

/// No host name line: the node's name comes from DHCP or `ip=` at boot, and
/// libnss-myhostname resolves it.
pub const HOSTS: &str = "\
127.0.0.1\tlocalhost
::1\t\tlocalhost ip6-localhost ip6-loopback
ff02::1\t\tip6-allnodes
ff02::2\t\tip6-allrouters
";

/// One change to the tree. Paths are relative to the tree's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Replace whatever is at `path` by a regular file.
    Write {
        path: String,
        contents: String,
        mode: u32,
        why: String,
    },
    /// Remove a file or symlink if it exists.
    Remove { path: String, why: String },
    /// Replace whatever is at `path` by a symlink (parent directories are created).
    Link {
        path: String,
        target: String,
        why: String,
    },
}

impl Step {
    pub fn path(&self) -> &str {
        match self {
            Step::Write { path, .. } | Step::Remove { path, .. } | Step::Link { path, .. } => path,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Write {
                path,
                contents,
                mode,
                why,
            } => write!(
                f,
                "install -m {mode:04o} /dev/stdin /{path}  # {} bytes: {why}",
                contents.len()
            ),
            Step::Remove { path, why } => write!(f, "rm -f /{path}  # {why}"),
            Step::Link { path, target, why } => {
                write!(f, "ln -sfn {target} /{path}  # {why}")
            }
        }
    }
}

/// What the plan depends on, read from the tree (see [`gather`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Text of the unit files the plan enables, by unit name, where the tree has them.
    pub units: BTreeMap<String, String>,
    /// `.network` files by file name (a later directory of [`NETWORK_DIRS`] overrides).
    pub networks: BTreeMap<String, String>,
    /// `/var/lib/dbus/machine-id` is a regular file (a copied id) rather than a link.
    pub dbus_machine_id_file: bool,
}

/// The `[Install]` section of a unit file: what `systemctl enable` links (systemd.unit(5)).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Install {
    pub wanted_by: Vec<String>,
    pub required_by: Vec<String>,
    pub alias: Vec<String>,
    pub also: Vec<String>,
}

/// The `[Section]` entries of an INI-style systemd file: `(key, value)` per word of a value
/// (space-separated lists), comments and other sections skipped.
fn section<'a>(text: &'a str, name: &str) -> Vec<(&'a str, &'a str)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{name}]");
        } else if inside && !line.starts_with('#') && !line.starts_with(';') {
            if let Some((k, v)) = line.split_once('=') {
                for w in v.split_whitespace() {
                    out.push((k.trim(), w));
                }
                if v.trim().is_empty() {
                    out.push((k.trim(), ""));
                }
            }
        }
    }
    out
}

pub fn parse_install(unit: &str) -> Install {
    let mut i = Install::default();
    for (k, v) in section(unit, "Install") {
        let list = match k {
            "WantedBy" => &mut i.wanted_by,
            "RequiredBy" => &mut i.required_by,
            "Alias" => &mut i.alias,
            "Also" => &mut i.also,
            _ => continue,
        };
        if !v.is_empty() {
            list.push(v.to_string());
        }
    }
    i
}

/// Names a typical boot NIC has, to test a `[Match] Name=` pattern against.
const NIC_NAMES: [&str; 5] = ["eth0", "enp0s3", "ens3", "eno1", "enx525400123401"];

/// fnmatch-style `*` and `?`; a `[` class is taken to match anything, which can only mask more.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], name) || (!name.is_empty() && glob(pattern, &name[1..]))
        }
        (Some(b'['), _) => true,
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// Whether a `.network` file could match the Ethernet NIC that carries the root: its
/// `[Match]` neither names a virtual or wireless kind of link nor only names that a NIC does
/// not have. networkd applies the first matching file, so such a file would fight linuxrc's.
pub fn may_match_boot_nic(network: &str) -> bool {
    let m = section(network, "Match");
    let virtual_only = m.iter().any(|(k, v)| match *k {
        "Virtualization" | "Driver" | "Kind" | "WLANInterfaceType" | "SSID" | "BSSID" => true,
        "Type" => *v != "ether",
        _ => false,
    });
    if virtual_only {
        return false;
    }
    let names: Vec<&str> = m
        .iter()
        .filter(|(k, _)| *k == "Name")
        .map(|(_, v)| *v)
        .collect();
    names.is_empty()
        || names.iter().any(|p| {
            let p = p.strip_prefix('!').unwrap_or(p);
            NIC_NAMES.iter().any(|n| glob(p.as_bytes(), n.as_bytes()))
        })
}

/// The serial tty of the kernel console: the last `console=` (the one `/dev/console` is) if it
/// names a serial device (`ttyS0,115200n8` → `ttyS0`). Virtual terminals get Debian's
/// `getty@tty1` anyway.
pub fn serial_console(kernel_args: &[String]) -> Option<String> {
    let last = kernel_args
        .iter()
        .filter_map(|a| a.strip_prefix("console="))
        .next_back()?;
    let tty = last.split(',').next().unwrap_or("");
    let serial = ["ttyS", "ttyAMA", "ttyUSB", "ttyPS", "hvc", "ttysclp"]
        .iter()
        .any(|p| tty.starts_with(p) && tty.len() > p.len());
    // It becomes a unit instance name and a path component.
    let clean = tty.bytes().all(|b| b.is_ascii_alphanumeric());
    (serial && clean).then(|| tty.to_string())
}

/// The links `systemctl enable UNIT` makes: `<target>.wants/<unit>` per `WantedBy=`, aliases,
/// and the same for each `Also=`. `instance` fills a template (`serial-getty@.service`).
fn enable(
    facts: &Facts,
    unit: &str,
    instance: Option<&str>,
    why: &str,
    steps: &mut Vec<Step>,
    seen: &mut Vec<String>,
) -> Result<()> {
    // `Also=` may name a unit that is masked here (networkd's generator).
    if seen.iter().any(|u| u == unit) || MASKED.iter().any(|(m, _)| *m == unit) {
        return Ok(());
    }
    seen.push(unit.to_string());
    let Some(text) = facts.units.get(unit) else {
        bail!(
            "the image has no {UNIT_DIR}/{unit}; add the package that ships it to [image] packages"
        );
    };
    let name = match instance {
        Some(i) => unit.replacen("@.", &format!("@{i}."), 1),
        None => unit.to_string(),
    };
    let target = format!("{UNIT_LINK_DIR}/{unit}");
    let inst = parse_install(text);
    for t in inst
        .wanted_by
        .iter()
        .map(|t| (t, "wants"))
        .chain(inst.required_by.iter().map(|t| (t, "requires")))
    {
        steps.push(Step::Link {
            path: format!("etc/systemd/system/{}.{}/{name}", t.0, t.1),
            target: target.clone(),
            why: why.to_string(),
        });
    }
    for a in &inst.alias {
        steps.push(Step::Link {
            path: format!("etc/systemd/system/{a}"),
            target: target.clone(),
            why: why.to_string(),
        });
    }
    for also in &inst.also {
        enable(facts, also, None, why, steps, seen)?;
    }
    Ok(())
}

/// The steps that make a Debian tree a diskless node's shared root.
pub fn plan(facts: &Facts, kernel_args: &[String]) -> Result<Vec<Step>> {
    let s = |v: &str| v.to_string();
    let mut steps = vec![
        Step::Write {
            path: s("etc/machine-id"),
            contents: String::new(),
            mode: 0o444,
            why: s("empty: each node makes its own id at boot"),
        },
        Step::Remove {
            path: s("etc/hostname"),
            why: s("the build host's name; linuxrc sets the node's"),
        },
        Step::Remove {
            path: s("etc/resolv.conf"),
            why: s("the build host's resolvers; linuxrc writes the node's"),
        },
        Step::Write {
            path: s("etc/hosts"),
            contents: s(HOSTS),
            mode: 0o644,
            why: s("no host name in a shared file"),
        },
        Step::Write {
            path: s("etc/fstab"),
            contents: s(FSTAB),
            mode: 0o644,
            why: s("no local disks"),
        },
    ];
    if facts.dbus_machine_id_file {
        steps.push(Step::Link {
            path: s("var/lib/dbus/machine-id"),
            target: s("/etc/machine-id"),
            why: s("a copied id would be every node's"),
        });
    }
    let mut seen = Vec::new();
    enable(
        facts,
        "systemd-networkd.service",
        None,
        "networkd keeps the NIC linuxrc configured (/run/systemd/network)",
        &mut steps,
        &mut seen,
    )?;
    if let Some(tty) = serial_console(kernel_args) {
        enable(
            facts,
            "serial-getty@.service",
            Some(&tty),
            "a login on the kernel's serial console",
            &mut steps,
            &mut seen,
        )?;
    }
    for (unit, why) in MASKED {
        steps.push(Step::Link {
            path: format!("etc/systemd/system/{unit}"),
            target: s("/dev/null"),
            why: format!("masked: {why}"),
        });
    }
    for (name, text) in &facts.networks {
        if may_match_boot_nic(text) {
            steps.push(Step::Link {
                path: format!("etc/systemd/network/{name}"),
                target: s("/dev/null"),
                why: s("masked: it would match the NFS NIC"),
            });
        }
    }
    Ok(steps)
}

/// Reads the facts [`plan`] needs from the tree at `root`.
pub fn gather(root: &Path) -> Result<Facts> {
    let mut facts = Facts::default();
    let read = |p: &Path| -> Result<Option<String>> {
        match fs::read_to_string(p) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    };
    let mut want = vec![
        "systemd-networkd.service".to_string(),
        "serial-getty@.service".to_string(),
    ];
    while let Some(u) = want.pop() {
        if facts.units.contains_key(&u) {
            continue;
        }
        if let Some(t) = read(&root.join(UNIT_DIR).join(&u))? {
            want.extend(parse_install(&t).also);
            facts.units.insert(u, t);
        }
    }
    for d in NETWORK_DIRS {
        let dir = root.join(d);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        for e in rd {
            let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".network") {
                continue;
            }
            let path = e.path();
            match fs::read_link(&path) {
                // Already masked, and it overrides a same-named file of an earlier directory.
                Ok(t) if t == Path::new("/dev/null") => {
                    facts.networks.remove(&name);
                }
                // An absolute link means a path in the image, never on the build host.
                Ok(t) if t.is_absolute() => {
                    let inside = root.join(t.strip_prefix("/").unwrap_or(&t));
                    facts
                        .networks
                        .insert(name, read(&inside)?.unwrap_or_default());
                }
                _ => {
                    facts
                        .networks
                        .insert(name, read(&path)?.unwrap_or_default());
                }
            }
        }
    }
    facts.dbus_machine_id_file = fs::symlink_metadata(root.join("var/lib/dbus/machine-id"))
        .is_ok_and(|m| m.file_type().is_file());
    Ok(facts)
}

/// `root/rel`, after checking that no existing ancestor below `root` is a symlink (which could
/// point out of the tree) and creating the missing ones (mode 0755).
pub fn contained(root: &Path, rel: &str) -> Result<PathBuf> {
    let comps = components(rel)?;
    let mut p = root.to_path_buf();
    for c in &comps[..comps.len() - 1] {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => bail!(
                "{} is a symlink in the image; refusing to write /{rel} through it (use the \
                 real path, e.g. usr/lib instead of lib)",
                p.display()
            ),
            Ok(_) => bail!("{} is not a directory; cannot write /{rel}", p.display()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir(&p).with_context(|| format!("cannot create {}", p.display()))?;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                    .with_context(|| format!("cannot chmod {}", p.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", p.display())),
        }
    }
    p.push(&comps[comps.len() - 1]);
    Ok(p)
}

/// Removes a file or symlink at `p`; a directory there is an error.
pub fn remove_nondir(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => bail!("{} is a directory; expected a file", p.display()),
        Ok(_) => fs::remove_file(p).with_context(|| format!("cannot remove {}", p.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot inspect {}", p.display())),
    }
}

/// Performs `steps` below `root`. Files are created by this process (root), so they are owned
/// by root as an NFS-exported system tree must be.
pub fn apply(root: &Path, steps: &[Step]) -> Result<()> {
    for step in steps {
        let p = contained(root, step.path())?;
        let ctx = || format!("{step}");
        match step {
            Step::Write { contents, mode, .. } => {
                remove_nondir(&p).with_context(ctx)?;
                fs::write(&p, contents).with_context(ctx)?;
                fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).with_context(ctx)?;
            }
            Step::Remove { .. } => remove_nondir(&p).with_context(ctx)?,
            Step::Link { target, .. } => {
                remove_nondir(&p).with_context(ctx)?;
                std::os::unix::fs::symlink(target, &p).with_context(ctx)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETWORKD: &str = "[Unit]\nDescription=x\n\n[Install]\nWantedBy=multi-user.target\n\
        Also=systemd-networkd.socket\nAlias=dbus-org.freedesktop.network1.service\n\
        Also=systemd-network-generator.service\n\
        # comment\nAlso=systemd-networkd-wait-online.service\n";

    fn facts() -> Facts {
        let mut f = Facts::default();
        for (u, t) in [
            ("systemd-networkd.service", NETWORKD),
            (
                "systemd-networkd.socket",
                "[Install]\nWantedBy=sockets.target\n",
            ),
            (
                "systemd-networkd-wait-online.service",
                "[Install]\nWantedBy=network-online.target\n",
            ),
            (
                "serial-getty@.service",
                "[Install]\nWantedBy=getty.target\n",
            ),
        ] {
            f.units.insert(u.into(), t.into());
        }
        f
    }

    fn links(steps: &[Step]) -> Vec<(String, String)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Link { path, target, .. } => Some((path.clone(), target.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn install_sections() {
        let i = parse_install(NETWORKD);
        assert_eq!(i.wanted_by, ["multi-user.target"]);
        assert_eq!(
            i.also,
            [
                "systemd-networkd.socket",
                "systemd-network-generator.service",
                "systemd-networkd-wait-online.service"
            ]
        );
        assert_eq!(i.alias, ["dbus-org.freedesktop.network1.service"]);
        assert_eq!(
            parse_install("[Service]\nWantedBy=x\n[Install]\nWantedBy=a.target b.target\n")
                .wanted_by,
            ["a.target", "b.target"]
        );
    }

    #[test]
    fn serial_consoles() {
        let c = |a: &[&str]| serial_console(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(c(&["console=ttyS0"]).as_deref(), Some("ttyS0"));
        assert_eq!(
            c(&["console=tty0", "console=ttyS1,115200n8"]).as_deref(),
            Some("ttyS1")
        );
        assert_eq!(
            c(&["console=ttyS0", "console=tty0"]),
            None,
            "the last one is /dev/console"
        );
        assert_eq!(c(&["quiet"]), None);
        assert_eq!(c(&["console=ttyS"]), None);
        assert_eq!(c(&["console=ttyS0/../x"]), None);
        assert_eq!(c(&["console=hvc0"]).as_deref(), Some("hvc0"));
    }

    #[test]
    fn which_networks_are_masked() {
        let cases = [
            ("[Match]\nName=host0\nVirtualization=container\n", false),
            ("[Match]\nName=ve-*\nDriver=veth\n", false),
            ("[Match]\nType=wlan\n", false),
            ("[Match]\nName=6rd-*\nType=sit\n", false),
            ("[Match]\nName=vt-*\n", false),
            ("[Match]\nType=ether\n", true),
            ("[Match]\nName=*\n", true),
            ("[Match]\nName=en*\n", true),
            ("[Match]\nName=eth? wlan0\n", true),
            ("[Network]\nDHCP=yes\n", true),
        ];
        for (text, want) in cases {
            assert_eq!(may_match_boot_nic(text), want, "{text}");
        }
    }

    #[test]
    fn plan_enables_masks_and_clears_identity() {
        let mut f = facts();
        f.networks
            .insert("89-ethernet.network".into(), "[Match]\nType=ether\n".into());
        f.networks.insert(
            "80-container-ve.network".into(),
            "[Match]\nName=ve-*\nDriver=veth\n".into(),
        );
        f.dbus_machine_id_file = true;
        let steps = plan(&f, &["console=ttyS0,115200".to_string()]).unwrap();
        let l = links(&steps);
        let has = |p: &str, t: &str| l.iter().any(|(a, b)| a == p && b == t);
        let u = "/lib/systemd/system/";
        assert!(has(
            "etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
            &format!("{u}systemd-networkd.service")
        ));
        assert!(has(
            "etc/systemd/system/sockets.target.wants/systemd-networkd.socket",
            &format!("{u}systemd-networkd.socket")
        ));
        assert!(has(
            "etc/systemd/system/dbus-org.freedesktop.network1.service",
            &format!("{u}systemd-networkd.service")
        ));
        assert!(has(
            "etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service",
            &format!("{u}serial-getty@.service")
        ));
        assert!(has("etc/systemd/system/networking.service", "/dev/null"));
        assert!(has(
            "etc/systemd/system/systemd-network-generator.service",
            "/dev/null"
        ));
        assert!(!l
            .iter()
            .any(|(p, _)| p.ends_with(".wants/systemd-network-generator.service")));
        assert!(has("etc/systemd/network/89-ethernet.network", "/dev/null"));
        assert!(!l.iter().any(|(p, _)| p.contains("80-container-ve")));
        assert!(has("var/lib/dbus/machine-id", "/etc/machine-id"));
        assert!(steps.contains(&Step::Remove {
            path: "etc/hostname".into(),
            why: "the build host's name; linuxrc sets the node's".into()
        }));
        // Without a serial console, no serial getty.
        let steps = plan(&facts(), &["console=tty0".to_string()]).unwrap();
        assert!(!links(&steps)
            .iter()
            .any(|(p, _)| p.contains("serial-getty")));
        // Every step stays inside the tree.
        for s in &steps {
            components(s.path()).unwrap();
        }
    }

    #[test]
    fn a_missing_unit_is_named() {
        let mut f = facts();
        f.units.remove("systemd-networkd.socket");
        let e = plan(&f, &[]).unwrap_err().to_string();
        assert!(
            e.contains("systemd-networkd.socket") && e.contains("[image] packages"),
            "{e}"
        );
    }

    /// A small tree shaped like mmdebstrap's output: merged /usr, the build host's identity.
    fn debian_like_tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let mk = |p: &str, t: &str| {
            let p = r.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, t).unwrap();
        };
        for (u, t) in &facts().units {
            mk(&format!("{UNIT_DIR}/{u}"), t);
        }
        mk(
            "usr/lib/systemd/network/89-ethernet.network",
            "[Match]\nType=ether\n",
        );
        mk("etc/hostname", "buildhost\n");
        mk("etc/resolv.conf", "nameserver 192.0.2.1\n");
        mk("etc/machine-id", "0123456789abcdef0123456789abcdef\n");
        mk("etc/fstab", "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n");
        mk(
            "var/lib/dbus/machine-id",
            "0123456789abcdef0123456789abcdef\n",
        );
        std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
        d
    }

    #[test]
    fn prepared_tree_on_disk() {
        let d = debian_like_tree();
        let r = d.path();
        let steps = plan(&gather(r).unwrap(), &["console=ttyS0".to_string()]).unwrap();
        apply(r, &steps).unwrap();
        let md = fs::metadata(r.join("etc/machine-id")).unwrap();
        assert_eq!(md.len(), 0);
        assert_eq!(md.permissions().mode() & 0o7777, 0o444);
        assert!(!r.join("etc/hostname").exists());
        assert!(!r.join("etc/resolv.conf").exists());
        assert_eq!(fs::read_to_string(r.join("etc/fstab")).unwrap(), FSTAB);
        assert!(!fs::read_to_string(r.join("etc/hosts"))
            .unwrap()
            .contains("buildhost"));
        let link = |p: &str| fs::read_link(r.join(p)).unwrap();
        assert_eq!(
            link("etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"),
            Path::new("/lib/systemd/system/serial-getty@.service")
        );
        assert_eq!(
            link("etc/systemd/system/networking.service"),
            Path::new("/dev/null")
        );
        assert_eq!(
            link("etc/systemd/network/89-ethernet.network"),
            Path::new("/dev/null")
        );
        assert_eq!(
            link("var/lib/dbus/machine-id"),
            Path::new("/etc/machine-id")
        );
        // Applying again is harmless: the same steps, less the ones already done (the dbus id
        // is a link now, the .network is masked).
        let again = plan(&gather(r).unwrap(), &["console=ttyS0".to_string()]).unwrap();
        let done: Vec<&Step> = steps.iter().filter(|s| !again.contains(s)).collect();
        let done: Vec<&str> = done.iter().map(|s| s.path()).collect();
        assert_eq!(
            done,
            [
                "var/lib/dbus/machine-id",
                "etc/systemd/network/89-ethernet.network"
            ]
        );
        apply(r, &again).unwrap();
        assert_eq!(fs::metadata(r.join("etc/machine-id")).unwrap().len(), 0);
    }

    #[test]
    fn never_writes_through_a_symlink() {
        let d = debian_like_tree();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("etc/systemd")).unwrap();
        let step = Step::Link {
            path: "etc/systemd/system/x.service".into(),
            target: "/dev/null".into(),
            why: "test".into(),
        };
        let e = apply(d.path(), &[step]).unwrap_err();
        assert!(format!("{e:#}").contains("symlink"), "{e:#}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
