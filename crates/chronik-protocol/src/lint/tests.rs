//! A test per finding, on frames crafted to carry exactly that fault; and none on the same
//! frames made right.

use std::collections::BTreeMap;

use super::*;
use crate::batch;
use crate::dissect::{dissect_request, dissect_response};
use crate::encode::{self, Input};
use crate::frame::with_size_prefix;
use crate::mutate::Applied;
use crate::placement::ThrottlePlacement;

fn map(fields: &[(&str, Input)]) -> Input {
    Input::Map(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn s(v: &str) -> Input {
    Input::Str(v.into())
}

/// A ProduceResponse for one partition of `orders`, as the spec lays it out at `version`.
fn produce_response(version: i16) -> Vec<u8> {
    let partition = map(&[("index", Input::Int(0)), ("base_offset", Input::Int(41))]);
    let topic = map(&[
        ("name", s("orders")),
        ("partition_responses", Input::List(vec![partition])),
    ]);
    let mut fields = vec![("responses", Input::List(vec![topic]))];
    if version >= 1 {
        fields.push(("throttle_time_ms", Input::Int(0)));
    }
    encode::response(0, version, 7, &map(&fields)).expect("encodes")
}

fn response_findings(frame: &[u8], key: i16, version: i16) -> Vec<Finding> {
    check_response(frame, &dissect_response(frame, key, version), key, version)
}

fn request_findings(frame: &[u8]) -> Vec<Finding> {
    check_request(frame, &dissect_request(frame))
}

fn codes(found: &[Finding]) -> Vec<Code> {
    found.iter().map(|f| f.code).collect()
}

fn placed(placement: ThrottlePlacement, version: i16) -> Vec<u8> {
    let spec = produce_response(version);
    match placement
        .preset(version)
        .expect("a preset")
        .apply(&spec, 0, version)
    {
        Ok(Applied::Changed { frame, .. }) => frame,
        other => panic!("{placement} v{version}: {other:?}"),
    }
}

#[test]
fn produce_responses_as_the_spec_has_them_have_no_findings() {
    for v in 0..=11 {
        let frame = produce_response(v);
        assert_eq!(response_findings(&frame, 0, v), vec![], "v{v}");
    }
}

#[test]
fn throttle_time_in_front_is_named_with_its_bytes_and_the_fix() {
    for v in 1..=8 {
        let frame = placed(ThrottlePlacement::Front, v);
        let found = response_findings(&frame, 0, v);
        assert_eq!(codes(&found), vec![Code::FieldMisplaced], "v{v}: {found:?}");
        let f = &found[0];
        assert_eq!(f.message, "throttle_time_ms sent before responses");
        assert_eq!(
            (f.start, f.end),
            (8, 12),
            "v{v}: the 4 bytes after the header"
        );
        assert_eq!(f.level, Level::Error);
        let fix = f.fix.as_deref().unwrap();
        assert!(
            fix.contains("Produce v") && fix.contains("after responses"),
            "{fix}"
        );
    }
}

#[test]
fn throttle_time_left_out_is_named_missing_where_it_belongs() {
    for v in 1..=8 {
        let frame = placed(ThrottlePlacement::Omit, v);
        let found = response_findings(&frame, 0, v);
        assert_eq!(codes(&found), vec![Code::FieldMissing], "v{v}: {found:?}");
        assert_eq!(found[0].message, "throttle_time_ms missing");
        let end = frame.len() as u32;
        assert_eq!(
            (found[0].start, found[0].end),
            (end, end),
            "after responses"
        );
    }
}

#[test]
fn a_response_laid_out_as_the_next_version_is_named() {
    // v2 added log_append_time_ms to each partition: read as v1, 8 bytes are left over.
    let frame = produce_response(2);
    let found = response_findings(&frame, 0, 1);
    assert_eq!(codes(&found), vec![Code::VersionMismatch], "{found:?}");
    assert_eq!(
        found[0].message,
        "Produce response laid out as v2; its request was v1"
    );
}

#[test]
fn a_response_header_without_its_tagged_fields_is_named() {
    // Metadata v9 calls for response header v1 (a tagged-field count after the correlation id).
    let broker = map(&[
        ("node_id", Input::Int(1)),
        ("host", s("localhost")),
        ("port", Input::Int(9092)),
    ]);
    let fields = map(&[
        ("brokers", Input::List(vec![broker])),
        ("cluster_id", s("c1")),
        ("controller_id", Input::Int(1)),
    ]);
    let spec = encode::response(3, 9, 5, &fields).unwrap();
    assert_eq!(response_findings(&spec, 3, 9), vec![]);
    let mut body = spec[4..].to_vec();
    body.remove(4);
    let frame = with_size_prefix(&body);
    let found = response_findings(&frame, 3, 9);
    assert_eq!(codes(&found), vec![Code::HeaderVersion], "{found:?}");
    assert_eq!(
        found[0].message,
        "response header v0 where Metadata v9 calls for v1"
    );
}

/// A request frame from its header fields and raw body bytes (header v1: no tagged fields).
fn raw_request(key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&key.to_be_bytes());
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(&9i32.to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.push(b'c');
    b.extend_from_slice(body);
    with_size_prefix(&b)
}

#[test]
fn trailing_bytes_no_layout_explains_are_named_with_their_range() {
    let frame = raw_request(18, 0, &[0xde, 0xad, 0xbe, 0xef]);
    let found = request_findings(&frame);
    assert_eq!(codes(&found), vec![Code::TrailingBytes], "{found:?}");
    let n = frame.len() as u32;
    assert_eq!((found[0].start, found[0].end), (n - 4, n));
    assert_eq!(found[0].level, Level::Warning);
    assert_eq!(request_findings(&raw_request(18, 0, &[])), vec![]);
}

#[test]
fn a_response_without_its_request_lists_what_it_reads_as() {
    let frame = encode::response(
        18,
        0,
        3,
        &map(&[(
            "api_keys",
            Input::List(vec![map(&[
                ("api_key", Input::Int(0)),
                ("max_version", Input::Int(8)),
            ])]),
        )]),
    )
    .unwrap();
    let found = check_response(&frame, &dissect_response(&frame, -1, -1), -1, -1);
    assert_eq!(codes(&found), vec![Code::RequestNotCaptured]);
    assert!(
        found[0].message.contains("ApiVersions v0"),
        "{}",
        found[0].message
    );
    assert!(infer_candidates(&frame).contains(&(18, 0)));
    assert_eq!(found[0].level, Level::Info);
}

#[test]
fn nulls_negative_lengths_and_overruns_are_named() {
    // FindCoordinator v0: key is a STRING (not nullable).
    let null_key = raw_request(10, 0, &[0xff, 0xff]);
    assert_eq!(
        codes(&request_findings(&null_key)),
        vec![Code::NullNotNullable]
    );
    let negative = raw_request(10, 0, &[0xff, 0xfe]);
    assert_eq!(
        codes(&request_findings(&negative)),
        vec![Code::NegativeLength]
    );
    let overrun = raw_request(10, 0, &[0x00, 0x64, b'g', b'r', b'p']);
    let found = request_findings(&overrun);
    assert_eq!(codes(&found), vec![Code::LengthOverrun], "{found:?}");
    assert_eq!(found[0].start, 15, "at the length prefix");
    let fine = raw_request(10, 0, &[0x00, 0x03, b'g', b'r', b'p']);
    assert_eq!(request_findings(&fine), vec![]);
}

#[test]
fn a_frame_shorter_than_its_size_prefix_is_truncated() {
    let mut frame = raw_request(10, 0, &[0x00, 0x03, b'g', b'r', b'p']);
    frame.truncate(frame.len() - 2);
    let found = request_findings(&frame);
    assert_eq!(codes(&found), vec![Code::Truncated], "{found:?}");
}

/// An ApiVersions v3 request (flexible) whose body's tagged fields are `tags`.
fn api_versions_v3(tags: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&18i16.to_be_bytes());
    b.extend_from_slice(&3i16.to_be_bytes());
    b.extend_from_slice(&9i32.to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.push(b'c');
    b.push(0); // header tagged fields
    for name in ["kcat", "1.0"] {
        b.push(name.len() as u8 + 1);
        b.extend_from_slice(name.as_bytes());
    }
    b.push(tags.len() as u8);
    for (tag, data) in tags {
        b.push(*tag);
        b.push(data.len() as u8);
        b.extend_from_slice(data);
    }
    with_size_prefix(&b)
}

#[test]
fn tagged_fields_unknown_or_out_of_order_are_named() {
    assert_eq!(request_findings(&api_versions_v3(&[])), vec![]);
    let unknown = request_findings(&api_versions_v3(&[(9, b"xy")]));
    assert_eq!(codes(&unknown), vec![Code::TagUnknown], "{unknown:?}");
    assert_eq!(
        unknown[0].message,
        "tagged field 9 is not defined in ApiVersions v3"
    );
    let disorder = request_findings(&api_versions_v3(&[(9, b"x"), (4, b"y")]));
    assert_eq!(codes(&disorder), vec![Code::TagOrder], "{disorder:?}");
}

#[test]
fn an_error_code_the_guide_does_not_list_is_named() {
    let frame = encode::response(12, 0, 1, &map(&[("error_code", Input::Int(27))])).unwrap();
    assert_eq!(response_findings(&frame, 12, 0), vec![]);
    let frame = encode::response(12, 0, 1, &map(&[("error_code", Input::Int(9999))])).unwrap();
    let found = response_findings(&frame, 12, 0);
    assert_eq!(codes(&found), vec![Code::ErrorCodeUnknown]);
    assert_eq!((found[0].start, found[0].end), (8, 10));
}

/// A Produce v3 request carrying `batch` for orders/0.
fn produce_request(batch: &[u8]) -> Vec<u8> {
    let partition = map(&[
        ("index", Input::Int(0)),
        ("records", Input::Bytes(batch.to_vec())),
    ]);
    let topic = map(&[
        ("name", s("orders")),
        ("partition_data", Input::List(vec![partition])),
    ]);
    let fields = map(&[
        ("acks", Input::Int(1)),
        ("timeout_ms", Input::Int(1000)),
        ("topic_data", Input::List(vec![topic])),
    ]);
    encode::request(0, 3, 1, Some("c"), &fields).unwrap()
}

/// A batch of one record with `edit` applied to its bytes, CRC recomputed.
fn batch_with(edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = crate::test_frames::record_batch(&[b"a"]).to_vec();
    edit(&mut b);
    let crc = batch::batch_crc(&b);
    b[batch::BATCH_CRC_OFFSET..batch::BATCH_CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn record_batch_faults_are_named() {
    let good = produce_request(&batch_with(|_| {}));
    assert_eq!(request_findings(&good), vec![]);

    let mut corrupt = good.clone();
    let last = corrupt.len() - 2;
    corrupt[last] ^= 0xff;
    assert_eq!(codes(&request_findings(&corrupt)), vec![Code::CrcMismatch]);

    // Two records counted, offsets for one.
    let counted = produce_request(&batch_with(|b| {
        b[57..61].copy_from_slice(&2i32.to_be_bytes())
    }));
    let found = request_findings(&counted);
    assert!(
        found.iter().all(|f| f.code == Code::RecordCount),
        "{found:?}"
    );
    assert!(found.iter().any(|f| f.level == Level::Error
        && f.message == "records_count 2 but last_offset_delta 0: at most 1 records have offsets in the batch"));

    // A produced batch of one record whose last offset delta says three.
    let delta = produce_request(&batch_with(|b| {
        b[23..27].copy_from_slice(&2i32.to_be_bytes())
    }));
    let found = request_findings(&delta);
    assert_eq!(codes(&found), vec![Code::RecordCount], "{found:?}");
    assert_eq!(found[0].level, Level::Warning);

    // A control batch not marked transactional.
    let control = produce_request(&batch_with(|b| b[22] |= 0x20));
    let found = request_findings(&control);
    assert_eq!(codes(&found), vec![Code::BatchAttributes], "{found:?}");
    assert_eq!(found[0].message, "a control batch not marked transactional");

    // A transactional batch without a producer id.
    let txn = produce_request(&batch_with(|b| b[22] |= 0x10));
    let found = request_findings(&txn);
    assert_eq!(codes(&found), vec![Code::BatchAttributes]);
    assert_eq!(found[0].level, Level::Error);
}

#[test]
fn codes_parse_from_their_words_and_every_code_is_described() {
    for c in Code::ALL {
        assert_eq!(c.word().parse::<Code>(), Ok(*c));
        assert!(!c.describe().is_empty());
    }
    assert!("no-such-code".parse::<Code>().is_err());
}

#[test]
fn an_impossible_value_is_undecodable_where_it_stands() {
    // Metadata v4: an empty topics array, then allow_auto_topic_creation as the byte 2.
    let frame = raw_request(3, 4, &[0, 0, 0, 0, 2]);
    let found = request_findings(&frame);
    assert_eq!(codes(&found), vec![Code::Undecodable], "{found:?}");
    assert_eq!(found[0].start as usize, frame.len() - 1);
    assert!(
        found[0].message.contains("boolean byte 2"),
        "{}",
        found[0].message
    );
    assert_eq!(
        request_findings(&raw_request(3, 4, &[0, 0, 0, 0, 1])),
        vec![]
    );
}

#[test]
fn a_large_frame_gets_fewer_readings_so_its_cost_is_bounded() {
    use super::layout::{trials_for, BUDGET_BYTES};
    assert_eq!(trials_for(200, 400), 400);
    assert_eq!(trials_for(4 << 20, 400), 8);
    assert_eq!(trials_for(BUDGET_BYTES * 2, 400), 1);
    // A 1 MiB response whose request is unknown, of bytes no API reads: still one finding.
    let frame = with_size_prefix(&vec![0xab; 1 << 20]);
    let found = check_response(&frame, &dissect_response(&frame, -1, -1), -1, -1);
    assert_eq!(codes(&found), vec![Code::RequestNotCaptured]);
}

#[test]
fn record_batch_faults_are_found_in_a_dissection_that_left_the_records_unexpanded() {
    use crate::dissect::{dissect_request_with, Limits};
    let unexpanded =
        |frame: &[u8]| check_request(frame, &dissect_request_with(frame, Limits::WITHOUT_RECORDS));
    let good = produce_request(&batch_with(|_| {}));
    assert_eq!(unexpanded(&good), vec![]);
    let mut corrupt = good.clone();
    let last = corrupt.len() - 2;
    corrupt[last] ^= 0xff;
    for frame in [
        corrupt,
        produce_request(&batch_with(|b| {
            b[23..27].copy_from_slice(&2i32.to_be_bytes())
        })),
        produce_request(&batch_with(|b| b[22] |= 0x20)),
        produce_request(&batch_with(|b| b[22] |= 0x10)),
    ] {
        let full = request_findings(&frame);
        assert!(!full.is_empty());
        assert_eq!(unexpanded(&frame), full);
    }
}
