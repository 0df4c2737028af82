//! Is this connection Kafka, and which end is the client? A connection's first bytes are held
//! until one direction shows a plausible request (on a Kafka port, only the direction towards
//! it is looked at); then they are replayed into a [`Session`](super::session::Session).

use super::peek::{be_i32, request_verdict, Verdict};
use crate::pcap::reassembly::Chunk;
use chronik_protocol::{dissect_request_with, Limits};

/// Bytes of each direction held while roles are unknown, and scanned before a connection is
/// declared not Kafka.
pub(super) const PROBE_WINDOW: usize = 64 * 1024;

/// What the probe concluded about a connection's roles.
pub(super) enum ProbeVerdict {
    Undecided,
    /// The client sends in this direction.
    Client(usize),
    NotKafka,
}

/// Holds a connection's first bytes until one direction shows a plausible request.
pub(super) struct Probe {
    /// Which directions may be the client's (towards the Kafka port, or both).
    may_be_client: [bool; 2],
    dirs: [ProbeDir; 2],
    /// What was delivered, in order, replayed once the roles are known (at most
    /// `PROBE_WINDOW` data bytes per direction; the rest is kept as gaps).
    pub(super) log: Vec<(usize, Chunk)>,
    logged: [usize; 2],
    pub(super) saw_data: bool,
}

#[derive(Default)]
struct ProbeDir {
    /// Bytes not yet ruled out as a request start (the current run since the last gap).
    buf: Vec<u8>,
    started: bool,
    /// `buf` starts at the stream's first byte (after a captured SYN).
    at_start: bool,
    examined: usize,
    ruled_out: bool,
}

impl Probe {
    pub(super) fn new(may_be_client: [bool; 2]) -> Self {
        Probe {
            may_be_client,
            dirs: [ProbeDir::default(), ProbeDir::default()],
            log: Vec::new(),
            logged: [0; 2],
            saw_data: false,
        }
    }

    pub(super) fn offer(
        &mut self,
        dir: usize,
        chunk: Chunk,
        saw_syn: bool,
        max: usize,
    ) -> ProbeVerdict {
        let verdict = self.examine(dir, &chunk, saw_syn, max);
        self.keep(dir, chunk);
        if let ProbeVerdict::Client(_) = verdict {
            return verdict;
        }
        let all_ruled_out = (0..2).all(|d| !self.may_be_client[d] || self.dirs[d].ruled_out);
        if all_ruled_out {
            ProbeVerdict::NotKafka
        } else {
            ProbeVerdict::Undecided
        }
    }

    fn keep(&mut self, dir: usize, chunk: Chunk) {
        match chunk {
            Chunk::Data {
                mut bytes,
                ts_nanos,
            } => {
                self.saw_data = true;
                let room = PROBE_WINDOW.saturating_sub(self.logged[dir]);
                let over = bytes.len().saturating_sub(room);
                bytes.truncate(bytes.len() - over);
                if !bytes.is_empty() {
                    self.logged[dir] += bytes.len();
                    self.log.push((dir, Chunk::Data { bytes, ts_nanos }));
                }
                if over > 0 {
                    self.keep_gap(dir, over as u64, ts_nanos);
                }
            }
            Chunk::Gap { len, ts_nanos } => self.keep_gap(dir, len, ts_nanos),
        }
    }

    fn keep_gap(&mut self, dir: usize, len: u64, ts: i64) {
        if let Some((
            d,
            Chunk::Gap {
                len: prev,
                ts_nanos,
            },
        )) = self.log.last_mut()
        {
            if *d == dir {
                *prev += len;
                *ts_nanos = ts;
                return;
            }
        }
        self.log.push((dir, Chunk::Gap { len, ts_nanos: ts }));
    }

    fn examine(&mut self, dir: usize, chunk: &Chunk, saw_syn: bool, max: usize) -> ProbeVerdict {
        let port_decided = self.may_be_client != [true, true];
        let pd = &mut self.dirs[dir];
        if !self.may_be_client[dir] || pd.ruled_out {
            return ProbeVerdict::Undecided;
        }
        if !pd.started {
            pd.started = true;
            pd.at_start = saw_syn && matches!(chunk, Chunk::Data { .. });
        }
        let bytes = match chunk {
            Chunk::Gap { .. } => {
                pd.buf.clear();
                pd.at_start = false;
                return ProbeVerdict::Undecided;
            }
            Chunk::Data { bytes, .. } => bytes,
        };
        pd.buf.extend_from_slice(bytes);
        pd.examined += bytes.len();
        if pd.at_start {
            match request_verdict(&pd.buf, max, true) {
                Verdict::Yes => return ProbeVerdict::Client(dir),
                Verdict::No => pd.ruled_out = true,
                Verdict::NeedMore => {}
            }
        } else {
            // Mid-stream, a header can appear by chance (a response, record data): the
            // frame must also decode.
            let mut i = 0;
            let mut waiting = false;
            while i + 4 <= pd.buf.len() {
                match request_verdict(&pd.buf[i..], max, true) {
                    Verdict::Yes => {
                        let total = 4 + be_i32(&pd.buf, i).unwrap_or(0) as usize;
                        if total > PROBE_WINDOW {
                            // Too big to check here. Believed when the port already says
                            // which side is the client; otherwise wait for a smaller one.
                            if port_decided {
                                return ProbeVerdict::Client(dir);
                            }
                            i += 1;
                            continue;
                        }
                        let Some(frame) = pd.buf.get(i..i + total) else {
                            waiting = true;
                            break;
                        };
                        if dissect_request_with(frame, Limits::CHECK_ONLY)
                            .error
                            .is_none()
                        {
                            return ProbeVerdict::Client(dir);
                        }
                        i += 1;
                    }
                    Verdict::NeedMore => break,
                    Verdict::No => i += 1,
                }
            }
            pd.buf.drain(..i);
            if waiting {
                return ProbeVerdict::Undecided;
            }
        }
        if pd.examined > PROBE_WINDOW {
            pd.ruled_out = true;
        }
        if pd.ruled_out {
            pd.buf = Vec::new();
        }
        ProbeVerdict::Undecided
    }
}
