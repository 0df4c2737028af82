//! One transactional id's state machine, as Kafka's transaction coordinator keeps it: plain
//! values in and out, error codes as Kafka's, no wire messages and no side effects. The
//! coordinator (`mod.rs`) writes the markers and commits the offsets a transition asks for.
//!
//! States: Empty (after InitProducerId), Ongoing (partitions or a group added), PrepareCommit /
//! PrepareAbort (EndTxn accepted, markers being written), CompleteCommit / CompleteAbort
//! (markers written). Here the markers are written while the coordinator holds its lock, so the
//! Prepare states are seen only by a restart that finds one in the transaction log.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use chronik_protocol::errors as ec;

/// A transaction's state (Kafka's names, as DescribeTransactions and ListTransactions show them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// Every state, for ListTransactions' filter.
    pub const ALL: [TxnState; 6] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
    ];

    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// The state of this name (Kafka also knows Dead and PrepareEpochFence, which are never
    /// listed).
    pub fn parse(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// An offset a TxnOffsetCommit asked to commit when the transaction commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// One transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last rotation (epoch exhausted), or -1.
    pub previous_producer_id: i64,
    /// -1 until the first InitProducerId completes.
    pub epoch: i16,
    /// The epoch before the last bump (a retried InitProducerId gets the current one back).
    pub last_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Partitions in the transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups added with AddOffsetsToTxn, with the offsets TxnOffsetCommit sent for them.
    pub groups: BTreeMap<String, Vec<PendingOffset>>,
    /// When the last transaction started (ms since the epoch; -1 after InitProducerId).
    pub start_ms: i64,
    pub last_update_ms: i64,
}

/// What InitProducerId asks the coordinator to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    /// Answer with the producer id and epoch now in the metadata.
    Ready,
    /// An open transaction was fenced (epoch bumped, state PrepareAbort): write its ABORT
    /// markers, complete it, and answer CONCURRENT_TRANSACTIONS so that the client retries.
    AbortFirst,
}

/// What EndTxn asks the coordinator to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// State is now PrepareCommit or PrepareAbort: write the markers (and commit the offsets),
    /// then [`TxnMeta::complete`].
    WriteMarkers,
    /// A retry of an EndTxn that already completed: nothing to do.
    AlreadyDone,
}

/// Epochs at or past this cannot be bumped; a new producer id is given instead.
const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;

