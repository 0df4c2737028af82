//! The embedded broker over real sockets, driven with kafka-protocol's own encoders: the core
//! APIs across versions, hostile frames next to a working connection, idempotent duplicates,
//! throttle placement and recovery of a data directory with a torn segment tail.

use crate::common;

use common::frame::{produce_req, records};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use chronik_tui::broker::{self, BrokerConfig, BrokerHandle};
use chronik_tui::capture::{Status, Store, StoreLimits};
use chronik_tui::settings::{Knobs, Settings, ThrottlePlacement};

async fn start_with(config: BrokerConfig) -> (BrokerHandle, Arc<Store>, Arc<Settings>) {
    let store = Store::new(StoreLimits::default());
    let settings = Settings::new(Knobs::default());
    let config = BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    let h = broker::start(config, store.clone(), settings.clone())
        .await
        .expect("broker starts");
    (h, store, settings)
}

struct Client {
    s: TcpStream,
    corr: i32,
}

impl Client {
    async fn connect(h: &BrokerHandle) -> Client {
        Client {
            s: TcpStream::connect(h.local_addr).await.expect("connect"),
            corr: 0,
        }
    }

    async fn send<Req: Encodable>(&mut self, key: ApiKey, version: i16, req: &Req) -> i32 {
        self.corr += 1;
        let frame = common::request_frame(key, version, self.corr, "broker-socket-test", req);
        self.s.write_all(&frame).await.unwrap();
        self.corr
    }

    async fn read_raw(&mut self) -> Vec<u8> {
        let mut len = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), self.s.read_exact(&mut len))
            .await
            .expect("response in time")
            .expect("response size");
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut body).await.unwrap();
        body
    }

    async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        let corr = self.send(key, version, req).await;
        let body = self.read_raw().await;
        let mut buf = Bytes::from(body);
        let hv = if key == ApiKey::ApiVersions {
            0
        } else {
            key.response_header_version(version)
        };
        let h = ResponseHeader::decode(&mut buf, hv).unwrap();
        assert_eq!(
            h.correlation_id, corr,
            "correlation id of {key:?} v{version}"
        );
        let resp = Resp::decode(&mut buf, version)
            .unwrap_or_else(|e| panic!("decoding {key:?} v{version}: {e}"));
        assert_eq!(buf.len(), 0, "{key:?} v{version}: trailing bytes");
        resp
    }
}

/// A kafka-protocol 0.18.0 message sent or read through [`Client`] (which speaks 0.15.1's
/// traits): ConsumerGroupHeartbeat v1 and ConsumerGroupDescribe v1 exist only there.
struct Kp18<T>(T);

impl<T: kafka_protocol_0_18::protocol::Encodable> Encodable for Kp18<T> {
    fn encode<B: kafka_protocol::protocol::buf::ByteBufMut>(
        &self,
        buf: &mut B,
        version: i16,
    ) -> anyhow::Result<()> {
        let mut out = bytes::BytesMut::new();
        self.0.encode(&mut out, version)?;
        bytes::BufMut::put_slice(buf, &out);
        Ok(())
    }

    fn compute_size(&self, version: i16) -> anyhow::Result<usize> {
        self.0.compute_size(version)
    }
}

impl<T: kafka_protocol_0_18::protocol::Decodable> Decodable for Kp18<T> {
    fn decode<B: kafka_protocol::protocol::buf::ByteBuf>(
        buf: &mut B,
        version: i16,
    ) -> anyhow::Result<Self> {
        let left = bytes::Buf::remaining(buf);
        let mut body = bytes::Buf::copy_to_bytes(buf, left);
        let msg = T::decode(&mut body, version)?;
        if !body.is_empty() {
            anyhow::bail!("{} bytes after the message", body.len());
        }
        Ok(Kp18(msg))
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn fetch_req(topic: &str, id: uuid::Uuid, offset: i64, version: i16) -> FetchRequest {
    let mut t = fetch_request::FetchTopic::default().with_partitions(vec![
        fetch_request::FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(1 << 20),
    ]);
    if version >= 13 {
        t.topic_id = id;
    } else {
        t.topic = name(topic);
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 24)
        .with_session_epoch(-1)
        .with_topics(vec![t])
}

fn values_of(records: Option<&Bytes>) -> Vec<(i64, String)> {
    let mut buf = records.cloned().unwrap_or_default();
    let mut out = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
        for r in set.records {
            let v = r.value.map(|v| String::from_utf8_lossy(&v).to_string());
            out.push((r.offset, v.unwrap_or_default()));
        }
    }
    out
}

async fn metadata(c: &mut Client, topic: &str, version: i16) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(name(topic)))]))
        .with_allow_auto_topic_creation(true);
    c.call(ApiKey::Metadata, version, &req).await
}

