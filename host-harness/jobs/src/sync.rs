//! The sync job behind `bbdc sync`: projects → repositories → users → pull requests, repositories
//! in parallel (each call in its own store), every batch made durable in the [`RecordSink`] before
//! the connector is told so (by calling it again with the batch's cursor). This module schedules
//! the work and draws its progress; each concern has a module of its own: what a job is
//! ([`crate::job`]), the listing ([`crate::listing`]), one repository's pass
//! ([`crate::repo_pass`]), what it comes to ([`crate::outcome`]), and the refresh `serve` asks
//! for ([`crate::refresh`]).

use crate::job::wit_options;
pub use crate::job::{Entities, SyncJob};
pub use crate::listing::list_for_workers;
use crate::listing::{Writer, enumerate, list_users, record_gone_repos};
pub use crate::outcome::{
    Failure, PARTIAL_EXIT, SkippedPr, SyncError, SyncReport, SyncStatus, Unreadable,
};
pub use crate::output::JsonlOut;
use crate::records::RecordSink;
pub use crate::refresh::{refresh_history, refresh_pull_request_history};
pub use crate::repo_pass::{RepoCounts, RepoPassError, sync_one_repo};
use crate::repo_pass::{RepoFailure, RepoJob};
use bbdc_host::bindings::api::RepoRef;
use bbdc_host::clock::now_ms;
use bbdc_host::runtime::Runtime;
use bbdc_host::tenant::Tenant;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Repositories listed ahead of the workers: enough that no worker waits for the listing's next
/// page, few enough that memory does not grow with the instance.
const LISTED_AHEAD: usize = 256;

