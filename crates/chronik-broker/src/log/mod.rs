//! A partition log: record sets stored as received (only `base_offset`, the partition leader
//! epoch and, for LogAppendTime topics, the timestamp fields are rewritten), indexed by offset.
//!
//! In memory by default. With a directory, every stored entry is appended to the partition's
//! current segment file (a new one, named by its base offset, starts when the current one would
//! pass `segment.bytes` or is older than `segment.ms`) as
//! `[payload len u32][crc32c u32][base i64][last i64][max_ts i64][payload]`, the CRC covering
//! everything after it, and only an index of the entries stays in memory (`store.rs`: the bytes
//! are read from the file when fetched). On open the segments are scanned and the log is cut at
//! the first entry that is incomplete or fails its CRC, so a torn tail is never served.
//! Durability is the `--fsync` policy's ([`Fsync`]). Retention removes whole segments
//! (`retention.rs`).

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use chronik_protocol::batch::{self, BatchHeader, Entry};
use chronik_protocol::errors;

mod legacy;
mod retention;
mod store;
mod txn;

pub use txn::{AbortedTxn, ProducerView};

use legacy::{legacy_assign, renumber_magic0_wrapper};
pub use retention::Retention;
pub use store::Fsync;
use store::{IndexEntry, Store};
/// How many recent batches per producer are remembered for duplicate detection (as Kafka).
const RECENT_BATCHES: usize = 5;
/// The leader epoch this single broker always has.
pub const LEADER_EPOCH: i32 = 0;

/// One entry as appended: a magic-2 batch or one legacy message (possibly a compressed wrapper).
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// Offset of the first record (of the message, for legacy entries).
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// Largest record timestamp (the broker's time for LogAppendTime topics).
    pub max_timestamp: i64,
    /// The entry as stored and served, base offset rewritten.
    pub bytes: Bytes,
}

/// What the idempotent producer last did on this partition.
#[derive(Debug, Clone, Default)]
struct ProducerState {
    epoch: i16,
    last_seq: i32,
    /// (first sequence, last sequence, base offset) of the newest batches.
    recent: VecDeque<(i32, i32, i64)>,
}

/// The outcome of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Offset given to the first record appended (or of the original, for a duplicate).
    pub base_offset: i64,
    /// The broker time written into LogAppendTime batches, else -1.
    pub log_append_time: i64,
    /// True when the batch was a duplicate of a recent one and was not stored again.
    pub duplicate: bool,
}

/// Why an append was refused: an error code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendError {
    /// Kafka error code for the partition response.
    pub code: i16,
    /// Why, for the log and `error_message`.
    pub message: String,
}

/// An [`AppendError`] with this code and message.
fn refuse(code: i16, message: impl Into<String>) -> AppendError {
    AppendError {
        code,
        message: message.into(),
    }
}

/// One partition's log.
#[derive(Debug, Default)]
pub struct PartitionLog {
    start_offset: i64,
    next_offset: i64,
    /// Every entry from the log start on: offsets, timestamp and where its bytes are.
    entries: Vec<IndexEntry>,
    /// Bytes of the entries' payloads.
    bytes: usize,
    store: Store,
    producers: HashMap<i64, ProducerState>,
    /// Open and aborted transactions (see `txn.rs`).
    txns: txn::TxnIndex,
}

/// What a scan of the segment files found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Intact entries recovered.
    pub entries: usize,
    /// Bytes cut or removed (a torn or corrupt tail, and any segments after it).
    pub truncated_bytes: u64,
}

impl PartitionLog {
    /// An empty in-memory log.
    pub fn in_memory() -> PartitionLog {
        PartitionLog::default()
    }

    /// Sets how segments roll: `segment.bytes` and `segment.ms` (-1: never by time).
    pub fn set_segment_limits(&mut self, segment_bytes: u64, segment_ms: i64) {
        self.store.segment_bytes = segment_bytes.max(1);
        self.store.segment_ms = segment_ms;
    }

    /// Sets when segment files are flushed to stable storage.
    pub fn set_fsync(&mut self, fsync: Fsync) {
        self.store.fsync = fsync;
    }

    /// Adds an entry that follows the last one (offsets and size move on).
    fn push(&mut self, entry: IndexEntry) {
        self.next_offset = entry.last_offset + 1;
        self.bytes += entry.len as usize;
        self.entries.push(entry);
    }

    /// Records an idempotent producer's batch (epoch, last sequence, recent batches) for
    /// duplicate and sequence checks; other entries are ignored. Every stored entry passes
    /// here (on append and when segments are scanned), so it first notes what the entry does
    /// to the partition's transactions (`txn.rs`).
    fn remember_producer(&mut self, bytes: &[u8], base_offset: i64) {
        self.observe_txn(bytes, base_offset);
        let Some(h) = BatchHeader::parse(bytes) else {
            return;
        };
        if h.magic != 2 || h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        let last_seq = seq_add(h.base_sequence, h.last_offset_delta);
        let st = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != st.epoch {
            st.recent.clear();
        }
        st.epoch = h.producer_epoch;
        st.last_seq = last_seq;
        st.recent
            .push_back((h.base_sequence, last_seq, base_offset));
        while st.recent.len() > RECENT_BATCHES {
            st.recent.pop_front();
        }
    }