#[tokio::test]
async fn core_apis_over_a_real_socket() {
    let (h, store, _settings) = start_with(BrokerConfig::default()).await;
    let mut c = Client::connect(&h).await;

    // ApiVersions v0 and v3.
    let v0: ApiVersionsResponse = c
        .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
        .await;
    assert_eq!(v0.error_code, 0);
    let produce = v0
        .api_keys
        .iter()
        .find(|k| k.api_key == 0)
        .expect("Produce");
    assert_eq!((produce.min_version, produce.max_version), (0, 11));
    let v3: ApiVersionsResponse = c
        .call(
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("socket-test"))
                .with_client_software_version(StrBytes::from_static_str("1.0")),
        )
        .await;
    assert_eq!(v3.api_keys.len(), v0.api_keys.len());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store.snapshot().iter().any(|e| e
        .notes()
        .iter()
        .any(|n| n == "client software: socket-test 1.0")));

    // Metadata at every version auto-creates and describes the topic.
    for version in 0..=12 {
        let m = metadata(&mut c, "alpha", version).await;
        assert_eq!(m.brokers.len(), 1, "v{version}");
        assert_eq!(m.brokers[0].port, h.local_addr.port() as i32);
        let t = &m.topics[0];
        assert_eq!(t.error_code, 0, "v{version}");
        assert_eq!(t.partitions.len(), 1);
        assert_eq!(t.partitions[0].leader_id.0, 1);
        if version >= 10 {
            assert!(!t.topic_id.is_nil(), "topic id at v{version}");
        }
    }
    let topic_id = metadata(&mut c, "alpha", 12).await.topics[0].topic_id;

    // CreateTopics, then again: TOPIC_ALREADY_EXISTS.
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(name("beta"))
            .with_num_partitions(3)
            .with_replication_factor(1)
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("message.timestamp.type"))
                    .with_value(Some(StrBytes::from_static_str("LogAppendTime"))),
            ])]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &create).await;
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].num_partitions, 3);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 2, &create).await;
    assert_eq!(r.topics[0].error_code, 36, "TOPIC_ALREADY_EXISTS");

    // Produce with acks 1 and -1 at several versions; offsets follow each other.
    let mut expected = Vec::new();
    let mut next = 0i64;
    for (i, version) in [3i16, 7, 9, 11].iter().enumerate() {
        let acks = if i % 2 == 0 { 1 } else { -1 };
        let vals = [format!("m{i}a"), format!("m{i}b")];
        let refs: Vec<&str> = vals.iter().map(String::as_str).collect();
        let resp: ProduceResponse = c
            .call(
                ApiKey::Produce,
                *version,
                &produce_req("alpha", 0, acks, records(&refs, 2, None)),
            )
            .await;
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "produce v{version}");
        assert_eq!(p.base_offset, next, "produce v{version}");
        assert_eq!(p.log_append_time_ms, -1, "CreateTime topic");
        for v in vals {
            expected.push((next, v));
            next += 1;
        }
    }
    // acks=0: no response; the next request's answer comes back with its own correlation id.
    c.send(
        ApiKey::Produce,
        7,
        &produce_req("alpha", 0, 0, records(&["silent"], 2, None)),
    )
    .await;
    expected.push((next, "silent".into()));
    next += 1;

    // LogAppendTime topic: the broker's time comes back.
    let before = chronik_tui::capture::now_micros() / 1000;
    let resp: ProduceResponse = c
        .call(
            ApiKey::Produce,
            8,
            &produce_req("beta", 2, 1, records(&["x"], 2, None)),
        )
        .await;
    let p = &resp.responses[0].partition_responses[0];
    assert!(p.log_append_time_ms >= before, "LogAppendTime stamped");

    // Fetch back at old and new versions (v13+ by topic id).
    for version in [4i16, 11, 12, 13, 16] {
        let f: FetchResponse = c
            .call(
                ApiKey::Fetch,
                version,
                &fetch_req("alpha", topic_id, 0, version),
            )
            .await;
        let pd = &f.responses[0].partitions[0];
        assert_eq!(pd.error_code, 0, "fetch v{version}");
        assert_eq!(pd.high_watermark, next, "fetch v{version}");
        assert_eq!(values_of(pd.records.as_ref()), expected, "fetch v{version}");
    }
    // Out of range.
    let f: FetchResponse = c
        .call(
            ApiKey::Fetch,
            11,
            &fetch_req("alpha", topic_id, next + 5, 11),
        )
        .await;
    assert_eq!(f.responses[0].partitions[0].error_code, 1);

    // ListOffsets: earliest, latest, by timestamp.
    for version in [0i16, 1, 5, 9] {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(name("alpha"))
                .with_partitions(
                    [-2i64, -1, 1_700_000_000_000, 1_800_000_000_000]
                        .iter()
                        .map(|ts| {
                            list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(*ts)
                                .with_max_num_offsets(1)
                        })
                        .collect(),
                )]);
        let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, version, &req).await;
        let got: Vec<i64> = r.topics[0]
            .partitions
            .iter()
            .map(|p| {
                if version == 0 {
                    p.old_style_offsets.first().copied().unwrap_or(-1)
                } else {
                    p.offset
                }
            })
            .collect();
        assert_eq!(got, vec![0, next, 0, -1], "list offsets v{version}");
    }

    // The handle's view of the topics agrees.
    let alpha = h
        .topics()
        .into_iter()
        .find(|t| t.name == "alpha")
        .expect("alpha listed");
    assert_eq!(alpha.id, topic_id);
    assert_eq!((alpha.partitions[0].0, alpha.partitions[0].1), (0, next));
    assert!(alpha.partitions[0].2 > 0);

    // DeleteRecords: the log start moves to 2; fetching below it is out of range, earliest is 2.
    let del = DeleteRecordsRequest::default().with_topics(vec![
        delete_records_request::DeleteRecordsTopic::default()
            .with_name(name("alpha"))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(2),
            ]),
    ]);
    let r: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 2, &del).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(r.topics[0].partitions[0].low_watermark, 2);
    let f: FetchResponse = c
        .call(ApiKey::Fetch, 11, &fetch_req("alpha", topic_id, 0, 11))
        .await;
    assert_eq!(f.responses[0].partitions[0].error_code, 1);
    assert_eq!(f.responses[0].partitions[0].log_start_offset, 2);
    let f: FetchResponse = c
        .call(ApiKey::Fetch, 11, &fetch_req("alpha", topic_id, 2, 11))
        .await;
    assert_eq!(
        values_of(f.responses[0].partitions[0].records.as_ref())[0],
        expected[2]
    );

    // The store holds every exchange, the acks=0 one as NoResponse, with raw frames.
    drop(c);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let all = store.snapshot();
    assert!(all
        .iter()
        .any(|e| e.api_key == 0 && e.status == Status::NoResponse));
    assert!(all
        .iter()
        .filter(|e| e.status == Status::Answered)
        .all(|e| e.response().is_some() && e.dissect_request().is_some_and(|d| d.error.is_none())));
    let with_errors: Vec<_> = all
        .iter()
        .filter(|e| e.dissect_response().is_some_and(|d| d.error.is_some()))
        .map(|e| (e.api_key, e.api_version))
        .collect();
    assert!(
        with_errors.is_empty(),
        "responses our dissector rejects: {with_errors:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn legacy_message_sets_get_offsets_per_message() {
    let (h, _store, _settings) = start_with(BrokerConfig::default()).await;
    let mut c = Client::connect(&h).await;
    metadata(&mut c, "old", 1).await;
    for (version, magic) in [(0i16, 0i8), (2, 1)] {
        let resp: ProduceResponse = c
            .call(
                ApiKey::Produce,
                version,
                &produce_req("old", 0, 1, records(&["a", "b", "c"], magic, None)),
            )
            .await;
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "v{version}");
        assert_eq!(p.base_offset, if version == 0 { 0 } else { 3 });
    }
    let f: FetchResponse = c
        .call(ApiKey::Fetch, 2, &fetch_req("old", uuid::Uuid::nil(), 0, 2))
        .await;
    let got: Vec<i64> = values_of(f.responses[0].partitions[0].records.as_ref())
        .iter()
        .map(|(o, _)| *o)
        .collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    h.shutdown().await;
}

