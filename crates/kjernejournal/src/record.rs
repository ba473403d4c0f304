//! A record as served: a FHIR Bundle (type collection) of the person's entries as stored, with a
//! List for critical information that always says which of three it is: entries, explicitly
//! none known (`emptyReason` nilknown), or never registered (notasked). Documents are left out
//! where their confidentiality label does not allow the access.

use helsenett_core::{Fodselsnummer, fhir::person_system};
use serde_json::{Value, json, value::RawValue};

use crate::{access::Access, audit, ledger::Row};

const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
const EMPTY_REASON: &str = "http://terminology.hl7.org/CodeSystem/list-empty-reason";
/// Links a response to the audit record of the access that produced it.
pub const AUDIT_SYSTEM: &str = "urn:helsenett:kjernejournal:audit";

/// Whether an entry may be shown under `access`: a document labelled V (very restricted) only
/// to the citizen, one labelled R (restricted) not in an emergency. Other entries always.
pub fn visible(row: &Row, access: Access) -> bool {
    if row.resource_type != "DocumentReference" {
        return true;
    }
    let labels = serde_json::from_str::<Value>(&row.resource)
        .map(|r| confidentiality(&r))
        .unwrap_or_else(|_| vec!["V".into()]);
    let has = |code: &str| labels.iter().any(|l| l == code);
    match access {
        Access::Citizen => true,
        _ if has("V") => false,
        Access::Emergency => !has("R"),
        _ => true,
    }
}

/// The v3 confidentiality codes of a resource's `meta.security` or `securityLabel`.
pub fn confidentiality(resource: &Value) -> Vec<String> {
    resource["securityLabel"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|label| label["coding"].as_array().into_iter().flatten())
        .filter(|c| c["system"] == CONFIDENTIALITY)
        .filter_map(|c| c["code"].as_str().map(str::to_owned))
        .collect()
}

/// The Bundle for `patient`, audited as record `seq` at `now`.
pub fn bundle(
    patient: &Fodselsnummer,
    rows: &[Row],
    nil_known: bool,
    access: Access,
    seq: i64,
    now: i64,
) -> String {
    let shown: Vec<&Row> = rows.iter().filter(|r| visible(r, access)).collect();
    let critical: Vec<Value> = shown
        .iter()
        .filter(|r| r.section == "critical")
        .map(|r| json!({"item": {"reference": format!("urn:uuid:{}", r.id)}}))
        .collect();
    let mut list = json!({
        "resourceType": "List",
        "status": "current",
        "mode": "working",
        "title": "Kritisk informasjon",
        "code": {"coding": [{"system": SECTION_SYSTEM, "code": "critical", "display": "Critical information"}]},
        "subject": {"identifier": {"system": person_system(patient), "value": patient.to_string()}},
    });
    if critical.is_empty() {
        let (code, display) = if nil_known {
            ("nilknown", "Nil Known")
        } else {
            ("notasked", "Not Asked")
        };
        list["emptyReason"] =
            json!({"coding": [{"system": EMPTY_REASON, "code": code, "display": display}]});
    } else {
        list["entry"] = Value::Array(critical);
    }
    // Stored resources go into the body as they are, unparsed.
    let mut entries = vec![json!({"resource": list}).to_string()];
    for row in shown {
        let resource = RawValue::from_string(row.resource.clone())
            .unwrap_or_else(|_| RawValue::from_string("{}".into()).expect("JSON"));
        entries.push(
            json!({"fullUrl": format!("urn:uuid:{}", row.id), "resource": resource}).to_string(),
        );
    }
    let head = json!({
        "resourceType": "Bundle",
        "identifier": {"system": AUDIT_SYSTEM, "value": seq.to_string()},
        "type": "collection",
        "timestamp": audit::instant(now),
    })
    .to_string();
    format!(
        "{},\"entry\":[{}]}}",
        &head[..head.len() - 1],
        entries.join(",")
    )
}

/// The code system of a record's sections.
pub const SECTION_SYSTEM: &str = "urn:helsenett:kjernejournal:section";
