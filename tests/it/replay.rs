//! `chronik-tui replay`: sessions of every real client recorded with `--record` against the real
//! binary, replayed against a fresh embedded broker with the same settings (no difference
//! outside the ignore list), with other settings (the difference shows, exit 1), and against a
//! second chronik-tui process with `--target`; each session lints clean (no finding at all);
//! the shipped captures of Chronik Stream 0.7.2's
//! bug; the command line's errors.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::clients::{self, Client, Job, Watched};
use serde_json::Value as Json;

const BIN: &str = env!("CARGO_BIN_EXE_chronik-tui");

fn captures(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
}

/// A recorded session: the file and the port its broker listened on.
struct Recording {
    _dir: tempfile::TempDir,
    file: PathBuf,
    port: u16,
}

/// Records a session of `client`: produce a few messages (compressed when the client can),
/// then consume them in a consumer group (by offset for a client without groups), with
/// `extra` arguments for both and `broker_args` for the broker. The broker is stopped with
/// SIGTERM, so the recording is complete.
fn record(
    test: &str,
    client: &str,
    file_name: &str,
    broker_args: &[&str],
    extra: &[&str],
) -> Recording {
    let client = Client::find(client);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(file_name);
    let mut args = vec!["--record", file.to_str().expect("a UTF-8 temp path")];
    args.extend_from_slice(broker_args);
    let mut broker = Watched::start(test, &args);
    let bootstrap = broker.bootstrap();
    let port = broker.broker.addr.port();
    let topic = format!("{test}-topic");
    let codec = if client.compressions.contains(&"gzip") {
        "gzip"
    } else {
        "none"
    };
    let mut job = Job::produce(&topic, 5, codec, 0);
    for e in extra {
        job = job.with(*e);
    }
    let run = clients::run(&client, &bootstrap, &job);
    let sent = clients::produced(&run, 0, 5);
    let group = format!("{test}-group");
    let mut job = Job::consume(&topic, &group, 5).with("idle_ms=500");
    if !client.groups {
        job = job.with("from_offset=0");
    }
    for e in extra {
        job = job.with(*e);
    }
    let run = clients::run(&client, &bootstrap, &job);
    let got = clients::consumed(&run, client.headers);
    clients::assert_exactly(&format!("{test}: the recorded session"), &got, &sent);
    broker.summary();
    broker.broker.terminate();
    Recording {
        _dir: dir,
        file,
        port,
    }
}

/// The lint finds nothing at all in a real client's session with the spec's placement.
fn lints_clean(test: &str, rec: &Recording) {
    let (code, findings) = crate::lint::lint_json(&rec.file, rec.port);
    assert_eq!(findings, Vec::<Json>::new(), "{test}: lint of the session");
    assert_eq!(code, Some(0), "{test}");
}

/// Runs `chronik-tui replay` with `args`.
fn replay(args: &[&str]) -> Output {
    let logs = tempfile::tempdir().expect("tempdir");
    Command::new(BIN)
        .arg("replay")
        .args(args)
        .arg("--log-file")
        .arg(logs.path().join("replay.log"))
        .stdin(Stdio::null())
        .output()
        .expect("run chronik-tui replay")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The replay's output, for failure messages.
fn shown(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Replays `rec` against a fresh broker with `settings` as JSON: each exchange's object, and
/// the summary.
fn replay_json(rec: &Recording, settings: &[&str]) -> (Output, Vec<Json>, Json) {
    let port = rec.port.to_string();
    let mut args = vec![
        rec.file.to_str().expect("a UTF-8 path"),
        "--kafka-port",
        &port,
        "--json",
    ];
    args.extend_from_slice(settings);
    let out = replay(&args);
    let mut lines: Vec<Json> = text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}\n{}", shown(&out)))
        })
        .collect();
    let summary = lines.pop().unwrap_or(Json::Null);
    assert_eq!(summary["kind"], "summary", "{}", shown(&out));
    (out, lines, summary)
}

