//! The fuzz tier on the stable toolchain: each target in `fuzz/checks.rs` runs for a time budget
//! over its seed corpus (`testdata/fuzz/<target>/`) and over mutations of it, with a small
//! deterministic PRNG. No coverage instrumentation (that needs nightly and cargo-fuzz, see
//! `fuzz/`); instead an input whose outcome has a new "shape" is kept for further mutation.
//!
//! Environment:
//! - `UNIONROOT_FUZZ_SECS`: seconds per target (default 1, so that a plain `cargo test` stays
//!   quick; `make fuzz` sets 8).
//! - `UNIONROOT_FUZZ_SEED`: the base seed (decimal or 0x-hex); otherwise one from the clock. It
//!   is printed, and every failure prints it with the input, so a run can be replayed.
//! - `UNIONROOT_FUZZ_REPLAY=<hex>`: run just this input through the selected targets.
//!
//! Each input gets `catch_unwind` (a panic is a failure, reported with the input in hex), a
//! 250 ms budget (a slow input is re-run twice, and reported if every run was slow), and a
//! watchdog that reports an input still running after 5 s (a hang) instead of letting CI time
//! out silently.
// A test crate, fuzz/checks.rs included: a failed property is a panic that carries the input,
// and the harness indexes buffers it has just sized. The PID-1 lints in Cargo.toml are for
// shipped code; clippy.toml already exempts #[test] functions, but not these helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "fuzz/checks.rs"]
mod checks;

use checks::Report;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// One input may take this long (debug build, shared CI machine: generous). Wall time, so a
/// slow input is timed up to [`SLOW_TRIES`] times and only the fastest counts: on a loaded
/// 2-core machine one preemption can cost more than this, three in a row are a real cost.
const SLOW: Duration = Duration::from_millis(250);
const SLOW_TRIES: usize = 3;
/// An input still running after this long is a hang.
const HANG: Duration = Duration::from_secs(5);
/// Inputs kept for mutation, at most.
const POOL_MAX: usize = 2048;

/// Tokens that matter to the parsers: mutation inserts them whole, since random bytes rarely
/// spell them.
const COMMON_DICT: &[&[u8]] = &[
    b"unionroot.",
    b"=",
    b",",
    b":",
    b"|",
    b"..",
    b"/",
    b"%",
    b"%s",
    b"\xff",
    b"\xc3\xa9",
    b" ",
    b"\"",
    b"\n",
    b"\t",
    b"#",
    b"-",
    b"\x00",
    b"\x1b",
    b"0",
    b"255",
    b"4294967296",
    b"99999999999999999999",
    b"0.0.0.0",
    b"10.0.0.1",
    b"255.255.255.0",
];

const CMDLINE_DICT: &[&[u8]] = &[
    b"ip=",
    b"nfsroot=",
    b"BOOTIF=01-",
    b"unionroot.mount=/",
    b"unionroot.lower=",
    b"unionroot.persist=",
    b"unionroot.persist_paths=/",
    b"unionroot.init=/",
    b"unionroot.size=",
    b"unionroot.nfsvers=",
    b"unionroot.mac=",
    b"nfs.nfs4_unique_id=",
    b"unionroot.modules=",
    b"unionroot.onfail=",
    b"unionroot.debug",
    b"virtio_net.napi_tx=",
    b"virtio-net.",
    b"ixgbe.allow_unsupported_sfp=1",
    b"nfs.",
    b"\"m.p=a b\"",
    b"\xc2\xa0",
    b"unionroot.server_timeout=",
    b"unionroot.dhcp_timeout=",
    b" -- ",
    b"vers=4.1",
    b"v3",
    b",ro",
    b",rw",
    b",lock",
    b",port=",
    b"/..",
    b"../",
    b"/newroot",
    b"/run/unionroot",
    b":::::eth0:dhcp",
    b"off",
    b"52:54:00:12:34:56",
];

const DHCP_DICT: &[&[u8]] = &[
    &[99, 130, 83, 99],
    &[53, 1, 2],
    &[53, 1, 5],
    &[53, 1, 6],
    &[54, 4, 10, 0, 0, 1],
    &[52, 1, 3],
    &[1, 4, 255, 255, 255, 0],
    &[12, 0],
    &[17, 3, b'/', b'.', b'.'],
    &[255],
    &[0],
    &[2, 0x2c, 0x01],
    &[0, 1, 2, 3],
];

