//! The wasmtime embedding: one [`Engine`] with epoch interruption, the component compiled once
//! and cached on disk, one `InstancePre`, and a `Store` per instance holding one tenant's state.
//!
//! Instances are kept warm between calls of the same tenant ([`InstanceReuse`]): instantiating
//! costs more than most calls (the kernel maps, faults in and unmaps a fresh linear memory each
//! time), and the contract has the connector keep no state between calls. An instance is only
//! ever reused for the tenant it was made for (the very same [`Tenant`]), and it is retired
//! after any trap, limit or storage failure, when the call left a host resource open, after
//! [`InstanceReuse::max_calls`] calls, or once its memory grew past
//! [`InstanceReuse::max_memory`]. Each call gets its own deadline, fuel and log allowance.

use crate::bindings::api::{
    Connection, ConnectorError, PageRequest, RepoRef, SyncOptions, WebhookRequest,
};
use crate::bindings::history::{
    BranchPage, BuildBatch, CommitBatch, PullRequestCommitPage, TagPage,
};
use crate::bindings::repository_events::RepositoryWebhookOutcome;
use crate::bindings::types::{
    ConnectionReport, ConnectorInfo, ProjectPage, PullRequest, PullRequestBatch, RepoFilter,
    RepoPage, UserPage, WebhookError, WebhookOutcome,
};
use crate::imports::CallState;
use crate::plugin::{Connector, Plugin, PluginPre};
use crate::tenant::Tenant;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};

/// Most commits one `fetch-builds` call may name (the contract's limit).
pub const MAX_BUILD_COMMITS_PER_CALL: usize = 50;
use wasmtime::{Config, Engine, Store, Trap};

/// The connector component built with this crate (by `build.rs`).
pub static BUNDLED_COMPONENT: &[u8] = include_bytes!(env!("BBDC_COMPONENT_WASM"));

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a call failed in the host rather than in the connector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The call ran past its wall-clock deadline and was interrupted.
    #[error("the call exceeded its deadline of {0:?} and was stopped")]
    Deadline(Duration),
    /// The call tried to grow memory past its cap.
    #[error("the call exceeded its memory limit of {0} bytes and was stopped")]
    MemoryLimit(usize),
    /// The call ran out of fuel.
    #[error("the call exhausted its fuel and was stopped")]
    Fuel,
    /// Host storage failed during the call.
    #[error("host storage failed: {0}")]
    Storage(String),
    /// The component trapped.
    #[error("the connector trapped: {0}")]
    Trap(String),
    /// The component could not be loaded or instantiated.
    #[error("could not load the connector: {0}")]
    Load(String),
    /// The call's limits (fuel, memory, deadline) could not be applied to its store, so it was
    /// not started.
    #[error("could not apply the call's limits: {0}")]
    Limits(String),
    /// The component's contract version lacks the export (a 0.1.0 component asked for commits).
    #[error(transparent)]
    Unsupported(#[from] crate::plugin::Unsupported),
}

/// A call's failure: the connector's own typed error, or the host's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError<E: std::fmt::Debug> {
    /// The connector returned an error.
    #[error("{0:?}")]
    Connector(E),
    /// The host stopped or could not run the call.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// Settings of the runtime.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// A component file to load instead of the bundled one.
    pub component_path: Option<PathBuf>,
    /// Where compiled components are cached (`None`: compile at every start).
    pub cache_dir: Option<PathBuf>,
    /// Meter fuel, with this much per call unless a tenant's `Limits::fuel` says otherwise
    /// (`None`: unmetered; the deadline still applies).
    pub fuel: Option<u64>,
    /// Reserve this many instance slots up front with wasmtime's pooling allocator, so a call
    /// reuses a slot instead of mapping fresh memory (`None`: allocate on demand). More calls
    /// than slots at once fail with [`HostError::Load`]; each slot reserves address space (not
    /// memory) for the largest `Limits::memory_bytes` of [`POOL_MAX_MEMORY`].
    pub pooling_slots: Option<u32>,
    /// Whether to pre-initialise the component at load time (see [`crate::preinit`]).
    pub pre_initialize: PreInitialize,
    /// How instances are kept warm between calls of one tenant ([`InstanceReuse::OFF`]: a
    /// fresh instance for every call).
    pub reuse: InstanceReuse,
}

