//! `helsenett msg ...`: a member's system on the command line, talking to a running node over
//! HTTP like any EPJ: HelseID tokens (DPoP), the address register's API for certificates and
//! CPAs, and the MSH API. In a test lab it acts as any synthetic party: the party's HelseID
//! client comes from the data dir's clients file, its private keys from the synthetic country.

use std::path::PathBuf;

use anyhow::{Context, bail};
use helsenett_client::{Directory, Member, Msh, Tokens, client_of};
use helsenett_core::{HerId, config::Config};
use helsenett_exchange::synthetic::Credentials;
use helsenett_helseid::synthetic::CLIENTS_FILE;
use helsenett_register::Register;
use helsenett_store::{Store, StoreTarget};
use serde_json::json;
use url::Url;

use crate::StoreArgs;

const SOURCE_SYSTEM: &str = concat!("helsenett-cli ", env!("CARGO_PKG_VERSION"));

#[derive(clap::Args, Clone)]
pub struct Connection {
    /// The node's base URL; default: the configured listen address.
    #[arg(long, value_name = "URL")]
    server: Option<Url>,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Seal a payload for its receivers, sign it, and send it.
    Send {
        /// The sending party's HER-id.
        #[arg(long, value_name = "HER-ID")]
        from: HerId,
        /// Receiving parties' HER-ids; the first is the receiver, any others copy receivers.
        #[arg(long, value_name = "HER-ID", required = true)]
        to: Vec<HerId>,
        /// The message type (kodeverk 8279), e.g. DIALOG_HELSEFAGLIG.
        #[arg(
            long = "type",
            value_name = "TYPE",
            default_value = "DIALOG_HELSEFAGLIG"
        )]
        message_type: String,
        /// The business document to seal (e.g. a Dialogmelding).
        #[arg(long, value_name = "FILE")]
        payload: PathBuf,
        #[command(flatten)]
        connection: Connection,
    },
    /// Fetch unread messages, open and verify them, and write their payloads to a directory.
    Receive {
        /// The receiving party's HER-id.
        #[arg(long = "as", value_name = "HER-ID")]
        receiver: HerId,
        #[arg(long, default_value_t = 10)]
        count: u32,
        /// Where to write each payload, as `<message id>.xml`.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        #[command(flatten)]
        connection: Connection,
    },
    /// Mark a message read and answer it with an AppRec.
    Ack {
        /// The message id.
        id: String,
        /// The receiving party's HER-id.
        #[arg(long = "as", value_name = "HER-ID")]
        receiver: HerId,
        /// Ok, Rejected or OkErrorInMessagePart.
        #[arg(long, default_value = "Ok")]
        status: String,
        /// An error, CODE or CODE:details (kodeverk 8221), e.g. E35:Ukjent pasient.
        #[arg(long = "error", value_name = "CODE[:DETAILS]")]
        errors: Vec<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Show a message's delivery state and AppRec per receiver.
    Status {
        id: String,
        /// The party asking (the sender, or a receiver).
        #[arg(long = "as", value_name = "HER-ID")]
        party: HerId,
        #[command(flatten)]
        connection: Connection,
    },
}

pub async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Send {
            from,
            to,
            message_type,
            payload,
            connection,
        } => {
            let member = member(&connection, config, from).await?;
            let payload = std::fs::read(&payload)
                .with_context(|| format!("cannot read {}", payload.display()))?;
            let sent = member.send(from, &to, &message_type, &payload).await?;
            println!(
                "{}\tsent {message_type} v{} (MsgId {}) from {from} to {}",
                sent.id,
                sent.version,
                sent.msg_id,
                to.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Command::Receive {
            receiver,
            count,
            out,
            connection,
        } => {
            let member = member(&connection, config, receiver).await?;
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let received = member.receive(receiver, count).await?;
            for message in &received {
                let path = out.join(format!("{}.xml", message.listed.id));
                std::fs::write(&path, &message.content)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!(
                    "{}\tfrom {}\t{}\t{}\t{}",
                    message.listed.id,
                    message.listed.sender_her_id.unwrap_or_default(),
                    if message.listed.is_app_rec == Some(true) {
                        "AppRec"
                    } else {
                        "opened, signature verified"
                    },
                    message
                        .listed
                        .business_document_id
                        .as_deref()
                        .unwrap_or_default(),
                    path.display()
                );
            }
            eprintln!(
                "{} message(s) received for HER-id {receiver}",
                received.len()
            );
        }
        Command::Ack {
            id,
            receiver,
            status,
            errors,
            connection,
        } => {
            let member = member(&connection, config, receiver).await?;
            let errors: Vec<_> = errors
                .iter()
                .map(|e| match e.split_once(':') {
                    Some((code, details)) => json!({"errorCode": code, "details": details}),
                    None => json!({"errorCode": e}),
                })
                .collect();
            member.msh.mark_read(&id, receiver.get()).await?;
            let apprec = member
                .msh
                .apprec(&id, receiver.get(), &status, &errors)
                .await?;
            println!("{apprec}\tAppRec {status} for message {id}, which is marked read");
        }
        Command::Status {
            id,
            party,
            connection,
        } => {
            let member = member(&connection, config, party).await?;
            let status = member.msh.status(&id).await?;
            let apprecs = member.msh.apprec_info(&id).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"status": status, "apprec": apprecs}))?
            );
        }
    }
    Ok(())
}

/// `her_id`'s organisation's system: its HelseID client, its keys, the CAs to trust.
async fn member(
    connection: &Connection,
    mut config: Config,
    her_id: HerId,
) -> anyhow::Result<Member> {
    connection.store.apply(&mut config);
    let store = Store::open(&StoreTarget::new(
        &config.data_dir,
        config.database_url.as_deref(),
    ))
    .await?;
    let register = Register::open(store.clone()).await?;
    let snapshot = register.snapshot();
    let party = snapshot
        .party(her_id)
        .with_context(|| format!("HER-id {her_id} is not in the address register"))?;
    let clients = config.data_dir.join(CLIENTS_FILE);
    let client = || client_of(&clients, &party.orgnr.to_string());
    let keys = Credentials::of(&store, &snapshot, her_id)
        .await
        .with_context(|| format!("the keys of HER-id {her_id}"))?;
    let trust = register.trust_anchors().await?;
    if trust.count == 0 {
        bail!("the store holds no certificate authorities to verify signatures with");
    }
    let trust = trust.into_x509_store();
    store.close().await;

    let server = match &connection.server {
        Some(url) => url.clone(),
        None => Url::parse(&format!("http://{}/", config.listen))?,
    };
    let issuer = server.join("helseid")?;
    let http = reqwest::Client::new();
    let msh_tokens =
        Tokens::discover(http.clone(), issuer.as_str(), client()?, "nhn:msh/api").await?;
    let register_tokens = Tokens::discover(
        http.clone(),
        issuer.as_str(),
        client()?,
        "nhn:adresseregisteret/read",
    )
    .await?;
    Ok(Member {
        msh: Msh::new(
            http.clone(),
            server.join("msh/")?,
            msh_tokens,
            SOURCE_SYSTEM,
        ),
        directory: Directory::new(http, server.join("adresseregisteret/v1/")?, register_tokens),
        keys,
        trust,
    })
}
