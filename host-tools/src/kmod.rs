//! Chooses the kernel modules that go into an initramfs and writes the matching subsets of
//! depmod's index files (modules.dep(5), `modules.alias`, `modules.softdep`). The dependency closure and its load
//! order come from [`unionroot_core::modules::ModuleDb`], the same code `linuxrc` runs at boot,
//! so the archive holds exactly what the boot path will ask for.
//!
//! Text in, text out: the caller reads `modules.dep`, `modules.alias`, `modules.softdep` and
//! `modules.builtin`. Softdeps join the closure, `pre:` and `post:` alike: an initramfs has no
//! modprobe to fetch them later (Debian 6.1's libcrc32c needs crc32c, named only by a softdep).

use std::collections::BTreeSet;
use thiserror::Error;
use unionroot_core::modules::{
    module_name, parse_builtin, parse_softdep, ModError, ModRef, ModuleDb,
};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SelectError {
    #[error("cannot parse modules.dep: {0}; regenerate it with depmod(8)")]
    Parse(ModError),
    #[error("module {name:?} is in neither modules.dep nor modules.builtin{hint}")]
    Unknown { name: String, hint: String },
    #[error("modules.dep has a dependency cycle through {0:?}; regenerate it with depmod(8)")]
    Cycle(String),
    #[error("modules.dep lists {path:?}, which is not a path relative to the modules directory; regenerate it with depmod(8)")]
    BadPath { path: String },
}

/// The modules to ship and the index files that describe exactly them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The closure of the requested modules, dependencies first.
    pub modules: Vec<ModRef>,
    /// Requested modules that are built into the kernel, so nothing needs shipping.
    pub builtin: Vec<String>,
    /// `modules.dep` lines of the selected modules, unchanged and in their original order.
    pub dep: String,
    /// `alias` lines of `modules.alias` that name a selected module.
    pub alias: String,
    /// `softdep` lines of `modules.softdep` for a selected module.
    pub softdep: String,
}

/// Up to five module names that contain `name` (or that `name` contains), for "did you mean".
fn near_names(dep_text: &str, name: &str) -> Vec<String> {
    let all: BTreeSet<String> = dep_text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(p, _)| module_name(p.trim()))
        .collect();
    all.into_iter()
        .filter(|m| m.contains(name) || (m.len() >= 3 && name.contains(m.as_str())))
        .take(5)
        .collect()
}

/// Selects `wanted`, its dependencies and its softdeps. `alias_text`, `softdep_text` and
/// `builtin_text` may be empty.
pub fn select<S: AsRef<str>>(
    dep_text: &str,
    alias_text: &str,
    softdep_text: &str,
    builtin_text: &str,
    wanted: &[S],
) -> Result<Selection, SelectError> {
    let db = ModuleDb::parse_dep(dep_text)
        .map_err(SelectError::Parse)?
        .with_aliases(alias_text)
        .with_softdeps(softdep_text);
    let softdeps = parse_softdep(softdep_text);
    let builtin_set = parse_builtin(builtin_text);
    let (mut builtin, mut loadable) = (Vec::new(), Vec::new());
    for w in wanted {
        let name = module_name(w.as_ref());
        if !db.contains(&name) && builtin_set.contains(&name) {
            if !builtin.contains(&name) {
                builtin.push(name);
            }
        } else {
            loadable.push(name);
        }
    }
    // Post-softdeps are not in the load order; add them (and what they need) until nothing new
    // turns up. Each round adds at least one module, so this ends.
    let modules = loop {
        let order = db
            .load_order(&loadable)
            .map_err(|e| map_mod_error(dep_text, e))?;
        let more: Vec<String> = order
            .iter()
            .flat_map(|m| db.softdep_modules(&softdeps, &m.name))
            .filter(|n| !order.iter().any(|m| &m.name == n) && !loadable.contains(n))
            .collect();
        if more.is_empty() {
            break order;
        }
        loadable.extend(more);
    };
    for m in &modules {
        if m.path.starts_with('/') || crate::fstree::components(&m.path).is_err() {
            return Err(SelectError::BadPath {
                path: m.path.clone(),
            });
        }
    }
    let names: BTreeSet<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    let mut dep = String::new();
    for line in dep_text.lines() {
        if let Some((path, _)) = line.split_once(':') {
            if names.contains(module_name(path.trim()).as_str()) {
                dep.push_str(line);
                dep.push('\n');
            }
        }
    }
    let mut alias = String::new();
    for line in alias_text.lines() {
        let mut it = line.split_whitespace();
        if let (Some("alias"), Some(_), Some(m)) = (it.next(), it.next(), it.next()) {
            if names.contains(module_name(m).as_str()) {
                alias.push_str(line);
                alias.push('\n');
            }
        }
    }
    let mut softdep = String::new();
    for line in softdep_text.lines() {
        let mut it = line.split_whitespace();
        if let (Some("softdep"), Some(m)) = (it.next(), it.next()) {
            if names.contains(module_name(m).as_str()) {
                softdep.push_str(line);
                softdep.push('\n');
            }
        }
    }
    Ok(Selection {
        modules,
        builtin,
        dep,
        alias,
        softdep,
    })
}

