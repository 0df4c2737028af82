//! The consumer group protocol of KIP-848 (Apache Kafka 4.x's `group.protocol=consumer`): the
//! broker assigns the partitions, members only heartbeat (ConsumerGroupHeartbeat) and follow the
//! assignment they are given. ConsumerGroupDescribe describes such groups.
//!
//! How it works:
//! - A consumer group lives in the coordinator's one map of groups, as a [`Group`] whose
//!   `consumer` part is set: its committed offsets and persistence are the classic groups' own,
//!   and one group id is either a classic or a consumer group. An Empty classic group becomes a
//!   consumer group on a ConsumerGroupHeartbeat that joins, and an Empty consumer group a classic
//!   one on a JoinGroup (as Kafka converts them); a non-Empty group of the other type answers
//!   GROUP_ID_NOT_FOUND to a ConsumerGroupHeartbeat and INCONSISTENT_GROUP_PROTOCOL to a
//!   JoinGroup.
//! - Epochs: the group epoch goes up whenever what the assignment depends on changes (a member
//!   joins or leaves or is removed, a subscription or the assignor changes, a subscribed topic
//!   appears, disappears or gets partitions). When a heartbeat finds the group epoch above the
//!   target assignment's epoch, the assignor (`assignor.rs`) computes a new target for every
//!   member. Each member then reconciles toward its target (`reconcile.rs`): partitions it must
//!   give up are revoked first, at its old epoch; only once a heartbeat shows it no longer owns
//!   them does it move to the target epoch, and a partition goes to its new owner only when no
//!   other member holds it.
//! - Deadlines (applied by the coordinator's deadline task): a member not heard from for the
//!   session timeout ([`GroupConfig::consumer_session_timeout`], Kafka's
//!   `group.consumer.session.timeout.ms`) is removed and its partitions are assigned again; a
//!   member that has not confirmed a revocation within its rebalance timeout is removed too.
//! - Fencing as Kafka: a heartbeat with an epoch above the member's, or below it other than the
//!   previous epoch with owned partitions that are a subset of its assignment, gets
//!   FENCED_MEMBER_EPOCH; an unknown member id UNKNOWN_MEMBER_ID; the member rejoins with epoch 0.
//!   Deliberate difference: members live in memory, so after a restart a heartbeat (epoch > 0)
//!   for a group that does not exist, or is back as an Empty group with only its offsets, gets
//!   UNKNOWN_MEMBER_ID (the member rejoins) where Kafka, which keeps them, answers
//!   GROUP_ID_NOT_FOUND (fatal to librdkafka).
//! - Subscriptions by topic name and by regular expression (ConsumerGroupHeartbeat v1's
//!   `subscribed_topic_regex`), matched against whole topic names with the `regex` crate's syntax
//!   (RE2's family, as Kafka's RE2/J: no look-around, no back-references).
//!
//! Where things are: this file keeps the groups' and members' state and the heartbeat's rules,
//! `assignor.rs` the assignors, `reconcile.rs` a member's reconciliation, `wire.rs` the
//! requests and responses.

pub(crate) mod assignor;
pub(crate) mod reconcile;
pub(super) mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::group::{ClientInfo, Group, GroupState};
use super::{ec, GroupConfig, Inner};
use assignor::{Assignment, MemberSpec, ASSIGNORS};
use reconcile::{is_subset, MemberState, Reconciled};

/// `INVALID_REGULAR_EXPRESSION` (Kafka 4.0's error 128, ConsumerGroupHeartbeat v1+).
pub(crate) const INVALID_REGULAR_EXPRESSION: i16 = 128;

/// The member epoch of a heartbeat that leaves the group.
const LEAVE: i32 = -1;
/// The member epoch of a static member's heartbeat that leaves for now (it may come back with
/// its instance id within the session timeout).
const LEAVE_STATIC: i32 = -2;

/// One topic as the consumer protocol sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub id: Uuid,
    pub name: String,
    pub partitions: i32,
}

/// The broker's topics at the time of a request, by name.
pub type TopicImage = BTreeMap<String, TopicMeta>;

