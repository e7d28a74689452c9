//! The `synchronicity` binary: parse, run, print any error as one line, exit non-zero.

#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = synchronicity::cli::Cli::parse();
    match synchronicity::cli::run_code(cli) {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` joins the cause chain on one line.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
