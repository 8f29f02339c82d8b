//! Kernel module metadata: `modules.dep`, `modules.builtin` and `modules.alias`, as written by
//! depmod(8) (see modules.dep(5)). Turns "I need nfsv3" into the ordered list of `.ko` files to
//! hand to finit_module(2), dependencies first, each once. `modules.softdep` (modprobe.d(5)'s
//! `softdep` lines, as depmod extracts them) adds the `pre:` modules to that order: Debian 6.1's
//! `libcrc32c` asks for `crc32c` through request_module(), which needs /sbin/modprobe, absent
//! from an initramfs, so `crc32c` has to be loaded before it. `post:` modules follow theirs, as
//! modprobe(8) loads them: after the module, once everything wanted before them is loaded.

use std::collections::{BTreeSet, HashMap};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModError {
    #[error("modules.dep line {line}: expected '<path>.ko: <deps>', got {text:?}")]
    BadLine { line: usize, text: String },
    #[error("module {0:?} is not in modules.dep (not shipped for this kernel?); check the module name or the initramfs's module list")]
    Unknown(String),
    #[error("modules.dep and modules.softdep have a dependency cycle through {0:?}")]
    Cycle(String),
}

/// Canonical module name: basename without `.ko[.xz|.zst|.gz]`, with `-` folded to `_`
/// (the kernel treats both as the same character in module names). Suffixes are stripped until
/// none is left, so that the canonical name is a fixed point: `kernel/a.ko.ko` and `a.ko` are
/// both `a`, and looking a canonical name up again (as [`ModuleDb::contains`] does) finds the
/// same module. Real module names never contain `.`.
pub fn module_name(path_or_name: &str) -> String {
    let mut stem = path_or_name.rsplit('/').next().unwrap_or(path_or_name);
    while let Some(s) = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|ext| stem.strip_suffix(ext))
    {
        stem = s;
    }
    stem.replace('-', "_")
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    path: String,
    deps: Vec<String>,
    /// `pre:` softdeps resolved to shipped modules, loaded before this one.
    pre: Vec<String>,
    /// `post:` softdeps resolved to shipped modules, loaded after this one.
    post: Vec<String>,
}

/// One module's soft dependencies as written in `modules.softdep` (names may be aliases).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SoftDep {
    pub pre: Vec<String>,
    pub post: Vec<String>,
}