    /// Moves the log start offset (never past the end); drops entries wholly before it.
    fn advance_start(&mut self, start: i64) {
        let start = start.min(self.next_offset);
        if start <= self.start_offset {
            return;
        }
        self.start_offset = start;
        let keep = self.entries.partition_point(|e| e.last_offset < start);
        for e in self.entries.drain(..keep) {
            self.bytes -= e.len as usize;
        }
    }

    /// DeleteRecords: makes `before` (-1: the high watermark) the log start offset, forgets the
    /// records before it and removes segment files that hold only such records. Returns the
    /// new log start offset (the low watermark).
    pub fn delete_records(&mut self, before: i64) -> Result<i64, AppendError> {
        let before = if before == -1 {
            self.next_offset
        } else {
            before
        };
        if before < 0 || before > self.next_offset {
            return Err(refuse(
                errors::OFFSET_OUT_OF_RANGE,
                format!("offset {before} is outside 0..={}", self.next_offset),
            ));
        }
        self.advance_start(before);
        let start = self.start_offset;
        let io = |e: std::io::Error| refuse(errors::KAFKA_STORAGE_ERROR, e.to_string());
        self.store.write_start(start).map_err(io)?;
        // A segment can go when the next one starts at or before the new start.
        let segs = &self.store.segments;
        let gone = (1..segs.len())
            .take_while(|&i| segs[i].base <= start)
            .count();
        self.store.remove_oldest(gone).map_err(io)?;
        Ok(start)
    }

    /// Offset of the first stored record.
    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// The next offset to be assigned (the high watermark on this single broker).
    pub fn end_offset(&self) -> i64 {
        self.next_offset
    }

