//! `bbdc bench`: the benchmark suite of BENCHMARKS.md, each figure beside its target.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
/// Arguments of `bbdc bench`.
pub struct BenchArgs {
    /// Small sizes, few iterations: checks the suite runs, the figures mean nothing.
    #[arg(long)]
    pub quick: bool,
    /// Run only these benchmarks (1 to 7, or 9: `bbdc worker` scaling on a throwaway
    /// PostgreSQL), e.g. `--only 1,3`.
    #[arg(long, value_delimiter = ',', value_name = "N")]
    pub only: Vec<u8>,
    /// Latency the simulator adds per request in benchmark 4, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 20)]
    pub latency_ms: u64,
    /// Repositories synced at a time in benchmark 4 (both strategies).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub concurrency: usize,
    /// Concurrent senders in benchmark 6.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub senders: usize,
    /// Run benchmark 8, scale (tens of minutes): `bbdc sync` against instances of 1,000, 10,000
    /// and 50,000 repositories, peak RSS and time per pull request. Alone, or with `--only`'s.
    #[arg(long)]
    pub scale: bool,
    /// Instance sizes for --scale, in repositories (multiples of 25), e.g. `--scale-sizes
    /// 1000,5000`.
    #[arg(long, value_delimiter = ',', value_name = "N", requires = "scale")]
    pub scale_sizes: Vec<usize>,
    /// Also print the figures as the Markdown table of BENCHMARKS.md.
    #[arg(long)]
    pub markdown: bool,
}

pub fn run(component: Option<PathBuf>, args: &BenchArgs) -> Result<ExitCode> {
    use bbdc_bench::BenchOptions;
    let options = BenchOptions {
        quick: args.quick,
        latency: std::time::Duration::from_millis(args.latency_ms),
        concurrency: args.concurrency,
        senders: args.senders,
        component,
        only: args.only.clone(),
        scale: args.scale,
        scale_sizes: args.scale_sizes.clone(),
        // The scale benchmark runs this very binary's `sync`.
        bbdc: std::env::current_exe().ok(),
    };
    let figures = bbdc_bench::run(&options, |f| {
        let verdict = match f.met() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        println!(
            "{}. {:<72} {:>12}   target {:<10} {verdict}",
            f.bench,
            f.name,
            f.shown(),
            f.target.describe(f.unit)
        );
        println!("   {}", f.detail);
    })?;
    if args.markdown {
        println!("\n{}", bbdc_bench::markdown_table(&figures));
    }
    let missed = figures.iter().filter(|f| f.met() == Some(false)).count();
    if missed > 0 {
        println!("{missed} figure(s) missed their target");
    }
    Ok(ExitCode::SUCCESS)
}
