//! The boot plan as data. Planners turn the configuration into a list of [`Step`]s; the
//! executor in `linuxrc` logs each step's `Display` (which reads like the shell command it
//! replaces) and then runs it. Follows mount(2), `Documentation/filesystems/overlayfs.rst` and
//! klibc's run-init for the root switch.
//!
//! Containment: every path the root plan puts under [`NEW_ROOT`] or under a node's persistent
//! directory is made by [`in_new_root`] or [`node_dir`], which only take validated values
//! ([`MountTarget`]: absolute, normalized, no `..`, not `/`; [`Hostname`]: RFC 1123, so never
//! `.`, `..` or containing `/`). So whatever DHCP or the command line says, the plan cannot
//! name a directory outside the new root or another node's directory; the property test below
//! checks that over generated hostile inputs.

use crate::cmdline::ModuleParams;
use crate::image::ImageName;
use crate::modules::{ModError, ModuleDb};
use crate::nfs::{ClientId, NfsMountArgs, CLIENT_ID_PATH};
use crate::validate::{controls_escaped, shown, Hostname, MountTarget};
use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

/// The flags as `plan::ms`, where the executor has always looked for them.
pub use crate::ms;

/// Where linuxrc puts the pieces of the union. They live under `/run`, which is carried into the
/// new root, so the running system can see its layers at `/run/unionroot/...`.
pub const LOWER_DIR: &str = "/run/unionroot/lower";
pub const RW_DIR: &str = "/run/unionroot/rw";
pub const UPPER_DIR: &str = "/run/unionroot/rw/upper";
pub const WORK_DIR: &str = "/run/unionroot/rw/work";
pub const NEW_ROOT: &str = "/newroot";
/// Mounts carried from the initramfs into the new root.
pub const CARRIED: [&str; 4] = ["/dev", "/proc", "/sys", "/run"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Mkdir {
        path: String,
        mode: u32,
    },
    Mount {
        source: String,
        target: String,
        fstype: String,
        flags: u64,
        data: String,
    },
    /// An NFS mount with failover: the candidates (one per server) are tried in order, each
    /// after a reachability probe bounded by `probe`, round after round until `retry` has passed.
    NfsMount {
        candidates: Vec<NfsMountArgs>,
        target: String,
        flags: u64,
        retry: Duration,
        probe: Duration,
    },
    /// A precondition, checked before the step that needs it so that its failure has a name.
    Check(Check),
    /// Give the NFS client its identifier (see [`ClientId`]) before the first NFS mount: only
    /// mounts made after this carry it. Writes [`CLIENT_ID_PATH`]; a refused write is a
    /// warning, because the boot itself can go on.
    NfsClientId(ClientId),
    /// Move an existing mount (`mount --move`).
    MoveMount {
        from: String,
        to: String,
    },
    /// finit_module(2) with `params`, the parameter string from the command line's
    /// `<name>.<param>=` words ([`crate::cmdline::ModuleParams`]), empty when none.
    LoadModule {
        name: String,
        path: String,
        params: String,
    },
    /// An image root's generation, loop-mounted read-only (see [`crate::image`]): read the
    /// pointer `<images>/<name>.current` once, check the file it names (superblock magic, the
    /// kernel's support, its recorded length), attach it read-only to a free loop device with
    /// `LOOP_CONFIGURE`, and mount that device on `target`. The executor logs each of these as
    /// its own command line, and the generation it pinned. `origin` (`<server>:<dir>`) is for
    /// the messages: where the images came from.
    ImageMount {
        images: String,
        name: ImageName,
        target: String,
        origin: String,
        /// Copy the generation into [`IMAGE_RAM_DIR`] first, mount the copy, and detach the
        /// images directory: the root then no longer needs the server.
        ram: bool,
    },
    /// klibc run-init's checked sequence: new root on another device, init present in it, `/`
    /// on ramfs/tmpfs; move [`CARRIED`] across, delete the initramfs contents without crossing
    /// mounts, move the new root onto `/`, chroot, exec init.
    SwitchRoot {
        new_root: String,
        init: String,
        args: Vec<String>,
    },
    /// systemd switch-root's sequence from a real (NFS) root: make mounts private, move
    /// [`CARRIED`] across, `pivot_root` with the old root put under `/run`, detach it, exec init.
    PivotRoot {
        new_root: String,
        init: String,
        args: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The filesystem type is listed in /proc/filesystems.
    FsSupported(String),
    IsDir(String),
    /// At least this many bytes are free in the filesystem holding `path`.
    HasRoom {
        path: String,
        min_bytes: u64,
    },
    /// The directory is not owned by the kernel's overflow ids: an NFSv4 server that sends owner
    /// names the client cannot map (no idmapper in an initramfs) shows every file as owned by
    /// them, and a root mounted like that fails late (setuid programs refuse, and the kernel's
    /// request-key upcall runs from that same root and blocks).
    MappedOwner(String),
    /// No existing component of `path` below `root` is a symlink. The exported trees are not
    /// ours: a symlink there (`/var/run -> /run`, or a node's `var -> ../node-b/var`) would make
    /// mkdir and mount(2) follow it out of the new root or into another node's directory, and an
    /// absolute one resolves against the initramfs. Missing components are fine: mkdir makes
    /// them as directories.
    NoSymlinks {
        root: String,
        path: String,
    },
}

/// The ids the kernel shows for an owner it could not map: the NFS client's (`(u32)-2`, from
/// `nfs_map_name_to_uid` failing) and the overflow uid/gid (`/proc/sys/fs/overflowuid`).
pub const UNMAPPED_IDS: [u32; 2] = [4_294_967_294, 65_534];

/// Where the old root goes during `pivot_root` (under the carried /run, then detached).
pub const OLD_ROOT: &str = "/run/unionroot/oldroot";
/// Where the per-node persistent export is mounted.
pub const PERSIST_DIR: &str = "/run/unionroot/persist";
/// Where an image root's directory is mounted (read-only).
pub const IMAGES_DIR: &str = "/run/unionroot/images";
/// Where `unionroot.image_ram` copies the generation (in the tmpfs `/run`).
pub const IMAGE_RAM_DIR: &str = "/run/unionroot/image-ram";

fn flag_words(flags: u64) -> Vec<&'static str> {
    [
        (ms::RDONLY, "ro"),
        (ms::NOSUID, "nosuid"),
        (ms::NODEV, "nodev"),
        (ms::NOEXEC, "noexec"),
    ]
    .into_iter()
    .filter(|(f, _)| flags & f != 0)
    .map(|(_, w)| w)
    .collect()
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Mkdir { path, mode } => write!(f, "mkdir -p -m {mode:o} {path}"),
            Step::NfsMount {
                candidates,
                target,
                flags,
                ..
            } => {
                let Some(first) = candidates.first() else {
                    return write!(f, "mount (no NFS server) {target}");
                };
                let mut opts = flag_words(*flags);
                opts.push(&first.data);
                write!(
                    f,
                    "mount -t {} -o {} {} {target}",
                    first.fstype,
                    opts.join(","),
                    first.source
                )?;
                let rest: Vec<&str> = candidates
                    .iter()
                    .skip(1)
                    .map(|c| c.source.as_str())
                    .collect();
                if !rest.is_empty() {
                    write!(f, " (failover: {})", rest.join(", "))?;
                }
                Ok(())
            }
            Step::Check(Check::FsSupported(fs)) => write!(f, "grep -qw {fs} /proc/filesystems"),
            Step::Check(Check::IsDir(p)) => write!(f, "test -d {p}"),
            Step::Check(Check::MappedOwner(p)) => {
                write!(f, "! stat -c '%u %g' {p} | grep -qwE '65534|4294967294'")
            }
            Step::Check(Check::HasRoom { path, min_bytes }) => {
                write!(f, "test $(stat -f -c '%a*%S' {path}) -ge {min_bytes}")
            }
            Step::Check(Check::NoSymlinks { root, path }) => {
                write!(
                    f,
                    "test \"$(realpath -m {path})\" = {path} # no symlinks below {root}"
                )
            }
            Step::PivotRoot {
                new_root,
                init,
                args,
            } => {
                write!(
                    f,
                    "pivot_root {new_root} {new_root}{OLD_ROOT}; umount -l {OLD_ROOT}; exec {init}"
                )?;
                for a in args {
                    write!(f, " {a}")?;
                }
                Ok(())
            }
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => {
                let mut opts = flag_words(*flags);
                if !data.is_empty() {
                    opts.push(data);
                }
                if flags & ms::BIND != 0 {
                    write!(f, "mount --bind {source} {target}")?;
                    return Ok(());
                }
                write!(f, "mount -t {fstype}")?;
                if !opts.is_empty() {
                    write!(f, " -o {}", opts.join(","))?;
                }
                write!(f, " {source} {target}")
            }
            Step::MoveMount { from, to } => write!(f, "mount --move {from} {to}"),
            Step::NfsClientId(id) => write!(f, "echo {id} > {CLIENT_ID_PATH}"),
            Step::LoadModule { path, params, .. } => {
                write!(f, "insmod {path}")?;
                if !params.is_empty() {
                    // The admin's text, but a control character must not rewrite the log line.
                    write!(f, " {}", controls_escaped(params))?;
                }
                Ok(())
            }
            Step::ImageMount {
                images,
                name,
                target,
                ram,
                ..
            } => {
                let file = format!("{images}/\"$(cat {images}/{})\"", name.pointer());
                if *ram {
                    write!(
                        f,
                        "cp {file} {IMAGE_RAM_DIR}/ && mount -o ro,loop {IMAGE_RAM_DIR}/* {target} && umount -l {images}"
                    )
                } else {
                    write!(f, "mount -o ro,loop {file} {target}")
                }
            }
            Step::SwitchRoot {
                new_root,
                init,
                args,
            } => {
                write!(f, "switch_root {new_root} {init}")?;
                for a in args {
                    write!(f, " {a}")?;
                }
                Ok(())
            }
        }
    }
}