fn map_mod_error(dep_text: &str, e: ModError) -> SelectError {
    match e {
        ModError::Unknown(name) => {
            let near = near_names(dep_text, &name);
            let hint = if near.is_empty() {
                String::new()
            } else {
                format!(" (similar names: {})", near.join(", "))
            };
            SelectError::Unknown { name, hint }
        }
        ModError::Cycle(name) => SelectError::Cycle(name),
        other => SelectError::Parse(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape of Debian 6.1's modules.dep for the modules a diskless node needs.
    const DEP: &str = "\
kernel/fs/nfs/nfsv3.ko: kernel/fs/nfs_common/nfs_acl.ko kernel/fs/nfs/nfs.ko kernel/fs/lockd/lockd.ko kernel/fs/nfs_common/grace.ko kernel/net/sunrpc/sunrpc.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/fs/nfs/nfsv4.ko: kernel/net/dns_resolver/dns_resolver.ko kernel/fs/nfs/nfs.ko kernel/fs/lockd/lockd.ko kernel/fs/nfs_common/grace.ko kernel/net/sunrpc/sunrpc.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/fs/nfs/nfs.ko: kernel/fs/lockd/lockd.ko kernel/fs/nfs_common/grace.ko kernel/net/sunrpc/sunrpc.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/fs/lockd/lockd.ko: kernel/fs/nfs_common/grace.ko kernel/net/sunrpc/sunrpc.ko
kernel/fs/nfs_common/nfs_acl.ko: kernel/net/sunrpc/sunrpc.ko
kernel/fs/nfs_common/grace.ko:
kernel/net/sunrpc/sunrpc.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
kernel/net/dns_resolver/dns_resolver.ko:
kernel/fs/overlayfs/overlay.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
";
    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias fs-nfs4 nfsv4
alias nfs4 nfsv4
alias fs-overlay overlay
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
alias virtio:d00000001v* virtio_net
alias net-pf-1 unix
";
    const BUILTIN: &str = "kernel/fs/ext4/ext4.ko\nkernel/drivers/virtio/virtio-pci.ko\n";

    fn names(s: &Selection) -> Vec<&str> {
        s.modules.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn closure_in_load_order_with_filtered_indexes() {
        let s = select(DEP, ALIAS, "", BUILTIN, &["nfsv3", "overlay"]).unwrap();
        let n = names(&s);
        assert_eq!(n.len(), 9, "{n:?}");
        for m in [
            "nfsv3", "nfs", "nfs_acl", "lockd", "grace", "sunrpc", "fscache", "netfs", "overlay",
        ] {
            assert!(n.contains(&m), "{m} missing from {n:?}");
        }
        let pos = |m: &str| n.iter().position(|x| *x == m).unwrap();
        assert!(
            pos("sunrpc") < pos("lockd") && pos("lockd") < pos("nfs") && pos("nfs") < pos("nfsv3")
        );
        // modules.dep keeps exactly the selected lines, verbatim and in file order.
        let want_dep: Vec<&str> = DEP
            .lines()
            .filter(|l| {
                !["nfsv4", "dns_resolver", "virtio", "failover", "e1000"]
                    .iter()
                    .any(|x| l.split(':').next().unwrap().contains(x))
            })
            .collect();
        assert_eq!(s.dep.lines().collect::<Vec<_>>(), want_dep);
        assert_eq!(s.alias, "alias fs-overlay overlay\n");
        assert!(s.builtin.is_empty());
        // The filtered modules.dep describes a closed set: it parses and resolves on its own.
        let again = select(&s.dep, "", "", "", &["nfsv3", "overlay"]).unwrap();
        assert_eq!(again.modules, s.modules);
    }

    #[test]
    fn dash_names_aliases_and_builtins() {
        let s = select(
            DEP,
            ALIAS,
            "",
            BUILTIN,
            &["virtio-net", "nfsv4", "virtio_pci", "ext4", "nfsv4"],
        )
        .unwrap();
        assert_eq!(s.builtin, ["virtio_pci", "ext4"]);
        assert!(names(&s).contains(&"failover") && names(&s).contains(&"dns_resolver"));
        assert_eq!(names(&s).iter().filter(|n| **n == "nfsv4").count(), 1);
        assert_eq!(
            s.alias,
            "alias fs-nfs4 nfsv4\nalias nfs4 nfsv4\nalias virtio:d00000001v* virtio_net\n"
        );
    }

    #[test]
    fn unknown_module_is_named_with_suggestions() {
        let e = select(DEP, ALIAS, "", BUILTIN, &["nfsv3", "nfs4"]).unwrap_err();
        assert_eq!(
            e,
            SelectError::Unknown {
                name: "nfs4".into(),
                hint: " (similar names: nfs)".into()
            }
        );
        let e = select(DEP, ALIAS, "", BUILTIN, &["zfs"]).unwrap_err();
        assert_eq!(
            e,
            SelectError::Unknown {
                name: "zfs".into(),
                hint: String::new()
            }
        );
        let e = select(DEP, ALIAS, "", BUILTIN, &["virtio"]).unwrap(); // exact name exists
        assert_eq!(names(&e), ["virtio"]);
        let e = select(DEP, ALIAS, "", BUILTIN, &["nfsv"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "module \"nfsv\" is in neither modules.dep nor modules.builtin (similar names: nfs, nfsv3, nfsv4)"
        );
    }

    #[test]
    fn bad_dep_files_are_errors() {
        assert!(matches!(
            select("garbage\n", "", "", "", &["x"]),
            Err(SelectError::Parse(_))
        ));
        assert!(matches!(
            select("a.ko: b.ko\nb.ko: a.ko\n", "", "", "", &["a"]),
            Err(SelectError::Cycle(_))
        ));
        assert_eq!(
            select("/lib/modules/6.1/kernel/a.ko:\n", "", "", "", &["a"]),
            Err(SelectError::BadPath {
                path: "/lib/modules/6.1/kernel/a.ko".into()
            })
        );
        assert!(matches!(
            select("../../etc/a.ko:\n", "", "", "", &["a"]),
            Err(SelectError::BadPath { .. })
        ));
    }

    #[test]
    fn softdeps_join_the_closure_pre_and_post() {
        // Debian 6.1's lines: erofs -> libcrc32c, whose softdep names the alias crc32c.
        let dep = "\
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/fs/erofs/erofs.ko: kernel/lib/libcrc32c.ko
kernel/crypto/crc32c_generic.ko:
kernel/lib/libcrc32c.ko:
kernel/drivers/char/ipmi/ipmi_msghandler.ko:
kernel/drivers/char/ipmi/ipmi_devintf.ko: kernel/drivers/char/ipmi/ipmi_msghandler.ko
";
        let alias = "\
alias crc32c crc32c_intel
alias crc32c crc32c_generic
alias fs-erofs erofs
";
        let softdep = "\
softdep ext4 pre: crypto-crc32c
softdep libcrc32c pre: crc32c
softdep ipmi_msghandler post: ipmi_devintf
";
        let s = select(dep, alias, softdep, "", &["erofs"]).unwrap();
        assert_eq!(names(&s), ["crc32c_generic", "libcrc32c", "erofs"]);
        assert_eq!(s.softdep, "softdep libcrc32c pre: crc32c\n");
        assert_eq!(
            s.alias,
            "alias crc32c crc32c_generic\nalias fs-erofs erofs\n"
        );
        let s = select(dep, alias, softdep, "", &["ipmi_msghandler"]).unwrap();
        assert_eq!(names(&s), ["ipmi_msghandler", "ipmi_devintf"]);
    }
}
