//! `helsenett`: the national health network in one binary. This crate only wires the others:
//! it parses the command line and configuration, opens the store, and starts the services.

mod audit;
mod demo;
mod helseid;
mod msg;
mod register;
mod server;
mod synth;
mod telemetry;
mod validate;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use helsenett_core::config::{Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "helsenett",
    version,
    about = "The national health network in one binary"
)]
struct Cli {
    /// TOML configuration file; `HELSENETT_*` environment variables and flags override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format: json (for log shippers) or pretty (for a terminal).
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

/// Where the store is: shared by every command that opens it.
#[derive(clap::Args, Clone)]
struct StoreArgs {
    /// Directory of the embedded SQLite store.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user@host/db); also `HELSENETT_DATABASE_URL`.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a synthetic country into the store (deterministic in --seed).
    Synth(synth::Args),
    /// Serve the network's APIs.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Generate a small country on first run and serve it on the embedded store.
    Demo(demo::Args),
    /// HelseID: signing keys and clients.
    #[command(subcommand)]
    Helseid(helseid::Command),
    /// The address register: search, show, export and import.
    #[command(subcommand)]
    Register(register::Command),
    /// Messages as a member's system sends and receives them, through a running node.
    #[command(subcommand)]
    Msg(msg::Command),
    /// Check MsgHead, AppRec and Dialogmelding documents against the official schemas.
    Validate(validate::Args),
    /// Kjernejournal's audit: verify the hash chain.
    #[command(subcommand)]
    Audit(audit::Command),
}

impl StoreArgs {
    /// Applies these flags over the loaded configuration.
    fn apply(&self, config: &mut Config) {
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(url) = &self.database_url {
            config.database_url = Some(url.clone());
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, the whole cause chain: what failed and why.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command;
    let mut config = Config::load(cli.config.as_deref(), |name| std::env::var(name).ok())?;
    let default_format = if matches!(command, Command::Demo(_)) {
        LogFormat::Pretty
    } else {
        config.log_format
    };
    config.log_format = cli.log_format.unwrap_or(default_format);
    telemetry::init_logging(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Synth(args) => synth::run(args, config).await,
            Command::Serve { listen, store } => {
                store.apply(&mut config);
                if let Some(listen) = listen {
                    config.listen = listen;
                }
                server::run(config, None).await
            }
            Command::Demo(args) => demo::run(args, config).await,
            Command::Helseid(command) => helseid::run(command, config).await,
            Command::Register(command) => register::run(command, config).await,
            Command::Msg(command) => msg::run(command, config).await,
            Command::Validate(args) => validate::run(args),
            Command::Audit(command) => audit::run(command, config).await,
        }
    })
}
