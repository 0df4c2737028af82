//! The group coordinator: Kafka's classic consumer-group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, session expiry and rebalancing) and committed offsets (OffsetCommit,
//! OffsetFetch), plus DescribeGroups, ListGroups and DeleteGroups.
//!
//! How it works:
//! - All groups live in one map behind a `std::sync::Mutex` that is only held for short,
//!   non-awaiting sections. A JoinGroup or SyncGroup that has to wait for other members parks
//!   a `oneshot` sender in the member and awaits the receiver after the lock is released, so
//!   waiting requests never block other groups or connections.
//! - A background tokio task (started on the first call) sleeps until the earliest deadline
//!   (session expiry, pending member expiry, rebalance timeout, end of the initial rebalance
//!   delay) and then applies it.
//! - Group states are Kafka's: Empty, PreparingRebalance, CompletingRebalance, Stable (Dead is
//!   what DescribeGroups reports for a group that does not exist; deleted groups are removed).
//! - A rebalance completes when every member has rejoined (and no member id handed out with
//!   MEMBER_ID_REQUIRED is still outstanding) or when the largest rebalance timeout of the
//!   members passes; members that did not rejoin are then removed.
//! - A group that was Empty waits [`GroupConfig::initial_rebalance_delay`] before completing
//!   its first rebalance (Kafka's `group.initial.rebalance.delay.ms`, 3000 ms there; 100 ms by
//!   default here so tests stay fast), extended by the same delay whenever another member joins,
//!   up to the rebalance timeout, so consumers that start together land in one generation.
//! - With a data directory, committed offsets are appended to `offsets.log` there (see
//!   `offset_log.rs`) and replayed when the coordinator is created again.
//!
//! JoinGroup ([`GroupCoordinator::join_group_from`]) is told who is joining: the request
//! header's client id and the peer address. Generated member ids start with the client id
//! (`"-" + uuid` for an empty one, as Kafka does) and DescribeGroups shows both.
//!
//! Deliberate differences from Kafka:
//! - OffsetCommit with a negative generation id (a "simple" commit from a client that does not
//!   use group management) is accepted whatever the state of the group; Kafka accepts it only
//!   while the group is Empty.
//! - `retention_time_ms` is ignored and offsets never expire; Empty groups stay listed until
//!   DeleteGroups.
//! - Only offsets and each group's protocol type are persisted. Members, generation and
//!   assignments live in memory: after a restart members get UNKNOWN_MEMBER_ID and rejoin,
//!   and generations start again at 1.
//! - Static members (`group_instance_id`) are accepted, never get MEMBER_ID_REQUIRED, and are
//!   fenced by instance id; a static follower that rejoins unchanged while the group is Stable
//!   gets the current generation back without a rebalance (as in Kafka), a static leader
//!   triggers a rebalance (JoinGroup v9's skip_assignment is never used).
//! - Kafka's per-member "pending sync" timeout is not implemented: a member that got its join
//!   answer but never syncs is removed by its session timeout instead.
//! - Offsets sent in a transaction (TxnOffsetCommit) are held by the transaction coordinator
//!   (`crate::txn`) and committed here only when the transaction commits; OffsetFetch's
//!   `require_stable` (v7+) is answered by the handler from what the coordinator holds.
//!
//! The consumer group protocol of KIP-848 (ConsumerGroupHeartbeat, ConsumerGroupDescribe) is in
//! `consumer/`; its groups share the map, the offsets and their persistence with classic ones.
//!
//! Where things are: the state machine knows no wire messages — `group.rs` (one group and its
//! members), `rebalance.rs` (the rebalance rules and deadlines), `membership.rs` (join, sync,
//! heartbeat, leave) and `offsets.rs` (commit, fetch, delete groups), with `offset_log.rs`
//! for persistence; `wire.rs` turns each request at its version into calls on it and the
//! answers into responses.

pub(crate) mod consumer;
mod group;
mod membership;
mod offset_delete;
pub(crate) mod offset_log;
mod offsets;
mod rebalance;
#[cfg(test)]
mod tests;
mod txn;
mod wire;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub use consumer::{TopicImage, TopicMeta};
use group::Group;
pub use group::{ClientInfo, GroupSnapshot, GroupState};
use offset_log::OffsetLog;
use rebalance::Rules;

/// Kafka's error codes (`ec::REBALANCE_IN_PROGRESS`...): the protocol's one table.
use chronik_protocol::errors as ec;

