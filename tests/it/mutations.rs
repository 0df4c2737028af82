//! Response mutations through the real binary: `--mutate` and `mutate add` on its control
//! input, with raw sockets (byte for byte), kcat and kafka-python. What each mutated exchange
//! says and keeps (the bytes sent) is read from `--headless --json`.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use serde_json::Value as Json;

use common::clients::{self, unhex, Client, Job};
use common::frame::Raw;
use common::{notes, Broker};

const MOVE_THROTTLE: &str =
    "move produce.response.throttle_time_ms before produce.response.responses";

/// A Produce of one record holding `value`, acks=-1; legacy magic 1 below v3 (as clients of
/// those versions send).
fn produce(topic: &str, version: i16, value: &str) -> ProduceRequest {
    let magic = if version < 3 { 1 } else { 2 };
    common::frame::produce_req(topic, 0, -1, common::frame::records(&[value], magic, None))
}

/// The Produce exchanges with this correlation id on the broker's output (waiting for them).
fn produce_exchange(b: &mut Broker, corr: i32) -> Json {
    let found = b.exchanges_until(Duration::from_secs(10), |all| {
        all.iter()
            .any(|e| e["api_name"] == "Produce" && e["correlation_id"] == corr)
    });
    found
        .into_iter()
        .rev()
        .find(|e| e["api_name"] == "Produce" && e["correlation_id"] == corr)
        .unwrap_or_else(|| panic!("no Produce exchange corr={corr}"))
}

#[test]
fn moving_throttle_time_ms_gives_the_bytes_of_placement_front() {
    let throttle = 0x0102_0304.to_string();
    let mut front = Broker::start(&["--json", "--throttle-ms", &throttle, "--placement", "front"]);
    let rule = format!("api=produce,versions=1-8:{MOVE_THROTTLE}");
    let mut mutated = Broker::start(&["--json", "--throttle-ms", &throttle, "--mutate", &rule]);
    let mut a = Raw::connect(front.addr, "mutation-test");
    let mut b = Raw::connect(mutated.addr, "mutation-test");
    for version in [1i16, 2, 3, 5, 7, 8, 9] {
        let topic = format!("same-v{version}");
        let corr = a.send(ApiKey::Produce, version, &produce(&topic, version, "x"));
        assert_eq!(
            b.send(ApiKey::Produce, version, &produce(&topic, version, "x")),
            corr
        );
        let (fa, fb) = (a.read_frame(), b.read_frame());
        assert_eq!(
            fa, fb,
            "v{version}: --placement front and the mutation send the same bytes"
        );
        let moved = version <= 8;
        // Where the throttle sits: right after the correlation id (front), or last (v9 spec,
        // before the one-byte tagged-field section).
        let at = if moved { 8 } else { fb.len() - 5 };
        assert_eq!(&fb[at..at + 4], &0x0102_0304i32.to_be_bytes(), "v{version}");
        // The exchange says what was done, and keeps the bytes sent.
        let ex = produce_exchange(&mut mutated, corr);
        let said = notes(&ex);
        let note = format!("mutated (rule 1): {MOVE_THROTTLE}");
        assert_eq!(said.contains(&note), moved, "v{version}: {said:?}");
        assert_eq!(
            unhex(ex["response"]["frame_hex"].as_str().unwrap()),
            fb,
            "v{version}"
        );
        let ex = produce_exchange(&mut front, corr);
        assert!(
            notes(&ex)
                .iter()
                .any(|n| n.starts_with("throttle_time_ms placement: ")),
            "{ex}"
        );
    }
}

