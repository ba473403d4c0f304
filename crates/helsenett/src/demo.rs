//! `helsenett demo`: a small country on the embedded store, served, with what a person needs to
//! start exploring printed on stdout.

use std::{io::Write, path::PathBuf};

use helsenett_core::config::Config;
use helsenett_store::{Store, StoreTarget, records::PartyKind};
use helsenett_synth::Size;

#[derive(clap::Args)]
pub struct Args {
    /// Where the demo keeps its country.
    #[arg(long, value_name = "DIR", default_value = "helsenett-demo")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Seed of the country made on first run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub async fn run(args: Args, mut config: Config) -> anyhow::Result<()> {
    // The demo is always the embedded store: it must run on a machine with nothing installed.
    config.data_dir = args.data_dir;
    config.database_url = None;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let store = Store::open(&StoreTarget::DataDir(config.data_dir.clone())).await?;
    if store.country_info().await?.is_none() {
        let _ = writeln!(
            std::io::stdout(),
            "First run: generating a small synthetic country in {} ...",
            config.data_dir.display()
        );
        crate::synth::generate(&store, Size::Small, args.seed, None, None, &config.data_dir)
            .await?;
    }
    let guide = guide(&store, &config).await?;
    store.close().await;

    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(crate::server::run(config, Some(ready_tx)));
    if let Ok(addr) = ready_rx.await {
        // A closed stdout (the reader went away) must not stop the server.
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            guide.replace("{base}", &format!("http://{addr}"))
        );
    }
    server.await?
}

/// The welcome text: URLs and a few synthetic identities to try, read from the store.
async fn guide(store: &Store, config: &Config) -> anyhow::Result<String> {
    let info = store
        .country_info()
        .await?
        .ok_or_else(|| anyhow::anyhow!("the demo store holds no country"))?;
    let gps = store.parties_of_kind(PartyKind::Person, 3).await?;
    let departments = store.parties_of_kind(PartyKind::Department, 2).await?;
    let mut text = format!(
        "\nhelsenett demo: a synthetic country (size {}, seed {}, as of {}) in {}\n\n\
         Health:   {{base}}/health\n\
         Metrics:  {{base}}/metrics\n\
         HelseID:  {{base}}/helseid/.well-known/openid-configuration\n\
         Address register: {{base}}/adresseregisteret/v1/openapi.json (API description; calls need a token)\n\
         Message exchange: {{base}}/msh/openapi.json (NHN's MSH API v2), validator: POST {{base}}/validate\n\
         Population register: {{base}}/persontjenesten/api/no-legal-basis/person/get-by-nin (NHN's Persontjenesten API v2; calls need a token)\n\
         Health personnel: {{base}}/hpr/api/v1/personnel/{{hprNumber}}; GP lists: {{base}}/fastlegeregisteret/api/v1/contracts?municipality=0301 (calls need a token)\n\
         Summary care record: POST {{base}}/kjernejournal/api/v1/record, the citizen's access log: {{base}}/kjernejournal/api/v1/citizen/access-log (a signed-in person's token)\n\
         Clients:  {}/helseid-clients.jsonl (a system client per organisation, private keys included)\n\n\
         Everyone and everything here is synthetic: fødselsnummer have month + 80, organisasjonsnummer\n\
         begin with 3, HER-ids begin with 8 and HPR-numbers with 9.\n\n\
         Communication parties to try:\n",
        info.size,
        info.seed,
        info.as_of,
        config.data_dir.display(),
        config.data_dir.display()
    );
    for party in gps.iter().chain(&departments) {
        let hpr = party.hpr.map(|h| format!(", HPR {h}")).unwrap_or_default();
        text.push_str(&format!(
            "  HER-id {:<10} {:<10} {}{hpr} (organisation {})\n",
            party.her_id,
            party.kind.as_str(),
            party.name,
            party.orgnr
        ));
    }
    text.push_str(
        "\nTest credentials: each organisation's signing and encryption certificates are issued by the\n\
         synthetic test CA, and their private keys are in the store (tables certificate_authority,\n\
         certificate and synthetic_key of helsenett.db). `helsenett register search --data-dir DIR`\n\
         looks parties up from the command line; `helsenett msg send|receive|ack|status --data-dir DIR`\n\
         acts as any of them (sealed messages through this server); `helsenett validate FILE` checks a\n\
         MsgHead or AppRec against the official schemas. Stop with Ctrl-C.\n",
    );
    Ok(text)
}
