//! Each mutation on responses that kafka-protocol encoded, checked by decoding the result with
//! kafka-protocol (where it should be valid) and with our dissector; and a property test that
//! no frame and no mutation makes `apply` panic.

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{FetchResponse, ProduceResponse, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};
use proptest::prelude::*;

use super::*;
use crate::dissect_response;
use crate::test_frames::{record_batch, response_frame};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn partition(index: i32, offset: i64) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_base_offset(offset)
        .with_log_append_time_ms(-1)
}

/// A ProduceResponse with two topics, the second with two partitions, throttle 0x01020304.
fn produce(version: i16) -> Vec<u8> {
    let resp = ProduceResponse::default()
        .with_responses(vec![
            TopicProduceResponse::default()
                .with_name(name("orders"))
                .with_partition_responses(vec![partition(0, 10)]),
            TopicProduceResponse::default()
                .with_name(name("events"))
                .with_partition_responses(vec![partition(0, 20), partition(1, 30)]),
        ])
        .with_throttle_time_ms(0x0102_0304);
    response_frame(version, 7, &resp)
}

/// Decodes a ProduceResponse frame with kafka-protocol, to its last byte.
fn decode_produce(frame: &[u8], version: i16) -> ProduceResponse {
    let mut b = Bytes::copy_from_slice(&frame[4..]);
    let header_version = if version >= 9 { 1 } else { 0 };
    ResponseHeader::decode(&mut b, header_version).expect("header");
    let resp = ProduceResponse::decode(&mut b, version).expect("body decodes");
    assert!(b.is_empty(), "{} bytes left over", b.len());
    resp
}

fn parse(text: &str) -> Mutation {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} does not parse: {e}"))
}

fn changed(m: &Mutation, frame: &[u8], key: i16, version: i16) -> Vec<u8> {
    match m.apply(frame, key, version) {
        Ok(Applied::Changed { frame, .. }) => {
            let n = i32::from_be_bytes(frame[..4].try_into().unwrap());
            assert_eq!(n as usize, frame.len() - 4, "{m}: size prefix");
            frame
        }
        other => panic!("{m} on api {key} v{version}: {other:?}"),
    }
}

#[test]
fn move_throttle_to_the_front_puts_its_four_bytes_after_the_header() {
    for version in 1..=8 {
        let frame = produce(version);
        let m = parse("move produce.response.throttle_time_ms before produce.response.responses");
        let out = changed(&m, &frame, 0, version);
        let n = frame.len();
        let mut want = frame[..8].to_vec();
        want.extend_from_slice(&frame[n - 4..]);
        want.extend_from_slice(&frame[8..n - 4]);
        assert_eq!(out, want, "v{version}");
        // A spec reader takes the throttle for the array count and fails.
        let d = dissect_response(&out, 0, version);
        assert!(d.error.is_some(), "v{version}");
        // And back.
        let m = parse("move produce.response.throttle_time_ms after produce.response.responses");
        assert!(
            m.apply(&out, 0, version).is_err(),
            "the moved frame no longer decodes"
        );
    }
}

#[test]
fn move_inside_array_elements_moves_it_in_every_element() {
    let frame = produce(7);
    let m = parse(
        "MOVE produce.response.responses.partition_responses.base_offset BEFORE \
         produce.response.responses.partition_responses.index",
    );
    let out = changed(&m, &frame, 0, 7);
    assert_eq!(out.len(), frame.len());
    let d = dissect_response(&out, 0, 7);
    assert!(d.error.is_none());
    // Each element now starts with the 8-byte offset; read as spec, its first 4 bytes are the
    // index (0 for the high half of a small offset).
    let mut idx = Vec::new();
    d.root.find_all(
        "produce.response.responses.partition_responses.index",
        &mut idx,
    );
    assert_eq!(
        idx.iter().map(|f| f.as_int()).collect::<Vec<_>>(),
        [Some(0); 3]
    );
    assert_eq!(
        m.to_string(),
        "move produce.response.responses.partition_responses.base_offset before \
         produce.response.responses.partition_responses.index"
    );
}

