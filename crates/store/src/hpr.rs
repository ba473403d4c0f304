//! Helsepersonellregisteret (HPR): a professional's approvals (godkjenninger), each for one
//! profession with an authorisation or licence and a period, the specialities approved under
//! it and the periods it was suspended; and whether the professional is authorised on a day.

use chrono::NaiveDate;
use helsenett_core::{Fodselsnummer, HprNummer};
use serde::Serialize;

use crate::{
    Record, Store, StoreError, Value,
    records::{HealthPersonnel, Period, Profession, codes, stored, stored_number},
    with_pool,
};

pub const PROFESSION_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.1.9060";
pub const AUTHORISATION_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.1.7704";
pub const SPECIALITY_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.1.7426";

codes!(
    /// The kind of approval, kodeverk 7704.
    Authorisation {
        Authorisation = "1",
        AuthorisationWithConditions = "17",
        Licence = "4",
        /// The licence of a doctor in the first part of specialist training.
        Lis1Licence = "18",
    }
);

codes!(
    /// Approved specialities, kodeverk 7426. Only codes checked against HL7 Norway's published
    /// examples are listed; the full list is Volven's.
    Speciality {
        GeneralPractice = "1",
        OrthopaedicSurgery = "152",
    }
);

impl Profession {
    /// The display name kodeverk 9060 gives the code.
    pub fn display(self) -> &'static str {
        match self {
            Profession::Doctor => "Lege",
            Profession::Nurse => "Sykepleier",
            Profession::Pharmacist => "Provisorfarmasøyt",
            Profession::Physiotherapist => "Fysioterapeut",
            Profession::Dentist => "Tannlege",
        }
    }
}

impl Authorisation {
    pub fn display(self) -> &'static str {
        match self {
            Authorisation::Authorisation => "Autorisasjon",
            Authorisation::AuthorisationWithConditions => "Autorisasjon med vilkår",
            Authorisation::Licence => "Lisens",
            Authorisation::Lis1Licence => "LIS1-lisens",
        }
    }
}

impl Speciality {
    pub fn display(self) -> &'static str {
        match self {
            Speciality::GeneralPractice => "Allmennmedisin",
            Speciality::OrthopaedicSurgery => "Ortopedisk kirurgi",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HprApproval {
    pub hpr: HprNummer,
    pub profession: Profession,
    pub authorisation: Authorisation,
    pub period: Period,
}

impl Record for HprApproval {
    const TABLE: &'static str = "hpr_approval";
    const COLUMNS: &'static [&'static str] = &[
        "hpr",
        "profession",
        "authorisation",
        "valid_from",
        "valid_to",
    ];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Int(self.hpr.get().into()));
        push(Value::Text(self.profession.as_str()));
        push(Value::Text(self.authorisation.as_str()));
        self.period.values(push);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HprSpeciality {
    pub hpr: HprNummer,
    pub profession: Profession,
    pub speciality: Speciality,
    pub period: Period,
}

impl Record for HprSpeciality {
    const TABLE: &'static str = "hpr_speciality";
    const COLUMNS: &'static [&'static str] =
        &["hpr", "profession", "speciality", "valid_from", "valid_to"];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Int(self.hpr.get().into()));
        push(Value::Text(self.profession.as_str()));
        push(Value::Text(self.speciality.as_str()));
        self.period.values(push);
    }
}

/// A suspension of every approval of one profession (by Statens helsetilsyn).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HprSuspension {
    pub hpr: HprNummer,
    pub profession: Profession,
    pub period: Period,
}

impl Record for HprSuspension {
    const TABLE: &'static str = "hpr_suspension";
    const COLUMNS: &'static [&'static str] = &["hpr", "profession", "valid_from", "valid_to"];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Int(self.hpr.get().into()));
        push(Value::Text(self.profession.as_str()));
        self.period.values(push);
    }
}

/// Where an approval stands on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalStatus {
    Active,
    Suspended,
    /// Expired, or revoked.
    Ended,
    NotYetValid,
}

/// A professional as HPR holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HprEntry {
    pub personnel: HealthPersonnel,
    pub approvals: Vec<HprApproval>,
    pub specialities: Vec<HprSpeciality>,
    pub suspensions: Vec<HprSuspension>,
}