fn mount(source: &str, target: &str, fstype: &str, flags: u64, data: &str) -> Step {
    Step::Mount {
        source: source.into(),
        target: target.into(),
        fstype: fstype.into(),
        flags,
        data: data.into(),
    }
}

fn mkdir(path: &str, mode: u32) -> Step {
    Step::Mkdir {
        path: path.into(),
        mode,
    }
}

/// The API filesystems PID 1 needs before it can read the cmdline or log to /dev/kmsg.
/// devtmpfs comes first: it is what makes `/dev/kmsg` exist (DEVTMPFS_MOUNT is off in Debian).
pub fn early_mounts() -> Vec<Step> {
    vec![
        mkdir("/dev", 0o755),
        mount("devtmpfs", "/dev", "devtmpfs", ms::NOSUID, "mode=0755"),
        mkdir("/proc", 0o555),
        mount(
            "proc",
            "/proc",
            "proc",
            ms::NOSUID | ms::NODEV | ms::NOEXEC,
            "",
        ),
        mkdir("/sys", 0o555),
        mount(
            "sysfs",
            "/sys",
            "sysfs",
            ms::NOSUID | ms::NODEV | ms::NOEXEC,
            "",
        ),
        mkdir("/run", 0o755),
        mount(
            "tmpfs",
            "/run",
            "tmpfs",
            ms::NOSUID | ms::NODEV,
            "mode=0755",
        ),
    ]
}

