//! The lint on exchanges: the frame findings of `chronik_protocol::lint` for both frames, the
//! pairing of a response with its request, and what only a connection's history shows (the
//! versions its broker advertised, an idempotent producer's sequence numbers). The history is
//! kept by a [`History`] inside the store, bounded, and fed every exchange as it is stored.

use std::collections::HashMap;

use chronik_protocol::batch::{self, BatchHeader, Entry};
use chronik_protocol::lint::{self, Code, Finding, Side};
use chronik_protocol::{api_key, dissect_request_with, dissect_response, Dissection, Limits};

use crate::{Exchange, Framing};

/// Connections whose advertised versions are remembered; past it the oldest are forgotten.
const MAX_CONNECTIONS: usize = 4096;
/// Producer partitions whose next sequence number is remembered; past it all are forgotten.
const MAX_SEQUENCES: usize = 65_536;

/// Every finding on an exchange: each frame's own, the response's correlation id, and what the
/// store's [`History`] found when the exchange was stored ([`Exchange::lint`]); in frame order,
/// request first.
pub fn findings(
    ex: &Exchange,
    req: Option<&Dissection>,
    resp: Option<&Dissection>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if ex.framing == Framing::Kafka {
        if let Some(d) = req {
            out.extend(lint::check_request(&ex.request, d));
        }
        if let (Some(d), Some(frame)) = (resp, ex.response.as_ref()) {
            let key = if ex.request_seen() || ex.api_key >= 0 {
                ex.api_key
            } else {
                -1
            };
            out.extend(lint::check_response(frame, d, key, ex.api_version));
            correlation(ex, frame, &mut out);
        }
    }
    out.extend(ex.lint.iter().cloned());
    out.sort_by_key(|f| (f.side == Side::Response, f.start, f.end));
    out
}

/// A response whose header carries another correlation id than its request's.
fn correlation(ex: &Exchange, frame: &[u8], out: &mut Vec<Finding>) {
    let Some(b) = frame.get(4..8) else { return };
    let got = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if ex.request_seen() && got != ex.correlation_id {
        out.push(Finding::new(
            Code::CorrelationMismatch,
            Side::Response,
            format!(
                "correlation id {got}, the request's is {}",
                ex.correlation_id
            ),
            4,
            8,
        ));
    }
}

/// What a connection's past shows: the APIs and versions its broker advertised, and the next
/// sequence number of every idempotent producer's partition.
#[derive(Debug, Default)]
pub struct History {
    /// Per connection: api key → (min, max) from its ApiVersions response, with the order
    /// connections were first seen (to forget the oldest).
    advertised: HashMap<u64, HashMap<i16, (i16, i16)>>,
    order: std::collections::VecDeque<u64>,
    /// (producer id, epoch, topic, partition) → the base sequence the next batch should have.
    sequences: HashMap<(i64, i16, String, i64), i32>,
}

impl History {
    /// The findings only the past shows for an exchange about to be stored; learns from it.
    pub fn check(&mut self, ex: &Exchange) -> Vec<Finding> {
        let mut out = Vec::new();
        if ex.framing != Framing::Kafka || !ex.request_seen() {
            return out;
        }
        if ex.api_key == api_key::API_VERSIONS {
            self.learn_versions(ex);
        } else if let Some(offered) = self.advertised.get(&ex.conn) {
            let api = chronik_protocol::registry::api_name(ex.api_key);
            let message = match offered.get(&ex.api_key) {
                None => Some(format!("{api} is not among the APIs the broker advertised")),
                Some((lo, hi)) if !(*lo..=*hi).contains(&ex.api_version) => Some(format!(
                    "{api} v{} is outside the v{lo}-v{hi} the broker advertised",
                    ex.api_version
                )),
                _ => None,
            };
            if let Some(m) = message {
                out.push(Finding::new(
                    Code::VersionNotAdvertised,
                    Side::Request,
                    m,
                    4,
                    8,
                ));
            }
        }
        if ex.api_key == api_key::PRODUCE {
            self.sequences_of(ex, &mut out);
        }
        out
    }

