//! The transaction coordinator (exactly-once): transactional ids, their producer ids and
//! epochs, and the transactions they run, as Kafka's coordinator serves them.
//!
//! How it works:
//! - Every transactional id's [`TxnMeta`] lives in one map behind a `std::sync::Mutex`, held
//!   for short, non-awaiting sections. `state.rs` is the state machine (plain values, Kafka's
//!   error codes); this module does what its transitions ask: writing COMMIT/ABORT markers
//!   into the partition logs (`log/txn.rs`), handing a committed transaction's offsets to the
//!   group coordinator, and recording each change in `transactions.log` (`store.rs`) when
//!   there is a data directory.
//! - EndTxn writes the markers into every partition of the transaction before it answers, so
//!   the Prepare states never outlive a request (Kafka answers first and writes the markers
//!   after; a client then sees CONCURRENT_TRANSACTIONS for a while, which cannot happen here).
//! - A transactional batch is appended while the coordinator's lock is held after checking it
//!   belongs to the open transaction (lock order: coordinator, then partition), so a marker can
//!   never land between the check and the append.
//! - A background task (started with the broker) aborts transactions that run past their
//!   timeout, bumping the epoch as Kafka does, which fences the producer.
//! - After a restart, the partition logs rebuild their open and aborted transactions from the
//!   batches and markers they hold (`log/txn.rs`), and `transactions.log` gives back every
//!   transactional id; a transaction found in PrepareCommit or PrepareAbort gets its missing
//!   markers, an Ongoing one carries on (and times out if its producer is gone).
//!
//! Deliberate differences from Kafka: the coordinator epoch written into markers is always 0
//! (one coordinator, never moved); `transactional.id.expiration.ms` is not applied (ids are
//! kept until the broker's data is removed); AddOffsetsToTxn's group is kept as a group, which
//! DescribeTransactions shows as partition 0 of `__consumer_offsets`.

mod state;
mod store;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard, Weak};
use std::time::Duration;

pub use state::{End, Init, PendingOffset, TxnMeta, TxnState};
use store::TxnStore;

use crate::groups::GroupCoordinator;
use crate::state::Shared;
use crate::topics::Topics;
use chronik_protocol::errors as ec;

