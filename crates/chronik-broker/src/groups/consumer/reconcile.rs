//! A member's way to its target assignment (KIP-848's reconciliation, Kafka's
//! `CurrentAssignmentBuilder`): a partition moves from one member to another only once the old
//! owner has acknowledged giving it up.
//!
//! A member is in one of three states:
//! - `Stable`: it owns what it was given at its epoch.
//! - `UnrevokedPartitions`: the target took partitions away from it; it is told to keep only
//!   the rest and stays at its epoch until a heartbeat's owned partitions show it no longer has
//!   the revoked ones. Only then does it move on (to the newest target epoch).
//! - `UnreleasedPartitions`: it is at the target epoch, but some partitions of its target are
//!   still owned (or being revoked) by another member; it gets them on a later heartbeat, once
//!   they are free.
//!
//! Plain data: the caller says which partitions are free (held by no other member).

use std::collections::BTreeSet;

use uuid::Uuid;

use super::assignor::Assignment;

/// Where a member stands in reconciling its assignment with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
}

impl MemberState {
    /// Kafka's name of the state (ConsumerGroupDescribe does not carry it; logs do).
    pub(crate) fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }
}

/// A member's assignment as reconciliation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reconciled {
    pub state: MemberState,
    pub epoch: i32,
    /// What the member may own now (what it is told).
    pub assigned: Assignment,
    /// What it has been asked to give up and has not yet confirmed giving up.
    pub pending_revocation: Assignment,
}

impl Reconciled {
    /// A member that just joined: epoch 0, nothing owned.
    pub(crate) fn joining() -> Reconciled {
        Reconciled {
            state: MemberState::Stable,
            epoch: 0,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
        }
    }

    /// One step: given the target (at `target_epoch`), the partitions the member said it owns
    /// (`None`: not sent in this heartbeat) and which partitions are free, the member's next
    /// state.
    pub(crate) fn next(
        &self,
        target: &Assignment,
        target_epoch: i32,
        owned: Option<&Assignment>,
        is_free: impl Fn(&Uuid, i32) -> bool,
    ) -> Reconciled {
        let step = |epoch| compute(&self.assigned, epoch, target, target_epoch, owned, &is_free);
        match self.state {
            MemberState::Stable if self.epoch == target_epoch => self.clone(),
            MemberState::Stable | MemberState::UnreleasedPartitions => step(self.epoch),
            MemberState::UnrevokedPartitions => {
                if owns_any(owned, &self.pending_revocation) {
                    self.clone()
                } else {
                    // Revoked: should more have to go, that is asked at the next epoch (as Kafka).
                    step(self.epoch + 1)
                }
            }
        }
    }
}

/// Whether the member still owns one of `revoked`, by the owned partitions its heartbeat sent
/// (`None`, not sent: assumed so).
fn owns_any(owned: Option<&Assignment>, revoked: &Assignment) -> bool {
    owned.is_none_or(|o| intersects(o, revoked))
}

/// The next assignment from what the member holds (`assigned`) toward `target`: partitions to
/// revoke first (unless the heartbeat shows the member no longer owns them); else the member
/// moves to the target epoch with every target partition that is free, waiting for the others.
fn compute(
    assigned: &Assignment,
    epoch: i32,
    target: &Assignment,
    target_epoch: i32,
    owned: Option<&Assignment>,
    is_free: &impl Fn(&Uuid, i32) -> bool,
) -> Reconciled {
    let mut keep = Assignment::new();
    let mut revoke = Assignment::new();
    let mut new_ones = Assignment::new();
    let mut unreleased = false;
    for (topic, parts) in assigned {
        let wanted = target.get(topic);
        for &p in parts {
            if wanted.is_some_and(|w| w.contains(&p)) {
                keep.entry(*topic).or_default().insert(p);
            } else {
                revoke.entry(*topic).or_default().insert(p);
            }
        }
    }
    for (topic, parts) in target {
        let have = assigned.get(topic);
        for &p in parts {
            if have.is_some_and(|h| h.contains(&p)) {
                continue;
            }
            if is_free(topic, p) {
                new_ones.entry(*topic).or_default().insert(p);
            } else {
                unreleased = true;
            }
        }
    }
    if !revoke.is_empty() && owns_any(owned, &revoke) {
        return Reconciled {
            state: MemberState::UnrevokedPartitions,
            epoch,
            assigned: keep,
            pending_revocation: revoke,
        };
    }
    for (topic, parts) in new_ones {
        keep.entry(topic).or_default().extend(parts);
    }
    Reconciled {
        state: if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        },
        epoch: target_epoch,
        assigned: keep,
        pending_revocation: Assignment::new(),
    }
}

/// Whether two assignments share a partition.
pub(crate) fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter().any(|(topic, parts)| {
        b.get(topic)
            .is_some_and(|other| parts.iter().any(|p| other.contains(p)))
    })
}

/// Whether every partition of `a` is in `b`.
pub(crate) fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter().all(|(topic, parts)| {
        parts.is_empty()
            || b.get(topic)
                .is_some_and(|other| parts.iter().all(|p| other.contains(p)))
    })
}

