//! `cluster.toml` as serde reads it, before any check: every key the file may hold, and no
//! other (`deny_unknown_fields`). Fields that a check may need to point at are `Spanned`, so
//! the problem can carry the line.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub(super) type S = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) dhcp: RawDhcp,
    #[serde(default)]
    pub(super) nfs: RawNfs,
    /// `[[heads]]`: equivalent NFS servers (issue 10); none means the one `[server]`.
    #[serde(default)]
    pub(super) heads: Vec<Spanned<RawHead>>,
    /// `[ceph]`: how ganesha's FSAL_CEPH reaches the CephFS of `backend = "ceph"` mounts.
    pub(super) ceph: Option<Spanned<RawCeph>>,
    pub(super) exports: RawExports,
    pub(super) paths: RawPaths,
    pub(super) kernel: RawKernel,
    pub(super) initramfs: RawInitramfs,
    #[serde(default)]
    pub(super) setup_tree: RawSetupTree,
    #[serde(default)]
    pub(super) pxe: RawPxe,
    #[serde(default)]
    pub(super) boot: RawBoot,
    #[serde(default)]
    pub(super) image: RawImage,
    #[serde(default)]
    pub(super) images: RawImages,
    #[serde(default)]
    pub(super) groups: BTreeMap<String, Spanned<RawBoot>>,
    #[serde(default)]
    pub(super) nodes: Vec<Spanned<RawNode>>,
    /// `[arm64]`: what the nodes with `arch = "arm64"` boot (issue 13).
    pub(super) arm64: Option<Spanned<RawArm64>>,
}

/// `[arm64]`: the kernel, initramfs, system tree and UEFI loader of the arm64 nodes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArm64 {
    pub(super) kernel: S,
    pub(super) modules_dir: S,
    pub(super) linuxrc: S,
    pub(super) initramfs: S,
    pub(super) grub: S,
    pub(super) system: S,
    pub(super) config: Option<S>,
    pub(super) nic_modules: Option<Vec<S>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) address: S,
    pub(super) network: S,
    pub(super) netmask: S,
    pub(super) router: Option<S>,
    #[serde(default)]
    pub(super) dns: Vec<S>,
    pub(super) domain: Option<S>,
    pub(super) interface: Option<S>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDhcp {
    pub(super) lease_time: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNfs {
    pub(super) servers: Option<Vec<S>>,
    pub(super) version: Option<S>,
    #[serde(default)]
    pub(super) options: Vec<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExports {
    pub(super) system: S,
    #[serde(default)]
    pub(super) layers: Vec<S>,
    pub(super) clients: Option<S>,
    #[serde(default)]
    pub(super) options: Vec<S>,
    #[serde(default)]
    pub(super) mounts: Vec<Spanned<RawMount>>,
    pub(super) persist: Option<Spanned<RawPersist>>,
    /// The images directory on the server (image roots, issue 9), exported read-only.
    pub(super) images: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPersist {
    pub(super) path: S,
    pub(super) paths: Vec<S>,
    pub(super) root_squash: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMount {
    pub(super) path: S,
    pub(super) mount_point: S,
    #[serde(default)]
    pub(super) read_only: bool,
    pub(super) root_squash: Option<Spanned<bool>>,
    /// What serves it on the heads: `"vfs"` (a local directory, the default) or `"ceph"`.
    pub(super) backend: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHead {
    pub(super) name: S,
    pub(super) address: S,
    /// Where `unionroot image-sync` copies the images directory: an rsync destination.
    pub(super) images: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCeph {
    pub(super) config: Option<S>,
    pub(super) user_id: Option<S>,
    pub(super) filesystem: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPaths {
    pub(super) setup_tree: S,
    pub(super) tftp_root: S,
    pub(super) initramfs: S,
    pub(super) image: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKernel {
    pub(super) image: S,
    pub(super) modules_dir: S,
    pub(super) config: Option<S>,
    pub(super) nic_modules: Option<Vec<S>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInitramfs {
    pub(super) linuxrc: S,
    #[serde(default)]
    pub(super) extra_modules: Vec<S>,
    pub(super) compress: Option<S>,
    #[serde(default)]
    pub(super) strip_signatures: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSetupTree {
    pub(super) busybox: Option<S>,
    pub(super) init_script: Option<S>,
}

/// `[image]`: the Debian system tree `unionroot image` builds with mmdebstrap.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImage {
    pub(super) suite: Option<S>,
    pub(super) variant: Option<S>,
    #[serde(default)]
    pub(super) packages: Vec<S>,
    pub(super) mirror: Option<S>,
    pub(super) files: Option<S>,
}

/// `[images]`: where `unionroot image-pack` publishes generations, and what `image-gc` keeps.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImages {
    pub(super) dir: Option<S>,
    pub(super) name: Option<S>,
    pub(super) format: Option<S>,
    pub(super) keep: Option<toml::Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPxe {
    pub(super) mode: Option<S>,
    pub(super) loader: Option<S>,
    pub(super) pxelinux: Option<S>,
    pub(super) ldlinux: Option<S>,
}

/// `[boot]`, `[groups.NAME]` and a node's `boot = { ... }`: linuxrc's settings. In a group or a
/// node, a value replaces the cluster's, except the lists, which add to it (linuxrc itself adds
/// up repeated `unionroot.modules=`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBoot {
    pub(super) ipconfig: Option<S>,
    pub(super) size: Option<S>,
    pub(super) init: Option<S>,
    #[serde(default)]
    pub(super) modules: Vec<S>,
    pub(super) dhcp_timeout: Option<Spanned<i64>>,
    pub(super) mount_timeout: Option<Spanned<i64>>,
    pub(super) carrier_timeout: Option<Spanned<i64>>,
    pub(super) server_timeout: Option<Spanned<i64>>,
    pub(super) onfail: Option<S>,
    pub(super) debug: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) kernel_args: Vec<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) name: S,
    pub(super) mac: S,
    pub(super) ip: S,
    #[serde(default)]
    pub(super) groups: Vec<S>,
    #[serde(default)]
    pub(super) boot: Option<RawBoot>,
    pub(super) arch: Option<S>,
}
