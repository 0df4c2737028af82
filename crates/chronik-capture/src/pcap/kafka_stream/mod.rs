//! Kafka connections in captured TCP traffic: segments in, [`Exchange`]s and connection events
//! out, the way the embedded broker's tap produces them.
//!
//! Per connection (both directions of a 4-tuple):
//! 1. Each direction is put back in order by a [`Reassembler`]; the other direction's
//!    acknowledgements tell it when a hole was missed by the capture for good.
//! 2. Roles (`probe.rs`): the end whose port is a Kafka port is the broker. Otherwise (or
//!    when both ends are), the direction whose bytes first parse as a plausible request header
//!    is the client's (mid-stream, where a header can appear by chance, the frame must also
//!    decode). A connection whose first request is not plausible Kafka (TLS on 9092, another
//!    protocol), or with none in its first 64 KiB, is not Kafka: it is counted in
//!    [`StreamStats::not_kafka_connections`] and produces nothing. Until roles are known, at
//!    most 64 KiB per direction is held.
//! 3. Frames (4-byte size, then body) are cut from each direction (`framer.rs`). Requests
//!    wait for their response (`session.rs`), which is paired by correlation id with the
//!    oldest waiting request of that id (Kafka answers in order; requests skipped over are
//!    reported unanswered). Produce with acks=0 gets no response and goes out at once.
//! 4. Lost bytes (`framer.rs`): a gap inside a frame loses that frame (when the gap ends inside
//!    it, the next boundary is still known); otherwise the direction scans forward for a
//!    plausible frame start (requests: a plausible header that then decodes; responses: a size
//!    and the correlation id of a waiting request, then it decodes). The next exchange says how
//!    many bytes were missing or skipped. A capture that starts mid-stream is resynchronised
//!    the same way, and a response whose request was never captured is shown on its own.
//! 5. Requests that cannot be framed (size over the limit, implausible header) make the
//!    client's direction undecodable: one `Malformed` exchange, then a resynchronising scan.
//!
//! Memory: frames are buffered only as their bytes arrive (a size prefix never reserves
//! memory), connections are bounded by [`StreamOptions::max_connections`] (the least recently
//! active is dropped), and each connection holds at most 1024 requests waiting for a response.
//!
//! This file holds the connections; `peek.rs` the few fields read from frame bytes without the
//! dissector; `tests/` the tests, by the file they exercise.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use super::reassembly::{Chunk, Pushed, Reassembler, ReassemblyLimits};
use super::Segment;
use crate::{ClosedBy, ConnEvent, ConnEventKind, Exchange};
use chronik_protocol::frame::DEFAULT_MAX_FRAME_BYTES;
use probe::{Probe, ProbeVerdict};
use session::Session;

mod framer;
mod peek;
mod probe;
mod session;
#[cfg(test)]
mod tests;

/// What counts as Kafka and how much is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    /// Ports a Kafka broker listens on; the end using one is the broker. Default `[9092]`.
    pub kafka_ports: Vec<u16>,
    /// Largest request or response frame accepted (Kafka's `socket.request.max.bytes`);
    /// default 100 MiB.
    pub max_frame_bytes: usize,
    /// Most connections tracked at once; past it the least recently active one is dropped.
    /// Default 100 000.
    pub max_connections: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            kafka_ports: vec![9092],
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_connections: 100_000,
        }
    }
}

/// One thing the streams produced, in the order it happened.
// Nearly every output is an exchange: boxing it would only add an allocation to each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Output {
    /// A request with its response (or without one, and why).
    Exchange(Exchange),
    /// A Kafka connection seen opening or closing.
    Conn(ConnEvent),
}

/// Counts over everything seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// TCP connections seen.
    pub connections: u64,
    /// Connections decoded as Kafka.
    pub kafka_connections: u64,
    /// Connections that carried data but no plausible Kafka request (TLS, other protocols).
    pub not_kafka_connections: u64,
    /// Request and response frames cut from Kafka connections.
    pub frames: u64,
    /// Holes in Kafka connections' byte streams (lost segments, snapshot length).
    pub gaps: u64,
    /// Bytes in those holes.
    pub bytes_missing: u64,
    /// Captured bytes of Kafka connections that are in no frame (pieces of frames lost to a
    /// gap, bytes passed over while resynchronising, a partial frame at the end).
    pub bytes_skipped: u64,
    /// Responses whose request was not captured.
    pub unpaired: u64,
    /// Request streams found undecodable (each is one `Malformed` exchange).
    pub malformed: u64,
    /// Connections dropped from tracking at the connection limit.
    pub connections_evicted: u64,
}

