//! The address register in process, as the message exchange uses it: HER-id look-ups and CPA
//! resolutions against the node's snapshot, on every core; plus how long loading and a full
//! export take.

use std::{hint::black_box, path::PathBuf, process::ExitCode, time::Instant};

use anyhow::{Result, bail};
use helsenett_core::HerId;
use helsenett_register::{Register, Snapshot, export};
use helsenett_store::{Store, StoreTarget};
use serde_json::json;

use crate::helseid_tokens::{emit_json, quantile_ms};

#[derive(clap::Args)]
pub struct Args {
    /// Data dir of the embedded store holding a country.
    #[arg(long, conflicts_with = "database_url")]
    data_dir: Option<PathBuf>,
    /// Or a PostgreSQL URL.
    #[arg(long)]
    database_url: Option<String>,
    /// Operations per thread in each timed phase.
    #[arg(long, default_value_t = 2_000_000)]
    operations: usize,
    /// Threads in the timed phases (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Append the result as one JSON line to this file (otherwise it goes to stdout as well).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// A small, fast generator of indices, so that picking a party costs nothing next to looking
/// it up (xorshift64*).
struct Picker(u64);

impl Picker {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as usize % n
    }
}

/// Runs `op` `per_thread` times on each of `threads` threads; returns operations per second.
fn rate(threads: usize, per_thread: usize, op: impl Fn(&mut Picker) + Sync) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let op = &op;
            scope.spawn(move || {
                let mut picker = Picker(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                for _ in 0..per_thread {
                    op(&mut picker);
                }
            });
        }
    });
    (threads * per_thread) as f64 / started.elapsed().as_secs_f64()
}

/// Nanoseconds of `samples` single operations, sorted.
fn latencies(samples: usize, op: impl Fn(&mut Picker)) -> Vec<u32> {
    let mut picker = Picker(42);
    let mut out: Vec<u32> = (0..samples)
        .map(|_| {
            let started = Instant::now();
            op(&mut picker);
            u32::try_from(started.elapsed().as_nanos()).unwrap_or(u32::MAX)
        })
        .collect();
    out.sort_unstable();
    out
}

/// Quantile of sorted nanoseconds, in nanoseconds.
fn quantile_ns(sorted: &[u32], q: f64) -> f64 {
    quantile_ms(sorted, q) * 1000.0
}

pub fn run(args: Args) -> Result<ExitCode> {
    let target = match (&args.data_dir, &args.database_url) {
        (_, Some(url)) => StoreTarget::Postgres(url.clone()),
        (Some(dir), None) => StoreTarget::DataDir(dir.clone()),
        (None, None) => bail!("give --data-dir or --database-url"),
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = tokio::runtime::Runtime::new()?;
    let (register, load_seconds) = runtime.block_on(async {
        let store = Store::open(&target).await?;
        let started = Instant::now();
        let register = Register::open(store).await?;
        anyhow::Ok((register, started.elapsed().as_secs_f64()))
    })?;
    let snapshot = register.snapshot();
    if snapshot.is_empty() {
        bail!("the register is empty: make a country first (helsenett synth)");
    }
    let her_ids: Vec<HerId> = snapshot.parties().map(|p| p.her_id).collect();
    let n = her_ids.len();

    let look_up = |picker: &mut Picker| {
        let snapshot = register.snapshot();
        black_box(snapshot.party(her_ids[picker.next(n)]).is_some());
    };
    let resolve = |picker: &mut Picker| {
        let snapshot = register.snapshot();
        let agreement = snapshot.agreement(her_ids[picker.next(n)], her_ids[picker.next(n)]);
        black_box(agreement.map(|a| a.processes.len()).ok());
    };
    // Warm caches and the allocator before timing.
    rate(threads, args.operations / 10, look_up);
    let look_ups = rate(threads, args.operations, look_up);
    let look_up_latency = latencies(200_000, look_up);
    rate(threads, args.operations / 10, resolve);
    let resolutions = rate(threads, args.operations, resolve);
    let resolve_latency = latencies(200_000, resolve);
    let agreed = agreed_share(&snapshot, &her_ids);

    let started = Instant::now();
    let mut bytes = Vec::new();
    export::write(&snapshot, &mut bytes)?;
    let export_seconds = started.elapsed().as_secs_f64();

    println!(
        "register in process ({n} parties, {threads} threads): load {load_seconds:.2} s; \
         HER-id look-up {:.2} M/s (p50 {:.0} ns, p99 {:.0} ns); \
         CPA resolution {:.2} M/s (p50 {:.0} ns, p99 {:.0} ns; {:.0}% of random pairs agree on something); \
         full export {export_seconds:.2} s ({:.1} MB)",
        look_ups / 1e6,
        quantile_ns(&look_up_latency, 0.5),
        quantile_ns(&look_up_latency, 0.99),
        resolutions / 1e6,
        quantile_ns(&resolve_latency, 0.5),
        quantile_ns(&resolve_latency, 0.99),
        agreed * 100.0,
        bytes.len() as f64 / 1e6,
    );
    emit_json(
        args.json.as_deref(),
        &json!({
            "label": "register-in-process",
            "parties": n,
            "threads": threads,
            "load_seconds": load_seconds,
            "look_ups_per_second": look_ups,
            "look_up_p50_ns": quantile_ns(&look_up_latency, 0.5),
            "look_up_p99_ns": quantile_ns(&look_up_latency, 0.99),
            "resolutions_per_second": resolutions,
            "resolution_p50_ns": quantile_ns(&resolve_latency, 0.5),
            "resolution_p99_ns": quantile_ns(&resolve_latency, 0.99),
            "export_seconds": export_seconds,
            "export_bytes": bytes.len(),
        }),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The share of random pairs with at least one agreed process: shows the benchmark resolves
/// real agreements, not empty ones.
fn agreed_share(snapshot: &Snapshot, her_ids: &[HerId]) -> f64 {
    let mut picker = Picker(7);
    let n = her_ids.len();
    let pairs = 10_000;
    let agreed = (0..pairs)
        .filter(|_| {
            snapshot
                .agreement(her_ids[picker.next(n)], her_ids[picker.next(n)])
                .is_ok_and(|a| !a.processes.is_empty())
        })
        .count();
    agreed as f64 / pairs as f64
}
