//! Rebalancing: moving a group to PreparingRebalance, completing the join phase when every
//! member has rejoined (or the rebalance timed out), removing members, and applying the
//! deadlines that have passed.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::ec;
use super::group::{Group, GroupState, JoinOutcome, Member, SyncOutcome};
use super::offset_log::{LogRecord, OffsetLog};
use super::GroupConfig;

/// The wait of a group's first rebalance for more members
/// ([`GroupConfig::initial_rebalance_delay`]).
pub(super) struct InitialDelay {
    /// When the wait ends, unless members joined meanwhile (then it is pushed back).
    pub(super) until: Instant,
    /// The latest it may end: the rebalance deadline.
    pub(super) cap: Instant,
    /// Whether a member joined since `until` was last set.
    pub(super) new_members: bool,
}

/// A rebalance under way: when it times out, and the initial delay if there is one.
pub(super) struct Rebalance {
    pub(super) deadline: Instant,
    pub(super) initial_delay: Option<InitialDelay>,
}

/// The rebalance rules, with what they need of the coordinator: its config, the wake-up of the
/// deadline task and the offsets log (where a group's protocol type is recorded).
pub(super) struct Rules<'a> {
    pub(super) config: &'a GroupConfig,
    pub(super) wake: &'a Notify,
    pub(super) log: &'a Mutex<Option<OffsetLog>>,
}

impl Rules<'_> {
    /// Remembers a group's new protocol type in the offsets log (best effort: a failed write
    /// only means the type is unknown after a restart).
    pub(super) fn record_group_type(&self, group: &str, protocol_type: &str) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = log.as_mut() {
            let record = LogRecord::GroupType {
                group: group.to_string(),
                protocol_type: protocol_type.to_string(),
            };
            if let Err(e) = log.append(&[record]) {
                tracing::warn!(error = %e, group, "offsets.log: recording the protocol type failed");
            }
        }
    }

    /// Moves the group to PreparingRebalance (Kafka's `prepareRebalance`).
    pub(super) fn prepare_rebalance(&self, group: &mut Group, now: Instant, reason: &str) {
        if group.state == GroupState::CompletingRebalance {
            for member in &mut group.members {
                member.assignment = Bytes::new();
                member.answer_sync(SyncOutcome::error(ec::REBALANCE_IN_PROGRESS));
            }
        }
        let timeout = group
            .members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO);
        let deadline = now + timeout;
        let initial_delay =
            if group.state == GroupState::Empty && !self.config.initial_rebalance_delay.is_zero() {
                Some(InitialDelay {
                    until: (now + self.config.initial_rebalance_delay).min(deadline),
                    cap: deadline,
                    new_members: false,
                })
            } else {
                None
            };
        tracing::info!(
            group = %group.id,
            generation = group.generation,
            members = group.members.len(),
            reason,
            "group: preparing rebalance"
        );
        group.state = GroupState::PreparingRebalance;
        group.rebalance = Some(Rebalance {
            deadline,
            initial_delay,
        });
        self.wake.notify_one();
    }

    /// Completes the join phase if every member has rejoined, or the rebalance timed out.
    pub(super) fn try_complete_join(&self, group: &mut Group, now: Instant) {
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        let Some(rebalance) = &group.rebalance else {
            return;
        };
        if rebalance
            .initial_delay
            .as_ref()
            .is_some_and(|d| now < d.until)
        {
            return;
        }
        let all_joined =
            group.members.iter().all(|m| m.join_waiter.is_some()) && group.pending.is_empty();
        if !all_joined && now < rebalance.deadline {
            return;
        }
        // Members that did not rejoin in time are removed.
        let (stay, gone): (Vec<Member>, Vec<Member>) = std::mem::take(&mut group.members)
            .into_iter()
            .partition(|m| m.join_waiter.is_some());
        group.members = stay;
        for mut member in gone {
            tracing::info!(group = %group.id, member = %member.id, "group: member did not rejoin in time, removed");
            member.answer_sync(SyncOutcome::error(ec::UNKNOWN_MEMBER_ID));
        }
        group.pending.clear();
        group.rebalance = None;
        if group
            .leader
            .as_deref()
            .is_none_or(|l| group.member_index(l).is_none())
        {
            group.leader = group.members.first().map(|m| m.id.clone());
        }
        group.generation += 1;
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            group.protocol_name = None;
            group.leader = None;
            tracing::info!(group = %group.id, generation = group.generation, "group: empty");
            return;
        }
        group.protocol_name = group.select_protocol();
        group.state = GroupState::CompletingRebalance;
        tracing::info!(
            group = %group.id,
            generation = group.generation,
            protocol = group.protocol_name.as_deref().unwrap_or(""),
            leader = group.leader.as_deref().unwrap_or(""),
            members = group.members.len(),
            "group: join complete"
        );
        let outcomes: Vec<JoinOutcome> = group
            .members
            .iter()
            .map(|m| group.current_join_outcome(&m.id))
            .collect();
        for (member, outcome) in group.members.iter_mut().zip(outcomes) {
            member.last_seen = now;
            member.answer_join(outcome);
        }
        // Session deadlines count again now that nobody waits for a join answer.
        self.wake.notify_one();
    }

    /// Removes a member (leave, expiry) and moves the group on as Kafka does.
    pub(super) fn remove_member(
        &self,
        group: &mut Group,
        index: usize,
        now: Instant,
        reason: &str,
    ) {
        let mut member = group.members.remove(index);
        tracing::info!(group = %group.id, member = %member.id, reason, "group: member removed");
        member.answer_join(JoinOutcome::error(ec::UNKNOWN_MEMBER_ID, &member.id));
        member.answer_sync(SyncOutcome::error(ec::UNKNOWN_MEMBER_ID));
        if group.is_leader(&member.id) {
            group.leader = group.members.first().map(|m| m.id.clone());
        }
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(group, now, reason);
                self.try_complete_join(group, now);
            }
            GroupState::PreparingRebalance => self.try_complete_join(group, now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Applies every deadline that has passed; returns the next one.
    pub(super) fn tick(&self, group: &mut Group, now: Instant) -> Option<Instant> {
        let before = group.pending.len();
        group.pending.retain(|_, expiry| *expiry > now);
        if group.pending.len() != before {
            self.try_complete_join(group, now);
        }
        while let Some(index) = group.members.iter().position(|m| m.session_expired(now)) {
            self.remove_member(group, index, now, "session timeout");
        }
        if group.state == GroupState::PreparingRebalance {
            let mut delay_over = false;
            if let Some(rebalance) = &mut group.rebalance {
                if let Some(delay) = &mut rebalance.initial_delay {
                    if now >= delay.until {
                        if delay.new_members && now < delay.cap {
                            delay.until =
                                (now + self.config.initial_rebalance_delay).min(delay.cap);
                            delay.new_members = false;
                        } else {
                            rebalance.initial_delay = None;
                            delay_over = true;
                        }
                    }
                }
                delay_over |= now >= rebalance.deadline;
            }
            if delay_over {
                self.try_complete_join(group, now);
            }
        }
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| {
            if next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        };
        group.pending.values().for_each(|t| consider(*t));
        for member in &group.members {
            if member.join_waiter.is_none() && member.sync_waiter.is_none() {
                consider(member.last_seen + member.session_timeout);
            }
        }
        if let Some(rebalance) = &group.rebalance {
            consider(rebalance.deadline);
            if let Some(delay) = &rebalance.initial_delay {
                consider(delay.until);
            }
        }
        next
    }
}
