//! A connection known to be Kafka: requests framed from the client's direction wait for their
//! response, paired by correlation id (Kafka answers in order, so requests passed over are
//! unanswered); a Produce with acks=0 expects none; after SaslHandshake v0 bare SASL tokens are
//! paired with the broker's bare answers; what still waits when the connection ends is
//! reported unanswered.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use super::framer::{Framer, Sync};
use super::peek::{
    be_i16, be_i32, client_id, handshake_mechanism, produce_acks, request_verdict, Verdict,
};
use super::probe::PROBE_WINDOW;
use super::{micros, End, Output, StreamStats};
use crate::exchange::ROOM_FROM;
use crate::pcap::reassembly::Chunk;
use crate::{response_room, ClientId, Endpoints, Exchange, Framing, Status};
use chronik_protocol::dissect::peek_request_header;
use chronik_protocol::{
    api_key, dissect_request_with, dissect_response_with, errors, DecodeError, Limits,
};

/// Requests per connection waiting for a response, at most.
const MAX_PENDING: usize = 1024;
/// How far below the first captured request's correlation id a response seen at the very
/// start of a mid-stream capture may be, to be taken as an answer to an uncaptured request.
const MID_STREAM_CORRELATION_WINDOW: i64 = 1024;
/// Largest response buffer a connection keeps for the next response: the usual small ones
/// reuse it, and a capture of many connections (up to `max_connections`) holds at most this
/// much more for each.
const KEEP_RESPONSE_BUFFER: usize = 4 * 1024;
/// Bytes of an undecodable request kept in its `Malformed` exchange.
pub(super) const MALFORMED_KEEP: usize = 64;

/// A request waiting for its response.
struct Pending {
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    client_id: Option<ClientId>,
    /// The frame; `None` when it was lost in a gap but its header was captured (so its
    /// response can still be paired and decoded).
    request: Option<Vec<u8>>,
    request_at: i64,
    notes: Vec<String>,
    /// A Kafka request, or a bare SASL token (see [`SaslTokens`]).
    framing: Framing,
}

/// A connection known to be Kafka: its two framers and the requests waiting for answers.
pub(super) struct Session {
    conn: u64,
    pub(super) client_dir: usize,
    /// The client's address.
    pub(super) peer: SocketAddr,
    /// Both addresses, shared by the connection's exchanges.
    endpoints: Arc<Endpoints>,
    /// The client id of the last request, shared by the exchanges that carry the same one.
    client_id: Option<ClientId>,
    pub(super) req: Framer,
    pub(super) resp: Framer,
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
    /// The response frame being paired, copied out of the framer (its buffer is reused).
    response_frame: Vec<u8>,
    /// Buffers of small requests whose exchanges were made (their frames copied into one
    /// buffer of their own), taken again by the next requests: a small request then costs no
    /// allocation of its own while it waits.
    spare: Vec<Vec<u8>>,
}

