//! Whether the stored pull requests equal a ground truth given as `pull_request` lines (the
//! shape `bbdc sync --jsonl` writes and `bbdc sim --truth` gives), field for field: what the
//! demo, the tests and the benchmarks check a sync by.

use crate::records::{Backend, Records, SqliteRecords};
use anyhow::Result;
use serde_json::Value;
use std::path::Path;

/// How many of the pull requests of `truth` the SQLite file `db` holds field for field, and
/// what differs (those in `skip` are left out).
pub fn compare_with_truth(
    db: &Path,
    truth: &[Value],
    skip: &[(String, String, u64)],
) -> Result<(usize, Vec<String>)> {
    compare_records_with_truth(&SqliteRecords::open(db)?, truth, skip)
}

/// [`compare_with_truth`] on any record store ([`crate::records::PgRecords`], say): how many
/// pull requests match, and what differs.
pub fn compare_records_with_truth<B: Backend>(
    records: &Records<B>,
    truth: &[Value],
    skip: &[(String, String, u64)],
) -> Result<(usize, Vec<String>)> {
    let rows: std::collections::HashMap<(String, String, u64), Value> = records
        .query(
            "SELECT project_key, repo_slug, id, record FROM pull_requests",
            &[],
        )?
        .into_iter()
        .filter_map(|r| {
            let mut r = r.into_iter();
            let project = r.next()?.into_text()?;
            let repo = r.next()?.into_text()?;
            let id = u64::try_from(r.next()?.int()?).ok()?;
            let record = r.next()?.into_text().unwrap_or_default();
            Some((
                (project, repo, id),
                serde_json::from_str(&record).unwrap_or(Value::Null),
            ))
        })
        .collect();
    let mut matched = 0;
    let mut problems = Vec::new();
    for t in truth {
        let key = (
            t["project_key"].as_str().unwrap_or_default().to_owned(),
            t["repo_slug"].as_str().unwrap_or_default().to_owned(),
            t["id"].as_u64().unwrap_or_default(),
        );
        if skip.contains(&key) {
            continue;
        }
        let Some(row) = rows.get(&key) else {
            problems.push(format!("{}/{} #{}: missing", key.0, key.1, key.2));
            continue;
        };
        let wrong: Vec<&str> = t
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| k.as_str() != "type" && row.get(k.as_str()) != Some(*v))
            .map(|(k, _)| k.as_str())
            .collect();
        if wrong.is_empty() {
            matched += 1;
        } else {
            let detail: Vec<String> = wrong
                .iter()
                .map(|k| format!("{k}: want {} got {}", t[*k], row[*k]))
                .collect();
            problems.push(format!(
                "{}/{} #{}: {}",
                key.0,
                key.1,
                key.2,
                detail.join("; ")
            ));
        }
    }
    let expected = truth.len() - skip.len();
    if rows.len() != expected {
        problems.push(format!(
            "{} pull requests stored, expected {expected}",
            rows.len()
        ));
    }
    Ok((matched, problems))
}