/// An assignment from (topic, partitions) pairs, without empty topics.
pub(crate) fn assignment_of(pairs: impl IntoIterator<Item = (Uuid, Vec<i32>)>) -> Assignment {
    let mut a = Assignment::new();
    for (topic, parts) in pairs {
        if !parts.is_empty() {
            a.entry(topic)
                .or_default()
                .extend(parts.into_iter().collect::<BTreeSet<i32>>());
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Uuid {
        Uuid::from_u128(7)
    }

    fn a(parts: &[i32]) -> Assignment {
        assignment_of([(t(), parts.to_vec())])
    }

    #[test]
    fn a_joining_member_gets_free_partitions_and_the_target_epoch() {
        let m = Reconciled::joining();
        let next = m.next(&a(&[0, 1]), 1, Some(&Assignment::new()), |_, _| true);
        assert_eq!(next.state, MemberState::Stable);
        assert_eq!(next.epoch, 1);
        assert_eq!(next.assigned, a(&[0, 1]));
    }

    #[test]
    fn a_partition_still_owned_elsewhere_waits_until_released() {
        let m = Reconciled::joining();
        // Partition 1 is held by another member.
        let next = m.next(&a(&[0, 1]), 2, Some(&Assignment::new()), |_, p| p != 1);
        assert_eq!(next.state, MemberState::UnreleasedPartitions);
        assert_eq!(next.epoch, 2);
        assert_eq!(next.assigned, a(&[0]));
        // Still held: nothing changes.
        let again = next.next(&a(&[0, 1]), 2, None, |_, p| p != 1);
        assert_eq!(again, next);
        // Released: the member gets it and is stable.
        let last = next.next(&a(&[0, 1]), 2, None, |_, _| true);
        assert_eq!(last.state, MemberState::Stable);
        assert_eq!(last.assigned, a(&[0, 1]));
    }

    #[test]
    fn revocation_comes_first_and_keeps_the_epoch_until_acknowledged() {
        let m = Reconciled {
            state: MemberState::Stable,
            epoch: 1,
            assigned: a(&[0, 1, 2, 3]),
            pending_revocation: Assignment::new(),
        };
        let target = a(&[0, 1]);
        let next = m.next(&target, 2, Some(&a(&[0, 1, 2, 3])), |_, _| false);
        assert_eq!(next.state, MemberState::UnrevokedPartitions);
        assert_eq!(next.epoch, 1, "the epoch moves only after the revocation");
        assert_eq!(next.assigned, a(&[0, 1]));
        assert_eq!(next.pending_revocation, a(&[2, 3]));
        // A heartbeat without owned partitions, or still owning 3: no change.
        assert_eq!(next.next(&target, 2, None, |_, _| false), next);
        assert_eq!(
            next.next(&target, 2, Some(&a(&[0, 1, 3])), |_, _| false),
            next
        );
        // Acknowledged: stable at the target epoch.
        let done = next.next(&target, 2, Some(&a(&[0, 1])), |_, _| false);
        assert_eq!(done.state, MemberState::Stable);
        assert_eq!(done.epoch, 2);
        assert_eq!(done.assigned, a(&[0, 1]));
        assert!(done.pending_revocation.is_empty());
    }

    #[test]
    fn after_revoking_the_member_moves_to_the_newest_target() {
        let m = Reconciled {
            state: MemberState::UnrevokedPartitions,
            epoch: 1,
            assigned: a(&[0, 1]),
            pending_revocation: a(&[2, 3]),
        };
        // Meanwhile the target moved on (epoch 3) and gives partition 2 back.
        let done = m.next(&a(&[0, 1, 2]), 3, Some(&a(&[0, 1])), |_, _| true);
        assert_eq!(done.state, MemberState::Stable);
        assert_eq!(done.epoch, 3);
        assert_eq!(done.assigned, a(&[0, 1, 2]));
    }

    #[test]
    fn partitions_the_member_already_dropped_are_not_asked_back() {
        let m = Reconciled {
            state: MemberState::Stable,
            epoch: 1,
            assigned: a(&[0, 1]),
            pending_revocation: Assignment::new(),
        };
        // The target drops 1, but the heartbeat shows the member owns only 0.
        let next = m.next(&a(&[0]), 2, Some(&a(&[0])), |_, _| true);
        assert_eq!(next.state, MemberState::Stable);
        assert_eq!(next.epoch, 2);
        assert_eq!(next.assigned, a(&[0]));
    }

    #[test]
    fn a_second_revocation_after_an_acknowledged_one_is_at_the_next_epoch() {
        let m = Reconciled {
            state: MemberState::UnrevokedPartitions,
            epoch: 1,
            assigned: a(&[0, 1]),
            pending_revocation: a(&[2]),
        };
        // Acknowledged, but meanwhile the target (epoch 3) takes 1 away too.
        let next = m.next(&a(&[0]), 3, Some(&a(&[0, 1])), |_, _| true);
        assert_eq!(next.state, MemberState::UnrevokedPartitions);
        assert_eq!(next.epoch, 2);
        assert_eq!(next.assigned, a(&[0]));
        assert_eq!(next.pending_revocation, a(&[1]));
    }

    #[test]
    fn a_stable_member_at_the_target_epoch_stays() {
        let m = Reconciled {
            state: MemberState::Stable,
            epoch: 4,
            assigned: a(&[1]),
            pending_revocation: Assignment::new(),
        };
        assert_eq!(m.next(&a(&[0, 1]), 4, None, |_, _| true), m);
    }

    #[test]
    fn subset_and_intersection() {
        assert!(is_subset(&a(&[1]), &a(&[0, 1])));
        assert!(!is_subset(&a(&[2]), &a(&[0, 1])));
        assert!(is_subset(&Assignment::new(), &a(&[0])));
        assert!(intersects(&a(&[1, 2]), &a(&[2])));
        assert!(!intersects(&a(&[1]), &a(&[2])));
    }
}
