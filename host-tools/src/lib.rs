//! The `unionroot` host tool: builds the client initramfs and the busybox setup tree of a
//! unionroot diskless cluster.
//!
//! Pure logic (the file-tree model, cpio encoding, module selection, signature stripping, the
//! static-ELF check, tree planning) lives in modules with unit tests; the subcommand modules
//! read inputs, call it, and write outputs atomically. `main.rs` only parses arguments.
#![forbid(unsafe_code)]

pub mod cli;
pub mod cpio;
pub mod elf;
pub mod fstree;
pub mod initramfs;
pub mod kmod;
pub mod materialize;
pub mod modsig;
pub mod output;
pub mod setup_tree;

/// Runs one parsed command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<()> {
    match cli.command {
        cli::Command::Initramfs(a) => initramfs::run(&a),
        cli::Command::SetupTree(a) => setup_tree::run(&a),
    }
}