/// How a [`Runtime`] keeps instances warm between calls of one tenant.
///
/// A warm instance serves only the [`Tenant`] it was made for (the same `Arc`), so nothing of
/// one tenant reaches another's calls. Between calls of one tenant, the guest's linear memory
/// carries over; the contract has the connector keep no state between calls, and each call
/// still gets its own deadline, fuel and log allowance. An instance is retired after a trap or
/// any failure of the host's (deadline, memory, storage), and when a call leaves a host
/// resource open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceReuse {
    /// Idle instances the runtime keeps, over all tenants; the least recently used goes first.
    /// Each holds its linear memory (a few MiB for the connector after a typical call, at most
    /// `max_memory`), so this bounds what idle instances hold.
    pub max_idle: usize,
    /// Calls an instance serves before it is retired.
    pub max_calls: u32,
    /// An instance whose linear memory has grown past this many bytes is retired after its
    /// call, so one large call does not keep its memory for the rest of the run.
    pub max_memory: usize,
}

impl InstanceReuse {
    /// No reuse: every call instantiates afresh.
    pub const OFF: Self = Self {
        max_idle: 0,
        max_calls: 1,
        max_memory: 0,
    };
}

impl Default for InstanceReuse {
    /// 16 idle instances (enough for a sync's or an endpoint's workers of a tenant or two), 1000
    /// calls each, retired past 8 MiB of memory: small calls (webhooks, listings) reuse, while
    /// an instance that grew over a large page gives its memory back. Idle instances hold at
    /// most 128 MiB in all.
    fn default() -> Self {
        Self {
            max_idle: 16,
            max_calls: 1000,
            max_memory: 8 << 20,
        }
    }
}

/// How many instances a [`Runtime`] has made and how many calls reused one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceCounts {
    /// Instances created.
    pub created: u64,
    /// Calls served by a warm instance instead of a new one.
    pub reused: u64,
}

/// An instance between calls, with the store that holds its tenant's state (`plugin` is `None`
/// until the store is first instantiated).
struct Warm {
    store: Store<CallState>,
    plugin: Option<Plugin>,
    calls: u32,
}

/// What a call used so far.
fn stats(store: &Store<CallState>, fuel: Option<u64>) -> CallStats {
    CallStats {
        peak_memory: store.data().limiter.peak,
        fuel_used: fuel.map(|given| given.saturating_sub(store.get_fuel().unwrap_or(0))),
    }
}

/// The host's name for a call that failed in wasmtime: the limit it hit, the storage failure it
/// met, or the trap.
fn host_error(e: &wasmtime::Error, state: &CallState, limits: &crate::Limits) -> HostError {
    if state.limiter.hit {
        HostError::MemoryLimit(limits.memory_bytes)
    } else if let Some(s) = &state.storage_failure {
        HostError::Storage(s.clone())
    } else {
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => HostError::Deadline(limits.deadline),
            Some(Trap::OutOfFuel) => HostError::Fuel,
            _ => HostError::Trap(format!("{e:#}")),
        }
    }
}

/// Whether [`Runtime::new`] pre-initialises the component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PreInitialize {
    /// Snapshot the component after its start-up when it exports the initialiser and the
    /// `pre-initialize` feature is on (the default); run it as built otherwise.
    #[default]
    WhenExported,
    /// Run the component as built: every call runs its start-up.
    Never,
}

/// The largest linear memory a call can have under the pooling allocator.
pub const POOL_MAX_MEMORY: usize = 1 << 30;

/// What one call used, for benchmarks and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// The largest linear memory the call reached, in bytes.
    pub peak_memory: usize,
    /// The fuel the call burned, when fuel is metered (`RuntimeConfig::fuel`): a deterministic
    /// measure of the work the guest did.
    pub fuel_used: Option<u64>,
}

