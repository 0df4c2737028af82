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

#[cfg(test)]
mod tests {
    use super::super::tests::batch;
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn seg(base: i64, size: u64, max_ts: i64) -> Segment {
        Segment {
            base,
            size,
            max_ts,
            roll_ts: Some(max_ts),
            created_ms: 0,
            modified_ms: 0,
        }
    }

    fn policy(ms: i64, bytes: i64) -> Retention {
        Retention {
            ms,
            bytes,
            delete: true,
        }
    }

    #[test]
    fn whole_segments_by_time_and_size() {
        let now = 10 * HOUR;
        let segs = [
            seg(0, 100, now - 5 * HOUR),
            seg(10, 100, now - 3 * HOUR),
            seg(20, 100, now - HOUR / 2),
            seg(30, 100, now - 4 * HOUR), // older, but after a kept one: kept
        ];
        assert_eq!(deletable(&segs, &policy(2 * HOUR, -1), now), 2);
        assert_eq!(deletable(&segs, &policy(-1, -1), now), 0);
        // Size: removes while what is left is still at least retention.bytes.
        assert_eq!(deletable(&segs, &policy(-1, 250), now), 1);
        assert_eq!(deletable(&segs, &policy(-1, 200), now), 2);
        assert_eq!(deletable(&segs, &policy(-1, 0), now), 4);
        // Both: the larger count.
        assert_eq!(deletable(&segs, &policy(2 * HOUR, 0), now), 4);
        // Not without delete in cleanup.policy.
        let compact = Retention {
            delete: false,
            ..policy(0, 0)
        };
        assert_eq!(deletable(&segs, &compact, now), 0);
        // An empty active segment is never counted.
        let with_empty = [seg(0, 100, 0), seg(10, 0, -1)];
        assert_eq!(deletable(&with_empty, &policy(0, 0), now), 1);
        // A segment without timestamps counts from when it was written.
        let untimed = [Segment {
            modified_ms: now,
            ..seg(0, 100, -1)
        }];
        assert_eq!(deletable(&untimed, &policy(HOUR, -1), now), 0);
    }

    #[test]
    fn retention_moves_the_start_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let now = super::super::store::now_ms();
        let (mut log, _) = PartitionLog::open_dir(dir.path(), 100).unwrap();
        for ts in [now - 5 * HOUR, now - 4 * HOUR, now, now] {
            log.append(&batch(2, None, ts), None).unwrap();
        }
        assert_eq!(log.segments().len(), 4);
        assert_eq!(
            log.apply_retention(&policy(HOUR, -1), now).unwrap(),
            Some(4)
        );
        assert_eq!((log.start_offset(), log.end_offset()), (4, 8));
        assert_eq!(log.read(0, usize::MAX, true).len(), 2);
        drop(log);
        let (mut log, _) = PartitionLog::open_dir(dir.path(), 100).unwrap();
        assert_eq!((log.start_offset(), log.end_offset()), (4, 8));
        // Everything old: a new empty segment at the end keeps the log's place.
        assert_eq!(
            log.apply_retention(&policy(0, -1), now + HOUR).unwrap(),
            Some(8)
        );
        assert_eq!(log.segments(), vec![(8, 0)]);
        assert!(log.read(8, usize::MAX, true).is_empty());
        log.append(&batch(1, None, now), None).unwrap();
        drop(log);
        let (log, _) = PartitionLog::open_dir(dir.path(), 100).unwrap();
        assert_eq!((log.start_offset(), log.end_offset()), (8, 9));
    }

    #[test]
    fn in_memory_logs_too() {
        let mut log = PartitionLog::in_memory();
        log.set_segment_limits(100, -1);
        for _ in 0..3 {
            log.append(&batch(1, None, 1), None).unwrap();
        }
        let size = log.segments()[0].1 as i64;
        assert_eq!(log.apply_retention(&policy(-1, size), 2).unwrap(), Some(2));
        assert_eq!(log.start_offset(), 2);
        assert_eq!(log.size_bytes(), log.read(2, usize::MAX, true)[0].len());
    }
}
