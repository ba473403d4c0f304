//! The generation pipeline. One thread makes the country municipality by municipality in a fixed
//! order (so the result depends only on the seed), a second makes the keys and certificates, and the
//! caller's task writes each municipality to the store as it arrives. Everything is written in
//! one transaction, the `country` row last: a store holds a whole country or none of it.

use std::{collections::HashMap, path::PathBuf, thread, time::Instant};

use chrono::NaiveDate;
use helsenett_core::{HerId, time::now_millis};
use helsenett_register::certs;
use helsenett_store::{
    Prepared, Store, StoreError, Writer,
    gp::GpListHistory,
    records::{
        Certificate, CertificateAuthority, CertificateUsage, CountryInfo, GpListMember,
        Municipality, Organisation, PartyKind, Person, SyntheticKey,
    },
};
use indicatif::ProgressBar;
use openssl::pkey::{PKey, Private};
use tokio::sync::mpsc;

use crate::{
    SynthError,
    export::Exporter,
    gp, hpr, kjernejournal,
    people::{NinAllocator, PeopleMaker},
    pki::{self, KeyPurpose, Subject, TestCa},
    plan::Plan,
    providers::{Batch, Providers, Sequences},
    reference::{MunicipalityRef, reference},
    seeded_rng,
};

pub struct Options {
    pub seed: u64,
    /// The country's "today": ages, validity periods and certificate dates follow from it.
    pub as_of: NaiveDate,
    /// Where to write the newline-delimited JSON export, if anywhere.
    pub export: Option<PathBuf>,
}

/// What was made, for the caller to report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub municipalities: usize,
    pub persons: usize,
    pub organisations: usize,
    pub communication_parties: usize,
    pub health_personnel: usize,
    pub gp_lists: usize,
    pub cpp_processes: usize,
    pub certificates: usize,
}

/// What the generator thread hands back after the last batch.
struct Finish {
    ca: TestCa,
    keys: Vec<PKey<Private>>,
    certificates: Vec<Certificate>,
}

/// The dates a country can have: everyone alive on them (up to 100 years old) was born in the
/// years 1900 to 2039, which a fødselsnummer's individual number can encode.
pub const AS_OF_RANGE: (NaiveDate, NaiveDate) = (
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("a date"),
    NaiveDate::from_ymd_opt(2039, 12, 31).expect("a date"),
);

/// Generates the country of `plan` into an empty `store`.
pub async fn generate(
    store: &Store,
    plan: Plan,
    options: Options,
    progress: &ProgressBar,
) -> Result<Summary, SynthError> {
    let (first, last) = AS_OF_RANGE;
    if !(first..=last).contains(&options.as_of) {
        return Err(SynthError::AsOf(options.as_of));
    }
    if let Some(info) = store.country_info().await? {
        return Err(SynthError::AlreadyGenerated {
            size: info.size,
            seed: info.seed,
        });
    }
    if store.holds_country_data().await? {
        return Err(SynthError::Incomplete);
    }
    let started = Instant::now();
    let municipalities: Vec<Municipality> = plan
        .municipalities
        .iter()
        .map(|(m, _)| Municipality {
            number: m.number.to_string(),
            name: m.name.into(),
            county: m.county.into(),
            population: m.population,
        })
        .collect();
    let mut writer = store.writer().await?;
    writer.drop_bulk_indexes().await?;
    writer.insert_all(&municipalities).await?;
    let mut summary = Summary {
        municipalities: municipalities.len(),
        ..Summary::default()
    };
    progress.set_length(plan.persons());
    let mut people = People::with_capacity(plan.persons() as usize);

    let (tx, mut rx) = mpsc::channel::<Batch>(2);
    let seed = options.seed;
    let as_of = options.as_of;
    let size = plan.name.clone();
    let generator = thread::Builder::new()
        .name("synth-generator".into())
        .spawn(move || make_country(plan, options, tx))
        .map_err(|e| SynthError::Thread(e.to_string()))?;

    // People are held back and written at the end in identifier order: appending to the
    // person B-trees is several times faster than inserting all over them.
    let mut written = Ok(());
    while let Some(mut batch) = rx.recv().await {
        progress.inc(batch.persons.len() as u64);
        people.take(&mut batch);
        written = write_batch(&mut writer, &batch, &mut summary).await;
        if written.is_err() {
            break;
        }
    }
    // Dropping the receiver stops a generator that is still sending after a write failed.
    drop(rx);
    // People are written while the PKI thread may still be issuing certificates. A failed write
    // is reported before the generator's error, which is then only that the writer stopped; a
    // failed generator is reported after, and the transaction is rolled back either way.
    if written.is_ok() {
        summary.persons = people.persons.len();
        written = people.write(&mut writer, progress).await;
        if written.is_ok() {
            writer.build_bulk_indexes().await?;
        }
    }
    let finish = join(generator, "generator").await;
    written?;
    let finish = finish??;

    let keys: Vec<SyntheticKey> = finish
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Ok(SyntheticKey {
                id: i as i64,
                private_key_pem: pem(k.private_key_to_pem_pkcs8()?),
            })
        })
        .collect::<Result<_, openssl::error::ErrorStack>>()?;
    let ca = CertificateAuthority {
        name: pki::CA_NAME.into(),
        certificate_pem: pem(finish.ca.certificate().to_pem()?),
        private_key_pem: Some(pem(finish.ca.private_key().private_key_to_pem_pkcs8()?)),
    };
    writer.insert_all(&[ca]).await?;
    writer.insert_all(&keys).await?;
    writer.insert_all(&finish.certificates).await?;
    summary.certificates = finish.certificates.len();
    let info = CountryInfo {
        size,
        seed,
        as_of,
        generator_version: env!("CARGO_PKG_VERSION").into(),
        generated_at: now_millis(),
    };
    writer.insert_all(&[info]).await?;
    writer.commit().await?;
    progress.finish_and_clear();
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        persons = summary.persons,
        "synthetic country generated"
    );
    Ok(summary)
}