impl RuntimeConfig {
    /// The default cache directory: `$BBDC_CACHE_DIR`, else `$XDG_CACHE_HOME/bbdc`, else
    /// `$HOME/.cache/bbdc`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("BBDC_CACHE_DIR") {
            return Some(PathBuf::from(d));
        }
        if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(d).join("bbdc"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bbdc"))
    }
}

struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The loaded connector, ready to run calls for any tenant from any thread.
pub struct Runtime {
    engine: Engine,
    pre: PluginPre,
    fuel: Option<u64>,
    reuse: InstanceReuse,
    idle: Mutex<VecDeque<Warm>>,
    created: AtomicU64,
    reused: AtomicU64,
    _ticker: EpochTicker,
}

fn load_err(e: impl std::fmt::Display) -> HostError {
    HostError::Load(e.to_string())
}

/// Loads the compiled form of `bytes` from the cache, or compiles and caches it.
///
/// The cache holds `connector-<component digest>-<engine hash>.cwasm` and, beside it, the
/// SHA-256 of that file as the host wrote it (`.sha256`). A cached file is deserialised only when
/// its content has that digest, so a truncated, corrupted or substituted file is compiled afresh
/// instead of being trusted as machine code. The directory is created private (0700) and the
/// files 0600.
///
/// With `pre_initialize`, what is compiled (and cached, under a name of its own) is the
/// component's pre-initialised snapshot when it can be made, so a cache hit skips the snapshot
/// too.
fn load_component(
    engine: &Engine,
    bytes: &[u8],
    cache_dir: Option<&Path>,
    pre_initialize: PreInitialize,
) -> Result<Component, HostError> {
    let preinit = wants_pre_initialization(bytes, pre_initialize);
    let Some(dir) = cache_dir else {
        let compiled = compile_prepared(engine, bytes, preinit)?;
        // SAFETY: produced just now by this engine.
        return unsafe { Component::deserialize(engine, &compiled) }.map_err(load_err);
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let engine_hash = h.finish();
    let name = hex::encode(&sha2::Sha256::digest(bytes)[..12]);
    let form = if preinit { "-preinit" } else { "" };
    let path = dir.join(format!("connector-{name}{form}-{engine_hash:016x}.cwasm"));
    let digest_path = path.with_extension("cwasm.sha256");
    if let (Ok(cached), Ok(recorded)) =
        (std::fs::read(&path), std::fs::read_to_string(&digest_path))
    {
        if hex::encode(sha2::Sha256::digest(&cached)) == recorded.trim() {
            // SAFETY: the bytes are exactly those `precompile_component` produced for an engine
            // with the same compatibility hash (in the name): their digest is the one recorded
            // when this host wrote them.
            match unsafe { Component::deserialize(engine, &cached) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!(
                    "ignoring unreadable component cache {}: {e}",
                    path.display()
                ),
            }
        } else {
            tracing::warn!(
                "ignoring component cache {}: its digest is not the one recorded when it was written",
                path.display()
            );
        }
    }
    let compiled = compile_prepared(engine, bytes, preinit)?;
    // SAFETY: produced just now by this engine.
    let component = unsafe { Component::deserialize(engine, &compiled) }.map_err(load_err)?;
    if let Err(e) = write_cache(dir, &path, &digest_path, &compiled) {
        tracing::warn!(
            "could not cache the compiled component in {}: {e}",
            dir.display()
        );
    }
    Ok(component)
}

/// Whether `bytes` are to be pre-initialised: asked for, the feature built in, and the
/// component exports the initialiser.
fn wants_pre_initialization(bytes: &[u8], pre_initialize: PreInitialize) -> bool {
    #[cfg(feature = "pre-initialize")]
    if pre_initialize == PreInitialize::WhenExported {
        // Unreadable bytes are not pre-initialised; compiling them reports what is wrong.
        return crate::preinit::exports_initialiser(bytes).unwrap_or_default();
    }
    let _ = (bytes, pre_initialize);
    false
}

/// Compiles the pre-initialised snapshot when `preinit` and it can be made and compiled, else
/// the component as built: a snapshot that fails is logged, never fatal.
fn compile_prepared(engine: &Engine, bytes: &[u8], preinit: bool) -> Result<Vec<u8>, HostError> {
    #[cfg(feature = "pre-initialize")]
    if preinit {
        match crate::preinit::pre_initialize(bytes).and_then(|snapshot| {
            engine.precompile_component(&snapshot).map_err(|e| {
                crate::preinit::PreInitError::Snapshot(format!("compiling the snapshot: {e:#}"))
            })
        }) {
            Ok(compiled) => return Ok(compiled),
            Err(e) => tracing::warn!("running the connector as built: {e}"),
        }
    }
    let _ = preinit;
    engine.precompile_component(bytes).map_err(load_err)
}

/// Writes a compiled component and its digest, each atomically (temporary file, then rename),
/// the digest last so a reader never sees a digest without its file.
fn write_cache(
    dir: &Path,
    path: &Path,
    digest_path: &Path,
    compiled: &[u8],
) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let digest = hex::encode(sha2::Sha256::digest(compiled));
    for (target, content) in [(path, compiled), (digest_path, digest.as_bytes())] {
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::fs::write(tmp.path(), content)?;
        tmp.persist(target).map_err(|e| e.error)?;
    }
    Ok(())
}

