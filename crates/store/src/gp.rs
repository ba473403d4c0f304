//! Fastlegeregisteret: GP lists (fastlegeavtaler) with their capacity, each person's place on
//! one, the places that ended, and its one write: a person moving to a list that has room.

use chrono::{Months, NaiveDate};
use helsenett_core::{Fodselsnummer, HprNummer, Organisasjonsnummer};
use serde::Serialize;

use crate::{
    Record, Store, StoreError, Value,
    records::{Period, PersonStatus, codes, stored, stored_number},
    with_pool, with_tx,
};

codes!(
    /// Why a place on a list ended.
    EndReason {
        ChangedGp = "changed-gp",
        Deceased = "deceased",
        Emigrated = "emigrated",
    }
);

/// How many times a person may change GP in a year (as the scheme allows).
pub const CHANGES_PER_YEAR: i64 = 2;

/// A place on a list that has ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpListHistory {
    pub nin: Fodselsnummer,
    pub list_id: i64,
    pub period: Period,
    pub end_reason: EndReason,
}

impl Record for GpListHistory {
    const TABLE: &'static str = "gp_list_history";
    const COLUMNS: &'static [&'static str] =
        &["nin", "list_id", "valid_from", "valid_to", "end_reason"];
    fn values<'a>(&'a self, push: &mut dyn FnMut(Value<'a>)) {
        push(Value::Owned(self.nin.to_string()));
        push(Value::Int(self.list_id));
        self.period.values(push);
        push(Value::Text(self.end_reason.as_str()));
    }
}

/// A list as Fastlegeregisteret shows it: the contract, its GP and how full it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpContract {
    pub id: i64,
    pub gp: HprNummer,
    pub gp_name: String,
    pub office: Organisasjonsnummer,
    pub office_name: String,
    pub municipality: String,
    pub capacity: i64,
    pub patients: i64,
}

/// A place on a list: current (`period.to` is `None`) or ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpPlace {
    pub list_id: i64,
    pub period: Period,
    pub end_reason: Option<EndReason>,
}

/// A person on a list, as the list shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedPatient {
    pub nin: Fodselsnummer,
    pub given_name: String,
    pub family_name: String,
    pub birth_date: NaiveDate,
    pub since: NaiveDate,
}

/// What became of a request to change GP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpChange {
    Changed,
    NoSuchList,
    NoSuchPerson,
    /// Dead or emigrated: not in the scheme.
    NotEligible,
    AlreadyOnList,
    ListFull,
    TooManyChanges,
}

#[derive(sqlx::FromRow)]
struct ContractRow {
    id: i64,
    gp_hpr: i64,
    gp_name: String,
    office_orgnr: String,
    office_name: String,
    municipality: String,
    capacity: i64,
    patients: i64,
}

const CONTRACT_COLUMNS: &str = "l.id, l.gp_hpr, h.given_name || ' ' || h.family_name AS gp_name, \
     l.office_orgnr, o.name AS office_name, l.municipality, l.capacity, \
     (SELECT COUNT(*) FROM gp_list_member m WHERE m.list_id = l.id) AS patients";
const CONTRACT_JOINS: &str = "JOIN health_personnel h ON h.hpr = l.gp_hpr \
     JOIN organisation o ON o.orgnr = l.office_orgnr";

/// A list with the day the person's place on it began.
#[derive(sqlx::FromRow)]
struct PlacedRow {
    since: String,
    #[sqlx(flatten)]
    list: ContractRow,
}

fn contract(row: ContractRow) -> Result<GpContract, StoreError> {
    Ok(GpContract {
        id: row.id,
        gp: stored_number("gp_list.gp_hpr", row.gp_hpr, HprNummer::new)?,
        gp_name: row.gp_name,
        office: stored(
            "gp_list.office_orgnr",
            &row.office_orgnr,
            Organisasjonsnummer::parse,
        )?,
        office_name: row.office_name,
        municipality: row.municipality,
        capacity: row.capacity,
        patients: row.patients,
    })
}

fn date(column: &str, text: &str) -> Result<NaiveDate, StoreError> {
    Period::stored(column, text, None).map(|p| p.from)
}

