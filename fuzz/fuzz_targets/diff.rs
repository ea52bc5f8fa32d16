//! Diff counting: arbitrary bytes through the streaming counter.
#![no_main]

use bbdc_connector::diffstat::count_reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = count_reader(data);
});
