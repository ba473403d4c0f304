//! Persontjenesten over HTTP, as an EPJ looks a patient up: `POST
//! /persontjenesten/api/no-legal-basis/person/get-by-nin` for random persons of the country,
//! with a bearer token, many requests in flight on keep-alive connections; then bulk look-ups
//! of 1,000 persons (ten `bulk-by-nin` requests of 100, the contract's most, sent at once).
//! Then Fastlegeregisteret's "who is this person's GP" (`POST
//! /fastlegeregisteret/api/v1/patient/gp`), which reads the database rather than memory.
//! Every look-up is logged by the server before it answers, so the log is part of the cost.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Instant};

use anyhow::{Context, Result, bail};
use hyper::{
    Method, StatusCode,
    body::Bytes,
    header::{self, HeaderName, HeaderValue},
};
use serde_json::json;
use url::Url;

use crate::{
    helseid_tokens::{
        Latency, Stats, bearer_token, cpu_seconds, emit_json, issuer_and_base, load_clients,
        loader_runtime, round, warm_up,
    },
    http::{Connection, Target},
};

const BULK: usize = 100;
const BULK_PERSONS: usize = 1_000;

#[derive(clap::Args)]
pub struct Args {
    /// The issuer; Persontjenesten is served beside it ({issuer} without /helseid).
    #[arg(long)]
    issuer: String,
    /// A client that may take bearer tokens: a JSON line with client_id and private_jwk.
    #[arg(long)]
    client: PathBuf,
    /// Fødselsnumre to look up, one per line.
    #[arg(long)]
    nins: PathBuf,
    /// Concurrent requests, each worker on its own connection.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Timed single look-ups in all.
    #[arg(long, default_value_t = 300_000)]
    requests: usize,
    /// Untimed look-ups first.
    #[arg(long, default_value_t = 30_000)]
    warmup: usize,
    /// Timed Fastlegeregisteret look-ups of a person's GP.
    #[arg(long, default_value_t = 100_000)]
    gp_requests: usize,
    /// Timed bulk look-ups of 1,000 persons.
    #[arg(long, default_value_t = 100)]
    bulk_rounds: usize,
    /// Threads of the loader; one leaves the server the rest of the machine.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The server's process id, to report its CPU time per request and its memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Append the result as one JSON line to this file (otherwise it goes to stdout as well).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One kind of look-up by number: where it goes and how the number is put in the body.
#[derive(Clone, Copy)]
struct Probe {
    path: &'static str,
    body: fn(&str) -> String,
}

/// What an EPJ typically asks for when it looks a patient up.
const GET_BY_NIN: Probe = Probe {
    path: "/persontjenesten/api/no-legal-basis/person/get-by-nin?informationParts=Name\
        &informationParts=NorwegianIdentificationNumber&informationParts=ResidentialAddress\
        &informationParts=Birth&informationParts=Gender&informationParts=Status\
        &informationParts=AddressProtection",
    body: |nin| format!("nin={nin}"),
};

const PATIENT_GP: Probe = Probe {
    path: "/fastlegeregisteret/api/v1/patient/gp",
    body: |nin| format!("{{\"patientNin\":\"{nin}\"}}"),
};

fn request_headers(
    token: &str,
    content_type: &'static str,
) -> Result<Vec<(HeaderName, HeaderValue)>> {
    Ok(vec![
        (
            header::AUTHORIZATION,
            HeaderValue::try_from(format!("Bearer {token}"))?,
        ),
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            HeaderName::from_static("api-version"),
            HeaderValue::from_static("2"),
        ),
        (
            HeaderName::from_static("nhn-purpose"),
            HeaderValue::from_static("treatment"),
        ),
    ])
}

/// One worker: `count` look-ups of persons picked from `nins` by a seeded walk.
async fn work(
    mut connection: Connection,
    probe: Probe,
    nins: Arc<Vec<String>>,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
    count: usize,
    seed: usize,
) -> (Connection, Stats) {
    let mut stats = Stats {
        latencies: Vec::with_capacity(count),
        ..Stats::default()
    };
    for i in 0..count {
        let nin = &nins[(seed * 7_919 + i * 104_729) % nins.len()];
        let body = Bytes::from((probe.body)(nin));
        let started = Instant::now();
        let reply = connection
            .send(&Method::POST, probe.path, &headers, &body)
            .await;
        stats.record("", started, reply, StatusCode::OK);
    }
    (connection, stats)
}

