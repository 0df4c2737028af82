//! Retention, as Kafka applies it: whole segments are removed from the oldest, never part of
//! one. By time, while a segment's largest timestamp is more than `retention.ms` before now; by
//! size, while the log without the segment is still at least `retention.bytes` big. Only for a
//! topic whose `cleanup.policy` includes `delete`. When every segment goes, a new empty one is
//! rolled at the log end first (the log stays where it was, empty). The log start offset then
//! moves to the first remaining segment.

use super::store::Segment;
use super::PartitionLog;

/// What the topic's configs say about retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// `retention.ms` (-1: keep forever).
    pub ms: i64,
    /// `retention.bytes` per partition (negative: no limit).
    pub bytes: i64,
    /// Whether `cleanup.policy` includes `delete`.
    pub delete: bool,
}

/// How many of the oldest `segments` retention removes at `now_ms`. An empty last segment is
/// never counted.
pub(crate) fn deletable(segments: &[Segment], r: &Retention, now_ms: i64) -> usize {
    if !r.delete {
        return 0;
    }
    // The empty active segment is never deleted.
    let candidates = match segments.last() {
        Some(s) if s.size == 0 => &segments[..segments.len() - 1],
        _ => segments,
    };
    let by_time = if r.ms >= 0 {
        candidates
            .iter()
            .take_while(|s| now_ms.saturating_sub(s.largest_timestamp()) > r.ms)
            .count()
    } else {
        0
    };
    let by_size = if r.bytes >= 0 {
        let total: u64 = segments.iter().map(|s| s.size).sum();
        let mut over = total as i64 - r.bytes;
        candidates
            .iter()
            .take_while(|s| {
                let ok = over - s.size as i64 >= 0;
                if ok {
                    over -= s.size as i64;
                }
                ok
            })
            .count()
    } else {
        0
    };
    by_time.max(by_size)
}

impl PartitionLog {
    /// Applies retention at `now_ms`: removes the segments [`deletable`] names and moves the log
    /// start offset past them. Returns the new log start offset when it moved.
    pub fn apply_retention(&mut self, r: &Retention, now_ms: i64) -> std::io::Result<Option<i64>> {
        let n = deletable(&self.store.segments, r, now_ms);
        if n == 0 {
            return Ok(None);
        }
        if n == self.store.segments.len() {
            // Kafka rolls first so that the log keeps an (empty) active segment at its end.
            self.store.roll(self.next_offset, now_ms)?;
        }
        self.store.remove_oldest(n)?;
        let first = self
            .store
            .segments
            .first()
            .map_or(self.next_offset, |s| s.base);
        if first <= self.start_offset {
            return Ok(None);
        }
        self.advance_start(first);
        self.store.write_start(self.start_offset)?;
        Ok(Some(self.start_offset))
    }

    /// Flushes unsynced writes (the `interval` fsync policy).
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.store.sync()
    }

    /// The segments, oldest first (for tests and views).
    pub fn segments(&self) -> Vec<(i64, u64)> {
        self.store
            .segments
            .iter()
            .map(|s| (s.base, s.size))
            .collect()
    }
}