async fn write_batch(
    writer: &mut Writer,
    batch: &Batch,
    summary: &mut Summary,
) -> Result<(), SynthError> {
    writer.insert_all(&batch.organisations).await?;
    writer.insert_all(&batch.parties).await?;
    writer.insert_all(&batch.cpp).await?;
    writer.insert_all(&batch.coverage).await?;
    writer.insert_all(&batch.personnel).await?;
    writer.insert_all(&batch.hpr_approvals).await?;
    writer.insert_all(&batch.hpr_specialities).await?;
    writer.insert_all(&batch.hpr_suspensions).await?;
    writer.insert_all(&batch.gp_lists).await?;
    // Entries first: documents and episodes refer to them.
    writer.insert_all(&batch.kj_entries).await?;
    writer.insert_all(&batch.kj_documents).await?;
    writer.insert_all(&batch.kj_episodes).await?;
    writer.insert_all(&batch.kj_records).await?;
    summary.organisations += batch.organisations.len();
    summary.communication_parties += batch.parties.len();
    summary.cpp_processes += batch.cpp.len();
    summary.health_personnel += batch.personnel.len();
    summary.gp_lists += batch.gp_lists.len();
    Ok(())
}

/// Waits for a thread without blocking the async runtime (the PKI thread may still be at work).
async fn join<T: Send + 'static>(
    thread: thread::JoinHandle<T>,
    name: &str,
) -> Result<T, SynthError> {
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| SynthError::Thread(format!("the {name} thread panicked")))
}

/// The country's people and their GP list places, gathered from every batch.
struct People {
    persons: Vec<Person>,
    gp_members: Vec<GpListMember>,
    gp_history: Vec<GpListHistory>,
}

impl People {
    /// Room for everyone up front, with slack for the last household of each municipality:
    /// growing a vector of millions would copy it and briefly need twice the memory.
    fn with_capacity(persons: usize) -> Self {
        let persons = persons + persons / 64 + 64;
        Self {
            persons: Vec::with_capacity(persons),
            gp_members: Vec::with_capacity(persons),
            gp_history: Vec::new(),
        }
    }

    fn take(&mut self, batch: &mut Batch) {
        self.persons.append(&mut batch.persons);
        self.gp_members.append(&mut batch.gp_members);
        self.gp_history.append(&mut batch.gp_history);
    }

