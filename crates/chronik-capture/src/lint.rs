//! The lint on exchanges: the frame findings of `chronik_protocol::lint` for both frames, the
//! pairing of a response with its request, and what only a connection's history shows (the
//! versions its broker advertised, an idempotent producer's sequence numbers). The history is
//! kept by a [`History`] inside the store, bounded, and fed every exchange as it is stored;
//! `decode` keeps its own on its writing thread, fed in the capture's order with the [`Facts`]
//! its printing workers read.

use std::collections::HashMap;
use std::sync::OnceLock;

use chronik_protocol::batch::{self, BatchHeader, Entry};
use chronik_protocol::lint::{self, Code, Finding, Side};
use chronik_protocol::registry::FieldId;
use chronik_protocol::scan::{scan_request, uuid_text, Scalar};
use chronik_protocol::{api_key, dissect_response, fid, Dissection};

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
            out.extend(lint::check_request(ex.request(), d));
        }
        if let (Some(d), Some(frame)) = (resp, ex.response()) {
            let key = if ex.request_seen() || ex.api_key >= 0 {
                ex.api_key
            } else {
                -1
            };
            out.extend(lint::check_response(frame, d, key, ex.api_version));
            correlation(ex, frame, &mut out);
        }
    }
    out.extend(ex.lint().iter().cloned());
    out.sort_by_key(|f| (f.side == Side::Response, f.start, f.end));
    out
}

