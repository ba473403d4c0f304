//! `helseid-verify`: how many requests per second a resource server checks the way every
//! helsenett API does, with HelseID's [`Guard`]: the access token's signature against HelseID's
//! keys, its issuer, expiry, audience and scope, the DPoP proof (signature, `htm`, `htu`, `iat`,
//! `ath`, the key's thumbprint against `cnf.jkt`), the proof's `jti` written to the replay log in
//! the database, and the token looked up in the revocation list.
//!
//! In process, with no HTTP: the store of a data dir `helsenett synth` made, HelseID started on
//! it, tokens obtained from its router (client_credentials, private_key_jwt, DPoP with the
//! nonce), and one DPoP proof signed per request before the timer starts. The timed part is
//! only `Guard::check`, from `--concurrency` tasks on a multi-thread runtime.
//!
//! `--write-pairs FILE` writes the same (access token, proof) pairs and HelseID's JWKS for
//! `bench/helseid/verify.mjs`, so that another verifier checks exactly this input.

use std::{
    fs,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use axum::{
    Router,
    body::{Body, to_bytes},
    http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header},
};
use helsenett_helseid::{Guard, HelseId, Settings};
use helsenett_store::Store;
use serde::Serialize;
use serde_json::{Value, json};
use tower::ServiceExt;

use helsenett_client::jose::{self, Es256Key};

use crate::helseid_tokens::{
    self, ASSERTION_SECONDS, ASSERTION_TYPE, Client, ErrorResponse, Latency, MAX_NONCE_RETRIES,
    Stats, TokenResponse, cpu_seconds,
};

/// The node's public URL: nothing is sent there, it only names the issuer and `htu`.
const PUBLIC_URL: &str = "http://bench.invalid";
/// The API the requests are for: the message exchange's, as its handlers check it.
const API_PATH: &str = "/msh/Messages";
const AUDIENCE: &str = "nhn:msh";
const SCOPE: &str = "nhn:msh/api";
const ACCESS_TOKEN_SECONDS: i64 = 300;
/// Largest response body read from HelseID's router.
const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// A data dir `helsenett synth` made (its SQLite store and helseid-clients.jsonl).
    #[arg(long)]
    data_dir: PathBuf,
    /// Access tokens to obtain (one DPoP key each, round-robin over the clients); the requests
    /// go round-robin over them.
    #[arg(long, default_value_t = 200)]
    tokens: usize,
    /// Timed verifications.
    #[arg(long, default_value_t = 50_000)]
    requests: usize,
    /// Verifications first, not timed, with proofs of their own: the key set is loaded and the
    /// database's pages and the allocator warm.
    #[arg(long, default_value_t = 2_000)]
    warmup: usize,
    /// Concurrent checks: tasks, each checking its share one after another.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Worker threads of the runtime (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Name on the result line.
    #[arg(long, default_value = "helsenett guard")]
    label: String,
    /// Append the result as one JSON line to this file (otherwise it goes to stdout as well).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the tokens, the proofs (warm-up and timed) and HelseID's JWKS to this file as JSON,
    /// for bench/helseid/verify.mjs. Written after the timed part.
    #[arg(long)]
    write_pairs: Option<PathBuf>,
}

/// An access token and the DPoP key it is bound to.
struct Token {
    access_token: String,
    client_id: String,
    dpop_key: Es256Key,
}

#[derive(Serialize)]
struct ProofClaims<'a> {
    jti: String,
    htm: &'static str,
    htu: &'a str,
    iat: u64,
    ath: &'a str,
}

/// One request as the guard sees it: its headers, and which token it carries.
struct Prepared {
    token: usize,
    headers: HeaderMap,
}

/// Sends one request through HelseID's router, in process.
async fn send(app: &Router, request: Request<Body>) -> Result<(StatusCode, HeaderMap, Vec<u8>)> {
    let response = app.clone().oneshot(request).await?;
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, MAX_BODY_BYTES).await?;
    Ok((parts.status, parts.headers, body.to_vec()))
}

