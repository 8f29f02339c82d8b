//! Removes the signature that `scripts/sign-file` appends to a kernel module
//! (`Documentation/admin-guide/module-signing.rst`). The layout at the end of a signed `.ko` is
//!
//! ```text
//! <module ELF> <PKCS#7 signature, sig_len bytes> <struct module_signature, 12 bytes> <MAGIC>
//! ```
//!
//! where `struct module_signature` (`include/linux/module_signature.h`) ends with `sig_len` as a
//! big-endian u32. The kernel reads it the same way in `kernel/module_signature.c`.
//!
//! Stripping saves the signature bytes and lets an unsigned module load on a kernel without
//! `MODULE_SIG_FORCE` (it only taints the kernel); the module code is untouched.

use thiserror::Error;

pub const MAGIC: &[u8] = b"~Module signature appended~\n";
/// `sizeof(struct module_signature)`: algo, hash, id_type, signer_len, key_id_len, 3 pad
/// bytes, then the big-endian signature length.
pub const SIG_INFO_LEN: usize = 12;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SigError {
    #[error("the module ends with the signature magic but is only {len} bytes, too short for the {SIG_INFO_LEN}-byte signature header")]
    Truncated { len: usize },
    #[error("the module's signature header claims a {sig_len}-byte signature, but only {available} bytes precede it")]
    BadLength { sig_len: u32, available: usize },
}

/// The module without its appended signature. An unsigned module is returned unchanged, so
/// `strip_signature(m)?.len() < m.len()` tells whether anything was removed.
pub fn strip_signature(ko: &[u8]) -> Result<&[u8], SigError> {
    let Some(rest) = ko.strip_suffix(MAGIC) else {
        return Ok(ko);
    };
    let info_at = rest
        .len()
        .checked_sub(SIG_INFO_LEN)
        .ok_or(SigError::Truncated { len: ko.len() })?;
    let info = &rest[info_at..];
    let sig_len = u32::from_be_bytes([info[8], info[9], info[10], info[11]]);
    let body_len = info_at
        .checked_sub(sig_len as usize)
        .ok_or(SigError::BadLength {
            sig_len,
            available: info_at,
        })?;
    Ok(&ko[..body_len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(body: &[u8], sig: &[u8]) -> Vec<u8> {
        let mut v = body.to_vec();
        v.extend_from_slice(sig);
        // PKCS#7: algo, hash, signer_len, key_id_len all 0, id_type 2 (PKEY_ID_PKCS7).
        v.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
        v.extend_from_slice(&(sig.len() as u32).to_be_bytes());
        v.extend_from_slice(MAGIC);
        v
    }

    #[test]
    fn strips_signature_info_and_magic() {
        let body = b"\x7fELF module body";
        let sig = vec![0xa5; 300]; // > 255, so the length uses more than one byte
        assert_eq!(strip_signature(&signed(body, &sig)).unwrap(), body);
        assert_eq!(strip_signature(&signed(body, b"")).unwrap(), body);
        assert_eq!(strip_signature(&signed(b"", b"s")).unwrap(), b"");
    }

    #[test]
    fn unsigned_module_is_unchanged() {
        let m = b"\x7fELF no signature here";
        assert_eq!(strip_signature(m).unwrap(), m);
        assert_eq!(strip_signature(b"").unwrap(), b"");
        // The magic must be at the very end, not merely present.
        let mut v = signed(b"body", b"sig");
        v.push(0);
        assert_eq!(strip_signature(&v).unwrap(), v.as_slice());
    }

    #[test]
    fn inconsistent_lengths_are_errors() {
        let mut short = b"1234".to_vec();
        short.extend_from_slice(MAGIC);
        assert_eq!(
            strip_signature(&short),
            Err(SigError::Truncated { len: short.len() })
        );
        let mut v = signed(b"body", b"sig");
        let at = v.len() - MAGIC.len() - 4;
        v[at..at + 4].copy_from_slice(&1000u32.to_be_bytes());
        assert_eq!(
            strip_signature(&v),
            Err(SigError::BadLength {
                sig_len: 1000,
                available: 7
            })
        );
    }
}
