//! One check per table of `cluster.toml`, each turning its raw table into model values and
//! recording what is wrong. [`super::parse`] calls them in the file's order and assembles the
//! [`Cluster`](super::Cluster).

use super::check::{is_hostname_label, Checker, FileKind};
use super::model::{
    Backend, Boot, BootMode, Compress, Export, Exports, Loader, Mac, Node, Server, Subnet,
};
use super::raw::{
    RawCluster, RawDhcp, RawExports, RawInitramfs, RawKernel, RawNfs, RawPaths, RawPxe, RawServer,
    RawSetupTree, S,
};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use toml::Spanned;
use unionroot_core::addr::netmask_prefix;
use unionroot_core::nfs::NfsVersion;

/// An address the nodes reach directly: inside the subnet, and neither its network nor its
/// broadcast address.
pub(super) fn in_subnet(
    c: &mut Checker,
    subnet: Option<Subnet>,
    ip: Option<Ipv4Addr>,
    v: &S,
    field: &str,
) {
    if let (Some(ip), Some(sn)) = (ip, subnet) {
        if !sn.contains(ip) {
            c.err(
                Some(v.span()),
                field,
                format!("{ip} is outside the subnet {}", sn.cidr()),
            );
        } else if ip == sn.network || ip == sn.broadcast() {
            c.err(
                Some(v.span()),
                field,
                format!("{ip} is the network or broadcast address of {}", sn.cidr()),
            );
        }
    }
}

/// `[server]`: the address, the subnet (without host bits), the router and name service.
/// Also gives the address and subnet as found, for the checks of later tables.
pub(super) fn server(c: &mut Checker, s: &RawServer) -> (Option<Ipv4Addr>, Option<Subnet>, Server) {
    let address = c.ip(&s.address, "server.address");
    let network = c.ip(&s.network, "server.network");
    let netmask = c.ip(&s.netmask, "server.netmask");
    if let Some(m) = netmask {
        if netmask_prefix(m).is_none() {
            c.err(
                Some(s.netmask.span()),
                "server.netmask",
                format!(
                    "{} is not a netmask (ones, then zeros, e.g. 255.255.255.0)",
                    s.netmask.get_ref()
                ),
            );
        }
    }
    // Checked below; from here on the network is taken without host bits, so that one wrong
    // digit there is one problem, not one per address.
    let subnet = network.zip(netmask).map(|(n, m)| Subnet {
        network: Ipv4Addr::from(u32::from(n) & u32::from(m)),
        netmask: m,
    });
    if let (Some(n), Some(sn)) = (network, subnet) {
        if n != sn.network {
            c.err(
                Some(s.network.span()),
                "server.network",
                format!(
                    "{n} has host bits set for netmask {}; the network is {}",
                    sn.netmask, sn.network
                ),
            );
        }
    }

    in_subnet(c, subnet, address, &s.address, "server.address");
    let router = s.router.as_ref().and_then(|r| {
        let ip = c.ip(r, "server.router");
        in_subnet(c, subnet, ip, r, "server.router");
        ip
    });
    let dns: Vec<Ipv4Addr> = s
        .dns
        .iter()
        .enumerate()
        .filter_map(|(i, d)| c.ip(d, &format!("server.dns[{i}]")))
        .collect();
    if dns.len() > 2 {
        c.warnings.push(format!(
            "server.dns lists {} servers; the kernel's ip= carries only the first two",
            dns.len()
        ));
    }
    let domain = s.domain.as_ref().map(|d| {
        let v = d.get_ref();
        // linuxrc refuses what fails here (DHCP option 15 passes the same check).
        if let Err(e) = unionroot_core::validate::DomainName::parse(v) {
            c.err(
                Some(d.span()),
                "server.domain",
                format!("{v:?} is not a DNS domain name (labels of letters, digits and '-'): {e}"),
            );
        }
        v.clone()
    });
    let interface = s.interface.as_ref().map(|i| c.word(i, "server.interface"));
    (
        address,
        subnet,
        Server {
            address: address.unwrap_or(Ipv4Addr::UNSPECIFIED),
            subnet: subnet.unwrap_or(Subnet {
                network: Ipv4Addr::UNSPECIFIED,
                netmask: Ipv4Addr::UNSPECIFIED,
            }),
            router,
            dns,
            domain,
            interface,
        },
    )
}

