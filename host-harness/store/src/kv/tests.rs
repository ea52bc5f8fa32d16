//! The key-value store on both databases: the store contract, and what each adds (a private
//! file on SQLite; pools, concurrent processes and outages on PostgreSQL).

use super::*;
use crate::postgres::{is_unreachable, kv_migrations, pool};
use bbdc_test_postgres::TestPostgres;

#[cfg(unix)]
#[test]
fn database_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let kv = SqliteKv::open(&path).unwrap();
    kv.set("t", "k", b"v").unwrap();
    for file in ["s.sqlite", "s.sqlite-wal"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} is open to others: {mode:o}");
    }
}

#[test]
fn persists_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    SqliteKv::open(&path).unwrap().set("t", "k", b"v").unwrap();
    assert_eq!(
        SqliteKv::open(&path)
            .unwrap()
            .get("t", "k")
            .unwrap()
            .as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn a_failure_says_what_was_being_done_and_carries_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("s.sqlite");
    let e = SqliteKv::open(&path).err().expect("no such directory");
    let cause = std::error::Error::source(&e).expect("the I/O error is the source");
    assert!(
        !e.to_string().contains(&cause.to_string()),
        "said once: {e}"
    );
    let text = bbdc_host::errors::chain(&e);
    assert!(
        text.starts_with(&format!("storage: {}: ", path.display()))
            && text.ends_with(&cause.to_string()),
        "{text}"
    );
}

#[test]
fn tenants_keys_swaps_and_many_keys_keep_the_store_contract() {
    bbdc_host::storage::check_contract(&SqliteKv::in_memory().unwrap());
}

/// Reads of more keys than one statement takes, with a key asked twice, answer one value per
/// key, in order.
fn many_keys_answer_in_order(kv: &dyn KvStore) {
    let entries: Vec<(String, Vec<u8>)> = (0..1200)
        .filter(|n: &u32| !n.is_multiple_of(3))
        .map(|n| (format!("k{n}"), n.to_string().into_bytes()))
        .collect();
    kv.set_many("many", &entries).unwrap();
    let mut keys: Vec<String> = (0..1200).rev().map(|n| format!("k{n}")).collect();
    keys.push("k1".into());
    let values = kv.get_many("many", &keys).unwrap();
    assert_eq!(values.len(), keys.len());
    for (key, value) in keys.iter().zip(values) {
        let n: u32 = key[1..].parse().unwrap();
        let expected = (!n.is_multiple_of(3)).then(|| n.to_string().into_bytes());
        assert_eq!(value, expected, "{key}");
    }
}

/// Keys that differ only where one holds U+0000 are refused, not stored as one (PostgreSQL's
/// text would hold U+FFFD in its place); the keys around them are kept.
fn a_key_holding_nul_is_refused(kv: &dyn KvStore) {
    kv.set("t", "k\u{FFFD}", b"kept").unwrap();
    for e in [
        kv.set("t", "k\0", b"lost").expect_err("set"),
        kv.get("t", "k\0").expect_err("get"),
        kv.delete("t", "k\0").expect_err("delete"),
        kv.compare_and_swap("t", "k\0", None, b"x")
            .expect_err("swap"),
        kv.get_many("t", &["a".into(), "k\0".into()])
            .expect_err("get_many"),
        kv.set("t\0", "k", b"x").expect_err("a tenant"),
    ] {
        assert!(e.to_string().contains("U+0000"), "{e}");
    }
    assert_eq!(
        kv.get("t", "k\u{FFFD}").unwrap().as_deref(),
        Some(&b"kept"[..])
    );
}

#[test]
fn a_key_holding_nul_is_refused_on_sqlite() {
    a_key_holding_nul_is_refused(&SqliteKv::in_memory().unwrap());
}

#[test]
fn many_keys_on_sqlite_answer_in_order() {
    many_keys_answer_in_order(&SqliteKv::in_memory().unwrap());
}

fn store(pg: &TestPostgres) -> PgKv {
    PgKv::connect(&pg.url(), &PoolOptions::default()).expect("connects and migrates")
}

#[test]
fn the_store_on_postgres_keeps_the_store_contract() {
    let pg = TestPostgres::start_or_panic();
    bbdc_host::storage::check_contract(&store(&pg));
    many_keys_answer_in_order(&store(&pg));
    a_key_holding_nul_is_refused(&store(&pg));
}

#[test]
fn keys_stay_in_their_tenant_and_many_read_in_order() {
    let pg = TestPostgres::start_or_panic();
    let kv = store(&pg);
    kv.set("a", "k1", b"old").unwrap();
    kv.set_many(
        "a",
        &[("k1".into(), b"1".to_vec()), ("k3".into(), b"3".to_vec())],
    )
    .unwrap();
    let keys: Vec<String> = ["k3", "k2", "k1"].map(String::from).to_vec();
    assert_eq!(
        kv.get_many("a", &keys).unwrap(),
        vec![Some(b"3".to_vec()), None, Some(b"1".to_vec())]
    );
    assert_eq!(kv.get_many("b", &keys).unwrap(), vec![None, None, None]);
    kv.delete("b", "k1").unwrap();
    assert_eq!(kv.get("a", "k1").unwrap().as_deref(), Some(&b"1"[..]));
    kv.delete("a", "k1").unwrap();
    assert_eq!(kv.get("a", "k1").unwrap(), None);
}

