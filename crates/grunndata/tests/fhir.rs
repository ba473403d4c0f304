//! The FHIR views of the base registers, on SQLite and PostgreSQL: what each resource carries,
//! the public bundle's rule on protected addresses, the logging of Patient reads, and that every
//! error is an OperationOutcome. (`tests/conformance/grunndata-fhir` validates the same
//! resources with the independent `fhir.resources`.)

mod support;

use axum::http::{Method, StatusCode};
use helsenett_helseid::testing::TestClient;
use helsenett_store::{Store, testing::each_backend, with_pool};
use serde_json::Value;
use support::{Answer, Node, lookups, node, orgnr, protect, some};

const PATIENTS: &str = "nhn:persontjenesten/ReadNoLegalBasis";
const SCOPES: &str = "nhn:persontjenesten/ReadNoLegalBasis nhn:hpr/read nhn:fastlegeregisteret/read nhn:adresseregisteret/read";
const FNR: &str = "urn:oid:2.16.578.1.12.4.1.4.1";

impl Node {
    async fn fhir(&self, token: Option<&str>, path: &str) -> Answer {
        self.call(
            Method::GET,
            format!("/grunndata/fhir{path}"),
            token,
            &[],
            None,
        )
        .await
    }

    async fn fhir_search(&self, token: &str, form: &str) -> Answer {
        let body = Some(("application/x-www-form-urlencoded", form.to_owned()));
        self.call(
            Method::POST,
            "/grunndata/fhir/Patient/_search".into(),
            Some(token),
            &[],
            body,
        )
        .await
    }
}

fn assert_outcome(a: &Answer, status: StatusCode, code: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.content_type, "application/fhir+json", "{}", a.text);
    assert_eq!(a.body["resourceType"], "OperationOutcome", "{}", a.text);
    assert_eq!(a.body["issue"][0]["code"], code, "{}", a.text);
}

async fn text(store: &Store, sql: &str) -> String {
    with_pool!(store, pool => sqlx::query_scalar::<_, String>(sql).fetch_one(pool).await).unwrap()
}

