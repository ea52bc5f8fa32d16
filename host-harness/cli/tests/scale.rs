//! `bbdc bench --scale` in quick mode: the real binary runs its own `sync` as a child against
//! simulated instances of growing size, and reports every scale figure. Times and sizes are never
//! asserted; what does not depend on the machine is: every figure is there, each memory figure
//! is a plausible resident set, and the unchanged re-sync costs one request per repository.

mod binary;

use binary::bbdc;

/// The lines of benchmark `n` in `bbdc bench` output: (name, value as printed, verdict).
fn figures(stdout: &str, n: u8) -> Vec<(String, f64, String)> {
    let prefix = format!("{n}. ");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|l| {
            // `{name:<72} {value:>12}   target {target} {verdict}`
            let (head, tail) = l.split_once("   target ").unwrap_or((l, ""));
            let mut words = head.split_whitespace().collect::<Vec<_>>();
            // The value is the last word (or the two last, number and unit).
            let (value, name_end) = match words.as_slice() {
                [.., v, u] if v.parse::<f64>().is_ok() && u.parse::<f64>().is_err() => {
                    (v.parse().unwrap_or(f64::NAN), words.len() - 2)
                }
                [.., v] => (
                    v.trim_end_matches('×').parse().unwrap_or(f64::NAN),
                    words.len() - 1,
                ),
                [] => (f64::NAN, 0),
            };
            words.truncate(name_end);
            let verdict = tail.split_whitespace().last().unwrap_or("").to_owned();
            (words.join(" "), value, verdict)
        })
        .collect()
}

#[test]
fn the_scale_benchmark_syncs_growing_instances_in_a_child_and_reports_every_figure() {
    let out = bbdc()
        .args(["bench", "--scale", "--quick"])
        .output()
        .expect("bbdc runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `--scale` alone runs benchmark 8 only.
    assert!((1..=7).all(|n| figures(&stdout, n).is_empty()), "{stdout}");
    let scale = figures(&stdout, 8);
    let named = |start: &str| -> Vec<&(String, f64, String)> {
        scale.iter().filter(|f| f.0.starts_with(start)).collect()
    };
    let rss = named("Scale: peak RSS of `bbdc sync`");
    assert_eq!(rss.len(), 3, "{stdout}");
    for (name, mib, _) in &rss {
        // A process that loaded wasmtime and the component, far from a runaway.
        assert!(*mib > 5.0 && *mib < 2048.0, "{name}: {mib} MiB\n{stdout}");
    }
    assert_eq!(
        named("Scale: wall time per pull request,").len(),
        4,
        "{stdout}"
    );
    assert_eq!(named("Scale: peak RSS, 100 ÷ 25").len(), 1, "{stdout}");
    let resync = named("Scale: re-sync of 100 unchanged repositories: requests per repository");
    assert_eq!(resync.len(), 1, "{stdout}");
    assert_eq!(resync[0].1, 1.0, "{stdout}");
    assert_eq!(resync[0].2, "met", "{stdout}");
    assert_eq!(
        named("Scale: re-sync of 100 unchanged repositories:").len(),
        3,
        "{stdout}"
    );
}
