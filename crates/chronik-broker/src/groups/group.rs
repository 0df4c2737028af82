//! One group as the coordinator keeps it: its members (with their protocols, assignment and
//! parked join or sync answer), generation, leader, selected protocol and committed offsets,
//! and the questions asked of it (who leads, which protocol wins the vote, who is fenced).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::consumer::ConsumerGroup;
use super::ec;
use super::offset_log::CommittedOffset;
use super::rebalance::Rebalance;

/// Who sent a JoinGroup (from the request header and the connection); DescribeGroups reports
/// it and the generated member id starts with the client id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The request header's client_id.
    pub client_id: String,
    /// The peer's address, as Kafka shows it ("/127.0.0.1" style is fine, any text works).
    pub client_host: String,
}

/// Group states, named as Kafka names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (possibly committed offsets).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assignment delivered.
    Stable,
    /// The group does not exist.
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn kafka_name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A point-in-time view of one group (for views and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    /// The group id.
    pub group_id: String,
    /// Its state.
    pub state: GroupState,
    /// Current generation.
    pub generation: i32,
    /// Protocol type ("consumer" for consumers), if any member ever joined.
    pub protocol_type: Option<String>,
    /// The selected assignment protocol of the current generation.
    pub protocol_name: Option<String>,
    /// Member id of the leader.
    pub leader: Option<String>,
    /// Member ids in join order.
    pub members: Vec<String>,
    /// Number of committed partition offsets.
    pub committed_partitions: usize,
}

/// What a waiting (or immediately answered) JoinGroup gets.
#[derive(Debug, Clone)]
pub(super) struct JoinOutcome {
    pub(super) error: i16,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
    pub(super) leader: String,
    pub(super) member_id: String,
    /// (member id, group instance id, metadata); only the leader's is non-empty.
    pub(super) members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    /// An answer that is only an error code (generation -1, no members).
    pub(super) fn error(error: i16, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// What a waiting (or immediately answered) SyncGroup gets.
#[derive(Debug, Clone)]
pub(super) struct SyncOutcome {
    pub(super) error: i16,
    pub(super) assignment: Bytes,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
}

impl SyncOutcome {
    /// An answer that is only an error code (empty assignment).
    pub(super) fn error(error: i16) -> SyncOutcome {
        SyncOutcome {
            error,
            assignment: Bytes::new(),
            protocol_type: None,
            protocol_name: None,
        }
    }
}

/// One member of a group, with the join or sync answer it waits for, if any.
pub(super) struct Member {
    pub(super) id: String,
    pub(super) instance_id: Option<String>,
    pub(super) client: ClientInfo,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) protocol_type: String,
    /// (name, metadata) in the member's preference order.
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) assignment: Bytes,
    pub(super) last_seen: Instant,
    pub(super) join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    pub(super) sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    /// The member's metadata for `protocol` (empty when it does not support it).
    pub(super) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Whether the member lists `protocol`.
    pub(super) fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    /// Sends the waiting JoinGroup its answer, if one waits.
    pub(super) fn answer_join(&mut self, outcome: JoinOutcome) {
        if let Some(tx) = self.join_waiter.take() {
            let _ = tx.send(outcome);
        }
    }

    /// Sends the waiting SyncGroup its answer, if one waits.
    pub(super) fn answer_sync(&mut self, outcome: SyncOutcome) {
        if let Some(tx) = self.sync_waiter.take() {
            let _ = tx.send(outcome);
        }
    }

    /// Whether the session has run out: not heard from for the session timeout and not waiting
    /// for a join or sync answer (waiting members are kept alive, as Kafka does).
    pub(super) fn session_expired(&self, now: Instant) -> bool {
        self.join_waiter.is_none()
            && self.sync_waiter.is_none()
            && self.last_seen + self.session_timeout <= now
    }
}

/// One group: its state, generation, protocol, leader, members and committed offsets.
pub(super) struct Group {
    pub(super) id: String,
    pub(super) state: GroupState,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
    pub(super) leader: Option<String>,
    /// In join order.
    pub(super) members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with when they expire.
    pub(super) pending: HashMap<String, Instant>,
    pub(super) rebalance: Option<Rebalance>,
    pub(super) offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Set for a consumer group (KIP-848, `consumer/`); its classic fields then stay unused
    /// (no classic members, state Empty).
    pub(super) consumer: Option<Box<ConsumerGroup>>,
}

