//! The executor: runs planned [`Step`]s against a [`Sys`], logging each step's command line
//! before it runs. The root switch follows klibc's `usr/kinit/run-init/runinitlib.c`: check first,
//! then delete the initramfs without crossing mounts, move the new root onto `/`, chroot, exec.
//! Both root switches sync(2) before the first mount moves, as systemd's `switch-root.c` does.

use crate::sys::{is_initramfs, Kind, Removal, Sys};
use nix::errno::Errno;
use std::time::Duration;
use thiserror::Error;
use unionroot_core::image::{parse_pointer, ImageFs, ImageName, HEAD_LEN, POINTER_MAX};
use unionroot_core::nfs::{ClientId, NfsMountArgs, CLIENT_ID_PATH};
use unionroot_core::plan::{ms, Check, Step, CARRIED, IMAGE_RAM_DIR, OLD_ROOT, UNMAPPED_IDS};
use unionroot_core::validate::controls_escaped;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ExecError {
    #[error("`{step}` failed: {errno} ({desc})", desc = errno.desc())]
    Step {
        step: String,
        errno: Errno,
        hint: String,
    },
    #[error("`{step}` still failing after {secs} s: {errno} ({desc})", secs = waited.as_secs(), desc = errno.desc())]
    GaveUp {
        step: String,
        errno: Errno,
        waited: Duration,
        hint: String,
    },
    #[error("switch_root refused: {what}")]
    SwitchRoot { what: String, hint: String },
    #[error("`{step}` failed: {what}")]
    Check {
        step: String,
        what: String,
        hint: String,
    },
}

impl ExecError {
    pub fn hint(&self) -> &str {
        match self {
            ExecError::Step { hint, .. }
            | ExecError::GaveUp { hint, .. }
            | ExecError::SwitchRoot { hint, .. }
            | ExecError::Check { hint, .. } => hint,
        }
    }
}

/// Errors worth retrying while a server boots or a link settles.
fn transient(e: Errno) -> bool {
    matches!(
        e,
        Errno::ECONNREFUSED
            | Errno::ETIMEDOUT
            | Errno::EHOSTUNREACH
            | Errno::ENETUNREACH
            | Errno::EHOSTDOWN
            | Errno::ECONNRESET
            | Errno::EAGAIN
            | Errno::EIO
    )
}

fn hint_for(step: &Step, e: Errno) -> String {
    match (step, e) {
        (Step::NfsMount { candidates, .. }, _) => {
            let servers: Vec<String> = candidates.iter().map(|c| c.server.to_string()).collect();
            let server = servers.join(" or ");
            match e {
                Errno::EACCES | Errno::ENOENT | Errno::EPERM => format!(
                    "the server {server} refused the path: check its exports (NFSv3 mounts the export path, NFSv4 the pseudo path) and nfsroot="
                ),
                Errno::ENODEV => "the kernel has no NFS client for this version: is nfsv3/nfsv4 in the initramfs?".into(),
                e if transient(e) => format!(
                    "is the NFS server running on {server} and reachable (rpcbind too for NFSv3)? raise unionroot.mount_timeout if it boots slowly"
                ),
                _ => format!("check the NFS options and the server {server}"),
            }
        }
        (Step::Mount { fstype, .. }, Errno::ENODEV) => {
            format!("the kernel does not know filesystem type {fstype}: is its module in the initramfs?")
        }
        (Step::Mount { fstype, .. }, Errno::ENOSPC | Errno::ENOMEM) if fstype == "tmpfs" => {
            "not enough memory for the tmpfs: lower unionroot.size or give the node more RAM".into()
        }
        (Step::Mount { fstype, .. }, _) if fstype == "overlay" => {
            "overlayfs refused the layers: see the kernel's overlayfs lines just above".into()
        }
        // A parameter the module cannot take fails its load: EINVAL from most setters, ERANGE
        // from a number too large, ENOSPC from a string over 1024 bytes (`kernel/params.c`).
        (Step::LoadModule { name, params, .. }, Errno::EINVAL | Errno::ERANGE | Errno::ENOSPC)
            if !params.is_empty() =>
        {
            format!(
                "the module may refuse its parameters \"{}\", from the kernel command line's {name}.<param>= words: see the kernel's lines just above and fix or drop those words; else the module does not match the running kernel (rebuild the initramfs for this kernel release)",
                controls_escaped(params)
            )
        }
        (Step::LoadModule { .. }, Errno::ENOEXEC | Errno::EINVAL) => {
            "the module does not match the running kernel: rebuild the initramfs for this kernel release".into()
        }
        (Step::LoadModule { .. }, Errno::ENOENT) => "the module file is missing from the initramfs".into(),
        _ => String::new(),
    }
}

/// Runs the steps in order; stops at the first failure.
pub fn run(sys: &mut dyn Sys, steps: &[Step]) -> Result<(), ExecError> {
    steps.iter().try_for_each(|s| run_step(sys, s))
}

pub fn run_step(sys: &mut dyn Sys, step: &Step) -> Result<(), ExecError> {
    log::info!("{step}");
    let fail = |errno: Errno| ExecError::Step {
        step: step.to_string(),
        errno,
        hint: hint_for(step, errno),
    };
    match step {
        Step::Mkdir { path, mode } => sys.mkdir(path, *mode).map_err(fail),
        Step::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => sys
            .mount(source, target, fstype, *flags, data)
            .map_err(fail),
        Step::NfsMount {
            candidates,
            target,
            flags,
            retry,
            probe,
        } => nfs_mount(sys, step, candidates, target, *flags, *retry, *probe),
        Step::Check(c) => check(sys, step, c),
        Step::MoveMount { from, to } => sys.mount(from, to, "", ms::MOVE, "").map_err(fail),
        Step::NfsClientId(id) => {
            nfs_client_id(sys, id);
            Ok(())
        }
        Step::LoadModule { path, params, .. } => match sys.finit_module(path, params) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(fail(e)),
        },
        Step::ImageMount {
            images,
            name,
            target,
            origin,
            ram,
        } => image_mount(sys, step, images, name, target, origin, *ram),
        Step::SwitchRoot {
            new_root,
            init,
            args,
        } => switch_root(sys, new_root, init, args),
        Step::PivotRoot {
            new_root,
            init,
            args,
        } => pivot_root(sys, new_root, init, args),
    }
}

