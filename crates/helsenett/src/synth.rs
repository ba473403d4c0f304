//! `helsenett synth`: generate a country, with a progress bar, and report time and peak memory.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context;

use chrono::NaiveDate;
use helsenett_core::config::Config;
use helsenett_helseid::synthetic;
use helsenett_store::{Store, StoreTarget};
use helsenett_synth::{Plan, Size, Summary};
use indicatif::{ProgressBar, ProgressStyle};

use crate::StoreArgs;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<SynthCommand>,
    /// small (10,000 people), medium (500,000) or norway (5.5 million).
    #[arg(long, default_value = "small")]
    size: Size,
    /// The same seed always gives the same country.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The country's "today" (YYYY-MM-DD): ages and certificate dates follow from it. Default: today.
    #[arg(long, value_parser = helsenett_core::time::parse_date)]
    as_of: Option<NaiveDate>,
    /// Also write persons.jsonl, organisations.jsonl and communication_parties.jsonl here.
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(clap::Subcommand)]
enum SynthCommand {
    /// Make the population register's daily changes (births, deaths, moves, name changes,
    /// emigrations, address protection) after the last day the feed holds.
    Events {
        /// Days of changes to make.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(args: Args, mut config: Config) -> anyhow::Result<()> {
    if let Some(SynthCommand::Events { days, store }) = args.command {
        store.apply(&mut config);
        return events(days, config).await;
    }
    args.store.apply(&mut config);
    let load = Store::open_for_load(&StoreTarget::new(
        &config.data_dir,
        config.database_url.as_deref(),
    ))
    .await?;
    let started = Instant::now();
    let summary = generate(
        &load.store,
        args.size,
        args.seed,
        args.as_of,
        args.export,
        &config.data_dir,
    )
    .await?;
    load.finish().await?;
    print_summary(&summary, started.elapsed().as_secs_f64());
    Ok(())
}

/// Generates a country into `store` with a progress bar on a terminal, and registers a HelseID
/// client for each organisation, whose private keys go to `data_dir`.
pub async fn generate(
    store: &Store,
    size: Size,
    seed: u64,
    as_of: Option<NaiveDate>,
    export: Option<PathBuf>,
    data_dir: &Path,
) -> anyhow::Result<Summary> {
    let progress = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:40}] {human_pos}/{human_len} people ({per_sec}, {eta} left)",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    progress.set_message(format!("generating the {size} country"));
    let options = helsenett_synth::Options {
        seed,
        as_of: as_of.unwrap_or_else(helsenett_core::time::today),
        export,
    };
    let summary =
        helsenett_synth::generate(store, Plan::for_size(size), options, &progress).await?;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let keys = data_dir.join(synthetic::CLIENTS_FILE);
    let clients = synthetic::register_member_clients(store, seed, &keys).await?;
    println!(
        "registered {clients} HelseID system clients; their private keys are in {}",
        keys.display()
    );
    Ok(summary)
}

async fn events(days: u32, config: Config) -> anyhow::Result<()> {
    let store = Store::open(&StoreTarget::new(
        &config.data_dir,
        config.database_url.as_deref(),
    ))
    .await?;
    let progress = ProgressBar::new(u64::from(days)).with_style(
        ProgressStyle::with_template(
            "{spinner} changing the population [{bar:40}] {pos}/{len} days ({eta} left)",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let changes =
        helsenett_synth::events(&store, days, |day| progress.set_position(u64::from(day))).await?;
    progress.finish_and_clear();
    store.close().await;
    println!(
        "{} days from {}: {} events ({} births, {} deaths, {} moves, {} name changes, {} emigrations, {} new address protections) in {:.1} s",
        changes.days,
        changes.first_day.map_or("-".to_owned(), |d| d.to_string()),
        changes.events(),
        changes.births,
        changes.deaths,
        changes.moves,
        changes.name_changes,
        changes.emigrations,
        changes.protections,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_summary(s: &Summary, seconds: f64) {
    println!(
        "generated {} persons, {} organisations, {} communication parties, {} health personnel, {} GP lists, {} CPP entries, {} certificates in {} municipalities",
        s.persons,
        s.organisations,
        s.communication_parties,
        s.health_personnel,
        s.gp_lists,
        s.cpp_processes,
        s.certificates,
        s.municipalities
    );
    let peak = peak_memory_bytes().map_or("unknown".to_owned(), |b| {
        format!("{:.0} MiB", b as f64 / 1024.0 / 1024.0)
    });
    println!("elapsed: {seconds:.1} s, peak memory: {peak}");
}

/// The process's peak resident memory (Linux `VmHWM`), read without unsafe code.
fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
