//! The boot sequence, phase by phase: early mounts, configuration, modules, network, root.
//! Every failure becomes a [`Failure`] naming the phase, the thing it failed on and a hint, and
//! goes to the one fatal path in `main.rs`.

use crate::dhcp_driver::{self, DriverConfig, Nic};
use crate::exec::{self, ExecError};
use crate::net::{self, Netlink};
use crate::sys::{Kind, Sys};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;
use unionroot_core::cmdline::{Config, IpConfig, IpMode};
use unionroot_core::dhcp::Lease;
use unionroot_core::handoff::{initramfs_tools_conf, resolv_conf, NetInfo};
use unionroot_core::modules::{parse_builtin, parse_proc_modules, ModuleDb};
use unionroot_core::nfs::{choose_server, mount_args, NfsRoot};
use unionroot_core::plan::{self, ModuleNeeds, RootPlan, Step};

pub const CONFIG_FILE: &str = "/etc/unionroot.conf";

/// Why the boot stopped: shown on the console by the fatal path.
#[derive(Debug)]
pub struct Failure {
    pub phase: &'static str,
    pub reason: String,
    pub hint: String,
}

impl Failure {
    fn new(phase: &'static str, reason: impl Into<String>, hint: impl Into<String>) -> Self {
        Failure {
            phase,
            reason: reason.into(),
            hint: hint.into(),
        }
    }

    fn exec(phase: &'static str, e: ExecError) -> Self {
        Failure {
            phase,
            hint: e.hint().to_string(),
            reason: e.to_string(),
        }
    }
}

/// The network as configured, for choosing the NFS server and for the handoff.
#[derive(Debug, Clone)]
pub struct NetState {
    pub nic: Nic,
    pub address: Ipv4Addr,
    pub lease: Option<Lease>,
    /// What the real system is told (`/run/net-<iface>.conf`, resolv.conf, hostname).
    pub info: NetInfo,
}

/// Phase timings, logged before the real init is started.
#[derive(Debug, Default)]
pub struct Timings {
    start: Duration,
    last: Duration,
    phases: Vec<(&'static str, Duration)>,
}

impl Timings {
    pub fn new(now: Duration) -> Self {
        Timings {
            start: now,
            last: now,
            phases: Vec::new(),
        }
    }

    pub fn mark(&mut self, phase: &'static str, now: Duration) {
        self.phases.push((phase, now.saturating_sub(self.last)));
        self.last = now;
    }

    pub fn summary(&self, now: Duration) -> String {
        let parts: Vec<String> = self
            .phases
            .iter()
            .map(|(p, d)| format!("{p} {} ms", d.as_millis()))
            .collect();
        format!(
            "total {} ms ({})",
            now.saturating_sub(self.start).as_millis(),
            parts.join(", ")
        )
    }
}

/// Phase 1: the API filesystems. EBUSY means the kernel already mounted it (DEVTMPFS_MOUNT, or
/// an NFS root whose init runs with /proc present) and is fine.
pub fn early_mounts(sys: &mut dyn Sys) -> Result<(), Failure> {
    for step in plan::early_mounts() {
        match exec::run_step(sys, &step) {
            Ok(())
            | Err(ExecError::Step {
                errno: nix::errno::Errno::EBUSY,
                ..
            }) => {}
            Err(e) => return Err(Failure::exec("early mounts", e)),
        }
    }
    Ok(())
}

/// Phase 2: `/etc/unionroot.conf` overlaid by `/proc/cmdline`.
pub fn read_config(sys: &mut dyn Sys) -> Result<Config, Failure> {
    let file = sys.read_file(CONFIG_FILE).unwrap_or_default();
    let cmdline = sys.read_file("/proc/cmdline").map_err(|e| {
        Failure::new(
            "config",
            format!("cannot read /proc/cmdline: {e}"),
            "is /proc mounted?",
        )
    })?;
    let cfg = Config::parse(&file, &cmdline).map_err(|e| {
        Failure::new(
            "config",
            e.to_string(),
            format!("fix the kernel command line or {CONFIG_FILE}"),
        )
    })?;
    for w in &cfg.warnings {
        log::warn!("{w}");
    }
    Ok(cfg)
}

fn release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Modules whose alias matches a device present on the PCI or virtio bus right now.
fn modalias_modules(db: &ModuleDb, bus: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/sys/bus/{bus}/devices")) else {
        return Vec::new();
    };
    let mut out = BTreeSet::new();
    for e in dir.flatten() {
        if let Ok(alias) = std::fs::read_to_string(e.path().join("modalias")) {
            out.extend(
                db.resolve_alias(alias.trim())
                    .into_iter()
                    .filter(|m| db.contains(m)),
            );
        }
    }
    out.into_iter().collect()
}

