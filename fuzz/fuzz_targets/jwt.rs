#![no_main]

use helsenett_helseid::{
    dpop::{self, Expected, Nonces},
    jose,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(jwt) = jose::parse(input) {
        let _ = jwt.claims_unverified::<serde_json::Value>();
    }
    let url = url::Url::parse("https://helsenett.test/helseid/connect/token").unwrap();
    let nonces = Nonces::new(b"fuzz");
    let expected = Expected {
        method: "POST",
        url: &url,
        access_token: Some("token"),
        nonces: Some(&nonces),
        now: 1_800_000_000,
    };
    let _ = dpop::verify(input, &expected);
});
