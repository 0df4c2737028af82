//! Where a partition log's entries live: the segments (base offset, size, timestamps) and, with
//! a directory, their files. An in-memory log keeps each entry's bytes in its index; a log with a
//! directory keeps only where each entry is (segment, position, length) and reads the bytes from
//! the segment file when they are fetched, so memory holds the index and not the data.
//!
//! Both kinds roll segments by the same rules (`segment.bytes`, `segment.ms`), so retention
//! (`retention.rs`) removes the same whole segments from either.
//!
//! Durability ([`Fsync`]): every entry is written with `write_all` before the produce is
//! acknowledged, so it reaches the operating system and survives a kill -9 of the process.
//! What survives a power loss depends on the policy: `never` leaves it to the OS writeback;
//! `interval` makes the housekeeping task `fdatasync` every log with unsynced writes every
//! interval and syncs a segment (and the directory) when it is rolled; `always` syncs the entry
//! before the produce is acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{PartitionLog, Recovery, StoredEntry};

/// Bytes of the per-entry framing in a segment file:
/// `[payload len u32][crc32c u32][base i64][last i64][max_ts i64]`.
pub(super) const FRAME_HEADER: usize = 4 + 4 + 8 + 8 + 8;

/// File in a partition directory holding the log start offset after DeleteRecords or retention.
pub(super) const START_CHECKPOINT: &str = "log-start-offset";

/// When segment files are flushed to stable storage (`--fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Never: the OS writes back when it likes (survives kill -9, not a power loss).
    #[default]
    Never,
    /// By the housekeeping task every interval, and on every segment roll.
    Interval,
    /// Before every produce is acknowledged.
    Always,
}

impl std::str::FromStr for Fsync {
    type Err = String;
    fn from_str(s: &str) -> Result<Fsync, String> {
        match s {
            "never" => Ok(Fsync::Never),
            "interval" => Ok(Fsync::Interval),
            "always" => Ok(Fsync::Always),
            _ => Err(format!("{s:?}: expected never, interval or always")),
        }
    }
}

/// Where an entry's bytes are.
#[derive(Debug, Clone)]
pub(super) enum Held {
    /// In memory (logs without a directory).
    Memory(Bytes),
    /// In the segment file with this base offset, the payload at this position.
    File { segment: i64, pos: u64 },
}

/// One entry of the index: its offsets, largest timestamp, length and where its bytes are.
#[derive(Debug, Clone)]
pub(super) struct IndexEntry {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub len: u32,
    pub held: Held,
}

/// One segment: a run of entries from `base`, `size` bytes with their framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Offset of its first entry (the file's name).
    pub base: i64,
    /// Bytes it takes (entries with their framing, as in the file).
    pub size: u64,
    /// Largest timestamp of its entries (-1 when empty).
    pub max_ts: i64,
    /// The first entry's largest timestamp: `segment.ms` counts from it (as Kafka).
    pub roll_ts: Option<i64>,
    /// When the segment was started (broker clock), for `segment.ms` when the first entry
    /// carries no timestamp.
    pub created_ms: i64,
    /// When it was last written (the file's mtime after a restart); retention by time uses it
    /// for a segment whose entries carry no timestamp, as Kafka does.
    pub modified_ms: i64,
}

impl Segment {
    fn new(base: i64, now_ms: i64) -> Segment {
        Segment {
            base,
            size: 0,
            max_ts: -1,
            roll_ts: None,
            created_ms: now_ms,
            modified_ms: now_ms,
        }
    }

    /// The timestamp retention by time compares: the largest record timestamp, or when the
    /// segment was last written if no entry has one.
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_ts >= 0 {
            self.max_ts
        } else {
            self.modified_ms
        }
    }

    fn add(&mut self, frame_len: u64, max_ts: i64) {
        self.size += frame_len;
        self.max_ts = self.max_ts.max(max_ts);
        if self.roll_ts.is_none() {
            self.roll_ts = Some(max_ts);
        }
    }
}

/// A segment's file name: its base offset, zero-padded as Kafka names them.
pub(crate) fn segment_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
}

/// The segments of a log and, with a directory, the active segment's file.
#[derive(Debug)]
pub(super) struct Store {
    dir: Option<PathBuf>,
    /// `segment.bytes`: a segment rolls when the next entry would take it past this.
    pub segment_bytes: u64,
    /// `segment.ms`: a segment rolls when its first entry is older than this (-1: never).
    pub segment_ms: i64,
    pub fsync: Fsync,
    /// Oldest first; the last is the active one. Empty only before the first entry.
    pub segments: Vec<Segment>,
    active: Option<File>,
    /// Whether the active file has writes not yet synced.
    dirty: bool,
}

