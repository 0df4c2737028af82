//! Kafka connections in captured TCP traffic: segments in, [`Exchange`]s and connection events
//! out, the way the embedded broker's tap produces them.
//!
//! Per connection (both directions of a 4-tuple):
//! 1. Each direction is put back in order by a [`Reassembler`]; the other direction's
//!    acknowledgements tell it when a hole was missed by the capture for good.
//! 2. Roles: the end whose port is a Kafka port is the broker. Otherwise (or when both ends
//!    are), the direction whose bytes first parse as a plausible request header is the
//!    client's (mid-stream, where a header can appear by chance, the frame must also decode).
//!    A connection whose first request is not plausible Kafka (TLS on 9092, another
//!    protocol), or with none in its first 64 KiB, is not Kafka: it is counted in
//!    [`StreamStats::not_kafka_connections`] and produces nothing. Until roles are known, at
//!    most 64 KiB per direction is held.
//! 3. Frames (4-byte size, then body) are cut from each direction. Requests wait for their
//!    response, which is paired by correlation id with the oldest waiting request of that id
//!    (Kafka answers in order; requests skipped over are reported unanswered). Produce with
//!    acks=0 gets no response and goes out at once.
//! 4. Lost bytes: a gap inside a frame loses that frame (when the gap ends inside it, the next
//!    boundary is still known); otherwise the direction scans forward for a plausible frame
//!    start (requests: a plausible header that then decodes; responses: a size and the
//!    correlation id of a waiting request, then it decodes). The next exchange says how many
//!    bytes were missing or skipped. A capture that starts mid-stream is resynchronised the
//!    same way, and a response whose request was never captured is shown on its own.
//! 5. Requests that cannot be framed (size over the limit, implausible header) make the
//!    client's direction undecodable: one `Malformed` exchange, then a resynchronising scan.
//!
//! Memory: frames are buffered only as their bytes arrive (a size prefix never reserves
//! memory), connections are bounded by [`StreamOptions::max_connections`] (the least recently
//! active is dropped), and each connection holds at most 1024 requests waiting for a response.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;

use kafka_protocol::messages::ApiKey;

use super::reassembly::{Chunk, Reassembler, ReassemblyLimits};
use super::Segment;
use crate::capture::{ClosedBy, ConnEvent, ConnEventKind, Exchange, Framing, Status};
use crate::protocol::dissect::peek_request_header;
use crate::protocol::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::protocol::{dissect_request_with, dissect_response_with, DecodeError, Limits};

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

/// Bytes of each direction held while roles are unknown, and scanned before a connection is
/// declared not Kafka.
const PROBE_WINDOW: usize = 64 * 1024;
/// Requests per connection waiting for a response, at most.
const MAX_PENDING: usize = 1024;
/// How far below the first captured request's correlation id a response seen at the very
/// start of a mid-stream capture may be, to be taken as an answer to an uncaptured request.
const MID_STREAM_CORRELATION_WINDOW: i64 = 1024;
/// Longest client id believed when looking for a request start (real ones are short).
const MAX_CLIENT_ID: i16 = 1024;
/// Bytes of an undecodable request kept in its `Malformed` exchange.
const MALFORMED_KEEP: usize = 64;

/// Kafka connections found in a stream of captured TCP segments.
pub struct KafkaStreams {
    opts: StreamOptions,
    conns: HashMap<ConnKey, Conn>,
    /// Connections by last activity, for dropping the least recently active one.
    by_activity: BTreeMap<u64, ConnKey>,
    tick: u64,
    next_id: u64,
    stats: StreamStats,
}

/// Both endpoints, lower first, so both directions map to one key.
type ConnKey = (SocketAddr, SocketAddr);

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
            conns: HashMap::new(),
            by_activity: BTreeMap::new(),
            tick: 0,
            next_id: 1,
            stats: StreamStats::default(),
        }
    }

    /// Takes the next captured segment (in capture order); appends what it completed.
    pub fn on_segment(&mut self, seg: &Segment, out: &mut Vec<Output>) {
        let key = if seg.src <= seg.dst {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        let has_data = seg.wire_len > 0 || !seg.payload.is_empty();
        if seg.flags.syn && !seg.flags.ack {
            if let Some(c) = self.conns.get(&key) {
                if c.first_close.is_some() || c.data_seen[c.dir_of(seg.src)] {
                    self.finalize(key, End::Replaced, out);
                }
            }
        }
        if !self.conns.contains_key(&key) {
            if !has_data && !seg.flags.syn {
                return; // a stray ACK, FIN or RST of a connection not (or no longer) tracked
            }
            self.make_room(out);
            let conn = Conn::new(self.next_id, seg, &self.opts);
            self.next_id += 1;
            self.stats.connections += 1;
            self.conns.insert(key, conn);
        }
        self.tick += 1;
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        self.by_activity.remove(&conn.tick);
        conn.tick = self.tick;
        self.by_activity.insert(self.tick, key);
        if conn.on_segment(seg, &self.opts, &mut self.stats, out) {
            self.finalize(key, End::Closed, out);
        }
    }

    /// End of input: what is still buffered is framed (holes as gaps), requests still waiting
    /// become `Unanswered`, connections that saw a FIN or RST report it.
    pub fn finish(&mut self, out: &mut Vec<Output>) {
        let mut keys: Vec<(u64, ConnKey)> = self.conns.iter().map(|(k, c)| (c.id, *k)).collect();
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

    fn make_room(&mut self, out: &mut Vec<Output>) {
        while self.conns.len() >= self.opts.max_connections.max(1) {
            let Some((_, &key)) = self.by_activity.first_key_value() else {
                return;
            };
            self.stats.connections_evicted += 1;
            self.finalize(key, End::Evicted, out);
        }
    }

    fn finalize(&mut self, key: ConnKey, end: End, out: &mut Vec<Output>) {
        if let Some(mut conn) = self.conns.remove(&key) {
            self.by_activity.remove(&conn.tick);
            conn.end(end, &self.opts, &mut self.stats, out);
        }
    }

    /// Bytes held by framers (for tests of allocation bounds).
    #[cfg(test)]
    fn framer_capacity(&self) -> usize {
        self.conns
            .values()
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
    b: SocketAddr,
    first_seen_us: i64,
    /// Last activity (key in `KafkaStreams::by_activity`).
    tick: u64,
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
            for chunk in self.reasm[dir].push(seg) {
                self.feed(dir, chunk, opts, stats, out);
            }
        }
        if (seg.flags.fin || seg.flags.rst) && self.first_close.is_none() {
            self.first_close = Some((dir, seg.flags.rst, micros(seg.ts_nanos)));
        }
        self.fin[dir] |= seg.flags.fin;
        self.rst |= seg.flags.rst;
        self.rst || (self.fin[0] && self.fin[1])
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

/// Whether bytes look like the start of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Yes,
    No,
    NeedMore,
}

/// Whether `b` starts with a plausible request: size in 8..=max, api key 0..=100, version
/// 0..=20. `strict` (for finding a frame start among unknown bytes) also wants a
/// non-negative correlation id and a client id of at most 1024 bytes that fits the frame and
/// is text (UTF-8 without control characters).
/// The mechanism a SaslHandshake request names.
fn handshake_mechanism(frame: &[u8]) -> Option<String> {
    let d = crate::protocol::dissect_request(frame);
    d.root
        .find("sasl_handshake.request.mechanism")
        .and_then(|f| match &f.value {
            crate::protocol::Value::Str(s) => Some(s.clone()),
            _ => None,
        })
}

fn request_verdict(b: &[u8], max: usize, strict: bool) -> Verdict {
    let Some(size) = be_i32(b, 0) else {
        return Verdict::NeedMore;
    };
    if size < 8 || size as u64 > max as u64 {
        return Verdict::No;
    }
    let (Some(key), Some(version), Some(corr)) = (be_i16(b, 4), be_i16(b, 6), be_i32(b, 8)) else {
        return Verdict::NeedMore;
    };
    if !(0..=100).contains(&key) || !(0..=20).contains(&version) {
        return Verdict::No;
    }
    if !strict {
        return Verdict::Yes;
    }
    if corr < 0 {
        return Verdict::No;
    }
    if header_version(key, version) == 0 {
        return Verdict::Yes;
    }
    let Some(len) = be_i16(b, 12) else {
        return Verdict::NeedMore;
    };
    if !(-1..=MAX_CLIENT_ID).contains(&len) || 10 + i32::from(len.max(0)) > size {
        return Verdict::No;
    }
    let end = b.len().min(14 + len.max(0) as usize);
    let id = &b[14.min(end)..end];
    let text = match std::str::from_utf8(id) {
        Ok(t) => t,
        // Cut inside a character by the end of the bytes so far: judge what is whole.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&id[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return Verdict::No,
    };
    if text.chars().any(char::is_control) {
        return Verdict::No;
    }
    Verdict::Yes
}

/// Request header version (0 only for ControlledShutdown v0; 1 for keys this build does not
/// know, which is what every other non-flexible request uses).
fn header_version(key: i16, version: i16) -> i16 {
    ApiKey::try_from(key).map_or(1, |k| k.request_header_version(version))
}

/// The client id of a request body (after the size prefix).
fn client_id(body: &[u8], key: i16, version: i16) -> Option<String> {
    if header_version(key, version) == 0 {
        return None;
    }
    let len = be_i16(body, 8)?;
    let len = usize::try_from(len).ok()?;
    let bytes = body.get(10..10 + len)?;
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// A Produce request's `acks`, read from its body (after the size prefix): the header, then
/// (v3+) the transactional id, then acks. `None` when the bytes end first.
fn produce_acks(body: &[u8], version: i16) -> Option<i16> {
    let flexible = version >= 9;
    let mut c = Cursor { b: body, pos: 8 };
    let client_id_len = c.i16()?;
    c.skip(usize::try_from(client_id_len).unwrap_or(0))?;
    if flexible {
        let tags = c.uvarint()?;
        for _ in 0..tags {
            c.uvarint()?;
            let size = c.uvarint()?;
            c.skip(usize::try_from(size).ok()?)?;
        }
    }
    if version >= 3 {
        if flexible {
            let len = c.uvarint()?;
            c.skip(usize::try_from(len.saturating_sub(1)).ok()?)?;
        } else {
            let len = c.i16()?;
            c.skip(usize::try_from(len).unwrap_or(0))?;
        }
    }
    c.i16()
}

/// Reads big-endian integers and unsigned varints from a byte slice, never past its end.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        (end <= self.b.len()).then(|| self.pos = end)
    }

    fn i16(&mut self) -> Option<i16> {
        let v = be_i16(self.b, self.pos)?;
        self.pos += 2;
        Some(v)
    }

    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..35).step_by(7) {
            let byte = *self.b.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
}