/// One member of a consumer group.
pub(super) struct ConsumerMember {
    pub(super) id: String,
    pub(super) instance_id: Option<String>,
    pub(super) rack_id: Option<String>,
    pub(super) client: ClientInfo,
    pub(super) rebalance_timeout: Duration,
    /// Sorted, without duplicates.
    pub(super) topic_names: Vec<String>,
    /// The regex as sent, and compiled for whole-name matches.
    pub(super) regex: Option<(String, regex::Regex)>,
    pub(super) server_assignor: Option<String>,
    pub(super) rec: Reconciled,
    /// The epoch before the current one (a heartbeat may come with it if the answer that
    /// moved the member on was lost).
    pub(super) previous_epoch: i32,
    pub(super) last_seen: Instant,
    /// While partitions wait for the member to revoke them: when it is removed if it has not.
    pub(super) revoke_deadline: Option<Instant>,
}

impl ConsumerMember {
    /// Whether `topic` is subscribed by name or matched by the regex.
    fn subscribes(&self, topic: &str) -> bool {
        self.topic_names
            .binary_search_by(|n| n.as_str().cmp(topic))
            .is_ok()
            || self
                .regex
                .as_ref()
                .is_some_and(|(_, re)| re.is_match(topic))
    }
}

/// A consumer group's protocol state (its offsets are the [`Group`]'s).
#[derive(Default)]
pub(super) struct ConsumerGroup {
    pub(super) epoch: i32,
    /// The epoch the target assignment was computed at.
    pub(super) target_epoch: i32,
    pub(super) members: BTreeMap<String, ConsumerMember>,
    /// Each member's target assignment.
    pub(super) target: BTreeMap<String, Assignment>,
    /// The subscribed topics that exist, as of the last heartbeat: a change bumps the epoch.
    pub(super) subscribed: BTreeMap<String, TopicMeta>,
    /// The assignor the target was computed with.
    pub(super) assignor: &'static str,
}

/// The state names of consumer groups, as Kafka names them.
impl ConsumerGroup {
    /// `Empty`, `Assigning` (a new target is due), `Reconciling` (members are moving toward the
    /// target) or `Stable`.
    pub(super) fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.epoch > self.target_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.rec.epoch != self.target_epoch || m.rec.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The assignor the members prefer: the one most of them name, else `uniform`.
    fn preferred_assignor(&self) -> &'static str {
        let mut best = (ASSIGNORS[0], 0usize);
        for name in ASSIGNORS {
            let votes = self
                .members
                .values()
                .filter(|m| m.server_assignor.as_deref() == Some(name))
                .count();
            if votes > best.1 {
                best = (name, votes);
            }
        }
        best.0
    }

    fn bump(&mut self, group_id: &str, reason: &str) {
        self.epoch += 1;
        tracing::info!(group = %group_id, epoch = self.epoch, reason, "consumer group: epoch bumped");
    }

    /// Recomputes the subscribed topics from the image; whether they changed.
    fn refresh_subscribed(&mut self, topics: &TopicImage) -> bool {
        // Every name and every distinct regex once, rather than each member per topic.
        let names: BTreeSet<&str> = self
            .members
            .values()
            .flat_map(|m| m.topic_names.iter().map(String::as_str))
            .collect();
        let mut regexes: BTreeMap<&str, &regex::Regex> = BTreeMap::new();
        for (text, re) in self.members.values().filter_map(|m| m.regex.as_ref()) {
            regexes.insert(text.as_str(), re);
        }
        let subscribed: BTreeMap<String, TopicMeta> = topics
            .iter()
            .filter(|(name, _)| {
                names.contains(name.as_str()) || regexes.values().any(|re| re.is_match(name))
            })
            .map(|(name, meta)| (name.clone(), meta.clone()))
            .collect();
        let changed = subscribed != self.subscribed;
        self.subscribed = subscribed;
        changed
    }

    /// Computes a new target assignment when the group epoch is ahead of it.
    fn maybe_assign(&mut self, group_id: &str) {
        if self.epoch <= self.target_epoch {
            return;
        }
        let assignor = self.preferred_assignor();
        let specs: Vec<MemberSpec> = self
            .members
            .values()
            .filter(|m| m.rec.epoch != LEAVE_STATIC)
            .map(|m| MemberSpec {
                id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                topics: self
                    .subscribed
                    .iter()
                    .filter(|(name, _)| m.subscribes(name))
                    .map(|(_, meta)| meta.id)
                    .collect(),
                current: self.target.get(&m.id).cloned().unwrap_or_default(),
            })
            .collect();
        let partitions: BTreeMap<Uuid, i32> = self
            .subscribed
            .values()
            .map(|t| (t.id, t.partitions))
            .collect();
        let mut target = assignor::assign(assignor, &specs, &partitions);
        // A static member that left for now keeps its target until it returns or times out.
        for m in self.members.values() {
            if m.rec.epoch == LEAVE_STATIC {
                target.insert(
                    m.id.clone(),
                    self.target.get(&m.id).cloned().unwrap_or_default(),
                );
            }
        }
        self.target = target;
        self.target_epoch = self.epoch;
        self.assignor = assignor;
        tracing::info!(group = %group_id, epoch = self.epoch, assignor, members = self.members.len(), "consumer group: target assignment computed");
    }

    /// Whether a member other than `member_id` holds (or is still revoking) a partition.
    fn held_by_other(&self, member_id: &str, topic: &Uuid, partition: i32) -> bool {
        self.members.values().any(|m| {
            m.id != member_id
                && [&m.rec.assigned, &m.rec.pending_revocation]
                    .iter()
                    .any(|a| a.get(topic).is_some_and(|ps| ps.contains(&partition)))
        })
    }

    /// Removes a member (leave, session timeout, failed revocation): its partitions are free
    /// and the group epoch goes up.
    fn remove_member(&mut self, group_id: &str, member_id: &str, reason: &str) {
        if self.members.remove(member_id).is_some() {
            self.target.remove(member_id);
            tracing::info!(group = %group_id, member = %member_id, reason, "consumer group: member removed");
            self.bump(group_id, reason);
        }
    }

    /// Applies the deadlines that passed; returns the next one.
    pub(super) fn tick(
        &mut self,
        group_id: &str,
        now: Instant,
        config: &GroupConfig,
    ) -> Option<Instant> {
        let session = config.consumer_session_timeout;
        let expired: Vec<(String, &'static str)> = self
            .members
            .values()
            .filter_map(|m| {
                if m.last_seen + session <= now {
                    Some((m.id.clone(), "session timeout"))
                } else if m.revoke_deadline.is_some_and(|d| d <= now) {
                    Some((
                        m.id.clone(),
                        "did not revoke its partitions within the rebalance timeout",
                    ))
                } else {
                    None
                }
            })
            .collect();
        for (id, reason) in expired {
            self.remove_member(group_id, &id, reason);
        }
        self.members
            .values()
            .flat_map(|m| [Some(m.last_seen + session), m.revoke_deadline])
            .flatten()
            .min()
    }
}

