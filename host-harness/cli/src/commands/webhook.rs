//! `bbdc webhook`: one delivery from a file or stdin through the connector, and what became of it.

use crate::args::{NO_SERVER, parse_header, parse_max_body, runtime, secret_from_env};
use anyhow::{Context, Result, bail};
use bbdc_host::{Credentials, Tenant, TenantConfig};
use bbdc_jobs::database::Database;
use bbdc_jobs::printable;
use bbdc_store::kv::SqliteKv;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
/// Arguments of `bbdc webhook`.
pub struct WebhookArgs {
    /// Name of the environment variable holding the webhook secret.
    #[arg(long, value_name = "VAR")]
    pub secret_env: Option<String>,
    /// A request header, as 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "'Name: value'", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// The raw body: a file, or `-` for stdin.
    #[arg(long, value_name = "PATH|-", default_value = "-")]
    pub body: String,
    /// Persist accepted deliveries (and deduplicate) in this SQLite file or PostgreSQL
    /// database (`postgres://...`, which needs `--tenant`), as `serve` does.
    #[arg(long, value_name = "PATH|URL", value_parser = bbdc_jobs::database::Database::parse)]
    pub db: Option<bbdc_jobs::database::Database>,
    /// The tenant the delivery is for: a tenant file, as `serve` and `worker` read it. Its id
    /// names the tenant's state and, on PostgreSQL, the schema its records and de-duplication
    /// marks live in. Only the id is read: no credential is needed to handle a delivery.
    #[arg(long, value_name = "FILE")]
    pub tenant: Option<PathBuf>,
    /// Which tenant of a `--tenant` file that lists several (`[[tenants]]`).
    #[arg(long, value_name = "ID", requires = "tenant")]
    pub tenant_id: Option<String>,
    /// Largest body accepted, in bytes (at most the connector's own cap, 8 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = bbdc_jobs::webhook::DEFAULT_MAX_BODY, value_parser = parse_max_body)]
    pub max_body: usize,
    /// Print the JSON report instead of one line for people.
    #[arg(long)]
    pub json: bool,
}

pub fn run(component: Option<PathBuf>, args: &WebhookArgs) -> Result<ExitCode> {
    use std::io::Read;
    let secret = args
        .secret_env
        .as_deref()
        .map(secret_from_env)
        .transpose()?;
    // At most the cap and one byte more are read: enough to tell a body over the cap.
    let limit = u64::try_from(args.max_body)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut body = Vec::new();
    if args.body == "-" {
        std::io::stdin().take(limit).read_to_end(&mut body)?;
    } else {
        std::fs::File::open(&args.body)
            .and_then(|f| f.take(limit).read_to_end(&mut body))
            .with_context(|| format!("reading {}", args.body))?;
    }
    let id = match &args.tenant {
        Some(path) => tenant_id(path, args.tenant_id.as_deref())?,
        None => {
            if let Some(db @ Database::Postgres(_)) = &args.db {
                bail!(
                    "bbdc webhook --db {} needs --tenant FILE: a delivery is stored, and \
                     de-duplicated, in its tenant's schema",
                    db.display()
                );
            }
            "default".to_owned()
        }
    };
    let config = TenantConfig::new(id, NO_SERVER, Credentials::None);
    let stores = args
        .db
        .as_ref()
        .map(|db| db.open(&config.id, 2, None))
        .transpose()?;
    let kv: Arc<dyn bbdc_host::storage::KvStore> = match &stores {
        Some(stores) => Arc::clone(&stores.kv),
        None => Arc::new(SqliteKv::in_memory()?),
    };
    let records = stores.map(|s| s.records);
    let tenant = Arc::new(Tenant::new(config, kv)?);
    let runtime = runtime(component)?;
    let report = bbdc_jobs::webhook::handle(
        &runtime,
        &tenant,
        secret.as_deref(),
        args.max_body,
        args.headers.clone(),
        body,
        records.as_deref(),
    );
    if args.json {
        println!("{}", bbdc_jobs::webhook::report_json(&report));
    } else {
        let shown = |v: Option<&str>| printable::prefix(v.unwrap_or("-")).to_string();
        let mut line = format!(
            "{} {} {} {}",
            report.http_status,
            report.result,
            shown(report.event_key.as_deref()),
            shown(report.request_id.as_deref())
        );
        if let (Some(code), Some(message)) = (report.error, report.message.as_deref()) {
            line.push_str(&format!(": {code}: {}", printable::shown(message)));
        }
        println!("{line}");
    }
    Ok(
        if report.result == "rejected" || report.http_status >= 500 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// The id of the tenant `path` describes, or of the one named `wanted` among those it lists.
fn tenant_id(path: &std::path::Path, wanted: Option<&str>) -> Result<String> {
    let all = bbdc_host::TenantFile::load_all(path)?;
    let ids: Vec<&str> = all.iter().map(|t| t.id.as_str()).collect();
    match (wanted, ids.as_slice()) {
        (None, [one]) => Ok((*one).to_owned()),
        (None, _) => bail!(
            "{} lists {} tenants: name one with --tenant-id",
            path.display(),
            ids.len()
        ),
        (Some(w), _) if ids.contains(&w) => Ok(w.to_owned()),
        (Some(w), _) => bail!("{} lists no tenant {}", path.display(), printable::shown(w)),
    }
}
