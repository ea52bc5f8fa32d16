//! `bbdc check`: does the server answer, do the credentials work, is there something to import.

use crate::args::{FilterArgs, ServerArgs, runtime};
use anyhow::Result;
use bbdc_host::Tenant;
use bbdc_jobs::{output, printable};
use bbdc_store::kv::SqliteKv;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(
    component: Option<PathBuf>,
    server: &ServerArgs,
    filter: &FilterArgs,
    json: bool,
) -> Result<ExitCode> {
    let fail = |code: &str, message: &str| {
        if json {
            println!("{}", output::failure_json(code, message));
        } else {
            eprintln!(
                "connection check failed: {code}: {}",
                printable::shown(message)
            );
        }
        Ok(ExitCode::FAILURE)
    };
    let config = match server.tenant_config() {
        Ok(c) => c,
        Err(e) => return fail("invalid_config", &format!("{e:#}")),
    };
    let kv = Arc::new(SqliteKv::in_memory()?);
    let tenant = match Tenant::new(config, kv) {
        Ok(t) => Arc::new(t),
        Err(e) => return fail("invalid_config", &e.to_string()),
    };
    let runtime = runtime(component)?;
    match runtime.check_connection(&tenant, filter.filter()) {
        Ok(report) => {
            let budget = tenant.rate_budget();
            if json {
                println!("{}", output::check_json(&report, &budget));
            } else {
                println!("connection ok");
                println!(
                    "  server:       {} {}",
                    printable::shown(report.server_name.as_deref().unwrap_or("Bitbucket")),
                    printable::shown(
                        report
                            .server_version
                            .as_deref()
                            .unwrap_or("(version unknown)")
                    )
                );
                println!(
                    "  account:      {}",
                    printable::shown(report.user.as_deref().unwrap_or("(the server did not say)"))
                );
                println!(
                    "  projects:     {} (personal projects are not listed)",
                    report.projects
                );
                println!(
                    "  repositories: {} to sync ({} personal, {} archived; {} left out by the filter)",
                    report.repos,
                    report.personal_repos,
                    report.archived_repos,
                    report.excluded_repos
                );
                println!("  rate budget:  {}", output::budget_text(&budget));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let (code, message) = output::call_error(&e);
            fail(code, &message)
        }
    }
}