fn load(
    sys: &mut dyn Sys,
    db: &ModuleDb,
    wanted: Vec<String>,
    base: &str,
    builtin: &BTreeSet<String>,
) -> Result<(), Failure> {
    let loaded = parse_proc_modules(&sys.read_file("/proc/modules").unwrap_or_default());
    let needs = ModuleNeeds {
        wanted,
        builtin,
        loaded: &loaded,
    };
    let steps = plan::module_steps(db, &needs, base).map_err(|e| {
        Failure::new(
            "modules",
            e.to_string(),
            "rebuild the initramfs with the modules this boot needs",
        )
    })?;
    exec::run(sys, &steps).map_err(|e| Failure::exec("modules", e))
}

/// Phase 3: the NIC driver (named by `unionroot.modules=`, else found by matching PCI and then
/// virtio modaliases against `modules.alias`), the NFS client and overlayfs, dependencies first.
/// With no `modules.dep` (a kernel with everything built in) there is nothing to do.
pub fn load_modules(sys: &mut dyn Sys, cfg: &Config) -> Result<(), Failure> {
    let base = format!("/lib/modules/{}", release());
    let Ok(dep) = sys.read_file(&format!("{base}/modules.dep")) else {
        log::info!("no {base}/modules.dep: assuming the drivers are built in");
        return Ok(());
    };
    let db = ModuleDb::parse_dep(&dep)
        .map_err(|e| {
            Failure::new(
                "modules",
                e.to_string(),
                "the initramfs's modules.dep is damaged; rebuild it",
            )
        })?
        .with_aliases(
            &sys.read_file(&format!("{base}/modules.alias"))
                .unwrap_or_default(),
        );
    let builtin = parse_builtin(
        &sys.read_file(&format!("{base}/modules.builtin"))
            .unwrap_or_default(),
    );
    let version = cfg
        .effective_nfs_version()
        .map_err(|e| Failure::new("modules", e.to_string(), ""))?;
    let mut wanted = cfg.modules.clone();
    if wanted.is_empty() {
        // Bus drivers first (virtio_pci), then what their devices need (virtio_net).
        let pci = modalias_modules(&db, "pci");
        log::info!(
            "pci devices need: {}",
            if pci.is_empty() {
                "nothing shipped".into()
            } else {
                pci.join(" ")
            }
        );
        load(sys, &db, pci, &base, &builtin)?;
        wanted = modalias_modules(&db, "virtio");
        if !wanted.is_empty() {
            log::info!("virtio devices need: {}", wanted.join(" "));
        }
    }
    wanted.push(version.module().into());
    wanted.push("overlay".into());
    load(sys, &db, wanted, &base, &builtin)
}

/// Which interfaces to try, and why (logged).
fn candidates(cfg: &Config, nics: &[Nic]) -> Result<Vec<Nic>, Failure> {
    if let Some(dev) = &cfg.ip.device {
        let nic = nics
            .iter()
            .find(|n| &n.name == dev)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = nics.iter().map(|n| n.name.as_str()).collect();
                Failure::new(
                    "network",
                    format!(
                        "ip= names device {dev}, which does not exist (have: {})",
                        names.join(" ")
                    ),
                    "fix the device field of ip=",
                )
            })?;
        log::info!("using {dev}: named by ip=");
        return Ok(vec![nic]);
    }
    if let Some(mac) = cfg.bootif {
        let m = net::format_mac(&mac);
        let nic = nics.iter().find(|n| n.mac == mac).cloned().ok_or_else(|| {
            Failure::new(
                "network",
                format!("BOOTIF names MAC {m}, which no interface has"),
                "check the pxelinux IPAPPEND 2 setup",
            )
        })?;
        log::info!("using {}: its MAC {m} is BOOTIF from pxelinux", nic.name);
        return Ok(vec![nic]);
    }
    if let Some(mac) = cfg.mac {
        let m = net::format_mac(&mac);
        let nic = nics.iter().find(|n| n.mac == mac).cloned().ok_or_else(|| {
            Failure::new(
                "network",
                format!("unionroot.mac={m} matches no interface"),
                "check the MAC in the node's configuration",
            )
        })?;
        log::info!("using {}: its MAC {m} is unionroot.mac", nic.name);
        return Ok(vec![nic]);
    }
    let names: Vec<&str> = nics.iter().map(|n| n.name.as_str()).collect();
    log::info!(
        "no interface named by ip=, BOOTIF or unionroot.mac: trying all of {}",
        names.join(" ")
    );
    Ok(nics.to_vec())
}

