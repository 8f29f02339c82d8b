//! `unionroot`: see the library crate. Exit codes are listed in `unionroot::exit`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = unionroot::cli::Cli::parse();
    match unionroot::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unionroot: error: {e:#}");
            ExitCode::from(unionroot::exit::code_of(&e))
        }
    }
}
