//! Where the fuzzer starts: real frames and valid inputs of every kind.
//!
//! - the Kafka frames of the repository's captures (`captures/*.pcap*`), read with the
//!   capture crate's own reader and streams;
//! - frames encoded by the `kafka-protocol` crate (0.15.1): every API and version both it and
//!   our schema table know, request and response, plus Produce requests and Fetch responses
//!   carrying record batches in each compression;
//! - frames generated from our schema table with random values: every API and version,
//!   arrays with elements, tagged fields known and unknown, record sets in the records fields;
//! - record sets: magic 2 batches and legacy magic 0/1 message sets in every compression
//!   (written by `kafka-protocol`), and decompression bombs;
//! - pcap files that carry those frames over TCP.
//!
//! Only valid bytes are ever handed to `kafka-protocol` (it decodes nothing here): its decoders
//! allocate from the counts they read and abort the process on hostile ones.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, HeaderVersion, Message, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use chronik_tui::capture::pcap::kafka_stream::{KafkaStreams, Output, StreamOptions};
use chronik_tui::capture::pcap::{packet, reader::CaptureReader};
use chronik_tui::protocol::records::MAX_DECOMPRESSED_BYTES;
use chronik_tui::protocol::registry::catalog;
use chronik_tui::protocol::schema::{ApiSchema, FieldDef, FieldType};

use crate::engine::Rng;

/// One frame, size prefix included, with the API key and version it is read as.
#[derive(Debug, Clone)]
pub struct Frame {
    pub key: i16,
    pub version: i16,
    pub response: bool,
    pub bytes: Vec<u8>,
}

/// A request and its response as a capture held them.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub request: Vec<u8>,
    pub response: Option<Vec<u8>>,
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The repository's capture files, as bytes.
pub fn capture_files() -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(repo("captures"))
        .expect("captures/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".pcap") || name.ends_with(".pcapng")
        })
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no captures in captures/");
    paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

/// The exchanges of the repository's captures, read the way `decode` reads them.
pub fn capture_conversations() -> &'static [(i16, i16, Conversation)] {
    static ONCE: OnceLock<Vec<(i16, i16, Conversation)>> = OnceLock::new();
    ONCE.get_or_init(|| {
        let mut out = Vec::new();
        for file in capture_files() {
            let mut reader = CaptureReader::new(std::io::Cursor::new(file)).expect("a capture");
            let mut streams = KafkaStreams::new(StreamOptions::default());
            let mut outputs = Vec::new();
            while let Some(p) = reader.next_packet() {
                if let Ok(Some(seg)) = packet::parse(&p.expect("a packet")) {
                    streams.on_segment(&seg, &mut outputs);
                }
            }
            streams.finish(&mut outputs);
            for o in outputs {
                if let Output::Exchange(ex) = o {
                    let c = Conversation {
                        request: ex.request().to_vec(),
                        response: ex.response().map(<[u8]>::to_vec),
                    };
                    out.push((ex.api_key, ex.api_version, c));
                }
            }
        }
        assert!(
            out.len() >= 10,
            "the captures hold only {} exchanges",
            out.len()
        );
        out
    })
}

