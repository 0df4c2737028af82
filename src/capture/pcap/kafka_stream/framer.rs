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
    pub(super) at_start: bool,
    /// Responses: the first captured byte may still be taken as a frame start.
    pub(super) first_open: bool,
    /// Capture time of the latest bytes (ns).
    pub(super) ts: i64,
    /// For the next frame's notes: bytes in gaps, bytes skipped, bytes skipped at the start.
    pub(super) missing: u64,
    skipped: u64,
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

    /// A frame was cut: the notes it carries (what was lost before it).
    pub(super) fn take_notes(&mut self) -> Vec<String> {
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
        self.at_start = false;
        self.first_open = false;
        notes
    }
}
