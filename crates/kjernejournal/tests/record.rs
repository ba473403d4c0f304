//! Kjernejournal through its API on both backends: who may read, the citizen's choices,
//! critical information, source systems, documents, and bad input. Every attempt is audited.

mod support;

use axum::http::{Method, StatusCode};
use base64::{Engine, engine::general_purpose::STANDARD};
use helsenett_store::testing::each_backend;
use serde_json::{Value, json};
use support::{INGEST, Node, SCOPE, node, org_ref, patient_ref};

fn critical_list(bundle: &Value) -> &Value {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "List")
        .expect("the critical information list")
}

fn allergy(nin: &str) -> Value {
    json!({
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
        "type": "allergy",
        "category": ["medication"],
        "criticality": "high",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "294505008", "display": "Allergy to penicillin"}], "text": "Penicillinallergi"},
        "patient": patient_ref(nin),
        "reaction": [{"manifestation": [{"coding": [{"system": "http://snomed.info/sct", "code": "39579001", "display": "Anaphylaxis"}]}], "severity": "severe"}],
    })
}

#[tokio::test]
async fn access_needs_a_relation_or_an_emergency_and_every_attempt_is_audited() {
    each_backend(|db| async move {
        let n = node(&db.store, 600).await;
        let (gp_pid, office, patient) = n.gp().await;
        let gp_client = n.client("gp-epj", office, &[SCOPE]).await;
        let gp = n.sign_in(&gp_client, &gp_pid).await;

        // The patient is on the GP's list: normal access.
        let a = n.read(&gp, &patient, false).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.content_type, "application/fhir+json");
        assert_eq!(a.body["resourceType"], "Bundle");
        assert_eq!(a.body["type"], "collection");
        let seq: i64 = a.body["identifier"]["value"].as_str().unwrap().parse().unwrap();

        // Another professional at a hospital has no relation: refused, and logged.
        let hospital = n.organisation("hospital").await;
        let ward = n.client("hospital-epj", hospital, &[SCOPE]).await;
        let nurse_pid = n.professional(&gp_pid).await;
        let nurse = n.sign_in(&ward, &nurse_pid).await;
        n.read(&nurse, &patient, false)
            .await
            .outcome(StatusCode::FORBIDDEN, "no treatment relation");
        // Breaking the glass is allowed, with a reason, and flagged.
        let e = n.read(&nurse, &patient, true).await;
        assert_eq!(e.status, StatusCode::OK, "{}", e.text);

        // A system token cannot read a record.
        let system = gp_client.token(&n.helseid, SCOPE).await;
        let body = json!({"patient": patient, "reason": "batch", "emergency": true});
        n.call(Method::POST, "/record", &system, Some(body))
            .await
            .outcome(StatusCode::FORBIDDEN, "a person must be signed in");

        // Once the hospital reports an ongoing stay, the nurse has a relation.
        let pas = n.client("hospital-pas", hospital, &[INGEST]).await;
        let pas_token = pas.token(&n.helseid, INGEST).await;
        let stay = json!({
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP", "display": "inpatient encounter"},
            "subject": patient_ref(&patient),
            "period": {"start": "2026-01-02T08:00:00Z"},
            "serviceProvider": org_ref(hospital),
        });
        let created = n.call(Method::POST, "/ingest", &pas_token, Some(stay)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        assert_eq!(n.read(&nurse, &patient, false).await.status, StatusCode::OK);

        let audit = n.audit_of(&patient).await;
        let summary: Vec<(&str, &str)> = audit
            .iter()
            .map(|(_, _, access, outcome)| (access.as_str(), outcome.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("normal", "granted"),
                ("normal", "denied"),
                ("emergency", "granted"),
                ("system", "denied"),
                ("system", "granted"),
                ("normal", "granted"),
            ]
        );
        assert_eq!(audit[0].0, seq, "the Bundle names its audit record");
        assert!(audit[0].1.starts_with("hpr:"));
        let verified = helsenett_kjernejournal::verify(&n.store, None, |_| {})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(verified.records, 6);
    })
    .await;
}

