//! Kjernejournal over HTTP, as health personnel read the summary care record: `POST
//! /kjernejournal/api/v1/record` with a bearer token from HelseID's authorization code flow
//! (PKCE, the built-in test identity provider, a `private_key_jwt` client assertion), many
//! requests in flight on keep-alive connections. Every read goes through the ledger: access
//! decided, the record read and a hash-chained audit record appended in one transaction.
//!
//! Two steps, so that the script registers the EPJ clients with `helsenett helseid client add`
//! in between:
//!
//! - `plan` picks the readers from the store: authorised GPs, each signing in through a client
//!   of their GP office and reading patients of their own list, and a few authorised doctors and
//!   nurses at hospitals who read random persons in an emergency ("break the glass"). It makes
//!   a key for each client and writes the plan, the clients' public JWK sets and a
//!   `clients.tsv` to register.
//! - `load` signs everyone in, reads the mix (by default 80 % GPs, 20 % emergency), signs
//!   everyone in again before their tokens expire, and checks that every answer is a 200 with a
//!   Bundle and that the store holds one new audit record per read.

use std::{
    collections::{BTreeMap, HashSet},
    fs,
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use helsenett_client::jose::{Es256Key, PrivateJwk, b64url, jti};
use helsenett_store::{Store, StoreTarget, with_pool};
use hyper::{
    Method, StatusCode,
    body::Bytes,
    header::{self, HeaderName, HeaderValue},
};
use openssl::{
    bn::{BigNum, BigNumContext},
    ec::{EcGroup, EcKey},
    nid::Nid,
    sha::sha256,
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::{
    grunndata_http::memory,
    helseid_tokens::{
        ASSERTION_SECONDS, ASSERTION_TYPE, Latency, Stats, cpu_seconds, emit_json, issuer_and_base,
        loader_runtime, now, quantile_ms, round,
    },
    http::{self, Connection, Reply, Target},
};

const RECORD: &str = "/kjernejournal/api/v1/record";
const SCOPE: &str = "openid nhn:kjernejournal/api";
/// The redirect URI the script registers the clients with.
const REDIRECT: &str = "http://127.0.0.1/callback";
const GP_REASON: &str = "konsultasjon";
const EMERGENCY_REASON: &str = "akutt innleggelse, pasienten kan ikke svare";
/// The professions of the emergency readers: doctors and nurses.
const EMERGENCY_PROFESSIONS: &str = "('LE', 'SP')";
/// Authorised today, as the tests' `gp()` asks: an open authorisation and no suspension.
const AUTHORISED: &str = "NOT EXISTS (SELECT 1 FROM hpr_suspension s WHERE s.hpr = hp.hpr)
    AND EXISTS (SELECT 1 FROM hpr_approval a WHERE a.hpr = hp.hpr
                AND a.authorisation = '1' AND a.valid_to IS NULL)";

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    step: Step,
}

#[derive(Subcommand)]
enum Step {
    /// Picks the readers and their patients from the store and makes the clients' keys.
    Plan(PlanArgs),
    /// Signs the readers in and reads records over HTTP.
    Load(LoadArgs),
}

/// The store the server runs on.
#[derive(clap::Args)]
struct StoreArgs {
    /// The data dir (the embedded store, unless --database-url names PostgreSQL).
    #[arg(long)]
    data_dir: PathBuf,
    /// PostgreSQL's URL, when the server runs on it.
    #[arg(long)]
    database_url: Option<String>,
}

impl StoreArgs {
    fn target(&self) -> StoreTarget {
        StoreTarget::new(&self.data_dir, self.database_url.as_deref())
    }
}

#[derive(clap::Args)]
struct PlanArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Where the plan, the JWK sets and clients.tsv go.
    #[arg(long)]
    out: PathBuf,
    /// GPs reading patients of their own lists.
    #[arg(long, default_value_t = 50)]
    gps: usize,
    /// Doctors and nurses at hospitals reading random persons in an emergency.
    #[arg(long, default_value_t = 5)]
    emergency_readers: usize,
    /// Random persons the emergency readers read.
    #[arg(long, default_value_t = 100_000)]
    persons: usize,
    /// Seed of the choice of readers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::Args)]
struct LoadArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The node's HelseID issuer, e.g. http://127.0.0.1:8080/helseid; Kjernejournal is beside it.
    #[arg(long)]
    issuer: String,
    /// The plan `plan` wrote.
    #[arg(long)]
    plan: PathBuf,
    /// Concurrent requests, each worker on its own connection.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Timed reads in all.
    #[arg(long, default_value_t = 200_000)]
    requests: usize,
    /// Untimed reads first.
    #[arg(long, default_value_t = 20_000)]
    warmup: usize,
    /// The share of reads that are emergency reads of random persons; the rest are GPs reading
    /// patients of their own lists.
    #[arg(long, default_value_t = 0.2)]
    emergency_share: f64,
    /// Send the timed reads at this rate (reads a second, spread over the workers) rather than
    /// as fast as they are answered; latency then counts from when each read was due, so that
    /// a server falling behind shows as latency.
    #[arg(long)]
    rate: Option<f64>,
    /// Threads of the loader; one leaves the server the rest of the machine.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The server's process id, to report its CPU time per read and its memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Append the result as one JSON line to this file (otherwise it goes to stdout as well).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Name on the result line.
    #[arg(long, default_value = "kjernejournal-http")]
    label: String,
}

