//! The diff on real frames: responses encoded by kafka-protocol (the independent
//! implementation), dissected by this crate, then changed the ways a broker can change them.

use std::io::{Read, Write};

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    BrokerId, FetchResponse, JoinGroupResponse, MetadataResponse, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::batch;
use crate::dissect::dissect_response;
use crate::test_frames::response_frame;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn produce_response(base_offset: i64) -> Vec<u8> {
    let resp = ProduceResponse::default()
        .with_responses(vec![TopicProduceResponse::default()
            .with_name(TopicName(s("orders")))
            .with_partition_responses(vec![PartitionProduceResponse::default()
                .with_index(0)
                .with_base_offset(base_offset)
                .with_log_append_time_ms(-1)])])
        .with_throttle_time_ms(0);
    response_frame(7, 2, &resp)
}

/// The same frame with its last 4 bytes (ProduceResponse v1-v8's `throttle_time_ms`) moved in
/// front of the responses array, as Chronik Stream 0.7.2 sent it.
fn throttle_in_front(spec: &[u8]) -> Vec<u8> {
    let (body, throttle) = spec.split_at(spec.len() - 4);
    let mut out = body[..8].to_vec(); // size prefix and correlation id
    out.extend_from_slice(throttle);
    out.extend_from_slice(&body[8..]);
    out
}

/// Diffs two frames of `key` v`version`, ignoring what `ignore` names (registry names, or
/// `*.short` for every field whose last segment is `short`).
fn run(old: &[u8], new: &[u8], key: i16, version: i16, ignore: &[&str]) -> Diff {
    let (a, b) = (
        dissect_response(old, key, version),
        dissect_response(new, key, version),
    );
    let ignored = |id: FieldId| {
        let name = registry::name(id);
        ignore.iter().any(|i| match i.strip_prefix("*.") {
            Some(short) => registry::short_name(id) == short,
            None => name == *i,
        })
    };
    diff(Side::new(&a, old), Side::new(&b, new), &ignored)
}

fn described(d: &Diff) -> Vec<String> {
    d.differences
        .iter()
        .map(|x| {
            let mark = if x.ignored { " (ignored)" } else { "" };
            format!("{}{mark}", x.describe())
        })
        .collect()
}

#[test]
fn the_same_frame_has_no_differences() {
    let f = produce_response(7);
    let d = run(&f, &f, 0, 7, &[]);
    assert!(d.is_same(), "{:?}", described(&d));
    assert!(d.differences.is_empty());
}

#[test]
fn a_changed_value_is_named_by_its_path_with_both_values() {
    let d = run(&produce_response(0), &produce_response(3), 0, 7, &[]);
    assert_eq!(
        described(&d),
        ["produce.response.responses[0].partition_responses[0].base_offset 0 -> 3"]
    );
    let x = &d.differences[0];
    assert_eq!(x.change, Change::Changed);
    assert_eq!(
        x.name(),
        "produce.response.responses.partition_responses.base_offset"
    );
    let (old, new) = (x.old.as_ref().unwrap(), x.new.as_ref().unwrap());
    assert_eq!((old.offset, old.len), (new.offset, new.len));
    assert_eq!(old.len, 8);
    // The path of child indices leads to the field in each tree.
    let a = dissect_response(&produce_response(0), 0, 7);
    let mut f = &a.root;
    for i in &old.at {
        f = &f.children[*i as usize];
    }
    assert_eq!(f.id, x.field);
    assert!(!d.is_same());
}

#[test]
fn throttle_time_in_front_is_a_missing_array_a_moved_field_and_leftover_bytes() {
    let spec = produce_response(0);
    let front = throttle_in_front(&spec);
    // The recorded (front) response read as the spec lays it out, against a spec one.
    let d = run(&front, &spec, 0, 7, &[]);
    let said = described(&d);
    assert_eq!(
        said.len(),
        4,
        "array length, the element, throttle_time_ms, the leftover bytes: {said:#?}"
    );
    assert_eq!(said[0], "produce.response.responses.array_length 0 -> 1");
    assert!(
        said[1].starts_with("produce.response.responses[0] added {…} @12+"),
        "{}",
        said[1]
    );
    assert_eq!(said[2], "produce.response.throttle_time_ms 1 -> 0");
    assert!(
        said[3].starts_with("kafka.trailing_bytes missing 0x"),
        "{}",
        said[3]
    );
    // No field is said to have moved: the added element explains where throttle_time_ms went.
    assert!(d.differences.iter().all(|x| x.change != Change::Shifted));
    // The other way round, the same fields, added and missing swapped.
    let back = run(&spec, &front, 0, 7, &[]);
    let kinds: Vec<Change> = back.differences.iter().map(|x| x.change).collect();
    assert_eq!(
        kinds,
        [
            Change::Changed,
            Change::Missing,
            Change::Changed,
            Change::Added
        ]
    );
}

