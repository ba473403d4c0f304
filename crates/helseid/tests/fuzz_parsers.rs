//! The JWT and DPoP parsers take anything a client sends: no input may make them panic. The same
//! entry points are the `cargo fuzz` targets in `fuzz/`; this runs a bounded version in every test run.

use helsenett_helseid::{
    dpop::{self, Expected, Nonces},
    jose,
};
use proptest::prelude::*;
use url::Url;

fn check(input: &str) {
    if let Ok(jwt) = jose::parse(input) {
        let _ = jwt.claims_unverified::<serde_json::Value>();
    }
    let url = Url::parse("https://helsenett.test/helseid/connect/token").unwrap();
    let nonces = Nonces::new(b"fuzz");
    let _ = dpop::verify(
        input,
        &Expected {
            method: "POST",
            url: &url,
            access_token: Some("token"),
            nonces: Some(&nonces),
            now: 1_800_000_000,
        },
    );
    let _ = nonces.is_valid(input, 1_800_000_000);
}

/// base64url of JSON-ish text, so that inputs get past the first checks.
fn part() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,64}".prop_map(|s| jose::b64url(s.as_bytes())),
        r#"\{"(alg|typ|jwk|kid)":("ES256"|"none"|"dpop\+jwt"|\{"kty":"EC"\}|1|null)\}"#
            .prop_map(|s| jose::b64url(s.as_bytes())),
        "[A-Za-z0-9_-]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(input in ".{0,200}") {
        check(&input);
    }

    #[test]
    fn jwt_shaped_input_never_panics(h in part(), p in part(), s in part(), extra in proptest::option::of(part())) {
        let mut token = format!("{h}.{p}.{s}");
        if let Some(e) = extra {
            token = format!("{token}.{e}");
        }
        check(&token);
    }
}