#[tokio::test]
async fn idempotent_duplicate_is_acknowledged_not_stored_twice() {
    let (h, store, _settings) = start_with(BrokerConfig::default()).await;
    let mut c = Client::connect(&h).await;
    metadata(&mut c, "idem", 9).await;
    let init: InitProducerIdResponse = c
        .call(
            ApiKey::InitProducerId,
            4,
            // An idempotent producer names no transactional id (null; an empty one is
            // INVALID_REQUEST, as in Kafka).
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    assert!(pid >= 0);
    let batch = records(&["one", "two"], 2, Some((pid, init.producer_epoch, 0)));
    let first: ProduceResponse = c
        .call(
            ApiKey::Produce,
            9,
            &produce_req("idem", 0, -1, batch.clone()),
        )
        .await;
    let again: ProduceResponse = c
        .call(ApiKey::Produce, 9, &produce_req("idem", 0, -1, batch))
        .await;
    let (a, b) = (
        &first.responses[0].partition_responses[0],
        &again.responses[0].partition_responses[0],
    );
    assert_eq!((a.error_code, b.error_code), (0, 0));
    assert_eq!(
        a.base_offset, b.base_offset,
        "duplicate gets its original offset"
    );
    // A gap in the sequence is refused.
    let gap: ProduceResponse = c
        .call(
            ApiKey::Produce,
            9,
            &produce_req(
                "idem",
                0,
                -1,
                records(&["x"], 2, Some((pid, init.producer_epoch, 7))),
            ),
        )
        .await;
    assert_eq!(gap.responses[0].partition_responses[0].error_code, 45);
    let f: FetchResponse = c
        .call(
            ApiKey::Fetch,
            12,
            &fetch_req("idem", uuid::Uuid::nil(), 0, 12),
        )
        .await;
    let vals = values_of(f.responses[0].partitions[0].records.as_ref());
    assert_eq!(vals, vec![(0, "one".into()), (1, "two".into())]);
    assert!(store
        .snapshot()
        .iter()
        .any(|e| e.notes().iter().any(|n| n.contains("duplicate batch"))));
    h.shutdown().await;
}

#[tokio::test]
async fn hostile_frames_close_only_their_connection() {
    let (h, store, _settings) = start_with(BrokerConfig {
        max_frame_bytes: 4096,
        ..BrokerConfig::default()
    })
    .await;
    let mut steady = Client::connect(&h).await;
    let _: ApiVersionsResponse = steady
        .call(ApiKey::ApiVersions, 2, &ApiVersionsRequest::default())
        .await;
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "garbage",
            vec![0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0x01],
            false,
        ),
        ("negative length", vec![0x80, 0, 0, 0], false),
        (
            "oversized length",
            1_000_000i32.to_be_bytes().to_vec(),
            false,
        ),
        ("truncated frame", vec![0, 0, 0, 50, 0, 18, 0, 0], true),
    ];
    for (what, bytes, half_close) in cases {
        let before = store.stats().0;
        let mut s = TcpStream::connect(h.local_addr).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        if half_close {
            s.shutdown().await.unwrap();
        }
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{what}: connection not closed"));
        assert!(n.is_ok_and(|n| n == 0), "{what}: got an answer {buf:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let last = store.snapshot().last().cloned().expect("captured");
        assert!(store.stats().0 > before, "{what}: nothing captured");
        assert!(
            matches!(last.status, Status::Malformed { .. }),
            "{what}: {:?}",
            last.status
        );
        // The other connection still works.
        let m = metadata(&mut steady, "still-here", 5).await;
        assert_eq!(m.topics[0].error_code, 0, "{what}");
    }
    // Unsupported ApiVersions version: answered as v0 with error 35 and the list.
    let mut c = Client::connect(&h).await;
    // Header v2 by hand (kafka-protocol will not encode v9): key, version, corr, client id,
    // empty tagged fields; then an empty flexible body.
    let mut raw = vec![0, 18, 0, 9, 0, 0, 0, 77, 0, 1, b'x', 0, 0, 0, 1, 0];
    let mut frame = (raw.len() as i32).to_be_bytes().to_vec();
    frame.append(&mut raw);
    c.s.write_all(&frame).await.unwrap();
    let body = c.read_raw().await;
    let mut buf = Bytes::from(body);
    let _ = ResponseHeader::decode(&mut buf, 0).unwrap();
    let r = ApiVersionsResponse::decode(&mut buf, 0).unwrap();
    assert_eq!(r.error_code, 35);
    assert!(r.api_keys.len() >= 20);
    h.shutdown().await;
}

