//! A sync of every entity killed at random points (a real process kill, several times) and
//! restarted ends equal to the simulator's ground truth (pull requests, default-branch commits,
//! build statuses), on every server version the simulator imitates.

use bbdc_jobs::truth::compare_with_truth;
use bbdc_sim::render::Dialect;
use bbdc_sim::version::ServerVersion;
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{Faults, SimConfig, Simulator};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

mod binary;

use binary::bbdc;

#[test]
fn a_sync_killed_at_random_points_and_restarted_loses_nothing() {
    for (i, version) in ServerVersion::ALL.into_iter().enumerate() {
        killed_and_restarted(version, 2026 + i as u64);
    }
}

fn killed_and_restarted(version: ServerVersion, seed: u64) {
    let sim = Simulator::start(SimConfig {
        spec: WorldSpec {
            seed: 99,
            projects: 1,
            repos_per_project: 3,
            prs_per_repo: 24,
            users: 6,
        },
        faults: Faults {
            latency: Duration::from_millis(4),
            ..Faults::default()
        },
        token: Some("crash-token".into()),
        dialect: Dialect {
            version,
            ..Dialect::default()
        },
        ..SimConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.sqlite");
    let args = |cmd: &mut Command| {
        cmd.args([
            "sync",
            "--base-url",
            &sim.base_url(),
            "--token-env",
            "T",
            "--db",
            db.to_str().unwrap(),
            "--concurrency",
            "2",
            "--entities",
            "all",
        ])
        .env("T", "crash-token")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut killed = 0;
    for _ in 0..3 {
        let mut cmd = bbdc();
        args(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.u64(100..700)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        let _ = child.wait();
    }
    assert!(
        killed >= 2,
        "{version}: the kills must land mid-sync to mean anything ({killed} did)"
    );
    let mut cmd = bbdc();
    args(&mut cmd);
    assert!(
        cmd.status().unwrap().success(),
        "{version}: the restarted sync completes"
    );
    let (matched, problems) = compare_with_truth(&db, &sim.truth(), &[]).unwrap();
    assert!(problems.is_empty(), "{version}: {problems:#?}");
    assert_eq!(matched, sim.truth().len(), "{version}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let commits: BTreeSet<(String, String, String)> = conn
        .prepare("SELECT project_key, repo_slug, id FROM commits")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(commits, sim.commit_truth(), "{version}: commits");
    let builds: BTreeSet<(String, String, String, String, String)> = conn
        .prepare("SELECT project_key, repo_slug, commit_id, key, state FROM builds")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(builds, sim.build_truth(), "{version}: builds");
    let pr_commits: BTreeSet<(String, String, u64, String)> = conn
        .prepare("SELECT project_key, repo_slug, pr_id, commit_id FROM pr_commits")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let want: BTreeSet<(String, String, u64, String)> = sim
        .pr_commit_truth()
        .into_iter()
        .map(|c| (c.project, c.repo, c.pr, c.commit))
        .collect();
    assert_eq!(pr_commits, want, "{version}: pull requests' commits");
    let queued: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM build_queue) + (SELECT COUNT(*) FROM pr_commit_queue)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(queued, 0, "{version}: nothing is left queued");
    sim.stop();
}