/// `[dhcp]`: the lease time handed out, in seconds.
pub(super) fn dhcp(c: &mut Checker, d: &RawDhcp) -> u32 {
    match &d.lease_time {
        None => 604_800,
        Some(v) => match u32::try_from(*v.get_ref()) {
            Ok(n) if n > 0 => n,
            _ => {
                c.err(
                    Some(v.span()),
                    "dhcp.lease_time",
                    format!("{} must be a number of seconds above 0", v.get_ref()),
                );
                0
            }
        },
    }
}

/// `[nfs]`: the servers in failover order (default: the server), the version and the options.
pub(super) fn nfs(
    c: &mut Checker,
    n: &RawNfs,
    address: Option<Ipv4Addr>,
) -> (Vec<Ipv4Addr>, NfsVersion, Vec<String>) {
    let nfs_version = match &n.version {
        None => NfsVersion::V3,
        Some(v) => NfsVersion::parse(v.get_ref()).unwrap_or_else(|_| {
            c.err(
                Some(v.span()),
                "nfs.version",
                format!("{:?} is not 3, 4, 4.0, 4.1 or 4.2", v.get_ref()),
            );
            NfsVersion::V3
        }),
    };
    let nfs_servers: Vec<Ipv4Addr> = match &n.servers {
        None => address.into_iter().collect(),
        Some(v) if v.is_empty() => {
            c.err(
                None,
                "nfs.servers",
                "list at least one server, or drop the key",
            );
            Vec::new()
        }
        Some(v) => v
            .iter()
            .enumerate()
            .filter_map(|(i, s)| c.ip(s, &format!("nfs.servers[{i}]")))
            .collect(),
    };
    let mut nfs_options = Vec::new();
    for (i, o) in n.options.iter().enumerate() {
        let field = format!("nfs.options[{i}]");
        let w = c.word(o, &field);
        let key = w.split('=').next().unwrap_or("");
        if key == "vers" || key == "nfsvers" || key == "v3" || key == "v4" {
            c.err(
                Some(o.span()),
                field,
                "set the NFS version with nfs.version, not in the options",
            );
        } else if w.contains(',') {
            c.err(Some(o.span()), field, "one option per list entry");
        }
        nfs_options.push(w);
    }
    (nfs_servers, nfs_version, nfs_options)
}