/// Kafka's `transaction.max.timeout.ms` default: the longest `transaction.timeout.ms` a
/// producer may ask for.
pub const MAX_TIMEOUT_MS: i32 = 900_000;
/// How often timed-out transactions are looked for (Kafka:
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms`, 10 s).
const TIMEOUT_CHECK: Duration = Duration::from_millis(500);
/// The partition DescribeTransactions names for a group added with AddOffsetsToTxn.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Wall-clock ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Inner {
    metas: HashMap<String, TxnMeta>,
    store: Option<TxnStore>,
}

impl Inner {
    /// Records a new state (in `transactions.log` first, when there is one) and keeps it.
    fn save(&mut self, meta: TxnMeta) -> Result<(), i16> {
        if let Some(store) = self.store.as_mut() {
            store
                .append(&meta, &self.metas)
                .map_err(|_| ec::COORDINATOR_NOT_AVAILABLE)?;
        }
        self.metas.insert(meta.transactional_id.clone(), meta);
        Ok(())
    }

    /// The id's state, a copy to change and [`Inner::save`]; INVALID_PRODUCER_ID_MAPPING when
    /// the id is unknown (as Kafka).
    fn get(&self, tid: &str) -> Result<TxnMeta, i16> {
        self.metas
            .get(tid)
            .cloned()
            .ok_or(ec::INVALID_PRODUCER_ID_MAPPING)
    }
}

/// The lock held while a checked transactional batch is appended.
pub(crate) struct WriteGuard<'a>(#[allow(dead_code)] MutexGuard<'a, Inner>);

/// Transactional ids and their transactions.
pub(crate) struct TxnCoordinator {
    inner: Mutex<Inner>,
}

impl TxnCoordinator {
    /// Opens the coordinator, with `transactions.log` under `data_dir` if given (flushed to
    /// stable storage after every write with `sync`).
    pub fn open(data_dir: Option<&Path>, sync: bool) -> anyhow::Result<TxnCoordinator> {
        let (store, metas) = match data_dir {
            Some(d) => {
                let (s, m) = TxnStore::open(d, sync)?;
                (Some(s), m)
            }
            None => (None, HashMap::new()),
        };
        Ok(TxnCoordinator {
            inner: Mutex::new(Inner { metas, store }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The highest producer id any transactional id holds (or held), -1 if none.
    pub fn max_producer_id(&self) -> i64 {
        self.lock()
            .metas
            .values()
            .map(|m| m.producer_id.max(m.previous_producer_id))
            .max()
            .unwrap_or(-1)
    }

    /// After a restart: writes the markers a transaction in PrepareCommit or PrepareAbort did
    /// not get (partitions that still show it open) and completes it.
    pub fn recover(&self, topics: &Topics, groups: &GroupCoordinator) {
        let mut inner = self.lock();
        let preparing: Vec<TxnMeta> = inner
            .metas
            .values()
            .filter(|m| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
            .cloned()
            .collect();
        for mut meta in preparing {
            tracing::info!(transactional_id = %meta.transactional_id, state = meta.state.name(),
                "transaction: completing after a restart");
            finish(&mut meta, topics, groups, true);
            let _ = inner.save(meta);
        }
    }

    /// InitProducerId with a transactional id: the producer id and epoch to use, or an error
    /// (INVALID_REQUEST, INVALID_TRANSACTION_TIMEOUT, PRODUCER_FENCED, CONCURRENT_TRANSACTIONS
    /// after fencing an open transaction, which the client retries).
    pub fn init_producer_id(
        &self,
        shared: &Shared,
        tid: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), i16> {
        if tid.is_empty() {
            return Err(ec::INVALID_REQUEST);
        }
        if timeout_ms <= 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Err(ec::INVALID_TRANSACTION_TIMEOUT);
        }
        let now = now_ms();
        let new_pid = || shared.next_producer_id.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        let mut meta = match inner.metas.get(tid) {
            Some(m) => m.clone(),
            None => TxnMeta::new(tid, new_pid(), timeout_ms, now),
        };
        match meta.init(timeout_ms, expected, now, new_pid)? {
            Init::Ready => {
                let answer = (meta.producer_id, meta.epoch);
                inner.save(meta)?;
                tracing::info!(
                    transactional_id = tid,
                    producer_id = answer.0,
                    epoch = answer.1,
                    "transaction: producer initialised"
                );
                Ok(answer)
            }
            Init::AbortFirst => {
                tracing::info!(
                    transactional_id = tid,
                    epoch = meta.epoch,
                    "transaction: fencing the previous producer, aborting its transaction"
                );
                inner.save(meta.clone())?;
                finish(&mut meta, &shared.topics, &shared.groups, false);
                inner.save(meta)?;
                drop(inner);
                shared.appended.send_modify(|n| *n += 1);
                Err(ec::CONCURRENT_TRANSACTIONS)
            }
        }
    }

    /// AddPartitionsToTxn (not verify-only).
    pub fn add_partitions(
        &self,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), i16> {
        if tid.is_empty() {
            return Err(ec::INVALID_REQUEST);
        }
        let mut inner = self.lock();
        let mut meta = inner.get(tid)?;
        if meta.add_partitions(producer_id, epoch, partitions, now_ms())? {
            inner.save(meta)?;
        }
        Ok(())
    }

    /// AddPartitionsToTxn v4+ with verify_only: each partition's error, or one for all.
    pub fn verify_partitions(
        &self,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        if tid.is_empty() {
            return Err(ec::INVALID_REQUEST);
        }
        self.lock()
            .get(tid)?
            .verify_partitions(producer_id, epoch, partitions)
    }

    /// AddOffsetsToTxn.
    pub fn add_offsets(
        &self,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
    ) -> Result<(), i16> {
        if tid.is_empty() {
            return Err(ec::INVALID_REQUEST);
        }
        let mut inner = self.lock();
        let mut meta = inner.get(tid)?;
        if meta.add_group(producer_id, epoch, group, now_ms())? {
            inner.save(meta)?;
        }
        Ok(())
    }

    /// TxnOffsetCommit: stages the offsets until the transaction ends.
    pub fn stage_offsets(
        &self,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: Vec<PendingOffset>,
        abortable: bool,
    ) -> Result<(), i16> {
        if tid.is_empty() {
            return Err(ec::INVALID_REQUEST);
        }
        let mut inner = self.lock();
        let mut meta = inner.get(tid)?;
        meta.stage_offsets(producer_id, epoch, group, offsets, abortable, now_ms())?;
        inner.save(meta)
    }

    /// EndTxn: commits or aborts the open transaction (markers written, offsets committed)
    /// before answering.
    pub fn end_txn(
        &self,
        shared: &Shared,
        tid: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), i16> {
        if tid.is_empty() {
            return Err(ec::INVALID_REQUEST);
        }
        let mut inner = self.lock();
        let mut meta = inner.get(tid)?;
        match meta.end(producer_id, epoch, commit, now_ms())? {
            End::AlreadyDone => Ok(()),
            End::WriteMarkers => {
                inner.save(meta.clone())?;
                finish(&mut meta, &shared.topics, &shared.groups, false);
                tracing::info!(
                    transactional_id = tid,
                    producer_id,
                    epoch,
                    result = meta.state.name(),
                    "transaction: ended"
                );
                inner.save(meta)?;
                drop(inner);
                shared.appended.send_modify(|n| *n += 1);
                Ok(())
            }
        }
    }

    /// Checks a transactional batch for `partition` (the request's transactional id, or the
    /// producer id's when the request names none) and returns the lock to hold while it is
    /// appended. `abortable`: the Produce version knows TRANSACTION_ABORTABLE (v11+).
    pub fn check_write(
        &self,
        tid: Option<&str>,
        producer_id: i64,
        epoch: i16,
        partition: &(String, i32),
        abortable: bool,
    ) -> Result<WriteGuard<'_>, i16> {
        let inner = self.lock();
        let meta = match tid {
            Some(t) => inner.metas.get(t),
            None => inner.metas.values().find(|m| m.producer_id == producer_id),
        };
        let Some(meta) = meta else {
            return Err(ec::INVALID_PRODUCER_ID_MAPPING);
        };
        meta.check_write(producer_id, epoch, partition, abortable)?;
        Ok(WriteGuard(inner))
    }

    /// The partitions of `group` with offsets staged by an open transaction (OffsetFetch's
    /// require_stable answers them UNSTABLE_OFFSET_COMMIT).
    pub fn pending_offsets(&self, group: &str) -> std::collections::BTreeSet<(String, i32)> {
        self.lock()
            .metas
            .values()
            .filter_map(|m| m.groups.get(group))
            .flatten()
            .map(|o| (o.topic.clone(), o.partition))
            .collect()
    }

    /// One transactional id's state.
    pub fn describe(&self, tid: &str) -> Option<TxnMeta> {
        self.lock().metas.get(tid).cloned()
    }

    /// Every transactional id's state, by id.
    pub fn list(&self) -> Vec<TxnMeta> {
        let mut v: Vec<TxnMeta> = self.lock().metas.values().cloned().collect();
        v.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        v
    }

    /// Aborts every transaction past its timeout (epoch bumped: the producer is fenced).
    /// Returns how many.
    pub fn abort_timed_out(&self, shared: &Shared, now: i64) -> usize {
        let mut inner = self.lock();
        let expired: Vec<TxnMeta> = inner
            .metas
            .values()
            .filter(|m| m.timed_out(now))
            .cloned()
            .collect();
        let n = expired.len();
        for mut meta in expired {
            tracing::info!(transactional_id = %meta.transactional_id,
                timeout_ms = meta.timeout_ms, "transaction: timed out, aborting");
            meta.fence_for_timeout(now);
            if inner.save(meta.clone()).is_err() {
                continue;
            }
            finish(&mut meta, &shared.topics, &shared.groups, false);
            let _ = inner.save(meta);
        }
        drop(inner);
        if n > 0 {
            shared.appended.send_modify(|c| *c += 1);
        }
        n
    }
}

/// Completes a transaction in PrepareCommit or PrepareAbort: a marker into each of its
/// partitions (with `only_open`, only where the log still shows it open: a restart's second
/// try), the staged offsets to the group coordinator on commit, then Complete.
fn finish(meta: &mut TxnMeta, topics: &Topics, groups: &GroupCoordinator, only_open: bool) {
    let commit = meta.state == TxnState::PrepareCommit;
    let now = now_ms();
    for (topic, index) in &meta.partitions {
        let Some(part) = topics.get(topic).and_then(|t| t.partition(*index)) else {
            tracing::warn!(topic = %topic, partition = index, "transaction marker: no such partition");
            continue;
        };
        let mut log = part.lock().unwrap_or_else(|e| e.into_inner());
        if only_open && log.open_transaction(meta.producer_id).is_none() {
            continue;
        }
        if let Err(e) = log.write_marker(meta.producer_id, meta.epoch, commit, 0, now) {
            tracing::error!(topic = %topic, partition = index, error = %e.message,
                "transaction marker not written");
        }
    }
    if commit {
        for (group, offsets) in &meta.groups {
            groups.commit_transactional(group, offsets);
        }
    }
    meta.complete(now);
}

/// The timeout task: aborts timed-out transactions until the broker is gone.
pub(crate) async fn drive(shared: Weak<Shared>) {
    loop {
        tokio::time::sleep(TIMEOUT_CHECK).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.txns.abort_timed_out(&shared, now_ms());
    }
}