#[tokio::test]
async fn throttle_placement_front_and_omit() {
    let (h, store, settings) = start_with(BrokerConfig::default()).await;
    let mut c = Client::connect(&h).await;
    metadata(&mut c, "thr", 4).await;
    settings.update(|k| {
        k.placement = ThrottlePlacement::Front;
        k.throttle_ms = 0x0102_0304;
    });
    c.send(
        ApiKey::Produce,
        7,
        &produce_req("thr", 0, 1, records(&["t"], 2, None)),
    )
    .await;
    let body = c.read_raw().await;
    // After the 4-byte correlation id: the throttle first, then the responses array count 1.
    assert_eq!(&body[4..8], &0x0102_0304i32.to_be_bytes());
    assert_eq!(&body[8..12], &1i32.to_be_bytes());
    // Flexible v9: `front` applies to v1-v8 (as Chronik Stream 0.7.2); v9 stays as the spec
    // has it: after the header's empty tag section the compact responses array (count 1 as
    // varint 2), and the throttle just before the final empty tag section.
    c.send(
        ApiKey::Produce,
        9,
        &produce_req("thr", 0, 1, records(&["t9"], 2, None)),
    )
    .await;
    let flex = c.read_raw().await;
    assert_eq!(flex[4], 0, "header tag section");
    assert_eq!(flex[5], 2);
    let n = flex.len();
    assert_eq!(&flex[n - 5..n - 1], &0x0102_0304i32.to_be_bytes());
    assert_eq!(flex[n - 1], 0);
    settings.update(|k| k.placement = ThrottlePlacement::Omit);
    c.send(
        ApiKey::Produce,
        7,
        &produce_req("thr", 0, 1, records(&["u"], 2, None)),
    )
    .await;
    let omitted = c.read_raw().await;
    assert_eq!(omitted.len(), body.len() - 4);
    settings.update(|k| k.placement = ThrottlePlacement::Spec);
    let spec: ProduceResponse = c
        .call(
            ApiKey::Produce,
            7,
            &produce_req("thr", 0, 1, records(&["v"], 2, None)),
        )
        .await;
    assert_eq!(spec.throttle_time_ms, 0x0102_0304);
    assert!(store.snapshot().iter().any(|e| e
        .notes()
        .iter()
        .any(|n| n == "throttle_time_ms placement: front")));
    h.shutdown().await;
}

#[tokio::test]
async fn data_dir_recovers_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..BrokerConfig::default()
    };
    let (h, _store, _settings) = start_with(config.clone()).await;
    let mut c = Client::connect(&h).await;
    let topic_id = metadata(&mut c, "durable", 12).await.topics[0].topic_id;
    for v in ["d1", "d2", "d3"] {
        let r: ProduceResponse = c
            .call(
                ApiKey::Produce,
                7,
                &produce_req("durable", 0, -1, records(&[v], 2, None)),
            )
            .await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    drop(c);
    h.shutdown().await;

    // Tear the tail: half of a frame header plus junk after the good entries.
    let mut segments = Vec::new();
    for e in walk(dir.path()) {
        if e.extension().is_some_and(|x| x == "log") && e.to_string_lossy().contains("/logs/") {
            segments.push(e);
        }
    }
    assert_eq!(segments.len(), 1, "{segments:?}");
    let good = std::fs::metadata(&segments[0]).unwrap().len();
    let mut data = std::fs::read(&segments[0]).unwrap();
    data.extend_from_slice(&[0, 0, 0, 99, 1, 2, 3, 4, 5, 6, 7]);
    std::fs::write(&segments[0], &data).unwrap();

    let (h, _store, _settings) = start_with(config).await;
    assert_eq!(std::fs::metadata(&segments[0]).unwrap().len(), good);
    let mut c = Client::connect(&h).await;
    let m = metadata(&mut c, "durable", 12).await;
    assert_eq!(m.topics[0].topic_id, topic_id, "topic id survives");
    let f: FetchResponse = c
        .call(ApiKey::Fetch, 13, &fetch_req("durable", topic_id, 0, 13))
        .await;
    let vals: Vec<String> = values_of(f.responses[0].partitions[0].records.as_ref())
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(vals, vec!["d1", "d2", "d3"]);
    let r: ProduceResponse = c
        .call(
            ApiKey::Produce,
            7,
            &produce_req("durable", 0, 1, records(&["d4"], 2, None)),
        )
        .await;
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 3);
    h.shutdown().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn long_poll_waits_for_data_and_abandoned_fetch_is_unanswered() {
    let (h, store, _settings) = start_with(BrokerConfig::default()).await;
    let mut c = Client::connect(&h).await;
    let id = metadata(&mut c, "lp", 12).await.topics[0].topic_id;
    // A fetch at the end waits until a producer on another connection appends.
    let mut req = fetch_req("lp", id, 0, 12);
    req.max_wait_ms = 5000;
    let started = std::time::Instant::now();
    let corr = c.send(ApiKey::Fetch, 12, &req).await;
    let mut p = Client::connect(&h).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _: ProduceResponse = p
        .call(
            ApiKey::Produce,
            9,
            &produce_req("lp", 0, 1, records(&["wake"], 2, None)),
        )
        .await;
    let mut buf = Bytes::from(c.read_raw().await);
    let hdr = ResponseHeader::decode(&mut buf, 1).unwrap();
    assert_eq!(hdr.correlation_id, corr);
    let f = FetchResponse::decode(&mut buf, 12).unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200),
        "answered before data: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(4000),
        "not woken by the append: {waited:?}"
    );
    assert_eq!(
        values_of(f.responses[0].partitions[0].records.as_ref()).len(),
        1
    );

    // A client that leaves during a long poll: captured as unanswered.
    let mut req = fetch_req("lp", id, 1, 12);
    req.max_wait_ms = 10_000;
    c.send(ApiKey::Fetch, 12, &req).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last_fetch = store
        .snapshot()
        .iter()
        .rev()
        .find(|e| e.api_key == 1)
        .cloned()
        .unwrap();
    assert_eq!(last_fetch.status, Status::Unanswered);
    h.shutdown().await;
}

