//! One request and its response (if any), as raw frames plus what is known about them.

use std::net::SocketAddr;
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
    Malformed { error: DecodeError },
    /// A well-formed request the broker refused to serve, closing the connection without an
    /// answer (one sent before SASL authentication, say).
    Refused { reason: String },
}

impl Status {
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
            Status::Refused { reason } => Some(reason.clone()),
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

/// A request frame and its response frame, with where and when they were seen.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// Sequence number in the store, from 1.
    pub id: u64,
    /// Connection id (per source).
    pub conn: u64,
    /// Address of the client (`ip:port` in JSON).
    pub peer: SocketAddr,
    /// Address of the broker side, when the source knows it (the embedded broker's local
    /// address, the server end of a captured connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<SocketAddr>,
    pub client_id: Option<String>,
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    /// Request frame, size prefix included (empty when the request was not seen).
    #[serde(skip)]
    pub request: Vec<u8>,
    /// Response frame, size prefix included.
    #[serde(skip)]
    pub response: Option<Vec<u8>>,
    /// When the request's last byte arrived, µs since the epoch.
    pub request_at: i64,
    /// When the response's last byte was written, µs since the epoch.
    pub response_at: Option<i64>,
    pub status: Status,
    /// Free-form notes from the source (placement used, connection closed, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The `throttle_time_ms` placement a ProduceResponse from the embedded broker was encoded
    /// with, and the rule that chose it (None for other APIs and other sources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementUsed>,
    /// How the frames are laid out (almost always Kafka's own framing).
    #[serde(skip_serializing_if = "Framing::is_kafka")]
    pub framing: Framing,
    /// What the lint found that only the connection's past shows (a version the broker did not
    /// advertise, a skipped sequence number), set by the store; the frames' own findings are
    /// the [`Verdict`]'s, which includes these.
    #[serde(skip)]
    pub lint: Vec<chronik_protocol::lint::Finding>,
}

impl Exchange {
    /// An exchange on connection `conn` with `peer` whose request arrived at `request_at`: no
    /// id yet (the store assigns it), no frames, header fields unknown (-1), Kafka framing.
    pub fn new(conn: u64, peer: SocketAddr, request_at: i64, status: Status) -> Exchange {
        Exchange {
            id: 0,
            conn,
            peer,
            server: None,
            client_id: None,
            api_key: -1,
            api_version: -1,
            correlation_id: -1,
            request: Vec::new(),
            response: None,
            request_at,
            response_at: None,
            status,
            notes: Vec::new(),
            placement: None,
            framing: Framing::Kafka,
            lint: Vec::new(),
        }
    }

    /// Latency from request to response, in µs (none without a response, or when the request
    /// was not seen).
    pub fn latency_micros(&self) -> Option<i64> {
        self.request_seen()
            .then_some(self.response_at)
            .flatten()
            .map(|r| r - self.request_at)
    }

    /// Whether the request frame was seen. A capture that started after a request, or lost
    /// it, holds only the response: an exchange with no request frame.
    pub fn request_seen(&self) -> bool {
        !self.request.is_empty()
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
        let _ = write!(out, " v{}", self.api_version);
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
        self.request.len() + self.response.as_ref().map_or(0, Vec::len)
    }

    /// The request's dissection (none when the request was not seen).
    pub fn dissect_request(&self) -> Option<Dissection> {
        self.dissect_request_with(Limits::FULL)
    }

    /// The request's dissection within `limits` (none when the request was not seen; a bare
    /// SASL token is always dissected whole).
    pub fn dissect_request_with(&self, limits: Limits) -> Option<Dissection> {
        self.request_seen().then(|| match self.framing {
            Framing::Kafka => protocol::dissect_request_with(&self.request, limits),
            Framing::SaslToken => protocol::dissect_sasl_token(&self.request, true),
        })
    }

    /// The response's dissection (none without a response). Its API and version are the
    /// request's, as the response does not say them.
    pub fn dissect_response(&self) -> Option<Dissection> {
        self.dissect_response_with(Limits::FULL)
    }

    /// The response's dissection within `limits` (none without a response).
    pub fn dissect_response_with(&self, limits: Limits) -> Option<Dissection> {
        self.response.as_ref().map(|r| match self.framing {
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
