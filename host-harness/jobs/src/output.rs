//! Stable machine-readable shapes for the command line: error codes and JSON records.

pub use crate::outcome::record_kind;
use bbdc_host::bindings::types::{ConnectionReport, ConnectorError, SkipStage};
use bbdc_host::runtime::{CallError, HostError};
pub use bbdc_store::shape::*;
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
        ConnectorError::Timeout(m) => ("timeout", m.clone()),
        ConnectorError::Denied(m) => ("denied", m.clone()),
        ConnectorError::TooLarge(m) => ("too_large", m.clone()),
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
        HostError::Load(_) | HostError::Limits(_) => "internal",
        HostError::Unsupported(_) => "unsupported",
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
pub fn check_json(r: &ConnectionReport, budget: &bbdc_host::budget::RateBudget) -> Value {
    json!({
        "rate_budget": budget_json(budget),
        "ok": true,
        "server_version": r.server_version,
        "build_number": r.build_number,
        "server_name": r.server_name,
        "user": r.user,
        "projects": r.projects,
        "repos": r.repos,
        "personal_repos": r.personal_repos,
        "archived_repos": r.archived_repos,
        "excluded_repos": r.excluded_repos,
    })
}

/// `"details" | "activities" | "diff"`: what failed for a skipped pull request, as stored and
/// printed (the host's own `"identity"`, for a listed pull request without a usable id, is not a
/// connector stage).
pub fn skip_stage(s: SkipStage) -> &'static str {
    match s {
        SkipStage::Details => "details",
        SkipStage::Activities => "activities",
        SkipStage::Diff => "diff",
    }
}

/// A rate budget as JSON: `per_second` and `burst` (`null`: none), `source` (see
/// [`bbdc_host::budget::BudgetSource::code`]) and `detail`, where it came from in words.
pub fn budget_json(b: &bbdc_host::budget::RateBudget) -> Value {
    json!({
        "per_second": b.per_second.is_finite().then_some(b.per_second),
        "burst": b.burst,
        "source": b.source.code(),
        "detail": b.source.to_string(),
    })
}

/// A budget the server refused, as JSON: what was configured and what the server accepted,
/// requests per second.
pub fn refused_budget_json(b: bbdc_host::policy::RefusedBudget) -> Value {
    json!({
        "configured_per_second": b.configured,
        "accepted_per_second": b.accepted,
    })
}

/// A budget the server refused, in words, with what to do about it.
pub fn refused_budget_text(b: bbdc_host::policy::RefusedBudget) -> String {
    format!(
        "the server refused the budget of {:.1} requests a second and accepted about {:.1}: configure at most that (--rate, or per_second in the tenant file)",
        b.configured, b.accepted
    )
}

/// A rate budget in words: `5 requests a second, burst 60 (where from)`.
pub fn budget_text(b: &bbdc_host::budget::RateBudget) -> String {
    let source = b.source.to_string();
    let shown = crate::printable::shown(&source);
    match b.burst {
        Some(burst) if b.per_second.is_finite() => format!(
            "{} requests a second, burst {burst} ({shown}), paced {:.0} % under",
            b.per_second,
            (1.0 - bbdc_host::policy::PACE) * 100.0
        ),
        _ => format!("no client-side limit ({shown})"),
    }
}

/// The closing summary of a sync as JSON. `db` is the database as shown (a path, or a URL
/// without its password: [`crate::database::Database::display`]).
pub fn sync_summary_json(r: &crate::outcome::SyncReport, db: &str) -> Value {
    json!({
        "ok": r.status() == crate::outcome::SyncStatus::Complete,
        "status": r.status().name(),
        "db": db,
        "records": r.records,
        "unchanged_pull_requests": r.unchanged,
        "requests": r.requests,
        "retries": r.retries,
        "throttled": r.throttled,
        "rate_limit_wait_seconds": r.rate_limit_wait.as_secs_f64(),
        "rate_budget": r.budget.as_ref().map(budget_json),
        "rate_budget_refused": r.refused_budget.map(refused_budget_json),
        "users_fallback": r.users_fallback,
        "skipped": r.skipped.iter().map(|s| json!({"repo": s.repo, "id": s.id, "stage": s.stage, "error": s.code, "message": s.message})).collect::<Vec<_>>(),
        "unreadable": r.unreadable.iter().map(|u| json!({"kind": u.kind, "location": u.location, "reason": u.reason})).collect::<Vec<_>>(),
        "failed_projects": r.failed_projects.iter().map(|f| json!({"project": f.name, "error": f.code, "message": f.message})).collect::<Vec<_>>(),
        "failed_repos": r.failed_repos.iter().map(|f| json!({"repo": f.name, "error": f.code, "message": f.message})).collect::<Vec<_>>(),
        "seconds": r.elapsed.as_secs_f64(),
    })
}