#[tokio::test]
async fn incremental_fetch_sessions() {
    let (h, _store, _settings) = start_with(BrokerConfig::default()).await;
    let mut c = Client::connect(&h).await;
    metadata(&mut c, "sess", 7).await;
    let _: ProduceResponse = c
        .call(
            ApiKey::Produce,
            7,
            &produce_req("sess", 0, 1, records(&["s0"], 2, None)),
        )
        .await;
    let mut req = fetch_req("sess", uuid::Uuid::nil(), 0, 11);
    req.session_epoch = 0;
    req.max_wait_ms = 0;
    let full: FetchResponse = c.call(ApiKey::Fetch, 11, &req).await;
    assert!(full.session_id > 0, "a session was created");
    assert_eq!(
        values_of(full.responses[0].partitions[0].records.as_ref()).len(),
        1
    );
    // Incremental: the client moved to offset 1 and says so; nothing new, so nothing sent.
    let mut moved = fetch_req("sess", uuid::Uuid::nil(), 1, 11)
        .with_session_id(full.session_id)
        .with_session_epoch(1);
    moved.max_wait_ms = 0;
    let r: FetchResponse = c.call(ApiKey::Fetch, 11, &moved).await;
    assert_eq!((r.error_code, r.session_id), (0, full.session_id));
    assert!(r.responses.is_empty(), "{:?}", r.responses);
    // New data; an incremental fetch listing nothing gets it from the cached offset.
    let _: ProduceResponse = c
        .call(
            ApiKey::Produce,
            7,
            &produce_req("sess", 0, 1, records(&["s1"], 2, None)),
        )
        .await;
    let inc = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_id(full.session_id)
        .with_session_epoch(2);
    let r: FetchResponse = c.call(ApiKey::Fetch, 11, &inc).await;
    let vals = values_of(r.responses[0].partitions[0].records.as_ref());
    assert_eq!(vals, vec![(1, "s1".to_string())]);
    // Wrong epoch and unknown session.
    let r: FetchResponse = c
        .call(ApiKey::Fetch, 11, &inc.clone().with_session_epoch(9))
        .await;
    assert_eq!(r.error_code, 71);
    let r: FetchResponse = c
        .call(ApiKey::Fetch, 11, &inc.with_session_id(424242))
        .await;
    assert_eq!(r.error_code, 70);
    h.shutdown().await;
}

