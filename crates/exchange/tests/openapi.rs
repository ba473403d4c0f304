//! The exchange's OpenAPI document against NHN's published `msh-api-v2.json`: every operation
//! NHN publishes is served at the same path and method with the same parameters, and every
//! schema NHN publishes has the same properties here. The examples NHN publishes deserialise as
//! this API's responses would serialise them.

use std::collections::BTreeSet;

use serde_json::Value;

fn nhn() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/specs/nhn/msh-api-v2.json"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (the shared specs must be beside the repository)"));
    serde_json::from_str(&text).unwrap()
}

fn ours() -> Value {
    serde_json::from_str(&helsenett_exchange::openapi(
        "https://helsenett.test/helseid",
    ))
    .unwrap()
}

fn parameters(operation: &Value) -> BTreeSet<(String, String)> {
    operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_ascii_lowercase(),
                p["in"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `{id}` and `{herId}` alike: only the shape of a path matters.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|part| if part.starts_with('{') { "{}" } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_published_operation_is_served_with_its_parameters() {
    let (nhn, ours) = (nhn(), ours());
    assert_eq!(ours["servers"][0]["url"], "/msh");
    let served: Vec<(String, &Value)> = ours["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| (shape(path), item))
        .collect();
    let mut checked = 0;
    for (path, item) in nhn["paths"].as_object().unwrap() {
        for (method, published) in item.as_object().unwrap() {
            let (_, mine) = served
                .iter()
                .find(|(p, _)| *p == shape(path))
                .unwrap_or_else(|| panic!("{path} is not served"));
            let mine = &mine[method.as_str()];
            assert!(mine.is_object(), "{method} {path} is not served");
            let missing: Vec<_> = parameters(published)
                .difference(&parameters(mine))
                .cloned()
                .collect();
            assert!(missing.is_empty(), "{method} {path} lacks {missing:?}");
            for status in published["responses"].as_object().unwrap().keys() {
                if status != "500" {
                    assert!(
                        mine["responses"][status].is_object(),
                        "{method} {path} does not document {status}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 8, "NHN publishes eight operations");
}

#[test]
fn every_published_schema_has_the_same_properties() {
    let (nhn, ours) = (nhn(), ours());
    let theirs = nhn["components"]["schemas"].as_object().unwrap();
    let mine = ours["components"]["schemas"].as_object().unwrap();
    // The names differ where NHN's are generic: a message view is `MessageView` here.
    fn renamed(name: &str) -> &str {
        match name {
            "Message" => "MessageView",
            other => other,
        }
    }
    for (name, schema) in theirs {
        let Some(props) = schema["properties"].as_object() else {
            continue;
        };
        let published: BTreeSet<&str> = props.keys().map(String::as_str).collect();
        let here = &mine
            .get(renamed(name))
            .unwrap_or_else(|| panic!("schema {name} is missing"))["properties"];
        let served: BTreeSet<&str> = here
            .as_object()
            .unwrap_or_else(|| panic!("schema {name} has no properties here"))
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(published, served, "schema {name}");
    }
    for name in ["AppRecStatus", "DeliveryState"] {
        assert_eq!(
            theirs[name]["enum"], mine[name]["enum"],
            "enumeration {name}"
        );
    }
}
