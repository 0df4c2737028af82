//! The group state machine's membership side: JoinGroup, SyncGroup, Heartbeat and LeaveGroup
//! as plain values in (read from the request at its version by `wire.rs`), an error code or an
//! outcome out; a JoinGroup or SyncGroup that must wait for other members gets a receiver to
//! await once the lock is released. No kafka-protocol message types here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::group::{ClientInfo, Group, GroupState, JoinOutcome, Member, SyncOutcome};
use super::rebalance::Rules;
use super::{ec, Inner};

/// An answer now (`Ok`), or a receiver for one that comes when the group moves on.
pub(super) type Waiting<T> = Result<T, oneshot::Receiver<T>>;

/// What a JoinGroup asks, read at its version.
pub(super) struct JoinParams {
    pub group_id: String,
    pub member_id: String,
    /// group_instance_id (v5+): a static member.
    pub instance_id: Option<String>,
    pub session_timeout_ms: i32,
    /// rebalance_timeout_ms (v1+); the session timeout stands in when absent or negative.
    pub rebalance_timeout_ms: Option<i32>,
    pub protocol_type: String,
    /// (name, metadata) in the member's preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// Why the member (re)joins (v8+), for the log.
    pub reason: Option<String>,
    /// A new dynamic member first gets MEMBER_ID_REQUIRED and an id to rejoin with (v4+).
    pub member_id_required: bool,
    pub client: ClientInfo,
}

/// What a SyncGroup asks, read at its version.
pub(super) struct SyncParams {
    pub group_id: String,
    pub member_id: String,
    /// group_instance_id (v3+).
    pub instance_id: Option<String>,
    pub generation_id: i32,
    /// protocol_type and protocol_name (v5+), checked against the group's when given.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment: (member id, assignment).
    pub assignments: Vec<(String, Bytes)>,
}

impl Inner {
    /// JoinGroup: an immediate answer, or a receiver to await the end of the join phase.
    pub(super) fn join(&self, join: JoinParams) -> Waiting<JoinOutcome> {
        let now = Instant::now();
        let JoinParams {
            group_id,
            member_id,
            instance_id,
            session_timeout_ms,
            rebalance_timeout_ms,
            protocol_type,
            protocols,
            reason,
            member_id_required,
            client,
        } = join;
        let fail = |code| Ok(JoinOutcome::error(code, &member_id));
        if group_id.is_empty() {
            return fail(ec::INVALID_GROUP_ID);
        }
        let session_timeout = Duration::from_millis(session_timeout_ms.max(0) as u64);
        let config = &self.config;
        if session_timeout_ms < 0
            || session_timeout < config.min_session_timeout
            || session_timeout > config.max_session_timeout
        {
            return fail(ec::INVALID_SESSION_TIMEOUT);
        }
        if let Some(reason) = &reason {
            tracing::info!(group = %group_id, member = %member_id, reason = %reason, "group: join reason");
        }
        let rebalance_timeout = match rebalance_timeout_ms {
            Some(ms) if ms >= 0 => Duration::from_millis(ms as u64),
            _ => session_timeout,
        };

        let rules = self.rules();
        let mut groups = self.groups();
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
        if let Some(cg) = &group.consumer {
            // A consumer group (KIP-848) with members takes no classic member; an Empty one
            // becomes a classic group, as Kafka converts it.
            if !cg.members.is_empty() {
                return fail(ec::INCONSISTENT_GROUP_PROTOCOL);
            }
            tracing::info!(group = %group_id, "group: Empty consumer group becomes a classic group");
            group.consumer = None;
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
            } else if member_id_required {
                group.pending.insert(new_id.clone(), now + session_timeout);
                self.wake.notify_one();
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

    /// Adds a new member and starts (or extends) a rebalance.
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
    /// A JoinGroup from a member the group knows: answered at once with the current generation
    /// when nothing changed (and it is not the leader of a Stable group), else it waits for a
    /// rebalance.
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
    ) -> Waiting<JoinOutcome> {
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

    /// SyncGroup: the leader's assignment is stored and handed to every member; members that
    /// sync before the leader wait for it.
    pub(super) fn sync(&self, sync: SyncParams) -> Waiting<SyncOutcome> {
        let now = Instant::now();
        let SyncParams {
            group_id,
            member_id,
            instance_id,
            generation_id,
            protocol_type,
            protocol_name,
            assignments,
        } = sync;
        let fail = |code| Ok(SyncOutcome::error(code));
        if group_id.is_empty() {
            return fail(ec::INVALID_GROUP_ID);
        }
        let mut groups = self.groups();
        let Some(group) = groups.get_mut(&group_id) else {
            return fail(ec::UNKNOWN_MEMBER_ID);
        };
        if group.instance_fenced(&member_id, instance_id.as_deref()) {
            return fail(ec::FENCED_INSTANCE_ID);
        }
        if group.member_index(&member_id).is_none() {
            return fail(ec::UNKNOWN_MEMBER_ID);
        }
        if generation_id != group.generation {
            return fail(ec::ILLEGAL_GENERATION);
        }
        let type_mismatch = protocol_type
            .as_ref()
            .is_some_and(|t| group.protocol_type.as_deref() != Some(t.as_str()));
        let name_mismatch = protocol_name
            .as_ref()
            .is_some_and(|n| group.protocol_name.as_deref() != Some(n.as_str()));
        if type_mismatch || name_mismatch {
            return fail(ec::INCONSISTENT_GROUP_PROTOCOL);
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
                    let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
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
                    self.wake.notify_one();
                }
                Err(rx)
            }
        }
    }

    /// Heartbeat: keeps the session alive; REBALANCE_IN_PROGRESS tells the member to rejoin.
    pub(super) fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> i16 {
        let now = Instant::now();
        let mut groups = self.groups();
        match groups.get_mut(group_id) {
            _ if group_id.is_empty() => ec::INVALID_GROUP_ID,
            None => ec::UNKNOWN_MEMBER_ID,
            Some(group) if group.instance_fenced(member_id, instance_id) => ec::FENCED_INSTANCE_ID,
            Some(group) => {
                let generation = group.generation;
                let state = group.state;
                match group.member_mut(member_id) {
                    None => ec::UNKNOWN_MEMBER_ID,
                    Some(_) if generation_id != generation => ec::ILLEGAL_GENERATION,
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
    }

    /// LeaveGroup: each (member id, instance id) leaves, with an error each; leaving triggers a
    /// rebalance. Returns the group-level error and the per-member results.
    pub(super) fn leave(
        &self,
        group_id: &str,
        leaving: Vec<(String, Option<String>)>,
    ) -> (i16, Vec<(String, Option<String>, i16)>) {
        let now = Instant::now();
        let mut top_error = ec::NONE;
        let mut results: Vec<(String, Option<String>, i16)> = Vec::new();
        if group_id.is_empty() {
            top_error = ec::INVALID_GROUP_ID;
        } else {
            let rules = self.rules();
            let mut groups = self.groups();
            match groups.get_mut(group_id) {
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
        (top_error, results)
    }

    /// One member leaving (by member id, or by instance id alone for a static member); its
    /// error code.
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
}

/// A random (version 4 layout) UUID in text form, from the standard library's per-process
/// random hash keys, a counter and the clock.
pub(super) fn random_uuid() -> String {
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