/// Sets the NFS client identifier (see [`ClientId`]). Never fatal: without it the boot works,
/// and only NFSv4 state on a server shared with other nodes is at risk, which the warning says.
fn nfs_client_id(sys: &mut dyn Sys, id: &ClientId) {
    let source = if id.from_cmdline {
        "nfs.nfs4_unique_id= on the command line"
    } else {
        "the boot NIC's MAC"
    };
    match sys.write_file(CLIENT_ID_PATH, format!("{id}\n").as_bytes()) {
        Ok(()) => log::info!(
            "nfs client identifier {id} (from {source}): NFSv4 servers tell this node from the others by it"
        ),
        Err(e) => {
            let why = if e == Errno::ENOENT {
                "no such file: the NFS client is older than Linux 5.3, or the nfs module is not loaded".to_string()
            } else {
                e.to_string()
            };
            log::warn!(
                "cannot write {CLIENT_ID_PATH} ({why}): NFSv4 nodes that share a server will present the same client owner and expire each other's state"
            )
        }
    }
}

/// Failover and retry for one NFS piece: each round tries every server in order, first with a
/// TCP probe bounded by `probe` (a blackholed server would otherwise hold mount(2) for
/// minutes, timeo=600 being the NFS default), then the mount itself. Transient failures move on
/// to the next server; a reachable server refusing the path ends it at once.
fn nfs_mount(
    sys: &mut dyn Sys,
    step: &Step,
    candidates: &[NfsMountArgs],
    target: &str,
    flags: u64,
    retry: Duration,
    probe: Duration,
) -> Result<(), ExecError> {
    let started = sys.now();
    let mut delay = Duration::from_millis(250);
    let mut round = 0u32;
    let mut last = Errno::EHOSTUNREACH;
    loop {
        round += 1;
        // A reachable server that refuses (wrong path, permissions) will not change its mind, but
        // the next server in the list may have the export: remember the refusal and go on.
        let mut refused = None;
        for (i, c) in candidates.iter().enumerate() {
            let result = sys
                .tcp_probe(c.server, c.port, probe)
                .and_then(|()| sys.mount(&c.source, target, c.fstype, flags, &c.data));
            match result {
                Ok(()) => {
                    if candidates.len() > 1 || round > 1 {
                        let n = candidates.len();
                        log::info!(
                            "{target}: served by {} (server {} of {n}, round {round})",
                            c.server,
                            i + 1
                        );
                    }
                    return Ok(());
                }
                Err(e) if transient(e) => {
                    if round == 1 || round.is_power_of_two() {
                        log::warn!("{}: {e} ({})", c.source, e.desc());
                    }
                    last = e;
                }
                Err(e) => {
                    log::warn!("{}: {e} ({})", c.source, e.desc());
                    refused.get_or_insert(ExecError::Step {
                        step: format!("mount {} {target}", c.source),
                        errno: e,
                        hint: hint_for(step, e),
                    });
                }
            }
        }
        if let Some(e) = refused {
            return Err(e);
        }
        let waited = sys.now().saturating_sub(started);
        if waited >= retry {
            return Err(ExecError::GaveUp {
                step: step.to_string(),
                errno: last,
                waited,
                hint: hint_for(step, last),
            });
        }
        if round == 1 {
            log::warn!(
                "no NFS server for {target} yet; retrying for up to {} s",
                retry.saturating_sub(waited).as_secs()
            );
        }
        sys.sleep(delay.min(retry.saturating_sub(waited)));
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// An image root's generation, pinned once and mounted: each action is logged as its own
/// command line before it runs, and the generation as soon as the pointer names it. Nothing here
/// retries: the NFS mount before it waited for the server, and a missing or corrupt image does
/// not heal by asking again. Every failure names the image, where it came from and, once
/// known, the generation.
/// Readahead of an image's loop device, in KiB (the kernel's default is 128). With the kernel's
/// defaults every READ of an image was at most 128 KiB; one Debian boot from its EROFS image
/// (`make bench`'s image part, single boots) made 1,102 READs for 33 MiB. With 1 MiB here:
/// 888 READs, 37 MiB; with [`IMAGE_NFS_READ_AHEAD_KB`] too: 567-660 READs, 70-75 MiB, the time
/// to "running" unchanged within noise. The rest are small reads of scattered metadata, which
/// no readahead helps.
const IMAGE_READ_AHEAD_KB: u32 = 1024;
/// Readahead of the images directory's NFS mount, in KiB (the kernel's default is 128): a
/// sequential run of the image file is then read in rsize-long READs.
const IMAGE_NFS_READ_AHEAD_KB: u32 = 4096;

fn image_mount(
    sys: &mut dyn Sys,
    step: &Step,
    images: &str,
    name: &ImageName,
    target: &str,
    origin: &str,
    ram: bool,
) -> Result<(), ExecError> {
    let refuse = |what: String, hint: &str| ExecError::Check {
        step: step.to_string(),
        what,
        hint: hint.into(),
    };
    let pointer = format!("{images}/{}", name.pointer());
    log::info!("cat {pointer}");
    let (bytes, size) = sys.read_head(&pointer, POINTER_MAX).map_err(|e| {
        refuse(
            format!(
                "image {name} from {origin}: no pointer {}: {e}",
                name.pointer()
            ),
            "publish the image (the host tool writes <name>.current as a regular file), or fix unionroot.image=",
        )
    })?;
    if u64::try_from(bytes.len()).map_or(true, |n| n < size) {
        return Err(refuse(
            format!(
                "image {name} from {origin}: the pointer {} has {size} bytes, more than a generation's name",
                name.pointer()
            ),
            "the pointer holds one line, the file name <name>-<hex>.sqfs or .erofs; republish it with the host tool",
        ));
    }
    let generation = parse_pointer(name, &bytes).map_err(|e| {
        refuse(
            format!(
                "image {name} from {origin}: the pointer {} is refused: {e}",
                name.pointer()
            ),
            "the pointer holds one line, the file name <name>-<hex>.sqfs or .erofs; republish it with the host tool",
        )
    })?;
    log::info!(
        "image {name} from {origin}: pinned generation {} ({})",
        generation.hash,
        generation.file
    );
    let file = format!("{images}/{}", generation.file);
    let at = |what: String| {
        format!(
            "image {name} generation {} ({origin}/{}): {what}",
            generation.hash, generation.file
        )
    };
    let corrupt =
        "republish the image; a published generation is never rewritten, so a bad one stays bad";
    let (head, size) = sys.read_head(&file, HEAD_LEN).map_err(|e| {
        refuse(
            at(format!("cannot read it: {e}")),
            "the pointer names a generation that is not there: was it deleted (gc) or never copied? publish it again",
        )
    })?;
    let fs = ImageFs::detect(&head).ok_or_else(|| {
        refuse(
            at(format!(
                "no squashfs or EROFS superblock in its first {} bytes (of {size}): it is not an image, or corrupt",
                head.len()
            )),
            corrupt,
        )
    })?;
    if fs != generation.fs {
        return Err(refuse(
            at(format!(
                "its superblock is {} but its name says .{}",
                fs.fstype(),
                generation.fs.ext()
            )),
            corrupt,
        ));
    }
    if let Some(want) = fs.recorded_len(&head).filter(|w| size < *w) {
        return Err(refuse(
            at(format!(
                "truncated: the file has {size} bytes, its {} superblock records {want}",
                fs.fstype()
            )),
            corrupt,
        ));
    }
    let supported = Step::Check(Check::FsSupported(fs.fstype().into()));
    log::info!("{supported}");
    let list = sys.read_file("/proc/filesystems").unwrap_or_default();
    if !list
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fs.fstype()))
    {
        return Err(refuse(
            at(format!(
                "the kernel does not support {} (not in /proc/filesystems)",
                fs.fstype()
            )),
            "put its module (and loop) in the initramfs, or build the kernel with them",
        ));
    }
    if !ram {
        // The images directory's NFS readahead: its backing-device entry is named by the
        // mount's anonymous device number, major:minor (glibc's gnu_dev_major/gnu_dev_minor).
        match sys.device_of(images) {
            Ok(dev) => {
                let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
                let minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
                let ra = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
                log::info!("echo {IMAGE_NFS_READ_AHEAD_KB} > {ra}");
                if let Err(e) = sys.write_file(&ra, IMAGE_NFS_READ_AHEAD_KB.to_string().as_bytes())
                {
                    log::warn!("{ra}: {e}; the image is read with the kernel's default readahead");
                }
            }
            Err(e) => log::warn!("stat {images}: {e}"),
        }
    }
    let file = if ram {
        copy_to_ram(sys, &file, &generation.file, size)
            .map_err(|(what, hint)| refuse(at(what), hint))?
    } else {
        file
    };
    log::info!("losetup --read-only --find --show {file}");
    let dev = sys.loop_attach(&file).map_err(|e| {
        refuse(
            at(format!("losetup failed: {e}")),
            "is the loop module in the initramfs (/dev/loop-control)?",
        )
    })?;
    if let Some(loop_name) = dev.strip_prefix("/dev/") {
        let ra = format!("/sys/block/{loop_name}/queue/read_ahead_kb");
        log::info!("echo {IMAGE_READ_AHEAD_KB} > {ra}");
        if let Err(e) = sys.write_file(&ra, IMAGE_READ_AHEAD_KB.to_string().as_bytes()) {
            log::warn!("{ra}: {e}; the image is read with the kernel's default readahead");
        }
    }
    let mount = format!("mount -t {} -o ro {dev} {target}", fs.fstype());
    log::info!("{mount}");
    sys.mount(&dev, target, fs.fstype(), ms::RDONLY, "")
        .map_err(|e| {
            refuse(
                at(format!(
                    "`{mount}` failed: {e}; the kernel's {} lines just above say why",
                    fs.fstype()
                )),
                corrupt,
            )
        })?;
    if ram {
        // The root no longer reads the server: let go of the images directory.
        log::info!("umount -l {images}");
        if let Err(e) = sys.umount_detach(images) {
            log::warn!("umount -l {images}: {e}; the images directory stays mounted");
        }
    }
    Ok(())
}

