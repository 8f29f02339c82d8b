//! `image-sync`: copies an images directory's generations to every head of `[[heads]]`
//! (issue 10) with rsync(1), so that each head serves the same generations from its own disk.
//!
//! Per head, in this order, each step only after the one before succeeded:
//! 1. the generations, with `--ignore-existing`: a generation a head holds is never rewritten
//!    (its name is its content's hash, and a node may have it open). rsync writes each file
//!    under a hidden temporary name (`.NAME-<hash>.<ext>.XXXXXX`) in the destination, fsyncs it
//!    (`--fsync`) and renames it into place, so a generation is visible whole or not at all;
//!    on a failure rsync removes the temporary file (no `--partial`);
//! 2. the publish log `NAME.generations`, the same way;
//! 3. the pointer `NAME.current`, last: it never names a generation the head lacks;
//! 4. then, and only then, the generations of this image that are no longer here (`image-gc`
//!    deleted them) are deleted on the head too, so that each head keeps what this directory
//!    keeps. The head's pointer now names the current generation, which is here, so it is
//!    never deleted; `image-gc` chose the rest (it keeps the newest K, 2 by default, for nodes
//!    still running on the one before). Only this image's generation files can be deleted
//!    (see [`Name::generation_patterns`]): other images, the log, the pointer and anything
//!    else on the head are left alone.
//!
//! A head that fails stops at its step: its pointer stays as it was, nothing of it is deleted,
//! and the other heads are still synced. The local images directory's lock is held
//! throughout, so that no publish or gc changes what is being copied.

use crate::cli::ImageSyncArgs;
use crate::cluster::{self, Head, ImagesTarget};
use crate::exit;
use crate::generations::{Generation, Name};
use crate::image_pack::{resolve, shell_line, Store};
use anyhow::{Context, Result};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// What to send: the logged generations present here, oldest first, and the current one (if
/// the log lacks it). Files the log does not list are left out: their origin is unknown.
pub fn to_send(
    log: &[Generation],
    current: Option<&Generation>,
    present: &[Generation],
) -> Vec<Generation> {
    let mut v: Vec<Generation> = log
        .iter()
        .filter(|g| present.contains(g))
        .cloned()
        .collect();
    if let Some(c) = current {
        if !v.contains(c) {
            v.push(c.clone());
        }
    }
    v
}

/// One rsync step: `files` (in `dir`) into the destination directory `dest`.
/// `--ignore-existing` for generations only: the log and the pointer are meant to change.
pub fn rsync_command(dir: &Path, files: &[String], dest: &str, generations: bool) -> Command {
    let mut c = Command::new("rsync");
    // -t: keep mtimes (gc on the head orders by the log, but ls -t should agree); --chmod:
    // generations stay read-only, as image-pack makes them; --fsync: durable before renaming.
    c.args(["--times", "--fsync", "--timeout=60"]);
    if generations {
        c.args(["--ignore-existing", "--chmod=F444"]);
    } else {
        // --checksum: rsync's quick check (same size and mtime) would skip a pointer switched
        // within the same second to a name of the same length.
        c.args(["--checksum", "--chmod=F644"]);
    }
    // "--" ends the options: a file name cannot become one (they are checked names anyway).
    c.arg("--");
    for f in files {
        c.arg(dir.join(f));
    }
    // The trailing slash makes rsync treat the destination as the directory to copy into.
    let mut d = OsString::from(dest);
    if !dest.ends_with('/') {
        d.push("/");
    }
    c.arg(d);
    c
}

/// Step 4: deletes on the head this image's generations that `dir` no longer holds. No file is
/// sent (`--existing` with `--ignore-existing`); `--delete` removes what the source lacks,
/// limited by the filters to this image's generation files.
pub fn prune_command(dir: &Path, name: &Name, dest: &str) -> Command {
    let mut c = Command::new("rsync");
    c.args([
        "--recursive",
        "--delete",
        "--existing",
        "--ignore-existing",
        "--timeout=60",
    ]);
    for p in name.generation_patterns() {
        c.arg(format!("--include={p}"));
    }
    c.args(["--exclude=*", "--"]);
    let mut src = dir.as_os_str().to_owned();
    src.push("/");
    c.arg(src);
    let mut d = OsString::from(dest);
    if !dest.ends_with('/') {
        d.push("/");
    }
    c.arg(d);
    c
}

/// The head's rsync destination (checked by the caller to be set).
fn dest_of(h: &Head) -> String {
    h.images.as_ref().map(|t| t.to_string()).unwrap_or_default()
}

