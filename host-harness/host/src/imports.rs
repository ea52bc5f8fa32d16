//! Per-call store state and the WIT imports implemented over it: HTTP through the tenant's
//! [`TenantHttp`](crate::http::TenantHttp), storage through the tenant's namespace of its
//! [`KvStore`](crate::storage::KvStore), logs into `tracing`.

use crate::bindings::{history, types, wit_delivery, wit_http, wit_log, wit_storage};
use crate::http::{Head, HttpError, StreamBody};
use crate::tenant::Tenant;
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Caps linear memory and remembers whether the cap was hit, so the host can name the limit.
pub struct MemoryCap {
    max: usize,
    /// Whether a growth was refused.
    pub hit: bool,
    /// The largest size a memory of this call was allowed to reach, in bytes.
    pub peak: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        if desired > self.max {
            self.hit = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Largest log line kept; longer lines are cut.
const MAX_LOG_LINE: usize = 4096;
/// Log lines one call may write before the host drops the rest.
const MAX_LOG_LINES_PER_CALL: u32 = 10_000;

/// The data of one call's `Store`.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The memory cap.
    pub limiter: MemoryCap,
    tenant: Arc<Tenant>,
    log_lines: u32,
    /// A storage failure that turned into a trap, for the error message.
    pub storage_failure: Option<String>,
    /// When the call's deadline passes: host I/O done for the call ends by then.
    deadline: std::time::Instant,
    /// Whether host I/O was cut short by the deadline: the call's failure is then the host's
    /// `Deadline`, which nothing above the HTTP policy repeats.
    pub deadline_hit: bool,
    /// The signature check of the webhook delivery this call handles, made by the host before
    /// the call (`delivery.check-signature` answers it); `None` outside `handle-webhook`.
    pub signature: Option<wit_delivery::SignatureCheck>,
}

impl CallState {
    /// Fresh state for one call: WASI granting nothing (no files, sockets, env or args).
    pub fn new(tenant: Arc<Tenant>) -> Self {
        let tenant_deadline = tenant.config.limits.deadline;
        Self {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: MemoryCap {
                max: tenant.config.limits.memory_bytes,
                hit: false,
                peak: 0,
            },
            tenant,
            log_lines: 0,
            storage_failure: None,
            deadline: deadline_after(tenant_deadline),
            deadline_hit: false,
            signature: None,
        }
    }

    /// Readies the state of a warm instance for its next call: a new deadline from now, a new
    /// log allowance, and no failure carried over from the last call. Memory already grown
    /// stays counted in `limiter.peak`, since a linear memory never shrinks.
    pub fn begin_call(&mut self) {
        self.deadline = deadline_after(self.tenant.config.limits.deadline);
        self.deadline_hit = false;
        self.storage_failure = None;
        self.log_lines = 0;
        self.limiter.hit = false;
        self.signature = None;
    }

    /// The tenant this state belongs to.
    pub fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }

    /// Whether the call left nothing behind that a next call could inherit: no failure, no
    /// limit hit, and no host resource (a response body) still held in the table.
    pub fn is_clean(&self) -> bool {
        !self.deadline_hit
            && self.storage_failure.is_none()
            && !self.limiter.hit
            && self.table.is_empty()
    }

    fn storage_trap(&mut self, e: crate::storage::StoreError) -> wasmtime::Error {
        let msg = crate::errors::chain(&e);
        self.storage_failure = Some(msg.clone());
        wasmtime::Error::msg(msg)
    }
}

/// `now + d`, or as far as an `Instant` reaches.
fn deadline_after(d: std::time::Duration) -> std::time::Instant {
    let now = std::time::Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(100 * 365 * 24 * 3600))
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CallState {
    /// Notes a timeout that came from the call's deadline rather than the server.
    fn note_timeout<T>(&mut self, r: &std::result::Result<T, HttpError>) {
        let slack = std::time::Duration::from_millis(50);
        if matches!(r, Err(HttpError::Timeout))
            && std::time::Instant::now() + slack >= self.deadline
        {
            self.deadline_hit = true;
        }
    }
}

fn wit_error(e: HttpError) -> wit_http::HttpError {
    match e {
        HttpError::Denied(s) => wit_http::HttpError::Denied(s),
        HttpError::Timeout => wit_http::HttpError::Timeout,
        HttpError::Connection(s) => wit_http::HttpError::Connection(s),
        HttpError::TooLarge(n) => wit_http::HttpError::TooLarge(n),
    }
}

fn wit_head(h: Head) -> wit_http::ResponseHead {
    wit_http::ResponseHead {
        status: h.status,
        headers: h.headers,
    }
}

fn method(m: wit_http::Method) -> &'static str {
    match m {
        wit_http::Method::Get => "GET",
        wit_http::Method::Head => "HEAD",
    }
}