impl Store {
    pub async fn gp_contract(&self, id: i64) -> Result<Option<GpContract>, StoreError> {
        let sql =
            format!("SELECT {CONTRACT_COLUMNS} FROM gp_list l {CONTRACT_JOINS} WHERE l.id = $1");
        let row = with_pool!(self, pool => sqlx::query_as::<_, ContractRow>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        row.map(contract).transpose()
    }

    /// The lists a GP holds.
    pub async fn gp_contracts_of(&self, gp: HprNummer) -> Result<Vec<GpContract>, StoreError> {
        let sql = format!(
            "SELECT {CONTRACT_COLUMNS} FROM gp_list l {CONTRACT_JOINS} WHERE l.gp_hpr = $1 ORDER BY l.id"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, ContractRow>(&sql)
            .bind(i64::from(gp.get()))
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(contract).collect()
    }

    /// The person's current place (since when) and its list, in one query: the look-up every
    /// "who is this person's GP" makes.
    pub async fn gp_current(
        &self,
        nin: Fodselsnummer,
    ) -> Result<Option<(NaiveDate, GpContract)>, StoreError> {
        let sql = format!(
            "SELECT m.since, {CONTRACT_COLUMNS} FROM gp_list_member m \
             JOIN gp_list l ON l.id = m.list_id {CONTRACT_JOINS} WHERE m.nin = $1"
        );
        let row = with_pool!(self, pool => sqlx::query_as::<_, PlacedRow>(&sql)
            .bind(nin.to_string())
            .fetch_optional(pool)
            .await)?;
        row.map(|row| {
            Ok((
                date("gp_list_member.since", &row.since)?,
                contract(row.list)?,
            ))
        })
        .transpose()
    }

    /// One page of a municipality's lists (all, or those with room) and how many there are.
    pub async fn gp_contracts_in(
        &self,
        municipality: &str,
        with_room: bool,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<GpContract>, i64), StoreError> {
        let sql = format!(
            "SELECT {CONTRACT_COLUMNS} FROM gp_list l {CONTRACT_JOINS} WHERE l.municipality = $1 ORDER BY l.id"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, ContractRow>(&sql)
            .bind(municipality)
            .fetch_all(pool)
            .await)?;
        let all: Vec<GpContract> = rows
            .into_iter()
            .map(contract)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|c| !with_room || c.patients < c.capacity)
            .collect();
        let total = all.len() as i64;
        let page = all
            .into_iter()
            .skip(offset as usize)
            .take(limit as usize)
            .collect();
        Ok((page, total))
    }

    /// One page of a list's patients, in fødselsnummer order, and how many it has.
    pub async fn gp_list_patients(
        &self,
        list_id: i64,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<ListedPatient>, i64), StoreError> {
        let (rows, total) = with_pool!(self, pool => {
            let rows = sqlx::query_as::<_, (String, String, String, String, String)>(
                "SELECT m.nin, p.given_name, p.family_name, p.birth_date, m.since
                 FROM gp_list_member m JOIN person p ON p.nin = m.nin
                 WHERE m.list_id = $1 ORDER BY m.nin LIMIT $2 OFFSET $3",
            )
            .bind(list_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let total = sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM gp_list_member WHERE list_id = $1",
            )
            .bind(list_id)
            .fetch_one(pool)
            .await?;
            Ok::<_, sqlx::Error>((rows, total))
        })?;
        let patients = rows
            .into_iter()
            .map(|(nin, given_name, family_name, birth, since)| {
                Ok(ListedPatient {
                    nin: stored("gp_list_member.nin", &nin, Fodselsnummer::parse)?,
                    given_name,
                    family_name,
                    birth_date: date("person.birth_date", &birth)?,
                    since: date("gp_list_member.since", &since)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((patients, total))
    }

    /// A person's places on lists, the current one first, then the ended ones, newest first.
    pub async fn gp_places(&self, nin: Fodselsnummer) -> Result<Vec<GpPlace>, StoreError> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, (i64, String, Option<String>, Option<String>)>(
            "SELECT list_id, since, NULL, NULL FROM gp_list_member WHERE nin = $1
             UNION ALL
             SELECT list_id, valid_from, valid_to, end_reason FROM gp_list_history WHERE nin = $1
             ORDER BY 3 DESC NULLS FIRST, 2 DESC",
        )
        .bind(nin.to_string())
        .fetch_all(pool)
        .await)?;
        rows.into_iter()
            .map(|(list_id, from, to, reason)| {
                Ok(GpPlace {
                    list_id,
                    period: Period::stored("gp place", &from, to.as_deref())?,
                    end_reason: reason.as_deref().map(EndReason::parse).transpose()?,
                })
            })
            .collect()
    }

    /// Moves `nin` to list `to` from `on` (or from the day the current place began, if that is
    /// later), if the list has room and the person has changed fewer than [`CHANGES_PER_YEAR`]
    /// times in the twelve months before. The person and the list are locked first, so two
    /// changes can neither overfill a list nor move one person twice.
    pub async fn change_gp(
        &self,
        nin: Fodselsnummer,
        to: i64,
        on: NaiveDate,
    ) -> Result<GpChange, StoreError> {
        let nin_text = nin.to_string();
        let year_ago = on
            .checked_sub_months(Months::new(12))
            .unwrap_or(NaiveDate::MIN)
            .to_string();
        let changed = EndReason::ChangedGp.as_str();
        let mut writer = self.writer().await?;
        // Every refusal returns early, so the transaction is rolled back when dropped.
        let outcome = with_tx!(&mut writer, tx => {
            // Writes first: SQLite takes its write lock here rather than failing to upgrade
            // a read later; PostgreSQL locks the person's row and the list's.
            let people = sqlx::query("UPDATE person SET status = status WHERE nin = $1")
                .bind(&nin_text)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            if people == 0 {
                return Ok(GpChange::NoSuchPerson);
            }
            let listed = sqlx::query("UPDATE gp_list SET capacity = capacity WHERE id = $1")
                .bind(to)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            if listed == 0 {
                return Ok(GpChange::NoSuchList);
            }
            let status = sqlx::query_scalar::<_, String>("SELECT status FROM person WHERE nin = $1")
                .bind(&nin_text)
                .fetch_one(&mut **tx)
                .await?;
            if matches!(
                PersonStatus::parse(&status)?,
                PersonStatus::Deceased | PersonStatus::Emigrated
            ) {
                return Ok(GpChange::NotEligible);
            }
            let current = sqlx::query_as::<_, (i64, String)>(
                "SELECT list_id, since FROM gp_list_member WHERE nin = $1",
            )
            .bind(&nin_text)
            .fetch_optional(&mut **tx)
            .await?;
            if current.as_ref().is_some_and(|(list, _)| *list == to) {
                return Ok(GpChange::AlreadyOnList);
            }
            let changes = sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM gp_list_history
                 WHERE nin = $1 AND end_reason = $2 AND valid_to > $3",
            )
            .bind(&nin_text)
            .bind(changed)
            .bind(&year_ago)
            .fetch_one(&mut **tx)
            .await?;
            if changes >= CHANGES_PER_YEAR {
                return Ok(GpChange::TooManyChanges);
            }
            let (capacity, patients) = sqlx::query_as::<_, (i64, i64)>(
                "SELECT capacity, (SELECT COUNT(*) FROM gp_list_member WHERE list_id = $1)
                 FROM gp_list WHERE id = $1",
            )
            .bind(to)
            .fetch_one(&mut **tx)
            .await?;
            if patients >= capacity {
                return Ok(GpChange::ListFull);
            }
            match &current {
                Some((from, since)) => {
                    // A place dated ahead (a synthetic country runs ahead of the clock) ends
                    // the day it began rather than before.
                    let on = on.max(date("gp_list_member.since", since)?).to_string();
                    sqlx::query(
                        "INSERT INTO gp_list_history (nin, list_id, valid_from, valid_to, end_reason)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&nin_text)
                    .bind(from)
                    .bind(since)
                    .bind(&on)
                    .bind(changed)
                    .execute(&mut **tx)
                    .await?;
                    sqlx::query("UPDATE gp_list_member SET list_id = $1, since = $2 WHERE nin = $3")
                        .bind(to)
                        .bind(&on)
                        .bind(&nin_text)
                        .execute(&mut **tx)
                        .await?;
                }
                None => {
                    sqlx::query("INSERT INTO gp_list_member (nin, list_id, since) VALUES ($1, $2, $3)")
                        .bind(&nin_text)
                        .bind(to)
                        .bind(on.to_string())
                        .execute(&mut **tx)
                        .await?;
                }
            }
            Ok::<_, StoreError>(GpChange::Changed)
        })?;
        writer.commit().await?;
        Ok(outcome)
    }
}

/// The index of places by list that migration 0007 makes. A bulk load builds it once at the
/// end: keeping it up place by place, in fødselsnummer order, made the norway country take 83
/// seconds instead of 47 (measured).
pub(crate) const MEMBERS_BY_LIST: &str =
    "CREATE INDEX gp_list_member_by_list ON gp_list_member (list_id, nin)";
