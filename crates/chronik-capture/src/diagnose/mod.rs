//! Client detection and the stall detector.
//!
//! Fed only by a store's two feeds (exchanges and connection events), never by the broker's
//! internals, so the same code runs on a live broker and on a capture. For each connection it
//! keeps what is known of the client (client id, the software name and version ApiVersions v3+
//! carries, the API versions actually used) and classifies it as healthy, retrying, stalled or
//! disconnecting, with the evidence: which exchange, which response, how many bytes.
//!
//! What the feeds can and cannot say: the broker pushes an exchange when it completes (response
//! written, no response due, or connection closed), so a request still being worked on is
//! invisible; "in flight" here is the history of requests that got no response (acks=0) or were
//! left unanswered when the connection closed.
//!
//! The rules (thresholds from [`StallThresholds`]), designed from what the real clients do when
//! a ProduceResponse is not laid out as Apache Kafka lays it out:
//! - **retrying**: a Produce request carries a batch that an earlier, already answered Produce
//!   of the same client (client id and peer IP, across connections) carried: same producer
//!   id/epoch/base sequence when the producer numbers its batches, else same batch CRC. Clients
//!   that re-batch and re-stamp what they retry (Sarama) are caught by record: same topic,
//!   partition, key, value and headers as a record whose response was undecodable or carried
//!   an error (only then, since an application may well send the same record twice).
//!   What is remembered for this is bounded: the newest [`MAX_REMEMBERED_BATCHES`] keys (a
//!   hash of the client, and the batch's producer sequence or CRC read from its header), and
//!   single records only from requests whose response was doubtful. A Produce answered with
//!   frames that both read cleanly is read by walks of them that build no tree; any other from
//!   the dissection the store shares with the other views ([`Store::dissected`], record sets
//!   not expanded). Its records are decoded only when they can matter (its response is
//!   doubtful, or records of its client are remembered).
//! - **disconnecting**: the client closed the connection within `close_after_response` of a
//!   ProduceResponse that does not decode as the spec says (a decode error, or bytes left after
//!   the last field), with nothing asked in between.
//! - **stalled**: no request for `silence` after such a ProduceResponse while the connection
//!   stays open (the client waits for an ack it could not read, until its own timeout;
//!   Metadata and ApiVersions requests meanwhile do not count, a client refreshes its metadata
//!   while it waits), or a request left unanswered for `unanswered` until the connection closed.
//! - **healthy** again: a later ProduceResponse on the connection that decodes cleanly for a
//!   batch not seen before.
//!
//! A ProduceResponse that decodes cleanly followed by a close or by silence is a client that
//! finished or is idle, and stays healthy.
//!
//! What the harness clients did with a ProduceResponse not laid out as the spec says (measured
//! with `cargo test --test it stall::survey -- --ignored --nocapture`; `front` with Produce capped
//! at v8, since the broker applies `front` to v1-v8 only; `omit` without a cap):
//!
//! | client (Produce version) | `front` | `omit` |
//! |---|---|---|
//! | kafka-python 3.0.12 (v8 capped; v9 uncapped) | waits silently on the open connection until its own timeout | "Unable to decode response", hangs up within ms |
//! | kafka-python 2.0.2 (v7) | waits silently until its own timeout (the hang seen against Chronik Stream 0.7.2, which wrote this layout) | hangs up, reconnects and resends the same batch (same CRC) 3 times, then "Unable to decode response" |
//! | confluent-kafka / librdkafka 2.16 (v8 capped; v10 uncapped) | "Bad message format", hangs up | "Read underflow", hangs up |
//! | kcat / librdkafka 2.0.2 (v7) | "Bad message format", hangs up | "Read underflow", hangs up |
//! | aiokafka 0.14 (v7) | waits silently until its own timeout | hangs up, reconnects and resends the same batch every ~100 ms until its delivery timeout (every resend is stored again) |
//! | kafkajs 2.2 (v7) | reports success without partition or offset (reads the int32 as an empty responses array and ignores the rest), then exits normally | RangeError reading past the end, hangs up |
//! | Sarama 1.22 (v3) | hangs up, re-batches and re-stamps the messages and resends them on new connections, then "Failed to deliver" | same |
//! | rskafka 0.6 (v7) | "Data left at the end of the message", hangs up | "failed to fill whole buffer", hangs up |
//!
//! Before the broker limited `front` to v1-v8, kafka-python 3 (Produce v9) and confluent-kafka
//! (v10) under `front` hung up at once with a parse error: in a flexible version the int32
//! lands where the client reads the compact array's length.
//!
//! The one case the broker's side cannot tell apart: kafkajs under `front` hangs up a few ms
//! after a response it could not have read, like a client that failed; the detector says
//! "disconnecting" and the evidence names the undecodable response.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::{
    now_micros, ClosedBy, ConnEvent, ConnEventKind, Dissected, Exchange, FrameFault, Status, Store,
};
use chronik_protocol::batch::{self, BatchHeader};
use chronik_protocol::dissect::RECORDS_NOT_EXPANDED;
use chronik_protocol::tree::FRAME;
use chronik_protocol::{api_key, records, registry};
use chronik_protocol::{Dissection, Field, Limits, Value};

/// Most batches (and records) remembered for resend detection (oldest forgotten first).
pub const MAX_REMEMBERED_BATCHES: usize = 100_000;
/// Most closed connections kept in the table (oldest dropped first).
const MAX_CLOSED_CONNECTIONS: usize = 1_000;
/// How often time-based states are re-evaluated.
pub const TICK: Duration = Duration::from_millis(250);

/// How a client connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    Retrying,
    Stalled,
    Disconnecting,
}

impl Health {
    /// Every state.
    pub const ALL: [Health; 4] = [
        Health::Healthy,
        Health::Retrying,
        Health::Stalled,
        Health::Disconnecting,
    ];