#[test]
fn set_error_code_reaches_kcat_though_the_record_is_stored() {
    let mut b = Broker::start(&[
        "--json",
        "--mutate",
        "api=produce:set produce.response.responses.partition_responses.error_code=MESSAGE_TOO_LARGE",
    ]);
    let boot = b.bootstrap();
    let out = common::kcat_output(&["-b", &boot, "-P", "-t", "said-too-large"], Some("kept\n"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "kcat failed the message:\n{err}");
    assert!(err.contains("Broker: Message size too large"), "{err}");
    // A mutation changes what is said, not what is done: the record is there.
    let got = common::kcat(
        &["-b", &boot, "-C", "-t", "said-too-large", "-e", "-q"],
        None,
    );
    assert_eq!(got.trim(), "kept");
    let all = b.exchanges_until(Duration::from_secs(10), |all| {
        all.iter().any(|e| e["api_name"] == "Produce")
    });
    let ex = all.iter().find(|e| e["api_name"] == "Produce").unwrap();
    assert!(
        notes(ex).contains(
            &"mutated (rule 1): set produce.response.responses.partition_responses.error_code=MESSAGE_TOO_LARGE"
                .to_string()
        ),
        "{ex}"
    );
    // The bytes sent decode in kafka-protocol, with the code set.
    let frame = unhex(ex["response"]["frame_hex"].as_str().unwrap());
    let version = ex["api_version"].as_i64().unwrap() as i16;
    let mut body = Bytes::copy_from_slice(&frame[4..]);
    ResponseHeader::decode(&mut body, ApiKey::Produce.response_header_version(version)).unwrap();
    let resp = ProduceResponse::decode(&mut body, version).unwrap();
    assert!(body.is_empty());
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 10);
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 0);
}

#[test]
fn a_corrupted_crc_is_caught_by_kcat_and_kafka_python() {
    let b = Broker::start(&["--mutate", "corrupt crc"]);
    let boot = b.bootstrap();
    common::kcat(&["-b", &boot, "-P", "-t", "crc"], Some("hello\n"));
    let out = common::kcat_output(
        &[
            "-b",
            &boot,
            "-C",
            "-t",
            "crc",
            "-e",
            "-X",
            "check.crcs=true",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed CRC32C check"), "kcat:\n{err}");
    let run = clients::run_to_end(
        &Client::find("kafka-python"),
        &boot,
        &Job::consume("crc", "crc-group", 1).with("timeout_ms=15000"),
    );
    run.assert_error(&["CorruptRecordError", "failed crc check"]);
}

#[test]
fn mutations_change_at_runtime_and_say_when_they_cannot_apply() {
    let mut b = Broker::start(&["--json"]);
    let mut c = Raw::connect(b.addr, "mutation-test");
    c.send(ApiKey::Produce, 7, &produce("runtime", 7, "a"));
    let spec = c.read_frame();
    let reply: Json = serde_json::from_str(
        &b.command("Mutate Add API=Produce:omit produce.response.throttle_time_ms"),
    )
    .unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(
        reply["message"],
        "mutation 1 added: api=produce:omit produce.response.throttle_time_ms"
    );
    // The next response on the same connection has no throttle_time_ms; the tree shows the
    // bytes as sent (which a spec reader finds 4 bytes short).
    let corr = c.send(ApiKey::Produce, 7, &produce("runtime", 7, "b"));
    let omitted = c.read_frame();
    assert_eq!(omitted.len(), spec.len() - 4);
    let ex = produce_exchange(&mut b, corr);
    assert!(notes(&ex).contains(&"mutated (rule 1): omit produce.response.throttle_time_ms".into()));
    assert!(!ex["response"]["error"].is_null(), "{}", ex["response"]);
    // A version without the field: said, and the response sent as encoded.
    let corr = c.send(ApiKey::Produce, 0, &produce("runtime", 0, "c"));
    let v0 = c.read_frame();
    let ex = produce_exchange(&mut b, corr);
    assert!(
        notes(&ex).contains(
            &"mutation (rule 1) not applied: produce.response.throttle_time_ms is absent in Produce v0"
                .into()
        ),
        "{ex}"
    );
    assert!(ex["response"]["error"].is_null());
    assert_eq!(unhex(ex["response"]["frame_hex"].as_str().unwrap()), v0);
    // Deleted: spec again.
    let reply: Json = serde_json::from_str(&b.command("mutate del 1")).unwrap();
    assert_eq!(reply["state"]["mutations"], serde_json::json!([]));
    c.send(ApiKey::Produce, 7, &produce("runtime", 7, "d"));
    assert_eq!(c.read_frame().len(), spec.len());
    // A wrong correlation id: librdkafka's own complaint (at debug level), and no metadata.
    b.command("mutate add api=metadata:set kafka.correlation_id=7777");
    let out = common::kcat_output(
        &[
            "-b",
            &b.bootstrap(),
            "-L",
            "-m",
            "2",
            "-d",
            "broker,protocol",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("Response for unknown CorrId 7777"),
        "kcat:\n{err}"
    );
    assert!(err.contains("Failed to acquire metadata"), "kcat:\n{err}");
}
