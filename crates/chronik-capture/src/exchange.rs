//! One request and its response (if any), as raw frames plus what is known about them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::verdict::{Dissected, Verdict};
use chronik_protocol::{self as protocol, DecodeError, Dissection, Limits, ThrottlePlacement};

/// Microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// How an exchange ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Status {
    /// A request and its response.
    Answered,
    /// A request that by protocol gets no response (Produce with acks=0).
    NoResponse,
    /// A request still waiting when the connection closed.
    Unanswered,
    /// A frame that could not be decoded; the connection was closed.
    Malformed { error: Box<DecodeError> },
    /// A well-formed request the broker refused to serve, closing the connection without an
    /// answer (one sent before SASL authentication, say).
    Refused { reason: Box<String> },
}

impl Status {
    /// [`Status::Malformed`] with `error`.
    pub fn malformed(error: DecodeError) -> Status {
        Status::Malformed {
            error: Box::new(error),
        }
    }

    /// [`Status::Refused`] for `reason`.
    pub fn refused(reason: impl Into<String>) -> Status {
        Status::Refused {
            reason: Box::new(reason.into()),
        }
    }

    /// The status as one word, as the display filter's `status` and JSON's `status.kind` say
    /// it: `answered`, `no_response`, `unanswered`, `malformed`, `refused`.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Answered => "answered",
            Status::NoResponse => "no_response",
            Status::Unanswered => "unanswered",
            Status::Malformed { .. } => "malformed",
            Status::Refused { .. } => "refused",
        }
    }

    /// Why a malformed or refused exchange ended so: the decoding error, or the broker's
    /// reason; none for the others.
    pub fn reason(&self) -> Option<String> {
        match self {
            Status::Malformed { error } => Some(error.to_string()),
            Status::Refused { reason } => Some(reason.to_string()),
            _ => None,
        }
    }
}

/// How an exchange's frames are laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// Kafka requests and responses, each with its header.
    #[default]
    Kafka,
    /// A bare SASL token after SaslHandshake v0 and the broker's bare answer: a size prefix and
    /// the mechanism's bytes, no header (see [`protocol::sasl`]). Stored as SaslAuthenticate v0,
    /// the request that later replaced it, with correlation id -1.
    SaslToken,
}

impl Framing {
    fn is_kafka(&self) -> bool {
        *self == Framing::Kafka
    }
}

/// The `throttle_time_ms` placement a ProduceResponse was encoded with, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlacementUsed {
    pub placement: ThrottlePlacement,
    /// Number (from 1) and text of the placement rule that chose it; `None` when no rule
    /// matched the client and the global mode was used.
    pub rule: Option<(usize, String)>,
}

impl std::fmt::Display for PlacementUsed {
    /// `front`, or `front (rule 1: software=kafka-python*:front)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.rule {
            None => write!(f, "{}", self.placement),
            Some((i, text)) => write!(f, "{} (rule {i}: {text})", self.placement),
        }
    }
}

/// The addresses of a connection's two ends, kept once per connection and shared by every
/// exchange on it (a source makes one when the connection opens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoints {
    /// Address of the client.
    pub peer: SocketAddr,
    /// Address of the broker side, when the source knows it (the embedded broker's local
    /// address, the server end of a captured connection).
    pub server: Option<SocketAddr>,
}

impl Endpoints {
    /// The two ends, ready to share among a connection's exchanges.
    pub fn shared(peer: SocketAddr, server: Option<SocketAddr>) -> Arc<Endpoints> {
        Arc::new(Endpoints { peer, server })
    }

    /// A client's address alone (the broker side unknown), ready to share.
    pub fn of(peer: SocketAddr) -> Arc<Endpoints> {
        Endpoints::shared(peer, None)
    }
}

/// Room a source leaves after a request of [`ROOM_FROM`] bytes or more in its buffer for the
/// response its exchange keeps after it: most responses to the requests that come in numbers
/// (a ProduceResponse for a few partitions, 56 B for one in v9; Fetch's empty ones, commits)
/// fit, so joining them copies no request again; what is left is given back then.
pub const RESPONSE_ROOM: usize = 256;

/// Requests shorter than this get no room: copying one again into an exact buffer is cheap,
/// and leaves no tail between the exchanges a view holds (with room, the given-back tails cost
/// the terminal UI about 15 B an exchange over a million small ones).
pub const ROOM_FROM: usize = 4096;

