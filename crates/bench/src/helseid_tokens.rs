//! `helseid-tokens`: how many access tokens per second an authorization server issues to
//! machine clients the way HelseID's clients ask for them: the client_credentials grant,
//! private_key_jwt client authentication (RFC 7523) and a DPoP proof (RFC 9449) with the
//! server's nonce.
//!
//! Signing is kept out of the measurement: requests go in rounds, and each round's client
//! assertions and DPoP proofs are all made before its timer starts, so the timed part only
//! sends them, `--concurrency` workers with one keep-alive HTTP/1.1 connection each. A round
//! lasts about ten seconds, well inside the 30 s lifetime of its assertions. A proof the server
//! turns away for its nonce (`use_dpop_nonce`) is signed again with the new nonce and sent
//! again inside the timer; those retries are counted and reported.

use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use hyper::{
    Method, StatusCode,
    body::Bytes,
    header::{self, HeaderName, HeaderValue},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;

use helsenett_client::jose::{self, Es256Key};
pub(crate) use helsenett_client::{SystemClient as Client, load_clients};

use crate::http::{self, Connection, Reply, Target};

pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of a client assertion: HelseID accepts at most 60 s.
pub(crate) const ASSERTION_SECONDS: u64 = 30;
/// A round's length, when the server's rate is known: inside the assertions' lifetime.
const ROUND_SECONDS: f64 = 10.0;
/// How many times one request is signed again for a new nonce before it counts as an error.
pub(crate) const MAX_NONCE_RETRIES: u32 = 3;
/// Distinct error bodies kept for the report.
const ERROR_SAMPLES: usize = 5;

#[derive(clap::Args)]
pub struct Args {
    /// The issuer; discovery is read at {issuer}/.well-known/openid-configuration.
    #[arg(long)]
    issuer: String,
    /// The clients: JSON lines with client_id, scope and private_jwk (an EC P-256 JWK with d),
    /// as `helsenett synth` writes them to {data_dir}/helseid-clients.jsonl.
    #[arg(long)]
    clients: PathBuf,
    /// Requests go round-robin over at most this many clients from the top of the file.
    #[arg(long, default_value_t = 200)]
    max_clients: usize,
    /// The scope every token request asks for.
    #[arg(long, default_value = "nhn:msh/api")]
    scope: String,
    /// Concurrent requests: workers, each with its own connection and DPoP key.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Timed requests in all.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Requests sent first and not timed, so that connections are open and caches and JIT
    /// compilers warm; they also measure the rate that sizes the timed rounds.
    #[arg(long, default_value_t = 1_000)]
    warmup: usize,
    /// Threads of the loader while it sends (it signs on every core between rounds). One
    /// leaves the server the rest of the machine.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Name on the result line.
    #[arg(long, default_value = "helseid")]
    label: String,
    /// Append the result as one JSON line to this file (otherwise it goes to stdout as well).
    #[arg(long)]
    json: Option<PathBuf>,
    /// The server's process ids (comma-separated: all of a cluster's processes), to report the
    /// CPU time it spends per token in the timed rounds (Linux; read from /proc).
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
    /// Exit non-zero when more requests than this failed.
    #[arg(long, default_value_t = 0)]
    max_errors: u64,
}

/// What every worker needs to sign a request again.
struct Shared {
    issuer: String,
    token_endpoint: String,
    target: Target,
    /// The token endpoint's path, and what a new connection is checked with (discovery's).
    token_path: String,
    check_path: String,
    scope: String,
    clients: Vec<Client>,
    /// The latest DPoP-Nonce any response carried.
    nonce: Mutex<Option<String>>,
}

/// A signed token request, ready to send.
struct Prepared {
    client: usize,
    dpop: HeaderValue,
    body: Bytes,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

#[derive(Serialize)]
struct ProofClaims<'a> {
    jti: String,
    htm: &'static str,
    htu: &'a str,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    pub(crate) token_type: String,
    #[allow(dead_code)] // Required in the response, not used.
    expires_in: u64,
}

#[derive(Deserialize)]
pub(crate) struct ErrorResponse {
    pub(crate) error: String,
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

impl Shared {
    fn latest_nonce(&self) -> Option<String> {
        self.nonce.lock().expect("nonce lock").clone()
    }

    fn remember_nonce(&self, nonce: &str) {
        let mut latest = self.nonce.lock().expect("nonce lock");
        if latest.as_deref() != Some(nonce) {
            *latest = Some(nonce.to_owned());
        }
    }

    fn prepare(&self, client: usize, dpop_key: &Es256Key, nonce: Option<&str>) -> Result<Prepared> {
        let c = &self.clients[client];
        let iat = now();
        let assertion = c.key.sign(
            &json!({"alg": "ES256", "typ": "JWT", "kid": c.kid}),
            &AssertionClaims {
                iss: &c.id,
                sub: &c.id,
                aud: &self.issuer,
                iat,
                exp: iat + ASSERTION_SECONDS,
                jti: jose::jti(),
            },
        )?;
        let proof = dpop_key.sign(
            &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": dpop_key.public_jwk()}),
            &ProofClaims {
                jti: jose::jti(),
                htm: "POST",
                htu: &self.token_endpoint,
                iat,
                nonce,
            },
        )?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", &self.scope)
            .append_pair("client_id", &c.id)
            .append_pair("client_assertion_type", ASSERTION_TYPE)
            .append_pair("client_assertion", &assertion)
            .finish();
        Ok(Prepared {
            client,
            dpop: HeaderValue::try_from(proof)?,
            body: Bytes::from(body),
        })
    }

    async fn send(&self, connection: &mut Connection, request: &Prepared) -> Result<Reply> {
        let headers = [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            ),
            (header::ACCEPT, HeaderValue::from_static("application/json")),
            (HeaderName::from_static("dpop"), request.dpop.clone()),
        ];
        let reply = connection
            .send(&Method::POST, &self.token_path, &headers, &request.body)
            .await?;
        if let Some(nonce) = &reply.dpop_nonce {
            self.remember_nonce(nonce);
        }
        Ok(reply)
    }
}

fn wants_nonce(reply: &Reply) -> bool {
    reply.status == StatusCode::BAD_REQUEST
        && serde_json::from_slice::<ErrorResponse>(&reply.body)
            .is_ok_and(|e| e.error == "use_dpop_nonce")
}

fn describe(reply: &Reply) -> String {
    let body = String::from_utf8_lossy(&reply.body);
    let body: String = body.chars().take(400).collect();
    format!("HTTP {}: {body}", reply.status.as_u16())
}

/// Whether a reply is the token the benchmark asks for; the error to report when not.
fn check(reply: &Reply) -> Result<(), String> {
    if reply.status != StatusCode::OK {
        return Err(describe(reply));
    }
    match serde_json::from_slice::<TokenResponse>(&reply.body) {
        Ok(t) if t.token_type.eq_ignore_ascii_case("DPoP") && !t.access_token.is_empty() => Ok(()),
        Ok(t) => Err(format!(
            "HTTP 200 with token_type {:?} (expected DPoP): {}",
            t.token_type,
            describe(reply)
        )),
        Err(e) => Err(format!(
            "HTTP 200 but not a token response ({e}): {}",
            describe(reply)
        )),
    }
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) nonce_retries: u64,
    /// Microseconds from first send to the token, for every token.
    pub(crate) latencies: Vec<u32>,
    pub(crate) samples: BTreeMap<String, u64>,
}