/// Phase 4: bring up the network as `ip=` says.
pub fn network(cfg: &Config) -> Result<Option<NetState>, Failure> {
    let mode = cfg.ip.mode();
    if mode == IpMode::Off {
        log::info!("ip=off: not configuring the network");
        return Ok(None);
    }
    let nl = Netlink::new().map_err(|e| Failure::new("network", e.to_string(), ""))?;
    let fail = |e: net::NetError| Failure::new("network", e.to_string(), "");
    nl.loopback_up().map_err(fail)?;
    let nics = net::wait_for_nics(Duration::from_secs(2));
    if nics.is_empty() {
        return Err(Failure::new(
            "network",
            "no Ethernet interface appeared",
            "is the NIC's driver in the initramfs (unionroot.modules=)?",
        ));
    }
    let cands = candidates(cfg, &nics)?;
    for n in &cands {
        nl.set_up(n, true).map_err(fail)?;
    }
    match mode {
        IpMode::Static => configure_static(&nl, &cfg.ip, &cands[0]).map(Some),
        _ => configure_dhcp(&nl, cfg, &cands).map(Some),
    }
}

fn configure_static(nl: &Netlink, ip: &IpConfig, nic: &Nic) -> Result<NetState, Failure> {
    let fail = |e: net::NetError| Failure::new("network", e.to_string(), "");
    let (Some(addr), mask) = (ip.client, ip.netmask) else {
        return Err(Failure::new(
            "network",
            "static ip= without a client address",
            "give ip=<client>:...",
        ));
    };
    let prefix = mask.map_or(24, |m| u32::from(m).leading_ones() as u8);
    log::info!("{}: static {addr}/{prefix} from ip=", nic.name);
    nl.add_address(nic, addr, prefix).map_err(fail)?;
    if let Some(gw) = ip.gateway {
        nl.add_default_route(nic, gw).map_err(fail)?;
    }
    let info = NetInfo {
        device: nic.name.clone(),
        proto: "static".into(),
        address: Some(addr),
        prefix,
        gateway: ip.gateway,
        dns: ip.dns.clone(),
        hostname: ip.hostname.clone(),
        root_server: ip.server,
        ..Default::default()
    };
    Ok(NetState {
        nic: nic.clone(),
        address: addr,
        lease: None,
        info,
    })
}

fn configure_dhcp(nl: &Netlink, cfg: &Config, cands: &[Nic]) -> Result<NetState, Failure> {
    let fail = |e: net::NetError| Failure::new("network", e.to_string(), "");
    let names: Vec<String> = cands.iter().map(|n| n.name.clone()).collect();
    let with_carrier = net::wait_for_carrier(&names, cfg.carrier_timeout);
    let racing: Vec<Nic> = if with_carrier.is_empty() {
        log::warn!(
            "no carrier on {} after {} s; trying DHCP anyway",
            names.join(" "),
            cfg.carrier_timeout.as_secs()
        );
        cands.to_vec()
    } else {
        cands
            .iter()
            .filter(|n| with_carrier.contains(&n.name))
            .cloned()
            .collect()
    };
    let dcfg = DriverConfig {
        hostname: cfg.ip.hostname.clone(),
        first_timeout: Duration::from_secs(4),
        max_timeout: Duration::from_secs(64),
        total: cfg.dhcp_timeout,
    };
    let (i, lease) = dhcp_driver::race(&racing, &dcfg).map_err(|e| {
        Failure::new(
            "dhcp",
            e.to_string(),
            format!("is a DHCP server answering on {}? raise unionroot.dhcp_timeout for slow switch ports", names.join(" ")),
        )
    })?;
    let nic = racing
        .get(i)
        .cloned()
        .ok_or_else(|| Failure::new("dhcp", "driver returned an unknown interface", ""))?;
    for other in racing.iter().filter(|n| n.ifindex != nic.ifindex) {
        let _ = nl.set_up(other, false);
    }
    log::info!(
        "dhcp {}: lease {}/{} router {} server {}",
        nic.name,
        lease.address,
        lease.prefix_len(),
        lease
            .routers
            .first()
            .map_or("none".into(), |r| r.to_string()),
        lease.server_id
    );
    if let Some(mtu) = lease.mtu {
        nl.set_mtu(&nic, mtu.into()).map_err(fail)?;
    }
    nl.add_address(&nic, lease.address, lease.prefix_len())
        .map_err(fail)?;
    if let Some(gw) = lease.routers.first() {
        nl.add_default_route(&nic, *gw).map_err(fail)?;
    }
    let info = NetInfo {
        device: nic.name.clone(),
        proto: "dhcp".into(),
        address: Some(lease.address),
        prefix: lease.prefix_len(),
        gateway: lease.routers.first().copied(),
        dns: lease.dns.clone(),
        // ip='s hostname field wins over the DHCP server's.
        hostname: cfg.ip.hostname.clone().or_else(|| lease.hostname.clone()),
        domain: lease.domain.clone(),
        root_server: lease.siaddr.or(Some(lease.server_id)),
        root_path: lease.root_path.clone(),
        bootfile: lease.bootfile.clone(),
        lease_secs: lease.lease_secs,
    };
    Ok(NetState {
        nic,
        address: lease.address,
        lease: Some(lease),
        info,
    })
}