const MODULES_DICT: &[&[u8]] = &[
    b".ko",
    b".ko.xz",
    b": ",
    b"kernel/",
    b"alias ",
    b"[!",
    b"[^",
    b"[]",
    b"[!]",
    b"a-z",
    b"[[:alpha:]]",
    b"[:digit:]",
    b"[.a.]",
    b"[=a=]",
    b"*",
    b"?",
    b"[",
    b"]",
    b"\\",
    b"_",
    b"pci:v",
];

const PNP_DICT: &[&[u8]] = &[
    b"#PROTO: DHCP\n",
    b"#MANUAL\n",
    b"domain ",
    b"nameserver ",
    b"bootserver ",
    b"'",
    b"'\\''",
    b"eth0\t00000000\t",
];

/// splitmix64 (Steele, Lea, Flood 2014): tiny, seedable, and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), near enough.
    fn below(&mut self, n: usize) -> usize {
        // Below n, so it fits; the fallback is never taken.
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    /// A random byte (the low one).
    fn byte(&mut self) -> u8 {
        let [low, ..] = self.next().to_le_bytes();
        low
    }
}

fn env_secs() -> f64 {
    match std::env::var("UNIONROOT_FUZZ_SECS") {
        Ok(v) => v
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or_else(|| panic!("UNIONROOT_FUZZ_SECS={v:?} is not a number of seconds")),
        Err(_) => 1.0,
    }
}

/// The base seed, one per test process so that one line replays every target.
fn env_seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(read_seed)
}

fn read_seed() -> u64 {
    match std::env::var("UNIONROOT_FUZZ_SEED") {
        Ok(v) => {
            let parsed = match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("UNIONROOT_FUZZ_SEED={v:?} is not a u64"))
        }
        Err(_) => {
            let t = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            t.as_secs().wrapping_mul(1_000_000_007) ^ u64::from(t.subsec_nanos())
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(2 * b.len()), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn unhex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|p| {
            u8::from_str_radix(std::str::from_utf8(p).unwrap_or("?"), 16)
                .unwrap_or_else(|_| panic!("UNIONROOT_FUZZ_REPLAY is not hex"))
        })
        .collect()
}

/// The seed inputs of `target`, sorted by file name. A `.hex` file holds hex (whitespace is
/// ignored), so that binary seeds stay reviewable; anything else is taken as is.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "testdata", "fuzz", target]
        .iter()
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "README.md"))
        .map(|p| {
            let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            if p.extension().is_some_and(|x| x == "hex") {
                unhex(&String::from_utf8_lossy(&bytes))
            } else {
                bytes
            }
        })
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// One to eight stacked mutations of `base`: bit flips, byte changes, inserts and deletes,
/// dictionary tokens, chunk copies, and splices with another input from `pool`.
fn mutate(rng: &mut Rng, base: &[u8], pool: &[Vec<u8>], dict: &[&[u8]], max_len: usize) -> Vec<u8> {
    let mut v = base.to_vec();
    let most = if rng.below(4) == 0 { 8 } else { 3 };
    let rounds = 1 + rng.below(most);
    for _ in 0..rounds {
        let at = |rng: &mut Rng, v: &Vec<u8>| rng.below(v.len() + 1);
        match rng.below(10) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0, 0xff, 0x7f, 0x80, b'0', b'9', b'/', b'.', rng.byte()][rng.below(9)];
            }
            2 => {
                let i = at(rng, &v);
                v.insert(i, rng.byte());
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(16));
                v.drain(i..i + n);
            }
            4 | 5 => {
                let tok = dict[rng.below(dict.len())];
                let i = at(rng, &v);
                if rng.below(2) == 0 {
                    v.splice(i..i, tok.iter().copied());
                } else {
                    let end = (i + tok.len()).min(v.len());
                    v.splice(i..end, tok.iter().copied());
                }
            }
            6 if !pool.is_empty() => {
                // Splice: our head, another input's tail.
                let other = &pool[rng.below(pool.len())];
                let i = at(rng, &v);
                let j = rng.below(other.len() + 1);
                v.truncate(i);
                v.extend_from_slice(&other[j..]);
            }
            7 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(32));
                let chunk = v[i..i + n].to_vec();
                let j = at(rng, &v);
                v.splice(j..j, chunk);
            }
            8 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.truncate(i);
            }
            _ => {
                let i = at(rng, &v);
                let n = rng.next() >> rng.below(64);
                v.splice(i..i, n.to_string().into_bytes());
            }
        }
    }
    v.truncate(max_len);
    v
}

struct Summary {
    execs: u64,
    elapsed: Duration,
    kept: usize,
    violations: u64,
    /// The first input found for each kind of violation: (kind, message, input).
    examples: Vec<(String, String, Vec<u8>)>,
}