#[test]
fn moves_in_flexible_versions_keep_the_tagged_sections_last() {
    // log_start_offset moved before base_offset in every partition of a v9 response (each
    // struct ends with its tagged-field section): kafka-protocol reads the three int64s of
    // each partition shifted by one.
    let part = |i: i32| {
        partition(i, 100 + i as i64)
            .with_log_append_time_ms(200 + i as i64)
            .with_log_start_offset(300 + i as i64)
    };
    let resp = ProduceResponse::default()
        .with_responses(vec![TopicProduceResponse::default()
            .with_name(name("orders"))
            .with_partition_responses(vec![part(0), part(1)])])
        .with_throttle_time_ms(7);
    let frame = response_frame(9, 1, &resp);
    let p = "produce.response.responses.partition_responses";
    let m = parse(&format!("move {p}.log_start_offset before {p}.base_offset"));
    let moved = decode_produce(&changed(&m, &frame, 0, 9), 9);
    for (i, got) in moved.responses[0].partition_responses.iter().enumerate() {
        let i = i as i64;
        assert_eq!(
            (
                got.index as i64,
                got.base_offset,
                got.log_append_time_ms,
                got.log_start_offset
            ),
            (i, 300 + i, 100 + i, 200 + i)
        );
    }
    assert_eq!(moved.throttle_time_ms, 7);
}

#[test]
fn omit_throttle_on_every_version_that_has_it() {
    for version in 1..=11 {
        let frame = produce(version);
        let out = changed(
            &parse("omit produce.response.throttle_time_ms"),
            &frame,
            0,
            version,
        );
        // The throttle is the last field before the (v9+: one-byte) tagged-field section.
        let tail = if version >= 9 { 1 } else { 0 };
        let at = frame.len() - tail - 4;
        assert_eq!(
            &out[4..],
            [&frame[4..at], &frame[at + 4..]].concat(),
            "v{version}"
        );
    }
}

#[test]
fn set_error_code_by_name_in_every_partition_decodes_in_kafka_protocol() {
    for version in [3, 8, 9, 11] {
        let frame = produce(version);
        let m = parse(
            "set produce.response.responses.partition_responses.error_code=not_leader_or_follower",
        );
        assert_eq!(
            m.to_string(),
            "set produce.response.responses.partition_responses.error_code=NOT_LEADER_OR_FOLLOWER"
        );
        let Ok(Applied::Changed { frame: out, detail }) = m.apply(&frame, 0, version) else {
            panic!("applies")
        };
        assert_eq!(detail, "3 occurrences");
        let resp = decode_produce(&out, version);
        let codes: Vec<i16> = resp
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
            .collect();
        assert_eq!(codes, [6, 6, 6], "v{version}");
        assert_eq!(resp.throttle_time_ms, 0x0102_0304);
        assert_eq!(resp.responses[1].partition_responses[1].base_offset, 30);
    }
}

#[test]
fn set_strings_in_both_encodings_and_null_where_nullable() {
    for version in [8, 9] {
        let frame = produce(version);
        let long = "x".repeat(300);
        let m = parse(&format!(
            "set produce.response.responses.partition_responses.error_message=\"{long}\""
        ));
        let resp = decode_produce(&changed(&m, &frame, 0, version), version);
        assert_eq!(
            resp.responses[0].partition_responses[0]
                .error_message
                .as_deref(),
            Some(long.as_str())
        );
        let m = parse("set produce.response.responses.name=null");
        let e = m.apply(&frame, 0, version).unwrap_err();
        assert!(e.contains("not nullable"), "{e}");
        let m = parse(r#"set produce.response.responses.name="a \"quoted\" \\ name""#);
        let resp = decode_produce(&changed(&m, &frame, 0, version), version);
        assert_eq!(&*resp.responses[1].name.0, "a \"quoted\" \\ name");
    }
}

#[test]
fn tagged_fields_are_set_and_omitted_with_their_sizes_and_counts_rewritten() {
    let resp = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
        .with_name(name("orders"))
        .with_partition_responses(vec![partition(0, 1).with_current_leader(
            LeaderIdAndEpoch::default()
                .with_leader_id(kafka_protocol::messages::BrokerId(3))
                .with_leader_epoch(9),
        )])]);
    let frame = response_frame(10, 1, &resp);
    let leader = "produce.response.responses.partition_responses.current_leader";
    let m = parse(&format!("set {leader}.leader_id=70000"));
    let out = changed(&m, &frame, 0, 10);
    let got = decode_produce(&out, 10);
    let cl = &got.responses[0].partition_responses[0].current_leader;
    assert_eq!((cl.leader_id.0, cl.leader_epoch), (70000, 9));
    let out = changed(&parse(&format!("omit {leader}")), &frame, 0, 10);
    let got = decode_produce(&out, 10);
    assert_eq!(
        got.responses[0].partition_responses[0]
            .current_leader
            .leader_id
            .0,
        -1
    );
    assert!(dissect_response(&out, 0, 10).error.is_none());
    // Moving inside the tagged struct keeps its size.
    let m = parse(&format!(
        "move {leader}.leader_epoch before {leader}.leader_id"
    ));
    let out = changed(&m, &frame, 0, 10);
    let got = decode_produce(&out, 10);
    assert_eq!(
        got.responses[0].partition_responses[0]
            .current_leader
            .leader_id
            .0,
        9
    );
    // A tagged field that was not sent has nothing to change.
    let plain = produce(10);
    assert!(matches!(
        parse(&format!("set {leader}.leader_id=1")).apply(&plain, 0, 10),
        Ok(Applied::Unchanged(_))
    ));
}