#[tokio::test]
async fn topic_admin_delete_partitions_configs() {
    let (h, _store, _settings) = start_with(BrokerConfig {
        auto_create_topics: false,
        ..BrokerConfig::default()
    })
    .await;
    let mut c = Client::connect(&h).await;
    // No auto-creation: unknown topic.
    let m = metadata(&mut c, "nope", 9).await;
    assert_eq!(m.topics[0].error_code, 3);
    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(name("adm"))
            .with_num_partitions(2)
            .with_replication_factor(1)
            .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("1000")))]),
        create_topics_request::CreatableTopic::default()
            .with_name(name("bad/name"))
            .with_num_partitions(1)
            .with_replication_factor(1),
        create_topics_request::CreatableTopic::default()
            .with_name(name("dry"))
            .with_num_partitions(1)
            .with_replication_factor(3),
    ]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 5, &create).await;
    let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![0, 17, 38]);
    // validate_only creates nothing.
    let dry = CreateTopicsRequest::default()
        .with_validate_only(true)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(name("dry"))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 4, &dry).await;
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(metadata(&mut c, "dry", 9).await.topics[0].error_code, 3);

    // CreatePartitions: grow to 4; shrinking is refused.
    let grow = |n: i32| {
        CreatePartitionsRequest::default().with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name("adm"))
                .with_count(n)
                .with_assignments(None),
        ])
    };
    let r: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 2, &grow(4)).await;
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!(
        metadata(&mut c, "adm", 9).await.topics[0].partitions.len(),
        4
    );
    let r: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 0, &grow(3)).await;
    assert_eq!(r.results[0].error_code, 37);

    // DescribeConfigs: the override and the defaults.
    for version in [0i16, 1, 4] {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("adm"))
                .with_configuration_keys(None),
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("1"))
                .with_configuration_keys(None),
        ]);
        let r: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, version, &req).await;
        let get = |k: &str| {
            r.results[0]
                .configs
                .iter()
                .find(|x| x.name.as_str() == k)
                .and_then(|x| x.value.as_ref().map(|v| v.to_string()))
        };
        assert_eq!(get("retention.ms").as_deref(), Some("1000"), "v{version}");
        assert_eq!(get("cleanup.policy").as_deref(), Some("delete"));
        assert_eq!(get("message.timestamp.type").as_deref(), Some("CreateTime"));
        assert!(get("max.message.bytes").is_some());
        assert!(!r.results[1].configs.is_empty(), "broker configs");
    }

    // max.message.bytes is enforced per batch.
    let small = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(name("small"))
            .with_num_partitions(1)
            .with_replication_factor(-1)
            .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("max.message.bytes"))
                .with_value(Some(StrBytes::from_static_str("100")))]),
    ]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &small).await;
    assert_eq!(r.topics[0].error_code, 0);
    let big = "x".repeat(200);
    let r: ProduceResponse = c
        .call(
            ApiKey::Produce,
            9,
            &produce_req("small", 0, 1, records(&[&big], 2, None)),
        )
        .await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 10);
    let r: ProduceResponse = c
        .call(
            ApiKey::Produce,
            9,
            &produce_req("small", 0, 1, records(&["tiny"], 2, None)),
        )
        .await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    // AlterConfigs replaces the topic's configs: LogAppendTime from now on; bad values refused.
    let alter = |value: &'static str, dry: bool| {
        AlterConfigsRequest::default()
            .with_validate_only(dry)
            .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("small"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("message.timestamp.type"))
                    .with_value(Some(StrBytes::from_static_str(value)))])])
    };
    let r: AlterConfigsResponse = c
        .call(ApiKey::AlterConfigs, 1, &alter("Sometimes", false))
        .await;
    assert_eq!(r.responses[0].error_code, 40);
    let r: AlterConfigsResponse = c
        .call(ApiKey::AlterConfigs, 2, &alter("LogAppendTime", false))
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    let r: ProduceResponse = c
        .call(
            ApiKey::Produce,
            9,
            &produce_req("small", 0, 1, records(&["stamped"], 2, None)),
        )
        .await;
    assert!(r.responses[0].partition_responses[0].log_append_time_ms > 0);
    // The replaced set no longer holds max.message.bytes=100: a big batch is fine now.
    let r: ProduceResponse = c
        .call(
            ApiKey::Produce,
            9,
            &produce_req("small", 0, 1, records(&[&big], 2, None)),
        )
        .await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);

    // acks=0 with an error: no answer, the connection closes.
    let mut quiet = Client::connect(&h).await;
    quiet
        .send(
            ApiKey::Produce,
            7,
            &produce_req("ghost", 0, 0, records(&["lost"], 2, None)),
        )
        .await;
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), quiet.s.read_to_end(&mut buf))
        .await
        .expect("closed");
    assert_eq!(n.unwrap(), 0);
    // Producing to an unknown topic without auto-creation.
    let r: ProduceResponse = c
        .call(
            ApiKey::Produce,
            9,
            &produce_req("ghost", 0, 1, records(&["boo"], 2, None)),
        )
        .await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 3);

    // The broker's partition cap: ten topics of 10,000 fit, the eleventh is refused.
    let many = |i: usize| {
        CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(name(&format!("wide-{i}")))
                .with_num_partitions(10_000)
                .with_replication_factor(1),
        ])
    };
    let mut codes = Vec::new();
    for i in 0..11 {
        let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &many(i)).await;
        codes.push(r.topics[0].error_code);
    }
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 9, "{codes:?}");
    assert_eq!(codes[10], 44, "POLICY_VIOLATION beyond the cap: {codes:?}");

    // DeleteTopics by name (v4) and by id (v6).
    let id = metadata(&mut c, "adm", 12).await.topics[0].topic_id;
    let r: DeleteTopicsResponse = c
        .call(
            ApiKey::DeleteTopics,
            6,
            &DeleteTopicsRequest::default().with_topics(vec![
                delete_topics_request::DeleteTopicState::default()
                    .with_name(None)
                    .with_topic_id(id),
            ]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(
        r.responses[0].name.as_ref().map(|n| n.0.as_str()),
        Some("adm")
    );
    assert_eq!(metadata(&mut c, "adm", 9).await.topics[0].error_code, 3);
    let r: DeleteTopicsResponse = c
        .call(
            ApiKey::DeleteTopics,
            4,
            &DeleteTopicsRequest::default().with_topic_names(vec![name("adm")]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, 3);
    h.shutdown().await;
}

#[tokio::test]
async fn sasl_plain_gates_everything_but_api_versions() {
    let (h, store, _settings) = start_with(BrokerConfig {
        sasl_plain: Some(("alice".into(), "secret".into())),
        ..BrokerConfig::default()
    })
    .await;
    // Before authenticating, Metadata closes the connection.
    let mut c = Client::connect(&h).await;
    let _: ApiVersionsResponse = c
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    let corr = c
        .send(ApiKey::Metadata, 9, &MetadataRequest::default())
        .await;
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), c.s.read_to_end(&mut buf))
        .await
        .unwrap();
    assert_eq!(n.unwrap(), 0, "closed without an answer");
    // Captured as refused, and said so in the line and the JSON output (not as malformed).
    let refused = store
        .snapshot()
        .into_iter()
        .find(|e| e.api_key == 3)
        .expect("the Metadata request captured");
    let reason = "SASL authentication required";
    assert_eq!(refused.status, Status::refused(reason));
    assert_eq!(
        chronik_tui::capture::render::line(&refused),
        format!(
            "{} conn={} {} client=broker-socket-test Metadata v9 corr={corr} - req={}B resp=- \
             [refused: {reason}] (connection closed)",
            chronik_tui::capture::render::clock(refused.request_at),
            refused.conn,
            refused.peer(),
            refused.request().len()
        )
    );
    let json = chronik_tui::capture::render::json(&refused);
    assert_eq!(
        json["status"],
        serde_json::json!({"kind": "refused", "reason": reason})
    );
    use chronik_tui::tui::components::exchange_list::{Entry, RowClass};
    let Entry::Exchange { summary, class, .. } = Entry::exchange(refused).0 else {
        unreachable!("an exchange row")
    };
    assert_eq!(summary.trim_end(), format!("[refused: {reason}]"));
    assert_eq!(class, RowClass::Error);

    // Handshake v1 + SaslAuthenticate: good password, then Metadata works.
    let mut c = Client::connect(&h).await;
    let hs: SaslHandshakeResponse = c
        .call(
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let auth: SaslAuthenticateResponse = c
        .call(
            ApiKey::SaslAuthenticate,
            2,
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\0alice\0secret")),
        )
        .await;
    assert_eq!(auth.error_code, 0);
    assert_eq!(
        metadata(&mut c, "after-auth", 9).await.topics[0].error_code,
        0
    );

    // Wrong password: SASL_AUTHENTICATION_FAILED, then closed.
    let mut c = Client::connect(&h).await;
    let _: SaslHandshakeResponse = c
        .call(
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        )
        .await;
    let auth: SaslAuthenticateResponse = c
        .call(
            ApiKey::SaslAuthenticate,
            1,
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\0alice\0nope")),
        )
        .await;
    assert_eq!(auth.error_code, 58);
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), c.s.read_to_end(&mut buf))
        .await
        .unwrap();
    assert_eq!(n.unwrap(), 0);

    // Handshake v0: the next frame is a bare token, answered with an empty frame.
    let mut c = Client::connect(&h).await;
    let _: SaslHandshakeResponse = c
        .call(
            ApiKey::SaslHandshake,
            0,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        )
        .await;
    let token = b"\0alice\0secret";
    let mut frame = (token.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(token);
    c.s.write_all(&frame).await.unwrap();
    assert!(c.read_raw().await.is_empty());
    assert_eq!(
        metadata(&mut c, "after-raw", 1).await.topics[0].error_code,
        0
    );
    h.shutdown().await;
}