use sha2::Digest;

impl Runtime {
    /// Builds the engine, loads (or compiles) the component and links its imports.
    pub fn new(config: &RuntimeConfig) -> Result<Self, HostError> {
        let mut wasm_config = Config::new();
        wasm_config.epoch_interruption(true);
        wasm_config.wasm_component_model(true);
        if config.fuel.is_some() {
            wasm_config.consume_fuel(true);
        }
        if let Some(slots) = config.pooling_slots {
            let slots = slots.max(1);
            let mut pool = wasmtime::PoolingAllocationConfig::default();
            pool.total_component_instances(slots)
                .total_core_instances(slots.saturating_mul(4))
                .total_memories(slots.saturating_mul(2))
                .total_tables(slots.saturating_mul(4))
                .max_memory_size(POOL_MAX_MEMORY);
            wasm_config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        // `BBDC_PERFMAP=1` writes /tmp/perf-<pid>.map so `perf report` names the guest's
        // functions.
        if std::env::var_os("BBDC_PERFMAP").is_some() {
            wasm_config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&wasm_config).map_err(load_err)?;
        let bytes = match &config.component_path {
            Some(p) => {
                std::fs::read(p).map_err(|e| HostError::Load(format!("{}: {e}", p.display())))?
            }
            None => BUNDLED_COMPONENT.to_vec(),
        };
        let component = load_component(
            &engine,
            &bytes,
            config.cache_dir.as_deref(),
            config.pre_initialize,
        )?;
        let mut linker: Linker<CallState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(load_err)?;
        // 0.2.0's imports are 0.1.0's: linking them once serves components of either version.
        crate::bindings::v0_2::ConnectorPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(load_err)?;
        let pre = PluginPre::new(linker.instantiate_pre(&component).map_err(load_err)?)
            .map_err(load_err)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.clone();
        let ticker_stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("bbdc-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(load_err)?;
        let mut reuse = config.reuse;
        if let Some(slots) = config.pooling_slots {
            // Idle instances hold pool slots: leave at least half of them for new calls.
            reuse.max_idle = reuse.max_idle.min(usize::try_from(slots / 2).unwrap_or(0));
        }
        Ok(Self {
            engine,
            pre,
            fuel: config.fuel,
            reuse,
            idle: Mutex::new(VecDeque::new()),
            created: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            _ticker: EpochTicker { stop },
        })
    }

    /// How many instances were created and how many calls reused one, since the start.
    pub fn instance_counts(&self) -> InstanceCounts {
        InstanceCounts {
            created: self.created.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
        }
    }

    /// A warm instance of `tenant`'s, the most recently used one, if any is idle.
    fn take_warm(&self, tenant: &Arc<Tenant>) -> Option<Warm> {
        if self.reuse.max_idle == 0 {
            return None;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let at = idle
            .iter()
            .rposition(|w| Arc::ptr_eq(w.store.data().tenant(), tenant))?;
        idle.remove(at)
    }

    /// Keeps `warm` for the next call of its tenant, unless it is to be retired.
    fn keep_warm(&self, warm: Warm) {
        let state = warm.store.data();
        if self.reuse.max_idle == 0
            || !state.is_clean()
            || warm.calls >= self.reuse.max_calls
            || state.limiter.peak > self.reuse.max_memory
        {
            return;
        }
        let retired = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            idle.push_back(warm);
            (idle.len() > self.reuse.max_idle).then(|| idle.pop_front())
        };
        // Dropped outside the lock: freeing an instance unmaps its memory.
        drop(retired);
    }

    /// A store for a new instance of `tenant`'s (instantiated by [`Runtime::arm`]).
    fn new_store(&self, tenant: &Arc<Tenant>) -> Warm {
        let mut store = Store::new(&self.engine, CallState::new(Arc::clone(tenant)));
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        Warm {
            store,
            plugin: None,
            calls: 0,
        }
    }

    /// Readies `warm` for a call: resets its per-call state, gives it the call's deadline and
    /// fuel, and instantiates the component if it is new. When the pooling allocator has no
    /// slot left for a new instance, the idle instances give theirs back and a new store tries
    /// once more.
    fn arm(
        &self,
        warm: &mut Warm,
        ticks: u64,
        fuel: Option<u64>,
    ) -> Result<(), (HostError, CallStats)> {
        let mut retried = false;
        loop {
            let store = &mut warm.store;
            store.data_mut().begin_call();
            store.set_epoch_deadline(ticks);
            if let Some(fuel) = fuel
                && let Err(e) = store.set_fuel(fuel)
            {
                let err = HostError::Limits(format!("setting the call's fuel: {e}"));
                return Err((err, CallStats::default()));
            }
            if warm.plugin.is_some() {
                return Ok(());
            }
            match self.pre.instantiate(&mut *store) {
                Ok(plugin) => {
                    self.created.fetch_add(1, Ordering::Relaxed);
                    warm.plugin = Some(plugin);
                    return Ok(());
                }
                Err(e) => {
                    let idle = std::mem::take(
                        &mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner),
                    );
                    if retried || idle.is_empty() {
                        let state = store.data();
                        let tenant = state.tenant();
                        let err = host_error(&e, state, &tenant.config.limits);
                        return Err((err, stats(store, fuel)));
                    }
                    drop(idle);
                    retried = true;
                    *warm = self.new_store(warm.store.data().tenant());
                }
            }
        }
    }

    /// Runs one export in an instance of `tenant`'s: a warm one if one is idle (see
    /// [`InstanceReuse`]), else a new one. The typed methods below use this; embedders can call
    /// it directly to pass their own arguments to any export.
    pub fn call_with<T, E: std::fmt::Debug>(
        &self,
        tenant: &Arc<Tenant>,
        f: impl FnOnce(&Plugin, &mut Store<CallState>) -> wasmtime::Result<Result<T, E>>,
    ) -> Result<T, CallError<E>> {
        self.call_measured(tenant, f).0
    }

    /// [`Runtime::call_with`], also returning what the call used.
    pub fn call_measured<T, E: std::fmt::Debug>(
        &self,
        tenant: &Arc<Tenant>,
        f: impl FnOnce(&Plugin, &mut Store<CallState>) -> wasmtime::Result<Result<T, E>>,
    ) -> (Result<T, CallError<E>>, CallStats) {
        let limits = &tenant.config.limits;
        let ticks = (limits.deadline.as_millis() / EPOCH_TICK.as_millis()).max(1);
        let ticks = u64::try_from(ticks).unwrap_or(u64::MAX);
        let fuel = self.fuel.map(|default| limits.fuel.unwrap_or(default));
        let mut warm = match self.take_warm(tenant) {
            Some(w) => {
                self.reused.fetch_add(1, Ordering::Relaxed);
                w
            }
            None => self.new_store(tenant),
        };
        if let Err((err, stats)) = self.arm(&mut warm, ticks, fuel) {
            return (Err(CallError::Host(err)), stats);
        }
        warm.calls = warm.calls.saturating_add(1);
        let outcome = match &warm.plugin {
            Some(plugin) => f(plugin, &mut warm.store),
            None => Err(wasmtime::Error::msg("the instance was not created")),
        };
        let store = &warm.store;
        let stats = stats(store, fuel);
        let failed = outcome.is_err();
        let result = match outcome {
            Ok(Ok(v)) => Ok(v),
            // Host I/O cut short by the deadline: the connector's error (a timeout) is the
            // deadline's, and is reported as such so that no caller repeats it.
            Ok(Err(_)) if store.data().deadline_hit => {
                Err(CallError::Host(HostError::Deadline(limits.deadline)))
            }
            Ok(Err(e)) => Err(CallError::Connector(e)),
            Err(e) => Err(CallError::Host(host_error(&e, store.data(), limits))),
        };
        // A trap leaves the instance unusable; anything else unusual retires it too.
        if !failed {
            self.keep_warm(warm);
        }
        (result, stats)
    }

    /// The connection object the connector sees for a tenant.
    pub fn connection(tenant: &Tenant) -> Connection {
        Connection {
            base_url: tenant.config.base_url.clone(),
            page_size: tenant.config.page_size,
        }
    }

    /// One call of a `connector` export with the tenant's connection.
    fn export<T, E: std::fmt::Debug>(
        &self,
        tenant: &Arc<Tenant>,
        f: impl FnOnce(
            Connector<'_>,
            &mut Store<CallState>,
            &Connection,
        ) -> wasmtime::Result<Result<T, E>>,
    ) -> Result<T, CallError<E>> {
        let conn = Self::connection(tenant);
        self.call_with(tenant, |p, s| f(p.connector(), s, &conn))
    }

    /// `describe`: the connector's name and version (no I/O).
    pub fn describe(&self, tenant: &Arc<Tenant>) -> Result<ConnectorInfo, CallError<Infallible>> {
        self.call_with(tenant, |p, s| p.connector().call_describe(s).map(Ok))
    }

    /// `check-connection`, counting the repositories `filter` admits.
    pub fn check_connection(
        &self,
        tenant: &Arc<Tenant>,
        filter: RepoFilter,
    ) -> Result<ConnectionReport, CallError<ConnectorError>> {
        self.export(tenant, |api, s, conn| {
            api.call_check_connection(s, conn, filter)
        })
    }

    /// `list-projects`.
    pub fn list_projects(
        &self,
        tenant: &Arc<Tenant>,
        cursor: Option<String>,
    ) -> Result<ProjectPage, CallError<ConnectorError>> {
        let page = PageRequest { cursor };
        self.export(tenant, |api, s, conn| {
            api.call_list_projects(s, conn, &page)
        })
    }

    /// `list-repos`: one page of a project's repositories that `filter` admits.
    pub fn list_repos(
        &self,
        tenant: &Arc<Tenant>,
        project_key: &str,
        filter: RepoFilter,
        cursor: Option<String>,
    ) -> Result<RepoPage, CallError<ConnectorError>> {
        let page = PageRequest { cursor };
        self.export(tenant, |api, s, conn| {
            api.call_list_repos(s, conn, project_key, filter, &page)
        })
    }

    /// `list-all-repos`: one page of every visible repository (personal ones included) that
    /// `filter` admits.
    pub fn list_all_repos(
        &self,
        tenant: &Arc<Tenant>,
        filter: RepoFilter,
        cursor: Option<String>,
    ) -> Result<RepoPage, CallError<ConnectorError>> {
        let page = PageRequest { cursor };
        self.export(tenant, |api, s, conn| {
            api.call_list_all_repos(s, conn, filter, &page)
        })
    }

    /// `list-users`.
    pub fn list_users(
        &self,
        tenant: &Arc<Tenant>,
        cursor: Option<String>,
    ) -> Result<UserPage, CallError<ConnectorError>> {
        let page = PageRequest { cursor };
        self.export(tenant, |api, s, conn| api.call_list_users(s, conn, &page))
    }

    /// `fetch-pull-requests`.
    pub fn fetch_pull_requests(
        &self,
        tenant: &Arc<Tenant>,
        repo: &RepoRef,
        options: &SyncOptions,
        cursor: Option<&str>,
    ) -> Result<PullRequestBatch, CallError<ConnectorError>> {
        self.export(tenant, |api, s, conn| {
            api.call_fetch_pull_requests(s, conn, repo, *options, cursor)
        })
    }

    /// `fetch-pull-request`.
    pub fn fetch_pull_request(
        &self,
        tenant: &Arc<Tenant>,
        repo: &RepoRef,
        id: u64,
    ) -> Result<PullRequest, CallError<ConnectorError>> {
        self.export(tenant, |api, s, conn| {
            api.call_fetch_pull_request(s, conn, repo, id)
        })
    }

    /// `fetch-commits` (contract 0.2.0): one step of the commit pass of `repo`'s default branch;
    /// acknowledge a batch by calling again with its `next_cursor` once it is persisted. A 0.1.0
    /// component fails with [`HostError::Unsupported`].
    pub fn fetch_commits(
        &self,
        tenant: &Arc<Tenant>,
        repo: &RepoRef,
        cursor: Option<&str>,
    ) -> Result<CommitBatch, CallError<ConnectorError>> {
        self.fetch_commits_from(tenant, repo, cursor, None)
    }

    /// [`Runtime::fetch_commits`] telling the connector the branch's tip the host has just
    /// listed, so that a pass that starts here does not ask for it.
    pub fn fetch_commits_from(
        &self,
        tenant: &Arc<Tenant>,
        repo: &RepoRef,
        cursor: Option<&str>,
        tip: Option<&str>,
    ) -> Result<CommitBatch, CallError<ConnectorError>> {
        Self::since_0_2(self.export(tenant, |api, s, conn| {
            api.call_fetch_commits(s, conn, repo, cursor, tip).map(Ok)
        }))
    }

    /// `list-branches` (contract 0.2.0): one page of `repo`'s branches.
    pub fn list_branches(
        &self,
        tenant: &Arc<Tenant>,
        repo: &RepoRef,
        cursor: Option<String>,
    ) -> Result<BranchPage, CallError<ConnectorError>> {
        let page = PageRequest { cursor };
        Self::since_0_2(self.export(tenant, |api, s, conn| {
            api.call_list_branches(s, conn, repo, &page).map(Ok)
        }))
    }

    /// `list-tags` (contract 0.2.0): one page of `repo`'s tags.
    pub fn list_tags(
        &self,
        tenant: &Arc<Tenant>,
        repo: &RepoRef,
        cursor: Option<String>,
    ) -> Result<TagPage, CallError<ConnectorError>> {
        let page = PageRequest { cursor };
        Self::since_0_2(self.export(tenant, |api, s, conn| {
            api.call_list_tags(s, conn, repo, &page).map(Ok)
        }))
    }

    /// `list-pull-request-commits` (contract 0.2.0): one page of the commits of pull request
    /// `id` of `repo`.
    pub fn list_pull_request_commits(
        &self,
        tenant: &Arc<Tenant>,
        repo: &RepoRef,
        id: u64,
        cursor: Option<String>,
    ) -> Result<PullRequestCommitPage, CallError<ConnectorError>> {
        let page = PageRequest { cursor };
        Self::since_0_2(self.export(tenant, |api, s, conn| {
            api.call_list_pull_request_commits(s, conn, repo, id, &page)
                .map(Ok)
        }))
    }

    /// `fetch-builds` (contract 0.2.0): the build statuses of `commits` (at most
    /// [`MAX_BUILD_COMMITS_PER_CALL`]) of `repo`.
    pub fn fetch_builds(
        &self,
        tenant: &Arc<Tenant>,
        repo: &RepoRef,
        commits: &[String],
    ) -> Result<BuildBatch, CallError<ConnectorError>> {
        Self::since_0_2(self.export(tenant, |api, s, conn| {
            api.call_fetch_builds(s, conn, repo, commits).map(Ok)
        }))
    }

    /// The outcome of an export 0.2.0 added: a 0.1.0 component's [`crate::plugin::Unsupported`]
    /// as [`HostError::Unsupported`].
    fn since_0_2<T, E: std::fmt::Debug>(
        outcome: Result<
            Result<Result<T, E>, crate::plugin::Unsupported>,
            CallError<std::convert::Infallible>,
        >,
    ) -> Result<T, CallError<E>> {
        match outcome {
            Ok(Ok(result)) => result.map_err(CallError::Connector),
            Ok(Err(unsupported)) => Err(CallError::Host(unsupported.into())),
            Err(CallError::Host(e)) => Err(CallError::Host(e)),
            Err(CallError::Connector(never)) => match never {},
        }
    }

    /// The contract version of the loaded component.
    pub fn contract_version(&self) -> crate::plugin::ContractVersion {
        self.pre.version()
    }

    /// `handle-webhook`: the host checks the delivery's signature against `secret`
    /// ([`crate::signature::check`]), and the connector interprets the delivery and decides,
    /// on that check, whether to accept it. The secret never enters the sandbox.
    pub fn handle_webhook(
        &self,
        tenant: &Arc<Tenant>,
        secret: Option<&str>,
        req: &WebhookRequest,
    ) -> Result<WebhookOutcome, CallError<WebhookError>> {
        let check = crate::signature::check(secret, &req.headers, &req.body);
        self.handle_checked_webhook(tenant, check, req)
    }

    /// `handle-webhook` for a delivery whose signature the host has checked already, with
    /// [`crate::signature::check`] over this very body (an endpoint that refuses a bad
    /// signature before anything enters a sandbox, and should not compute the MAC twice).
    pub fn handle_checked_webhook(
        &self,
        tenant: &Arc<Tenant>,
        check: crate::signature::SignatureCheck,
        req: &WebhookRequest,
    ) -> Result<WebhookOutcome, CallError<WebhookError>> {
        self.export(tenant, |api, s, conn| {
            Self::with_signature(s, check, |s| api.call_handle_webhook(s, conn, req))
        })
    }

    /// `handle-repository-webhook` (contract 0.2.0) for a delivery whose signature the host has
    /// checked already, as [`Runtime::handle_checked_webhook`] does for a pull request's. A
    /// 0.1.0 component fails with [`HostError::Unsupported`].
    pub fn handle_checked_repository_webhook(
        &self,
        tenant: &Arc<Tenant>,
        check: crate::signature::SignatureCheck,
        req: &WebhookRequest,
    ) -> Result<RepositoryWebhookOutcome, CallError<WebhookError>> {
        Self::since_0_2(self.export(tenant, |api, s, conn| {
            Self::with_signature(s, check, |s| {
                api.call_handle_repository_webhook(s, conn, req).map(Ok)
            })
        }))
    }

    /// Runs a webhook export with the host's signature check bound to the call, which is what
    /// `check-signature` answers inside it (both webhook exports ask), and unbound after.
    fn with_signature<T>(
        s: &mut Store<CallState>,
        check: crate::signature::SignatureCheck,
        call: impl FnOnce(&mut Store<CallState>) -> T,
    ) -> T {
        s.data_mut().signature = Some(check);
        let outcome = call(&mut *s);
        s.data_mut().signature = None;
        outcome
    }
}