/// Parses `modules.softdep` text: `softdep <module> [pre: <names>...] [post: <names>...]`, lines
/// of one module merged in file order. Names before any `pre:`/`post:` are pre-deps, as
/// modprobe.d(5) treats them. Other lines are ignored.
pub fn parse_softdep(text: &str) -> HashMap<String, SoftDep> {
    let mut out: HashMap<String, SoftDep> = HashMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if it.next() != Some("softdep") {
            continue;
        }
        let Some(module) = it.next() else { continue };
        let sd = out.entry(module_name(module)).or_default();
        let mut post = false;
        for word in it {
            match word {
                "pre:" => post = false,
                "post:" => post = true,
                w if post => sd.post.push(w.to_string()),
                w => sd.pre.push(w.to_string()),
            }
        }
    }
    out
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
    aliases: Vec<(Pattern, String)>,
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
                    pre: Vec::new(),
                    post: Vec::new(),
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
                    (Some("alias"), Some(pat), Some(m)) => {
                        Some((Pattern::new(pat.as_bytes()), module_name(m)))
                    }
                    _ => None,
                }
            })
            .collect();
        self
    }

    /// Adds `modules.softdep` text; call after [`ModuleDb::with_aliases`], since softdeps often
    /// name aliases (`crc32c`). A name that resolves to no module here is dropped: a softdep is
    /// soft, and the initramfs ships only its closure.
    pub fn with_softdeps(mut self, text: &str) -> Self {
        let mut soft: Vec<(String, SoftDep)> = parse_softdep(text).into_iter().collect();
        soft.sort_by(|a, b| a.0.cmp(&b.0));
        for (module, sd) in soft {
            let resolve = |names: &[String]| -> Vec<String> {
                names
                    .iter()
                    .filter_map(|n| self.softdep_target(n))
                    .filter(|m| *m != module)
                    .collect()
            };
            let (pre, post) = (resolve(&sd.pre), resolve(&sd.post));
            if let Some(e) = self.entries.get_mut(&module) {
                e.pre = pre;
                e.post = post;
            }
        }
        self
    }

    /// The module a softdep name stands for: the module itself, else the modules whose alias
    /// pattern matches the name; among several, the `_generic` one (it works on every CPU),
    /// else the first by name, so the choice is deterministic.
    pub fn softdep_target(&self, name: &str) -> Option<String> {
        let canon = module_name(name);
        if self.entries.contains_key(&canon) {
            return Some(canon);
        }
        let found: Vec<String> = self
            .resolve_alias(name)
            .into_iter()
            .filter(|m| self.entries.contains_key(m))
            .collect();
        found
            .iter()
            .find(|m| m.ends_with("_generic"))
            .or(found.first())
            .cloned()
    }

    /// Every module a softdep of `name` (pre and post) resolves to, for the initramfs closure.
    pub fn softdep_modules(&self, softdeps: &HashMap<String, SoftDep>, name: &str) -> Vec<String> {
        softdeps
            .get(&module_name(name))
            .map(|sd| {
                sd.pre
                    .iter()
                    .chain(&sd.post)
                    .filter_map(|n| self.softdep_target(n))
                    .collect()
            })
            .unwrap_or_default()
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
            .filter(|(pat, _)| pat.matches(modalias.as_bytes()))
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
        // Post-softdeps of finished modules, walked once the stack is empty (last first).
        let mut after: Vec<&'a str> = Vec::new();
        let mut next = Some(root);
        loop {
            if next.is_none() && stack.is_empty() {
                next = after.pop();
            }
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
            // in reverse keeps that order among independent deps. The pre-softdeps come after
            // them, still before the module itself.
            if let Some(dep) = entry.deps.iter().rev().chain(&entry.pre).nth(*walked) {
                *walked += 1;
                next = Some(dep.as_str());
            } else {
                state.insert(name.to_string(), true);
                out.push(ModRef {
                    name: name.to_string(),
                    path: entry.path.clone(),
                });
                after.extend(entry.post.iter().rev().map(String::as_str));
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

/// One element of an fnmatch(3) pattern. Every element but `Star` consumes exactly one byte,
/// which is what makes backtracking to the last `*` alone sufficient (see [`Pattern::matches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    Byte(u8),
    Any,
    Star,
    /// A bracket expression: `text[start..end]` is what lies between `[`/`[!` and the closing `]`.
    Set {
        start: usize,
        end: usize,
        negated: bool,
    },
    /// Matches nothing: a trailing `\` or a bracket with a malformed `[.`, with which glibc's
    /// fnmatch returns FNM_NOMATCH whatever the string.
    Never,
}

/// A compiled `modules.alias` pattern with the semantics of `fnmatch(pattern, string, 0)`,
/// which is how kmod matches alias patterns against a device's modalias (libkmod-index.c, the
/// wildcard search of the modules.alias index, `index_searchwild`): glibc's fnmatch in the C
/// locale, the one modprobe runs in (fnmatch(3); POSIX.1-2017 XCU 2.13 "Pattern Matching
/// Notation"). With flags 0 there is no FNM_PATHNAME or FNM_PERIOD, so `*` and `?` match any
/// byte, `/` and a leading `.` included, and `\` escapes the next character. In a bracket, `!`
/// or `^` first negates; a `]` first (after the negation) is literal; `a-z` is a range in byte
/// order; `[:alpha:]` and the other eleven POSIX classes are ASCII-only; `[=c=]` and `[.c.]`
/// stand for `c`; an unclosed `[` is a literal `[`. glibc's own answers for 2,500 patterns are
/// in `testdata/fnmatch/glibc.tsv`, and a unit test holds this matcher to them.
///
/// Compiled once because modules.alias is loaded once and matched against every device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: Vec<u8>,
    elems: Vec<Elem>,
}

impl Pattern {
    pub fn new(pat: &[u8]) -> Self {
        let mut elems = Vec::new();
        let mut p = 0;
        while let Some((elem, next)) = element(pat, p) {
            elems.push(elem);
            p = next;
        }
        Pattern {
            text: pat.to_vec(),
            elems,
        }
    }

    /// Iterative, O(elements × string): on a mismatch only the most recent `*` is retried one
    /// byte further. That is enough because every other element consumes exactly one byte, so
    /// a later `*` can absorb whatever an earlier one would have (the classic wildcard
    /// algorithm). A recursive matcher is exponential on `*a*a*a*b`, and input is untrusted.
    pub fn matches(&self, s: &[u8]) -> bool {
        let (mut e, mut i) = (0, 0);
        // Element index just after the last `*`, and the string position it absorbs up to.
        let mut star: Option<(usize, usize)> = None;
        while let Some(&c) = s.get(i) {
            if let Some(&elem) = self.elems.get(e) {
                let hit = match elem {
                    Elem::Star => {
                        star = Some((e + 1, i));
                        e += 1;
                        continue;
                    }
                    Elem::Byte(b) => b == c,
                    Elem::Any => true,
                    Elem::Set {
                        start,
                        end,
                        negated,
                    } => self
                        .text
                        .get(start..end)
                        .and_then(|body| set_contains(body, c))
                        .is_some_and(|h| h != negated),
                    Elem::Never => false,
                };
                if hit {
                    e += 1;
                    i += 1;
                    continue;
                }
            }
            match star {
                Some((after, absorbed)) => {
                    e = after;
                    i = absorbed + 1;
                    star = Some((after, absorbed + 1));
                }
                None => return false,
            }
        }
        // What is left of the pattern must be able to match nothing.
        self.elems
            .get(e..)
            .unwrap_or_default()
            .iter()
            .all(|&x| x == Elem::Star)
    }
}

/// `fnmatch(pat, s, 0)`; see [`Pattern`].
pub fn fnmatch(pat: &[u8], s: &[u8]) -> bool {
    Pattern::new(pat).matches(s)
}

/// The element at `pat[p]` and the position after it; `None` at the end of the pattern.
fn element(pat: &[u8], p: usize) -> Option<(Elem, usize)> {
    Some(match *pat.get(p)? {
        b'*' => (Elem::Star, p + 1),
        b'?' => (Elem::Any, p + 1),
        b'\\' => match pat.get(p + 1) {
            Some(&b) => (Elem::Byte(b), p + 2),
            None => (Elem::Never, p + 1),
        },
        b'[' => match bracket_end(pat, p) {
            Some(Ok((start, end, negated))) => (
                Elem::Set {
                    start,
                    end,
                    negated,
                },
                end + 1,
            ),
            Some(Err(after)) => (Elem::Never, after),
            None => (Elem::Byte(b'['), p + 1),
        },
        b => (Elem::Byte(b), p + 1),
    })
}

/// The twelve classes POSIX defines for every locale; any other name makes the pattern match
/// nothing in glibc.
const CLASSES: [&[u8]; 12] = [
    b"alnum", b"alpha", b"blank", b"cntrl", b"digit", b"graph", b"lower", b"print", b"punct",
    b"space", b"upper", b"xdigit",
];

fn class_contains(name: &[u8], c: u8) -> bool {
    match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        // C isspace: also \v, which Rust's is_ascii_whitespace leaves out.
        b"space" => matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'),
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => false,
    }
}

