//! mount(2) flags (`MS_*`), with the Linux values (this crate is Linux-only by purpose).
//!
//! Their own home because two jobs use them: [`crate::nfs`] turns the VFS words of a piece's
//! options (`ro`, `nodev`, ...) into flags, and [`crate::plan`] puts flags into its steps.

pub const RDONLY: u64 = 1;
pub const NOSUID: u64 = 2;
pub const NODEV: u64 = 4;
pub const NOEXEC: u64 = 8;
pub const BIND: u64 = 4096;
pub const MOVE: u64 = 8192;
pub const REC: u64 = 16384;
pub const PRIVATE: u64 = 1 << 18;
