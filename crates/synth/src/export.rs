//! Newline-delimited JSON export of the country, for tools outside helsenett.

use std::{
    collections::HashMap,
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use helsenett_core::{HerId, HprNummer, Organisasjonsnummer};
use helsenett_store::records::{
    Address, Certificate, Organisation, PartyKind, Person, kind_code, sex_code,
};
use serde::Serialize;

use crate::{SynthError, providers::Batch};

pub struct Exporter {
    dir: PathBuf,
    persons: BufWriter<File>,
    parties: BufWriter<File>,
    /// Each organisation's own party, which holds its certificates.
    own_party: HashMap<Organisasjonsnummer, HerId>,
}

#[derive(Serialize)]
struct PersonLine<'a> {
    number_kind: &'static str,
    birth_date: String,
    sex: &'static str,
    #[serde(flatten)]
    person: &'a Person,
    gp_hpr: Option<HprNummer>,
}

#[derive(Serialize)]
struct PartyLine<'a> {
    #[serde(flatten)]
    party: &'a helsenett_store::records::CommunicationParty,
    cpp: &'a [Capability<'a>],
}

#[derive(Serialize, Clone)]
struct Capability<'a> {
    message_type: &'a str,
    role: &'static str,
    versions: &'a str,
}

#[derive(Serialize)]
struct OrganisationLine<'a> {
    orgnr: String,
    name: &'a str,
    kind: &'static str,
    parent_orgnr: Option<String>,
    address: &'a Address,
    certificates: Vec<CertificateLine<'a>>,
}

#[derive(Serialize)]
struct CertificateLine<'a> {
    usage: &'static str,
    serial: &'a str,
    subject: &'a str,
    not_before: i64,
    not_after: i64,
    sha256: &'a str,
}

impl Exporter {
    pub fn create(dir: &Path) -> Result<Self, SynthError> {
        std::fs::create_dir_all(dir).map_err(|e| SynthError::export(dir, e))?;
        let open = |name: &str| {
            let path = dir.join(name);
            File::create(&path)
                .map(BufWriter::new)
                .map_err(|e| SynthError::export(&path, e))
        };
        Ok(Self {
            dir: dir.to_owned(),
            persons: open("persons.jsonl")?,
            parties: open("communication_parties.jsonl")?,
            own_party: HashMap::new(),
        })
    }

    /// Writes a batch's persons (with their GP) and communication parties (with their CPP).
    pub fn write(&mut self, batch: &Batch) -> Result<(), SynthError> {
        let gp_of_list: HashMap<i64, HprNummer> =
            batch.gp_lists.iter().map(|l| (l.id, l.gp)).collect();
        let gp_of_person: HashMap<_, _> = batch
            .gp_members
            .iter()
            .map(|m| (m.nin, gp_of_list.get(&m.list_id).copied()))
            .collect();
        for person in &batch.persons {
            let line = PersonLine {
                number_kind: kind_code(person.nin.kind()),
                birth_date: person.nin.birth_date().to_string(),
                sex: sex_code(person.nin.sex()),
                person,
                gp_hpr: gp_of_person.get(&person.nin).copied().flatten(),
            };
            line_to(&mut self.persons, &line)
                .map_err(|e| SynthError::export(&self.dir.join("persons.jsonl"), e))?;
        }
        let mut cpp: HashMap<_, Vec<Capability>> = HashMap::new();
        for p in &batch.cpp {
            cpp.entry(p.her_id).or_default().push(Capability {
                message_type: &p.message_type,
                role: p.role.as_str(),
                versions: &p.versions,
            });
        }
        for party in &batch.parties {
            if party.kind == PartyKind::Organisation {
                self.own_party.insert(party.orgnr, party.her_id);
            }
            let line = PartyLine {
                party,
                cpp: cpp.get(&party.her_id).map_or(&[], Vec::as_slice),
            };
            line_to(&mut self.parties, &line).map_err(|e| {
                SynthError::export(&self.dir.join("communication_parties.jsonl"), e)
            })?;
        }
        Ok(())
    }

    /// Writes the organisations with their certificates and flushes every file.
    pub fn finish(
        mut self,
        organisations: &[Organisation],
        certificates: &[Certificate],
    ) -> Result<(), SynthError> {
        let path = self.dir.join("organisations.jsonl");
        let fail = |e| SynthError::export(&path, e);
        let mut out = BufWriter::new(File::create(&path).map_err(fail)?);
        let mut by_org: HashMap<_, Vec<&Certificate>> = HashMap::new();
        for c in certificates {
            by_org.entry(c.her_id).or_default().push(c);
        }
        for org in organisations {
            let line = OrganisationLine {
                orgnr: org.orgnr.to_string(),
                name: &org.name,
                kind: org.kind.as_str(),
                parent_orgnr: org.parent.map(|p| p.to_string()),
                address: &org.address,
                certificates: self
                    .own_party
                    .get(&org.orgnr)
                    .and_then(|her_id| by_org.get(her_id))
                    .into_iter()
                    .flatten()
                    .map(|c| CertificateLine {
                        usage: c.usage.as_str(),
                        serial: &c.serial,
                        subject: &c.subject,
                        not_before: c.not_before,
                        not_after: c.not_after,
                        sha256: &c.fingerprint,
                    })
                    .collect(),
            };
            line_to(&mut out, &line).map_err(fail)?;
        }
        out.flush().map_err(fail)?;
        self.persons
            .flush()
            .map_err(|e| SynthError::export(&self.dir.join("persons.jsonl"), e))?;
        self.parties
            .flush()
            .map_err(|e| SynthError::export(&self.dir.join("communication_parties.jsonl"), e))
    }
}

fn line_to(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}