/// Kafka connections found in a stream of captured TCP segments.
pub struct KafkaStreams {
    opts: StreamOptions,
    /// Each tracked connection's place in `slots`.
    conns: HashMap<ConnKey, usize, foldhash::fast::RandomState>,
    /// The connections; a place freed by a finished connection is taken by the next one.
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    /// The last segment's connection and its place: most segments follow one of the same
    /// connection, and find it without a lookup.
    last: Option<(ConnKey, usize)>,
    /// Connections by last activity, for dropping the least recently active one.
    by_activity: BTreeMap<u64, ConnKey>,
    tick: u64,
    next_id: u64,
    stats: StreamStats,
}

/// Both endpoints of a connection, one key for both directions. Two IPv4 endpoints (nearly
/// every segment, and a key is made and compared for each) are packed into one number, the
/// lower endpoint first; any other pair is kept as its addresses, lower first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum ConnKey {
    V4(u128),
    Other(SocketAddr, SocketAddr),
}

impl ConnKey {
    fn of(a: SocketAddr, b: SocketAddr) -> ConnKey {
        match (a, b) {
            (SocketAddr::V4(a), SocketAddr::V4(b)) => {
                let end = |e: std::net::SocketAddrV4| {
                    (u64::from(e.ip().to_bits()) << 16) | u64::from(e.port())
                };
                let (a, b) = (end(a), end(b));
                ConnKey::V4((u128::from(a.min(b)) << 64) | u128::from(a.max(b)))
            }
            (a, b) if a <= b => ConnKey::Other(a, b),
            (a, b) => ConnKey::Other(b, a),
        }
    }
}

/// Why a connection stopped being tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// FIN both ways, or RST.
    Closed,
    /// A new SYN on the same addresses.
    Replaced,
    /// Dropped at the connection limit.
    Evicted,
    /// End of input.
    CaptureEnded,
}

impl End {
    /// Note on each request still waiting for its response.
    fn note(self) -> &'static str {
        match self {
            End::Closed => "connection closed before the response",
            End::Replaced => {
                "connection closed before the response (a new connection reused its addresses)"
            }
            End::Evicted => "connection no longer tracked (connection limit) before the response",
            End::CaptureEnded => "capture ended before the response",
        }
    }
}

impl KafkaStreams {
    /// No connections yet.
    pub fn new(opts: StreamOptions) -> Self {
        KafkaStreams {
            opts,
            conns: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            last: None,
            by_activity: BTreeMap::new(),
            tick: 0,
            next_id: 1,
            stats: StreamStats::default(),
        }
    }

    /// Takes the next captured segment (in capture order); appends what it completed.
    pub fn on_segment(&mut self, seg: &Segment, out: &mut Vec<Output>) {
        let key = ConnKey::of(seg.src, seg.dst);
        let has_data = seg.wire_len > 0 || !seg.payload.is_empty();
        if seg.flags.syn && !seg.flags.ack {
            if let Some(c) = self.find(&key).and_then(|i| self.slots[i].as_ref()) {
                if c.first_close.is_some() || c.data_seen[c.dir_of(seg.src)] {
                    self.finalize(key, End::Replaced, out);
                }
            }
        }
        self.tick += 1;
        let tick = self.tick;
        let at = match self.find(&key) {
            Some(at) => at,
            None => {
                if !has_data && !seg.flags.syn {
                    return; // a stray ACK, FIN or RST of a connection not (or no longer) tracked
                }
                self.make_room(out);
                let mut conn = Conn::new(self.next_id, seg, &self.opts);
                (conn.tick, conn.listed) = (tick, tick);
                self.next_id += 1;
                self.stats.connections += 1;
                self.by_activity.insert(tick, key);
                let at = match self.free.pop() {
                    Some(at) => {
                        self.slots[at] = Some(conn);
                        at
                    }
                    None => {
                        self.slots.push(Some(conn));
                        self.slots.len() - 1
                    }
                };
                self.conns.insert(key, at);
                self.last = Some((key, at));
                at
            }
        };
        let Some(conn) = self.slots[at].as_mut() else {
            return;
        };
        // Only the tick: `by_activity` is brought up to date when room is made.
        conn.tick = tick;
        let closed = conn.on_segment(seg, &self.opts, &mut self.stats, out);
        if closed {
            self.finalize(key, End::Closed, out);
        }
    }

