//! The bodies of unionroot-core's fuzz targets, shared by two runners: `tests/fuzz.rs` (a
//! time-bounded randomized `cargo test` that runs in CI on stable) and `fuzz/fuzz_targets/*.rs`
//! (cargo-fuzz/libFuzzer, for long runs on nightly). Each `check_<target>(data)` feeds arbitrary
//! bytes to one parser or state machine through the public API only, and panics when a property
//! fails; returning is a pass. Properties: no panic, print/parse round trips where a type both
//! prints and parses, load-order and alias invariants, and, for the planner, that every path
//! stays inside the root it is joined onto (STYLE.md "Hostile input").
//!
//! The returned [`Report`] carries a coarse "shape" of what the input exercised (which error,
//! which DHCP transitions), which the stable runner uses as its only feedback: an input with a
//! new shape is kept for further mutation. libFuzzer ignores it and uses coverage instead.
#![allow(dead_code)] // each fuzz_targets/*.rs binary uses one check

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::Ipv4Addr;
use std::time::Duration;

use unionroot_core::addr::Mac;
use unionroot_core::cmdline::{tokenize, Config, IpConfig};
use unionroot_core::dhcp::{udp_payload, Action, Client, ClientConfig, Event};
use unionroot_core::handoff::Proto;
use unionroot_core::handoff::{
    default_gateway, initramfs_tools_conf, offered, parse_pnp, resolv_conf, NetInfo,
};
use unionroot_core::image::{parse_pointer, ImageSpec};
use unionroot_core::modules::{fnmatch, module_name, ModError, ModuleDb};
use unionroot_core::nfs::{mount_args, split_vfs_options, Access, NfsRoot, NfsVersion};
use unionroot_core::plan::{self, root_steps, Check, Step, NEW_ROOT, PERSIST_DIR};
use unionroot_core::root::{self, Facts};

/// Whether [`check_plan`], [`check_dhcp`] and [`check_pnp`] panic on what the validation layer
/// for hostile input (`src/validate.rs`) refuses: a planned path that leaves its root, covers
/// /newroot or is not in normal form, a node name that is not one path component, a control
/// character in a step's log line or a logged warning, a DHCP string that splits into several
/// file lines or is passed on changed or silently dropped. Enforced since that layer landed;
/// setting it to false turns the violations into a printed list again (for triage only).
pub const CONTAINMENT_ENFORCED: bool = true;

/// One violation per line linuxrc would log that carries a control character.
fn control_in_log<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> Vec<String> {
    lines
        .into_iter()
        .filter(|l| l.as_ref().chars().any(char::is_control))
        .map(|l| format!("control character: in the log line {:?}", l.as_ref()))
        .collect()
}

/// Fails the input on any violation while [`CONTAINMENT_ENFORCED`].
fn enforce(violations: &[String]) {
    if CONTAINMENT_ENFORCED {
        assert!(violations.is_empty(), "{}", violations.join("\n"));
    }
}

/// What one input exercised.
#[derive(Debug, Default)]
pub struct Report {
    /// A hash of the outcome's kind (which error variant, which transitions); inputs with a
    /// shape not seen before are kept for further mutation.
    pub shape: u64,
    /// Property violations found (each `<kind>: <message>`). With [`CONTAINMENT_ENFORCED`] the
    /// check has already panicked on any; the runner prints them only when it is off.
    pub violations: Vec<String>,
}

fn shape_of(h: impl Hash) -> u64 {
    let mut s = DefaultHasher::new();
    h.hash(&mut s);
    s.finish()
}

/// The error variant's name, e.g. `BadValue` for `BadValue { key: .., .. }`: a shape that does
/// not grow with the input.
fn variant(e: &impl std::fmt::Debug) -> String {
    let d = format!("{e:?}");
    d.split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_string()
}

/// Splits `data` at its first NUL: the parts of a multi-input target.
fn split_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Config file and command line: `<file>\0<cmdline>`, or just a command line.
fn config_input(data: &[u8]) -> (&[u8], &[u8]) {
    match split_nul(data) {
        (cmdline, []) if !data.contains(&0) => (&[], cmdline),
        (file, rest) => (file, split_nul(rest).0),
    }
}

/// Every parsed NFS spec prints back to itself. A path that ends in whitespace before the
/// options (`/a ,`, or `2f7373d3092c` = `/ss\xd3\t,` from an earlier run) used to print as a
/// different path; `NfsRoot::parse` now refuses whitespace and control characters in the path,
/// and the `nfsroot` seeds `trailing-space-before-options` and `tab-before-options.hex` keep
/// both cases in the corpus.
fn nfs_round_trip(r: &NfsRoot) {
    let printed = r.to_string();
    assert_eq!(
        NfsRoot::parse(&printed).as_ref(),
        Ok(r),
        "NfsRoot {r:?} printed as {printed:?} does not parse back to itself"
    );
}

fn ip_round_trip(c: &IpConfig) {
    let printed = c.to_string();
    assert_eq!(
        IpConfig::parse(&printed).as_ref(),
        Ok(c),
        "IpConfig {c:?} printed as {printed:?} does not parse back to itself"
    );
    let _ = c.mode();
}

/// Every form core writes a MAC in reads back as that MAC.
fn mac_round_trip(m: Mac) {
    for text in [m.to_string(), m.hyphens(), m.to_string().to_uppercase()] {
        assert_eq!(Mac::parse(&text), Ok(m), "{text}");
    }
    assert_eq!(Mac::parse_bootif(&m.bootif()), Ok(m), "{}", m.bootif());
}

/// Core writes the `Config` it parses (`Config::to_cmdline`, which the host tool uses for every
/// node's command line): what it writes parses back to the same config, warnings aside.
fn config_round_trip(cfg: &Config) {
    let line = cfg.to_cmdline();
    match Config::parse("", &line) {
        Ok(back) => assert_eq!(back.to_cmdline(), line, "re-parsed {line:?}"),
        Err(e) => panic!("core wrote {line:?}, which it refuses: {e}"),
    }
}

