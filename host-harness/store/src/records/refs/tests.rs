//! Refs written by listings and by deliveries in any order, on SQLite and PostgreSQL.

use super::*;
use crate::records::{Backend, Records};
use crate::sql::Value;

fn repo() -> RepoRef {
    RepoRef {
        project_key: "PLAT".into(),
        slug: "api".into(),
    }
}

const X: &str = "refs/heads/x";

/// One push of the history: the change and its payload date.
#[derive(Debug, Clone)]
struct Push {
    kind: RefChangeKind,
    from: Option<&'static str>,
    to: Option<&'static str>,
    date: i64,
}

fn push(kind: RefChangeKind, from: Option<&'static str>, to: Option<&'static str>, k: i64) -> Push {
    Push {
        kind,
        from,
        to,
        // Payload dates are whole seconds.
        date: 1_780_000_000_000 + k * 1000,
    }
}

fn change(p: &Push) -> RefChange {
    RefChange {
        ref_id: X.into(),
        name: "x".into(),
        is_tag: false,
        from_hash: p.from.map(str::to_owned),
        to_hash: p.to.map(str::to_owned),
        kind: p.kind,
    }
}

/// Every ordering of `items`.
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first.clone());
            all.push(tail);
        }
    }
    all
}

/// The branch's head as stored (`None`: absent), and whether the repository is marked for a
/// refs listing.
fn state<B: Backend>(records: &Records<B>) -> (Option<String>, bool) {
    let head = records
        .query(
            "SELECT latest_commit FROM branches WHERE project_key = $1 AND repo_slug = $2 AND ref_id = $3",
            &[Value::Text("PLAT".into()), Value::Text("api".into()), Value::Text(X.into())],
        )
        .expect("read")
        .first()
        .and_then(|r| r.first().and_then(|v| v.text().map(str::to_owned)));
    let marked = records
        .query(
            "SELECT refs_marked_at FROM repos WHERE project_key = $1 AND slug = $2",
            &[Value::Text("PLAT".into()), Value::Text("api".into())],
        )
        .expect("read")
        .first()
        .is_some_and(|r| r.first().and_then(Value::int).is_some());
    (head, marked)
}

/// Empties the tables this test writes and stores the repository afresh.
fn reset<B: Backend>(records: &Records<B>) {
    records
        .backend
        .write(|tx| {
            for table in ["branches", "tags", "ref_tombstones", "repos"] {
                tx.exec(&format!("DELETE FROM {table}"), &[])?;
            }
            tx.exec(
                "INSERT INTO repos (project_key, slug, deleted) VALUES ('PLAT', 'api', 0)",
                &[],
            )?;
            Ok(())
        })
        .expect("reset");
}

/// Delivers `pushes` in this order, each in a transaction of its own as a delivery is.
fn deliver<B: Backend>(records: &Records<B>, pushes: &[Push]) -> Vec<Placed> {
    pushes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            records
                .backend
                .write(|tx| apply_change(tx, &repo(), &change(p), Some(p.date), 5000 + i as i64))
                .expect("stored")
        })
        .collect()
}

/// The branch as a listing names it, at `head`.
fn branch_at(head: &str) -> Branch {
    Branch {
        repo: repo(),
        name: "x".into(),
        ref_id: X.into(),
        latest_commit: Some(head.into()),
        is_default: false,
    }
}

/// Delivers `p` at `delivered_at` (this host's clock), then writes the page of a listing that
/// started at `since` and read the branch at `stale_head` before the push.
fn push_during_listing<B: Backend>(
    records: &Records<B>,
    p: &Push,
    delivered_at: i64,
    since: i64,
    stale_head: &str,
) {
    records
        .backend
        .write(|tx| {
            apply_change(tx, &repo(), &change(p), Some(p.date), delivered_at)?;
            page(tx, &repo(), since, &[branch_at(stale_head)], &[])
        })
        .expect("written");
}

/// A complete listing of the branch as the server has it now (`head`), started at `since`.
fn list<B: Backend>(records: &Records<B>, head: Option<&str>, since: i64) {
    records
        .backend
        .write(|tx| {
            let branches: Vec<Branch> = head.map(branch_at).into_iter().collect();
            page(tx, &repo(), since, &branches, &[])?;
            listed(tx, &repo(), RefKind::Branch, since, 0)?;
            listed(tx, &repo(), RefKind::Tag, since, 0)
        })
        .expect("listed");
}

