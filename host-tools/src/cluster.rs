//! `cluster.toml`: the one declarative description of a unionroot cluster (the server, its
//! exports, the kernel, the boot settings and the nodes), and its validation.
//!
//! Text in, typed value out: [`parse`] takes the file's text, the directory that relative paths
//! are relative to, and a probe that says whether an input file exists. It returns either a fully
//! validated [`Cluster`] or every problem found, each naming the field and the line
//! (`cluster.toml:42: nodes[3].mac: ...`), so an admin fixes them all in one pass and nothing is
//! written from a half-valid description. Syntax follows TOML 1.0 (https://toml.io); unknown keys
//! are errors, so a typo cannot be silently ignored.
//!
//! Three jobs, three files: `raw.rs` is what serde reads, `model.rs` the validated [`Cluster`]
//! the generators use, and the checks between them are `check.rs` (what every table shares) and
//! `tables.rs` (one function per table). This file runs them in order and collects the result.

mod arch;
mod check;
mod heads;
mod model;
mod raw;
mod tables;

pub use check::{probe_fs, FileKind, Problem};
pub use model::*;

use check::{line_of, Checker};
use raw::RawCluster;
use std::path::{Path, PathBuf};
use thiserror::Error;
use unionroot_core::nfs::NfsVersion;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ClusterError {
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

fn render_problems(file: &str, problems: &[Problem]) -> String {
    let mut s = format!(
        "{file} has {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        s += "\n  ";
        s += &match p.line {
            Some(l) => format!("{file}:{l}: {}: {}", p.field, p.message),
            None => format!("{file}: {}: {}", p.field, p.message),
        };
    }
    s
}

/// Parses and validates `text`. `file` names it in messages; relative paths are taken from
/// `base`; `probe` tells what exists at an input path.
pub fn parse(
    text: &str,
    file: &str,
    base: &Path,
    probe: &dyn Fn(&Path) -> Option<FileKind>,
) -> Result<Cluster, ClusterError> {
    let raw: RawCluster = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        let line_start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
        ClusterError::Syntax {
            file: file.to_string(),
            line: line_of(text, at),
            column: at.saturating_sub(line_start) + 1,
            message: e.message().trim().to_string(),
        }
    })?;
    let mut c = Checker {
        text,
        base,
        probe,
        problems: Vec::new(),
        warnings: Vec::new(),
    };

    let (address, subnet, server) = tables::server(&mut c, &raw.server);
    let lease_time = tables::dhcp(&mut c, &raw.dhcp);
    let (nfs_servers, nfs_version, nfs_options) = tables::nfs(&mut c, &raw.nfs, address);
    let exports = tables::exports(&mut c, &raw.exports, subnet);
    let heads = heads::heads(
        &mut c,
        &raw.heads,
        subnet,
        exports.images.as_ref().map(|e| e.path.as_str()),
    );
    let ceph = heads::ceph(&mut c, raw.ceph.as_ref(), &exports);
    // The heads are the servers: every node ranks them itself.
    let nfs_servers = if heads.is_empty() {
        nfs_servers
    } else {
        if raw.nfs.servers.is_some() {
            c.err(
                None,
                "nfs.servers",
                "the [[heads]] are the NFS servers; drop nfs.servers (or the heads)",
            );
        }
        heads.iter().map(|h| h.address).collect()
    };
    let (setup_tree, tftp_root, initramfs, image_dir) = tables::paths(&mut c, &raw.paths);
    let image = c.image(&raw.image);
    let images = c.images(&raw.images);
    let (kernel_image, modules_dir, kernel_config, nic_modules) =
        tables::kernel(&mut c, &raw.kernel);
    let (linuxrc, extra_modules, compress) = tables::initramfs(&mut c, &raw.initramfs);
    let (busybox, init_script) = tables::setup_tree(&mut c, &raw.setup_tree);
    let (mode, loader, pxelinux, ldlinux) = tables::pxe(&mut c, &raw.pxe);
    if mode == BootMode::NfsRoot && nfs_version != NfsVersion::V3 {
        c.warnings.push(
            "pxe.mode = \"nfsroot\" with NFSv4: the kernel mounts the setup tree itself over \
             NFSv4, which the kernel's NFS-root code supports less widely than v3"
                .into(),
        );
    }

    let boot = tables::boot(&mut c, &raw);
    let nodes = tables::nodes(&mut c, &raw, &boot, address, subnet, server.router);
    let arm64 = arch::arm64(&mut c, raw.arm64.as_ref(), &nodes, &exports, mode);

    // Group errors are found once per node that uses the group; report each once.
    let mut unique = Vec::new();
    for p in c.problems {
        if !unique.contains(&p) {
            unique.push(p);
        }
    }
    if !unique.is_empty() {
        unique.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        return Err(ClusterError::Invalid {
            file: file.to_string(),
            problems: unique,
        });
    }
    Ok(Cluster {
        server,
        lease_time,
        nfs_servers,
        heads,
        ceph,
        nfs_version,
        nfs_options,
        exports,
        setup_tree,
        tftp_root,
        initramfs,
        image_dir,
        image,
        images,
        kernel_image,
        modules_dir,
        kernel_config,
        nic_modules,
        linuxrc,
        extra_modules,
        compress,
        strip_signatures: raw.initramfs.strip_signatures,
        busybox,
        init_script,
        mode,
        loader,
        pxelinux,
        ldlinux,
        boot,
        nodes,
        warnings: c.warnings,
        arm64,
    })
}

/// Reads and validates the cluster file at `path` against the real filesystem.
pub fn load(path: &Path) -> anyhow::Result<Cluster> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the cluster file {}", path.display()))?;
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let cluster = parse(&text, &path.display().to_string(), &base, &probe_fs)
        .map_err(|e| crate::exit::failure(crate::exit::INVALID_CONFIG, e))?;
    for w in &cluster.warnings {
        eprintln!("unionroot: warning: {w}");
    }
    Ok(cluster)
}
