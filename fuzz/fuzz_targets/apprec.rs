//! The AppRec reader on arbitrary bytes: it may refuse, never panic.
#![no_main]

use helsenett_exchange::{apprec::AppRec, xml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(root) = xml::parse(data) {
        let _ = AppRec::read(&root);
    }
});
