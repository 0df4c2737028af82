//! A partition's transactions, as the log itself records them: the open transaction of each
//! transactional producer (the first offset it wrote since its last marker), the aborted ones
//! (first offset and the offset of the ABORT marker), and each producer's last timestamp and
//! coordinator epoch. Every stored entry passes through [`PartitionLog::observe_txn`], both on
//! append and when segments are scanned, so all of it is rebuilt from the log after a restart.
//!
//! Markers are control batches (magic 2, attributes transactional + control) of one record whose
//! key is `version i16 = 0, type i16` (0 ABORT, 1 COMMIT) and whose value is
//! `version i16 = 0, coordinator epoch i32`, as Kafka writes them.

use std::collections::HashMap;

use bytes::Bytes;

use super::{AppendError, PartitionLog};
use chronik_protocol::batch::{control_record, marker_batch, BatchHeader, CONTROL_ABORT as ABORT};

/// Most aborted transactions one fetch lists for a partition (a bound on the answer).
const MAX_ABORTED_LISTED: usize = 10_000;

/// An aborted transaction on this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of its first record here.
    pub first_offset: i64,
    /// Offset of its ABORT marker.
    pub last_offset: i64,
}

/// One producer as DescribeProducers shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerView {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// First offset of its open transaction here, or -1.
    pub txn_start_offset: i64,
}

/// What the log knows of transactions (see the module comment).
#[derive(Debug, Default)]
pub(super) struct TxnIndex {
    /// producer id -> first offset of its open transaction.
    open: HashMap<i64, i64>,
    /// Aborted transactions in marker order.
    aborted: Vec<AbortedTxn>,
    /// producer id -> largest timestamp of its newest batch.
    last_ts: HashMap<i64, i64>,
    /// producer id -> coordinator epoch of its newest marker.
    coordinator_epoch: HashMap<i64, i32>,
}

impl PartitionLog {
    /// Notes what a stored entry does to the partition's transactions: a transactional batch
    /// opens its producer's transaction (if not open), a marker closes it (an ABORT listing it
    /// as aborted) and moves the producer to the marker's epoch.
    pub(super) fn observe_txn(&mut self, bytes: &[u8], base_offset: i64) {
        let Some(h) = BatchHeader::parse(bytes) else {
            return;
        };
        if h.magic != 2 || h.producer_id < 0 {
            return;
        }
        let idx = &mut self.txns;
        idx.last_ts.insert(h.producer_id, h.max_timestamp);
        if h.is_control() {
            let Some((kind, coordinator_epoch)) = control_record(bytes) else {
                return;
            };
            idx.coordinator_epoch
                .insert(h.producer_id, coordinator_epoch);
            if let Some(first) = idx.open.remove(&h.producer_id) {
                if kind == ABORT {
                    idx.aborted.push(AbortedTxn {
                        producer_id: h.producer_id,
                        first_offset: first,
                        last_offset: base_offset,
                    });
                }
            }
            // A marker of a newer epoch fences the older one here; the new epoch's sequences
            // start again at 0.
            if let Some(st) = self.producers.get_mut(&h.producer_id) {
                if h.producer_epoch > st.epoch {
                    st.epoch = h.producer_epoch;
                    st.last_seq = -1;
                    st.recent.clear();
                }
            }
        } else if h.is_transactional() {
            idx.open.entry(h.producer_id).or_insert(base_offset);
        }
    }

    /// The last stable offset: the first offset of the earliest open transaction, else the
    /// high watermark.
    pub fn last_stable_offset(&self) -> i64 {
        self.txns
            .open
            .values()
            .copied()
            .min()
            .unwrap_or(self.next_offset)
            .min(self.next_offset)
    }

    /// The first offset of this producer's open transaction here, if it has one.
    pub fn open_transaction(&self, producer_id: i64) -> Option<i64> {
        self.txns.open.get(&producer_id).copied()
    }

