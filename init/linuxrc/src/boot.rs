//! The boot sequence, phase by phase: early mounts, configuration, modules, network, root.
//! Every failure becomes a [`Failure`] naming the phase, the thing it failed on and a hint, and
//! goes to the one fatal path in `main.rs`.

use crate::dhcp_driver::{self, DriverConfig};
use crate::exec::{self, ExecError};
use crate::net::{self, Netlink, Nic};
use crate::sys::{Kind, Sys};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;
use unionroot_core::addr::{mask_prefix, Mac};
use unionroot_core::cmdline::{Config, IpConfig, IpMode, ModuleParams};
use unionroot_core::dhcp::jitter::{initial_delay, Entropy};
use unionroot_core::dhcp::Lease;
use unionroot_core::handoff::{
    default_gateway, initramfs_tools_conf, offered, parse_pnp, resolv_conf, NetInfo, Pnp, Proto,
};
use unionroot_core::modules::{parse_builtin, parse_proc_modules, ModuleDb};
use unionroot_core::networkd;
use unionroot_core::plan::{self, ModuleNeeds, RootPlan};
use unionroot_core::root::{self, Facts};
use unionroot_core::validate::Hostname;

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
    /// The address is leased (by linuxrc or the kernel), so the real system must renew it.
    pub dhcp: bool,
    /// What the real system is told (`/run/net-<iface>.conf`, resolv.conf, hostname).
    pub info: NetInfo,
    /// Why the host name DHCP offered was refused, if it was: per-node paths then stop the boot
    /// instead of falling back to another name.
    pub hostname_refused: Option<String>,
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

/// Phase 2: `/etc/unionroot.conf` overlaid by `/proc/cmdline`, both read as bytes (the parser
/// decides which parts must be text).
pub fn read_config(sys: &mut dyn Sys) -> Result<Config, Failure> {
    let file = match sys.read_bytes(CONFIG_FILE) {
        Ok(b) => b,
        Err(nix::errno::Errno::ENOENT) => Vec::new(),
        Err(e) => {
            log::warn!("cannot read {CONFIG_FILE}: {e}; using the kernel command line alone");
            Vec::new()
        }
    };
    let cmdline = sys.read_bytes("/proc/cmdline").map_err(|e| {
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

/// Modules whose alias matches a device present on the PCI, platform or virtio bus right now.
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
    params: &ModuleParams,
) -> Result<(), Failure> {
    let loaded = parse_proc_modules(&sys.read_file("/proc/modules").unwrap_or_default());
    let needs = ModuleNeeds {
        wanted,
        builtin,
        loaded: &loaded,
    };
    let steps = plan::module_steps(db, &needs, base, params).map_err(|e| {
        Failure::new(
            "modules",
            e.to_string(),
            "rebuild the initramfs with the modules this boot needs",
        )
    })?;
    exec::run(sys, &steps).map_err(|e| Failure::exec("modules", e))
}

/// The modules an image root needs (loop(4) and the image filesystems).
const IMAGE_MODULES: [&str; 3] = ["loop", "squashfs", "erofs"];

/// Phase 3: the NIC driver (named by `unionroot.modules=`, else found by matching PCI and
/// platform, then virtio modaliases against `modules.alias`), the NFS client and overlayfs,
/// dependencies first. With no `modules.dep` (a kernel with everything built in) there is nothing to do.
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
        )
        // After the aliases: softdeps name them (libcrc32c's `pre: crc32c`). There is no
        // modprobe here to load them on request, so they go into the load order.
        .with_softdeps(
            &sys.read_file(&format!("{base}/modules.softdep"))
                .unwrap_or_default(),
        );
    let builtin = parse_builtin(
        &sys.read_file(&format!("{base}/modules.builtin"))
            .unwrap_or_default(),
    );
    let version = cfg
        .effective_nfs_version()
        .map_err(|e| Failure::new("modules", e.to_string(), ""))?;
    let params = cfg.load_params();
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
        load(sys, &db, pci, &base, &builtin, &params)?;
        // Device-tree machines put virtio on MMIO transports: QEMU's arm64 `virt` names them
        // `of:NvirtioT(null)Cvirtio,mmio` on the platform bus, and Debian's arm64 kernel has
        // virtio_mmio as a module. Only modules the initramfs carries can match.
        let platform = modalias_modules(&db, "platform");
        if !platform.is_empty() {
            log::info!("platform devices need: {}", platform.join(" "));
            load(sys, &db, platform, &base, &builtin, &params)?;
        }
        wanted = modalias_modules(&db, "virtio");
        if !wanted.is_empty() {
            log::info!("virtio devices need: {}", wanted.join(" "));
        }
    }
    wanted.push(version.module().into());
    wanted.push("overlay".into());
    if cfg.image.is_some() {
        // Which filesystem the image has is known only once its pointer is read, after the
        // network is up: load loop and both image filesystems the initramfs carries. One that
        // is missing is named later, by the image's /proc/filesystems check.
        wanted.extend(
            IMAGE_MODULES
                .into_iter()
                .filter(|m| db.contains(m) || builtin.contains(*m))
                .map(String::from),
        );
    }
    load(sys, &db, wanted, &base, &builtin, &params)
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
    let by_mac = [
        (
            cfg.bootif,
            "BOOTIF names MAC {m}, which no interface has",
            "check the pxelinux IPAPPEND 2 setup",
            "BOOTIF from pxelinux",
        ),
        (
            cfg.mac,
            "unionroot.mac={m} matches no interface",
            "check the MAC in the node's configuration",
            "unionroot.mac",
        ),
    ];
    if let Some((mac, missing, hint, from)) = by_mac
        .into_iter()
        .find_map(|(mac, missing, hint, from)| Some((mac?, missing, hint, from)))
    {
        let m = mac.to_string();
        let nic = nics
            .iter()
            .find(|n| Mac(n.mac) == mac)
            .cloned()
            .ok_or_else(|| Failure::new("network", missing.replace("{m}", &m), hint))?;
        log::info!("using {}: its MAC {m} is {from}", nic.name);
        return Ok(vec![nic]);
    }
    let names: Vec<&str> = nics.iter().map(|n| n.name.as_str()).collect();
    log::info!(
        "no interface named by ip=, BOOTIF or unionroot.mac: trying all of {}",
        names.join(" ")
    );
    Ok(nics.to_vec())
}