/// Frames of the captures.
pub fn capture_frames() -> Vec<Frame> {
    let mut out = Vec::new();
    for (key, version, c) in capture_conversations() {
        let frame = |bytes: &Vec<u8>, response| Frame {
            key: *key,
            version: *version,
            response,
            bytes: bytes.clone(),
        };
        out.push(frame(&c.request, false));
        if let Some(r) = &c.response {
            out.push(frame(r, true));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// kafka-protocol's frames

fn size_prefixed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A request frame as kafka-protocol writes it; `None` where it refuses the message at that
/// version.
fn kp_request<R: Encodable + HeaderVersion>(key: i16, version: i16, req: &R) -> Option<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(key)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    let mut b = BytesMut::new();
    header.encode(&mut b, R::header_version(version)).ok()?;
    req.encode(&mut b, version).ok()?;
    Some(size_prefixed(&b))
}

fn kp_response<R: Encodable + HeaderVersion>(version: i16, resp: &R) -> Option<Vec<u8>> {
    let mut b = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(7)
        .encode(&mut b, R::header_version(version))
        .ok()?;
    resp.encode(&mut b, version).ok()?;
    Some(size_prefixed(&b))
}

/// Default request and response of one API at every version both kafka-protocol and the
/// schema table know.
fn kp_defaults<Q, S>(key: i16, out: &mut Vec<Frame>)
where
    Q: Encodable + HeaderVersion + Message + Default,
    S: Encodable + HeaderVersion + Message + Default,
{
    let ours = catalog()
        .apis
        .get(&key)
        .expect("an API of the schema")
        .versions;
    for version in ours.min.max(Q::VERSIONS.min)..=ours.max.min(Q::VERSIONS.max) {
        if let Some(bytes) = kp_request(key, version, &Q::default()) {
            out.push(Frame {
                key,
                version,
                response: false,
                bytes,
            });
        }
        if (S::VERSIONS.min..=S::VERSIONS.max).contains(&version) {
            if let Some(bytes) = kp_response(version, &S::default()) {
                out.push(Frame {
                    key,
                    version,
                    response: true,
                    bytes,
                });
            }
        }
    }
}

/// kafka-protocol's frames: every API's defaults, then Produce and Fetch with records.
pub fn kafka_protocol_frames() -> Vec<Frame> {
    let mut out = Vec::new();
    let o = &mut out;
    kp_defaults::<ProduceRequest, ProduceResponse>(0, o);
    kp_defaults::<FetchRequest, FetchResponse>(1, o);
    kp_defaults::<ListOffsetsRequest, ListOffsetsResponse>(2, o);
    kp_defaults::<MetadataRequest, MetadataResponse>(3, o);
    kp_defaults::<OffsetCommitRequest, OffsetCommitResponse>(8, o);
    kp_defaults::<OffsetFetchRequest, OffsetFetchResponse>(9, o);
    kp_defaults::<FindCoordinatorRequest, FindCoordinatorResponse>(10, o);
    kp_defaults::<JoinGroupRequest, JoinGroupResponse>(11, o);
    kp_defaults::<HeartbeatRequest, HeartbeatResponse>(12, o);
    kp_defaults::<LeaveGroupRequest, LeaveGroupResponse>(13, o);
    kp_defaults::<SyncGroupRequest, SyncGroupResponse>(14, o);
    kp_defaults::<DescribeGroupsRequest, DescribeGroupsResponse>(15, o);
    kp_defaults::<ListGroupsRequest, ListGroupsResponse>(16, o);
    kp_defaults::<SaslHandshakeRequest, SaslHandshakeResponse>(17, o);
    kp_defaults::<ApiVersionsRequest, ApiVersionsResponse>(18, o);
    kp_defaults::<CreateTopicsRequest, CreateTopicsResponse>(19, o);
    kp_defaults::<DeleteTopicsRequest, DeleteTopicsResponse>(20, o);
    kp_defaults::<DeleteRecordsRequest, DeleteRecordsResponse>(21, o);
    kp_defaults::<InitProducerIdRequest, InitProducerIdResponse>(22, o);
    kp_defaults::<OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse>(23, o);
    kp_defaults::<AddPartitionsToTxnRequest, AddPartitionsToTxnResponse>(24, o);
    kp_defaults::<AddOffsetsToTxnRequest, AddOffsetsToTxnResponse>(25, o);
    kp_defaults::<EndTxnRequest, EndTxnResponse>(26, o);
    kp_defaults::<TxnOffsetCommitRequest, TxnOffsetCommitResponse>(28, o);
    kp_defaults::<DescribeConfigsRequest, DescribeConfigsResponse>(32, o);
    kp_defaults::<AlterConfigsRequest, AlterConfigsResponse>(33, o);
    kp_defaults::<SaslAuthenticateRequest, SaslAuthenticateResponse>(36, o);
    kp_defaults::<CreatePartitionsRequest, CreatePartitionsResponse>(37, o);
    kp_defaults::<DeleteGroupsRequest, DeleteGroupsResponse>(42, o);
    kp_defaults::<IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse>(44, o);
    kp_defaults::<OffsetDeleteRequest, OffsetDeleteResponse>(47, o);
    kp_defaults::<DescribeClusterRequest, DescribeClusterResponse>(60, o);
    kp_defaults::<GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse>(71, o);
    kp_defaults::<PushTelemetryRequest, PushTelemetryResponse>(72, o);
    for (version, set) in kp_record_sets() {
        // Produce v0-1 carry magic 0, v2 magic 1, v3 and later magic 2.
        let produce_versions = match version {
            0 => 0..=1,
            1 => 2..=2,
            _ => 3..=11,
        };
        for v in produce_versions.clone().step_by(4) {
            let partition = produce_request::PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(set.clone()));
            let topic = produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("orders")))
                .with_partition_data(vec![partition]);
            let req = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(1000)
                .with_topic_data(vec![topic]);
            if let Some(bytes) = kp_request(0, v, &req) {
                out.push(Frame {
                    key: 0,
                    version: v,
                    response: false,
                    bytes,
                });
            }
            let partition = fetch_response::PartitionData::default()
                .with_partition_index(0)
                .with_records(Some(set.clone()));
            let topic = fetch_response::FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
                .with_partitions(vec![partition]);
            let resp = FetchResponse::default().with_responses(vec![topic]);
            if let Some(bytes) = kp_response(v, &resp) {
                out.push(Frame {
                    key: 1,
                    version: v,
                    response: true,
                    bytes,
                });
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Record sets

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn records(n: usize, with_keys: bool) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: if with_keys { 42 } else { -1 },
            producer_epoch: if with_keys { 1 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if with_keys { i as i32 } else { -1 },
            timestamp: 1_700_000_000_000 + i as i64,
            key: with_keys.then(|| Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value {i} {}", "x".repeat(i * 7)))),
            headers: if with_keys {
                [(
                    StrBytes::from_static_str("h"),
                    Some(Bytes::from_static(b"v")),
                )]
                .into_iter()
                .collect()
            } else {
                Default::default()
            },
        })
        .collect()
}

/// Record sets written by kafka-protocol: (magic, bytes), every magic with every codec.
pub fn kp_record_sets() -> Vec<(i8, Bytes)> {
    let mut out = Vec::new();
    for magic in [0i8, 1, 2] {
        for compression in CODECS {
            // kafka-protocol writes no LZ4 in magic 0 (Kafka's framing bug there).
            if magic == 0 && compression == Compression::Lz4 {
                continue;
            }
            for (n, keys) in [(1, false), (3, true)] {
                let mut b = BytesMut::new();
                let options = RecordEncodeOptions {
                    version: magic,
                    compression,
                };
                if RecordBatchEncoder::encode(&mut b, &records(n, keys), &options).is_ok() {
                    out.push((magic, b.freeze()));
                }
            }
        }
    }
    out
}

/// A magic-2 batch around `payload` (already compressed with `codec`), with a right CRC.
fn batch_around(codec: i16, records_count: i32, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((49 + payload.len()) as i32).to_be_bytes()); // batch length
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc, below
    b.extend_from_slice(&codec.to_be_bytes()); // attributes
    b.extend_from_slice(&(records_count - 1).to_be_bytes()); // last offset delta
    b.extend_from_slice(&0i64.to_be_bytes()); // base timestamp
    b.extend_from_slice(&0i64.to_be_bytes()); // max timestamp
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&records_count.to_be_bytes());
    b.extend_from_slice(payload);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Decompression bombs: tiny batches that inflate past the dissector's cap, one per codec
/// that can (gzip, lz4, zstd), and a snappy block that declares more than it could hold.
pub fn bombs() -> &'static [Vec<u8>] {
    static ONCE: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ONCE.get_or_init(|| {
        let size = MAX_DECOMPRESSED_BYTES + (1 << 20);
        let zeros = vec![0u8; size];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&zeros).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let zst = zstd::bulk::compress(&zeros, 3).expect("zstd");
        let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz.write_all(&zeros).expect("lz4");
        let lz = lz.finish().expect("lz4");
        // A raw snappy block whose preamble declares 4 GiB, then a few literal bytes.
        let snappy = vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x08, 1, 2, 3];
        drop(zeros);
        vec![
            batch_around(1, 1, &gz),
            batch_around(2, 1, &snappy),
            batch_around(3, 1, &lz),
            batch_around(4, 1, &zst),
        ]
    })
}