/// A session opened while the database was read-only stays read-only for its whole life:
/// such a connection is never lent again, so writes succeed as soon as the database is
/// writable (on main a worker kept refusing writes for minutes). While the database is
/// read-only, a write fails as an unreachable database does: the caller waits, and counts
/// no failure against the work.
#[test]
fn a_connection_opened_while_the_database_was_read_only_is_not_lent_again() {
    let pg = TestPostgres::start_or_panic();
    let url = pg.create_database("ro").expect("a database");
    let options = PoolOptions {
        max_size: 1,
        connect_timeout: std::time::Duration::from_secs(1),
        ..PoolOptions::default()
    };
    let kv = PgKv::connect(&url, &options).expect("connects and migrates");
    kv.set("t", "k", b"before").expect("writable");
    pg.psql(
        "postgres",
        "ALTER DATABASE ro SET default_transaction_read_only = on",
    )
    .expect("read-only");
    // Sessions opened from now on are read-only; end the pool's writable one.
    pg.psql(
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'ro'",
    )
    .expect("sessions ended");
    let refused = kv.set("t", "k", b"during").expect_err("read-only");
    assert!(is_unreachable(&refused), "{refused:?}");
    pg.psql(
        "postgres",
        "ALTER DATABASE ro RESET default_transaction_read_only",
    )
    .expect("writable again");
    kv.set("t", "k", b"after")
        .expect("written at once, on a fresh session");
    assert_eq!(kv.get("t", "k").unwrap().as_deref(), Some(&b"after"[..]));
}

#[test]
fn compare_and_swap_checks_the_current_value() {
    let pg = TestPostgres::start_or_panic();
    let kv = store(&pg);
    assert!(kv.compare_and_swap("t", "k", None, b"1").unwrap());
    assert!(!kv.compare_and_swap("t", "k", None, b"2").unwrap());
    assert!(!kv.compare_and_swap("t", "k", Some(b"0"), b"2").unwrap());
    assert!(kv.compare_and_swap("t", "k", Some(b"1"), b"2").unwrap());
    assert_eq!(kv.get("t", "k").unwrap().as_deref(), Some(&b"2"[..]));
}

/// Two processes' pools swapping one counter: every increment lands exactly once, because
/// a swap from a value another already replaced fails and is retried.
#[test]
fn concurrent_swaps_from_separate_pools_never_both_win() {
    let pg = TestPostgres::start_or_panic();
    let stores = [store(&pg), store(&pg)];
    std::thread::scope(|s| {
        for kv in &stores {
            s.spawn(move || {
                for _ in 0..100 {
                    loop {
                        let old = kv.get("t", "n").unwrap();
                        let n = old
                            .as_deref()
                            .map(|b| String::from_utf8_lossy(b).parse::<u32>().unwrap())
                            .unwrap_or(0);
                        let new = (n + 1).to_string();
                        if kv
                            .compare_and_swap("t", "n", old.as_deref(), new.as_bytes())
                            .unwrap()
                        {
                            break;
                        }
                    }
                }
            });
        }
    });
    assert_eq!(
        stores[0].get("t", "n").unwrap().as_deref(),
        Some(&b"200"[..])
    );
}

#[test]
fn migrations_are_applied_once_and_recorded() {
    let pg = TestPostgres::start_or_panic();
    store(&pg).set("t", "k", b"v").unwrap();
    // A second process starting on the same database finds the schema there and keeps
    // the data.
    assert_eq!(
        store(&pg).get("t", "k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(
        pg.psql("postgres", "SELECT count(*) FROM bbdc_kv_schema_history")
            .unwrap(),
        kv_migrations().to_string()
    );
}

#[test]
fn a_database_that_is_down_fails_with_a_store_error() {
    let pg = TestPostgres::start_or_panic();
    let url = pg.url();
    let kv = store(&pg);
    kv.set("t", "k", b"v").unwrap();
    drop(pg);
    let options = PoolOptions {
        connect_timeout: std::time::Duration::from_secs(1),
        ..PoolOptions::default()
    };
    let down = SqlKv {
        db: PgDb::new(pool(&url, &options).unwrap()),
    };
    let e = down.get("t", "k").expect_err("no server");
    assert!(bbdc_host::errors::chain(&e).contains("PostgreSQL"), "{e}");
    assert!(
        is_unreachable(&e),
        "a server that is down is unreachable: {e:?}"
    );
}