type Check = fn(&[u8]) -> Report;

/// What the worker thread is running now: for the watchdog.
type Current = Arc<Mutex<Option<(Instant, Vec<u8>)>>>;

fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic)".into())
}

fn fail(name: &str, seed: u64, exec: u64, what: &str, input: &[u8]) -> ! {
    panic!(
        "fuzz target {name}: {what}\n  seed {seed:#018x}, input #{exec}, {} bytes: {}\n  \
         as text: {:?}\n  replay: UNIONROOT_FUZZ_REPLAY={} cargo test -p unionroot-core --test fuzz {name}",
        input.len(),
        hex(input),
        String::from_utf8_lossy(input),
        hex(input)
    )
}

/// The fuzz loop of one target, on the worker thread.
fn run_loop(
    name: &'static str,
    check: Check,
    dict: Vec<&'static [u8]>,
    max_len: usize,
    seed: u64,
    budget: Duration,
    current: Current,
) -> Summary {
    let mut rng = Rng(seed
        ^ name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        }));
    let seeds = corpus(name);
    let mut pool = seeds.clone();
    let mut shapes = HashSet::new();
    let mut s = Summary {
        execs: 0,
        elapsed: Duration::ZERO,
        kept: 0,
        violations: 0,
        examples: Vec::new(),
    };
    let start = Instant::now();
    let exec = |input: &[u8], s: &mut Summary| -> Report {
        *current.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), input.to_vec()));
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| check(input)));
        let mut dt = t.elapsed();
        for _ in 1..SLOW_TRIES {
            if dt <= SLOW {
                break;
            }
            // Again, so that a hiccup of a shared machine is not reported as a bug.
            let t = Instant::now();
            let _ = catch_unwind(AssertUnwindSafe(|| check(input)));
            dt = dt.min(t.elapsed());
        }
        *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        s.execs += 1;
        let r = match r {
            Ok(r) => r,
            Err(e) => fail(
                name,
                seed,
                s.execs,
                &format!("panicked: {}", panic_message(&*e)),
                input,
            ),
        };
        if dt > SLOW {
            fail(
                name,
                seed,
                s.execs,
                &format!("slow: {dt:?} for one input (limit {SLOW:?})"),
                input,
            );
        }
        for v in &r.violations {
            s.violations += 1;
            let kind = v.split(':').next().unwrap_or("").to_string();
            if !s.examples.iter().any(|(k, _, _)| *k == kind) {
                s.examples.push((kind, v.clone(), input.to_vec()));
            }
        }
        r
    };
    // The seeds as they are first: each must pass, and their shapes are the baseline.
    for input in &seeds {
        shapes.insert(exec(input, &mut s).shape);
    }
    while start.elapsed() < budget {
        let base = &pool[rng.below(pool.len())];
        let input = mutate(&mut rng, base, &pool, &dict, max_len);
        let r = exec(&input, &mut s);
        if shapes.insert(r.shape) && pool.len() < POOL_MAX {
            pool.push(input);
            s.kept += 1;
        }
    }
    s.elapsed = start.elapsed();
    s
}

/// Runs target `name` for the time budget (or replays one input), with a watchdog for hangs,
/// and prints a one-line summary.
fn fuzz(name: &'static str, check: Check, extra_dict: &[&'static [u8]], max_len: usize) {
    if let Ok(h) = std::env::var("UNIONROOT_FUZZ_REPLAY") {
        let input = unhex(&h);
        println!("fuzz {name}: replaying {} bytes", input.len());
        let r = check(&input);
        println!("fuzz {name}: passed; violations: {:#?}", r.violations);
        return;
    }
    let seed = env_seed();
    let budget = Duration::from_secs_f64(env_secs());
    let dict: Vec<&'static [u8]> = COMMON_DICT.iter().chain(extra_dict).copied().collect();
    let current: Current = Arc::new(Mutex::new(None));
    let worker = {
        let current = current.clone();
        thread::Builder::new()
            .name(format!("fuzz-{name}"))
            .spawn(move || run_loop(name, check, dict, max_len, seed, budget, current))
            .expect("spawn the fuzz worker")
    };
    while !worker.is_finished() {
        thread::sleep(Duration::from_millis(20));
        let stuck = current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(t, _)| t.elapsed() > HANG)
            .map(|(_, input)| input.clone());
        if let Some(input) = stuck {
            // The worker cannot be stopped; the test process ends with this failure.
            fail(
                name,
                seed,
                0,
                &format!("hang: still running after {HANG:?}"),
                &input,
            );
        }
    }
    let s = match worker.join() {
        Ok(s) => s,
        Err(e) => std::panic::resume_unwind(e),
    };
    println!(
        "\nfuzz {name:<8} {:>8} execs in {:>5.1} s ({:>6.0}/s)  seed {seed:#018x}  kept {:>4}  violations {}",
        s.execs,
        s.elapsed.as_secs_f64(),
        s.execs as f64 / s.elapsed.as_secs_f64().max(1e-9),
        s.kept,
        s.violations,
    );
    for (kind, msg, input) in &s.examples {
        let msg: String = msg.chars().take(400).collect();
        println!(
            "  not enforced (CONTAINMENT_ENFORCED = false): {kind}\n    {msg}\n    input: {}",
            hex(input)
        );
    }
}

