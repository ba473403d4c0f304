//! The hub's reader of a sealed payload's recipients (a DER walk) on arbitrary bytes.
#![no_main]

use helsenett_exchange::cms;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cms::recipients(data);
});
