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
//!   [`offset_log`]) and replayed when the coordinator is created again.
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
//! - `require_stable` (OffsetFetch v7+) is ignored: there are no pending transactional offsets.

mod group;
pub(crate) mod offset_log;
mod rebalance;
#[cfg(test)]
mod tests;

pub use group::{ClientInfo, GroupSnapshot, GroupState};
use group::{Group, JoinOutcome, Member, SyncOutcome};
use rebalance::Rules;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use offset_log::{CommittedOffset, LogRecord, OffsetLog};

/// Kafka error codes used by the coordinator: the protocol's one table.
pub use crate::protocol::errors as error_code;
use error_code as ec;

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
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(100),
            min_session_timeout: Duration::from_millis(6_000),
            max_session_timeout: Duration::from_millis(1_800_000),
            max_metadata_bytes: 4096,
        }
    }
}

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
            if let Some(t) = rules.tick(group, now) {
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A random (version 4 layout) UUID in text form, from the standard library's per-process
/// random hash keys, a counter and the clock.
fn random_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let state = std::collections::hash_map::RandomState::new();
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = state.build_hasher();
        h.write_u64(n);
        h.write_usize(i);
        h.write_u128(nanos);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Committed offsets by topic, then partition (`None`: nothing committed).
type TopicOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

fn str_of(s: &StrBytes) -> String {
    s.to_string()
}

fn opt_str(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(str_of)
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
                let (log, live, recovery) = OffsetLog::open(dir)?;
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

    fn ensure_driver(&self) {
        if self.inner.driver_started.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(drive(
            Arc::downgrade(&self.inner),
            Arc::clone(&self.inner.wake),
        ));
    }

    /// JoinGroup (v0-v9). v4+ members joining with an empty member id get MEMBER_ID_REQUIRED
    /// and a generated id (`client_id-uuid`) to rejoin with; the answer otherwise waits until
    /// the rebalance completes.
    pub async fn join_group_from(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client: ClientInfo,
    ) -> JoinGroupResponse {
        self.ensure_driver();
        let waiting = self.join_locked(&req, version, client);
        let outcome = match waiting {
            Ok(outcome) => outcome,
            Err(rx) => rx.await.unwrap_or_else(|_| {
                JoinOutcome::error(ec::COORDINATOR_NOT_AVAILABLE, &str_of(&req.member_id))
            }),
        };
        outcome.into_response(version)
    }

    /// The locked part of JoinGroup: an immediate answer, or a receiver to await.
    fn join_locked(
        &self,
        req: &JoinGroupRequest,
        version: i16,
        client: ClientInfo,
    ) -> Result<JoinOutcome, oneshot::Receiver<JoinOutcome>> {
        let now = Instant::now();
        let group_id = str_of(&req.group_id);
        let member_id = str_of(&req.member_id);
        let instance_id = if version >= 5 {
            opt_str(&req.group_instance_id)
        } else {
            None
        };
        let fail = |code| Ok(JoinOutcome::error(code, &member_id));
        if group_id.is_empty() {
            return fail(ec::INVALID_GROUP_ID);
        }
        let session_timeout = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        let config = &self.inner.config;
        if req.session_timeout_ms < 0
            || session_timeout < config.min_session_timeout
            || session_timeout > config.max_session_timeout
        {
            return fail(ec::INVALID_SESSION_TIMEOUT);
        }
        if let Some(reason) = req.reason.as_ref().filter(|_| version >= 8) {
            tracing::info!(group = %group_id, member = %member_id, reason = %reason.as_str(), "group: join reason");
        }
        let rebalance_timeout = if version >= 1 && req.rebalance_timeout_ms >= 0 {
            Duration::from_millis(req.rebalance_timeout_ms as u64)
        } else {
            session_timeout
        };
        let protocol_type = str_of(&req.protocol_type);
        let protocols: Vec<(String, Bytes)> = req
            .protocols
            .iter()
            .map(|p| (str_of(&p.name), p.metadata.clone()))
            .collect();

        let rules = self.inner.rules();
        let mut groups = self.inner.groups();
        if !groups.contains_key(&group_id) {
            if !member_id.is_empty() {
                return fail(ec::UNKNOWN_MEMBER_ID);
            }
            if protocol_type.is_empty() || protocols.is_empty() {
                return fail(ec::INCONSISTENT_GROUP_PROTOCOL);
            }
            groups.insert(group_id.clone(), Group::new(group_id.clone()));
        }
        let Some(group) = groups.get_mut(&group_id) else {
            return fail(ec::COORDINATOR_NOT_AVAILABLE);
        };
        if group.state == GroupState::Dead {
            return fail(ec::COORDINATOR_NOT_AVAILABLE);
        }
        if !group.supports_protocols(&member_id, &protocol_type, &protocols) {
            return fail(ec::INCONSISTENT_GROUP_PROTOCOL);
        }

        let (tx, rx) = oneshot::channel();
        let make_member = |id: String| Member {
            id,
            instance_id: instance_id.clone(),
            client: client.clone(),
            session_timeout,
            rebalance_timeout,
            protocol_type: protocol_type.clone(),
            protocols: protocols.clone(),
            assignment: Bytes::new(),
            last_seen: now,
            join_waiter: None,
            sync_waiter: None,
        };

        if member_id.is_empty() {
            let new_id = format!("{}-{}", client.client_id, random_uuid());
            if let Some(instance) = &instance_id {
                if let Some(old) = group
                    .members
                    .iter_mut()
                    .find(|m| m.instance_id.as_deref() == Some(instance.as_str()))
                {
                    // A static member restarted: the new id replaces the old one, which is
                    // fenced from now on.
                    tracing::info!(group = %group_id, old = %old.id, new = %new_id, instance = %instance, "group: static member rejoined");
                    let was_leader = group.leader.as_deref() == Some(old.id.as_str());
                    old.answer_join(JoinOutcome::error(ec::FENCED_INSTANCE_ID, &old.id));
                    old.answer_sync(SyncOutcome::error(ec::FENCED_INSTANCE_ID));
                    old.id = new_id.clone();
                    old.client = client.clone();
                    if was_leader {
                        group.leader = Some(new_id.clone());
                    }
                    return self.update_known_member(
                        &rules,
                        group,
                        &new_id,
                        protocols,
                        session_timeout,
                        rebalance_timeout,
                        tx,
                        rx,
                        now,
                    );
                }
            } else if version >= 4 {
                group.pending.insert(new_id.clone(), now + session_timeout);
                self.inner.wake.notify_one();
                tracing::debug!(group = %group_id, member = %new_id, "group: member id required");
                return Ok(JoinOutcome::error(ec::MEMBER_ID_REQUIRED, &new_id));
            }
            let mut member = make_member(new_id);
            member.join_waiter = Some(tx);
            Self::add_member_and_rebalance(&rules, group, member, now);
            return Err(rx);
        }

        if group.pending.remove(&member_id).is_some() {
            let mut member = make_member(member_id);
            member.join_waiter = Some(tx);
            Self::add_member_and_rebalance(&rules, group, member, now);
            return Err(rx);
        }
        if group.instance_fenced(&member_id, instance_id.as_deref()) {
            return fail(ec::FENCED_INSTANCE_ID);
        }
        if group.member_index(&member_id).is_none() {
            return fail(ec::UNKNOWN_MEMBER_ID);
        }
        if let Some(member) = group.member_mut(&member_id) {
            member.client = client;
            member.protocol_type = protocol_type;
        }
        self.update_known_member(
            &rules,
            group,
            &member_id,
            protocols,
            session_timeout,
            rebalance_timeout,
            tx,
            rx,
            now,
        )
    }

    fn add_member_and_rebalance(
        rules: &Rules<'_>,
        group: &mut Group,
        member: Member,
        now: Instant,
    ) {
        if group.members.is_empty()
            && group.protocol_type.as_deref() != Some(member.protocol_type.as_str())
        {
            group.protocol_type = Some(member.protocol_type.clone());
            rules.record_group_type(&group.id, &member.protocol_type);
        }
        if group.leader.is_none() {
            group.leader = Some(member.id.clone());
        }
        tracing::info!(group = %group.id, member = %member.id, client = %member.client.client_id, "group: member joined");
        group.members.push(member);
        if group.state == GroupState::PreparingRebalance {
            if let Some(delay) = group
                .rebalance
                .as_mut()
                .and_then(|r| r.initial_delay.as_mut())
            {
                delay.new_members = true;
            }
        } else {
            rules.prepare_rebalance(group, now, "member joined");
        }
        rules.try_complete_join(group, now);
    }

    #[allow(clippy::too_many_arguments)]
    fn update_known_member(
        &self,
        rules: &Rules<'_>,
        group: &mut Group,
        member_id: &str,
        protocols: Vec<(String, Bytes)>,
        session_timeout: Duration,
        rebalance_timeout: Duration,
        tx: oneshot::Sender<JoinOutcome>,
        rx: oneshot::Receiver<JoinOutcome>,
        now: Instant,
    ) -> Result<JoinOutcome, oneshot::Receiver<JoinOutcome>> {
        let is_leader = group.is_leader(member_id);
        let state = group.state;
        let Some(member) = group.member_mut(member_id) else {
            return Ok(JoinOutcome::error(ec::UNKNOWN_MEMBER_ID, member_id));
        };
        member.last_seen = now;
        member.session_timeout = session_timeout;
        member.rebalance_timeout = rebalance_timeout;
        let unchanged = member.protocols == protocols;
        match state {
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && (state == GroupState::CompletingRebalance || !is_leader) =>
            {
                Ok(group.current_join_outcome(member_id))
            }
            _ => {
                member.protocols = protocols;
                member.answer_join(JoinOutcome::error(ec::REBALANCE_IN_PROGRESS, member_id));
                member.join_waiter = Some(tx);
                if state != GroupState::PreparingRebalance {
                    rules.prepare_rebalance(
                        group,
                        now,
                        "member rejoined with changes or as leader",
                    );
                }
                rules.try_complete_join(group, now);
                Err(rx)
            }
        }
    }

    /// SyncGroup (v0-v5): the leader's assignment is stored and handed to every member; members
    /// that sync before the leader wait for it.
    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        self.ensure_driver();
        let outcome = match self.sync_locked(&req, version) {
            Ok(outcome) => outcome,
            Err(rx) => rx
                .await
                .unwrap_or_else(|_| SyncOutcome::error(ec::COORDINATOR_NOT_AVAILABLE)),
        };
        outcome.into_response(version)
    }

    fn sync_locked(
        &self,
        req: &SyncGroupRequest,
        version: i16,
    ) -> Result<SyncOutcome, oneshot::Receiver<SyncOutcome>> {
        let now = Instant::now();
        let group_id = str_of(&req.group_id);
        let member_id = str_of(&req.member_id);
        let instance_id = if version >= 3 {
            opt_str(&req.group_instance_id)
        } else {
            None
        };
        let fail = |code| Ok(SyncOutcome::error(code));
        if group_id.is_empty() {
            return fail(ec::INVALID_GROUP_ID);
        }
        let mut groups = self.inner.groups();
        let Some(group) = groups.get_mut(&group_id) else {
            return fail(ec::UNKNOWN_MEMBER_ID);
        };
        if group.instance_fenced(&member_id, instance_id.as_deref()) {
            return fail(ec::FENCED_INSTANCE_ID);
        }
        if group.member_index(&member_id).is_none() {
            return fail(ec::UNKNOWN_MEMBER_ID);
        }
        if req.generation_id != group.generation {
            return fail(ec::ILLEGAL_GENERATION);
        }
        if version >= 5 {
            let type_mismatch = req
                .protocol_type
                .as_ref()
                .is_some_and(|t| group.protocol_type.as_deref() != Some(t.as_str()));
            let name_mismatch = req
                .protocol_name
                .as_ref()
                .is_some_and(|n| group.protocol_name.as_deref() != Some(n.as_str()));
            if type_mismatch || name_mismatch {
                return fail(ec::INCONSISTENT_GROUP_PROTOCOL);
            }
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => fail(ec::UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => fail(ec::REBALANCE_IN_PROGRESS),
            GroupState::Stable => {
                let Some(member) = group.member_mut(&member_id) else {
                    return fail(ec::UNKNOWN_MEMBER_ID);
                };
                member.last_seen = now;
                let assignment = member.assignment.clone();
                Ok(group.sync_outcome(assignment))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let is_leader = group.is_leader(&member_id);
                if let Some(member) = group.member_mut(&member_id) {
                    member.last_seen = now;
                    member.answer_sync(SyncOutcome::error(ec::REBALANCE_IN_PROGRESS));
                    member.sync_waiter = Some(tx);
                }
                if is_leader {
                    let mut assignments: HashMap<String, Bytes> = req
                        .assignments
                        .iter()
                        .map(|a| (str_of(&a.member_id), a.assignment.clone()))
                        .collect();
                    for member in &mut group.members {
                        member.assignment = assignments.remove(&member.id).unwrap_or_default();
                    }
                    group.state = GroupState::Stable;
                    tracing::info!(group = %group.id, generation = group.generation, "group: stable");
                    let outcomes: Vec<SyncOutcome> = group
                        .members
                        .iter()
                        .map(|m| group.sync_outcome(m.assignment.clone()))
                        .collect();
                    for (member, outcome) in group.members.iter_mut().zip(outcomes) {
                        member.last_seen = now;
                        member.answer_sync(outcome);
                    }
                    self.inner.wake.notify_one();
                }
                Err(rx)
            }
        }
    }

    /// Heartbeat (v0-v4): keeps the session alive; REBALANCE_IN_PROGRESS tells the member to
    /// rejoin.
    pub async fn heartbeat(&self, req: HeartbeatRequest, version: i16) -> HeartbeatResponse {
        self.ensure_driver();
        let now = Instant::now();
        let group_id = str_of(&req.group_id);
        let member_id = str_of(&req.member_id);
        let instance_id = if version >= 3 {
            opt_str(&req.group_instance_id)
        } else {
            None
        };
        let error = {
            let mut groups = self.inner.groups();
            match groups.get_mut(&group_id) {
                _ if group_id.is_empty() => ec::INVALID_GROUP_ID,
                None => ec::UNKNOWN_MEMBER_ID,
                Some(group) if group.instance_fenced(&member_id, instance_id.as_deref()) => {
                    ec::FENCED_INSTANCE_ID
                }
                Some(group) => {
                    let generation = group.generation;
                    let state = group.state;
                    match group.member_mut(&member_id) {
                        None => ec::UNKNOWN_MEMBER_ID,
                        Some(_) if req.generation_id != generation => ec::ILLEGAL_GENERATION,
                        Some(member) => {
                            member.last_seen = now;
                            match state {
                                GroupState::Empty | GroupState::Dead => ec::UNKNOWN_MEMBER_ID,
                                GroupState::PreparingRebalance => ec::REBALANCE_IN_PROGRESS,
                                GroupState::CompletingRebalance | GroupState::Stable => ec::NONE,
                            }
                        }
                    }
                }
            }
        };
        let mut r = HeartbeatResponse::default();
        r.error_code = error;
        r
    }

    /// LeaveGroup: v0-v2 one member id, v3+ a list of members (by id or, v4+, instance id)
    /// with an error each. Leaving triggers a rebalance.
    pub async fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        self.ensure_driver();
        let now = Instant::now();
        let group_id = str_of(&req.group_id);
        if version >= 5 {
            for m in req.members.iter() {
                if let Some(reason) = &m.reason {
                    tracing::info!(group = %group_id, member = %m.member_id.as_str(), reason = %reason.as_str(), "group: leave reason");
                }
            }
        }
        let leaving: Vec<(String, Option<String>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| (str_of(&m.member_id), opt_str(&m.group_instance_id)))
                .collect()
        } else {
            vec![(str_of(&req.member_id), None)]
        };
        let mut top_error = ec::NONE;
        let mut results: Vec<(String, Option<String>, i16)> = Vec::new();
        if group_id.is_empty() {
            top_error = ec::INVALID_GROUP_ID;
        } else {
            let rules = self.inner.rules();
            let mut groups = self.inner.groups();
            match groups.get_mut(&group_id) {
                None => {
                    for (id, instance) in leaving {
                        results.push((id, instance, ec::UNKNOWN_MEMBER_ID));
                    }
                }
                Some(group) => {
                    for (id, instance) in leaving {
                        let error = Self::leave_one(&rules, group, &id, instance.as_deref(), now);
                        results.push((id, instance, error));
                    }
                }
            }
        }
        let mut r = LeaveGroupResponse::default();
        if version >= 3 {
            r.error_code = top_error;
            r.members = results
                .into_iter()
                .map(|(id, instance, error)| {
                    let mut m = MemberResponse::default();
                    m.member_id = StrBytes::from_string(id);
                    m.group_instance_id = instance.map(StrBytes::from_string);
                    m.error_code = error;
                    m
                })
                .collect();
        } else {
            r.error_code = if top_error != ec::NONE {
                top_error
            } else {
                results.first().map_or(ec::NONE, |(_, _, e)| *e)
            };
        }
        r
    }

    fn leave_one(
        rules: &Rules<'_>,
        group: &mut Group,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> i16 {
        if member_id.is_empty() {
            // Static member leaving by instance id.
            let Some(instance) = instance_id else {
                return ec::UNKNOWN_MEMBER_ID;
            };
            return match group
                .members
                .iter()
                .position(|m| m.instance_id.as_deref() == Some(instance))
            {
                Some(index) => {
                    rules.remove_member(group, index, now, "left the group");
                    ec::NONE
                }
                None => ec::UNKNOWN_MEMBER_ID,
            };
        }
        if group.pending.remove(member_id).is_some() {
            rules.try_complete_join(group, now);
            return ec::NONE;
        }
        if group.instance_fenced(member_id, instance_id) {
            return ec::FENCED_INSTANCE_ID;
        }
        match group.member_index(member_id) {
            Some(index) => {
                rules.remove_member(group, index, now, "left the group");
                ec::NONE
            }
            None => ec::UNKNOWN_MEMBER_ID,
        }
    }

    /// OffsetCommit (v0-v9). With generation_id >= 0 the member and generation are checked;
    /// a negative generation (simple commit, no group management) is always accepted.
    pub async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        self.ensure_driver();
        let now = Instant::now();
        let group_id = str_of(&req.group_id);
        let generation = if version >= 1 {
            req.generation_id_or_member_epoch
        } else {
            -1
        };
        let member_id = if version >= 1 {
            str_of(&req.member_id)
        } else {
            String::new()
        };
        let instance_id = if version >= 7 {
            opt_str(&req.group_instance_id)
        } else {
            None
        };
        let commit_time = now_ms();

        let mut groups = self.inner.groups();
        let group_error = if generation < 0 {
            ec::NONE
        } else {
            match groups.get_mut(&group_id) {
                None => ec::ILLEGAL_GENERATION,
                Some(group) if group.instance_fenced(&member_id, instance_id.as_deref()) => {
                    ec::FENCED_INSTANCE_ID
                }
                Some(group) => {
                    let (state, current) = (group.state, group.generation);
                    match group.member_mut(&member_id) {
                        None => ec::UNKNOWN_MEMBER_ID,
                        Some(_) if generation != current => ec::ILLEGAL_GENERATION,
                        Some(_) if state == GroupState::CompletingRebalance => {
                            ec::REBALANCE_IN_PROGRESS
                        }
                        Some(member) => {
                            member.last_seen = now;
                            ec::NONE
                        }
                    }
                }
            }
        };

        // Decide every partition's error, then write the accepted ones in one append.
        let mut decided: Vec<(String, Vec<(i32, i16)>)> = Vec::new();
        let mut records: Vec<LogRecord> = Vec::new();
        for topic in &req.topics {
            let name = str_of(&topic.name);
            let mut partitions = Vec::new();
            for p in &topic.partitions {
                let metadata = p
                    .committed_metadata
                    .as_ref()
                    .map(str_of)
                    .unwrap_or_default();
                let error = if group_error != ec::NONE {
                    group_error
                } else if metadata.len() > self.inner.config.max_metadata_bytes {
                    ec::OFFSET_METADATA_TOO_LARGE
                } else {
                    records.push(LogRecord::Commit {
                        group: group_id.clone(),
                        topic: name.clone(),
                        partition: p.partition_index,
                        committed: CommittedOffset {
                            offset: p.committed_offset,
                            leader_epoch: if version >= 6 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            metadata,
                            commit_time_ms: commit_time,
                        },
                    });
                    ec::NONE
                };
                partitions.push((p.partition_index, error));
            }
            decided.push((name, partitions));
        }
        let mut write_failed = false;
        if !records.is_empty() {
            let mut log = self.inner.log.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(log) = log.as_mut() {
                if let Err(e) = log.append(&records) {
                    tracing::error!(error = %e, group = %group_id, "offsets.log: append failed");
                    write_failed = true;
                }
            }
        }
        if !write_failed && !records.is_empty() {
            let group = groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(group_id.clone()));
            for record in records {
                if let LogRecord::Commit {
                    topic,
                    partition,
                    committed,
                    ..
                } = record
                {
                    group.offsets.insert((topic, partition), committed);
                }
            }
        }
        drop(groups);

        let mut r = OffsetCommitResponse::default();
        r.topics = decided
            .into_iter()
            .map(|(name, partitions)| {
                let mut t = OffsetCommitResponseTopic::default();
                t.name = TopicName(StrBytes::from_string(name));
                t.partitions = partitions
                    .into_iter()
                    .map(|(index, error)| {
                        let mut p = OffsetCommitResponsePartition::default();
                        p.partition_index = index;
                        p.error_code = if write_failed && error == ec::NONE {
                            ec::UNKNOWN_SERVER_ERROR
                        } else {
                            error
                        };
                        p
                    })
                    .collect();
                t
            })
            .collect();
        r
    }

    /// The committed offsets of a group: `None` topics = every committed partition; requested
    /// partitions without a commit get offset -1.
    fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> TopicOffsets {
        let groups = self.inner.groups();
        let offsets = groups.get(group_id).map(|g| &g.offsets);
        match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(|p| {
                            let c = offsets.and_then(|o| o.get(&(topic.clone(), p)).cloned());
                            (p, c)
                        })
                        .collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut out: TopicOffsets = Vec::new();
                for ((topic, partition), c) in offsets.into_iter().flatten() {
                    match out.last_mut() {
                        Some((t, list)) if t == topic => list.push((*partition, Some(c.clone()))),
                        _ => out.push((topic.clone(), vec![(*partition, Some(c.clone()))])),
                    }
                }
                out
            }
        }
    }

    /// OffsetFetch: v0-v7 one group, v8+ a list of groups.
    pub async fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        self.ensure_driver();
        let mut r = OffsetFetchResponse::default();
        if version >= 8 {
            r.groups = req
                .groups
                .iter()
                .map(|g| {
                    let topics = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (str_of(&t.name), t.partition_indexes.clone()))
                            .collect()
                    });
                    let mut out = OffsetFetchResponseGroup::default();
                    out.group_id = g.group_id.clone();
                    out.topics = self
                        .fetch_offsets(&str_of(&g.group_id), topics)
                        .into_iter()
                        .map(|(name, partitions)| {
                            let mut t = OffsetFetchResponseTopics::default();
                            t.name = TopicName(StrBytes::from_string(name));
                            t.partitions = partitions
                                .into_iter()
                                .map(|(index, c)| {
                                    let mut p = OffsetFetchResponsePartitions::default();
                                    p.partition_index = index;
                                    let c = c.unwrap_or(CommittedOffset {
                                        offset: -1,
                                        leader_epoch: -1,
                                        metadata: String::new(),
                                        commit_time_ms: -1,
                                    });
                                    p.committed_offset = c.offset;
                                    p.committed_leader_epoch = c.leader_epoch;
                                    p.metadata = Some(StrBytes::from_string(c.metadata));
                                    p.error_code = ec::NONE;
                                    p
                                })
                                .collect();
                            t
                        })
                        .collect();
                    out
                })
                .collect();
        } else {
            let topics = match &req.topics {
                Some(ts) => Some(
                    ts.iter()
                        .map(|t| (str_of(&t.name), t.partition_indexes.clone()))
                        .collect(),
                ),
                // Null means "all" only from v2; older requests cannot express it.
                None if version >= 2 => None,
                None => Some(Vec::new()),
            };
            r.topics = self
                .fetch_offsets(&str_of(&req.group_id), topics)
                .into_iter()
                .map(|(name, partitions)| {
                    let mut t = OffsetFetchResponseTopic::default();
                    t.name = TopicName(StrBytes::from_string(name));
                    t.partitions = partitions
                        .into_iter()
                        .map(|(index, c)| {
                            let mut p = OffsetFetchResponsePartition::default();
                            p.partition_index = index;
                            let (offset, epoch, metadata) = match c {
                                Some(c) => (c.offset, c.leader_epoch, c.metadata),
                                None => (-1, -1, String::new()),
                            };
                            p.committed_offset = offset;
                            p.committed_leader_epoch = if version >= 5 { epoch } else { -1 };
                            p.metadata = Some(StrBytes::from_string(metadata));
                            p.error_code = ec::NONE;
                            p
                        })
                        .collect();
                    t
                })
                .collect();
            r.error_code = ec::NONE;
        }
        r
    }

    /// DescribeGroups: state names as Kafka's; members carry metadata and assignment when the
    /// group is Stable. Unknown groups are reported as "Dead" with no error, as Kafka does.
    pub async fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        self.ensure_driver();
        let groups = self.inner.groups();
        let mut r = DescribeGroupsResponse::default();
        r.groups = req
            .groups
            .iter()
            .map(|id| {
                let mut d = DescribedGroup::default();
                d.group_id = id.clone();
                d.error_code = ec::NONE;
                d.authorized_operations = if version >= 3 && req.include_authorized_operations {
                    // READ (3), DELETE (6), DESCRIBE (8): no ACLs here, everything is allowed.
                    (1 << 3) | (1 << 6) | (1 << 8)
                } else {
                    i32::MIN
                };
                match groups.get(id.as_str()) {
                    None => {
                        d.group_state = StrBytes::from_static_str(GroupState::Dead.kafka_name());
                    }
                    Some(group) => {
                        let stable = group.state == GroupState::Stable;
                        let protocol = group.protocol_name.clone().unwrap_or_default();
                        d.group_state = StrBytes::from_static_str(group.state.kafka_name());
                        d.protocol_type =
                            StrBytes::from_string(group.protocol_type.clone().unwrap_or_default());
                        d.protocol_data = if stable {
                            StrBytes::from_string(protocol.clone())
                        } else {
                            StrBytes::default()
                        };
                        d.members = group
                            .members
                            .iter()
                            .map(|m| {
                                let mut dm = DescribedGroupMember::default();
                                dm.member_id = StrBytes::from_string(m.id.clone());
                                dm.group_instance_id = if version >= 4 {
                                    m.instance_id.clone().map(StrBytes::from_string)
                                } else {
                                    None
                                };
                                dm.client_id = StrBytes::from_string(m.client.client_id.clone());
                                dm.client_host =
                                    StrBytes::from_string(m.client.client_host.clone());
                                if stable {
                                    dm.member_metadata = m.metadata_for(&protocol);
                                    dm.member_assignment = m.assignment.clone();
                                }
                                dm
                            })
                            .collect();
                    }
                }
                d
            })
            .collect();
        r
    }

    /// ListGroups: every group; v4+ filtered by state, v5 by type ("classic").
    pub async fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        self.ensure_driver();
        let states: Vec<String> = if version >= 4 {
            req.states_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            Vec::new()
        };
        let types: Vec<String> = if version >= 5 {
            req.types_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            Vec::new()
        };
        let groups = self.inner.groups();
        let mut listed: Vec<&Group> = groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .filter(|g| states.is_empty() || states.contains(&g.state.kafka_name().to_lowercase()))
            .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
            .collect();
        listed.sort_by(|a, b| a.id.cmp(&b.id));
        let mut r = ListGroupsResponse::default();
        r.error_code = ec::NONE;
        r.groups = listed
            .into_iter()
            .map(|g| {
                let mut l = ListedGroup::default();
                l.group_id = GroupId(StrBytes::from_string(g.id.clone()));
                l.protocol_type =
                    StrBytes::from_string(g.protocol_type.clone().unwrap_or_default());
                if version >= 4 {
                    l.group_state = StrBytes::from_static_str(g.state.kafka_name());
                }
                if version >= 5 {
                    l.group_type = StrBytes::from_static_str("classic");
                }
                l
            })
            .collect();
        r
    }

    /// DeleteGroups: removes empty groups and their offsets; NON_EMPTY_GROUP while members
    /// remain, GROUP_ID_NOT_FOUND for unknown groups.
    pub async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        _version: i16,
    ) -> DeleteGroupsResponse {
        self.ensure_driver();
        let mut groups = self.inner.groups();
        let mut r = DeleteGroupsResponse::default();
        for id in &req.groups_names {
            let name = str_of(id);
            let error = match groups.get(&name) {
                None => ec::GROUP_ID_NOT_FOUND,
                Some(g) if g.state == GroupState::Dead => ec::GROUP_ID_NOT_FOUND,
                Some(g) if g.state != GroupState::Empty => ec::NON_EMPTY_GROUP,
                Some(_) => {
                    let mut log = self.inner.log.lock().unwrap_or_else(|e| e.into_inner());
                    let written = match log.as_mut() {
                        Some(log) => log.append(&[LogRecord::DeleteGroup {
                            group: name.clone(),
                        }]),
                        None => Ok(()),
                    };
                    match written {
                        Ok(()) => {
                            groups.remove(&name);
                            tracing::info!(group = %name, "group: deleted");
                            ec::NONE
                        }
                        Err(e) => {
                            tracing::error!(error = %e, group = %name, "offsets.log: append failed");
                            ec::UNKNOWN_SERVER_ERROR
                        }
                    }
                }
            };
            let mut result = DeletableGroupResult::default();
            result.group_id = id.clone();
            result.error_code = error;
            r.results.push(result);
        }
        r
    }
}