/// What a ConsumerGroupHeartbeat asks, read at its version.
pub(super) struct HeartbeatParams {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub topic_names: Option<Vec<String>>,
    /// v1+: `None` unchanged, `Some("")` no regex any more.
    pub topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client: ClientInfo,
    pub version: i16,
}

/// The heartbeat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HeartbeatOutcome {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The partitions the member may own now, when they changed (or were asked for).
    pub assignment: Option<Assignment>,
}

impl HeartbeatOutcome {
    fn error(error: i16, message: impl Into<String>) -> HeartbeatOutcome {
        HeartbeatOutcome {
            error,
            message: Some(message.into()),
            member_id: None,
            member_epoch: 0,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

/// Kafka's checks of a heartbeat's fields, before any state is looked at.
fn validate(p: &HeartbeatParams) -> Result<(), HeartbeatOutcome> {
    let invalid = |m: &str| Err(HeartbeatOutcome::error(ec::INVALID_REQUEST, m));
    if p.group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if p.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if p.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    if p.version >= 1 && p.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    match p.member_epoch {
        e if e > 0 || e == LEAVE => {
            if p.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
        }
        0 => {
            if p.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if p.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            let names = p.topic_names.as_ref().is_some_and(|n| !n.is_empty());
            let regex = p.topic_regex.as_ref().is_some_and(|r| !r.is_empty());
            if !names && !regex {
                return invalid(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                );
            }
        }
        LEAVE_STATIC => {
            if p.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
            if p.instance_id.is_none() {
                return invalid("InstanceId can't be null.");
            }
        }
        _ => return invalid("MemberEpoch is invalid."),
    }
    if let Some(a) = &p.server_assignor {
        if !ASSIGNORS.contains(&a.as_str()) {
            return Err(HeartbeatOutcome::error(
                ec::UNSUPPORTED_ASSIGNOR,
                format!(
                    "ServerAssignor {a} is not supported. Supported assignors: {}.",
                    ASSIGNORS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Compiles a subscription regex for whole-name matches.
fn compile(re: &str) -> Result<regex::Regex, HeartbeatOutcome> {
    regex::RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            HeartbeatOutcome::error(
                INVALID_REGULAR_EXPRESSION,
                format!("SubscribedTopicRegex `{re}` is not a valid regular expression: {e}."),
            )
        })
}

/// Kafka's epoch check of a known member's heartbeat.
fn check_epoch(
    member: &ConsumerMember,
    received: i32,
    owned: Option<&Assignment>,
) -> Result<(), HeartbeatOutcome> {
    let current = member.rec.epoch;
    if received > current {
        return Err(HeartbeatOutcome::error(
            ec::FENCED_MEMBER_EPOCH,
            format!("The consumer group member has a greater member epoch ({received}) than the one known by the group coordinator ({current}). The member must abandon all its partitions and rejoin."),
        ));
    }
    if received < current
        && (received != member.previous_epoch
            || !owned.is_some_and(|o| is_subset(o, &member.rec.assigned)))
    {
        return Err(HeartbeatOutcome::error(
            ec::FENCED_MEMBER_EPOCH,
            format!("The consumer group member has a smaller member epoch ({received}) than the one known by the group coordinator ({current}). The member must abandon all its partitions and rejoin."),
        ));
    }
    Ok(())
}

impl Inner {
    /// ConsumerGroupHeartbeat: join (epoch 0), heartbeat, or leave (-1, -2).
    pub(super) fn consumer_heartbeat(
        &self,
        p: HeartbeatParams,
        topics: &TopicImage,
    ) -> HeartbeatOutcome {
        let now = Instant::now();
        if let Err(e) = validate(&p) {
            return e;
        }
        let regex = match p.topic_regex.as_deref() {
            Some("") => Some(None),
            Some(re) => match compile(re) {
                Ok(compiled) => Some(Some((re.to_string(), compiled))),
                Err(e) => return e,
            },
            None => None,
        };
        let interval = self.config.consumer_heartbeat_interval.as_millis() as i32;
        let mut groups = self.groups();
        let joining = p.member_epoch == 0;

        // The group, created (or converted from an Empty classic group) on a join.
        let group = match groups.get_mut(&p.group_id) {
            Some(g) if g.consumer.is_some() => g,
            Some(g) if g.state == GroupState::Empty && g.members.is_empty() => {
                if !joining {
                    // Members live in memory: after a restart their group is back as an Empty
                    // one (its offsets were kept). The member is unknown and rejoins.
                    return HeartbeatOutcome::error(
                        ec::UNKNOWN_MEMBER_ID,
                        format!(
                            "Consumer group {} has no member {}.",
                            p.group_id, p.member_id
                        ),
                    );
                }
                tracing::info!(group = %p.group_id, "group: Empty classic group becomes a consumer group");
                g.consumer = Some(Box::default());
                g.protocol_name = None;
                g.leader = None;
                g
            }
            Some(_) => {
                return HeartbeatOutcome::error(
                    ec::GROUP_ID_NOT_FOUND,
                    format!("Group {} is not a consumer group.", p.group_id),
                )
            }
            None if joining => {
                let mut g = Group::new(p.group_id.clone());
                g.consumer = Some(Box::default());
                groups.entry(p.group_id.clone()).or_insert(g)
            }
            None => {
                // Kafka answers GROUP_ID_NOT_FOUND, which librdkafka takes as fatal; here groups
                // do not survive a restart without --data-dir, so the member is told it is
                // unknown and rejoins.
                return HeartbeatOutcome::error(
                    ec::UNKNOWN_MEMBER_ID,
                    format!("Consumer group {} not found.", p.group_id),
                );
            }
        };
        if group.protocol_type.as_deref() != Some("consumer") {
            group.protocol_type = Some("consumer".into());
            self.rules().record_group_type(&p.group_id, "consumer");
        }
        let group_id = group.id.clone();
        let Some(cg) = group.consumer.as_deref_mut() else {
            return HeartbeatOutcome::error(ec::COORDINATOR_NOT_AVAILABLE, "no consumer group");
        };

        if p.member_epoch == LEAVE || p.member_epoch == LEAVE_STATIC {
            return leave(cg, &group_id, &p, interval);
        }

        // The member: found (fencing checked), or added on a join.
        let member_id = if joining {
            match join(cg, &group_id, &p, now) {
                Ok(id) => id,
                Err(e) => return e,
            }
        } else {
            let Some(member) = cg.members.get(&p.member_id) else {
                return HeartbeatOutcome::error(
                    ec::UNKNOWN_MEMBER_ID,
                    format!(
                        "Member {} is not a member of group {group_id}.",
                        p.member_id
                    ),
                );
            };
            if let Some(instance) = &p.instance_id {
                if member.instance_id.as_deref() != Some(instance.as_str()) {
                    return HeartbeatOutcome::error(
                        ec::FENCED_INSTANCE_ID,
                        format!(
                            "Static member {} with instance id {instance} was fenced.",
                            p.member_id
                        ),
                    );
                }
            }
            if let Err(e) = check_epoch(member, p.member_epoch, p.owned.as_ref()) {
                return e;
            }
            p.member_id.clone()
        };

        // What the member tells: subscription, assignor, timeouts.
        let mut changed = false;
        if let Some(member) = cg.members.get_mut(&member_id) {
            member.last_seen = now;
            member.client = p.client.clone();
            if p.rebalance_timeout_ms >= 0 {
                member.rebalance_timeout = Duration::from_millis(p.rebalance_timeout_ms as u64);
            }
            if p.rack_id.is_some() {
                member.rack_id = p.rack_id.clone();
            }
            if let Some(names) = &p.topic_names {
                let names: Vec<String> = names
                    .iter()
                    .cloned()
                    .collect::<BTreeSet<String>>()
                    .into_iter()
                    .collect();
                if names != member.topic_names {
                    member.topic_names = names;
                    changed = true;
                }
            }
            if let Some(regex) = regex {
                if regex.as_ref().map(|(s, _)| s) != member.regex.as_ref().map(|(s, _)| s) {
                    member.regex = regex;
                    changed = true;
                }
            }
            if p.server_assignor.is_some() && p.server_assignor != member.server_assignor {
                member.server_assignor = p.server_assignor.clone();
                changed = true;
            }
        }
        // One bump for whatever this heartbeat changed.
        let topics_changed = cg.refresh_subscribed(topics);
        if joining {
            cg.bump(&group_id, "member joined");
        } else if changed {
            cg.bump(&group_id, "subscription or assignor changed");
        } else if topics_changed {
            cg.bump(&group_id, "subscribed topics changed");
        }
        cg.maybe_assign(&group_id);

        // Reconciliation of this member toward its target.
        let target = cg.target.get(&member_id).cloned().unwrap_or_default();
        let target_epoch = cg.target_epoch;
        let Some(member) = cg.members.get(&member_id) else {
            return HeartbeatOutcome::error(ec::UNKNOWN_MEMBER_ID, "member vanished");
        };
        let before = member.rec.clone();
        let next = before.next(&target, target_epoch, p.owned.as_ref(), |t, part| {
            !cg.held_by_other(&member_id, t, part)
        });
        let Some(member) = cg.members.get_mut(&member_id) else {
            return HeartbeatOutcome::error(ec::UNKNOWN_MEMBER_ID, "member vanished");
        };
        if next.epoch != before.epoch {
            member.previous_epoch = before.epoch;
        }
        member.revoke_deadline = match next.state {
            MemberState::UnrevokedPartitions => Some(
                member
                    .revoke_deadline
                    .unwrap_or(now + member.rebalance_timeout),
            ),
            _ => None,
        };
        if next != before {
            tracing::info!(
                group = %group_id,
                member = %member_id,
                epoch = next.epoch,
                state = next.state.name(),
                assigned = ?next.assigned,
                revoking = ?next.pending_revocation,
                "consumer group: member reconciled"
            );
        }
        let full = p.rebalance_timeout_ms != -1 && p.topic_names.is_some() && p.owned.is_some();
        let send = joining || full || next.assigned != before.assigned;
        member.rec = next;
        HeartbeatOutcome {
            error: ec::NONE,
            message: None,
            member_id: Some(member_id),
            member_epoch: member.rec.epoch,
            heartbeat_interval_ms: interval,
            assignment: send.then(|| member.rec.assigned.clone()),
        }
    }

    /// OffsetFetch v9+ naming a member: for a consumer group, the member and its epoch are
    /// checked as Kafka does (classic groups are not checked).
    pub(super) fn consumer_fetch_error(&self, group_id: &str, member_id: &str, epoch: i32) -> i16 {
        let groups = self.groups();
        match groups.get(group_id).and_then(|g| g.consumer.as_deref()) {
            Some(cg) if epoch >= 0 || !member_id.is_empty() => {
                member_epoch_error(cg, member_id, epoch)
            }
            _ => ec::NONE,
        }
    }

    /// Whether `group_id` is a consumer group (for the OffsetCommit version check).
    pub(super) fn is_consumer_group(&self, group_id: &str) -> bool {
        self.groups()
            .get(group_id)
            .is_some_and(|g| g.consumer.is_some())
    }
}

/// A heartbeat with epoch 0: a new member, a member rejoining (it starts over with nothing
/// owned) or a static member coming back. Returns the member id.
fn join(
    cg: &mut ConsumerGroup,
    group_id: &str,
    p: &HeartbeatParams,
    now: Instant,
) -> Result<String, HeartbeatOutcome> {
    let member_id = if p.member_id.is_empty() {
        // v0: the coordinator names the member.
        super::membership::random_uuid()
    } else {
        p.member_id.clone()
    };
    if let Some(instance) = &p.instance_id {
        let holder = cg
            .members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance.as_str()))
            .map(|m| (m.id.clone(), m.rec.epoch));
        if let Some((old, epoch)) = holder {
            if old != member_id {
                if epoch != LEAVE_STATIC {
                    return Err(HeartbeatOutcome::error(
                        ec::UNRELEASED_INSTANCE_ID,
                        format!("Static member {old} with instance id {instance} is still in the group; it must leave first."),
                    ));
                }
                // The static member that left for now is replaced by the new member id.
                cg.remove_member(group_id, &old, "static member replaced");
            }
        }
    }
    let rejoin = cg.members.contains_key(&member_id);
    let member = ConsumerMember {
        id: member_id.clone(),
        instance_id: p.instance_id.clone(),
        rack_id: p.rack_id.clone(),
        client: p.client.clone(),
        rebalance_timeout: Duration::from_millis(p.rebalance_timeout_ms.max(0) as u64),
        topic_names: Vec::new(),
        regex: None,
        server_assignor: None,
        rec: Reconciled::joining(),
        previous_epoch: -1,
        last_seen: now,
        revoke_deadline: None,
    };
    tracing::info!(group = %group_id, member = %member_id, client = %p.client.client_id, rejoin, "consumer group: member joins");
    cg.members.insert(member_id.clone(), member);
    Ok(member_id)
}

/// A heartbeat with epoch -1 (leave) or -2 (a static member leaves for now).
fn leave(
    cg: &mut ConsumerGroup,
    group_id: &str,
    p: &HeartbeatParams,
    interval: i32,
) -> HeartbeatOutcome {
    let found = if p.member_epoch == LEAVE_STATIC {
        let instance = p.instance_id.as_deref().unwrap_or_default();
        match cg
            .members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
        {
            None => None,
            Some(m) if m.id != p.member_id => {
                return HeartbeatOutcome::error(
                    ec::FENCED_INSTANCE_ID,
                    format!(
                        "Static member {} with instance id {instance} was fenced.",
                        p.member_id
                    ),
                )
            }
            Some(m) => Some(m.id.clone()),
        }
    } else {
        cg.members
            .contains_key(&p.member_id)
            .then(|| p.member_id.clone())
    };
    let Some(id) = found else {
        return HeartbeatOutcome::error(
            ec::UNKNOWN_MEMBER_ID,
            format!(
                "Member {} is not a member of group {group_id}.",
                p.member_id
            ),
        );
    };
    if p.member_epoch == LEAVE_STATIC {
        if let Some(m) = cg.members.get_mut(&id) {
            // It keeps its target (and nobody else gets it) until it returns or times out; it
            // owns nothing meanwhile.
            m.rec = Reconciled {
                state: MemberState::Stable,
                epoch: LEAVE_STATIC,
                assigned: Assignment::new(),
                pending_revocation: Assignment::new(),
            };
            m.revoke_deadline = None;
            tracing::info!(group = %group_id, member = %id, "consumer group: static member left for now");
        }
    } else {
        cg.remove_member(group_id, &id, "left the group");
    }
    HeartbeatOutcome {
        error: ec::NONE,
        message: None,
        member_id: Some(id),
        member_epoch: p.member_epoch,
        heartbeat_interval_ms: interval,
        assignment: None,
    }
}

/// The member-epoch check of OffsetCommit (v9+) and OffsetFetch (v9+) from a member of a
/// consumer group: UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH for an older epoch,
/// FENCED_MEMBER_EPOCH for a newer one.
pub(super) fn member_epoch_error(cg: &ConsumerGroup, member_id: &str, epoch: i32) -> i16 {
    match cg.members.get(member_id) {
        None => ec::UNKNOWN_MEMBER_ID,
        Some(m) if epoch > m.rec.epoch => ec::FENCED_MEMBER_EPOCH,
        Some(m) if epoch < m.rec.epoch => ec::STALE_MEMBER_EPOCH,
        Some(_) => ec::NONE,
    }
}

#[cfg(test)]
mod tests;