fn be_i16(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Capture nanoseconds to the µs exchanges use.
fn micros(ts_nanos: i64) -> i64 {
    ts_nanos.div_euclid(1000)
}

/// What the probe concluded about a connection's roles.
enum ProbeVerdict {
    Undecided,
    /// The client sends in this direction.
    Client(usize),
    NotKafka,
}

/// Holds a connection's first bytes until one direction shows a plausible request.
struct Probe {
    /// Which directions may be the client's (towards the Kafka port, or both).
    may_be_client: [bool; 2],
    dirs: [ProbeDir; 2],
    /// What was delivered, in order, replayed once the roles are known (at most
    /// `PROBE_WINDOW` data bytes per direction; the rest is kept as gaps).
    log: Vec<(usize, Chunk)>,
    logged: [usize; 2],
    saw_data: bool,
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
    fn new(may_be_client: [bool; 2]) -> Self {
        Probe {
            may_be_client,
            dirs: [ProbeDir::default(), ProbeDir::default()],
            log: Vec::new(),
            logged: [0; 2],
            saw_data: false,
        }
    }

    fn offer(&mut self, dir: usize, chunk: Chunk, saw_syn: bool, max: usize) -> ProbeVerdict {
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

/// A request waiting for its response.
struct Pending {
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    client_id: Option<String>,
    /// The frame; `None` when it was lost in a gap but its header was captured (so its
    /// response can still be paired and decoded).
    request: Option<Vec<u8>>,
    request_at: i64,
    notes: Vec<String>,
    /// A bare SASL token rather than a Kafka request.
    framing: Framing,
}

/// Where a direction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// At a frame boundary, or inside a frame whose size is known.
    Synced,
    /// Looking for a frame boundary.
    Lost,
}

/// One direction's bytes, waiting to be cut into frames.
struct Framer {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    start: usize,
    sync: Sync,
    /// Bytes of a frame lost to a gap still to pass before the next boundary (synced only,
    /// with `buf` empty).
    discard: u64,
    /// The frame at the boundary was found by scanning: it must decode to be believed.
    candidate: bool,
    /// Nothing framed and no gap yet in a stream captured from its middle.
    at_start: bool,
    /// Responses: the first captured byte may still be taken as a frame start.
    first_open: bool,
    /// Capture time of the latest bytes (ns).
    ts: i64,
    /// For the next frame's notes: bytes in gaps, bytes skipped, bytes skipped at the start.
    missing: u64,
    skipped: u64,
    skipped_at_start: u64,
    /// "frame" or "response frame", for notes.
    what: &'static str,
}

impl Framer {
    fn new(from_stream_start: bool, what: &'static str) -> Self {
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

    fn avail(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn consume(&mut self, n: usize) {
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
    fn skip(&mut self, n: usize, stats: &mut StreamStats) {
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

    fn lose_sync(&mut self) {
        self.sync = Sync::Lost;
        self.candidate = false;
        self.discard = 0;
    }

    fn push_data(&mut self, bytes: &[u8], ts: i64, stats: &mut StreamStats) {
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
    fn take_notes(&mut self) -> Vec<String> {
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

/// A connection known to be Kafka: its two framers and the requests waiting for answers.
struct Session {
    conn: u64,
    client_dir: usize,
    /// The client's address.
    peer: SocketAddr,
    /// The broker's address.
    server: SocketAddr,
    req: Framer,
    resp: Framer,
    pending: VecDeque<Pending>,
    /// Correlation id of the first request framed.
    first_req_corr: Option<i32>,
    /// The client's stream was captured from its middle.
    req_mid_stream: bool,
    /// Input has ended: decide what was waiting for more bytes.
    ending: bool,
    max_frame: usize,
    /// Where a SASL exchange after SaslHandshake v0 stands.
    sasl: SaslTokens,
}

/// After a successful SaslHandshake v0 the client authenticates with bare tokens (no Kafka
/// header) and the broker answers each with a bare token (see `protocol::sasl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SaslTokens {
    /// Kafka frames both ways.
    Off,
    /// The client's next frame is a token. `more`: the mechanism may take several round trips
    /// (not PLAIN): after this one, a frame that is not a Kafka request is another token.
    ClientNext { more: bool },
    /// The broker's next frame answers the token waiting in `pending`.
    BrokerNext { more: bool },
}

impl Session {
    fn new(
        conn: u64,
        client_dir: usize,
        client: SocketAddr,
        server: SocketAddr,
        saw_syn: [bool; 2],
        max_frame: usize,
    ) -> Self {
        let req_from_start = saw_syn[client_dir];
        Session {
            conn,
            client_dir,
            peer: client,
            server,
            req: Framer::new(req_from_start, "frame"),
            resp: Framer::new(saw_syn[1 - client_dir], "response frame"),
            pending: VecDeque::new(),
            first_req_corr: None,
            req_mid_stream: !req_from_start,
            ending: false,
            max_frame,
            sasl: SaslTokens::Off,
        }
    }

    fn feed(&mut self, dir: usize, chunk: Chunk, stats: &mut StreamStats, out: &mut Vec<Output>) {
        let is_req = dir == self.client_dir;
        match chunk {
            Chunk::Data { bytes, ts_nanos } => {
                let f = if is_req {
                    &mut self.req
                } else {
                    &mut self.resp
                };
                f.push_data(&bytes, ts_nanos, stats);
            }
            Chunk::Gap { len, ts_nanos } => self.on_gap(is_req, len, ts_nanos, stats, out),
        }
        self.pump_requests(stats, out);
        self.pump_responses(stats, out);
    }

    fn on_gap(
        &mut self,
        is_req: bool,
        len: u64,
        ts: i64,
        stats: &mut StreamStats,
        out: &mut Vec<Output>,
    ) {
        stats.gaps += 1;
        stats.bytes_missing += len;
        let f = if is_req {
            &mut self.req
        } else {
            &mut self.resp
        };
        f.missing += len;
        f.ts = ts;
        f.at_start = false;
        f.first_open = false;
        if f.sync == Sync::Lost {
            let n = f.avail().len();
            f.skip(n, stats);
            return;
        }
        if f.discard > 0 {
            if len <= f.discard {
                f.discard -= len;
            } else {
                f.lose_sync();
            }
            return;
        }
        let avail = f.avail();
        let have = avail.len();
        let size = be_i32(avail, 0).and_then(|s| u64::try_from(s).ok());
        let lost = match size {
            Some(_) if !f.candidate && is_req => lost_request(avail, ts),
            _ => None,
        };
        let remaining = size.map(|size| (4 + size).saturating_sub(have as u64));
        match remaining {
            Some(remaining) if !f.candidate && remaining >= len => {
                // The gap ends inside this frame: it is lost, but its end is known.
                f.skip(have, stats);
                f.discard = remaining - len;
            }
            _ => {
                f.skip(have, stats);
                f.lose_sync();
            }
        }
        if let Some(p) = lost {
            self.add_pending(p, out);
        }
    }

    /// Cuts request frames while there are whole ones.
    fn pump_requests(&mut self, stats: &mut StreamStats, out: &mut Vec<Output>) {
        let max = self.max_frame;
        loop {
            match self.req.sync {
                Sync::Synced => {
                    if self.req.discard > 0 {
                        return;
                    }
                    if let SaslTokens::ClientNext { more } = self.sasl {
                        match self.sasl_token(more, stats) {
                            Verdict::NeedMore => return,
                            Verdict::Yes => continue,
                            Verdict::No => self.sasl = SaslTokens::Off,
                        }
                    }
                    let avail = self.req.avail();
                    match request_verdict(avail, max, self.req.candidate) {
                        Verdict::NeedMore => return,
                        Verdict::No if self.req.candidate => {
                            self.req.lose_sync();
                            self.req.skip(1, stats);
                        }
                        Verdict::No => {
                            self.emit_malformed(stats, out);
                            self.req.lose_sync();
                        }
                        Verdict::Yes => {
                            let total = 4 + be_i32(avail, 0).unwrap_or(0) as usize;
                            if avail.len() < total {
                                return;
                            }
                            let frame = &avail[..total];
                            if self.req.candidate
                                && dissect_request_with(frame, Limits::CHECK_ONLY)
                                    .error
                                    .is_some()
                            {
                                self.req.lose_sync();
                                self.req.skip(1, stats);
                                continue;
                            }
                            let frame = frame.to_vec();
                            self.req.consume(total);
                            self.req.candidate = false;
                            self.on_request(frame, stats, out);
                        }
                    }
                }
                Sync::Lost => {
                    let avail = self.req.avail();
                    let mut i = 0;
                    let mut found = false;
                    while i + 4 <= avail.len() {
                        match request_verdict(&avail[i..], max, true) {
                            Verdict::Yes => {
                                found = true;
                                break;
                            }
                            Verdict::NeedMore => break,
                            Verdict::No => i += 1,
                        }
                    }
                    self.req.skip(i, stats);
                    if !found {
                        return;
                    }
                    self.req.sync = Sync::Synced;
                    self.req.candidate = true;
                }
            }
        }
    }

    /// Cuts response frames while there are whole ones.
    fn pump_responses(&mut self, stats: &mut StreamStats, out: &mut Vec<Output>) {
        let max = self.max_frame as u64;
        let size_ok = |s: i32| (4..=max).contains(&(i64::from(s).max(0) as u64));
        loop {
            match self.resp.sync {
                Sync::Synced => {
                    if self.resp.discard > 0 {
                        return;
                    }
                    if let SaslTokens::BrokerNext { more } = self.sasl {
                        match self.sasl_answer(more, stats, out) {
                            Verdict::NeedMore => return,
                            Verdict::Yes => continue,
                            Verdict::No => self.sasl = SaslTokens::Off,
                        }
                    }
                    let avail = self.resp.avail();
                    let (Some(size), Some(corr)) = (be_i32(avail, 0), be_i32(avail, 4)) else {
                        return;
                    };
                    if !size_ok(size) {
                        // Not a frame boundary after all: look for one.
                        self.resp.lose_sync();
                        if self.resp.candidate {
                            self.resp.skip(1, stats);
                        }
                        continue;
                    }
                    let total = 4 + size as usize;
                    if avail.len() < total {
                        return;
                    }
                    let frame = &avail[..total];
                    if self.resp.candidate {
                        let decodes = self
                            .pending
                            .iter()
                            .find(|p| p.correlation_id == corr)
                            .is_some_and(|p| {
                                dissect_response_with(
                                    frame,
                                    p.api_key,
                                    p.api_version,
                                    Limits::CHECK_ONLY,
                                )
                                .error
                                .is_none()
                            });
                        if !decodes {
                            self.resp.lose_sync();
                            self.resp.skip(1, stats);
                            continue;
                        }
                    }
                    let frame = frame.to_vec();
                    self.resp.consume(total);
                    self.resp.candidate = false;
                    self.on_response(frame, corr, stats, out);
                }
                Sync::Lost => {
                    if self.resp.first_open {
                        match self.first_response_verdict(size_ok) {
                            Verdict::NeedMore => return,
                            Verdict::Yes => {
                                self.resp.sync = Sync::Synced;
                                continue;
                            }
                            Verdict::No => self.resp.first_open = false,
                        }
                    }
                    let avail = self.resp.avail();
                    let mut i = 0;
                    let mut found = false;
                    while i + 8 <= avail.len() {
                        if let (Some(size), Some(corr)) = (be_i32(avail, i), be_i32(avail, i + 4)) {
                            if size_ok(size)
                                && self.pending.iter().any(|p| p.correlation_id == corr)
                            {
                                found = true;
                                break;
                            }
                        }
                        i += 1;
                    }
                    self.resp.skip(i, stats);
                    if !found {
                        return;
                    }
                    self.resp.sync = Sync::Synced;
                    self.resp.candidate = true;
                }
            }
        }
    }

    /// Whether the first captured byte of a response stream captured mid-stream starts a
    /// frame: its correlation id is a waiting request's (then it must decode), or a little
    /// below the first captured request's (an answer to a request sent before the capture).
    /// Waits for a request to compare with, up to `PROBE_WINDOW` bytes or the end of input.
    fn first_response_verdict(&mut self, size_ok: impl Fn(i32) -> bool) -> Verdict {
        let avail = self.resp.avail();
        let (Some(size), Some(corr)) = (be_i32(avail, 0), be_i32(avail, 4)) else {
            return if self.ending {
                Verdict::No
            } else {
                Verdict::NeedMore
            };
        };
        if !size_ok(size) || corr < 0 {
            return Verdict::No;
        }
        if self.pending.iter().any(|p| p.correlation_id == corr) {
            self.resp.candidate = true;
            return Verdict::Yes;
        }
        match self.first_req_corr {
            Some(first) => {
                let below = i64::from(first) - i64::from(corr);
                if (1..=MID_STREAM_CORRELATION_WINDOW).contains(&below) {
                    Verdict::Yes
                } else {
                    Verdict::No
                }
            }
            None if self.ending => {
                if avail.len() >= 4 + size as usize {
                    Verdict::Yes
                } else {
                    Verdict::No
                }
            }
            None if avail.len() < PROBE_WINDOW => Verdict::NeedMore,
            None => Verdict::No,
        }
    }

    fn exchange(
        &self,
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
        client_id: Option<String>,
        request_at: i64,
        status: Status,
    ) -> Exchange {
        Exchange {
            server: Some(self.server),
            client_id,
            api_key,
            api_version,
            correlation_id,
            ..Exchange::new(self.conn, self.peer, request_at, status)
        }
    }

    fn pending_exchange(&self, p: Pending, status: Status) -> Exchange {
        let mut ex = self.exchange(
            p.api_key,
            p.api_version,
            p.correlation_id,
            p.client_id,
            p.request_at,
            status,
        );
        ex.request = p.request.unwrap_or_default();
        ex.notes = p.notes;
        ex.framing = p.framing;
        ex
    }

    fn on_request(&mut self, frame: Vec<u8>, stats: &mut StreamStats, out: &mut Vec<Output>) {
        stats.frames += 1;
        let body = &frame[4..];
        let (api_key, api_version, correlation_id) =
            peek_request_header(body).unwrap_or((-1, -1, -1));
        self.first_req_corr.get_or_insert(correlation_id);
        let pending = Pending {
            api_key,
            api_version,
            correlation_id,
            client_id: client_id(body, api_key, api_version),
            request_at: micros(self.req.ts),
            notes: self.req.take_notes(),
            request: None,
            framing: Framing::Kafka,
        };
        let no_response = api_key == 0 && produce_acks(body, api_version) == Some(0);
        let pending = Pending {
            request: Some(frame),
            ..pending
        };
        if no_response {
            let ex = self.pending_exchange(pending, Status::NoResponse);
            out.push(Output::Exchange(ex));
        } else {
            self.add_pending(pending, out);
        }
    }

    fn add_pending(&mut self, p: Pending, out: &mut Vec<Output>) {
        self.pending.push_back(p);
        if self.pending.len() > MAX_PENDING {
            if let Some(old) = self.pending.pop_front() {
                if old.request.is_some() {
                    let mut ex = self.pending_exchange(old, Status::Unanswered);
                    ex.notes.push(format!(
                        "no response seen while {MAX_PENDING} later requests were waiting; given up on"
                    ));
                    out.push(Output::Exchange(ex));
                }
            }
        }
    }

    fn on_response(
        &mut self,
        frame: Vec<u8>,
        corr: i32,
        stats: &mut StreamStats,
        out: &mut Vec<Output>,
    ) {
        stats.frames += 1;
        let notes = self.resp.take_notes();
        let at = micros(self.resp.ts);
        let Some(i) = self.pending.iter().position(|p| p.correlation_id == corr) else {
            stats.unpaired += 1;
            let started_after = self.req_mid_stream && self.first_req_corr.is_none_or(|f| corr < f);
            let why = if started_after {
                "response without its request (capture started after it)"
            } else {
                "response without its request (request not captured)"
            };
            let mut ex = self.exchange(-1, -1, corr, None, at, Status::Answered);
            ex.response = Some(frame);
            ex.response_at = Some(at);
            ex.notes.push(why.into());
            ex.notes.extend(notes);
            out.push(Output::Exchange(ex));
            return;
        };
        let skipped: Vec<Pending> = self.pending.drain(..i).collect();
        for p in skipped {
            if p.request.is_some() {
                let mut ex = self.pending_exchange(p, Status::Unanswered);
                ex.notes.push(format!(
                    "no response seen: the broker answered a later request (correlation id {corr}) first"
                ));
                out.push(Output::Exchange(ex));
            }
        }
        let Some(p) = self.pending.pop_front() else {
            return;
        };
        if p.api_key == ApiKey::SaslHandshake as i16 && p.api_version == 0 {
            // error_code right after the correlation id; 0: bare tokens follow.
            if be_i16(&frame, 8) == Some(0) {
                let more = p
                    .request
                    .as_deref()
                    .and_then(handshake_mechanism)
                    .is_none_or(|m| m != "PLAIN");
                self.sasl = SaslTokens::ClientNext { more };
            }
        }
        let mut ex = self.pending_exchange(p, Status::Answered);
        ex.response = Some(frame);
        ex.response_at = Some(at);
        ex.notes.extend(notes);
        out.push(Output::Exchange(ex));
    }

    /// With a bare SASL token due from the client: takes it when whole (`Yes`), waits for the
    /// rest (`NeedMore`), or (`No`) finds a Kafka request instead, once a mechanism that may
    /// take several round trips has had at least one.
    fn sasl_token(&mut self, more: bool, stats: &mut StreamStats) -> Verdict {
        let avail = self.req.avail();
        let Some(size) = be_i32(avail, 0) else {
            return Verdict::NeedMore;
        };
        if size < 0 || size as u64 > self.max_frame as u64 {
            return Verdict::No;
        }
        let total = 4 + size as usize;
        if avail.len() < total {
            return Verdict::NeedMore;
        }
        let frame = &avail[..total];
        let is_request = || {
            request_verdict(frame, self.max_frame, true) == Verdict::Yes
                && dissect_request_with(frame, Limits::CHECK_ONLY)
                    .error
                    .is_none()
        };
        if more && is_request() {
            return Verdict::No;
        }
        let frame = frame.to_vec();
        self.req.consume(total);
        stats.frames += 1;
        let pending = Pending {
            api_key: ApiKey::SaslAuthenticate as i16,
            api_version: 0,
            correlation_id: -1,
            client_id: None,
            request: Some(frame),
            request_at: micros(self.req.ts),
            notes: self.req.take_notes(),
            framing: Framing::SaslToken,
        };
        self.pending.push_back(pending);
        self.sasl = SaslTokens::BrokerNext { more };
        Verdict::Yes
    }

    /// With the broker's answer to a bare SASL token due: pairs it with that token.
    fn sasl_answer(
        &mut self,
        more: bool,
        stats: &mut StreamStats,
        out: &mut Vec<Output>,
    ) -> Verdict {
        let avail = self.resp.avail();
        let Some(size) = be_i32(avail, 0) else {
            return Verdict::NeedMore;
        };
        let waiting = self
            .pending
            .iter()
            .position(|p| p.framing == Framing::SaslToken);
        let (Some(i), true) = (
            waiting,
            (0..=self.max_frame as i64).contains(&i64::from(size)),
        ) else {
            return Verdict::No;
        };
        let total = 4 + size as usize;
        if avail.len() < total {
            return Verdict::NeedMore;
        }
        let frame = avail[..total].to_vec();
        self.resp.consume(total);
        stats.frames += 1;
        let at = micros(self.resp.ts);
        let notes = self.resp.take_notes();
        let Some(p) = self.pending.remove(i) else {
            return Verdict::No;
        };
        let mut ex = self.pending_exchange(p, Status::Answered);
        ex.response = Some(frame);
        ex.response_at = Some(at);
        ex.notes.extend(notes);
        out.push(Output::Exchange(ex));
        self.sasl = if more {
            SaslTokens::ClientNext { more }
        } else {
            SaslTokens::Off
        };
        Verdict::Yes
    }

    /// The client's stream cannot be framed here: one `Malformed` exchange.
    fn emit_malformed(&mut self, stats: &mut StreamStats, out: &mut Vec<Output>) {
        stats.malformed += 1;
        let avail = self.req.avail();
        let size = be_i32(avail, 0).unwrap_or(0);
        let head = peek_request_header(avail.get(4..).unwrap_or(&[]));
        let message = if size < 0 {
            format!("negative frame size {size}")
        } else if size as u64 > self.max_frame as u64 {
            format!(
                "frame size {size} exceeds the maximum of {} bytes",
                self.max_frame
            )
        } else if size < 8 {
            format!("frame size {size} is too small for a request header")
        } else {
            let (k, v, _) = head.unwrap_or((-1, -1, -1));
            format!("implausible request header (api key {k}, version {v})")
        };
        let kept = avail[..avail.len().min(MALFORMED_KEEP)].to_vec();
        let (key, version, corr) = head.unwrap_or((-1, -1, -1));
        let status = Status::Malformed {
            error: DecodeError {
                offset: 0,
                path: "kafka.length".into(),
                message,
            },
        };
        let mut ex = self.exchange(key, version, corr, None, micros(self.req.ts), status);
        ex.request = kept;
        ex.notes = self.req.take_notes();
        ex.notes.push(
            "client stream not decodable from here; skipping to the next plausible request".into(),
        );
        out.push(Output::Exchange(ex));
    }

    /// Input for this connection is over.
    fn end(&mut self, end: End, stats: &mut StreamStats, out: &mut Vec<Output>) {
        self.ending = true;
        self.pump_requests(stats, out);
        self.pump_responses(stats, out);
        for f in [&mut self.req, &mut self.resp] {
            let n = f.avail().len();
            f.skip(n, stats);
        }
        while let Some(p) = self.pending.pop_front() {
            if p.request.is_some() {
                let mut ex = self.pending_exchange(p, Status::Unanswered);
                ex.notes.push(end.note().into());
                out.push(Output::Exchange(ex));
            }
        }
    }
}

/// A request lost to a gap, from the part of it that was captured: enough to pair and decode
/// its response. `None` when the header was not captured or it expects no response.
fn lost_request(captured: &[u8], ts: i64) -> Option<Pending> {
    let body = captured.get(4..)?;
    let (api_key, api_version, correlation_id) = peek_request_header(body)?;
    if api_key == 0 && produce_acks(body, api_version) == Some(0) {
        return None;
    }
    Some(Pending {
        api_key,
        api_version,
        correlation_id,
        client_id: client_id(body, api_key, api_version),
        request: None,
        request_at: micros(ts),
        notes: vec![
            "request frame lost in the capture (lost segments); only its header was seen".into(),
        ],
        framing: Framing::Kafka,
    })
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;
    use crate::capture::pcap::TcpFlags;
    use crate::protocol::frame::with_size_prefix;
    use crate::protocol::test_frames;

    const CLIENT_ID: &str = "pcap-test";

    fn request<R: Encodable + HeaderVersion>(
        key: ApiKey,
        version: i16,
        corr: i32,
        body: &R,
    ) -> Vec<u8> {
        test_frames::request_frame(key as i16, version, corr, Some(CLIENT_ID), body)
    }

    /// A request frame and its response frame.
    type Pair = (Vec<u8>, Vec<u8>);

    fn api_versions(corr: i32) -> Pair {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("pcap-test"))
            .with_client_software_version(StrBytes::from_static_str("1.0"));
        let keys = [(0, 3, 9), (3, 0, 12), (18, 0, 3)]
            .map(|(k, lo, hi)| {
                api_versions_response::ApiVersion::default()
                    .with_api_key(k)
                    .with_min_version(lo)
                    .with_max_version(hi)
            })
            .to_vec();
        let resp = ApiVersionsResponse::default().with_api_keys(keys);
        (
            request(ApiKey::ApiVersions, 3, corr, &req),
            test_frames::response_frame(3, corr, &resp),
        )
    }

    fn metadata(corr: i32) -> Pair {
        let topic = |n: &str| {
            metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(n.into()))))
        };
        let req = MetadataRequest::default().with_topics(Some(vec![topic("orders"), topic("a")]));
        let resp = MetadataResponse::default().with_brokers(vec![
            metadata_response::MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("localhost"))
                .with_port(9092),
        ]);
        (
            request(ApiKey::Metadata, 12, corr, &req),
            test_frames::response_frame(12, corr, &resp),
        )
    }

    fn records(n: usize, value_len: usize) -> Bytes {
        let recs: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: 1_700_000_000_000,
                key: None,
                value: Some(Bytes::from(vec![b'v'; value_len])),
                headers: IndexMap::new(),
            })
            .collect();
        let mut b = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut b,
            &recs,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        b.freeze()
    }

    fn produce(corr: i32, version: i16, acks: i16) -> Pair {
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(5000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("orders")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records(3, 700))),
                ])]);
        let resp = ProduceResponse::default().with_responses(vec![
            produce_response::TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("orders")))
                .with_partition_responses(vec![
                    produce_response::PartitionProduceResponse::default().with_index(0),
                ]),
        ]);
        (
            request(ApiKey::Produce, version, corr, &req),
            test_frames::response_frame(version, corr, &resp),
        )
    }

    fn flags(syn: bool, ack: bool, fin: bool, rst: bool) -> TcpFlags {
        TcpFlags { syn, ack, fin, rst }
    }

    /// Builds the segments of one TCP connection, with sequence and acknowledgement numbers
    /// as the two ends would send them.
    struct Tcp {
        client: SocketAddr,
        server: SocketAddr,
        cseq: u32,
        sseq: u32,
        ts: i64,
        segs: Vec<Segment>,
    }

    impl Tcp {
        fn new(client: &str, server: &str, cisn: u32, sisn: u32) -> Self {
            Tcp {
                client: client.parse().unwrap(),
                server: server.parse().unwrap(),
                cseq: cisn,
                sseq: sisn,
                ts: 1_700_000_000_000_000_000,
                segs: Vec::new(),
            }
        }

        /// A segment at `seq_delta` bytes from the sender's current sequence number.
        fn seg_at(&mut self, from_client: bool, f: TcpFlags, delta: u32, payload: &[u8]) -> usize {
            self.ts += 1_000_000;
            let (src, dst, seq, ack) = if from_client {
                (self.client, self.server, self.cseq, self.sseq)
            } else {
                (self.server, self.client, self.sseq, self.cseq)
            };
            self.segs.push(Segment {
                ts_nanos: self.ts,
                src,
                dst,
                seq: seq.wrapping_add(delta),
                ack: if f.ack { ack } else { 0 },
                flags: f,
                payload: payload.to_vec(),
                wire_len: payload.len() as u32,
            });
            self.segs.len() - 1
        }

        fn advance(&mut self, from_client: bool, n: u32) {
            if from_client {
                self.cseq = self.cseq.wrapping_add(n);
            } else {
                self.sseq = self.sseq.wrapping_add(n);
            }
        }

        fn handshake(&mut self) {
            self.seg_at(true, flags(true, false, false, false), 0, b"");
            self.advance(true, 1);
            self.seg_at(false, flags(true, true, false, false), 0, b"");
            self.advance(false, 1);
            self.seg_at(true, flags(false, true, false, false), 0, b"");
        }

        /// Sends `bytes` as the given byte ranges (in this order; ranges may repeat or overlap).
        fn send_pieces(
            &mut self,
            from_client: bool,
            bytes: &[u8],
            pieces: &[Range<usize>],
        ) -> Range<usize> {
            let first = self.segs.len();
            for r in pieces {
                let ack = flags(false, true, false, false);
                self.seg_at(from_client, ack, r.start as u32, &bytes[r.clone()]);
            }
            self.advance(from_client, bytes.len() as u32);
            first..self.segs.len()
        }

        /// Sends `bytes` in segments of at most `mss` bytes.
        fn send(&mut self, from_client: bool, bytes: &[u8], mss: usize) -> Range<usize> {
            let pieces: Vec<Range<usize>> = (0..bytes.len())
                .step_by(mss)
                .map(|s| s..(s + mss).min(bytes.len()))
                .collect();
            self.send_pieces(from_client, bytes, &pieces)
        }

        fn fin(&mut self, from_client: bool) {
            self.seg_at(from_client, flags(false, true, true, false), 0, b"");
            self.advance(from_client, 1);
        }

        fn rst(&mut self, from_client: bool) {
            self.seg_at(from_client, flags(false, true, false, true), 0, b"");
        }

        fn last_ts_us(&self, r: &Range<usize>) -> i64 {
            self.segs[r.end - 1].ts_nanos / 1000
        }
    }

    fn run(segs: &[Segment], opts: StreamOptions) -> (Vec<Output>, StreamStats) {
        let mut streams = KafkaStreams::new(opts);
        let mut out = Vec::new();
        for s in segs {
            streams.on_segment(s, &mut out);
        }
        streams.finish(&mut out);
        assert_eq!(streams.open_connections(), 0);
        (out, streams.stats())
    }

    fn exchanges(out: &[Output]) -> Vec<&Exchange> {
        out.iter()
            .filter_map(|o| match o {
                Output::Exchange(e) => Some(e),
                Output::Conn(_) => None,
            })
            .collect()
    }

    fn events(out: &[Output]) -> Vec<&ConnEvent> {
        out.iter()
            .filter_map(|o| match o {
                Output::Conn(e) => Some(e),
                Output::Exchange(_) => None,
            })
            .collect()
    }

    /// Whole frames must dissect without error.
    fn assert_dissects(ex: &Exchange) {
        if let Some(d) = ex.dissect_request() {
            assert!(
                d.error.is_none(),
                "request {}: {:?}",
                ex.correlation_id,
                d.error
            );
        }
        if ex.api_key >= 0 {
            if let Some(d) = ex.dissect_response() {
                assert!(
                    d.error.is_none(),
                    "response {}: {:?}",
                    ex.correlation_id,
                    d.error
                );
            }
        }
    }

    /// The three exchanges of the standard session.
    fn session_pairs() -> Vec<Pair> {
        vec![api_versions(1), metadata(2), produce(3, 9, -1)]
    }

    /// Handshake, the pairs one after the other, FIN from the client then the broker.
    /// Returns the request and response segment ranges.
    fn clean_session(
        tcp: &mut Tcp,
        pairs: &[Pair],
        mss: usize,
    ) -> Vec<(Range<usize>, Range<usize>)> {
        tcp.handshake();
        let ranges = pairs
            .iter()
            .map(|(req, resp)| (tcp.send(true, req, mss), tcp.send(false, resp, mss)))
            .collect();
        tcp.fin(true);
        tcp.fin(false);
        ranges
    }

    fn assert_answered(ex: &Exchange, pair: &Pair, corr: i32) {
        assert_eq!(ex.correlation_id, corr);
        assert_eq!(ex.status, Status::Answered);
        assert_eq!(ex.request, pair.0, "request {corr} bytes");
        assert_eq!(
            ex.response.as_deref(),
            Some(&pair.1[..]),
            "response {corr} bytes"
        );
        assert_dissects(ex);
    }

    #[test]
    fn clean_session_in_small_segments() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        let pairs = session_pairs();
        let ranges = clean_session(&mut tcp, &pairs, 7);
        let (out, stats) = run(&tcp.segs, StreamOptions::default());

        let exs = exchanges(&out);
        assert_eq!(exs.len(), 3);
        let keys: Vec<(i16, i16)> = exs.iter().map(|e| (e.api_key, e.api_version)).collect();
        assert_eq!(keys, vec![(18, 3), (3, 12), (0, 9)]);
        for (i, ex) in exs.iter().enumerate() {
            assert_answered(ex, &pairs[i], i as i32 + 1);
            assert_eq!(ex.id, 0);
            assert_eq!(ex.conn, 1);
            assert_eq!(ex.peer.to_string(), "10.0.0.1:51000");
            assert_eq!(ex.server, Some("10.0.0.2:9092".parse().unwrap()));
            assert_eq!(ex.client_id.as_deref(), Some(CLIENT_ID));
            assert_eq!(ex.request_at, tcp.last_ts_us(&ranges[i].0));
            assert_eq!(ex.response_at, Some(tcp.last_ts_us(&ranges[i].1)));
            assert!(ex.notes.is_empty(), "{:?}", ex.notes);
        }
        // Opened first, Closed (by the client, who sent FIN first) last.
        assert!(matches!(
            &out[0],
            Output::Conn(ConnEvent {
                kind: ConnEventKind::Opened,
                conn: 1,
                ..
            })
        ));
        let Some(Output::Conn(closed)) = out.last() else {
            panic!("last output is not the close: {out:?}");
        };
        assert_eq!(
            closed.kind,
            ConnEventKind::Closed {
                by: ClosedBy::Client,
                reason: "client sent FIN".into()
            }
        );
        assert_eq!(events(&out)[0].at, tcp.segs[0].ts_nanos / 1000);
        assert_eq!(closed.peer.to_string(), "10.0.0.1:51000");
        assert_eq!(
            stats,
            StreamStats {
                connections: 1,
                kafka_connections: 1,
                frames: 6,
                ..StreamStats::default()
            }
        );
    }

    #[test]
    fn reordered_segments() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        let pairs = session_pairs();
        let ranges = clean_session(&mut tcp, &pairs, 50);
        // Within each burst, reverse every run of three segments.
        for (req, resp) in &ranges {
            for r in [req, resp] {
                for start in (r.start..r.end).step_by(3) {
                    tcp.segs[start..(start + 3).min(r.end)].reverse();
                }
            }
        }
        let (out, stats) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 3);
        for (i, ex) in exs.iter().enumerate() {
            assert_answered(ex, &pairs[i], i as i32 + 1);
            assert!(ex.notes.is_empty(), "{:?}", ex.notes);
        }
        assert_eq!((stats.gaps, stats.bytes_skipped), (0, 0));
    }

    #[test]
    fn duplicated_and_overlapping_retransmissions() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        tcp.handshake();
        let pairs = session_pairs();
        for (req, resp) in &pairs {
            for (from_client, bytes) in [(true, req), (false, resp)] {
                let n = bytes.len();
                let mut pieces = Vec::new();
                let mut s = 0;
                while s < n {
                    let e = (s + 40).min(n);
                    pieces.push(s..e);
                    pieces.push(s..e); // duplicate
                    pieces.push(s / 2..(e + 20).min(n)); // overlaps what came before and after
                    s = e;
                }
                tcp.send_pieces(from_client, bytes, &pieces);
            }
        }
        tcp.fin(true);
        tcp.fin(false);
        let (out, stats) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 3);
        for (i, ex) in exs.iter().enumerate() {
            assert_answered(ex, &pairs[i], i as i32 + 1);
        }
        assert_eq!((stats.gaps, stats.frames), (0, 6));
    }

    #[test]
    fn missing_segment_inside_a_request() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        let pairs = vec![
            api_versions(1),
            produce(2, 9, -1),
            metadata(3),
            api_versions(4),
        ];
        let ranges = clean_session(&mut tcp, &pairs, 100);
        // Lose the third segment of the produce request (well past its header).
        let lost = ranges[1].0.start + 2;
        let lost_len = tcp.segs[lost].payload.len();
        tcp.segs.remove(lost);
        let (out, stats) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 4, "{exs:#?}");
        assert_answered(exs[0], &pairs[0], 1);
        assert!(exs[0].notes.is_empty());
        // The produce request is lost; its header was seen, so its response is still paired
        // and decodes.
        let lost_ex = exs[1];
        assert_eq!(
            (lost_ex.api_key, lost_ex.api_version, lost_ex.correlation_id),
            (0, 9, 2)
        );
        assert!(lost_ex.request.is_empty());
        assert_eq!(lost_ex.response.as_deref(), Some(&pairs[1].1[..]));
        assert!(
            lost_ex
                .notes
                .iter()
                .any(|n| n.contains("request frame lost")),
            "{:?}",
            lost_ex.notes
        );
        assert_dissects(lost_ex);
        // The next exchange says what went missing before it; the rest decode.
        assert_answered(exs[2], &pairs[2], 3);
        let want = format!("{lost_len} bytes missing before this frame (lost segments)");
        assert!(exs[2].notes.contains(&want), "{:?}", exs[2].notes);
        assert_answered(exs[3], &pairs[3], 4);
        assert!(exs[3].notes.is_empty());
        assert_eq!((stats.gaps, stats.bytes_missing), (1, lost_len as u64));
        // The captured rest of the lost request: its first two segments and the ones after.
        assert_eq!(stats.bytes_skipped, (pairs[1].0.len() - lost_len) as u64);
    }

    #[test]
    fn missing_segment_at_a_request_header_resynchronises() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        let pairs = [api_versions(1), metadata(2), produce(3, 9, -1)];
        tcp.handshake();
        let a = tcp.send(true, &pairs[0].0, 1000);
        tcp.send(false, &pairs[0].1, 1000);
        // The second and third requests go out back to back in one burst; the segment
        // holding the end of the first and the start of the second is lost.
        let mut burst = pairs[1].0.clone();
        burst.extend_from_slice(&pairs[2].0);
        let cut = pairs[1].0.len();
        let r = tcp.send_pieces(
            true,
            &burst,
            &[0..cut - 10, cut - 10..cut + 20, cut + 20..burst.len()],
        );
        tcp.segs.remove(r.start + 1);
        tcp.send(false, &pairs[1].1, 1000);
        tcp.send(false, &pairs[2].1, 1000);
        tcp.fin(true);
        tcp.fin(false);
        assert_eq!(a.len(), 1);
        let (out, stats) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        // Request 2 lost with its header captured: response paired. Request 3 lost (its
        // header was in the lost segment): its response is shown on its own.
        assert_eq!(exs.len(), 3, "{exs:#?}");
        assert_answered(exs[0], &pairs[0], 1);
        assert_eq!((exs[1].api_key, exs[1].correlation_id), (3, 2));
        assert!(exs[1].request.is_empty());
        assert_dissects(exs[1]);
        assert_eq!((exs[2].api_key, exs[2].correlation_id), (-1, 3));
        assert_eq!(exs[2].response.as_deref(), Some(&pairs[2].1[..]));
        assert!(exs[2]
            .notes
            .iter()
            .any(|n| n.starts_with("response without its request")));
        assert_eq!(stats.unpaired, 1);
        assert_eq!(stats.bytes_missing, 30);
    }

    #[test]
    fn capture_started_mid_stream() {
        // The client sent requests 1 and 2 back to back; the capture starts in the middle of
        // request 2. Responses 1 and 2 are captured, then request/response 3 and 4.
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 77_000, 3_000_000);
        let pairs = [metadata(1), produce(2, 9, -1), api_versions(3), metadata(4)];
        tcp.advance(true, pairs[0].0.len() as u32 + 100);
        let r2 = &pairs[1].0;
        tcp.send_pieces(true, r2, std::slice::from_ref(&(100..r2.len())));
        tcp.send(false, &pairs[0].1, 60);
        tcp.send(false, &pairs[1].1, 60);
        for p in &pairs[2..] {
            tcp.send(true, &p.0, 60);
            tcp.send(false, &p.1, 60);
        }
        let (out, stats) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 4, "{exs:#?}");
        for (i, ex) in exs[..2].iter().enumerate() {
            assert_eq!((ex.api_key, ex.api_version), (-1, -1));
            assert_eq!(ex.correlation_id, i as i32 + 1);
            assert!(ex.request.is_empty());
            assert_eq!(ex.response.as_deref(), Some(&pairs[i].1[..]));
            assert_eq!(
                ex.notes[0],
                "response without its request (capture started after it)"
            );
        }
        assert_answered(exs[2], &pairs[2], 3);
        let skipped = format!(
            "{} bytes skipped before the first whole frame (capture started mid-stream)",
            r2.len() - 100
        );
        assert!(exs[2].notes.contains(&skipped), "{:?}", exs[2].notes);
        assert_answered(exs[3], &pairs[3], 4);
        assert_eq!(stats.unpaired, 2);
        assert_eq!(stats.kafka_connections, 1);
        // No SYN, no FIN: opened at first sight, never closed.
        let ev = events(&out);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, ConnEventKind::Opened);
        assert_eq!(ev[0].at, tcp.segs[0].ts_nanos / 1000);
    }

    #[test]
    fn capture_holding_only_a_response() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1, 2);
        let pair = metadata(9);
        // Mid-stream, the client's request was before the capture: only a request header
        // fragment (so the port side is known) and the response.
        let next = metadata(10);
        tcp.send(false, &pair.1, 40);
        tcp.send(true, &next.0, 40);
        let (out, _) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 2, "{exs:#?}");
        assert_eq!(exs[0].correlation_id, 9);
        assert_eq!(exs[0].response.as_deref(), Some(&pair.1[..]));
        assert_eq!(exs[1].correlation_id, 10);
        assert_eq!(exs[1].status, Status::Unanswered);
        assert_eq!(
            exs[1].notes,
            vec!["capture ended before the response".to_string()]
        );
        assert_dissects(exs[1]);
    }

    #[test]
    fn snaplen_truncated_segment() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        let pairs = vec![metadata(1), produce(2, 9, -1), metadata(3)];
        let ranges = clean_session(&mut tcp, &pairs, 500);
        let cut = ranges[1].0.start + 1;
        let full = tcp.segs[cut].payload.len();
        tcp.segs[cut].payload.truncate(96);
        let (out, stats) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 3);
        assert_answered(exs[0], &pairs[0], 1);
        assert_eq!((exs[1].api_key, exs[1].correlation_id), (0, 2));
        assert!(exs[1].request.is_empty(), "the cut request is lost");
        assert_dissects(exs[1]);
        assert_answered(exs[2], &pairs[2], 3);
        let want = format!(
            "{} bytes missing before this frame (lost segments)",
            full - 96
        );
        assert!(exs[2].notes.contains(&want), "{:?}", exs[2].notes);
        assert_eq!(stats.bytes_missing, (full - 96) as u64);
    }

    #[test]
    fn snaplen_truncated_response_leaves_its_request_unanswered() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        let pairs = [produce(1, 9, -1), metadata(2)];
        tcp.handshake();
        tcp.send(true, &pairs[0].0, 5000);
        let r = tcp.send(false, &pairs[0].1, 5000);
        tcp.segs[r.start].payload.truncate(10);
        tcp.send(true, &pairs[1].0, 5000);
        tcp.send(false, &pairs[1].1, 5000);
        let (out, _) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 2, "{exs:#?}");
        assert_eq!(
            (exs[0].correlation_id, &exs[0].status),
            (1, &Status::Unanswered)
        );
        assert_eq!(exs[0].request, pairs[0].0);
        assert!(exs[0].notes[0].contains("answered a later request (correlation id 2)"));
        assert_answered(exs[1], &pairs[1], 2);
        assert!(
            exs[1].notes[0].contains("missing before this response frame"),
            "{:?}",
            exs[1].notes
        );
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut tcp = Tcp::new(
            "10.0.0.1:51000",
            "10.0.0.2:9092",
            u32::MAX - 700,
            u32::MAX - 3,
        );
        let pairs = session_pairs();
        clean_session(&mut tcp, &pairs, 97);
        assert!(tcp
            .segs
            .iter()
            .any(|s| s.src == tcp.client && s.seq < 10_000));
        let (out, stats) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 3);
        for (i, ex) in exs.iter().enumerate() {
            assert_answered(ex, &pairs[i], i as i32 + 1);
        }
        assert_eq!(stats.gaps, 0);
    }

    #[test]
    fn two_interleaved_connections() {
        let mut a = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 10, 20);
        let mut b = Tcp::new("10.0.0.3:42000", "10.0.0.2:9092", 30, 40);
        let pa = session_pairs();
        let pb = vec![metadata(100), api_versions(101)];
        clean_session(&mut a, &pa, 33);
        clean_session(&mut b, &pb, 45);
        // Interleave: b's SYN after a's, then alternate.
        let mut segs = Vec::new();
        let (mut ia, mut ib) = (a.segs.into_iter(), b.segs.into_iter());
        segs.push(ia.next().unwrap());
        loop {
            match (ib.next(), ia.next()) {
                (None, None) => break,
                (x, y) => segs.extend(x.into_iter().chain(y)),
            }
        }
        let (out, stats) = run(&segs, StreamOptions::default());
        let exs = exchanges(&out);
        let of = |conn| {
            exs.iter()
                .filter(move |e| e.conn == conn)
                .copied()
                .collect::<Vec<_>>()
        };
        let (ea, eb) = (of(1), of(2));
        assert_eq!((ea.len(), eb.len()), (3, 2));
        for (i, ex) in ea.iter().enumerate() {
            assert_answered(ex, &pa[i], i as i32 + 1);
            assert_eq!(ex.peer.to_string(), "10.0.0.1:51000");
        }
        for (i, ex) in eb.iter().enumerate() {
            assert_answered(ex, &pb[i], i as i32 + 100);
            assert_eq!(ex.peer.to_string(), "10.0.0.3:42000");
        }
        assert_eq!(stats.kafka_connections, 2);
        let ev = events(&out);
        assert_eq!(
            ev.iter()
                .filter(|e| e.kind == ConnEventKind::Opened)
                .count(),
            2
        );
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e.kind, ConnEventKind::Closed { .. }))
                .count(),
            2
        );
        // Exchanges come out in the order their last frame completed.
        let done: Vec<i64> = exs.iter().map(|e| e.response_at.unwrap()).collect();
        assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    }

    #[test]
    fn kafka_found_by_heuristic_on_another_port() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:19092", 1000, 5000);
        let pairs = session_pairs();
        clean_session(&mut tcp, &pairs, 64);
        let (out, stats) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 3);
        for (i, ex) in exs.iter().enumerate() {
            assert_answered(ex, &pairs[i], i as i32 + 1);
            assert_eq!(ex.server, Some("10.0.0.2:19092".parse().unwrap()));
        }
        assert_eq!(stats.kafka_connections, 1);

        // The same from the broker's side of a capture that begins with its first segment
        // (the SYN-ACK): roles come from the bytes, not from who was seen first.
        let segs: Vec<Segment> = tcp.segs[1..].to_vec();
        let (out, _) = run(&segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 3);
        assert!(exs.iter().all(|e| e.peer.to_string() == "10.0.0.1:51000"));
    }

    #[test]
    fn heuristic_mid_stream_does_not_take_a_response_for_a_request() {
        // No Kafka port, no SYN, and the broker's bytes come first: the tail of a response
        // whose first bytes read as a plausible request header (Metadata v12, correlation id
        // 5, client id "x") but whose body does not decode as that request.
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:19092", 500, 900);
        let mut first = vec![0, 0, 0, 30, 0, 3, 0, 12, 0, 0, 0, 5, 0, 1, b'x'];
        first.extend([0xff; 19]);
        assert_eq!(
            request_verdict(&first, DEFAULT_MAX_FRAME_BYTES, true),
            Verdict::Yes
        );
        assert!(crate::protocol::dissect_request(&first).error.is_some());
        tcp.send(false, &first, 1000);
        let pairs = vec![metadata(1), api_versions(2)];
        for p in &pairs {
            tcp.send(true, &p.0, 1000);
            tcp.send(false, &p.1, 1000);
        }
        let (out, _) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        let peer: SocketAddr = "10.0.0.1:51000".parse().unwrap();
        assert!(exs.iter().all(|e| e.peer == peer), "{exs:#?}");
        let answered: Vec<&&Exchange> = exs.iter().filter(|e| e.api_key >= 0).collect();
        assert_eq!(answered.len(), 2);
        for (i, ex) in answered.iter().enumerate() {
            assert_answered(ex, &pairs[i], i as i32 + 1);
        }
    }

    #[test]
    fn non_kafka_connections_ignored() {
        // HTTP on another port.
        let mut http = Tcp::new("10.0.0.1:51000", "10.0.0.2:8080", 1, 1);
        http.handshake();
        http.send(true, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n", 1400);
        http.send(false, &b"HTTP/1.1 200 OK\r\n\r\n".repeat(5000), 1400);
        http.fin(true);
        http.fin(false);
        // TLS on 9092: a ClientHello, the server's answer, lots of records.
        let mut tls = Tcp::new("10.0.0.1:52000", "10.0.0.2:9092", 1, 1);
        tls.handshake();
        let mut hello = vec![
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ];
        hello.extend((0..500).map(|i| (i * 31 % 256) as u8));
        tls.send(true, &hello, 1400);
        for i in 0..50u8 {
            let mut rec = vec![0x17, 0x03, 0x03, 0x40, 0x00];
            rec.extend(std::iter::repeat_n(i, 0x4000));
            tls.send(i % 2 == 0, &rec, 1400);
        }
        let mut segs = http.segs;
        segs.extend(tls.segs);
        let (out, stats) = run(&segs, StreamOptions::default());
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(stats.connections, 2);
        assert_eq!(stats.kafka_connections, 0);
        assert_eq!(stats.not_kafka_connections, 2);
        assert_eq!(stats.malformed, 0);
    }

    #[test]
    fn tls_mid_stream_on_kafka_port_not_kafka() {
        let mut tls = Tcp::new("10.0.0.1:52000", "10.0.0.2:9092", 1, 1);
        for i in 0..40u8 {
            let mut rec = vec![0x17, 0x03, 0x03, 0x08, 0x00];
            rec.extend((0..0x800).map(|j| (j as u8).wrapping_mul(i | 1).wrapping_add(i)));
            tls.send(true, &rec, 1400);
            tls.send(false, &rec, 1400);
        }
        let (out, stats) = run(&tls.segs, StreamOptions::default());
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(stats.not_kafka_connections, 1);
    }

    #[test]
    fn hostile_size_prefix_malformed_once_without_big_allocation() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        tcp.handshake();
        let ok = api_versions(1);
        tcp.send(true, &ok.0, 1000);
        tcp.send(false, &ok.1, 1000);
        let mut hostile = vec![0x7f, 0xff, 0xff, 0xff, 0, 18, 0, 3, 0, 0, 0, 2];
        hostile.extend([0xee; 200]);
        tcp.send(true, &hostile, 50);
        // More garbage: no further rows.
        tcp.send(true, &[0x7f; 3000], 500);
        let mut streams = KafkaStreams::new(StreamOptions::default());
        let mut out = Vec::new();
        for s in &tcp.segs {
            streams.on_segment(s, &mut out);
            assert!(
                streams.framer_capacity() < 64 * 1024,
                "framer holds {}",
                streams.framer_capacity()
            );
        }
        // Then the client gets back on track: a valid request is found and answered.
        let again = metadata(2);
        tcp.segs.clear();
        tcp.send(true, &again.0, 100);
        tcp.send(false, &again.1, 100);
        for s in &tcp.segs {
            streams.on_segment(s, &mut out);
        }
        streams.finish(&mut out);
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 3, "{exs:#?}");
        assert_answered(exs[0], &ok, 1);
        let bad = exs[1];
        let Status::Malformed { error } = &bad.status else {
            panic!("not malformed: {bad:?}");
        };
        assert_eq!((error.offset, error.path.as_str()), (0, "kafka.length"));
        assert!(error.message.contains("2147483647"), "{}", error.message);
        assert_eq!(&bad.request[..4], &[0x7f, 0xff, 0xff, 0xff]);
        assert!(bad.request.len() <= MALFORMED_KEEP);
        assert_answered(exs[2], &again, 2);
        assert!(exs[2]
            .notes
            .iter()
            .any(|n| n.contains("captured bytes skipped")));
        assert_eq!(streams.stats().malformed, 1);
    }

    #[test]
    fn large_but_allowed_size_prefix_buffers_only_what_arrived() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        tcp.handshake();
        // Claims 90 MiB (under the limit); only a header and a few bytes arrive.
        let mut head = (90 * 1024 * 1024i32).to_be_bytes().to_vec();
        head.extend([0, 0, 0, 9, 0, 0, 0, 1, 0, 1, b'x']);
        head.extend([0; 100]);
        tcp.send(true, &head, 1000);
        let mut streams = KafkaStreams::new(StreamOptions::default());
        let mut out = Vec::new();
        for s in &tcp.segs {
            streams.on_segment(s, &mut out);
        }
        assert!(
            streams.framer_capacity() < 4096,
            "{}",
            streams.framer_capacity()
        );
        streams.finish(&mut out);
        assert!(exchanges(&out).is_empty());
        assert_eq!(streams.stats().bytes_skipped, head.len() as u64);
    }

    fn sasl_handshake_v0(corr: i32, mechanism: &'static str) -> Pair {
        let req =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let resp = SaslHandshakeResponse::default()
            .with_mechanisms(vec![StrBytes::from_static_str(mechanism)]);
        (
            request(ApiKey::SaslHandshake, 0, corr, &req),
            test_frames::response_frame(0, corr, &resp),
        )
    }

    /// SaslHandshake v0, then a bare PLAIN token and the broker's empty answer (no headers, no
    /// correlation ids), then Kafka again: every frame paired, the token shown as one.
    #[test]
    fn bare_sasl_plain_token_after_handshake_v0() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        tcp.handshake();
        let hs = sasl_handshake_v0(1, "PLAIN");
        assert_eq!(handshake_mechanism(&hs.0).as_deref(), Some("PLAIN"));
        let token = with_size_prefix(b"\0alice\0s3cret");
        let answer = with_size_prefix(b"");
        let md = metadata(2);
        tcp.send(true, &hs.0, 300);
        tcp.send(false, &hs.1, 300);
        tcp.send(true, &token, 300);
        tcp.send(false, &answer, 300);
        tcp.send(true, &md.0, 300);
        tcp.send(false, &md.1, 300);
        let (out, stats) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 3, "{exs:#?}");
        assert_answered(exs[0], &hs, 1);
        assert_eq!(exs[1].framing, Framing::SaslToken);
        assert_eq!((exs[1].api_key, exs[1].api_version), (36, 0));
        assert_eq!(exs[1].status, Status::Answered);
        assert_eq!(exs[1].request, token);
        assert_eq!(exs[1].response.as_deref(), Some(&answer[..]));
        let d = exs[1].dissect_request().expect("the token");
        assert!(d.error.is_none(), "{:?}", d.error);
        assert_eq!(
            d.root.find("sasl.plain.authcid").map(|f| f.value.clone()),
            Some(crate::protocol::Value::Str("alice".into()))
        );
        assert_answered(exs[2], &md, 2);
        for ex in &exs {
            assert_dissects(ex);
        }
        assert_eq!(stats.frames, 6);
        assert_eq!(stats.unpaired, 0);
    }

    /// A mechanism that takes several round trips: tokens until the client sends a Kafka
    /// request again. A token the broker never answers (it closed the connection: a failed
    /// login) stays unanswered.
    #[test]
    fn bare_sasl_tokens_of_a_multi_step_mechanism_and_a_failed_login() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        tcp.handshake();
        let hs = sasl_handshake_v0(1, "SCRAM-SHA-256");
        let first = with_size_prefix(b"n,,n=alice,r=abc");
        let server_first = with_size_prefix(b"r=abcdef,s=c2FsdA==,i=4096");
        let last = with_size_prefix(b"c=biws,r=abcdef,p=cHJvb2Y=");
        let server_last = with_size_prefix(b"v=c2lnbmF0dXJl");
        let md = metadata(2);
        for (from_client, bytes) in [
            (true, &hs.0),
            (false, &hs.1),
            (true, &first),
            (false, &server_first),
            (true, &last),
            (false, &server_last),
            (true, &md.0),
            (false, &md.1),
        ] {
            tcp.send(from_client, bytes, 300);
        }
        let (out, _) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        let kinds: Vec<(Framing, i32)> =
            exs.iter().map(|e| (e.framing, e.correlation_id)).collect();
        assert_eq!(
            kinds,
            [
                (Framing::Kafka, 1),
                (Framing::SaslToken, -1),
                (Framing::SaslToken, -1),
                (Framing::Kafka, 2)
            ]
        );
        assert_eq!(exs[2].request, last);
        assert_eq!(exs[2].response.as_deref(), Some(&server_last[..]));

        let mut tcp = Tcp::new("10.0.0.1:51001", "10.0.0.2:9092", 1000, 5000);
        tcp.handshake();
        let hs = sasl_handshake_v0(1, "PLAIN");
        tcp.send(true, &hs.0, 300);
        tcp.send(false, &hs.1, 300);
        tcp.send(true, &with_size_prefix(b"\0alice\0wrong"), 300);
        tcp.fin(false);
        let (out, _) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 2);
        assert_eq!(
            (exs[1].framing, &exs[1].status),
            (Framing::SaslToken, &Status::Unanswered)
        );
    }

    #[test]
    fn acks_zero_produce_gets_no_response() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        tcp.handshake();
        let fire = produce(1, 9, 0);
        let fire_v3 = produce(2, 3, 0);
        let acked = produce(3, 9, 1);
        let r1 = tcp.send(true, &fire.0, 300);
        tcp.send(true, &fire_v3.0, 300);
        tcp.send(true, &acked.0, 300);
        tcp.send(false, &acked.1, 300);
        let (out, _) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 3);
        assert_eq!(
            (exs[0].correlation_id, &exs[0].status),
            (1, &Status::NoResponse)
        );
        assert_eq!(exs[0].request, fire.0);
        assert_eq!(exs[0].request_at, tcp.last_ts_us(&r1));
        assert_eq!(exs[0].response, None);
        assert_eq!(
            (exs[1].correlation_id, &exs[1].status),
            (2, &Status::NoResponse)
        );
        assert_answered(exs[2], &acked, 3);
        for ex in &exs {
            assert_dissects(ex);
        }
    }

    #[test]
    fn acks_parsed_like_the_dissector() {
        for (version, acks) in [
            (0, 0),
            (2, 1),
            (3, 0),
            (3, -1),
            (8, 1),
            (9, 0),
            (9, -1),
            (11, 0),
        ] {
            let (req, _) = produce(5, version, acks);
            assert_eq!(produce_acks(&req[4..], version), Some(acks), "v{version}");
            let d = crate::protocol::dissect_request(&req);
            assert_eq!(
                d.root.find("produce.request.acks").and_then(|f| f.as_int()),
                Some(i64::from(acks))
            );
        }
        assert_eq!(produce_acks(&[0, 0, 0, 9, 0, 0, 0, 1, 0, 3, b'a'], 9), None);
    }

    #[test]
    fn unanswered_at_end_and_closed_by_broker_reset() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        tcp.handshake();
        let p = metadata(1);
        tcp.send(true, &p.0, 1000);
        tcp.rst(false);
        // A stray ACK after the reset does not start a new connection.
        tcp.seg_at(true, flags(false, true, false, false), 0, b"");
        let (out, stats) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 1);
        assert_eq!(exs[0].status, Status::Unanswered);
        assert_eq!(
            exs[0].notes,
            vec!["connection closed before the response".to_string()]
        );
        let ev = events(&out);
        assert_eq!(ev.len(), 2);
        assert_eq!(
            ev[1].kind,
            ConnEventKind::Closed {
                by: ClosedBy::Broker,
                reason: "broker sent RST".into()
            }
        );
        assert_eq!(stats.connections, 1);

        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        tcp.handshake();
        tcp.send(true, &p.0, 1000);
        let (out, _) = run(&tcp.segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(
            exs[0].notes,
            vec!["capture ended before the response".to_string()]
        );
        assert_eq!(events(&out).len(), 1, "no FIN or RST: no Closed event");
    }

    #[test]
    fn new_syn_on_closed_tuple_is_a_new_connection() {
        let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
        let first = [metadata(1)];
        clean_session(&mut tcp, &first[..], 100);
        // The broker's FIN is not captured; the client later reuses the port.
        tcp.segs.pop();
        let mut again = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 900_000, 700_000);
        again.ts = tcp.ts;
        let second = vec![api_versions(1)];
        clean_session(&mut again, &second, 100);
        let mut segs = tcp.segs;
        segs.extend(again.segs);
        let (out, stats) = run(&segs, StreamOptions::default());
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 2);
        assert_eq!((exs[0].conn, exs[0].api_key), (1, 3));
        assert_eq!((exs[1].conn, exs[1].api_key), (2, 18));
        assert_answered(exs[1], &second[0], 1);
        assert_eq!(stats.connections, 2);
        let closed: Vec<u64> = events(&out)
            .iter()
            .filter(|e| matches!(e.kind, ConnEventKind::Closed { .. }))
            .map(|e| e.conn)
            .collect();
        assert_eq!(closed, vec![1, 2]);
    }

    #[test]
    fn connection_limit_drops_the_least_recently_active() {
        let opts = StreamOptions {
            max_connections: 2,
            ..StreamOptions::default()
        };
        let mut conns: Vec<Tcp> = (0..3)
            .map(|i| Tcp::new(&format!("10.0.0.{}:5000", i + 1), "10.0.0.9:9092", 1, 1))
            .collect();
        let p = metadata(1);
        let mut segs = Vec::new();
        for c in &mut conns {
            c.send(true, &p.0, 1000);
            segs.push(c.segs.last().unwrap().clone());
        }
        let (out, stats) = run(&segs, opts);
        assert_eq!(stats.connections_evicted, 1);
        let exs = exchanges(&out);
        assert_eq!(exs.len(), 3);
        assert_eq!(exs[0].conn, 1);
        assert!(exs[0].notes[0].contains("connection limit"));
    }
}