/// `unionroot.image_ram`: the generation copied into [`IMAGE_RAM_DIR`] (on the tmpfs `/run`),
/// its size and the time it took logged. Returns the copy's path, or why it failed and a hint.
fn copy_to_ram(
    sys: &mut dyn Sys,
    file: &str,
    name: &str,
    size: u64,
) -> Result<String, (String, &'static str)> {
    let copy = format!("{IMAGE_RAM_DIR}/{name}");
    let room = "give the node more RAM, or boot without unionroot.image_ram";
    let free = sys
        .free_bytes("/run")
        .map_err(|e| (format!("statfs /run: {e}"), ""))?;
    if free < size {
        return Err((
            format!("{size} bytes do not fit in RAM: /run has {free} bytes free"),
            room,
        ));
    }
    sys.mkdir(IMAGE_RAM_DIR, 0o700)
        .map_err(|e| (format!("mkdir {IMAGE_RAM_DIR}: {e}"), ""))?;
    log::info!("cp {file} {copy}");
    let started = sys.now();
    let copied = sys
        .copy_file(file, &copy)
        .map_err(|e| (format!("copying it into RAM failed: {e}"), room))?;
    let took = sys.now().saturating_sub(started);
    if copied != size {
        return Err((
            format!("copied {copied} bytes into RAM, but the file had {size}: did it change on the server?"),
            "a published generation must never be rewritten",
        ));
    }
    log::info!(
        "image in RAM: {copied} bytes ({} MiB) in {}.{:03} s",
        copied >> 20,
        took.as_secs(),
        took.subsec_millis()
    );
    Ok(copy)
}

fn check(sys: &mut dyn Sys, step: &Step, c: &Check) -> Result<(), ExecError> {
    let refuse = |what: String, hint: &str| ExecError::Check {
        step: step.to_string(),
        what,
        hint: hint.into(),
    };
    match c {
        Check::FsSupported(fs) => {
            let list = sys.read_file("/proc/filesystems").unwrap_or_default();
            if !list
                .lines()
                .any(|l| l.split_whitespace().last() == Some(fs.as_str()))
            {
                return Err(refuse(
                    format!("the kernel does not support {fs} (not in /proc/filesystems)"),
                    "put its module in the initramfs, or build the kernel with it",
                ));
            }
        }
        Check::IsDir(p) => {
            if sys.kind(p) != Kind::Dir {
                return Err(refuse(
                    format!("{p} is not a directory"),
                    "the export must be a directory tree",
                ));
            }
        }
        Check::MappedOwner(p) => {
            let (uid, gid) = sys
                .owner(p)
                .map_err(|e| refuse(format!("stat {p}: {e}"), ""))?;
            if UNMAPPED_IDS.contains(&uid) || UNMAPPED_IDS.contains(&gid) {
                return Err(refuse(
                    format!(
                        "{p} is owned by {uid}:{gid}, the ids of an NFSv4 owner this node cannot map: \
                         the server sends owner names, and an initramfs has no idmapper"
                    ),
                    "make the server send numeric owners: nfs-ganesha NFSV4 { Only_Numeric_Owners = true; }, \
                     knfsd nfsd.nfs4_disable_idmapping=1 (its default); or mount with unionroot.nfsvers=3",
                ));
            }
        }
        Check::NoSymlinks { root, path } => {
            let Some(rel) = path.strip_prefix(root.as_str()) else {
                return Err(refuse(format!("{path} is not below {root}"), ""));
            };
            let mut cur = root.trim_end_matches('/').to_string();
            for c in rel.split('/').filter(|c| !c.is_empty()) {
                cur.push('/');
                cur.push_str(c);
                match sys.kind(&cur) {
                    Kind::Symlink(t) => {
                        return Err(refuse(
                            format!("{cur} is a symlink (to {t}); refusing to follow it from {root}"),
                            "replace the symlink in the exported tree with a directory, or choose another path",
                        ))
                    }
                    // mkdir creates the rest as directories.
                    Kind::Missing => break,
                    Kind::Dir | Kind::File { .. } | Kind::Other => {}
                }
            }
        }
        Check::HasRoom { path, min_bytes } => {
            let free = sys
                .free_bytes(path)
                .map_err(|e| refuse(format!("statfs {path}: {e}"), ""))?;
            if free < *min_bytes {
                return Err(refuse(
                    format!("{path} has {free} bytes free, less than {min_bytes}"),
                    "raise unionroot.size= or give the node more memory",
                ));
            }
        }
    }
    Ok(())
}