/// `[exports]`: every exported directory, each once, and the mount points, each once.
pub(super) fn exports(c: &mut Checker, e: &RawExports, subnet: Option<Subnet>) -> Exports {
    let clients = match &e.clients {
        Some(v) => c.word(v, "exports.clients"),
        None => subnet.map(|s| s.cidr()).unwrap_or_default(),
    };
    if clients == "*" {
        c.warnings.push(format!(
            "line {}: exports.clients = \"*\" lets every host mount the exports",
            e.clients.as_ref().map_or(0, |v| c.line(v.span()))
        ));
    }
    let ex_options: Vec<String> = e
        .options
        .iter()
        .enumerate()
        .map(|(i, o)| c.word(o, &format!("exports.options[{i}]")))
        .collect();
    let system = Export {
        path: c.server_path(&e.system, "exports.system"),
        read_only: true,
        root_squash: false,
        mount_point: None,
        role: "system tree".into(),
        backend: Backend::Vfs,
    };
    let layers: Vec<Export> = e
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| Export {
            path: c.server_path(l, &format!("exports.layers[{i}]")),
            read_only: true,
            root_squash: false,
            mount_point: None,
            role: format!("layer {}", i + 1),
            backend: Backend::Vfs,
        })
        .collect();
    let mut mounts = Vec::new();
    for (i, m) in e.mounts.iter().enumerate() {
        let f = format!("exports.mounts[{i}]");
        let r = m.get_ref();
        let path = c.server_path(&r.path, &format!("{f}.path"));
        let before = c.problems.len();
        let mp = c.server_path(&r.mount_point, &format!("{f}.mount_point"));
        if mp == "/" {
            c.err(
                Some(r.mount_point.span()),
                format!("{f}.mount_point"),
                "the root is the overlay; mount extra exports below it",
            );
        } else if c.problems.len() == before {
            c.mount_target(&r.mount_point, &format!("{f}.mount_point"));
        }
        let root_squash = r
            .root_squash
            .as_ref()
            .map_or(!r.read_only, |v| *v.get_ref());
        if !r.read_only && !root_squash {
            c.warnings.push(format!(
                "line {}: {f}: {path} is exported read-write with no_root_squash: root on any \
                 node (or anyone who can spoof a node's address) can change every file in it",
                c.line(m.span())
            ));
        }
        let backend = super::heads::backend(c, r.backend.as_ref(), &f);
        mounts.push(Export {
            path,
            read_only: r.read_only,
            root_squash,
            mount_point: Some(mp.clone()),
            role: mp,
            backend,
        });
    }
    let persist = e.persist.as_ref().map(|sp| {
        let p = sp.get_ref();
        let path = c.server_path(&p.path, "exports.persist.path");
        if p.paths.is_empty() {
            c.err(
                Some(sp.span()),
                "exports.persist.paths",
                "list the paths each node keeps, e.g. [\"/var/log\", \"/etc/ssh\"]",
            );
        }
        let paths: Vec<String> = p
            .paths
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let f = format!("exports.persist.paths[{i}]");
                let before = c.problems.len();
                let s = c.server_path(v, &f);
                if s == "/" {
                    c.err(Some(v.span()), f, "the root cannot be kept per node");
                } else if c.problems.len() == before {
                    c.mount_target(v, &f);
                }
                s
            })
            .collect();
        let root_squash = p.root_squash.as_ref().is_none_or(|v| *v.get_ref());
        if !root_squash {
            c.warnings.push(format!(
                "line {}: exports.persist: {path} is exported read-write with no_root_squash: \
                 root on any node can change every node's files in it",
                c.line(sp.span())
            ));
        }
        (
            Export {
                path,
                read_only: false,
                root_squash,
                mount_point: None,
                role: "per-node directories".into(),
                backend: Backend::Vfs,
            },
            paths,
        )
    });
    let images = e.images.as_ref().map(|v| Export {
        path: c.server_path(v, "exports.images"),
        read_only: true,
        root_squash: false,
        mount_point: None,
        role: "images".into(),
        backend: Backend::Vfs,
    });
    let mut seen: HashMap<String, String> = HashMap::new();
    for (field, ex) in std::iter::once(("exports.system".to_string(), &system))
        .chain(
            layers
                .iter()
                .enumerate()
                .map(|(i, l)| (format!("exports.layers[{i}]"), l)),
        )
        .chain(
            mounts
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("exports.mounts[{i}].path"), m)),
        )
        .chain(
            persist
                .as_ref()
                .map(|(p, _)| ("exports.persist.path".to_string(), p)),
        )
        .chain(images.as_ref().map(|p| ("exports.images".to_string(), p)))
    {
        if let Some(first) = seen.insert(ex.path.clone(), field.clone()) {
            c.err(
                None,
                field,
                format!("{} is already exported as {first}", ex.path),
            );
        }
    }
    let mut mps: HashMap<&str, usize> = HashMap::new();
    for (i, m) in e.mounts.iter().enumerate() {
        let mp = m.get_ref().mount_point.get_ref().as_str();
        if let Some(first) = mps.insert(mp, i) {
            c.err(
                Some(m.get_ref().mount_point.span()),
                format!("exports.mounts[{i}].mount_point"),
                format!("{mp} is already the mount point of exports.mounts[{first}]"),
            );
        }
    }
    Exports {
        system,
        layers,
        mounts,
        persist,
        images,
        clients,
        options: ex_options,
    }
}

/// `[paths]`: outputs, so they need not exist yet: the setup tree, the TFTP root, the
/// initramfs and the image.
pub(super) fn paths(c: &mut Checker, p: &RawPaths) -> (PathBuf, PathBuf, PathBuf, Option<PathBuf>) {
    let setup_tree = c.local_path(&p.setup_tree);
    let tftp_root = c.local_path(&p.tftp_root);
    let initramfs = c.local_path(&p.initramfs);
    let image_dir = p.image.as_ref().map(|v| {
        let p = c.local_path(v);
        if p == setup_tree {
            c.err(
                Some(v.span()),
                "paths.image",
                "is also paths.setup_tree: `unionroot image` and `unionroot setup-tree` would \
                 replace each other's tree; give the Debian image its own directory",
            );
        }
        p
    });
    (setup_tree, tftp_root, initramfs, image_dir)
}