/// The room to leave after a request of `len` bytes (see [`RESPONSE_ROOM`]).
pub fn response_room(len: usize) -> usize {
    if len >= ROOM_FROM {
        RESPONSE_ROOM
    } else {
        0
    }
}

/// A client id as exchanges hold it: shared by the exchanges of a connection while the client
/// sends the same one (a thin pointer, so an exchange holds 8 bytes for it).
pub type ClientId = Arc<String>;

/// `id` as a shared [`ClientId`]: `last` itself when it says the same, else a new one, kept in
/// `last` for the next exchange. A source keeps one `last` per connection.
pub fn share_client_id(last: &mut Option<ClientId>, id: Option<&str>) -> Option<ClientId> {
    let id = id?;
    match last {
        Some(l) if l.as_str() == id => Some(l.clone()),
        _ => Some(last.insert(Arc::new(id.to_string())).clone()),
    }
}

/// Per connection, the addresses and client id its last exchange had, so that exchanges made
/// one by one (read back from a file) share them as a live source's do.
#[derive(Debug, Default)]
pub struct ConnShares {
    endpoints: std::collections::HashMap<u64, Arc<Endpoints>>,
    client_ids: std::collections::HashMap<u64, ClientId>,
}

impl ConnShares {
    /// The two ends of connection `conn`: the ones it had when they are the same.
    pub fn endpoints(
        &mut self,
        conn: u64,
        peer: SocketAddr,
        server: Option<SocketAddr>,
    ) -> Arc<Endpoints> {
        match self.endpoints.get(&conn) {
            Some(e) if e.peer == peer && e.server == server => e.clone(),
            _ => {
                let e = Endpoints::shared(peer, server);
                self.endpoints.insert(conn, e.clone());
                e
            }
        }
    }

    /// The client id `id` on connection `conn` (see [`share_client_id`]).
    pub fn client_id(&mut self, conn: u64, id: Option<&str>) -> Option<ClientId> {
        let id = id?;
        match self.client_ids.get(&conn) {
            Some(last) if last.as_str() == id => Some(last.clone()),
            _ => {
                let new = Arc::new(id.to_string());
                self.client_ids.insert(conn, new.clone());
                Some(new)
            }
        }
    }
}

/// What few exchanges have: notes, findings from the connection's past, a placement. Boxed
/// apart so an exchange without them holds one empty pointer.
#[derive(Debug, Clone, Default)]
struct Extra {
    notes: Vec<String>,
    lint: Vec<chronik_protocol::lint::Finding>,
    placement: Option<PlacementUsed>,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.notes.is_empty() && self.lint.is_empty() && self.placement.is_none()
    }
}

/// A request frame and its response frame, with where and when they were seen.
///
/// Laid out small, as a store holds a million of them: the connection's addresses and the
/// client id are shared with the connection's other exchanges, both frames are one heap
/// buffer, and what is rare (notes, lint findings, a placement, a status's error) is boxed
/// apart. The frames, addresses, client id, response time, notes, lint and placement are
/// read and set through methods.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Sequence number in the store, from 1.
    pub id: u64,
    /// Connection id (per source).
    pub conn: u64,
    /// Client and broker addresses, shared with the connection's other exchanges.
    endpoints: Arc<Endpoints>,
    client_id: Option<ClientId>,
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    /// The request frame (size prefix included; empty when the request was not seen), then
    /// the response frame if any.
    frames: Box<[u8]>,
    /// Bytes of `frames` that are the request.
    request_len: u32,
    /// Whether `frames` holds a response after the request.
    has_response: bool,
    /// Whether `response_at` is set.
    has_response_at: bool,
    /// When the request's last byte arrived, µs since the epoch.
    pub request_at: i64,
    /// When the response's last byte was written, µs since the epoch (when `has_response_at`).
    response_at: i64,
    pub status: Status,
    /// How the frames are laid out (almost always Kafka's own framing).
    pub framing: Framing,
    /// Notes, lint findings and placement; none when all are empty.
    extra: Option<Box<Extra>>,
}