    /// Forgets a closed connection.
    pub fn closed(&mut self, conn: u64) {
        self.advertised.remove(&conn);
        self.order.retain(|c| *c != conn);
    }

    fn learn_versions(&mut self, ex: &Exchange) {
        let Some(frame) = ex.response.as_ref() else {
            return;
        };
        // An ApiVersions response is read as v0 when it carries an error (UNSUPPORTED_VERSION
        // is answered in v0); its array is the same either way for the fields read here.
        let d = dissect_response(frame, ex.api_key, ex.api_version);
        let mut offered = HashMap::new();
        d.root.walk(0, &mut |f, _| {
            if f.name() == "api_versions.response.api_keys" && !f.children.is_empty() {
                let get = |n: &str| {
                    f.children
                        .iter()
                        .find(|c| c.short_name() == n)
                        .and_then(|c| c.as_int())
                };
                if let (Some(k), Some(lo), Some(hi)) =
                    (get("api_key"), get("min_version"), get("max_version"))
                {
                    offered.insert(k as i16, (lo as i16, hi as i16));
                }
            }
        });
        if d.error.is_some() || offered.is_empty() {
            return;
        }
        if self.advertised.insert(ex.conn, offered).is_none() {
            self.order.push_back(ex.conn);
            while self.order.len() > MAX_CONNECTIONS {
                if let Some(old) = self.order.pop_front() {
                    self.advertised.remove(&old);
                }
            }
        }
    }

    /// Sequence numbers of the idempotent batches in a Produce request, against what the same
    /// producer sent the partition before.
    fn sequences_of(&mut self, ex: &Exchange, out: &mut Vec<Finding>) {
        let limits = Limits {
            records: false,
            ..Limits::default()
        };
        let d = dissect_request_with(&ex.request, limits);
        let mut batches: Vec<(String, i64, usize, BatchHeader)> = Vec::new();
        let mut topic = String::new();
        let mut partition = -1;
        d.root.walk(0, &mut |f, _| match f.name() {
            "produce.request.topic_data.name" => {
                if let chronik_protocol::Value::Str(s) = &f.value {
                    topic = s.clone();
                }
            }
            "produce.request.topic_data.partition_data.index" => {
                partition = f.as_int().unwrap_or(-1)
            }
            "record_set.undecoded" => {
                let (s, e) = (f.offset as usize, (f.offset + f.len) as usize);
                let set = &ex.request[s..e.min(ex.request.len())];
                for entry in batch::split(set) {
                    if let Entry::Batch { start, end } = entry {
                        if let Some(h) = BatchHeader::parse(&set[start..end]) {
                            batches.push((topic.clone(), partition, s + start, h));
                        }
                    }
                }
            }
            _ => {}
        });
        for (topic, partition, at, h) in batches {
            if h.producer_id < 0 || h.base_sequence < 0 || h.is_control() {
                continue;
            }
            let key = (h.producer_id, h.producer_epoch, topic, partition);
            let next = h.base_sequence.wrapping_add(h.records_count.max(0)) & i32::MAX;
            let place = format!("{}-{}", key.2, key.3);
            match self.sequences.get(&key).copied() {
                Some(expected) if h.base_sequence > expected => out.push(Finding::new(
                    Code::SequenceGap,
                    Side::Request,
                    format!(
                        "producer {} sends base_sequence {} to {place} where {expected} is next: {} skipped",
                        h.producer_id,
                        h.base_sequence,
                        h.base_sequence - expected
                    ),
                    at + 53,
                    at + 57,
                )),
                Some(expected) if h.base_sequence < expected => out.push(Finding::new(
                    Code::SequenceRepeat,
                    Side::Request,
                    format!(
                        "producer {} sends base_sequence {} to {place} again ({expected} is next): a resend",
                        h.producer_id, h.base_sequence
                    ),
                    at + 53,
                    at + 57,
                )),
                _ => {}
            }
            if self.sequences.len() >= MAX_SEQUENCES && !self.sequences.contains_key(&key) {
                self.sequences.clear();
            }
            let best = self.sequences.get(&key).map_or(next, |e| (*e).max(next));
            self.sequences.insert(key, best);
        }
    }
}