#[test]
fn counts_correlation_id_and_arrays() {
    let frame = produce(9);
    let out = changed(&parse("set kafka.correlation_id=99"), &frame, 0, 9);
    let mut b = Bytes::copy_from_slice(&out[4..]);
    assert_eq!(
        ResponseHeader::decode(&mut b, 1).unwrap().correlation_id,
        99
    );
    // An empty array in both encodings.
    for version in [7, 9] {
        let out = changed(
            &parse("set produce.response.responses=[]"),
            &produce(version),
            0,
            version,
        );
        assert!(decode_produce(&out, version).responses.is_empty());
    }
    // A count that lies: one element claimed, two sent.
    let out = changed(
        &parse("set produce.response.responses.array_length=1"),
        &frame,
        0,
        9,
    );
    let d = dissect_response(&out, 0, 9);
    assert!(d.error.is_some() || d.root.find("kafka.trailing_bytes").is_some());
}

#[test]
fn truncate_says_the_shorter_length() {
    let frame = produce(7);
    let m = parse("truncate 10 bytes");
    assert_eq!(m.to_string(), "truncate 10");
    let Ok(Applied::Changed { frame: out, detail }) = m.apply(&frame, 0, 7) else {
        panic!()
    };
    assert_eq!(out.len(), frame.len() - 10);
    assert_eq!(&out[4..], &frame[4..frame.len() - 10]);
    assert_eq!(detail, format!("{} -> {} bytes", frame.len(), out.len()));
    let d = dissect_response(&out, 0, 7);
    assert!(d.error.is_some());
    let e = parse(&format!("truncate {}", frame.len() - 4))
        .apply(&frame, 0, 7)
        .unwrap_err();
    assert!(e.contains("would leave none"), "{e}");
}

#[test]
fn corrupt_crc_flips_every_batch_crc_of_a_fetch_response() {
    let mut two = record_batch(&[b"a", b"b"]).to_vec();
    two.extend_from_slice(&record_batch(&[b"c"]));
    // kafka-protocol may write a batch per record; count what it wrote.
    let batches = batch::split(&two)
        .filter(|e| matches!(e, Entry::Batch { .. }))
        .count();
    assert!(batches >= 2);
    let resp = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(name("orders"))
        .with_partitions(vec![
            PartitionData::default()
                .with_partition_index(0)
                .with_records(Some(Bytes::from(two))),
            PartitionData::default()
                .with_partition_index(1)
                .with_records(Some(Bytes::new())),
        ])]);
    for version in [4, 11, 12] {
        let frame = response_frame(version, 3, &resp);
        let m = parse("Corrupt CRC");
        assert_eq!(m.apis(), Some(vec![1]));
        let Ok(Applied::Changed { frame: out, detail }) = m.apply(&frame, 1, version) else {
            panic!("v{version}")
        };
        assert_eq!(detail, format!("{batches} batches"));
        assert_eq!(out.len(), frame.len());
        let diff: Vec<usize> = (0..out.len()).filter(|i| out[*i] != frame[*i]).collect();
        assert_eq!(diff.len(), 4 * batches, "v{version}: every CRC's 4 bytes");
        let d = dissect_response(&out, 1, version);
        let mut crcs = Vec::new();
        d.root.find_all("record_batch.crc", &mut crcs);
        assert_eq!(crcs.len(), batches);
        for c in crcs {
            let note = c.note.as_deref().unwrap_or("");
            assert!(
                note.contains("mismatch") || note.contains("expected"),
                "{note}"
            );
        }
    }
    let empty = response_frame(11, 1, &FetchResponse::default());
    assert!(matches!(
        parse("corrupt crc").apply(&empty, 1, 11),
        Ok(Applied::Unchanged(_))
    ));
}

