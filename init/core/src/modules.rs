//! Kernel module metadata: `modules.dep`, `modules.builtin` and `modules.alias`, as written by
//! depmod(8) (see modules.dep(5)). Turns "I need nfsv3" into the ordered list of `.ko` files to
//! hand to finit_module(2), dependencies first, each once.

use std::collections::{BTreeSet, HashMap};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModError {
    #[error("modules.dep line {line}: expected '<path>.ko: <deps>', got {text:?}")]
    BadLine { line: usize, text: String },
    #[error("module {0:?} is not in modules.dep (not shipped for this kernel?); check the module name or the initramfs's module list")]
    Unknown(String),
    #[error("modules.dep has a dependency cycle through {0:?}")]
    Cycle(String),
}

/// Canonical module name: basename without `.ko[.xz|.zst|.gz]`, with `-` folded to `_`
/// (the kernel treats both as the same character in module names).
pub fn module_name(path_or_name: &str) -> String {
    let base = path_or_name.rsplit('/').next().unwrap_or(path_or_name);
    let stem = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|ext| base.strip_suffix(ext))
        .unwrap_or(base);
    stem.replace('-', "_")
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    path: String,
    deps: Vec<String>,
}

/// One module to load: its canonical name and its path relative to `/lib/modules/<release>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModRef {
    pub name: String,
    pub path: String,
}

/// The parsed contents of `modules.dep` (and optionally `modules.alias`).
#[derive(Debug, Default, Clone)]
pub struct ModuleDb {
    entries: HashMap<String, Entry>,
    aliases: Vec<(String, String)>,
}

impl ModuleDb {
    /// Parses `modules.dep` text.
    pub fn parse_dep(text: &str) -> Result<Self, ModError> {
        let mut entries = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (path, deps) = line.split_once(':').ok_or_else(|| ModError::BadLine {
                line: i + 1,
                text: raw.to_string(),
            })?;
            let path = path.trim();
            if path.is_empty() {
                return Err(ModError::BadLine {
                    line: i + 1,
                    text: raw.to_string(),
                });
            }
            let deps = deps.split_whitespace().map(module_name).collect();
            entries.insert(
                module_name(path),
                Entry {
                    path: path.to_string(),
                    deps,
                },
            );
        }
        Ok(ModuleDb {
            entries,
            aliases: Vec::new(),
        })
    }

    /// Adds `modules.alias` text (`alias <glob> <module>` lines) for modalias matching.
    pub fn with_aliases(mut self, text: &str) -> Self {
        self.aliases = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                match (it.next(), it.next(), it.next()) {
                    (Some("alias"), Some(pat), Some(m)) => Some((pat.to_string(), module_name(m))),
                    _ => None,
                }
            })
            .collect();
        self
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(&module_name(name))
    }

    pub fn path(&self, name: &str) -> Option<&str> {
        self.entries
            .get(&module_name(name))
            .map(|e| e.path.as_str())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The modules whose alias pattern matches `modalias` (as read from sysfs), sorted and
    /// deduplicated.
    pub fn resolve_alias(&self, modalias: &str) -> Vec<String> {
        let set: BTreeSet<String> = self
            .aliases
            .iter()
            .filter(|(pat, _)| glob_match(pat.as_bytes(), modalias.as_bytes()))
            .map(|(_, m)| m.clone())
            .collect();
        set.into_iter().collect()
    }

    /// The dependencies of module `name` as listed in modules.dep (canonical names, in file
    /// order), or `None` when it is not listed.
    pub fn deps(&self, name: &str) -> Option<&[String]> {
        self.entries
            .get(&module_name(name))
            .map(|e| e.deps.as_slice())
    }

    /// The closure of `wanted` in load order: every module after all of its dependencies, each
    /// once. The order among independent modules follows `wanted`, so the result is stable.
    pub fn load_order<S: AsRef<str>>(&self, wanted: &[S]) -> Result<Vec<ModRef>, ModError> {
        let mut out = Vec::new();
        let mut state: HashMap<String, bool> = HashMap::new(); // false = visiting, true = done
        for w in wanted {
            self.visit(&module_name(w.as_ref()), &mut state, &mut out)?;
        }
        Ok(out)
    }

    /// Depth-first post-order walk from `root`, with an explicit stack: modules.dep is input,
    /// and a chain as deep as the file is long must not overflow PID 1's stack (one recursion
    /// per level did, at about 10^5 levels).
    fn visit<'a>(
        &'a self,
        root: &'a str,
        state: &mut HashMap<String, bool>,
        out: &mut Vec<ModRef>,
    ) -> Result<(), ModError> {
        // (module, its entry, how many of its deps have been walked)
        let mut stack: Vec<(&'a str, &'a Entry, usize)> = Vec::new();
        let mut next = Some(root);
        loop {
            if let Some(name) = next.take() {
                match state.get(name) {
                    Some(true) => {}
                    Some(false) => return Err(ModError::Cycle(name.to_string())),
                    None => {
                        let entry = self
                            .entries
                            .get(name)
                            .ok_or_else(|| ModError::Unknown(name.to_string()))?;
                        state.insert(name.to_string(), false);
                        stack.push((name, entry, 0));
                    }
                }
            }
            let Some((name, entry, walked)) = stack.last_mut() else {
                return Ok(());
            };
            // depmod lists a module's deps so that the last must be loaded first; walking them
            // in reverse keeps that order among independent deps.
            if let Some(dep) = entry.deps.iter().rev().nth(*walked) {
                *walked += 1;
                next = Some(dep.as_str());
            } else {
                state.insert(name.to_string(), true);
                out.push(ModRef {
                    name: name.to_string(),
                    path: entry.path.clone(),
                });
                stack.pop();
            }
        }
    }
}