/// Which modules a boot needs and what the kernel already has.
#[derive(Debug, Clone)]
pub struct ModuleNeeds<'a> {
    /// Module names wanted, in the order they should be considered.
    pub wanted: Vec<String>,
    /// Built in to the kernel (`modules.builtin`).
    pub builtin: &'a BTreeSet<String>,
    /// Already loaded (`/proc/modules`).
    pub loaded: &'a BTreeSet<String>,
}

/// `LoadModule` steps for the closure of `needs.wanted`, dependencies first, skipping what is
/// built in or already loaded. `base` is `/lib/modules/<release>`. Each module gets its
/// parameters from `params` by its canonical name; a dependency pulled in is a module like
/// any other, so it gets its own too.
pub fn module_steps(
    db: &ModuleDb,
    needs: &ModuleNeeds<'_>,
    base: &str,
    params: &ModuleParams,
) -> Result<Vec<Step>, ModError> {
    let wanted: Vec<&String> = needs
        .wanted
        .iter()
        .filter(|m| !needs.builtin.contains(*m))
        .collect();
    Ok(db
        .load_order(&wanted)?
        .into_iter()
        .filter(|m| !needs.loaded.contains(&m.name) && !needs.builtin.contains(&m.name))
        .map(|m| Step::LoadModule {
            path: format!("{base}/{}", m.path),
            params: params.for_module(&m.name),
            name: m.name,
        })
        .collect())
}

/// One NFS piece, resolved: a mount(2) argument set per server (in failover order) and the
/// mount flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsPiece {
    pub candidates: Vec<NfsMountArgs>,
    pub flags: u64,
}

/// Per-node persistent paths: `<export>/nodes/<node><path>` bind-mounted over each path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persist {
    pub piece: NfsPiece,
    pub node: Hostname,
    pub paths: Vec<MountTarget>,
}

/// The name of this node's persistent directory: the validated host name (from `ip=` or DHCP),
/// else the kernel's own (set by its autoconfig), else the address. A host name that was
/// offered and refused stops here: falling back to another name would silently give the node
/// a different directory, so the caller must fail the boot with this reason. The kernel's name
/// came from DHCP too, so it passes the same check.
pub fn node_name(
    given: Option<&Hostname>,
    refused: Option<&str>,
    kernel: Option<&str>,
    address: Option<Ipv4Addr>,
) -> Result<Option<Hostname>, String> {
    if let Some(h) = given {
        return Ok(Some(h.clone()));
    }
    if let Some(why) = refused {
        return Err(why.to_string());
    }
    if let Some(k) = kernel.filter(|k| !k.is_empty() && *k != "(none)") {
        return Hostname::parse(k).map(Some).map_err(|e| {
            format!(
                "the kernel's host name \"{}\" (from its own autoconfig) is refused: {e}",
                shown(k)
            )
        });
    }
    Ok(address.map(Hostname::from_addr))
}

fn no_symlinks(root: &str, path: &str) -> Step {
    Step::Check(Check::NoSymlinks {
        root: root.into(),
        path: path.into(),
    })
}

/// `path` inside the new root. The only way the planner joins onto [`NEW_ROOT`].
pub fn in_new_root(path: &MountTarget) -> String {
    format!("{NEW_ROOT}{path}")
}

/// `path` inside `node`'s directory of the persistent export. The only way the planner joins
/// onto [`PERSIST_DIR`].
pub fn node_dir(node: &Hostname, path: &MountTarget) -> String {
    format!("{PERSIST_DIR}/nodes/{node}{path}")
}

/// An image root: its directory (an NFS piece, mounted read-only at [`IMAGES_DIR`]) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePlan {
    pub dir: NfsPiece,
    pub name: ImageName,
    /// `unionroot.image_ram`.
    pub ram: bool,
}

/// Everything needed to build the union root.
#[derive(Debug, Clone)]
pub struct RootPlan {
    /// The bottom layer, when the system is an image; `lowers` then stack above it.
    pub image: Option<ImagePlan>,
    /// Read-only layers, bottom first.
    pub lowers: Vec<NfsPiece>,
    /// Read-write NFS mounts placed into the new root, by mount point.
    pub rw_mounts: Vec<(MountTarget, NfsPiece)>,
    pub persist: Option<Persist>,
    /// How long to keep retrying NFS mounts while no server is reachable.
    pub mount_timeout: Duration,
    /// How long one server may take to accept a connection (`unionroot.server_timeout`).
    pub server_timeout: Duration,
    /// tmpfs `size=` for the writable layer.
    pub overlay_size: String,
    pub init: String,
    pub init_args: Vec<String>,
    /// From a real (NFS) root: pivot_root instead of switch_root.
    pub pivot: bool,
    /// Set before the first NFS mount (`nfs.nfs4_unique_id=`, else from the MAC); `None` when
    /// neither is known, and the kernel's default owner string is left alone.
    pub nfs_client_id: Option<ClientId>,
}

/// Mount point of lower layer `i` (0 is the bottom).
pub fn lower_dir(i: usize) -> String {
    if i == 0 {
        LOWER_DIR.to_string()
    } else {
        format!("{LOWER_DIR}{i}")
    }
}