/// Small request buffers a session keeps for reuse (see `Session::spare`): two, of less than
/// [`ROOM_FROM`] bytes each, so at most 8 KiB a connection. Two were as many as the bench's
/// pipelining producers reused.
const SPARE_BUFFERS: usize = 2;

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
    pub(super) fn new(
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
            endpoints: Endpoints::shared(client, Some(server)),
            client_id: None,
            req: Framer::new(req_from_start, "frame"),
            resp: Framer::new(saw_syn[1 - client_dir], "response frame"),
            pending: VecDeque::new(),
            spare: Vec::new(),
            first_req_corr: None,
            req_mid_stream: !req_from_start,
            ending: false,
            max_frame,
            sasl: SaslTokens::Off,
            response_frame: Vec::new(),
        }
    }

    pub(super) fn feed(
        &mut self,
        dir: usize,
        chunk: Chunk,
        stats: &mut StreamStats,
        out: &mut Vec<Output>,
    ) {
        match chunk {
            Chunk::Data { bytes, ts_nanos } => self.feed_bytes(dir, &bytes, ts_nanos, stats, out),
            Chunk::Gap { len, ts_nanos } => {
                self.on_gap(dir == self.client_dir, len, ts_nanos, stats, out);
                self.pump_requests(stats, out);
                self.pump_responses(stats, out);
            }
        }
    }

    /// Bytes that follow the direction's last chunk directly.
    pub(super) fn feed_bytes(
        &mut self,
        dir: usize,
        bytes: &[u8],
        ts_nanos: i64,
        stats: &mut StreamStats,
        out: &mut Vec<Output>,
    ) {
        let f = if dir == self.client_dir {
            &mut self.req
        } else {
            &mut self.resp
        };
        f.push_data(bytes, ts_nanos, stats);
        // A direction with no bytes waiting has nothing to cut (each segment carries bytes one
        // way, and most leave none waiting the other).
        if !self.req.avail().is_empty() {
            self.pump_requests(stats, out);
        }
        if !self.resp.avail().is_empty() {
            self.pump_responses(stats, out);
        }
    }

    fn on_gap(
        &mut self,
        is_req: bool,
        len: u64,
        ts: i64,
        stats: &mut StreamStats,
        out: &mut Vec<Output>,
    ) {
        if is_req {
            let last = &mut self.client_id;
            let lost = self
                .req
                .gap(len, ts, stats, |captured| lost_request(captured, ts, last));
            if let Some(p) = lost {
                self.add_pending(p, out);
            }
        } else {
            self.resp.gap(len, ts, stats, |_| None::<Pending>);
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
                    if avail.is_empty() {
                        return; // the last frame was cut
                    }
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
                            // A small request takes a spare buffer; a large one a buffer
                            // with room for its response.
                            let spare = match response_room(frame.len()) {
                                0 => self.spare.pop(),
                                _ => None,
                            };
                            let frame = match spare {
                                Some(mut buf) => {
                                    buf.clear();
                                    buf.extend_from_slice(frame);
                                    buf
                                }
                                None => Exchange::request_buffer(frame),
                            };
                            self.req.consume(total);
                            self.req.candidate = false;
                            self.on_request(frame, stats, out);
                        }
                    }
                }
                Sync::Lost => {
                    // A plausible request header.
                    let found = self.req.resync(4, stats, |b| request_verdict(b, max, true));
                    if !found {
                        return;
                    }
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
                    let mut kept = std::mem::take(&mut self.response_frame);
                    kept.clear();
                    kept.extend_from_slice(frame);
                    self.resp.consume(total);
                    self.resp.candidate = false;
                    self.on_response(&kept, corr, stats, out);
                    // A large frame's buffer is not kept for the connection's life.
                    if kept.capacity() <= KEEP_RESPONSE_BUFFER {
                        self.response_frame = kept;
                    }
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
                    // A plausible size and the correlation id of a waiting request.
                    let pending = &self.pending;
                    let found = self.resp.resync(8, stats, |b| {
                        let (Some(size), Some(corr)) = (be_i32(b, 0), be_i32(b, 4)) else {
                            return Verdict::NeedMore;
                        };
                        if size_ok(size) && pending.iter().any(|p| p.correlation_id == corr) {
                            Verdict::Yes
                        } else {
                            Verdict::No
                        }
                    });
                    if !found {
                        return;
                    }
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
        &mut self,
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
        client_id: Option<ClientId>,
        request_at: i64,
        status: Status,
    ) -> Exchange {
        let mut ex = Exchange::new(self.conn, self.endpoints.clone(), request_at, status)
            .with_client_id(client_id);
        ex.api_key = api_key;
        ex.api_version = api_version;
        ex.correlation_id = correlation_id;
        ex
    }

    fn pending_exchange(&mut self, p: Pending, status: Status) -> Exchange {
        self.answered_exchange(p, status, None)
    }

    /// The exchange of a request, with its response frame when it has one.
    fn answered_exchange(
        &mut self,
        p: Pending,
        status: Status,
        response: Option<&[u8]>,
    ) -> Exchange {
        let mut ex = self.exchange(
            p.api_key,
            p.api_version,
            p.correlation_id,
            p.client_id,
            p.request_at,
            status,
        );
        match (response, p.request) {
            (None, request) => ex.set_request(request.unwrap_or_default()),
            // A small request (given no room after it): copied with its response into a
            // buffer of their own, and its buffer kept for the next request.
            (Some(r), Some(request)) if response_room(request.len()) == 0 => {
                ex.set_frames_joined(&request, r);
                if self.spare.len() < SPARE_BUFFERS && request.capacity() < ROOM_FROM {
                    self.spare.push(request);
                }
            }
            (Some(r), request) => ex.set_frames_appending(request.unwrap_or_default(), r),
        }
        ex.set_notes(p.notes);
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
            client_id: client_id(body, api_key, api_version, &mut self.client_id),
            request_at: micros(self.req.ts),
            notes: self.req.take_notes(),
            request: None,
            framing: Framing::Kafka,
        };
        let no_response = api_key == api_key::PRODUCE && produce_acks(body, api_version) == Some(0);
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
                    ex.push_note(format!(
                        "no response seen while {MAX_PENDING} later requests were waiting; given up on"
                    ));
                    out.push(Output::Exchange(ex));
                }
            }
        }
    }

    fn on_response(
        &mut self,
        frame: &[u8],
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
            ex.set_response(Some(frame.to_vec()));
            ex.set_response_at(Some(at));
            ex.push_note(why.into());
            ex.extend_notes(notes);
            out.push(Output::Exchange(ex));
            return;
        };
        let skipped: Vec<Pending> = self.pending.drain(..i).collect();
        for p in skipped {
            if p.request.is_some() {
                let mut ex = self.pending_exchange(p, Status::Unanswered);
                ex.push_note(format!(
                    "no response seen: the broker answered a later request (correlation id {corr}) first"
                ));
                out.push(Output::Exchange(ex));
            }
        }
        let Some(p) = self.pending.pop_front() else {
            return;
        };
        if p.api_key == api_key::SASL_HANDSHAKE && p.api_version == 0 {
            // error_code right after the correlation id; none: bare tokens follow.
            if be_i16(frame, 8) == Some(errors::NONE) {
                let more = p
                    .request
                    .as_deref()
                    .and_then(handshake_mechanism)
                    .is_none_or(|m| m != "PLAIN");
                self.sasl = SaslTokens::ClientNext { more };
            }
        }
        let mut ex = self.answered_exchange(p, Status::Answered, Some(frame));
        ex.set_response_at(Some(at));
        ex.extend_notes(notes);
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
            api_key: api_key::SASL_AUTHENTICATE,
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
        ex.set_response(Some(frame));
        ex.set_response_at(Some(at));
        ex.extend_notes(notes);
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
        let status = Status::malformed(DecodeError {
            offset: 0,
            path: "kafka.length".into(),
            message,
        });
        let mut ex = self.exchange(key, version, corr, None, micros(self.req.ts), status);
        ex.set_request(kept);
        ex.set_notes(self.req.take_notes());
        ex.push_note(
            "client stream not decodable from here; skipping to the next plausible request".into(),
        );
        out.push(Output::Exchange(ex));
    }

    /// Input for this connection is over.
    pub(super) fn end(&mut self, end: End, stats: &mut StreamStats, out: &mut Vec<Output>) {
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
                ex.push_note(end.note().into());
                out.push(Output::Exchange(ex));
            }
        }
    }
}

/// A request lost to a gap, from the part of it that was captured: enough to pair and decode
/// its response. `None` when the header was not captured or it expects no response.
fn lost_request(captured: &[u8], ts: i64, last: &mut Option<ClientId>) -> Option<Pending> {
    let body = captured.get(4..)?;
    let (api_key, api_version, correlation_id) = peek_request_header(body)?;
    if api_key == api_key::PRODUCE && produce_acks(body, api_version) == Some(0) {
        return None;
    }
    Some(Pending {
        api_key,
        api_version,
        correlation_id,
        client_id: client_id(body, api_key, api_version, last),
        request: None,
        request_at: micros(ts),
        notes: vec![
            "request frame lost in the capture (lost segments); only its header was seen".into(),
        ],
        framing: Framing::Kafka,
    })
}
