//! `cluster.toml` validation: one valid description, then one edit per error case, each checked
//! for the field and the line it names. The probe is a fake filesystem, so "missing file" cases
//! need no temporary files.

use std::path::Path;
use unionroot::cluster::{parse, ClusterError, FileKind, ImagesTarget, IpMode, Mac, Problem};

const VALID: &str = r#"
[server]
address = "10.0.2.2"
network = "10.0.2.0"
netmask = "255.255.255.0"
router = "10.0.2.1"
dns = ["10.0.2.3"]
domain = "cluster.example"

[exports]
system = "/srv/system"
layers = ["/srv/apps"]

[[exports.mounts]]
path = "/srv/home"
mount_point = "/home"

[paths]
setup_tree = "/srv/system"
tftp_root = "/srv/tftp"
initramfs = "out/initrd.img"

[kernel]
image = "/boot/vmlinuz"
modules_dir = "/lib/modules/6.1"
config = "/boot/config"

[initramfs]
linuxrc = "bin/linuxrc"

[setup_tree]
busybox = "/bin/busybox"

[boot]
kernel_args = ["console=ttyS0"]

[groups.big]
size = "2g"
modules = ["r8169"]

[[nodes]]
name = "lf1"
mac = "52:54:00:12:34:01"
ip = "10.0.2.15"
groups = ["big"]

[[nodes]]
name = "lf2"
mac = "52:54:00:12:34:02"
ip = "10.0.2.16"
"#;

/// Everything the valid description names exists, as the right kind.
fn fake_fs(p: &Path) -> Option<FileKind> {
    let s = p.to_str().unwrap();
    match s {
        "/lib/modules/6.1" => Some(FileKind::Dir),
        "/boot/vmlinuz"
        | "/boot/config"
        | "/base/bin/linuxrc"
        | "/bin/busybox"
        | "/lib/modules/6.1/modules.dep"
        | "/usr/lib/PXELINUX/pxelinux.0"
        | "/usr/lib/syslinux/modules/bios/ldlinux.c32"
        | "/grub/grubnetaa64.efi.signed"
        | "/base/init.sh" => Some(FileKind::File),
        "/boot" => Some(FileKind::Dir),
        _ => None,
    }
}

fn try_parse(text: &str) -> Result<unionroot::cluster::Cluster, ClusterError> {
    parse(text, "cluster.toml", Path::new("/base"), &fake_fs)
}

fn problems(text: &str) -> Vec<Problem> {
    match try_parse(text) {
        Err(ClusterError::Invalid { problems, .. }) => problems,
        other => panic!("expected validation problems, got {other:?}"),
    }
}

/// 1-based line of the first occurrence of `needle` in `text`, at or after `from_line`.
fn line_of(text: &str, needle: &str, from_line: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from_line.saturating_sub(1))
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"))
}

/// `VALID` with `from` replaced by `to` (which must occur exactly once, to keep cases honest).
fn edit(from: &str, to: &str) -> String {
    assert_eq!(VALID.matches(from).count(), 1, "{from:?} must occur once");
    VALID.replace(from, to)
}

/// Asserts exactly one problem, at `field`, on the line that contains `at`, whose message
/// contains `says`.
#[track_caller]
fn one(text: &str, field: &str, at: &str, says: &str) {
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].field, field, "{p:#?}");
    assert_eq!(p[0].line, Some(line_of(text, at, 1)), "{p:#?}");
    assert!(
        p[0].message.contains(says),
        "{:?} lacks {says:?}",
        p[0].message
    );
}

