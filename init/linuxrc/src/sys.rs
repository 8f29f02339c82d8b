//! The one narrow syscall trait linuxrc's executor talks to, its Linux implementation, and a
//! recorder for tests. The Linux side goes through nix's safe wrappers (mount(2), finit_module(2),
//! pivot_root(2), chroot(2), execv(3), ...), so this module, the only place allowed to hold
//! `unsafe`, needs none today.

use nix::errno::Errno;
use std::ffi::CString;
use std::time::Duration;

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
    fn finit_module(&mut self, path: &str) -> Result<(), Errno>;
    /// st_dev of a path.
    fn device_of(&mut self, path: &str) -> Result<u64, Errno>;
    /// statfs(2) f_type of the filesystem holding a path.
    fn fs_magic(&mut self, path: &str) -> Result<i64, Errno>;
    fn kind(&mut self, path: &str) -> Kind;
    /// st_uid and st_gid of a path (stat(2)).
    fn owner(&mut self, path: &str) -> Result<(u32, u32), Errno>;
    /// Deletes everything below `root` that is on the same device as `root` itself.
    fn remove_same_device(&mut self, root: &str) -> Result<(), Errno>;
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
    fn sync(&mut self);
}

fn io_errno(e: std::io::Error) -> Errno {
    match (e.raw_os_error(), e.kind()) {
        (Some(n), _) => Errno::from_raw(n),
        // connect_timeout's own timeout carries no OS errno.
        (None, std::io::ErrorKind::TimedOut) => Errno::ETIMEDOUT,
        (None, _) => Errno::EIO,
    }
}

/// The real thing.
#[derive(Debug, Default)]
pub struct LinuxSys;

impl Sys for LinuxSys {
    fn mount(
        &mut self,
        source: &str,
        target: &str,
        fstype: &str,
        flags: u64,
        data: &str,
    ) -> Result<(), Errno> {
        use nix::mount::MsFlags;
        let flags = MsFlags::from_bits_truncate(flags as _);
        let fstype = (!fstype.is_empty()).then_some(fstype);
        let data = (!data.is_empty()).then_some(data);
        nix::mount::mount(Some(source), target, fstype, flags, data)
    }