#[tokio::test]
async fn the_citizen_reads_limits_and_reserves_their_record() {
    each_backend(|db| async move {
        let n = node(&db.store, 600).await;
        let (gp_pid, office, patient) = n.gp().await;
        let epj = n.client("gp-epj", office, &[SCOPE]).await;
        let gp = n.sign_in(&epj, &gp_pid).await;
        let portal = n.client("helsenorge", office, &[SCOPE]).await;
        let me = n.sign_in(&portal, &patient).await;
        let other = n.citizen(&[&patient, &gp_pid]).await;

        let own = n.call(Method::GET, "/citizen/record", &me.token, None).await;
        assert_eq!(own.status, StatusCode::OK, "{}", own.text);
        // Someone else's record: refused and logged against that person.
        let body = json!({"patient": other, "reason": "nysgjerrig"});
        n.call(Method::POST, "/record", &me.token, Some(body))
            .await
            .outcome(StatusCode::FORBIDDEN, "only their own record");
        let tried = n.audit_of(&other).await;
        assert_eq!(tried.len(), 1);
        assert_eq!(tried[0].1, format!("pid:{patient}"));
        assert_eq!(tried[0].3, "denied");

        // Restricted: the GP (a relation) still reads; emergency access by others is refused.
        let set = |privacy: &str| json!({"privacy": privacy});
        let a = n.call(Method::PUT, "/citizen/privacy", &me.token, Some(set("restricted"))).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(n.read(&gp, &patient, false).await.status, StatusCode::OK);
        let nurse = n.sign_in(&epj, &n.professional(&gp_pid).await).await;
        n.read(&nurse, &patient, true)
            .await
            .outcome(StatusCode::FORBIDDEN, "emergency access is not available");
        // Reserved: no health personnel at all, not even the GP; the citizen still reads.
        n.call(Method::PUT, "/citizen/privacy", &me.token, Some(set("reserved"))).await;
        n.read(&gp, &patient, true)
            .await
            .outcome(StatusCode::FORBIDDEN, "reserved");
        let state = n.call(Method::GET, "/citizen/privacy", &me.token, None).await;
        assert_eq!(state.body["privacy"], "reserved");
        assert_eq!(
            n.call(Method::GET, "/citizen/record", &me.token, None).await.status,
            StatusCode::OK
        );
        n.call(Method::PUT, "/citizen/privacy", &me.token, Some(set("open"))).await;
        assert_eq!(n.read(&gp, &patient, false).await.status, StatusCode::OK);

        // Next of kin and own entries.
        let kin = json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
            "resourceType": "RelatedPerson", "active": true,
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "SPS"}]}],
            "name": [{"family": "Nordmann", "given": ["Kari"]}],
            "telecom": [{"system": "phone", "value": "+47 41234567", "use": "mobile"}]}}]});
        let a = n.call(Method::PUT, "/citizen/next-of-kin", &me.token, Some(kin)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let note = json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "Egne opplysninger"}, "valueString": "Jeg har tolkebehov (arabisk)."});
        let added = n.call(Method::POST, "/citizen/entries", &me.token, Some(note)).await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
        assert_eq!(added.body["subject"], patient_ref(&patient));
        let read = n.read(&gp, &patient, false).await;
        let kinds: Vec<&str> = read.body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["resource"]["resourceType"].as_str())
            .collect();
        assert!(kinds.contains(&"RelatedPerson") && kinds.contains(&"Observation"), "{kinds:?}");
        let id = added.body["id"].as_str().unwrap();
        let gone = n
            .call(Method::DELETE, &format!("/citizen/entries/{id}"), &me.token, None)
            .await;
        assert_eq!(gone.status, StatusCode::OK, "{}", gone.text);
        n.call(Method::DELETE, &format!("/citizen/entries/{id}"), &me.token, None)
            .await
            .outcome(StatusCode::NOT_FOUND, "no such entry");

        // The access log shows every access and attempt, the refused and the emergency ones.
        let log = n.call(Method::GET, "/citizen/access-log?limit=500", &me.token, None).await;
        assert_eq!(log.status, StatusCode::OK, "{}", log.text);
        let entries = log.body["entries"].as_array().unwrap();
        assert_eq!(entries.len(), n.audit_of(&patient).await.len());
        let denied_emergency = entries
            .iter()
            .find(|e| e["emergency"] == true && e["outcome"] == "denied")
            .expect("the refused emergency attempt is shown");
        assert!(denied_emergency["person"].is_string());
        assert!(denied_emergency["organisationNumber"].is_string());
        assert!(denied_emergency["text"].as_str().unwrap().contains("nødtilgang"));
        let by_gp = entries
            .iter()
            .find(|e| e["role"] == "Lege" && e["outcome"] == "granted")
            .expect("the GP's read");
        assert_eq!(by_gp["reason"], "akutt innleggelse");
        // Pages cover the same entries.
        let first = n.call(Method::GET, "/citizen/access-log?limit=3", &me.token, None).await;
        let before = first.body["next"].as_i64().unwrap();
        let second = n
            .call(Method::GET, &format!("/citizen/access-log?limit=500&before={before}"), &me.token, None)
            .await;
        assert_eq!(
            first.body["entries"].as_array().unwrap().len()
                + second.body["entries"].as_array().unwrap().len(),
            entries.len()
        );
    })
    .await;
}

