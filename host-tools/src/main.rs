//! `unionroot`: see the library crate. Exit codes: 0 success, 1 failure, 2 usage error (clap).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = unionroot::cli::Cli::parse();
    match unionroot::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unionroot: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
