//! The small subcommands that turn the cluster description into one text each (`conf`, `dhcp`,
//! `exports`, `tftp`), plus `check`, `append` and `man`. The texts come from pure generators;
//! this module only reads the cluster file and puts the text where it was asked to go.

use crate::cli::{
    AppendArgs, CheckArgs, Cli, DhcpArgs, DhcpFormat, ExportsArgs, ExportsFormat, ManArgs, OutArgs,
    TextArgs, TftpArgs, TftpFormat,
};
use crate::cluster::{self, BootMode, IpMode};
use crate::output::{plan_file, write_file_atomic, Outcome};
use crate::{bootargs, dhcp, exit, exports, pxe, tftp};
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::io::Write;

/// Puts `text` on stdout, or into `-o FILE` atomically (or, with `--dry-run`, says what that
/// would do).
pub fn emit(text: &str, what: &str, out: &OutArgs) -> Result<()> {
    let Some(path) = &out.output else {
        std::io::stdout()
            .write_all(text.as_bytes())
            .context("cannot write to standard output")?;
        return Ok(());
    };
    let p = path.display();
    if out.dry_run {
        let (o, changes) = plan_file(path, text.as_bytes())?;
        match o {
            Outcome::Created => {
                println!("dry run: would create {p} ({what}):");
                for l in text.lines() {
                    println!("  +{l}");
                }
            }
            Outcome::Unchanged => println!("dry run: {p} ({what}) is up to date"),
            Outcome::Replaced => {
                println!(
                    "dry run: would replace {p} ({what}){}:",
                    if out.force { "" } else { " (needs --force)" }
                );
                for l in changes {
                    println!("  {l}");
                }
            }
        }
        return Ok(());
    }
    match write_file_atomic(path, text.as_bytes(), out.force)
        .with_context(|| format!("writing the {what}"))?
    {
        Outcome::Created => println!("wrote {p} ({what})"),
        Outcome::Replaced => println!("replaced {p} ({what})"),
        Outcome::Unchanged => println!("{p} unchanged ({what})"),
    }
    Ok(())
}

pub fn check(args: &CheckArgs) -> Result<()> {
    let c = cluster::load(&args.cluster.cluster)?;
    let s = &c.server;
    println!("{}: valid", args.cluster.cluster.display());
    println!(
        "server {} on {}{}",
        s.address,
        s.subnet.cidr(),
        s.router
            .map(|r| format!(", router {r}"))
            .unwrap_or_default()
    );
    println!(
        "boot mode {}, NFS version {}",
        match c.mode {
            BootMode::Initramfs => "initramfs",
            BootMode::NfsRoot => "nfsroot",
        },
        c.nfs_version
    );
    for e in exports::served(&c) {
        println!(
            "export {} ({}, {}{})",
            e.path,
            e.role,
            if e.read_only { "ro" } else { "rw" },
            if e.backend == cluster::Backend::Ceph {
                ", CephFS"
            } else {
                ""
            }
        );
    }
    for h in &c.heads {
        println!(
            "head {} {}{}",
            h.name,
            h.address,
            h.images
                .as_ref()
                .map(|i| format!(", images synced to {i}"))
                .unwrap_or_default()
        );
    }
    println!("initramfs modules: {}", c.initramfs_modules().join(" "));
    if let Some(arm) = c.for_arch(cluster::Arch::Arm64) {
        println!(
            "arm64 initramfs modules: {}",
            arm.initramfs_modules().join(" ")
        );
    }
    for n in &c.nodes {
        println!(
            "node {}{} {} {} ({}): {}",
            n.name,
            if n.arch == cluster::Arch::Arm64 {
                " [arm64]"
            } else {
                ""
            },
            n.mac,
            n.ip,
            match n.boot.ipconfig {
                IpMode::Dhcp => "dhcp",
                IpMode::Static => "static",
            },
            bootargs::node_append(&c, n)
        );
    }
    Ok(())
}

pub fn conf(args: &TextArgs) -> Result<()> {
    let c = cluster::load(&args.cluster.cluster)?;
    emit(&bootargs::config_file(&c), "unionroot.conf", &args.out)
}

pub fn append(args: &AppendArgs) -> Result<()> {
    let c = cluster::load(&args.cluster.cluster)?;
    let n = pxe::select_nodes(&c, std::slice::from_ref(&args.node))?[0];
    println!("{}", bootargs::node_append(&c, n));
    Ok(())
}

pub fn dhcp(args: &DhcpArgs) -> Result<()> {
    let c = cluster::load(&args.cluster.cluster)?;
    match args.format {
        DhcpFormat::Isc => emit(&dhcp::isc(&c), "dhcpd.conf", &args.out),
        DhcpFormat::Dnsmasq => emit(&dhcp::dnsmasq(&c), "dnsmasq DHCP configuration", &args.out),
    }
}

