//! Page and record parsing: arbitrary bytes as a page of pull requests, projects, repositories or
//! activities, each item decoded on its own.
#![no_main]

use bbdc_connector::model::RecordKind;
use bbdc_connector::paging::{WirePage, next_start};
use bbdc_connector::wire::{WireActivity, WireProject, WirePullRequest, WireRepo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = serde_json::from_slice::<WirePage<'_>>(data) {
        if let (Some(next), _) = next_start(0, &p) {
            assert!(next > 0);
        }
        let _ = p.decode::<WirePullRequest>(RecordKind::PullRequest, "fuzz");
        let _ = p.decode::<WireProject>(RecordKind::Project, "fuzz");
        let _ = p.decode::<WireRepo>(RecordKind::Repository, "fuzz");
        let _ = p.decode::<WireActivity>(RecordKind::Activity, "fuzz");
    }
});