impl Group {
    /// An Empty group at generation 0.
    pub(super) fn new(id: String) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            rebalance: None,
            offsets: BTreeMap::new(),
            consumer: None,
        }
    }

    /// Where member `id` is in join order.
    pub(super) fn member_index(&self, id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }

    /// Member `id`, to change.
    pub(super) fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    /// Whether `id` leads the group.
    pub(super) fn is_leader(&self, id: &str) -> bool {
        self.leader.as_deref() == Some(id)
    }

    /// A request naming `instance_id` for `member_id` is fenced when the instance belongs to a
    /// different member id.
    pub(super) fn instance_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        let Some(instance) = instance_id else {
            return false;
        };
        self.members
            .iter()
            .any(|m| m.instance_id.as_deref() == Some(instance) && m.id != member_id)
    }

    /// Whether a member with these protocols may join (Kafka's `supportsProtocols`), ignoring
    /// `member_id` itself in the counts.
    pub(super) fn supports_protocols(
        &self,
        member_id: &str,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        let others: Vec<&Member> = self.members.iter().filter(|m| m.id != member_id).collect();
        if others.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols
            .iter()
            .any(|(name, _)| others.iter().all(|m| m.supports(name)))
    }

    /// Kafka's selection: among protocols every member supports, each member votes for the
    /// first one in its preference order; most votes wins, ties go to the leader's preference.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let leader = self
            .leader
            .as_deref()
            .and_then(|id| self.members.iter().find(|m| m.id == id))
            .unwrap_or(first);
        let candidates: Vec<&str> = leader
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.members.iter().all(|m| m.supports(name)))
            .collect();
        let mut votes: Vec<usize> = vec![0; candidates.len()];
        for member in &self.members {
            if let Some(i) = member
                .protocols
                .iter()
                .find_map(|(name, _)| candidates.iter().position(|c| c == name))
            {
                votes[i] += 1;
            }
        }
        let mut best: Option<(usize, usize)> = None;
        for (i, v) in votes.iter().enumerate() {
            if best.is_none_or(|(_, bv)| *v > bv) {
                best = Some((i, *v));
            }
        }
        best.map(|(i, _)| candidates[i].to_string())
    }

    /// What the leader's JoinGroup answer lists: every member with its metadata for the
    /// selected protocol.
    pub(super) fn leader_members(&self) -> Vec<(String, Option<String>, Bytes)> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|m| {
                (
                    m.id.clone(),
                    m.instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect()
    }

    /// The join answer for `member_id` in the current generation.
    pub(super) fn current_join_outcome(&self, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error: ec::NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if self.is_leader(member_id) {
                self.leader_members()
            } else {
                Vec::new()
            },
        }
    }

    /// A successful SyncGroup answer carrying `assignment`.
    pub(super) fn sync_outcome(&self, assignment: Bytes) -> SyncOutcome {
        SyncOutcome {
            error: ec::NONE,
            assignment,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
        }
    }

    /// This group as [`GroupSnapshot`] shows it (a consumer group: its group epoch as the
    /// generation, its members by id, state Stable while it has members).
    pub(super) fn snapshot(&self) -> GroupSnapshot {
        if let Some(cg) = &self.consumer {
            return GroupSnapshot {
                group_id: self.id.clone(),
                state: if cg.members.is_empty() {
                    GroupState::Empty
                } else {
                    GroupState::Stable
                },
                generation: cg.epoch,
                protocol_type: self.protocol_type.clone(),
                protocol_name: None,
                leader: None,
                members: cg.members.keys().cloned().collect(),
                committed_partitions: self.offsets.len(),
            };
        }
        GroupSnapshot {
            group_id: self.id.clone(),
            state: self.state,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            members: self.members.iter().map(|m| m.id.clone()).collect(),
            committed_partitions: self.offsets.len(),
        }
    }
}