/// Every ordering of a history of pushes, deletes and re-creations ends equal to its final
/// state, or marked for a refs listing that then makes it so: never silently wrong.
fn every_order_ends_right_or_marked<B: Backend>(records: &Records<B>) {
    use RefChangeKind::{Add, Delete, Update};
    let histories: [(&str, Vec<Push>, Option<&str>); 3] = [
        (
            "re-created and moved",
            vec![
                push(Add, None, Some("a"), 1),
                push(Update, Some("a"), Some("b"), 2),
                push(Delete, Some("b"), None, 3),
                push(Add, None, Some("c"), 4),
                push(Update, Some("c"), Some("d"), 5),
            ],
            Some("d"),
        ),
        (
            "deleted in the end",
            vec![
                push(Add, None, Some("a"), 1),
                push(Update, Some("a"), Some("b"), 2),
                push(Delete, Some("b"), None, 3),
                push(Add, None, Some("c"), 4),
                push(Delete, Some("c"), None, 5),
            ],
            None,
        ),
        (
            "re-created at the same commit",
            vec![
                push(Add, None, Some("a"), 1),
                push(Delete, Some("a"), None, 2),
                push(Add, None, Some("a"), 3),
                push(Update, Some("a"), Some("b"), 4),
                push(Update, Some("b"), Some("a"), 5),
            ],
            Some("a"),
        ),
    ];
    for (name, history, last) in &histories {
        let last = last.map(str::to_owned);
        let mut unmarked = 0;
        let orders = permutations(history);
        for order in &orders {
            reset(records);
            let placed = deliver(records, order);
            let (head, marked) = state(records);
            if marked {
                assert!(
                    placed.contains(&Placed::Unplaced),
                    "{name}: marked without an unplaced change"
                );
                // The next pass lists the refs: the listing is the truth, and clears the mark.
                list(records, last.as_deref(), 10_000);
                assert_eq!(state(records), (last.clone(), false), "{name}: {order:?}");
            } else {
                unmarked += 1;
                assert_eq!(head, last, "{name}: unmarked but wrong after {order:?}");
            }
        }
        // In order, every change applies and nothing is marked.
        reset(records);
        assert!(
            deliver(records, history)
                .iter()
                .all(|p| *p == Placed::Applied),
            "{name}"
        );
        assert_eq!(state(records), (last.clone(), false), "{name}: in order");
        // Most late deliveries are placed by their hashes and dates, not left to a listing.
        assert!(
            unmarked > orders.len() / 4,
            "{name}: only {unmarked} of {} orders placed",
            orders.len()
        );
    }
}

/// The two defects of the hostile-peer run: a late update after a newer one, and a late
/// update after a delete.
fn late_pushes_never_undo_newer_ones<B: Backend>(records: &Records<B>) {
    use RefChangeKind::{Add, Delete, Update};
    let a_b = push(Update, Some("a"), Some("b"), 2);
    let b_c = push(Update, Some("b"), Some("c"), 3);
    reset(records);
    list(records, Some("b"), 100);
    deliver(records, &[b_c.clone(), a_b.clone()]);
    assert_eq!(
        state(records),
        (Some("c".into()), false),
        "B→C then a late A→B"
    );
    reset(records);
    list(records, Some("b"), 100);
    deliver(
        records,
        &[b_c, push(Delete, Some("c"), None, 4), a_b.clone()],
    );
    assert_eq!(state(records), (None, false), "deleted, then a late update");
    // A late create of a deleted branch stays out too.
    deliver(records, &[push(Add, None, Some("a"), 1)]);
    assert_eq!(state(records), (None, false), "deleted, then a late create");
}

/// A listing page read before a push and written after it keeps the push; what neither
/// wrote since the listing started is dropped when it completes; a failed listing drops
/// nothing.
fn a_listing_keeps_what_deliveries_wrote_during_it<B: Backend>(records: &Records<B>) {
    use RefChangeKind::{Delete, Update};
    reset(records);
    list(records, Some("a"), 100);
    // A listing starts at 200; a push moves x at 300; then the listing's page, read before
    // the push, is written.
    push_during_listing(
        records,
        &push(Update, Some("a"), Some("b"), 7),
        300,
        200,
        "a",
    );
    assert_eq!(state(records).0.as_deref(), Some("b"), "the push is kept");
    // A ref deleted by a push during the listing is not brought back by its page.
    push_during_listing(records, &push(Delete, Some("b"), None, 8), 400, 300, "b");
    assert_eq!(state(records).0, None, "the delete is kept");
    // A stale ref goes only when a listing completes.
    reset(records);
    list(records, Some("a"), 100);
    records
        .backend
        .write(|tx| page(tx, &repo(), 500, &[], &[]))
        .expect("a page of another listing, which then fails");
    assert_eq!(state(records).0.as_deref(), Some("a"), "kept: not complete");
    list(records, None, 600);
    assert_eq!(state(records).0, None, "gone after a complete listing");
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                let dir = tempfile::tempdir().expect("a folder");
                let records = crate::records::SqliteRecords::open(&dir.path().join("r.db")).expect("opens");
                super::$name(&records);
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                let pg = bbdc_test_postgres::TestPostgres::start_or_panic();
                let records = crate::records::PgRecords::connect_tenant(
                    &pg.url(),
                    "refs",
                    &crate::postgres::PoolOptions::default(),
                )
                .expect("connects");
                super::$name(&records);
            })*
        }
    };
}

on_both_backends!(
    every_order_ends_right_or_marked,
    late_pushes_never_undo_newer_ones,
    a_listing_keeps_what_deliveries_wrote_during_it,
);