/// The network the kernel configured itself (`ip=` handled by IP_PNP, as with
/// `init=/linuxrc` from an NFS root): the interface holding an IPv4 address, plus what
/// `/proc/net/pnp` says. Running DHCP again would only risk a different address under the NFS root.
fn kernel_configured(sys: &mut dyn Sys, pnp: Pnp) -> Result<NetState, Failure> {
    let nics = net::ethernet_nics();
    let addrs = nix::ifaddrs::getifaddrs()
        .map_err(|e| Failure::new("network", format!("getifaddrs: {e}"), ""))?;
    let found = addrs.into_iter().find_map(|ifa| {
        let addr = ifa.address.as_ref()?.as_sockaddr_in()?.ip();
        let nic = nics.iter().find(|n| n.name == ifa.interface_name)?.clone();
        let prefix = ifa
            .netmask
            .as_ref()
            .and_then(|m| m.as_sockaddr_in())
            .map_or(24, |m| mask_prefix(m.ip()));
        Some((nic, addr, prefix))
    });
    let (nic, address, prefix) = found.ok_or_else(|| {
        Failure::new(
            "network",
            "/proc/net/pnp exists but no Ethernet interface has an IPv4 address",
            "check the kernel's ip= and IP-Config lines",
        )
    })?;
    let gateway = sys
        .read_file("/proc/net/route")
        .ok()
        .and_then(|r| default_gateway(&r, &nic.name));
    log::info!(
        "{}: {address}/{prefix} configured by the kernel ({}), reusing it: no DHCP",
        nic.name,
        pnp.proto
    );
    let pnp_proto = pnp.proto.clone();
    for w in &pnp.refused {
        log::warn!("{w}");
    }
    let info = NetInfo {
        device: nic.name.clone(),
        proto: Proto::Kernel,
        address: Some(address),
        prefix,
        gateway,
        dns: pnp.nameservers,
        domain: pnp.domain,
        root_server: pnp.bootserver,
        ..Default::default()
    };
    Ok(NetState {
        nic,
        address,
        lease: None,
        dhcp: pnp_proto == "DHCP",
        info,
        hostname_refused: None,
    })
}

