//! `helsenett-bench`: load generators for the network's benchmarks (`bench/*/run` drive them).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The allocator `helsenett` itself runs with, so that the guard measured in process allocates
/// as it does in the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod exchange_http;
mod grunndata_http;
mod helseid_tokens;
mod helseid_verify;
mod http;
mod kjernejournal_http;
mod rabbitmq;
mod register_http;
mod register_lookup;

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
    /// Token verification at a resource server, in process: HelseID's guard checking an access
    /// token and its DPoP proof as every API does (signature, claims, proof, replay log,
    /// revocation).
    HelseidVerify(helseid_verify::Args),
    /// The address register in process: HER-id look-ups and CPA resolutions on every core,
    /// loading, and a full export.
    RegisterLookup(register_lookup::Args),
    /// The address register over HTTP: party look-ups by HER-id with a bearer token.
    RegisterHttp(register_http::Args),
    /// The message exchange over HTTP, end to end: sealed messages submitted, fetched, read
    /// and answered with AppRecs.
    ExchangeHttp(exchange_http::Args),
    /// Persontjenesten over HTTP: look-ups by fødselsnummer with a bearer token, and bulk
    /// look-ups of 1,000 persons; the server's memory.
    GrunndataHttp(grunndata_http::Args),
    /// Kjernejournal over HTTP: summary care record reads by GPs of their own patients and
    /// emergency reads, each signed in through the authorization code flow, each read audited.
    /// `plan` picks the readers and makes the clients' keys; `load` reads.
    KjernejournalHttp(kjernejournal_http::Args),
    /// The exchange's workload against RabbitMQ, its peer: durable queues, persistent
    /// messages, publisher confirms and manual acks, a confirmed receipt for each message.
    Rabbitmq(rabbitmq::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::HelseidTokens(args) => helseid_tokens::run(args),
        Command::HelseidVerify(args) => helseid_verify::run(args),
        Command::RegisterLookup(args) => register_lookup::run(args),
        Command::RegisterHttp(args) => register_http::run(args),
        Command::ExchangeHttp(args) => exchange_http::run(args),
        Command::GrunndataHttp(args) => grunndata_http::run(args),
        Command::KjernejournalHttp(args) => kjernejournal_http::run(args),
        Command::Rabbitmq(args) => rabbitmq::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("helsenett-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