/// Behaviour knobs of the coordinator.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// How long a group that was Empty waits for more members before completing its first
    /// rebalance (Kafka: `group.initial.rebalance.delay.ms`, 3000 ms; default here 100 ms).
    /// Zero completes as soon as every known member has joined.
    pub initial_rebalance_delay: Duration,
    /// Smallest session timeout a member may ask for (Kafka: `group.min.session.timeout.ms`,
    /// 6000 ms).
    pub min_session_timeout: Duration,
    /// Largest session timeout a member may ask for (Kafka: `group.max.session.timeout.ms`,
    /// 1800000 ms).
    pub max_session_timeout: Duration,
    /// Longest commit metadata accepted (Kafka: `offset.metadata.max.bytes`, 4096).
    pub max_metadata_bytes: usize,
    /// How long a member of a consumer group (KIP-848) may go without a heartbeat before it is
    /// removed (Kafka: `group.consumer.session.timeout.ms`, 45000 ms).
    pub consumer_session_timeout: Duration,
    /// The heartbeat interval told to consumer group members (Kafka:
    /// `group.consumer.heartbeat.interval.ms`, 5000 ms).
    pub consumer_heartbeat_interval: Duration,
    /// Flush `offsets.log` to stable storage (`fdatasync`) after every write (`--fsync`
    /// interval or always), not only hand it to the OS.
    pub sync_writes: bool,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(100),
            min_session_timeout: Duration::from_millis(6_000),
            max_session_timeout: Duration::from_millis(1_800_000),
            max_metadata_bytes: 4096,
            consumer_session_timeout: Duration::from_millis(45_000),
            consumer_heartbeat_interval: Duration::from_millis(5_000),
            sync_writes: false,
        }
    }
}

/// The coordinator's state: every group behind one mutex held only for short, non-awaiting
/// sections, the offsets log, and the wake-up of the deadline task.
struct Inner {
    config: GroupConfig,
    groups: Mutex<HashMap<String, Group>>,
    log: Mutex<Option<OffsetLog>>,
    wake: Arc<Notify>,
    driver_started: AtomicBool,
}

impl Inner {
    fn groups(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn rules(&self) -> Rules<'_> {
        Rules {
            config: &self.config,
            wake: &self.wake,
            log: &self.log,
        }
    }

    fn tick(&self, now: Instant) -> Option<Instant> {
        let rules = self.rules();
        let mut groups = self.groups();
        let mut next: Option<Instant> = None;
        for group in groups.values_mut() {
            let due = match group.consumer.as_deref_mut() {
                Some(cg) => cg.tick(&group.id, now, &self.config),
                None => rules.tick(group, now),
            };
            if let Some(t) = due {
                if next.is_none_or(|n| t < n) {
                    next = Some(t);
                }
            }
        }
        next
    }
}

/// The background task: applies deadlines as they pass; ends when the coordinator is dropped.
async fn drive(inner: Weak<Inner>, wake: Arc<Notify>) {
    const IDLE: Duration = Duration::from_secs(1);
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            inner.tick(Instant::now())
        };
        let limit = Instant::now() + IDLE;
        let until = next.map_or(limit, |n| n.min(limit));
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = wake.notified() => {}
        }
    }
}

/// Consumer groups and their committed offsets.
pub struct GroupCoordinator {
    inner: Arc<Inner>,
}

impl GroupCoordinator {
    /// A coordinator with the default [`GroupConfig`]; with a data directory, committed offsets
    /// survive a restart (`offsets.log` in that directory).
    pub fn new(data_dir: Option<PathBuf>) -> anyhow::Result<Arc<GroupCoordinator>> {
        GroupCoordinator::with_config(data_dir, GroupConfig::default())
    }

    /// A coordinator with explicit knobs.
    pub fn with_config(
        data_dir: Option<PathBuf>,
        config: GroupConfig,
    ) -> anyhow::Result<Arc<GroupCoordinator>> {
        let mut groups = HashMap::new();
        let log = match &data_dir {
            Some(dir) => {
                let (log, live, recovery) = OffsetLog::open(dir, config.sync_writes)?;
                tracing::info!(
                    path = %log.path().display(),
                    records = recovery.records,
                    dropped_tail_bytes = recovery.dropped_tail_bytes,
                    compacted = recovery.compacted,
                    groups = live.len(),
                    "group coordinator: committed offsets loaded"
                );
                for (group_id, logged) in live {
                    let mut group = Group::new(group_id.clone());
                    group.protocol_type = logged.protocol_type;
                    group.offsets = logged.offsets;
                    groups.insert(group_id, group);
                }
                Some(log)
            }
            None => None,
        };
        let coordinator = Arc::new(GroupCoordinator {
            inner: Arc::new(Inner {
                config,
                groups: Mutex::new(groups),
                log: Mutex::new(log),
                wake: Arc::new(Notify::new()),
                driver_started: AtomicBool::new(false),
            }),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            coordinator.ensure_driver();
        }
        Ok(coordinator)
    }

    /// A view of every group, sorted by id.
    pub fn snapshot(&self) -> Vec<GroupSnapshot> {
        let groups = self.inner.groups();
        let mut out: Vec<GroupSnapshot> = groups.values().map(Group::snapshot).collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Starts the deadline task (see [`drive`]) on the first call; it needs a tokio runtime.
    fn ensure_driver(&self) {
        if self.inner.driver_started.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(drive(
            Arc::downgrade(&self.inner),
            Arc::clone(&self.inner.wake),
        ));
    }
}