/// One item of a bracket body.
#[derive(Debug, Clone, Copy)]
enum Item<'p> {
    Char(u8),
    /// `[=c=]`: `c` in the C locale, but glibc refuses it as the end of a range.
    Equiv(u8),
    /// `[:name:]`, valid or not: glibc only rejects an unknown name when it reaches it, so
    /// `[a[:foo:]]` still matches `a`.
    Class(&'p [u8]),
    /// A malformed collating symbol (`[.ab.]`, or `[.` never closed): glibc's fnmatch returns
    /// FNM_NOMATCH as soon as it parses one, even in the part it skips after a match.
    Broken,
}

/// Reads the item at `b[k]`: `\c`, `[:name:]`, `[=c=]`, `[.c.]` or a plain byte, following
/// glibc in the C locale: a class name is lower-case letters `a`..`y` closed by `:]`, else the
/// `[` is an ordinary character; `[=` that is not `[=c=]` is an ordinary `[` too. Returns the
/// item and the position after it, or `None` when the pattern ends inside the item.
fn bracket_item(b: &[u8], k: usize) -> Option<(Item<'_>, usize)> {
    let c = *b.get(k)?;
    if c == b'\\' {
        return Some((Item::Char(*b.get(k + 1)?), k + 2));
    }
    if c != b'[' {
        return Some((Item::Char(c), k + 1));
    }
    match b.get(k + 1) {
        Some(b':') => {
            // `y`, not `z`: glibc tests `c < 'a' || c >= 'z'`, and the table agrees.
            let rest = b.get(k + 2..).unwrap_or_default();
            let name_len = rest
                .iter()
                .position(|&x| !(b'a'..=b'y').contains(&x))
                .unwrap_or(rest.len());
            let name = rest.get(..name_len).unwrap_or_default();
            let end = k + 2 + name_len;
            if b.get(end) == Some(&b':') && b.get(end + 1) == Some(&b']') {
                return Some((Item::Class(name), end + 2));
            }
        }
        Some(&delim @ (b'=' | b'.')) => {
            if let (Some(&x), Some(&d), Some(b']')) = (b.get(k + 2), b.get(k + 3), b.get(k + 4)) {
                if d == delim {
                    let item = if delim == b'=' {
                        Item::Equiv(x)
                    } else {
                        Item::Char(x)
                    };
                    return Some((item, k + 5));
                }
            }
            if delim == b'.' {
                return Some((Item::Broken, k + 2));
            }
        }
        _ => {}
    }
    Some((Item::Char(b'['), k + 1))
}