/// `[kernel]`: the image, its modules (with modules.dep), its config and the NIC drivers.
pub(super) fn kernel(
    c: &mut Checker,
    k: &RawKernel,
) -> (PathBuf, PathBuf, Option<PathBuf>, Vec<String>) {
    let kernel_image = c.input_file(
        &k.image,
        "kernel.image",
        FileKind::File,
        "point it at the kernel image (vmlinuz) the nodes boot",
    );
    let modules_dir = c.modules_dir(&k.modules_dir, "kernel.modules_dir");
    let kernel_config = k.config.as_ref().map(|v| {
        c.input_file(
            v,
            "kernel.config",
            FileKind::File,
            "point it at the kernel's .config (Debian: /boot/config-<release>)",
        )
    });
    let nic_modules = match &k.nic_modules {
        None => ["virtio_pci", "virtio_net", "e1000", "e1000e"]
            .map(String::from)
            .to_vec(),
        Some(v) => v
            .iter()
            .enumerate()
            .map(|(i, m)| c.word(m, &format!("kernel.nic_modules[{i}]")))
            .collect(),
    };
    (kernel_image, modules_dir, kernel_config, nic_modules)
}

/// `[initramfs]`: linuxrc, the extra modules and the compression.
pub(super) fn initramfs(c: &mut Checker, ir: &RawInitramfs) -> (PathBuf, Vec<String>, Compress) {
    let linuxrc = c.input_file(
        &ir.linuxrc,
        "initramfs.linuxrc",
        FileKind::File,
        "build it with `make linuxrc` (target/x86_64-unknown-linux-musl/release/linuxrc)",
    );
    let extra_modules = ir
        .extra_modules
        .iter()
        .enumerate()
        .map(|(i, m)| c.word(m, &format!("initramfs.extra_modules[{i}]")))
        .collect();
    let compress = match ir.compress.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "zstd")) => Compress::Zstd,
        Some((_, "none")) => Compress::None,
        Some((v, o)) => {
            c.err(
                Some(v.span()),
                "initramfs.compress",
                format!("{o:?} is neither \"zstd\" nor \"none\""),
            );
            Compress::Zstd
        }
    };
    (linuxrc, extra_modules, compress)
}

/// `[setup_tree]`: busybox and the init script.
pub(super) fn setup_tree(c: &mut Checker, st: &RawSetupTree) -> (PathBuf, Option<PathBuf>) {
    let default_busybox = Spanned::new(0..0, "/bin/busybox".to_string());
    let bb = st.busybox.as_ref().unwrap_or(&default_busybox);
    let busybox = c.input_file(
        bb,
        "setup_tree.busybox",
        FileKind::File,
        "install busybox-static or point it at a static busybox",
    );
    let init_script = st.init_script.as_ref().map(|v| {
        c.input_file(
            v,
            "setup_tree.init_script",
            FileKind::File,
            "point it at the script to install as /sbin/init, or drop the key",
        )
    });
    (busybox, init_script)
}

/// `[pxe]`: the boot mode, the loader and syslinux's files.
pub(super) fn pxe(c: &mut Checker, p: &RawPxe) -> (BootMode, Loader, PathBuf, PathBuf) {
    let mode = match p.mode.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "initramfs")) => BootMode::Initramfs,
        Some((_, "nfsroot")) => BootMode::NfsRoot,
        Some((v, o)) => {
            c.err(
                Some(v.span()),
                "pxe.mode",
                format!("{o:?} is neither \"initramfs\" nor \"nfsroot\""),
            );
            BootMode::Initramfs
        }
    };
    let loader = match p.loader.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "pxelinux")) => Loader::Pxelinux,
        Some((_, "ipxe")) => Loader::Ipxe,
        Some((v, o)) => {
            c.err(
                Some(v.span()),
                "pxe.loader",
                format!("{o:?} is neither \"pxelinux\" nor \"ipxe\""),
            );
            Loader::Pxelinux
        }
    };
    let syslinux_fix = "install Debian's pxelinux and syslinux-common, or point it at the file";
    let d_pxelinux = Spanned::new(0..0, "/usr/lib/PXELINUX/pxelinux.0".to_string());
    let d_ldlinux = Spanned::new(
        0..0,
        "/usr/lib/syslinux/modules/bios/ldlinux.c32".to_string(),
    );
    let pxelinux = c.input_file(
        p.pxelinux.as_ref().unwrap_or(&d_pxelinux),
        "pxe.pxelinux",
        FileKind::File,
        syslinux_fix,
    );
    let ldlinux = c.input_file(
        p.ldlinux.as_ref().unwrap_or(&d_ldlinux),
        "pxe.ldlinux",
        FileKind::File,
        syslinux_fix,
    );
    (mode, loader, pxelinux, ldlinux)
}

