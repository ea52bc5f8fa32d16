//! Host-side bindings generated from `wit/`: contract 0.2.0, the one `bbdc-connector` is built
//! for, and 0.1.0, still loaded. 0.2.0 imports 0.1.0's host interfaces and records unchanged, so
//! both worlds share one set of import implementations and one set of record types; only their
//! `connector` exports differ (see [`crate::plugin::Plugin`]).

/// Contract 0.2.0 (`wit/0.2.0`, with 0.1.0 as its dependency).
pub mod v0_2 {
    wasmtime::component::bindgen!({
        world: "ingest:bitbucket-dc/connector-plugin@0.2.0",
        path: "../../wit/0.2.0",
        with: {
            "ingest:bitbucket-dc/http@0.1.0.body": crate::http::StreamBody,
        },
        imports: { default: trappable },
        additional_derives: [PartialEq, Eq],
    });
}

/// Contract 0.1.0 (`wit/0.1.0`): only its `connector` export is generated here; its imports and
/// records are 0.2.0's (the same interfaces).
pub mod v0_1 {
    wasmtime::component::bindgen!({
        world: "ingest:bitbucket-dc/connector-plugin@0.1.0",
        path: "../../wit/0.1.0",
        with: {
            "ingest:bitbucket-dc/types@0.1.0": super::v0_2::ingest::bitbucket_dc0_1_0::types,
            "ingest:bitbucket-dc/http@0.1.0": super::v0_2::ingest::bitbucket_dc0_1_0::http,
            "ingest:bitbucket-dc/storage@0.1.0": super::v0_2::ingest::bitbucket_dc0_1_0::storage,
            "ingest:bitbucket-dc/log@0.1.0": super::v0_2::ingest::bitbucket_dc0_1_0::log,
            "ingest:bitbucket-dc/delivery@0.1.0": super::v0_2::ingest::bitbucket_dc0_1_0::delivery,
        },
        imports: { default: trappable },
    });
}

pub use v0_2::exports::ingest::bitbucket_dc0_2_0::connector as api;
pub use v0_2::ingest::bitbucket_dc0_1_0::types;
pub use v0_2::ingest::bitbucket_dc0_1_0::{
    delivery as wit_delivery, http as wit_http, log as wit_log, storage as wit_storage,
};
pub use v0_2::ingest::bitbucket_dc0_2_0::history;
pub use v0_2::ingest::bitbucket_dc0_2_0::repository_events;

impl types::RepoFilter {
    /// Every visible repository, personal and archived ones included: what `bbdc` visits
    /// unless told otherwise.
    pub const EVERYTHING: Self = Self {
        include_personal: true,
        include_archived: true,
    };
}
