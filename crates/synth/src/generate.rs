//! The generation pipeline. One thread makes the country municipality by municipality in a fixed
//! order (so the result depends only on the seed), a second makes the RSA key pool, and the
//! caller's task writes each municipality to the store as it arrives. The `country` row is
//! written last: a store that has it holds a complete country.

use std::{path::PathBuf, thread, time::Instant};

use chrono::NaiveDate;
use helsenett_core::time::now_millis;
use helsenett_store::{
    Store,
    records::{
        Certificate, CertificateAuthority, CertificateUsage, CountryInfo, Municipality,
        Organisation, SyntheticKey,
    },
};
use indicatif::ProgressBar;
use openssl::{
    pkey::{PKey, Private},
    x509::X509NameRef,
};
use tokio::sync::mpsc;

use crate::{
    SynthError,
    export::Exporter,
    people::{NinAllocator, PeopleMaker},
    pki::{self, KeyPurpose, Subject, TestCa},
    plan::Plan,
    providers::{Batch, Providers, Sequences},
    reference::reference,
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

/// Generates the country of `plan` into an empty `store`.
pub async fn generate(
    store: &Store,
    plan: Plan,
    options: Options,
    progress: &ProgressBar,
) -> Result<Summary, SynthError> {
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
            number: m.number.into(),
            name: m.name.into(),
            county: m.county.into(),
            population: m.population,
        })
        .collect();
    store.insert_all(&municipalities).await?;
    let mut summary = Summary {
        municipalities: municipalities.len(),
        ..Summary::default()
    };
    progress.set_length(plan.persons());

    let (tx, mut rx) = mpsc::channel::<Batch>(2);
    let seed = options.seed;
    let as_of = options.as_of;
    let size = plan.name.clone();
    let generator = thread::Builder::new()
        .name("synth-generator".into())
        .spawn(move || make_country(plan, options, tx))
        .map_err(|e| SynthError::Thread(e.to_string()))?;

    let mut written = Ok(());
    while let Some(batch) = rx.recv().await {
        written = write_batch(store, &batch, &mut summary).await;
        if written.is_err() {
            break;
        }
        progress.inc(batch.persons.len() as u64);
    }
    // Dropping the receiver stops a generator that is still sending after a write failed.
    drop(rx);
    let finish = generator
        .join()
        .map_err(|_| SynthError::Thread("the generator thread panicked".into()));
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
    store.insert_all(&[ca]).await?;
    store.insert_all(&keys).await?;
    store.insert_all(&finish.certificates).await?;
    summary.certificates = finish.certificates.len();
    let info = CountryInfo {
        size,
        seed,
        as_of,
        generator_version: env!("CARGO_PKG_VERSION").into(),
        generated_at: now_millis(),
    };
    store.insert_all(&[info]).await?;
    progress.finish_and_clear();
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        persons = summary.persons,
        "synthetic country generated"
    );
    Ok(summary)
}

async fn write_batch(
    store: &Store,
    batch: &Batch,
    summary: &mut Summary,
) -> Result<(), SynthError> {
    store.insert_all(&batch.persons).await?;
    store.insert_all(&batch.organisations).await?;
    store.insert_all(&batch.parties).await?;
    store.insert_all(&batch.cpp).await?;
    store.insert_all(&batch.personnel).await?;
    store.insert_all(&batch.gp_lists).await?;
    store.insert_all(&batch.gp_members).await?;
    summary.persons += batch.persons.len();
    summary.organisations += batch.organisations.len();
    summary.communication_parties += batch.parties.len();
    summary.cpp_processes += batch.cpp.len();
    summary.health_personnel += batch.personnel.len();
    summary.gp_lists += batch.gp_lists.len();
    Ok(())
}

