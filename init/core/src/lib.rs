//! unionroot-core: everything `linuxrc` decides, with no I/O.
//!
//! Parsers take text (`&str`/`&[u8]`), never paths; the boot plan is data (a `Vec<Step>`) that a
//! small executor in the `linuxrc` crate runs. This keeps every decision testable without root.
#![forbid(unsafe_code)]
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

pub mod cmdline;
pub mod dhcp;
pub mod handoff;
pub mod modules;
pub mod nfs;
pub mod plan;
pub mod validate;
