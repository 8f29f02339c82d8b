//! The test double for [`Sys`] (test builds only): records every state-changing call as a typed
//! [`Call`], answers queries from tables, and fails on demand, so tests can assert the exact
//! syscall sequence of a plan and what happens when call *n* fails.

use super::{Kind, Removal, Sys};
use nix::errno::Errno;
use std::time::Duration;

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
    FinitModule {
        path: String,
        params: String,
    },
    RemoveSameDevice(String),
    Chdir(String),
    Chroot(String),
    PivotRoot(String, String),
    Exec(String, Vec<String>),
    SetHostname(String),
    WriteFile(String),
    Probe(std::net::Ipv4Addr, u16),
    Sleep(Duration),
    Sync,
    LoopAttach(String),
    CopyFile(String, String),
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
    /// What every `remove_same_device` reports having done.
    pub removal: Removal,
    /// File lengths `read_head` reports, when not the length of the file's bytes.
    pub sizes: std::collections::HashMap<String, u64>,
    /// Loop devices handed out so far (the next is `/dev/loop<n>`).
    pub loops: usize,
    /// What `random_u64` answers (`None`: the kernel had no random bytes).
    pub random: Option<u64>,
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
    fn finit_module(&mut self, path: &str, params: &str) -> Result<(), Errno> {
        self.record(Call::FinitModule {
            path: path.into(),
            params: params.into(),
        })
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
    fn remove_same_device(&mut self, root: &str) -> Result<Removal, Errno> {
        self.record(Call::RemoveSameDevice(root.into()))?;
        Ok(self.removal.clone())
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
    fn random_u64(&mut self) -> Option<u64> {
        self.random
    }
    fn sync(&mut self) {
        // sync(2) cannot fail, so a `fail_at` on it has nothing to report.
        let _ = self.record(Call::Sync);
    }
    fn read_head(&mut self, path: &str, len: usize) -> Result<(Vec<u8>, u64), Errno> {
        let b = self.read_bytes(path)?;
        let size = self
            .sizes
            .get(path)
            .copied()
            .unwrap_or(b.len().try_into().unwrap_or(u64::MAX));
        Ok((b.into_iter().take(len).collect(), size))
    }
    fn loop_attach(&mut self, path: &str) -> Result<String, Errno> {
        self.record(Call::LoopAttach(path.into()))?;
        self.loops += 1;
        Ok(format!("/dev/loop{}", self.loops - 1))
    }
    fn copy_file(&mut self, from: &str, to: &str) -> Result<u64, Errno> {
        self.record(Call::CopyFile(from.into(), to.into()))?;
        let (bytes, size) = self.read_head(from, usize::MAX)?;
        self.raw_files.insert(to.into(), bytes);
        self.sizes.insert(to.into(), size);
        Ok(size)
    }
}
