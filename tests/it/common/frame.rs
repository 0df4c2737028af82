//! Request frames and record sets encoded by kafka-protocol, the independent implementation the
//! tests (and the decode benchmark, which includes this file by path) send to the broker.
#![allow(dead_code)] // each test binary and the benchmark use some of these

/// A request frame, size prefix included, encoded by kafka-protocol with the request header
/// version that API and version need.
pub fn request_frame<Req: kafka_protocol::protocol::Encodable>(
    key: kafka_protocol::messages::ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &'static str,
    req: &Req,
) -> Vec<u8> {
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let header = kafka_protocol::messages::RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    let mut b = bytes::BytesMut::new();
    header
        .encode(&mut b, key.request_header_version(version))
        .expect("request header encodes");
    req.encode(&mut b, version).expect("request encodes");
    let mut frame = (b.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&b);
    frame
}

/// A response frame, size prefix included, with the response header `key` and `version` need.
pub fn response_frame<Resp: kafka_protocol::protocol::Encodable>(
    key: kafka_protocol::messages::ApiKey,
    version: i16,
    corr: i32,
    resp: &Resp,
) -> Vec<u8> {
    use kafka_protocol::protocol::Encodable;
    let mut b = bytes::BytesMut::new();
    kafka_protocol::messages::ResponseHeader::default()
        .with_correlation_id(corr)
        .encode(&mut b, key.response_header_version(version))
        .expect("response header encodes");
    resp.encode(&mut b, version).expect("response encodes");
    let mut frame = (b.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&b);
    frame
}

/// Records encoded by kafka-protocol as one uncompressed batch of magic `version` (0, 1, 2).
pub fn encode_batch(records: &[kafka_protocol::records::Record], version: i8) -> bytes::Bytes {
    use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};
    let mut b = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut b,
        records,
        &RecordEncodeOptions {
            version,
            compression: Compression::None,
        },
    )
    .expect("record batch encodes");
    b.freeze()
}

/// One uncompressed batch holding `values` (no keys, offsets from 0, timestamps from
/// 1_700_000_000_000 ms), optionally from an idempotent producer `(id, epoch, first sequence)`.
pub fn records<V: AsRef<[u8]>>(
    values: &[V],
    version: i8,
    producer: Option<(i64, i16, i32)>,
) -> bytes::Bytes {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let recs: Vec<kafka_protocol::records::Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| kafka_protocol::records::Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset: i as i64,
            sequence: if seq < 0 { -1 } else { seq + i as i32 },
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(bytes::Bytes::copy_from_slice(v.as_ref())),
            headers: Default::default(),
        })
        .collect();
    encode_batch(&recs, version)
}

/// A ProduceRequest of one record set to one partition, timeout 5 s.
pub fn produce_req(
    topic: &str,
    partition: i32,
    acks: i16,
    recs: bytes::Bytes,
) -> kafka_protocol::messages::ProduceRequest {
    use kafka_protocol::messages::{produce_request, ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(recs)),
            ])])
}

/// A blocking connection to a broker that sends requests encoded by kafka-protocol and reads
/// response frames as they come, byte for byte.
pub struct Raw {
    pub s: std::net::TcpStream,
    /// The last correlation id sent.
    pub corr: i32,
    client_id: &'static str,
}

impl Raw {
    /// Connects, with a 10 s read timeout.
    pub fn connect(addr: std::net::SocketAddr, client_id: &'static str) -> Raw {
        let s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        Raw {
            s,
            corr: 0,
            client_id,
        }
    }

    /// Sends a request; returns its correlation id.
    pub fn send<Req: kafka_protocol::protocol::Encodable>(
        &mut self,
        key: kafka_protocol::messages::ApiKey,
        version: i16,
        req: &Req,
    ) -> i32 {
        use std::io::Write;
        self.corr += 1;
        let frame = request_frame(key, version, self.corr, self.client_id, req);
        self.s.write_all(&frame).unwrap();
        self.corr
    }

    /// Reads one response frame, size prefix included.
    pub fn read_frame(&mut self) -> Vec<u8> {
        read_frame(&mut self.s)
    }
}

/// Reads one frame (size prefix included) of at most 1 MiB.
pub fn read_frame(s: &mut impl std::io::Read) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("a response in time");
    let n = i32::from_be_bytes(len);
    assert!((0..1 << 20).contains(&n), "response size {n}");
    let mut frame = len.to_vec();
    frame.resize(4 + n as usize, 0);
    s.read_exact(&mut frame[4..]).unwrap();
    frame
}