pub fn exports(args: &ExportsArgs) -> Result<()> {
    let c = cluster::load(&args.cluster.cluster)?;
    if args.strict {
        exports::refuse_risks(&c)?;
    }
    let per_head = args.head.is_some() || args.heads_dir.is_some();
    if per_head && (args.format != ExportsFormat::Ganesha || c.heads.is_empty()) {
        return Err(exit::failure(
            exit::USAGE,
            anyhow::anyhow!(
                "--head and --heads-dir select ganesha configurations of [[heads]]: give \
                 --format ganesha{}",
                if c.heads.is_empty() {
                    " and describe the heads in the cluster file"
                } else {
                    ""
                }
            ),
        ));
    }
    match args.format {
        ExportsFormat::Knfsd => {
            exports::refuse_knfsd_ceph(&c)?;
            emit(&exports::knfsd(&c), "/etc/exports", &args.out)
        }
        ExportsFormat::Ganesha if c.heads.is_empty() => {
            emit(&exports::ganesha(&c, None), "ganesha.conf", &args.out)
        }
        ExportsFormat::Ganesha => {
            let names: Vec<&str> = c.heads.iter().map(|h| h.name.as_str()).collect();
            if let Some(dir) = &args.heads_dir {
                for h in &c.heads {
                    let out = OutArgs {
                        output: Some(dir.join(format!("ganesha-{}.conf", h.name))),
                        force: args.out.force,
                        dry_run: args.out.dry_run,
                    };
                    let what = format!("ganesha.conf of head {}", h.name);
                    emit(&exports::ganesha(&c, Some(h)), &what, &out)?;
                }
                return Ok(());
            }
            // One file per head: the heads differ (each listens on its own address).
            let Some(name) = &args.head else {
                return Err(exit::failure(
                    exit::USAGE,
                    anyhow::anyhow!(
                        "the cluster has heads ({}): give --head NAME for one head's \
                         configuration, or --heads-dir DIR for all of them",
                        names.join(", ")
                    ),
                ));
            };
            let Some(h) = c.heads.iter().find(|h| &h.name == name) else {
                return Err(exit::failure(
                    exit::USAGE,
                    anyhow::anyhow!(
                        "--head {name}: no such head; the cluster's heads are {}",
                        names.join(", ")
                    ),
                ));
            };
            emit(
                &exports::ganesha(&c, Some(h)),
                &format!("ganesha.conf of head {name}"),
                &args.out,
            )
        }
    }
}

pub fn tftp(args: &TftpArgs) -> Result<()> {
    let c = cluster::load(&args.cluster.cluster)?;
    match args.format {
        TftpFormat::Inetd => emit(&tftp::inetd(&c), "inetd.conf line", &args.out),
        TftpFormat::Dnsmasq => emit(&tftp::dnsmasq(&c), "dnsmasq TFTP settings", &args.out),
    }
}

/// Every page: `unionroot.1` and one `unionroot-<command>.1` per subcommand, rendered by
/// clap_mangen from the same definition the parser uses.
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    let cmd = Cli::command();
    let mut pages = Vec::new();
    let mut render = |name: String, c: clap::Command| -> Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c.name(name.clone()))
            .render(&mut buf)
            .with_context(|| format!("cannot render the page of {name}"))?;
        pages.push((format!("{name}.1"), buf));
        Ok(())
    };
    render("unionroot".into(), cmd.clone())?;
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("unionroot-{}", sub.get_name());
        render(
            name,
            sub.clone()
                .version(cmd.get_version().unwrap_or_default().to_string()),
        )?;
    }
    Ok(pages)
}

pub fn man(args: &ManArgs) -> Result<()> {
    if args.dry_run {
        for (name, page) in man_pages()? {
            let path = args.out.join(&name);
            let what = match plan_file(&path, &page)?.0 {
                Outcome::Created => "would create",
                Outcome::Replaced if args.force => "would replace",
                Outcome::Replaced => "would replace (needs --force)",
                Outcome::Unchanged => "up to date:",
            };
            println!("dry run: {what} {}", path.display());
        }
        return Ok(());
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut written = 0;
    let pages = man_pages()?;
    for (name, page) in &pages {
        let path = args.out.join(name);
        if write_file_atomic(&path, page, args.force)? != Outcome::Unchanged {
            written += 1;
        }
    }
    println!(
        "{} man pages in {} ({written} written, {} unchanged)",
        pages.len(),
        args.out.display(),
        pages.len() - written
    );
    Ok(())
}
