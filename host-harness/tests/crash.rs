//! A sync killed at random points (a real process kill, several times) and restarted ends equal
//! to the simulator's ground truth; and the no-setup demo runs green.

use host_harness::demo::compare_with_truth;
use host_harness::sim::world::WorldSpec;
use host_harness::sim::{Faults, SimConfig, Simulator};
use std::process::Command;
use std::time::Duration;

fn bbdc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bbdc"));
    c.env(
        "BBDC_CACHE_DIR",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
    );
    c
}

#[test]
fn a_sync_killed_at_random_points_and_restarted_loses_nothing() {
    let sim = Simulator::start(SimConfig {
        spec: WorldSpec {
            seed: 99,
            projects: 1,
            repos_per_project: 3,
            prs_per_repo: 30,
            users: 6,
        },
        faults: Faults {
            latency: Duration::from_millis(4),
            ..Faults::default()
        },
        token: Some("crash-token".into()),
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
    let mut rng = fastrand::Rng::with_seed(2026);
    let mut killed = 0;
    for _ in 0..4 {
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
        "the kills must land mid-sync to mean anything ({killed} did)"
    );
    let mut cmd = bbdc();
    args(&mut cmd);
    assert!(
        cmd.status().unwrap().success(),
        "the restarted sync completes"
    );
    let (matched, problems) = compare_with_truth(&db, &sim.truth(), &[]).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(matched, sim.truth().len());
    sim.stop();
}

#[test]
fn the_demo_runs_with_no_setup_and_matches_the_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.sqlite");
    let out = bbdc()
        .args(["demo", "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("match field for field"), "{stdout}");
    assert!(!stdout.contains("MISMATCH"), "{stdout}");
    assert!(db.exists());
}
