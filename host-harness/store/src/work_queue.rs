//! The work `bbdc worker` processes share, on PostgreSQL: each tenant's listing and each of its
//! repositories is an item that one worker at a time holds under a lease.
//!
//! The pattern is the usual PostgreSQL job queue: a worker takes the next due item with
//! `SELECT ... FOR UPDATE SKIP LOCKED` (so workers taking at once never block on, or take, the
//! same row) and stamps it with its name and an expiry. It renews the lease while the pass runs;
//! a worker that dies stops renewing, the lease expires, and the next worker to look takes the
//! item and resumes the pass where the connector's acknowledged state says it stopped.
//!
//! An item counts the passes asked for (`wanted`) and completed (`done`): a listing that asks
//! for a repository while a worker is in its pass makes it due again once that pass completes,
//! so no change is missed between the two.
//!
//! **Fairness.** Among the due items, the take prefers the tenant served least recently (a turn
//! number per tenant), then a tenant's listing before its repositories, then the oldest due.
//! Tenants with due work are served in rotation, whatever their sizes.

use crate::postgres::PgPool;
use bbdc_host::bindings::types::RepoRef;
use bbdc_host::storage::StoreError;
use std::time::Duration;

mod embedded {
    refinery::embed_migrations!("migrations/work");
}

/// The shared queue.
#[derive(Clone)]
pub struct WorkQueue {
    pool: PgPool,
}

/// What an item is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// The tenant's listing of projects, repositories and users, which queues the repositories.
    Listing,
    /// One repository's pass.
    Repo(RepoRef),
}

/// An item a worker holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The tenant's id.
    pub tenant: String,
    /// What to do.
    pub work: Work,
    /// The item's key.
    item: String,
    /// The holder.
    owner: String,
    /// The passes asked for when it was taken: what a completed pass marks done.
    wanted: i64,
}

/// When a failed pass is tried again.
#[derive(Debug, Clone)]
pub struct Retry {
    /// The first wait; it doubles with each failure in a row.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Failures in a row after which the round gives the item up.
    pub give_up_after: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max: Duration::from_secs(15 * 60),
            give_up_after: 5,
        }
    }
}

/// Now, in epoch ms, by the database's clock: every lease and due time is stamped and compared
/// by the one clock, so workers on machines whose clocks disagree still agree on expiry.
const NOW: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT";

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The item key of a repository.
fn repo_item(repo: &RepoRef) -> String {
    format!("{}/{}", repo.project_key, repo.slug)
}

/// The item key of a tenant's listing.
const LISTING: &str = "";

impl WorkQueue {
    /// The queue on `pool`, after applying its migrations.
    pub fn on(pool: PgPool) -> Result<Self, StoreError> {
        crate::postgres::migrate(
            &pool,
            embedded::migrations::runner(),
            "bbdc_work_schema_history",
        )?;
        Ok(Self { pool })
    }