/// Who reads what, as `plan` wrote it.
#[derive(Serialize, Deserialize)]
struct Plan {
    clients: Vec<PlanClient>,
    /// GPs, each with the patients of their lists.
    gps: Vec<Reader>,
    /// Emergency readers, without patients of their own.
    emergency: Vec<Reader>,
    /// The persons emergency readers read.
    persons: Vec<String>,
}

/// An EPJ client: the line format of `helsenett synth`'s clients file.
#[derive(Serialize, Deserialize)]
struct PlanClient {
    client_id: String,
    orgnr_parent: String,
    private_jwk: Value,
}

#[derive(Serialize, Deserialize)]
struct Reader {
    pid: String,
    client_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    patients: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.step {
        Step::Plan(args) => {
            let runtime = loader_runtime(1)?;
            runtime.block_on(plan(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Step::Load(args) => load(args),
    }
}

/// A new P-256 key as a private JWK with its RFC 7638 thumbprint as kid, and the public JWK.
fn new_key() -> Result<(Value, Value)> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = EcKey::generate(&group)?;
    let mut ctx = BigNumContext::new()?;
    let (mut x, mut y) = (BigNum::new()?, BigNum::new()?);
    key.public_key()
        .affine_coordinates(&group, &mut x, &mut y, &mut ctx)?;
    let (x, y) = (b64url(&x.to_vec_padded(32)?), b64url(&y.to_vec_padded(32)?));
    // The thumbprint's members in lexicographic order, no whitespace.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = b64url(&sha256(canonical.as_bytes()));
    let public = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"});
    let mut private = public.clone();
    private["d"] = b64url(&key.private_key().to_vec_padded(32)?).into();
    Ok((private, public))
}

async fn plan(args: PlanArgs) -> Result<()> {
    if args.gps == 0 || args.emergency_readers == 0 || args.persons == 0 {
        bail!("--gps, --emergency-readers and --persons must be at least 1");
    }
    let store = Store::open(&args.store.target()).await?;
    let mut rng = StdRng::seed_from_u64(args.seed);

    // Authorised GPs, one office each (the first of their lists'), in a seeded order.
    let mut gps: Vec<(String, i64, String)> = with_pool!(&store, pool => sqlx::query_as(&format!(
        "SELECT hp.nin, hp.hpr, MIN(l.office_orgnr) FROM gp_list l
         JOIN health_personnel hp ON hp.hpr = l.gp_hpr
         WHERE {AUTHORISED}
         GROUP BY hp.nin, hp.hpr ORDER BY hp.hpr"
    ))
    .fetch_all(pool)
    .await)?;
    gps.shuffle(&mut rng);
    let mut chosen = Vec::with_capacity(args.gps);
    for (nin, hpr, office) in gps {
        if chosen.len() == args.gps {
            break;
        }
        // Their patients, but those reserved against all health personnel.
        let patients: Vec<String> = with_pool!(&store, pool => sqlx::query_scalar(
            "SELECT m.nin FROM gp_list_member m
             WHERE m.list_id IN (SELECT id FROM gp_list WHERE gp_hpr = $1) AND m.nin <> $2
               AND NOT EXISTS (SELECT 1 FROM kj_record r WHERE r.nin = m.nin AND r.privacy = 'reserved')
             ORDER BY m.nin",
        )
        .bind(hpr)
        .bind(&nin)
        .fetch_all(pool)
        .await)?;
        if !patients.is_empty() {
            chosen.push((nin, office, patients));
        }
    }
    if chosen.is_empty() {
        bail!("the store has no authorised GP with patients on a list");
    }

    // Doctors and nurses who are nobody's GP, each at a hospital.
    let mut professionals: Vec<String> = with_pool!(&store, pool => sqlx::query_scalar(&format!(
        "SELECT hp.nin FROM health_personnel hp
         WHERE {AUTHORISED} AND hp.profession IN {EMERGENCY_PROFESSIONS}
           AND hp.hpr NOT IN (SELECT gp_hpr FROM gp_list)
         ORDER BY hp.hpr"
    ))
    .fetch_all(pool)
    .await)?;
    professionals.shuffle(&mut rng);
    professionals.truncate(args.emergency_readers);
    let mut hospitals: Vec<String> = with_pool!(&store, pool => sqlx::query_scalar(
        "SELECT orgnr FROM organisation WHERE kind = 'hospital' ORDER BY orgnr",
    )
    .fetch_all(pool)
    .await)?;
    hospitals.shuffle(&mut rng);
    hospitals.truncate(professionals.len());
    if professionals.is_empty() || hospitals.is_empty() {
        bail!(
            "the store has no authorised doctor or nurse outside general practice, or no hospital"
        );
    }

    // Persons for emergency reads: random ones, but those who limited or reserved their record
    // (an emergency read of theirs is refused, as it should be).
    let closed: HashSet<String> = with_pool!(&store, pool => sqlx::query_scalar(
        "SELECT nin FROM kj_record WHERE privacy <> 'open'",
    )
    .fetch_all(pool)
    .await)?
    .into_iter()
    .collect();
    let persons: Vec<String> = with_pool!(&store, pool => sqlx::query_scalar::<_, String>(
        "SELECT nin FROM person ORDER BY random() LIMIT $1",
    )
    .bind(i64::try_from(args.persons + closed.len())?)
    .fetch_all(pool)
    .await)?
    .into_iter()
    .filter(|nin| !closed.contains(nin))
    .take(args.persons)
    .collect();
    store.close().await;

    // One client per GP office and per hospital, as each runs its own EPJ.
    let jwks_dir = args.out.join("jwks");
    fs::create_dir_all(&jwks_dir)
        .with_context(|| format!("cannot create {}", jwks_dir.display()))?;
    let mut clients: BTreeMap<String, PlanClient> = BTreeMap::new();
    let mut tsv = String::new();
    let mut client_of = |orgnr: &str, kind: &str| -> Result<String> {
        if let Some(c) = clients.get(orgnr) {
            return Ok(c.client_id.clone());
        }
        let client_id = format!("bench-kjernejournal-{kind}-{orgnr}");
        let (private_jwk, public) = new_key()?;
        let path = jwks_dir.join(format!("{client_id}.json"));
        fs::write(&path, json!({"keys": [public]}).to_string())?;
        tsv.push_str(&format!("{client_id}\t{orgnr}\t{}\n", path.display()));
        clients.insert(
            orgnr.to_owned(),
            PlanClient {
                client_id: client_id.clone(),
                orgnr_parent: orgnr.to_owned(),
                private_jwk,
            },
        );
        Ok(client_id)
    };
    let mut readers = Vec::with_capacity(chosen.len());
    for (pid, office, patients) in chosen {
        readers.push(Reader {
            pid,
            client_id: client_of(&office, "gp")?,
            patients,
        });
    }
    let mut emergency = Vec::with_capacity(professionals.len());
    for (pid, hospital) in professionals.into_iter().zip(&hospitals) {
        emergency.push(Reader {
            pid,
            client_id: client_of(hospital, "hospital")?,
            patients: Vec::new(),
        });
    }
    let plan = Plan {
        clients: clients.into_values().collect(),
        gps: readers,
        emergency,
        persons,
    };
    fs::write(args.out.join("clients.tsv"), tsv)?;
    fs::write(args.out.join("plan.json"), serde_json::to_vec(&plan)?)?;
    let patients: usize = plan.gps.iter().map(|r| r.patients.len()).sum();
    println!(
        "plan: {} GPs ({patients} patients on their lists), {} emergency readers, {} persons for emergency reads, {} clients",
        plan.gps.len(),
        plan.emergency.len(),
        plan.persons.len(),
        plan.clients.len()
    );
    Ok(())
}

/// A client's signing key, for its assertions.
struct Signer {
    client_id: String,
    kid: String,
    key: Es256Key,
}

/// A reader and their current token.
struct User {
    pid: String,
    client: usize,
    patients: Vec<String>,
    authorization: RwLock<HeaderValue>,
}

/// Everyone the load reads as.
struct Readers {
    issuer: String,
    target: Target,
    signers: Vec<Signer>,
    /// GPs first, then the emergency readers.
    users: Vec<User>,
    gps: usize,
    persons: Vec<String>,
    emergency_share: f64,
    /// Reads sent so far, by GPs and in an emergency.
    gp_reads: AtomicU64,
    emergency_reads: AtomicU64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: u64,
}

fn form(pairs: &[(&str, &str)]) -> Bytes {
    Bytes::from(
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().copied())
            .finish(),
    )
}

fn unexpected(step: &str, reply: &Reply) -> anyhow::Error {
    let body: String = String::from_utf8_lossy(&reply.body)
        .chars()
        .take(300)
        .collect();
    anyhow::anyhow!("{step}: HTTP {}: {body}", reply.status.as_u16())
}

impl Readers {
    fn path(&self, endpoint: &str) -> Result<String> {
        Ok(http::path_of(&Url::parse(&format!(
            "{}/connect/{endpoint}",
            self.issuer
        ))?))
    }