/// The session replayed against a broker with the same settings: every exchange the same
/// outside the ignore list, exit 0. Identifiers the broker hands out differ (ignored), and
/// every exchange the capture answered is compared.
fn replays_the_same(test: &str, client: &str, extra: &[&str]) {
    let rec = record(test, client, "session.pcapng", &[], extra);
    lints_clean(test, &rec);
    let (out, exchanges, summary) = replay_json(&rec, &[]);
    assert_eq!(out.status.code(), Some(0), "{test}: {}", shown(&out));
    assert_eq!(summary["differ"], 0, "{test}: {}", shown(&out));
    let compared = exchanges
        .iter()
        .filter(|e| e["result"] == "same" && e["differences"].as_array().is_some())
        .count();
    assert!(
        summary["exchanges"].as_u64() == Some(exchanges.len() as u64) && compared >= 6,
        "{test}: {compared} responses compared\n{}",
        shown(&out)
    );
    let apis: Vec<&str> = exchanges.iter().filter_map(|e| e["api"].as_str()).collect();
    for api in ["Produce", "Fetch", "Metadata"] {
        assert!(
            apis.iter().any(|a| a.starts_with(api)),
            "{test}: no {api} replayed: {apis:?}"
        );
    }
    // Only answers the capture does not have are left out.
    for e in exchanges.iter().filter(|e| e["result"] == "not_compared") {
        assert_eq!(e["why"], "unanswered in the capture", "{test}: {e}");
    }
    eprintln!(
        "{test}: {} exchanges, {} ignored fields: {}",
        exchanges.len(),
        summary["ignored_fields"],
        text(&out.stderr).trim()
    );
}

#[test]
fn kafka_python_3_replays_the_same() {
    replays_the_same("replay_kafka_python_3", "kafka-python", &[]);
}

#[test]
fn kafka_python_2_0_2_replays_the_same() {
    replays_the_same("replay_kafka_python_2_0_2", "kafka-python-2", &[]);
}

#[test]
fn confluent_kafka_replays_the_same() {
    replays_the_same("replay_confluent_kafka", "confluent", &[]);
}