/// Runs the job.
pub fn run(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    sink: &dyn RecordSink,
    jsonl: Option<&JsonlOut>,
    job: &SyncJob,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let before = tenant.http.counters.snapshot();
    let mut report = SyncReport {
        budget: Some(tenant.rate_budget()),
        ..SyncReport::default()
    };
    let bars = MultiProgress::with_draw_target(if job.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let phase = bars.add(ProgressBar::new_spinner());
    phase.enable_steady_tick(Duration::from_millis(120));

    // Projects and repositories, listed page by page, each repository handed to the workers
    // as it is listed (pull requests, repositories in parallel); then users, while the workers
    // go on.
    phase.set_message("listing projects and repositories");
    let listing_started = now_ms();
    let bar = bars.add(ProgressBar::new(0));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} pull requests [{bar:30}] {pos}/{len} repositories listed {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (listed, queue) = std::sync::mpsc::sync_channel::<RepoRef>(LISTED_AHEAD);
    // Shared by the workers alone: once they have all stopped, it is dropped, and the listing's
    // next send fails instead of waiting for ever.
    let queue = Arc::new(Mutex::new(queue));
    let tally = Mutex::new(Totals::default());
    // Set when the job must stop: records could not be written, or the listing failed.
    let stop = AtomicBool::new(false);
    let options = wit_options(job);
    let ctx = RepoJob {
        runtime,
        tenant,
        sink,
        jsonl,
        options: &options,
        entities: job.entities,
        bounds: job.bounds(),
        // A record write that fails stops the other repositories' passes too.
        cancel: Some(&stop),
    };
    let mut writer = Writer {
        sink,
        jsonl,
        projects: HashSet::new(),
        repos: 0,
    };
    let listing = std::thread::scope(|scope| {
        let (ctx, tally, stop, bar) = (&ctx, &tally, &stop, &bar);
        for _ in 0..job.concurrency.max(1) {
            let queue = Arc::clone(&queue);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let next = queue.lock().ok().and_then(|q| q.recv().ok());
                    let Some(repo) = next else {
                        return;
                    };
                    let name = format!("{}/{}", repo.project_key, repo.slug);
                    let outcome = ctx.sync_repo(&repo, &name);
                    if let Ok(mut t) = tally.lock() {
                        match outcome {
                            Ok(r) => {
                                t.counts += r.counts;
                                t.skipped.extend(r.skipped);
                                t.unreadable.extend(r.unreadable);
                            }
                            Err(RepoFailure::Call { code, message }) => {
                                t.failed.push(Failure::new(name, code, message))
                            }
                            // Only a fatal error elsewhere cancels a pass: that error is the job's.
                            Err(RepoFailure::Cancelled) => {}
                            Err(RepoFailure::Fatal(e)) => {
                                t.fatal.get_or_insert(e);
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                        bar.set_message(format!("{} pull requests", t.counts.pull_requests));
                    }
                    bar.inc(1);
                }
            });
        }
        drop(queue);
        // A worker's failure to write records ends the listing with that error.
        let fatal = || tally.lock().ok().and_then(|mut t| t.fatal.take());
        let listing = enumerate(
            runtime,
            tenant,
            job,
            None,
            &mut writer,
            &mut report,
            |repo| {
                if stop.load(Ordering::Relaxed)
                    && let Some(e) = fatal()
                {
                    return Err(e);
                }
                bar.inc_length(1);
                listed.send(repo).map_err(|_| {
                    fatal().unwrap_or_else(|| {
                        SyncError::Output(std::io::Error::other("every repository worker stopped"))
                    })
                })
            },
        );
        // The workers finish what is listed, then stop.
        drop(listed);
        let listing = listing.and_then(|()| {
            phase.set_message("listing users");
            list_users(runtime, tenant, job, None, sink, jsonl, &mut report)
        });
        if listing.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        phase.finish_and_clear();
        listing
    });
    listing?;
    record_gone_repos(sink, jsonl, job, listing_started, &mut report)?;
    report
        .records
        .insert("project", writer.projects.len() as u64);
    report.records.insert("repo", writer.repos);
    bar.finish_and_clear();
    let tally = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    report.unreadable.extend(tally.unreadable);
    if let Some(e) = tally.fatal {
        return Err(e);
    }
    if job.entities.pull_requests {
        report
            .records
            .insert("pull_request", tally.counts.pull_requests);
    }
    if job.entities.commits {
        report.records.insert("commit", tally.counts.commits);
        report.records.insert("branch", tally.counts.branches);
        report.records.insert("tag", tally.counts.tags);
    }
    if job.entities.builds {
        report.records.insert("build", tally.counts.builds);
    }
    if job.entities.pr_commits() {
        report.records.insert("pr_commit", tally.counts.pr_commits);
    }
    report.unchanged = tally.counts.unchanged;
    report.skipped = tally.skipped;
    report.failed_repos.extend(tally.failed);
    let http = tenant.http.counters.snapshot().since(before);
    report.requests = http.requests;
    report.retries = http.retries;
    report.throttled = http.throttled;
    report.rate_limit_wait = http.waited;
    report.refused_budget = tenant.http.refused_budget();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// What the repository workers have gathered so far.
#[derive(Default)]
struct Totals {
    counts: RepoCounts,
    skipped: Vec<SkippedPr>,
    failed: Vec<Failure>,
    /// The first error that stops the job (records could not be written).
    fatal: Option<SyncError>,
    unreadable: Vec<Unreadable>,
}

#[cfg(test)]
mod tests {
    use super::Entities;

    #[test]
    fn entities_parse_as_a_list_of_names() {
        let all = Entities {
            pull_requests: true,
            commits: true,
            builds: true,
        };
        assert_eq!(Entities::parse("all"), Ok(all));
        assert_eq!(Entities::parse("commits, pull-requests,builds"), Ok(all));
        assert_eq!(
            Entities::parse("commits"),
            Ok(Entities {
                pull_requests: false,
                commits: true,
                builds: false,
            })
        );
        assert_eq!(
            Entities::parse("pull-requests"),
            Ok(Entities::PULL_REQUESTS)
        );
        assert_eq!(Entities::default(), Entities::ALL);
        // Builds are read for the commits another pass brings: alone they are refused.
        for bad in ["", ",", "builds", "Commits", "deployments"] {
            assert!(Entities::parse(bad).is_err(), "{bad:?}");
        }
    }
}