/// The writable layer must have at least this much room, or the first write fails.
pub const MIN_UPPER_BYTES: u64 = 1 << 20;

/// Overlay options that are safe over an NFS lower (overlayfs.rst, "Non-standard behavior" and
/// the feature sections): `index` and `xino` need stable inode numbers and file handles across
/// remounts, which an NFS lower served by failover servers does not promise; `metacopy` and
/// `redirect_dir` write overlay-private xattrs whose meaning older kernels or other tools reading
/// the upper would not know. All four default to kernel config values, so state them.
pub const SAFE_OVERLAY_OPTS: &str = "index=off,metacopy=off,redirect_dir=off,xino=off";

fn nfs(piece: &NfsPiece, target: &str, p: &RootPlan) -> Step {
    Step::NfsMount {
        candidates: piece.candidates.clone(),
        target: target.into(),
        flags: piece.flags,
        retry: p.mount_timeout,
        probe: p.server_timeout,
    }
}

/// The root plan: the steps that build the new root, and the one that switches to it
/// ([`Step::SwitchRoot`] from an initramfs, [`Step::PivotRoot`] from a real root). Kept apart so
/// that the caller can hand off between them without guessing which step is last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootSteps {
    pub build: Vec<Step>,
    pub switch: Step,
}

impl RootSteps {
    /// All steps in order.
    pub fn all(&self) -> impl Iterator<Item = &Step> {
        self.build.iter().chain(std::iter::once(&self.switch))
    }
}