    /// End of input: what is still buffered is framed (holes as gaps), requests still waiting
    /// become `Unanswered`, connections that saw a FIN or RST report it.
    pub fn finish(&mut self, out: &mut Vec<Output>) {
        let mut keys: Vec<(u64, ConnKey)> = (self.conns.iter())
            .filter_map(|(k, at)| Some((self.slots[*at].as_ref()?.id, *k)))
            .collect();
        keys.sort();
        for (_, key) in keys {
            self.finalize(key, End::CaptureEnded, out);
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// Connections being tracked.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Drops the least recently active connections until one more fits. A connection is
    /// listed in `by_activity` under the tick it had when last listed; one found there with a
    /// newer tick is listed again under it, so the first entry whose tick is still current is
    /// the least recently active.
    fn make_room(&mut self, out: &mut Vec<Output>) {
        while self.conns.len() >= self.opts.max_connections.max(1) {
            let Some((&listed, &key)) = self.by_activity.first_key_value() else {
                return;
            };
            match self.find(&key).and_then(|at| self.slots[at].as_mut()) {
                Some(conn) if conn.tick != listed => {
                    self.by_activity.remove(&listed);
                    self.by_activity.insert(conn.tick, key);
                    conn.listed = conn.tick;
                }
                Some(_) => {
                    self.stats.connections_evicted += 1;
                    self.finalize(key, End::Evicted, out);
                }
                None => {
                    self.by_activity.remove(&listed);
                }
            }
        }
    }

    /// The place of connection `key` in `slots`, if it is tracked.
    fn find(&mut self, key: &ConnKey) -> Option<usize> {
        if let Some((last, at)) = &self.last {
            if last == key {
                return Some(*at);
            }
        }
        let at = *self.conns.get(key)?;
        self.last = Some((*key, at));
        Some(at)
    }

    fn finalize(&mut self, key: ConnKey, end: End, out: &mut Vec<Output>) {
        let Some(at) = self.conns.remove(&key) else {
            return;
        };
        if self.last.is_some_and(|(_, a)| a == at) {
            self.last = None;
        }
        self.free.push(at);
        if let Some(mut conn) = self.slots[at].take() {
            self.by_activity.remove(&conn.listed);
            conn.end(end, &self.opts, &mut self.stats, out);
        }
    }

    /// Bytes the framers have allocated (for tests of allocation bounds).
    #[cfg(test)]
    fn framer_capacity(&self) -> usize {
        (self.slots.iter().flatten())
            .map(|c| match &c.role {
                Role::Kafka(s) => s.req.buf.capacity() + s.resp.buf.capacity(),
                _ => 0,
            })
            .sum()
    }
}

/// One TCP connection.
struct Conn {
    id: u64,
    /// The sender of the first segment seen; direction 0 is from it, 1 towards it.
    a: SocketAddr,
    /// The other end.
    b: SocketAddr,
    first_seen_us: i64,
    /// Last activity.
    tick: u64,
    /// The tick this connection is listed under in `KafkaStreams::by_activity` (at most its
    /// last activity).
    listed: u64,
    reasm: [Reassembler; 2],
    data_seen: [bool; 2],
    fin: [bool; 2],
    rst: bool,
    /// The first FIN or RST: direction, whether RST, when (µs).
    first_close: Option<(usize, bool, i64)>,
    role: Role,
}

enum Role {
    Undecided(Box<Probe>),
    Kafka(Box<Session>),
    NotKafka,
}

impl Conn {
    fn new(id: u64, seg: &Segment, opts: &StreamOptions) -> Self {
        let is_port = |a: &SocketAddr| opts.kafka_ports.contains(&a.port());
        let may_be_client = match (is_port(&seg.src), is_port(&seg.dst)) {
            (true, false) => [false, true],
            (false, true) => [true, false],
            _ => [true, true],
        };
        Conn {
            id,
            a: seg.src,
            b: seg.dst,
            first_seen_us: micros(seg.ts_nanos),
            tick: 0,
            listed: 0,
            reasm: [
                Reassembler::new(ReassemblyLimits::default()),
                Reassembler::new(ReassemblyLimits::default()),
            ],
            data_seen: [false; 2],
            fin: [false; 2],
            rst: false,
            first_close: None,
            role: Role::Undecided(Box::new(Probe::new(may_be_client))),
        }
    }

    fn dir_of(&self, src: SocketAddr) -> usize {
        usize::from(src != self.a)
    }

    fn addr_from(&self, dir: usize) -> SocketAddr {
        if dir == 0 {
            self.a
        } else {
            self.b
        }
    }

    /// Takes one segment; true when the connection is over (RST, or FIN both ways).
    fn on_segment(
        &mut self,
        seg: &Segment,
        opts: &StreamOptions,
        stats: &mut StreamStats,
        out: &mut Vec<Output>,
    ) -> bool {
        let dir = self.dir_of(seg.src);
        self.data_seen[dir] |= seg.wire_len > 0 || !seg.payload.is_empty();
        if !matches!(self.role, Role::NotKafka) {
            if seg.flags.ack {
                // What the other side had received when this was sent comes first.
                for chunk in self.reasm[1 - dir].acked(seg.ack, seg.ts_nanos) {
                    self.feed(1 - dir, chunk, opts, stats, out);
                }
            }
            match self.reasm[dir].push_borrowed(seg) {
                Pushed::Next(bytes) => self.feed_bytes(dir, bytes, seg.ts_nanos, opts, stats, out),
                Pushed::Chunks(chunks) => {
                    for chunk in chunks {
                        self.feed(dir, chunk, opts, stats, out);
                    }
                }
            }
        }
        if (seg.flags.fin || seg.flags.rst) && self.first_close.is_none() {
            self.first_close = Some((dir, seg.flags.rst, micros(seg.ts_nanos)));
        }
        self.fin[dir] |= seg.flags.fin;
        self.rst |= seg.flags.rst;
        self.rst || (self.fin[0] && self.fin[1])
    }

    /// [`Conn::feed`] of bytes that follow the direction's last chunk directly, copied only
    /// where they are kept.
    fn feed_bytes(
        &mut self,
        dir: usize,
        bytes: &[u8],
        ts_nanos: i64,
        opts: &StreamOptions,
        stats: &mut StreamStats,
        out: &mut Vec<Output>,
    ) {
        match &mut self.role {
            Role::NotKafka => {}
            Role::Kafka(s) => s.feed_bytes(dir, bytes, ts_nanos, stats, out),
            Role::Undecided(_) => {
                let chunk = Chunk::Data {
                    bytes: bytes.to_vec(),
                    ts_nanos,
                };
                self.feed(dir, chunk, opts, stats, out);
            }
        }
    }

    fn feed(
        &mut self,
        dir: usize,
        chunk: Chunk,
        opts: &StreamOptions,
        stats: &mut StreamStats,
        out: &mut Vec<Output>,
    ) {
        match &mut self.role {
            Role::NotKafka => {}
            Role::Kafka(s) => s.feed(dir, chunk, stats, out),
            Role::Undecided(probe) => {
                let verdict =
                    probe.offer(dir, chunk, self.reasm[dir].saw_syn(), opts.max_frame_bytes);
                match verdict {
                    ProbeVerdict::Undecided => {}
                    ProbeVerdict::NotKafka => {
                        stats.not_kafka_connections += 1;
                        self.role = Role::NotKafka;
                        self.reasm = [
                            Reassembler::new(ReassemblyLimits::default()),
                            Reassembler::new(ReassemblyLimits::default()),
                        ];
                    }
                    ProbeVerdict::Client(client_dir) => {
                        let log = std::mem::take(&mut probe.log);
                        let mut session = Session::new(
                            self.id,
                            client_dir,
                            self.addr_from(client_dir),
                            self.addr_from(1 - client_dir),
                            [self.reasm[0].saw_syn(), self.reasm[1].saw_syn()],
                            opts.max_frame_bytes,
                        );
                        stats.kafka_connections += 1;
                        out.push(Output::Conn(ConnEvent {
                            conn: self.id,
                            peer: session.peer,
                            at: self.first_seen_us,
                            kind: ConnEventKind::Opened,
                        }));
                        for (d, c) in log {
                            session.feed(d, c, stats, out);
                        }
                        self.role = Role::Kafka(Box::new(session));
                    }
                }
            }
        }
    }

    /// Delivers what the reassemblers hold and reports what is left.
    fn end(
        &mut self,
        end: End,
        opts: &StreamOptions,
        stats: &mut StreamStats,
        out: &mut Vec<Output>,
    ) {
        let order = match &self.role {
            Role::Kafka(s) => [s.client_dir, 1 - s.client_dir],
            _ => [0, 1],
        };
        for dir in order {
            if matches!(self.role, Role::NotKafka) {
                break;
            }
            for chunk in self.reasm[dir].flush() {
                self.feed(dir, chunk, opts, stats, out);
            }
        }
        match &mut self.role {
            Role::Undecided(probe) => {
                if probe.saw_data {
                    stats.not_kafka_connections += 1;
                }
            }
            Role::NotKafka => {}
            Role::Kafka(s) => {
                s.end(end, stats, out);
                if let Some((dir, rst, at)) = self.first_close {
                    let (by, who) = if dir == s.client_dir {
                        (ClosedBy::Client, "client")
                    } else {
                        (ClosedBy::Broker, "broker")
                    };
                    let how = if rst { "RST" } else { "FIN" };
                    out.push(Output::Conn(ConnEvent {
                        conn: self.id,
                        peer: s.peer,
                        at,
                        kind: ConnEventKind::Closed {
                            by,
                            reason: format!("{who} sent {how}"),
                        },
                    }));
                }
            }
        }
    }
}

/// Capture nanoseconds to the µs exchanges use.
fn micros(ts_nanos: i64) -> i64 {
    ts_nanos.div_euclid(1000)
}