#[tokio::test]
async fn fhir_views_of_person_professional_gp_list_and_organisation() {
    each_backend(|db| async move {
        let store = &db.store;
        let n = node(store).await;
        let scopes: Vec<&str> = SCOPES.split(' ').collect();
        let token = TestClient::register(store, "fhir-reader", orgnr(960), &scopes).await.token(&n.helseid, SCOPES).await;

        let a = n.fhir(None, "/metadata").await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.content_type, "application/fhir+json");
        assert_eq!((&a.body["resourceType"], &a.body["fhirVersion"]), (&Value::from("CapabilityStatement"), &Value::from("4.0.1")));
        assert!(!a.text.contains("[]"), "no empty arrays in FHIR JSON: {}", a.text);

        // A person on a GP list, by id and by number.
        let nin = some(store, "address_protection = 'Unclassified' AND number_kind = 'fnr'").await;
        let (id, list) = with_pool!(store, pool => sqlx::query_as::<_, (String, i64)>(
            "SELECT p.person_id, m.list_id FROM person p JOIN gp_list_member m ON m.nin = p.nin WHERE p.nin = $1",
        ).bind(&nin).fetch_one(pool).await).unwrap();
        let a = n.fhir(Some(&token), &format!("/Patient/{id}")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let patient = a.body.clone();
        assert_eq!(patient["resourceType"], "Patient");
        assert_eq!(patient["meta"]["profile"][0], "http://hl7.no/fhir/StructureDefinition/no-basis-Patient");
        assert_eq!(patient["identifier"][0]["system"], FNR);
        assert_eq!(patient["identifier"][0]["value"], nin);
        assert_eq!(patient["generalPractitioner"][0]["reference"], format!("PractitionerRole/{list}"));
        assert!(patient["address"][0]["postalCode"].is_string());
        let found = n.fhir_search(&token, &format!("identifier={FNR}%7C{nin}")).await;
        assert_eq!(found.status, StatusCode::OK, "{}", found.text);
        assert_eq!((&found.body["type"], &found.body["total"]), (&Value::from("searchset"), &Value::from(1)));
        assert_eq!(found.body["entry"][0]["resource"], patient);
        // Each read is logged for the public bundle, and for Fastlegeregisteret, whose GP it shows.
        let logged = lookups(&n, store, &nin).await;
        let mut rows: Vec<(&str, &str)> = logged.iter().map(|l| (l.0.as_str(), l.1.as_str())).collect();
        rows.sort_unstable();
        assert_eq!(rows, [
            ("fhir-patient-read", "fastlegeregisteret"), ("fhir-patient-read", "no-legal-basis"),
            ("fhir-patient-search", "fastlegeregisteret"), ("fhir-patient-search", "no-legal-basis"),
        ]);
        assert!(logged.iter().all(|l| l.4), "{logged:?}");

        // The public bundle hides a protected address.
        let hidden = some(store, &format!("nin > '{nin}' AND number_kind = 'fnr'")).await;
        protect(store, &hidden, "Confidential").await;
        n.grunndata.follow().await.unwrap();
        let a = n.fhir_search(&token, &format!("identifier={FNR}%7C{hidden}")).await;
        let resource = &a.body["entry"][0]["resource"];
        assert_eq!(resource["identifier"][0]["value"], hidden, "{}", a.text);
        assert!(resource.get("address").is_none(), "{}", a.text);
        assert!(resource.get("generalPractitioner").is_none(), "the GP's office would locate them: {}", a.text);

        // A number nobody has: an empty searchset, logged as not found.
        let unknown = (0..999).find_map(|i| {
            helsenett_core::Fodselsnummer::new(chrono::NaiveDate::from_ymd_opt(1901, 1, 1).unwrap(), i, helsenett_core::NumberKind::Fodselsnummer, true)
        }).unwrap().to_string();
        let a = n.fhir_search(&token, &format!("identifier={FNR}%7C{unknown}")).await;
        assert_eq!(a.body["total"], 0, "{}", a.text);
        assert!(a.body.get("entry").is_none(), "no empty arrays in FHIR JSON: {}", a.text);
        assert_eq!(lookups(&n, store, &unknown).await.iter().map(|l| l.4).collect::<Vec<_>>(), [false]);

        // The GP: Practitioner, PractitionerRole, and the office.
        let (hpr, office): (i64, String) = with_pool!(store, pool => sqlx::query_as(
            "SELECT gp_hpr, office_orgnr FROM gp_list WHERE id = $1").bind(list).fetch_one(pool).await).unwrap();
        let a = n.fhir(Some(&token), &format!("/Practitioner/{hpr}")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["identifier"][0]["system"], "urn:oid:2.16.578.1.12.4.1.4.4");
        let codings: Vec<&str> = a.body["qualification"].as_array().unwrap().iter()
            .flat_map(|q| q["code"]["coding"].as_array().unwrap()).map(|c| c["system"].as_str().unwrap()).collect();
        assert!(codings.contains(&"urn:oid:2.16.578.1.12.4.1.1.9060") && codings.contains(&"urn:oid:2.16.578.1.12.4.1.1.7704"), "{codings:?}");
        let gp_nin = text(store, &format!("SELECT nin FROM health_personnel WHERE hpr = {hpr}")).await;
        assert_eq!(lookups(&n, store, &gp_nin).await[0].0, "fhir-practitioner-read");
        let a = n.fhir(Some(&token), &format!("/PractitionerRole/{list}")).await;
        assert_eq!(a.body["practitioner"]["reference"], format!("Practitioner/{hpr}"), "{}", a.text);
        assert_eq!(a.body["organization"]["reference"], format!("Organization/{office}"));
        let a = n.fhir(Some(&token), &format!("/PractitionerRole?practitioner=Practitioner/{hpr}")).await;
        let role_id = list.to_string();
        assert!(a.body["entry"].as_array().unwrap().iter().any(|e| e["resource"]["id"] == role_id), "{}", a.text);
        let a = n.fhir(Some(&token), &format!("/Organization/{office}")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["identifier"][0]["system"], "urn:oid:2.16.578.1.12.4.1.4.101");
        assert_eq!(a.body["identifier"][0]["value"], office);

        // Every error is an OperationOutcome.
        assert_outcome(&n.fhir(Some(&token), "/Patient/xyz").await, StatusCode::BAD_REQUEST, "invalid");
        assert_outcome(&n.fhir(Some(&token), &format!("/Patient/{}", "0".repeat(32))).await, StatusCode::NOT_FOUND, "not-found");
        assert_outcome(&n.fhir(Some(&token), "/Practitioner/12ab").await, StatusCode::BAD_REQUEST, "invalid");
        assert_outcome(&n.fhir(Some(&token), "/Organization/123").await, StatusCode::BAD_REQUEST, "invalid");
        assert_outcome(&n.fhir(Some(&token), "/PractitionerRole?name=x").await, StatusCode::BAD_REQUEST, "invalid");
        assert_outcome(&n.fhir(Some(&token), "/Observation/1").await, StatusCode::NOT_FOUND, "not-found");
        let delete = n.call(Method::DELETE, format!("/grunndata/fhir/Patient/{id}"), Some(&token), &[], None).await;
        assert_outcome(&delete, StatusCode::METHOD_NOT_ALLOWED, "not-supported");
        let a = n.fhir_search(&token, &format!("identifier=urn:oid:2.16.578.1.12.4.1.4.2%7C{nin}")).await;
        assert_outcome(&a, StatusCode::BAD_REQUEST, "invalid");
        assert!(!a.text.contains(&nin), "{}", a.text);
        let unauthenticated = n.fhir(None, &format!("/Patient/{id}")).await;
        assert_outcome(&unauthenticated, StatusCode::UNAUTHORIZED, "login");
        let patients_only = TestClient::register(store, "patients-only", orgnr(970), &[PATIENTS]).await.token(&n.helseid, PATIENTS).await;
        let a = n.fhir(Some(&patients_only), &format!("/Patient/{id}")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert!(a.body.get("generalPractitioner").is_none(), "the GP needs Fastlegeregisteret's scope: {}", a.text);
        let a = n.fhir(Some(&patients_only), &format!("/Practitioner/{hpr}")).await;
        assert!(matches!(a.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN), "{}", a.text);
        assert_eq!(a.body["resourceType"], "OperationOutcome", "{}", a.text);
    })
    .await;
}
