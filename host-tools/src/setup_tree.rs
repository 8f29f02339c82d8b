//! `unionroot setup-tree`: the busybox-based root tree of the seed recipe's `/client/setup`
//! ("make a statically linked binary ... mkdir dev proc sys mnt"), which the server exports and
//! the QEMU harness also uses as the demo's system tree.
//!
//! Busybox is installed once as `/bin/busybox`; every applet from `busybox --list-full` becomes
//! a relative symlink to it, as `make install` would create, so the tree stays valid wherever it
//! is mounted. Anything installed explicitly wins over an applet of the same path.

use crate::cli::SetupTreeArgs;
use crate::cluster;
use crate::elf::{self, ElfError};
use crate::fstree::{components, Entry, Kind, Tree, TreeError};
use crate::materialize::write_tree;
use crate::output::{plan_dir, sync_dir, Outcome};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const BUSYBOX_PATH: &str = "bin/busybox";

/// Directories of the tree and their modes: world-writable sticky temp dirs, a private /root.
pub const DIRS: [(&str, u32); 12] = [
    ("dev", 0o755),
    ("proc", 0o755),
    ("sys", 0o755),
    ("mnt", 0o755),
    ("run", 0o755),
    ("tmp", 0o1777),
    ("etc", 0o755),
    ("root", 0o700),
    ("home", 0o755),
    ("var/tmp", 0o1777),
    ("newroot", 0o755),
    ("lib/modules", 0o755),
];

/// Applets never linked: busybox's `linuxrc` applet would shadow unionroot's own `/linuxrc`.
pub const SKIPPED_APPLETS: [&str; 1] = ["linuxrc"];

/// Parses `busybox --list-full` output: one relative install path per line (`bin/ls`,
/// `usr/sbin/chroot`, ...).
pub fn parse_applet_list(text: &str) -> Result<Vec<String>, TreeError> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| components(l).map(|c| c.join("/")))
        .collect()
}

/// The symlink target that reaches `/bin/busybox` from the directory holding `link`, relative
/// so that it also resolves inside a tree that is not mounted at `/`.
pub fn link_target(link: &[String]) -> String {
    let target = ["bin", "busybox"];
    let parent = &link[..link.len().saturating_sub(1)];
    let common = parent
        .iter()
        .zip(target.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let mut s = "../".repeat(parent.len() - common);
    s.push_str(&target[common..].join("/"));
    s
}

/// Files given on the command line, already read.
#[derive(Debug, Default)]
pub struct Extras {
    pub linuxrc: Option<Vec<u8>>,
    pub config: Option<Vec<u8>>,
    pub init_script: Option<Vec<u8>>,
}

/// The planned tree and the applets that were not linked (with the reason).
#[derive(Debug)]
pub struct TreePlan {
    pub tree: Tree,
    pub links: usize,
    pub skipped: Vec<(String, String)>,
}

/// Lays out the tree from the busybox bytes, its applet list and the extra files.
pub fn plan_tree(
    busybox: Vec<u8>,
    applets: &[String],
    extras: Extras,
) -> Result<TreePlan, TreeError> {
    let mut tree = Tree::new();
    let entry = |path: &str, perm, kind, origin: &str| Entry {
        path: path.to_string(),
        perm,
        kind,
        origin: origin.to_string(),
    };
    for (d, perm) in DIRS {
        tree.insert(entry(d, perm, Kind::Dir, "base layout"))?;
    }
    tree.insert(entry(BUSYBOX_PATH, 0o755, Kind::File(busybox), "--busybox"))?;
    if let Some(d) = extras.linuxrc {
        tree.insert(entry("linuxrc", 0o755, Kind::File(d), "--linuxrc"))?;
    }
    if let Some(d) = extras.config {
        tree.insert(entry(
            crate::initramfs::CONFIG_PATH,
            0o644,
            Kind::File(d),
            "--config",
        ))?;
    }
    if let Some(d) = extras.init_script {
        tree.insert(entry("sbin/init", 0o755, Kind::File(d), "--init-script"))?;
    }
    let (mut links, mut skipped) = (0, Vec::new());
    for a in applets {
        let comps = components(a)?;
        let why = if SKIPPED_APPLETS.contains(&a.as_str()) {
            "never linked".to_string()
        } else if let Some(e) = tree.get(a) {
            format!("provided by {}", e.origin)
        } else if !tree.is_free(a) {
            "collides with an installed path".to_string()
        } else {
            tree.insert(entry(
                a,
                0o777,
                Kind::Symlink(link_target(&comps)),
                "applet",
            ))?;
            links += 1;
            continue;
        };
        skipped.push((a.clone(), why));
    }
    Ok(TreePlan {
        tree,
        links,
        skipped,
    })
}

/// How to run a static executable for ELF `machine` (goblin's name, e.g. `AARCH64`) on a host
/// of Rust's `host_arch` (`x86_64`): directly (`None`), or through Debian's qemu-user emulator
/// of that architecture, e.g. an arm64 busybox on an x86_64 host for arm64 nodes.
pub fn emulator_for(machine: &str, host_arch: &str) -> Result<Option<&'static str>, String> {
    let (arch, emulator) = match machine {
        "X86_64" => ("x86_64", "qemu-x86_64"),
        "AARCH64" => ("aarch64", "qemu-aarch64"),
        other => {
            return Err(format!(
                "an ELF for {other}, which unionroot's nodes are not (x86_64 or aarch64)"
            ))
        }
    };
    Ok((arch != host_arch).then_some(emulator))
}

