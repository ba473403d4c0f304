//! The snooping rules on both backends: each rule raises its alert once, and the operator reads
//! them through the API.

mod support;

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use helsenett_core::time::now_millis;
use helsenett_store::{testing::each_backend, with_pool};
use serde_json::json;
use support::{INGEST, SCOPE, node, org_ref, patient_ref};

const OPERATOR: &str = "nhn:kjernejournal/operator";

#[tokio::test]
async fn snooping_rules_raise_alerts_for_the_operator() {
    each_backend(|db| async move {
        let n = node(&db.store, 1_200).await;
        let (gp_pid, office, _) = n.gp().await;
        let epj = n.client("epj", office, &[SCOPE]).await;
        // A professional who lives with someone and shares a surname with someone elsewhere.
        let picked: Vec<(String, String, String)> = n
            .rows(&format!(
                "SELECT u.nin, MIN(r.nin), MIN(s.nin) FROM health_personnel hp
                 JOIN person u ON u.nin = hp.nin
                 JOIN person r ON r.street_address = u.street_address
                      AND r.postal_code = u.postal_code AND r.nin <> u.nin
                 JOIN person s ON s.family_name = u.family_name AND s.postal_code <> u.postal_code
                 WHERE NOT EXISTS (SELECT 1 FROM hpr_suspension x WHERE x.hpr = hp.hpr)
                   AND EXISTS (SELECT 1 FROM hpr_approval a WHERE a.hpr = hp.hpr
                               AND a.authorisation = '1' AND a.valid_to IS NULL)
                   AND NOT EXISTS (SELECT 1 FROM gp_list l WHERE l.gp_hpr = hp.hpr)
                   AND u.nin <> '{gp_pid}'
                 GROUP BY u.nin ORDER BY u.nin LIMIT 1"
            ))
            .await;
        let (nurse_pid, relative, namesake) = picked.into_iter().next().expect("a professional");
        let nurse = n.sign_in(&epj, &nurse_pid).await;
        let famous = n.citizen(&[&relative, &namesake]).await;
        with_pool!(&n.store, pool => sqlx::query(
            "INSERT INTO kj_record (nin, privacy, watched, updated) VALUES ($1, 'open', TRUE, 0)
             ON CONFLICT (nin) DO UPDATE SET watched = TRUE",
        ).bind(&famous).execute(pool).await.map(drop))
        .unwrap();

        for patient in [&nurse_pid, &relative, &namesake, &famous, &gp_pid] {
            assert_eq!(n.read(&nurse, patient, true).await.status, StatusCode::OK);
        }
        // Many different patients in an hour: one alert, however many more follow.
        let others: Vec<(String,)> = n
            .rows("SELECT nin FROM person ORDER BY nin DESC LIMIT 45")
            .await;
        for (patient,) in &others {
            n.read(&nurse, patient, true).await;
        }
        // An emergency followed by treatment: the hospital reports the stay.
        let hospital = n.organisation("hospital").await;
        let ward = n.client("ward", hospital, &[SCOPE]).await;
        let doctor = n.sign_in(&ward, &nurse_pid).await;
        let treated = n.citizen(&[&relative, &namesake, &famous]).await;
        assert_eq!(n.read(&doctor, &treated, true).await.status, StatusCode::OK);
        let pas = n.client("pas", hospital, &[INGEST]).await;
        let stay = json!({
            "resourceType": "Encounter", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
            "subject": patient_ref(&treated),
            "period": {"start": chrono::Utc::now().to_rfc3339()},
            "serviceProvider": org_ref(hospital),
        });
        let token = pas.token(&n.helseid, INGEST).await;
        assert_eq!(
            n.call(Method::POST, "/ingest", &token, Some(stay))
                .await
                .status,
            StatusCode::CREATED
        );

        // Now: the per-access rules and the volume; the follow-up is not due yet.
        n.kjernejournal.detect(now_millis()).await.unwrap();
        let count = |alerts: &[helsenett_kjernejournal::Alert]| {
            let mut by_rule: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for a in alerts {
                by_rule
                    .entry(a.rule.clone())
                    .or_default()
                    .push(a.nin.clone());
            }
            by_rule
        };
        let operator = n.client("helsecert", office, &[OPERATOR]).await;
        let operator = operator.token(&n.helseid, OPERATOR).await;
        let page = n
            .call(Method::GET, "/alerts?limit=1000", &operator, None)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let alerts: Vec<helsenett_kjernejournal::Alert> =
            serde_json::from_value(page.body).unwrap();
        let by_rule = count(&alerts);
        assert_eq!(by_rule["own-record"], [nurse_pid.as_str()]);
        assert!(by_rule["same-address"].contains(&relative), "{by_rule:?}");
        assert!(by_rule["same-surname"].contains(&namesake), "{by_rule:?}");
        assert_eq!(by_rule["watched-person"], [famous.as_str()]);
        assert_eq!(by_rule["colleague"], [gp_pid.as_str()]);
        assert_eq!(by_rule["volume"].len(), 1);
        assert!(!by_rule.contains_key("emergency-without-treatment"));
        assert!(alerts.iter().all(|a| a.actor.starts_with("hpr:")));

        // Running again finds nothing new; a day later the emergencies without treatment show.
        assert_eq!(n.kjernejournal.detect(now_millis()).await.unwrap(), 0);
        let day = 25 * 3_600_000;
        n.kjernejournal.detect(now_millis() + day).await.unwrap();
        let page = n
            .call(
                Method::GET,
                &format!("/alerts?after={}", alerts.last().unwrap().id),
                &operator,
                None,
            )
            .await;
        let later: Vec<helsenett_kjernejournal::Alert> = serde_json::from_value(page.body).unwrap();
        let unfollowed = &count(&later)["emergency-without-treatment"];
        assert!(
            unfollowed.contains(&famous) && !unfollowed.contains(&treated),
            "{unfollowed:?}"
        );
        assert!(
            later
                .iter()
                .all(|a| a.rule == "emergency-without-treatment")
        );

        // Only operators read alerts.
        n.call(Method::GET, "/alerts", &nurse.token, None)
            .await
            .outcome(StatusCode::FORBIDDEN, OPERATOR);
    })
    .await;
}
