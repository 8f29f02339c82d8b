//! Checks that a binary is a statically linked ELF executable (elf(5)): no `PT_INTERP` program
//! header, so the kernel runs it without a dynamic loader, and no `DT_NEEDED` libraries.
//!
//! A diskless node's setup tree has no `/lib/ld-linux*.so` or libc, so a dynamically linked
//! busybox would fail there with a bare "not found" from the kernel's `execve(2)`; this check
//! turns that into an error on the host that names the interpreter.

use goblin::elf::header::{machine_to_str, ET_DYN, ET_EXEC};
use goblin::elf::program_header::PT_INTERP;
use goblin::elf::Elf;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("not an ELF file (it does not start with \\x7fELF)")]
    NotElf,
    #[error("unreadable ELF: {0}")]
    Malformed(String),
    #[error("an ELF {0} file, not an executable")]
    NotExecutable(&'static str),
    #[error("dynamically linked: it needs the interpreter {interpreter} (PT_INTERP), which a bare root tree does not have")]
    Dynamic { interpreter: String },
    #[error("it has no interpreter but needs shared libraries ({0}), which a bare root tree does not have")]
    NeedsLibraries(String),
}

/// What the check learned about a static executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticElf {
    pub is_64: bool,
    /// `e_machine` as a name, e.g. `X86_64`.
    pub machine: &'static str,
    /// Static PIE (`ET_DYN` without an interpreter), as musl and glibc `-static-pie` produce.
    pub pie: bool,
}

/// Checks `bytes` (a whole file) and describes it if it is a static executable.
pub fn check_static(bytes: &[u8]) -> Result<StaticElf, ElfError> {
    if !bytes.starts_with(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    let elf = Elf::parse(bytes).map_err(|e| ElfError::Malformed(e.to_string()))?;
    let e_type = elf.header.e_type;
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(ElfError::NotExecutable(goblin::elf::header::et_to_str(
            e_type,
        )));
    }
    if elf.program_headers.iter().any(|ph| ph.p_type == PT_INTERP) {
        let interpreter = elf
            .interpreter
            .unwrap_or("(unreadable PT_INTERP)")
            .to_string();
        return Err(ElfError::Dynamic { interpreter });
    }
    if !elf.libraries.is_empty() {
        return Err(ElfError::NeedsLibraries(elf.libraries.join(", ")));
    }
    Ok(StaticElf {
        is_64: elf.is_64,
        machine: machine_to_str(elf.header.e_machine),
        pie: e_type == ET_DYN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // These read the host's binaries: /bin/busybox comes from busybox-static (see
    // scripts/setup-host.sh) and /bin/ls is coreutils, dynamically linked on Debian.
    fn read(path: &str) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e} (install busybox-static)"))
    }

    #[test]
    fn static_busybox_passes() {
        let info = check_static(&read("/bin/busybox")).unwrap();
        assert!(info.is_64);
        assert_eq!(info.machine, machine_to_str(goblin::elf::header::EM_X86_64));
    }

    #[test]
    fn dynamic_ls_is_refused_naming_its_interpreter() {
        match check_static(&read("/bin/ls")) {
            Err(ElfError::Dynamic { interpreter }) => {
                assert!(interpreter.contains("ld-linux"), "{interpreter}")
            }
            other => panic!("expected Dynamic, got {other:?}"),
        }
    }

    #[test]
    fn non_elf_and_truncated_files_are_refused() {
        assert_eq!(check_static(b"#!/bin/sh\necho hi\n"), Err(ElfError::NotElf));
        assert_eq!(check_static(b""), Err(ElfError::NotElf));
        let bb = read("/bin/busybox");
        assert!(matches!(
            check_static(&bb[..40]),
            Err(ElfError::Malformed(_))
        ));
    }

    #[test]
    fn relocatable_object_is_refused() {
        // Turn busybox's header into ET_REL: still an ELF, but not something execve runs.
        let mut bb = read("/bin/busybox");
        bb[16] = 1;
        bb[17] = 0;
        assert!(
            matches!(check_static(&bb), Err(ElfError::NotExecutable(_))),
            "{:?}",
            check_static(&bb)
        );
    }
}
