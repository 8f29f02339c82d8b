//! linuxrc: the imperative shell around `unionroot-core`.
//!
//! `sys` is the one narrow syscall trait, with its Linux implementation (the only file allowed
//! `unsafe`) and a test recorder; `exec` runs the planned boot steps against it; `net` owns the
//! interfaces ([`net::Nic`]) and rtnetlink, `dhcp_driver` the DHCP sockets; `klog` writes to
//! `/dev/kmsg`. `main.rs` only wires these together and owns the fatal path.

// The rule that only the Linux syscall file may hold `unsafe` is the compiler's to keep.
#![deny(unsafe_code)]

pub mod boot;
pub mod dhcp_driver;
pub mod exec;
pub mod klog;
pub mod net;
pub mod sys;
