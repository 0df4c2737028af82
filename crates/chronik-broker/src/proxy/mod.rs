//! Proxy mode: chronik-tui in front of a Kafka broker it does not run. Clients connect to the
//! proxy's listeners; each client connection gets its own upstream connection, its requests
//! are forwarded in order and each response is sent back, both captured into the store as the
//! embedded broker's exchanges are. The same settings act on the responses (placement,
//! mutations, faults), through the same code (`inject.rs`).
//!
//! `listeners.rs` binds the bootstrap listener and one more per upstream broker address, as
//! Metadata, FindCoordinator and DescribeCluster responses name them; `rewrite.rs` points those
//! addresses at the listeners so clients keep talking through the proxy; `conn.rs` forwards one
//! client connection and turns upstream failures (refused, reset, silent) into closed client
//! connections and exchanges that say why.

mod conn;
mod listeners;
mod rewrite;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use listeners::Upstream;

use crate::settings::Settings;
use chronik_capture::Store;
use listeners::Listeners;

/// How the proxy is set up at start.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The bootstrap listener's address (the per-broker listeners are bound on its IP).
    pub listen: SocketAddr,
    /// The broker clients are forwarded to when they connect to the bootstrap listener.
    pub upstream: Upstream,
    /// Largest request frame accepted from a client, checked before allocating.
    pub max_frame_bytes: usize,
    /// How long an upstream broker may take to accept a connection or to answer a request,
    /// beyond the wait the request itself asks for (a Fetch's max_wait_ms, a JoinGroup's
    /// rebalance timeout).
    pub timeout: Duration,
}

/// Largest response frame accepted from an upstream broker (a Fetch answer can be far larger
/// than any request); the buffer grows only as bytes arrive.
const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// What every connection of the proxy shares.
struct Proxy {
    config: ProxyConfig,
    store: Arc<Store>,
    settings: Arc<Settings>,
    listeners: Listeners,
    shutdown: watch::Receiver<bool>,
}

/// A running proxy.
pub struct ProxyHandle {
    /// The bootstrap listener's address (useful with port 0).
    pub local_addr: SocketAddr,
    proxy: Arc<Proxy>,
    shutdown: watch::Sender<bool>,
}

impl ProxyHandle {
    /// Every listener and the upstream address it forwards to, the bootstrap one first.
    pub fn listeners(&self) -> Vec<(SocketAddr, Upstream)> {
        self.proxy.listeners.all()
    }

    /// [`ProxyHandle::listeners`] as of each call, for a status line that follows them.
    pub fn listeners_source(
        &self,
    ) -> impl Fn() -> Vec<(SocketAddr, Upstream)> + Send + Sync + 'static {
        let proxy = self.proxy.clone();
        move || proxy.listeners.all()
    }

    /// The broker the bootstrap listener forwards to.
    pub fn upstream(&self) -> &Upstream {
        &self.proxy.config.upstream
    }

    /// Stops accepting connections and closes the open ones (their pending requests are
    /// captured as unanswered).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
    }
}

/// Binds the bootstrap listener and starts forwarding in the background. Nothing connects
/// upstream until a client sends its first request.
pub async fn start(
    config: ProxyConfig,
    store: Arc<Store>,
    settings: Arc<Settings>,
) -> anyhow::Result<ProxyHandle> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!(crate::bind_error(config.listen, &e)))?;
    let local_addr = listener.local_addr()?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let upstream = config.upstream.clone();
    let proxy = Arc::new(Proxy {
        listeners: Listeners::new(local_addr, upstream.clone()),
        config,
        store,
        settings,
        shutdown: shutdown_rx,
    });
    tokio::spawn(listeners::accept_loop(listener, upstream, proxy.clone()));
    Ok(ProxyHandle {
        local_addr,
        proxy,
        shutdown,
    })
}
