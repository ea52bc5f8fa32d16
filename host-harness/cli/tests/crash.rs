//! A sync killed at random points (a real process kill, several times) and restarted ends equal
//! to the simulator's ground truth, on every server version the simulator imitates.

use bbdc_jobs::demo::compare_with_truth;
use bbdc_sim::render::Dialect;
use bbdc_sim::version::ServerVersion;
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{Faults, SimConfig, Simulator};
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
    sim.stop();
}