#[tokio::test]
async fn critical_information_is_registered_none_known_or_never_asked() {
    each_backend(|db| async move {
        let n = node(&db.store, 600).await;
        let (gp_pid, office, _) = n.gp().await;
        // A patient of the list with nothing critical registered by the synthetic country.
        // One of the GP's patients with nothing critical registered by the synthetic country.
        let patients: Vec<(String,)> = n
            .rows(&format!(
                "SELECT m.nin FROM gp_list_member m JOIN gp_list l ON l.id = m.list_id
                 JOIN health_personnel hp ON hp.hpr = l.gp_hpr
                 WHERE hp.nin = '{gp_pid}' AND m.nin <> '{gp_pid}'
                   AND NOT EXISTS (SELECT 1 FROM kj_entry e WHERE e.nin = m.nin AND e.section = 'critical')
                   AND NOT EXISTS (SELECT 1 FROM kj_record r WHERE r.nin = m.nin)
                 ORDER BY m.nin LIMIT 1"
            ))
            .await;
        let patient = patients.into_iter().next().expect("a patient").0;
        let epj = n.client("gp-epj", office, &[SCOPE]).await;
        let gp = n.sign_in(&epj, &gp_pid).await;
        let reason = |extra: Value| {
            let mut body = json!({"patient": patient, "reason": "oppdaterer kritisk info"});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            body
        };

        let list = n.read(&gp, &patient, false).await;
        assert_eq!(critical_list(&list.body)["emptyReason"]["coding"][0]["code"], "notasked");
        let a = n.call(Method::POST, "/critical/none-known", &gp.token, Some(reason(json!({})))).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let list = n.read(&gp, &patient, false).await;
        assert_eq!(critical_list(&list.body)["emptyReason"]["coding"][0]["code"], "nilknown");

        let added = n
            .call(Method::POST, "/critical", &gp.token, Some(reason(json!({"resource": allergy(&patient)}))))
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
        let id = added.body["id"].as_str().unwrap().to_owned();
        let list = n.read(&gp, &patient, false).await;
        let critical = critical_list(&list.body);
        assert!(critical.get("emptyReason").is_none());
        assert_eq!(critical["entry"][0]["item"]["reference"], format!("urn:uuid:{id}"));
        n.call(Method::POST, "/critical/none-known", &gp.token, Some(reason(json!({}))))
            .await
            .outcome(StatusCode::CONFLICT, "critical information is registered");
        let a = n
            .call(Method::POST, "/critical/remove", &gp.token, Some(reason(json!({"id": id}))))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        // Removing the last entry does not make it "none known": nobody said so.
        let list = n.read(&gp, &patient, false).await;
        assert_eq!(critical_list(&list.body)["emptyReason"]["coding"][0]["code"], "notasked");

        // Bad input: clear OperationOutcomes, nothing stored.
        let before = n.audit_of(&patient).await.len();
        let mut bad = allergy(&patient);
        bad["criticality"] = json!("extreme");
        let a = n.call(Method::POST, "/critical", &gp.token, Some(reason(json!({"resource": bad})))).await;
        a.outcome(StatusCode::BAD_REQUEST, "criticality");
        assert_eq!(a.body["issue"][0]["code"], "code-invalid");
        let mut bad = allergy(&patient);
        bad["code"]["coding"][0]["code"] = json!("penicillin");
        n.call(Method::POST, "/critical", &gp.token, Some(reason(json!({"resource": bad}))))
            .await
            .outcome(StatusCode::BAD_REQUEST, "not a valid code of http://snomed.info/sct");
        let wrong_type = json!({"resourceType": "Patient"});
        n.call(Method::POST, "/critical", &gp.token, Some(reason(json!({"resource": wrong_type}))))
            .await
            .outcome(StatusCode::BAD_REQUEST, "takes AllergyIntolerance, Condition, Device");
        let other = allergy(&n.citizen(&[&patient]).await);
        n.call(Method::POST, "/critical", &gp.token, Some(reason(json!({"resource": other}))))
            .await
            .outcome(StatusCode::BAD_REQUEST, "another patient");
        let malformed = n
            .send(
                axum::http::Request::post("/kjernejournal/api/v1/critical")
                    .header("authorization", format!("Bearer {}", gp.token))
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from("{\"patient\": "))
                    .unwrap(),
            )
            .await;
        malformed.outcome(StatusCode::BAD_REQUEST, "body");
        let mut digits = patient.clone().into_bytes();
        digits[10] = if digits[10] == b'9' { b'0' } else { digits[10] + 1 };
        let checksum = String::from_utf8(digits).unwrap();
        let a = n
            .call(Method::POST, "/record", &gp.token, Some(json!({"patient": checksum, "reason": "x"})))
            .await;
        a.outcome(StatusCode::BAD_REQUEST, "patient");
        assert!(!a.text.contains(&checksum), "errors never repeat the number");
        n.call(Method::POST, "/record", &gp.token, Some(json!({"patient": patient, "reason": " "})))
            .await
            .outcome(StatusCode::BAD_REQUEST, "reason");
        assert_eq!(n.audit_of(&patient).await.len(), before, "malformed requests are not attempts");
    })
    .await;
}

