//! The MsgHead reader on arbitrary bytes: it may refuse, never panic.
#![no_main]

use helsenett_exchange::{envelope::Envelope, xml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(root) = xml::parse(data) {
        let _ = Envelope::read(&root);
    }
});
