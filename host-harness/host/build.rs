//! Builds the connector component (the workspace root package) for `wasm32-wasip2` with a nested
//! cargo, in its own target directory (the outer build holds the main one's lock), and hands its
//! path to the crate as `BBDC_COMPONENT_WASM`. So a plain `cargo build` or `cargo test` at the root
//! builds everything, and the `bbdc` binary carries the component inside it.
//!
//! Set `BBDC_COMPONENT_WASM` to a prebuilt component to skip the nested build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BBDC_COMPONENT_WASM");
    if let Ok(prebuilt) = env::var("BBDC_COMPONENT_WASM") {
        println!("cargo:rerun-if-changed={prebuilt}");
        println!("cargo:rustc-env=BBDC_COMPONENT_WASM={prebuilt}");
        return;
    }
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    // This crate is `host-harness/host`; the connector is the workspace root package.
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("host-harness/host lives inside the workspace")
        .to_path_buf();
    for watched in ["src", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    // Keep the guest's target directory beside the outer one (`target/guest`), whatever profile
    // or target directory the outer build uses, so every profile shares one guest build.
    let target_dir = guest_target_dir(&root);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    ensure_wasm_target();
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "bbdc-connector",
            "--target-dir",
        ])
        .arg(&target_dir);
    // The outer build's settings are for the host, not the guest.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_NET_OFFLINE"
            || key == "RUSTFLAGS"
            || key == "RUSTC_WRAPPER"
            || key == "RUSTC_WORKSPACE_WRAPPER"
        {
            cmd.env_remove(&key);
        }
    }
    let status = cmd
        .status()
        .expect("failed to run cargo for the wasm32-wasip2 component");
    assert!(
        status.success(),
        "building the connector component failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`)"
    );
    let wasm = target_dir.join("wasm32-wasip2/release/bbdc_connector.wasm");
    assert!(wasm.exists(), "component not found at {}", wasm.display());
    println!("cargo:rustc-env=BBDC_COMPONENT_WASM={}", wasm.display());
}

/// The guest target's standard library must be installed for the nested build. A fresh machine's
/// toolchain often lacks it (rustup does not add `rust-toolchain.toml`'s targets to a toolchain
/// that is already installed, and `RUSTUP_AUTO_INSTALL=0` turns installing off altogether), so
/// when it is missing and the toolchain is rustup's, add it here: the README's commands then work
/// with no set-up.
fn ensure_wasm_target() {
    const TARGET: &str = "wasm32-wasip2";
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let Some(sysroot) = sysroot else {
        // Let the nested build report whatever is wrong with the compiler.
        return;
    };
    if sysroot
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
    {
        return;
    }
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", TARGET]);
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        rustup.args(["--toolchain", &toolchain]);
    }
    println!(
        "cargo:warning=the {TARGET} target is missing from the toolchain; adding it with rustup"
    );
    match rustup.status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!(
            "`rustup target add {TARGET}` failed ({status}); install the target by hand to build the connector component"
        ),
        Err(e) => panic!(
            "the {TARGET} target is not installed and rustup could not be run ({e}); install the target for {} to build the connector component",
            sysroot.display()
        ),
    }
}

fn guest_target_dir(root: &Path) -> PathBuf {
    // OUT_DIR is <target>/<profile>/build/<pkg>/out, or <target>/<triple>/<profile>/build/...;
    // find the `build` ancestor and go to the directory holding the profile directory.
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    out.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|t| t.join("guest"))
        .unwrap_or_else(|| root.join("target/guest"))
}