    fn umount_detach(&mut self, target: &str) -> Result<(), Errno> {
        nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH)
    }

    fn mkdir(&mut self, path: &str, mode: u32) -> Result<(), Errno> {
        use std::os::unix::fs::DirBuilderExt;
        // On a read-only mount (the seed's read-only /client/setup NFS root) mkdir(2) fails with
        // EROFS before it would say EEXIST, so an existing directory must not reach it.
        if std::path::Path::new(path).is_dir() {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .map_err(io_errno)
    }

    fn finit_module(&mut self, path: &str) -> Result<(), Errno> {
        let f = std::fs::File::open(path).map_err(io_errno)?;
        nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty())
    }

    fn device_of(&mut self, path: &str) -> Result<u64, Errno> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).map(|m| m.dev()).map_err(io_errno)
    }

    fn fs_magic(&mut self, path: &str) -> Result<i64, Errno> {
        // f_type is i64 on glibc and u64 on musl; every filesystem magic number is below 2^32,
        // so the cast never wraps. A try_from would be an infallible conversion on glibc.
        #[allow(clippy::unnecessary_cast, clippy::cast_possible_wrap)]
        nix::sys::statfs::statfs(path).map(|s| s.filesystem_type().0 as i64)
    }

    fn kind(&mut self, path: &str) -> Kind {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::symlink_metadata(path) {
            Err(_) => Kind::Missing,
            Ok(m) if m.file_type().is_symlink() => std::fs::read_link(path)
                .map(|t| Kind::Symlink(t.to_string_lossy().into_owned()))
                .unwrap_or(Kind::Other),
            Ok(m) if m.is_dir() => Kind::Dir,
            Ok(m) if m.is_file() => Kind::File {
                executable: m.permissions().mode() & 0o111 != 0,
            },
            Ok(_) => Kind::Other,
        }
    }

    fn owner(&mut self, path: &str) -> Result<(u32, u32), Errno> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path)
            .map(|m| (m.uid(), m.gid()))
            .map_err(io_errno)
    }

    fn remove_same_device(&mut self, root: &str) -> Result<(), Errno> {
        use std::os::unix::fs::MetadataExt;
        fn walk(dir: &std::path::Path, dev: u64) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                let Ok(m) = std::fs::symlink_metadata(&p) else {
                    continue;
                };
                if m.dev() != dev {
                    continue; // a mount point: never cross into it
                }
                if m.is_dir() {
                    walk(&p, dev);
                    // Fails harmlessly on directories that still hold mount points.
                    let _ = std::fs::remove_dir(&p);
                } else {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        let dev = std::fs::symlink_metadata(root).map_err(io_errno)?.dev();
        walk(std::path::Path::new(root), dev);
        Ok(())
    }

    fn chdir(&mut self, path: &str) -> Result<(), Errno> {
        nix::unistd::chdir(path)
    }

    fn chroot(&mut self, path: &str) -> Result<(), Errno> {
        nix::unistd::chroot(path)
    }

    fn pivot_root(&mut self, new_root: &str, put_old: &str) -> Result<(), Errno> {
        nix::unistd::pivot_root(new_root, put_old)
    }

    fn exec(&mut self, path: &str, args: &[String]) -> Errno {
        let Ok(p) = CString::new(path) else {
            return Errno::EINVAL;
        };
        let mut argv = vec![p.clone()];
        for a in args {
            match CString::new(a.as_str()) {
                Ok(c) => argv.push(c),
                Err(_) => return Errno::EINVAL,
            }
        }
        match nix::unistd::execv(&p, &argv) {
            Err(e) => e,
            Ok(never) => match never {},
        }
    }

    fn sethostname(&mut self, name: &str) -> Result<(), Errno> {
        nix::unistd::sethostname(name)
    }

    fn write_file(&mut self, path: &str, contents: &[u8]) -> Result<(), Errno> {
        std::fs::write(path, contents).map_err(io_errno)
    }

    fn read_bytes(&mut self, path: &str) -> Result<Vec<u8>, Errno> {
        std::fs::read(path).map_err(io_errno)
    }

    fn tcp_probe(
        &mut self,
        addr: std::net::Ipv4Addr,
        port: u16,
        timeout: Duration,
    ) -> Result<(), Errno> {
        let sa = std::net::SocketAddr::from((addr, port));
        std::net::TcpStream::connect_timeout(&sa, timeout)
            .map(drop)
            .map_err(io_errno)
    }

    fn free_bytes(&mut self, path: &str) -> Result<u64, Errno> {
        let s = nix::sys::statvfs::statvfs(path)?;
        Ok(s.blocks_available() * s.fragment_size())
    }

    fn now(&mut self) -> Duration {
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(Duration::from)
            .unwrap_or_default()
    }

    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d)
    }

    fn sync(&mut self) {
        nix::unistd::sync()
    }
}

/// A recorded call, for asserting exact syscall sequences in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: String,
        target: String,
        fstype: String,
        flags: u64,
        data: String,
    },
    UmountDetach(String),
    Mkdir(String),
    FinitModule(String),
    RemoveSameDevice(String),
    Chdir(String),
    Chroot(String),
    PivotRoot(String, String),
    Exec(String, Vec<String>),
    SetHostname(String),
    WriteFile(String),
    Probe(std::net::Ipv4Addr, u16),
    Sleep(Duration),
}

/// A test double: records every state-changing call, answers queries from tables, and can be told
/// to fail the n-th recorded call (counting from 0) with a given errno, or every call matching
/// a predicate.
#[derive(Debug, Default)]
pub struct Recorder {
    pub calls: Vec<Call>,
    pub fail_at: Option<(usize, Errno)>,
    /// Fail mounts on this target with this errno, this many times (then succeed).
    pub fail_mount: Option<(String, Errno, usize)>,
    pub devices: std::collections::HashMap<String, u64>,
    pub kinds: std::collections::HashMap<String, Kind>,
    /// Owners (uid, gid) by path; a path not listed is owned by root.
    pub owners: std::collections::HashMap<String, (u32, u32)>,
    pub files: std::collections::HashMap<String, String>,
    /// Files that are not text; looked up before `files`.
    pub raw_files: std::collections::HashMap<String, Vec<u8>>,
    pub root_magic: i64,
    pub clock: Duration,
    /// Servers whose probe fails (EHOSTUNREACH, after 1 s of simulated time).
    pub dead: std::collections::HashSet<std::net::Ipv4Addr>,
    /// Free bytes reported for every path.
    pub free: u64,
}

