//! `cargo synchronicity …`: cargo runs `cargo-synchronicity synchronicity …` for it; this is
//! the `synchronicity` command line with that first argument dropped (so `cargo
//! synchronicity audit` is `synchronicity audit`).

#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "synchronicity") {
        args.remove(1);
    }
    let cli = synchronicity::cli::Cli::parse_from(args);
    match synchronicity::cli::run_code(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