/// Sends a default request of an API at one version on a fresh connection and decodes the answer.
async fn roundtrip_default(h: &BrokerHandle, key: ApiKey, version: i16) {
    macro_rules! go {
        ($req:expr, $resp:ty) => {{
            let mut c = Client::connect(h).await;
            let _: $resp = c.call(key, version, &$req).await;
        }};
    }
    match key {
        ApiKey::Produce => go!(
            produce_req(
                "every",
                0,
                1,
                records(
                    &["v"],
                    if version < 2 {
                        0
                    } else if version < 3 {
                        1
                    } else {
                        2
                    },
                    None
                )
            ),
            ProduceResponse
        ),
        ApiKey::Fetch => go!(
            {
                let mut r = fetch_req("every", uuid::Uuid::nil(), 0, version);
                r.max_wait_ms = 0;
                r
            },
            FetchResponse
        ),
        ApiKey::ListOffsets => go!(ListOffsetsRequest::default(), ListOffsetsResponse),
        ApiKey::Metadata => go!(MetadataRequest::default(), MetadataResponse),
        ApiKey::OffsetCommit => go!(OffsetCommitRequest::default(), OffsetCommitResponse),
        ApiKey::OffsetFetch => go!(OffsetFetchRequest::default(), OffsetFetchResponse),
        ApiKey::FindCoordinator => go!(
            FindCoordinatorRequest::default()
                .with_key(if version < 4 {
                    StrBytes::from_static_str("g")
                } else {
                    StrBytes::default()
                })
                .with_coordinator_keys(if version >= 4 {
                    vec![StrBytes::from_static_str("g")]
                } else {
                    vec![]
                }),
            FindCoordinatorResponse
        ),
        ApiKey::JoinGroup => go!(
            JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("every")))
                .with_session_timeout_ms(6000)
                .with_protocol_type(StrBytes::from_static_str("consumer")),
            JoinGroupResponse
        ),
        ApiKey::Heartbeat => go!(HeartbeatRequest::default(), HeartbeatResponse),
        ApiKey::LeaveGroup => go!(LeaveGroupRequest::default(), LeaveGroupResponse),
        ApiKey::SyncGroup => go!(SyncGroupRequest::default(), SyncGroupResponse),
        ApiKey::DescribeGroups => go!(DescribeGroupsRequest::default(), DescribeGroupsResponse),
        ApiKey::ListGroups => go!(ListGroupsRequest::default(), ListGroupsResponse),
        ApiKey::SaslHandshake => go!(SaslHandshakeRequest::default(), SaslHandshakeResponse),
        ApiKey::ApiVersions => go!(ApiVersionsRequest::default(), ApiVersionsResponse),
        ApiKey::CreateTopics => go!(CreateTopicsRequest::default(), CreateTopicsResponse),
        ApiKey::DeleteTopics => go!(DeleteTopicsRequest::default(), DeleteTopicsResponse),
        ApiKey::InitProducerId => go!(InitProducerIdRequest::default(), InitProducerIdResponse),
        ApiKey::OffsetForLeaderEpoch => go!(
            OffsetForLeaderEpochRequest::default().with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(name("every"))
                    .with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                    ])
            ]),
            OffsetForLeaderEpochResponse
        ),
        ApiKey::DescribeConfigs => go!(DescribeConfigsRequest::default(), DescribeConfigsResponse),
        ApiKey::SaslAuthenticate => {
            go!(SaslAuthenticateRequest::default(), SaslAuthenticateResponse)
        }
        ApiKey::CreatePartitions => {
            go!(CreatePartitionsRequest::default(), CreatePartitionsResponse)
        }
        ApiKey::DeleteGroups => go!(DeleteGroupsRequest::default(), DeleteGroupsResponse),
        ApiKey::DeleteRecords => go!(DeleteRecordsRequest::default(), DeleteRecordsResponse),
        ApiKey::AlterConfigs => go!(AlterConfigsRequest::default(), AlterConfigsResponse),
        ApiKey::DescribeCluster => go!(DescribeClusterRequest::default(), DescribeClusterResponse),
        ApiKey::IncrementalAlterConfigs => go!(
            IncrementalAlterConfigsRequest::default(),
            IncrementalAlterConfigsResponse
        ),
        ApiKey::OffsetDelete => go!(OffsetDeleteRequest::default(), OffsetDeleteResponse),
        ApiKey::ConsumerGroupHeartbeat => {
            use kafka_protocol_0_18::messages as kp18;
            use kafka_protocol_0_18::protocol::StrBytes as Str18;
            // A member joining: the answer carries an assignment (a nullable struct, present).
            go!(
                Kp18(
                    kp18::ConsumerGroupHeartbeatRequest::default()
                        .with_group_id(kp18::GroupId(Str18::from_static_str("every-kip848")))
                        .with_member_id(Str18::from_string(format!("member-v{version}")))
                        .with_rebalance_timeout_ms(1000)
                        .with_subscribed_topic_names(Some(vec![kp18::TopicName(
                            Str18::from_static_str("every")
                        )]))
                        .with_topic_partitions(Some(Vec::new()))
                ),
                Kp18<kp18::ConsumerGroupHeartbeatResponse>
            )
        }
        ApiKey::ConsumerGroupDescribe => {
            use kafka_protocol_0_18::messages as kp18;
            use kafka_protocol_0_18::protocol::StrBytes as Str18;
            go!(
                Kp18(
                    kp18::ConsumerGroupDescribeRequest::default().with_group_ids(vec![
                        kp18::GroupId(Str18::from_static_str("every-kip848")),
                        kp18::GroupId(Str18::from_static_str("unknown")),
                    ])
                ),
                Kp18<kp18::ConsumerGroupDescribeResponse>
            )
        }
        ApiKey::AddPartitionsToTxn => go!(
            AddPartitionsToTxnRequest::default(),
            AddPartitionsToTxnResponse
        ),
        ApiKey::AddOffsetsToTxn => go!(AddOffsetsToTxnRequest::default(), AddOffsetsToTxnResponse),
        ApiKey::EndTxn => go!(EndTxnRequest::default(), EndTxnResponse),
        ApiKey::TxnOffsetCommit => go!(TxnOffsetCommitRequest::default(), TxnOffsetCommitResponse),
        ApiKey::DescribeTransactions => go!(
            DescribeTransactionsRequest::default(),
            DescribeTransactionsResponse
        ),
        ApiKey::ListTransactions => {
            go!(ListTransactionsRequest::default(), ListTransactionsResponse)
        }
        ApiKey::DescribeProducers => go!(
            DescribeProducersRequest::default(),
            DescribeProducersResponse
        ),
        other => panic!("advertised but not covered here: {other:?}"),
    }
}