/// `[boot]` and every `[groups.*]`, each checked once whether a node uses it or not.
pub(super) fn boot(c: &mut Checker, raw: &RawCluster) -> Boot {
    let boot = c.boot(&Boot::default(), &raw.boot, "boot", true);
    for (g, v) in &raw.groups {
        // Validate every group once, used or not; problems found again when a node applies
        // it are the same and reported once.
        c.boot(&boot, v.get_ref(), &format!("groups.{g}"), true);
        if !is_hostname_label(g) {
            c.err(
                Some(v.span()),
                format!("groups.{g}"),
                "a group name is letters, digits and '-'",
            );
        }
    }
    boot
}

/// `[[nodes]]`: names, MACs and addresses, each unique; each node's settings are `[boot]`, then
/// its groups in order, then its own.
pub(super) fn nodes(
    c: &mut Checker,
    raw: &RawCluster,
    boot: &Boot,
    address: Option<Ipv4Addr>,
    subnet: Option<Subnet>,
    router: Option<Ipv4Addr>,
) -> Vec<Node> {
    if raw.nodes.is_empty() {
        c.warnings
            .push("no [[nodes]]: only the default boot entry is generated".into());
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut macs: HashMap<Mac, usize> = HashMap::new();
    let mut ips: HashMap<Ipv4Addr, usize> = HashMap::new();
    for (i, sn) in raw.nodes.iter().enumerate() {
        let n = sn.get_ref();
        let f = format!("nodes[{i}]");
        let name = n.name.get_ref().clone();
        if !is_hostname_label(&name) {
            c.err(
                Some(n.name.span()),
                format!("{f}.name"),
                format!(
                    "{name:?} is not a host name (1-63 letters, digits and '-', not starting or \
                     ending with '-')"
                ),
            );
        }
        if let Some(first) = names.insert(name.to_ascii_lowercase(), i) {
            c.err(
                Some(n.name.span()),
                format!("{f}.name"),
                format!("{name:?} is already the name of nodes[{first}]"),
            );
        }
        let mac = match Mac::parse(n.mac.get_ref()) {
            Ok(m) if m.is_multicast() => {
                c.err(
                    Some(n.mac.span()),
                    format!("{f}.mac"),
                    format!(
                        "{:?} is a multicast address (lowest bit of the first byte set); a NIC's \
                         MAC never is",
                        n.mac.get_ref()
                    ),
                );
                m
            }
            Ok(m) => {
                if let Some(first) = macs.insert(m, i) {
                    c.err(
                        Some(n.mac.span()),
                        format!("{f}.mac"),
                        format!(
                            "{m} is already the MAC of nodes[{first}] ({})",
                            raw.nodes[first].get_ref().name.get_ref()
                        ),
                    );
                }
                m
            }
            Err(e) => {
                c.err(Some(n.mac.span()), format!("{f}.mac"), e.to_string());
                Mac::default()
            }
        };
        let ip = c.ip(&n.ip, &format!("{f}.ip"));
        in_subnet(c, subnet, ip, &n.ip, &format!("{f}.ip"));
        if let Some(ip) = ip {
            if let Some(first) = ips.insert(ip, i) {
                c.err(
                    Some(n.ip.span()),
                    format!("{f}.ip"),
                    format!(
                        "{ip} is already the address of nodes[{first}] ({})",
                        raw.nodes[first].get_ref().name.get_ref()
                    ),
                );
            }
            for (other, what) in [(address, "server.address"), (router, "server.router")] {
                if other == Some(ip) {
                    c.err(
                        Some(n.ip.span()),
                        format!("{f}.ip"),
                        format!("{ip} is already the {what}"),
                    );
                }
            }
        }
        let mut b = boot.clone();
        let mut groups = Vec::new();
        for (j, g) in n.groups.iter().enumerate() {
            match raw.groups.get(g.get_ref()) {
                Some(raw_g) => {
                    b = c.boot(
                        &b,
                        raw_g.get_ref(),
                        &format!("groups.{}", g.get_ref()),
                        true,
                    );
                    groups.push(g.get_ref().clone());
                }
                None => c.err(
                    Some(g.span()),
                    format!("{f}.groups[{j}]"),
                    format!(
                        "no [groups.{}] table (have: {})",
                        g.get_ref(),
                        if raw.groups.is_empty() {
                            "none".to_string()
                        } else {
                            raw.groups.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ),
                ),
            }
        }
        if let Some(own) = &n.boot {
            b = c.boot(&b, own, &format!("{f}.boot"), false);
        }
        nodes.push(Node {
            arch: super::arch::node_arch(c, n.arch.as_ref(), &f),
            name,
            mac,
            ip: ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            groups,
            boot: b,
        });
    }
    nodes
}
