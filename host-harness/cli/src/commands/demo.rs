//! `bbdc demo`: the whole product against the simulator, with no setup.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
/// Arguments of `bbdc demo`.
pub struct DemoArgs {
    /// Where the demo's SQLite file goes.
    #[arg(long, value_name = "PATH", default_value = "bbdc-demo.sqlite")]
    pub db: PathBuf,
}

/// Runs the demo; fails when the database does not match the simulator's ground truth.
pub fn run(component: Option<PathBuf>, args: &DemoArgs) -> Result<ExitCode> {
    bbdc_jobs::demo::run(component, &args.db).map(|ok| {
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}
