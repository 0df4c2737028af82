//! A partition log: record sets stored as received (only `base_offset`, the partition leader
//! epoch and, for LogAppendTime topics, the timestamp fields are rewritten), indexed by offset.
//!
//! In memory by default. With a directory, every stored entry is also appended to the
//! partition's current segment file (a new one, named by its base offset, starts when the
//! current one would pass `segment.bytes`) as
//! `[payload len u32][crc32c u32][base i64][last i64][max_ts i64][payload]`, the CRC covering
//! everything after it. On open the segments are scanned and the log is cut at the first entry
//! that is incomplete or fails its CRC, so a torn tail is never served. Durability: each entry
//! is written with `write_all` before the produce is acknowledged (it reaches the OS and
//! survives a kill -9 of the process); there is no fsync, so a power loss can lose the newest
//! entries.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use chronik_protocol::batch::{self, BatchHeader, Entry};
use chronik_protocol::errors;

mod legacy;
mod txn;

pub use txn::{control_record, marker_batch, AbortedTxn, ProducerView};

use legacy::{legacy_assign, renumber_magic0_wrapper};

/// Bytes of the per-entry framing in a segment file.
const FRAME_HEADER: usize = 4 + 4 + 8 + 8 + 8;
/// How many recent batches per producer are remembered for duplicate detection (as Kafka).
const RECENT_BATCHES: usize = 5;
/// The leader epoch this single broker always has.
pub const LEADER_EPOCH: i32 = 0;

/// One stored entry: a magic-2 batch or one legacy message (possibly a compressed wrapper).
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
    entries: Vec<StoredEntry>,
    bytes: usize,
    file: Option<Segments>,
    producers: HashMap<i64, ProducerState>,
    /// Open and aborted transactions (see `txn.rs`).
    txns: txn::TxnIndex,
}

/// The segment files behind a log.
#[derive(Debug)]
struct Segments {
    dir: PathBuf,
    segment_bytes: u64,
    /// Base offsets of the segment files, oldest first (the last is the active one).
    bases: Vec<i64>,
    /// The last segment, open for appending.
    active: File,
    active_len: u64,
}

/// File in a partition directory holding the log start offset after DeleteRecords.
const START_CHECKPOINT: &str = "log-start-offset";