/// Module names from `modules.builtin` (one `kernel/...ko` path per line).
pub fn parse_builtin(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(module_name)
        .collect()
}

/// Names of loaded modules from `/proc/modules` (first field of each line).
pub fn parse_proc_modules(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(module_name)
        .collect()
}

/// fnmatch(3)-style matching of `*`, `?` and `[...]`, enough for modules.alias patterns.
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, i));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(&pat[p..], s[i]) {
                        if matched {
                            p += next;
                            i += 1;
                            continue;
                        }
                    }
                }
                c if c == s[i] => {
                    p += 1;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp + 1;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Matches one `[...]` class at the start of `pat`; returns (matched, class length).
fn class_match(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let end = pat.iter().skip(2).position(|&b| b == b']')? + 2;
    let body = &pat[1..end];
    let (neg, body) = match body.first() {
        Some(b'!') | Some(b'^') => (true, &body[1..]),
        _ => (false, body),
    };
    let mut hit = false;
    let mut k = 0;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == b'-' {
            hit |= body[k] <= c && c <= body[k + 2];
            k += 3;
        } else {
            hit |= body[k] == c;
            k += 1;
        }
    }
    Some((hit != neg, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    // An excerpt of Debian 6.1's modules.dep, with the NFS and virtio chains.
    const DEP: &str = "\
kernel/fs/overlayfs/overlay.ko:
kernel/net/sunrpc/sunrpc.ko:
kernel/fs/nfs_common/grace.ko:
kernel/fs/lockd/lockd.ko: kernel/net/sunrpc/sunrpc.ko kernel/fs/nfs_common/grace.ko
kernel/fs/netfs/netfs.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/nfs/nfs.ko: kernel/fs/lockd/lockd.ko kernel/net/sunrpc/sunrpc.ko kernel/fs/nfs_common/grace.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/fs/nfs_common/nfs_acl.ko: kernel/net/sunrpc/sunrpc.ko
kernel/fs/nfs/nfsv3.ko: kernel/fs/nfs/nfs_acl.ko kernel/fs/nfs/nfs.ko kernel/fs/lockd/lockd.ko kernel/net/sunrpc/sunrpc.ko kernel/fs/nfs_common/grace.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/drivers/net/failover.ko
kernel/drivers/net/net_failover.ko: kernel/drivers/net/failover.ko
kernel/drivers/net/failover.ko:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
";

    fn names(v: &[ModRef]) -> Vec<&str> {
        v.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn closure_puts_every_dependency_first_and_once() {
        let db = ModuleDb::parse_dep(DEP).unwrap();
        let order = db.load_order(&["nfsv3", "overlay", "nfs"]).unwrap();
        let n = names(&order);
        assert_eq!(n.len(), 9, "{n:?}");
        let pos = |m: &str| n.iter().position(|x| *x == m).unwrap();
        for (m, deps) in [
            (
                "nfsv3",
                &[
                    "nfs", "nfs_acl", "lockd", "sunrpc", "grace", "fscache", "netfs",
                ][..],
            ),
            ("nfs", &["lockd", "sunrpc", "grace", "fscache", "netfs"][..]),
            ("lockd", &["sunrpc", "grace"][..]),
            ("fscache", &["netfs"][..]),
        ] {
            for d in deps {
                assert!(pos(d) < pos(m), "{d} must load before {m}: {n:?}");
            }
        }
        assert_eq!(order.last().unwrap().path, "kernel/fs/overlayfs/overlay.ko");
    }

    #[test]
    fn dash_and_underscore_are_the_same_module() {
        let db = ModuleDb::parse_dep("kernel/a/virtio-net.ko:\n").unwrap();
        assert_eq!(
            names(&db.load_order(&["virtio_net"]).unwrap()),
            ["virtio_net"]
        );
        assert_eq!(module_name("kernel/x/nfs-acl.ko.zst"), "nfs_acl");
    }

    #[test]
    fn unknown_module_and_bad_line_and_cycle_are_named_errors() {
        let db = ModuleDb::parse_dep(DEP).unwrap();
        assert_eq!(
            db.load_order(&["zfs"]).unwrap_err(),
            ModError::Unknown("zfs".into())
        );
        assert_eq!(
            ModuleDb::parse_dep("ok.ko:\ngarbage\n").unwrap_err(),
            ModError::BadLine {
                line: 2,
                text: "garbage".into()
            }
        );
        let cyc = ModuleDb::parse_dep("a.ko: b.ko\nb.ko: a.ko\n").unwrap();
        assert!(matches!(cyc.load_order(&["a"]), Err(ModError::Cycle(_))));
    }

    #[test]
    fn builtin_and_proc_modules() {
        let b = parse_builtin("kernel/fs/ext4/ext4.ko\nkernel/drivers/virtio/virtio-pci.ko\n");
        assert!(b.contains("ext4") && b.contains("virtio_pci"));
        let p =
            parse_proc_modules("nfsv3 45056 1 - Live 0x0000000000000000\noverlay 1 0 - Live 0x0\n");
        assert_eq!(p.into_iter().collect::<Vec<_>>(), ["nfsv3", "overlay"]);
    }

    #[test]
    fn alias_globs_match_pci_and_virtio_modaliases() {
        let db = ModuleDb::parse_dep(DEP).unwrap().with_aliases(
            "alias virtio:d00000001v* virtio_net\n\
             alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000\n\
             alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n\
             alias fs-nfs4 nfsv4\n",
        );
        assert_eq!(
            db.resolve_alias("virtio:d00000001v00001AF4"),
            ["virtio_net"]
        );
        assert_eq!(
            db.resolve_alias("pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00"),
            ["e1000"]
        );
        assert!(db
            .resolve_alias("pci:v000010ECd00008139sv0sd0bc02sc00i00")
            .is_empty());
        assert!(glob_match(b"a[0-9]c", b"a5c"));
        assert!(!glob_match(b"a[!0-9]c", b"a5c"));
        assert!(glob_match(b"*", b""));
    }
    #[test]
    fn a_100k_deep_chain_resolves_without_recursion() {
        const N: usize = 100_000;
        let mut dep = String::new();
        for i in 0..N {
            dep.push_str(&format!("m{i}.ko:"));
            if i + 1 < N {
                dep.push_str(&format!(" m{}.ko", i + 1));
            }
            dep.push('\n');
        }
        let db = ModuleDb::parse_dep(&dep).unwrap();
        let order = db.load_order(&["m0"]).unwrap();
        assert_eq!(order.len(), N);
        assert_eq!(order[0].name, format!("m{}", N - 1));
        assert_eq!(order[N - 1].name, "m0");
        // Closing the chain into a loop is a named error, however deep.
        let looped = format!("{dep}m{}.ko: m0.ko\n", N - 1);
        let db = ModuleDb::parse_dep(&looped).unwrap();
        assert_eq!(
            db.load_order(&["m0"]).unwrap_err(),
            ModError::Cycle("m0".into())
        );
    }

    #[test]
    fn cycles_and_shared_deps() {
        let db = ModuleDb::parse_dep("a.ko: b.ko\nb.ko: c.ko\nc.ko: a.ko\nd.ko: d.ko\n").unwrap();
        assert_eq!(
            db.load_order(&["b"]).unwrap_err(),
            ModError::Cycle("b".into())
        );
        assert_eq!(
            db.load_order(&["d"]).unwrap_err(),
            ModError::Cycle("d".into())
        );
        // A diamond is not a cycle: the shared dependency loads once, first.
        let db = ModuleDb::parse_dep("top.ko: l.ko r.ko\nl.ko: base.ko\nr.ko: base.ko\nbase.ko:\n")
            .unwrap();
        assert_eq!(
            names(&db.load_order(&["top", "l"]).unwrap()),
            ["base", "r", "l", "top"]
        );
        assert_eq!(db.deps("top").unwrap(), ["l", "r"]);
    }
}
