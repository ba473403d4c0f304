//! Health service providers of a municipality (and of a county, for hospitals): organisations,
//! their departments and services, their health personnel, and the communication parties that
//! make them reachable in the network.

use chrono::{Days, NaiveDate};
use helsenett_core::{Fodselsnummer, HerId, HprNummer, NumberKind, Organisasjonsnummer};
use helsenett_store::{
    gp::GpListHistory,
    hpr::{HprApproval, HprSpeciality, HprSuspension},
    kjernejournal::{KjDocument, KjEntry, KjEpisode, KjRecord},
    records::{
        CommunicationParty, CppProcess, GpList, GpListMember, HealthPersonnel, Organisation,
        OrganisationKind, PartyCoverage, PartyKind, Person, Profession, Text,
    },
};
use rand::{
    Rng,
    seq::{IndexedRandom, SliceRandom},
};
use rand_chacha::ChaCha20Rng;

use crate::{cpp, people::PeopleMaker};

/// Synthetic HER-ids and HPR-numbers are nine digits, above any number issued to a real party.
const FIRST_HER_ID: u32 = 800_000_000;
const FIRST_HPR: u32 = 900_000_000;

/// Country-wide counters, advanced in a fixed order so that the country is deterministic.
pub struct Sequences {
    orgnr: u32,
    her_id: u32,
    hpr: u32,
    gp_list: i64,
}

impl Default for Sequences {
    fn default() -> Self {
        Self {
            orgnr: 0,
            her_id: FIRST_HER_ID,
            hpr: FIRST_HPR,
            gp_list: 0,
        }
    }
}

impl Sequences {
    fn orgnr(&mut self) -> Organisasjonsnummer {
        loop {
            self.orgnr += 1;
            if let Some(orgnr) = Organisasjonsnummer::synthetic(self.orgnr) {
                return orgnr;
            }
        }
    }

    fn her_id(&mut self) -> HerId {
        self.her_id += 1;
        HerId::new(self.her_id).expect("nine digits")
    }

    fn hpr(&mut self) -> HprNummer {
        self.hpr += 1;
        HprNummer::new(self.hpr).expect("nine digits")
    }

    fn gp_list(&mut self) -> i64 {
        self.gp_list += 1;
        self.gp_list
    }
}

/// What one step of generation adds to the country.
#[derive(Default)]
pub struct Batch {
    pub persons: Vec<Person>,
    pub organisations: Vec<Organisation>,
    pub parties: Vec<CommunicationParty>,
    pub cpp: Vec<CppProcess>,
    pub coverage: Vec<PartyCoverage>,
    pub personnel: Vec<HealthPersonnel>,
    pub hpr_approvals: Vec<HprApproval>,
    pub hpr_specialities: Vec<HprSpeciality>,
    pub hpr_suspensions: Vec<HprSuspension>,
    pub gp_lists: Vec<GpList>,
    pub gp_members: Vec<GpListMember>,
    pub gp_history: Vec<GpListHistory>,
    pub kj_entries: Vec<KjEntry>,
    pub kj_documents: Vec<KjDocument>,
    pub kj_episodes: Vec<KjEpisode>,
    pub kj_records: Vec<KjRecord>,
}

/// An organisation being built: its number, its own party, and its kind.
#[derive(Clone, Copy)]
struct Org {
    orgnr: Organisasjonsnummer,
    her_id: HerId,
    kind: OrganisationKind,
}

pub struct Providers<'a, 'p> {
    pub people: PeopleMaker<'p>,
    pub seq: &'a mut Sequences,
    pub batch: &'a mut Batch,
    /// Indices into `batch.persons` of adults who may be made health personnel, shuffled.
    staff: Vec<usize>,
}

