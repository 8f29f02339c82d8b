//! The executor: runs planned [`Step`]s against a [`Sys`], logging each step's command line
//! before it runs. The root switch follows klibc's `usr/kinit/run-init/runinitlib.c`: check first,
//! then delete the initramfs without crossing mounts, move the new root onto `/`, chroot, exec.

use crate::sys::{Kind, Sys};
use nix::errno::Errno;
use std::time::Duration;
use thiserror::Error;
use unionroot_core::plan::{ms, Step, CARRIED};

const RAMFS_MAGIC: i64 = 0x8584_58f6;
const TMPFS_MAGIC: i64 = 0x0102_1994;

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
}

impl ExecError {
    pub fn hint(&self) -> &str {
        match self {
            ExecError::Step { hint, .. }
            | ExecError::GaveUp { hint, .. }
            | ExecError::SwitchRoot { hint, .. } => hint,
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
        (Step::Mount { fstype, source, .. }, _) if fstype.starts_with("nfs") => {
            let server = source.split(':').next().unwrap_or(source);
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
            retry,
        } => {
            let started = sys.now();
            let mut delay = Duration::from_millis(250);
            let mut attempts = 0u32;
            loop {
                attempts += 1;
                match sys.mount(source, target, fstype, *flags, data) {
                    Ok(()) => {
                        if attempts > 1 {
                            log::info!("mounted {target} after {attempts} attempts");
                        }
                        return Ok(());
                    }
                    Err(e) => {
                        let bound = match retry {
                            Some(b) if transient(e) => *b,
                            _ => return Err(fail(e)),
                        };
                        let waited = sys.now().saturating_sub(started);
                        if waited >= bound {
                            return Err(ExecError::GaveUp {
                                step: step.to_string(),
                                errno: e,
                                waited,
                                hint: hint_for(step, e),
                            });
                        }
                        if attempts == 1 || attempts.is_power_of_two() {
                            log::warn!(
                                "{target}: {e} ({}); retrying for up to {} s more",
                                e.desc(),
                                bound.saturating_sub(waited).as_secs()
                            );
                        }
                        sys.sleep(delay.min(bound.saturating_sub(waited)));
                        delay = (delay * 2).min(Duration::from_secs(2));
                    }
                }
            }
        }
        Step::MoveMount { from, to } => sys.mount(from, to, "", ms::MOVE, "").map_err(fail),
        Step::LoadModule { path, .. } => match sys.finit_module(path) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(fail(e)),
        },
        Step::SwitchRoot {
            new_root,
            init,
            args,
        } => switch_root(sys, new_root, init, args),
    }
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

fn switch_root(
    sys: &mut dyn Sys,
    new_root: &str,
    init: &str,
    args: &[String],
) -> Result<(), ExecError> {
    let refuse = |what: String, hint: &str| ExecError::SwitchRoot {
        what,
        hint: hint.into(),
    };
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
    match resolve_in_root(sys, new_root, init) {
        (_, Kind::File { executable: true }) => {}
        (at, Kind::File { executable: false }) => {
            return Err(refuse(
                format!("init {init} ({at}) is not executable in the new root"),
                "chmod +x it in the exported system tree",
            ));
        }
        (at, _) => {
            return Err(refuse(
                format!("init {init} does not exist in the new root (looked for {at})"),
                "set unionroot.init= to the real init of the exported system tree",
            ));
        }
    }
    let magic = sys.fs_magic("/").map_err(|e| errno_of("statfs /", e))?;
    if magic != RAMFS_MAGIC && magic != TMPFS_MAGIC {
        return Err(refuse(
            format!("/ is not an initramfs (filesystem magic {magic:#x}); refusing to delete it"),
            "from a real root, linuxrc must pivot_root instead",
        ));
    }
    for d in CARRIED {
        let target = join(new_root, d);
        let step = Step::MoveMount {
            from: d.into(),
            to: target.clone(),
        };
        log::info!("{step}");
        let _ = sys.mkdir(&target, 0o755);
        sys.mount(d, &target, "", ms::MOVE, "")
            .map_err(|e| ExecError::Step {
                step: step.to_string(),
                errno: e,
                hint: String::new(),
            })?;
    }
    log::info!("rm -rf (initramfs contents, not crossing mounts)");
    // Failing to free the initramfs wastes memory but does not stop the boot.
    if let Err(e) = sys.remove_same_device("/") {
        log::warn!("could not delete the initramfs contents: {e}");
    }
    let step_err = |s: &str, e: Errno| ExecError::Step {
        step: s.into(),
        errno: e,
        hint: String::new(),
    };
    sys.chdir(new_root)
        .map_err(|e| step_err(&format!("cd {new_root}"), e))?;
    sys.mount(".", "/", "", ms::MOVE, "")
        .map_err(|e| step_err(&format!("mount --move {new_root} /"), e))?;
    sys.chroot(".").map_err(|e| step_err("chroot .", e))?;
    sys.chdir("/").map_err(|e| step_err("cd /", e))?;
    let e = sys.exec(init, args);
    Err(step_err(&format!("exec {init}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{Call, Recorder};

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
            root_magic: TMPFS_MAGIC,
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
        let mut expect = Vec::new();
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
            let mkdir_or_rm = matches!(r.calls[n], Call::Mkdir(_) | Call::RemoveSameDevice(_));
            if mkdir_or_rm {
                // Tolerated: mkdir of an existing dir, or a partial cleanup, does not stop the switch.
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

    #[test]
    fn nfs_mount_retries_transient_errors_until_the_bound() {
        let step = Step::Mount {
            source: "10.0.2.2:/srv/system".into(),
            target: "/run/unionroot/lower".into(),
            fstype: "nfs".into(),
            flags: ms::RDONLY,
            data: "vers=3".into(),
            retry: Some(Duration::from_secs(5)),
        };
        // Comes up after 3 refusals.
        let mut r = Recorder {
            fail_mount: Some(("/run/unionroot/lower".into(), Errno::ECONNREFUSED, 3)),
            ..Default::default()
        };
        run_step(&mut r, &step).unwrap();
        let mounts = r
            .calls
            .iter()
            .filter(|c| matches!(c, Call::Mount { .. }))
            .count();
        assert_eq!(mounts, 4);
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
        // A wrong path is not transient: one attempt, and the hint talks about exports.
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
        assert_eq!(r.calls.len(), 1);
        assert!(e.hint().contains("exports"));
    }

    #[test]
    fn module_already_loaded_is_fine_and_bad_module_is_named() {
        let step = Step::LoadModule {
            name: "nfs".into(),
            path: "/lib/modules/x/nfs.ko".into(),
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
}
