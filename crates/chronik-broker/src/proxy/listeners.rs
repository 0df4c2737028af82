//! The proxy's listeners: the bootstrap one (`--listen`), forwarding to the configured upstream
//! address, and one per other upstream broker address, bound the first time a response names
//! that address, on the bootstrap listener's IP with a port the system chooses. Each accepted
//! connection is forwarded to its listener's upstream address.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;

use super::Proxy;

/// An upstream broker's address as its responses (or the command line) write it.
pub use crate::HostPort as Upstream;

/// Most listeners the proxy binds: a response naming more broker addresses than this leaves
/// the rest as they are (and says so), rather than binding whatever number upstream sends.
pub(super) const MAX_LISTENERS: usize = 256;

/// The listeners bound so far, bootstrap first.
pub(super) struct Listeners {
    ip: IpAddr,
    bound: Mutex<Vec<(SocketAddr, Upstream)>>,
}

impl Listeners {
    pub fn new(bootstrap: SocketAddr, upstream: Upstream) -> Listeners {
        Listeners {
            ip: bootstrap.ip(),
            bound: Mutex::new(vec![(bootstrap, upstream)]),
        }
    }

    /// Every listener and the upstream address it forwards to.
    pub fn all(&self) -> Vec<(SocketAddr, Upstream)> {
        self.bound.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Proxy {
    /// The listener that forwards to `upstream`: the one already bound for that address (the
    /// bootstrap listener when it is the configured one), else a new one, accepting from now
    /// on. `Err` says why none could be bound.
    pub(super) fn listener_for(
        self: &Arc<Self>,
        upstream: &Upstream,
    ) -> Result<SocketAddr, String> {
        let mut bound = self
            .listeners
            .bound
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((addr, _)) = bound.iter().find(|(_, u)| u == upstream) {
            return Ok(*addr);
        }
        if bound.len() >= MAX_LISTENERS {
            return Err(format!(
                "no listener for {upstream}: already {MAX_LISTENERS} listeners"
            ));
        }
        let any_port = SocketAddr::new(self.listeners.ip, 0);
        let listener = std::net::TcpListener::bind(any_port)
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .and_then(TcpListener::from_std)
            .map_err(|e| {
                format!(
                    "no listener for {upstream}: {}",
                    crate::bind_error(any_port, &e)
                )
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("no listener for {upstream}: {e}"))?;
        tracing::info!(%addr, %upstream, "proxy listener bound for an upstream broker");
        bound.push((addr, upstream.clone()));
        tokio::spawn(accept_loop(listener, upstream.clone(), self.clone()));
        Ok(addr)
    }
}

/// Accepts connections for one upstream address until shutdown; each is forwarded on its own
/// task.
pub(super) async fn accept_loop(listener: TcpListener, upstream: Upstream, proxy: Arc<Proxy>) {
    let shutdown = proxy.shutdown.clone();
    let store = proxy.store.clone();
    tracing::debug!(%upstream, "accepting");
    crate::server::accept_each(listener, &store, shutdown, |stream, peer, id| {
        let (upstream, proxy) = (upstream.clone(), proxy.clone());
        tokio::spawn(super::conn::serve(stream, peer, id, upstream, proxy));
    })
    .await
}