/// The closing summary of a sync for people. Every text that came from the server is shown
/// escaped ([`crate::printable`]).
pub fn sync_summary_text(r: &crate::outcome::SyncReport, db: &str) -> String {
    use crate::printable::shown;
    use std::fmt::Write;
    let mut s = String::new();
    let n = |k: &str| r.records.get(k).copied().unwrap_or(0);
    let _ = writeln!(
        s,
        "sync {} in {:.1} s",
        if r.status() == crate::outcome::SyncStatus::Complete {
            "complete"
        } else {
            "finished with failures"
        },
        r.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "  records:  {} projects, {} repositories, {} users{}, {} pull requests new or changed ({} unchanged)",
        n("project"),
        n("repo"),
        n("user"),
        if r.users_fallback {
            " (visible users only: /admin/users was refused)"
        } else {
            ""
        },
        n("pull_request"),
        r.unchanged
    );
    if let Some(commits) = r.records.get("commit") {
        let _ = writeln!(
            s,
            "  history:  {commits} commits new on default branches, {} branches, {} tags",
            n("branch"),
            n("tag")
        );
    }
    let _ = writeln!(
        s,
        "  requests: {} ({} retried, {} rate-limited by the server, {:.1} s waiting for the rate limit)",
        r.requests,
        r.retries,
        r.throttled,
        r.rate_limit_wait.as_secs_f64()
    );
    if let Some(budget) = &r.budget {
        let _ = writeln!(s, "  budget:   {}", budget_text(budget));
    }
    if let Some(refused) = r.refused_budget {
        let _ = writeln!(s, "  warning:  {}", refused_budget_text(refused));
    }
    if !r.skipped.is_empty() {
        let _ = writeln!(
            s,
            "  skipped pull requests ({}), retried on the next sync:",
            r.skipped.len()
        );
        for k in &r.skipped {
            match k.id {
                Some(id) => writeln!(
                    s,
                    "    {} #{id}: {} failed: {}: {}",
                    shown(&k.repo),
                    k.stage,
                    k.code,
                    shown(&k.message)
                ),
                None => writeln!(
                    s,
                    "    {}: a pull request without a readable id: {}",
                    shown(&k.repo),
                    shown(&k.message)
                ),
            }
            .ok();
        }
    }
    if !r.unreadable.is_empty() {
        let _ = writeln!(
            s,
            "  records left out because they cannot be identified ({}):",
            r.unreadable.len()
        );
        for u in &r.unreadable {
            let _ = writeln!(
                s,
                "    {} at {}: {}",
                u.kind,
                shown(&u.location),
                shown(&u.reason)
            );
        }
    }
    let failures = [
        (
            &r.failed_projects,
            "failed projects",
            ", their repositories not synced",
        ),
        (&r.failed_repos, "failed repositories", ""),
    ];
    for (list, heading, tail) in failures.into_iter().filter(|(l, _, _)| !l.is_empty()) {
        let _ = writeln!(s, "  {heading} ({}){tail}:", list.len());
        for f in list {
            let _ = writeln!(
                s,
                "    {}: {}: {}",
                shown(&f.name),
                f.code,
                shown(&f.message)
            );
        }
    }
    let _ = write!(s, "  database: {db}");
    s
}

/// Writes JSON lines, shared by the workers.
pub type JsonlOut = std::sync::Mutex<Box<dyn std::io::Write + Send>>;

/// Writes `values` to `out` (when there is one), a line each, and flushes.
pub fn emit(
    out: Option<&JsonlOut>,
    values: impl IntoIterator<Item = Value>,
) -> Result<(), std::io::Error> {
    use std::io::Write;
    let Some(out) = out else { return Ok(()) };
    let mut w = out
        .lock()
        .map_err(|_| std::io::Error::other("output lock poisoned"))?;
    for v in values {
        writeln!(w, "{v}")?;
    }
    w.flush()
}
