//! The boot plan as data. Planners turn the configuration into a list of [`Step`]s; the
//! executor in `linuxrc` logs each step's `Display` (which reads like the shell command it
//! replaces) and then runs it. Follows mount(2), `Documentation/filesystems/overlayfs.rst` and
//! klibc's run-init for the root switch.

use crate::modules::{ModError, ModuleDb};
use crate::nfs::NfsMountArgs;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// mount(2) flags, with the Linux values (this crate is Linux-only by purpose).
pub mod ms {
    pub const RDONLY: u64 = 1;
    pub const NOSUID: u64 = 2;
    pub const NODEV: u64 = 4;
    pub const NOEXEC: u64 = 8;
    pub const BIND: u64 = 4096;
    pub const MOVE: u64 = 8192;
    pub const REC: u64 = 16384;
    pub const PRIVATE: u64 = 1 << 18;
}

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
        /// Keep retrying transient failures (server unreachable, refused, timed out) this long.
        retry: Option<Duration>,
    },
    /// Move an existing mount (`mount --move`).
    MoveMount {
        from: String,
        to: String,
    },
    LoadModule {
        name: String,
        path: String,
    },
    /// klibc run-init's checked sequence: new root on another device, init present in it, `/`
    /// on ramfs/tmpfs; move [`CARRIED`] across, delete the initramfs contents without crossing
    /// mounts, move the new root onto `/`, chroot, exec init.
    SwitchRoot {
        new_root: String,
        init: String,
        args: Vec<String>,
    },
}

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
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
                ..
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
            Step::LoadModule { path, .. } => write!(f, "insmod {path}"),
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
        retry: None,
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
/// built in or already loaded. `base` is `/lib/modules/<release>`.
pub fn module_steps(
    db: &ModuleDb,
    needs: &ModuleNeeds<'_>,
    base: &str,
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
            name: m.name,
        })
        .collect())
}

/// Everything needed to build the union root.
#[derive(Debug, Clone)]
pub struct RootPlan {
    pub nfs: NfsMountArgs,
    /// How long to keep retrying the NFS mount while the server is unreachable.
    pub mount_timeout: Duration,
    /// tmpfs `size=` for the writable layer.
    pub overlay_size: String,
    pub init: String,
    pub init_args: Vec<String>,
}

/// Overlay options that are safe over an NFS lower (overlayfs.rst, "Non-standard behavior" and
/// the feature sections): `index` and `xino` need stable inode numbers and file handles across
/// remounts, which an NFS lower served by failover servers does not promise; `metacopy` and
/// `redirect_dir` write overlay-private xattrs whose meaning older kernels or other tools reading
/// the upper would not know. All four default to kernel config values, so state them.
pub const SAFE_OVERLAY_OPTS: &str = "index=off,metacopy=off,redirect_dir=off,xino=off";

/// Steps from "network is up" to "exec the real init".
pub fn root_steps(p: &RootPlan) -> Vec<Step> {
    vec![
        mkdir(LOWER_DIR, 0o755),
        // Read-only, but not nosuid/nodev: this is the system's own root (sudo, /dev nodes in
        // chroots), and the overlay passes the lower's files through.
        Step::Mount {
            source: p.nfs.source.clone(),
            target: LOWER_DIR.into(),
            fstype: p.nfs.fstype.into(),
            flags: ms::RDONLY,
            data: p.nfs.data.clone(),
            retry: Some(p.mount_timeout),
        },
        mkdir(RW_DIR, 0o755),
        mount(
            "tmpfs",
            RW_DIR,
            "tmpfs",
            0,
            &format!("size={},mode=0755", p.overlay_size),
        ),
        mkdir(UPPER_DIR, 0o755),
        mkdir(WORK_DIR, 0o755),
        mkdir(NEW_ROOT, 0o755),
        mount(
            "overlay",
            NEW_ROOT,
            "overlay",
            0,
            &format!(
                "lowerdir={LOWER_DIR},upperdir={UPPER_DIR},workdir={WORK_DIR},{SAFE_OVERLAY_OPTS}"
            ),
        ),
        Step::SwitchRoot {
            new_root: NEW_ROOT.into(),
            init: p.init.clone(),
            args: p.init_args.clone(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfs::{mount_args, NfsVersion};

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
        let steps = module_steps(&db, &needs, "/lib/modules/6.1").unwrap();
        assert_eq!(
            steps,
            [Step::LoadModule {
                name: "nfs".into(),
                path: "/lib/modules/6.1/kernel/fs/nfs/nfs.ko".into()
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
        assert!(module_steps(&db, &needs, "/x").is_err());
    }

    #[test]
    fn root_plan_is_nfs_then_tmpfs_then_overlay_then_switch() {
        let nfs = mount_args(
            "10.0.2.2".parse().unwrap(),
            "/srv/system",
            NfsVersion::V3,
            None,
            &[],
        );
        let plan = RootPlan {
            nfs,
            mount_timeout: Duration::from_secs(30),
            overlay_size: "256m".into(),
            init: "/sbin/init".into(),
            init_args: vec!["single".into()],
        };
        let lines: Vec<String> = root_steps(&plan).iter().map(|s| s.to_string()).collect();
        assert_eq!(
            lines,
            [
                "mkdir -p -m 755 /run/unionroot/lower",
                "mount -t nfs -o ro,vers=3,proto=tcp,nolock,timeo=600,retrans=2,addr=10.0.2.2 10.0.2.2:/srv/system /run/unionroot/lower",
                "mkdir -p -m 755 /run/unionroot/rw",
                "mount -t tmpfs -o size=256m,mode=0755 tmpfs /run/unionroot/rw",
                "mkdir -p -m 755 /run/unionroot/rw/upper",
                "mkdir -p -m 755 /run/unionroot/rw/work",
                "mkdir -p -m 755 /newroot",
                "mount -t overlay -o lowerdir=/run/unionroot/lower,upperdir=/run/unionroot/rw/upper,workdir=/run/unionroot/rw/work,index=off,metacopy=off,redirect_dir=off,xino=off overlay /newroot",
                "switch_root /newroot /sbin/init single",
            ]
        );
        let steps = root_steps(&plan);
        assert!(
            matches!(&steps[1], Step::Mount { retry: Some(d), .. } if *d == Duration::from_secs(30))
        );
    }
}
