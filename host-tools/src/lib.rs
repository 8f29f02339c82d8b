//! The `unionroot` host tool: from one `cluster.toml`, builds what a unionroot diskless cluster's
//! server needs (the busybox setup tree, the client initramfs, the TFTP root, DHCP, NFS and TFTP
//! configuration), checks a kernel config for netbooting, and backs up disks.
//!
//! Pure logic (the cluster model and its validation, the linuxrc key mapping, every config
//! generator, the file-tree model, cpio encoding, module selection, the kernel-config check, the
//! backup's safety rules) lives in modules with unit tests; the subcommand code reads inputs,
//! calls it, and writes outputs atomically. `main.rs` only parses arguments and maps errors to
//! exit codes ([`exit`]).
#![forbid(unsafe_code)]

pub mod backup;
pub mod bootargs;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod cpio;
pub mod debian;
pub mod dhcp;
pub mod diff;
pub mod diskless;
pub mod elf;
pub mod exit;
pub mod exports;
pub mod fstree;
pub mod generations;
pub mod image;
pub mod image_pack;
pub mod image_sync;
pub mod initramfs;
pub mod kconfig;
pub mod kmod;
pub mod materialize;
pub mod modsig;
pub mod modtrim;
pub mod output;
pub mod pxe;
pub mod setup_tree;
pub mod tftp;

/// Runs one parsed command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<()> {
    use cli::Command as C;
    match cli.command {
        C::Initramfs(a) => initramfs::run(&a),
        C::SetupTree(a) => setup_tree::run(&a),
        C::Image(a) => image::run(&a),
        C::Check(a) => commands::check(&a),
        C::Conf(a) => commands::conf(&a),
        C::Append(a) => commands::append(&a),
        C::Pxe(a) => pxe::run(&a),
        C::Dhcp(a) => commands::dhcp(&a),
        C::Exports(a) => commands::exports(&a),
        C::Tftp(a) => commands::tftp(&a),
        C::KernelCheck(a) => kconfig::run(&a),
        C::Backup(a) => backup::run(&a),
        C::ImagePack(a) => image_pack::run_pack(&a),
        C::ImageSwitch(a) => image_pack::run_switch(&a),
        C::ImageGc(a) => image_pack::run_gc(&a),
        C::ImageSync(a) => image_sync::run(&a),
        C::Man(a) => commands::man(&a),
    }
}
