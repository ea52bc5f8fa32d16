//! A tenant's bad data stays its own (issue 28): a tenant id the database cannot store is
//! refused when its file is read, and `bbdc webhook` stores (and de-duplicates) a delivery in
//! the schema of the tenant it names.

use bbdc_test_postgres::TestPostgres;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

mod binary;
mod common;
#[path = "../../../tests/support/reference.rs"]
mod reference;

use binary::bbdc;

/// Runs `bbdc` with `args` to its end, killing it after a minute (a run that hangs fails).
fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut child = bbdc()
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bbdc runs");
    let started = Instant::now();
    while child.try_wait().expect("a status").is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("bbdc {args:?} ran past a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("its output")
}

/// A tenant id holding NUL stopped every tenant of a worker on main: PostgreSQL refused each
/// query naming all tenants, and `--until-idle` never returned. Now the file is refused as it
/// is read, naming the entry by its position and its id, escaped, before the database is
/// touched (the URL here has nothing listening).
#[test]
fn a_tenant_id_holding_nul_is_refused_by_position_before_any_work() {
    let dir = tempfile::tempdir().expect("a folder");
    let file = dir.path().join("fleet.toml");
    std::fs::write(
        &file,
        "[[tenants]]\nid = \"acme\"\nbase_url = \"https://acme.invalid\"\n\n\
         [[tenants]]\nid = \"glo\\u0000bex\"\nbase_url = \"https://globex.invalid\"\n",
    )
    .expect("a tenant file");
    let out = run(
        &[
            "worker",
            "--db",
            "postgres://bbdc@127.0.0.1:1/none",
            "--tenant",
            &file.display().to_string(),
            "--until-idle",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("tenants entry 2"), "{err}");
    assert!(
        err.contains(r#""glo\0bex""#) || err.contains(r#""glo\u{0}bex""#),
        "the id, escaped: {err}"
    );
    assert!(
        !err.contains('\0'),
        "no raw NUL reaches the terminal: {err}"
    );
    // `serve` reads tenant files the same way.
    let single = dir.path().join("one.toml");
    std::fs::write(
        &single,
        "id = \"a\\u001b[2Jb\"\nbase_url = \"https://a.invalid\"\n",
    )
    .expect("a tenant file");
    let out = run(
        &[
            "serve",
            "--allow-unsigned",
            "--listen",
            "127.0.0.1:0",
            "--db",
            &dir.path().join("s.sqlite").display().to_string(),
            "--tenant",
            &single.display().to_string(),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("U+001B"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
}

/// `bbdc webhook --db postgres://...` stored into a `default` schema that no worker reads, and
/// a replay of a delivery stored for a real tenant was accepted and stored again. Now it
/// refuses to run without `--tenant`, and with it de-duplicates in that tenant's schema.
#[test]
fn bbdc_webhook_stores_and_deduplicates_in_its_tenants_schema() {
    let pg = TestPostgres::start_or_panic();
    let url = pg.url();
    let dir = tempfile::tempdir().expect("a folder");
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(
        &fleet,
        "[[tenants]]\nid = \"acme\"\nbase_url = \"https://acme.invalid\"\n\n\
         [[tenants]]\nid = \"globex\"\nbase_url = \"https://globex.invalid\"\n",
    )
    .expect("a tenant file");
    let body = dir.path().join("approval.json");
    let (bytes, signature) = common::signed_approval("tenant-secret", 5, 1);
    std::fs::write(&body, &bytes).expect("the body");
    let deliver = |extra: &[&str]| -> (Option<i32>, serde_json::Value, String) {
        let mut args = vec![
            "webhook",
            "--secret-env",
            "TENANT_SECRET",
            "-H",
            "X-Event-Key: pr:reviewer:approved",
            "-H",
            "X-Request-Id: replayed-0001",
        ];
        let sig = format!("X-Hub-Signature: {signature}");
        args.extend(["-H", &sig]);
        let body = body.display().to_string();
        args.extend(["--body", &body, "--db", &url, "--json"]);
        args.extend(extra);
        let out = run(&args, &[("TENANT_SECRET", "tenant-secret")]);
        let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (
            out.status.code(),
            report,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let fleet_s = fleet.display().to_string();
    let (code, _, err) = deliver(&[]);
    assert_ne!(code, Some(0), "no tenant on PostgreSQL: refused");
    assert!(err.contains("needs --tenant"), "{err}");
    let (code, _, err) = deliver(&["--tenant", &fleet_s]);
    assert_ne!(code, Some(0));
    assert!(err.contains("name one with --tenant-id"), "{err}");
    let acme = ["--tenant", fleet_s.as_str(), "--tenant-id", "acme"];
    let (code, report, err) = deliver(&acme);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["result"], "accepted", "{report}");
    // The replay of what acme stored: a duplicate, stored once.
    let (code, report, err) = deliver(&acme);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["result"], "duplicate", "{report}");
    let count = |tenant: &str, table: &str| {
        pg.psql(
            "postgres",
            &format!(
                "SELECT COUNT(*) FROM {}.{table}",
                bbdc_jobs::records::tenant_schema(tenant)
            ),
        )
        .unwrap_or_else(|e| e)
    };
    assert_eq!(count("acme", "reviews"), "1");
    assert_eq!(count("acme", "webhook_deliveries"), "1");
    // Another tenant's delivery with the same request id is its own.
    let (_, report, _) = deliver(&["--tenant", &fleet_s, "--tenant-id", "globex"]);
    assert_eq!(report["result"], "accepted", "{report}");
    assert_eq!(count("globex", "webhook_deliveries"), "1");
    let (code, _, err) = deliver(&["--tenant", &fleet_s, "--tenant-id", "initech"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("lists no tenant"), "{err}");
}
