//! The one narrow syscall trait linuxrc's executor talks to, and the facts its callers share
//! about the answers (filesystem magics, what a tree removal did). Two implementations:
//! [`LinuxSys`] in `linux.rs`, the only file allowed to hold `unsafe` (only the loop(4) ioctls,
//! which nix does not wrap, need it: nix's safe wrappers cover mount(2), finit_module(2),
//! pivot_root(2), openat(2), ...), and, in test
//! builds only, the [`Recorder`] in `recorder.rs`. Callers are handed a `&mut dyn Sys`; nothing
//! switches implementations on `cfg!(test)`.

#[allow(unsafe_code)]
mod linux;
#[cfg(test)]
mod recorder;

pub use linux::LinuxSys;
#[cfg(test)]
pub use recorder::{Call, Recorder};

use nix::errno::Errno;
use std::time::Duration;

/// statfs(2) `f_type` of ramfs and tmpfs (`include/uapi/linux/magic.h`): the filesystems the
/// kernel unpacks an initramfs into, and so the only roots linuxrc may delete.
pub const RAMFS_MAGIC: i64 = 0x8584_58f6;
pub const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Is a filesystem with this statfs(2) magic an initramfs (ramfs or tmpfs)?
pub fn is_initramfs(magic: i64) -> bool {
    matches!(magic, RAMFS_MAGIC | TMPFS_MAGIC)
}

/// What deleting a tree without crossing devices did ([`Sys::remove_same_device`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// Entries unlinked (files, symlinks, devices and emptied directories).
    pub removed: usize,
    /// Mount points left in place: entries on another device are never entered.
    pub kept: usize,
    /// Entries that could not be read or removed.
    pub failed: usize,
    /// The first few of those failures, path and reason, for the console.
    pub failures: Vec<(String, Errno)>,
}

impl Removal {
    /// How many failures [`Removal::failures`] keeps: enough to name the cause, few enough
    /// not to flood the console when a whole subtree fails the same way.
    pub const SHOWN: usize = 3;

    pub fn fail(&mut self, path: String, e: Errno) {
        self.failed += 1;
        if self.failures.len() < Self::SHOWN {
            self.failures.push((path, e));
        }
    }
}

/// What a path is, without following a final symlink (lstat(2)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Missing,
    Dir,
    File { executable: bool },
    Symlink(String),
    Other,
}

pub trait Sys {
    fn mount(
        &mut self,
        source: &str,
        target: &str,
        fstype: &str,
        flags: u64,
        data: &str,
    ) -> Result<(), Errno>;
    fn umount_detach(&mut self, target: &str) -> Result<(), Errno>;
    fn mkdir(&mut self, path: &str, mode: u32) -> Result<(), Errno>;
    /// finit_module(2) of the file at `path` with the parameter string `params` (`p=v q`).
    fn finit_module(&mut self, path: &str, params: &str) -> Result<(), Errno>;
    /// st_dev of a path.
    fn device_of(&mut self, path: &str) -> Result<u64, Errno>;
    /// statfs(2) f_type of the filesystem holding a path.
    fn fs_magic(&mut self, path: &str) -> Result<i64, Errno>;
    fn kind(&mut self, path: &str) -> Kind;
    /// st_uid and st_gid of a path (stat(2)).
    fn owner(&mut self, path: &str) -> Result<(u32, u32), Errno>;
    /// Deletes everything below `root` that is on the same device as `root` itself, through
    /// directory file descriptors, never following a symlink, directories bottom-up. Errs only
    /// if `root` itself cannot be opened; what could not be removed below it is counted.
    fn remove_same_device(&mut self, root: &str) -> Result<Removal, Errno>;
    fn chdir(&mut self, path: &str) -> Result<(), Errno>;
    fn chroot(&mut self, path: &str) -> Result<(), Errno>;
    fn pivot_root(&mut self, new_root: &str, put_old: &str) -> Result<(), Errno>;
    /// execv(3); returns only on failure.
    fn exec(&mut self, path: &str, args: &[String]) -> Errno;
    fn sethostname(&mut self, name: &str) -> Result<(), Errno>;
    fn write_file(&mut self, path: &str, contents: &[u8]) -> Result<(), Errno>;
    /// The file's bytes, whatever they are: `/proc/cmdline` and config files may hold text in
    /// any encoding, and only the parser knows which parts must be UTF-8.
    fn read_bytes(&mut self, path: &str) -> Result<Vec<u8>, Errno>;
    /// A file that is text by contract (`/proc/filesystems`, `modules.dep`): not UTF-8 reads as
    /// EILSEQ, an error of its own rather than a generic EIO.
    fn read_file(&mut self, path: &str) -> Result<String, Errno> {
        String::from_utf8(self.read_bytes(path)?).map_err(|_| Errno::EILSEQ)
    }
    /// Opens (and closes) a TCP connection, bounded by `timeout`: is the server's NFS port up?
    fn tcp_probe(
        &mut self,
        addr: std::net::Ipv4Addr,
        port: u16,
        timeout: Duration,
    ) -> Result<(), Errno>;
    /// Bytes available to unprivileged users in the filesystem holding `path`.
    fn free_bytes(&mut self, path: &str) -> Result<u64, Errno>;
    /// Monotonic time; the same clock the kernel stamps its log lines with.
    fn now(&mut self) -> Duration;
    fn sleep(&mut self, d: Duration);
    /// sync(2): flush every filesystem's dirty data before the root moves under it.
    fn sync(&mut self);
    /// Up to `len` bytes from the start of a regular file, and the file's whole length (an
    /// image's superblock, to tell its filesystem and whether it is truncated; a pointer file).
    /// The file comes from a server: a final symlink is not followed and a FIFO is not waited
    /// on (ELOOP, or EINVAL for anything but a regular file), so it can neither hang PID 1 nor
    /// lead it to a device of the node.
    fn read_head(&mut self, path: &str, len: usize) -> Result<(Vec<u8>, u64), Errno>;
    /// `losetup --read-only --find --show <path>`: attaches the file, read-only and
    /// autoclearing, to a free loop device (`/dev/loop-control` `LOOP_CTL_GET_FREE`, then
    /// `LOOP_CONFIGURE`, loop(4)) and returns the device's path. The device stays open until
    /// exec, so that autoclear cannot detach it before it is mounted. Like [`Sys::read_head`],
    /// only a regular file is attached, never through a final symlink.
    fn loop_attach(&mut self, path: &str) -> Result<String, Errno>;
    /// `cp from to`: copies a file's bytes into a new file; returns how many.
    fn copy_file(&mut self, from: &str, to: &str) -> Result<u64, Errno>;
    /// Eight random bytes from the kernel (getrandom(2)), without ever blocking: `None` when
    /// the kernel has none ready (before Linux 5.6 early in boot), and the caller falls back.
    fn random_u64(&mut self) -> Option<u64>;
}
