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