/// Every record set seed: kafka-protocol's, several batches in one set, a set cut short,
/// and the bombs.
pub fn record_sets() -> Vec<Vec<u8>> {
    let kp: Vec<Vec<u8>> = kp_record_sets()
        .into_iter()
        .map(|(_, b)| b.to_vec())
        .collect();
    let mut out = kp.clone();
    // Two batches of different codecs back to back, and a set cut inside its second batch
    // (as a fetch response may end).
    let v2: Vec<&Vec<u8>> = kp.iter().filter(|b| b.get(16) == Some(&2)).collect();
    for pair in v2.windows(2) {
        let mut set = pair[0].clone();
        set.extend_from_slice(pair[1]);
        out.push(set.clone());
        set.truncate(pair[0].len() + pair[1].len() / 2);
        out.push(set);
    }
    out.extend(bombs().iter().cloned());
    out
}

// ---------------------------------------------------------------------------------------------
// Frames from the schema table

/// Writes random but valid bodies by walking the schema table.
struct Gen<'r> {
    rng: &'r mut Rng,
    version: i16,
    flexible: bool,
    record_sets: &'r [Vec<u8>],
}

fn uvarint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Gen<'_> {
    /// A length (or count) as the version writes it; `None` for null.
    fn length(&mut self, n: Option<usize>, short: bool, out: &mut Vec<u8>) {
        match (self.flexible, n) {
            (true, n) => uvarint(n.map_or(0, |n| n as u64 + 1), out),
            (false, n) if short => out.extend_from_slice(&n.map_or(-1, |n| n as i16).to_be_bytes()),
            (false, n) => out.extend_from_slice(&n.map_or(-1, |n| n as i32).to_be_bytes()),
        }
    }

    fn null(&mut self, f: &FieldDef) -> bool {
        f.nullable.contains(self.version) && self.rng.one_in(5)
    }

    fn random(&mut self, n: usize, out: &mut Vec<u8>) {
        for _ in 0..n {
            out.push(self.rng.byte());
        }
    }

    fn fields(&mut self, fields: &[FieldDef], out: &mut Vec<u8>) {
        let mut tagged = Vec::new();
        let version = self.version;
        for f in fields.iter().filter(|f| f.versions.contains(version)) {
            match f.tag {
                Some(tag) if self.flexible && self.rng.one_in(2) => {
                    let mut data = Vec::new();
                    self.field(f, &mut data);
                    tagged.push((tag, data));
                }
                Some(_) => {}
                None => self.field(f, out),
            }
        }
        if self.flexible {
            if self.rng.one_in(4) {
                let mut data = Vec::new();
                let n = self.rng.below(6);
                self.random(n, &mut data);
                tagged.push((10_000 + self.rng.below(100) as u32, data));
            }
            tagged.sort_by_key(|(tag, _)| *tag);
            uvarint(tagged.len() as u64, out);
            for (tag, data) in tagged {
                uvarint(tag.into(), out);
                uvarint(data.len() as u64, out);
                out.extend_from_slice(&data);
            }
        }
    }

    fn field(&mut self, f: &FieldDef, out: &mut Vec<u8>) {
        match &f.ty {
            FieldType::Struct => self.fields(&f.children, out),
            FieldType::Array(inner) => {
                if self.null(f) {
                    self.length(None, false, out);
                    return;
                }
                let n = self.rng.below(4);
                self.length(Some(n), false, out);
                for _ in 0..n {
                    if **inner == FieldType::Struct {
                        self.fields(&f.children, out);
                    } else {
                        self.primitive(f, inner, out);
                    }
                }
            }
            ty => self.primitive(f, ty, out),
        }
    }

    fn primitive(&mut self, f: &FieldDef, ty: &FieldType, out: &mut Vec<u8>) {
        match ty {
            FieldType::Bool => out.push(self.rng.below(2) as u8),
            FieldType::Int8 => self.random(1, out),
            FieldType::Int16 | FieldType::Uint16 => self.random(2, out),
            FieldType::Int32 => self.random(4, out),
            FieldType::Int64 | FieldType::Float64 => self.random(8, out),
            FieldType::Uuid => self.random(16, out),
            FieldType::String if self.null(f) => self.length(None, true, out),
            FieldType::String => {
                let n = self.rng.below(10);
                self.length(Some(n), true, out);
                for _ in 0..n {
                    out.push(b'a' + self.rng.below(26) as u8);
                }
            }
            FieldType::Bytes if self.null(f) => self.length(None, false, out),
            FieldType::Bytes => {
                let n = self.rng.below(12);
                self.length(Some(n), false, out);
                self.random(n, out);
            }
            FieldType::Records if self.null(f) => self.length(None, false, out),
            FieldType::Records => {
                let set = if self.rng.one_in(4) {
                    Vec::new()
                } else {
                    self.rng.pick(self.record_sets).clone()
                };
                self.length(Some(set.len()), false, out);
                out.extend_from_slice(&set);
            }
            other => unreachable!("{} in an API schema", other.label()),
        }
    }
}

