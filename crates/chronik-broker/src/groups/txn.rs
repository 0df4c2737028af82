//! What the transaction coordinator asks of the group coordinator: whether a TxnOffsetCommit's
//! member and generation are the group's (as OffsetCommit checks them), and committing a
//! transaction's offsets when it commits (they count, and go to offsets.log, only then).

use super::offsets::{CommitParams, PartitionCommit};
use super::{ec, GroupCoordinator, GroupState};
use crate::txn::PendingOffset;

impl GroupCoordinator {
    /// TxnOffsetCommit v3+'s member check: NONE for a commit without group management
    /// (generation < 0), else as OffsetCommit: ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
    /// FENCED_INSTANCE_ID or REBALANCE_IN_PROGRESS.
    pub(crate) fn check_txn_member(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        if generation < 0 {
            return ec::NONE;
        }
        let mut groups = self.inner.groups();
        match groups.get_mut(group_id) {
            None => ec::ILLEGAL_GENERATION,
            Some(g) if g.instance_fenced(member_id, instance_id) => ec::FENCED_INSTANCE_ID,
            Some(g) => {
                let (state, current) = (g.state, g.generation);
                match g.member_mut(member_id) {
                    None => ec::UNKNOWN_MEMBER_ID,
                    Some(_) if generation != current => ec::ILLEGAL_GENERATION,
                    Some(_) if state == GroupState::CompletingRebalance => {
                        ec::REBALANCE_IN_PROGRESS
                    }
                    Some(_) => ec::NONE,
                }
            }
        }
    }

    /// Commits a committed transaction's offsets for `group_id` (recorded in offsets.log like
    /// any commit). Returns false when any was refused.
    pub(crate) fn commit_transactional(&self, group_id: &str, offsets: &[PendingOffset]) -> bool {
        if offsets.is_empty() {
            return true;
        }
        let mut topics: Vec<(String, Vec<PartitionCommit>)> = Vec::new();
        for o in offsets {
            let p = PartitionCommit {
                partition: o.partition,
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata.clone(),
            };
            match topics.iter_mut().find(|(t, _)| *t == o.topic) {
                Some((_, list)) => list.push(p),
                None => topics.push((o.topic.clone(), vec![p])),
            }
        }
        let result = self.inner.commit(CommitParams {
            group_id: group_id.to_string(),
            generation: -1,
            member_id: String::new(),
            instance_id: None,
            topics,
        });
        let ok = result
            .iter()
            .all(|(_, parts)| parts.iter().all(|(_, e)| *e == ec::NONE));
        if !ok {
            tracing::error!(
                group = group_id,
                "transactional offsets not committed: {result:?}"
            );
        }
        ok
    }
}
