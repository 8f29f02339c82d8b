//! linuxrc: the imperative shell around `unionroot-core`.
//!
//! `sys` is the one narrow syscall trait (and the only module with `unsafe`); `exec` runs the
//! planned boot steps against it; `net` and `dhcp_driver` own sockets; `klog` writes to
//! `/dev/kmsg`. `main.rs` only wires these together and owns the fatal path.
// Test-only casts (PRNGs, packet fuzzing) are not input handling; clippy.toml covers the rest.
#![cfg_attr(
    test,
    allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_possible_wrap,
        clippy::cast_lossless
    )
)]

pub mod boot;
pub mod dhcp_driver;
pub mod exec;
pub mod klog;
pub mod net;
pub mod sys;