impl TxnMeta {
    /// A new transactional id with this producer id, no epoch yet.
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMeta {
        TxnMeta {
            transactional_id: transactional_id.to_string(),
            producer_id,
            previous_producer_id: -1,
            epoch: -1,
            last_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeMap::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// Whether a Prepare state is in progress (markers not all written).
    fn preparing(&self) -> bool {
        matches!(self.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// InitProducerId for this transactional id. `expected` is the producer id and epoch the
    /// client names (v3+, when it has one); `new_pid` allocates a producer id when the epoch
    /// is exhausted. Errors: PRODUCER_FENCED, CONCURRENT_TRANSACTIONS.
    pub fn init(
        &mut self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
        new_pid: impl FnOnce() -> i64,
    ) -> Result<Init, i16> {
        if let Some((pid, epoch)) = expected {
            let valid = self.epoch == -1
                || pid == self.producer_id
                || (pid == self.previous_producer_id && epoch >= EPOCH_EXHAUSTED);
            if !valid {
                return Err(ec::PRODUCER_FENCED);
            }
        }
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => Err(ec::CONCURRENT_TRANSACTIONS),
            TxnState::Ongoing => {
                // Fence the current producer: this epoch is never returned to anyone.
                self.last_epoch = -1;
                self.epoch = self.epoch.saturating_add(1);
                self.state = TxnState::PrepareAbort;
                self.groups.values_mut().for_each(Vec::clear);
                self.last_update_ms = now_ms;
                Ok(Init::AbortFirst)
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let expected_epoch = expected.map(|(_, e)| e);
                if self.epoch >= EPOCH_EXHAUSTED && expected_epoch.is_none_or(|e| e == self.epoch) {
                    self.previous_producer_id = self.producer_id;
                    self.producer_id = new_pid();
                    self.last_epoch = -1;
                    self.epoch = 0;
                } else {
                    match expected_epoch {
                        // A new producer instance: the previous epoch is forgotten, so a
                        // retry from an older instance is fenced.
                        None => {
                            self.last_epoch = -1;
                            self.epoch = self.epoch.saturating_add(1).max(0);
                        }
                        // The producer continues after an error.
                        Some(e) if self.epoch == -1 || e == self.epoch => {
                            self.last_epoch = self.epoch;
                            self.epoch = self.epoch.saturating_add(1).max(0);
                        }
                        // A retry whose answer was lost: the current epoch again.
                        Some(e) if e == self.last_epoch => {}
                        Some(_) => return Err(ec::PRODUCER_FENCED),
                    }
                }
                self.timeout_ms = timeout_ms;
                self.state = TxnState::Empty;
                self.partitions.clear();
                self.groups.clear();
                self.start_ms = -1;
                self.last_update_ms = now_ms;
                Ok(Init::Ready)
            }
        }
    }

    /// Checks the producer id and epoch of a request: INVALID_PRODUCER_ID_MAPPING for another
    /// producer id, PRODUCER_FENCED for another epoch.
    pub fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), i16> {
        if producer_id != self.producer_id {
            Err(ec::INVALID_PRODUCER_ID_MAPPING)
        } else if epoch != self.epoch {
            Err(ec::PRODUCER_FENCED)
        } else {
            Ok(())
        }
    }

    /// Opens a transaction if none is open.
    fn begin(&mut self, now_ms: i64) {
        if self.state != TxnState::Ongoing {
            self.state = TxnState::Ongoing;
            self.partitions.clear();
            self.groups.clear();
            self.start_ms = now_ms;
        }
        self.last_update_ms = now_ms;
    }

    /// AddPartitionsToTxn: adds partitions, opening the transaction. Returns whether anything
    /// changed (nothing to persist otherwise).
    pub fn add_partitions(
        &mut self,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Result<bool, i16> {
        self.check_producer(producer_id, epoch)?;
        if self.preparing() {
            return Err(ec::CONCURRENT_TRANSACTIONS);
        }
        if self.state == TxnState::Ongoing && partitions.iter().all(|p| self.partitions.contains(p))
        {
            return Ok(false);
        }
        self.begin(now_ms);
        self.partitions.extend(partitions.iter().cloned());
        Ok(true)
    }

    /// AddPartitionsToTxn v4+ with verify_only: the error of each partition (NONE when it is
    /// in the open transaction, TRANSACTION_ABORTABLE when not), or one error for all.
    pub fn verify_partitions(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        self.check_producer(producer_id, epoch)?;
        if self.preparing() {
            return Err(ec::CONCURRENT_TRANSACTIONS);
        }
        Ok(partitions
            .iter()
            .map(|p| {
                if self.state == TxnState::Ongoing && self.partitions.contains(p) {
                    ec::NONE
                } else {
                    ec::TRANSACTION_ABORTABLE
                }
            })
            .collect())
    }

    /// AddOffsetsToTxn: adds the group's offsets (Kafka adds the group's `__consumer_offsets`
    /// partition), opening the transaction.
    pub fn add_group(
        &mut self,
        producer_id: i64,
        epoch: i16,
        group: &str,
        now_ms: i64,
    ) -> Result<bool, i16> {
        self.check_producer(producer_id, epoch)?;
        if self.preparing() {
            return Err(ec::CONCURRENT_TRANSACTIONS);
        }
        if self.state == TxnState::Ongoing && self.groups.contains_key(group) {
            return Ok(false);
        }
        self.begin(now_ms);
        self.groups.entry(group.to_string()).or_default();
        Ok(true)
    }

    /// A produce of a transactional batch to `partition`: the producer must match and the
    /// partition be in the open transaction. Errors as Kafka's verification gives them to a
    /// producer: INVALID_PRODUCER_ID_MAPPING, INVALID_PRODUCER_EPOCH (for PRODUCER_FENCED),
    /// CONCURRENT_TRANSACTIONS, and for a partition not added INVALID_TXN_STATE, or
    /// TRANSACTION_ABORTABLE when the request's version knows it (`abortable`).
    pub fn check_write(
        &self,
        producer_id: i64,
        epoch: i16,
        partition: &(String, i32),
        abortable: bool,
    ) -> Result<(), i16> {
        self.check_writer(producer_id, epoch)?;
        if self.state == TxnState::Ongoing && self.partitions.contains(partition) {
            Ok(())
        } else if abortable {
            Err(ec::TRANSACTION_ABORTABLE)
        } else {
            Err(ec::INVALID_TXN_STATE)
        }
    }

    /// What a write into the transaction (a produce, staged offsets) checks first: the
    /// producer's id and epoch (a fenced one is INVALID_PRODUCER_EPOCH here, as Kafka's
    /// partition leader says it), then that the transaction is not ending
    /// (CONCURRENT_TRANSACTIONS).
    fn check_writer(&self, producer_id: i64, epoch: i16) -> Result<(), i16> {
        self.check_producer(producer_id, epoch).map_err(|e| {
            if e == ec::PRODUCER_FENCED {
                ec::INVALID_PRODUCER_EPOCH
            } else {
                e
            }
        })?;
        if self.preparing() {
            return Err(ec::CONCURRENT_TRANSACTIONS);
        }
        Ok(())
    }

    /// TxnOffsetCommit: keeps the offsets until the transaction ends. The group must have been
    /// added (AddOffsetsToTxn); errors as [`TxnMeta::check_write`].
    pub fn stage_offsets(
        &mut self,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: Vec<PendingOffset>,
        abortable: bool,
        now_ms: i64,
    ) -> Result<(), i16> {
        self.check_writer(producer_id, epoch)?;
        let pending = match self.groups.get_mut(group) {
            Some(p) if self.state == TxnState::Ongoing => p,
            _ if abortable => return Err(ec::TRANSACTION_ABORTABLE),
            _ => return Err(ec::INVALID_TXN_STATE),
        };
        for o in offsets {
            pending.retain(|p| !(p.topic == o.topic && p.partition == o.partition));
            pending.push(o);
        }
        self.last_update_ms = now_ms;
        Ok(())
    }

    /// EndTxn. Errors: INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, CONCURRENT_TRANSACTIONS
    /// (the same end in progress), INVALID_TXN_STATE (nothing open, or the other end).
    pub fn end(
        &mut self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<End, i16> {
        self.check_producer(producer_id, epoch)?;
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                self.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                if !commit {
                    self.groups.values_mut().for_each(Vec::clear);
                }
                self.last_update_ms = now_ms;
                Ok(End::WriteMarkers)
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok(End::AlreadyDone)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ec::CONCURRENT_TRANSACTIONS)
            }
            _ => Err(ec::INVALID_TXN_STATE),
        }
    }

    /// The markers are written: PrepareCommit -> CompleteCommit, PrepareAbort -> CompleteAbort,
    /// and the transaction holds no partitions or groups any more (its start time stays, as
    /// Kafka keeps it until the next InitProducerId or transaction).
    pub fn complete(&mut self, now_ms: i64) {
        self.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            other => other,
        };
        self.partitions.clear();
        self.groups.clear();
        self.last_update_ms = now_ms;
    }