/// Phase 4: bring up the network as `ip=` says, unless the kernel already did.
pub fn network(sys: &mut dyn Sys, cfg: &Config) -> Result<Option<NetState>, Failure> {
    // Bytes: the kernel copies DHCP's domain into this file as it came, and a stray byte there
    // must not hide the whole file (DHCP would then run again under the NFS root). The domain
    // is validated by parse_pnp, so a replacement character in it is refused, not used.
    if let Some(pnp) = sys
        .read_bytes("/proc/net/pnp")
        .ok()
        .and_then(|b| parse_pnp(&String::from_utf8_lossy(&b)))
    {
        return kernel_configured(sys, pnp).map(Some);
    }
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
    if mode != IpMode::Static {
        dhcp_jitter(sys, cfg, &cands);
    }
    match mode {
        IpMode::Static => {
            let nic = cands.first().ok_or_else(|| {
                Failure::new(
                    "network",
                    "no interface to configure",
                    "check ip= and the NICs",
                )
            })?;
            configure_static(&nl, &cfg.ip, nic).map(Some)
        }
        _ => configure_dhcp(&nl, cfg, &cands).map(Some),
    }
}

/// RFC 2131's random wait before the first DISCOVER, once per node (`unionroot.jitter=`). It
/// runs after the links were set up, so a NIC's carrier negotiation overlaps it.
pub fn dhcp_jitter(sys: &mut dyn Sys, cfg: &Config, cands: &[Nic]) {
    if cfg.dhcp_jitter.is_zero() {
        return;
    }
    let entropy = match (sys.random_u64(), cands.first()) {
        (Some(r), _) => Entropy::Kernel(r),
        (None, Some(n)) => Entropy::Mac(Mac(n.mac)),
        // No NIC: nothing will be sent, so there is nothing to spread.
        (None, None) => return,
    };
    let j = initial_delay(cfg.dhcp_jitter, entropy);
    log::info!("{j}");
    sys.sleep(j.delay);
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
    let prefix = mask.map_or(24, mask_prefix);
    log::info!("{}: static {addr}/{prefix} from ip=", nic.name);
    nl.add_address(nic, addr, prefix).map_err(fail)?;
    if let Some(gw) = ip.gateway {
        nl.add_default_route(nic, gw).map_err(fail)?;
    }
    let info = NetInfo {
        device: nic.name.clone(),
        proto: Proto::Static,
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
        dhcp: false,
        info,
        hostname_refused: None,
    })
}

