//! `helsenett register ...`: the operator's commands for the address register, run against the
//! store directly (search, show, export, import).

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    io::{BufReader, BufWriter, Write},
    path::PathBuf,
};

use anyhow::{Context, bail};
use helsenett_core::{HerId, Organisasjonsnummer, config::Config};
use helsenett_register::{
    Register, RegisterError, Search, changes,
    export::{self, ReadError},
    model::Party,
};
use helsenett_store::{Store, StoreTarget, records::PartyKind};
use indicatif::{ProgressBar, ProgressStyle};

use crate::StoreArgs;

/// Parties written per transaction on import: each transaction is one lock on the feed.
const IMPORT_BATCH: usize = 1_000;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Find parties; every given criterion must hold.
    Search {
        /// Part of the name, any case.
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_name = "ORGNR")]
        orgnr: Option<Organisasjonsnummer>,
        /// Municipality number the party is in or serves.
        #[arg(long)]
        municipality: Option<String>,
        /// Organization, Department, Service or Person.
        #[arg(long = "type", value_name = "TYPE", value_parser = party_kind)]
        kind: Option<PartyKind>,
        /// A message type the party receives, e.g. DIALOG_HELSEFAGLIG.
        #[arg(long, value_name = "TYPE")]
        message_type: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print one party's whole entry as JSON.
    Show {
        her_id: HerId,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write the whole register (newline-delimited JSON) to a file, or to stdout.
    Export {
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Load an export: every party that differs from the register's is written, and appears
    /// in the event feed.
    Import {
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn party_kind(s: &str) -> Result<PartyKind, String> {
    PartyKind::parse(s).map_err(|_| "must be Organization, Department, Service or Person".into())
}

async fn open(store: &StoreArgs, mut config: Config) -> anyhow::Result<Register> {
    store.apply(&mut config);
    let store = Store::open(&StoreTarget::new(
        &config.data_dir,
        config.database_url.as_deref(),
    ))
    .await?;
    Ok(Register::open(store).await?)
}

pub async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Search {
            name,
            orgnr,
            municipality,
            kind,
            message_type,
            limit,
            store,
        } => {
            let register = open(&store, config).await?;
            let snapshot = register.snapshot();
            let search = Search {
                name,
                orgnr,
                municipality,
                kind,
                receives: message_type,
                ..Search::default()
            };
            let (total, parties) = snapshot.search(&search, 0, limit);
            let mut out = std::io::stdout().lock();
            for p in parties {
                writeln!(
                    out,
                    "{:>9}  {:<12}  {}  {}  {}{}",
                    p.her_id,
                    p.kind.as_str(),
                    p.orgnr,
                    p.municipality,
                    p.name,
                    if p.active { "" } else { "  (inactive)" }
                )?;
            }
            writeln!(out, "{total} found")?;
        }
        Command::Show { her_id, store } => {
            let register = open(&store, config).await?;
            let snapshot = register.snapshot();
            let Some(party) = snapshot.party(her_id) else {
                bail!("HER-id {her_id} is not in the address register");
            };
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &**party)?;
            writeln!(out)?;
        }
        Command::Export { out, store } => {
            let register = open(&store, config).await?;
            let snapshot = register.snapshot();
            match out {
                Some(path) => {
                    let file = File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    export::write(&snapshot, &mut BufWriter::new(file))?;
                    eprintln!(
                        "exported {} parties as of event {} to {}",
                        snapshot.len(),
                        snapshot.event_id,
                        path.display()
                    );
                }
                None => export::write(&snapshot, &mut BufWriter::new(std::io::stdout().lock()))?,
            }
        }
        Command::Import { file, store } => {
            let register = open(&store, config).await?;
            import(&register, &file).await?;
        }
    }
    Ok(())
}

/// Reads and checks the whole file before anything is written (a truncated or inconsistent
/// file changes nothing), then writes the parties that differ in batches, parents before
/// children. A batch that fails leaves the earlier ones written; running the import again
/// writes only what is still missing.
async fn import(register: &Register, path: &PathBuf) -> anyhow::Result<()> {
    let input = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut parties: Vec<Party> = Vec::new();
    export::read(BufReader::new(input), |p| {
        parties.push(p);
        Ok::<_, ReadError>(())
    })
    .with_context(|| format!("{} is not a register export", path.display()))?;
    parties.sort_by_key(|p| p.her_id);
    unique_in_file(&parties)?;
    let in_file: HashSet<HerId> = parties.iter().map(|p| p.her_id).collect();
    let style = |what: &str| {
        ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} parties {what} {{per_sec}} eta {{eta}}"
        ))
        .expect("a valid template")
    };

    let base = register.snapshot();
    let known = |h: HerId| in_file.contains(&h) || base.party(h).is_some();
    let checking = ProgressBar::new(parties.len() as u64).with_style(style("checked"));
    let mut changed = Vec::new();
    for party in parties {
        let her_id = party.her_id;
        if let Some(change) = changes::import(&base, party, &known)
            .map_err(|e| RegisterError::invalid(format!("HER-id {her_id}"), e))?
        {
            changed.push(change.party);
        }
        checking.inc(1);
    }
    checking.finish_and_clear();

    let writing = ProgressBar::new(changed.len() as u64).with_style(style("written"));
    let mut written = 0;
    let mut batches = changed.into_iter().peekable();
    while batches.peek().is_some() {
        let batch: Vec<Party> = batches.by_ref().take(IMPORT_BATCH).collect();
        let size = batch.len() as u64;
        let done = register
            .change("cli:import", |latest| {
                let known = |h: HerId| in_file.contains(&h) || latest.party(h).is_some();
                let mut changes = Vec::new();
                for party in batch {
                    let her_id = party.her_id;
                    if let Some(change) = changes::import(latest, party, &known)
                        .map_err(|e| RegisterError::invalid(format!("HER-id {her_id}"), e))?
                    {
                        changes.push(change);
                    }
                }
                Ok(changes)
            })
            .await?;
        written += done.len();
        writing.inc(size);
    }
    writing.finish_and_clear();
    eprintln!(
        "imported {}: {written} parties written, the rest unchanged",
        path.display()
    );
    Ok(())
}

/// HER-ids, organisations' organisasjonsnummer and certificates each appear once in the file.
fn unique_in_file(parties: &[Party]) -> anyhow::Result<()> {
    let mut her_ids = HashSet::new();
    let mut organisations = HashMap::new();
    let mut certificates = HashMap::new();
    for p in parties {
        if !her_ids.insert(p.her_id) {
            bail!("HER-id {} is in the file twice", p.her_id);
        }
        if p.kind == PartyKind::Organisation
            && let Some(other) = organisations.insert(p.orgnr, p.her_id)
        {
            bail!(
                "organisasjonsnummer {} is both HER-id {other} and {}",
                p.orgnr,
                p.her_id
            );
        }
        for c in &p.certificates {
            if let Some(other) = certificates.insert(c.fingerprint.as_str(), p.her_id) {
                bail!(
                    "the certificate with SHA-256 {} is both HER-id {other}'s and {}'s",
                    c.fingerprint,
                    p.her_id
                );
            }
        }
    }
    Ok(())
}