/// The kernel's `parse_args` over a module's parameter string (`kernel/params.c`: `next_arg`,
/// with `lib/ctype.c`'s `isspace`, which counts 0xa0), as (name, value) pairs.
fn kernel_parse_args(s: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0);
    let mut out = Vec::new();
    let mut a = s;
    while a.first().is_some_and(|b| space(*b)) {
        a = &a[1..];
    }
    while !a.is_empty() {
        let (mut in_quote, quoted) = if a[0] == b'"' {
            a = &a[1..];
            (true, true)
        } else {
            (false, false)
        };
        let mut equals = 0;
        let mut i = 0;
        while i < a.len() {
            if space(a[i]) && !in_quote {
                break;
            }
            if equals == 0 && a[i] == b'=' {
                equals = i;
            }
            if a[i] == b'"' {
                in_quote = !in_quote;
            }
            i += 1;
        }
        let mut word = a[..i].to_vec();
        if quoted && word.last() == Some(&b'"') {
            word.pop();
        }
        let pair = if equals == 0 {
            (word, None)
        } else {
            let mut val = word.get(equals + 1..).unwrap_or_default().to_vec();
            if val.first() == Some(&b'"') {
                val.remove(0);
                if !quoted && val.last() == Some(&b'"') {
                    val.pop();
                }
            }
            (word[..equals].to_vec(), Some(val))
        };
        out.push(pair);
        a = a.get(i + 1..).unwrap_or_default();
        while a.first().is_some_and(|b| space(*b)) {
            a = &a[1..];
        }
    }
    out
}

/// What linuxrc hands a module is what the command line gave it: the kernel reads back one
/// parameter per word, with its value intact, so no value can add a parameter.
fn module_params_read_back(cfg: &Config) {
    let all = cfg.load_params();
    for (module, params) in all.iter() {
        let s = all.for_module(module);
        let want: Vec<(Vec<u8>, Option<Vec<u8>>)> = params
            .iter()
            .map(|p| {
                (
                    p.name.clone().into_bytes(),
                    p.value.clone().map(String::into_bytes),
                )
            })
            .collect();
        assert_eq!(kernel_parse_args(s.as_bytes()), want, "{module}: {s:?}");
        let step = Step::LoadModule {
            name: module.to_string(),
            path: format!("/lib/modules/x/{module}.ko"),
            params: s,
        };
        assert!(!step.to_string().contains(char::is_control), "{step:?}");
    }
}

/// `cmdline`: the config file and `/proc/cmdline` through [`Config::parse`]; every typed value
/// that prints must parse back to itself.
pub fn check_cmdline(data: &[u8]) -> Report {
    let (file, cmdline) = config_input(data);
    let _ = tokenize(cmdline);
    let cfg = match Config::parse(file, cmdline) {
        Ok(cfg) => cfg,
        Err(e) => {
            let _ = e.to_string();
            return Report {
                shape: shape_of(("err", variant(&e))),
                ..Report::default()
            };
        }
    };
    ip_round_trip(&cfg.ip);
    for r in cfg
        .nfsroot
        .iter()
        .chain(&cfg.lowers)
        .chain(cfg.mounts.iter().map(|(_, r)| r))
        .chain(&cfg.persist)
    {
        nfs_round_trip(r);
    }
    for m in cfg.mac.iter().chain(&cfg.bootif) {
        mac_round_trip(*m);
    }
    config_round_trip(&cfg);
    module_params_read_back(&cfg);
    let version = cfg.effective_nfs_version();
    if let Ok(v) = version {
        assert_eq!(NfsVersion::parse(&v.to_string()), Ok(v));
    }
    Report {
        shape: shape_of((
            cfg.ip.mode() as u8,
            cfg.nfsroot.is_some(),
            cfg.lowers.len().min(3),
            cfg.mounts.len().min(3),
            cfg.persist.is_some(),
            cfg.persist_paths.len().min(3),
            cfg.warnings.len().min(3),
            cfg.init_args.len().min(3),
            version.is_ok(),
        )),
        ..Report::default()
    }
}

/// `ip`: the kernel's `ip=` value; a parsed value prints back to text that parses to it.
pub fn check_ip(data: &[u8]) -> Report {
    match IpConfig::parse(&text(data)) {
        Ok(c) => {
            ip_round_trip(&c);
            Report {
                shape: shape_of((
                    c.mode() as u8,
                    c.client.is_some(),
                    c.netmask.is_some(),
                    c.hostname.is_some(),
                    c.device.is_some(),
                    c.dns.len(),
                )),
                ..Report::default()
            }
        }
        Err(e) => Report {
            shape: shape_of(("err", variant(&e), e.to_string().len() > 80)),
            ..Report::default()
        },
    }
}

/// `nfsroot`: `nfsroot=` / root-path / piece syntax, then everything the boot derives from it:
/// the version in the options, `%s` expansion and the mount(2) data.
/// `<unionroot.image= value>\0<pointer file contents>`: a spec that parses prints back to
/// itself, and a pointer that is accepted names one file of this image in the images directory.
pub fn check_image(data: &[u8]) -> Report {
    let (spec, pointer) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let spec = match ImageSpec::parse(&text(spec)) {
        Ok(s) => s,
        Err(e) => {
            return Report {
                shape: shape_of(("spec", variant(&e))),
                ..Report::default()
            }
        }
    };
    let printed = spec.to_string();
    assert_eq!(ImageSpec::parse(&printed).as_ref(), Ok(&spec), "{printed}");
    let name = spec.name.as_str();
    assert!(
        !name.is_empty() && !name.starts_with('.') && !name.contains('/'),
        "{name:?}"
    );
    match parse_pointer(&spec.name, pointer) {
        Ok(g) => {
            let f = &g.file;
            assert!(
                !f.contains('/') && !f.chars().any(char::is_control),
                "{f:?}"
            );
            assert_eq!(f, &format!("{name}-{}.{}", g.hash, g.fs.ext()));
            assert!(f != "." && f != "..", "{f:?}");
            Report {
                shape: shape_of(("ok", g.fs.ext())),
                ..Report::default()
            }
        }
        Err(e) => Report {
            shape: shape_of(("pointer", variant(&e))),
            ..Report::default()
        },
    }
}

