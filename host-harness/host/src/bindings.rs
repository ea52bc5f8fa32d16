//! Host-side bindings generated from `wit/`.

wasmtime::component::bindgen!({
    world: "connector-plugin",
    path: "../../wit",
    with: {
        "ingest:bitbucket-dc/http.body": crate::http::StreamBody,
    },
    imports: { default: trappable },
    additional_derives: [PartialEq, Eq],
});

pub use exports::ingest::bitbucket_dc::connector as api;
pub use ingest::bitbucket_dc::types;
pub use ingest::bitbucket_dc::{
    delivery as wit_delivery, http as wit_http, log as wit_log, storage as wit_storage,
};

impl types::RepoFilter {
    /// Every visible repository, personal and archived ones included: what `bbdc` visits
    /// unless told otherwise.
    pub const EVERYTHING: Self = Self {
        include_personal: true,
        include_archived: true,
    };
}