    /// Signs `user` in as a person does: authorize with PKCE, the test identity provider's
    /// form, the code redeemed with a client assertion. Returns the token's lifetime.
    async fn sign_in(&self, connection: &mut Connection, user: &User) -> Result<u64> {
        let signer = &self.signers[user.client];
        let verifier = b64url(&rand::random::<[u8; 32]>());
        let challenge = b64url(&sha256(verifier.as_bytes()));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("client_id", signer.client_id.as_str()),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", SCOPE),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
            .finish();
        let authorize = format!("{}?{query}", self.path("authorize")?);
        let page = connection
            .send(&Method::GET, &authorize, &[], &Bytes::new())
            .await?;
        if page.status != StatusCode::OK {
            return Err(unexpected("authorize", &page));
        }
        let page = String::from_utf8_lossy(&page.body);
        let request = page
            .split("name=\"request\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .context("authorize: the page has no sign-in form")?
            .to_owned();
        let form_type = (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let login = connection
            .send(
                &Method::POST,
                &self.path("login")?,
                std::slice::from_ref(&form_type),
                &form(&[("request", &request), ("pid", &user.pid)]),
            )
            .await?;
        let code = login
            .location
            .as_deref()
            .and_then(|l| Url::parse(l).ok())
            .and_then(|l| {
                l.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
            })
            .ok_or_else(|| unexpected("login (no code in the redirect)", &login))?;
        let iat = now();
        let assertion = signer.key.sign(
            &json!({"alg": "ES256", "typ": "JWT", "kid": signer.kid}),
            &json!({"iss": signer.client_id, "sub": signer.client_id, "aud": self.issuer,
                    "iat": iat, "exp": iat + ASSERTION_SECONDS, "jti": jti()}),
        )?;
        let reply = connection
            .send(
                &Method::POST,
                &self.path("token")?,
                &[form_type],
                &form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", &verifier),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", &assertion),
                ]),
            )
            .await?;
        if reply.status != StatusCode::OK {
            return Err(unexpected("token", &reply));
        }
        let token: TokenResponse = serde_json::from_slice(&reply.body)?;
        if !token.token_type.eq_ignore_ascii_case("Bearer") {
            bail!("token: a {} token, not Bearer", token.token_type);
        }
        *user.authorization.write().expect("token lock") =
            HeaderValue::try_from(format!("Bearer {}", token.access_token))?;
        Ok(token.expires_in)
    }