/// A segment's file name: its base offset, zero-padded as Kafka names them.
fn segment_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
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

    /// Opens (or creates) a partition directory of segment files named by their base offset,
    /// recovering every complete, intact entry. The first entry that is incomplete, fails its
    /// CRC or does not follow its predecessor ends the log: its segment is cut there and any
    /// later segments are removed. New entries go to the last segment until it would exceed
    /// `segment_bytes`, then a new segment starts.
    pub fn open_dir(dir: &Path, segment_bytes: u64) -> std::io::Result<(PartitionLog, Recovery)> {
        std::fs::create_dir_all(dir)?;
        let mut segments: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let base = name.strip_suffix(".log")?.parse::<i64>().ok()?;
                Some((base, e.path()))
            })
            .collect();
        segments.sort();
        let mut log = PartitionLog::default();
        let mut truncated = 0u64;
        let mut intact = true;
        let mut last: Option<(PathBuf, u64)> = None;
        let mut bases = Vec::new();
        // Records before this were deleted (DeleteRecords); older segments may be gone.
        let start = std::fs::read_to_string(dir.join(START_CHECKPOINT))
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0)
            .max(0);
        for (base, path) in segments {
            if bases.is_empty() && intact && base > 0 {
                // Older segments were removed after DeleteRecords: the log starts here.
                log.next_offset = base;
                log.start_offset = base;
            }
            if !intact || base != log.next_offset {
                truncated += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                tracing::warn!(segment = %path.display(), "removing a segment after a damaged one");
                std::fs::remove_file(&path)?;
                intact = false;
                continue;
            }
            let data = Bytes::from(std::fs::read(&path)?);
            let good = log.load_segment(&data);
            if good < data.len() {
                truncated += (data.len() - good) as u64;
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(good as u64)?;
                intact = false;
            }
            bases.push(base);
            last = Some((path, good as u64));
        }
        if bases.is_empty() && start > 0 {
            // Everything was deleted up to `start`: the log continues from there.
            log.next_offset = start;
        }
        log.advance_start(start);
        let (path, len) = last.unwrap_or_else(|| (dir.join(segment_name(log.next_offset)), 0));
        if bases.is_empty() {
            bases.push(log.next_offset);
        }
        let active = OpenOptions::new().create(true).append(true).open(&path)?;
        log.file = Some(Segments {
            dir: dir.to_path_buf(),
            segment_bytes: segment_bytes.max(1),
            bases,
            active,
            active_len: len,
        });
        let recovery = Recovery {
            entries: log.entries.len(),
            truncated_bytes: truncated,
        };
        Ok((log, recovery))
    }

    /// Loads the intact entries at the start of one segment's bytes; returns how many bytes
    /// they take.
    fn load_segment(&mut self, data: &Bytes) -> usize {
        let mut pos = 0usize;
        while data.len() - pos >= FRAME_HEADER {
            let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap_or([0; 4])) as usize;
            let crc = u32::from_be_bytes(data[pos + 4..pos + 8].try_into().unwrap_or([0; 4]));
            let Some(end) = (pos + FRAME_HEADER).checked_add(len) else {
                break;
            };
            if end > data.len() || crc32c::crc32c(&data[pos + 8..end]) != crc {
                break;
            }
            let num = |at: usize| i64::from_be_bytes(data[at..at + 8].try_into().unwrap_or([0; 8]));
            let entry = StoredEntry {
                base_offset: num(pos + 8),
                last_offset: num(pos + 16),
                max_timestamp: num(pos + 24),
                bytes: data.slice(pos + FRAME_HEADER..end),
            };
            if entry.base_offset != self.next_offset || entry.last_offset < entry.base_offset {
                break;
            }
            self.remember_producer(&entry.bytes, entry.base_offset);
            self.push(entry);
            pos = end;
        }
        pos
    }

    /// Adds an entry that follows the last one (offsets and size move on).
    fn push(&mut self, entry: StoredEntry) {
        self.observe_txn(&entry);
        self.next_offset = entry.last_offset + 1;
        self.bytes += entry.bytes.len();
        self.entries.push(entry);
    }

    /// Records an idempotent producer's batch (epoch, last sequence, recent batches) for
    /// duplicate and sequence checks; other entries are ignored.
    fn remember_producer(&mut self, bytes: &[u8], base_offset: i64) {
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
            self.bytes -= e.bytes.len();
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
        if let Some(seg) = self.file.as_mut() {
            let io = |e: std::io::Error| refuse(errors::KAFKA_STORAGE_ERROR, e.to_string());
            let tmp = seg.dir.join(format!("{START_CHECKPOINT}.tmp"));
            std::fs::write(&tmp, start.to_string()).map_err(io)?;
            std::fs::rename(&tmp, seg.dir.join(START_CHECKPOINT)).map_err(io)?;
            // A segment can go when the next one starts at or before the new start.
            while seg.bases.len() > 1 && seg.bases[1] <= start {
                let old = seg.bases.remove(0);
                std::fs::remove_file(seg.dir.join(segment_name(old))).map_err(io)?;
            }
        }
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
        let entries = batch::split(records);
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
            self.write_through(&entry)
                .map_err(|e| refuse(errors::KAFKA_STORAGE_ERROR, format!("write failed: {e}")))?;
            if header.is_some() {
                self.remember_producer(&entry.bytes, base);
            }
            self.push(entry);
        }
        Ok(Appended {
            base_offset: first,
            log_append_time: log_append_time.unwrap_or(-1),
            duplicate: false,
        })
    }

    /// Appends an entry to the active segment file (starting a new segment when it would pass
    /// `segment.bytes`); nothing to do for an in-memory log.
    fn write_through(&mut self, e: &StoredEntry) -> std::io::Result<()> {
        let Some(seg) = self.file.as_mut() else {
            return Ok(());
        };
        let mut frame = Vec::with_capacity(FRAME_HEADER + e.bytes.len());
        frame.extend_from_slice(&(e.bytes.len() as u32).to_be_bytes());
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(&e.base_offset.to_be_bytes());
        frame.extend_from_slice(&e.last_offset.to_be_bytes());
        frame.extend_from_slice(&e.max_timestamp.to_be_bytes());
        frame.extend_from_slice(&e.bytes);
        let crc = crc32c::crc32c(&frame[8..]);
        frame[4..8].copy_from_slice(&crc.to_be_bytes());
        if seg.active_len > 0 && seg.active_len + frame.len() as u64 > seg.segment_bytes {
            let path = seg.dir.join(segment_name(e.base_offset));
            seg.active = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&path)?;
            seg.active_len = 0;
            seg.bases.push(e.base_offset);
        }
        if let Err(err) = seg.active.write_all(&frame) {
            // Leave no partial entry behind for the next append to follow.
            let _ = seg.active.set_len(seg.active_len);
            return Err(err);
        }
        seg.active_len += frame.len() as u64;
        Ok(())
    }

    /// Stored entries from the one holding `offset`, at most `max_bytes` of them but always the
    /// first one (so a large batch cannot stall a consumer), when `at_least_one` is set.
    pub fn read(&self, offset: i64, max_bytes: usize, at_least_one: bool) -> Vec<Bytes> {
        let i = self.entries.partition_point(|e| e.last_offset < offset);
        let mut out = Vec::new();
        let mut total = 0usize;
        for e in &self.entries[i..] {
            if total + e.bytes.len() > max_bytes && !(out.is_empty() && at_least_one) {
                break;
            }
            total += e.bytes.len();
            out.push(e.bytes.clone());
        }
        out
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