    /// Bytes of stored entries.
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }

    /// Highest producer id seen in the log (for id allocation after a restart).
    pub fn max_producer_id(&self) -> i64 {
        self.producers.keys().copied().max().unwrap_or(-1)
    }

    /// Validates a produced record set, checks idempotent sequences, assigns offsets and stores
    /// it. `log_append_time` is the broker time when the topic uses LogAppendTime.
    pub fn append(
        &mut self,
        records: &[u8],
        log_append_time: Option<i64>,
    ) -> Result<Appended, AppendError> {
        let entries: Vec<Entry> = batch::split(records).collect();
        if entries.is_empty() {
            return Err(refuse(errors::CORRUPT_MESSAGE, "empty record set"));
        }
        // Validate every entry before storing any.
        let mut parsed = Vec::with_capacity(entries.len().min(1024));
        for e in &entries {
            match *e {
                Entry::Batch { start, end } => {
                    let b = &records[start..end];
                    let h = BatchHeader::parse(b)
                        .ok_or_else(|| refuse(errors::CORRUPT_MESSAGE, "short batch"))?;
                    if batch::batch_crc(b) != h.crc {
                        return Err(refuse(
                            errors::CORRUPT_MESSAGE,
                            format!("batch CRC-32C mismatch at byte {start}"),
                        ));
                    }
                    if h.last_offset_delta < 0 || h.records_count < 0 {
                        return Err(refuse(errors::INVALID_RECORD, "negative record count"));
                    }
                    parsed.push((start, end, Some(h)));
                }
                Entry::Legacy { start, end, .. } => {
                    let m = &records[start..end];
                    let stored = u32::from_be_bytes([m[12], m[13], m[14], m[15]]);
                    let mut crc = flate2::Crc::new();
                    crc.update(&m[16..]);
                    if crc.sum() != stored {
                        return Err(refuse(
                            errors::CORRUPT_MESSAGE,
                            format!("legacy message CRC-32 mismatch at byte {start}"),
                        ));
                    }
                    parsed.push((start, end, None));
                }
                Entry::Partial { start, .. } => {
                    return Err(refuse(
                        errors::CORRUPT_MESSAGE,
                        format!("record set ends inside an entry at byte {start}"),
                    ))
                }
                Entry::Invalid { start, reason, .. } => {
                    return Err(refuse(
                        errors::CORRUPT_MESSAGE,
                        format!("{reason} at byte {start}"),
                    ))
                }
            }
        }
        // Idempotent producer: the first batch decides (clients send one batch per partition).
        if let Some((_, _, Some(h))) = parsed.first() {
            if h.producer_id >= 0 && h.base_sequence >= 0 {
                if let Some(st) = self.producers.get(&h.producer_id) {
                    if h.producer_epoch < st.epoch {
                        return Err(refuse(
                            errors::INVALID_PRODUCER_EPOCH,
                            format!(
                                "producer epoch {} is older than {}",
                                h.producer_epoch, st.epoch
                            ),
                        ));
                    }
                    if h.producer_epoch == st.epoch {
                        let last = seq_add(h.base_sequence, h.last_offset_delta);
                        if let Some(&(_, _, base)) = st
                            .recent
                            .iter()
                            .find(|(f, l, _)| *f == h.base_sequence && *l == last)
                        {
                            return Ok(Appended {
                                base_offset: base,
                                log_append_time: log_append_time.unwrap_or(-1),
                                duplicate: true,
                            });
                        }
                        let expected = seq_add(st.last_seq, 1);
                        if h.base_sequence != expected {
                            return Err(refuse(
                                errors::OUT_OF_ORDER_SEQUENCE_NUMBER,
                                format!(
                                    "sequence {} where {} was expected",
                                    h.base_sequence, expected
                                ),
                            ));
                        }
                    }
                }
            }
        }
        let first = self.next_offset;
        for (start, end, header) in parsed {
            let mut bytes = records[start..end].to_vec();
            let base = self.next_offset;
            let (last, max_ts) = match header {
                Some(h) => {
                    batch::set_base_offset(&mut bytes, base);
                    bytes[12..16].copy_from_slice(&LEADER_EPOCH.to_be_bytes());
                    let mut max_ts = h.max_timestamp;
                    if let Some(now) = log_append_time {
                        let attrs = h.attributes | 0x08;
                        bytes[21..23].copy_from_slice(&attrs.to_be_bytes());
                        bytes[35..43].copy_from_slice(&now.to_be_bytes());
                        let crc = batch::batch_crc(&bytes);
                        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
                        max_ts = now;
                    }
                    (base + h.last_offset_delta as i64, max_ts)
                }
                None => {
                    if bytes[16] == 0 && bytes[17] & 0x07 != 0 {
                        if let Some(rewritten) = renumber_magic0_wrapper(&bytes, base) {
                            bytes = rewritten;
                        }
                    }
                    legacy_assign(&mut bytes, base, log_append_time)
                }
            };
            let entry = StoredEntry {
                base_offset: base,
                last_offset: last,
                max_timestamp: max_ts,
                bytes: Bytes::from(bytes),
            };
            let held = self
                .store
                .append(&entry, store::now_ms())
                .map_err(|e| refuse(errors::KAFKA_STORAGE_ERROR, format!("write failed: {e}")))?;
            if header.is_some() {
                self.remember_producer(&entry.bytes, base);
            }
            self.push(IndexEntry {
                base_offset: entry.base_offset,
                last_offset: entry.last_offset,
                max_timestamp: entry.max_timestamp,
                len: entry.bytes.len() as u32,
                held,
            });
        }
        Ok(Appended {
            base_offset: first,
            log_append_time: log_append_time.unwrap_or(-1),
            duplicate: false,
        })
    }

    /// Stored entries from the one holding `offset`, at most `max_bytes` of them but always the
    /// first one (so a large batch cannot stall a consumer), when `at_least_one` is set.
    /// A log with a directory reads them from its segment files (nothing when that fails; the
    /// error is logged: [`PartitionLog::try_read`] returns it).
    pub fn read(&self, offset: i64, max_bytes: usize, at_least_one: bool) -> Vec<Bytes> {
        self.try_read(offset, max_bytes, at_least_one)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, offset, "reading a segment file failed");
                Vec::new()
            })
    }

    /// [`PartitionLog::read`], with the error when a segment file cannot be read.
    pub fn try_read(
        &self,
        offset: i64,
        max_bytes: usize,
        at_least_one: bool,
    ) -> std::io::Result<Vec<Bytes>> {
        self.read_upto(offset, max_bytes, at_least_one, None)
            .map(|(read, _)| read)
    }

    /// The entries from `offset` within `max_bytes` (at least one if `at_least_one`), stopping
    /// before the first that ends at or past `upper`; also the last offset returned (or
    /// `offset - 1`).
    fn read_upto(
        &self,
        offset: i64,
        max_bytes: usize,
        at_least_one: bool,
        upper: Option<i64>,
    ) -> std::io::Result<(Vec<Bytes>, i64)> {
        let i = self.entries.partition_point(|e| e.last_offset < offset);
        let mut n = 0usize;
        let mut total = 0usize;
        let mut last = offset - 1;
        for e in &self.entries[i..] {
            let len = e.len as usize;
            if upper.is_some_and(|u| e.last_offset >= u) {
                break;
            }
            if total + len > max_bytes && !(n == 0 && at_least_one) {
                break;
            }
            total += len;
            last = e.last_offset;
            n += 1;
        }
        Ok((self.store.read(&self.entries[i..i + n])?, last))
    }

    /// Offset of the first entry whose max timestamp is at or after `ts`, with that timestamp.
    pub fn offset_for_timestamp(&self, ts: i64) -> Option<(i64, i64)> {
        self.entries
            .iter()
            .find(|e| e.max_timestamp >= ts)
            .map(|e| (e.base_offset.max(self.start_offset), e.max_timestamp))
    }

    /// The last offset of the entry with the largest timestamp, with that timestamp.
    pub fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        self.entries
            .iter()
            .max_by_key(|e| e.max_timestamp)
            .map(|e| (e.last_offset, e.max_timestamp))
    }
}

/// `seq + n` for producer sequence numbers, which wrap from i32::MAX to 0.
fn seq_add(seq: i32, n: i32) -> i32 {
    ((seq as i64 + n as i64) % (i32::MAX as i64 + 1)) as i32
}

#[cfg(test)]
mod tests;