/// The exchange's metadata as JSON's object has it (what [`render::json_line`] writes next to
/// the frames), in the order and with the keys of the fields it had before they were private.
///
/// [`render::json_line`]: crate::render::json_line
impl Serialize for Exchange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Exchange", 14)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("conn", &self.conn)?;
        st.serialize_field("peer", &self.endpoints.peer)?;
        match &self.endpoints.server {
            Some(server) => st.serialize_field("server", server)?,
            None => st.skip_field("server")?,
        }
        st.serialize_field("client_id", &self.client_id())?;
        st.serialize_field("api_key", &self.api_key)?;
        st.serialize_field("api_version", &self.api_version)?;
        st.serialize_field("correlation_id", &self.correlation_id)?;
        st.serialize_field("request_at", &self.request_at)?;
        st.serialize_field("response_at", &self.response_at())?;
        st.serialize_field("status", &self.status)?;
        match self.notes() {
            [] => st.skip_field("notes")?,
            notes => st.serialize_field("notes", notes)?,
        }
        match self.placement() {
            None => st.skip_field("placement")?,
            Some(p) => st.serialize_field("placement", p)?,
        }
        if self.framing.is_kafka() {
            st.skip_field("framing")?;
        } else {
            st.serialize_field("framing", &self.framing)?;
        }
        st.end()
    }
}

impl Exchange {
    /// An exchange on connection `conn` between `endpoints` whose request arrived at
    /// `request_at`: no id yet (the store assigns it), no frames, header fields unknown (-1),
    /// Kafka framing.
    pub fn new(conn: u64, endpoints: Arc<Endpoints>, request_at: i64, status: Status) -> Exchange {
        Exchange {
            id: 0,
            conn,
            endpoints,
            client_id: None,
            api_key: -1,
            api_version: -1,
            correlation_id: -1,
            frames: Box::default(),
            request_len: 0,
            has_response: false,
            has_response_at: false,
            request_at,
            response_at: 0,
            status,
            framing: Framing::Kafka,
            extra: None,
        }
    }

    /// The connection's two ends, shared with its other exchanges.
    pub fn endpoints(&self) -> &Arc<Endpoints> {
        &self.endpoints
    }

    /// Address of the client (`ip:port` in JSON).
    pub fn peer(&self) -> SocketAddr {
        self.endpoints.peer
    }

    /// Address of the broker side, when the source knows it.
    pub fn server(&self) -> Option<SocketAddr> {
        self.endpoints.server
    }

    pub fn set_endpoints(&mut self, endpoints: Arc<Endpoints>) {
        self.endpoints = endpoints;
    }

