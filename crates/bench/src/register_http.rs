//! The address register over HTTP, as an EPJ looks parties up before sending: GET
//! /adresseregisteret/v1/parties/{herId} for random HER-ids, with a bearer access token from
//! HelseID, many requests in flight on keep-alive connections. Also times the full export.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Instant};

use anyhow::{Context, Result, bail};
use hyper::{
    Method, StatusCode,
    body::Bytes,
    header::{self, HeaderName, HeaderValue},
};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::{
    helseid_tokens::{
        Latency, Stats, bearer_token, cpu_seconds, emit_json, issuer_and_base, load_clients,
        loader_runtime, round, warm_up,
    },
    http::{self, Connection, Target},
};

#[derive(clap::Args)]
pub struct Args {
    /// The issuer; the register is served beside it ({issuer} without /helseid).
    #[arg(long)]
    issuer: String,
    /// A client that may take bearer tokens: a JSON line with client_id and private_jwk.
    #[arg(long)]
    client: PathBuf,
    /// Concurrent requests, each worker on its own connection.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Timed requests in all.
    #[arg(long, default_value_t = 300_000)]
    requests: usize,
    /// Untimed requests first.
    #[arg(long, default_value_t = 30_000)]
    warmup: usize,
    /// Threads of the loader; one leaves the server the rest of the machine.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The server's process ids, to report its CPU time per request.
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
    /// Append the result as one JSON line to this file (otherwise it goes to stdout as well).
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportHeader {
    as_of_event_id: i64,
    parties: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportLine {
    her_id: String,
}

/// One worker: `count` look-ups of HER-ids picked from `her_ids` by a seeded walk.
async fn work(
    mut connection: Connection,
    her_ids: Arc<Vec<String>>,
    auth: (HeaderName, HeaderValue),
    count: usize,
    seed: usize,
) -> (Connection, Stats) {
    let mut stats = Stats {
        latencies: Vec::with_capacity(count),
        ..Stats::default()
    };
    let headers = [auth];
    for i in 0..count {
        let her_id = &her_ids[(seed * 7_919 + i * 104_729) % her_ids.len()];
        let path = format!("/adresseregisteret/v1/parties/{her_id}");
        let started = Instant::now();
        let reply = connection
            .send(&Method::GET, &path, &headers, &Bytes::new())
            .await;
        stats.record("", started, reply, StatusCode::OK);
    }
    (connection, stats)
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.concurrency == 0 || args.requests == 0 || args.threads == 0 {
        bail!("--concurrency, --requests and --threads must be at least 1");
    }
    let runtime = loader_runtime(args.threads)?;
    let (issuer, base) = issuer_and_base(&args.issuer)?;
    runtime.block_on(async {
        let client = load_clients(&args.client, 1)?.remove(0);
        let token = bearer_token(&issuer, &client, "nhn:adresseregisteret/read").await?;
        let auth = (
            header::AUTHORIZATION,
            HeaderValue::try_from(format!("Bearer {token}"))?,
        );

        // The full export, as a mirror fetches it.
        let export_url = Url::parse(&format!("{base}/adresseregisteret/v1/export"))?;
        let target = Target::resolve(&export_url).await?;
        let mut connection = Connection::open(target.clone()).await?;
        let started = Instant::now();
        let reply = connection
            .send(
                &Method::GET,
                &http::path_of(&export_url),
                std::slice::from_ref(&auth),
                &Bytes::new(),
            )
            .await?;
        let export_seconds = started.elapsed().as_secs_f64();
        if reply.status != StatusCode::OK {
            bail!("the export answered {}", reply.status);
        }
        let text = std::str::from_utf8(&reply.body)?;
        let mut lines = text.lines();
        let header: ExportHeader =
            serde_json::from_str(lines.next().context("the export is empty")?)?;
        let her_ids: Vec<String> = lines
            .map(|l| serde_json::from_str::<ExportLine>(l).map(|p| p.her_id))
            .collect::<Result<_, _>>()?;
        if her_ids.len() != header.parties || her_ids.is_empty() {
            bail!(
                "the export announced {} parties and held {}",
                header.parties,
                her_ids.len()
            );
        }
        eprintln!(
            "helsenett-bench: register: export of {} parties as of event {} ({:.1} MB) in {export_seconds:.2} s",
            her_ids.len(),
            header.as_of_event_id,
            reply.body.len() as f64 / 1e6
        );
        let her_ids = Arc::new(her_ids);

        let mut connections = Vec::with_capacity(args.concurrency);
        for _ in 0..args.concurrency {
            connections.push(Connection::open(target.clone()).await?);
        }
        let start = |c, per, seed| work(c, her_ids.clone(), auth.clone(), per, seed);
        let connections = warm_up("register", connections, args.warmup, &start).await?;
        let cpu_before = cpu_seconds(&args.server_pids)?;
        let (elapsed, mut stats, _) = round(connections, args.requests, 1_000, &start).await?;
        let server_cpu = cpu_seconds(&args.server_pids)? - cpu_before;
        for (what, n) in &stats.samples {
            eprintln!("helsenett-bench: register: error ({n}x): {what}");
        }
        let Latency {
            per_second,
            p50,
            p90,
            p99,
            max,
        } = stats.latency(elapsed.as_secs_f64());
        let cpu_us = (!args.server_pids.is_empty() && stats.ok > 0)
            .then(|| 1e6 * server_cpu / stats.ok as f64);
        let cpu_note = cpu_us.map_or(String::new(), |us| format!("  server CPU {us:.0} µs/request"));
        println!(
            "register over HTTP: {per_second:.0} look-ups/s  p50 {p50:.2} ms  p99 {p99:.2} ms{cpu_note}  \
             (n={}, concurrency={}, errors={}); export {export_seconds:.2} s",
            stats.ok, args.concurrency, stats.errors
        );
        emit_json(
            args.json.as_deref(),
            &json!({
                "label": "register-http",
                "look_ups": stats.ok,
                "errors": stats.errors,
                "concurrency": args.concurrency,
                "seconds": elapsed.as_secs_f64(),
                "look_ups_per_second": per_second,
                "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max,
                "server_cpu_us_per_request": cpu_us,
                "export_seconds": export_seconds,
                "export_bytes": reply.body.len(),
            }),
        )?;
        Ok(if stats.errors > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}
