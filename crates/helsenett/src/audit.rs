//! `helsenett audit verify`: walks Kjernejournal's audit chain in the store and reports the
//! first record that was changed, removed or reordered, or confirms the chain and prints its
//! head. Keep the printed head elsewhere (a ticket, a log shipped off the host) and pass it as
//! `--anchor` later: a chain cut short and re-linked from that point is then detected too.

use anyhow::{Context, bail};
use helsenett_core::config::Config;
use helsenett_store::{Store, StoreTarget};
use indicatif::{ProgressBar, ProgressStyle};

use crate::StoreArgs;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check every link, hash and column of the audit chain; exit 1 at the first break.
    Verify {
        /// An earlier head, SEQ:HASH, that must still be in the chain.
        #[arg(long, value_name = "SEQ:HASH")]
        anchor: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    let Command::Verify { anchor, store } = command;
    store.apply(&mut config);
    let anchor = anchor
        .as_deref()
        .map(|a| {
            let (seq, hash) = a.split_once(':').context("--anchor is SEQ:HASH")?;
            Ok::<_, anyhow::Error>((seq.parse::<i64>().context("--anchor's SEQ")?, hash))
        })
        .transpose()?;
    let store = Store::open(&StoreTarget::new(
        &config.data_dir,
        config.database_url.as_deref(),
    ))
    .await?;
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} audit records checked ({per_sec})")
            .expect("a valid template"),
    );
    let result = helsenett_kjernejournal::verify(&store, anchor, |_| bar.inc(1)).await?;
    bar.finish_and_clear();
    match result {
        Ok(verified) => {
            println!(
                "the audit chain is intact: {} records; head {}:{}",
                verified.records, verified.head_seq, verified.head_hash
            );
            Ok(())
        }
        Err(broken) => bail!("the audit chain is broken: {broken}"),
    }
}