    /// The client id the request's header carried.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref().map(String::as_str)
    }

    /// The client id as shared with the connection's other exchanges.
    pub fn shared_client_id(&self) -> Option<&ClientId> {
        self.client_id.as_ref()
    }

    /// Sets the client id (a source passes the one it shares, see [`share_client_id`]).
    pub fn set_client_id(&mut self, id: Option<ClientId>) {
        self.client_id = id;
    }

    /// [`Exchange::set_client_id`], builder style.
    pub fn with_client_id(mut self, id: Option<ClientId>) -> Exchange {
        self.client_id = id;
        self
    }

    /// Request frame, size prefix included (empty when the request was not seen).
    pub fn request(&self) -> &[u8] {
        &self.frames[..self.request_len as usize]
    }

    /// Response frame, size prefix included.
    pub fn response(&self) -> Option<&[u8]> {
        self.has_response
            .then(|| &self.frames[self.request_len as usize..])
    }

    /// Sets both frames, kept in one buffer: the request's, which takes the response in place
    /// when it has the room (a source can read requests into buffers with some to spare), and
    /// is then trimmed to size. A request is at most 4 GiB (a Kafka frame's size is an `i32`);
    /// bytes past that are not kept.
    pub fn set_frames(&mut self, mut request: Vec<u8>, response: Option<Vec<u8>>) {
        let request_len = u32::try_from(request.len()).unwrap_or(u32::MAX);
        request.truncate(request_len as usize);
        match response {
            None => {
                self.frames = request.into_boxed_slice();
                self.request_len = request_len;
                self.has_response = false;
            }
            Some(r) if request.is_empty() => {
                self.frames = r.into_boxed_slice();
                self.request_len = 0;
                self.has_response = true;
            }
            Some(r) => self.set_frames_appending(request, &r),
        }
    }

    /// [`Exchange::set_frames`] with the response borrowed: copied after the request in the
    /// request's own buffer when it has the room (see [`response_room`]), else both copied
    /// into one new buffer of exactly their length.
    pub fn set_frames_appending(&mut self, mut request: Vec<u8>, response: &[u8]) {
        let request_len = u32::try_from(request.len()).unwrap_or(u32::MAX);
        request.truncate(request_len as usize);
        if request.capacity() - request.len() >= response.len() {
            request.extend_from_slice(response);
            self.frames = request.into_boxed_slice();
            self.request_len = request_len;
            self.has_response = true;
        } else {
            self.set_frames_joined(&request, response);
        }
    }

    /// [`Exchange::set_frames`] with both frames borrowed: copied into one new buffer of
    /// exactly their length.
    pub fn set_frames_joined(&mut self, request: &[u8], response: &[u8]) {
        let request = &request[..request.len().min(u32::MAX as usize)];
        let mut frames = Vec::with_capacity(request.len() + response.len());
        frames.extend_from_slice(request);
        frames.extend_from_slice(response);
        self.frames = frames.into_boxed_slice();
        self.request_len = request.len() as u32;
        self.has_response = true;
    }

    /// A request frame copied into a buffer with the room [`response_room`] gives it, as
    /// [`Exchange::set_frames_appending`] takes it (a source keeps a request so until its
    /// response arrives).
    pub fn request_buffer(frame: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(frame.len() + response_room(frame.len()));
        buf.extend_from_slice(frame);
        buf
    }

    /// [`Exchange::set_frames`], builder style.
    pub fn with_frames(mut self, request: Vec<u8>, response: Option<Vec<u8>>) -> Exchange {
        self.set_frames(request, response);
        self
    }

    /// Sets the request frame, keeping the response.
    pub fn set_request(&mut self, request: Vec<u8>) {
        let response = self.response().map(<[u8]>::to_vec);
        self.set_frames(request, response);
    }

    /// Sets the response frame (or takes it away), keeping the request.
    pub fn set_response(&mut self, response: Option<Vec<u8>>) {
        let mut request = std::mem::take(&mut self.frames).into_vec();
        request.truncate(self.request_len as usize);
        self.set_frames(request, response);
    }

    /// When the response's last byte was written, µs since the epoch.
    pub fn response_at(&self) -> Option<i64> {
        self.has_response_at.then_some(self.response_at)
    }

    pub fn set_response_at(&mut self, at: Option<i64>) {
        self.has_response_at = at.is_some();
        self.response_at = at.unwrap_or(0);
    }

    /// [`Exchange::set_response_at`], builder style.
    pub fn with_response_at(mut self, at: Option<i64>) -> Exchange {
        self.set_response_at(at);
        self
    }

    /// The extras, made when first needed.
    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Drops the extras when nothing is left in them.
    fn tidy_extra(&mut self) {
        if self.extra.as_ref().is_some_and(|e| e.is_empty()) {
            self.extra = None;
        }
    }

    /// Free-form notes from the source (placement used, connection closed, …).
    pub fn notes(&self) -> &[String] {
        self.extra.as_ref().map_or(&[], |e| &e.notes)
    }

    pub fn push_note(&mut self, note: String) {
        self.extra_mut().notes.push(note);
    }

    #[inline]
    pub fn extend_notes(&mut self, notes: impl IntoIterator<Item = String>) {
        let mut notes = notes.into_iter().peekable();
        if notes.peek().is_some() {
            self.extra_mut().notes.extend(notes);
        }
    }

    #[inline]
    pub fn set_notes(&mut self, notes: Vec<String>) {
        if notes.is_empty() && self.extra.is_none() {
            return;
        }
        self.extra_mut().notes = notes;
        self.tidy_extra();
    }

    /// The `throttle_time_ms` placement a ProduceResponse from the embedded broker was encoded
    /// with, and the rule that chose it (none for other APIs and other sources).
    pub fn placement(&self) -> Option<&PlacementUsed> {
        self.extra.as_ref().and_then(|e| e.placement.as_ref())
    }

    pub fn set_placement(&mut self, placement: Option<PlacementUsed>) {
        if placement.is_none() && self.extra.is_none() {
            return;
        }
        self.extra_mut().placement = placement;
        self.tidy_extra();
    }

    /// What the lint found that only the connection's past shows (a version the broker did not
    /// advertise, a skipped sequence number), set by the store; the frames' own findings are
    /// the [`Verdict`]'s, which includes these.
    pub fn lint(&self) -> &[chronik_protocol::lint::Finding] {
        self.extra.as_ref().map_or(&[], |e| &e.lint)
    }

    pub fn set_lint(&mut self, lint: Vec<chronik_protocol::lint::Finding>) {
        if lint.is_empty() && self.extra.is_none() {
            return;
        }
        self.extra_mut().lint = lint;
        self.tidy_extra();
    }

    /// Latency from request to response, in µs (none without a response, or when the request
    /// was not seen).
    pub fn latency_micros(&self) -> Option<i64> {
        self.request_seen()
            .then_some(self.response_at())
            .flatten()
            .map(|r| r - self.request_at)
    }

    /// Whether the request frame was seen. A capture that started after a request, or lost
    /// it, holds only the response: an exchange with no request frame.
    pub fn request_seen(&self) -> bool {
        self.request_len > 0
    }

    /// The API and version, `Produce v7`; `?` for a response whose request was not seen and
    /// whose API is therefore unknown.
    pub fn api_label(&self) -> String {
        let mut label = String::new();
        self.push_api_label(&mut label);
        label
    }

    /// [`Exchange::api_label`], written at the end of `out`.
    pub fn push_api_label(&self, out: &mut String) {
        use std::fmt::Write;
        if self.api_key < 0 && !self.request_seen() {
            out.push('?');
            return;
        }
        match protocol::registry::api(self.api_key) {
            Some(api) => out.push_str(&api.name),
            None => _ = write!(out, "ApiKey({})", self.api_key),
        }
        out.push_str(" v");
        out.push_str(itoa::Buffer::new().format(self.api_version));
    }

    /// `#12 conn=1 Produce v7 corr=5`: which exchange this is, for a line about it.
    pub fn label(&self) -> String {
        format!(
            "#{} conn={} {} corr={}",
            self.id,
            self.conn,
            self.api_label(),
            self.correlation_id
        )
    }

    /// Bytes held (both frames).
    pub fn size(&self) -> usize {
        self.frames.len()
    }

    /// The request's dissection (none when the request was not seen).
    pub fn dissect_request(&self) -> Option<Dissection> {
        self.dissect_request_with(Limits::FULL)
    }

    /// The request's dissection within `limits` (none when the request was not seen; a bare
    /// SASL token is always dissected whole).
    pub fn dissect_request_with(&self, limits: Limits) -> Option<Dissection> {
        self.request_seen().then(|| match self.framing {
            Framing::Kafka => protocol::dissect_request_with(self.request(), limits),
            Framing::SaslToken => protocol::dissect_sasl_token(self.request(), true),
        })
    }

    /// The response's dissection (none without a response). Its API and version are the
    /// request's, as the response does not say them.
    pub fn dissect_response(&self) -> Option<Dissection> {
        self.dissect_response_with(Limits::FULL)
    }

    /// The response's dissection within `limits` (none without a response).
    pub fn dissect_response_with(&self, limits: Limits) -> Option<Dissection> {
        self.response().map(|r| match self.framing {
            Framing::Kafka => {
                protocol::dissect_response_with(r, self.api_key, self.api_version, limits)
            }
            Framing::SaslToken => protocol::dissect_sasl_token(r, false),
        })
    }

    /// Both frames dissected once, and the [`Verdict`] on them.
    pub fn dissect(&self) -> Dissected {
        self.dissect_with(Limits::FULL)
    }

    /// Both frames dissected once within `limits`, and the [`Verdict`] on them. The verdict
    /// does not depend on whether record sets were expanded: what is wrong inside a record set
    /// is noted on its fields, never a decoding error of the frame.
    pub fn dissect_with(&self, limits: Limits) -> Dissected {
        let request = self.dissect_request_with(limits);
        let response = self.dissect_response_with(limits);
        let verdict = Verdict::of(self, request.as_ref(), response.as_ref());
        Dissected {
            request,
            response,
            verdict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex() -> Exchange {
        Exchange::new(
            1,
            Endpoints::of("127.0.0.1:1".parse().unwrap()),
            10,
            Status::Answered,
        )
    }

    /// A store holds up to a million exchanges: what each holds besides its frames stays
    /// small (issue #13). 104 B puts an `Arc<Exchange>` in a 128-byte heap block.
    #[test]
    fn an_exchange_stays_small() {
        assert!(
            std::mem::size_of::<Exchange>() <= 104,
            "an Exchange is {} B",
            std::mem::size_of::<Exchange>()
        );
        assert!(std::mem::size_of::<Status>() <= 16);
    }

    /// Both frames in one buffer read back as they were set, whichever is set first.
    #[test]
    fn frames_read_back_as_set() {
        let mut e = ex();
        assert_eq!((e.request(), e.response(), e.size()), (&[][..], None, 0));
        assert!(!e.request_seen());
        e.set_request(vec![1, 2, 3]);
        assert_eq!((e.request(), e.response()), (&[1, 2, 3][..], None));
        e.set_response(Some(vec![4, 5]));
        assert_eq!(
            (e.request(), e.response()),
            (&[1, 2, 3][..], Some(&[4, 5][..]))
        );
        e.set_request(vec![9]);
        assert_eq!((e.request(), e.response()), (&[9][..], Some(&[4, 5][..])));
        assert_eq!(e.size(), 3);
        e.set_response(Some(Vec::new()));
        assert_eq!((e.request(), e.response()), (&[9][..], Some(&[][..])));
        e.set_response(None);
        assert_eq!((e.request(), e.response()), (&[9][..], None));
        let e = ex().with_frames(Vec::new(), Some(vec![7]));
        assert!(!e.request_seen());
        assert_eq!((e.request(), e.response()), (&[][..], Some(&[7][..])));
    }

    /// A response time of any value, `i64::MIN` included, is kept apart from none.
    #[test]
    fn response_time_is_optional() {
        let mut e = ex();
        assert_eq!(e.response_at(), None);
        e.set_response_at(Some(i64::MIN));
        assert_eq!(e.response_at(), Some(i64::MIN));
        e.set_response_at(Some(0));
        assert_eq!(e.response_at(), Some(0));
        e.set_response_at(None);
        assert_eq!(e.response_at(), None);
    }

    /// Notes, lint and placement live in one box, there only while one of them is set.
    #[test]
    fn the_rare_parts_take_no_box_when_empty() {
        let mut e = ex();
        e.set_notes(Vec::new());
        e.set_lint(Vec::new());
        e.set_placement(None);
        e.extend_notes(Vec::new());
        assert!(e.extra.is_none());
        e.push_note("a".into());
        e.extend_notes(vec!["b".into()]);
        assert_eq!(e.notes(), ["a", "b"]);
        e.set_placement(Some(PlacementUsed {
            placement: ThrottlePlacement::Front,
            rule: None,
        }));
        e.set_notes(Vec::new());
        assert!(e.extra.is_some());
        assert_eq!(e.notes(), [] as [String; 0]);
        e.set_placement(None);
        assert!(e.extra.is_none());
        assert_eq!(e.placement(), None);
    }

    /// A connection's exchanges share its addresses and, while it does not change, the
    /// client id.
    #[test]
    fn addresses_and_client_ids_are_shared() {
        let mut last = None;
        let a = share_client_id(&mut last, Some("app")).unwrap();
        let b = share_client_id(&mut last, Some("app")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(share_client_id(&mut last, None), None);
        let c = share_client_id(&mut last, Some("other")).unwrap();
        assert_eq!(c.as_str(), "other");
        let mut shares = ConnShares::default();
        let peer = "127.0.0.1:2".parse().unwrap();
        let e1 = shares.endpoints(1, peer, None);
        let e2 = shares.endpoints(1, peer, None);
        assert!(Arc::ptr_eq(&e1, &e2));
        let e3 = shares.endpoints(1, peer, Some("127.0.0.1:9092".parse().unwrap()));
        assert!(!Arc::ptr_eq(&e1, &e3));
        let x = shares.client_id(1, Some("app")).unwrap();
        let y = shares.client_id(1, Some("app")).unwrap();
        assert!(Arc::ptr_eq(&x, &y));
        assert_eq!(shares.client_id(2, None), None);
        assert_eq!(shares.endpoints(1, peer, None).server, None);
    }
}