#[test]
fn the_valid_description_parses_with_its_defaults() {
    let c = try_parse(VALID).unwrap();
    assert_eq!(c.nodes.len(), 2);
    assert_eq!(c.server.subnet.cidr(), "10.0.2.0/24");
    assert_eq!(c.exports.clients, "10.0.2.0/24");
    assert_eq!(
        c.nfs_servers,
        ["10.0.2.2".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(
        c.linuxrc,
        Path::new("/base/bin/linuxrc"),
        "relative to the file"
    );
    assert_eq!(c.initramfs, Path::new("/base/out/initrd.img"));
    assert_eq!(c.lease_time, 604_800);
    let lf1 = c.node("lf1").unwrap();
    assert_eq!(lf1.boot.linuxrc.overlay_size, "2g");
    assert_eq!(lf1.boot.linuxrc.modules, ["r8169"]);
    assert_eq!(lf1.boot.kernel_args, ["console=ttyS0"]);
    assert_eq!(c.node("lf2").unwrap().boot.linuxrc.overlay_size, "50%");
    assert_eq!(lf1.boot.ipconfig, IpMode::Dhcp);
    assert_eq!(
        c.initramfs_modules(),
        [
            "virtio_pci",
            "virtio_net",
            "e1000",
            "e1000e",
            "nfsv3",
            "overlay"
        ]
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn the_shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Its paths are a Debian server's; here every input counts as present.
    let all = |p: &Path| {
        Some(if p == Path::new("/lib/modules/6.1.0-56-amd64") {
            FileKind::Dir
        } else {
            FileKind::File
        })
    };
    let c = parse(&text, "cluster.toml", Path::new("/x"), &all).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.nodes.len(), 3);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn duplicate_macs_ips_and_names() {
    let t = edit("mac = \"52:54:00:12:34:02\"", "mac = \"52-54-00-12-34-01\"");
    one(
        &t,
        "nodes[1].mac",
        "52-54-00-12-34-01",
        "already the MAC of nodes[0] (lf1)",
    );
    let t = edit("ip = \"10.0.2.16\"", "ip = \"10.0.2.15\"");
    let p = problems(&t);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].field, "nodes[1].ip");
    assert_eq!(p[0].line, Some(line_of(&t, "ip = \"10.0.2.15\"", 50)));
    assert!(p[0]
        .message
        .contains("already the address of nodes[0] (lf1)"));
    let t = edit("name = \"lf2\"", "name = \"LF1\"");
    one(
        &t,
        "nodes[1].name",
        "name = \"LF1\"",
        "already the name of nodes[0]",
    );
    // Clashing with the server or the router is a duplicate too.
    let t = edit("ip = \"10.0.2.16\"", "ip = \"10.0.2.2\"");
    one(
        &t,
        "nodes[1].ip",
        "ip = \"10.0.2.2\"",
        "already the server.address",
    );
    let t = edit("ip = \"10.0.2.16\"", "ip = \"10.0.2.1\"");
    one(
        &t,
        "nodes[1].ip",
        "ip = \"10.0.2.1\"",
        "already the server.router",
    );
}

#[test]
fn addresses_outside_the_subnet() {
    let t = edit("ip = \"10.0.2.16\"", "ip = \"10.0.3.16\"");
    one(
        &t,
        "nodes[1].ip",
        "10.0.3.16",
        "outside the subnet 10.0.2.0/24",
    );
    let t = edit("ip = \"10.0.2.16\"", "ip = \"10.0.2.255\"");
    one(&t, "nodes[1].ip", "10.0.2.255", "broadcast address");
    let t = edit("ip = \"10.0.2.16\"", "ip = \"10.0.2.0\"");
    one(
        &t,
        "nodes[1].ip",
        "ip = \"10.0.2.0\"",
        "network or broadcast",
    );
    let t = edit("address = \"10.0.2.2\"", "address = \"192.168.0.2\"");
    one(&t, "server.address", "192.168.0.2", "outside the subnet");
    let t = edit("router = \"10.0.2.1\"", "router = \"10.9.9.9\"");
    one(&t, "server.router", "10.9.9.9", "outside the subnet");
    let t = edit("ip = \"10.0.2.16\"", "ip = \"10.0.2.300\"");
    one(&t, "nodes[1].ip", "10.0.2.300", "not an IPv4 address");
}

#[test]
fn malformed_macs() {
    for bad in [
        "52:54:00:12:34",
        "52:54:00:12:34:02:03",
        "52:54:00:12:34:zz",
        "5254.0012.3402",
        "52:54:00-12:34:02",
        "525:4:00:12:34:02",
        "",
    ] {
        let t = edit("\"52:54:00:12:34:02\"", &format!("\"{bad}\""));
        one(
            &t,
            "nodes[1].mac",
            &format!("mac = \"{bad}\""),
            "not a MAC address",
        );
    }
    let t = edit("\"52:54:00:12:34:02\"", "\"01:00:5e:00:00:01\"");
    one(&t, "nodes[1].mac", "01:00:5e", "multicast");
    assert_eq!(
        Mac::parse("AA-BB-cc-dd-ee-0f").unwrap().to_string(),
        "aa:bb:cc:dd:ee:0f"
    );
    assert_eq!(
        Mac::parse("52:54:00:12:34:56").unwrap().bootif(),
        "01-52-54-00-12-34-56"
    );
}

#[test]
fn missing_files() {
    let cases = [
        (
            "\"/boot/vmlinuz\"",
            "\"/boot/vmlinuz-x\"",
            "kernel.image",
            "does not exist",
        ),
        (
            "\"/boot/config\"",
            "\"/boot/config-x\"",
            "kernel.config",
            "does not exist",
        ),
        (
            "\"bin/linuxrc\"",
            "\"bin/linuxrc-x\"",
            "initramfs.linuxrc",
            "/base/bin/linuxrc-x does not exist",
        ),
        (
            "\"/bin/busybox\"",
            "\"/bin/busybox-x\"",
            "setup_tree.busybox",
            "does not exist",
        ),
        (
            "\"/lib/modules/6.1\"",
            "\"/lib/modules/7\"",
            "kernel.modules_dir",
            "does not exist",
        ),
        // The kinds matter too.
        (
            "\"/lib/modules/6.1\"",
            "\"/boot/vmlinuz\"",
            "kernel.modules_dir",
            "is not a directory",
        ),
        (
            "\"/boot/vmlinuz\"",
            "\"/boot\"",
            "kernel.image",
            "is not a regular file",
        ),
    ];
    for (from, to, field, says) in cases {
        let t = edit(from, to);
        let key = field.rsplit('.').next().unwrap();
        one(&t, field, &format!("{key} = {to}"), says);
    }
    // Optional inputs, when given, must exist as well.
    let t = edit(
        "[setup_tree]\n",
        "[setup_tree]\ninit_script = \"nope.sh\"\n",
    );
    one(
        &t,
        "setup_tree.init_script",
        "nope.sh",
        "/base/nope.sh does not exist",
    );
    let t = edit(
        "[setup_tree]\n",
        "[pxe]\npxelinux = \"/nope/pxelinux.0\"\n[setup_tree]\n",
    );
    one(&t, "pxe.pxelinux", "/nope/pxelinux.0", "pxelinux");
    // A modules directory without depmod's index.
    let no_dep = |p: &Path| {
        if p == Path::new("/lib/modules/6.1/modules.dep") {
            None
        } else {
            fake_fs(p)
        }
    };
    match parse(VALID, "cluster.toml", Path::new("/base"), &no_dep) {
        Err(ClusterError::Invalid { problems, .. }) => {
            assert_eq!(problems.len(), 1);
            assert_eq!(problems[0].field, "kernel.modules_dir");
            assert!(
                problems[0].message.contains("no modules.dep"),
                "{problems:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A default path counts too, without a line to point at.
    let no_syslinux = |p: &Path| {
        if p.starts_with("/usr/lib/syslinux") {
            None
        } else {
            fake_fs(p)
        }
    };
    match parse(VALID, "cluster.toml", Path::new("/base"), &no_syslinux) {
        Err(ClusterError::Invalid { problems, .. }) => {
            assert_eq!(problems[0].field, "pxe.ldlinux");
            assert!(
                problems[0].message.contains("syslinux-common"),
                "{problems:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn server_and_network_errors() {
    let t = edit("netmask = \"255.255.255.0\"", "netmask = \"255.0.255.0\"");
    let p = problems(&t);
    assert!(
        p.iter()
            .any(|p| p.field == "server.netmask" && p.message.contains("not a netmask")),
        "{p:#?}"
    );
    let t = edit("network = \"10.0.2.0\"", "network = \"10.0.2.5\"");
    one(&t, "server.network", "10.0.2.5", "host bits set");
    let t = edit("domain = \"cluster.example\"", "domain = \"bad_domain\"");
    one(&t, "server.domain", "bad_domain", "not a DNS domain");
    let t = edit("dns = [\"10.0.2.3\"]", "dns = [\"ten\"]");
    one(&t, "server.dns[0]", "ten", "not an IPv4 address");
}

#[test]
fn export_and_nfs_errors() {
    let t = edit("system = \"/srv/system\"", "system = \"srv/system\"");
    one(&t, "exports.system", "srv/system\"", "absolute");
    let t = edit("layers = [\"/srv/apps\"]", "layers = [\"/srv/system\"]");
    let p = problems(&t);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].field, "exports.layers[0]");
    assert!(p[0].message.contains("already exported as exports.system"));
    let t = edit("mount_point = \"/home\"", "mount_point = \"/\"");
    one(
        &t,
        "exports.mounts[0].mount_point",
        "mount_point = \"/\"",
        "the root is the overlay",
    );
    let t = edit("path = \"/srv/home\"", "path = \"/srv/my home\"");
    one(&t, "exports.mounts[0].path", "/srv/my home", "whitespace");
    let t = edit("[paths]", "[nfs]\nversion = \"5\"\n\n[paths]");
    one(&t, "nfs.version", "version = \"5\"", "not 3, 4");
    let t = edit("[paths]", "[nfs]\noptions = [\"vers=4\"]\n\n[paths]");
    one(&t, "nfs.options[0]", "vers=4", "nfs.version");
}

#[test]
fn boot_groups_and_names() {
    let t = edit("groups = [\"big\"]", "groups = [\"huge\"]");
    one(
        &t,
        "nodes[0].groups[0]",
        "huge",
        "no [groups.huge] table (have: big)",
    );
    let t = edit("size = \"2g\"", "size = \"lots\"");
    one(&t, "groups.big.size", "lots", "tmpfs size");
    // A group no node uses is still checked.
    let t = edit(
        "[[nodes]]\nname = \"lf1\"",
        "[groups.spare]\nonfail = \"later\"\n\n[[nodes]]\nname = \"lf1\"",
    );
    one(
        &t,
        "groups.spare.onfail",
        "later",
        "shell, wait, reboot or halt",
    );
    let t = edit("[groups.big]", "[boot.x]");
    assert!(matches!(try_parse(&t), Err(ClusterError::Syntax { .. })));
    let t = edit(
        "kernel_args = [\"console=ttyS0\"]",
        "kernel_args = [\"console=ttyS0\"]\ninit = \"sbin/init\"",
    );
    one(&t, "boot.init", "sbin/init", "absolute path");
    let t = edit(
        "kernel_args = [\"console=ttyS0\"]",
        "kernel_args = [\"a b\"]",
    );
    one(&t, "boot.kernel_args[0]", "a b", "one non-empty word");
    let t = edit("kernel_args = [\"console=ttyS0\"]", "onfail = \"explode\"");
    one(&t, "boot.onfail", "explode", "shell, wait, reboot or halt");
    let t = edit("kernel_args = [\"console=ttyS0\"]", "ipconfig = \"bootp\"");
    one(
        &t,
        "boot.ipconfig",
        "bootp",
        "neither \"dhcp\" nor \"static\"",
    );
    // One node's NFSv4 identity: refused where several nodes would share it, kept per node.
    let t = edit(
        "kernel_args = [\"console=ttyS0\"]",
        "kernel_args = [\"nfs.nfs4_unique_id=rack3\"]",
    );
    one(
        &t,
        "boot.kernel_args[0]",
        "nfs.nfs4_unique_id=rack3",
        "every node would get the same one",
    );
    let t = edit(
        "modules = [\"r8169\"]",
        "modules = [\"r8169\"]\nkernel_args = [\"nfs.nfs4_unique_id=big\"]",
    );
    one(
        &t,
        "groups.big.kernel_args[0]",
        "nfs.nfs4_unique_id=big",
        "one [[nodes]] entry's boot.kernel_args",
    );
    let t = edit(
        "ip = \"10.0.2.16\"",
        "ip = \"10.0.2.16\"\nboot = { kernel_args = [\"nfs.nfs4_unique_id=lf2\"] }",
    );
    let c = try_parse(&t).unwrap();
    assert_eq!(
        c.nodes[1].boot.kernel_args,
        ["console=ttyS0", "nfs.nfs4_unique_id=lf2"]
    );
    let t = edit("kernel_args = [\"console=ttyS0\"]", "mount_timeout = -1");
    one(&t, "boot.mount_timeout", "mount_timeout = -1", "1 or more");
    let t = edit("mount_point = \"/home\"", "mount_point = \"/ho\\u001bme\"");
    one(
        &t,
        "exports.mounts[0].mount_point",
        "mount_point",
        "control characters",
    );
    let t = edit(
        "domain = \"cluster.example\"",
        "domain = \"cluster..example\"",
    );
    one(&t, "server.domain", "domain", "empty label");
    let t = edit("kernel_args = [\"console=ttyS0\"]", "server_timeout = 0");
    one(
        &t,
        "boot.server_timeout",
        "server_timeout = 0",
        "at least 1 s",
    );
    let t = edit("name = \"lf2\"", "name = \"lf_2\"");
    one(&t, "nodes[1].name", "lf_2", "not a host name");
    let t = edit("kernel_args = [\"console=ttyS0\"]", "debug = true");
    let t = t.replace(
        "ip = \"10.0.2.16\"",
        "ip = \"10.0.2.16\"\nboot = { debug = false }",
    );
    one(
        &t,
        "nodes[1].boot.debug",
        "debug = false",
        "cannot turn off debug",
    );
}

#[test]
fn syntax_unknown_keys_and_types_name_the_line() {
    let t = edit("[paths]", "[paths]\nsetup_tre = \"/x\"");
    match try_parse(&t) {
        Err(ClusterError::Syntax { line, message, .. }) => {
            assert_eq!(line, line_of(&t, "setup_tre", 1));
            assert!(message.contains("setup_tre"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let t = edit("ip = \"10.0.2.16\"", "ip = 10");
    match try_parse(&t) {
        Err(ClusterError::Syntax { line, .. }) => assert_eq!(line, line_of(&t, "ip = 10", 1)),
        other => panic!("{other:?}"),
    }
    let t = edit("[server]", "[server");
    let e = try_parse(&t).unwrap_err();
    assert!(e.to_string().starts_with("cluster.toml:2:"), "{e}");
    // A missing required key names its table.
    let t = edit("ip = \"10.0.2.16\"\n", "");
    let e = try_parse(&t).unwrap_err();
    assert!(e.to_string().contains("missing field `ip`"), "{e}");
}

#[test]
fn every_problem_is_reported_at_once_in_line_order() {
    let t = VALID
        .replace("\"52:54:00:12:34:02\"", "\"bogus\"")
        .replace("\"/boot/vmlinuz\"", "\"/nope\"")
        .replace("ip = \"10.0.2.15\"", "ip = \"10.1.0.15\"");
    let p = problems(&t);
    let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["kernel.image", "nodes[0].ip", "nodes[1].mac"]);
    let e = try_parse(&t).unwrap_err().to_string();
    assert!(e.starts_with("cluster.toml has 3 problems:"), "{e}");
    assert!(
        e.contains(&format!(
            "cluster.toml:{}: nodes[1].mac:",
            line_of(&t, "bogus", 1)
        )),
        "{e}"
    );
}

#[test]
fn risky_choices_are_warnings() {
    let t = edit(
        "mount_point = \"/home\"",
        "mount_point = \"/home\"\nroot_squash = false",
    );
    let c = try_parse(&t).unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0].contains("/srv/home is exported read-write with no_root_squash"),
        "{:?}",
        c.warnings
    );
    assert!(c.warnings[0].starts_with(&format!("line {}", line_of(&t, "[[exports.mounts]]", 1))));
}

#[test]
fn image_defaults_without_a_table() {
    let c = try_parse(VALID).unwrap();
    assert_eq!(c.image.suite, "bookworm");
    assert_eq!(c.image.variant, "minbase");
    assert!(c.image.packages.is_empty() && c.image.mirror.is_none() && c.image.files.is_none());
    assert_eq!(c.image_dir, None);
    let t = edit(
        "[paths]",
        "[image]\nsuite = \"trixie\"\nvariant = \"standard\"\npackages = [\"openssh-server\", \
         \"libstdc++6\"]\nmirror = \"http://deb.debian.org/debian\"\nfiles = \"/boot\"\n\n\
         [paths]\nimage = \"img\"",
    );
    let c = try_parse(&t).unwrap();
    assert_eq!(c.image.suite, "trixie");
    assert_eq!(c.image.packages, ["openssh-server", "libstdc++6"]);
    assert_eq!(c.image.files.as_deref(), Some(Path::new("/boot")));
    assert_eq!(c.image_dir.as_deref(), Some(Path::new("/base/img")));
}

#[test]
fn image_values_that_would_reach_mmdebstrap_are_checked() {
    let img = |body: &str| edit("[paths]", &format!("[image]\n{body}\n\n[paths]"));
    let t = edit(
        "initramfs = \"out/initrd.img\"",
        "initramfs = \"out/initrd.img\"\nimage = \"/srv/system\"",
    );
    one(&t, "paths.image", "image = ", "also paths.setup_tree");
    let t = img("suite = \"--root=/\"");
    one(&t, "image.suite", "suite =", "is not a Debian suite");
    let t = img("variant = \"extract\"");
    one(&t, "image.variant", "variant =", "minbase");
    let t = img("mirror = \"deb http://evil bookworm main\"");
    one(&t, "image.mirror", "mirror =", "not an archive URL");
    let t = img("files = \"overlay\"");
    one(&t, "image.files", "files =", "/base/overlay does not exist");
    // Empty names, options, list separators and shell syntax are each a named problem.
    let t = img(
        "packages = [\n  \"vim\",\n  \"\",\n  \"--allow-insecure\",\n  \"a,b\",\n  \"x;rm\",\n  \"vim\",\n]",
    );
    let p = problems(&t);
    let got: Vec<(&str, Option<usize>)> = p.iter().map(|p| (p.field.as_str(), p.line)).collect();
    assert_eq!(
        got,
        [
            ("image.packages[1]", Some(line_of(&t, "\"\",", 1))),
            ("image.packages[2]", Some(line_of(&t, "--allow", 1))),
            ("image.packages[3]", Some(line_of(&t, "a,b", 1))),
            ("image.packages[4]", Some(line_of(&t, "x;rm", 1))),
            (
                "image.packages[5]",
                Some(line_of(&t, "\"vim\",", line_of(&t, "x;rm", 1)))
            ),
        ]
    );
    assert!(p[0].message.contains("Policy 5.6.7"), "{}", p[0].message);
    assert!(p[4].message.contains("listed twice"), "{}", p[4].message);
    // Unknown keys are syntax errors naming the line.
    let t = img("packges = [\"vim\"]");
    match try_parse(&t) {
        Err(ClusterError::Syntax { line, message, .. }) => {
            assert_eq!(line, line_of(&t, "packges", 1));
            assert!(message.contains("packges"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn images_keys_and_their_checks() {
    use unionroot::generations::Format;
    let c = try_parse(VALID).unwrap();
    assert_eq!(c.images.dir, None);
    assert_eq!(c.images.name, None);
    assert_eq!(c.images.format, Format::Erofs);
    assert_eq!(c.images.keep, 2);
    let t = edit(
        "[paths]",
        "[images]\ndir = \"images\"\nname = \"debian\"\nformat = \"squashfs\"\nkeep = 3\n\n[paths]",
    );
    let c = try_parse(&t).unwrap();
    assert_eq!(c.images.dir.as_deref(), Some(Path::new("/base/images")));
    assert_eq!(c.images.name.as_ref().map(|n| n.as_str()), Some("debian"));
    assert_eq!(c.images.format, Format::Squashfs);
    assert_eq!(c.images.keep, 3);
    let imgs = |body: &str| edit("[paths]", &format!("[images]\n{body}\n\n[paths]"));
    one(
        &imgs("name = \"../etc\""),
        "images.name",
        "name =",
        "must start with a letter or digit",
    );
    one(
        &imgs("format = \"ext4\""),
        "images.format",
        "format =",
        "is not \"erofs\" or \"squashfs\"",
    );
    one(&imgs("keep = 0"), "images.keep", "keep =", "is not ≥ 1");
    one(&imgs("keep = -3"), "images.keep", "keep =", "is not ≥ 1");
}

#[test]
fn an_image_root_reaches_the_nodes_the_exports_and_the_initramfs() {
    use unionroot::{bootargs, exports};
    // Without an images export and a name, nothing changes.
    let c = try_parse(VALID).unwrap();
    assert!(!c.uses_image());
    assert!(!bootargs::config_file(&c).contains("unionroot.image"));
    assert!(!c.initramfs_modules().iter().any(|m| m == "loop"));
    let t = edit(
        "[paths]",
        "[images]\ndir = \"images\"\nname = \"debian\"\n\n[paths]",
    )
    .replace(
        "layers = [\"/srv/apps\"]",
        "layers = [\"/srv/apps\"]\nimages = \"/srv/images\"",
    );
    let c = try_parse(&t).unwrap();
    assert!(c.uses_image());
    let conf = bootargs::config_file(&c);
    assert!(
        conf.lines()
            .any(|l| l == "unionroot.image=10.0.2.2:/srv/images/debian"),
        "{conf}"
    );
    // linuxrc's own parser reads back the image the host tool wrote.
    let back = unionroot_core::cmdline::Config::parse(&conf, "").unwrap();
    assert_eq!(back.image, bootargs::file_config(&c).image);
    assert_eq!(
        back.image.map(|i| i.to_string()).as_deref(),
        Some("10.0.2.2:/srv/images/debian")
    );
    // The default format is EROFS: loop and erofs join the closure, after overlay.
    let m = c.initramfs_modules();
    let pos = |x: &str| m.iter().position(|y| y == x);
    assert!(
        pos("overlay") < pos("loop") && pos("loop") < pos("erofs"),
        "{m:?}"
    );
    let sq = try_parse(&t.replace(
        "name = \"debian\"",
        "name = \"debian\"\nformat = \"squashfs\"",
    ))
    .unwrap();
    assert!(sq.initramfs_modules().iter().any(|x| x == "squashfs"));
    assert!(!sq.initramfs_modules().iter().any(|x| x == "erofs"));
    // The images directory is exported read-only, to knfsd and to ganesha.
    let knfsd = exports::knfsd(&c);
    let line = knfsd
        .lines()
        .find(|l| l.starts_with("/srv/images "))
        .expect(&knfsd);
    assert!(line.contains("(ro,") || line.contains("(ro)"), "{line}");
    let ganesha = exports::ganesha(&c, None);
    assert!(ganesha.contains("Path = /srv/images;"), "{ganesha}");
    // An images export that is another export's path is refused by name.
    let p = problems(&t.replace("images = \"/srv/images\"", "images = \"/srv/apps\""));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].field, "exports.images");
    assert_eq!(
        p[0].message,
        "/srv/apps is already exported as exports.layers[0]"
    );
}

const ARM64: &str = r#"
[arm64]
kernel = "/boot/vmlinuz"
modules_dir = "/lib/modules/6.1"
linuxrc = "bin/linuxrc"
initramfs = "out/initrd-arm64.img"
grub = "/grub/grubnetaa64.efi.signed"
system = "/srv/system-arm64"
"#;

/// `arch = "arm64"` nodes and `[arm64]`: the arm64 view of the cluster swaps in its kernel,
/// initramfs, linuxrc, NIC drivers and system tree and keeps only its nodes; every mistake is
/// named.
#[test]
fn arm64_nodes() {
    use unionroot::cluster::Arch;
    let arm_node = "ip = \"10.0.2.16\"\narch = \"arm64\"";
    let c = try_parse(&(edit("ip = \"10.0.2.16\"", arm_node) + ARM64)).unwrap();
    assert_eq!(c.node("lf2").unwrap().arch, Arch::Arm64);
    assert_eq!(c.node("lf1").unwrap().arch, Arch::Amd64);
    let arm = c.for_arch(Arch::Arm64).unwrap();
    assert_eq!(arm.nodes.len(), 1);
    assert_eq!(arm.nodes[0].name, "lf2");
    assert_eq!(arm.exports.system.path, "/srv/system-arm64");
    assert_eq!(arm.initramfs, Path::new("/base/out/initrd-arm64.img"));
    assert_eq!(arm.nic_modules, ["virtio_mmio", "virtio_pci", "virtio_net"]);
    let amd = c.for_arch(Arch::Amd64).unwrap();
    assert_eq!(amd.exports.system.path, "/srv/system");
    assert_eq!(amd.nodes.len(), 1);
    assert!(c.all_exports().any(|e| e.path == "/srv/system-arm64"));
    assert!(try_parse(VALID).unwrap().for_arch(Arch::Arm64).is_none());

    one(
        &edit(
            "ip = \"10.0.2.16\"",
            "ip = \"10.0.2.16\"\narch = \"riscv64\"",
        ),
        "nodes[1].arch",
        "riscv64",
        "use one of amd64, arm64",
    );
    let p = problems(&edit("ip = \"10.0.2.16\"", arm_node));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].field, "arm64");
    assert!(
        p[0].message.contains("node lf2 has arch = \"arm64\""),
        "{}",
        p[0].message
    );
    // The system tree or any other export: the arm64 tree must be its own.
    let same =
        edit("ip = \"10.0.2.16\"", arm_node) + &ARM64.replace("/srv/system-arm64", "/srv/apps");
    one(
        &same,
        "arm64.system",
        "system = \"/srv/apps\"",
        "already the layer 1 export",
    );
    let nfsroot = edit("ip = \"10.0.2.16\"", arm_node)
        .replace("[setup_tree]", "[pxe]\nmode = \"nfsroot\"\n\n[setup_tree]")
        + ARM64;
    one(&nfsroot, "arm64", "[arm64]", "initramfs mode only");
    let no_grub = edit("ip = \"10.0.2.16\"", arm_node)
        + &ARM64.replace("/grub/grubnetaa64", "/nope/grubnetaa64");
    one(&no_grub, "arm64.grub", "/nope/", "grub-efi-arm64-signed");
}

const HEADS: &str = "[[heads]]\nname = \"h1\"\naddress = \"10.0.2.11\"\n\n[[heads]]\nname = \"h2\"\naddress = \"10.0.2.12\"\n\n[exports]";

#[test]
fn heads_replace_the_server_list_and_reach_the_nodes_as_equivalent_servers() {
    let c = try_parse(&edit("[exports]", HEADS)).unwrap();
    assert_eq!(c.heads.len(), 2);
    assert_eq!(c.heads[1].name, "h2");
    assert_eq!(c.heads[1].images, None, "no images export, nothing to sync");
    assert_eq!(
        c.nfs_servers,
        [
            "10.0.2.11".parse::<std::net::Ipv4Addr>().unwrap(),
            "10.0.2.12".parse().unwrap()
        ]
    );
    let conf = unionroot::bootargs::config_file(&c);
    assert!(
        conf.contains("unionroot.lower=10.0.2.11+10.0.2.12:/srv/system\n"),
        "{conf}"
    );
    assert!(
        conf.contains("unionroot.mount=/home=10.0.2.11+10.0.2.12:/srv/home\n"),
        "{conf}"
    );
    // One head is one server: nothing to rank.
    let one_head = edit(
        "[exports]",
        "[[heads]]\nname = \"h1\"\naddress = \"10.0.2.11\"\n\n[exports]",
    );
    let conf = unionroot::bootargs::config_file(&try_parse(&one_head).unwrap());
    assert!(
        conf.contains("unionroot.lower=10.0.2.11:/srv/system\n"),
        "{conf}"
    );
    // With an images export, each head's copy defaults to rsync over ssh to the head.
    let t = edit(
        "layers = [\"/srv/apps\"]",
        "layers = [\"/srv/apps\"]\nimages = \"/srv/images\"",
    )
    .replace("[exports]", HEADS);
    let c = try_parse(&t).unwrap();
    assert_eq!(
        c.heads[0].images,
        Some(ImagesTarget::Remote("10.0.2.11:/srv/images".into()))
    );
    // rsync's rule: a ':' before the first '/' is remote; a relative path is the file's.
    let t2 = t
        .replacen(
            "address = \"10.0.2.11\"",
            "address = \"10.0.2.11\"\nimages = \"heads/h1\"",
            1,
        )
        .replacen(
            "address = \"10.0.2.12\"",
            "address = \"10.0.2.12\"\nimages = \"rsync://h2/img\"",
            1,
        );
    let c = try_parse(&t2).unwrap();
    assert_eq!(
        c.heads[0].images,
        Some(ImagesTarget::Local("/base/heads/h1".into()))
    );
    assert_eq!(
        c.heads[1].images,
        Some(ImagesTarget::Remote("rsync://h2/img".into()))
    );
}

#[test]
fn head_errors_name_the_head_and_the_fix() {
    let t = edit("[exports]", &HEADS.replace("\"h2\"", "\"h1\""));
    let p = problems(&t);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].field, "heads[1].name");
    assert_eq!(p[0].line, Some(line_of(&t, "10.0.2.12", 1) - 1));
    assert!(p[0].message.contains("already the name of heads[0]"));
    let t = edit("[exports]", &HEADS.replace("\"h2\"", "\"h_2\""));
    one(&t, "heads[1].name", "h_2", "not a host name label");
    let t = edit("[exports]", &HEADS.replace("10.0.2.12", "10.0.2.11"));
    let p = problems(&t);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].field, "heads[1].address");
    assert!(p[0].message.contains("already the address of heads[0]"));
    let t = edit("[exports]", &HEADS.replace("10.0.2.12", "10.0.3.12"));
    one(&t, "heads[1].address", "10.0.3.12", "outside the subnet");
    let t = edit("[exports]", &HEADS.replace("10.0.2.12", "head2"));
    one(&t, "heads[1].address", "\"head2\"", "not an IPv4 address");
    let t = edit(
        "[exports]",
        &HEADS.replace(
            "address = \"10.0.2.12\"",
            "address = \"10.0.2.12\"\nimages = \"/x\"",
        ),
    );
    one(
        &t,
        "heads[1].images",
        "images = \"/x\"",
        "set exports.images",
    );
    let t = edit(
        "layers = [\"/srv/apps\"]",
        "layers = [\"/srv/apps\"]\nimages = \"/srv/images\"",
    )
    .replace(
        "[exports]",
        &HEADS.replace(
            "address = \"10.0.2.12\"",
            "address = \"10.0.2.12\"\nimages = \"--delete\"",
        ),
    );
    one(
        &t,
        "heads[1].images",
        "--delete",
        "not an rsync destination",
    );
    let t = edit(
        "[exports]",
        &format!("[nfs]\nservers = [\"10.0.2.2\"]\n\n{HEADS}"),
    );
    let p = problems(&t);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].field, "nfs.servers");
    assert!(p[0].message.contains("drop nfs.servers"));
}

#[test]
fn ceph_backend_and_table() {
    let t = edit(
        "mount_point = \"/home\"",
        "mount_point = \"/home\"\nbackend = \"ceph\"",
    );
    let c = try_parse(&t).unwrap();
    assert_eq!(
        c.exports.mounts[0].backend,
        unionroot::cluster::Backend::Ceph
    );
    assert_eq!(
        c.ceph,
        Some(Default::default()),
        "the defaults without [ceph]"
    );
    let g = unionroot::exports::ganesha(&c, None);
    assert!(g.contains("        Name = CEPH;\n"), "{g}");
    assert!(
        !g.contains("CEPH {"),
        "no Ceph_Conf without [ceph] config: {g}"
    );
    let t = edit(
        "mount_point = \"/home\"",
        "mount_point = \"/home\"\nbackend = \"cephfs\"",
    );
    one(
        &t,
        "exports.mounts[0].backend",
        "\"cephfs\"",
        "give \"vfs\"",
    );
    let t = edit(
        "mount_point = \"/home\"",
        "mount_point = \"/home\"\nbackend = \"ceph\"\n\n[ceph]\nuser_id = \"client.admin x\"\nconfig = \"etc/ceph.conf\"",
    );
    let p = problems(&t);
    assert_eq!(p.len(), 2, "{p:#?}");
    assert_eq!(p[0].field, "ceph.user_id");
    assert!(p[0].message.contains("A-Z a-z 0-9 . _ -"));
    assert_eq!(p[1].field, "ceph.config");
    assert!(p[1].message.contains("absolute"));
    let t = edit("[exports]", "[ceph]\nuser_id = \"admin\"\n\n[exports]");
    let c = try_parse(&t).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("no exports.mounts entry has backend = \"ceph\"")),
        "{:?}",
        c.warnings
    );
}
