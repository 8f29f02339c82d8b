//! Exit codes, so that scripts can tell a bad description from a refusal or a failed check
//! without parsing messages (sysexits(3) in spirit, small numbers in practice):
//!
//! | code | meaning |
//! | ---- | ------- |
//! | 0 | success (including "nothing to change") |
//! | 1 | any other failure (I/O, bad input file, a program that failed) |
//! | 2 | usage error (clap) |
//! | 3 | `cluster.toml` is invalid; nothing was written |
//! | 4 | refused: the output exists and differs (pass `--force`), or the backup would be unsafe |
//! | 5 | `kernel-check`: a requested boot mode lacks options |
//! | 6 | `backup`: the copy does not read back identical to the source |

use std::fmt;

pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;
pub const INVALID_CONFIG: u8 = 3;
pub const REFUSED: u8 = 4;
pub const CHECK_FAILED: u8 = 5;
pub const VERIFY_FAILED: u8 = 6;

/// An error that carries its exit code. Wrap it in `anyhow::Error`; `main` finds it again with
/// `downcast_ref`, also below added context.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

/// `error` with exit code `code`.
pub fn failure(code: u8, error: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        code,
        error: error.into(),
    })
}

/// A refusal (exit code [`REFUSED`]) with a message.
pub fn refused(msg: impl Into<String>) -> anyhow::Error {
    failure(REFUSED, anyhow::anyhow!(msg.into()))
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Failure {}

/// The exit code for `e`: the code of the first [`Failure`] in its chain, else [`FAILURE`].
pub fn code_of(e: &anyhow::Error) -> u8 {
    e.chain()
        .find_map(|c| c.downcast_ref::<Failure>())
        .map_or(FAILURE, |f| f.code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn code_survives_context() {
        let e: anyhow::Error = Err::<(), _>(refused("exists"))
            .context("writing x")
            .unwrap_err();
        assert_eq!(code_of(&e), REFUSED);
        assert!(format!("{e:#}").contains("exists"));
        assert_eq!(code_of(&anyhow::anyhow!("plain")), FAILURE);
    }
}