/// Phase 5 input: where the system tree comes from.
pub fn root_plan(cfg: &Config, net: Option<&NetState>) -> Result<RootPlan, Failure> {
    let lease = net.and_then(|n| n.lease.as_ref());
    let root_path = match lease.and_then(|l| l.root_path.as_deref()) {
        Some(rp) => Some(NfsRoot::parse(rp).map_err(|e| {
            Failure::new(
                "root",
                format!("DHCP root-path (option 17) {rp:?}: {e}"),
                "fix option root-path on the DHCP server",
            )
        })?),
        None => None,
    };
    let (server, source) = choose_server(
        cfg.nfsroot.as_ref(),
        root_path.as_ref(),
        lease.and_then(|l| l.siaddr),
        lease.map(|l| l.server_id),
    )
    .ok_or_else(|| {
        Failure::new(
            "root",
            "no NFS server known",
            "give nfsroot=<server>:<path> or a DHCP root-path",
        )
    })?;
    let root = cfg.nfsroot.as_ref().or(root_path.as_ref()).ok_or_else(|| {
        Failure::new(
            "root",
            "no NFS root path",
            "give nfsroot=[<server>:]<path> or DHCP option 17 (root-path)",
        )
    })?;
    log::info!("nfs server {server}, from {source}");
    let version = cfg
        .effective_nfs_version()
        .map_err(|e| Failure::new("root", e.to_string(), ""))?;
    let client = net.map(|n| n.address);
    let path = client.map_or(root.path.clone(), |c| root.expand(c));
    Ok(RootPlan {
        nfs: mount_args(server, &path, version, client, &root.options),
        mount_timeout: cfg.mount_timeout,
        overlay_size: cfg.overlay_size.clone(),
        init: cfg.init.clone(),
        init_args: cfg.init_args.clone(),
    })
}

/// Phase 5: mount and stack the root, then (after `before_switch`, which logs timings) switch.
pub fn root(
    sys: &mut dyn Sys,
    p: &RootPlan,
    net: Option<&NetState>,
    before_switch: impl FnOnce(&mut dyn Sys),
) -> Result<(), Failure> {
    let steps = plan::root_steps(p);
    let (switch, build) = steps
        .split_last()
        .ok_or_else(|| Failure::new("root", "empty root plan", ""))?;
    exec::run(sys, build).map_err(|e| Failure::exec("root", e))?;
    if let Some(n) = net {
        handoff(sys, n, plan::NEW_ROOT);
    }
    before_switch(sys);
    debug_assert!(matches!(switch, Step::SwitchRoot { .. }));
    exec::run_step(sys, switch).map_err(|e| Failure::exec("switch_root", e))
}

/// Leaves the network configuration for the real system: the host name, the lease in
/// initramfs-tools' format under `/run` (carried into the new root), and resolv.conf in the new
/// root (it lands in the tmpfs upper, never on the export). Failures here are warnings: the
/// system can still boot without them.
pub fn handoff(sys: &mut dyn Sys, net: &NetState, new_root: &str) {
    if let Some(h) = &net.info.hostname {
        log::info!("hostname {h}");
        if let Err(e) = sys.sethostname(h) {
            log::warn!("cannot set the host name {h}: {e}");
        }
    }
    let uptime = sys.now().as_secs();
    let path = format!("/run/net-{}.conf", net.info.device);
    if let Err(e) = sys.write_file(&path, initramfs_tools_conf(&net.info, uptime).as_bytes()) {
        log::warn!("cannot write {path}: {e}");
    }
    if let Some(r) = resolv_conf(&net.info) {
        let path = format!("{new_root}/etc/resolv.conf");
        // A dangling symlink (to systemd-resolved's file) would make the write go astray.
        if matches!(sys.kind(&path), Kind::Symlink(_)) {
            log::info!("{path} is a symlink; leaving it to the system's resolver");
        } else if let Err(e) = sys.write_file(&path, r.as_bytes()) {
            log::warn!("cannot write {path}: {e}");
        }
    }
}

/// Is there a rescue shell in the initramfs?
pub fn has_shell(sys: &mut dyn Sys) -> bool {
    matches!(
        sys.kind("/bin/sh"),
        Kind::File { executable: true } | Kind::Symlink(_)
    )
}
