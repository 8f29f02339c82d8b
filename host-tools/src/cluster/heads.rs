//! `[[heads]]` and `[ceph]` (issue 10): several equivalent NFS servers, and the CephFS that
//! lets them serve the same read-write data.
//!
//! The heads serve the same exports. Each node ranks them itself (linuxrc's `a+b+c:` lists),
//! so the heads list replaces `nfs.servers`. Read-only data (the system tree, images) is a
//! copy on each head (`image-sync` copies the images); shared read-write data is a CephFS
//! directory every head exports through nfs-ganesha's FSAL_CEPH (ganesha-ceph-config(8)).

use super::check::{is_hostname_label, Checker};
use super::model::{Backend, Ceph, Exports, Head, ImagesTarget, Subnet};
use super::raw::{RawCeph, RawHead, S};
use super::tables::in_subnet;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use toml::Spanned;

/// `exports.mounts[i].backend`: `"vfs"` (the default) or `"ceph"`.
pub(super) fn backend(c: &mut Checker, v: Option<&S>, field: &str) -> Backend {
    match v.map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "vfs")) => Backend::Vfs,
        Some((_, "ceph")) => Backend::Ceph,
        Some((v, other)) => {
            c.err(
                Some(v.span()),
                format!("{field}.backend"),
                format!(
                    "{other:?} is not a backend; give \"vfs\" (a directory on each head) or \
                     \"ceph\" (a CephFS directory, through ganesha's FSAL_CEPH)"
                ),
            );
            Backend::Vfs
        }
    }
}

/// Where `image-sync` copies to, checked: rsync reads a leading `-` as an option and a
/// control character would end up in its argument list and our messages.
fn images_target(c: &mut Checker, v: &S, field: &str) -> ImagesTarget {
    let s = v.get_ref();
    if s.is_empty() || s.starts_with('-') || s.chars().any(char::is_control) {
        c.err(
            Some(v.span()),
            field,
            format!(
                "{s:?} is not an rsync destination; give a local directory, HOST:/path (over \
                 ssh) or rsync://HOST/MODULE/path"
            ),
        );
        return ImagesTarget::Remote(s.clone());
    }
    // rsync's own rule: a ':' before the first '/' makes the destination remote.
    let remote = s.starts_with("rsync://")
        || s.find(':')
            .is_some_and(|i| s.find('/').is_none_or(|j| i < j));
    if remote {
        ImagesTarget::Remote(s.clone())
    } else {
        ImagesTarget::Local(c.local_path(v))
    }
}

/// `[[heads]]`: each name an RFC 1123 label, each address in the subnet, both unique. A
/// head's `images` defaults to `ADDRESS:<exports.images>` (rsync over ssh).
pub(super) fn heads(
    c: &mut Checker,
    raw: &[Spanned<RawHead>],
    subnet: Option<Subnet>,
    images_export: Option<&str>,
) -> Vec<Head> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut addrs: HashMap<Ipv4Addr, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, h) in raw.iter().enumerate() {
        let f = format!("heads[{i}]");
        let r = h.get_ref();
        let name = r.name.get_ref().clone();
        if !is_hostname_label(&name) {
            c.err(
                Some(r.name.span()),
                format!("{f}.name"),
                format!(
                    "{name:?} is not a host name label (letters, digits and '-', 1 to 63, \
                     not starting or ending with '-'); it names the head's ganesha file"
                ),
            );
        } else if let Some(first) = names.insert(name.clone(), i) {
            c.err(
                Some(r.name.span()),
                format!("{f}.name"),
                format!("{name:?} is already the name of heads[{first}]"),
            );
        }
        let address = c.ip(&r.address, &format!("{f}.address"));
        in_subnet(c, subnet, address, &r.address, &format!("{f}.address"));
        if let Some(a) = address {
            if let Some(first) = addrs.insert(a, i) {
                c.err(
                    Some(r.address.span()),
                    format!("{f}.address"),
                    format!("{a} is already the address of heads[{first}]"),
                );
            }
        }
        let images = match (&r.images, images_export, address) {
            (Some(v), Some(_), _) => Some(images_target(c, v, &format!("{f}.images"))),
            (Some(v), None, _) => {
                c.err(
                    Some(v.span()),
                    format!("{f}.images"),
                    "there are no images to copy: set exports.images (the images directory \
                     the nodes mount), or drop the key",
                );
                None
            }
            (None, Some(dir), Some(a)) => Some(ImagesTarget::Remote(format!("{a}:{dir}"))),
            (None, _, _) => None,
        };
        out.push(Head {
            name,
            address: address.unwrap_or(Ipv4Addr::UNSPECIFIED),
            images,
        });
    }
    out
}

/// A ceph name (`user_id`, `filesystem`): what ceph itself allows in entity and file system
/// names, so nothing else reaches ganesha's configuration.
fn ceph_name(c: &mut Checker, v: &S, field: &str) -> String {
    let s = v.get_ref();
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'));
    if !ok {
        c.err(
            Some(v.span()),
            field,
            format!("{s:?} must be 1 to 64 of A-Z a-z 0-9 . _ - (e.g. \"admin\", \"cephfs\")"),
        );
    }
    s.clone()
}

/// `[ceph]`: needed by nothing but `backend = "ceph"` mounts (their defaults when absent).
pub(super) fn ceph(c: &mut Checker, raw: Option<&Spanned<RawCeph>>, e: &Exports) -> Option<Ceph> {
    let uses = e.mounts.iter().any(|m| m.backend == Backend::Ceph);
    let ceph = raw.map(|sp| {
        let r = sp.get_ref();
        if !uses {
            c.warnings.push(format!(
                "line {}: [ceph] is set but no exports.mounts entry has backend = \"ceph\"",
                c.line(sp.span())
            ));
        }
        Ceph {
            config: r.config.as_ref().map(|v| c.server_path(v, "ceph.config")),
            user_id: r.user_id.as_ref().map(|v| ceph_name(c, v, "ceph.user_id")),
            filesystem: r
                .filesystem
                .as_ref()
                .map(|v| ceph_name(c, v, "ceph.filesystem")),
        }
    });
    if uses {
        Some(ceph.unwrap_or_default())
    } else {
        ceph
    }
}
