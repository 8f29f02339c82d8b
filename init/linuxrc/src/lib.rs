//! linuxrc: the imperative shell around `unionroot-core`.
//!
//! `sys` is the one narrow syscall trait (and the only module with `unsafe`); `exec` runs the
//! planned boot steps against it; `net` and `dhcp_driver` own sockets; `klog` writes to
//! `/dev/kmsg`. `main.rs` only wires these together and owns the fatal path.
// PID 1 must never panic (the kernel then panics and the reason scrolls away), and input must
// never reach an unwrap or an unchecked index or cast: the tool holds that rule, not review.
// Tests may panic; that is how they fail.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_lossless
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
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
