//! The lint against the real binary: a capture of the embedded broker in `front` (every
//! ProduceResponse v1-v8 named, nothing else), the shipped captures, the third-party captures
//! (what is wrong in them named, nothing in the well-formed ones), a version the broker did not
//! advertise, the display filter's lint names, and `chronik-tui lint`'s output and exit codes.
//! The real clients' own sessions lint clean in `replay::replays_the_same`.

use crate::common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use chronik_tui::protocol::encode::{self, Input};
use common::frame::read_frame;
use serde_json::Value as Json;

const BIN: &str = env!("CARGO_BIN_EXE_chronik-tui");

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
}

/// `chronik-tui lint ARGS`: exit code, stdout lines, stderr.
fn lint(args: &[&str]) -> (Option<i32>, Vec<String>, String) {
    let out = Command::new(BIN)
        .arg("lint")
        .args(args)
        .output()
        .expect("run chronik-tui lint");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (
        out.status.code(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `chronik-tui lint --json FILE --kafka-port PORT`: exit code and the findings.
pub fn lint_json(file: &Path, port: u16) -> (Option<i32>, Vec<Json>) {
    let port = port.to_string();
    let (code, lines, stderr) = lint(&[
        file.to_str().expect("a UTF-8 path"),
        "--json",
        "--kafka-port",
        &port,
    ]);
    let findings = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}\n{stderr}")))
        .collect();
    (code, findings)
}

/// `chronik-tui decode --json` of a capture: every exchange.
fn decoded(file: &Path, port: u16) -> Vec<Json> {
    let out = Command::new(BIN)
        .args(["decode", "--json", "--kafka-port", &port.to_string()])
        .arg(file)
        .output()
        .expect("run chronik-tui decode");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn map(fields: &[(&str, Input)]) -> Input {
    Input::Map(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// A Produce request of `version` for partition 0 of `topic` with no records (acks=1).
fn produce(version: i16, corr: i32, topic: &str) -> Vec<u8> {
    produce_records(version, corr, topic, Input::Null)
}

/// A Produce request of `version` for partition 0 of `topic` with `records` (acks=1).
fn produce_records(version: i16, corr: i32, topic: &str, records: Input) -> Vec<u8> {
    let partition = map(&[("index", Input::Int(0)), ("records", records)]);
    let data = map(&[
        ("name", Input::Str(topic.into())),
        ("partition_data", Input::List(vec![partition])),
    ]);
    let fields = map(&[
        ("acks", Input::Int(1)),
        ("timeout_ms", Input::Int(5000)),
        ("topic_data", Input::List(vec![data])),
    ]);
    encode::request(0, version, corr, Some("lint-test"), &fields).expect("encodes")
}

#[test]
fn front_is_named_on_every_produce_response_v1_to_v8_and_on_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("front.pcapng");
    let mut broker =
        common::Broker::start(&["--placement", "front", "--record", file.to_str().unwrap()]);
    // A real client's session first (kcat reads the misplaced field and gives up on the
    // batch), then every Produce version the schema has, on one connection.
    let bootstrap = broker.bootstrap();
    let _ = common::kcat_output(
        &[
            "-P",
            "-b",
            &bootstrap,
            "-t",
            "lint-front",
            "-m",
            "5",
            "-X",
            "message.timeout.ms=3000",
        ],
        Some("one\ntwo\n"),
    );
    let mut s = TcpStream::connect(broker.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    for v in 0..=11i16 {
        s.write_all(&produce(v, 100 + i32::from(v), "lint-front"))
            .unwrap();
        read_frame(&mut s);
    }
    broker.terminate();
    let port = broker.addr.port();
    let exchanges = decoded(&file, port);
    let (code, findings) = lint_json(&file, port);
    let should: Vec<u64> = exchanges
        .iter()
        .filter(|e| {
            e["api_key"] == 0
                && (1..=8).contains(&e["api_version"].as_i64().unwrap())
                && !e["response"].is_null()
        })
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    let named: Vec<u64> = findings
        .iter()
        .map(|f| f["exchange"].as_u64().unwrap())
        .collect();
    let kcat = exchanges
        .iter()
        .filter(|e| e["api_key"] == 0 && e["client_id"] == "rdkafka")
        .count();
    assert!(
        kcat >= 1 && should.len() == 8 + kcat,
        "kcat's and ours: {should:?}"
    );
    assert_eq!(named, should, "{findings:#?}");
    for f in &findings {
        assert_eq!(f["code"], "field-misplaced", "{f}");
        assert_eq!(
            f["message"], "throttle_time_ms sent before responses",
            "{f}"
        );
        assert_eq!(
            (f["side"].as_str(), f["start"].as_u64()),
            (Some("response"), Some(8))
        );
        assert_eq!(f["level"], "error");
    }
    assert_eq!(code, Some(1), "an error was found");
}

#[test]
fn the_shipped_captures_lint_as_their_placement_says_with_text_json_levels_and_exit_codes() {
    let spec = shipped("kafka-python-2-spec.pcapng");
    let front = shipped("kafka-python-2-front.pcapng");
    let (code, lines, stderr) = lint(&[spec.to_str().unwrap()]);
    assert_eq!((code, lines.len()), (Some(0), 0), "{lines:?}\n{stderr}");
    assert!(
        stderr.contains("0 errors, 0 warnings, 0 info on 0 of 5 exchanges"),
        "{stderr}"
    );
    let (code, lines, stderr) = lint(&[front.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        lines,
        vec![
            "#5 conn=2 Produce v7 corr=2 error field-misplaced (response bytes 8-11): \
             throttle_time_ms sent before responses; decodes cleanly, nothing left over, with \
             produce.response.throttle_time_ms read before responses; Produce v7 has it after \
             responses"
        ]
    );
    // Only what is printed is filtered; the exit code counts everything.
    let (code, lines, _) = lint(&[front.to_str().unwrap(), "--level", "ERROR"]);
    assert_eq!((code, lines.len()), (Some(1), 1));
    let not_a_capture = tempfile::tempdir().unwrap();
    let (code, _, stderr) = lint(&[not_a_capture.path().to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = lint(&[front.to_str().unwrap(), "--level", "loud"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn the_display_filter_selects_exchanges_by_their_findings() {
    let front = shipped("kafka-python-2-front.pcapng");
    let filtered = |expr: &str| -> Vec<String> {
        let out = Command::new(BIN)
            .args(["decode", "-Y", expr])
            .arg(&front)
            .output()
            .unwrap();
        assert!(out.status.success(), "{expr}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let flagged = filtered("lint");
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert!(
        flagged[0].contains("[lint error field-misplaced: throttle_time_ms sent before responses]"),
        "the headless line says it: {}",
        flagged[0]
    );
    for expr in [
        "lint.code == field-misplaced",
        "lint.level == error",
        "lint.message ~ \"before responses\"",
        "api == Produce && lint",
    ] {
        assert_eq!(filtered(expr), flagged, "{expr}");
    }
    assert_eq!(filtered("!lint").len(), 4);
    assert_eq!(
        filtered("lint.code == trailing-bytes"),
        Vec::<String>::new()
    );
}

#[test]
fn third_party_captures_lint_clean_except_for_what_is_wrong_in_them() {
    let Some(dir) = common::tshark::third_party_dir() else {
        return;
    };
    for (name, port) in common::tshark::THIRD_PARTY_CAPTURES {
        let (code, findings) = lint_json(&dir.join(name), *port);
        let seen: Vec<(String, String)> = findings
            .iter()
            .map(|f| {
                (
                    f["code"].as_str().unwrap().to_string(),
                    f["message"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want: Vec<(&str, &str)> = match *name {
            // librdkafka's four ApiVersions v0 requests carry 4 bytes more than v0 has; three
            // responses' requests are not in the capture.
            "ndpi-kafka.pcapng" => {
                let trailing = (
                    "trailing-bytes",
                    "4 bytes after the last field of ApiVersions v0",
                );
                let not_captured = |api| ("request-not-captured", api);
                vec![
                    trailing,
                    not_captured("the body reads cleanly as Metadata v2"),
                    not_captured("the body reads cleanly as ApiVersions v0"),
                    not_captured("the body reads cleanly as Metadata v2"),
                    trailing,
                    trailing,
                    trailing,
                ]
            }
            // deepflow's "unknown" case: a Fetch response whose error_code is 5120, which no
            // Kafka version defines.
            "deepflow-01-fetch-v12-unknown.pcap" => vec![(
                "error-code-unknown",
                "fetch.response.error_code 5120 is not an error code the protocol guide lists",
            )],
            _ => vec![],
        };
        let want: Vec<(String, String)> = want
            .into_iter()
            .map(|(c, m)| (c.to_string(), m.to_string()))
            .collect();
        assert_eq!(seen, want, "{name}");
        let warned = findings.iter().any(|f| f["level"] != "info");
        assert_eq!(code, Some(i32::from(warned)), "{name}");
    }
}

#[test]
fn a_request_at_a_version_the_broker_did_not_advertise_is_named_live() {
    let mut broker = common::Broker::start(&["--json", "--cap", "metadata=4"]);
    let mut s = TcpStream::connect(broker.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let api_versions = encode::request(18, 0, 1, Some("lint-test"), &map(&[])).unwrap();
    s.write_all(&api_versions).unwrap();
    read_frame(&mut s);
    let metadata = encode::request(3, 9, 2, Some("lint-test"), &map(&[])).unwrap();
    s.write_all(&metadata).unwrap();
    let exchanges = broker.exchanges_until(std::time::Duration::from_secs(10), |seen| {
        seen.iter().any(|e| e["api_key"] == 3)
    });
    let ex = exchanges
        .iter()
        .find(|e| e["api_key"] == 3)
        .expect("the Metadata exchange");
    let lint = ex["lint"].as_array().expect("a lint array");
    assert_eq!(lint.len(), 1, "{ex}");
    assert_eq!(lint[0]["code"], "version-not-advertised");
    assert_eq!(
        lint[0]["message"],
        "Metadata v9 is outside the v0-v4 the broker advertised"
    );
    let first = exchanges.iter().find(|e| e["api_key"] == 18).unwrap();
    assert_eq!(first["lint"], serde_json::json!([]), "{first}");
}

/// A Produce v3 request (acks=1) with one batch of one record from idempotent producer 7,
/// epoch 0, at `sequence`, for partition 0 of `topic`.
fn idempotent_produce(corr: i32, topic: &str, sequence: i32) -> Vec<u8> {
    // The record: length 7, attributes, timestamp and offset deltas 0, no key, value "x", no
    // headers (varints zig-zagged).
    let record = [14u8, 0, 0, 0, 1, 2, b'x', 0];
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((49 + record.len()) as i32).to_be_bytes()); // batch length
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&0i64.to_be_bytes()); // base timestamp
    b.extend_from_slice(&0i64.to_be_bytes()); // max timestamp
    b.extend_from_slice(&7i64.to_be_bytes()); // producer id
    b.extend_from_slice(&0i16.to_be_bytes()); // producer epoch
    b.extend_from_slice(&sequence.to_be_bytes()); // base sequence
    b.extend_from_slice(&1i32.to_be_bytes()); // records
    b.extend_from_slice(&record);
    let crc = chronik_tui::protocol::batch::batch_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    produce_records(3, corr, topic, Input::Bytes(b))
}

#[test]
fn decode_prints_the_connection_history_findings_the_lint_finds_with_every_worker() {
    // decode applies the history on its writing thread, after the printing workers: enough
    // exchanges for several batches on several workers, findings in several of them, and
    // one connection closed between them.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("history.pcapng");
    let mut broker =
        common::Broker::start(&["--record", file.to_str().unwrap(), "--cap", "metadata=4"]);
    let connect = || {
        let s = TcpStream::connect(broker.addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s
    };
    let exchange = |s: &mut TcpStream, frame: &[u8]| {
        s.write_all(frame).unwrap();
        read_frame(s);
    };
    let mut closed = connect();
    exchange(
        &mut closed,
        &encode::request(18, 0, 1, Some("lint-test"), &map(&[])).unwrap(),
    );
    drop(closed);
    let mut s = connect();
    exchange(
        &mut s,
        &encode::request(18, 0, 1, Some("lint-test"), &map(&[])).unwrap(),
    );
    let (mut corr, mut want) = (2, Vec::new());
    for i in 0..900 {
        let version = if i % 97 == 5 { 9 } else { 4 };
        if version == 9 {
            want.push((corr, "version-not-advertised"));
        }
        let metadata = encode::request(3, version, corr, Some("lint-test"), &map(&[])).unwrap();
        exchange(&mut s, &metadata);
        corr += 1;
        if i % 300 == 150 {
            // Sequences 0, 1, then 5 (a gap of 3), then 5 again (a resend).
            for (sequence, finding) in [
                (0, None),
                (1, None),
                (5, Some("sequence-gap")),
                (5, Some("sequence-repeat")),
            ] {
                if let Some(code) = finding {
                    want.push((corr, code));
                }
                exchange(
                    &mut s,
                    &idempotent_produce(corr, &format!("history-{i}"), sequence),
                );
                corr += 1;
            }
        }
    }
    drop(s);
    broker.terminate();
    let port = broker.addr.port();

    // What `lint` finds (the store's history, in order on the reading thread).
    let (_, findings) = lint_json(&file, port);
    let mut linted: Vec<(i64, String)> = findings
        .iter()
        .filter(|f| f["conn"] == 2)
        .map(|f| {
            (
                f["correlation_id"].as_i64().unwrap(),
                f["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    linted.sort();
    let want: Vec<(i64, String)> = want
        .iter()
        .map(|(c, code)| (i64::from(*c), code.to_string()))
        .collect();
    assert_eq!(linted, want, "lint");

    // decode --json, with every worker: the same findings in the exchanges' lint.
    let decoded: Vec<(i64, String)> = decoded(&file, port)
        .iter()
        .filter(|e| e["conn"] == 2)
        .flat_map(|e| {
            let corr = e["correlation_id"].as_i64().unwrap();
            e["lint"]
                .as_array()
                .expect("a lint array")
                .iter()
                .filter(|f| f["code"] != "field-misplaced")
                .map(move |f| (corr, f["code"].as_str().unwrap().to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(decoded, want, "decode --json");

    // Lines, fields and the display filter, with every worker and with one (`-t relative`,
    // where the store applies the history): the same text.
    let run = |args: &[&str]| -> String {
        let out = Command::new(BIN)
            .args(["decode", "--kafka-port", &port.to_string()])
            .args(args)
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let fields = ["-e", "conn,corr,api,lint.code"];
    assert_eq!(run(&fields), run(&[fields[0], fields[1], "-t", "relative"]));
    let history = "lint.code == sequence-gap || lint.code == sequence-repeat \
                   || lint.code == version-not-advertised";
    let flagged = run(&["-e", "corr,lint.code", "-Y", history]);
    let lines: Vec<&str> = flagged.lines().collect();
    assert_eq!(lines.len(), want.len(), "{flagged}");
    for (line, (corr, code)) in lines.iter().zip(&want) {
        assert_eq!(*line, format!("{corr}\t{code}"));
    }
    let first_two = run(&["-e", "corr", "-Y", history, "-c", "2"]);
    assert_eq!(
        first_two,
        format!("{}\n{}\n", want[0].0, want[1].0),
        "--count counts the lines the history kept"
    );
    let all = run(&[]);
    let named = "[lint warning version-not-advertised: Metadata v9 is outside the v0-v4 the \
                 broker advertised]";
    let named = all.lines().filter(|l| l.contains(named)).count();
    assert_eq!(named, 10, "the lines name the finding:\n{all}");
}