fn metadata(brokers: &[(i32, &str, i32)]) -> Vec<u8> {
    let resp = MetadataResponse::default()
        .with_brokers(
            brokers
                .iter()
                .map(|(id, host, port)| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(*id))
                        .with_host(s(host))
                        .with_port(*port)
                })
                .collect(),
        )
        .with_controller_id(BrokerId(1));
    response_frame(1, 1, &resp)
}

#[test]
fn array_elements_pair_by_index_and_an_extra_one_is_added() {
    let old = metadata(&[(1, "127.0.0.1", 9092)]);
    let new = metadata(&[(1, "127.0.0.1", 9092), (2, "10.0.0.2", 9093)]);
    let d = run(&old, &new, 3, 1, &[]);
    assert_eq!(
        described(&d),
        [
            "metadata.response.brokers.array_length 1 -> 2".to_string(),
            format!(
                "metadata.response.brokers[1] added {{…}} @{}+{}",
                d.differences[1].new.as_ref().unwrap().offset,
                d.differences[1].new.as_ref().unwrap().len
            )
        ]
    );
    // Ignoring the brokers ignores what lies under them, and the rest still counts.
    let d = run(&old, &new, 3, 1, &["metadata.response.brokers"]);
    assert!(d.differences.iter().all(|x| x.ignored));
    assert!(d.is_same());
}

#[test]
fn an_ignored_field_of_another_length_moves_nothing_after_it() {
    let old = metadata(&[(1, "127.0.0.1", 9092), (2, "127.0.0.1", 9093)]);
    let new = metadata(&[(1, "broker-one.example", 40001), (2, "127.0.0.1", 40002)]);
    let d = run(&old, &new, 3, 1, &["*.host", "*.port"]);
    assert_eq!(
        described(&d),
        [
            "metadata.response.brokers[0].host \"127.0.0.1\" -> \"broker-one.example\" (ignored)",
            "metadata.response.brokers[0].port 9092 -> 40001 (ignored)",
            "metadata.response.brokers[1].port 9093 -> 40002 (ignored)",
        ]
    );
    assert!(d.is_same());
    // Not ignored, the same three fields count, and the longer host still moves nothing.
    let d = run(&old, &new, 3, 1, &[]);
    assert_eq!(d.counted().count(), 3);
}

fn join_group(member: &str, leader: &str, generation: i32) -> Vec<u8> {
    let resp = JoinGroupResponse::default()
        .with_generation_id(generation)
        .with_protocol_name(Some(s("range")))
        .with_leader(s(leader))
        .with_member_id(s(member))
        .with_members(vec![JoinGroupResponseMember::default()
            .with_member_id(s(member))
            .with_metadata(Bytes::from_static(b"\x00\x01subscription"))]);
    response_frame(5, 3, &resp)
}

#[test]
fn member_ids_differ_by_nature_and_are_ignored_by_short_name() {
    let old = join_group("rdkafka-1111", "rdkafka-1111", 1);
    let new = join_group("rdkafka-22222222", "rdkafka-22222222", 1);
    let d = run(
        &old,
        &new,
        11,
        5,
        &["*.member_id", "join_group.response.leader"],
    );
    assert!(d.is_same(), "{:#?}", described(&d));
    assert_eq!(d.differences.len(), 3, "{:#?}", described(&d));
    // A generation that moved on is not a matter of nature.
    let newer = join_group("rdkafka-22222222", "rdkafka-22222222", 2);
    let d = run(
        &old,
        &newer,
        11,
        5,
        &["*.member_id", "join_group.response.leader"],
    );
    let counted: Vec<String> = d.counted().map(Difference::describe).collect();
    assert_eq!(counted, ["join_group.response.generation_id 1 -> 2"]);
}

/// A flexible Metadata v9 response whose brokers array length is written in two bytes
/// (`0x82 0x00`, a varint of 2 with a redundant continuation) instead of one: the same
/// value, one byte longer.
#[test]
fn a_field_with_the_same_value_in_more_bytes_is_shifted_once() {
    let resp = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(1))
            .with_host(s("localhost"))
            .with_port(9092)])
        .with_cluster_id(Some(s("c")));
    let plain = response_frame(9, 1, &resp);
    // size(4) corr(4) header tags(1) throttle(4): the brokers' compact length.
    let at = 13;
    assert_eq!(plain[at], 2);
    let mut padded = plain[..at].to_vec();
    padded.extend_from_slice(&[0x82, 0x00]);
    padded.extend_from_slice(&plain[at + 1..]);
    let size = (padded.len() - 4) as u32;
    padded[..4].copy_from_slice(&size.to_be_bytes());
    let d = run(&plain, &padded, 3, 9, &[]);
    assert_eq!(
        described(&d),
        ["metadata.response.brokers.array_length 1 shifted @13+1 -> @13+2"]
    );
}