#[tokio::test]
async fn sources_report_dispensings_and_documents_with_their_confidentiality() {
    each_backend(|db| async move {
        let n: Node = node(&db.store, 600).await;
        let (gp_pid, office, patient) = n.gp().await;
        let hospital = n.organisation("hospital").await;
        let pharmacy = n.organisation("pharmacy").await;
        let apotek = n.client("apotek", pharmacy, &[INGEST]).await;
        let apotek = apotek.token(&n.helseid, INGEST).await;
        let dispense = json!({
            "resourceType": "MedicationDispense", "status": "completed",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "C10AA05", "display": "atorvastatin"}], "text": "Atorvastatin 20 mg"},
            "subject": patient_ref(&patient),
            "performer": [{"actor": org_ref(pharmacy)}],
            "quantity": {"value": 1, "unit": "pakning"},
            "whenHandedOver": "2026-03-01T10:00:00Z",
        });
        let a = n.call(Method::POST, "/ingest", &apotek, Some(dispense.clone())).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        // Only its own organisation, codes that exist, resource types sources report.
        let mut elsewhere = dispense.clone();
        elsewhere["performer"][0]["actor"] = org_ref(hospital);
        n.call(Method::POST, "/ingest", &apotek, Some(elsewhere))
            .await
            .outcome(StatusCode::FORBIDDEN, "another organisation");
        let mut unknown = dispense.clone();
        unknown["medicationCodeableConcept"]["coding"][0]["code"] = json!("E99ZZ99");
        n.call(Method::POST, "/ingest", &apotek, Some(unknown))
            .await
            .outcome(StatusCode::BAD_REQUEST, "not a valid code of http://www.whocc.no/atc");
        n.call(Method::POST, "/ingest", &apotek, Some(allergy(&patient)))
            .await
            .outcome(StatusCode::BAD_REQUEST, "not reported by source systems");
        // A member's usual token has no ingest scope.
        let epj = n.client("gp-epj", office, &[SCOPE]).await;
        let gp = n.sign_in(&epj, &gp_pid).await;
        n.call(Method::POST, "/ingest", &gp.token, Some(dispense))
            .await
            .outcome(StatusCode::FORBIDDEN, "nhn:kjernejournal/ingest");

        let dips = n.client("dips", hospital, &[INGEST]).await;
        let dips = dips.token(&n.helseid, INGEST).await;
        let document = |label: &str, content: &[u8]| json!({
            "resourceType": "DocumentReference", "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5", "display": "Discharge summary"}]},
            "subject": patient_ref(&patient),
            "date": "2026-03-02T12:00:00Z",
            "author": [org_ref(hospital)],
            "securityLabel": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": label}]}],
            "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "data": STANDARD.encode(content), "title": "Epikrise"}}],
        });
        let normal = n.call(Method::POST, "/ingest", &dips, Some(document("N", b"SYNTETISK EPIKRISE"))).await;
        assert_eq!(normal.status, StatusCode::CREATED, "{}", normal.text);
        let attachment = &normal.body["content"][0]["attachment"];
        assert!(attachment.get("data").is_none(), "the content is kept apart");
        assert_eq!(attachment["size"], 18);
        let restricted = n.call(Method::POST, "/ingest", &dips, Some(document("R", b"SYNTETISK: psykiatri"))).await;
        assert_eq!(restricted.status, StatusCode::CREATED, "{}", restricted.text);

        let read_doc = |user: &support::User, id: &str, emergency: bool| {
            let body = json!({"patient": patient, "reason": "oppfølging", "emergency": emergency, "document": id});
            let token = user.token.clone();
            let n = &n;
            async move { n.call(Method::POST, "/document", &token, Some(body)).await }
        };
        let normal_id = normal.body["id"].as_str().unwrap();
        let restricted_id = restricted.body["id"].as_str().unwrap();
        let content = read_doc(&gp, normal_id, false).await;
        assert_eq!(content.status, StatusCode::OK, "{}", content.text);
        assert_eq!(content.text, "SYNTETISK EPIKRISE");
        assert_eq!(content.content_type, "text/plain; charset=utf-8");
        // In an emergency a restricted document is neither listed nor served.
        let nurse = n.sign_in(&epj, &n.professional(&gp_pid).await).await;
        let listed = n.read(&nurse, &patient, true).await;
        let ids: Vec<&str> = listed.body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["resource"]["id"].as_str())
            .collect();
        assert!(ids.contains(&normal_id) && !ids.contains(&restricted_id), "{ids:?}");
        read_doc(&nurse, restricted_id, true)
            .await
            .outcome(StatusCode::NOT_FOUND, "no such document");
        assert_eq!(read_doc(&gp, restricted_id, false).await.status, StatusCode::OK);

        // The attachment's url resolves against the API: GET Binary/{id} with the reason in a
        // header; the citizen reads their own without one.
        let url = normal.body["content"][0]["attachment"]["url"].as_str().unwrap();
        let get = |token: &str, reason: Option<&str>| {
            let mut request = axum::http::Request::get(format!("/kjernejournal/api/v1/{url}"))
                .header("authorization", format!("Bearer {token}"));
            if let Some(reason) = reason {
                request = request.header("nhn-reason", reason);
            }
            n.send(request.body(axum::body::Body::empty()).unwrap())
        };
        let content = get(&gp.token, Some("kontroll%20etter%20utskriving")).await;
        assert_eq!(content.status, StatusCode::OK, "{}", content.text);
        assert_eq!(content.text, "SYNTETISK EPIKRISE");
        get(&gp.token, None).await.outcome(StatusCode::BAD_REQUEST, "nhn-reason");
        let portal = n.client("helsenorge", office, &[SCOPE]).await;
        let me = n.sign_in(&portal, &patient).await;
        assert_eq!(get(&me.token, None).await.text, "SYNTETISK EPIKRISE");
        let stranger = n.sign_in(&portal, &n.citizen(&[&patient]).await).await;
        get(&stranger.token, None)
            .await
            .outcome(StatusCode::FORBIDDEN, "only their own record");
        let reasons: Vec<(String,)> = n
            .rows(&format!(
                "SELECT event FROM kj_audit WHERE nin = '{patient}' AND event LIKE '%kontroll etter%'"
            ))
            .await;
        assert_eq!(reasons.len(), 1, "the decoded reason is audited");

        // Too large a document: 413, before anything is stored.
        let big = vec![b'x'; helsenett_kjernejournal::MAX_DOCUMENT_BYTES + 1];
        let a = n.call(Method::POST, "/ingest", &dips, Some(document("N", &big))).await;
        a.outcome(StatusCode::PAYLOAD_TOO_LARGE, "at most 8388608");
        assert_eq!(a.body["issue"][0]["code"], "too-long");
        let mut linked = document("N", b"x");
        linked["context"] = json!({"encounter": [{"reference": "Encounter/123"}]});
        n.call(Method::POST, "/ingest", &dips, Some(linked))
            .await
            .outcome(StatusCode::BAD_REQUEST, "DocumentReference.context.encounter[0].reference");
        let mut label = document("N", b"x");
        label["securityLabel"][0]["coding"][0]["code"] = json!("TOPSECRET");
        n.call(Method::POST, "/ingest", &dips, Some(label))
            .await
            .outcome(StatusCode::BAD_REQUEST, "not one of U, L, M, N, R, V");
    })
    .await;
}
