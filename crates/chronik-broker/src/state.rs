//! What the broker's parts share: [`Shared`] (configuration, topics, groups, settings, the
//! capture store, producer ids and fetch sessions), one per broker, and [`Conn`], one per
//! connection. The connection task (`server`) and the handlers both work on these; the handlers
//! never reach into the connection task.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use super::groups::{GroupConfig, GroupCoordinator};
use super::topics::Topics;
use super::txn::TxnCoordinator;
use super::BrokerConfig;
use crate::settings::{ClientIdentity, PlacementUsed, Settings};
use chronik_capture::{ClientId, Endpoints, Store};

/// Everything the connections share.
pub(crate) struct Shared {
    pub config: BrokerConfig,
    /// host and port written into Metadata, FindCoordinator and DescribeCluster (`None`: the
    /// address the client connected to, when listening on an unspecified address such as
    /// 0.0.0.0).
    pub advertised: Option<(String, u16)>,
    pub topics: Topics,
    pub groups: Arc<GroupCoordinator>,
    pub settings: Arc<Settings>,
    pub store: Arc<Store>,
    /// Bumped after every append; long-polling fetches wait on it.
    pub appended: watch::Sender<u64>,
    pub next_producer_id: AtomicI64,
    /// The transaction coordinator (transactional ids and their transactions).
    pub txns: TxnCoordinator,
    pub sessions: Mutex<FetchSessions>,
    pub cluster_id: String,
}

impl Shared {
    /// Opens the topics (and their logs) and the group coordinator from the data directory, if
    /// any; producer ids continue above the highest one the logs hold (from 1000 at least).
    pub fn new(
        config: BrokerConfig,
        bound: SocketAddr,
        store: Arc<Store>,
        settings: Arc<Settings>,
    ) -> anyhow::Result<Arc<Shared>> {
        let topics = Topics::open(config.data_dir.as_deref(), config.fsync)?;
        let max_pid = topics
            .all()
            .iter()
            .flat_map(|t| {
                let parts = t.partitions.read().unwrap_or_else(|e| e.into_inner());
                parts
                    .iter()
                    .map(|p| {
                        p.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .max_producer_id()
                    })
                    .collect::<Vec<_>>()
            })
            .max()
            .unwrap_or(-1);
        let groups = GroupCoordinator::with_config(
            config.data_dir.as_ref().map(|d| d.join("groups")),
            GroupConfig {
                consumer_session_timeout: Duration::from_millis(config.consumer_session_timeout_ms),
                consumer_heartbeat_interval: Duration::from_millis(
                    config.consumer_heartbeat_interval_ms,
                ),
                sync_writes: config.fsync != crate::log::Fsync::Never,
                ..GroupConfig::default()
            },
        )?;
        let txns = TxnCoordinator::open(
            config.data_dir.as_deref(),
            config.fsync != crate::log::Fsync::Never,
        )?;
        txns.recover(&topics, &groups);
        let max_pid = max_pid.max(txns.max_producer_id());
        let advertised = config.advertise.clone().or_else(|| {
            (!bound.ip().is_unspecified()).then(|| (bound.ip().to_string(), bound.port()))
        });
        let (appended, _) = watch::channel(0);
        Ok(Arc::new(Shared {
            config,
            advertised,
            topics,
            groups,
            settings,
            store,
            appended,
            next_producer_id: AtomicI64::new((max_pid + 1).max(1000)),
            txns,
            sessions: Mutex::new(FetchSessions::default()),
            cluster_id: "chronik-tui-cluster".into(),
        }))
    }
}

/// Per-connection state.
pub(crate) struct Conn {
    pub id: u64,
    pub peer: SocketAddr,
    /// The broker's end of the connection.
    pub local: Option<SocketAddr>,
    /// Both ends, shared by the connection's exchanges.
    pub endpoints: Arc<Endpoints>,
    /// The client id of the latest request header, shared by the exchanges that carry it.
    pub client_id: Option<ClientId>,
    /// The peer's IP address alone (DescribeGroups shows it as the member's host).
    pub peer_ip: String,
    /// client_software_name and version from ApiVersions v3+.
    pub client_software: Option<(String, String)>,
    pub authenticated: bool,
    /// host and port this connection's client is told to use.
    pub advertised: (String, u16),
    /// After SaslHandshake v0 the next frame is a bare SASL token.
    pub raw_sasl_next: bool,
    /// What is known of the client (client id of the latest request header, software from
    /// ApiVersions v3+); per-client placement rules match on it.
    pub identity: ClientIdentity,
    /// The placement the handler encoded the current ProduceResponse with, for the exchange.
    pub placement_used: Option<PlacementUsed>,
    /// The version caps in force when this connection's ApiVersions was answered (None before).
    pub advertised_caps: Option<std::collections::BTreeMap<i16, i16>>,
    /// Requests each `close after N` fault rule (by rule id) has matched on this connection.
    pub fault_counts: HashMap<u64, u64>,
}

impl Conn {
    /// A new connection's state: nothing known of the client yet; `advertised` is what its
    /// Metadata names, `authenticated` whether it may skip SASL.
    pub fn new(
        id: u64,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        advertised: (String, u16),
        authenticated: bool,
    ) -> Conn {
        Conn {
            id,
            peer,
            local,
            endpoints: Endpoints::shared(peer, local),
            client_id: None,
            peer_ip: peer.ip().to_string(),
            client_software: None,
            authenticated,
            advertised,
            raw_sasl_next: false,
            identity: ClientIdentity::default(),
            placement_used: None,
            advertised_caps: None,
            fault_counts: HashMap::new(),
        }
    }
}

/// One partition of a fetch session: where the next read starts and how much it may return.
#[derive(Debug, Clone)]
pub(crate) struct SessionPartition {
    pub topic_id: Uuid,
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// (high watermark, log start) last sent, to decide what an incremental response carries.
    pub last_sent: Option<(i64, i64)>,
}

/// An incremental fetch session (KIP-227).
#[derive(Debug, Default)]
pub(crate) struct FetchSession {
    /// The epoch the next request must carry.
    pub next_epoch: i32,
    pub partitions: BTreeMap<(String, i32), SessionPartition>,
}

/// All fetch sessions.
#[derive(Debug, Default)]
pub(crate) struct FetchSessions {
    next_id: i32,
    pub map: HashMap<i32, FetchSession>,
}

/// Most partitions one fetch session caches.
pub(crate) const MAX_SESSION_PARTITIONS: usize = 10_000;

/// Most sessions kept; the oldest id is dropped beyond this.
const MAX_SESSIONS: usize = 1000;

impl FetchSessions {
    /// Keeps a new session under a new id (dropping the oldest beyond [`MAX_SESSIONS`]) and
    /// returns the id.
    pub fn create(&mut self, session: FetchSession) -> i32 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let id = self.next_id;
        if self.map.len() >= MAX_SESSIONS {
            if let Some(&old) = self.map.keys().min() {
                self.map.remove(&old);
            }
        }
        self.map.insert(id, session);
        id
    }
}
