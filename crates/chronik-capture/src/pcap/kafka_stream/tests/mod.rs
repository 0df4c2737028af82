//! Tests of the Kafka stream decoder, fed with the segments of TCP connections built here (see
//! [`Tcp`]) carrying frames encoded by kafka-protocol. Each file tests what the file of the
//! same name does; the helpers they share are below.

mod connection;
mod framer;
mod peek;
mod probe;
mod session;

use std::ops::Range;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};

use super::peek::{
    client_id, handshake_mechanism, produce_acks, request_header_version, request_verdict, Verdict,
};
use super::session::MALFORMED_KEEP;
use super::*;
use crate::pcap::TcpFlags;
use crate::{Framing, Status};
use chronik_protocol::api_key;
use chronik_protocol::frame::with_size_prefix;
use chronik_protocol::test_frames;

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
    let keys = [
        (api_key::PRODUCE, 3, 9),
        (api_key::METADATA, 0, 12),
        (api_key::API_VERSIONS, 0, 3),
    ]
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
    let value = vec![b'v'; value_len];
    test_frames::record_batch(&vec![&value[..]; n])
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
                produce_response::PartitionProduceResponse::default().with_index(0)
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

    /// A segment whose sequence number is `delta` bytes past the sender's current one.
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
fn clean_session(tcp: &mut Tcp, pairs: &[Pair], mss: usize) -> Vec<(Range<usize>, Range<usize>)> {
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
    assert_eq!(ex.request(), pair.0, "request {corr} bytes");
    assert_eq!(ex.response(), Some(&pair.1[..]), "response {corr} bytes");
    assert_dissects(ex);
}