impl wit_http::Host for CallState {
    fn send(
        &mut self,
        req: wit_http::Request,
    ) -> Result<Result<(wit_http::ResponseHead, Vec<u8>), wit_http::HttpError>> {
        let sent = self
            .tenant
            .http
            .send(method(req.method), &req.url, &req.headers, self.deadline);
        self.note_timeout(&sent);
        Ok(sent.map(|(h, b)| (wit_head(h), b)).map_err(wit_error))
    }

    fn send_streaming(
        &mut self,
        req: wit_http::Request,
    ) -> Result<Result<(wit_http::ResponseHead, Resource<StreamBody>), wit_http::HttpError>> {
        let sent = self.tenant.http.send_streaming(
            method(req.method),
            &req.url,
            &req.headers,
            self.deadline,
        );
        self.note_timeout(&sent);
        match sent {
            Ok((head, body)) => {
                let handle = self.table.push(body)?;
                Ok(Ok((wit_head(head), handle)))
            }
            Err(e) => Ok(Err(wit_error(e))),
        }
    }
}

impl wit_http::HostBody for CallState {
    fn read(
        &mut self,
        body: Resource<StreamBody>,
        max_bytes: u32,
    ) -> Result<Result<Option<Vec<u8>>, wit_http::HttpError>> {
        let chunk = self.table.get_mut(&body)?.read_chunk(max_bytes);
        self.note_timeout(&chunk);
        Ok(chunk.map_err(wit_error))
    }

    fn drop(&mut self, body: Resource<StreamBody>) -> Result<()> {
        self.table.delete(body)?;
        Ok(())
    }
}

impl wit_storage::Host for CallState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>> {
        let tenant = Arc::clone(&self.tenant);
        tenant
            .kv
            .get(&tenant.config.id, &key)
            .map_err(|e| self.storage_trap(e))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<()> {
        let tenant = Arc::clone(&self.tenant);
        tenant
            .kv
            .set(&tenant.config.id, &key, &value)
            .map_err(|e| self.storage_trap(e))
    }

    fn delete(&mut self, key: String) -> Result<()> {
        let tenant = Arc::clone(&self.tenant);
        tenant
            .kv
            .delete(&tenant.config.id, &key)
            .map_err(|e| self.storage_trap(e))
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool> {
        let tenant = Arc::clone(&self.tenant);
        tenant
            .kv
            .compare_and_swap(&tenant.config.id, &key, expected.as_deref(), &value)
            .map_err(|e| self.storage_trap(e))
    }

    fn get_many(&mut self, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>> {
        let tenant = Arc::clone(&self.tenant);
        tenant
            .kv
            .get_many(&tenant.config.id, &keys)
            .map_err(|e| self.storage_trap(e))
    }

    fn set_many(&mut self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        let tenant = Arc::clone(&self.tenant);
        tenant
            .kv
            .set_many(&tenant.config.id, &entries)
            .map_err(|e| self.storage_trap(e))
    }
}

impl wit_delivery::Host for CallState {
    fn check_signature(&mut self) -> Result<wit_delivery::SignatureCheck> {
        Ok(self
            .signature
            .clone()
            .unwrap_or(wit_delivery::SignatureCheck::Missing))
    }
}

impl wit_log::Host for CallState {
    fn log(&mut self, level: wit_log::Level, message: String) -> Result<()> {
        self.log_lines = self.log_lines.saturating_add(1);
        if self.log_lines > MAX_LOG_LINES_PER_CALL {
            if self.log_lines == MAX_LOG_LINES_PER_CALL + 1 {
                tracing::warn!(tenant = %self.tenant.config.id, "connector log limit reached; dropping further lines of this call");
            }
            return Ok(());
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let tenant = self.tenant.config.id.as_str();
        match level {
            wit_log::Level::Trace => {
                tracing::trace!(target: "bbdc::connector", tenant, "{message}")
            }
            wit_log::Level::Debug => {
                tracing::debug!(target: "bbdc::connector", tenant, "{message}")
            }
            wit_log::Level::Info => tracing::info!(target: "bbdc::connector", tenant, "{message}"),
            wit_log::Level::Warn => tracing::warn!(target: "bbdc::connector", tenant, "{message}"),
            wit_log::Level::Error => {
                tracing::error!(target: "bbdc::connector", tenant, "{message}")
            }
        }
        Ok(())
    }
}

impl types::Host for CallState {}

/// 0.2.0's `history` interface holds only records: nothing to implement.
impl history::Host for CallState {}

/// 0.2.0's `repository-events` interface holds only records: nothing to implement.
impl crate::bindings::repository_events::Host for CallState {}