impl HprEntry {
    pub fn status_on(&self, approval: &HprApproval, day: NaiveDate) -> ApprovalStatus {
        let period = approval.period;
        if day < period.from {
            ApprovalStatus::NotYetValid
        } else if !period.holds_on(day) {
            ApprovalStatus::Ended
        } else if self
            .suspensions
            .iter()
            .any(|s| s.profession == approval.profession && s.period.holds_on(day))
        {
            ApprovalStatus::Suspended
        } else {
            ApprovalStatus::Active
        }
    }

    /// Whether any approval is valid and not suspended on `day`: what HelseID and every
    /// service that trusts an HPR number rely on.
    pub fn authorised_on(&self, day: NaiveDate) -> bool {
        self.approvals
            .iter()
            .any(|a| self.status_on(a, day) == ApprovalStatus::Active)
    }
}

type PersonnelRow = (i64, String, String, String, String);
const PERSONNEL: &str =
    "SELECT hpr, nin, profession, given_name, family_name FROM health_personnel";
type PeriodRow = (String, String, String, Option<String>);

impl Store {
    pub async fn hpr_by_number(&self, hpr: HprNummer) -> Result<Option<HprEntry>, StoreError> {
        let sql = format!("{PERSONNEL} WHERE hpr = $1");
        let row = with_pool!(self, pool => sqlx::query_as::<_, PersonnelRow>(&sql)
        .bind(i64::from(hpr.get()))
        .fetch_optional(pool)
        .await)?;
        self.hpr_entry(row).await
    }

    /// The professional with this number; a person has at most one HPR number.
    pub async fn hpr_by_nin(&self, nin: Fodselsnummer) -> Result<Option<HprEntry>, StoreError> {
        let sql = format!("{PERSONNEL} WHERE nin = $1 ORDER BY hpr LIMIT 1");
        let row = with_pool!(self, pool => sqlx::query_as::<_, PersonnelRow>(&sql)
        .bind(nin.to_string())
        .fetch_optional(pool)
        .await)?;
        self.hpr_entry(row).await
    }

    async fn hpr_entry(&self, row: Option<PersonnelRow>) -> Result<Option<HprEntry>, StoreError> {
        let Some((hpr, nin, profession, given_name, family_name)) = row else {
            return Ok(None);
        };
        let personnel = HealthPersonnel {
            hpr: stored_number("health_personnel.hpr", hpr, HprNummer::new)?,
            nin: stored("health_personnel.nin", &nin, Fodselsnummer::parse)?,
            profession: Profession::parse(&profession)?,
            given_name,
            family_name,
        };
        let number = personnel.hpr;
        let periods = |sql: &'static str| async move {
            with_pool!(self, pool => sqlx::query_as::<_, PeriodRow>(sql)
                .bind(hpr)
                .fetch_all(pool)
                .await)
        };
        let suspensions = periods(
            "SELECT profession, '', valid_from, valid_to FROM hpr_suspension
             WHERE hpr = $1 ORDER BY valid_from",
        )
        .await?
        .into_iter()
        .map(|(profession, _, from, to)| {
            Ok(HprSuspension {
                hpr: number,
                profession: Profession::parse(&profession)?,
                period: Period::stored("hpr_suspension", &from, to.as_deref())?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let specialities = periods(
            "SELECT profession, speciality, valid_from, valid_to FROM hpr_speciality
             WHERE hpr = $1 ORDER BY valid_from, speciality",
        )
        .await?
        .into_iter()
        .map(|(profession, speciality, from, to)| {
            Ok(HprSpeciality {
                hpr: number,
                profession: Profession::parse(&profession)?,
                speciality: Speciality::parse(&speciality)?,
                period: Period::stored("hpr_speciality", &from, to.as_deref())?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let approvals = periods(
            "SELECT profession, authorisation, valid_from, valid_to FROM hpr_approval
             WHERE hpr = $1 ORDER BY valid_from, profession",
        )
        .await?
        .into_iter()
        .map(|(profession, authorisation, from, to)| {
            Ok(HprApproval {
                hpr: number,
                profession: Profession::parse(&profession)?,
                authorisation: Authorisation::parse(&authorisation)?,
                period: Period::stored("hpr_approval", &from, to.as_deref())?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(HprEntry {
            personnel,
            approvals,
            specialities,
            suspensions,
        }))
    }
}