impl<'a, 'p> Providers<'a, 'p> {
    pub fn new(people: PeopleMaker<'p>, seq: &'a mut Sequences, batch: &'a mut Batch) -> Self {
        let as_of = people.as_of;
        let mut staff: Vec<usize> = batch
            .persons
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.nin.kind() == NumberKind::Fodselsnummer && (28..=66).contains(&age(p.nin, as_of))
            })
            .map(|(i, _)| i)
            .collect();
        staff.shuffle(people.rng);
        Self {
            people,
            seq,
            batch,
            staff,
        }
    }

    fn rng(&mut self) -> &mut ChaCha20Rng {
        self.people.rng
    }

    /// The providers every municipality has, sized by its population, and the GP lists that
    /// cover every one of its people.
    pub fn municipality(&mut self) {
        let m = self.people.municipality;
        let persons = self.batch.persons.len() as u32;
        let per = |n: u32| (persons + n / 2) / n;

        // GPs are hired first: every person must be on a list, so a GP must exist.
        self.gp_offices(per(1_100).max(1));
        let kommune = self.organisation(
            OrganisationKind::Municipality,
            format!("{} kommune", m.name),
            None,
        );
        for service in [
            "Legevakt",
            "Helsestasjon",
            "Tildelingskontor helse og omsorg",
            "Psykisk helse og rus",
            "Fysio- og ergoterapitjenesten",
        ] {
            self.sub_party(
                kommune,
                kommune.her_id,
                PartyKind::Service,
                format!("{service}, {} kommune", m.name),
            );
        }
        let home_care = self.organisation(
            OrganisationKind::HomeCare,
            format!("Hjemmetjenesten i {}", m.name),
            Some(kommune.orgnr),
        );
        for zone in ZONES
            .iter()
            .take((1 + persons / 20_000).min(ZONES.len() as u32) as usize)
        {
            self.sub_party(
                home_care,
                home_care.her_id,
                PartyKind::Department,
                format!("Hjemmesykepleien sone {zone}"),
            );
        }
        for _ in 0..per(6_100).max(1) {
            let name = format!(
                "{} sykehjem",
                NURSING_HOMES.choose(self.rng()).expect("names")
            );
            let home = self.organisation(
                OrganisationKind::NursingHome,
                format!("{name}, {}", m.name),
                Some(kommune.orgnr),
            );
            for ward in 1..=self.rng().random_range(2..=5) {
                self.sub_party(
                    home,
                    home.her_id,
                    PartyKind::Department,
                    format!("{name} avdeling {ward}"),
                );
            }
            self.professional(home, Profession::Nurse, false);
        }
        // Nearly every Norwegian municipality has a pharmacy, however small.
        for _ in 0..per(5_500).max(1) {
            let street = self.street();
            let pharmacy = self.organisation(
                OrganisationKind::Pharmacy,
                format!("{street} apotek, {}", m.name),
                None,
            );
            for _ in 0..self.rng().random_range(1..=3) {
                self.professional(pharmacy, Profession::Pharmacist, false);
            }
        }
        self.clinics(
            OrganisationKind::PhysiotherapyClinic,
            "fysioterapi",
            Profession::Physiotherapist,
            per(4_000),
            2..=4,
        );
        self.clinics(
            OrganisationKind::DentalClinic,
            "tannklinikk",
            Profession::Dentist,
            per(3_300),
            1..=3,
        );
        self.clinics(
            OrganisationKind::SpecialistPractice,
            "spesialistpraksis",
            Profession::Doctor,
            per(10_000),
            1..=3,
        );
    }

    /// GP offices holding `gps` GPs between them; every person is put on one GP's list.
    fn gp_offices(&mut self, gps: u32) {
        let mut lists = Vec::new();
        let mut remaining = gps;
        while remaining > 0 {
            let size = self.rng().random_range(1..=6).min(remaining);
            remaining -= size;
            let street = self.street();
            let office = self.organisation(
                OrganisationKind::GpOffice,
                format!("{street} legekontor, {}", self.people.municipality.name),
                None,
            );
            for _ in 0..size {
                let Some(gp) = self.professional(office, Profession::Doctor, true) else {
                    continue;
                };
                lists.push((self.seq.gp_list(), gp, office.orgnr));
            }
        }
        if lists.is_empty() {
            return;
        }
        let mut members = vec![0u32; lists.len()];
        for person in &self.batch.persons {
            let i = self.people.rng.random_range(0..lists.len());
            members[i] += 1;
            self.batch.gp_members.push(GpListMember {
                nin: person.nin,
                list_id: lists[i].0,
                // Dated by `gp::places`, on its own random stream.
                since: self.people.as_of,
            });
        }
        for ((id, gp, office), count) in lists.into_iter().zip(members) {
            let capacity = (count + self.people.rng.random_range(0..300)).div_ceil(50) * 50;
            let municipality = self.people.municipality.number.to_string();
            self.batch.gp_lists.push(GpList {
                id,
                gp,
                office,
                municipality,
                capacity: capacity.max(50),
            });
        }
    }

    fn clinics(
        &mut self,
        kind: OrganisationKind,
        label: &str,
        profession: Profession,
        count: u32,
        staff: std::ops::RangeInclusive<u32>,
    ) {
        for _ in 0..count {
            let street = self.street();
            let clinic = self.organisation(
                kind,
                format!("{street} {label}, {}", self.people.municipality.name),
                None,
            );
            for _ in 0..self.rng().random_range(staff.clone()) {
                self.professional(clinic, profession, true);
            }
        }
    }

    /// A health trust for the county with its hospitals and their departments, and the
    /// county's laboratory. Hospital staff are not made: they are not reachable one by one.
    pub fn health_trust(&mut self, county: &str, hospitals: &[&str]) {
        let trust = self.organisation(
            OrganisationKind::HealthTrust,
            format!("Helse {county} HF"),
            None,
        );
        for place in hospitals {
            let hospital = self.organisation(
                OrganisationKind::Hospital,
                format!("{place} sykehus, Helse {county} HF"),
                Some(trust.orgnr),
            );
            for department in DEPARTMENTS {
                self.sub_party(
                    hospital,
                    hospital.her_id,
                    PartyKind::Department,
                    format!("{department}, {place} sykehus"),
                );
            }
            self.sub_party(
                hospital,
                hospital.her_id,
                PartyKind::Service,
                format!("Henvisningsmottak, {place} sykehus"),
            );
        }
        let lab = self.organisation(
            OrganisationKind::Laboratory,
            format!("Laboratoriemedisin {county}"),
            Some(trust.orgnr),
        );
        for section in ["Medisinsk biokjemi", "Mikrobiologi", "Patologi"] {
            self.sub_party(
                lab,
                lab.her_id,
                PartyKind::Department,
                format!("{section}, Laboratoriemedisin {county}"),
            );
        }
    }

    fn organisation(
        &mut self,
        kind: OrganisationKind,
        name: String,
        parent: Option<Organisasjonsnummer>,
    ) -> Org {
        let orgnr = self.seq.orgnr();
        let address = self.people.address();
        let her_id = self.party(
            orgnr,
            kind,
            PartyKind::Organisation,
            name.clone(),
            None,
            None,
        );
        self.batch.organisations.push(Organisation {
            orgnr,
            name,
            kind,
            parent,
            address,
        });
        Org {
            orgnr,
            her_id,
            kind,
        }
    }

    fn sub_party(&mut self, org: Org, parent: HerId, kind: PartyKind, name: String) -> HerId {
        self.party(org.orgnr, org.kind, kind, name, Some(parent), None)
    }

    /// Makes a local adult a health professional at `org`, registered in HPR, and, where
    /// `reachable`, a communication party of their own. `None` when nobody is left to hire.
    fn professional(
        &mut self,
        org: Org,
        profession: Profession,
        reachable: bool,
    ) -> Option<HprNummer> {
        let person = &self.batch.persons[self.staff.pop()?];
        let (nin, given_name, family_name) = (
            person.nin,
            person.given_name.clone(),
            person.family_name.clone(),
        );
        let hpr = self.seq.hpr();
        if reachable {
            let name = format!("{given_name} {family_name}");
            self.party(
                org.orgnr,
                org.kind,
                PartyKind::Person,
                name,
                Some(org.her_id),
                Some(hpr),
            );
        }
        self.batch.personnel.push(HealthPersonnel {
            hpr,
            nin,
            profession,
            given_name: given_name.to_string(),
            family_name: family_name.to_string(),
        });
        Some(hpr)
    }

    fn party(
        &mut self,
        orgnr: Organisasjonsnummer,
        org_kind: OrganisationKind,
        kind: PartyKind,
        name: String,
        parent: Option<HerId>,
        hpr: Option<HprNummer>,
    ) -> HerId {
        let her_id = self.seq.her_id();
        let as_of = self.people.as_of;
        let valid_from = as_of - Days::new(self.rng().random_range(30..3_650));
        // About one person in a hundred has left the network but is kept in the register.
        let active = kind != PartyKind::Person
            || org_kind == OrganisationKind::GpOffice
            || !self.rng().random_bool(0.01);
        let municipality = self.people.municipality.number.to_string();
        self.batch.parties.push(CommunicationParty {
            her_id,
            kind,
            name,
            orgnr,
            parent,
            hpr,
            municipality,
            active,
            valid_from,
            valid_to: None,
        });
        // A party serves the municipality it is in; a person is reached through their unit.
        if kind != PartyKind::Person {
            self.batch.coverage.push(PartyCoverage {
                her_id,
                municipality: self.people.municipality.number.to_string(),
            });
        }
        let processes = cpp::processes(self.rng(), her_id, org_kind, kind);
        self.batch.cpp.extend(processes);
        her_id
    }

    fn street(&mut self) -> Text {
        self.people
            .reference
            .street_names
            .choose(self.people.rng)
            .expect("streets")
            .clone()
    }
}

pub(crate) fn age(nin: Fodselsnummer, as_of: NaiveDate) -> i32 {
    as_of.years_since(nin.birth_date()).map_or(0, |y| y as i32)
}

const ZONES: [&str; 8] = [
    "Sentrum", "Nord", "Sør", "Øst", "Vest", "Indre", "Ytre", "Midt",
];

const NURSING_HOMES: [&str; 12] = [
    "Solheim",
    "Fjellheim",
    "Lindheim",
    "Sjøstrand",
    "Bakkehaugen",
    "Kirkebakken",
    "Furulund",
    "Eikelund",
    "Granly",
    "Solbakken",
    "Åsheim",
    "Bjørkely",
];

const DEPARTMENTS: [&str; 12] = [
    "Medisinsk avdeling",
    "Kirurgisk avdeling",
    "Ortopedisk avdeling",
    "Barne- og ungdomsklinikken",
    "Kvinneklinikken",
    "Nevrologisk avdeling",
    "Kreftavdelingen",
    "Akuttmottak",
    "Radiologisk avdeling",
    "Psykisk helsevern voksne",
    "Hjerteavdelingen",
    "Habiliteringstjenesten",
];