fn join(root: &str, path: &str) -> String {
    format!(
        "{}/{}",
        root.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// Follows symlinks of the final component of `path` inside `root` (an absolute link target is
/// taken relative to `root`, as it will be after the chroot). Returns what the path ends at.
fn resolve_in_root(sys: &mut dyn Sys, root: &str, path: &str) -> (String, Kind) {
    let mut cur = path.to_string();
    for _ in 0..40 {
        match sys.kind(&join(root, &cur)) {
            Kind::Symlink(t) if t.starts_with('/') => cur = t,
            Kind::Symlink(t) => {
                let parent = cur.rsplit_once('/').map_or("", |(p, _)| p);
                cur = format!("{parent}/{t}");
            }
            k => return (cur, k),
        }
    }
    (cur, Kind::Other)
}

fn refuse(what: String, hint: &str) -> ExecError {
    ExecError::SwitchRoot {
        what,
        hint: hint.into(),
    }
}

fn step_err(step: String, errno: Errno) -> ExecError {
    ExecError::Step {
        step,
        errno,
        hint: String::new(),
    }
}

/// The real init must exist and be executable inside the new root.
fn check_init(sys: &mut dyn Sys, new_root: &str, init: &str) -> Result<(), ExecError> {
    match resolve_in_root(sys, new_root, init) {
        (_, Kind::File { executable: true }) => Ok(()),
        (at, Kind::File { executable: false }) => Err(refuse(
            format!("init {init} ({at}) is not executable in the new root"),
            "chmod +x it in the exported system tree",
        )),
        (at, _) => Err(refuse(
            format!("init {init} does not exist in the new root (looked for {at})"),
            "set unionroot.init= to the real init of the exported system tree",
        )),
    }
}

/// Moves the API filesystems into the new root (a missing mount point is created there).
fn move_carried(sys: &mut dyn Sys, new_root: &str) -> Result<(), ExecError> {
    for d in CARRIED {
        let step = Step::MoveMount {
            from: d.into(),
            to: join(new_root, d),
        };
        log::info!("{step}");
        let _ = sys.mkdir(&join(new_root, d), 0o755);
        sys.mount(d, &join(new_root, d), "", ms::MOVE, "")
            .map_err(|e| step_err(step.to_string(), e))?;
    }
    Ok(())
}

fn switch_root(
    sys: &mut dyn Sys,
    new_root: &str,
    init: &str,
    args: &[String],
) -> Result<(), ExecError> {
    let errno_of = |what: &str, e: Errno| refuse(format!("{what}: {e}"), "");
    let root_dev = sys.device_of("/").map_err(|e| errno_of("stat /", e))?;
    let new_dev = sys
        .device_of(new_root)
        .map_err(|e| errno_of(&format!("stat {new_root}"), e))?;
    if root_dev == new_dev {
        return Err(refuse(
            format!("{new_root} is on the same device as / (nothing is mounted there)"),
            "the overlay mount did not take effect",
        ));
    }
    check_init(sys, new_root, init)?;
    let magic = sys.fs_magic("/").map_err(|e| errno_of("statfs /", e))?;
    if !is_initramfs(magic) {
        return Err(refuse(
            format!("/ is not an initramfs (filesystem magic {magic:#x}); refusing to delete it"),
            "from a real root, linuxrc must pivot_root instead",
        ));
    }
    sys.sync();
    move_carried(sys, new_root)?;
    log::info!("rm -rf (initramfs contents, not crossing mounts)");
    // Failing to free the initramfs wastes memory but does not stop the boot.
    match sys.remove_same_device("/") {
        Ok(r) => {
            for (level, line) in removal_report(&r) {
                log::log!(level, "{line}");
            }
        }
        Err(e) => log::warn!("could not open / to delete the initramfs: {e}"),
    }
    sys.chdir(new_root)
        .map_err(|e| step_err(format!("cd {new_root}"), e))?;
    sys.mount(".", "/", "", ms::MOVE, "")
        .map_err(|e| step_err(format!("mount --move {new_root} /"), e))?;
    sys.chroot(".")
        .map_err(|e| step_err("chroot .".into(), e))?;
    sys.chdir("/").map_err(|e| step_err("cd /".into(), e))?;
    let e = sys.exec(init, args);
    Err(step_err(format!("exec {init}"), e))
}

/// What the console says about freeing the initramfs: what was removed, and how many entries
/// could not be, with the first few reasons. Memory the initramfs keeps stays lost to the node
/// until it reboots, so it is worth a warning, not a failed boot.
fn removal_report(r: &Removal) -> Vec<(log::Level, String)> {
    let mut lines = vec![(
        log::Level::Info,
        format!(
            "initramfs: removed {} entries; {} mount point(s) left in place",
            r.removed, r.kept
        ),
    )];
    if r.failed > 0 {
        lines.push((
            log::Level::Warn,
            format!(
                "initramfs: {} entries could not be removed; their memory stays in use",
                r.failed
            ),
        ));
        lines.extend(r.failures.iter().map(|(path, e)| {
            (
                log::Level::Warn,
                format!("initramfs: {path}: {e} ({})", e.desc()),
            )
        }));
    }
    lines
}

/// From a real root (the seed's `init=/linuxrc` on an NFS root), following systemd's
/// `switch-root.c`: check init, make every mount private (pivot_root(2) refuses shared
/// propagation), carry /dev /proc /sys /run across, pivot with the old root put under the
/// carried /run, detach it, exec init. Nothing is deleted: the old root is a shared export.
fn pivot_root(
    sys: &mut dyn Sys,
    new_root: &str,
    init: &str,
    args: &[String],
) -> Result<(), ExecError> {
    check_init(sys, new_root, init)?;
    sys.sync();
    sys.mount("none", "/", "", ms::REC | ms::PRIVATE, "")
        .map_err(|e| step_err("mount --make-rprivate /".into(), e))?;
    move_carried(sys, new_root)?;
    let put_old = join(new_root, OLD_ROOT);
    let _ = sys.mkdir(&put_old, 0o700);
    sys.chdir(new_root)
        .map_err(|e| step_err(format!("cd {new_root}"), e))?;
    sys.pivot_root(".", &put_old).map_err(|e| {
        refuse(
            format!("pivot_root {new_root} {put_old}: {e}"),
            "is the new root a mount point?",
        )
    })?;
    sys.chdir("/").map_err(|e| step_err("cd /".into(), e))?;
    if let Err(e) = sys.umount_detach(OLD_ROOT) {
        log::warn!("cannot detach the old root at {OLD_ROOT}: {e}");
    }
    let e = sys.exec(init, args);
    Err(step_err(format!("exec {init}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{Call, Recorder};
    use unionroot_core::nfs::{mount_args, Access, NfsVersion};

    fn mnt(source: &str, target: &str, fstype: &str, flags: u64, data: &str) -> Call {
        Call::Mount {
            source: source.into(),
            target: target.into(),
            fstype: fstype.into(),
            flags,
            data: data.into(),
        }
    }

    fn ready_recorder() -> Recorder {
        let mut r = Recorder {
            root_magic: crate::sys::TMPFS_MAGIC,
            ..Default::default()
        };
        r.devices.insert("/".into(), 1);
        r.devices.insert("/newroot".into(), 2);
        r.kinds.insert(
            "/newroot/sbin/init".into(),
            Kind::Symlink("/bin/busybox".into()),
        );
        r.kinds.insert(
            "/newroot/bin/busybox".into(),
            Kind::File { executable: true },
        );
        r
    }

    fn switch() -> Step {
        Step::SwitchRoot {
            new_root: "/newroot".into(),
            init: "/sbin/init".into(),
            args: vec!["single".into()],
        }
    }

    #[test]
    fn switch_root_exact_sequence() {
        let mut r = ready_recorder();
        let err = run_step(&mut r, &switch()).unwrap_err();
        // The recorder's exec returns, which the executor reports as an exec failure.
        assert!(matches!(err, ExecError::Step { ref step, .. } if step == "exec /sbin/init"));
        let mut expect = vec![Call::Sync];
        for d in CARRIED {
            expect.push(Call::Mkdir(format!("/newroot{d}")));
            expect.push(mnt(d, &format!("/newroot{d}"), "", ms::MOVE, ""));
        }
        expect.extend([
            Call::RemoveSameDevice("/".into()),
            Call::Chdir("/newroot".into()),
            mnt(".", "/", "", ms::MOVE, ""),
            Call::Chroot(".".into()),
            Call::Chdir("/".into()),
            Call::Exec("/sbin/init".into(), vec!["single".into()]),
        ]);
        assert_eq!(r.calls, expect);
    }

    #[test]
    fn removal_failures_are_counted_on_the_console() {
        let clean = Removal {
            removed: 40,
            kept: 1,
            ..Default::default()
        };
        assert_eq!(
            removal_report(&clean),
            [(
                log::Level::Info,
                "initramfs: removed 40 entries; 1 mount point(s) left in place".to_string()
            )]
        );
        let mut partial = Removal {
            removed: 38,
            ..Default::default()
        };
        for i in 0..5 {
            partial.fail(format!("/lib/{i}"), Errno::EBUSY);
        }
        let lines = removal_report(&partial);
        assert_eq!(
            lines[1],
            (
                log::Level::Warn,
                "initramfs: 5 entries could not be removed; their memory stays in use".to_string()
            )
        );
        assert_eq!(lines.len(), 2 + Removal::SHOWN, "{lines:?}");
        assert!(
            lines[2].1.starts_with("initramfs: /lib/0: EBUSY"),
            "{lines:?}"
        );
        // The switch goes on whatever the removal reports.
        let mut r = ready_recorder();
        r.removal = partial;
        let e = run_step(&mut r, &switch()).unwrap_err();
        assert!(e.to_string().contains("exec /sbin/init"), "{e}");
    }

    #[test]
    fn switch_root_checks_refuse_before_touching_anything() {
        let mut same_dev = ready_recorder();
        same_dev.devices.insert("/newroot".into(), 1);
        let mut no_init = ready_recorder();
        no_init.kinds.remove("/newroot/bin/busybox");
        let mut not_exec = ready_recorder();
        not_exec.kinds.insert(
            "/newroot/bin/busybox".into(),
            Kind::File { executable: false },
        );
        let mut not_ramfs = ready_recorder();
        not_ramfs.root_magic = 0x6969; // NFS
        for (mut r, needle) in [
            (same_dev, "same device"),
            (no_init, "does not exist"),
            (not_exec, "not executable"),
            (not_ramfs, "not an initramfs"),
        ] {
            let e = run_step(&mut r, &switch()).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
            assert!(r.calls.is_empty(), "{needle}: {:?}", r.calls);
        }
    }

    #[test]
    fn switch_root_failing_at_each_call_stops_there() {
        let total = {
            let mut r = ready_recorder();
            let _ = run_step(&mut r, &switch());
            r.calls.len()
        };
        for n in 0..total {
            let mut r = ready_recorder();
            r.fail_at = Some((n, Errno::EPERM));
            let e = run_step(&mut r, &switch()).unwrap_err();
            let tolerated = matches!(
                r.calls[n],
                Call::Mkdir(_) | Call::RemoveSameDevice(_) | Call::Sync
            );
            if tolerated {
                // mkdir of an existing dir, or a cleanup that cannot start, does not stop the
                // switch; sync(2) cannot fail.
                assert_eq!(r.calls.len(), total, "call {n}");
            } else {
                assert_eq!(
                    r.calls.len(),
                    n + 1,
                    "nothing runs after failed call {n}: {e}"
                );
                assert!(
                    matches!(
                        e,
                        ExecError::Step {
                            errno: Errno::EPERM,
                            ..
                        }
                    ),
                    "call {n}: {e}"
                );
            }
        }
    }

    fn nfs_step(servers: &[&str]) -> Step {
        let candidates = servers
            .iter()
            .map(|s| {
                mount_args(
                    s.parse().unwrap(),
                    "/srv/system",
                    NfsVersion::V3,
                    None,
                    &[],
                    Access::ReadOnly,
                )
            })
            .collect();
        Step::NfsMount {
            candidates,
            target: "/run/unionroot/lower".into(),
            flags: ms::RDONLY,
            retry: Duration::from_secs(5),
            probe: Duration::from_secs(3),
        }
    }

    fn mounts(r: &Recorder) -> Vec<String> {
        r.calls
            .iter()
            .filter_map(|c| {
                if let Call::Mount { source, .. } = c {
                    Some(source.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn nfs_mount_retries_transient_errors_until_the_bound() {
        let step = nfs_step(&["10.0.2.2"]);
        // Comes up after 3 refusals.
        let mut r = Recorder {
            fail_mount: Some(("/run/unionroot/lower".into(), Errno::ECONNREFUSED, 3)),
            ..Default::default()
        };
        run_step(&mut r, &step).unwrap();
        assert_eq!(mounts(&r).len(), 4);
        assert!(
            matches!(r.calls[0], Call::Probe(_, 2049)),
            "probe before mount: {:?}",
            r.calls
        );
        // Never comes up: gives up once the bound has passed, naming the server in the hint.
        let mut r = Recorder {
            fail_mount: Some((
                "/run/unionroot/lower".into(),
                Errno::ECONNREFUSED,
                usize::MAX,
            )),
            ..Default::default()
        };
        let e = run_step(&mut r, &step).unwrap_err();
        assert!(
            matches!(
                e,
                ExecError::GaveUp {
                    errno: Errno::ECONNREFUSED,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            r.clock >= Duration::from_secs(5) && r.clock < Duration::from_secs(8),
            "{:?}",
            r.clock
        );
        assert!(e.hint().contains("10.0.2.2"), "{}", e.hint());
        // A wrong path is not transient: one attempt, and the message names server and path.
        let mut r = Recorder {
            fail_mount: Some(("/run/unionroot/lower".into(), Errno::EACCES, usize::MAX)),
            ..Default::default()
        };
        let e = run_step(&mut r, &step).unwrap_err();
        assert!(matches!(
            e,
            ExecError::Step {
                errno: Errno::EACCES,
                ..
            }
        ));
        assert_eq!(mounts(&r).len(), 1);
        assert!(e.to_string().contains("10.0.2.2:/srv/system"), "{e}");
        assert!(e.hint().contains("exports"));
    }

    #[test]
    fn nfs_failover_skips_a_dead_server_and_gives_up_naming_both() {
        let step = nfs_step(&["10.0.0.1", "10.0.0.2"]);
        let mut r = Recorder::default();
        r.dead.insert("10.0.0.1".parse().unwrap());
        run_step(&mut r, &step).unwrap();
        assert_eq!(
            mounts(&r),
            ["10.0.0.2:/srv/system"],
            "the dead server is never mounted from"
        );
        assert_eq!(
            r.calls
                .iter()
                .filter(|c| matches!(c, Call::Probe(..)))
                .count(),
            2
        );
        let mut r = Recorder::default();
        r.dead
            .extend(["10.0.0.1", "10.0.0.2"].map(|a| a.parse::<std::net::Ipv4Addr>().unwrap()));
        let e = run_step(&mut r, &step).unwrap_err();
        assert!(
            matches!(
                e,
                ExecError::GaveUp {
                    errno: Errno::EHOSTUNREACH,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.hint().contains("10.0.0.1 or 10.0.0.2"), "{}", e.hint());
        assert!(mounts(&r).is_empty());
        // The first server refuses the path: the second is still tried, and serves.
        let mut r = Recorder {
            fail_mount: Some(("/run/unionroot/lower".into(), Errno::EACCES, 1)),
            ..Default::default()
        };
        run_step(&mut r, &step).unwrap();
        assert_eq!(mounts(&r), ["10.0.0.1:/srv/system", "10.0.0.2:/srv/system"]);
    }

    #[test]
    fn symlinks_in_exported_trees_are_not_followed() {
        let check = |root: &str, path: &str| {
            Step::Check(Check::NoSymlinks {
                root: root.into(),
                path: path.into(),
            })
        };
        let mut r = Recorder::default();
        r.kinds.insert("/newroot/var".into(), Kind::Dir);
        r.kinds
            .insert("/newroot/var/run".into(), Kind::Symlink("/run".into()));
        let e = run_step(&mut r, &check("/newroot", "/newroot/var/run/x")).unwrap_err();
        assert!(
            e.to_string()
                .contains("/newroot/var/run is a symlink (to /run)"),
            "{e}"
        );
        // Missing components are made by mkdir; existing directories are fine.
        run_step(&mut r, &check("/newroot", "/newroot/var/log/x")).unwrap();
        run_step(&mut r, &check("/newroot", "/newroot/home")).unwrap();
        // A node's own directory pointing at another node's is refused from the export's root.
        let p = "/run/unionroot/persist";
        r.kinds.insert(format!("{p}/nodes"), Kind::Dir);
        r.kinds
            .insert(format!("{p}/nodes/node-a"), Kind::Symlink("node-b".into()));
        let e = run_step(&mut r, &check(p, &format!("{p}/nodes/node-a/var/log"))).unwrap_err();
        assert!(e.to_string().contains("nodes/node-a is a symlink"), "{e}");
        assert!(run_step(&mut r, &check("/newroot", "/elsewhere")).is_err());
        assert!(r.calls.is_empty(), "checks change nothing");
    }

    #[test]
    fn checks_name_what_is_missing() {
        let mut r = Recorder::default();
        r.files
            .insert("/proc/filesystems".into(), "nodev\ttmpfs\n\tnfs\n".into());
        let e = run_step(&mut r, &Step::Check(Check::FsSupported("overlay".into()))).unwrap_err();
        assert!(e.to_string().contains("does not support overlay"), "{e}");
        r.files.insert(
            "/proc/filesystems".into(),
            "nodev\ttmpfs\nnodev\toverlay\n".into(),
        );
        run_step(&mut r, &Step::Check(Check::FsSupported("overlay".into()))).unwrap();
        let e = run_step(&mut r, &Step::Check(Check::IsDir("/x".into()))).unwrap_err();
        assert!(e.to_string().contains("/x is not a directory"));
        let owned = Step::Check(Check::MappedOwner("/run/unionroot/lower".into()));
        run_step(&mut r, &owned).unwrap();
        for ids in [(4_294_967_294, 0), (0, 65_534)] {
            r.owners.insert("/run/unionroot/lower".into(), ids);
            let e = run_step(&mut r, &owned).unwrap_err();
            assert!(e.to_string().contains("owner this node cannot map"), "{e}");
            assert!(e.hint().contains("Only_Numeric_Owners"), "{}", e.hint());
        }
        r.free = 4096;
        let room = Step::Check(Check::HasRoom {
            path: "/run/unionroot/rw".into(),
            min_bytes: 1 << 20,
        });
        let e = run_step(&mut r, &room).unwrap_err();
        assert!(
            e.to_string().contains("4096 bytes free") && e.hint().contains("unionroot.size"),
            "{e}"
        );
        r.free = 2 << 20;
        run_step(&mut r, &room).unwrap();
    }

    #[test]
    fn pivot_root_exact_sequence_and_failures() {
        let step = Step::PivotRoot {
            new_root: "/newroot".into(),
            init: "/sbin/init".into(),
            args: vec![],
        };
        let mut r = ready_recorder();
        r.root_magic = 0x6969;
        let _ = run_step(&mut r, &step);
        let mut expect = vec![Call::Sync, mnt("none", "/", "", ms::REC | ms::PRIVATE, "")];
        for d in CARRIED {
            expect.push(Call::Mkdir(format!("/newroot{d}")));
            expect.push(mnt(d, &format!("/newroot{d}"), "", ms::MOVE, ""));
        }
        expect.extend([
            Call::Mkdir("/newroot/run/unionroot/oldroot".into()),
            Call::Chdir("/newroot".into()),
            Call::PivotRoot(".".into(), "/newroot/run/unionroot/oldroot".into()),
            Call::Chdir("/".into()),
            Call::UmountDetach("/run/unionroot/oldroot".into()),
            Call::Exec("/sbin/init".into(), vec![]),
        ]);
        assert_eq!(r.calls, expect);
        assert!(
            !r.calls
                .iter()
                .any(|c| matches!(c, Call::RemoveSameDevice(_))),
            "never delete a real root"
        );
        // pivot_root failing stops before exec, with a hint.
        let n = expect
            .iter()
            .position(|c| matches!(c, Call::PivotRoot(..)))
            .unwrap();
        let mut r = ready_recorder();
        r.fail_at = Some((n, Errno::EINVAL));
        let e = run_step(&mut r, &step).unwrap_err();
        assert!(
            e.to_string().contains("pivot_root") && e.hint().contains("mount point"),
            "{e}"
        );
        assert_eq!(r.calls.len(), n + 1);
        // A missing init refuses before anything is touched.
        let mut r = ready_recorder();
        r.kinds.clear();
        assert!(run_step(&mut r, &step).is_err());
        assert!(r.calls.is_empty());
    }

    #[test]
    fn module_already_loaded_is_fine_and_bad_module_is_named() {
        let step = Step::LoadModule {
            name: "nfs".into(),
            path: "/lib/modules/x/nfs.ko".into(),
            params: String::new(),
        };
        let mut r = Recorder {
            fail_at: Some((0, Errno::EEXIST)),
            ..Default::default()
        };
        run_step(&mut r, &step).unwrap();
        let mut r = Recorder {
            fail_at: Some((0, Errno::ENOEXEC)),
            ..Default::default()
        };
        let e = run_step(&mut r, &step).unwrap_err();
        assert!(
            e.to_string().contains("insmod /lib/modules/x/nfs.ko"),
            "{e}"
        );
        assert!(e.hint().contains("rebuild the initramfs"));
    }

    #[test]
    fn finit_module_gets_the_parameters_and_a_refusal_names_them() {
        let load = |params: &str| Step::LoadModule {
            name: "virtio_net".into(),
            path: "/lib/modules/x/virtio_net.ko".into(),
            params: params.into(),
        };
        let step = load("napi_tx=1 name=\"a b\"");
        let mut r = Recorder::default();
        run_step(&mut r, &step).unwrap();
        assert_eq!(
            r.calls,
            [Call::FinitModule {
                path: "/lib/modules/x/virtio_net.ko".into(),
                params: "napi_tx=1 name=\"a b\"".into(),
            }]
        );
        for errno in [Errno::EINVAL, Errno::ERANGE, Errno::ENOSPC] {
            let mut r = Recorder {
                fail_at: Some((0, errno)),
                ..Default::default()
            };
            let e = run_step(&mut r, &step).unwrap_err();
            assert!(
                e.to_string()
                    .contains("insmod /lib/modules/x/virtio_net.ko napi_tx=1 name=\"a b\""),
                "{e}"
            );
            assert!(
                e.hint().contains("napi_tx=1 name=\"a b\"")
                    && e.hint().contains("virtio_net.<param>="),
                "{errno}: {}",
                e.hint()
            );
        }
        // Without parameters, EINVAL keeps its old reading.
        let bare = load("");
        let mut r = Recorder {
            fail_at: Some((0, Errno::EINVAL)),
            ..Default::default()
        };
        let e = run_step(&mut r, &bare).unwrap_err();
        assert!(!e.hint().contains("parameters"), "{}", e.hint());
        // A control character in a value does not reach the hint as one.
        let odd = load("p=\"a\nb\"");
        let mut r = Recorder {
            fail_at: Some((0, Errno::EINVAL)),
            ..Default::default()
        };
        let e = run_step(&mut r, &odd).unwrap_err();
        assert!(!e.hint().contains(char::is_control), "{}", e.hint());
    }

    const IMAGES: &str = "/run/unionroot/images";
    const GEN: &str = "/run/unionroot/images/system-0a1b.sqfs";

    fn image_step() -> Step {
        Step::ImageMount {
            images: IMAGES.into(),
            name: ImageName::parse("system").unwrap(),
            target: "/run/unionroot/lower".into(),
            origin: "10.0.2.2:/srv/images".into(),
            ram: false,
        }
    }

    /// A server with a good squashfs generation 0a1b, and a kernel that knows squashfs.
    fn image_recorder() -> Recorder {
        let mut r = Recorder::default();
        let mut sb = vec![0u8; 4096];
        sb[..4].copy_from_slice(b"hsqs");
        sb[40..48].copy_from_slice(&4096u64.to_le_bytes());
        r.raw_files.insert(GEN.into(), sb);
        r.files.insert(
            format!("{IMAGES}/system.current"),
            "system-0a1b.sqfs\n".into(),
        );
        r.files.insert(
            "/proc/filesystems".into(),
            "nodev\ttmpfs\n\tsquashfs\n".into(),
        );
        // The images directory's mount: device 300:70000 (an NFS mount's is 0:N; these
        // numbers exercise every part of dev_t's split, as Python's os.makedev(300, 70000)).
        r.devices.insert(IMAGES.into(), 286_338_160);
        r
    }

    #[test]
    fn the_nfs_client_identifier_is_written_and_a_refusal_only_warns() {
        let id = ClientId::from_mac(unionroot_core::addr::Mac([0x52, 0x54, 0, 0x77, 1, 2]));
        let step = Step::NfsClientId(id);
        let mut r = Recorder::default();
        run_step(&mut r, &step).unwrap();
        assert_eq!(r.calls, [Call::WriteFile(CLIENT_ID_PATH.into())]);
        assert_eq!(r.files[CLIENT_ID_PATH], "unionroot-525400770102\n");
        // A kernel without the file (before 5.3): the boot goes on.
        let mut r = Recorder {
            fail_at: Some((0, Errno::ENOENT)),
            ..Recorder::default()
        };
        run_step(&mut r, &step).unwrap();
        assert_eq!(r.calls.len(), 1);
    }

    const NFS_RA: &str = "/sys/class/bdi/300:70000/read_ahead_kb";
    const LOOP_RA: &str = "/sys/block/loop0/queue/read_ahead_kb";

    #[test]
    fn an_image_is_pinned_attached_read_only_then_mounted() {
        let mut r = image_recorder();
        run_step(&mut r, &image_step()).unwrap();
        assert_eq!(
            r.calls,
            [
                Call::WriteFile(NFS_RA.into()),
                Call::LoopAttach(GEN.into()),
                Call::WriteFile(LOOP_RA.into()),
                mnt(
                    "/dev/loop0",
                    "/run/unionroot/lower",
                    "squashfs",
                    ms::RDONLY,
                    ""
                ),
            ]
        );
        assert_eq!(r.files[NFS_RA], "4096");
        assert_eq!(r.files[LOOP_RA], "1024");
        // Readahead is an optimisation: a kernel that refuses it still boots the image.
        for n in [0, 2] {
            let mut r = image_recorder();
            r.fail_at = Some((n, Errno::EACCES));
            run_step(&mut r, &image_step()).unwrap();
            assert_eq!(r.calls.len(), 4);
        }
    }

    #[test]
    fn an_image_in_ram_is_copied_then_attached_and_the_server_let_go() {
        let mut r = image_recorder();
        r.free = 1 << 20;
        let Step::ImageMount {
            images,
            name,
            target,
            origin,
            ..
        } = image_step()
        else {
            unreachable!()
        };
        let step = Step::ImageMount {
            images,
            name,
            target,
            origin,
            ram: true,
        };
        run_step(&mut r, &step).unwrap();
        let copy = "/run/unionroot/image-ram/system-0a1b.sqfs";
        assert_eq!(
            r.calls,
            [
                Call::Mkdir("/run/unionroot/image-ram".into()),
                Call::CopyFile(GEN.into(), copy.into()),
                Call::LoopAttach(copy.into()),
                Call::WriteFile(LOOP_RA.into()),
                mnt(
                    "/dev/loop0",
                    "/run/unionroot/lower",
                    "squashfs",
                    ms::RDONLY,
                    ""
                ),
                Call::UmountDetach(IMAGES.into()),
            ]
        );
        // Too little RAM: named before anything is copied.
        let mut r = image_recorder();
        r.free = 100;
        let e = run_step(&mut r, &step).unwrap_err().to_string();
        assert!(
            e.contains("4096 bytes do not fit in RAM: /run has 100 bytes free"),
            "{e}"
        );
        assert!(r.calls.is_empty());
    }

    #[test]
    fn an_image_failing_at_each_call_is_named_with_server_file_and_generation() {
        for (n, errno, want) in [
            (1, Errno::ENXIO, "losetup failed: ENXIO"),
            (
                3,
                Errno::EINVAL,
                "`mount -t squashfs -o ro /dev/loop0 /run/unionroot/lower` failed: EINVAL",
            ),
        ] {
            let mut r = image_recorder();
            r.fail_at = Some((n, errno));
            let e = run_step(&mut r, &image_step()).unwrap_err().to_string();
            assert!(
                e.contains(
                    "image system generation 0a1b (10.0.2.2:/srv/images/system-0a1b.sqfs): "
                ) && e.contains(want),
                "{e}"
            );
            assert_eq!(r.calls.len(), n + 1, "{e}");
        }
    }

    /// What a case is, how it spoils the good server, and what the failure must say.
    type Spoiled = (&'static str, fn(&mut Recorder), &'static str);

    #[test]
    fn bad_images_are_refused_before_anything_is_attached() {
        let cases: [Spoiled; 8] = [
            (
                "a pointer longer than any generation's name (read no further)",
                |r| {
                    r.files.insert(
                        "/run/unionroot/images/system.current".into(),
                        format!("system-0a1b.sqfs\n{}", "x".repeat(1 << 20)),
                    );
                },
                "the pointer system.current has 1048593 bytes, more than a generation's name",
            ),
            (
                "no pointer",
                |r| {
                    r.files.remove("/run/unionroot/images/system.current");
                },
                "image system from 10.0.2.2:/srv/images: no pointer system.current: ENOENT",
            ),
            (
                "a hostile pointer",
                |r| {
                    r.files.insert(
                        "/run/unionroot/images/system.current".into(),
                        "../../etc/passwd".into(),
                    );
                },
                "the pointer system.current is refused: \"../../etc/passwd\" is a path",
            ),
            (
                "a missing generation",
                |r| {
                    r.raw_files.remove(GEN);
                },
                "image system generation 0a1b (10.0.2.2:/srv/images/system-0a1b.sqfs): cannot read it: ENOENT",
            ),
            (
                "a truncated image",
                |r| {
                    r.sizes.insert(GEN.into(), 1000);
                },
                "truncated: the file has 1000 bytes, its squashfs superblock records 4096",
            ),
            (
                "not an image",
                |r| {
                    r.raw_files.insert(GEN.into(), vec![0; 4096]);
                },
                "no squashfs or EROFS superblock in its first 1028 bytes (of 4096)",
            ),
            (
                "an EROFS image named .sqfs",
                |r| {
                    let mut b = vec![0u8; 2048];
                    b[1024..1028].copy_from_slice(&[0xe2, 0xe1, 0xf5, 0xe0]);
                    r.raw_files.insert(GEN.into(), b);
                },
                "its superblock is erofs but its name says .sqfs",
            ),
            (
                "no squashfs in the kernel",
                |r| {
                    r.files
                        .insert("/proc/filesystems".into(), "nodev\ttmpfs\n".into());
                },
                "the kernel does not support squashfs (not in /proc/filesystems)",
            ),
        ];
        for (what, spoil, want) in cases {
            let mut r = image_recorder();
            spoil(&mut r);
            let e = run_step(&mut r, &image_step()).unwrap_err().to_string();
            assert!(e.contains(want), "{what}: {e}");
            assert!(r.calls.is_empty(), "{what}: {:?}", r.calls);
        }
    }
}