/// A response whose header carries another correlation id than its request's.
pub(crate) fn correlation(ex: &Exchange, frame: &[u8], out: &mut Vec<Finding>) {
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

/// A Produce request's topic as the frame names it: by name (v0–v12) or by id (v13+).
#[derive(Debug, Clone, Copy)]
enum TopicRef<'a> {
    Name(&'a [u8]),
    Id(&'a [u8; 16]),
}

/// An idempotent batch of a Produce request: its topic (the name, or the id's text), partition,
/// offset in the frame and header.
type IdempotentBatch = (String, i64, usize, BatchHeader);

/// What an exchange brings to a connection's [`History`], read from its frames alone: the
/// versions an ApiVersions response offers, and a Produce request's idempotent batches. It
/// needs no history, so it can be read anywhere, in any order ([`History::facts`]), and the
/// history applied to it in the exchanges' order ([`History::apply`]).
#[derive(Debug, Default)]
pub struct Facts {
    offered: Option<HashMap<i16, (i16, i16)>>,
    /// Each idempotent batch with its topic, partition and offset in the frame.
    batches: Vec<IdempotentBatch>,
}

impl Facts {
    /// Nothing that the history would learn or check beyond the request's version.
    pub fn is_empty(&self) -> bool {
        self.offered.is_none() && self.batches.is_empty()
    }
}

impl History {
    /// The findings only the past shows for an exchange about to be stored; learns from it.
    pub fn check(&mut self, ex: &Exchange) -> Vec<Finding> {
        self.apply(ex, History::facts(ex))
    }

    /// What `ex` brings to the history; nothing is allocated for an exchange that brings
    /// nothing (all but ApiVersions and idempotent Produce).
    pub fn facts(ex: &Exchange) -> Facts {
        let mut facts = Facts::default();
        if ex.framing != Framing::Kafka || !ex.request_seen() {
            return facts;
        }
        if ex.api_key == api_key::API_VERSIONS {
            facts.offered = offered(ex);
        } else if ex.api_key == api_key::PRODUCE {
            facts.batches = idempotent_batches(ex.request());
        }
        facts
    }

    /// [`History::check`] with the exchange's facts already read: the exchanges must come
    /// in the order they are stored.
    pub fn apply(&mut self, ex: &Exchange, facts: Facts) -> Vec<Finding> {
        let mut out = Vec::new();
        if ex.framing != Framing::Kafka || !ex.request_seen() {
            return out;
        }
        if ex.api_key == api_key::API_VERSIONS {
            if let Some(offered) = facts.offered {
                self.learn_versions(ex.conn, offered);
            }
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
            self.sequences_of(facts.batches, &mut out);
        }
        out
    }

    /// Forgets a closed connection.
    pub fn closed(&mut self, conn: u64) {
        self.advertised.remove(&conn);
        self.order.retain(|c| *c != conn);
    }

    fn learn_versions(&mut self, conn: u64, offered: HashMap<i16, (i16, i16)>) {
        if self.advertised.insert(conn, offered).is_none() {
            self.order.push_back(conn);
            while self.order.len() > MAX_CONNECTIONS {
                if let Some(old) = self.order.pop_front() {
                    self.advertised.remove(&old);
                }
            }
        }
    }

    /// Sequence numbers of a Produce request's idempotent batches, against what the same
    /// producer sent the partition before.
    fn sequences_of(&mut self, batches: Vec<IdempotentBatch>, out: &mut Vec<Finding>) {
        for (topic, partition, at, h) in batches {
            let key = (h.producer_id, h.producer_epoch, topic, partition);
            let next = h.base_sequence.wrapping_add(h.records_count.max(0)) & i32::MAX;
            let (topic, partition) = (&key.2, key.3);
            match self.sequences.get(&key).copied() {
                Some(expected) if h.base_sequence > expected => out.push(Finding::new(
                    Code::SequenceGap,
                    Side::Request,
                    format!(
                        "producer {} sends base_sequence {} to {topic}-{partition} where {expected} is next: {} skipped",
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
                        "producer {} sends base_sequence {} to {topic}-{partition} again ({expected} is next): a resend",
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

/// The versions an ApiVersions response offers, by API key; `None` when it does not read or
/// offers none.
fn offered(ex: &Exchange) -> Option<HashMap<i16, (i16, i16)>> {
    let frame = ex.response()?;
    // The dissector reads the answer to a version beyond the schema's as v0, as Kafka
    // writes it (UNSUPPORTED_VERSION); its array has the fields read here in every version.
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
    (d.error.is_none() && !offered.is_empty()).then_some(offered)
}

/// The idempotent batches of a Produce request `frame`, each with its topic (the name, or the
/// id's text), partition and offset in the frame, found by a walk of the request (no tree:
/// this runs on every Produce of a stream, before any view dissects it).
fn idempotent_batches(frame: &[u8]) -> Vec<IdempotentBatch> {
    let mut batches = IdempotentBatches::new(frame);
    // A frame that stops reading keeps the batches before the stop, as a dissection would.
    let _ = scan_request(frame, &mut |id, v| batches.visit(id, v));
    batches.found
}

/// The idempotent batches of a Produce request, read from the values of a walk of it
/// ([`IdempotentBatches::visit`]); batches without a producer id (most) are passed over
/// without a copy of anything.
pub struct IdempotentBatches<'a> {
    frame: &'a [u8],
    /// The ids of the fields read: topic name, topic id, partition index, record set.
    ids: [FieldId; 4],
    topic: TopicRef<'a>,
    partition: i64,
    found: Vec<IdempotentBatch>,
}

impl<'a> IdempotentBatches<'a> {
    /// For a walk of the request `frame`.
    pub fn new(frame: &'a [u8]) -> Self {
        // Looked up once: a walk is made for every Produce request.
        static IDS: OnceLock<[FieldId; 4]> = OnceLock::new();
        IdempotentBatches {
            frame,
            ids: *IDS.get_or_init(|| {
                [
                    fid!("produce.request.topic_data.name"),
                    fid!("produce.request.topic_data.topic_id"),
                    fid!("produce.request.topic_data.partition_data.index"),
                    fid!("produce.request.topic_data.partition_data.records"),
                ]
            }),
            topic: TopicRef::Name(b""),
            partition: -1,
            found: Vec::new(),
        }
    }

    /// A value of the walk, in wire order.
    pub fn visit(&mut self, id: FieldId, v: Scalar<'a>) {
        let [name, topic_id, index, records] = self.ids;
        match v {
            Scalar::Str(s) if id == name => self.topic = TopicRef::Name(s),
            Scalar::Uuid(u) if id == topic_id => self.topic = TopicRef::Id(u),
            Scalar::Int(i) if id == index => self.partition = i,
            Scalar::Data { start, len } if id == records => {
                let set = &self.frame[start..start + len];
                if one_batch_without_producer(set) {
                    return; // most producers: nothing to find, and no split
                }
                for entry in batch::split(set) {
                    let Entry::Batch { start: b, end } = entry else {
                        continue;
                    };
                    if without_producer(&set[b..end]) {
                        continue;
                    }
                    let Some(h) = BatchHeader::parse(&set[b..end]) else {
                        continue;
                    };
                    if h.producer_id >= 0 && h.base_sequence >= 0 && !h.is_control() {
                        let topic = match self.topic {
                            TopicRef::Name(name) => String::from_utf8_lossy(name).into_owned(),
                            TopicRef::Id(id) => uuid_text(id),
                        };
                        self.found.push((topic, self.partition, start + b, h));
                    }
                }
            }
            _ => {}
        }
    }

    /// What the walk brings to the history of the Produce exchange `ex` (whose request the
    /// walk read whole).
    pub fn facts(self, ex: &Exchange) -> Facts {
        if ex.framing != Framing::Kafka || !ex.request_seen() || ex.api_key != api_key::PRODUCE {
            return History::facts(ex);
        }
        Facts {
            offered: None,
            batches: self.found,
        }
    }
}

/// Whether the record set `set` is one magic-2 batch (its length prefix ends it) without a
/// producer id: what most producers send, and a set in which there is no idempotent batch to
/// find.
fn one_batch_without_producer(set: &[u8]) -> bool {
    let (Some(len), Some(&magic)) = (set.get(8..12), set.get(batch::MAGIC_OFFSET)) else {
        return false;
    };
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    let whole = usize::try_from(len).is_ok_and(|len| len + 12 == set.len());
    whole && magic == 2 && without_producer(set)
}

/// Whether the magic-2 batch `b` has no producer id (negative, as most producers, which are
/// not idempotent, send -1), or is too short to hold one.
fn without_producer(b: &[u8]) -> bool {
    b.get(batch::PRODUCER_ID_OFFSET)
        .is_none_or(|high| high & 0x80 != 0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chronik_protocol::batch;
    use chronik_protocol::encode::{self, Input};

    use super::*;
    use crate::Status;

    fn map(fields: &[(&str, Input)]) -> Input {
        Input::Map(
            (fields.iter())
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    fn exchange(
        conn: u64,
        key: i16,
        version: i16,
        request: Vec<u8>,
        response: Vec<u8>,
    ) -> Exchange {
        let peer = "127.0.0.1:1".parse().unwrap();
        let mut ex = Exchange::new(conn, crate::Endpoints::of(peer), 0, Status::Answered)
            .with_frames(request, Some(response));
        ex.api_key = key;
        ex.api_version = version;
        ex.correlation_id = 1;
        ex
    }

    /// ApiVersions v0 on `conn`, the broker offering Metadata v0-v4 only.
    fn offered(conn: u64) -> Exchange {
        let req = encode::request(18, 0, 1, Some("t"), &map(&[])).unwrap();
        let keys = map(&[
            ("api_key", Input::Int(3)),
            ("min_version", Input::Int(0)),
            ("max_version", Input::Int(4)),
        ]);
        let resp =
            encode::response(18, 0, 1, &map(&[("api_keys", Input::List(vec![keys]))])).unwrap();
        exchange(conn, 18, 0, req, resp)
    }

    fn metadata(conn: u64, version: i16) -> Exchange {
        let req = encode::request(3, version, 2, Some("t"), &map(&[])).unwrap();
        let resp = encode::response(3, version, 2, &map(&[])).unwrap();
        exchange(conn, 3, version, req, resp)
    }

    fn codes(found: &[Finding]) -> Vec<Code> {
        found.iter().map(|f| f.code).collect()
    }

    #[test]
    fn a_request_beyond_what_the_connection_was_offered_is_named() {
        let mut h = History::default();
        assert_eq!(
            h.check(&metadata(1, 9)),
            vec![],
            "nothing offered yet: nothing to judge"
        );
        assert_eq!(h.check(&offered(1)), vec![]);
        assert_eq!(h.check(&metadata(1, 4)), vec![]);
        let found = h.check(&metadata(1, 9));
        assert_eq!(codes(&found), vec![Code::VersionNotAdvertised]);
        assert_eq!(
            found[0].message,
            "Metadata v9 is outside the v0-v4 the broker advertised"
        );
        let produce = encode::request(0, 3, 3, Some("t"), &map(&[])).unwrap();
        let found = h.check(&exchange(1, 0, 3, produce, Vec::new()));
        assert_eq!(
            found[0].message,
            "Produce is not among the APIs the broker advertised"
        );
        // Another connection, and this one once closed, were offered nothing.
        assert_eq!(h.check(&metadata(2, 9)), vec![]);
        h.closed(1);
        assert_eq!(h.check(&metadata(1, 9)), vec![]);
    }

    /// A batch of `count` records from producer 7, epoch 0, starting at `sequence`.
    fn idempotent_batch(sequence: i32, count: i32) -> Vec<u8> {
        let mut b = chronik_protocol::test_frames::record_batch(&[b"x"]).to_vec();
        b[43..51].copy_from_slice(&7i64.to_be_bytes());
        b[51..53].copy_from_slice(&0i16.to_be_bytes());
        b[53..57].copy_from_slice(&sequence.to_be_bytes());
        b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = batch::batch_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// A Produce v3 request with one batch of `count` records from producer 7, epoch 0,
    /// starting at `sequence`.
    fn idempotent(sequence: i32, count: i32) -> Exchange {
        produce_set(idempotent_batch(sequence, count))
    }

    /// A Produce v3 request (to orders-0) whose record set is `b`.
    fn produce_set(b: Vec<u8>) -> Exchange {
        let partition = map(&[("index", Input::Int(0)), ("records", Input::Bytes(b))]);
        let topic = map(&[
            ("name", Input::Str("orders".into())),
            ("partition_data", Input::List(vec![partition])),
        ]);
        let req = encode::request(
            0,
            3,
            1,
            Some("t"),
            &map(&[("topic_data", Input::List(vec![topic]))]),
        )
        .unwrap();
        exchange(1, 0, 3, req, Vec::new())
    }

    /// A set of one batch without a producer id is passed over without a split; one batch
    /// with a producer id, or a batch after one without, is found.
    #[test]
    fn idempotent_batches_are_found_in_sets_of_one_batch_or_more() {
        let plain = chronik_protocol::test_frames::record_batch(&[b"x"]).to_vec();
        let idem = idempotent_batch(4, 2);
        assert!(one_batch_without_producer(&plain));
        assert!(!one_batch_without_producer(&idem));
        let two = [plain.clone(), plain.clone()].concat();
        assert!(!one_batch_without_producer(&two));
        assert!(!one_batch_without_producer(&plain[..60]));
        let found = |set: Vec<u8>| -> Vec<(i64, i32)> {
            (idempotent_batches(produce_set(set).request()).iter())
                .map(|(_, _, _, h)| (h.producer_id, h.base_sequence))
                .collect()
        };
        assert_eq!(found(plain.clone()), vec![]);
        assert_eq!(found(two), vec![]);
        assert_eq!(found(idem.clone()), vec![(7, 4)]);
        assert_eq!(found([plain, idem].concat()), vec![(7, 4)]);
    }

    #[test]
    fn an_idempotent_producer_skipping_or_repeating_sequence_numbers_is_named() {
        let mut h = History::default();
        assert_eq!(h.check(&idempotent(0, 1)), vec![]);
        assert_eq!(h.check(&idempotent(1, 1)), vec![]);
        let gap = h.check(&idempotent(5, 1));
        assert_eq!(codes(&gap), vec![Code::SequenceGap]);
        assert_eq!(
            gap[0].message,
            "producer 7 sends base_sequence 5 to orders-0 where 2 is next: 3 skipped"
        );
        let ex = idempotent(5, 1);
        let frame = ex.request();
        let at = (gap[0].start as usize, gap[0].end as usize);
        assert_eq!(
            &frame[at.0..at.1],
            &5i32.to_be_bytes(),
            "the base_sequence bytes"
        );
        let again = h.check(&idempotent(5, 1));
        assert_eq!(codes(&again), vec![Code::SequenceRepeat]);
        assert_eq!(again[0].level, chronik_protocol::lint::Level::Info);
        assert_eq!(h.check(&idempotent(6, 1)), vec![]);
    }

    #[test]
    fn a_response_with_another_correlation_id_is_named() {
        let mut ex = metadata(1, 4);
        ex.correlation_id = 9;
        let found = findings(
            &ex,
            ex.dissect_request().as_ref(),
            ex.dissect_response().as_ref(),
        );
        assert_eq!(codes(&found), vec![Code::CorrelationMismatch]);
        assert_eq!(found[0].message, "correlation id 2, the request's is 9");
    }
}