/// A random valid frame of `api` at `version`.
pub fn schema_frame(
    rng: &mut Rng,
    api: &ApiSchema,
    version: i16,
    response: bool,
    record_sets: &[Vec<u8>],
) -> Frame {
    let mut body = Vec::new();
    let corr = rng.next_u64() as i32;
    if response {
        body.extend_from_slice(&corr.to_be_bytes());
        if api.response_header_version(version) >= 1 {
            body.push(0);
        }
    } else {
        body.extend_from_slice(&api.key.to_be_bytes());
        body.extend_from_slice(&version.to_be_bytes());
        body.extend_from_slice(&corr.to_be_bytes());
        body.extend_from_slice(&4i16.to_be_bytes());
        body.extend_from_slice(b"fuzz");
        if api.request_header_version(version) >= 2 {
            body.push(0);
        }
    }
    let mut g = Gen {
        rng,
        version,
        flexible: api.is_flexible(version),
        record_sets,
    };
    g.fields(
        if response {
            &api.response
        } else {
            &api.request
        },
        &mut body,
    );
    Frame {
        key: api.key,
        version,
        response,
        bytes: size_prefixed(&body),
    }
}

/// Schema-generated frames: for every API, version and direction, `per_version` of them.
pub fn schema_frames(seed: u64, per_version: usize) -> Vec<Frame> {
    let mut rng = Rng::new(seed);
    // Small record sets only: the bombs are seeds of their own.
    let sets: Vec<Vec<u8>> = kp_record_sets()
        .into_iter()
        .map(|(_, b)| b.to_vec())
        .collect();
    let mut out = Vec::new();
    for api in catalog().apis.values() {
        for version in api.versions.min..=api.versions.max {
            for response in [false, true] {
                for _ in 0..per_version {
                    out.push(schema_frame(&mut rng, api, version, response, &sets));
                }
            }
        }
    }
    out
}

