//! linuxrc: the imperative shell around `unionroot-core`.
//!
//! `sys` is the one narrow syscall trait (and the only module with `unsafe`); `exec` runs the
//! planned boot steps against it; `net` and `dhcp_driver` own sockets; `klog` writes to
//! `/dev/kmsg`. `main.rs` only wires these together and owns the fatal path.

pub mod boot;
pub mod dhcp_driver;
pub mod exec;
pub mod klog;
pub mod net;
pub mod sys;
