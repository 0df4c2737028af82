//! `offsets.log`: the committed offsets of every group, kept as an append-only file of framed
//! records and replayed when the coordinator starts.
//!
//! Each record is `[length: u32 BE][crc32c(payload): u32 BE][payload: length bytes]`. A payload
//! starts with a tag byte:
//! - `1` commit: group (u16 length + UTF-8), topic (u16 length + UTF-8), partition (i32),
//!   offset (i64), leader epoch (i32), commit time in ms (i64), metadata (u32 length + UTF-8);
//! - `2` group deleted: group (u16 length + UTF-8);
//! - `3` group protocol type set: group (u16 length + UTF-8), protocol type (u16 length +
//!   UTF-8), so ListGroups and DescribeGroups show "consumer" for a group after a restart;
//! - `4` offset deleted (OffsetDelete): group, topic (u16 length + UTF-8 each), partition (i32).
//!
//! Integers are big-endian. Replay stops at the first record that is incomplete, oversized,
//! fails its CRC or does not parse (a torn tail from a crash mid-write); the file is truncated
//! there so later appends follow the last good record. When the file holds many superseded
//! records it is rewritten (to a temporary file, then renamed) with only the live ones.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// File name inside the data directory.
pub(crate) const FILE_NAME: &str = "offsets.log";
/// Largest payload accepted on replay (commits are small; anything bigger is corruption).
const MAX_PAYLOAD: usize = 1 << 20;
/// Tag of a commit record.
const TAG_COMMIT: u8 = 1;
/// Tag of a group-deleted record.
const TAG_DELETE_GROUP: u8 = 2;
/// Tag of a group-protocol-type record.
const TAG_GROUP_TYPE: u8 = 3;
/// Tag of an offset-deleted record.
const TAG_DELETE_OFFSET: u8 = 4;

/// One committed offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedOffset {
    /// The committed offset (the next record the group will consume).
    pub offset: i64,
    /// The leader epoch sent with the commit (-1 when not known).
    pub leader_epoch: i32,
    /// The client's metadata string (null is stored as empty, as Kafka does).
    pub metadata: String,
    /// When the commit was accepted, in ms since the epoch.
    pub commit_time_ms: i64,
}

/// What a record in the log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogRecord {
    /// An offset was committed.
    Commit {
        group: String,
        topic: String,
        partition: i32,
        committed: CommittedOffset,
    },
    /// A group and all its offsets were deleted.
    DeleteGroup { group: String },
    /// A group's protocol type was set by its first member.
    GroupType {
        group: String,
        protocol_type: String,
    },
    /// One partition's committed offset was deleted (OffsetDelete).
    DeleteOffset {
        group: String,
        topic: String,
        partition: i32,
    },
}

/// What the log remembers about one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LoggedGroup {
    /// The protocol type its members use ("consumer"), if one ever joined.
    pub protocol_type: Option<String>,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
}

/// Live state by group id.
pub(crate) type OffsetsByGroup = BTreeMap<String, LoggedGroup>;

/// What replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// Records replayed.
    pub records: usize,
    /// Bytes dropped from the end of the file (a torn or corrupt tail).
    pub dropped_tail_bytes: u64,
    /// Whether the file was rewritten without superseded records.
    pub compacted: bool,
}

/// The open log, appended to on every accepted commit.
pub(crate) struct OffsetLog {
    path: PathBuf,
    file: File,
    /// `fdatasync` after every append (`--fsync` interval or always).
    sync: bool,
}