    /// Joins or starts a round of `tenant`: when its listing is neither due nor held and no
    /// repository of it is due or held (the last round is complete, or there was none), a new
    /// round starts with its listing due now, unless `every` is given and the last round
    /// started less than `every` ago. Workers starting together join one round, and however many
    /// workers ask, rounds start at most once per `every`.
    pub fn start_round(&self, tenant: &str, every: Option<Duration>) -> Result<(), StoreError> {
        let mut conn = self.pool.get()?;
        let mut tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO work_tenants (tenant) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&tenant],
        )?;
        // The tenant's row, locked: two workers starting at once decide one after the other.
        tx.execute(
            "SELECT 1 FROM work_tenants WHERE tenant = $1 FOR UPDATE",
            &[&tenant],
        )?;
        let busy: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM work_items WHERE tenant = $1
                 AND (done < wanted OR lease_owner IS NOT NULL)",
                &[&tenant],
            )?
            .get(0);
        let too_soon: bool = match every {
            None => false,
            Some(every) => tx
                .query_one(
                    &format!(
                        "SELECT COALESCE({NOW} - round_started_at < $2, false) FROM work_tenants
                         WHERE tenant = $1"
                    ),
                    &[&tenant, &ms(every)],
                )?
                .get(0),
        };
        if busy == 0 && !too_soon {
            tx.execute(
                &format!(
                    "INSERT INTO work_items (tenant, item, wanted, done, due_at) VALUES ($1, $2, 1, 0, {NOW})
                     ON CONFLICT (tenant, item) DO UPDATE SET wanted = work_items.done + 1, due_at = {NOW},
                         failures = 0"
                ),
                &[&tenant, &LISTING],
            )?;
            tx.execute(
                &format!("UPDATE work_tenants SET round_started_at = {NOW} WHERE tenant = $1"),
                &[&tenant],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Asks for a pass of `repo` (the listing found it). Already due: nothing changes. Held by
    /// a worker: due again once that pass completes.
    pub fn want_repo(&self, tenant: &str, repo: &RepoRef) -> Result<(), StoreError> {
        let mut conn = self.pool.get()?;
        conn.execute(
            &format!(
                "INSERT INTO work_items (tenant, item, project_key, slug, wanted, done, due_at)
                 VALUES ($1, $2, $3, $4, 1, 0, {NOW})
                 ON CONFLICT (tenant, item) DO UPDATE SET wanted = work_items.wanted + 1,
                     due_at = LEAST(work_items.due_at, excluded.due_at),
                     -- A new round: a repository given up in the last one gets its retries again.
                     failures = CASE WHEN work_items.done >= work_items.wanted THEN 0
                                     ELSE work_items.failures END
                 WHERE work_items.done >= work_items.wanted OR work_items.lease_owner IS NOT NULL"
            ),
            &[&tenant, &repo_item(repo), &repo.project_key, &repo.slug],
        )?;
        Ok(())
    }

    /// Takes the next due item of `tenants` for `owner`, held for `lease`; `None` when nothing
    /// is due (or every due item is held).
    pub fn take(
        &self,
        tenants: &[String],
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let mut conn = self.pool.get()?;
        let mut tx = conn.transaction()?;
        let row = tx.query_opt(
            &format!(
                "WITH now AS (SELECT {NOW} AS ms), pick AS (
                     SELECT w.tenant, w.item FROM now, work_items w
                     LEFT JOIN work_tenants t ON t.tenant = w.tenant
                     WHERE w.tenant = ANY($1) AND w.done < w.wanted AND w.due_at <= now.ms
                       AND (w.lease_owner IS NULL OR w.lease_until < now.ms)
                     ORDER BY COALESCE(t.last_turn, 0), (w.item = '') DESC, w.due_at, w.item
                     LIMIT 1 FOR UPDATE OF w SKIP LOCKED)
                 UPDATE work_items w SET lease_owner = $2, lease_until = (SELECT ms FROM now) + $3,
                     lease_wanted = w.wanted
                 FROM pick WHERE w.tenant = pick.tenant AND w.item = pick.item
                 RETURNING w.tenant, w.item, w.project_key, w.slug, w.lease_wanted"
            ),
            &[&tenants, &owner, &ms(lease)],
        )?;
        let Some(row) = row else {
            tx.commit()?;
            return Ok(None);
        };
        let tenant: String = row.get(0);
        let item: String = row.get(1);
        tx.execute(
            "INSERT INTO work_tenants (tenant, last_turn) VALUES ($1, nextval('work_turns'))
             ON CONFLICT (tenant) DO UPDATE SET last_turn = excluded.last_turn",
            &[&tenant],
        )?;
        tx.commit()?;
        let work = match (
            row.get::<_, Option<String>>(2),
            row.get::<_, Option<String>>(3),
        ) {
            (Some(project_key), Some(slug)) if item != LISTING => {
                Work::Repo(RepoRef { project_key, slug })
            }
            _ => Work::Listing,
        };
        Ok(Some(Lease {
            tenant,
            work,
            item,
            owner: owner.to_owned(),
            wanted: row.get(4),
        }))
    }

    /// Extends `lease` to `lease_for` from now; `false` when it is no longer held (it expired
    /// and another worker took it).
    pub fn renew(&self, lease: &Lease, lease_for: Duration) -> Result<bool, StoreError> {
        let mut conn = self.pool.get()?;
        let n = conn.execute(
            &format!(
                "UPDATE work_items SET lease_until = {NOW} + $4
                 WHERE tenant = $1 AND item = $2 AND lease_owner = $3"
            ),
            &[&lease.tenant, &lease.item, &lease.owner, &ms(lease_for)],
        )?;
        Ok(n == 1)
    }

    /// Marks `lease`'s pass completed and lets it go; `false` when it was no longer held.
    pub fn complete(&self, lease: &Lease) -> Result<bool, StoreError> {
        let mut conn = self.pool.get()?;
        let n = conn.execute(
            "UPDATE work_items SET done = GREATEST(done, $4), lease_owner = NULL, lease_until = NULL,
                 failures = 0, last_error = NULL
             WHERE tenant = $1 AND item = $2 AND lease_owner = $3",
            &[&lease.tenant, &lease.item, &lease.owner, &lease.wanted],
        )?;
        Ok(n == 1)
    }

    /// Lets `lease` go without a verdict (its pass was stopped part-way, its worker asked to
    /// stop): the item stays due now, its failures unchanged, for the next worker to take and
    /// resume. `false` when it was no longer held.
    pub fn release(&self, lease: &Lease) -> Result<bool, StoreError> {
        let mut conn = self.pool.get()?;
        let n = conn.execute(
            "UPDATE work_items SET lease_owner = NULL, lease_until = NULL
             WHERE tenant = $1 AND item = $2 AND lease_owner = $3",
            &[&lease.tenant, &lease.item, &lease.owner],
        )?;
        Ok(n == 1)
    }

    /// Lets `lease` go after a failed pass: the item stays due, after a backoff that doubles
    /// with each failure in a row (per [`Retry`]). After `retry.give_up_after` failures in a
    /// row the round gives it up: it is no longer due, and [`WorkQueue::failing`] reports it
    /// until a later pass succeeds.
    pub fn failed(&self, lease: &Lease, error: &str, retry: &Retry) -> Result<(), StoreError> {
        let mut conn = self.pool.get()?;
        conn.execute(
            &format!(
                "UPDATE work_items SET lease_owner = NULL, lease_until = NULL, failures = failures + 1,
                     last_error = $4, due_at = {NOW} + LEAST($6, $5 * (1::BIGINT << LEAST(failures, 20)::INT)),
                     done = CASE WHEN failures + 1 >= $7 THEN GREATEST(done, $8) ELSE done END
                 WHERE tenant = $1 AND item = $2 AND lease_owner = $3"
            ),
            &[
                &lease.tenant,
                &lease.item,
                &lease.owner,
                &error,
                &ms(retry.base),
                &ms(retry.max),
                &i64::from(retry.give_up_after),
                &lease.wanted,
            ],
        )?;
        Ok(())
    }

    /// Whether `tenants` have nothing due, held or waiting a backoff: their rounds are complete.
    pub fn idle(&self, tenants: &[String]) -> Result<bool, StoreError> {
        let mut conn = self.pool.get()?;
        let busy: i64 = conn
            .query_one(
                "SELECT COUNT(*) FROM work_items WHERE tenant = ANY($1)
                 AND (done < wanted OR lease_owner IS NOT NULL)",
                &[&tenants],
            )?
            .get(0);
        Ok(busy == 0)
    }

    /// The items of `tenant` that failed their last pass: (item, failures in a row, error).
    pub fn failing(&self, tenant: &str) -> Result<Vec<(String, i64, String)>, StoreError> {
        let mut conn = self.pool.get()?;
        Ok(conn
            .query(
                "SELECT item, failures, COALESCE(last_error, '') FROM work_items
                 WHERE tenant = $1 AND failures > 0 ORDER BY item",
                &[&tenant],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bbdc_test_postgres::TestPostgres;
    use std::collections::HashSet;
    use std::sync::Mutex;

    fn queue(pg: &TestPostgres) -> WorkQueue {
        let pool = crate::postgres::pool(&pg.url(), &Default::default()).expect("a pool");
        WorkQueue::on(pool).expect("migrated")
    }

    fn repo(slug: &str) -> RepoRef {
        RepoRef {
            project_key: "P".into(),
            slug: slug.into(),
        }
    }

    fn tenants(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    const LEASE: Duration = Duration::from_secs(60);

    /// A round: the listing first, then each repository it asked for, then idle; a worker
    /// starting after it completes starts the next round.
    #[test]
    fn a_round_lists_first_then_passes_each_repository_once() {
        let pg = TestPostgres::start_or_panic();
        let q = queue(&pg);
        let t = tenants(&["a"]);
        q.start_round("a", None).unwrap();
        q.start_round("a", None).unwrap();
        let listing = q
            .take(&t, "w1", LEASE)
            .unwrap()
            .expect("the listing is due");
        assert_eq!(listing.work, Work::Listing);
        assert_eq!(
            q.take(&t, "w2", LEASE).unwrap(),
            None,
            "held: nothing else is due"
        );
        q.want_repo("a", &repo("r1")).unwrap();
        q.want_repo("a", &repo("r2")).unwrap();
        q.want_repo("a", &repo("r1")).unwrap();
        assert!(q.complete(&listing).unwrap());
        let mut passed = Vec::new();
        while let Some(lease) = q.take(&t, "w2", LEASE).unwrap() {
            passed.push(lease.work.clone());
            assert!(q.complete(&lease).unwrap());
        }
        assert_eq!(passed, vec![Work::Repo(repo("r1")), Work::Repo(repo("r2"))]);
        assert!(q.idle(&t).unwrap());
        q.start_round("a", None).unwrap();
        assert!(!q.idle(&t).unwrap(), "a new round");
        assert_eq!(
            q.take(&t, "w1", LEASE).unwrap().map(|l| l.work),
            Some(Work::Listing)
        );
    }

    /// Eight workers taking at once from one queue: no item is ever held by two.
    #[test]
    fn workers_taking_at_once_never_hold_the_same_item() {
        let pg = TestPostgres::start_or_panic();
        let q = queue(&pg);
        q.start_round("a", None).unwrap();
        for i in 0..200 {
            q.want_repo("a", &repo(&format!("r{i}"))).unwrap();
        }
        let held = Mutex::new(HashSet::new());
        let passes = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for w in 0..8 {
                let (q, held, passes) = (q.clone(), &held, &passes);
                s.spawn(move || {
                    let t = tenants(&["a"]);
                    let me = format!("w{w}");
                    while let Some(lease) = q.take(&t, &me, LEASE).unwrap() {
                        assert!(
                            held.lock().unwrap().insert(lease.item.clone()),
                            "{} held twice",
                            lease.item
                        );
                        std::thread::sleep(Duration::from_millis(1));
                        passes.lock().unwrap().push(lease.item.clone());
                        held.lock().unwrap().remove(&lease.item);
                        assert!(q.complete(&lease).unwrap());
                    }
                });
            }
        });
        let passes = passes.into_inner().unwrap();
        let distinct: HashSet<&String> = passes.iter().collect();
        assert_eq!(
            passes.len(),
            201,
            "200 repositories and the listing, each once"
        );
        assert_eq!(distinct.len(), 201);
    }

    /// A worker that stops renewing loses its item to the next one once the lease expires; its
    /// late renewal and completion are refused.
    #[test]
    fn an_expired_lease_passes_to_another_worker_and_the_first_can_no_longer_complete_it() {
        let pg = TestPostgres::start_or_panic();
        let q = queue(&pg);
        let t = tenants(&["a"]);
        q.want_repo("a", &repo("r")).unwrap();
        // Long enough that a loaded machine makes the next two calls within it.
        let short = Duration::from_millis(1500);
        let first = q.take(&t, "dead", short).unwrap().expect("due");
        assert!(q.renew(&first, short).unwrap(), "still held");
        assert_eq!(q.take(&t, "next", LEASE).unwrap(), None, "not expired yet");
        std::thread::sleep(Duration::from_millis(1600));
        let second = q
            .take(&t, "next", LEASE)
            .unwrap()
            .expect("expired: taken over");
        assert_eq!(second.work, first.work);
        assert!(!q.renew(&first, short).unwrap());
        assert!(!q.complete(&first).unwrap());
        assert!(q.complete(&second).unwrap());
        assert!(q.idle(&t).unwrap());
    }

    /// Asked for again while a pass runs: due again once that pass completes.
    #[test]
    fn a_repository_asked_for_during_its_pass_is_due_again_after_it() {
        let pg = TestPostgres::start_or_panic();
        let q = queue(&pg);
        let t = tenants(&["a"]);
        q.want_repo("a", &repo("r")).unwrap();
        let lease = q.take(&t, "w", LEASE).unwrap().expect("due");
        q.want_repo("a", &repo("r")).unwrap();
        assert!(q.complete(&lease).unwrap());
        let again = q.take(&t, "w", LEASE).unwrap().expect("due again");
        assert!(q.complete(&again).unwrap());
        assert_eq!(q.take(&t, "w", LEASE).unwrap(), None);
    }

    /// With `every`, a round starts at most once per period however many workers ask; a
    /// repository given up in one round gets its retries again in the next.
    #[test]
    fn rounds_start_once_per_period_and_a_given_up_repository_is_retried_in_the_next() {
        let pg = TestPostgres::start_or_panic();
        let q = queue(&pg);
        let t = tenants(&["a"]);
        let every = Some(Duration::from_millis(500));
        let retry = Retry {
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
            give_up_after: 1,
        };
        q.start_round("a", every).unwrap();
        let listing = q.take(&t, "w", LEASE).unwrap().expect("the listing");
        q.want_repo("a", &repo("r")).unwrap();
        q.complete(&listing).unwrap();
        let pass = q.take(&t, "w", LEASE).unwrap().expect("the repository");
        q.failed(&pass, "http_500", &retry).unwrap();
        assert!(q.idle(&t).unwrap(), "given up after one failure");
        assert_eq!(q.failing("a").unwrap().len(), 1);
        // Other workers asking within the period start nothing.
        q.start_round("a", every).unwrap();
        q.start_round("a", every).unwrap();
        assert!(q.idle(&t).unwrap(), "too soon for another round");
        std::thread::sleep(Duration::from_millis(550));
        q.start_round("a", every).unwrap();
        let listing = q
            .take(&t, "w", LEASE)
            .unwrap()
            .expect("the next round's listing");
        assert_eq!(listing.work, Work::Listing);
        q.want_repo("a", &repo("r")).unwrap();
        q.complete(&listing).unwrap();
        let pass = q
            .take(&t, "w", LEASE)
            .unwrap()
            .expect("retried in the new round");
        assert_eq!(q.failing("a").unwrap(), vec![], "its failures start again");
        q.complete(&pass).unwrap();
        assert!(q.idle(&t).unwrap());
    }

    /// Tenants take turns: a tenant with many due items does not hold back one with few.
    #[test]
    fn tenants_with_due_work_take_turns_whatever_their_sizes() {
        let pg = TestPostgres::start_or_panic();
        let q = queue(&pg);
        for id in ["big", "small"] {
            q.start_round(id, None).unwrap();
        }
        for i in 0..50 {
            q.want_repo("big", &repo(&format!("r{i:02}"))).unwrap();
        }
        for i in 0..3 {
            q.want_repo("small", &repo(&format!("s{i}"))).unwrap();
        }
        let t = tenants(&["big", "small"]);
        let mut order = Vec::new();
        for _ in 0..8 {
            let lease = q.take(&t, "w", LEASE).unwrap().expect("due");
            order.push(lease.tenant.clone());
            q.complete(&lease).unwrap();
        }
        // Listing and 3 repositories each for the small tenant, interleaved with the big one's.
        let small_done = order.iter().filter(|t| *t == "small").count();
        assert_eq!(small_done, 4, "{order:?}");
        assert!(
            order.windows(2).all(|w| w[0] != w[1]),
            "alternating: {order:?}"
        );
    }

    /// A failed pass waits a backoff, and after `give_up_after` failures in a row the round
    /// gives it up and reports it.
    #[test]
    fn a_failing_repository_backs_off_then_is_given_up_and_reported() {
        let pg = TestPostgres::start_or_panic();
        let q = queue(&pg);
        let t = tenants(&["a"]);
        q.want_repo("a", &repo("r")).unwrap();
        let retry = Retry {
            base: Duration::from_millis(200),
            max: Duration::from_secs(1),
            give_up_after: 2,
        };
        let lease = q.take(&t, "w", LEASE).unwrap().expect("due");
        q.failed(&lease, "http_503: down", &retry).unwrap();
        assert_eq!(q.take(&t, "w", LEASE).unwrap(), None, "backing off");
        assert!(!q.idle(&t).unwrap(), "still due");
        std::thread::sleep(Duration::from_millis(250));
        let lease = q
            .take(&t, "w", LEASE)
            .unwrap()
            .expect("due after the backoff");
        q.failed(&lease, "http_503: still down", &retry).unwrap();
        assert!(q.idle(&t).unwrap(), "given up for this round");
        assert_eq!(
            q.failing("a").unwrap(),
            vec![("P/r".to_owned(), 2, "http_503: still down".to_owned())]
        );
    }
}
