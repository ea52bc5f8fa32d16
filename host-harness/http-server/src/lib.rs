//! The one HTTP server stack of `bbdc`: an axum [`Router`] served by hyper on a small tokio
//! runtime of its own, used by `bbdc serve` (the webhook endpoint) and by the simulator.
//!
//! What it guarantees, whatever the router does:
//! - **Bounded clients.** At most [`ServerLimits::max_connections`] connections are served at once;
//!   further ones wait in the kernel's listen backlog until one closes.
//! - **No slow or idle client holds a slot forever.** With [`ServerLimits::idle_timeout`] set, a
//!   connection that has not sent a complete request head that long after opening, or after its
//!   previous answer, is closed (hyper's header-read timer bounds both slow headers and idle
//!   keep-alive connections).
//! - **Accept failures back off.** Running out of file descriptors (EMFILE and the like) pauses
//!   accepting, from 5 ms up to 1 s, instead of stopping the server or spinning.
//! - **Graceful stop.** [`HttpServer::stop`], or SIGTERM/SIGINT with
//!   [`ServerLimits::stop_on_signals`], stops accepting and lets requests in flight finish, for at most
//!   [`ServerLimits::drain_timeout`].
//!
//! Handlers that block (a call into the component, an SQLite commit, a simulated latency) run on
//! the runtime's blocking threads, of which there are at most [`ServerLimits::blocking_threads`].

pub use axum;

use axum::Router;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// When a server began to stop (a signal, or [`HttpServer::stop`]): set before it drains, so
/// that work beside the server (a background refresh) can stop at once and finish within the
/// same drain.
#[derive(Debug, Default)]
pub struct Stopping {
    flag: AtomicBool,
    at: OnceLock<Instant>,
}

impl Stopping {
    /// Records that the server began to stop now (the first time only).
    pub fn set(&self) {
        let _ = self.at.set(Instant::now());
        self.flag.store(true, Ordering::Relaxed);
    }

    /// Whether the server began to stop.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// The flag itself, for code that takes an `AtomicBool` to stop on.
    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    /// When the server began to stop.
    pub fn at(&self) -> Option<Instant> {
        self.at.get().copied()
    }
}

/// How a server treats its clients.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Longest wait for a request head after a connection opens or after its previous answer
    /// (`None`: connections may idle for as long as the client keeps them).
    pub idle_timeout: Option<Duration>,
    /// How long a stop waits for requests in flight.
    pub drain_timeout: Duration,
    /// Stop gracefully on SIGTERM and SIGINT (for a process that is only this server; embedders
    /// keep their own signal handling and call [`HttpServer::stop`]).
    pub stop_on_signals: bool,
    /// Threads for handlers that block (`tokio::task::spawn_blocking`).
    pub blocking_threads: usize,
    /// Set when the server begins to stop, before it drains (`None`: nobody is told).
    pub stopping: Option<Arc<Stopping>>,
}

impl Default for ServerLimits {
    /// 1024 connections, 15 s for a request head, 30 s to drain, no signal handling, 8 blocking
    /// threads.
    fn default() -> Self {
        Self {
            max_connections: 1024,
            idle_timeout: Some(Duration::from_secs(15)),
            drain_timeout: Duration::from_secs(30),
            stop_on_signals: false,
            blocking_threads: 8,
            stopping: None,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {listen}: {source}")]
pub struct BindError {
    /// The address asked for.
    pub listen: String,
    /// What the operating system said.
    #[source]
    pub source: std::io::Error,
}

/// Binds `listen` (`127.0.0.1:0` picks a free port).
pub fn bind(listen: &str) -> Result<std::net::TcpListener, BindError> {
    std::net::TcpListener::bind(listen).map_err(|source| BindError {
        listen: listen.to_owned(),
        source,
    })
}

/// A running server: its own runtime on its own thread.
pub struct HttpServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `listen` (port 0 picks a free port) and serves `app` on a thread named `name`.
    pub fn start(
        name: &str,
        listen: &str,
        limits: ServerLimits,
        app: Router,
    ) -> Result<Self, BindError> {
        Self::serve(name, bind(listen)?, limits, app)
    }

    /// Serves `app` on a listener bound beforehand (by [`bind`]), for an `app` that must know
    /// its own address.
    pub fn serve(
        name: &str,
        listener: std::net::TcpListener,
        limits: ServerLimits,
        app: Router,
    ) -> Result<Self, BindError> {
        let listen = listener
            .local_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string());
        let fail = |source: std::io::Error| BindError {
            listen: listen.clone(),
            source,
        };
        listener.set_nonblocking(true).map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(limits.blocking_threads.max(1))
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(fail)?;
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(listener).map_err(fail)?
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || rt.block_on(accept_loop(listener, app, limits, rx)))
            .map_err(fail)?;
        Ok(Self {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the requests in flight (up to the drain timeout).
    pub fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.join();
    }

    /// Serves until stopped by a signal (with [`ServerLimits::stop_on_signals`]), then drains as
    /// [`HttpServer::stop`] does.
    pub fn wait(mut self) {
        self.join();
    }

    fn join(&mut self) {
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

impl Drop for HttpServer {
    /// A server dropped without [`HttpServer::stop`] stops too, rather than serving on unowned.
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
            self.join();
        }
    }
}

/// Resolves when the server should stop: [`HttpServer::stop`] (or its drop), or a signal.
async fn stop_requested(stop: tokio::sync::oneshot::Receiver<()>, signals: bool) {
    #[cfg(unix)]
    if signals {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = stop => {}
                _ = term.recv() => tracing::info!("SIGTERM: draining requests in flight"),
                _ = int.recv() => tracing::info!("SIGINT: draining requests in flight"),
            }
            return;
        }
    }
    let _ = signals;
    let _ = stop.await;
}

/// First and longest pause after a failed `accept`.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts connections until stopped, at most `max_connections` at once, each served by hyper
/// with the header/idle timeout; then drains.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServerLimits,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let stop = stop_requested(stop, limits.stop_on_signals);
    tokio::pin!(stop);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut stop => break,
            slot = Arc::clone(&slots).acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                tcp
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS…: the listener is fine; wait for resources to free.
                if backoff == ACCEPT_BACKOFF_MIN {
                    tracing::warn!("accepting a connection failed ({e}); backing off");
                }
                drop(slot);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        // Answers go out at once, not after the client's delayed ACK (Nagle).
        let _ = tcp.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    if let Some(s) = &limits.stopping {
        s.set();
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain_timeout) => {
            tracing::warn!("requests still in flight after {:?}; stopping anyway", limits.drain_timeout);
        }
    }
}