fn record(i: i64, value: &[u8]) -> Record {
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i,
        // One batch: the encoder starts a new one where offset - sequence changes.
        sequence: i as i32,
        timestamp: 1_700_000_000_000 + i,
        key: Some(Bytes::from(format!("key-{i}"))),
        value: Some(Bytes::copy_from_slice(value)),
        headers: IndexMap::new(),
    }
}

fn batch_of(values: &[&[u8]], compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| record(i as i64, v))
        .collect();
    let mut b = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut b,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("kafka-protocol encodes the batch");
    b.to_vec()
}

/// A gzip batch recompressed at another level: other compressed bytes, the same records.
fn recompressed(gzip_batch: &[u8]) -> Vec<u8> {
    let header = &gzip_batch[..batch::BATCH_HEADER_LEN];
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gzip_batch[batch::BATCH_HEADER_LEN..])
        .read_to_end(&mut plain)
        .expect("gzip");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&plain).expect("gzip");
    let payload = enc.finish().expect("gzip");
    let mut out = header.to_vec();
    out.extend_from_slice(&payload);
    let batch_length = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let crc = batch::batch_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_ne!(out, gzip_batch, "the recompressed batch differs in bytes");
    out
}

fn fetch(records: Vec<u8>) -> Vec<u8> {
    let resp = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(s("orders")))
        .with_partitions(vec![PartitionData::default()
            .with_partition_index(0)
            .with_high_watermark(3)
            .with_records(Some(Bytes::from(records)))])]);
    response_frame(4, 7, &resp)
}

#[test]
fn batches_compare_by_their_records_not_by_their_compressed_bytes() {
    let values: [&[u8]; 3] = [b"one", b"two", b"three"];
    let gzip = batch_of(&values, Compression::Gzip);
    let d = run(&fetch(gzip.clone()), &fetch(recompressed(&gzip)), 1, 4, &[]);
    assert!(d.differences.is_empty(), "{:#?}", described(&d));

    let other = batch_of(&[b"one", b"TWO", b"three"], Compression::Gzip);
    let d = run(&fetch(gzip), &fetch(other), 1, 4, &[]);
    let said = described(&d);
    assert_eq!(said.len(), 1, "{said:#?}");
    assert_eq!(
        said[0],
        "fetch.response.responses[0].partitions[0].records.record_batch.decompressed.record[1].value \"two\" (3 bytes) -> \"TWO\" (3 bytes)"
    );
    let new = d.differences[0].new.as_ref().unwrap();
    assert_ne!(
        new.buffer, FRAME,
        "the value lies in the decompressed buffer"
    );
}

#[test]
fn a_crc_counts_only_when_it_stops_checking() {
    let good = batch_of(&[b"alpha", b"beta"], Compression::None);
    let mut broken = good.clone();
    let last = broken.len() - 2;
    broken[last] ^= 0x20; // inside the last record's value: "beta" -> "betA"
    let d = run(&fetch(good), &fetch(broken), 1, 4, &[]);
    let said = described(&d);
    assert_eq!(said.len(), 2, "{said:#?}");
    assert!(
        said[0].starts_with("fetch.response.responses[0].partitions[0].records.record_batch.crc ")
    );
    assert!(said[1].ends_with("record[1].value \"beta\" (4 bytes) -> \"betA\" (4 bytes)"));
}

#[test]
fn a_frame_that_stops_decoding_is_a_difference_of_its_own() {
    let good = produce_response(0);
    let mut cut = good[..good.len() - 6].to_vec();
    let size = (cut.len() - 4) as u32;
    cut[..4].copy_from_slice(&size.to_be_bytes());
    let d = run(
        &good,
        &cut,
        0,
        7,
        &["*.log_append_time_ms", "*.log_start_offset"],
    );
    let (old, new) = d.decode.clone().expect("one side stops decoding");
    assert!(old.is_none());
    assert!(new.is_some());
    assert!(!d.is_same());
}

#[test]
fn segments_drop_what_the_parent_already_says() {
    assert_eq!(
        segment("produce.response.responses", Some("produce.response")),
        "responses"
    );
    assert_eq!(
        segment("kafka.correlation_id", Some("kafka.response_header")),
        "correlation_id"
    );
    assert_eq!(
        segment(
            "record_batch",
            Some("fetch.response.responses.partitions.records")
        ),
        "record_batch"
    );
    assert_eq!(segment("record.header", Some("record.headers")), "header");
    assert_eq!(
        segment(
            "metadata.response.brokers",
            Some("metadata.response.brokers")
        ),
        ""
    );
    assert_eq!(segment("kafka.length", None), "kafka.length");
}