/// Rate and latency quantiles of a timed phase.
pub(crate) struct Latency {
    pub(crate) per_second: f64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

impl Stats {
    /// The rate over `seconds` and the latency quantiles in ms (sorts the latencies).
    pub(crate) fn latency(&mut self, seconds: f64) -> Latency {
        self.latencies.sort_unstable();
        Latency {
            per_second: self.ok as f64 / seconds,
            p50: quantile_ms(&self.latencies, 0.50),
            p90: quantile_ms(&self.latencies, 0.90),
            p99: quantile_ms(&self.latencies, 0.99),
            max: self
                .latencies
                .last()
                .map_or(0.0, |&m| f64::from(m) / 1000.0),
        }
    }

    /// Counts one timed request: its latency from `started` when it got `expected`, else the
    /// error, labelled `what`.
    pub(crate) fn record(
        &mut self,
        what: &str,
        started: Instant,
        reply: Result<Reply>,
        expected: hyper::StatusCode,
    ) {
        match reply {
            Ok(reply) if reply.status == expected => {
                self.ok += 1;
                let micros = started.elapsed().as_micros();
                self.latencies
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Ok(reply) => self.error(format!(
                "{what}{}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            )),
            Err(e) => self.error(format!("{what}transport: {e:#}")),
        }
    }

    pub(crate) fn error(&mut self, what: String) {
        self.errors += 1;
        if let Some(n) = self.samples.get_mut(&what) {
            *n += 1;
        } else if self.samples.len() < ERROR_SAMPLES {
            self.samples.insert(what, 1);
        }
    }

    pub(crate) fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.nonce_retries += other.nonce_retries;
        self.latencies.extend(other.latencies);
        self.errors += other.errors - other.samples.values().sum::<u64>();
        for (what, n) in other.samples {
            for _ in 0..n {
                self.error(what.clone());
            }
        }
    }
}

/// One round of `count` requests spread over `connections`, one worker each, started as
/// `work(connection, its share, its seed)`; their stats merged, and the connections back.
pub(crate) async fn round<F, Fut>(
    connections: Vec<Connection>,
    count: usize,
    seed: usize,
    work: &F,
) -> Result<(std::time::Duration, Stats, Vec<Connection>)>
where
    F: Fn(Connection, usize, usize) -> Fut,
    Fut: std::future::Future<Output = (Connection, Stats)> + Send + 'static,
{
    let per = count.div_ceil(connections.len().max(1));
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(w, c)| tokio::spawn(work(c, per, seed + w)))
        .collect();
    let started = Instant::now();
    let mut stats = Stats::default();
    let mut back = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (c, s) = task.await?;
        back.push(c);
        stats.merge(s);
    }
    Ok((started.elapsed(), stats, back))
}

/// An untimed [`round`] that must not fail.
pub(crate) async fn warm_up<F, Fut>(
    label: &str,
    connections: Vec<Connection>,
    count: usize,
    work: &F,
) -> Result<Vec<Connection>>
where
    F: Fn(Connection, usize, usize) -> Fut,
    Fut: std::future::Future<Output = (Connection, Stats)> + Send + 'static,
{
    let (_, warm, connections) = round(connections, count, 0, work).await?;
    if warm.errors > 0 {
        for (what, n) in &warm.samples {
            eprintln!("helsenett-bench: {label}: warm-up error ({n}x): {what}");
        }
        bail!("{} warm-up requests failed", warm.errors);
    }
    Ok(connections)
}

/// CPU time (user and system) the processes have used so far, from /proc/PID/stat.
pub(crate) fn cpu_seconds(pids: &[u32]) -> Result<f64> {
    /// USER_HZ, the unit of /proc's times: 100 on every Linux ABI.
    const TICKS_PER_SECOND: f64 = 100.0;
    let mut ticks = 0u64;
    for pid in pids {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading the CPU time of server process {pid}"))?;
        // After the command name in parentheses: state is field 3, utime 14 and stime 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .context("an unreadable /proc/PID/stat")?
            .1
            .split_whitespace()
            .collect();
        for field in [11, 12] {
            ticks += fields
                .get(field)
                .and_then(|v| v.parse::<u64>().ok())
                .context("an unreadable /proc/PID/stat")?;
        }
    }
    Ok(ticks as f64 / TICKS_PER_SECOND)
}

/// One worker's share of a round: sends its requests one after another on its connection.
async fn work(
    shared: Arc<Shared>,
    dpop_key: Arc<Es256Key>,
    mut connection: Connection,
    requests: Vec<Prepared>,
) -> (Connection, Stats) {
    let mut stats = Stats {
        latencies: Vec::with_capacity(requests.len()),
        ..Stats::default()
    };
    for first in requests {
        let started = Instant::now();
        let mut request = first;
        let mut retries = 0;
        let outcome = loop {
            match shared.send(&mut connection, &request).await {
                Err(e) => break Err(format!("transport: {e:#}")),
                Ok(reply) if wants_nonce(&reply) && retries < MAX_NONCE_RETRIES => {
                    retries += 1;
                    stats.nonce_retries += 1;
                    let nonce = shared.latest_nonce();
                    match shared.prepare(request.client, &dpop_key, nonce.as_deref()) {
                        Ok(again) => request = again,
                        Err(e) => break Err(format!("signing: {e:#}")),
                    }
                }
                Ok(reply) => break check(&reply),
            }
        };
        match outcome {
            Ok(()) => {
                stats.ok += 1;
                let micros = started.elapsed().as_micros();
                stats
                    .latencies
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Err(what) => stats.error(what),
        }
    }
    (connection, stats)
}

struct Loader {
    shared: Arc<Shared>,
    dpop_keys: Vec<Arc<Es256Key>>,
    connections: Vec<Connection>,
    /// Requests made so far, for the round-robin over clients.
    sent: usize,
}

impl Loader {
    /// Signs `count` requests, spread over the workers, on every core.
    fn prepare(&self, count: usize) -> Result<Vec<Vec<Prepared>>> {
        let workers = self.dpop_keys.len();
        let nonce = self.shared.latest_nonce();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = workers.div_ceil(threads);
        let start = self.sent;
        let (shared, dpop_keys) = (&*self.shared, &self.dpop_keys);
        let clients = shared.clients.len();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .step_by(per_thread)
                .map(|first| {
                    let nonce = nonce.as_deref();
                    scope.spawn(move || {
                        (first..(first + per_thread).min(workers))
                            .map(|w| {
                                (w..count)
                                    .step_by(workers)
                                    .map(|k| {
                                        let client = (start + k) % clients;
                                        shared.prepare(client, &dpop_keys[w], nonce)
                                    })
                                    .collect::<Result<Vec<_>>>()
                            })
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            let mut batches = Vec::with_capacity(workers);
            for handle in handles {
                batches.extend(handle.join().expect("a signing thread panicked")?);
            }
            Ok(batches)
        })
    }

    /// Sends one round of `count` requests: signed first, then timed while sent.
    fn round(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        count: usize,
    ) -> Result<(Duration, Stats)> {
        let batches = self.prepare(count)?;
        self.sent += count;
        let shared = &self.shared;
        let dpop_keys = &self.dpop_keys;
        let connections = &mut self.connections;
        runtime.block_on(async {
            let started = Instant::now();
            let tasks: Vec<_> = connections
                .drain(..)
                .zip(batches)
                .zip(dpop_keys)
                .map(|((connection, batch), key)| {
                    tokio::spawn(work(shared.clone(), key.clone(), connection, batch))
                })
                .collect();
            let mut stats = Stats::default();
            for task in tasks {
                let (connection, worker) = task.await?;
                connections.push(connection);
                stats.merge(worker);
            }
            Ok((started.elapsed(), stats))
        })
    }
}

/// Asks for a token without a nonce, as a client does first: the server's nonce, if it demands
/// one, comes back with `use_dpop_nonce`.
async fn first_nonce(shared: &Shared, dpop_key: &Es256Key) -> Result<bool> {
    let mut connection = Connection::open(shared.target.clone()).await?;
    let request = shared.prepare(0, dpop_key, None)?;
    let reply = shared.send(&mut connection, &request).await?;
    if wants_nonce(&reply) {
        if reply.dpop_nonce.is_none() {
            bail!("the server answered use_dpop_nonce without a DPoP-Nonce header");
        }
        return Ok(true);
    }
    check(&reply).map_err(|e| anyhow::anyhow!("the first token request failed: {e}"))?;
    Ok(false)
}

/// The issuer's discovery: its issuer identifier and token endpoint, and its own URL.
async fn discover(issuer: &str) -> Result<(String, String, Url)> {
    let url = Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
    .with_context(|| format!("the issuer {issuer:?} is not a URL"))?;
    let reply = http::get(&url)
        .await
        .with_context(|| format!("reading {url}"))?;
    if reply.status != StatusCode::OK {
        bail!("{url}: {}", describe(&reply));
    }
    #[derive(Deserialize)]
    struct Discovery {
        issuer: String,
        token_endpoint: String,
    }
    let d: Discovery =
        serde_json::from_slice(&reply.body).with_context(|| format!("{url}: not discovery"))?;
    if d.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        eprintln!(
            "helsenett-bench: note: discovery names the issuer {:?}; assertions use it as aud",
            d.issuer
        );
    }
    Ok((d.issuer, d.token_endpoint, url))
}

/// A bearer token for `scope` from the issuer's token endpoint, for a client that may take one.
pub(crate) async fn bearer_token(issuer: &str, client: &Client, scope: &str) -> Result<String> {
    let token_url = Url::parse(&format!("{issuer}/connect/token"))?;
    let mut header = json!({ "alg": "ES256", "typ": "JWT" });
    if let Some(kid) = &client.kid {
        header["kid"] = kid.as_str().into();
    }
    let claims = json!({ "iss": client.id, "sub": client.id, "aud": issuer, "iat": now(),
                         "exp": now() + ASSERTION_SECONDS, "jti": jose::jti() });
    let assertion = client.key.sign(&header, &claims)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
            ("scope", scope),
        ])
        .finish();
    let mut connection = Connection::open(Target::resolve(&token_url).await?).await?;
    let form = (
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let reply = connection
        .send(
            &Method::POST,
            &http::path_of(&token_url),
            &[form],
            &Bytes::from(body),
        )
        .await?;
    if reply.status != StatusCode::OK {
        bail!(
            "the token endpoint answered {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    let token: TokenResponse = serde_json::from_slice(&reply.body)?;
    Ok(token.access_token)
}

/// The issuer without a trailing slash, and the node's base URL (the issuer without /helseid),
/// where the APIs beside HelseID are served.
pub(crate) fn issuer_and_base(issuer: &str) -> Result<(String, String)> {
    let issuer = issuer.trim_end_matches('/').to_owned();
    let base = issuer
        .strip_suffix("/helseid")
        .context("the issuer must end in /helseid")?
        .to_owned();
    Ok((issuer, base))
}

/// The loader's runtime: one thread drives everything on the current thread.
pub(crate) fn loader_runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    Ok(if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    })
}

/// The value at quantile `q` of sorted `values` (nearest rank), in milliseconds.
pub(crate) fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.concurrency == 0 || args.requests == 0 || args.threads == 0 {
        bail!("--concurrency, --requests and --threads must be at least 1");
    }
    let clients = load_clients(&args.clients, args.max_clients)?;
    let runtime = loader_runtime(args.threads)?;
    let label = &args.label;

    let (issuer, token_endpoint, discovery) = runtime.block_on(discover(&args.issuer))?;
    let token_url = Url::parse(&token_endpoint).context("the token_endpoint is not a URL")?;
    let target = runtime.block_on(Target::resolve(&token_url))?;
    let same_origin = token_url.origin() == discovery.origin();
    let shared = Arc::new(Shared {
        issuer,
        token_endpoint,
        target,
        token_path: http::path_of(&token_url),
        // A connection is checked with a request every server answers without work.
        check_path: http::path_of(if same_origin { &discovery } else { &token_url }),
        scope: args.scope.clone(),
        clients,
        nonce: Mutex::new(None),
    });
    let dpop_keys = (0..args.concurrency)
        .map(|_| Es256Key::generate().map(Arc::new))
        .collect::<Result<Vec<_>>>()?;

    let demands_nonce = runtime.block_on(first_nonce(&shared, &dpop_keys[0]))?;
    eprintln!(
        "helsenett-bench: {label}: token endpoint {}, {} clients, DPoP nonce {}",
        shared.token_endpoint,
        shared.clients.len(),
        if demands_nonce {
            "demanded"
        } else {
            "not demanded"
        }
    );
    eprintln!(
        "helsenett-bench: {label}: client assertions and DPoP proofs are signed before each \
         round's timer starts; only sending and receiving is timed"
    );

    // One at a time, each answered before the next opens: a server that hands connections to
    // worker processes (node's cluster) then spreads them evenly rather than giving a burst of
    // them to whichever worker takes the first.
    let connections = runtime.block_on(async {
        let mut connections = Vec::with_capacity(args.concurrency);
        for _ in 0..args.concurrency {
            let mut connection = Connection::open(shared.target.clone()).await?;
            connection
                .send(&Method::GET, &shared.check_path, &[], &Bytes::new())
                .await?;
            connections.push(connection);
        }
        anyhow::Ok(connections)
    })?;
    let mut loader = Loader {
        shared,
        dpop_keys,
        connections,
        sent: 0,
    };

    let mut rate = None;
    let mut warmup_tokens = 0;
    if args.warmup > 0 {
        let (elapsed, warm) = loader.round(&runtime, args.warmup)?;
        eprintln!(
            "helsenett-bench: {label}: warm-up: {} tokens in {:.2} s, {} errors",
            warm.ok,
            elapsed.as_secs_f64(),
            warm.errors
        );
        for (what, n) in &warm.samples {
            eprintln!("helsenett-bench: {label}: warm-up error ({n}x): {what}");
        }
        warmup_tokens = warm.ok;
        if warm.ok > 0 {
            rate = Some(warm.ok as f64 / elapsed.as_secs_f64());
        }
    }

    let mut total = Stats::default();
    let mut timed = Duration::ZERO;
    let mut server_cpu = 0.0;
    let mut remaining = args.requests;
    let mut rounds = 0;
    while remaining > 0 {
        let size = match rate {
            Some(rate) => (rate * ROUND_SECONDS) as usize,
            None => args.concurrency * 16,
        }
        .clamp(args.concurrency.min(remaining), remaining);
        let cpu_before = cpu_seconds(&args.server_pids)?;
        let (elapsed, stats) = loader.round(&runtime, size)?;
        // The server is idle while the round is signed, so this is the timed part's CPU time.
        server_cpu += cpu_seconds(&args.server_pids)? - cpu_before;
        if stats.ok > 0 {
            rate = Some(stats.ok as f64 / elapsed.as_secs_f64());
        }
        rounds += 1;
        eprintln!(
            "helsenett-bench: {label}: round {rounds}: {} tokens in {:.2} s ({:.0}/s), {} errors",
            stats.ok,
            elapsed.as_secs_f64(),
            stats.ok as f64 / elapsed.as_secs_f64(),
            stats.errors
        );
        timed += elapsed;
        total.merge(stats);
        remaining -= size;
    }

    let seconds = timed.as_secs_f64();
    let Latency {
        per_second: tokens_per_second,
        p50,
        p90,
        p99,
        max,
    } = total.latency(seconds);
    let reconnects: u64 = loader.connections.iter().map(|c| c.reconnects).sum();

    for (what, n) in &total.samples {
        eprintln!("helsenett-bench: {label}: error ({n}x): {what}");
    }
    let cpu_ms_per_token = (!args.server_pids.is_empty() && total.ok > 0)
        .then(|| 1000.0 * server_cpu / total.ok as f64);
    let cpu_note =
        cpu_ms_per_token.map_or(String::new(), |ms| format!("  server CPU {ms:.2} ms/token"));
    println!(
        "{label}: {tokens_per_second:.0} tokens/s  p50 {p50:.1} ms  p99 {p99:.1} ms{cpu_note}  \
         (n={}, concurrency={}, errors={}, nonce retries={})",
        args.requests, args.concurrency, total.errors, total.nonce_retries
    );
    let result = json!({
        "label": label,
        "issuer": loader.shared.issuer,
        "token_endpoint": loader.shared.token_endpoint,
        "requests": args.requests,
        "warmup_tokens": warmup_tokens,
        "tokens": total.ok,
        "errors": total.errors,
        "nonce_retries": total.nonce_retries,
        "reconnects": reconnects,
        "concurrency": args.concurrency,
        "clients": loader.shared.clients.len(),
        "loader_threads": args.threads,
        "rounds": rounds,
        "seconds": seconds,
        "tokens_per_second": tokens_per_second,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "max_ms": max,
        "server_cpu_seconds": (!args.server_pids.is_empty()).then_some(server_cpu),
        "server_cpu_ms_per_token": cpu_ms_per_token,
        "error_samples": total.samples.keys().collect::<Vec<_>>(),
    });
    emit_json(args.json.as_deref(), &result)?;
    Ok(if total.errors > args.max_errors {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Appends the result line to `path`, or prints it when there is none.
pub(crate) fn emit_json(path: Option<&Path>, result: &serde_json::Value) -> Result<()> {
    match path {
        Some(path) => {
            let mut file = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            writeln!(file, "{result}")?;
        }
        None => println!("{result}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let values: Vec<u32> = (1..=100).map(|v| v * 1000).collect();
        assert_eq!(quantile_ms(&values, 0.50), 50.0);
        assert_eq!(quantile_ms(&values, 0.99), 99.0);
        assert_eq!(quantile_ms(&values, 1.0), 100.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn merged_errors_keep_counts_and_a_few_samples() {
        let mut a = Stats::default();
        a.error("x".into());
        let mut b = Stats::default();
        b.error("x".into());
        for i in 0..10 {
            b.error(format!("e{i}"));
        }
        a.merge(b);
        assert_eq!(a.errors, 12);
        assert_eq!(a.samples.len(), ERROR_SAMPLES);
        assert_eq!(a.samples["x"], 2);
    }
}