/// Every frame seed: the captures', kafka-protocol's, the schema's, and Produce requests
/// carrying each bomb.
pub fn all_frames() -> Vec<Frame> {
    let mut out = capture_frames();
    out.extend(kafka_protocol_frames());
    out.extend(schema_frames(0x5eed, 1));
    for bomb in bombs() {
        let mut body = Vec::new();
        body.extend_from_slice(&0i16.to_be_bytes()); // Produce
        body.extend_from_slice(&3i16.to_be_bytes()); // v3
        body.extend_from_slice(&1i32.to_be_bytes()); // correlation id
        body.extend_from_slice(&(-1i16).to_be_bytes()); // client id: null
        body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id: null
        body.extend_from_slice(&1i16.to_be_bytes()); // acks
        body.extend_from_slice(&1000i32.to_be_bytes()); // timeout
        body.extend_from_slice(&1i32.to_be_bytes()); // one topic
        body.extend_from_slice(&1i16.to_be_bytes());
        body.push(b't');
        body.extend_from_slice(&1i32.to_be_bytes()); // one partition
        body.extend_from_slice(&0i32.to_be_bytes());
        body.extend_from_slice(&(bomb.len() as i32).to_be_bytes());
        body.extend_from_slice(bomb);
        out.push(Frame {
            key: 0,
            version: 3,
            response: false,
            bytes: size_prefixed(&body),
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// pcap files

/// Ethernet + IPv4 + TCP around `payload`, from `src` to `dst` port on 127.0.0.1.
fn tcp_packet(src: u16, dst: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(54 + payload.len());
    p.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0x08, 0x00]);
    let total = (20 + 20 + payload.len()) as u16;
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
    p.extend_from_slice(&src.to_be_bytes());
    p.extend_from_slice(&dst.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ack.to_be_bytes());
    p.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend_from_slice(payload);
    p
}

/// A little-endian microsecond pcap of one TCP connection (handshake, then each request and
/// its response cut into segments of at most `mss` bytes, then FINs).
pub fn pcap_of(conversations: &[&Conversation], mss: usize) -> Vec<u8> {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const PSH_ACK: u8 = 0x18;
    const FIN_ACK: u8 = 0x11;
    let mut file = Vec::new();
    file.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    file.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    file.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65_535, 1] {
        // time zone, accuracy, snapshot length, link type (Ethernet)
        file.extend_from_slice(&v.to_le_bytes());
    }
    let mut ts = 1_700_000_000u32;
    let mut push = |packet: Vec<u8>| {
        ts += 1;
        for v in [ts, 0, packet.len() as u32, packet.len() as u32] {
            file.extend_from_slice(&v.to_le_bytes());
        }
        file.extend_from_slice(&packet);
    };
    let (client, server) = (40_000u16, 9092u16);
    let (mut cseq, mut sseq) = (0xffff_ff00u32, 1_000u32);
    push(tcp_packet(client, server, cseq, 0, SYN, &[]));
    push(tcp_packet(
        server,
        client,
        sseq,
        cseq.wrapping_add(1),
        SYN | ACK,
        &[],
    ));
    cseq = cseq.wrapping_add(1);
    sseq = sseq.wrapping_add(1);
    for c in conversations {
        for piece in c.request.chunks(mss.max(1)) {
            push(tcp_packet(client, server, cseq, sseq, PSH_ACK, piece));
            cseq = cseq.wrapping_add(piece.len() as u32);
        }
        for piece in c.response.as_deref().unwrap_or(&[]).chunks(mss.max(1)) {
            push(tcp_packet(server, client, sseq, cseq, PSH_ACK, piece));
            sseq = sseq.wrapping_add(piece.len() as u32);
        }
    }
    push(tcp_packet(client, server, cseq, sseq, FIN_ACK, &[]));
    push(tcp_packet(
        server,
        client,
        sseq,
        cseq.wrapping_add(1),
        FIN_ACK,
        &[],
    ));
    file
}

/// Capture files: the repository's, pcaps made from their exchanges, and gzip and zstd
/// copies of some of them.
pub fn capture_seeds() -> Vec<Vec<u8>> {
    let mut out = capture_files();
    let convs: Vec<&Conversation> = capture_conversations().iter().map(|(_, _, c)| c).collect();
    out.push(pcap_of(&convs, 1460));
    out.push(pcap_of(&convs[..convs.len().min(6)], 7));
    let plain: Vec<Vec<u8>> = out.clone();
    for file in &plain {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(file).expect("gzip");
        out.push(gz.finish().expect("gzip"));
        out.push(zstd::bulk::compress(file, 3).expect("zstd"));
    }
    out
}
