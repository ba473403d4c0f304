//! FHIR R4 read views of the base registers under `/grunndata/fhir`, after HL7 Norway's
//! no-basis profiles: Patient (what Persontjenesten's public bundle shows), Practitioner (HPR),
//! PractitionerRole (a GP's list in Fastlegeregisteret) and Organization. Each view needs the
//! scope of the register it shows, and a Patient read is logged like any person look-up.
//! Every error is an OperationOutcome.

use axum::{
    Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::HeaderMap,
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use helsenett_core::{
    Fodselsnummer, NumberKind, Organisasjonsnummer, Problem,
    fhir::{self, DNR, ENH, FNR, HPR, Resource, person_system},
};
use helsenett_helseid::{Authorized, RequiredScope};
use helsenett_store::{
    gp::GpContract,
    hpr::{AUTHORISATION_SYSTEM, HprEntry, PROFESSION_SYSTEM, SPECIALITY_SYSTEM},
    records::{Organisation, PersonStatus, sex_code},
};
use serde_json::{Value, json};

use crate::{
    document::Bundle,
    error::GrunndataError,
    fastlegeregisteret::{ReadFlr, list_id},
    hpr::ReadHpr,
    lookup::Asked,
    persontjenesten::ReadNoLegalBasis,
    population::Entry,
    request::{hpr_number, nin, pairs, person_id, stated_purpose},
    state::Shared,
};

const PROFILES: &str = "http://hl7.no/fhir/StructureDefinition";

/// Organisations are the address register's to show.
pub struct ReadOrganisations;
impl RequiredScope for ReadOrganisations {
    const AUDIENCE: &'static str = "nhn:adresseregisteret";
    const SCOPE: &'static str = "nhn:adresseregisteret/read";
}

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/metadata", get(metadata))
        .route("/Patient/_search", post(search_patient))
        .route("/Patient/{id}", get(patient))
        .route("/Practitioner/{id}", get(practitioner))
        .route("/PractitionerRole", get(search_roles))
        .route("/PractitionerRole/{id}", get(role))
        .route("/Organization/{id}", get(organization))
        .fallback(unknown)
        .method_not_allowed_fallback(read_only)
        .layer(middleware::map_response(fhir::as_operation_outcome))
}

async fn unknown() -> GrunndataError {
    GrunndataError::NotFound("no such resource type or interaction on this server (see /metadata)")
}

async fn read_only() -> Response {
    let problem = Problem::new(405, "method-not-allowed", "Method not allowed")
        .with_detail("these views are read-only: GET, and POST for Patient/_search");
    problem.into_response()
}

fn meta(profile: &str) -> Value {
    json!({"profile": [format!("{PROFILES}/{profile}")]})
}

/// What the server can do, unauthenticated, as FHIR clients expect.
async fn metadata() -> Resource {
    // FHIR JSON leaves out an element without values, so no empty `searchParam`.
    let read = |kind: &str, search: Option<Value>| {
        let mut resource = json!({"type": kind, "interaction": [{"code": "read"}]});
        if let Some(search) = search {
            resource["searchParam"] = search;
        }
        resource
    };
    Resource(json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": helsenett_core::time::today().to_string(),
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "software": {"name": "helsenett", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "The base registers of helsenett: population, health personnel, GP lists"},
        "rest": [{
            "mode": "server",
            "security": {"description": "A HelseID access token with the register's scope: nhn:persontjenesten/ReadNoLegalBasis (Patient), nhn:hpr/read (Practitioner), nhn:fastlegeregisteret/read (PractitionerRole), nhn:adresseregisteret/read (Organization)."},
            "resource": [
                read("Patient", Some(json!([{"name": "identifier", "type": "token", "documentation": "POST Patient/_search only: a number never goes in a URL"}]))),
                read("Practitioner", None),
                read("PractitionerRole", Some(json!([{"name": "practitioner", "type": "reference"}]))),
                read("Organization", None),
            ],
        }],
    }))
}

fn searchset(resources: Vec<Value>) -> Resource {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|r| json!({"resource": r, "search": {"mode": "match"}}))
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
    });
    // FHIR JSON leaves out an element without values: no match, no `entry`.
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    Resource(bundle)
}

