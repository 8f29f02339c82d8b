//! [`Sys`] on Linux, through nix's safe wrappers: mount(2), umount2(2), finit_module(2),
//! pivot_root(2), chroot(2), execv(3), statfs(2), and, for deleting the initramfs, openat(2)
//! with `O_NOFOLLOW`, fstatat(2) and unlinkat(2) on directory descriptors, as u-root's
//! `pkg/mount/switch_root_linux.go` does. This is the only file of linuxrc allowed to hold
//! `unsafe`: the loop(4) ioctls (`LOOP_CTL_GET_FREE`, `LOOP_CONFIGURE`), which nix does not wrap,
//! and getrandom(2), which nix 0.32 does not wrap either.

use super::{Kind, Removal, Sys};
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::ffi::{CStr, CString};
use std::time::Duration;

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
pub struct LinuxSys {
    /// Attached loop devices, held open (close-on-exec) until the real init is exec'd: with
    /// `LO_FLAGS_AUTOCLEAR` the kernel detaches a loop device when its last opener closes it,
    /// so closing it before the mount holds it would undo the attach.
    held_loops: Vec<std::os::fd::OwnedFd>,
}

// getrandom(2), `include/uapi/linux/random.h`: GRND_INSECURE (Linux 5.6) returns bytes at
// once even before the CRNG is seeded; older kernels refuse it with EINVAL, and then
// GRND_NONBLOCK answers EAGAIN until the pool is ready. Never blocking matters more than the
// quality: the bytes only spread DHCP start times.
const GRND_NONBLOCK: libc::c_uint = 0x0001;
const GRND_INSECURE: libc::c_uint = 0x0004;

// loop(4), `include/uapi/linux/loop.h`.
const LOOP_CTL_GET_FREE: u16 = 0x4C82;
const LOOP_CONFIGURE: u16 = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

nix::ioctl_none_bad!(loop_ctl_get_free, LOOP_CTL_GET_FREE);
nix::ioctl_write_ptr_bad!(loop_configure, LOOP_CONFIGURE, LoopConfig);

fn open_cloexec(path: &str, flags: OFlag) -> Result<std::os::fd::OwnedFd, Errno> {
    nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty())
}

