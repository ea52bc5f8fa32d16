//! The compiled-component cache: written private, and never trusted unless its content is what
//! the host wrote.

use bbdc_host::storage::MemoryKv;
use bbdc_host::{Credentials, Runtime, RuntimeConfig, Tenant, TenantConfig};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn cached(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("a compiled component in the cache")
}

fn load(dir: &Path) -> Runtime {
    Runtime::new(&RuntimeConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..RuntimeConfig::default()
    })
    .expect("loads")
}

#[test]
fn a_corrupted_cache_file_is_recompiled_not_run() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    drop(load(&dir));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the cache directory is private: {mode:o}");
        let mode = std::fs::metadata(cached(&dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the cache file is private: {mode:o}");
    }
    let path = cached(&dir);
    let good = std::fs::read(&path).unwrap();
    // Same length, same header, different machine code: only a digest tells.
    let mut bad = good.clone();
    let from = bad.len() / 2;
    for b in &mut bad[from..from + 4096] {
        *b ^= 0xA5;
    }
    std::fs::write(&path, &bad).unwrap();

    let runtime = load(&dir);
    let tenant = Arc::new(
        Tenant::new(
            TenantConfig::new("t", "https://bitbucket.invalid", Credentials::None),
            Arc::new(MemoryKv::new()),
        )
        .unwrap(),
    );
    let info = runtime
        .describe(&tenant)
        .expect("the recompiled component runs");
    assert!(!info.name.is_empty());
    let now = std::fs::read(&path).unwrap();
    assert_ne!(now, bad, "the corrupted file was replaced");
    let recorded = std::fs::read_to_string(path.with_extension("cwasm.sha256")).unwrap();
    let digest = hex::encode(sha2::Sha256::digest(&now));
    assert_eq!(
        recorded.trim(),
        digest,
        "by a fresh compilation, recorded anew"
    );
}

fn load_with(dir: &Path, pre_initialize: bbdc_host::PreInitialize) -> Runtime {
    Runtime::new(&RuntimeConfig {
        cache_dir: Some(dir.to_path_buf()),
        pre_initialize,
        // Metered, so each call reports the work it did.
        fuel: Some(1 << 40),
        // A new instance per call, so that each call shows where an instance starts.
        reuse: bbdc_host::InstanceReuse::OFF,
        ..RuntimeConfig::default()
    })
    .expect("loads")
}

fn cached_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    names.sort();
    names
}

/// The pre-initialised component starts where its start-up ended: a call does far less work
/// (counted in fuel, which is deterministic) than the same call on the component as built,
/// which runs the start-up first. Each form is cached under its own name, and both answer the
/// same.
#[test]
fn the_pre_initialised_component_starts_past_its_start_up_and_is_cached_apart() {
    use bbdc_host::PreInitialize;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    let tenant = Arc::new(
        Tenant::new(
            TenantConfig::new("t", "https://bitbucket.invalid", Credentials::None),
            Arc::new(MemoryKv::new()),
        )
        .unwrap(),
    );
    let describe = |runtime: &Runtime| {
        let (info, stats) = runtime.call_measured(&tenant, |plugin, store| {
            plugin.connector().call_describe(store).map(Ok::<_, ()>)
        });
        let fuel = stats.fuel_used.expect("fuel is metered");
        (info.expect("describe answers"), fuel)
    };

    let preinit = load_with(&dir, PreInitialize::WhenExported);
    let names = cached_names(&dir);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].contains("-preinit-"), "{names:?}");
    let as_built = load_with(&dir, PreInitialize::Never);
    let names = cached_names(&dir);
    assert_eq!(
        names.len(),
        2,
        "each form has its own cache file: {names:?}"
    );

    let (info, fuel) = describe(&preinit);
    let (built_info, built_fuel) = describe(&as_built);
    assert_eq!(info, built_info);
    assert_eq!(info.name, "bbdc-connector");
    assert!(
        fuel < built_fuel,
        "the start-up is not run again: {fuel} units of fuel pre-initialised, {built_fuel} as built"
    );
    // Every call starts from the same snapshot: the second costs what the first did.
    assert_eq!(describe(&preinit).1, fuel);
    assert_eq!(describe(&as_built).1, built_fuel);

    // A second load of each form hits its cache file and adds none.
    drop(load_with(&dir, PreInitialize::WhenExported));
    drop(load_with(&dir, PreInitialize::Never));
    assert_eq!(cached_names(&dir).len(), 2);
}
