//! The embedding library stays small: a platform that depends on `bbdc-host` gets no CLI,
//! progress-bar or HTTP-server crate, and no database: the stores on SQLite and PostgreSQL are
//! `bbdc-store`'s.
//! Read from `cargo tree` over the workspace's own lock file, offline.

use std::process::Command;

/// The crate names in `bbdc-host`'s normal dependency tree, with `extra` arguments.
fn tree(extra: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "-p",
            "bbdc-host",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(extra)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    assert!(
        names.iter().any(|n| n == "wasmtime"),
        "the tree was read: {names:?}"
    );
    names
}

/// What the `bbdc` application and the simulator use and an embedder must not be made to build.
const APPLICATION_CRATES: [&str; 6] = [
    "clap",
    "indicatif",
    "axum",
    "hyper",
    "hyper-util",
    "tiny_http",
];

#[test]
fn the_embedding_library_pulls_in_no_cli_progress_bar_or_http_server() {
    let names = tree(&[]);
    for banned in APPLICATION_CRATES {
        assert!(
            !names.iter().any(|n| n == banned),
            "bbdc-host depends on {banned}"
        );
    }
    for database in ["rusqlite", "postgres", "r2d2"] {
        assert!(
            !names.iter().any(|n| n == database),
            "bbdc-host depends on {database}: the stores are bbdc-store's"
        );
    }
}

#[test]
fn without_default_features_there_is_no_sqlite() {
    let names = tree(&["--no-default-features"]);
    assert!(!names.iter().any(|n| n == "rusqlite"), "{names:?}");
}