/// Opens a server's file read-only: not through a final symlink (which would resolve in the
/// initramfs, e.g. to /dev/zero or a local disk), without waiting on a FIFO, and only if it is
/// a regular file. Returns the open file and its length.
fn open_regular(path: &str) -> Result<(std::fs::File, u64), Errno> {
    let fd = open_cloexec(
        path,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
    )?;
    let st = fstat(&fd)?;
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Err(Errno::EINVAL);
    }
    Ok((
        std::fs::File::from(fd),
        u64::try_from(st.st_size).unwrap_or(0),
    ))
}

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

    fn finit_module(&mut self, path: &str, params: &str) -> Result<(), Errno> {
        // From the command line, where a NUL cannot be; if one came, EINVAL rather than a panic.
        let params = std::ffi::CString::new(params).map_err(|_| Errno::EINVAL)?;
        let f = std::fs::File::open(path).map_err(io_errno)?;
        nix::kmod::finit_module(&f, &params, nix::kmod::ModuleInitFlags::empty())
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

    fn remove_same_device(&mut self, root: &str) -> Result<Removal, Errno> {
        let dir = open_dir(None, root)?;
        let dev = fstat(&dir)?.st_dev;
        let mut r = Removal::default();
        empty_dir(dir, root.trim_end_matches('/'), dev, &mut r);
        Ok(r)
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

    fn random_u64(&mut self) -> Option<u64> {
        [GRND_INSECURE, GRND_NONBLOCK]
            .into_iter()
            .find_map(|flags| {
                let mut buf = [0u8; 8];
                // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which lives for
                // the whole call; no other memory is touched.
                let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), flags) };
                (usize::try_from(n).ok() == Some(buf.len())).then(|| u64::from_ne_bytes(buf))
            })
    }

    fn read_head(&mut self, path: &str, len: usize) -> Result<(Vec<u8>, u64), Errno> {
        use std::io::Read;
        let (f, size) = open_regular(path)?;
        let mut head = Vec::with_capacity(len);
        f.take(len.try_into().unwrap_or(u64::MAX))
            .read_to_end(&mut head)
            .map_err(io_errno)?;
        Ok((head, size))
    }

    fn copy_file(&mut self, from: &str, to: &str) -> Result<u64, Errno> {
        std::fs::copy(from, to).map_err(io_errno)
    }

    fn loop_attach(&mut self, path: &str) -> Result<String, Errno> {
        use std::os::fd::AsRawFd;
        let (backing, _) = open_regular(path)?;
        let control = open_cloexec("/dev/loop-control", OFlag::O_RDWR)?;
        let mut name = [0u8; LO_NAME_SIZE];
        for (d, s) in name.iter_mut().zip(path.bytes().take(LO_NAME_SIZE - 1)) {
            *d = s;
        }
        let config = LoopConfig {
            fd: u32::try_from(backing.as_raw_fd()).map_err(|_| Errno::EBADF)?,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
                lo_file_name: name,
                lo_crypt_name: [0; LO_NAME_SIZE],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // Another opener may take the free device between the two ioctls (EBUSY): ask again.
        let mut last = Errno::EBUSY;
        for _ in 0..4 {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument; `control` is an open descriptor of
            // /dev/loop-control for the whole call.
            let n = unsafe { loop_ctl_get_free(control.as_raw_fd()) }?;
            let dev = format!("/dev/loop{n}");
            let fd = open_cloexec(&dev, OFlag::O_RDONLY)?;
            // SAFETY: `config` is a fully initialized `struct loop_config` of the kernel's
            // layout (loop.h), borrowed for the call only; `fd` is the loop device, open.
            match unsafe { loop_configure(fd.as_raw_fd(), &config) } {
                Ok(_) => {
                    self.held_loops.push(fd);
                    return Ok(dev);
                }
                Err(Errno::EBUSY) => last = Errno::EBUSY,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

/// Opens a directory without following a final symlink: relative to `parent` if given.
fn open_dir<P: ?Sized + nix::NixPath>(parent: Option<&Dir>, path: &P) -> Result<Dir, Errno> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match parent {
        Some(p) => Dir::openat(p, path, flags, Mode::empty()),
        None => Dir::open(path, flags, Mode::empty()),
    }
}

/// Removes everything in `dir` (shown as `path`) that lives on device `dev`, children before
/// their directory. Returns whether anything was left in it (a mount point, or a failure), in
/// which case the caller does not try to remove the directory itself.
fn empty_dir(mut dir: Dir, path: &str, dev: u64, r: &mut Removal) -> bool {
    // Names first, removal after: unlinking while readdir(3) walks a directory may skip entries.
    let mut names: Vec<CString> = Vec::new();
    for entry in dir.iter() {
        match entry {
            Ok(e) if matches!(e.file_name().to_bytes(), b"." | b"..") => {}
            Ok(e) => names.push(e.file_name().to_owned()),
            Err(e) => {
                r.fail(path.to_string(), e);
                return true;
            }
        }
    }
    let mut left = false;
    for name in names {
        let shown = format!("{path}/{}", name.to_string_lossy());
        match remove_entry(&dir, &name, &shown, dev, r) {
            Ok(true) => r.removed += 1,
            Ok(false) => left = true,
            Err(e) => {
                r.fail(shown, e);
                left = true;
            }
        }
    }
    left
}

/// Removes one entry of `dir`. Ok(false): it is another device's mount point, or a directory
/// that still holds one or something that could not be removed.
fn remove_entry(
    dir: &Dir,
    name: &CStr,
    shown: &str,
    dev: u64,
    r: &mut Removal,
) -> Result<bool, Errno> {
    let st = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    if st.st_dev != dev {
        // A mount point: what is mounted there is not the initramfs.
        r.kept += 1;
        return Ok(false);
    }
    let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    if is_dir {
        let sub = open_dir(Some(dir), name)?;
        if empty_dir(sub, shown, dev, r) {
            return Ok(false);
        }
    }
    let how = if is_dir {
        UnlinkatFlags::RemoveDir
    } else {
        UnlinkatFlags::NoRemoveDir
    };
    unlinkat(dir, name, how)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};

    /// A fresh directory under the system temp dir, removed again on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!(
                "linuxrc-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn removal_empties_the_tree_bottom_up_and_never_follows_symlinks() {
        let outside = Scratch::new("outside");
        std::fs::write(outside.0.join("keep"), b"not the initramfs").unwrap();
        std::fs::create_dir(outside.0.join("dir")).unwrap();
        std::fs::write(outside.0.join("dir/keep"), b"").unwrap();

        let root = Scratch::new("root");
        let r = &root.0;
        // Nested directories: each can only go once its children have gone.
        std::fs::create_dir_all(r.join("lib/modules/6.1/kernel/fs")).unwrap();
        std::fs::write(r.join("lib/modules/6.1/kernel/fs/nfs.ko"), b"\x7fELF").unwrap();
        std::fs::write(r.join("lib/modules/6.1/modules.dep"), b"").unwrap();
        std::fs::create_dir(r.join("empty")).unwrap();
        std::fs::write(r.join("init"), b"#!/bin/sh\n").unwrap();
        // Symlinks to a file and to a directory outside the tree, one of them nested: the links
        // go, what they point at stays.
        symlink(outside.0.join("keep"), r.join("file-link")).unwrap();
        symlink(&outside.0, r.join("lib/dir-link")).unwrap();
        symlink("../../..", r.join("lib/modules/up")).unwrap();
        symlink("missing", r.join("dangling")).unwrap();

        let got = LinuxSys::default()
            .remove_same_device(&format!("{}/", r.display()))
            .unwrap();
        assert_eq!(
            got,
            Removal {
                removed: 13,
                ..Default::default()
            }
        );
        assert!(entries(r).is_empty(), "{:?}", entries(r));
        assert!(r.is_dir(), "the root itself stays");
        assert_eq!(entries(&outside.0), ["dir", "keep"]);
        assert_eq!(entries(&outside.0.join("dir")), ["keep"]);
    }

    #[test]
    fn removal_refuses_a_root_that_is_a_symlink_or_missing() {
        let outside = Scratch::new("target");
        std::fs::write(outside.0.join("keep"), b"").unwrap();
        let links = Scratch::new("links");
        let link = links.0.join("root");
        symlink(&outside.0, &link).unwrap();
        let e = LinuxSys::default()
            .remove_same_device(link.to_str().unwrap())
            .unwrap_err();
        // O_NOFOLLOW alone says ELOOP; with O_DIRECTORY, Linux says ENOTDIR first.
        assert!(matches!(e, Errno::ELOOP | Errno::ENOTDIR), "{e}");
        assert_eq!(entries(&outside.0), ["keep"]);
        let e = LinuxSys::default()
            .remove_same_device(links.0.join("nothing").to_str().unwrap())
            .unwrap_err();
        assert_eq!(e, Errno::ENOENT);
    }

    #[test]
    fn a_servers_file_is_read_only_if_it_is_a_regular_file() {
        let dir = Scratch::new("regular");
        let d = |n: &str| dir.0.join(n).to_str().unwrap().to_string();
        std::fs::write(d("pointer"), b"system-0123456789abcdef.sqfs\n").unwrap();
        nix::unistd::mkfifo(Path::new(&d("fifo")), Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
        symlink("/dev/zero", d("to-zero")).unwrap();
        symlink(d("pointer"), d("to-pointer")).unwrap();
        let mut sys = LinuxSys::default();
        let (head, size) = sys.read_head(&d("pointer"), 8).unwrap();
        assert_eq!((head.as_slice(), size), (&b"system-0"[..], 29));
        // A FIFO would block open(2) and read(2) forever; /dev/zero would never end.
        let t = std::time::Instant::now();
        assert_eq!(sys.read_head(&d("fifo"), 8).unwrap_err(), Errno::EINVAL);
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(sys.read_head(&d("to-zero"), 8).unwrap_err(), Errno::ELOOP);
        assert_eq!(
            sys.read_head(&d("to-pointer"), 8).unwrap_err(),
            Errno::ELOOP
        );
        assert_eq!(sys.loop_attach(&d("fifo")).unwrap_err(), Errno::EINVAL);
        assert_eq!(sys.loop_attach(&d("to-pointer")).unwrap_err(), Errno::ELOOP);
    }
}
