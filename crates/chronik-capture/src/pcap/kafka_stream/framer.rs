//! Frames out of one direction's reassembled bytes: a 4-byte size, then the body. After a gap
//! the frame it falls in is lost; the next boundary is kept when it is known, else the
//! direction scans forward for a frame start (what counts as one is the session's to say).

use super::peek::{be_i32, Verdict};
use super::StreamStats;

/// Where a direction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sync {
    /// At a frame boundary, or inside a frame whose size is known.
    Synced,
    /// Looking for a frame boundary.
    Lost,
}

/// One direction's bytes, waiting to be cut into frames.
pub(super) struct Framer {
    pub(super) buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    start: usize,
    pub(super) sync: Sync,
    /// Bytes of a frame lost to a gap still to pass before the next boundary (synced only,
    /// with `buf` empty).
    pub(super) discard: u64,
    /// The frame at the boundary was found by scanning: it must decode to be believed.
    pub(super) candidate: bool,
    /// Nothing framed and no gap yet in a stream captured from its middle.
    at_start: bool,
    /// Responses: the first captured byte may still be taken as a frame start.
    pub(super) first_open: bool,
    /// Capture time of the latest bytes (ns).
    pub(super) ts: i64,
    /// Bytes in gaps since the last frame (for the next frame's notes).
    missing: u64,
    /// Captured bytes passed over since the last frame (for the next frame's notes).
    skipped: u64,
    /// Bytes passed over before the first frame of a stream captured from its middle (for
    /// that frame's notes).
    skipped_at_start: u64,
    /// "frame" or "response frame", for notes.
    what: &'static str,
}

impl Framer {
    pub(super) fn new(from_stream_start: bool, what: &'static str) -> Self {
        Framer {
            buf: Vec::new(),
            start: 0,
            sync: if from_stream_start {
                Sync::Synced
            } else {
                Sync::Lost
            },
            discard: 0,
            candidate: false,
            at_start: !from_stream_start,
            first_open: !from_stream_start,
            ts: 0,
            missing: 0,
            skipped: 0,
            skipped_at_start: 0,
            what,
        }
    }

    pub(super) fn avail(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start >= 64 * 1024 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Passes over `n` bytes that are in no frame.
    pub(super) fn skip(&mut self, n: usize, stats: &mut StreamStats) {
        let n = n.min(self.avail().len());
        if n == 0 {
            return;
        }
        self.consume(n);
        stats.bytes_skipped += n as u64;
        if self.at_start {
            self.skipped_at_start += n as u64;
        } else {
            self.skipped += n as u64;
        }
        self.first_open = false;
    }

    pub(super) fn lose_sync(&mut self) {
        self.sync = Sync::Lost;
        self.candidate = false;
        self.discard = 0;
    }

    pub(super) fn push_data(&mut self, bytes: &[u8], ts: i64, stats: &mut StreamStats) {
        self.ts = ts;
        let drop = usize::try_from(self.discard).map_or(bytes.len(), |d| d.min(bytes.len()));
        if drop > 0 {
            self.discard -= drop as u64;
            self.skipped += drop as u64;
            stats.bytes_skipped += drop as u64;
        }
        self.buf.extend_from_slice(&bytes[drop..]);
    }

    /// A gap of `len` bytes (given up on at `ts`): the frame it falls in is lost. When that
    /// frame started at a trusted boundary and the gap ends inside it, the next boundary is
    /// still known; otherwise the direction has lost sync. `cut` sees the captured start of a
    /// frame lost from a trusted boundary (size prefix included); what it returns is returned.
    pub(super) fn gap<T>(
        &mut self,
        len: u64,
        ts: i64,
        stats: &mut StreamStats,
        cut: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Option<T> {
        stats.gaps += 1;
        stats.bytes_missing += len;
        self.missing += len;
        self.ts = ts;
        self.at_start = false;
        self.first_open = false;
        if self.sync == Sync::Lost {
            let n = self.avail().len();
            self.skip(n, stats);
            return None;
        }
        if self.discard > 0 {
            if len <= self.discard {
                self.discard -= len;
            } else {
                self.lose_sync();
            }
            return None;
        }
        let avail = self.avail();
        let have = avail.len();
        let size = be_i32(avail, 0).and_then(|s| u64::try_from(s).ok());
        let lost = match size {
            Some(_) if !self.candidate => cut(avail),
            _ => None,
        };
        let remaining = size.map(|size| (4 + size).saturating_sub(have as u64));
        match remaining {
            Some(remaining) if !self.candidate && remaining >= len => {
                // The gap ends inside this frame: it is lost, but its end is known.
                self.skip(have, stats);
                self.discard = remaining - len;
            }
            _ => {
                self.skip(have, stats);
                self.lose_sync();
            }
        }
        lost
    }

    /// Out of sync: passes over bytes up to the first position where `starts` sees a frame
    /// start (it is given the bytes from each position that has at least `header_len` of
    /// them), and takes that position as a boundary still to be confirmed (a candidate).
    /// False when the bytes so far hold none.
    pub(super) fn resync(
        &mut self,
        header_len: usize,
        stats: &mut StreamStats,
        starts: impl Fn(&[u8]) -> Verdict,
    ) -> bool {
        let avail = self.avail();
        let mut i = 0;
        let mut found = false;
        while i + header_len <= avail.len() {
            match starts(&avail[i..]) {
                Verdict::Yes => {
                    found = true;
                    break;
                }
                Verdict::NeedMore => break,
                Verdict::No => i += 1,
            }
        }
        self.skip(i, stats);
        if found {
            self.sync = Sync::Synced;
            self.candidate = true;
        }
        found
    }

    /// A frame was cut: the notes it carries (what was lost before it).
    #[inline]
    pub(super) fn take_notes(&mut self) -> Vec<String> {
        self.at_start = false;
        self.first_open = false;
        // Nearly every frame: nothing lost, nothing to say.
        if self.missing == 0 && self.skipped_at_start == 0 && self.skipped == 0 {
            return Vec::new();
        }
        self.losses()
    }

    /// [`Framer::take_notes`] when something was lost or skipped.
    fn losses(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.missing > 0 {
            notes.push(format!(
                "{} bytes missing before this {} (lost segments)",
                self.missing, self.what
            ));
        }
        if self.skipped_at_start > 0 {
            notes.push(format!(
                "{} bytes skipped before the first whole {} (capture started mid-stream)",
                self.skipped_at_start, self.what
            ));
        }
        if self.skipped > 0 {
            notes.push(format!(
                "{} captured bytes skipped before this {} (partial or undecodable frames)",
                self.skipped, self.what
            ));
        }
        self.missing = 0;
        self.skipped = 0;
        self.skipped_at_start = 0;
        notes
    }
}