    /// Signs everyone in; the shortest token lifetime.
    async fn sign_in_all(&self) -> Result<u64> {
        let mut connection = Connection::open(self.target.clone()).await?;
        let mut lifetime = u64::MAX;
        for user in &self.users {
            let seconds = self
                .sign_in(&mut connection, user)
                .await
                .with_context(|| format!("signing in {}", mask(&user.pid)))?;
            lifetime = lifetime.min(seconds);
        }
        Ok(lifetime)
    }
}

/// A fødselsnummer as an error may show it: birth date only.
fn mask(pid: &str) -> String {
    format!("{}*****", pid.get(..6).unwrap_or(pid))
}

/// Whether a body is a FHIR Bundle: its type is among the first members.
fn is_bundle(body: &[u8]) -> bool {
    const NEEDLE: &[u8] = br#""resourceType":"Bundle""#;
    body.first() == Some(&b'{')
        && body[..body.len().min(512)]
            .windows(NEEDLE.len())
            .any(|w| w == NEEDLE)
}

/// A paced round: each worker sends one read every `interval`, from `start`, and gives up on
/// the rest at `give_up` (a node far behind the pace would otherwise keep the run going for as
/// long as it is behind).
#[derive(Clone, Copy)]
struct Pace {
    start: Instant,
    interval: Duration,
    give_up: Instant,
}