/// Finds the end of the bracket expression opened at `pat[p] == '['`. `Some(Ok(..))`: where
/// its body starts and ends (the closing `]`), and whether it is negated; `Some(Err(after))`:
/// it holds a malformed collating symbol, so it matches nothing; `None`: it is not closed, so
/// the `[` is a literal character.
fn bracket_end(pat: &[u8], p: usize) -> Option<Result<(usize, usize, bool), usize>> {
    let mut k = p + 1;
    let negated = matches!(pat.get(k), Some(b'!' | b'^'));
    if negated {
        k += 1;
    }
    let start = k;
    let mut broken = false;
    loop {
        let c = *pat.get(k)?;
        if c == b']' && k > start {
            return Some(if broken {
                Err(k + 1)
            } else {
                Ok((start, k, negated))
            });
        }
        let (item, next) = bracket_item(pat, k)?;
        broken |= matches!(item, Item::Broken);
        k = next;
    }
}

/// Whether byte `c` is in the bracket body `b` (negation is the caller's), scanning the items
/// in order as glibc does; `None` when an unknown class name is reached first, with which
/// glibc's fnmatch gives up (FNM_NOMATCH) whether or not the bracket is negated.
fn set_contains(b: &[u8], c: u8) -> Option<bool> {
    let mut k = 0;
    while let Some((item, next)) = bracket_item(b, k) {
        k = next;
        match item {
            Item::Class(name) if !CLASSES.contains(&name) => return None,
            Item::Class(name) => {
                if class_contains(name, c) {
                    return Some(true);
                }
            }
            Item::Equiv(x) => {
                // Not a range start either: a `-` after it is an ordinary character.
                if x == c {
                    return Some(true);
                }
            }
            Item::Char(lo) => {
                // `a-z`; a `-` first or last, or after a range, is an ordinary character.
                if b.get(k) == Some(&b'-') && k + 1 < b.len() {
                    match bracket_item(b, k + 1) {
                        Some((Item::Char(hi), after)) => {
                            k = after;
                            if lo <= c && c <= hi {
                                return Some(true);
                            }
                            continue;
                        }
                        // glibc: a class or an equivalence class cannot end a range.
                        Some((Item::Class(_) | Item::Equiv(_), _)) => return None,
                        _ => {}
                    }
                }
                if lo == c {
                    return Some(true);
                }
            }
            Item::Broken => return None,
        }
    }
    Some(false)
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
        // A fixed point (found by the modules fuzz target): "a.ko.ko" once gave "a.ko",
        // which contains() then canonicalized to "a".
        assert_eq!(module_name("kernel/a.ko.ko"), "a");
        assert_eq!(
            module_name(&module_name("a.ko.ko.xz")),
            module_name("a.ko.ko.xz")
        );
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
        assert!(fnmatch(b"a[0-9]c", b"a5c"));
        assert!(!fnmatch(b"a[!0-9]c", b"a5c"));
        assert!(fnmatch(b"*", b""));
    }

    /// QEMU's arm64 `virt` machine describes its virtio-mmio transports in the device tree; the
    /// kernel names them on the platform bus as below (`of:N<name>T<type>C<compatible>`, the
    /// type being "(null)"), and Debian's arm64 modules.alias carries these three patterns.
    #[test]
    fn alias_globs_match_device_tree_virtio_mmio() {
        let db = ModuleDb::parse_dep(DEP).unwrap().with_aliases(
            "alias of:N*T*Cvirtio,mmioC* virtio_mmio\n\
             alias of:N*T*Cvirtio,mmio virtio_mmio\n\
             alias acpi*:LNRO0005:* virtio_mmio\n",
        );
        assert_eq!(
            db.resolve_alias("of:NvirtioT(null)Cvirtio,mmio"),
            ["virtio_mmio"]
        );
        assert_eq!(db.resolve_alias("acpi:LNRO0005:"), ["virtio_mmio"]);
        assert!(db.resolve_alias("of:Npl011T(null)Carm,pl011").is_empty());
    }

    /// Each row of testdata/fnmatch/glibc.tsv is what glibc's own fnmatch(pattern, string, 0)
    /// answered (gen.py calls it through ctypes); kmod uses exactly that call.
    #[test]
    fn fnmatch_agrees_with_glibc() {
        let table = include_str!("../testdata/fnmatch/glibc.tsv");
        let mut wrong = Vec::new();
        let mut rows = 0;
        for line in table.lines().filter(|l| !l.starts_with('#')) {
            let mut f = line.split('\t');
            let (Some(want), Some(pat), Some(s), None) = (f.next(), f.next(), f.next(), f.next())
            else {
                panic!("bad row {line:?}");
            };
            rows += 1;
            let got = fnmatch(pat.as_bytes(), s.as_bytes());
            if got != (want == "1") {
                wrong.push(format!("fnmatch({pat:?}, {s:?}): glibc {want}, ours {got}"));
            }
        }
        assert!(rows > 2000, "{rows} rows");
        assert!(
            wrong.is_empty(),
            "{} of {rows} differ:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }

    /// The cases the old matcher got wrong, spelled out.
    #[test]
    fn fnmatch_edge_cases() {
        for (pat, s, want) in [
            (&b"a\\*b"[..], &b"a*b"[..], true),
            (b"a\\*b", b"axb", false),
            (b"a\\", b"a", false),
            (b"[", b"[", true),
            (b"[a", b"[a", true),
            (b"[]]", b"]", true),
            (b"[!]]", b"]", false),
            (b"[!]]", b"x", true),
            (b"[]a]", b"a", true),
            (b"[a-]", b"-", true),
            (b"[[:alpha:]]", b"q", true),
            (b"[[:alpha:]]", b"1", false),
            (b"[![:digit:]x]", b"y", true),
            (b"[[:foo:]]", b"f", false),
            (b"*\xff", b"a\xff", true),
        ] {
            assert_eq!(fnmatch(pat, s), want, "{pat:?} {s:?}");
        }
        // Exponential for a recursive matcher; linear-ish here.
        let s = vec![b'a'; 10_000];
        assert!(!fnmatch(
            &b"*a"
                .repeat(50)
                .into_iter()
                .chain(*b"b")
                .collect::<Vec<_>>(),
            &s
        ));
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

    // Debian 6.1: erofs needs libcrc32c, whose init asks for crc32c (an alias) by softdep.
    const SOFT_DEP: &str = "\
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/fs/erofs/erofs.ko: kernel/lib/libcrc32c.ko
kernel/crypto/crc32c_generic.ko:
kernel/lib/libcrc32c.ko:
kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/drivers/char/ipmi/ipmi_msghandler.ko:
kernel/drivers/char/ipmi/ipmi_devintf.ko: kernel/drivers/char/ipmi/ipmi_msghandler.ko
";
    const SOFT_ALIAS: &str = "\
alias crypto-crc32c-intel crc32c_intel
alias crc32c-intel crc32c_intel
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel
alias crypto-crc32c-generic crc32c_generic
alias crc32c-generic crc32c_generic
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
alias fs-erofs erofs
";
    const SOFTDEP: &str = "\
# Soft dependencies extracted from modules themselves.
softdep ext4 pre: crypto-crc32c
softdep jbd2 pre: crypto-crc32c
softdep cifs gcm
softdep libcrc32c pre: crc32c
softdep ipmi_msghandler post: ipmi_devintf
";

    #[test]
    fn softdep_lines_parse_into_pre_and_post() {
        let sd = parse_softdep(SOFTDEP);
        assert_eq!(sd["libcrc32c"].pre, ["crc32c"]);
        assert_eq!(sd["cifs"].pre, ["gcm"]);
        assert_eq!(sd["ipmi_msghandler"].post, ["ipmi_devintf"]);
        assert!(sd["ipmi_msghandler"].pre.is_empty());
        let both = parse_softdep("softdep a-b pre: x y post: z\nsoftdep a_b pre: w\n");
        assert_eq!(both["a_b"].pre, ["x", "y", "w"]);
        assert_eq!(both["a_b"].post, ["z"]);
    }

    #[test]
    fn pre_softdeps_load_first_through_the_generic_alias() {
        let db = ModuleDb::parse_dep(SOFT_DEP)
            .unwrap()
            .with_aliases(SOFT_ALIAS)
            .with_softdeps(SOFTDEP);
        assert_eq!(
            db.softdep_target("crc32c").as_deref(),
            Some("crc32c_generic")
        );
        assert_eq!(
            db.softdep_target("crc32c-intel").as_deref(),
            Some("crc32c_intel")
        );
        assert_eq!(db.softdep_target("gcm"), None);
        assert_eq!(
            names(&db.load_order(&["erofs"]).unwrap()),
            ["crc32c_generic", "libcrc32c", "erofs"]
        );
        assert_eq!(
            names(&db.load_order(&["ext4"]).unwrap()),
            ["crc32c_generic", "jbd2", "ext4"]
        );
        // Only the intel one shipped: it is taken. None shipped: the softdep is dropped.
        let intel = SOFT_DEP.replace("kernel/crypto/crc32c_generic.ko:\n", "");
        let db2 = ModuleDb::parse_dep(&intel)
            .unwrap()
            .with_aliases(SOFT_ALIAS)
            .with_softdeps(SOFTDEP);
        assert_eq!(
            names(&db2.load_order(&["erofs"]).unwrap()),
            ["crc32c_intel", "libcrc32c", "erofs"]
        );
        let none = "kernel/fs/erofs/erofs.ko: kernel/lib/libcrc32c.ko\nkernel/lib/libcrc32c.ko:\n";
        let db3 = ModuleDb::parse_dep(none)
            .unwrap()
            .with_aliases(SOFT_ALIAS)
            .with_softdeps(SOFTDEP);
        assert_eq!(
            names(&db3.load_order(&["erofs"]).unwrap()),
            ["libcrc32c", "erofs"]
        );
        // A post-softdep loads after its module, even when it depends on that module
        // (ipmi_devintf needs ipmi_msghandler), and after what the module was wanted with.
        assert_eq!(
            names(&db.load_order(&["ipmi_msghandler"]).unwrap()),
            ["ipmi_msghandler", "ipmi_devintf"]
        );
        assert_eq!(
            names(&db.load_order(&["ipmi_devintf"]).unwrap()),
            ["ipmi_msghandler", "ipmi_devintf"]
        );
        let chained = "softdep a post: b c\nsoftdep b post: d\n";
        let db4 = ModuleDb::parse_dep("a.ko:\nb.ko:\nc.ko: b.ko\nd.ko: a.ko\n")
            .unwrap()
            .with_softdeps(chained);
        assert_eq!(
            names(&db4.load_order(&["a"]).unwrap()),
            ["a", "b", "d", "c"]
        );
        // The closure helper sees post-softdeps too.
        let sd = parse_softdep(SOFTDEP);
        assert_eq!(db.softdep_modules(&sd, "ipmi_msghandler"), ["ipmi_devintf"]);
        assert_eq!(db.softdep_modules(&sd, "libcrc32c"), ["crc32c_generic"]);
    }

    #[test]
    fn a_softdep_cycle_is_named() {
        let db = ModuleDb::parse_dep("a.ko:\nb.ko:\n")
            .unwrap()
            .with_softdeps("softdep a pre: b\nsoftdep b pre: a\n");
        assert!(matches!(db.load_order(&["a"]), Err(ModError::Cycle(_))));
    }
}