pub fn check_nfsroot(data: &[u8]) -> Report {
    let r = match NfsRoot::parse(&text(data)) {
        Ok(r) => r,
        Err(e) => {
            return Report {
                shape: shape_of(("err", variant(&e))),
                ..Report::default()
            }
        }
    };
    nfs_round_trip(&r);
    assert!(r.path.starts_with('/'), "{r:?}");
    // Whatever the MAC, a node tries every server exactly once.
    let mac = unionroot_core::addr::Mac([0x52, 0x54, 0, data.len().to_le_bytes()[0], 0, 1]);
    let mut order = r.ordered(Some(mac)).0;
    let mut written = r.servers.clone();
    order.sort();
    written.sort();
    assert_eq!(order, written, "{r:?}");
    let version = r.version_in_options();
    let client = Ipv4Addr::new(10, 0, 0, 5);
    let path = r.expand(client);
    let (flags, opts) = split_vfs_options(&r.options, plan::ms::RDONLY);
    let server = r
        .servers
        .first()
        .copied()
        .unwrap_or(Ipv4Addr::new(10, 0, 0, 1));
    let args = mount_args(
        server,
        &path,
        version.as_ref().ok().copied().flatten().unwrap_or_default(),
        Some(client),
        &opts,
        if flags & plan::ms::RDONLY != 0 {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        },
    );
    assert!(args.port != 0, "{args:?}");
    // The server we probe is the one the kernel mounts from: exactly one addr=, ours.
    let addrs: Vec<&str> = args
        .data
        .split(',')
        .filter(|o| o.starts_with("addr="))
        .collect();
    assert_eq!(addrs, [format!("addr={server}")], "{args:?}");
    Report {
        shape: shape_of((
            r.servers.len().min(3),
            r.options.len().min(4),
            version.map(|v| v.map(|v| v.to_string())).ok(),
            flags,
        )),
        ..Report::default()
    }
}

/// The MAC of the client in `testdata/dhcp/` (and so of the `dhcp` corpus): replies in the
/// corpus carry it as chaddr.
pub const DHCP_MAC: [u8; 6] = [0x66, 0x91, 0x35, 0x9f, 0xb4, 0xdb];

/// The client's overall bound in [`check_dhcp`].
const DHCP_TOTAL: Duration = Duration::from_secs(60);

/// Framing of a `dhcp` input: a sequence of records, each starting with one control byte `c`.
/// `c & 3`: 0 = timer expiry (at the armed deadline), 1 = `Event::Start`, 2 = a packet with our
/// xid and chaddr patched in (so that mutated replies get past the first checks and reach
/// deeper states), 3 = a packet as is. Packets are a little-endian u16 length and that many
/// bytes (fewer at the end of input). `c >> 2` advances the clock by that many 100 ms.
pub fn check_dhcp(data: &[u8]) -> Report {
    let mut cfg = ClientConfig::new(DHCP_MAC, 1);
    cfg.hostname = Some("node01".into());
    cfg.total = DHCP_TOTAL;
    let mut client = Client::new(cfg);
    let mut now = Duration::ZERO;
    let mut started = None;
    let mut violations = Vec::new();
    let mut trace = Vec::new();
    let mut rest = data;
    while let Some((&c, tail)) = rest.split_first() {
        rest = tail;
        now += Duration::from_millis(100 * u64::from(c >> 2));
        let mut packet;
        let ev = match c & 3 {
            0 => {
                now = now.max(client.deadline().unwrap_or(now));
                Event::Timer
            }
            1 => {
                started = started.or(Some(now));
                Event::Start
            }
            kind => {
                let len = match rest {
                    [lo, hi, ..] => usize::from(u16::from_le_bytes([*lo, *hi])),
                    _ => rest.len(),
                };
                rest = rest.get(2..).unwrap_or(&[]);
                let len = len.min(rest.len());
                packet = rest[..len].to_vec();
                rest = &rest[len..];
                if kind == 2 {
                    if let Some(x) = packet.get_mut(4..8) {
                        x.copy_from_slice(&client.xid().to_be_bytes());
                    }
                    if let Some(x) = packet.get_mut(28..34) {
                        x.copy_from_slice(&DHCP_MAC);
                    }
                }
                // The same bytes as an IPv4 datagram: the driver's filter must not panic either.
                if let Some(p) = udp_payload(&packet, 68) {
                    assert!(p.len() <= packet.len());
                }
                Event::Packet(&packet)
            }
        };
        let was_done = client.is_done();
        let actions = client.on(ev, now);
        for a in &actions {
            trace.push(match a {
                Action::Send(p) => {
                    if let Some(s) = started {
                        assert!(
                            now < s + DHCP_TOTAL,
                            "sent at {now:?}, at or past the bound"
                        );
                    }
                    // RFC 1542 §2.1 minimum size; a BOOTREQUEST from our chaddr, magic cookie.
                    assert!(p.len() >= 300, "sent {} bytes", p.len());
                    assert_eq!(p[0], 1, "op");
                    assert_eq!(&p[28..34], &DHCP_MAC, "chaddr");
                    assert_eq!(&p[236..240], &[99, 130, 83, 99], "magic cookie");
                    "send".to_string()
                }
                Action::ArmTimer(t) => {
                    // Never in the past, never past the overall bound: a reply handled after
                    // that bound gives up instead (`01`, ten times `ff0000`, then `02` and an
                    // OFFER used to get a REQUEST and a timer in the past; seed late-offer.hex).
                    assert!(*t > now, "timer armed for {t:?}, not after now {now:?}");
                    if let Some(s) = started {
                        assert!(
                            *t <= s + DHCP_TOTAL,
                            "timer armed for {t:?}, past the bound"
                        );
                    }
                    "timer".to_string()
                }
                Action::Ignored(why) => format!("ignored {}", why.split(' ').next().unwrap_or("")),
                Action::Progress(p) => {
                    let _ = (p.to_string(), p.is_retransmission());
                    format!("progress {}", variant(p))
                }
                Action::Bound(lease) => {
                    assert!(lease.prefix_len() <= 32);
                    let _ = lease.to_string();
                    // What the boot does with the lease next: option 17 is an nfsroot.
                    if let Some(Ok(r)) = lease.root_path.as_deref().map(NfsRoot::parse) {
                        nfs_round_trip(&r);
                    }
                    violations.extend(handoff_violations(lease));
                    "bound".to_string()
                }
                Action::GiveUp(e) => format!("give up {}", variant(e)),
            });
        }
        if was_done {
            assert!(
                actions.iter().all(|a| matches!(a, Action::Ignored(_))),
                "a finished client acted again: {actions:?}"
            );
        }
        if actions
            .iter()
            .any(|a| matches!(a, Action::Bound(_) | Action::GiveUp(_)))
        {
            assert!(client.is_done());
        }
    }
    trace.dedup();
    enforce(&violations);
    Report {
        shape: shape_of(trace),
        violations,
    }
}