impl Default for Store {
    fn default() -> Store {
        Store {
            dir: None,
            segment_bytes: 1 << 30,
            segment_ms: -1,
            fsync: Fsync::Never,
            segments: Vec::new(),
            active: None,
            dirty: false,
        }
    }
}

/// The framing of one entry, CRC included.
fn frame_header(e: &StoredEntry) -> [u8; FRAME_HEADER] {
    let mut h = [0u8; FRAME_HEADER];
    h[0..4].copy_from_slice(&(e.bytes.len() as u32).to_be_bytes());
    h[8..16].copy_from_slice(&e.base_offset.to_be_bytes());
    h[16..24].copy_from_slice(&e.last_offset.to_be_bytes());
    h[24..32].copy_from_slice(&e.max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[8..]), &e.bytes);
    h[4..8].copy_from_slice(&crc.to_be_bytes());
    h
}

/// The broker's clock in ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    chronik_capture::now_micros() / 1000
}

/// fsync of a directory (so a new file's name survives a power loss).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Store {
    /// Stores one entry (rolling first when `segment.bytes` or `segment.ms` says so) and says
    /// where it is. `now_ms` is the broker's clock. As in Kafka, the time a segment has waited
    /// is the new entry's timestamp minus the first entry's, or, when the first entry has none,
    /// the broker's time since the segment was started.
    pub fn append(&mut self, e: &StoredEntry, now_ms: i64) -> std::io::Result<Held> {
        let frame_len = (FRAME_HEADER + e.bytes.len()) as u64;
        let roll = match self.segments.last() {
            None => true,
            Some(s) if s.size == 0 => false,
            Some(s) => {
                let waited = match s.roll_ts {
                    Some(t) if t >= 0 => e.max_timestamp.saturating_sub(t),
                    _ => now_ms.saturating_sub(s.created_ms),
                };
                s.size + frame_len > self.segment_bytes
                    || (self.segment_ms >= 0 && waited > self.segment_ms)
            }
        };
        if roll {
            self.roll(e.base_offset, now_ms)?;
        }
        let held = match self.active.as_mut() {
            Some(file) => {
                let start = self.segments.last().map_or(0, |s| s.size);
                let mut frame = Vec::with_capacity(frame_len as usize);
                frame.extend_from_slice(&frame_header(e));
                frame.extend_from_slice(&e.bytes);
                if let Err(err) = file.write_all(&frame) {
                    // Leave no partial entry behind for the next append to follow.
                    let _ = file.set_len(start);
                    return Err(err);
                }
                if self.fsync == Fsync::Always {
                    file.sync_data()?;
                } else {
                    self.dirty = true;
                }
                Held::File {
                    segment: self.segments.last().map_or(e.base_offset, |s| s.base),
                    pos: start + FRAME_HEADER as u64,
                }
            }
            None => Held::Memory(e.bytes.clone()),
        };
        if let Some(s) = self.segments.last_mut() {
            s.add(frame_len, e.max_timestamp);
            s.modified_ms = now_ms;
        }
        Ok(held)
    }

    /// Starts a new (empty) active segment at `base`; the previous file is synced first unless
    /// the policy is `never`.
    pub fn roll(&mut self, base: i64, now_ms: i64) -> std::io::Result<()> {
        if let Some(dir) = &self.dir {
            if self.fsync != Fsync::Never {
                if let Some(f) = &self.active {
                    f.sync_data()?;
                }
            }
            let file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(dir.join(segment_name(base)))?;
            if self.fsync != Fsync::Never {
                sync_dir(dir)?;
            }
            self.active = Some(file);
            self.dirty = false;
        }
        self.segments.push(Segment::new(base, now_ms));
        Ok(())
    }

    /// Removes the `n` oldest segments (and their files).
    pub fn remove_oldest(&mut self, n: usize) -> std::io::Result<()> {
        let n = n.min(self.segments.len());
        for s in self.segments.drain(..n) {
            if let Some(dir) = &self.dir {
                match std::fs::remove_file(dir.join(segment_name(s.base))) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Flushes the active file if it has unsynced writes (the `interval` policy's tick).
    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.dirty {
            if let Some(f) = &self.active {
                f.sync_data()?;
            }
            self.dirty = false;
        }
        Ok(())
    }

    /// Records the log start offset in the partition directory (nothing in memory), flushed
    /// unless the policy is `never`.
    pub fn write_start(&self, start: i64) -> std::io::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let tmp = dir.join(format!("{START_CHECKPOINT}.tmp"));
        std::fs::write(&tmp, start.to_string())?;
        if self.fsync != Fsync::Never {
            File::open(&tmp)?.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(START_CHECKPOINT))?;
        if self.fsync != Fsync::Never {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// The bytes of `entries` (consecutive index entries), read from their segment files with
    /// one read per segment.
    pub fn read(&self, entries: &[IndexEntry]) -> std::io::Result<Vec<Bytes>> {
        let mut out = Vec::with_capacity(entries.len());
        let mut i = 0;
        while i < entries.len() {
            match &entries[i].held {
                Held::Memory(b) => {
                    out.push(b.clone());
                    i += 1;
                }
                Held::File { segment, pos } => {
                    // The run of entries in the same segment: contiguous in its file.
                    let mut j = i + 1;
                    while j < entries.len()
                        && matches!(entries[j].held, Held::File { segment: s, .. } if s == *segment)
                    {
                        j += 1;
                    }
                    let end = match entries[j - 1].held {
                        Held::File { pos: p, .. } => p + entries[j - 1].len as u64,
                        Held::Memory(_) => *pos,
                    };
                    let dir = self.dir.as_deref().ok_or_else(|| {
                        std::io::Error::other("a file-held entry in a log without a directory")
                    })?;
                    let file = File::open(dir.join(segment_name(*segment)))?;
                    let mut buf = vec![0u8; (end - pos) as usize];
                    file.read_exact_at(&mut buf, *pos)?;
                    let buf = Bytes::from(buf);
                    for e in &entries[i..j] {
                        if let Held::File { pos: p, .. } = e.held {
                            let at = (p - pos) as usize;
                            out.push(buf.slice(at..at + e.len as usize));
                        }
                    }
                    i = j;
                }
            }
        }
        Ok(out)
    }
}

impl PartitionLog {
    /// Opens (or creates) a partition directory of segment files named by their base offset,
    /// recovering every complete, intact entry. The first entry that is incomplete, fails its
    /// CRC or does not follow its predecessor ends the log: its segment is cut there and any
    /// later segments are removed. New entries go to the last segment until it would exceed
    /// `segment_bytes`, then a new segment starts. Only the index is kept in memory.
    pub fn open_dir(dir: &Path, segment_bytes: u64) -> std::io::Result<(PartitionLog, Recovery)> {
        std::fs::create_dir_all(dir)?;
        let mut files: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let base = name.strip_suffix(".log")?.parse::<i64>().ok()?;
                Some((base, e.path()))
            })
            .collect();
        files.sort();
        let mut log = PartitionLog::default();
        log.store.dir = Some(dir.to_path_buf());
        log.store.segment_bytes = segment_bytes.max(1);
        let mut truncated = 0u64;
        let mut intact = true;
        let mut last: Option<PathBuf> = None;
        // Records before this were deleted (DeleteRecords, retention); older segments may be gone.
        let start = std::fs::read_to_string(dir.join(START_CHECKPOINT))
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0)
            .max(0);
        for (base, path) in files {
            if log.store.segments.is_empty() && intact && base > 0 {
                // Older segments were removed: the log starts here.
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
            let (segment, file_len) = log.scan_segment(base, &path)?;
            if segment.size < file_len {
                truncated += file_len - segment.size;
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(segment.size)?;
                intact = false;
            }
            log.store.segments.push(segment);
            last = Some(path);
        }
        if log.store.segments.is_empty() && start > 0 {
            // Everything was deleted up to `start`: the log continues from there.
            log.next_offset = start;
        }
        log.advance_start(start);
        match last {
            Some(path) => {
                log.store.active = Some(OpenOptions::new().append(true).open(path)?);
            }
            None => log.store.roll(log.next_offset, now_ms())?,
        }
        let recovery = Recovery {
            entries: log.entries.len(),
            truncated_bytes: truncated,
        };
        Ok((log, recovery))
    }

    /// Indexes the intact entries at the start of one segment file, reading it in a stream;
    /// returns the segment (its size is where the intact entries end) and the file's length.
    fn scan_segment(&mut self, base: i64, path: &Path) -> std::io::Result<(Segment, u64)> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let file_len = meta.len();
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or_else(now_ms, |d| d.as_millis() as i64);
        let mut r = BufReader::with_capacity(1 << 16, file);
        let mut segment = Segment::new(base, mtime);
        // Not known after a restart: the file's last write stands in for its start.
        segment.created_ms = mtime;
        let mut payload = Vec::new();
        let mut pos = 0u64;
        while file_len - pos >= FRAME_HEADER as u64 {
            let mut h = [0u8; FRAME_HEADER];
            r.read_exact(&mut h)?;
            let word = |at: usize| i64::from_be_bytes(h[at..at + 8].try_into().unwrap_or([0; 8]));
            let len = u32::from_be_bytes(h[0..4].try_into().unwrap_or([0; 4])) as u64;
            let crc = u32::from_be_bytes(h[4..8].try_into().unwrap_or([0; 4]));
            let end = pos + FRAME_HEADER as u64 + len;
            // The length is checked against the file before anything is allocated.
            if end > file_len {
                break;
            }
            payload.resize(len as usize, 0);
            r.read_exact(&mut payload)?;
            if crc32c::crc32c_append(crc32c::crc32c(&h[8..]), &payload) != crc {
                break;
            }
            let (first, last, max_ts) = (word(8), word(16), word(24));
            if first != self.next_offset || last < first {
                break;
            }
            self.remember_producer(&payload, first);
            self.push(IndexEntry {
                base_offset: first,
                last_offset: last,
                max_timestamp: max_ts,
                len: len as u32,
                held: Held::File {
                    segment: base,
                    pos: pos + FRAME_HEADER as u64,
                },
            });
            segment.add(FRAME_HEADER as u64 + len, max_ts);
            pos = end;
        }
        Ok((segment, file_len))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::batch;
    use super::*;
    use chronik_protocol::batch::BatchHeader;

    /// The base offsets of what `read` returns.
    fn bases(log: &PartitionLog, from: i64, max: usize) -> Vec<i64> {
        log.read(from, max, true)
            .iter()
            .map(|b| BatchHeader::parse(b).unwrap().base_offset)
            .collect()
    }

    #[test]
    fn file_entries_are_read_from_their_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open_dir(dir.path(), 300).unwrap();
        let mut sent = Vec::new();
        for i in 0..6 {
            let b = batch(2, None, 1000 + i);
            log.append(&b, None).unwrap();
            sent.push(b);
        }
        // Every entry is held as a file position, not as bytes.
        assert!(log
            .entries
            .iter()
            .all(|e| matches!(e.held, Held::File { .. })));
        assert!(log.segments().len() > 1, "{:?}", log.segments());
        let all = log.read(0, usize::MAX, true);
        assert_eq!(all.len(), 6);
        for (i, (got, mut want)) in all.iter().zip(sent.clone()).enumerate() {
            chronik_protocol::batch::set_base_offset(&mut want, 2 * i as i64);
            want[12..16].copy_from_slice(&super::super::LEADER_EPOCH.to_be_bytes());
            assert_eq!(got.as_ref(), &want[..], "entry {i}");
        }
        // A read across segments, from the middle of a batch, within a byte budget.
        let one = all[0].len();
        assert_eq!(bases(&log, 3, 2 * one), vec![2, 4]);
        assert_eq!(bases(&log, 3, 1), vec![2], "at least one");
        drop(log);
        let (log, rec) = PartitionLog::open_dir(dir.path(), 300).unwrap();
        assert_eq!(rec.entries, 6);
        assert_eq!(
            log.read(0, usize::MAX, true),
            all,
            "the same bytes after a reopen"
        );
        assert_eq!(log.size_bytes(), all.iter().map(|b| b.len()).sum::<usize>());
    }

    #[test]
    fn a_missing_segment_file_is_an_error_not_an_empty_read() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open_dir(dir.path(), 1 << 20).unwrap();
        log.append(&batch(1, None, 5), None).unwrap();
        std::fs::remove_file(dir.path().join(segment_name(0))).unwrap();
        assert!(log.try_read(0, usize::MAX, true).is_err());
        assert!(log.read(0, usize::MAX, true).is_empty());
    }

    #[test]
    fn segment_ms_rolls_by_the_first_entry_age() {
        let mut log = PartitionLog::in_memory();
        log.set_segment_limits(1 << 30, 60_000);
        // Old timestamps alone do not roll: the record time since the first entry counts.
        log.append(&batch(1, None, 1_000), None).unwrap();
        log.append(&batch(1, None, 50_000), None).unwrap();
        log.append(&batch(1, None, 62_000), None).unwrap();
        log.append(&batch(1, None, 63_000), None).unwrap();
        assert_eq!(
            log.segments().iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![0, 2]
        );
        // Without a timestamp on the first entry, the broker's time since the segment started.
        let mut log = PartitionLog::in_memory();
        log.set_segment_limits(1 << 30, 60_000);
        log.append(&batch(1, None, -1), None).unwrap();
        log.append(&batch(1, None, 5), None).unwrap();
        assert_eq!(log.segments().len(), 1);
        log.store.segments[0].created_ms -= 120_000;
        log.append(&batch(1, None, 5), None).unwrap();
        assert_eq!(log.segments().len(), 2);
    }

    #[test]
    fn fsync_policy_parses() {
        assert_eq!("always".parse::<Fsync>(), Ok(Fsync::Always));
        assert_eq!("interval".parse::<Fsync>(), Ok(Fsync::Interval));
        assert!("sometimes".parse::<Fsync>().is_err());
        // `always` still writes and reads back.
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open_dir(dir.path(), 1 << 20).unwrap();
        log.set_fsync(Fsync::Always);
        log.append(&batch(1, None, 5), None).unwrap();
        log.set_fsync(Fsync::Interval);
        log.append(&batch(1, None, 6), None).unwrap();
        log.sync().unwrap();
        assert_eq!(log.read(0, usize::MAX, true).len(), 2);
    }
}
