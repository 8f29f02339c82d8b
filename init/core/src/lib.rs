//! unionroot-core: everything `linuxrc` decides, with no I/O.
//!
//! Parsers take text (`&str`/`&[u8]`), never paths; the boot plan is data (a `Vec<Step>`) that a
//! small executor in the `linuxrc` crate runs. This keeps every decision testable without root.
#![forbid(unsafe_code)]

pub mod addr;
pub mod cmdline;
pub mod dhcp;
pub mod handoff;
pub mod heads;
pub mod image;
pub mod modules;
pub mod ms;
pub mod networkd;
pub mod nfs;
pub mod plan;
pub mod root;
pub mod validate;
