//! Stable machine-readable shapes for the command line: error codes and JSON records.

use crate::bindings::types::{ConnectionReport, ConnectorError};
use crate::runtime::{CallError, HostError};
use serde_json::{Value, json};

/// The snake_case code and message of a connector error.
pub fn connector_error(e: &ConnectorError) -> (&'static str, String) {
    match e {
        ConnectorError::InvalidCredentials(m) => ("invalid_credentials", m.clone()),
        ConnectorError::InvalidPermissions(m) => ("invalid_permissions", m.clone()),
        ConnectorError::NoResources(m) => ("no_resources", m.clone()),
        ConnectorError::NotFound(m) => ("not_found", m.clone()),
        ConnectorError::RateLimited(r) => (
            "rate_limited",
            match r.retry_after_ms {
                Some(ms) => format!("{} (retry after {} s)", r.message, ms.div_ceil(1000)),
                None => r.message.clone(),
            },
        ),
        ConnectorError::Server(s) => ("server", s.message.clone()),
        ConnectorError::Transport(m) => ("transport", m.clone()),
        ConnectorError::MalformedResponse(m) => ("malformed_response", m.clone()),
        ConnectorError::InvalidConfig(m) => ("invalid_config", m.clone()),
        ConnectorError::Storage(m) => ("storage", m.clone()),
    }
}

/// The code and message of a host failure.
pub fn host_error(e: &HostError) -> (&'static str, String) {
    let code = match e {
        HostError::Deadline(_) => "deadline_exceeded",
        HostError::MemoryLimit(_) => "memory_limit_exceeded",
        HostError::Fuel => "fuel_exhausted",
        HostError::Storage(_) => "storage",
        HostError::Trap(_) => "internal",
        HostError::Load(_) => "internal",
    };
    (code, e.to_string())
}

/// The code and message of any call failure.
pub fn call_error(e: &CallError<ConnectorError>) -> (&'static str, String) {
    match e {
        CallError::Connector(c) => connector_error(c),
        CallError::Host(h) => host_error(h),
    }
}

/// `{"ok": false, "error": code, "message": ...}`.
pub fn failure_json(code: &str, message: &str) -> Value {
    json!({"ok": false, "error": code, "message": message})
}

/// The success object of `bbdc check --json`.
pub fn check_json(r: &ConnectionReport) -> Value {
    json!({
        "ok": true,
        "server_version": r.server_version,
        "build_number": r.build_number,
        "server_name": r.server_name,
        "user": r.user,
        "projects": r.projects,
        "repos": r.repos,
    })
}
