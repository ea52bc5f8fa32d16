//! Page and record parsing: arbitrary bytes as a page of pull requests, projects or activities.
#![no_main]

use bbdc_connector::paging::{WirePage, next_start};
use bbdc_connector::wire::{WireActivity, WireProject, WirePullRequest, WireRepo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = serde_json::from_slice::<WirePage<WirePullRequest>>(data) {
        if let (Some(next), _) = next_start(0, &p) {
            assert!(next > 0);
        }
    }
    let _ = serde_json::from_slice::<WirePage<WireProject>>(data);
    let _ = serde_json::from_slice::<WirePage<WireRepo>>(data);
    let _ = serde_json::from_slice::<WirePage<WireActivity>>(data);
});