/// `VmRSS`, `VmHWM` and `RssFile` (pages of mapped files, such as SQLite's) of a process, in
/// bytes.
pub(crate) fn memory(pid: u32) -> Result<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name}"))?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .context("no value")?
            .parse()?;
        Ok(kib * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?, field("RssFile:")?))
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.concurrency == 0 || args.requests == 0 || args.threads == 0 || args.bulk_rounds == 0 {
        bail!("--concurrency, --requests, --bulk-rounds and --threads must be at least 1");
    }
    let nins: Vec<String> = std::fs::read_to_string(&args.nins)
        .with_context(|| format!("cannot read {}", args.nins.display()))?
        .lines()
        .map(str::to_owned)
        .collect();
    if nins.len() < BULK_PERSONS {
        bail!(
            "{} holds {} numbers; at least {BULK_PERSONS} are needed",
            args.nins.display(),
            nins.len()
        );
    }
    let nins = Arc::new(nins);
    let runtime = loader_runtime(args.threads)?;
    let (issuer, base) = issuer_and_base(&args.issuer)?;
    runtime.block_on(async {
        let client = load_clients(&args.client, 1)?.remove(0);
        let token = bearer_token(&issuer, &client, "nhn:persontjenesten/ReadNoLegalBasis").await?;
        let headers = Arc::new(request_headers(&token, "application/x-www-form-urlencoded")?);
        let target = Target::resolve(&Url::parse(&base)?).await?;

        let mut connections = Vec::with_capacity(args.concurrency);
        for _ in 0..args.concurrency {
            connections.push(Connection::open(target.clone()).await?);
        }
        let start = |c, per, seed| work(c, GET_BY_NIN, nins.clone(), headers.clone(), per, seed);
        let connections = warm_up("grunndata", connections, args.warmup, &start).await?;
        let pids: Vec<u32> = args.server_pid.into_iter().collect();
        let cpu_before = cpu_seconds(&pids)?;
        let (elapsed, mut stats, mut connections) = round(connections, args.requests, 1_000, &start).await?;
        let server_cpu = cpu_seconds(&pids)? - cpu_before;
        for (what, n) in &stats.samples {
            eprintln!("helsenett-bench: grunndata: error ({n}x): {what}");
        }
        let Latency { per_second, p50, p90, p99, max } = stats.latency(elapsed.as_secs_f64());
        let cpu_us = (!pids.is_empty() && stats.ok > 0).then(|| 1e6 * server_cpu / stats.ok as f64);
        let cpu_note = cpu_us.map_or(String::new(), |us| format!("  server CPU {us:.0} µs/look-up"));
        println!(
            "Persontjenesten get-by-nin over HTTP: {per_second:.0} look-ups/s  p50 {p50:.2} ms  p99 {p99:.2} ms{cpu_note}  \
             (n={}, concurrency={}, errors={})",
            stats.ok, args.concurrency, stats.errors
        );

        // Bulk: 1,000 persons as ten requests of 100 at once, one round at a time.
        let bulk_path = GET_BY_NIN.path.replace("get-by-nin", "bulk-by-nin");
        connections.truncate(BULK_PERSONS / BULK);
        let mut bulk = Stats::default();
        let mut returned = 0usize;
        for round in 0..args.bulk_rounds {
            let started = Instant::now();
            let tasks: Vec<_> = connections
                .drain(..)
                .enumerate()
                .map(|(i, mut c)| {
                    let first = (round * BULK_PERSONS + i * BULK) % (nins.len() - BULK);
                    let form = nins[first..first + BULK]
                        .iter()
                        .map(|n| format!("nins={n}"))
                        .collect::<Vec<_>>()
                        .join("&");
                    let (headers, path) = (headers.clone(), bulk_path.clone());
                    tokio::spawn(async move {
                        let reply = c.send(&Method::POST, &path, &headers, &Bytes::from(form)).await;
                        (c, reply)
                    })
                })
                .collect();
            let mut failed = None;
            for task in tasks {
                let (c, reply) = task.await?;
                connections.push(c);
                match reply {
                    Ok(r) if r.status == StatusCode::OK => {
                        returned += serde_json::from_slice::<Vec<serde_json::Value>>(&r.body)?.len();
                    }
                    Ok(r) => failed = Some(format!("{}: {}", r.status, String::from_utf8_lossy(&r.body))),
                    Err(e) => failed = Some(format!("transport: {e:#}")),
                }
            }
            match failed {
                None => {
                    bulk.ok += 1;
                    bulk.latencies.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
                Some(e) => bulk.error(e),
            }
        }
        for (what, n) in &bulk.samples {
            eprintln!("helsenett-bench: grunndata: bulk error ({n}x): {what}");
        }
        let Latency { p50: bulk_p50, p99: bulk_p99, max: bulk_max, .. } = bulk.latency(1.0);
        println!(
            "Persontjenesten bulk of {BULK_PERSONS} persons (10 x bulk-by-nin of {BULK} at once): p50 {bulk_p50:.1} ms  p99 {bulk_p99:.1} ms  max {bulk_max:.1} ms  \
             ({} rounds, {returned} persons returned, errors={})",
            bulk.ok, bulk.errors
        );
        // Fastlegeregisteret: the person's GP, from the database, on the same connections.
        let gp_token = bearer_token(&issuer, &client, "nhn:fastlegeregisteret/read").await?;
        let gp_headers = Arc::new(request_headers(&gp_token, "application/json")?);
        while connections.len() < args.concurrency {
            connections.push(Connection::open(target.clone()).await?);
        }
        let start_gp = |c, per, seed| work(c, PATIENT_GP, nins.clone(), gp_headers.clone(), per, seed);
        let connections = warm_up("grunndata", connections, args.warmup / 10, &start_gp).await?;
        let cpu_before = cpu_seconds(&pids)?;
        let (gp_elapsed, mut gp, _) = round(connections, args.gp_requests, 1_000, &start_gp).await?;
        let gp_cpu = cpu_seconds(&pids)? - cpu_before;
        for (what, n) in &gp.samples {
            eprintln!("helsenett-bench: grunndata: patient/gp error ({n}x): {what}");
        }
        let Latency { per_second: gp_per_second, p50: gp_p50, p99: gp_p99, .. } = gp.latency(gp_elapsed.as_secs_f64());
        let gp_cpu_us = (!pids.is_empty() && gp.ok > 0).then(|| 1e6 * gp_cpu / gp.ok as f64);
        println!(
            "Fastlegeregisteret patient/gp over HTTP: {gp_per_second:.0} look-ups/s  p50 {gp_p50:.2} ms  p99 {gp_p99:.2} ms{}  (n={}, errors={})",
            gp_cpu_us.map_or(String::new(), |us| format!("  server CPU {us:.0} µs/look-up")),
            gp.ok, gp.errors
        );
        let memory = args.server_pid.map(memory).transpose()?;
        if let Some((rss, peak, file)) = memory {
            let mib = |b: u64| b as f64 / 1048576.0;
            println!(
                "server memory: {:.0} MiB resident ({:.0} MiB of it mapped database file), {:.0} MiB at peak",
                mib(rss),
                mib(file),
                mib(peak)
            );
        }
        emit_json(
            args.json.as_deref(),
            &json!({
                "label": "grunndata-http",
                "look_ups": stats.ok,
                "errors": stats.errors + bulk.errors + gp.errors,
                "concurrency": args.concurrency,
                "seconds": elapsed.as_secs_f64(),
                "look_ups_per_second": per_second,
                "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max,
                "server_cpu_us_per_request": cpu_us,
                "bulk_1000_p50_ms": bulk_p50, "bulk_1000_p99_ms": bulk_p99,
                "patient_gp_per_second": gp_per_second, "patient_gp_p50_ms": gp_p50, "patient_gp_p99_ms": gp_p99,
                "patient_gp_server_cpu_us": gp_cpu_us,
                "server_rss_bytes": memory.map(|m| m.0), "server_peak_rss_bytes": memory.map(|m| m.1),
            }),
        )?;
        Ok(if stats.errors + bulk.errors + gp.errors > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
    })
}