/// A DPoP-bound token for `client`: client_credentials with private_key_jwt and a proof, signed
/// again with the server's nonce when it asks for one (`nonce` keeps the latest).
async fn obtain_token(
    id: &HelseId,
    app: &Router,
    client: &Client,
    nonce: &mut Option<String>,
) -> Result<Token> {
    let dpop_key = Es256Key::generate()?;
    let endpoint = id.endpoints().token.as_str();
    let path = id.endpoints().token.path().to_owned();
    for _ in 0..=MAX_NONCE_RETRIES {
        let iat = helseid_tokens::now();
        let assertion = client.key.sign(
            &json!({"alg": "ES256", "typ": "JWT", "kid": client.kid}),
            &json!({
                "iss": client.id, "sub": client.id, "aud": id.issuer(),
                "iat": iat, "exp": iat + ASSERTION_SECONDS, "jti": jose::jti(),
            }),
        )?;
        let mut claims = json!({"jti": jose::jti(), "htm": "POST", "htu": endpoint, "iat": iat});
        if let Some(nonce) = nonce.as_deref() {
            claims["nonce"] = json!(nonce);
        }
        let proof = dpop_key.sign(
            &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": dpop_key.public_jwk()}),
            &claims,
        )?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", SCOPE)
            .append_pair("client_id", &client.id)
            .append_pair("client_assertion_type", ASSERTION_TYPE)
            .append_pair("client_assertion", &assertion)
            .finish();
        let request = Request::post(&path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .header("dpop", proof)
            .body(Body::from(body))?;
        let (status, headers, body) = send(app, request).await?;
        if let Some(fresh) = headers.get("dpop-nonce") {
            *nonce = Some(fresh.to_str()?.to_owned());
        }
        if status == StatusCode::OK {
            let token: TokenResponse = serde_json::from_slice(&body)
                .context("HelseID answered 200 without a token response")?;
            if !token.token_type.eq_ignore_ascii_case("DPoP") {
                bail!("HelseID issued a {} token, not DPoP", token.token_type);
            }
            return Ok(Token {
                access_token: token.access_token,
                client_id: client.id.clone(),
                dpop_key,
            });
        }
        let wants_nonce = status == StatusCode::BAD_REQUEST
            && serde_json::from_slice::<ErrorResponse>(&body)
                .is_ok_and(|e| e.error == "use_dpop_nonce");
        if !wants_nonce {
            bail!(
                "HelseID refused {}'s token request: HTTP {}: {}",
                client.id,
                status.as_u16(),
                String::from_utf8_lossy(&body)
            );
        }
    }
    bail!("HelseID asked for a new DPoP nonce {MAX_NONCE_RETRIES} times in a row")
}

/// Signs `count` DPoP proofs for `GET {htu}`, proof `k` for token `(first + k) % tokens`, on
/// every core; returns (token, proof) pairs.
fn sign_proofs(
    tokens: &[Token],
    aths: &[String],
    htu: &str,
    first: usize,
    count: usize,
) -> Result<Vec<(usize, String)>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = count.div_ceil(threads).max(1);
    let iat = helseid_tokens::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .step_by(per_thread)
            .map(|start| {
                scope.spawn(move || {
                    (start..(start + per_thread).min(count))
                        .map(|k| {
                            let t = (first + k) % tokens.len();
                            let key = &tokens[t].dpop_key;
                            let proof = key.sign(
                                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()}),
                                &ProofClaims {
                                    jti: jose::jti(),
                                    htm: "GET",
                                    htu,
                                    iat,
                                    ath: &aths[t],
                                },
                            )?;
                            Ok((t, proof))
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut pairs = Vec::with_capacity(count);
        for handle in handles {
            pairs.extend(handle.join().expect("a signing thread panicked")?);
        }
        Ok(pairs)
    })
}

/// The headers of each request: `Authorization: DPoP {token}` and `DPoP: {proof}`.
fn prepare(authorizations: &[HeaderValue], pairs: &[(usize, String)]) -> Result<Vec<Prepared>> {
    pairs
        .iter()
        .map(|(t, proof)| {
            let mut headers = HeaderMap::with_capacity(2);
            headers.insert(header::AUTHORIZATION, authorizations[*t].clone());
            headers.insert("dpop", HeaderValue::from_str(proof)?);
            Ok(Prepared { token: *t, headers })
        })
        .collect()
}

/// One task's share: checks its requests one after another, timing each.
async fn work(guard: Guard, clients: Arc<Vec<String>>, requests: Vec<Prepared>) -> Stats {
    let uri = Uri::from_static(API_PATH);
    let mut stats = Stats {
        latencies: Vec::with_capacity(requests.len()),
        ..Stats::default()
    };
    for request in requests {
        let started = Instant::now();
        let checked = guard
            .check(&Method::GET, &uri, &request.headers, AUDIENCE, SCOPE)
            .await;
        let micros = started.elapsed().as_micros();
        match checked {
            Ok(principal) if principal.client_id == clients[request.token] => {
                stats.ok += 1;
                stats
                    .latencies
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Ok(principal) => stats.error(format!(
                "the guard named client {:?}, but the token is {:?}'s",
                principal.client_id, clients[request.token]
            )),
            Err(denied) => stats.error(format!(
                "HTTP {} {}: {}",
                denied.status.as_u16(),
                denied.error,
                denied.description
            )),
        }
    }
    stats
}

/// Checks every request from `concurrency` tasks; the time from the first to the last.
async fn phase(
    guard: &Guard,
    clients: &Arc<Vec<String>>,
    requests: Vec<Prepared>,
    concurrency: usize,
) -> Result<(Duration, Stats)> {
    let mut shares: Vec<Vec<Prepared>> = (0..concurrency)
        .map(|_| Vec::with_capacity(requests.len().div_ceil(concurrency)))
        .collect();
    for (k, request) in requests.into_iter().enumerate() {
        shares[k % concurrency].push(request);
    }
    let started = Instant::now();
    let tasks: Vec<_> = shares
        .into_iter()
        .map(|share| tokio::spawn(work(guard.clone(), clients.clone(), share)))
        .collect();
    let mut stats = Stats::default();
    for task in tasks {
        stats.merge(task.await?);
    }
    Ok((started.elapsed(), stats))
}

fn write_pairs(
    path: &Path,
    id: &HelseId,
    jwks: &Value,
    htu: &str,
    tokens: &[Token],
    warmup: &[(usize, String)],
    timed: &[(usize, String)],
) -> Result<()> {
    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let pairs = json!({
        "issuer": id.issuer(),
        "audience": AUDIENCE,
        "scope": SCOPE,
        "htm": "GET",
        "htu": htu,
        "jwks": jwks,
        "tokens": tokens
            .iter()
            .map(|t| json!({"access_token": t.access_token, "client_id": t.client_id}))
            .collect::<Vec<_>>(),
        "warmup": warmup,
        "timed": timed,
    });
    serde_json::to_writer(&mut out, &pairs)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.concurrency == 0 || args.requests == 0 || args.tokens == 0 {
        bail!("--concurrency, --requests and --tokens must be at least 1");
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        builder.worker_threads(threads);
    }
    let runtime = builder.enable_all().build()?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let label = &args.label;
    let clients_file = args.data_dir.join("helseid-clients.jsonl");
    let clients = helseid_tokens::load_clients(&clients_file, args.tokens)?;

    let (id, tokens, jwks) = runtime.block_on(async {
        let store = Store::open_sqlite(&args.data_dir)
            .await
            .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
        let id = HelseId::start(
            store,
            Settings {
                public_url: PUBLIC_URL.parse()?,
                access_token_seconds: ACCESS_TOKEN_SECONDS,
                admin_token: None,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("starting HelseID: {e}"))?;
        let app = id.router();
        let mut nonce = None;
        let mut tokens = Vec::with_capacity(args.tokens);
        for k in 0..args.tokens {
            tokens.push(obtain_token(&id, &app, &clients[k % clients.len()], &mut nonce).await?);
        }
        let jwks_path = id.endpoints().jwks.path().to_owned();
        let (status, _, body) = send(&app, Request::get(jwks_path).body(Body::empty())?).await?;
        if status != StatusCode::OK {
            bail!("HelseID's JWKS answered HTTP {}", status.as_u16());
        }
        let jwks: Value = serde_json::from_slice(&body).context("HelseID's JWKS is not JSON")?;
        anyhow::Ok((id, tokens, jwks))
    })?;
    let guard = id.guard();
    let client_ids = Arc::new(
        tokens
            .iter()
            .map(|t| t.client_id.clone())
            .collect::<Vec<_>>(),
    );
    let htu = format!("{PUBLIC_URL}{API_PATH}");
    let aths: Vec<String> = tokens
        .iter()
        .map(|t| jose::b64url(&openssl::sha::sha256(t.access_token.as_bytes())))
        .collect();
    let authorizations = tokens
        .iter()
        .map(|t| HeaderValue::try_from(format!("DPoP {}", t.access_token)))
        .collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "helsenett-bench: {label}: {} DPoP-bound tokens from {} clients (issuer {}, scope {SCOPE})",
        tokens.len(),
        clients.len().min(tokens.len()),
        id.issuer()
    );

    let warmup_pairs = sign_proofs(&tokens, &aths, &htu, 0, args.warmup)?;
    let timed_pairs = sign_proofs(&tokens, &aths, &htu, args.warmup, args.requests)?;
    let warm_requests = prepare(&authorizations, &warmup_pairs)?;
    let timed_requests = prepare(&authorizations, &timed_pairs)?;
    eprintln!(
        "helsenett-bench: {label}: {} DPoP proofs (GET {htu}) signed before the timer; only \
         Guard::check is timed, and it writes every proof's jti to the replay log in the database",
        args.warmup + args.requests
    );

    let pid = [std::process::id()];
    let (warmup_stats, timed, stats, cpu) = runtime.block_on(async {
        let (warm_time, warm) = phase(&guard, &client_ids, warm_requests, args.concurrency).await?;
        if args.warmup > 0 {
            eprintln!(
                "helsenett-bench: {label}: warm-up: {} verifications in {:.2} s, {} errors",
                warm.ok,
                warm_time.as_secs_f64(),
                warm.errors
            );
        }
        let cpu_before = cpu_seconds(&pid)?;
        let (timed, stats) = phase(&guard, &client_ids, timed_requests, args.concurrency).await?;
        let cpu = cpu_seconds(&pid)? - cpu_before;
        anyhow::Ok((warm, timed, stats, cpu))
    })?;

    let mut total = stats;
    let seconds = timed.as_secs_f64();
    let Latency {
        per_second,
        p50,
        p90,
        p99,
        max,
    } = total.latency(seconds);
    let cpu_ms = (total.ok > 0).then(|| 1000.0 * cpu / total.ok as f64);
    for (what, n) in warmup_stats.samples.iter().chain(&total.samples) {
        eprintln!("helsenett-bench: {label}: error ({n}x): {what}");
    }
    let cpu_note = cpu_ms.map_or(String::new(), |ms| format!("  CPU {ms:.3} ms/verification"));
    println!(
        "{label}: {per_second:.0} verifications/s  p50 {p50:.2} ms  p99 {p99:.2} ms{cpu_note}  \
         (n={}, concurrency={}, threads={threads}, errors={})",
        args.requests, args.concurrency, total.errors
    );
    let result = json!({
        "label": label,
        "kind": "verify",
        "issuer": id.issuer(),
        "requests": args.requests,
        "warmup": args.warmup,
        "verifications": total.ok,
        "errors": total.errors,
        "warmup_errors": warmup_stats.errors,
        "tokens": tokens.len(),
        "concurrency": args.concurrency,
        "threads": threads,
        "seconds": seconds,
        "verifications_per_second": per_second,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "max_ms": max,
        "cpu_seconds": cpu,
        "cpu_ms_per_verification": cpu_ms,
        "replay_log": "database",
        "error_samples": total.samples.keys().collect::<Vec<_>>(),
    });
    helseid_tokens::emit_json(args.json.as_deref(), &result)?;
    if let Some(path) = &args.write_pairs {
        write_pairs(path, &id, &jwks, &htu, &tokens, &warmup_pairs, &timed_pairs)?;
        eprintln!(
            "helsenett-bench: {label}: wrote {} tokens, {} proofs and the JWKS to {}",
            tokens.len(),
            warmup_pairs.len() + timed_pairs.len(),
            path.display()
        );
    }
    // The store and the replay log's writer go with the runtime.
    drop((guard, id));
    Ok(if total.errors + warmup_stats.errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