impl Recorder {
    fn record(&mut self, c: Call) -> Result<(), Errno> {
        let n = self.calls.len();
        self.calls.push(c);
        match self.fail_at {
            Some((at, e)) if at == n => Err(e),
            _ => Ok(()),
        }
    }
}

impl Sys for Recorder {
    fn mount(
        &mut self,
        source: &str,
        target: &str,
        fstype: &str,
        flags: u64,
        data: &str,
    ) -> Result<(), Errno> {
        self.record(Call::Mount {
            source: source.into(),
            target: target.into(),
            fstype: fstype.into(),
            flags,
            data: data.into(),
        })?;
        if let Some((t, e, left)) = &mut self.fail_mount {
            if t == target && *left > 0 {
                *left -= 1;
                return Err(*e);
            }
        }
        Ok(())
    }
    fn umount_detach(&mut self, target: &str) -> Result<(), Errno> {
        self.record(Call::UmountDetach(target.into()))
    }
    fn mkdir(&mut self, path: &str, _mode: u32) -> Result<(), Errno> {
        self.record(Call::Mkdir(path.into()))
    }
    fn finit_module(&mut self, path: &str) -> Result<(), Errno> {
        self.record(Call::FinitModule(path.into()))
    }
    fn device_of(&mut self, path: &str) -> Result<u64, Errno> {
        self.devices.get(path).copied().ok_or(Errno::ENOENT)
    }
    fn fs_magic(&mut self, _path: &str) -> Result<i64, Errno> {
        Ok(self.root_magic)
    }
    fn kind(&mut self, path: &str) -> Kind {
        self.kinds.get(path).cloned().unwrap_or(Kind::Missing)
    }
    fn owner(&mut self, path: &str) -> Result<(u32, u32), Errno> {
        Ok(self.owners.get(path).copied().unwrap_or((0, 0)))
    }
    fn remove_same_device(&mut self, root: &str) -> Result<(), Errno> {
        self.record(Call::RemoveSameDevice(root.into()))
    }
    fn chdir(&mut self, path: &str) -> Result<(), Errno> {
        self.record(Call::Chdir(path.into()))
    }
    fn chroot(&mut self, path: &str) -> Result<(), Errno> {
        self.record(Call::Chroot(path.into()))
    }
    fn pivot_root(&mut self, new_root: &str, put_old: &str) -> Result<(), Errno> {
        self.record(Call::PivotRoot(new_root.into(), put_old.into()))
    }
    fn exec(&mut self, path: &str, args: &[String]) -> Errno {
        // A recorded exec "returns" like a failed one; tests assert on the call list.
        self.record(Call::Exec(path.into(), args.to_vec()))
            .err()
            .unwrap_or(Errno::ENOEXEC)
    }
    fn sethostname(&mut self, name: &str) -> Result<(), Errno> {
        self.record(Call::SetHostname(name.into()))
    }
    fn write_file(&mut self, path: &str, contents: &[u8]) -> Result<(), Errno> {
        self.files
            .insert(path.into(), String::from_utf8_lossy(contents).into_owned());
        self.record(Call::WriteFile(path.into()))
    }
    fn read_bytes(&mut self, path: &str) -> Result<Vec<u8>, Errno> {
        match self.raw_files.get(path) {
            Some(b) => Ok(b.clone()),
            None => self
                .files
                .get(path)
                .map(|s| s.as_bytes().to_vec())
                .ok_or(Errno::ENOENT),
        }
    }
    fn tcp_probe(
        &mut self,
        addr: std::net::Ipv4Addr,
        port: u16,
        _timeout: Duration,
    ) -> Result<(), Errno> {
        self.calls.push(Call::Probe(addr, port));
        if self.dead.contains(&addr) {
            self.clock += Duration::from_secs(1);
            return Err(Errno::EHOSTUNREACH);
        }
        Ok(())
    }
    fn free_bytes(&mut self, _path: &str) -> Result<u64, Errno> {
        Ok(self.free)
    }
    fn now(&mut self) -> Duration {
        self.clock
    }
    fn sleep(&mut self, d: Duration) {
        self.clock += d;
        self.calls.push(Call::Sleep(d));
    }
    fn sync(&mut self) {}
}