#[test]
fn what_cannot_be_done_is_said() {
    for (text, says) in [
        (
            "move produce.response.throttle_time_ms before produce.response.responses.name",
            "not a sibling",
        ),
        (
            "move produce.response.node_endpoints after produce.response.responses",
            "tagged field",
        ),
        (
            "move produce.response.responses.array_length before produce.response.throttle_time_ms",
            "element count",
        ),
        (
            "move produce.response.throttle_time_ms after produce.response.throttle_time_ms",
            "itself",
        ),
        ("omit produce.response.throttle", "unknown field"),
        ("omit throttle_time_ms", "did you mean"),
        ("omit kafka.length", "size prefix"),
        ("omit produce.request.acks", "request field"),
        ("set produce.response.throttle_time_ms=abc", "not an int32"),
        (
            "set produce.response.throttle_time_ms=3000000000",
            "out of range",
        ),
        (
            "set produce.response.responses.partition_responses.error_code=NO_SUCH",
            "error code",
        ),
        ("set produce.response.responses=5", "null or []"),
        (
            "set produce.response.responses.partition_responses.current_leader=1",
            "cannot be set",
        ),
        ("set produce.response.throttle_time_ms", "FIELD=VALUE"),
        ("truncate 0", "from 1"),
        ("corrupt everything", "corrupt crc"),
        ("shuffle it", "unknown mutation"),
    ] {
        let e = text.parse::<Mutation>().unwrap_err();
        assert!(e.contains(says), "{text}: {e}");
    }
    // Absent at the version, another API's field, a response that does not decode.
    let frame = produce(7);
    let m = parse("omit produce.response.responses.partition_responses.record_errors");
    let e = m.apply(&frame, 0, 7).unwrap_err();
    assert_eq!(
        e,
        "produce.response.responses.partition_responses.record_errors is absent in Produce v7"
    );
    let e = m.apply(&frame, 1, 7).unwrap_err();
    assert!(
        e.contains("a field of Produce responses, not of Fetch v7"),
        "{e}"
    );
    let e = parse("omit produce.response.throttle_time_ms")
        .apply(&frame[..frame.len() - 2], 0, 7)
        .unwrap_err();
    assert!(e.contains("does not decode as Produce v7"), "{e}");
    // No occurrence is not an error.
    let none = response_frame(7, 1, &ProduceResponse::default());
    assert!(matches!(
        parse("set produce.response.responses.partition_responses.base_offset=5")
            .apply(&none, 0, 7),
        Ok(Applied::Unchanged(_))
    ));
}

#[test]
fn presets_are_the_placements() {
    use crate::ThrottlePlacement::*;
    assert_eq!(Spec.preset(3), None);
    assert_eq!(Front.preset(0), None);
    assert_eq!(Front.preset(9), None);
    assert_eq!(Omit.preset(0), None);
    assert_eq!(
        Front.preset(8).map(|m| m.to_string()).as_deref(),
        Some("move produce.response.throttle_time_ms before produce.response.responses")
    );
    assert_eq!(
        Omit.preset(11).map(|m| m.to_string()).as_deref(),
        Some("omit produce.response.throttle_time_ms")
    );
}