/// A person as the public bundle shows them: no address under any address protection.
fn patient_resource(person: &Entry, gp_list: Option<i64>) -> Value {
    let system = person_system(&person.nin);
    let mut patient = json!({
        "resourceType": "Patient",
        "id": person.id.to_string(),
        "meta": meta("no-basis-Patient"),
        "identifier": [{"use": "official", "system": system, "value": person.nin.to_string()}],
        "active": !matches!(person.status, PersonStatus::Deceased | PersonStatus::Emigrated),
        "name": [{"use": "official", "family": person.family_name, "given": [person.given_name]}],
        "gender": sex_code(person.nin.sex()),
        "birthDate": person.nin.birth_date().to_string(),
    });
    if Bundle::NoLegalBasis.shows_address(person.protection) {
        let address = &person.address;
        patient["address"] = json!([{
            "use": "home",
            "type": "physical",
            "line": [address.street],
            "postalCode": address.postal_code,
            "city": address.postal_place,
            "country": "NO",
        }]);
    }
    match person.deceased {
        Some(day) => patient["deceasedDateTime"] = json!(day.to_string()),
        None => patient["deceasedBoolean"] = json!(false),
    }
    // The GP's office would say where a person with a hidden address lives.
    if let Some(list) = gp_list.filter(|_| Bundle::NoLegalBasis.shows_address(person.protection)) {
        patient["generalPractitioner"] = json!([{"reference": format!("PractitionerRole/{list}")}]);
    }
    patient
}

/// The Patient resource of the person asked for (`None` when the register lacks them), logged
/// as a look-up of the public bundle; with the GP only for a caller who may read
/// Fastlegeregisteret, logged as a look-up there too.
async fn patient_of(
    state: &Shared,
    auth: &Authorized<ReadNoLegalBasis>,
    headers: &HeaderMap,
    nin: Fodselsnummer,
    operation: &'static str,
) -> Result<Option<Value>, GrunndataError> {
    let purpose = stated_purpose(headers, false)?;
    let gp_list = if auth.0.has_scope(ReadFlr::SCOPE) && state.knows(&nin) {
        state.store.gp_current(nin).await?.map(|(_, list)| list.id)
    } else {
        None
    };
    let resource = state
        .population
        .read(|p| p.get(&nin).map(|person| patient_resource(&person, gp_list)));
    let bundle = Bundle::NoLegalBasis;
    let asked = Asked {
        principal: &auth.0,
        bundle: bundle.as_str(),
        legal_basis: bundle.legal_basis(),
        purpose,
        operation,
    };
    asked.log(&state.log, [(nin, resource.is_some())]).await?;
    if resource
        .as_ref()
        .is_some_and(|r| r.get("generalPractitioner").is_some())
    {
        let asked = Asked {
            bundle: "fastlegeregisteret",
            legal_basis: ReadFlr::SCOPE,
            ..asked
        };
        asked.log(&state.log, [(nin, true)]).await?;
    }
    Ok(resource)
}