    /// The word used in lines, tables and JSON.
    pub fn word(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Retrying => "retrying",
            Health::Stalled => "stalled",
            Health::Disconnecting => "disconnecting",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// What a state is based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A Produce batch sent again after its response was sent.
    Resent,
    /// The client closed the connection soon after a response it could not have read.
    ClosedAfterResponse,
    /// No request after a response the client could not have read.
    SilenceAfterResponse,
    /// A request left unanswered until the connection closed.
    Unanswered,
    /// A ProduceResponse that decodes cleanly, for a new batch.
    CleanResponse,
}

/// Why a connection is in its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub kind: EvidenceKind,
    /// The exchange that shows it (the resent request, the response closed or waited on).
    pub exchange: Option<u64>,
    /// The earlier exchange it refers to (the first send of a resent batch).
    pub earlier_exchange: Option<u64>,
    /// When the evidence became conclusive, µs since the epoch.
    pub at: i64,
    /// What happened, naming the response and the bytes.
    pub text: String,
}

/// One change of a connection's state, as printed by the headless view.
#[derive(Debug, Clone, Serialize)]
pub struct StateChange {
    pub conn: u64,
    pub peer: SocketAddr,
    pub client_id: Option<String>,
    /// `name version` from ApiVersions v3+, when the client sent it.
    pub software: Option<String>,
    pub from: Health,
    pub to: Health,
    pub evidence: Evidence,
    /// The thresholds in force when it was decided, in ms.
    pub thresholds_ms: ThresholdsMs,
}

/// [`StallThresholds`] in milliseconds, for output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ThresholdsMs {
    pub close_after_response: u128,
    pub silence: u128,
    pub unanswered: u128,
}

impl From<StallThresholds> for ThresholdsMs {
    fn from(t: StallThresholds) -> Self {
        ThresholdsMs {
            close_after_response: t.close_after_response.as_millis(),
            silence: t.silence.as_millis(),
            unanswered: t.unanswered.as_millis(),
        }
    }
}

impl std::fmt::Display for ThresholdsMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stall.close_after_response={}ms stall.silence={}ms stall.unanswered={}ms",
            self.close_after_response, self.silence, self.unanswered
        )
    }
}

impl StateChange {
    /// The headless line: `# client conn=N <client id> (<software>) from -> to: <evidence>`.
    pub fn line(&self) -> String {
        format!(
            "# client conn={} {} ({}) {} -> {}: {}",
            self.conn,
            self.client_id.as_deref().unwrap_or("-"),
            self.software.as_deref().unwrap_or("software not sent"),
            self.from,
            self.to,
            self.evidence.text
        )
    }

    /// The headless JSON object, `{"kind":"client_state", ...}`.
    pub fn json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({}));
        v["kind"] = serde_json::json!("client_state");
        v
    }
}

/// A ProduceResponse that does not decode as the spec lays it out.
#[derive(Debug, Clone)]
struct BadResponse {
    exchange: u64,
    corr: i32,
    version: i16,
    bytes: usize,
    at: i64,
    /// What is wrong with it, and the placement it was encoded with when the source says.
    what: String,
}

impl BadResponse {
    fn describe(&self) -> String {
        format!(
            "ProduceResponse v{} corr={} (exchange #{}, {} B) {}",
            self.version, self.corr, self.exchange, self.bytes, self.what
        )
    }
}

/// Requests a client sends on its own while it waits for an answer (metadata refreshes,
/// version checks): they do not show that it acted on a response.
fn is_housekeeping(api: i16) -> bool {
    matches!(api, api_key::METADATA | api_key::API_VERSIONS)
}

/// A request left unanswered, waiting for the connection's close time.
#[derive(Debug, Clone)]
struct Waiting {
    exchange: u64,
    api_key: i16,
    version: i16,
    corr: i32,
    bytes: usize,
    request_at: i64,
}

/// What is known of one connection.
#[derive(Debug, Clone, Serialize)]
pub struct ConnInfo {
    pub conn: u64,
    pub peer: SocketAddr,
    pub client_id: Option<String>,
    pub software_name: Option<String>,
    pub software_version: Option<String>,
    /// API key -> the version last used on this connection.
    pub negotiated: BTreeMap<i16, i16>,
    /// Requests seen.
    pub requests: u64,
    pub last_request_at: Option<i64>,
    pub last_response_at: Option<i64>,
    /// Produce requests with acks=0 (no response by protocol).
    pub no_response: u64,
    /// Requests left unanswered when the connection closed.
    pub unanswered: u64,
    /// ProduceResponses that do not decode as the spec lays them out (a client that keeps
    /// talking after them took them for acks it could not have read, as kafkajs does).
    pub undecodable_responses: u64,
    /// Throttle placement of the latest ProduceResponse, as the source noted it.
    pub placement: Option<String>,
    pub health: Health,
    pub evidence: Option<Evidence>,
    pub opened_at: Option<i64>,
    /// (who, when, why) once closed.
    pub closed: Option<(ClosedBy, i64, String)>,
    #[serde(skip)]
    bad_response: Option<BadResponse>,
    #[serde(skip)]
    waiting: Vec<Waiting>,
}

impl ConnInfo {
    pub(crate) fn new(conn: u64, peer: SocketAddr) -> ConnInfo {
        ConnInfo {
            conn,
            peer,
            client_id: None,
            software_name: None,
            software_version: None,
            negotiated: BTreeMap::new(),
            requests: 0,
            last_request_at: None,
            last_response_at: None,
            no_response: 0,
            unanswered: 0,
            undecodable_responses: 0,
            placement: None,
            health: Health::Healthy,
            evidence: None,
            opened_at: None,
            closed: None,
            bad_response: None,
            waiting: Vec::new(),
        }
    }

    /// The health word, with `,closed` once the client closed the connection and `,closed*`
    /// once the broker did (`stalled,closed`).
    pub fn state(&self) -> String {
        match &self.closed {
            Some((ClosedBy::Client, _, _)) => format!("{},closed", self.health),
            Some((ClosedBy::Broker, _, _)) => format!("{},closed*", self.health),
            None => self.health.to_string(),
        }
    }

