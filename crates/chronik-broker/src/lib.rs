//! The embedded Kafka-compatible broker: a tokio accept loop with one task per connection,
//! handlers by API, partition logs, the group coordinator and producer-id state. Every exchange
//! is pushed to the capture store; behaviour knobs come from the shared settings.
//!
//! Where things are: `server.rs` accepts connections and runs each one (framing, checking,
//! capturing, answering); `handlers/` answers each API, one module per family; `state.rs` holds
//! what both work on (`Shared`, one per broker, and `Conn`, one per connection), so the
//! handlers never depend on the connection task. `inject.rs` is what the mutation and fault
//! rules do to an exchange (the connection task calls it; `handlers/fault.rs` builds the
//! `error` fault's answers). `topics.rs` and `log/` keep the topics and their partition logs
//! (`topic_config.rs`: the topic configs, their checks and effects; `housekeeping.rs`: the
//! background retention and fsync), `groups/` is the group coordinator. `settings/` holds the knobs a run turns while clients
//! talk (placement, rules, caps, throttle, mutations, faults, stall thresholds). `proxy/` is
//! the other source: chronik-tui in front of a broker it does not run, forwarding and capturing
//! each exchange through the same request check and `inject.rs`.
#![forbid(unsafe_code)]

pub mod frame;
pub mod groups;
mod handlers;
mod housekeeping;
mod inject;
pub mod log;
pub mod proxy;
mod server;
pub mod settings;
mod state;
pub mod topic_config;
pub mod topics;
mod txn;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::settings::Settings;
use chronik_capture::Store;

/// A host and a port as a command line or a Kafka response writes them, the host without
/// brackets; shown as `host:port`, or `[host]:port` for an IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How the broker is set up at start (runtime knobs live in [`Settings`]).
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// host:port advertised in Metadata, FindCoordinator and DescribeCluster (default: the bound
    /// address; on 0.0.0.0 or ::, the address each client connected to).
    pub advertise: Option<(String, u16)>,
    /// Largest request frame accepted, checked before allocating.
    pub max_frame_bytes: usize,
    /// Keep partition logs in segment files under this directory (else in memory).
    pub data_dir: Option<PathBuf>,
    /// SASL/PLAIN credentials; when set, clients must authenticate.
    pub sasl_plain: Option<(String, String)>,
    /// Create unknown topics on Metadata/Produce.
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic.
    pub default_partitions: i32,
    /// Broker node id.
    pub node_id: i32,
    /// When partition logs are flushed to stable storage (`--fsync`).
    pub fsync: log::Fsync,
    /// With [`log::Fsync::Interval`]: how often logs with unsynced writes are flushed.
    pub fsync_interval: std::time::Duration,
    /// How often retention is checked (Kafka's `log.retention.check.interval.ms`, 5 min).
    pub retention_check_interval: std::time::Duration,
    /// Consumer groups of the KIP-848 protocol: how long a member may go without a heartbeat
    /// (Kafka's `group.consumer.session.timeout.ms`, 45000) and the heartbeat interval members
    /// are told (`group.consumer.heartbeat.interval.ms`, 5000), in ms.
    pub consumer_session_timeout_ms: u64,
    pub consumer_heartbeat_interval_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertise: None,
            max_frame_bytes: chronik_protocol::frame::DEFAULT_MAX_FRAME_BYTES,
            data_dir: None,
            sasl_plain: None,
            auto_create_topics: true,
            default_partitions: 1,
            node_id: 1,
            fsync: log::Fsync::Never,
            fsync_interval: std::time::Duration::from_millis(1000),
            retention_check_interval: std::time::Duration::from_millis(300_000),
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
        }
    }
}

/// A running broker.
pub struct BrokerHandle {
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    accept_task: tokio::task::JoinHandle<()>,
    /// Ends (yields `None`) once every connection's task has ended.
    serving_done: tokio::sync::mpsc::Receiver<()>,
    shared: Arc<state::Shared>,
}

/// One topic as the views see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSummary {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: uuid::Uuid,
    /// (log start offset, high watermark, bytes held) per partition.
    pub partitions: Vec<(i64, i64, usize)>,
    /// Configs set on the topic (defaults not included).
    pub configs: std::collections::BTreeMap<String, String>,
}

impl BrokerHandle {
    /// The topics with their partitions' offsets, by name.
    pub fn topics(&self) -> Vec<TopicSummary> {
        self.shared
            .topics
            .all()
            .iter()
            .map(|t| TopicSummary {
                name: t.name.clone(),
                id: t.id,
                partitions: t
                    .partitions
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|p| {
                        let log = p.lock().unwrap_or_else(|e| e.into_inner());
                        (log.start_offset(), log.end_offset(), log.size_bytes())
                    })
                    .collect(),
                configs: t.configs(),
            })
            .collect()
    }

    /// Creates a topic with `partitions` partitions and no configs (`Ok` too when it exists).
    pub fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<()> {
        self.shared
            .topics
            .create(name, partitions, std::collections::BTreeMap::new())
            .map(|_| ())
    }

    /// Stops accepting connections and closes the open ones (their pending requests are
    /// captured as unanswered).
    /// Stops accepting, tells every connection to end, and waits (at most 5 s) until each has
    /// finished the request it was serving and captured it, so that a recording stopped after
    /// this holds every exchange the clients saw answered.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let _ = self.accept_task.await;
        let all_ended = self.serving_done.recv();
        if tokio::time::timeout(std::time::Duration::from_secs(5), all_ended)
            .await
            .is_err()
        {
            tracing::warn!("connections still open 5 s after shutdown; not waiting for them");
        }
    }
}

/// Binds and starts serving in the background.
pub async fn start(
    config: BrokerConfig,
    store: Arc<Store>,
    settings: Arc<Settings>,
) -> anyhow::Result<BrokerHandle> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!(bind_error(config.listen, &e)))?;
    let local_addr = listener.local_addr()?;
    let data_dir = config.data_dir.clone();
    let shared =
        state::Shared::new(config, local_addr, store, settings).map_err(|e| match &data_dir {
            Some(d) => e.context(format!("data directory {}", d.display())),
            None => e,
        })?;
    tokio::spawn(txn::drive(Arc::downgrade(&shared)));
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(housekeeping::run(shared.clone(), shutdown_rx.clone()));
    let (serving, serving_done) = tokio::sync::mpsc::channel(1);
    let accept_task = tokio::spawn(server::accept_loop(
        listener,
        shared.clone(),
        shutdown_rx,
        serving,
    ));
    Ok(BrokerHandle {
        local_addr,
        shutdown,
        accept_task,
        serving_done,
        shared,
    })
}

/// Why an address cannot be listened on, in one line that names it.
pub fn bind_error(addr: SocketAddr, e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::AddrInUse => format!("{addr} is already in use (another broker?)"),
        ErrorKind::PermissionDenied => format!(
            "{addr}: permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)"
        ),
        ErrorKind::AddrNotAvailable => format!("{addr}: not an address of this machine"),
        _ => format!("{addr}: {e}"),
    }
}