impl OffsetLog {
    /// Opens (creating if needed) `offsets.log` in `dir`, replays it and returns the live
    /// offsets; with `sync`, every append is flushed to stable storage before it returns.
    pub(crate) fn open(
        dir: &Path,
        sync: bool,
    ) -> anyhow::Result<(OffsetLog, OffsetsByGroup, Recovery)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        let path = dir.join(FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let (records, good_len) = replay(&bytes);
        let mut recovery = Recovery {
            records: records.len(),
            dropped_tail_bytes: (bytes.len() - good_len) as u64,
            compacted: false,
        };
        let mut live = OffsetsByGroup::new();
        for record in records {
            apply(&mut live, record);
        }
        let live_count: usize = live
            .values()
            .map(|g| g.offsets.len() + usize::from(g.protocol_type.is_some()))
            .sum();
        if recovery.dropped_tail_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                good_bytes = good_len,
                dropped = recovery.dropped_tail_bytes,
                "offsets.log: ignoring a torn or corrupt tail"
            );
        }
        if recovery.records > 2 * live_count + 1000 {
            rewrite(&path, &live)?;
            recovery.compacted = true;
        } else if recovery.dropped_tail_bytes > 0 {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            file.set_len(good_len as u64)
                .with_context(|| format!("truncating {}", path.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok((OffsetLog { path, file, sync }, live, recovery))
    }

    /// Appends records with one write (the OS has them before this returns, so a killed
    /// process does not lose them; with `sync`, neither does a power loss).
    pub(crate) fn append(&mut self, records: &[LogRecord]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for record in records {
            frame(record, &mut buf);
        }
        self.file.write_all(&buf)?;
        if self.sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Where the log lives.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Applies one record to the live offsets.
pub(crate) fn apply(live: &mut OffsetsByGroup, record: LogRecord) {
    match record {
        LogRecord::Commit {
            group,
            topic,
            partition,
            committed,
        } => {
            live.entry(group)
                .or_default()
                .offsets
                .insert((topic, partition), committed);
        }
        LogRecord::GroupType {
            group,
            protocol_type,
        } => {
            live.entry(group).or_default().protocol_type = Some(protocol_type);
        }
        LogRecord::DeleteGroup { group } => {
            live.remove(&group);
        }
        LogRecord::DeleteOffset {
            group,
            topic,
            partition,
        } => {
            if let Some(g) = live.get_mut(&group) {
                g.offsets.remove(&(topic, partition));
            }
        }
    }
}

/// Replaces the file at `path` with the live records only (written to a temporary file,
/// synced, then renamed over it).
fn rewrite(path: &Path, live: &OffsetsByGroup) -> anyhow::Result<()> {
    let tmp = path.with_extension("log.tmp");
    let mut buf = Vec::new();
    for (group, logged) in live {
        if let Some(protocol_type) = &logged.protocol_type {
            frame(
                &LogRecord::GroupType {
                    group: group.clone(),
                    protocol_type: protocol_type.clone(),
                },
                &mut buf,
            );
        }
        for ((topic, partition), committed) in &logged.offsets {
            frame(
                &LogRecord::Commit {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    committed: committed.clone(),
                },
                &mut buf,
            );
        }
    }
    let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(&buf)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Appends one framed record to `out`.
pub(crate) fn frame(record: &LogRecord, out: &mut Vec<u8>) {
    let mut payload = Vec::new();
    match record {
        LogRecord::Commit {
            group,
            topic,
            partition,
            committed,
        } => {
            payload.push(TAG_COMMIT);
            put_short_str(&mut payload, group);
            put_short_str(&mut payload, topic);
            payload.extend_from_slice(&partition.to_be_bytes());
            payload.extend_from_slice(&committed.offset.to_be_bytes());
            payload.extend_from_slice(&committed.leader_epoch.to_be_bytes());
            payload.extend_from_slice(&committed.commit_time_ms.to_be_bytes());
            let meta = committed.metadata.as_bytes();
            payload.extend_from_slice(&(meta.len() as u32).to_be_bytes());
            payload.extend_from_slice(meta);
        }
        LogRecord::DeleteGroup { group } => {
            payload.push(TAG_DELETE_GROUP);
            put_short_str(&mut payload, group);
        }
        LogRecord::GroupType {
            group,
            protocol_type,
        } => {
            payload.push(TAG_GROUP_TYPE);
            put_short_str(&mut payload, group);
            put_short_str(&mut payload, protocol_type);
        }
        LogRecord::DeleteOffset {
            group,
            topic,
            partition,
        } => {
            payload.push(TAG_DELETE_OFFSET);
            put_short_str(&mut payload, group);
            put_short_str(&mut payload, topic);
            payload.extend_from_slice(&partition.to_be_bytes());
        }
    }
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
}

/// Writes a string with a u16 length. Group ids and topic names longer than that cannot come
/// from the wire (Kafka strings have an i16 length); they are cut at a character boundary
/// rather than written wrongly.
fn put_short_str(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

/// Parses records from the start of `bytes`; returns them and how many bytes were good.
pub(crate) fn replay(bytes: &[u8]) -> (Vec<LogRecord>, usize) {
    let mut records = Vec::new();
    let mut pos = 0usize;
    loop {
        let rest = &bytes[pos..];
        if rest.len() < 8 {
            break;
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_PAYLOAD || rest.len() - 8 < len {
            break;
        }
        let payload = &rest[8..8 + len];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        match parse_payload(payload) {
            Some(record) => records.push(record),
            None => break,
        }
        pos += 8 + len;
    }
    (records, pos)
}

/// Reads a payload's fields front to back; `None` when the bytes run out.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn string(&mut self, len: usize) -> Option<String> {
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn short_str(&mut self) -> Option<String> {
        let len = u16::from_be_bytes(self.array()?) as usize;
        self.string(len)
    }
}

/// One record from its payload; `None` when the tag is unknown, a field is cut short or not
/// UTF-8, or bytes are left over.
fn parse_payload(payload: &[u8]) -> Option<LogRecord> {
    let mut r = Reader { bytes: payload };
    let tag = r.array::<1>()?[0];
    let record = match tag {
        TAG_COMMIT => {
            let group = r.short_str()?;
            let topic = r.short_str()?;
            let partition = i32::from_be_bytes(r.array()?);
            let offset = i64::from_be_bytes(r.array()?);
            let leader_epoch = i32::from_be_bytes(r.array()?);
            let commit_time_ms = i64::from_be_bytes(r.array()?);
            let meta_len = u32::from_be_bytes(r.array()?) as usize;
            let metadata = r.string(meta_len)?;
            LogRecord::Commit {
                group,
                topic,
                partition,
                committed: CommittedOffset {
                    offset,
                    leader_epoch,
                    metadata,
                    commit_time_ms,
                },
            }
        }
        TAG_DELETE_GROUP => LogRecord::DeleteGroup {
            group: r.short_str()?,
        },
        TAG_GROUP_TYPE => LogRecord::GroupType {
            group: r.short_str()?,
            protocol_type: r.short_str()?,
        },
        TAG_DELETE_OFFSET => LogRecord::DeleteOffset {
            group: r.short_str()?,
            topic: r.short_str()?,
            partition: i32::from_be_bytes(r.array()?),
        },
        _ => return None,
    };
    if !r.bytes.is_empty() {
        return None;
    }
    Some(record)
}