/// Steps from "network is up" to "exec the real init".
pub fn root_steps(p: &RootPlan) -> RootSteps {
    let mut steps = vec![Step::Check(Check::FsSupported("overlay".into()))];
    steps.extend(p.nfs_client_id.clone().map(Step::NfsClientId));
    let mut dirs = Vec::new();
    if let Some(img) = &p.image {
        let dir = lower_dir(0);
        let origin = img
            .dir
            .candidates
            .iter()
            .map(|c| c.source.as_str())
            .collect::<Vec<_>>()
            .join(" or ");
        steps.extend([
            mkdir(IMAGES_DIR, 0o755),
            nfs(&img.dir, IMAGES_DIR, p),
            mkdir(&dir, 0o755),
            Step::ImageMount {
                images: IMAGES_DIR.into(),
                name: img.name.clone(),
                target: dir.clone(),
                origin,
                ram: img.ram,
            },
        ]);
        dirs.push(dir);
    }
    let above = dirs.len();
    for (i, l) in p.lowers.iter().enumerate() {
        let dir = lower_dir(i + above);
        steps.push(mkdir(&dir, 0o755));
        steps.push(nfs(l, &dir, p));
        steps.push(Step::Check(Check::IsDir(dir.clone())));
        if l.candidates.iter().any(|c| c.fstype == "nfs4") {
            steps.push(Step::Check(Check::MappedOwner(dir.clone())));
        }
        dirs.push(dir);
    }
    steps.extend([
        mkdir(RW_DIR, 0o755),
        mount(
            "tmpfs",
            RW_DIR,
            "tmpfs",
            0,
            &format!("size={},mode=0755", p.overlay_size),
        ),
        Step::Check(Check::HasRoom {
            path: RW_DIR.into(),
            min_bytes: MIN_UPPER_BYTES,
        }),
        mkdir(UPPER_DIR, 0o755),
        mkdir(WORK_DIR, 0o755),
        mkdir(NEW_ROOT, 0o755),
    ]);
    // overlayfs lists lower layers top first.
    dirs.reverse();
    let lowerdir = dirs.join(":");
    steps.push(mount(
        "overlay",
        NEW_ROOT,
        "overlay",
        0,
        &format!("lowerdir={lowerdir},upperdir={UPPER_DIR},workdir={WORK_DIR},{SAFE_OVERLAY_OPTS}"),
    ));
    for (target, piece) in &p.rw_mounts {
        let at = in_new_root(target);
        steps.push(no_symlinks(NEW_ROOT, &at));
        steps.push(mkdir(&at, 0o755));
        steps.push(nfs(piece, &at, p));
    }
    if let Some(per) = &p.persist {
        steps.push(mkdir(PERSIST_DIR, 0o755));
        steps.push(nfs(&per.piece, PERSIST_DIR, p));
        for path in &per.paths {
            let src = node_dir(&per.node, path);
            let at = in_new_root(path);
            // From the export's mount point: `nodes/<node>` itself could be a symlink.
            steps.push(no_symlinks(PERSIST_DIR, &src));
            steps.push(no_symlinks(NEW_ROOT, &at));
            steps.push(mkdir(&src, 0o755));
            steps.push(mkdir(&at, 0o755));
            steps.push(mount(&src, &at, "", ms::BIND, ""));
        }
    }
    let (new_root, init, args) = (NEW_ROOT.to_string(), p.init.clone(), p.init_args.clone());
    let switch = if p.pivot {
        Step::PivotRoot {
            new_root,
            init,
            args,
        }
    } else {
        Step::SwitchRoot {
            new_root,
            init,
            args,
        }
    };
    RootSteps {
        build: steps,
        switch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfs::{mount_args, Access, NfsVersion};

    #[test]
    fn steps_read_like_the_commands_they_replace() {
        let lines: Vec<String> = early_mounts().iter().map(|s| s.to_string()).collect();
        assert_eq!(lines[0], "mkdir -p -m 755 /dev");
        assert_eq!(
            lines[1],
            "mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev"
        );
        assert_eq!(lines[3], "mount -t proc -o nosuid,nodev,noexec proc /proc");
        assert_eq!(
            Step::MoveMount {
                from: "/dev".into(),
                to: "/newroot/dev".into()
            }
            .to_string(),
            "mount --move /dev /newroot/dev"
        );
    }

    #[test]
    fn module_steps_skip_builtin_and_loaded() {
        let db = ModuleDb::parse_dep(
            "kernel/net/sunrpc/sunrpc.ko:\nkernel/fs/nfs/nfs.ko: kernel/net/sunrpc/sunrpc.ko\nkernel/fs/overlayfs/overlay.ko:\n",
        )
        .unwrap();
        let builtin: BTreeSet<String> = ["overlay".to_string()].into();
        let loaded: BTreeSet<String> = ["sunrpc".to_string()].into();
        let needs = ModuleNeeds {
            wanted: vec!["nfs".into(), "overlay".into()],
            builtin: &builtin,
            loaded: &loaded,
        };
        let none = ModuleParams::default();
        let steps = module_steps(&db, &needs, "/lib/modules/6.1", &none).unwrap();
        assert_eq!(
            steps,
            [Step::LoadModule {
                name: "nfs".into(),
                path: "/lib/modules/6.1/kernel/fs/nfs/nfs.ko".into(),
                params: String::new(),
            }]
        );
        assert_eq!(
            steps[0].to_string(),
            "insmod /lib/modules/6.1/kernel/fs/nfs/nfs.ko"
        );
        // A module that is neither shipped nor built in is an error naming it.
        let needs = ModuleNeeds {
            wanted: vec!["zfs".into()],
            builtin: &builtin,
            loaded: &loaded,
        };
        assert!(module_steps(&db, &needs, "/x", &none).is_err());
    }

    #[test]
    fn each_module_is_loaded_with_its_own_command_line_parameters() {
        let db = ModuleDb::parse_dep(
            "kernel/net/sunrpc/sunrpc.ko:\nkernel/fs/nfs/nfs.ko: kernel/net/sunrpc/sunrpc.ko\n\
             kernel/drivers/net/virtio_net.ko:\n",
        )
        .unwrap();
        let cfg = crate::cmdline::Config::parse(
            "",
            "sunrpc.min_resvport=600 virtio-net.napi_tx=1 \"nfs.recover_lost_locks=a b\" \
             nfs.nfs4_unique_id=rack3-n12 ixgbe.debug=1",
        )
        .unwrap();
        let empty = BTreeSet::new();
        let needs = ModuleNeeds {
            wanted: vec!["virtio_net".into(), "nfs".into()],
            builtin: &empty,
            loaded: &empty,
        };
        let steps = module_steps(&db, &needs, "/m", &cfg.load_params()).unwrap();
        let got: Vec<(String, String)> = steps
            .iter()
            .map(|s| match s {
                Step::LoadModule { name, params, .. } => (name.clone(), params.clone()),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                ("virtio_net".into(), "napi_tx=1".into()),
                ("sunrpc".into(), "min_resvport=600".into()),
                (
                    "nfs".into(),
                    "recover_lost_locks=\"a b\" nfs4_unique_id=rack3-n12".into()
                ),
            ]
        );
        assert_eq!(
            steps[2].to_string(),
            "insmod /m/kernel/fs/nfs/nfs.ko recover_lost_locks=\"a b\" nfs4_unique_id=rack3-n12"
        );
        // The log line is one line whatever the value holds.
        let step = Step::LoadModule {
            name: "m".into(),
            path: "/m/m.ko".into(),
            params: "p=\"a\nb\x1b[2J\"".into(),
        };
        assert!(!step.to_string().contains(char::is_control), "{step}");
    }

    fn piece(servers: &[&str], path: &str, flags: u64) -> NfsPiece {
        let access = if flags & ms::RDONLY != 0 {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        let candidates = servers
            .iter()
            .map(|s| mount_args(s.parse().unwrap(), path, NfsVersion::V3, None, &[], access))
            .collect();
        NfsPiece { candidates, flags }
    }

    fn plan(lowers: Vec<NfsPiece>) -> RootPlan {
        RootPlan {
            image: None,
            lowers,
            rw_mounts: Vec::new(),
            persist: None,
            mount_timeout: Duration::from_secs(30),
            server_timeout: Duration::from_secs(3),
            overlay_size: "256m".into(),
            init: "/sbin/init".into(),
            init_args: vec!["single".into()],
            pivot: false,
            nfs_client_id: None,
        }
    }

    #[test]
    fn the_nfs_client_identifier_is_set_before_the_first_nfs_mount() {
        let mut p = plan(vec![piece(&["10.0.2.2"], "/srv/system", ms::RDONLY)]);
        p.image = Some(ImagePlan {
            dir: piece(&["10.0.2.4"], "/srv/images", ms::RDONLY),
            name: ImageName::parse("system").unwrap(),
            ram: false,
        });
        p.nfs_client_id = Some(ClientId::from_mac(crate::addr::Mac([2, 0, 0, 0, 0, 7])));
        let steps = root_steps(&p).build;
        let id = steps
            .iter()
            .position(|s| matches!(s, Step::NfsClientId(_)))
            .expect("an identifier step");
        let first_nfs = steps
            .iter()
            .position(|s| matches!(s, Step::NfsMount { .. }))
            .unwrap();
        assert!(id < first_nfs, "{steps:#?}");
        assert_eq!(
            steps[id].to_string(),
            "echo unionroot-020000000007 > /sys/fs/nfs/net/nfs_client/identifier"
        );
        assert_eq!(
            steps
                .iter()
                .filter(|s| matches!(s, Step::NfsClientId(_)))
                .count(),
            1
        );
        // Without an identifier (no MAC, nothing on the command line) there is no step.
        p.nfs_client_id = None;
        assert!(!root_steps(&p)
            .all()
            .any(|s| matches!(s, Step::NfsClientId(_))));
    }

    #[test]
    fn root_plan_is_nfs_then_tmpfs_then_overlay_then_switch() {
        let p = plan(vec![piece(&["10.0.2.2"], "/srv/system", ms::RDONLY)]);
        let lines: Vec<String> = root_steps(&p).all().map(|s| s.to_string()).collect();
        assert_eq!(
            lines,
            [
                "grep -qw overlay /proc/filesystems",
                "mkdir -p -m 755 /run/unionroot/lower",
                "mount -t nfs -o ro,vers=3,proto=tcp,nolock,timeo=600,retrans=2,nocto,actimeo=600,addr=10.0.2.2 10.0.2.2:/srv/system /run/unionroot/lower",
                "test -d /run/unionroot/lower",
                "mkdir -p -m 755 /run/unionroot/rw",
                "mount -t tmpfs -o size=256m,mode=0755 tmpfs /run/unionroot/rw",
                "test $(stat -f -c '%a*%S' /run/unionroot/rw) -ge 1048576",
                "mkdir -p -m 755 /run/unionroot/rw/upper",
                "mkdir -p -m 755 /run/unionroot/rw/work",
                "mkdir -p -m 755 /newroot",
                "mount -t overlay -o lowerdir=/run/unionroot/lower,upperdir=/run/unionroot/rw/upper,workdir=/run/unionroot/rw/work,index=off,metacopy=off,redirect_dir=off,xino=off overlay /newroot",
                "switch_root /newroot /sbin/init single",
            ]
        );
        assert!(
            matches!(&root_steps(&p).build[2], Step::NfsMount { retry, probe, .. }
                if *retry == Duration::from_secs(30) && *probe == Duration::from_secs(3))
        );
    }

    #[test]
    fn an_image_is_the_bottom_layer_under_the_other_lowers_and_beside_rw_mounts() {
        let mut p = plan(vec![piece(
            &["10.0.2.3"],
            "/srv/layer",
            ms::RDONLY | ms::NODEV,
        )]);
        p.image = Some(ImagePlan {
            dir: piece(
                &["10.0.2.2", "10.0.2.4"],
                "/srv/images",
                ms::RDONLY | ms::NODEV,
            ),
            name: ImageName::parse("system").unwrap(),
            ram: false,
        });
        p.rw_mounts = vec![(
            MountTarget::parse("/home").unwrap(),
            piece(&["10.0.2.2"], "/srv/home", ms::NOSUID | ms::NODEV),
        )];
        let lines: Vec<String> = root_steps(&p).all().map(|s| s.to_string()).collect();
        let o = "vers=3,proto=tcp,nolock,timeo=600,retrans=2,nocto,actimeo=600";
        assert_eq!(
            lines[..8],
            [
                "grep -qw overlay /proc/filesystems".to_string(),
                "mkdir -p -m 755 /run/unionroot/images".into(),
                format!("mount -t nfs -o ro,nodev,{o},addr=10.0.2.2 10.0.2.2:/srv/images /run/unionroot/images (failover: 10.0.2.4:/srv/images)"),
                "mkdir -p -m 755 /run/unionroot/lower".into(),
                "mount -o ro,loop /run/unionroot/images/\"$(cat /run/unionroot/images/system.current)\" /run/unionroot/lower".into(),
                "mkdir -p -m 755 /run/unionroot/lower1".into(),
                format!("mount -t nfs -o ro,nodev,{o},addr=10.0.2.3 10.0.2.3:/srv/layer /run/unionroot/lower1"),
                "test -d /run/unionroot/lower1".into(),
            ]
        );
        assert!(lines.iter().any(|l| l.starts_with(
            "mount -t overlay -o lowerdir=/run/unionroot/lower1:/run/unionroot/lower,"
        )));
        assert!(lines
            .iter()
            .any(|l| l.ends_with("10.0.2.2:/srv/home /newroot/home")));
        let Step::ImageMount { origin, .. } = &root_steps(&p).build[4] else {
            panic!("step 4 is not the image")
        };
        assert_eq!(origin, "10.0.2.2:/srv/images or 10.0.2.4:/srv/images");
    }

    #[test]
    fn an_nfsv4_lower_is_checked_for_unmapped_owners_after_mounting() {
        let v4 = NfsPiece {
            candidates: vec![mount_args(
                "10.0.2.2".parse().unwrap(),
                "/system",
                NfsVersion::V4(2),
                None,
                &[],
                Access::ReadOnly,
            )],
            flags: ms::RDONLY,
        };
        let p = plan(vec![v4, piece(&["10.0.2.2"], "/srv/tools", ms::RDONLY)]);
        let steps = root_steps(&p);
        let owner_checks: Vec<usize> = steps
            .build
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Step::Check(Check::MappedOwner(_))))
            .map(|(i, _)| i)
            .collect();
        // Only the v4 layer, and right after its mount and directory check.
        assert_eq!(owner_checks.len(), 1, "{steps:#?}");
        assert!(
            matches!(&steps.build[owner_checks[0] - 2], Step::NfsMount { target, .. }
            if target == "/run/unionroot/lower")
        );
        assert_eq!(
            steps.build[owner_checks[0]].to_string(),
            "! stat -c '%u %g' /run/unionroot/lower | grep -qwE '65534|4294967294'"
        );
    }

    #[test]
    fn full_stack_two_lowers_failover_rw_persist_and_pivot() {
        let mut p = plan(vec![
            piece(&["10.0.0.1", "10.0.0.2"], "/srv/base", ms::RDONLY),
            piece(&["10.0.0.3"], "/srv/tools", ms::RDONLY | ms::NODEV),
        ]);
        p.rw_mounts.push((
            MountTarget::parse("/home").unwrap(),
            piece(&["10.0.0.1"], "/srv/home", ms::NOSUID | ms::NODEV),
        ));
        p.persist = Some(Persist {
            piece: piece(&["10.0.0.1"], "/srv/persist", ms::NOSUID | ms::NODEV),
            node: Hostname::parse("node7").unwrap(),
            paths: vec![MountTarget::parse("/var/log").unwrap()],
        });
        p.pivot = true;
        let steps = root_steps(&p);
        assert!(matches!(steps.switch, Step::PivotRoot { .. }));
        let lines: Vec<String> = steps.all().map(|s| s.to_string()).collect();
        let find = |needle: &str| {
            lines
                .iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle} in {lines:#?}"))
        };
        assert!(lines[find("10.0.0.1:/srv/base")]
            .ends_with("/run/unionroot/lower (failover: 10.0.0.2:/srv/base)"));
        assert!(lines[find("10.0.0.3:/srv/tools")].starts_with("mount -t nfs -o ro,nodev,"));
        // The cluster-software layer is on top: listed first.
        assert!(lines[find("overlay /newroot")]
            .contains("lowerdir=/run/unionroot/lower1:/run/unionroot/lower,"));
        let home = &lines[find("10.0.0.1:/srv/home")];
        assert!(
            home.starts_with("mount -t nfs -o nosuid,nodev,vers=3,proto=tcp,nolock,timeo")
                && home.ends_with(" /newroot/home"),
            "{home}"
        );
        assert!(
            home.contains(",nolock,"),
            "v3 NLM would need rpcbind in the client: {home}"
        );
        assert!(
            find("overlay /newroot") < find("/newroot/home"),
            "rw mounts go on top of the overlay"
        );
        assert!(lines.contains(
            &"test \"$(realpath -m /newroot/home)\" = /newroot/home # no symlinks below /newroot"
                .to_string()
        ));
        let bind = find("mount --bind");
        assert_eq!(
            lines[bind],
            "mount --bind /run/unionroot/persist/nodes/node7/var/log /newroot/var/log"
        );
        assert_eq!(
            lines[bind - 2],
            "mkdir -p -m 755 /run/unionroot/persist/nodes/node7/var/log"
        );
        assert_eq!(lines.last().unwrap(), "pivot_root /newroot /newroot/run/unionroot/oldroot; umount -l /run/unionroot/oldroot; exec /sbin/init single");
    }

    /// xorshift64*: a fixed seed gives the same hostile cases on every run, with no new crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap()
        }
        fn pick(&mut self, xs: &[String]) -> String {
            xs[self.below(xs.len())].clone()
        }
    }

    fn pieces() -> Vec<String> {
        [
            "..", ".", "", "a", "etc", "node-b", "var", "log", "x\ny", "\0", "\t", "-", "n.", "%s",
            " ", "\u{202e}", "é", "...", "..a", "a..", "b-", "-c", "10", "\x1b[2J",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["a".repeat(64), "b".repeat(256), "c".repeat(4000)])
        .collect()
    }

    fn hostile_path(r: &mut Rng, parts: &[String]) -> String {
        let n = 1 + r.below(5);
        let body: Vec<String> = (0..n).map(|_| r.pick(parts)).collect();
        let lead = if r.below(10) == 0 { "" } else { "/" };
        let trail = if r.below(4) == 0 { "/" } else { "" };
        format!("{lead}{}{trail}", body.join("/"))
    }

    fn hostile_name(r: &mut Rng, parts: &[String]) -> String {
        let n = 1 + r.below(4);
        let labels: Vec<String> = (0..n).map(|_| r.pick(parts)).collect();
        let sep = if r.below(8) == 0 { "/" } else { "." };
        labels.join(sep)
    }

    /// An independent lexical resolver (path_resolution(7) without symlinks): `None` for a
    /// relative path.
    fn resolve(p: &str) -> Option<Vec<&str>> {
        let rest = p.strip_prefix('/')?;
        let mut out: Vec<&str> = Vec::new();
        for c in rest.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    out.pop();
                }
                c => out.push(c),
            }
        }
        Some(out)
    }

    /// `p` is already in normal form and lies at or below `root`.
    fn at_or_below(p: &str, root: &str) -> bool {
        let (Some(rp), Some(rr)) = (resolve(p), resolve(root)) else {
            return false;
        };
        let normal = format!("/{}", rp.join("/"));
        normal == p && rp.len() >= rr.len() && rp[..rr.len()] == rr[..]
    }

    fn strictly_below(p: &str, root: &str) -> bool {
        at_or_below(p, root) && p != root
    }

    fn step_paths(s: &Step) -> Vec<&str> {
        match s {
            Step::Mkdir { path, .. } => vec![path],
            Step::Mount {
                source,
                target,
                flags,
                ..
            } if flags & ms::BIND != 0 => vec![source, target],
            Step::Mount { target, .. } | Step::NfsMount { target, .. } => vec![target],
            Step::Check(Check::IsDir(p))
            | Step::Check(Check::MappedOwner(p))
            | Step::Check(Check::HasRoom { path: p, .. }) => vec![p],
            Step::Check(Check::FsSupported(_)) | Step::NfsClientId(_) => vec![],
            Step::Check(Check::NoSymlinks { root, path }) => vec![root, path],
            Step::MoveMount { from, to } => vec![from, to],
            Step::LoadModule { path, .. } => vec![path],
            Step::ImageMount { images, target, .. } => vec![images, target],
            Step::SwitchRoot { new_root, .. } | Step::PivotRoot { new_root, .. } => {
                vec![new_root]
            }
        }
    }

    #[test]
    fn every_planned_path_stays_inside_over_hostile_inputs() {
        let parts = pieces();
        let mut r = Rng(0x5eed_1234_abcd_0001);
        let (mut accepted, mut refused) = (0, 0);
        for case in 0..3000 {
            // Refusals must cover exactly what the independent resolver calls dangerous.
            let mut targets = Vec::new();
            for _ in 0..4 {
                let raw = hostile_path(&mut r, &parts);
                let escapes = resolve(&raw)
                    .is_none_or(|rp| rp.is_empty() || raw.split('/').any(|c| c == ".."));
                match MountTarget::parse(&raw) {
                    Ok(t) => {
                        assert!(!escapes, "accepted {raw:?} as {t}");
                        assert!(!raw.chars().any(char::is_control), "{raw:?}");
                        accepted += 1;
                        targets.push(t);
                    }
                    Err(_) => refused += 1,
                }
            }
            let raw_node = hostile_name(&mut r, &parts);
            let node = match Hostname::parse(&raw_node) {
                Ok(n) => {
                    accepted += 1;
                    n
                }
                Err(_) => {
                    refused += 1;
                    Hostname::parse(if case % 2 == 0 { "node-a" } else { "10.0.0.7" }).unwrap()
                }
            };
            let mut p = plan(vec![piece(&["10.0.0.1"], "/srv/system", ms::RDONLY)]);
            p.pivot = case % 3 == 0;
            let split = targets.len() / 2;
            for t in &targets[..split] {
                p.rw_mounts
                    .push((t.clone(), piece(&["10.0.0.1"], "/srv/home", ms::NODEV)));
            }
            p.persist = Some(Persist {
                piece: piece(&["10.0.0.1"], "/srv/persist", ms::NODEV),
                node: node.clone(),
                paths: targets[split..].to_vec(),
            });
            let this_node = format!("{PERSIST_DIR}/nodes/{node}");
            let steps = root_steps(&p);
            // Paths in exported trees are checked for symlinks before anything uses them.
            let mut checked = BTreeSet::new();
            let exported =
                |path: &str| strictly_below(path, NEW_ROOT) || strictly_below(path, PERSIST_DIR);
            for s in steps.all() {
                match s {
                    Step::Check(Check::NoSymlinks { path, .. }) => {
                        checked.insert(path.clone());
                    }
                    Step::Mkdir { path, .. } if exported(path) => {
                        assert!(checked.contains(path), "`{s}` before its symlink check")
                    }
                    Step::Mount { source, target, .. } if exported(target) => {
                        assert!(checked.contains(target), "`{s}` before its symlink check");
                        assert!(checked.contains(source), "`{s}` before its symlink check");
                    }
                    Step::NfsMount { target, .. } if exported(target) => {
                        assert!(checked.contains(target), "`{s}` before its symlink check")
                    }
                    _ => {}
                }
                for path in step_paths(s) {
                    assert!(
                        at_or_below(path, NEW_ROOT) || at_or_below(path, "/run/unionroot"),
                        "{path:?} escapes in `{s}`"
                    );
                }
                match s {
                    // What is mounted into the new root never covers the root itself.
                    Step::NfsMount { target, .. } | Step::Mount { target, .. }
                        if target.starts_with(NEW_ROOT) && target != NEW_ROOT =>
                    {
                        assert!(strictly_below(target, NEW_ROOT), "`{s}`");
                    }
                    _ => {}
                }
                if let Step::Mount { source, flags, .. } = s {
                    if flags & ms::BIND != 0 {
                        assert!(
                            strictly_below(source, &this_node),
                            "`{s}` leaves {this_node}"
                        );
                    }
                }
                if let Step::Mkdir { path, .. } = s {
                    if path.starts_with(&format!("{PERSIST_DIR}/nodes")) {
                        assert!(strictly_below(path, &this_node), "`{s}`");
                    }
                }
            }
        }
        // Both sides were exercised, or the test proves nothing.
        assert!(accepted > 1000 && refused > 1000, "{accepted} {refused}");
    }

    #[test]
    fn node_name_never_falls_back_past_a_refused_name() {
        let h = |s: &str| Hostname::parse(s).unwrap();
        let a = Some("10.0.0.7".parse().unwrap());
        assert_eq!(
            node_name(Some(&h("n1")), Some("bad"), None, a),
            Ok(Some(h("n1")))
        );
        assert_eq!(
            node_name(None, Some("option 12 refused"), Some("n2"), a),
            Err("option 12 refused".into())
        );
        assert_eq!(node_name(None, None, Some("n2"), a), Ok(Some(h("n2"))));
        assert!(node_name(None, None, Some("../n2"), a)
            .unwrap_err()
            .contains("../n2"));
        assert_eq!(
            node_name(None, None, Some("(none)"), a),
            Ok(Some(h("10.0.0.7")))
        );
        assert_eq!(node_name(None, None, None, None), Ok(None));
    }
}
