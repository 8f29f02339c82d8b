//! Hides `_ftrace_eval_map` in a module's ELF so that the kernel skips its trace-event enum-map
//! fixups at load time. `kernel/module/main.c` finds the section by name
//! (`section_objs(info, "_ftrace_eval_map", ...)`), and `trace_module_notify` then rewrites every
//! event's print format once per enum map: 138M guest instructions for nfs.ko alone, a sixth of
//! the module phase under TCG (measured with `-icount`, see the issue 2 closing note).
//!
//! The section keeps its bytes and relocations; only its name changes, in place and with the
//! same length, so no offset in the file moves. What is lost: enum names in those modules'
//! `events/*/format` files stay symbolic, so perf/trace-cmd print those fields as numbers.
//! The kernel's own trace output is unchanged. Only for modules that are not signed any more:
//! editing a signed module would just make its signature check fail.

use goblin::container::Ctx;
use goblin::elf::{Elf, SectionHeader};
use goblin::strtab::Strtab;
use std::ops::Range;
use thiserror::Error;

pub const EVAL_MAP: &str = "_ftrace_eval_map";
/// Same length as [`EVAL_MAP`], so the rename is a byte-for-byte overwrite.
pub const HIDDEN: &str = "_unionroot_evmap";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TrimError {
    #[error("unreadable ELF section headers: {0}")]
    Malformed(String),
    #[error("the section-name table lies outside the file")]
    OutOfBounds,
}

fn malformed(e: goblin::error::Error) -> TrimError {
    TrimError::Malformed(e.to_string())
}

/// Renames every section called `_ftrace_eval_map`; returns whether there was one. Anything
/// that is not a 64-bit little-endian ELF file (the kernels unionroot boots are x86-64) is left
/// alone.
pub fn hide_eval_map(elf: &mut [u8]) -> Result<bool, TrimError> {
    if elf.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Ok(false);
    }
    let names = eval_map_names(elf)?;
    for r in &names {
        elf.get_mut(r.clone())
            .ok_or(TrimError::OutOfBounds)?
            .copy_from_slice(HIDDEN.as_bytes());
    }
    Ok(!names.is_empty())
}

/// Where in the file the names of the `_ftrace_eval_map` sections are. goblin reads the header,
/// the section headers and the section-name table; only the offsets to overwrite are ours.
fn eval_map_names(bytes: &[u8]) -> Result<Vec<Range<usize>>, TrimError> {
    let header = Elf::parse_header(bytes).map_err(malformed)?;
    let ctx = Ctx::new(
        header.container().map_err(malformed)?,
        header.endianness().map_err(malformed)?,
    );
    let shoff = usize::try_from(header.e_shoff).map_err(|_| TrimError::OutOfBounds)?;
    let sections =
        SectionHeader::parse(bytes, shoff, usize::from(header.e_shnum), ctx).map_err(malformed)?;
    let Some(table) = sections.get(usize::from(header.e_shstrndx)) else {
        return Ok(Vec::new());
    };
    let table = table.file_range().ok_or(TrimError::OutOfBounds)?;
    let strtab = Strtab::parse(bytes, table.start, table.len(), 0).map_err(malformed)?;
    Ok(sections
        .iter()
        .filter(|sh| strtab.get_at(sh.sh_name) == Some(EVAL_MAP))
        .map(|sh| {
            let at = table.start + sh.sh_name;
            at..at + EVAL_MAP.len()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with a section-name table and three sections; the eval map's name is the
    /// tail of the rela section's name, as linkers share suffixes.
    fn elf() -> Vec<u8> {
        let shstr = b"\0.text\0.rela_ftrace_eval_map\0.shstrtab\0".to_vec();
        let mut f = vec![0u8; 64];
        f[..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1]);
        let stroff = f.len();
        f.extend_from_slice(&shstr);
        while f.len() % 8 != 0 {
            f.push(0);
        }
        let shoff = f.len();
        // (name offset) of: null, .text, .rela_ftrace_eval_map, _ftrace_eval_map (shared tail), .shstrtab
        let names = [0usize, 1, 7, 12, 29];
        for (i, n) in names.iter().enumerate() {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&(*n as u32).to_le_bytes());
            if i == 4 {
                h[0x18..0x20].copy_from_slice(&(stroff as u64).to_le_bytes());
                h[0x20..0x28].copy_from_slice(&(shstr.len() as u64).to_le_bytes());
            }
            f.extend_from_slice(&h);
        }
        f[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        f[0x3c..0x3e].copy_from_slice(&(names.len() as u16).to_le_bytes());
        f[0x3e..0x40].copy_from_slice(&4u16.to_le_bytes());
        f
    }

    #[test]
    fn renames_in_place_and_keeps_the_length() {
        let mut f = elf();
        let before = f.clone();
        assert_eq!(hide_eval_map(&mut f), Ok(true));
        assert_eq!(f.len(), before.len());
        let text = String::from_utf8_lossy(&f);
        assert!(
            text.contains(".rela_unionroot_evmap\0") && !text.contains(EVAL_MAP),
            "{text:?}"
        );
        let changed = f.iter().zip(&before).filter(|(a, b)| a != b).count();
        assert!(changed > 0 && changed <= EVAL_MAP.len());
        // A second pass finds nothing: the rename is idempotent.
        assert_eq!(hide_eval_map(&mut f), Ok(false));
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        let mut not_elf = b"not elf".to_vec();
        assert_eq!(hide_eval_map(&mut not_elf), Ok(false));
        assert_eq!(not_elf, b"not elf");
        let mut f = elf();
        f[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(
            matches!(hide_eval_map(&mut f), Err(TrimError::Malformed(_))),
            "{:?}",
            hide_eval_map(&mut f)
        );
        let mut t = elf();
        t.truncate(200);
        assert!(hide_eval_map(&mut t).is_err());
    }

    #[test]
    fn real_debian_module_if_present() {
        let Ok(home) = std::env::var("HOME") else {
            return;
        };
        let Some(ko) = std::fs::read_dir(format!("{home}/.cache/unionroot/kernel"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .and_then(|e| {
                let rel = std::fs::read_to_string(e.path().join("version")).ok()?;
                std::fs::read(
                    e.path()
                        .join(format!("lib/modules/{}/kernel/fs/nfs/nfs.ko", rel.trim())),
                )
                .ok()
            })
        else {
            eprintln!("skipped: no cached Debian kernel (run qemu/fetch-kernel.sh)");
            return;
        };
        let mut m = ko.clone();
        assert_eq!(
            hide_eval_map(&mut m),
            Ok(true),
            "nfs.ko has trace eval maps"
        );
        assert_eq!(m.len(), ko.len());
    }
}