/// One worker: `count` reads, each by a GP of a patient on their list or, with the emergency
/// share, by an emergency reader of a random person; paced, or each sent when the last is
/// answered.
async fn work(
    mut connection: Connection,
    readers: Arc<Readers>,
    pace: Option<Pace>,
    count: usize,
    seed: usize,
) -> (Connection, Stats) {
    let mut stats = Stats {
        latencies: Vec::with_capacity(count),
        ..Stats::default()
    };
    let mut rng = StdRng::seed_from_u64(seed as u64);
    let json_type = (
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (mut gp_reads, mut emergencies) = (0, 0);
    // Workers start at random points of the first interval, so that reads are spread evenly.
    let mut due = pace.map(|p| p.start + p.interval.mul_f64(rng.random::<f64>()));
    for i in 0..count {
        if pace.is_some_and(|p| Instant::now() > p.give_up) {
            for _ in i..count {
                stats.error("not sent: the node fell too far behind the pace".into());
            }
            break;
        }
        let emergency = rng.random_bool(readers.emergency_share);
        let (user, patient, reason) = if emergency {
            emergencies += 1;
            let user = &readers.users[rng.random_range(readers.gps..readers.users.len())];
            let patient = &readers.persons[rng.random_range(0..readers.persons.len())];
            (user, patient, EMERGENCY_REASON)
        } else {
            gp_reads += 1;
            let user = &readers.users[rng.random_range(0..readers.gps)];
            let patient = &user.patients[rng.random_range(0..user.patients.len())];
            (user, patient, GP_REASON)
        };
        let body = Bytes::from(format!(
            r#"{{"patient":"{patient}","reason":"{reason}","emergency":{emergency}}}"#
        ));
        let headers: [(HeaderName, HeaderValue); 2] = [
            (
                header::AUTHORIZATION,
                user.authorization.read().expect("token lock").clone(),
            ),
            json_type.clone(),
        ];
        let started = match (&mut due, pace) {
            (Some(at), Some(p)) => {
                tokio::time::sleep_until((*at).into()).await;
                let scheduled = *at;
                *at += p.interval;
                scheduled
            }
            _ => Instant::now(),
        };
        let reply = connection
            .send(&Method::POST, RECORD, &headers, &body)
            .await;
        match reply {
            Ok(r) if r.status == StatusCode::OK && !is_bundle(&r.body) => {
                let text: String = String::from_utf8_lossy(&r.body).chars().take(200).collect();
                stats.error(format!("200 without a Bundle: {text}"));
            }
            reply => stats.record("", started, reply, StatusCode::OK),
        }
    }
    readers.gp_reads.fetch_add(gp_reads, Ordering::Relaxed);
    readers
        .emergency_reads
        .fetch_add(emergencies, Ordering::Relaxed);
    (connection, stats)
}

/// The ledger's batches so far, from the node's Prometheus metrics: (batches, seconds in
/// them, requests in them).
async fn ledger_batches(base: &str) -> Result<Option<(f64, f64, f64)>> {
    let reply = http::get(&Url::parse(&format!("{base}/metrics"))?).await?;
    if reply.status != StatusCode::OK {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&reply.body);
    let value = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    Ok((|| {
        Some((
            value("kjernejournal_ledger_batch_seconds_count")?,
            value("kjernejournal_ledger_batch_seconds_sum")?,
            value("kjernejournal_ledger_batch_size_sum")?,
        ))
    })())
}

async fn audit_records(target: &StoreTarget) -> Result<i64> {
    let store = Store::open(target).await?;
    let n = with_pool!(&store, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM kj_audit")
        .fetch_one(pool)
        .await)?;
    store.close().await;
    Ok(n)
}

fn readers(plan: Plan, issuer: String, target: Target, emergency_share: f64) -> Result<Readers> {
    let mut signers = Vec::with_capacity(plan.clients.len());
    for c in plan.clients {
        let jwk: PrivateJwk = serde_json::from_value(c.private_jwk)?;
        signers.push(Signer {
            client_id: c.client_id,
            kid: jwk.kid.clone().context("a plan's key has no kid")?,
            key: Es256Key::from_jwk(&jwk)?,
        });
    }
    let client = |id: &str| {
        signers
            .iter()
            .position(|s| s.client_id == id)
            .with_context(|| format!("the plan has no client {id}"))
    };
    let gps = plan.gps.len();
    let mut users = Vec::with_capacity(gps + plan.emergency.len());
    for reader in plan.gps.into_iter().chain(plan.emergency) {
        users.push(User {
            client: client(&reader.client_id)?,
            pid: reader.pid,
            patients: reader.patients,
            authorization: RwLock::new(HeaderValue::from_static("")),
        });
    }
    if gps == 0 || users.len() == gps || plan.persons.is_empty() {
        bail!("the plan needs GPs, emergency readers and persons");
    }
    Ok(Readers {
        issuer,
        target,
        signers,
        users,
        gps,
        persons: plan.persons,
        emergency_share,
        gp_reads: AtomicU64::new(0),
        emergency_reads: AtomicU64::new(0),
    })
}

fn load(args: LoadArgs) -> Result<ExitCode> {
    if args.concurrency == 0 || args.requests == 0 || args.threads == 0 {
        bail!("--concurrency, --requests and --threads must be at least 1");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate is reads a second, more than 0");
    }
    if !(0.0..=1.0).contains(&args.emergency_share) {
        bail!("--emergency-share is a fraction from 0 to 1");
    }
    let plan: Plan = serde_json::from_slice(
        &fs::read(&args.plan).with_context(|| format!("cannot read {}", args.plan.display()))?,
    )
    .with_context(|| format!("{} is not a plan", args.plan.display()))?;
    let runtime = loader_runtime(args.threads)?;
    let (issuer, base) = issuer_and_base(&args.issuer)?;
    let target_store = args.store.target();
    runtime.block_on(async {
        let target = Target::resolve(&Url::parse(&base)?).await?;
        let readers = Arc::new(readers(plan, issuer, target.clone(), args.emergency_share)?);
        let signing_in = Instant::now();
        let lifetime = readers.sign_in_all().await?;
        eprintln!(
            "helsenett-bench: kjernejournal: {} readers signed in through {} clients in {:.2} s; tokens live {lifetime} s",
            readers.users.len(),
            readers.signers.len(),
            signing_in.elapsed().as_secs_f64()
        );
        // Everyone signs in again halfway through their token's life.
        let refresh_failures = Arc::new(AtomicU64::new(0));
        let refresher = {
            let (readers, failures) = (readers.clone(), refresh_failures.clone());
            let every = Duration::from_secs((lifetime / 2).max(5));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if let Err(e) = readers.sign_in_all().await {
                        failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("helsenett-bench: kjernejournal: signing in again failed: {e:#}");
                    }
                }
            })
        };
        let audit_before = audit_records(&target_store).await?;

        let mut connections = Vec::with_capacity(args.concurrency);
        for _ in 0..args.concurrency {
            connections.push(Connection::open(target.clone()).await?);
        }
        let start = |c, per, seed| work(c, readers.clone(), None, per, seed);
        let (_, warm, connections) = round(connections, args.warmup.max(1), 0, &start).await?;
        if warm.errors > 0 {
            for (what, n) in &warm.samples {
                eprintln!("helsenett-bench: kjernejournal: warm-up error ({n}x): {what}");
            }
            bail!("{} warm-up reads failed", warm.errors);
        }
        let emergency_warm = readers.emergency_reads.swap(0, Ordering::Relaxed);
        readers.gp_reads.store(0, Ordering::Relaxed);

        let pids: Vec<u32> = args.server_pid.into_iter().collect();
        let batches_before = ledger_batches(&base).await?;
        let cpu_before = cpu_seconds(&pids)?;
        let pace = args.rate.map(|rate| {
            let start = Instant::now();
            let planned = Duration::from_secs_f64(args.requests as f64 / rate);
            Pace {
                start,
                interval: Duration::from_secs_f64(args.concurrency as f64 / rate),
                give_up: start + 2 * planned + Duration::from_secs(10),
            }
        });
        let timed = |c, per, seed| work(c, readers.clone(), pace, per, seed);
        let (elapsed, mut stats, _) = round(connections, args.requests, 1_000, &timed).await?;
        let server_cpu = cpu_seconds(&pids)? - cpu_before;
        let batches_after = ledger_batches(&base).await?;
        refresher.abort();
        let emergency = readers.emergency_reads.load(Ordering::Relaxed);
        let gp_reads = readers.gp_reads.load(Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();

        for (what, n) in &stats.samples {
            eprintln!("helsenett-bench: kjernejournal: error ({n}x): {what}");
        }
        let Latency { per_second, p50, p90, p99, max } = stats.latency(seconds);
        let p999 = quantile_ms(&stats.latencies, 0.999);
        let cpu_us = (!pids.is_empty() && stats.ok > 0).then(|| 1e6 * server_cpu / stats.ok as f64);
        println!(
            "Kjernejournal record reads over HTTP{}: {} reads in {seconds:.1} s: {per_second:.0} reads/s  \
             p50 {p50:.2} ms  p90 {p90:.2} ms  p99 {p99:.2} ms  p99.9 {p999:.2} ms  max {max:.1} ms{}",
            args.rate.map_or(String::new(), |r| format!(", paced at {r:.0}/s")),
            stats.ok,
            cpu_us.map_or(String::new(), |us| format!("  server CPU {us:.0} µs/read")),
        );
        println!(
            "  mix: {gp_reads} GP reads of patients on their own lists by {} GPs, {emergency} emergency reads of random persons by {} readers; \
             concurrency {}, errors {}",
            readers.gps,
            readers.users.len() - readers.gps,
            args.concurrency,
            stats.errors
        );
        let ledger = match (batches_before, batches_after) {
            (Some((b0, s0, r0)), Some((b1, s1, r1))) if b1 > b0 => {
                let (batches, busy, requests) = (b1 - b0, s1 - s0, r1 - r0);
                println!(
                    "  ledger: {batches:.0} batches, {:.1} reads per batch, {:.2} ms per batch, in a transaction {:.0} % of the time",
                    requests / batches,
                    1e3 * busy / batches,
                    100.0 * busy / seconds
                );
                Some((batches, requests / batches, 1e3 * busy / batches, busy / seconds))
            }
            _ => None,
        };
        let audit_after = audit_records(&target_store).await?;
        let audited = audit_after - audit_before;
        // A read refused would be audited as well, but this load has none: every answer but a
        // 200 is an error here, and the ledger audits nothing it could not commit.
        let expected = i64::try_from(warm.ok + stats.ok)?;
        println!(
            "  audit: {audited} records written, for {} reads answered and {} warm-up reads ({} of them emergency){}",
            stats.ok,
            warm.ok,
            emergency_warm,
            if audited == expected { "" } else { ": MISMATCH" }
        );
        let memory = args.server_pid.map(memory).transpose()?;
        if let Some((rss, peak, file)) = memory {
            let mib = |b: u64| b as f64 / 1048576.0;
            println!(
                "  server memory: {:.0} MiB resident ({:.0} MiB of it mapped database file), {:.0} MiB at peak",
                mib(rss),
                mib(file),
                mib(peak)
            );
        }
        let refresh_failures = refresh_failures.load(Ordering::Relaxed);
        emit_json(
            args.json.as_deref(),
            &json!({
                "label": args.label,
                "reads": stats.ok,
                "emergency_reads": emergency,
                "errors": stats.errors,
                "concurrency": args.concurrency,
                "rate": args.rate,
                "seconds": seconds,
                "reads_per_second": per_second,
                "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "p999_ms": p999, "max_ms": max,
                "server_cpu_us_per_read": cpu_us,
                "ledger_batches": ledger.map(|l| l.0),
                "ledger_reads_per_batch": ledger.map(|l| l.1),
                "ledger_ms_per_batch": ledger.map(|l| l.2),
                "ledger_busy_share": ledger.map(|l| l.3),
                "audit_records": audited,
                "warmup_reads": warm.ok,
                "server_rss_bytes": memory.map(|m| m.0), "server_peak_rss_bytes": memory.map(|m| m.1),
            }),
        )?;
        if refresh_failures > 0 {
            eprintln!("helsenett-bench: kjernejournal: signing in again failed {refresh_failures} times");
        }
        if audited != expected {
            eprintln!(
                "helsenett-bench: kjernejournal: {audited} audit records were written for {expected} reads"
            );
        }
        Ok(if stats.errors > 0 || refresh_failures > 0 || audited != expected {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_signs_what_its_public_jwk_names() {
        let (private, public) = new_key().unwrap();
        assert_eq!(private["kid"], public["kid"]);
        assert!(public.get("d").is_none());
        let jwk: PrivateJwk = serde_json::from_value(private).unwrap();
        let key = Es256Key::from_jwk(&jwk).unwrap();
        assert_eq!(key.public_jwk()["x"], public["x"]);
    }

    #[test]
    fn a_bundle_is_recognised_by_its_type() {
        assert!(is_bundle(
            br#"{"identifier":{"value":"1"},"resourceType":"Bundle","type":"collection"}"#
        ));
        assert!(!is_bundle(br#"{"resourceType":"OperationOutcome"}"#));
        assert!(!is_bundle(b""));
    }

    #[test]
    fn a_masked_number_keeps_the_birth_date_only() {
        assert_eq!(mask("01017012345"), "010170*****");
    }
}