    /// Writes everyone sorted by fødselsnummer, the key of both tables. A helper thread sorts
    /// and prepares each step's statements while the one before is being written.
    async fn write(self, writer: &mut Writer, progress: &ProgressBar) -> Result<(), SynthError> {
        let backend = writer.backend();
        let (tx, mut rx) = mpsc::channel::<Result<(usize, Prepared), StoreError>>(2);
        let preparer = thread::Builder::new()
            .name("synth-prepare".into())
            .spawn(move || {
                let People {
                    mut persons,
                    mut gp_members,
                    mut gp_history,
                } = self;
                persons.sort_unstable_by_key(|p| p.nin);
                gp_members.sort_unstable_by_key(|m| m.nin);
                gp_history.sort_unstable_by_key(|h| (h.nin, h.period.to, h.list_id));
                let steps = persons
                    .chunks(WRITE_CHUNK)
                    .map(|c| Prepared::new(backend, c).map(|p| (c.len(), p)))
                    .chain(
                        gp_members
                            .chunks(WRITE_CHUNK)
                            .map(|c| Prepared::new(backend, c).map(|p| (0, p))),
                    )
                    .chain(
                        gp_history
                            .chunks(WRITE_CHUNK)
                            .map(|c| Prepared::new(backend, c).map(|p| (0, p))),
                    );
                for step in steps {
                    // A closed channel means the writer stopped; it reports why.
                    if tx.blocking_send(step).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| SynthError::Thread(e.to_string()))?;
        progress.set_message("writing people");
        progress.set_position(0);
        let mut written = Ok(());
        while let Some(step) = rx.recv().await {
            let result = match step {
                Ok((persons, prepared)) => writer
                    .insert_prepared(prepared)
                    .await
                    .map(|()| progress.inc(persons as u64)),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                written = Err(e.into());
                break;
            }
        }
        drop(rx);
        join(preparer, "preparing").await?;
        written
    }
}

/// People written per step, so that progress moves and memory for parameters stays small.
const WRITE_CHUNK: usize = 50_000;

/// Runs on the generator thread: every batch in order. A second thread makes the key pool and
/// the CA, then certifies each organisation as it is made.
fn make_country(
    plan: Plan,
    options: Options,
    tx: mpsc::Sender<Batch>,
) -> Result<Finish, SynthError> {
    let Options {
        seed,
        as_of,
        export,
    } = options;
    let mut exporter = export.as_deref().map(Exporter::create).transpose()?;
    let key_pool = plan.key_pool;
    let (to_certify, certify_rx) = std::sync::mpsc::channel::<(Organisation, HerId)>();
    let pki = thread::Builder::new()
        .name("synth-pki".into())
        .spawn(move || certify(seed, as_of, key_pool, certify_rx))
        .map_err(|e| SynthError::Thread(e.to_string()))?;
    let reference = reference();
    let mut nins = NinAllocator::default();
    let mut seq = Sequences::default();
    let mut organisations: Vec<Organisation> = Vec::new();
    let mut send =
        |batch: Batch, organisations: &mut Vec<Organisation>| -> Result<(), SynthError> {
            if let Some(exporter) = exporter.as_mut() {
                exporter.write(&batch)?;
            }
            // An organisation's certificates are its own party's; its units inherit them.
            let own_party: HashMap<_, _> = batch
                .parties
                .iter()
                .filter(|p| p.kind == PartyKind::Organisation)
                .map(|p| (p.orgnr, p.her_id))
                .collect();
            for org in &batch.organisations {
                organisations.push(org.clone());
                let her_id = own_party[&org.orgnr];
                // A stopped PKI thread reports why when it is joined.
                let _ = to_certify.send((org.clone(), her_id));
            }
            // A closed channel means the writer failed; it reports why.
            tx.blocking_send(batch)
                .map_err(|_| SynthError::WriterStopped)
        };

    // Those drawn for a hospital contact, by county, until the county's hospitals are made.
    let mut patients: HashMap<&str, Vec<_>> = HashMap::new();
    // Kjernejournal's steps, in the order they are made, which its ids follow.
    let mut kj_steps = 0u16..;
    for (municipality, persons) in &plan.municipalities {
        let mut rng = seeded_rng(seed, &format!("municipality:{}", municipality.number));
        let mut people = PeopleMaker {
            rng: &mut rng,
            reference,
            nins: &mut nins,
            as_of,
            municipality,
        };
        let mut batch = Batch {
            persons: people.households(*persons),
            ..Batch::default()
        };
        Providers::new(people, &mut seq, &mut batch).municipality();
        let mut hpr_rng = seeded_rng(seed, &format!("hpr:{}", municipality.number));
        hpr::register(&mut batch, &mut hpr_rng, as_of);
        let mut gp_rng = seeded_rng(seed, &format!("gp:{}", municipality.number));
        gp::places(&mut batch, &mut gp_rng, as_of);
        let mut kj_rng = seeded_rng(seed, &format!("kjernejournal:{}", municipality.number));
        let step = kj_steps.next().expect("steps");
        let drawn = kjernejournal::records(&mut batch, &mut kj_rng, as_of, step);
        patients
            .entry(municipality.county)
            .or_default()
            .extend(drawn);
        send(batch, &mut organisations)?;
    }
    for (county, hospitals) in counties(&plan) {
        let mut rng = seeded_rng(seed, &format!("county:{county}"));
        let municipality = hospitals[0];
        let people = PeopleMaker {
            rng: &mut rng,
            reference,
            nins: &mut nins,
            as_of,
            municipality,
        };
        let mut batch = Batch::default();
        Providers::new(people, &mut seq, &mut batch).health_trust(
            county,
            &hospitals.iter().map(|m| m.name).collect::<Vec<_>>(),
        );
        let mut kj_rng = seeded_rng(seed, &format!("kjernejournal:county:{county}"));
        let drawn = patients.remove(county).unwrap_or_default();
        let step = kj_steps.next().expect("steps");
        kjernejournal::contacts(&mut batch, &mut kj_rng, as_of, step, &drawn);
        send(batch, &mut organisations)?;
    }
    // The writer may go on while the last certificates are issued.
    drop(tx);
    drop(to_certify);

    let finish = pki
        .join()
        .map_err(|_| SynthError::Thread("the PKI thread panicked".into()))??;
    if let Some(exporter) = exporter {
        exporter.finish(&organisations, &finish.certificates)?;
    }
    Ok(finish)
}

/// Makes the key pool and the CA, then a signing and an encryption certificate for each
/// organisation received, held by the organisation's own party. Keys are drawn from the pool in turn; serials follow the
/// organisation order (the CA has serial 1).
fn certify(
    seed: u64,
    as_of: NaiveDate,
    key_pool: usize,
    organisations: std::sync::mpsc::Receiver<(Organisation, HerId)>,
) -> Result<Finish, SynthError> {
    let keys = key_pool_in_parallel(seed, key_pool)?;
    let ca = TestCa::new(seed, as_of)?;
    let mut certificates = Vec::new();
    let added_at = as_of
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_millis();
    for (org, her_id) in organisations {
        let orgnr = org.orgnr.to_string();
        let subject = Subject {
            name: &org.name,
            orgnr: &orgnr,
        };
        for (usage, purpose) in [
            (CertificateUsage::Signing, KeyPurpose::Signing),
            (CertificateUsage::Encryption, KeyPurpose::Encryption),
        ] {
            let n = certificates.len();
            let key_id = n % keys.len();
            let cert = ca.issue(&subject, purpose, &keys[key_id], n as u64 + 2, as_of)?;
            let der = cert.to_der()?;
            certificates.push(Certificate {
                fingerprint: certs::fingerprint(&der),
                her_id,
                usage,
                serial: format!("{:x}", n + 2),
                issuer: certs::one_line(cert.issuer_name()),
                subject: certs::one_line(cert.subject_name()),
                not_before: pki::unix_seconds(cert.not_before())? * 1000,
                not_after: pki::unix_seconds(cert.not_after())? * 1000,
                der,
                added_at,
                revoked_at: None,
                key_id: Some(key_id as i64),
            });
        }
    }
    Ok(Finish {
        ca,
        keys,
        certificates,
    })
}

/// Each county's hospital towns: its largest planned municipalities, one per 300,000 people
/// (at least one, at most four).
fn counties(plan: &Plan) -> Vec<(&'static str, Vec<&'static MunicipalityRef>)> {
    let mut counties: Vec<(&'static str, Vec<(&'static MunicipalityRef, u32)>)> = Vec::new();
    for &(m, persons) in &plan.municipalities {
        match counties.iter_mut().find(|(c, _)| *c == m.county) {
            Some((_, towns)) => towns.push((m, persons)),
            None => counties.push((m.county, vec![(m, persons)])),
        }
    }
    counties
        .into_iter()
        .map(|(county, mut towns)| {
            let total: u32 = towns.iter().map(|(_, n)| n).sum();
            towns.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.number.cmp(&b.0.number)));
            let count = (1 + total / 300_000).min(4) as usize;
            (
                county,
                towns.into_iter().take(count).map(|(m, _)| m).collect(),
            )
        })
        .collect()
}

/// The pool's keys, made on every core: each key depends only on its index, so the pool is the
/// same however the work is split. Key generation is most of a small country's time.
fn key_pool_in_parallel(seed: u64, size: usize) -> Result<Vec<PKey<Private>>, SynthError> {
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..size)
                        .step_by(threads)
                        .map(|i| Ok((i, pki::seeded_rsa(seed, &format!("party-key:{i}"))?)))
                        .collect::<Result<Vec<_>, SynthError>>()
                })
            })
            .collect();
        let mut keys = Vec::with_capacity(size);
        for worker in workers {
            keys.extend(
                worker
                    .join()
                    .map_err(|_| SynthError::Thread("a key thread panicked".into()))??,
            );
        }
        keys.sort_unstable_by_key(|(i, _)| *i);
        Ok(keys.into_iter().map(|(_, key)| key).collect())
    })
}

fn pem(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("PEM is ASCII")
}