/// Runs one step; a failure names the head, the step and rsync's own words.
fn run_step(head: &Head, what: &str, mut c: Command) -> Result<()> {
    let o = match c.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(exit::failure(
                exit::FAILURE,
                anyhow::anyhow!("rsync is not installed: apt-get install rsync"),
            ))
        }
        Err(e) => return Err(e).context("cannot run rsync"),
    };
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        anyhow::bail!(
            "head {} ({}): {what} failed ({}): {}",
            head.name,
            dest_of(head),
            o.status,
            err.trim()
        );
    }
    Ok(())
}

/// Syncs one head; returns a line saying what it did.
fn sync_head(store: &Store, head: &Head, send: &[Generation], current: &Generation) -> Result<()> {
    let dest = &dest_of(head);
    let gens: Vec<String> = send.iter().map(|g| g.file.clone()).collect();
    run_step(
        head,
        &format!("copying {} generation(s)", gens.len()),
        rsync_command(&store.dir, &gens, dest, true),
    )?;
    if store.log_path().exists() {
        run_step(
            head,
            "copying the publish log",
            rsync_command(&store.dir, &[store.name.log_file()], dest, false),
        )?;
    }
    run_step(
        head,
        &format!("copying the pointer (to {current})"),
        rsync_command(&store.dir, &[store.name.pointer_file()], dest, false),
    )?;
    run_step(
        head,
        "deleting the generations gc removed here",
        prune_command(&store.dir, &store.name, dest),
    )
}

pub fn run(a: &ImageSyncArgs) -> Result<()> {
    let Some(cluster_file) = &a.store.cluster else {
        return Err(exit::failure(
            exit::USAGE,
            anyhow::anyhow!("image-sync copies to the cluster's [[heads]]: give -c cluster.toml"),
        ));
    };
    let c = cluster::load(cluster_file)?;
    if c.heads.is_empty() {
        return Err(exit::failure(
            exit::USAGE,
            anyhow::anyhow!(
                "{} has no [[heads]]: describe the NFS heads to copy the images to",
                cluster_file.display()
            ),
        ));
    }
    let mut heads: Vec<&Head> = Vec::new();
    for n in &a.head {
        match c.heads.iter().find(|h| &h.name == n) {
            Some(h) => heads.push(h),
            None => {
                let names: Vec<&str> = c.heads.iter().map(|h| h.name.as_str()).collect();
                return Err(exit::failure(
                    exit::USAGE,
                    anyhow::anyhow!(
                        "--head {n}: no such head; the cluster's heads are {}",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    if heads.is_empty() {
        heads = c.heads.iter().collect();
    }
    if let Some(h) = heads.iter().find(|h| h.images.is_none()) {
        return Err(exit::failure(
            exit::INVALID_CONFIG,
            anyhow::anyhow!(
                "head {} has nowhere to copy to: set exports.images (and, if the default \
                 ADDRESS:<exports.images> over ssh does not fit, heads.images)",
                h.name
            ),
        ));
    }
    let (store, _, _) = resolve(&a.store)?;
    let _lock = store.lock()?;
    let Some(current) = store.current()? else {
        anyhow::bail!(
            "{} has no pointer {}: publish a generation first (unionroot image-pack)",
            store.dir.display(),
            store.name.pointer_file()
        );
    };
    store.verify(&current)?;
    let send = to_send(&store.log()?, Some(&current), &store.present()?);
    if a.dry_run {
        for h in &heads {
            let dest = &dest_of(h);
            let gens: Vec<String> = send.iter().map(|g| g.file.clone()).collect();
            println!("dry run: head {}:", h.name);
            println!(
                "  {}",
                shell_line(&rsync_command(&store.dir, &gens, dest, true))
            );
            if store.log_path().exists() {
                let log = [store.name.log_file()];
                println!(
                    "  {}",
                    shell_line(&rsync_command(&store.dir, &log, dest, false))
                );
            }
            let ptr = [store.name.pointer_file()];
            println!(
                "  {}",
                shell_line(&rsync_command(&store.dir, &ptr, dest, false))
            );
            println!(
                "  {}",
                shell_line(&prune_command(&store.dir, &store.name, dest))
            );
        }
        return Ok(());
    }
    let mut failed = Vec::new();
    for h in &heads {
        // A local destination must exist: rsync would create its last component silently,
        // and a mistyped path would then hold the images unnoticed.
        let r = match &h.images {
            Some(ImagesTarget::Local(p)) if !p.is_dir() => Err(anyhow::anyhow!(
                "head {}: the images directory {} is missing; create it (mkdir -p)",
                h.name,
                p.display()
            )),
            _ => sync_head(&store, h, &send, &current),
        };
        match r {
            Ok(()) => println!(
                "head {}: {} generation(s) present, pointer {current}",
                h.name,
                send.len()
            ),
            Err(e) => {
                eprintln!("unionroot: {e:#}; its pointer was not changed");
                failed.push(h.name.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "image-sync failed for head(s) {} (the others are synced); fix and run it again: \
             what a head already holds is not copied twice",
            failed.join(", ")
        ))
    }
}