/// What linuxrc writes from a lease (`/run/net-<dev>.conf`, resolv.conf) and the node name it
/// takes from it, built as linuxrc's `dhcp_state` builds them: the text options through
/// [`offered`]. The sh quoting must read back exactly, whatever the bytes: enforced here. That
/// an offered value is either passed on unchanged or refused with a warning, that each DHCP
/// string is one file line, that the node name is one path component and that a warning is one
/// log line: returned as violations (see [`CONTAINMENT_ENFORCED`]).
fn handoff_violations(lease: &unionroot_core::dhcp::Lease) -> Vec<String> {
    let mut out = Vec::new();
    let o = offered(lease);
    let info = NetInfo {
        device: "eth0".into(),
        proto: Proto::Dhcp,
        address: Some(lease.address),
        prefix: lease.prefix_len(),
        gateway: lease.routers.first().copied(),
        dns: lease.dns.clone(),
        hostname: o.hostname.clone(),
        domain: o.domain.clone(),
        root_server: lease.siaddr.or(Some(lease.server_id)),
        root_path: o.root_path.clone(),
        bootfile: o.bootfile.clone(),
        lease_secs: lease.lease_secs,
    };
    let conf = initramfs_tools_conf(&info, 1);
    let vars = sh_assignments(&conf);
    for (key, given, kept) in [
        ("HOSTNAME", &lease.hostname, info.hostname.as_deref()),
        ("DNSDOMAIN", &lease.domain, info.domain.as_deref()),
        ("ROOTPATH", &lease.root_path, info.root_path.as_deref()),
        ("filename", &lease.bootfile, info.bootfile.as_deref()),
    ] {
        assert_eq!(
            vars.get(key).map(String::as_str),
            Some(kept.unwrap_or_default()),
            "{key} in /run/net-eth0.conf"
        );
        match (given, kept) {
            (Some(g), Some(k)) if g != k => out.push(format!(
                "changed: {key} {g:?} was passed on as {k:?}, not refused"
            )),
            (None, Some(k)) => out.push(format!("changed: {key} {k:?} was never offered")),
            _ => {}
        }
    }
    let refused = [
        lease.hostname.is_some() && o.hostname.is_none(),
        lease.domain.is_some() && o.domain.is_none(),
        lease.root_path.is_some() && o.root_path.is_none(),
        lease.bootfile.is_some() && o.bootfile.is_none(),
    ];
    let refusals = refused.iter().filter(|r| **r).count();
    if o.warnings.len() != refusals {
        out.push(format!(
            "silent: {refusals} refused options but the warnings {:?}",
            o.warnings
        ));
    }
    if o.hostname_refused.is_some() != refused[0] {
        out.push(format!(
            "silent: option 12 {:?} refused, but hostname_refused is {:?}",
            lease.hostname, o.hostname_refused
        ));
    }
    out.extend(control_in_log(o.warnings.iter().chain(&o.hostname_refused)));
    // One line per variable (a newline inside quotes would still read back in sh, but not in
    // the other readers of the file: ifupdown hooks, cloud-init).
    if conf.lines().count() != vars.len() || conf.lines().any(|l| l.contains(char::is_control)) {
        out.push(format!("file line: /run/net-eth0.conf is {conf:?}"));
    }
    if let Some(r) = resolv_conf(&info) {
        let lines: Vec<&str> = r.lines().skip(1).collect();
        let want = usize::from(info.domain.is_some()) + info.dns.len().min(3);
        if lines.len() != want || lines.iter().any(|l| l.contains(char::is_control)) {
            out.push(format!(
                "file line: DHCP option 15 {:?} makes resolv.conf {r:?}",
                lease.domain
            ));
        }
    }
    if let Some(h) = &info.hostname {
        if !one_component(h) {
            out.push(format!(
                "node name: DHCP option 12 {h:?} would become a per-node path component"
            ));
        }
    }
    out
}

/// Whether `name` is one path component that names neither the directory nor its parent.
fn one_component(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('/')
        && name != "."
        && name != ".."
        && !name.contains(char::is_control)
}