fn configure_dhcp(nl: &Netlink, cfg: &Config, cands: &[Nic]) -> Result<NetState, Failure> {
    let fail = |e: net::NetError| Failure::new("network", e.to_string(), "");
    let names: Vec<String> = cands.iter().map(|n| n.name.clone()).collect();
    // Interfaces join the race as their carrier comes up (within carrier_timeout), so a NIC
    // that negotiates a second late is still tried and one without a cable costs nothing.
    let dcfg = DriverConfig {
        hostname: cfg.ip.hostname.as_ref().map(|h| h.to_string()),
        first_timeout: Duration::from_secs(4),
        max_timeout: Duration::from_secs(64),
        total: cfg.dhcp_timeout,
        carrier_timeout: cfg.carrier_timeout,
        has_carrier: net::has_carrier,
    };
    let racing = cands;
    let (i, lease) = dhcp_driver::race(racing, &dcfg).map_err(|e| {
        Failure::new(
            "dhcp",
            e.to_string(),
            format!(
                "check the cabling and the DHCP server for {}; raise unionroot.dhcp_timeout for slow switch ports",
                names.join(" ")
            ),
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
    Ok(dhcp_state(cfg, nic, lease))
}

/// What a lease tells the rest of the boot, its text options validated ([`offered`]).
fn dhcp_state(cfg: &Config, nic: Nic, lease: Lease) -> NetState {
    let o = offered(&lease);
    // Every refused option is said, also when ip= names the host: a server that sends hostile
    // text is worth knowing about even when its host name is not used.
    for w in &o.warnings {
        log::warn!("{w}");
    }
    // ip='s hostname field wins over the DHCP server's; then a refused offer does not matter.
    let (hostname, hostname_refused) = match &cfg.ip.hostname {
        Some(h) => (Some(h.clone()), None),
        None => (o.hostname, o.hostname_refused),
    };
    let info = NetInfo {
        device: nic.name.clone(),
        proto: Proto::Dhcp,
        address: Some(lease.address),
        prefix: lease.prefix_len(),
        gateway: lease.routers.first().copied(),
        dns: lease.dns.clone(),
        hostname,
        domain: o.domain,
        root_server: lease.siaddr.or(Some(lease.server_id)),
        root_path: o.root_path,
        bootfile: o.bootfile,
        lease_secs: lease.lease_secs,
    };
    NetState {
        nic,
        address: lease.address,
        lease: Some(lease),
        dhcp: true,
        info,
        hostname_refused,
    }
}

/// Is `/` a real filesystem (the seed's NFS-root mode) rather than an initramfs?
pub fn root_is_real(sys: &mut dyn Sys) -> bool {
    !sys.fs_magic("/").is_ok_and(crate::sys::is_initramfs)
}

/// Phase 5 input: where each piece of the root comes from. The decision is core's
/// ([`unionroot_core::root::root_plan`]); this gathers the facts it needs and logs the server.
pub fn root_plan(cfg: &Config, net: Option<&NetState>, pivot: bool) -> Result<RootPlan, Failure> {
    let kernel = nix::sys::utsname::uname()
        .ok()
        .map(|u| u.nodename().to_string_lossy().into_owned());
    let facts = Facts {
        cfg,
        lease: net.and_then(|n| n.lease.as_ref()),
        net: net.map(|n| &n.info),
        hostname_refused: net.and_then(|n| n.hostname_refused.as_deref()),
        kernel_hostname: kernel.as_deref(),
        pivot,
        mac: net.map(|n| Mac(n.nic.mac)),
    };
    let planned =
        root::root_plan(&facts).map_err(|e| Failure::new("root", e.to_string(), e.hint()))?;
    if let Some((server, source)) = planned.server {
        log::info!("nfs server {server}, from {source}");
    }
    for r in &planned.heads {
        log::info!("{r}");
    }
    Ok(planned.plan)
}

/// Phase 5: mount and stack the root, then (after `before_switch`, which logs timings) switch.
pub fn root(
    sys: &mut dyn Sys,
    p: &RootPlan,
    net: Option<&NetState>,
    before_switch: impl FnOnce(&mut dyn Sys),
) -> Result<(), Failure> {
    let steps = plan::root_steps(p);
    exec::run(sys, &steps.build).map_err(|e| Failure::exec("root", e))?;
    if let Some(n) = net {
        handoff(sys, n, plan::NEW_ROOT);
    }
    before_switch(sys);
    let phase = if p.pivot { "pivot_root" } else { "switch_root" };
    exec::run_step(sys, &steps.switch).map_err(|e| Failure::exec(phase, e))
}

/// Leaves the network configuration for the real system: the host name (set now, and in the new
/// root's `/etc/hostname`, so that systemd does not put the image's back), the lease in
/// initramfs-tools' format and the NIC's udev/networkd files under `/run` (carried into the new
/// root), and resolv.conf in the new root. What goes into the new root lands in the tmpfs upper,
/// never on the export. Failures here are warnings: the system can still boot without them.
pub fn handoff(sys: &mut dyn Sys, net: &NetState, new_root: &str) {
    // Only a validated name gets here (NetInfo holds a Hostname), and one longer than the
    // kernel's 64 bytes is left alone rather than cut: a cut name could be another node's.
    match &net.info.hostname {
        Some(h) if h.fits_uts() => {
            log::info!("hostname {h}");
            if let Err(e) = sys.sethostname(h) {
                log::warn!("cannot set the host name {h}: {e}");
            }
            write_unless_link(sys, &format!("{new_root}/etc/hostname"), &format!("{h}\n"));
        }
        Some(h) => log::warn!(
            "not setting the host name {h}: longer than the kernel's {} bytes",
            Hostname::UTS_MAX
        ),
        None => {}
    }
    let uptime = sys.now().as_secs();
    let path = format!("/run/net-{}.conf", net.info.device);
    if let Err(e) = sys.write_file(&path, initramfs_tools_conf(&net.info, uptime).as_bytes()) {
        log::warn!("cannot write {path}: {e}");
    }
    let files = networkd::files(&net.info, Mac(net.nic.mac), net.dhcp);
    match sys.mkdir(networkd::DIR, 0o755) {
        Err(e) => log::warn!("cannot create {}: {e}", networkd::DIR),
        Ok(()) => {
            for (name, text) in [files.link, files.network] {
                let path = format!("{}/{name}", networkd::DIR);
                if let Err(e) = sys.write_file(&path, text.as_bytes()) {
                    log::warn!("cannot write {path}: {e}");
                }
            }
        }
    }
    if let Some(r) = resolv_conf(&net.info) {
        write_unless_link(sys, &format!("{new_root}/etc/resolv.conf"), &r);
    }
}

/// Writes a file of the new root unless it is a symlink: a dangling one (to systemd-resolved's
/// or a generated file under /run) would make the write go astray.
fn write_unless_link(sys: &mut dyn Sys, path: &str, contents: &str) {
    if matches!(sys.kind(path), Kind::Symlink(_)) {
        log::info!("{path} is a symlink; leaving it to the system");
    } else if let Err(e) = sys.write_file(path, contents.as_bytes()) {
        log::warn!("cannot write {path}: {e}");
    }
}

/// Is there a rescue shell in the initramfs?
pub fn has_shell(sys: &mut dyn Sys) -> bool {
    matches!(
        sys.kind("/bin/sh"),
        Kind::File { executable: true } | Kind::Symlink(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{Call, Recorder};

    fn state() -> NetState {
        NetState {
            nic: Nic {
                name: "eth0".into(),
                ifindex: 2,
                mac: [0x52, 0x54, 0, 0x77, 0, 1],
            },
            address: Ipv4Addr::new(192, 168, 77, 100),
            lease: None,
            dhcp: true,
            info: NetInfo {
                device: "eth0".into(),
                proto: Proto::Dhcp,
                address: Some(Ipv4Addr::new(192, 168, 77, 100)),
                prefix: 24,
                hostname: Some(Hostname::parse("node1").unwrap()),
                dns: vec![Ipv4Addr::new(192, 168, 77, 1)],
                ..Default::default()
            },
            hostname_refused: None,
        }
    }

    #[test]
    fn handoff_leaves_name_lease_and_networkd_files_for_the_real_system() {
        let mut r = Recorder::default();
        handoff(&mut r, &state(), "/newroot");
        let written: Vec<&str> = r
            .calls
            .iter()
            .filter_map(|c| match c {
                Call::WriteFile(p) => Some(p.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            written,
            [
                "/newroot/etc/hostname",
                "/run/net-eth0.conf",
                "/run/systemd/network/10-unionroot-eth0.link",
                "/run/systemd/network/10-unionroot-eth0.network",
                "/newroot/etc/resolv.conf",
            ]
        );
        assert!(r.calls.contains(&Call::SetHostname("node1".into())));
        assert!(r
            .calls
            .contains(&Call::Mkdir("/run/systemd/network".into())));
        assert_eq!(r.files["/newroot/etc/hostname"], "node1\n");
        assert!(r.files["/run/systemd/network/10-unionroot-eth0.network"]
            .contains("\nKeepConfiguration=yes\nDHCP=ipv4\n"));
    }

    #[test]
    fn handoff_leaves_symlinked_files_of_the_new_root_alone() {
        let mut r = Recorder::default();
        for f in ["/newroot/etc/hostname", "/newroot/etc/resolv.conf"] {
            r.kinds
                .insert(f.into(), Kind::Symlink("/run/somewhere".into()));
        }
        handoff(&mut r, &state(), "/newroot");
        assert!(!r.files.keys().any(|f| f.starts_with("/newroot")));
        // The runtime files still go to /run.
        assert!(r.files.contains_key("/run/net-eth0.conf"));
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn lease(hostname: Option<&str>, domain: Option<&str>) -> Lease {
        Lease {
            address: ip("10.0.2.15"),
            netmask: ip("255.255.255.0"),
            broadcast: None,
            routers: vec![ip("10.0.2.2")],
            dns: vec![ip("10.0.2.3")],
            hostname: hostname.map(String::from),
            domain: domain.map(String::from),
            root_path: Some("10.0.2.2:/srv/system".into()),
            mtu: None,
            ntp: Vec::new(),
            server_id: ip("10.0.2.2"),
            siaddr: None,
            tftp_server: None,
            bootfile: None,
            lease_secs: Some(3600),
        }
    }

    fn nic() -> Nic {
        Nic {
            name: "eth0".into(),
            ifindex: 2,
            mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
        }
    }

    #[test]
    fn dhcp_waits_a_random_time_within_the_jitter_bound() {
        let sleeps = |r: &Recorder| -> Vec<Duration> {
            r.calls
                .iter()
                .filter_map(|c| match c {
                    Call::Sleep(d) => Some(*d),
                    _ => None,
                })
                .collect()
        };
        let cfg = Config::parse("", "unionroot.jitter=500").unwrap();
        let mut r = Recorder {
            random: Some(1137),
            ..Recorder::default()
        };
        dhcp_jitter(&mut r, &cfg, &[nic()]);
        assert_eq!(sleeps(&r), [Duration::from_millis(1137 % 501)]);
        // No kernel randomness: the MAC seeds it, the same on every boot, within the bound.
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        dhcp_jitter(&mut a, &cfg, &[nic()]);
        dhcp_jitter(&mut b, &cfg, &[nic()]);
        assert_eq!(sleeps(&a), sleeps(&b));
        assert!(sleeps(&a).iter().all(|d| *d <= Duration::from_millis(500)));
        // 0 turns it off: no sleep at all.
        let cfg = Config::parse("", "unionroot.jitter=0").unwrap();
        let mut r = Recorder {
            random: Some(1137),
            ..Recorder::default()
        };
        dhcp_jitter(&mut r, &cfg, &[nic()]);
        assert!(sleeps(&r).is_empty());
    }

    fn persist_cfg(extra: &str) -> Config {
        Config::parse(
            "unionroot.persist=10.0.2.2:/srv/persist\nunionroot.persist_paths=/var/log\n",
            extra,
        )
        .unwrap()
    }

    #[test]
    fn cmdline_with_latin1_in_another_parameter_boots() {
        let mut r = Recorder::default();
        r.raw_files.insert(
            "/proc/cmdline".into(),
            b"BOOT_IMAGE=/vmlinuz acpi_osi=\"Windows \xe9t\xe9\" unionroot.size=1g\n".to_vec(),
        );
        r.raw_files.insert(
            CONFIG_FILE.into(),
            b"# \xe9crit par unionroot\nunionroot.nfsvers=4\n".to_vec(),
        );
        let cfg = read_config(&mut r).unwrap();
        assert_eq!(cfg.overlay_size, "1g");
        assert_eq!(
            cfg.nfs_version,
            unionroot_core::nfs::NfsVersion::V4(2),
            "a non-UTF-8 config file is still read"
        );
        r.raw_files
            .insert("/proc/cmdline".into(), b"unionroot.size=1\xe9g".to_vec());
        let f = read_config(&mut r).unwrap_err();
        assert!(f.reason.contains("unionroot.size="), "{}", f.reason);
        assert!(f.reason.contains("not UTF-8"), "{}", f.reason);
    }

    #[test]
    fn a_refused_dhcp_host_name_never_becomes_a_path() {
        for bad in ["../node-b", "../../../../etc", "..", "node\nb"] {
            let cfg = persist_cfg("");
            let net = dhcp_state(&cfg, nic(), lease(Some(bad), None));
            assert_eq!(net.info.hostname, None, "{bad:?}");
            let f = root_plan(&cfg, Some(&net), false).unwrap_err();
            assert_eq!(f.phase, "root");
            assert!(
                f.reason
                    .contains("per-node paths need this node's host name")
                    && f.reason.contains("option 12"),
                "{}",
                f.reason
            );
            assert!(!f.reason.contains('\n'), "{:?}", f.reason);
        }
        // Without per-node paths the boot goes on, just without a host name.
        let cfg = Config::parse("", "").unwrap();
        let net = dhcp_state(&cfg, nic(), lease(Some("../node-b"), None));
        assert!(root_plan(&cfg, Some(&net), false).is_ok());
        // The name from ip= wins, so a bad offer does not matter then.
        let cfg = persist_cfg("ip=::::node-a::dhcp");
        let net = dhcp_state(&cfg, nic(), lease(Some("../node-b"), None));
        let p = root_plan(&cfg, Some(&net), false).unwrap();
        assert_eq!(p.persist.unwrap().node.as_str(), "node-a");
        // A good offer is used.
        let cfg = persist_cfg("");
        let net = dhcp_state(&cfg, nic(), lease(Some("node-07"), Some("cluster.lan")));
        let p = root_plan(&cfg, Some(&net), false).unwrap();
        assert_eq!(p.persist.unwrap().node.as_str(), "node-07");
        assert_eq!(net.info.domain.as_deref(), Some("cluster.lan"));
    }

    #[test]
    fn handoff_writes_only_validated_text() {
        let cfg = Config::parse("", "").unwrap();
        let net = dhcp_state(
            &cfg,
            nic(),
            lease(Some("node\rb"), Some("lan\nnameserver 6.6.6.6")),
        );
        let mut r = Recorder::default();
        handoff(&mut r, &net, "/newroot");
        assert!(
            !r.calls.iter().any(|c| matches!(c, Call::SetHostname(_))),
            "{:?}",
            r.calls
        );
        let resolv = &r.files["/newroot/etc/resolv.conf"];
        assert!(!resolv.contains("6.6.6.6"), "{resolv}");
        assert_eq!(resolv.lines().filter(|l| !l.starts_with('#')).count(), 1);
        for contents in r.files.values() {
            assert!(
                !contents.chars().any(|c| c.is_control() && c != '\n'),
                "{contents:?}"
            );
        }
        // A valid name is set.
        let net = dhcp_state(&cfg, nic(), lease(Some("node-07"), None));
        let mut r = Recorder::default();
        handoff(&mut r, &net, "/newroot");
        assert_eq!(r.calls[0], Call::SetHostname("node-07".into()));
        // One over the kernel's 64 bytes is valid as a directory but not set (and not cut).
        let long = format!("{}.{}", "a".repeat(40), "b".repeat(40));
        let net = dhcp_state(&cfg, nic(), lease(Some(&long), None));
        let mut r = Recorder::default();
        handoff(&mut r, &net, "/newroot");
        assert!(!r.calls.iter().any(|c| matches!(c, Call::SetHostname(_))));
    }

    /// From a real root the last step is a pivot_root, not a switch_root; running the whole root
    /// phase must reach it (a debug build used to assert otherwise and panic: PID 1 dying).
    #[test]
    fn pivot_plan_runs_to_the_pivot() {
        let cfg = Config::parse(
            "",
            "unionroot.lower=10.0.2.2:/srv/system unionroot.mount=/home=10.0.2.2:/srv/home",
        )
        .unwrap();
        let net = dhcp_state(&cfg, nic(), lease(Some("node-07"), None));
        let p = root_plan(&cfg, Some(&net), true).unwrap();
        let mut r = Recorder {
            free: 1 << 30,
            ..Default::default()
        };
        r.files
            .insert("/proc/filesystems".into(), "nodev\toverlay\n".into());
        r.kinds
            .insert(plan::LOWER_DIR.into(), crate::sys::Kind::Dir);
        r.kinds.insert(
            "/newroot/sbin/init".into(),
            crate::sys::Kind::File { executable: true },
        );
        let mut switched = false;
        let f = root(&mut r, &p, Some(&net), |_| switched = true).unwrap_err();
        assert!(switched);
        // The recorder's exec returns, so the phase fails there, after the pivot.
        assert_eq!(f.phase, "pivot_root");
        assert!(f.reason.contains("exec /sbin/init"), "{}", f.reason);
        assert!(r
            .calls
            .iter()
            .any(|c| matches!(c, Call::PivotRoot(a, _) if a == ".")));
        assert!(r
            .calls
            .iter()
            .any(|c| matches!(c, Call::Mount { target, .. } if target == "/newroot/home")));
    }
}