    /// Whether the open transaction has run past its timeout.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing && now_ms - self.start_ms > i64::from(self.timeout_ms)
    }

    /// Aborts a timed-out transaction as Kafka does: the epoch is bumped (fencing the
    /// producer) and the state is PrepareAbort; the coordinator then writes the ABORT markers.
    pub fn fence_for_timeout(&mut self, now_ms: i64) {
        if self.epoch < EPOCH_EXHAUSTED {
            self.last_epoch = -1;
            self.epoch += 1;
        }
        self.state = TxnState::PrepareAbort;
        self.groups.values_mut().for_each(Vec::clear);
        self.last_update_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> (String, i32) {
        (t.to_string(), p)
    }

    fn ready(meta: &mut TxnMeta) {
        assert_eq!(meta.init(60_000, None, 1, || 99), Ok(Init::Ready));
    }

    #[test]
    fn init_bumps_the_epoch_each_time() {
        let mut m = TxnMeta::new("t", 1000, 60_000, 0);
        ready(&mut m);
        assert_eq!(
            (m.producer_id, m.epoch, m.state),
            (1000, 0, TxnState::Empty)
        );
        ready(&mut m);
        assert_eq!(m.epoch, 1);
        // The old epoch is fenced.
        assert_eq!(
            m.add_partitions(1000, 0, &[tp("a", 0)], 2),
            Err(ec::PRODUCER_FENCED)
        );
        assert_eq!(m.add_partitions(1000, 1, &[tp("a", 0)], 2), Ok(true));
        assert_eq!(m.state, TxnState::Ongoing);
    }

    #[test]
    fn init_with_an_open_transaction_fences_and_aborts_it_first() {
        let mut m = TxnMeta::new("t", 1000, 60_000, 0);
        ready(&mut m);
        m.add_partitions(1000, 0, &[tp("a", 0)], 2).unwrap();
        assert_eq!(m.init(60_000, None, 3, || 99), Ok(Init::AbortFirst));
        assert_eq!((m.epoch, m.state), (1, TxnState::PrepareAbort));
        // Markers written: the retry bumps again.
        m.complete(4);
        assert_eq!(m.state, TxnState::CompleteAbort);
        assert!(m.partitions.is_empty());
        ready(&mut m);
        assert_eq!((m.epoch, m.state), (2, TxnState::Empty));
    }

    #[test]
    fn init_with_another_producer_id_is_fenced_and_a_lost_answer_is_repeated() {
        let mut m = TxnMeta::new("t", 1000, 60_000, 0);
        ready(&mut m);
        assert_eq!(
            m.init(60_000, Some((5, 0)), 1, || 99),
            Err(ec::PRODUCER_FENCED)
        );
        // The producer continues after an error with the epoch it has: bumped.
        assert_eq!(m.init(60_000, Some((1000, 0)), 1, || 99), Ok(Init::Ready));
        assert_eq!((m.epoch, m.last_epoch), (1, 0));
        // Its answer was lost and it asks again with the epoch it had: the same epoch back.
        assert_eq!(m.init(60_000, Some((1000, 0)), 1, || 99), Ok(Init::Ready));
        assert_eq!(m.epoch, 1);
        assert_eq!(
            m.init(60_000, Some((1000, 7)), 1, || 99),
            Err(ec::PRODUCER_FENCED)
        );
        // A new instance (no producer id named) bumps and forgets the previous epoch, so the
        // old instance's retry is fenced.
        ready(&mut m);
        assert_eq!((m.epoch, m.last_epoch), (2, -1));
        assert_eq!(
            m.init(60_000, Some((1000, 1)), 1, || 99),
            Err(ec::PRODUCER_FENCED)
        );
    }

    #[test]
    fn an_exhausted_epoch_rotates_the_producer_id() {
        let mut m = TxnMeta::new("t", 1000, 60_000, 0);
        ready(&mut m);
        m.epoch = EPOCH_EXHAUSTED;
        assert_eq!(m.init(60_000, None, 1, || 2000), Ok(Init::Ready));
        assert_eq!(
            (m.producer_id, m.epoch, m.previous_producer_id),
            (2000, 0, 1000)
        );
    }

    #[test]
    fn commit_and_abort_walk_the_states() {
        let mut m = TxnMeta::new("t", 1000, 60_000, 0);
        ready(&mut m);
        assert_eq!(m.end(1000, 0, true, 1), Err(ec::INVALID_TXN_STATE));
        m.add_partitions(1000, 0, &[tp("a", 0)], 2).unwrap();
        assert_eq!(m.add_partitions(1000, 0, &[tp("a", 0)], 2), Ok(false));
        m.add_group(1000, 0, "g", 2).unwrap();
        m.stage_offsets(
            1000,
            0,
            "g",
            vec![PendingOffset {
                topic: "in".into(),
                partition: 0,
                offset: 5,
                leader_epoch: -1,
                metadata: String::new(),
            }],
            false,
            3,
        )
        .unwrap();
        assert_eq!(m.end(1000, 0, true, 4), Ok(End::WriteMarkers));
        assert_eq!(m.state, TxnState::PrepareCommit);
        assert_eq!(m.groups["g"].len(), 1, "offsets are kept for the commit");
        assert_eq!(
            m.check_write(1000, 0, &tp("a", 0), false),
            Err(ec::CONCURRENT_TRANSACTIONS)
        );
        assert_eq!(m.end(1000, 0, true, 4), Err(ec::CONCURRENT_TRANSACTIONS));
        assert_eq!(
            m.add_partitions(1000, 0, &[tp("b", 0)], 4),
            Err(ec::CONCURRENT_TRANSACTIONS)
        );
        m.complete(5);
        assert_eq!(m.state, TxnState::CompleteCommit);
        assert_eq!(m.end(1000, 0, true, 6), Ok(End::AlreadyDone));
        assert_eq!(m.end(1000, 0, false, 6), Err(ec::INVALID_TXN_STATE));
        // Next transaction, aborted: the staged offsets go.
        m.add_group(1000, 0, "g", 7).unwrap();
        m.stage_offsets(1000, 0, "g", vec![], false, 7).unwrap();
        assert_eq!(m.end(1000, 0, false, 8), Ok(End::WriteMarkers));
        assert!(m.groups["g"].is_empty());
        m.complete(9);
        assert_eq!(m.state, TxnState::CompleteAbort);
        assert_eq!(m.end(1000, 1, false, 9), Err(ec::PRODUCER_FENCED));
        assert_eq!(m.end(7, 0, false, 9), Err(ec::INVALID_PRODUCER_ID_MAPPING));
    }

    #[test]
    fn writes_and_offsets_need_the_partition_or_group_added() {
        let mut m = TxnMeta::new("t", 1000, 60_000, 0);
        ready(&mut m);
        assert_eq!(
            m.check_write(1000, 0, &tp("a", 0), false),
            Err(ec::INVALID_TXN_STATE)
        );
        assert_eq!(
            m.check_write(1000, 0, &tp("a", 0), true),
            Err(ec::TRANSACTION_ABORTABLE)
        );
        m.add_partitions(1000, 0, &[tp("a", 0)], 1).unwrap();
        assert_eq!(m.check_write(1000, 0, &tp("a", 0), false), Ok(()));
        assert_eq!(
            m.check_write(1000, 0, &tp("a", 1), false),
            Err(ec::INVALID_TXN_STATE)
        );
        assert_eq!(
            m.check_write(1000, 1, &tp("a", 0), false),
            Err(ec::INVALID_PRODUCER_EPOCH)
        );
        assert_eq!(
            m.stage_offsets(1000, 0, "g", vec![], false, 1),
            Err(ec::INVALID_TXN_STATE)
        );
        assert_eq!(
            m.verify_partitions(1000, 0, &[tp("a", 0), tp("a", 1)]),
            Ok(vec![ec::NONE, ec::TRANSACTION_ABORTABLE])
        );
    }

    #[test]
    fn a_timed_out_transaction_is_fenced_and_aborted() {
        let mut m = TxnMeta::new("t", 1000, 1000, 0);
        assert_eq!(m.init(1000, None, 0, || 99), Ok(Init::Ready));
        m.add_partitions(1000, 0, &[tp("a", 0)], 10).unwrap();
        assert!(!m.timed_out(1000));
        assert!(m.timed_out(1011));
        m.fence_for_timeout(1011);
        assert_eq!((m.epoch, m.state), (1, TxnState::PrepareAbort));
        m.complete(1012);
        assert_eq!(
            m.add_partitions(1000, 0, &[tp("a", 0)], 1013),
            Err(ec::PRODUCER_FENCED)
        );
    }

    #[test]
    fn state_names_are_kafkas() {
        for s in TxnState::ALL {
            assert_eq!(TxnState::parse(s.name()), Some(s));
        }
        assert_eq!(TxnState::parse("Dead"), None);
    }
}