/// `modules`: `<modules.dep>\0<modules.alias>\0<modalias>\0<wanted names>`. Load order puts
/// every module after its dependencies, each once; errors name a real unknown module or a real
/// cycle; the alias matcher agrees with an independent reference matcher.
pub fn check_modules(data: &[u8]) -> Report {
    let (dep, rest) = split_nul(data);
    let (alias, rest) = split_nul(rest);
    let (modalias, wanted) = split_nul(rest);
    let (dep, alias, modalias, wanted) = (text(dep), text(alias), text(modalias), text(wanted));
    // The canonical name is a fixed point, so looking a canonical name up again finds it.
    for w in dep.split_whitespace().chain(wanted.split_whitespace()) {
        let n = module_name(w);
        assert_eq!(module_name(&n), n, "module_name({w:?})");
    }
    let db = match ModuleDb::parse_dep(&dep) {
        Ok(db) => db.with_aliases(&alias),
        Err(e) => {
            return Report {
                shape: shape_of(("err", variant(&e))),
                ..Report::default()
            }
        }
    };
    // The alias matcher against the reference, on every pattern of the input. A random
    // modalias rarely matches a random pattern, so each pattern is also tried against strings
    // made from itself (the pattern text, every other byte of it, and rough instances of it:
    // see [`instances`]), where brackets, escapes and stars meet the very bytes they name.
    let mut hits = BTreeSet::new();
    for line in alias.lines() {
        let mut it = line.split_whitespace();
        if let (Some("alias"), Some(pat), Some(m)) = (it.next(), it.next(), it.next()) {
            let (p, s) = (pat.as_bytes(), modalias.as_bytes());
            let want = reference_fnmatch(p, s);
            assert_eq!(fnmatch(p, s), want, "fnmatch({pat:?}, {modalias:?})");
            if want {
                hits.insert(module_name(m));
            }
            let odd: Vec<u8> = p.iter().skip(1).step_by(2).copied().collect();
            let [first, mid, last] = instances(p);
            for s in [p, &odd, &first, &mid, &last] {
                assert_eq!(
                    fnmatch(p, s),
                    reference_fnmatch(p, s),
                    "fnmatch({pat:?}, {:?})",
                    String::from_utf8_lossy(s)
                );
            }
        }
    }
    let resolved = db.resolve_alias(&modalias);
    assert_eq!(
        resolved,
        hits.iter().cloned().collect::<Vec<_>>(),
        "resolve_alias({modalias:?})"
    );
    let mut wanted: Vec<String> = wanted
        .split_whitespace()
        .take(8)
        .map(String::from)
        .collect();
    if wanted.is_empty() {
        // Everything the file lists, so that plain modules.dep inputs exercise the walk.
        wanted = dep
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(p, _)| module_name(p.trim()))
            .take(64)
            .collect();
    }
    let outcome = match db.load_order(&wanted) {
        Ok(order) => {
            let pos: HashMap<&str, usize> = order
                .iter()
                .enumerate()
                .map(|(i, m)| (m.name.as_str(), i))
                .collect();
            assert_eq!(pos.len(), order.len(), "a module twice: {order:?}");
            for (i, m) in order.iter().enumerate() {
                assert_eq!(db.path(&m.name), Some(m.path.as_str()));
                for d in db.deps(&m.name).unwrap_or_default() {
                    assert!(
                        pos.get(d.as_str()).is_some_and(|&j| j < i),
                        "{d} must load before {}: {order:?}",
                        m.name
                    );
                }
            }
            for w in &wanted {
                assert!(pos.contains_key(module_name(w).as_str()), "{w} missing");
            }
            "ok"
        }
        Err(ModError::Unknown(n)) => {
            assert_eq!(module_name(&n), n, "an error names a canonical module name");
            assert!(!db.contains(&n), "{n} is in modules.dep");
            "unknown"
        }
        Err(ModError::Cycle(n)) => {
            assert!(on_a_cycle(&db, &n), "no cycle through {n}");
            "cycle"
        }
        Err(e) => panic!("load_order: {e:?}"),
    };
    Report {
        shape: shape_of((outcome, db.len().min(8), resolved.len().min(4))),
        ..Report::default()
    }
}

/// Three strings that a pattern roughly describes, to test the matcher where it matters: `\x`
/// gives `x`, `?` gives `?`, `*` gives nothing, and a bracket (up to the next `]` that is not
/// its first byte) gives its first, middle or last byte, such as a range's ends. A generator
/// only: whether they match is for the matchers to say.
fn instances(p: &[u8]) -> [Vec<u8>; 3] {
    let mut out = [Vec::new(), Vec::new(), Vec::new()];
    let mut k = 0;
    while k < p.len() {
        match p[k] {
            b'\\' if k + 1 < p.len() => {
                out.iter_mut().for_each(|o| o.push(p[k + 1]));
                k += 2;
            }
            b'*' => k += 1,
            b'[' => {
                let body_start = k + 1 + usize::from(matches!(p.get(k + 1), Some(b'!' | b'^')));
                match p.iter().skip(body_start + 1).position(|&b| b == b']') {
                    Some(n) => {
                        let body = &p[body_start..=body_start + n];
                        out[0].push(body[0]);
                        out[1].push(body[body.len() / 2]);
                        out[2].push(body[body.len() - 1]);
                        k = body_start + n + 2;
                    }
                    None => {
                        out.iter_mut().for_each(|o| o.push(b'['));
                        k += 1;
                    }
                }
            }
            b => {
                out.iter_mut().for_each(|o| o.push(b));
                k += 1;
            }
        }
    }
    out
}

/// Whether `name` reaches itself through modules.dep edges (iterative DFS).
fn on_a_cycle(db: &ModuleDb, name: &str) -> bool {
    let mut seen = HashSet::new();
    let mut stack: Vec<&str> = db
        .deps(name)
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect();
    while let Some(m) = stack.pop() {
        if m == name {
            return true;
        }
        if seen.insert(m) {
            stack.extend(db.deps(m).unwrap_or_default().iter().map(String::as_str));
        }
    }
    false
}

/// An independent fnmatch(pattern, string, 0) for differential testing, written from glibc's
/// behaviour (as pinned by `testdata/fnmatch/glibc.tsv`) rather than from modules.rs: pattern
/// and string positions are matched by memoized recursion over all ways a `*` can split the
/// string, instead of modules.rs's compile-then-backtrack-to-the-last-star. Quadratic (and
/// recursive), so longer inputs are left to the matcher under test.
pub fn reference_fnmatch(pat: &[u8], s: &[u8]) -> bool {
    if pat.len() > 128 || s.len() > 128 {
        return fnmatch(pat, s);
    }
    // memo[p * (s.len() + 1) + i]: 0 not yet known, 1 no match, 2 match.
    let mut memo = vec![0u8; (pat.len() + 1) * (s.len() + 1)];
    ref_match(pat, s, 0, 0, &mut memo)
}

