//! The schema validator on arbitrary bytes: always a report, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = helsenett_samsvar::validate(data);
});
