//! `helsenett-bench`: load generators for the network's benchmarks (`bench/*/run` drive them).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod helseid_tokens;
mod http;
mod jose;

#[derive(Parser)]
#[command(
    name = "helsenett-bench",
    version,
    about = "Load generators for helsenett's benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Token issuance at an OAuth 2.0 authorization server: client_credentials with
    /// private_key_jwt client authentication and DPoP (with server nonces).
    HelseidTokens(helseid_tokens::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::HelseidTokens(args) => helseid_tokens::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("helsenett-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