    /// Producer ids with an open transaction here.
    pub fn open_producers(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.txns.open.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// [`PartitionLog::try_read`] that stops before `upper` (entries ending at or past it are
    /// not returned); also the last offset returned (or `offset - 1`).
    pub fn try_read_below(
        &self,
        offset: i64,
        max_bytes: usize,
        at_least_one: bool,
        upper: i64,
    ) -> std::io::Result<(Vec<Bytes>, i64)> {
        self.read_upto(offset, max_bytes, at_least_one, Some(upper))
    }

    /// Aborted transactions that overlap `from..=to` (marker at or after `from`, first offset at
    /// or before `to`), as a read_committed fetch of that range needs them.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let i = self.txns.aborted.partition_point(|a| a.last_offset < from);
        self.txns.aborted[i..]
            .iter()
            .filter(|a| a.first_offset <= to)
            .take(MAX_ABORTED_LISTED)
            .copied()
            .collect()
    }

    /// Writes a COMMIT or ABORT marker for this producer; returns its offset.
    pub fn write_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<i64, AppendError> {
        let b = marker_batch(
            producer_id,
            epoch,
            commit,
            coordinator_epoch,
            super::LEADER_EPOCH,
            now_ms,
        );
        self.append(&b, None).map(|a| a.base_offset)
    }

    /// The producers this partition knows (idempotent or transactional), by id.
    pub fn producer_views(&self) -> Vec<ProducerView> {
        let mut ids: Vec<i64> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| {
                let st = &self.producers[&id];
                ProducerView {
                    producer_id: id,
                    epoch: st.epoch,
                    last_sequence: st.last_seq,
                    last_timestamp: self.txns.last_ts.get(&id).copied().unwrap_or(-1),
                    coordinator_epoch: self.txns.coordinator_epoch.get(&id).copied().unwrap_or(-1),
                    txn_start_offset: self.txns.open.get(&id).copied().unwrap_or(-1),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronik_protocol::batch;

    /// A transactional data batch of `n` records (no record bodies checked by the index).
    fn txn_batch(pid: i64, epoch: i16, seq: i32, n: i32) -> Vec<u8> {
        let mut b = marker_batch(pid, epoch, true, 0, 0, 1);
        // Make it a data batch: transactional, not control, `n` records, base sequence.
        b[21..23].copy_from_slice(&batch::TRANSACTIONAL.to_be_bytes());
        b[23..27].copy_from_slice(&(n - 1).to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
        b[57..61].copy_from_slice(&n.to_be_bytes());
        let crc = batch::batch_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn lso_and_aborted_transactions_follow_the_markers() {
        let mut log = PartitionLog::in_memory();
        log.append(&txn_batch(1, 0, 0, 3), None).unwrap(); // 0..=2
        assert_eq!(log.last_stable_offset(), 0);
        log.append(&txn_batch(2, 0, 0, 2), None).unwrap(); // 3..=4
        log.write_marker(1, 0, false, 0, 5).unwrap(); // 5: abort pid 1
        assert_eq!(log.last_stable_offset(), 3);
        log.write_marker(2, 0, true, 0, 5).unwrap(); // 6: commit pid 2
        assert_eq!(log.last_stable_offset(), 7);
        assert_eq!(log.end_offset(), 7);
        assert_eq!(
            log.aborted_between(0, 6),
            vec![AbortedTxn {
                producer_id: 1,
                first_offset: 0,
                last_offset: 5
            }]
        );
        assert!(log.aborted_between(6, 6).is_empty());
        // Reading below the LSO while pid 3's transaction is open.
        log.append(&txn_batch(3, 0, 0, 1), None).unwrap(); // 7
        let (read, last) = log
            .try_read_below(0, usize::MAX, true, log.last_stable_offset())
            .unwrap();
        assert_eq!((read.len(), last), (4, 6));
    }

    #[test]
    fn a_newer_epoch_marker_fences_the_older_epoch() {
        let mut log = PartitionLog::in_memory();
        log.append(&txn_batch(1, 0, 0, 1), None).unwrap();
        log.write_marker(1, 1, false, 0, 5).unwrap();
        let err = log.append(&txn_batch(1, 0, 1, 1), None).unwrap_err();
        assert_eq!(err.code, chronik_protocol::errors::INVALID_PRODUCER_EPOCH);
        // The new epoch starts at sequence 0.
        log.append(&txn_batch(1, 1, 0, 1), None).unwrap();
    }
}