/// An idempotent producer replayed against a broker that hands out another producer id (it
/// gave one away before): the replayed batches carry the live broker's id (their CRC
/// recomputed), so the broker takes them as that producer's, and nothing differs but the ids.
#[test]
fn an_idempotent_session_carries_the_live_producer_id() {
    let test = "replay_confluent_kafka_idempotent";
    let idempotent = "idempotent=1";
    let rec = record(test, "confluent", "session.pcapng", &[], &[idempotent]);
    let target = common::Broker::start(&["--json"]);
    let client = Client::find("confluent");
    let warm_up = Job::produce("another-topic", 1, "none", 0).with(idempotent);
    clients::produced(&clients::run(&client, &target.bootstrap(), &warm_up), 0, 1);
    let (out, exchanges, summary) = replay_json(&rec, &["--target", &target.bootstrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_eq!(summary["differ"], 0, "{}", shown(&out));
    let init = exchanges
        .iter()
        .find(|e| {
            e["api"]
                .as_str()
                .is_some_and(|a| a.starts_with("InitProducerId"))
        })
        .unwrap_or_else(|| panic!("no InitProducerId replayed\n{}", shown(&out)));
    let ids = &init["ignored"][0];
    assert_eq!(
        ids["field"], "init_producer_id.response.producer_id",
        "{init}"
    );
    let (recorded, live) = (&ids["old"]["value"], &ids["new"]["value"]);
    assert_ne!(recorded, live, "{init}");
    // What the target received: the test topic's batches under the id it handed out.
    let topic = format!("{test}-topic");
    let mut batch_ids = Vec::new();
    while let Ok(line) = target.lines.recv_timeout(std::time::Duration::from_secs(2)) {
        let Ok(v) = serde_json::from_str::<Json>(&line) else {
            continue;
        };
        if v["api_name"] != "Produce" || !line.contains(&topic) {
            continue;
        }
        walk(&v["request"]["tree"], &mut |f| {
            if f["name"] == "record_batch.producer_id" {
                batch_ids.push(f["value"].to_string());
            }
            if f["name"] == "record_batch.crc" {
                assert!(f["note"].is_null(), "the CRC checks: {f}");
            }
        });
    }
    assert!(
        !batch_ids.is_empty(),
        "no replayed Produce reached the target"
    );
    for id in &batch_ids {
        assert_eq!(
            id,
            &live.as_str().unwrap_or_default().to_string(),
            "{batch_ids:?}"
        );
    }
}

fn walk(field: &Json, f: &mut dyn FnMut(&Json)) {
    f(field);
    for c in field["children"].as_array().into_iter().flatten() {
        walk(c, f);
    }
}

#[test]
fn aiokafka_replays_the_same() {
    replays_the_same("replay_aiokafka", "aiokafka", &[]);
}

#[test]
fn kcat_replays_the_same() {
    replays_the_same("replay_kcat", "kcat", &[]);
}

#[test]
fn kafkajs_replays_the_same() {
    replays_the_same("replay_kafkajs", "kafkajs", &[]);
}

#[test]
fn sarama_replays_the_same() {
    replays_the_same("replay_sarama", "sarama", &[]);
}

#[test]
fn rskafka_replays_the_same() {
    replays_the_same("replay_rskafka", "rskafka", &[]);
}

/// Two kafka-python members of one group over four partitions, then one leaving (the
/// clients test's session): the replay runs their connections at once, so each JoinGroup
/// waits for the other member as it did, and the rebalances come out the same.
#[test]
fn a_group_of_two_members_replays_the_same() {
    let test = "replay_group_two_members";
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("group.pcapng");
    let mut broker = crate::clients::group_members_with(
        test,
        &["kafka-python", "kafka-python"],
        &["--record", file.to_str().expect("a UTF-8 temp path")],
    );
    let port = broker.broker.addr.port();
    broker.broker.terminate();
    let rec = Recording {
        _dir: dir,
        file,
        port,
    };
    lints_clean(test, &rec);
    let (out, exchanges, summary) = replay_json(&rec, &["--default-partitions", "4"]);
    // The group protocol replays the same. A long-polling Fetch in an incremental fetch
    // session lists the partitions that changed since the member's last Fetch, which follows
    // the moment its records arrived: under load that can come out otherwise, and then the
    // replay says so (exit 1) for that Fetch alone.
    let differing: Vec<&Json> = exchanges
        .iter()
        .filter(|e| e["result"] == "differs")
        .collect();
    assert!(
        differing
            .iter()
            .all(|e| e["api_key"] == 1 && e["api_version"].as_i64() >= Some(7)),
        "{test}: {}",
        shown(&out)
    );
    let want = if differing.is_empty() { 0 } else { 1 };
    assert_eq!(out.status.code(), Some(want), "{test}: {}", shown(&out));
    assert_eq!(
        summary["differ"],
        differing.len(),
        "{test}: {}",
        shown(&out)
    );
    for api in ["JoinGroup", "SyncGroup"] {
        assert!(
            exchanges
                .iter()
                .filter(|e| e["api"].as_str().is_some_and(|a| a.starts_with(api)))
                .all(|e| e["result"] == "same"),
            "{test}: every {api} the same\n{}",
            shown(&out)
        );
    }
    let joins = exchanges
        .iter()
        .filter(|e| {
            e["api"]
                .as_str()
                .is_some_and(|a| a.starts_with("JoinGroup"))
        })
        .count();
    assert!(
        joins >= 4,
        "{test}: {joins} JoinGroups replayed\n{}",
        shown(&out)
    );
    assert!(summary["connections"].as_u64() >= Some(4), "{summary}");
}

/// SASL/PLAIN: the embedded broker requires the credentials the capture authenticated with;
/// kafka-python 2.0.2's bare tokens after SaslHandshake v0 are sent as they were, and their
/// answers compared.
#[test]
fn a_sasl_session_with_bare_tokens_replays_the_same() {
    let test = "replay_sasl_kafka_python_2_0_2";
    let sasl = "sasl=alice:s3cret";
    let rec = record(
        test,
        "kafka-python-2",
        "sasl.jsonl",
        &["--sasl-plain", "alice:s3cret"],
        &[sasl],
    );
    lints_clean(test, &rec);
    let (out, exchanges, summary) = replay_json(&rec, &[]);
    assert_eq!(out.status.code(), Some(0), "{test}: {}", shown(&out));
    assert_eq!(summary["differ"], 0, "{test}: {}", shown(&out));
    assert!(
        text(&out.stderr).contains("requires SASL/PLAIN as alice"),
        "{}",
        shown(&out)
    );
    let sasl: Vec<&Json> = exchanges
        .iter()
        .filter(|e| e["api"].as_str().is_some_and(|a| a.starts_with("Sasl")))
        .collect();
    assert!(
        sasl.iter()
            .any(|e| e["api"] == "SaslAuthenticate v0" && e["result"] == "same"),
        "{test}: the bare tokens were replayed and answered alike: {sasl:?}"
    );
}

/// The kcat session recorded against the default placement (`spec`) and replayed against
/// `--placement front`: the ProduceResponse differs where Chronik Stream 0.7.2 put the field.
#[test]
fn other_settings_show_their_difference_and_exit_1() {
    let test = "replay_kcat_front";
    let rec = record(test, "kcat", "session.pcapng", &[], &[]);
    let port = rec.port.to_string();
    let file = rec.file.to_str().expect("a UTF-8 path");
    let out = replay(&[file, "--kafka-port", &port, "--placement", "front"]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let stdout = text(&out.stdout);
    let produce: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" Produce v"))
        .collect();
    assert!(!produce.is_empty(), "{}", shown(&out));
    for l in &produce {
        assert!(
            l.contains("produce.response.throttle_time_ms 0 -> ")
                && l.contains("produce.response.responses.array_length 1 -> 0")
                && l.contains("kafka.trailing_bytes added"),
            "{l}"
        );
    }
    // Nothing else differs: the placement only moves ProduceResponse's field.
    for l in stdout.lines().filter(|l| l.starts_with('#')) {
        assert!(
            l.contains(" Produce v") || l.contains(": same") || l.contains("not compared"),
            "{l}"
        );
    }
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.contains(&format!("{} with differences", produce.len())),
        "{summary}"
    );
    // The field, ignored, no longer counts; the rest of the misread response still does.
    let out = replay(&[
        file,
        "--kafka-port",
        &port,
        "--placement",
        "front",
        "--ignore",
        "produce.response.responses",
        "--ignore",
        "*.throttle_time_ms",
        "--ignore",
        "kafka.trailing_bytes",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
}

/// `--target`: a second chronik-tui process, as any broker; the replay creates the topic there
/// first, and what differs by nature (its port) is ignored.
#[test]
fn a_session_replays_the_same_against_another_broker_with_target() {
    let test = "replay_target";
    let rec = record(test, "kcat", "session.jsonl", &[], &[]);
    let other = common::Broker::start(&[]);
    let (out, _, summary) = replay_json(&rec, &["--target", &other.bootstrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_eq!(summary["differ"], 0, "{}", shown(&out));
    assert_eq!(summary["against"], other.bootstrap(), "{}", shown(&out));
    assert!(
        text(&out.stderr).contains(&format!("created topics {test}-topic (1)")),
        "{}",
        shown(&out)
    );
    // The target saw the replayed session.
    let seen = other.wait_for_line(std::time::Duration::from_secs(5), |l| {
        l.contains(" Produce v") && l.contains(&format!("topics={test}-topic"))
    });
    assert!(seen.is_some(), "the target never saw the replayed Produce");
    // Broker settings belong to the embedded broker.
    let out = replay(&[
        rec.file.to_str().expect("a UTF-8 path"),
        "--target",
        &other.bootstrap(),
        "--placement",
        "front",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert_eq!(
        text(&out.stderr).trim(),
        "chronik-tui: --placement sets up the embedded broker; it cannot change the --target broker"
    );
}

/// The shipped captures of Chronik Stream 0.7.2's bug: against the placement they were
/// recorded with, nothing differs; against the other, the ProduceResponse does.
#[test]
fn the_shipped_captures_replay_against_their_placement() {
    for (name, port, placement, other) in [
        ("kafka-python-2-front.pcapng", "19093", "front", "spec"),
        ("kafka-python-2-spec.pcapng", "19094", "spec", "front"),
    ] {
        let file = captures(name);
        let file = file.to_str().expect("a UTF-8 path");
        // The front capture's client waited 11 s for its own timeout: replay 20 times faster.
        // The captures hold the ApiVersions list of the broker that recorded them; it grows
        // with every API served since, so it is left out of the comparison.
        let args = |p| {
            vec![
                file,
                "--kafka-port",
                port,
                "--speed",
                "20",
                "--placement",
                p,
                "--ignore",
                "api_versions.response.api_keys",
            ]
        };
        let out = replay(&args(placement));
        assert_eq!(out.status.code(), Some(0), "{name}: {}", shown(&out));
        let stdout = text(&out.stdout);
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.ends_with(": same") || l.contains(": same ("))
                .count(),
            5,
            "{name}: {stdout}"
        );
        let out = replay(&args(other));
        assert_eq!(out.status.code(), Some(1), "{name}: {}", shown(&out));
        let stdout = text(&out.stdout);
        let differing: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with('#') && !l.contains(": same"))
            .collect();
        assert_eq!(differing.len(), 1, "{name}: {stdout}");
        assert!(
            differing[0].starts_with("#5 conn=2 Produce v7 corr=2: ")
                && differing[0].contains("produce.response.throttle_time_ms "),
            "{name}: {}",
            differing[0]
        );
    }
}

#[test]
fn an_unknown_ignore_field_is_a_usage_error_with_a_suggestion() {
    let file = captures("kafka-python-2-spec.pcapng");
    let out = replay(&[
        file.to_str().unwrap(),
        "--ignore",
        "produce.response.throtle_time_ms",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr).trim(),
        "chronik-tui: --ignore produce.response.throtle_time_ms: unknown field \
         `produce.response.throtle_time_ms`; did you mean `produce.response.throttle_time_ms`?"
    );
}

#[test]
fn what_is_not_a_capture_fails_as_decode_does() {
    let tmp = tempfile::tempdir().unwrap();
    for (path, message) in crate::cli::not_captures(tmp.path()) {
        let out = replay(&[path.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{path:?}: {err}");
        assert!(out.stdout.is_empty(), "{path:?}");
        assert_eq!(err.lines().count(), 1, "{path:?}: {err}");
        assert!(
            err.starts_with(&format!("chronik-tui: {message}")),
            "{path:?}: {err}"
        );
    }
    // A capture with no Kafka exchange in it: nothing to compare is not "no difference".
    let empty = tmp.path().join("empty.pcap");
    let mut header = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&65535u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    std::fs::write(&empty, header).unwrap();
    let out = replay(&[empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "chronik-tui: {}: no Kafka exchanges to replay (are the brokers on another \
             --kafka-port?)",
            empty.display()
        )
    );
    // JSON that is not chronik-tui's says which line.
    let foreign = tmp.path().join("other.jsonl");
    std::fs::write(&foreign, "{\"hello\": 1}\n").unwrap();
    let out = replay(&[foreign.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "chronik-tui: {}: line 1: not an exchange: no conn",
            foreign.display()
        )
    );
}