    /// The widest [`ConnInfo::state`] there can be: a column this wide holds every one.
    pub fn state_width() -> usize {
        let word = Health::ALL.iter().map(|h| h.word().len()).max();
        word.unwrap_or(0) + ",closed*".len()
    }

    /// `name version` from ApiVersions v3+, when sent.
    pub fn software(&self) -> Option<String> {
        match (&self.software_name, &self.software_version) {
            (Some(n), Some(v)) => Some(format!("{n} {v}")),
            (Some(n), None) => Some(n.clone()),
            _ => None,
        }
    }
}

/// Who a client is for resend detection: a hash of its client id and peer IP (clients
/// reconnect to retry), so that remembering a batch costs no copy of the client id.
type ClientKey = u64;

fn client_key(ex: &Exchange) -> ClientKey {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (ex.client_id(), ex.peer().ip()).hash(&mut h);
    h.finish()
}

/// What identifies a batch across resends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum BatchKey {
    /// Producer id, epoch and base sequence (idempotent producers).
    Sequence(i64, i16, i32),
    /// Batch CRC (others; the CRC covers the records and their timestamps).
    Crc(u32),
    /// One record's topic, partition, key, value and headers (clients that re-batch and
    /// re-stamp their retries). Weaker: an application may send the same record twice, so it
    /// counts only when the earlier response was undecodable or carried an error.
    Record(u64),
}

/// One batch of a Produce request.
#[derive(Debug, Clone)]
struct BatchSeen {
    topic: String,
    partition: i64,
    header: BatchHeader,
    bytes: usize,
}

impl BatchSeen {
    fn key(&self) -> BatchKey {
        let h = &self.header;
        if h.producer_id >= 0 && h.base_sequence >= 0 {
            BatchKey::Sequence(h.producer_id, h.producer_epoch, h.base_sequence)
        } else {
            BatchKey::Crc(h.crc)
        }
    }

    fn describe(&self) -> String {
        let h = &self.header;
        let id = if h.producer_id >= 0 && h.base_sequence >= 0 {
            format!(
                "producer_id={} epoch={} base_sequence={}",
                h.producer_id, h.producer_epoch, h.base_sequence
            )
        } else {
            format!("crc=0x{:08x}", h.crc)
        };
        format!(
            "batch {}-{} {id} ({} records, {} B)",
            self.topic, self.partition, h.records_count, self.bytes
        )
    }
}

/// Where a batch was last sent, and whether its response had been sent.
#[derive(Debug, Clone)]
struct BatchSent {
    exchange: u64,
    conn: u64,
    corr: i32,
    response_at: Option<i64>,
    response_bytes: Option<usize>,
    /// Whether that response was undecodable or carried an error code (a reason to retry).
    doubtful: bool,
}

/// The detector: a table of connections and their states.
#[derive(Debug, Default)]
pub struct Detector {
    conns: BTreeMap<u64, ConnInfo>,
    closed_order: VecDeque<u64>,
    /// Where each remembered batch was last sent: whole batches of every Produce, single
    /// records only of those whose response was doubtful (the only ones a record can be
    /// judged resent against).
    batches: HashMap<(ClientKey, BatchKey), BatchSent>,
    batch_order: VecDeque<(ClientKey, BatchKey)>,
    /// How many records are remembered per client: a Produce of a client with none, whose own
    /// response is not doubtful, need not have its records read at all.
    record_clients: HashMap<ClientKey, usize>,
}

