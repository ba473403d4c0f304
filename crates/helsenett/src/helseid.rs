//! `helsenett helseid ...`: the operator's commands for HelseID (signing keys and clients), and
//! the settings a node's HelseID is started with.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context, bail};
use helsenett_core::{Organisasjonsnummer, config::Config};
use helsenett_helseid::{
    Settings, SigningAlg,
    clients::{self, CLIENT_CREDENTIALS, Client},
    jose, keys,
};
use helsenett_store::{Store, StoreTarget};
use jsonwebtoken::jwk::JwkSet;
use url::Url;

use crate::StoreArgs;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Add a signing key. The current key keeps signing until the new one activates, and stays
    /// published until every token it signed has expired.
    RotateKeys {
        /// ES256 or PS256.
        #[arg(long, default_value = "ES256")]
        alg: SigningAlg,
        /// Seconds until the new key signs: time for relying parties to fetch the new JWKS.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        activate_in: u32,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the published signing keys.
    Keys {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manage clients.
    #[command(subcommand)]
    Client(ClientCommand),
}

#[derive(clap::Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its client_id.
    Add {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Organisasjonsnummer of the legal entity the client acts for.
        #[arg(long, value_name = "ORGNR")]
        orgnr_parent: Organisasjonsnummer,
        /// Organisasjonsnummer of the unit within it.
        #[arg(long, value_name = "ORGNR")]
        orgnr_child: Option<Organisasjonsnummer>,
        /// File with the client's public JWK or JWK set.
        #[arg(long, value_name = "FILE")]
        jwks: PathBuf,
        /// Allowed scopes (repeat, or separate with spaces).
        #[arg(long, required = true)]
        scope: Vec<String>,
        /// client_credentials (default) and/or authorization_code.
        #[arg(long, value_name = "GRANT")]
        grant_type: Vec<String>,
        /// Redirect URIs for authorization_code (repeat).
        #[arg(long, value_name = "URI")]
        redirect_uri: Vec<String>,
        /// Also accept bearer tokens (no DPoP). Off by default.
        #[arg(long)]
        allow_bearer: bool,
        /// The client_id; default: a random one.
        #[arg(long)]
        client_id: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List clients.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Disable a client: it gets no more tokens (those it holds expire).
    Disable {
        client_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// The settings of this node's HelseID: the public URL (configured, or the bound address).
pub fn settings(config: &Config, bound: SocketAddr) -> anyhow::Result<Settings> {
    let public_url = match &config.public_url {
        Some(url) => {
            let parsed =
                Url::parse(url).with_context(|| format!("public_url {url:?} is not a URL"))?;
            let plain = matches!(parsed.scheme(), "http" | "https")
                && parsed.path() == "/"
                && parsed.query().is_none()
                && parsed.fragment().is_none();
            if !plain {
                bail!("public_url {url:?} must be http(s)://host[:port] with no path");
            }
            parsed
        }
        None => Url::parse(&format!("http://{bound}")).expect("an address is a URL host"),
    };
    let lifetime = config.helseid.access_token_seconds;
    if !(1..=86_400).contains(&lifetime) {
        bail!("helseid.access_token_seconds must be 1 to 86400, not {lifetime}");
    }
    Ok(Settings {
        public_url,
        access_token_seconds: lifetime as i64,
        admin_token: config.helseid.admin_token.clone(),
    })
}

pub async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    let lifetime = config.helseid.access_token_seconds as i64;
    let mut open = |args: &StoreArgs| {
        args.apply(&mut config);
        StoreTarget::new(&config.data_dir, config.database_url.as_deref())
    };
    match command {
        Command::RotateKeys {
            alg,
            activate_in,
            store,
        } => {
            let store = Store::open(&open(&store)).await?;
            let kid = keys::rotate(&store, alg, activate_in.into(), lifetime).await?;
            println!(
                "new {alg:?} signing key {kid} signs from {}",
                when(activate_in.into())
            );
            print_keys(&store, lifetime).await
        }
        Command::Keys { store } => print_keys(&Store::open(&open(&store)).await?, lifetime).await,
        Command::Client(ClientCommand::Add {
            name,
            orgnr_parent,
            orgnr_child,
            jwks,
            scope,
            grant_type,
            redirect_uri,
            allow_bearer,
            client_id,
            store,
        }) => {
            let client = Client {
                client_id: client_id.unwrap_or_else(|| jose::random_token(16)),
                name,
                jwks: read_public_jwks(&jwks)?,
                grant_types: if grant_type.is_empty() {
                    vec![CLIENT_CREDENTIALS.to_owned()]
                } else {
                    grant_type
                },
                scopes: scope
                    .iter()
                    .flat_map(|s| s.split_whitespace())
                    .map(str::to_owned)
                    .collect(),
                redirect_uris: redirect_uri,
                orgnr_parent,
                orgnr_child,
                dpop_required: !allow_bearer,
                enabled: true,
                created_at: chrono::Utc::now().timestamp(),
            };
            client.validate()?;
            let store = Store::open(&open(&store)).await?;
            if !clients::insert(&store, std::slice::from_ref(&client)).await? {
                bail!("a client with id {:?} exists already", client.client_id);
            }
            println!("{}", client.client_id);
            Ok(())
        }
        Command::Client(ClientCommand::List { store }) => {
            let store = Store::open(&open(&store)).await?;
            println!(
                "{:<40} {:<9} {:<8} {:<5} {:<44} NAME",
                "CLIENT_ID", "ORGNR", "ENABLED", "DPOP", "GRANTS"
            );
            for c in clients::list(&store).await? {
                println!(
                    "{:<40} {:<9} {:<8} {:<5} {:<44} {}",
                    c.client_id,
                    c.orgnr_parent,
                    if c.enabled { "yes" } else { "no" },
                    if c.dpop_required { "yes" } else { "no" },
                    c.grant_types.join(","),
                    c.name
                );
            }
            Ok(())
        }
        Command::Client(ClientCommand::Disable { client_id, store }) => {
            let store = Store::open(&open(&store)).await?;
            if !clients::set_enabled(&store, &client_id, false).await? {
                bail!("no client with id {client_id:?}");
            }
            println!("client {client_id} is disabled");
            Ok(())
        }
    }
}

async fn print_keys(store: &Store, lifetime: i64) -> anyhow::Result<()> {
    println!("{:<45} {:<6} {:<8} ACTIVE_FROM", "KID", "ALG", "SIGNING");
    for key in keys::list(store, lifetime).await? {
        let from = chrono::DateTime::from_timestamp(key.active_from, 0)
            .map_or_else(|| key.active_from.to_string(), |t| t.to_rfc3339());
        println!(
            "{:<45} {:<6} {:<8} {from}",
            key.kid,
            key.alg,
            if key.signing { "yes" } else { "no" }
        );
    }
    Ok(())
}

fn when(seconds: i64) -> String {
    if seconds == 0 {
        "now".into()
    } else {
        format!("{seconds} s from now")
    }
}

/// Reads a public JWK or JWK set, refusing private keys: HelseID must never hold a client's.
fn read_public_jwks(path: &std::path::Path) -> anyhow::Result<JwkSet> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let keys = match value.get("keys") {
        Some(keys) => keys.clone(),
        None => serde_json::Value::Array(vec![value]),
    };
    let private = keys
        .as_array()
        .is_some_and(|keys| keys.iter().any(|k| k.get("d").is_some()));
    if private {
        bail!(
            "{} holds a private key; give the client's public key only",
            path.display()
        );
    }
    serde_json::from_value(serde_json::json!({ "keys": keys }))
        .with_context(|| format!("{} is not a JWK or JWK set", path.display()))
}