fn ref_match(pat: &[u8], s: &[u8], p: usize, i: usize, memo: &mut [u8]) -> bool {
    let cell = p.min(pat.len()) * (s.len() + 1) + i;
    match memo[cell] {
        1 => return false,
        2 => return true,
        _ => {}
    }
    let r = match pat.get(p) {
        None => i == s.len(),
        // `*` matches nothing more, or one more byte and stays: O(1) per (p, i) pair.
        Some(b'*') => {
            ref_match(pat, s, p + 1, i, memo) || (i < s.len() && ref_match(pat, s, p, i + 1, memo))
        }
        Some(_) if i == s.len() => false,
        Some(b'?') => ref_match(pat, s, p + 1, i + 1, memo),
        Some(b'\\') => match pat.get(p + 1) {
            Some(&c) => c == s[i] && ref_match(pat, s, p + 2, i + 1, memo),
            None => false,
        },
        Some(b'[') => match ref_bracket(pat, p + 1, s[i]) {
            RefBracket::Literal => b'[' == s[i] && ref_match(pat, s, p + 1, i + 1, memo),
            RefBracket::Fail => false,
            RefBracket::Matched(next) => ref_match(pat, s, next, i + 1, memo),
            RefBracket::Missed => false,
        },
        Some(&c) => c == s[i] && ref_match(pat, s, p + 1, i + 1, memo),
    };
    memo[cell] = 1 + u8::from(r);
    r
}

enum RefBracket {
    /// Not a bracket expression (never closed): `[` is an ordinary character.
    Literal,
    /// glibc gives up on this bracket (unknown class, class as a range end, broken `[.`).
    Fail,
    /// Matched; the pattern continues at this index.
    Matched(usize),
    Missed,
}

/// Reads `[...]` whose body starts at `pat[q]` and decides it for `c` in one pass, the way a C
/// implementation walks it: items are decided in order, the first hit or error settles the
/// verdict, and the rest is only scanned for the closing `]` (a broken `[.` fails the bracket
/// even after a hit).
fn ref_bracket(pat: &[u8], mut q: usize, c: u8) -> RefBracket {
    let negated = matches!(pat.get(q), Some(b'!' | b'^'));
    if negated {
        q += 1;
    }
    let first = q;
    let mut verdict: Option<bool> = None; // Some(true): hit; Some(false): glibc gives up
    let mut broken = false;
    loop {
        let Some(&b) = pat.get(q) else {
            return RefBracket::Literal;
        };
        if b == b']' && q > first {
            return match verdict {
                _ if broken => RefBracket::Fail,
                Some(false) => RefBracket::Fail,
                Some(true) if !negated => RefBracket::Matched(q + 1),
                None if negated => RefBracket::Matched(q + 1),
                _ => RefBracket::Missed,
            };
        }
        let (item, next) = ref_item(pat, q);
        let Some(next) = next else {
            return RefBracket::Literal;
        };
        q = next;
        if matches!(item, RefItem::Broken) {
            broken = true;
            continue;
        }
        // `lo-hi`, unless the `-` is the last thing before the closing `]`.
        if let RefItem::Char(lo) = item {
            if pat.get(q) == Some(&b'-') && pat.get(q + 1).is_some_and(|&x| x != b']') {
                let (hi, hi_next) = ref_item(pat, q + 1);
                match hi {
                    RefItem::Char(hi) => {
                        if verdict.is_none() && lo <= c && c <= hi {
                            verdict = Some(true);
                        }
                        q = hi_next.unwrap_or(pat.len());
                        continue;
                    }
                    RefItem::Class(_) | RefItem::Equiv(_) => {
                        if verdict.is_none() {
                            verdict = Some(false);
                        }
                        q = hi_next.unwrap_or(pat.len());
                        continue;
                    }
                    // Not a range after all: `-` is read as an ordinary character next.
                    RefItem::Broken => {}
                }
            }
        }
        if verdict.is_none() {
            verdict = match item {
                RefItem::Char(x) | RefItem::Equiv(x) => (x == c).then_some(true),
                RefItem::Class(name) => match ref_class(&name, c) {
                    Some(true) => Some(true),
                    Some(false) => None,
                    None => Some(false),
                },
                RefItem::Broken => None,
            };
        }
    }
}

/// One bracket item at `pat[q]` and the index after it (`None`: the pattern ends inside it).
fn ref_item(pat: &[u8], q: usize) -> (RefItem, Option<usize>) {
    match (pat[q], pat.get(q + 1)) {
        (b'\\', Some(&x)) => (RefItem::Char(x), Some(q + 2)),
        (b'\\', None) => (RefItem::Char(b'\\'), None),
        (b'[', Some(b':')) => {
            let n = pat[q + 2..]
                .iter()
                .take_while(|x| (b'a'..=b'y').contains(*x))
                .count();
            let end = q + 2 + n;
            if pat.get(end) == Some(&b':') && pat.get(end + 1) == Some(&b']') {
                (RefItem::Class(pat[q + 2..end].to_vec()), Some(end + 2))
            } else {
                (RefItem::Char(b'['), Some(q + 1))
            }
        }
        (b'[', Some(&d @ (b'=' | b'.'))) => {
            match (pat.get(q + 2), pat.get(q + 3), pat.get(q + 4)) {
                (Some(&x), Some(&dd), Some(b']')) if dd == d && d == b'=' => {
                    (RefItem::Equiv(x), Some(q + 5))
                }
                (Some(&x), Some(&dd), Some(b']')) if dd == d => (RefItem::Char(x), Some(q + 5)),
                _ if d == b'.' => (RefItem::Broken, Some(q + 2)),
                _ => (RefItem::Char(b'['), Some(q + 1)),
            }
        }
        (x, _) => (RefItem::Char(x), Some(q + 1)),
    }
}

enum RefItem {
    Char(u8),
    Equiv(u8),
    Class(Vec<u8>),
    /// A malformed `[.`.
    Broken,
}