/// Runs `busybox --list-full` (under `emulator` for another architecture's busybox) and parses
/// its output.
fn list_applets(busybox: &Path, emulator: Option<&str>) -> Result<Vec<String>> {
    let mut cmd = match emulator {
        Some(e) => {
            let mut c = Command::new(e);
            c.arg(busybox);
            c
        }
        None => Command::new(busybox),
    };
    let out = cmd.arg("--list-full").output().with_context(|| match emulator {
        Some(e) => format!(
            "cannot run {e} {} --list-full to list its applets: a busybox for another architecture runs under qemu-user; install Debian's qemu-user (scripts/setup-host.sh does)",
            busybox.display()
        ),
        None => format!(
            "cannot run {} --list-full to list its applets; check that it is executable",
            busybox.display()
        ),
    })?;
    if !out.status.success() {
        bail!(
            "{} --list-full failed ({}): {}; is it a busybox built with the --list-full option?",
            busybox.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8(out.stdout)
        .with_context(|| format!("{} --list-full printed non-UTF-8 output", busybox.display()))?;
    let applets = parse_applet_list(&text)
        .with_context(|| format!("unexpected output from {} --list-full", busybox.display()))?;
    if applets.is_empty() {
        bail!(
            "{} --list-full listed no applets; pass a full busybox build",
            busybox.display()
        );
    }
    Ok(applets)
}

fn read_opt(path: &Option<std::path::PathBuf>, flag: &str) -> Result<Option<Vec<u8>>> {
    path.as_ref()
        .map(|p| {
            if p.is_dir() {
                bail!("{flag} {} is a directory; pass a file", p.display());
            }
            fs::read(p)
                .with_context(|| format!("cannot read {flag} {}; check the path", p.display()))
        })
        .transpose()
}

pub fn run(args: &SetupTreeArgs) -> Result<()> {
    let c = args.cluster.as_deref().map(cluster::load).transpose()?;
    let missing = |flag: &str| anyhow::anyhow!("pass {flag} or --cluster FILE");
    let output = args
        .output
        .clone()
        .or_else(|| c.as_ref().map(|c| c.setup_tree.clone()))
        .ok_or_else(|| missing("-o"))?;
    let busybox_arg = args
        .busybox
        .clone()
        .or_else(|| c.as_ref().map(|c| c.busybox.clone()))
        .ok_or_else(|| missing("--busybox"))?;
    // An absolute path, so that running it never searches $PATH for a bare name.
    let busybox = fs::canonicalize(&busybox_arg).with_context(|| {
        format!(
            "cannot find --busybox {}; check the path",
            busybox_arg.display()
        )
    })?;
    let given = busybox_arg.display();
    let bytes = fs::read(&busybox).with_context(|| format!("cannot read --busybox {given}"))?;
    let found = match elf::check_static(&bytes) {
        Ok(found) => found,
        Err(e @ (ElfError::Dynamic { .. } | ElfError::NeedsLibraries(_))) => bail!(
            "--busybox {given} is {e}. Use a statically linked busybox: on Debian, install busybox-static, whose /bin/busybox is static"
        ),
        Err(e) => bail!("--busybox {given} is not a usable busybox: {e}"),
    };
    let emulator = emulator_for(found.machine, std::env::consts::ARCH)
        .map_err(|e| anyhow::anyhow!("--busybox {given} is {e}"))?;
    let applets = list_applets(&busybox, emulator)?;
    let or_cluster = |flag: &Option<PathBuf>, from: Option<PathBuf>| flag.clone().or(from);
    let extras = Extras {
        linuxrc: read_opt(
            &or_cluster(&args.linuxrc, c.as_ref().map(|c| c.linuxrc.clone())),
            "--linuxrc",
        )?,
        config: match (&args.config, &c) {
            (None, Some(c)) => Some(crate::bootargs::config_file(c).into_bytes()),
            (p, _) => read_opt(p, "--config")?,
        },
        init_script: read_opt(
            &or_cluster(
                &args.init_script,
                c.as_ref().and_then(|c| c.init_script.clone()),
            ),
            "--init-script",
        )?,
    };
    let plan = plan_tree(bytes, &applets, extras).context("cannot lay out the setup tree")?;
    let skipped: Vec<String> = plan
        .skipped
        .iter()
        .map(|(a, why)| format!("{a} ({why})"))
        .collect();
    let line = format!(
        "{} entries, {} applet links, skipped {}",
        plan.tree.len(),
        plan.links,
        if skipped.is_empty() {
            "none".to_string()
        } else {
            skipped.join(", ")
        }
    );
    let out = output.display();
    if args.dry_run {
        for e in plan.tree.entries() {
            println!("{e}");
        }
        match plan_dir(&output, &plan.tree)? {
            None => println!("dry run: would build {out}: {line}"),
            Some(ch) if ch.is_empty() => println!("dry run: {out} is up to date: {line}"),
            Some(ch) => {
                println!("dry run: would replace {out} (needs --force): {line}");
                for l in ch {
                    println!("  {l}");
                }
            }
        }
        return Ok(());
    }
    let pb = crate::output::spinner("comparing and writing the setup tree");
    let o = sync_dir(&output, &plan.tree, args.force, |root| {
        write_tree(&plan.tree, root)
    });
    pb.finish_and_clear();
    match o? {
        Outcome::Replaced => println!("replaced {out}: {line}"),
        Outcome::Created => println!("built {out}: {line}"),
        Outcome::Unchanged => println!("{out} unchanged: {line}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(p: &str) -> Vec<String> {
        components(p).unwrap()
    }

    #[test]
    fn link_targets_are_relative_to_the_link() {
        assert_eq!(link_target(&comps("bin/ls")), "busybox");
        assert_eq!(link_target(&comps("sbin/ifconfig")), "../bin/busybox");
        assert_eq!(link_target(&comps("usr/bin/awk")), "../../bin/busybox");
        assert_eq!(link_target(&comps("linuxrc")), "bin/busybox");
    }

    #[test]
    fn busybox_of_another_architecture_runs_under_qemu_user() {
        // (ELF machine, host, the emulator; None in the last column: refused)
        let table = [
            ("X86_64", "x86_64", Some(None)),
            ("AARCH64", "aarch64", Some(None)),
            ("AARCH64", "x86_64", Some(Some("qemu-aarch64"))),
            ("X86_64", "aarch64", Some(Some("qemu-x86_64"))),
            ("ARM", "x86_64", None),
        ];
        for (machine, host, want) in table {
            assert_eq!(
                emulator_for(machine, host).ok(),
                want,
                "{machine} on {host}"
            );
        }
        assert!(emulator_for("RISCV", "x86_64")
            .unwrap_err()
            .contains("RISCV"));
    }

    #[test]
    fn applet_list_parsing() {
        assert_eq!(
            parse_applet_list("bin/ls\n\nusr/bin/awk\nlinuxrc\n").unwrap(),
            ["bin/ls", "usr/bin/awk", "linuxrc"]
        );
        assert!(parse_applet_list("bin/../../etc/passwd\n").is_err());
    }

    #[test]
    fn plan_skips_linuxrc_and_installed_paths() {
        let applets: Vec<String> = [
            "bin/sh",
            "bin/busybox",
            "sbin/init",
            "linuxrc",
            "usr/bin/awk",
            "sbin/ifconfig",
            "tmp",
        ]
        .map(String::from)
        .to_vec();
        let extras = Extras {
            linuxrc: Some(b"rc".to_vec()),
            config: Some(b"conf".to_vec()),
            init_script: Some(b"#!/bin/sh\n".to_vec()),
        };
        let p = plan_tree(b"\x7fELF".to_vec(), &applets, extras).unwrap();
        assert_eq!(p.links, 3);
        let skipped: Vec<&str> = p.skipped.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(skipped, ["bin/busybox", "sbin/init", "linuxrc", "tmp"]);
        let t = &p.tree;
        assert_eq!(
            t.get("sbin/init").unwrap().kind,
            Kind::File(b"#!/bin/sh\n".to_vec())
        );
        assert_eq!(t.get("sbin/init").unwrap().perm, 0o755);
        assert_eq!(t.get("linuxrc").unwrap().kind, Kind::File(b"rc".to_vec()));
        assert_eq!(t.get("etc/unionroot.conf").unwrap().perm, 0o644);
        assert_eq!(
            t.get("sbin/ifconfig").unwrap().kind,
            Kind::Symlink("../bin/busybox".into())
        );
        assert_eq!(
            t.get("bin/sh").unwrap().kind,
            Kind::Symlink("busybox".into())
        );
        assert_eq!(t.get("tmp").unwrap().mode(), 0o041777);
        assert_eq!(t.get("var/tmp").unwrap().mode(), 0o041777);
        assert_eq!(t.get("var").unwrap().mode(), 0o040755);
        assert_eq!(t.get("bin/busybox").unwrap().mode(), 0o100755);
    }

    #[test]
    fn without_init_script_init_is_an_applet() {
        let p = plan_tree(Vec::new(), &["sbin/init".to_string()], Extras::default()).unwrap();
        assert_eq!(
            p.tree.get("sbin/init").unwrap().kind,
            Kind::Symlink("../bin/busybox".into())
        );
        assert!(p.tree.get("linuxrc").is_none());
    }
}
