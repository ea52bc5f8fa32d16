//! `bbdc demo`, the README's first command: with no setup it runs the whole product against the
//! simulator and ends equal to the simulator's ground truth.

mod binary;

use binary::bbdc;

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