#[test]
fn cmdline() {
    fuzz("cmdline", checks::check_cmdline, CMDLINE_DICT, 4096);
}

#[test]
fn ip() {
    fuzz(
        "ip",
        checks::check_ip,
        &[b"dhcp", b"off", b"eth0", b"::"],
        512,
    );
}

#[test]
fn nfsroot() {
    fuzz("nfsroot", checks::check_nfsroot, CMDLINE_DICT, 1024);
}

#[test]
fn image() {
    fuzz(
        "image",
        checks::check_image,
        &[
            b".sqfs", b".erofs", b"\n", b"/", b"..", b"-", b"system", b"\0",
        ],
        512,
    );
}

#[test]
fn dhcp() {
    fuzz("dhcp", checks::check_dhcp, DHCP_DICT, 4096);
}

#[test]
fn modules() {
    fuzz("modules", checks::check_modules, MODULES_DICT, 4096);
}

#[test]
fn pnp() {
    fuzz("pnp", checks::check_pnp, PNP_DICT, 2048);
}

#[test]
fn plan() {
    fuzz("plan", checks::check_plan, CMDLINE_DICT, 4096);
}

/// The properties themselves must be able to fail: the path checker finds escapes, paths that
/// are not normal, symlink checks outside their root and node names that are not one component
/// (on hand-made steps, since the planner no longer makes them), the normalizer resolves `..`,
/// and what the validation layer refuses is refused before it reaches a plan.
#[test]
fn the_checks_can_fail() {
    use unionroot_core::plan::{Check, Step};
    assert_eq!(checks::normalize("/newroot/a/../../etc"), "/etc");
    assert_eq!(checks::normalize("/newroot/./a//b/"), "/newroot/a/b");
    assert_eq!(checks::normalize("/../.."), "/");
    let bind = |source: &str, target: &str| Step::Mount {
        source: source.into(),
        target: target.into(),
        fstype: String::new(),
        flags: unionroot_core::plan::ms::BIND,
        data: String::new(),
    };
    let cases: [(Step, &str, &str); 6] = [
        (
            bind("/run/unionroot/persist/nodes/../node-b/var", "/newroot/var"),
            "node07",
            "escape",
        ),
        (
            bind("/run/unionroot/persist/nodes/x/var", "/newroot/var"),
            "../x",
            "node name",
        ),
        (
            Step::Mkdir {
                path: "/newroot/..".into(),
                mode: 0o755,
            },
            "node07",
            "escape",
        ),
        (
            Step::Mkdir {
                path: "/newroot/a//b".into(),
                mode: 0o755,
            },
            "node07",
            "not normal",
        ),
        (
            Step::Check(Check::NoSymlinks {
                root: "/newroot".into(),
                path: "/run/unionroot/x".into(),
            }),
            "node07",
            "escape",
        ),
        (
            Step::Check(Check::MappedOwner("/etc".into())),
            "node07",
            "outside any root",
        ),
    ];
    for (step, node, kind) in cases {
        let v = checks::containment_violations([&step], node);
        assert!(
            v.iter().any(|v| v.starts_with(kind)),
            "`{step}` with node {node:?}: {v:?}"
        );
    }
    // A hostile node name or mount point is refused before planning, with no violation.
    for input in [
        &b"unionroot.persist=10.0.0.1:/srv/p unionroot.persist_paths=/var/log\0\0../node-b"[..],
        b"unionroot.mount=/..=10.0.0.1:/srv/home",
        b"unionroot.persist=10.0.0.1:/srv/p unionroot.persist_paths=/var/log -- a\x1bb",
    ] {
        let r = checks::check_plan(input);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
    }
    let clean = checks::check_plan(
        b"unionroot.persist=10.0.0.1:/srv/p unionroot.persist_paths=/var/log\0\0node07",
    );
    assert!(clean.violations.is_empty(), "{:?}", clean.violations);
}