/// A threshold in µs (saturating, so an absurd threshold never wraps negative).
fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// µs as a duration for evidence: `0.31 ms`, `502 ms`, `2.1 s`.
fn ms(us: i64) -> String {
    let ms = us as f64 / 1000.0;
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// The placement a ProduceResponse was encoded with, when the source says: the exchange's
/// `placement` (the embedded broker; `front (rule 1: …)` when a rule chose it), else a
/// `throttle_time_ms placement: WORD …` note. Captures of other brokers say nothing.
fn noted_placement(ex: &Exchange) -> Option<String> {
    if let Some(p) = ex.placement() {
        return Some(p.to_string());
    }
    ex.notes().iter().find_map(|n| {
        n.strip_prefix("throttle_time_ms placement: ")
            .map(|rest| rest.split_whitespace().next().unwrap_or(rest).to_string())
    })
}

/// The text of the first field called `name` in a tree, when it is a string.
fn str_field(root: &Field, name: &str) -> Option<String> {
    match root.find(name).map(|f| &f.value) {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Whether the detector reads an exchange's frames: Produce (its batches and the response's
/// verdict) and ApiVersions v3+ (the client's software); others it judges from the exchange
/// alone. A Produce whose frames both read cleanly is read by walks of them (no tree), the
/// others from a dissection (see [`FramesRead::of`]).
pub fn reads_dissection(ex: &Exchange) -> bool {
    ex.api_key == api_key::PRODUCE || is_software_request(ex)
}

/// What the detector reads of an exchange's frames, gathered before it takes the exchange in
/// ([`Detector::on_read`]), so that a detector shared behind a lock does not hold it meanwhile.
#[derive(Debug, Default)]
pub struct FramesRead<'a> {
    /// A Produce's record sets and what makes its response doubtful.
    produce: Option<ProduceRead<'a>>,
    /// The software name and version of an ApiVersions v3+ request.
    software: Option<(String, String)>,
}

impl<'a> FramesRead<'a> {
    /// What the detector reads of `ex`: nothing for an exchange it does not read (see
    /// [`reads_dissection`]); walks of both frames for a Produce answered with frames that both
    /// read cleanly in the spec's layout, where a dissection would say nothing more; else what
    /// the dissection `dissected` gives says (record sets not expanded, as
    /// [`Store::dissected`] shares it), asked only then.
    pub fn of<D>(ex: &'a Exchange, dissected: impl FnOnce() -> D) -> FramesRead<'a>
    where
        D: std::ops::Deref<Target = Dissected>,
    {
        if !reads_dissection(ex) {
            return FramesRead::default();
        }
        if let Some(read) = ProduceRead::walked(ex) {
            return FramesRead {
                produce: Some(read),
                software: None,
            };
        }
        let d = dissected();
        FramesRead {
            produce: (ex.api_key == api_key::PRODUCE).then(|| ProduceRead::dissected(ex, &d)),
            software: software_of(ex, &d),
        }
    }
}

/// What the detector reads of a Produce exchange: the request's record sets, each with its
/// topic and partition, and what makes the response doubtful.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProduceRead<'a> {
    /// (topic, partition, the record set's bytes), in the request's order; empty sets left
    /// out.
    sets: Vec<(String, i64, &'a [u8])>,
    /// What is wrong with the response's layout; none when it decodes as the spec says (or
    /// there is no response).
    fault: Option<FrameFault>,
    /// Whether the response carries an error code other than zero.
    errors: bool,
}

impl<'a> ProduceRead<'a> {
    /// From the exchange's dissection `d` (record sets not expanded).
    fn dissected(ex: &'a Exchange, d: &Dissected) -> ProduceRead<'a> {
        ProduceRead {
            sets: d
                .request
                .as_ref()
                .map(|req| record_sets(req, ex.request()))
                .unwrap_or_default(),
            fault: d.verdict.response.clone(),
            errors: d.verdict.errors().next().is_some(),
        }
    }

    /// From walks of both frames that build no tree (`scan::scan_clean_request` and
    /// `_response`): `None` unless `ex` is an answered Kafka Produce whose frames both read
    /// cleanly in the spec's layout, with topic names in UTF-8 and no more values than a
    /// dissection keeps without eliding any; then it is what [`ProduceRead::dissected`] reads
    /// from the dissection (the tests compare the two).
    fn walked(ex: &'a Exchange) -> Option<ProduceRead<'a>> {
        use chronik_protocol::fid;
        use chronik_protocol::scan::{scan_clean_request, scan_clean_response, Scalar};
        if ex.api_key != api_key::PRODUCE {
            return None;
        }
        let (request, response) = crate::render::answered_frames(ex)?;
        let (name, index, records) = (
            fid!("produce.request.topic_data.name"),
            fid!("produce.request.topic_data.partition_data.index"),
            fid!("produce.request.topic_data.partition_data.records"),
        );
        let (mut values, mut utf8, mut sets) = (0usize, true, Vec::new());
        let (mut topic, mut partition) = (String::new(), -1);
        scan_clean_request(request, &mut |id, v| {
            values += 1;
            match v {
                Scalar::Str(s) if id == name => match std::str::from_utf8(s) {
                    Ok(s) => s.clone_into(&mut topic),
                    Err(_) => utf8 = false,
                },
                Scalar::Int(i) if id == index => partition = i,
                Scalar::Data { start, len } if id == records && len > 0 => {
                    sets.push((topic.clone(), partition, &request[start..start + len]));
                }
                _ => {}
            }
        })
        .ok()?;
        let mut errors = false;
        scan_clean_response(response, ex.api_key, ex.api_version, &mut |id, v| {
            values += 1;
            if let (registry::Role::ErrorCode, Scalar::Int(c)) = (registry::role(id), v) {
                errors |= i16::try_from(c).is_ok_and(|c| c != 0);
            }
        })
        .ok()?;
        (utf8 && values <= crate::render::WALK_BUDGET).then_some(ProduceRead {
            sets,
            fault: None,
            errors,
        })
    }
}

fn is_software_request(ex: &Exchange) -> bool {
    ex.api_key == api_key::API_VERSIONS && ex.api_version >= 3
}

/// The software name and version of an ApiVersions v3+ request, from its dissection.
fn software_of(ex: &Exchange, d: &Dissected) -> Option<(String, String)> {
    if !is_software_request(ex) {
        return None;
    }
    let root = &d.request.as_ref()?.root;
    let name = str_field(root, "api_versions.request.client_software_name")?;
    let version = str_field(root, "api_versions.request.client_software_version")?;
    Some((name, version))
}

/// One record of a Produce request, identified by what a client keeps when it re-batches a
/// retry: topic, partition, key, value and headers (not the timestamp: Sarama stamps a retried
/// message again).
#[derive(Debug, Clone)]
struct RecordSeen {
    topic: String,
    partition: i64,
    timestamp: i64,
    /// Hash of (topic, partition, key, value, headers).
    fingerprint: u64,
}

/// The bytes a bytes field holds (empty for null), from the buffer its span points into:
/// `frame`, or one of `buffers` (decompressed data, buffer id = index + 1).
fn bytes_of<'a>(buffers: &'a [Vec<u8>], frame: &'a [u8], f: &Field) -> Option<&'a [u8]> {
    let buf = match f.buffer {
        FRAME => frame,
        id => buffers.get(usize::from(id) - 1)?,
    };
    match f.value {
        Value::Bytes { start, len } => {
            buf.get(start as usize..(start as usize).saturating_add(len as usize))
        }
        Value::Null => Some(&[]),
        _ => None,
    }
}

/// The record sets of a Produce request with their topic and partition, from its dissection
/// `d` of `frame` (record sets not expanded: each is one leaf spanning its bytes).
fn record_sets<'a>(d: &Dissection, frame: &'a [u8]) -> Vec<(String, i64, &'a [u8])> {
    let mut sets = Vec::new();
    let mut topic = String::new();
    let mut partition = -1;
    d.root.walk(0, &mut |f, _| match f.name() {
        "produce.request.topic_data.name" => {
            if let Value::Str(s) = &f.value {
                topic.clone_from(s);
            }
        }
        "produce.request.topic_data.partition_data.index" => {
            partition = f.as_int().unwrap_or(-1);
        }
        "record_set.undecoded" if f.note.as_deref() == Some(RECORDS_NOT_EXPANDED) => {
            let start = f.offset as usize;
            if let Some(set) = frame.get(start..start.saturating_add(f.len as usize)) {
                sets.push((topic.clone(), partition, set));
            }
        }
        _ => {}
    });
    sets
}

/// The magic-2 batches of a record set, read from their headers (nothing decompressed).
fn batches_of(topic: &str, partition: i64, set: &[u8], out: &mut Vec<BatchSeen>) {
    for entry in batch::split(set) {
        if let batch::Entry::Batch { start, end } = entry {
            if let Some(header) = set.get(start..end).and_then(BatchHeader::parse) {
                out.push(BatchSeen {
                    topic: topic.to_string(),
                    partition,
                    header,
                    bytes: end - start,
                });
            }
        }
    }
}

/// The records of a record set (decompressed within the dissector's limits), each with its
/// fingerprint.
fn records_of(topic: &str, partition: i64, set: &[u8], out: &mut Vec<RecordSeen>) {
    use std::hash::{Hash, Hasher};
    let mut buffers = Vec::new();
    let mut fields = Vec::new();
    records::dissect_record_set(set, 0, set.len(), FRAME, &mut buffers, &mut fields);
    let topic = topic.to_string();
    let mut base_timestamp = 0i64;
    let mut visit = |f: &Field, _| match f.name() {
        "record_batch.base_timestamp" => base_timestamp = f.as_int().unwrap_or(0),
        "record" => {
            let child = |name: &str| f.children.iter().find(|c| c.name() == name);
            let delta = child("record.timestamp_delta").and_then(Field::as_int);
            let key = child("record.key").and_then(|k| bytes_of(&buffers, set, k));
            let value = child("record.value").and_then(|v| bytes_of(&buffers, set, v));
            if let (Some(delta), Some(key), Some(value)) = (delta, key, value) {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (&topic, partition, key, value).hash(&mut h);
                // Header names and values, in order.
                if let Some(headers) = child("record.headers") {
                    headers.walk(0, &mut |hf, _| {
                        if let Some(b) = bytes_of(&buffers, set, hf) {
                            b.hash(&mut h);
                        }
                    });
                }
                out.push(RecordSeen {
                    topic: topic.clone(),
                    partition,
                    timestamp: base_timestamp.wrapping_add(delta),
                    fingerprint: h.finish(),
                });
            }
        }
        _ => {}
    };
    for f in &fields {
        f.walk(0, &mut visit);
    }
}

/// What is wrong with a ProduceResponse that does not decode as the spec lays it out.
fn produce_response_problem(fault: &FrameFault) -> String {
    match fault {
        FrameFault::Undecodable(e) => format!("does not decode as the spec lays it out: {e}"),
        FrameFault::TrailingBytes { len, offset } => format!(
            "does not decode as the spec lays it out: {len} bytes left after the last field, at \
             byte {offset}"
        ),
    }
}

impl Detector {
    /// An empty table.
    pub fn new() -> Detector {
        Detector::default()
    }

    /// The connections, by id (open and recently closed).
    pub fn connections(&self) -> impl Iterator<Item = &ConnInfo> {
        self.conns.values()
    }

    /// One connection.
    pub fn connection(&self, conn: u64) -> Option<&ConnInfo> {
        self.conns.get(&conn)
    }

    /// The connection `conn`, added to the table the first time it is seen.
    fn entry(&mut self, conn: u64, peer: SocketAddr) -> &mut ConnInfo {
        self.conns
            .entry(conn)
            .or_insert_with(|| ConnInfo::new(conn, peer))
    }

    /// Puts a connection in state `to` with its evidence; a change of state is added to `out`.
    fn set(
        &mut self,
        conn: u64,
        to: Health,
        evidence: Evidence,
        t: StallThresholds,
        out: &mut Vec<StateChange>,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let from = c.health;
        c.health = to;
        c.evidence = Some(evidence.clone());
        if from != to {
            out.push(StateChange {
                conn,
                peer: c.peer,
                client_id: c.client_id.clone(),
                software: c.software(),
                from,
                to,
                evidence,
                thresholds_ms: t.into(),
            });
        }
    }

    /// Remembers where a batch was sent, forgetting the oldest past [`MAX_REMEMBERED_BATCHES`].
    fn remember_batch(&mut self, key: (ClientKey, BatchKey), sent: BatchSent) {
        if self.batches.insert(key, sent).is_none() {
            if matches!(key.1, BatchKey::Record(_)) {
                *self.record_clients.entry(key.0).or_default() += 1;
            }
            self.batch_order.push_back(key);
            while self.batch_order.len() > MAX_REMEMBERED_BATCHES {
                if let Some(old) = self.batch_order.pop_front() {
                    self.forget_batch(&old);
                }
            }
        }
    }

    /// Forgets a remembered batch or record.
    fn forget_batch(&mut self, key: &(ClientKey, BatchKey)) {
        if self.batches.remove(key).is_some() && matches!(key.1, BatchKey::Record(_)) {
            if let Some(n) = self.record_clients.get_mut(&key.0) {
                *n -= 1;
                if *n == 0 {
                    self.record_clients.remove(&key.0);
                }
            }
        }
    }

    /// Takes in one exchange; returns the state changes it causes. Reads its frames when it
    /// has to (see [`FramesRead::of`]), dissecting them if walks do not do;
    /// [`Detector::on_read`] takes what was read already.
    pub fn on_exchange(&mut self, ex: &Exchange, t: StallThresholds) -> Vec<StateChange> {
        let read = FramesRead::of(ex, || Box::new(ex.dissect_with(Limits::WITHOUT_RECORDS)));
        self.on_read(ex, read, t)
    }

    /// Takes in one exchange with what [`FramesRead::of`] read of its frames; returns the
    /// state changes it causes.
    pub fn on_read(
        &mut self,
        ex: &Exchange,
        read: FramesRead<'_>,
        t: StallThresholds,
    ) -> Vec<StateChange> {
        let mut out = Vec::new();
        let c = self.entry(ex.conn, ex.peer());
        if ex.client_id().is_some() {
            c.client_id = ex.client_id().map(str::to_string);
        }
        if !ex.request().is_empty() {
            c.requests += 1;
            c.negotiated.insert(ex.api_key, ex.api_version);
            c.last_request_at = Some(c.last_request_at.unwrap_or(0).max(ex.request_at));
            // A new request answers the question "is the client still talking?", unless it is
            // housekeeping a client does while it waits for an ack (kafka-python 2.0.2
            // refreshes its metadata a moment after a Produce and then still waits).
            if !is_housekeeping(ex.api_key)
                && c.bad_response
                    .as_ref()
                    .is_some_and(|b| b.at <= ex.request_at)
            {
                c.bad_response = None;
            }
        }
        if let Some(at) = ex.response_at() {
            c.last_response_at = Some(c.last_response_at.unwrap_or(0).max(at));
        }
        if let Some((name, version)) = read.software {
            c.software_name = Some(name);
            c.software_version = Some(version);
        }
        match &ex.status {
            Status::NoResponse => c.no_response += 1,
            Status::Unanswered => {
                c.unanswered += 1;
                c.waiting.push(Waiting {
                    exchange: ex.id,
                    api_key: ex.api_key,
                    version: ex.api_version,
                    corr: ex.correlation_id,
                    bytes: ex.request().len(),
                    request_at: ex.request_at,
                });
            }
            _ => {}
        }
        if let Some(produce) = read.produce {
            self.on_produce(ex, produce, t, &mut out);
        }
        self.settle_waiting(ex.conn, t, &mut out);
        out
    }

    /// A Produce exchange: a batch or record sent again makes the client retrying; a response
    /// that does not decode as the spec says is remembered (a close or silence after it is
    /// judged by [`Detector::on_conn_event`] and [`Detector::tick`]); a clean one for a new
    /// batch makes the client healthy again.
    fn on_produce(
        &mut self,
        ex: &Exchange,
        read: ProduceRead<'_>,
        t: StallThresholds,
        out: &mut Vec<StateChange>,
    ) {
        let client = client_key(ex);
        let problem = match &read.fault {
            Some(fault) if ex.status == Status::Answered => Some(produce_response_problem(fault)),
            _ => None,
        };
        let doubtful = problem.is_some() || read.errors;
        let sets = read.sets;
        // Whole batches first (producer sequence or CRC), read from their headers.
        let mut batches = Vec::new();
        for (topic, partition, set) in &sets {
            batches_of(topic, *partition, set, &mut batches);
        }
        // Then single records, for clients that re-batch what they retry: read only when they
        // can matter, that is when this response is doubtful (they are remembered) or when
        // records of this client are remembered (they may be sent again here).
        let mut records = Vec::new();
        if doubtful || self.record_clients.contains_key(&client) {
            for (topic, partition, set) in &sets {
                records_of(topic, *partition, set, &mut records);
            }
        }
        let sent = BatchSent {
            exchange: ex.id,
            conn: ex.conn,
            corr: ex.correlation_id,
            response_at: ex.response_at(),
            response_bytes: ex.response().map(<[u8]>::len),
            doubtful,
        };
        let keys = batches
            .iter()
            .map(BatchSeen::key)
            .chain(records.iter().map(|r| BatchKey::Record(r.fingerprint)));
        // The first item found sent before (its index among batches then records).
        let mut resent: Option<(BatchSent, i64, usize)> = None;
        let mut records_resent = 0usize;
        for (i, key) in keys.enumerate() {
            let is_record = matches!(key, BatchKey::Record(_));
            let key = (client, key);
            let earlier = self
                .batches
                .get(&key)
                .filter(|prev| prev.exchange != ex.id && (prev.doubtful || !is_record))
                .and_then(|prev| {
                    prev.response_at
                        .filter(|at| *at <= ex.request_at)
                        .map(|at| (prev.clone(), at))
                });
            if let Some((prev, answered_at)) = earlier {
                records_resent += usize::from(is_record);
                if resent.is_none() {
                    resent = Some((prev, answered_at, i));
                }
            }
            if is_record && !doubtful {
                // A record is judged resent only against a doubtful send: this clean one
                // replaces any such earlier send.
                self.forget_batch(&key);
            } else {
                self.remember_batch(key, sent.clone());
            }
        }
        let record_count = records.len();
        let resent = resent.map(|(prev, answered_at, i)| {
            let what = match (batches.get(i), records.get(i.saturating_sub(batches.len()))) {
                (Some(b), _) => b.describe(),
                (None, Some(r)) => format!(
                    "a record of {}-{} (timestamp {}) with the same key, value and headers",
                    r.topic, r.partition, r.timestamp
                ),
                (None, None) => String::new(),
            };
            let records = if records_resent > 0 {
                format!(" ({records_resent} of its {record_count} records were sent before)")
            } else {
                String::new()
            };
            Evidence {
                kind: EvidenceKind::Resent,
                exchange: Some(ex.id),
                earlier_exchange: Some(prev.exchange),
                at: ex.request_at,
                text: format!(
                    "Produce v{} corr={} (exchange #{}, {} B) resends {what}{records}, first sent \
                     on conn={} corr={} (exchange #{}) and answered {} earlier (ProduceResponse \
                     {} B)",
                    ex.api_version,
                    ex.correlation_id,
                    ex.id,
                    ex.request().len(),
                    prev.conn,
                    prev.corr,
                    prev.exchange,
                    ms(ex.request_at.saturating_sub(answered_at)),
                    prev.response_bytes.unwrap_or(0),
                ),
            }
        });
        let placement = noted_placement(ex);
        let Some(c) = self.conns.get_mut(&ex.conn) else {
            return;
        };
        if placement.is_some() || ex.status == Status::Answered {
            c.placement = Some(placement.clone().unwrap_or_else(|| "spec".into()));
        }
        if let Some(what) = problem {
            c.undecodable_responses += 1;
            c.bad_response = Some(BadResponse {
                exchange: ex.id,
                corr: ex.correlation_id,
                version: ex.api_version,
                bytes: ex.response().map_or(0, <[u8]>::len),
                at: ex.response_at().unwrap_or(ex.request_at),
                what: match &placement {
                    Some(p) => format!("{what} (encoded with throttle_time_ms placement {p})"),
                    None => what,
                },
            });
        }
        let health = c.health;
        if let Some(ev) = resent {
            self.set(ex.conn, Health::Retrying, ev, t, out);
        } else if ex.status == Status::Answered
            && health != Health::Healthy
            && self
                .conns
                .get(&ex.conn)
                .is_some_and(|c| c.bad_response.is_none())
        {
            let ev = Evidence {
                kind: EvidenceKind::CleanResponse,
                exchange: Some(ex.id),
                earlier_exchange: None,
                at: ex.response_at().unwrap_or(ex.request_at),
                text: format!(
                    "ProduceResponse v{} corr={} (exchange #{}, {} B) decodes cleanly, for a new \
                     batch",
                    ex.api_version,
                    ex.correlation_id,
                    ex.id,
                    ex.response().map_or(0, <[u8]>::len)
                ),
            };
            self.set(ex.conn, Health::Healthy, ev, t, out);
        }
    }

    /// Unanswered requests are judged once the close time is known.
    fn settle_waiting(&mut self, conn: u64, t: StallThresholds, out: &mut Vec<StateChange>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some((_, closed_at, _)) = c.closed.clone() else {
            return;
        };
        let waiting = std::mem::take(&mut c.waiting);
        let limit = micros(t.unanswered);
        let longest = waiting
            .iter()
            .filter(|w| closed_at.saturating_sub(w.request_at) >= limit)
            .min_by_key(|w| w.request_at);
        if let Some(w) = longest {
            let ev = Evidence {
                kind: EvidenceKind::Unanswered,
                exchange: Some(w.exchange),
                earlier_exchange: None,
                at: closed_at,
                text: format!(
                    "{} v{} corr={} (exchange #{}, {} B request) left unanswered for {} until the \
                     connection closed (stall.unanswered={}ms)",
                    registry::api_name(w.api_key),
                    w.version,
                    w.corr,
                    w.exchange,
                    w.bytes,
                    ms(closed_at.saturating_sub(w.request_at)),
                    t.unanswered.as_millis()
                ),
            };
            self.set(conn, Health::Stalled, ev, t, out);
        }
    }

    /// Takes in one connection event; returns the state changes it causes.
    pub fn on_conn_event(&mut self, ev: &ConnEvent, t: StallThresholds) -> Vec<StateChange> {
        let mut out = Vec::new();
        let c = self.entry(ev.conn, ev.peer);
        match &ev.kind {
            ConnEventKind::Opened => c.opened_at = Some(ev.at),
            ConnEventKind::Closed { by, reason } => {
                c.closed = Some((*by, ev.at, reason.clone()));
                let bad = c.bad_response.take();
                let health = c.health;
                self.closed_order.push_back(ev.conn);
                if *by == ClosedBy::Client {
                    if let Some(b) = bad {
                        let after = ev.at.saturating_sub(b.at);
                        if after <= micros(t.close_after_response) && health != Health::Stalled {
                            let e = Evidence {
                                kind: EvidenceKind::ClosedAfterResponse,
                                exchange: Some(b.exchange),
                                earlier_exchange: None,
                                at: ev.at,
                                text: format!(
                                    "closed by the client {} after {} (within \
                                     stall.close_after_response={}ms)",
                                    ms(after),
                                    b.describe(),
                                    t.close_after_response.as_millis()
                                ),
                            };
                            self.set(ev.conn, Health::Disconnecting, e, t, &mut out);
                        }
                    }
                }
                self.settle_waiting(ev.conn, t, &mut out);
                while self.closed_order.len() > MAX_CLOSED_CONNECTIONS {
                    if let Some(old) = self.closed_order.pop_front() {
                        self.conns.remove(&old);
                    }
                }
            }
        }
        out
    }

    /// Re-evaluates time-based states at `now` (µs since the epoch).
    pub fn tick(&mut self, now: i64, t: StallThresholds) -> Vec<StateChange> {
        let mut out = Vec::new();
        let limit = micros(t.silence);
        let silent: Vec<(u64, BadResponse)> = self
            .conns
            .values()
            .filter(|c| c.closed.is_none() && c.health != Health::Stalled)
            .filter_map(|c| c.bad_response.clone().map(|b| (c.conn, b)))
            .filter(|(_, b)| now.saturating_sub(b.at) >= limit)
            .collect();
        for (conn, b) in silent {
            let e = Evidence {
                kind: EvidenceKind::SilenceAfterResponse,
                exchange: Some(b.exchange),
                earlier_exchange: None,
                at: now,
                text: format!(
                    "no request for {} since {}, connection still open (stall.silence={}ms)",
                    ms(now.saturating_sub(b.at)),
                    b.describe(),
                    t.silence.as_millis()
                ),
            };
            self.set(conn, Health::Stalled, e, t, &mut out);
        }
        out
    }

    /// The `clients` table: one line per connection, its evidence on the next. Each column is
    /// as wide as its widest cell, so the columns line up whatever a row holds.
    pub fn render(&self, t: StallThresholds) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "clients ({}; state ,closed = closed by the client, ,closed* = by the broker; \
             noresp/un/bad = acks=0 requests / requests unanswered at close / ProduceResponses \
             that do not decode as the spec lays them out)",
            ThresholdsMs::from(t)
        );
        let header = [
            "conn",
            "peer",
            "client id",
            "software",
            "state",
            "reqs",
            "last request",
            "last response",
            "noresp/un/bad",
            "throttle",
            "versions",
        ];
        let mut rows: Vec<(Vec<String>, Option<&Evidence>)> =
            vec![(header.iter().map(|h| h.to_string()).collect(), None)];
        for c in self.conns.values() {
            let versions: Vec<String> = c
                .negotiated
                .iter()
                .map(|(k, v)| format!("{}:v{}", registry::api_name(*k), v))
                .collect();
            let clock = |at: Option<i64>| at.map(crate::render::clock);
            let cells = vec![
                c.conn.to_string(),
                c.peer.to_string(),
                c.client_id.clone().unwrap_or_else(|| "-".into()),
                c.software().unwrap_or_else(|| "-".into()),
                c.state(),
                c.requests.to_string(),
                clock(c.last_request_at).unwrap_or_else(|| "-".into()),
                clock(c.last_response_at).unwrap_or_else(|| "-".into()),
                format!(
                    "{}/{}/{}",
                    c.no_response, c.unanswered, c.undecodable_responses
                ),
                c.placement.clone().unwrap_or_else(|| "-".into()),
                versions.join(","),
            ];
            rows.push((cells, c.evidence.as_ref()));
        }
        let mut widths = vec![0; header.len()];
        for (cells, _) in &rows {
            for (w, cell) in widths.iter_mut().zip(cells) {
                *w = (*w).max(cell.chars().count());
            }
        }
        // The state column is as wide as any state can be, so it does not move as states change.
        widths[4] = widths[4].max(ConnInfo::state_width());
        for (cells, evidence) in rows {
            let mut line = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                let pad = " ".repeat(w - cell.chars().count());
                match i {
                    // The requests count is a number: right-aligned.
                    5 => line.push_str(&format!("{pad}{cell} ")),
                    _ => line.push_str(&format!("{cell}{pad} ")),
                }
            }
            let _ = writeln!(s, "{}", line.trim_end());
            if let Some(e) = evidence {
                let _ = writeln!(s, "      evidence: {}", e.text);
            }
        }
        s
    }
}

/// Thresholds of the stall detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StallThresholds {
    /// A client closing its connection within this time after a response is "disconnecting".
    pub close_after_response: Duration,
    /// A client silent this long after a response it should have acted on is "stalled".
    pub silence: Duration,
    /// A request unanswered this long is "stalled" (the broker's side of the same wait).
    pub unanswered: Duration,
}