/// `Some(member)` for a POSIX class in the C locale, `None` for an unknown name.
fn ref_class(name: &[u8], c: u8) -> Option<bool> {
    let c = char::from(c);
    Some(match name {
        b"alpha" => c.is_ascii_alphabetic(),
        b"digit" => c.is_ascii_digit(),
        b"alnum" => c.is_ascii_alphanumeric(),
        b"upper" => c.is_ascii_uppercase(),
        b"lower" => c.is_ascii_lowercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        b"space" => " \t\n\r\x0b\x0c".contains(c),
        b"blank" => c == ' ' || c == '\t',
        b"punct" => c.is_ascii_punctuation(),
        b"print" => (' '..='~').contains(&c),
        b"graph" => ('!'..='~').contains(&c),
        b"cntrl" => c < ' ' || c == '\x7f',
        _ => return None,
    })
}

/// `pnp`: the kernel's `/proc/net/pnp`, then what linuxrc writes from it: the klibc-style
/// `/run/net-<dev>.conf` (sourced by sh) and resolv.conf. A value written must read back as
/// itself. `<pnp>\0<proc/net/route>` also fuzzes the default-route reader.
pub fn check_pnp(data: &[u8]) -> Report {
    let (pnp, route) = split_nul(data);
    let gw = default_gateway(&text(route), "eth0");
    let Some(p) = parse_pnp(&text(pnp)) else {
        return Report {
            shape: shape_of(("none", gw.is_some())),
            ..Report::default()
        };
    };
    assert!(!p.proto.is_empty(), "{p:?}");
    assert!(p.nameservers.iter().all(|a| !a.is_unspecified()), "{p:?}");
    let info = NetInfo {
        device: "eth0".into(),
        proto: Proto::Kernel,
        address: Some(Ipv4Addr::new(10, 0, 0, 5)),
        prefix: 24,
        gateway: gw,
        dns: p.nameservers.clone(),
        domain: p.domain.clone(),
        root_server: p.bootserver,
        ..NetInfo::default()
    };
    let conf = initramfs_tools_conf(&info, 1);
    let vars = sh_assignments(&conf);
    let domain = p.domain.as_deref().unwrap_or_default();
    assert_eq!(
        vars.get("DNSDOMAIN").map(String::as_str),
        Some(domain),
        "{conf}"
    );
    assert_eq!(
        vars.get("DOMAINSEARCH").map(String::as_str),
        Some(domain),
        "{conf}"
    );
    if let Some(r) = resolv_conf(&info) {
        let search: Vec<&str> = r
            .lines()
            .filter_map(|l| l.strip_prefix("search "))
            .collect();
        let want: Vec<&str> = p.domain.as_deref().into_iter().collect();
        assert_eq!(search, want, "{r}");
    }
    // linuxrc logs the protocol and every refusal.
    let violations = control_in_log(p.refused.iter().chain([&p.proto]));
    enforce(&violations);
    Report {
        shape: shape_of((
            p.proto.len().min(8),
            p.domain.is_some(),
            p.nameservers.len().min(4),
            p.bootserver.is_some(),
            gw.is_some(),
            p.refused.len().min(2),
        )),
        violations,
    }
}

/// Reads `KEY='value'` lines the way sh does for single quotes (`'\''` is a quote inside).
fn sh_assignments(conf: &str) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    let mut rest = conf;
    while let Some((key, tail)) = rest.split_once('=') {
        let mut value = String::new();
        let mut t = tail;
        loop {
            let inner = t.strip_prefix('\'').expect("a value starts with a quote");
            let (quoted, after) = inner.split_once('\'').expect("an unclosed quote");
            value.push_str(quoted);
            t = after;
            if let Some(after) = t.strip_prefix("\\'") {
                value.push('\'');
                t = after;
            } else {
                break;
            }
        }
        t = t.strip_prefix('\n').expect("one assignment per line");
        vars.insert(key.to_string(), value);
        rest = t;
    }
    vars
}

/// `plan`: core's root planner (`root::root_plan`, which linuxrc calls with the facts it
/// gathered) over hostile values: `<config file>\0<cmdline>\0<node name>`. The node name is
/// what the kernel's host name (or DHCP option 12, through the same check) supplies. Every path a
/// step creates, mounts on or moves must stay inside the root it was joined onto (see
/// [`containment_violations`]), and no refusal may carry a control character into the log.
pub fn check_plan(data: &[u8]) -> Report {
    let (file, rest) = split_nul(data);
    let (cmdline, node) = split_nul(rest);
    let (file, cmdline) = if data.contains(&0) {
        (file, cmdline)
    } else {
        (&[][..], file)
    };
    let cfg = match Config::parse(file, cmdline) {
        Ok(c) => c,
        Err(e) => {
            return Report {
                shape: shape_of(("err", variant(&e))),
                ..Report::default()
            }
        }
    };
    let client = cfg.ip.client.unwrap_or(Ipv4Addr::new(10, 0, 0, 5));
    let net = NetInfo {
        device: "eth0".into(),
        proto: Proto::Static,
        address: Some(client),
        prefix: 24,
        hostname: cfg.ip.hostname.clone(),
        root_server: Some(Ipv4Addr::new(10, 0, 0, 1)),
        ..NetInfo::default()
    };
    let kernel_name = text(node);
    let facts = Facts {
        cfg: &cfg,
        lease: None,
        net: Some(&net),
        hostname_refused: None,
        kernel_hostname: (!node.is_empty()).then_some(kernel_name.as_str()),
        pivot: data.len() % 2 == 1,
        mac: node
            .get(..6)
            .and_then(|b| <[u8; 6]>::try_from(b).ok())
            .map(unionroot_core::addr::Mac),
    };
    let root_plan = match root::root_plan(&facts) {
        Ok(p) => p.plan,
        // linuxrc stops here with the reason and its hint on the console.
        Err(e) => {
            let violations = control_in_log([format!("{e} ({})", e.hint())]);
            enforce(&violations);
            return Report {
                shape: shape_of(("refused", variant(&e))),
                violations,
            };
        }
    };
    let steps = root_steps(&root_plan);
    assert!(
        matches!(
            steps.switch,
            Step::SwitchRoot { .. } | Step::PivotRoot { .. }
        ),
        "a plan ends in the root switch"
    );
    assert!(
        !steps
            .build
            .iter()
            .any(|s| matches!(s, Step::SwitchRoot { .. } | Step::PivotRoot { .. })),
        "only the last step switches the root"
    );
    let node = root_plan.persist.as_ref().map_or("", |p| p.node.as_str());
    let mut violations = containment_violations(steps.all(), node);
    // With a MAC or nfs.nfs4_unique_id=, the identifier is set before any NFS mount: a mount
    // made before it presents the shared "(none)" owner.
    if facts.mac.is_some() || cfg.nfs_client_id.is_some() {
        let first = |f: fn(&Step) -> bool| steps.build.iter().position(f);
        let id = first(|s| matches!(s, Step::NfsClientId(_)));
        let mount = first(|s| matches!(s, Step::NfsMount { .. } | Step::ImageMount { .. }));
        if mount.is_some() && !matches!((id, mount), (Some(i), Some(m)) if i < m) {
            violations.push(format!(
                "identity: an NFS mount before the NFS client identifier ({id:?}, {mount:?})"
            ));
        }
    }
    violations.extend(control_in_log(steps.all().map(|s| s.to_string())));
    enforce(&violations);
    Report {
        shape: shape_of((
            steps.build.len().min(40),
            root_plan.pivot,
            violations
                .iter()
                .map(|v| v.split(':').next().unwrap_or("").to_string())
                .collect::<BTreeSet<_>>(),
        )),
        violations,
    }
}

