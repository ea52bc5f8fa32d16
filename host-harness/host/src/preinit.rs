//! Pre-initialising the component: run its start-up once, at load time, and snapshot the result
//! into a new component (wasmtime's Wizer), so that no call pays for it again.
//!
//! Without it, the language runtime's constructors run at the first export call of every fresh
//! instance. The component exports [`INITIALISER`] (the `connector-plugin-build` world), which
//! does that start-up (and grows the heap once) and nothing else. [`pre_initialize`] calls it on an instance
//! whose every import traps, with bounded fuel and memory, and returns the snapshot; the runtime
//! compiles and caches that instead of the original. The snapshot holds no tenant's data (nothing
//! tenant-specific exists at load time) and no host resource (an import call would have trapped),
//! so every call still starts from the same clean state, only later in the program.
//!
//! Measured (BENCHMARKS.md, 2026-12-03): it removes about a third of `describe`'s guest work
//! (counted in fuel), but no measurable wall time, because a call's time is dominated by the
//! kernel mapping and faulting in the instance's memory, which a snapshot does not change.
//!
//! A component without the initialiser (an older or a third-party one), or one whose initialiser
//! fails, is run as it was built.

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};

/// The export the component's start-up runs behind: Wizer's default initialiser name, so the
/// `wasmtime wizer` command line pre-initialises the same component the same way.
pub const INITIALISER: &str = "wizer-initialize";

/// The fuel the initialiser may burn: start-up takes well under a million units, so this only
/// stops a component whose initialiser never ends from hanging the host at load.
const INIT_FUEL: u64 = 1_000_000_000;

/// The linear memory the initialiser may reach.
const INIT_MEMORY: usize = 64 << 20;

/// Why a component could not be pre-initialised (it then runs as built).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreInitError {
    /// The component's bytes could not be read as a component.
    #[error("the component could not be parsed: {0}")]
    Parse(String),
    /// Instrumenting, running the initialiser or snapshotting failed (an initialiser that calls
    /// an import, traps or runs out of fuel ends here).
    #[error("pre-initialising the component failed: {0}")]
    Snapshot(String),
}

/// Whether the component at top level exports a function named [`INITIALISER`]. Reads the
/// export section only; nothing is compiled.
pub fn exports_initialiser(component: &[u8]) -> Result<bool, PreInitError> {
    use wasmparser::{ComponentExternalKind, Parser, Payload};
    let parse_err = |e: wasmparser::BinaryReaderError| PreInitError::Parse(e.to_string());
    // Nested modules and components have their own sections; only the outermost one's exports
    // are the component's.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(component) {
        match payload.map_err(parse_err)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(exports) if depth == 0 => {
                for export in exports {
                    let export = export.map_err(parse_err)?;
                    if export.name.name == INITIALISER && export.kind == ComponentExternalKind::Func
                    {
                        return Ok(true);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(false)
}

/// Runs the component's [`INITIALISER`] once on an instance whose imports all trap, and returns
/// the snapshot: a component that starts where the initialiser ended. Takes about as long as
/// compiling the component twice, so the runtime caches the compiled result.
pub fn pre_initialize(component: &[u8]) -> Result<Vec<u8>, PreInitError> {
    let snapshot_err = |e: wasmtime::Error| PreInitError::Snapshot(format!("{e:#}"));
    let mut config = Config::new();
    config.wasm_component_model(true).consume_fuel(true);
    let engine = Engine::new(&config).map_err(snapshot_err)?;
    let limits = StoreLimitsBuilder::new()
        .memory_size(INIT_MEMORY)
        .instances(64)
        .build();
    let mut store: Store<StoreLimits> = Store::new(&engine, limits);
    store.limiter(|limits| limits);
    store.set_fuel(INIT_FUEL).map_err(snapshot_err)?;
    let mut wizer = wasmtime_wizer::Wizer::new();
    // The initialiser stays exported: Wizer 48 drops it from the core module but not from the
    // component's lift of it, which is then invalid. Calling it again is harmless (the
    // constructors run once; the heap is already grown).
    wizer.init_func(INITIALISER).keep_init_func(true);
    let run = wizer.run_component(&mut store, component, async |store, component| {
        let mut linker: Linker<StoreLimits> = Linker::new(store.engine());
        // Start-up needs no host: an import called now would capture a handle or a tenant's
        // data into the snapshot, so every import traps and the snapshot is abandoned.
        linker.define_unknown_imports_as_traps(component)?;
        linker.instantiate(store, component)
    });
    let (snapshot, _results) = futures_executor::block_on(run).map_err(snapshot_err)?;
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::BUNDLED_COMPONENT;

    #[test]
    fn the_bundled_component_exports_the_initialiser_and_snapshots() {
        assert!(exports_initialiser(BUNDLED_COMPONENT).unwrap());
        let snapshot = pre_initialize(BUNDLED_COMPONENT).unwrap();
        assert_ne!(snapshot, BUNDLED_COMPONENT);
        // Still a component wasmtime compiles (what it does is tested in tests/cache.rs).
        let engine = Engine::default();
        wasmtime::component::Component::new(&engine, &snapshot).unwrap();
    }

    #[test]
    fn bytes_that_are_not_a_component_are_a_parse_error() {
        assert!(matches!(
            exports_initialiser(b"not wasm at all"),
            Err(PreInitError::Parse(_))
        ));
        assert!(matches!(
            pre_initialize(b"not wasm at all"),
            Err(PreInitError::Snapshot(_))
        ));
    }
}