#[tokio::test]
async fn every_advertised_version_answers_and_dissects() {
    let (h, store, _settings) = start_with(BrokerConfig::default()).await;
    let mut c = Client::connect(&h).await;
    let versions: ApiVersionsResponse = c
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    metadata(&mut c, "every", 1).await;
    let mut count = 0;
    for k in &versions.api_keys {
        let key = ApiKey::try_from(k.api_key).expect("known key");
        for version in k.min_version..=k.max_version {
            roundtrip_default(&h, key, version).await;
            count += 1;
        }
    }
    assert!(count > 150, "only {count} api versions");
    tokio::time::sleep(Duration::from_millis(50)).await;
    for e in store.snapshot() {
        assert_eq!(
            e.status,
            Status::Answered,
            "{} v{}",
            e.api_key,
            e.api_version
        );
        let d = e.dissect_response().expect("a response");
        assert!(
            d.error.is_none(),
            "api {} v{}: our dissector rejects the response: {:?}",
            e.api_key,
            e.api_version,
            d.error
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn advertised_address_follows_config_or_the_connection() {
    // Listening on 0.0.0.0: clients are told the address they reached.
    let store = Store::new(StoreLimits::default());
    let settings = Settings::new(Knobs::default());
    let h = broker::start(
        BrokerConfig {
            listen: "0.0.0.0:0".parse().unwrap(),
            ..BrokerConfig::default()
        },
        store,
        settings,
    )
    .await
    .unwrap();
    let port = h.local_addr.port();
    let mut c = Client {
        s: TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
        corr: 0,
    };
    let m = metadata(&mut c, "adv", 1).await;
    assert_eq!(m.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(m.brokers[0].port, port as i32);
    h.shutdown().await;

    // An explicit advertised address wins, in Metadata and FindCoordinator.
    let (h, _store, _settings) = start_with(BrokerConfig {
        advertise: Some(("broker.example".into(), 19999)),
        ..BrokerConfig::default()
    })
    .await;
    let mut c = Client::connect(&h).await;
    let m = metadata(&mut c, "adv", 9).await;
    assert_eq!(m.brokers[0].host.as_str(), "broker.example");
    assert_eq!(m.brokers[0].port, 19999);
    let f: FindCoordinatorResponse = c
        .call(
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_coordinator_keys(vec![StrBytes::from_static_str("grp")]),
        )
        .await;
    assert_eq!(f.coordinators[0].host.as_str(), "broker.example");
    assert_eq!(f.coordinators[0].port, 19999);
    let d: DescribeClusterResponse = c
        .call(
            ApiKey::DescribeCluster,
            1,
            &DescribeClusterRequest::default(),
        )
        .await;
    assert_eq!(d.error_code, 0);
    assert_eq!(d.brokers[0].host.as_str(), "broker.example");
    assert_eq!(d.controller_id.0, 1);
    assert!(!d.cluster_id.is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn concurrent_producers_get_distinct_contiguous_offsets() {
    let (h, _store, _settings) = start_with(BrokerConfig::default()).await;
    let mut c = Client::connect(&h).await;
    metadata(&mut c, "busy", 9).await;
    let addr = h.local_addr;
    let mut tasks = Vec::new();
    for w in 0..8 {
        tasks.push(tokio::spawn(async move {
            let mut p = Client {
                s: TcpStream::connect(addr).await.unwrap(),
                corr: 0,
            };
            let mut offsets = Vec::new();
            for i in 0..50 {
                let v = format!("w{w}-{i}");
                let r: ProduceResponse = p
                    .call(
                        ApiKey::Produce,
                        9,
                        &produce_req("busy", 0, -1, records(&[&v, &v], 2, None)),
                    )
                    .await;
                let pr = &r.responses[0].partition_responses[0];
                assert_eq!(pr.error_code, 0);
                offsets.push(pr.base_offset);
            }
            offsets
        }));
    }
    let mut bases = Vec::new();
    for t in tasks {
        bases.extend(t.await.unwrap());
    }
    bases.sort();
    let want: Vec<i64> = (0..400).map(|i| i * 2).collect();
    assert_eq!(bases, want, "every batch of two got its own two offsets");
    let mut req = fetch_req("busy", uuid::Uuid::nil(), 0, 12);
    req.max_wait_ms = 0;
    let f: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    let vals = values_of(f.responses[0].partitions[0].records.as_ref());
    assert_eq!(vals.len(), 800);
    assert!(vals.iter().enumerate().all(|(i, (o, _))| *o == i as i64));
    h.shutdown().await;
}

#[tokio::test]
async fn join_group_passes_client_id_and_host_to_the_coordinator() {
    let (h, _store, _settings) = start_with(BrokerConfig::default()).await;
    let mut c = Client::connect(&h).await;
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("described")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(StrBytes::from_static_str("range"))
        .with_metadata(Bytes::from_static(b"\0\0\0\0\0\0\0\0\0\0"))]);
    let j: JoinGroupResponse = c.call(ApiKey::JoinGroup, 3, &join).await;
    assert_eq!(j.error_code, 0);
    assert!(
        j.member_id.starts_with("broker-socket-test-"),
        "member id from the client id: {}",
        j.member_id
    );
    let d: DescribeGroupsResponse = c
        .call(
            ApiKey::DescribeGroups,
            3,
            &DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_static_str("described"))]),
        )
        .await;
    let m = &d.groups[0].members[0];
    assert_eq!(m.client_id.as_str(), "broker-socket-test");
    assert_eq!(m.client_host.as_str(), "/127.0.0.1");
    h.shutdown().await;
}