/// Lexical normalization of an absolute path: empty and `.` components dropped, `..` removes
/// the previous component (and stays at `/` at the top, as the kernel does). No symlinks are
/// followed; the planner only joins strings, so a lexical escape is already an escape.
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Whether normalized `path` is `root` or below it.
fn inside(path: &str, root: &str) -> bool {
    path == root || path.strip_prefix(root).is_some_and(|r| r.starts_with('/'))
}

/// Every path in `steps` checked against the root it is meant to be under, independently of
/// how the planner built it: a path spelled under `/newroot` must normalize to inside
/// `/newroot` (and a mount placed into the new root must not cover the whole of it); under
/// `/run/unionroot/persist/nodes/` it must stay inside this node's own directory, which must
/// be one path component; anything else under `/run/unionroot` must stay there. A step path
/// under neither is a violation too, and so is one not in normal form, or a symlink check
/// (`Check::NoSymlinks`) whose path is not strictly below its own root.
pub fn containment_violations<'a>(
    steps: impl IntoIterator<Item = &'a Step>,
    node: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let nodes_dir = format!("{PERSIST_DIR}/nodes");
    let node_is_one_component = one_component(node);
    for step in steps {
        let mut paths: Vec<(&str, bool)> = Vec::new(); // (path, is a mount placed into a root)
        match step {
            Step::Mkdir { path, .. } => paths.push((path, false)),
            Step::Mount {
                source,
                target,
                flags,
                ..
            } => {
                paths.push((target, target != NEW_ROOT));
                if flags & plan::ms::BIND != 0 {
                    paths.push((source, false));
                }
            }
            Step::NfsMount { target, .. } => paths.push((target, true)),
            Step::ImageMount { images, target, .. } => {
                paths.push((images, false));
                paths.push((target, true));
            }
            Step::Check(
                Check::IsDir(p) | Check::HasRoom { path: p, .. } | Check::MappedOwner(p),
            ) => paths.push((p, false)),
            Step::Check(Check::NoSymlinks { root, path }) => {
                paths.push((root, false));
                paths.push((path, false));
                // The check walks `path` from `root` one component at a time: what it walks
                // must be below that root (and is only what it seems if both are normal).
                if !inside(&normalize(path), &normalize(root)) || normalize(path) == normalize(root)
                {
                    out.push(format!(
                        "escape: {path:?} is not below the root {root:?} of its check, in `{step}`"
                    ));
                }
            }
            // The client identifier goes to a fixed sysfs file, not a path of the plan's.
            Step::Check(Check::FsSupported(_)) | Step::LoadModule { .. } | Step::NfsClientId(_) => {
            }
            Step::MoveMount { from, to } => {
                paths.push((from, false));
                paths.push((to, true));
            }
            Step::SwitchRoot { new_root, .. } | Step::PivotRoot { new_root, .. } => {
                paths.push((new_root, false))
            }
        }
        for (raw, is_mount) in paths {
            let norm = normalize(raw);
            if norm != raw {
                // A `.`, `..` or doubled `/` means what it says only to a lexical reader; the
                // kernel resolves it against what is on disk (symlinks included).
                out.push(format!(
                    "not normal: {raw:?} is not in normal form ({norm:?}), in `{step}`"
                ));
            }
            let spelled_under = |root: &str| inside(raw, root);
            let (root, label) = if spelled_under(NEW_ROOT) {
                (NEW_ROOT.to_string(), "/newroot")
            } else if spelled_under(&nodes_dir) {
                if node_is_one_component {
                    (
                        format!("{nodes_dir}/{node}"),
                        "the node's persist directory",
                    )
                } else {
                    // Reported as such; what it reaches is then checked against nodes/ only.
                    out.push(format!(
                        "node name: {node:?} is not one path component, in `{step}`"
                    ));
                    (nodes_dir.clone(), "/run/unionroot/persist/nodes")
                }
            } else if spelled_under("/run/unionroot") {
                ("/run/unionroot".to_string(), "/run/unionroot")
            } else {
                out.push(format!("outside any root: {raw:?} in `{step}`"));
                continue;
            };
            if !inside(&norm, &root) {
                out.push(format!(
                    "escape: {raw:?} normalizes to {norm:?}, outside {label}, in `{step}`"
                ));
            } else if is_mount && root == NEW_ROOT && norm == NEW_ROOT {
                out.push(format!(
                    "covers the root: {raw:?} is /newroot itself, in `{step}`"
                ));
            }
        }
    }
    out.dedup();
    out
}