/// Mutations over the fields of the API, and the frame-level ones.
fn any_mutation(key: i16) -> impl Strategy<Value = Mutation> {
    let names: Vec<&'static str> = registry::catalog()
        .entries
        .iter()
        .map(|e| e.name)
        .filter(|n| {
            registry::api(key).is_some_and(|a| n.starts_with(&format!("{}.response.", a.snake)))
        })
        .chain(["kafka.correlation_id"])
        .collect();
    let values = [
        "0", "-1", "null", "[]", "\"x\"", "0x00ff", "true", "NONE", "70000",
    ];
    let n = names.len();
    (
        0..n,
        0..n,
        0..values.len(),
        0usize..5,
        1usize..64,
        any::<bool>(),
    )
        .prop_filter_map(
            "a mutation that parses",
            move |(a, b, v, kind, cut, before)| {
                let text = match kind {
                    0 => format!(
                        "move {} {} {}",
                        names[a],
                        if before { "before" } else { "after" },
                        names[b]
                    ),
                    1 => format!("omit {}", names[a]),
                    2 => format!("set {}={}", names[a], values[v]),
                    3 => format!("truncate {cut}"),
                    _ => "corrupt crc".into(),
                };
                text.parse().ok()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn apply_never_panics_on_random_frames(
        (key, m) in prop::sample::select(vec![0i16, 1, 3, 10, 18])
            .prop_flat_map(|k| (Just(k), any_mutation(k))),
        version in 0i16..16,
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        let _ = m.apply(&frame, key, version);
        let _ = m.apply(&body, key, version);
    }

    #[test]
    fn apply_never_panics_on_damaged_responses(
        version in 0i16..=11,
        m in any_mutation(0),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in 0usize..8,
    ) {
        let mut frame = produce(version);
        for (at, byte) in flips {
            let i = at.index(frame.len());
            frame[i] ^= byte;
        }
        frame.truncate(frame.len() - cut);
        if let Ok(Applied::Changed { frame: out, .. }) = m.apply(&frame, 0, version) {
            prop_assert!(out.len() >= 4);
        }
    }

    #[test]
    fn set_keeps_a_response_decodable_and_every_change_its_size_prefix_true(
        version in 0i16..=11,
        m in any_mutation(0),
    ) {
        let frame = produce(version);
        if let Ok(Applied::Changed { frame: out, .. }) = m.apply(&frame, 0, version) {
            let n = i32::from_be_bytes([out[0], out[1], out[2], out[3]]);
            prop_assert_eq!(n as usize, out.len() - 4);
            let text = m.to_string();
            // A value of the field's type in the field's encoding: the frame still decodes
            // (except an element count, which may now lie about its array).
            if matches!(m, Mutation::Set { .. }) && !text.contains(".array_length=") {
                let d = dissect_response(&out, 0, version);
                prop_assert!(d.error.is_none(), "{}: {:?}", text, d.error);
            }
        }
    }
}

/// `set_at` gives each broker of a Metadata response its own host and port (a longer host and
/// a shorter one), in a flexible version and an old one; kafka-protocol reads the result to its
/// last byte with everything else as it was. An offset that names no occurrence is refused.
#[test]
fn set_at_writes_one_value_per_occurrence() {
    use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
    use kafka_protocol::messages::{BrokerId, MetadataResponse};
    let broker = |id: i32, host: &str, port: i32| {
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_string(host.into()))
            .with_port(port)
    };
    for version in [1i16, 12] {
        let resp = MetadataResponse::default()
            .with_brokers(vec![
                broker(1, "kafka-1.example", 9092),
                broker(2, "k2", 9093),
            ])
            .with_controller_id(BrokerId(2));
        let frame = response_frame(version, 5, &resp);
        let d = dissect_response(&frame, 3, version);
        let at = |name: &str| {
            let mut all = Vec::new();
            d.root.find_all(name, &mut all);
            all.iter().map(|f| f.offset as usize).collect::<Vec<_>>()
        };
        let (hosts, ports) = (
            at("metadata.response.brokers.host"),
            at("metadata.response.brokers.port"),
        );
        let host_id = registry::catalog()
            .id("metadata.response.brokers.host")
            .unwrap();
        let port_id = registry::catalog()
            .id("metadata.response.brokers.port")
            .unwrap();
        let edits = vec![
            FieldEdit {
                field: host_id,
                offset: hosts[0],
                value: SetValue::Str("127.0.0.1".into()),
            },
            FieldEdit {
                field: port_id,
                offset: ports[0],
                value: SetValue::Int {
                    value: 40001,
                    name: None,
                },
            },
            FieldEdit {
                field: host_id,
                offset: hosts[1],
                value: SetValue::Str("proxy.local.example".into()),
            },
            FieldEdit {
                field: port_id,
                offset: ports[1],
                value: SetValue::Int {
                    value: 40002,
                    name: None,
                },
            },
        ];
        let out = set_at(&frame, 3, version, &edits).expect("applies");
        let mut b = Bytes::copy_from_slice(&out[4..]);
        let header_version = if version >= 9 { 1 } else { 0 };
        ResponseHeader::decode(&mut b, header_version).expect("header");
        let got = MetadataResponse::decode(&mut b, version).expect("decodes");
        assert!(b.is_empty(), "v{version}: {} bytes left over", b.len());
        let expected = resp.clone().with_brokers(vec![
            broker(1, "127.0.0.1", 40001),
            broker(2, "proxy.local.example", 40002),
        ]);
        assert_eq!(got, expected, "v{version}");
        assert!(dissect_response(&out, 3, version).error.is_none());

        let wrong = FieldEdit {
            offset: hosts[0] + 1,
            ..edits[0].clone()
        };
        let err = set_at(&frame, 3, version, &[wrong]).unwrap_err();
        assert!(
            err.contains("no metadata.response.brokers.host at offset"),
            "{err}"
        );
    }
}
