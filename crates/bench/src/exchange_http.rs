//! The message exchange end to end over HTTP, as EPJ systems use it: senders submit sealed
//! MsgHead documents (POST /msh/Messages), receivers poll their mailboxes, fetch each business
//! document, mark it read and answer with an AppRec. Each sender-receiver pair is one sender
//! task and one receiver task on their own keep-alive connections, with bearer tokens of their
//! organisations' clients. A message counts when its AppRec is accepted.

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use helsenett_client::jose::Es256Key;
use helsenett_core::HerId;
use helsenett_exchange::{
    apprec::Named,
    cms,
    envelope::Outgoing,
    named,
    synthetic::{Credentials, DIALOG, dialogue_pairs},
};
use helsenett_helseid::clients::{self, Client as StoredClient};
use helsenett_register::{Register, model::Version};
use helsenett_store::{Store, StoreTarget};
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
        Client, Latency, Stats, bearer_token, cpu_seconds, emit_json, issuer_and_base,
        loader_runtime,
    },
    http::{Connection, Target},
};

const SCOPE: &str = "nhn:msh/api";
/// Messages a receiver takes from its mailbox per poll (the API's maximum).
const FETCH: u32 = 100;

#[derive(clap::Args)]
pub struct Args {
    /// The synthetic country's data dir: its store holds the parties' keys (and is the
    /// server's, unless --database-url names another).
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    database_url: Option<String>,
    /// The node's HelseID issuer, e.g. http://127.0.0.1:8080/helseid; the MSH API is beside it.
    #[arg(long)]
    issuer: String,
    /// Sender-receiver pairs: each pair is one sender and one receiver in flight.
    #[arg(long, default_value_t = 32)]
    pairs: usize,
    /// Timed messages in all.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Untimed messages first.
    #[arg(long, default_value_t = 2_000)]
    warmup: usize,
    /// Size of each sealed payload before encryption.
    #[arg(long, default_value_t = 4_096)]
    payload_bytes: usize,
    /// Submit at this total rate (messages a second) instead of as fast as the hub takes them.
    #[arg(long)]
    rate: Option<f64>,
    /// How long a receiver waits before polling an empty mailbox again. EPJ systems poll every
    /// few seconds; a short wait keeps the end-to-end figure from measuring the wait.
    #[arg(long, default_value_t = 2)]
    idle_poll_ms: u64,
    /// Threads of the loader.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The server's process ids, to report its CPU time per message.
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
    /// A label for the result (e.g. the backend).
    #[arg(long, default_value = "exchange-http")]
    label: String,
    /// Append the result as one JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// What one pair sends: the parties as the MsgHead names them, the agreed version, the sealed
/// payload (sealed once: sealing is the sender's cost, not the hub's) and the tokens.
struct Pair {
    sender: Named,
    receiver: Named,
    receiver_her_id: HerId,
    version: Version,
    sealed: Vec<u8>,
    sender_auth: HeaderValue,
    receiver_auth: HeaderValue,
}

/// Registers a bearer client allowed the MSH scope for each organisation; returns them by orgnr.
async fn bearer_clients(store: &Store, orgnrs: &[String]) -> Result<Vec<(String, Client)>> {
    let run = rand::random::<u32>();
    let mut registered = Vec::with_capacity(orgnrs.len());
    let mut stored = Vec::with_capacity(orgnrs.len());
    for orgnr in orgnrs {
        let key = Es256Key::generate()?;
        let mut jwk = key.public_jwk().clone();
        jwk["kid"] = json!("bench");
        jwk["use"] = json!("sig");
        jwk["alg"] = json!("ES256");
        let client_id = format!("bench-msh-{run:08x}-{orgnr}");
        stored.push(StoredClient {
            client_id: client_id.clone(),
            name: format!("exchange benchmark ({orgnr})"),
            jwks: serde_json::from_value(json!({ "keys": [jwk] }))?,
            grant_types: vec![clients::CLIENT_CREDENTIALS.to_owned()],
            scopes: vec![SCOPE.to_owned()],
            redirect_uris: Vec::new(),
            orgnr_parent: orgnr.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
            orgnr_child: None,
            dpop_required: false,
            enabled: true,
            created_at: crate::helseid_tokens::now() as i64,
        });
        registered.push((
            orgnr.clone(),
            Client {
                id: client_id,
                organisation: Some(orgnr.clone()),
                kid: Some("bench".to_owned()),
                key,
            },
        ));
    }
    clients::insert(store, &stored).await?;
    Ok(registered)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    id: String,
    business_document_id: String,
}

fn headers(auth: &HeaderValue) -> Vec<(HeaderName, HeaderValue)> {
    vec![
        (header::AUTHORIZATION, auth.clone()),
        (
            HeaderName::from_static("api-version"),
            HeaderValue::from_static("2"),
        ),
        (
            HeaderName::from_static("nhn-source-system"),
            HeaderValue::from_static("helsenett-bench"),
        ),
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
    ]
}

/// Submits `count` messages of pair `index`, paced at `interval` when given; submit latencies.
async fn send(
    mut connection: Connection,
    pair: Arc<Pair>,
    index: usize,
    round: usize,
    count: usize,
    interval: Option<Duration>,
) -> (Connection, Stats) {
    let mut stats = Stats {
        latencies: Vec::with_capacity(count),
        ..Stats::default()
    };
    let headers = headers(&pair.sender_auth);
    let started = Instant::now();
    for k in 0..count {
        if let Some(interval) = interval {
            let due = started + interval.mul_f64(k as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let msg_id = format!("bench-{round}-{index}-{k}");
        let document = Outgoing {
            message_type: DIALOG,
            version: pair.version,
            msg_id: &msg_id,
            gen_date: Utc::now(),
            sender: &pair.sender,
            receiver: &pair.receiver,
            copies: &[],
            sealed: &pair.sealed,
        }
        .to_xml();
        let body = Bytes::from(
            json!({
                "businessDocument": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, document),
                "contentType": "application/xml",
                "contentTransferEncoding": "base64",
            })
            .to_string(),
        );
        let sent = Instant::now();
        let reply = connection
            .send(&Method::POST, "/msh/Messages", &headers, &body)
            .await;
        stats.record("submit ", sent, reply, StatusCode::CREATED);
    }
    (connection, stats)
}

/// Receives `count` messages of pair `pair`: fetch, mark read, answer Ok. `ok` counts answers.
async fn receive(
    mut connection: Connection,
    pair: Arc<Pair>,
    count: usize,
    idle_poll: Duration,
) -> (Connection, Stats) {
    let mut stats = Stats::default();
    let headers = headers(&pair.receiver_auth);
    let her_id = pair.receiver_her_id;
    let list = format!(
        "/msh/Messages?ReceiverHerIds={her_id}&IncludeMetadata=true&MessagesToFetch={FETCH}"
    );
    let answer = Bytes::from_static(br#"{"appRecStatus":"Ok"}"#);
    let mut failures = 0;
    while (stats.ok as usize) < count && failures < 1_000 {
        let listed: Vec<Listed> = match connection
            .send(&Method::GET, &list, &headers, &Bytes::new())
            .await
        {
            Ok(reply) if reply.status == StatusCode::OK => {
                serde_json::from_slice(&reply.body).unwrap_or_default()
            }
            Ok(reply) => {
                failures += 1;
                stats.error(format!(
                    "list {}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                ));
                continue;
            }
            Err(e) => {
                failures += 1;
                stats.error(format!("list transport: {e:#}"));
                continue;
            }
        };
        if listed.is_empty() {
            tokio::time::sleep(idle_poll).await;
            continue;
        }
        for message in listed {
            let steps = [
                (
                    Method::GET,
                    format!("/msh/Messages/{}/business-document", message.id),
                    Bytes::new(),
                    StatusCode::OK,
                ),
                (
                    Method::PUT,
                    format!("/msh/Messages/{}/read/{her_id}", message.id),
                    Bytes::new(),
                    StatusCode::NO_CONTENT,
                ),
                (
                    Method::POST,
                    format!("/msh/Messages/{}/apprec/{her_id}", message.id),
                    answer.clone(),
                    StatusCode::CREATED,
                ),
            ];
            let mut done = true;
            for (method, path, body, expected) in &steps {
                match connection.send(method, path, &headers, body).await {
                    Ok(reply) if reply.status == *expected => {}
                    Ok(reply) => {
                        done = false;
                        stats.error(format!(
                            "{method} {}: {} {}",
                            message.business_document_id,
                            reply.status,
                            String::from_utf8_lossy(&reply.body)
                        ));
                        break;
                    }
                    Err(e) => {
                        done = false;
                        stats.error(format!("{method} transport: {e:#}"));
                        break;
                    }
                }
            }
            if done {
                stats.ok += 1;
            } else {
                failures += 1;
            }
        }
    }
    (connection, stats)
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.pairs == 0 || args.messages == 0 || args.threads == 0 {
        bail!("--pairs, --messages and --threads must be at least 1");
    }
    let runtime = loader_runtime(args.threads)?;
    let (issuer, base) = issuer_and_base(&args.issuer)?;
    runtime.block_on(async {
        let store = Store::open(&StoreTarget::new(&args.data_dir, args.database_url.as_deref())).await?;
        let register = Register::open(store.clone()).await?;
        let snapshot = register.snapshot();
        let chosen = dialogue_pairs(&store, &snapshot, args.pairs).await?;
        if chosen.len() < args.pairs {
            bail!(
                "the country has only {} sender-receiver pairs that agree on {DIALOG} (asked for {})",
                chosen.len(),
                args.pairs
            );
        }
        let mut orgnrs: Vec<String> = chosen
            .iter()
            .flat_map(|(a, b)| [*a, *b])
            .filter_map(|h| snapshot.party(h).map(|p| p.orgnr.to_string()))
            .collect();
        orgnrs.sort();
        orgnrs.dedup();
        let clients = bearer_clients(&store, &orgnrs).await?;
        let mut auth = std::collections::HashMap::new();
        for (orgnr, client) in &clients {
            let token = bearer_token(&issuer, client, SCOPE).await?;
            auth.insert(orgnr.clone(), HeaderValue::try_from(format!("Bearer {token}"))?);
        }
        let payload: Vec<u8> = (0..args.payload_bytes).map(|i| b'A' + (i % 26) as u8).collect();
        let mut pairs = Vec::with_capacity(chosen.len());
        for (sender, receiver) in &chosen {
            let keys = Credentials::of(&store, &snapshot, *sender).await?;
            let receiver_keys = Credentials::of(&store, &snapshot, *receiver).await?;
            let sealed = cms::seal(
                &payload,
                (&keys.signing.certificate, &keys.signing.key),
                std::slice::from_ref(&receiver_keys.encryption.certificate),
            )?;
            let org = |h: &HerId| snapshot.party(*h).map(|p| p.orgnr.to_string()).unwrap_or_default();
            pairs.push(Arc::new(Pair {
                sender: named(&snapshot, *sender).context("sender")?,
                receiver: named(&snapshot, *receiver).context("receiver")?,
                receiver_her_id: *receiver,
                version: snapshot.agreement(*sender, *receiver).ok().and_then(|a| a.version_of(DIALOG)).context("no version")?,
                sealed,
                sender_auth: auth[&org(sender)].clone(),
                receiver_auth: auth[&org(receiver)].clone(),
            }));
        }
        drop(snapshot);
        store.close().await;

        let target = Target::resolve(&Url::parse(&base)?).await?;
        let idle_poll = Duration::from_millis(args.idle_poll_ms);
        let interval = args.rate.map(|r| Duration::from_secs_f64(args.pairs as f64 / r));
        let run_id = rand::random::<u32>();
        let round = |count: usize, round: usize| {
            let per = count.div_ceil(args.pairs);
            let pairs = pairs.clone();
            let target = target.clone();
            async move {
                let mut senders = Vec::new();
                let mut receivers = Vec::new();
                for (i, pair) in pairs.iter().enumerate() {
                    senders.push(tokio::spawn(send(Connection::open(target.clone()).await?, pair.clone(), i, round, per, interval)));
                    receivers.push(tokio::spawn(receive(Connection::open(target.clone()).await?, pair.clone(), per, idle_poll)));
                }
                let started = Instant::now();
                let mut submitted = Stats::default();
                let mut answered = Stats::default();
                for task in senders {
                    submitted.merge(task.await?.1);
                }
                let submit_seconds = started.elapsed().as_secs_f64();
                for task in receivers {
                    answered.merge(task.await?.1);
                }
                anyhow::Ok((started.elapsed(), submit_seconds, submitted, answered))
            }
        };
        let (_, _, warm_sent, warm_answered) = round(args.warmup.max(args.pairs), run_id as usize).await?;
        if warm_sent.errors + warm_answered.errors > 0 {
            for (what, n) in warm_sent.samples.iter().chain(&warm_answered.samples) {
                eprintln!("helsenett-bench: exchange: warm-up error ({n}x): {what}");
            }
            bail!("the warm-up failed");
        }
        let cpu_before = cpu_seconds(&args.server_pids)?;
        let (elapsed, submit_seconds, mut sent, answered) = round(args.messages, run_id as usize + 1).await?;
        let server_cpu = cpu_seconds(&args.server_pids)? - cpu_before;
        for (what, n) in sent.samples.iter().chain(&answered.samples) {
            eprintln!("helsenett-bench: exchange: error ({n}x): {what}");
        }
        let Latency { per_second: submitted_per_second, p50, p90, p99, max } = sent.latency(submit_seconds);
        let end_to_end = answered.ok as f64 / elapsed.as_secs_f64();
        let cpu_us = (!args.server_pids.is_empty() && answered.ok > 0)
            .then(|| 1e6 * server_cpu / answered.ok as f64);
        let cpu_note = cpu_us.map_or(String::new(), |us| format!("  server CPU {us:.0} µs/message"));
        let mode = args.rate.map_or("as fast as accepted".to_owned(), |r| format!("paced at {r:.0}/s"));
        println!(
            "{}: {end_to_end:.0} messages/s end to end (submit, fetch, read, AppRec); submit {submitted_per_second:.0}/s \
             p50 {p50:.2} ms p99 {p99:.2} ms{cpu_note}  (n={}, pairs={}, {mode}, {} B payloads, errors={})",
            args.label,
            answered.ok,
            args.pairs,
            args.payload_bytes,
            sent.errors + answered.errors
        );
        emit_json(
            args.json.as_deref(),
            &json!({
                "label": args.label,
                "messages": answered.ok,
                "errors": sent.errors + answered.errors,
                "pairs": args.pairs,
                "payload_bytes": args.payload_bytes,
                "rate": args.rate,
                "seconds": elapsed.as_secs_f64(),
                "messages_per_second": end_to_end,
                "submitted_per_second": submitted_per_second,
                "submit_p50_ms": p50, "submit_p90_ms": p90, "submit_p99_ms": p99, "submit_max_ms": max,
                "server_cpu_us_per_message": cpu_us,
            }),
        )?;
        Ok(if sent.errors + answered.errors > 0 || (answered.ok as usize) < args.messages.div_ceil(args.pairs) * args.pairs {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}