async fn patient(
    auth: Authorized<ReadNoLegalBasis>,
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Resource, GrunndataError> {
    let id = person_id("id", &id)?;
    let Some(nin) = state.population.read(|p| p.by_id(id).map(|e| e.nin)) else {
        return Err(GrunndataError::NotFound("no Patient has this id"));
    };
    patient_of(&state, &auth, &headers, nin, "fhir-patient-read")
        .await?
        .map(Resource)
        .ok_or(GrunndataError::NotFound("no Patient has this id"))
}

/// `POST Patient/_search` with `identifier=<system>|<number>`: zero or one Patient.
async fn search_patient(
    auth: Authorized<ReadNoLegalBasis>,
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Resource, GrunndataError> {
    let pairs = pairs(&body);
    let [(key, token)] = pairs.as_slice() else {
        return Err(GrunndataError::invalid(
            "identifier",
            "exactly one search parameter, identifier=<system>|<number>, is supported",
        ));
    };
    let (system, value) = token.split_once('|').unwrap_or(("", token));
    if key != "identifier" || ![FNR, DNR].contains(&system) {
        return Err(GrunndataError::invalid(
            "identifier",
            format!("must be {FNR}|<fødselsnummer> or {DNR}|<D-nummer>"),
        ));
    }
    let nin = nin("identifier", value)?;
    if (nin.kind() == NumberKind::DNummer) != (system == DNR) {
        return Err(GrunndataError::invalid(
            "identifier",
            "the number's kind does not match the system",
        ));
    }
    let resource = patient_of(&state, &auth, &headers, nin, "fhir-patient-search").await?;
    Ok(searchset(resource.into_iter().collect()))
}

fn practitioner_resource(entry: &HprEntry) -> Value {
    let today = helsenett_core::time::today();
    let p = &entry.personnel;
    let coding = |system: &str, code: &str, display: &str| json!({"system": system, "code": code, "display": display});
    let period = |from: chrono::NaiveDate, to: Option<chrono::NaiveDate>| match to {
        Some(to) => json!({"start": from.to_string(), "end": to.to_string()}),
        None => json!({"start": from.to_string()}),
    };
    let mut qualifications: Vec<Value> = entry
        .approvals
        .iter()
        .map(|a| {
            json!({
                "code": {"coding": [
                    coding(PROFESSION_SYSTEM, a.profession.as_str(), a.profession.display()),
                    coding(AUTHORISATION_SYSTEM, a.authorisation.as_str(), a.authorisation.display()),
                ]},
                "period": period(a.period.from, a.period.to),
            })
        })
        .collect();
    qualifications.extend(entry.specialities.iter().map(|s| {
        json!({
            "code": {"coding": [coding(SPECIALITY_SYSTEM, s.speciality.as_str(), s.speciality.display())]},
            "period": period(s.period.from, s.period.to),
        })
    }));
    json!({
        "resourceType": "Practitioner",
        "id": p.hpr.to_string(),
        "meta": meta("no-basis-Practitioner"),
        "identifier": [{"use": "official", "system": HPR, "value": p.hpr.to_string()}],
        "active": entry.authorised_on(today),
        "name": [{"use": "official", "family": p.family_name, "given": [p.given_name]}],
        "qualification": qualifications,
    })
}

/// A professional, logged as a look-up of the person behind the number (as the HPR API is).
async fn practitioner(
    auth: Authorized<ReadHpr>,
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Resource, GrunndataError> {
    let purpose = stated_purpose(&headers, false)?;
    let entry = state
        .store
        .hpr_by_number(hpr_number("id", &id)?)
        .await?
        .ok_or(GrunndataError::NotFound(
            "no Practitioner has this HPR number",
        ))?;
    let asked = Asked {
        principal: &auth.0,
        bundle: "hpr",
        legal_basis: ReadHpr::SCOPE,
        purpose,
        operation: "fhir-practitioner-read",
    };
    asked.log(&state.log, [(entry.personnel.nin, true)]).await?;
    Ok(Resource(practitioner_resource(&entry)))
}

/// A GP's list as the GP's role at the office.
fn role_resource(list: &GpContract) -> Value {
    json!({
        "resourceType": "PractitionerRole",
        "id": list.id.to_string(),
        "meta": meta("no-basis-PractitionerRole"),
        "active": true,
        "practitioner": {"reference": format!("Practitioner/{}", list.gp), "display": list.gp_name},
        "organization": {"reference": format!("Organization/{}", list.office), "display": list.office_name},
        "code": [{"text": "Fastlege"}],
        "availabilityExceptions": format!(
            "{} of {} places taken on the list",
            list.patients, list.capacity
        ),
    })
}

async fn role(
    _auth: Authorized<ReadFlr>,
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Resource, GrunndataError> {
    let list = state
        .store
        .gp_contract(list_id(&id)?)
        .await?
        .ok_or(GrunndataError::NotFound("no PractitionerRole has this id"))?;
    Ok(Resource(role_resource(&list)))
}

/// `PractitionerRole?practitioner=<HPR number>` (or `Practitioner/<HPR number>`).
async fn search_roles(
    _auth: Authorized<ReadFlr>,
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
) -> Result<Resource, GrunndataError> {
    let pairs = pairs(query.unwrap_or_default().as_bytes());
    let [(key, value)] = pairs.as_slice() else {
        return Err(GrunndataError::invalid(
            "practitioner",
            "exactly one search parameter, practitioner=<HPR number>, is supported",
        ));
    };
    if key != "practitioner" {
        return Err(GrunndataError::invalid(
            "practitioner",
            "is the one search parameter supported",
        ));
    }
    let gp = hpr_number("id", value.strip_prefix("Practitioner/").unwrap_or(value))?;
    let lists = state.store.gp_contracts_of(gp).await?;
    Ok(searchset(lists.iter().map(role_resource).collect()))
}

fn organization_resource(org: &Organisation) -> Value {
    let address = &org.address;
    let mut resource = json!({
        "resourceType": "Organization",
        "id": org.orgnr.to_string(),
        "meta": meta("no-basis-Organization"),
        "identifier": [{"use": "official", "system": ENH, "value": org.orgnr.to_string()}],
        "active": true,
        "type": [{"text": org.kind.as_str()}],
        "name": org.name,
        "address": [{
            "use": "work",
            "type": "physical",
            "line": [&*address.street],
            "postalCode": &*address.postal_code,
            "city": &*address.postal_place,
            "country": "NO",
        }],
    });
    if let Some(parent) = org.parent {
        resource["partOf"] = json!({"reference": format!("Organization/{parent}")});
    }
    resource
}

async fn organization(
    _auth: Authorized<ReadOrganisations>,
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Resource, GrunndataError> {
    let orgnr = Organisasjonsnummer::parse(id.trim())
        .map_err(|e| GrunndataError::invalid("id", e.reason))?;
    let org = state
        .store
        .organisation(orgnr)
        .await?
        .ok_or(GrunndataError::NotFound("no Organization has this number"))?;
    Ok(Resource(organization_resource(&org)))
}