impl Default for StallThresholds {
    fn default() -> Self {
        StallThresholds {
            close_after_response: Duration::from_millis(1000),
            silence: Duration::from_secs(5),
            unanswered: Duration::from_secs(5),
        }
    }
}

/// Where the detector reads its thresholds, for every event and tick (the broker's settings,
/// say, so that changing them takes effect at once).
pub type ThresholdSource = Arc<dyn Fn() -> StallThresholds + Send + Sync>;

/// A detector running over a store's feeds; cheap to clone.
#[derive(Clone)]
pub struct DiagnoseHandle {
    detector: Arc<Mutex<Detector>>,
    thresholds: ThresholdSource,
    changes: broadcast::Sender<StateChange>,
}

impl DiagnoseHandle {
    /// The `clients` table now.
    pub fn render(&self) -> String {
        let t = (self.thresholds)();
        self.lock().render(t)
    }

    /// A copy of the connection table.
    pub fn connections(&self) -> Vec<ConnInfo> {
        self.lock().connections().cloned().collect()
    }

    /// State changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.changes.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Detector> {
        self.detector.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts the detector on a store's feeds (subscribed before this returns, so start it before
/// the source) with a periodic [`TICK`]; state changes go to [`DiagnoseHandle::subscribe`].
/// Thresholds are read from `thresholds` for every event and tick, so changing them takes
/// effect at once. Call it within a Tokio runtime; the task runs while the store's feeds are
/// open.
pub fn spawn(store: &Arc<Store>, thresholds: ThresholdSource) -> DiagnoseHandle {
    let (handle, run) = start(store, thresholds);
    tokio::spawn(run);
    handle
}

/// [`spawn`] without the task: the detector's handle, and the future that runs it, for a
/// caller to run in a task of its choosing (one that also reads the store's feed, say, so that
/// a new exchange wakes one task rather than two). Subscribed to the feeds before this returns;
/// what arrives before the future first runs waits in them. Its timer needs a Tokio runtime.
pub fn start(
    store: &Arc<Store>,
    thresholds: ThresholdSource,
) -> (
    DiagnoseHandle,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    use broadcast::error::RecvError;
    let (changes, _) = broadcast::channel(1024);
    let handle = DiagnoseHandle {
        detector: Arc::new(Mutex::new(Detector::new())),
        thresholds,
        changes,
    };
    let mut exchanges = store.subscribe();
    let mut events = store.subscribe_conn_events();
    let h = handle.clone();
    // Weak: the task ends when the store's feeds close, that is when the store is dropped.
    let store = Arc::downgrade(store);
    let run = async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut ex_open, mut ev_open) = (true, true);
        while ex_open || ev_open {
            let t = (h.thresholds)();
            // Exchanges first: the source pushes a connection's exchanges before its close.
            let changes = tokio::select! {
                biased;
                r = exchanges.recv(), if ex_open => match r {
                    Ok(ex) => {
                        // Read before taking the lock; where a dissection is needed, the one
                        // the other views read too.
                        let read = FramesRead::of(&ex, || match store.upgrade() {
                            Some(s) => s.dissected(&ex),
                            None => Arc::new(ex.dissect_with(Limits::WITHOUT_RECORDS)),
                        });
                        h.lock().on_read(&ex, read, t)
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "stall detector fell behind on exchanges");
                        Vec::new()
                    }
                    Err(RecvError::Closed) => { ex_open = false; Vec::new() }
                },
                r = events.recv(), if ev_open => match r {
                    Ok(ev) => h.lock().on_conn_event(&ev, t),
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "stall detector fell behind on connection events");
                        Vec::new()
                    }
                    Err(RecvError::Closed) => { ev_open = false; Vec::new() }
                },
                _ = tick.tick() => h.lock().tick(now_micros(), t),
            };
            for c in changes {
                tracing::info!(conn = c.conn, from = %c.from, to = %c.to, evidence = %c.evidence.text, "client state");
                let _ = h.changes.send(c);
            }
        }
    };
    (handle, run)
}

#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
#[cfg(test)]
pub(crate) mod tests;