/// Runs on the generator thread: every batch in order, then the certificates.
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
    let key_pool = plan.key_pool;
    let keys = thread::Builder::new()
        .name("synth-keys".into())
        .spawn(move || {
            (0..key_pool)
                .map(|i| pki::seeded_rsa(seed, &format!("party-key:{i}")))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| SynthError::Thread(e.to_string()))?;
    let mut exporter = export.as_deref().map(Exporter::create).transpose()?;
    let reference = reference();
    let mut nins = NinAllocator::default();
    let mut seq = Sequences::default();
    let mut organisations: Vec<Organisation> = Vec::new();
    let mut send =
        |batch: Batch, organisations: &mut Vec<Organisation>| -> Result<(), SynthError> {
            if let Some(exporter) = exporter.as_mut() {
                exporter.write(&batch)?;
            }
            organisations.extend(batch.organisations.iter().cloned());
            // A closed channel means the writer failed; it reports why.
            tx.blocking_send(batch)
                .map_err(|_| SynthError::WriterStopped)
        };

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
        send(batch, &mut organisations)?;
    }
    for (county, hospitals) in counties(&plan) {
        let mut rng = seeded_rng(seed, &format!("county:{county}"));
        let municipality = plan
            .municipalities
            .iter()
            .find(|(m, _)| m.name == hospitals[0])
            .expect("hospital town is planned")
            .0;
        let people = PeopleMaker {
            rng: &mut rng,
            reference,
            nins: &mut nins,
            as_of,
            municipality,
        };
        let mut batch = Batch::default();
        Providers::new(people, &mut seq, &mut batch).health_trust(county, &hospitals);
        send(batch, &mut organisations)?;
    }
    drop(send);

    let keys = keys
        .join()
        .map_err(|_| SynthError::Thread("the key thread panicked".into()))??;
    let ca = TestCa::new(seed, as_of)?;
    let certificates = issue_certificates(&ca, &keys, &organisations, as_of)?;
    if let Some(exporter) = exporter {
        exporter.finish(&organisations, &certificates)?;
    }
    Ok(Finish {
        ca,
        keys,
        certificates,
    })
}

/// Each county's hospital towns: its largest planned municipalities, one per 300,000 people
/// (at least one, at most four).
fn counties(plan: &Plan) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut counties: Vec<(&'static str, Vec<(&'static str, u32)>)> = Vec::new();
    for (m, persons) in &plan.municipalities {
        match counties.iter_mut().find(|(c, _)| *c == m.county) {
            Some((_, towns)) => towns.push((m.name, *persons)),
            None => counties.push((m.county, vec![(m.name, *persons)])),
        }
    }
    counties
        .into_iter()
        .map(|(county, mut towns)| {
            let total: u32 = towns.iter().map(|(_, n)| n).sum();
            towns.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let count = (1 + total / 300_000).min(4) as usize;
            (
                county,
                towns
                    .into_iter()
                    .take(count)
                    .map(|(name, _)| name)
                    .collect(),
            )
        })
        .collect()
}

/// A signing and an encryption certificate per organisation, issued on two threads. Keys are
/// drawn from the pool in turn; serials follow the organisation order (the CA has serial 1).
fn issue_certificates(
    ca: &TestCa,
    keys: &[PKey<Private>],
    organisations: &[Organisation],
    as_of: NaiveDate,
) -> Result<Vec<Certificate>, SynthError> {
    let half = organisations.len().div_ceil(2).max(1);
    thread::scope(|scope| {
        let parts: Vec<_> = organisations
            .chunks(half)
            .enumerate()
            .map(|(chunk, orgs)| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(orgs.len() * 2);
                    for (i, org) in orgs.iter().enumerate() {
                        let index = (chunk * half + i) * 2;
                        for (offset, (usage, purpose)) in [
                            (CertificateUsage::Signing, KeyPurpose::Signing),
                            (CertificateUsage::Encryption, KeyPurpose::Encryption),
                        ]
                        .into_iter()
                        .enumerate()
                        {
                            let n = index + offset;
                            let key_id = n % keys.len();
                            let orgnr = org.orgnr.to_string();
                            let cert = ca.issue(
                                &Subject {
                                    name: &org.name,
                                    orgnr: &orgnr,
                                },
                                purpose,
                                &keys[key_id],
                                n as u64 + 2,
                                as_of,
                            )?;
                            out.push(Certificate {
                                serial: format!("{:x}", n + 2),
                                orgnr: org.orgnr,
                                usage,
                                subject: one_line(cert.subject_name()),
                                not_before: pki::unix_seconds(cert.not_before())? * 1000,
                                not_after: pki::unix_seconds(cert.not_after())? * 1000,
                                der: cert.to_der()?,
                                key_id: Some(key_id as i64),
                            });
                        }
                    }
                    Ok::<_, SynthError>(out)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(organisations.len() * 2);
        for part in parts {
            all.extend(
                part.join()
                    .map_err(|_| SynthError::Thread("a certificate thread panicked".into()))??,
            );
        }
        Ok(all)
    })
}

/// `C=NO, O=..., CN=...` in the certificate's own order.
fn one_line(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn pem(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("PEM is ASCII")
}
