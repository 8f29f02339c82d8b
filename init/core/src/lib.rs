//! unionroot-core: everything `linuxrc` decides, with no I/O.
//!
//! Parsers take text (`&str`/`&[u8]`), never paths; the boot plan is data (a `Vec<Step>`) that a
//! small executor in the `linuxrc` crate runs. This keeps every decision testable without root.
#![forbid(unsafe_code)]
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

pub mod cmdline;
pub mod dhcp;
pub mod handoff;
pub mod modules;
pub mod nfs;
pub mod plan;
pub mod validate;
