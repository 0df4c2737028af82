//! Faults through the real binary (`--fault`), each met by a real client that reports it in its
//! own words: kcat (librdkafka 2.0), confluent-kafka (librdkafka 2.16) and kafka-python 3.
//! What the broker did is read from the exchanges' notes (`--headless --json`). No timing is
//! asserted: a delay is checked by the client's timeout message, not by a clock.

use crate::common;

use std::time::Duration;

use kafka_protocol::messages::*;
use serde_json::Value as Json;

use common::clients::{self, Client, Headers, Job};
use common::frame::Raw;
use common::{notes, Broker};

/// Whether some exchange has a note starting with `prefix`.
fn noted(all: &[Json], prefix: &str) -> bool {
    all.iter()
        .any(|e| notes(e).iter().any(|n| n.starts_with(prefix)))
}

/// The exchanges the broker printed, waiting until one has a note starting with `prefix`.
fn until_noted(b: &mut Broker, prefix: &str) -> Vec<Json> {
    let all = b.exchanges_until(Duration::from_secs(20), |all| noted(all, prefix));
    assert!(noted(&all, prefix), "no exchange noted {prefix:?}");
    all
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_delay_beyond_the_request_timeout_is_each_clients_timeout() {
    let mut b = Broker::start(&["--json", "--fault", "api=produce:delay 3s"]);
    let out = common::kcat_output(
        &[
            "-b",
            &b.bootstrap(),
            "-P",
            "-t",
            "slow",
            "-X",
            "socket.timeout.ms=1000",
            "-X",
            "message.timeout.ms=2500",
        ],
        Some("late\n"),
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("Timed out ProduceRequest in flight"), "{err}");
    assert!(err.contains("Local: Timed out"), "{err}");
    // kafka-python's own timeout says the same in its words.
    let run = clients::run_to_end(
        &Client::find("kafka-python"),
        &b.bootstrap(),
        &Job::produce("slow", 1, "none", 0)
            .with("timeout_ms=6000")
            .with("request_timeout_ms=1000"),
    );
    run.assert_error(&["RequestTimedOutError", "Request timed out after"]);
    let all = until_noted(&mut b, "fault (rule 1): delayed 3000 ms");
    // The client gave up and closed while the response waited: unanswered, and said so.
    let late = all
        .iter()
        .find(|e| e["api_name"] == "Produce")
        .expect("a Produce");
    assert_eq!(late["status"]["kind"], "unanswered", "{late}");
    assert!(notes(late).contains(&"connection closed while the response was delayed".into()));
}

#[test]
fn an_error_on_produce_is_kcats_broker_error_and_nothing_is_stored() {
    let mut b = Broker::start(&[
        "--json",
        "--fault",
        "api=produce:error TOPIC_AUTHORIZATION_FAILED",
    ]);
    let boot = b.bootstrap();
    let out = common::kcat_output(&["-b", &boot, "-P", "-t", "refused"], Some("never\n"));
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("Delivery failed for message: Broker: Topic authorization failed"),
        "{err}"
    );
    let all = until_noted(
        &mut b,
        "fault (rule 1): answered TOPIC_AUTHORIZATION_FAILED (29) without serving the request",
    );
    assert!(all.iter().any(|e| e["api_name"] == "Produce"));
    // Not carried out: the topic (created by Metadata) holds nothing.
    let got = common::kcat(&["-b", &boot, "-C", "-t", "refused", "-e", "-q"], None);
    assert_eq!(got, "", "nothing stored");
}

#[test]
fn a_retriable_error_first_1_is_retried_and_the_record_stored_once() {
    let mut b = Broker::start(&[
        "--json",
        "--fault",
        "api=produce:error NOT_LEADER_OR_FOLLOWER first 1",
    ]);
    let boot = b.bootstrap();
    let out = common::kcat_output(
        &["-b", &boot, "-P", "-t", "retried", "-d", "msg"],
        Some("once\n"),
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Broker: Not leader for partition"), "{err}");
    until_noted(
        &mut b,
        "fault (rule 1): answered NOT_LEADER_OR_FOLLOWER (6) without serving the request",
    );
    let got = common::kcat(&["-b", &boot, "-C", "-t", "retried", "-e", "-q"], None);
    assert_eq!(got, "once\n");
}

#[test]
fn find_coordinator_errors_are_librdkafkas_coordinator_errors() {
    // The first three FindCoordinator requests fail; the group then works.
    let mut b = Broker::start(&[
        "--json",
        "--fault",
        "api=find_coordinator:error COORDINATOR_NOT_AVAILABLE first 3",
    ]);
    let boot = b.bootstrap();
    common::kcat(&["-b", &boot, "-P", "-t", "grouped"], Some("m1\n"));
    let out = common::kcat_output(
        &[
            "-b",
            &boot,
            "-G",
            "late-group",
            "-X",
            "auto.offset.reset=earliest",
            "-d",
            "cgrp",
            "-e",
            "-q",
            "grouped",
        ],
        None,
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "m1\n");
    assert!(
        err.contains("FindCoordinator response error: COORDINATOR_NOT_AVAILABLE: Broker: Coordinator not available"),
        "{err}"
    );
    let refused = |all: &[Json]| {
        all.iter()
            .filter(|e| {
                notes(e).iter().any(|n| {
                    n.starts_with("fault (rule 1): answered COORDINATOR_NOT_AVAILABLE (15)")
                })
            })
            .count()
    };
    let served = |all: &[Json]| {
        all.iter()
            .any(|e| e["api_name"] == "FindCoordinator" && notes(e).is_empty())
    };
    let all = b.exchanges_until(Duration::from_secs(20), |all| {
        refused(all) >= 3 && served(all)
    });
    assert!(served(&all));
    assert_eq!(refused(&all), 3, "first 3");
    // Always: the consumer stops with the error.
    let b = Broker::start(&[
        "--fault",
        "api=find_coordinator:error GROUP_AUTHORIZATION_FAILED",
    ]);
    let out = common::kcat_output(
        &[
            "-b",
            &b.bootstrap(),
            "-G",
            "no-group",
            "-e",
            "-q",
            "grouped",
        ],
        None,
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("FindCoordinator response error: Broker: Group authorization failed"),
        "{err}"
    );
}

#[test]
fn a_dropped_response_is_resent_by_an_idempotent_producer_and_stored_once() {
    let mut b = Broker::start(&["--json", "--fault", "api=produce:drop first 1"]);
    let boot = b.bootstrap();
    let ck = Client::find("confluent");
    let run = clients::run(
        &ck,
        &boot,
        &Job::produce("dropped", 3, "none", 0)
            .with("idempotent=1")
            .with("socket_timeout_ms=2000"),
    );
    let produced = clients::produced(&run, 0, 3);
    assert!(
        run.stderr.contains("Timed out ProduceRequest in flight"),
        "{}",
        run.stderr
    );
    let all = until_noted(&mut b, "dropped-0: duplicate batch acknowledged");
    let dropped: Vec<&Json> = all
        .iter()
        .filter(|e| notes(e).contains(&"fault (rule 1): response dropped".into()))
        .collect();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["status"]["kind"], "unanswered");
    assert!(dropped[0]["response"].is_null(), "no response bytes");
    // Stored once: a consumer reads each message exactly once.
    let consumer = clients::run(
        &ck,
        &boot,
        &Job::consume("dropped", "dropped-group", 3).with("idle_ms=1500"),
    );
    let got = clients::consumed(&consumer, Headers::Index);
    clients::assert_exactly("after a dropped response", &got, &produced);
}

#[test]
fn close_after_n_makes_the_consumer_reconnect_and_go_on() {
    let mut b = Broker::start(&["--json", "--fault", "api=fetch:close after 3"]);
    let boot = b.bootstrap();
    let ck = Client::find("confluent");
    let produced = clients::produced(
        &clients::run(&ck, &boot, &Job::produce("closing", 5, "none", 0)),
        0,
        5,
    );
    let consumer = clients::run(
        &ck,
        &boot,
        &Job::consume("closing", "closing-group", 5).with("idle_ms=1500"),
    );
    clients::assert_exactly(
        "across closed connections",
        &clients::consumed(&consumer, Headers::Index),
        &produced,
    );
    assert!(
        consumer.stderr.contains("Disconnected"),
        "{}",
        consumer.stderr
    );
    until_noted(
        &mut b,
        "fault (rule 1): connection closed after its 3rd matching request",
    );
}

#[test]
fn closing_mid_response_is_kafka_pythons_disconnected_socket() {
    let mut b = Broker::start(&["--json", "--fault", "api=produce:close mid-response"]);
    let run = clients::run_to_end(
        &Client::find("kafka-python"),
        &b.bootstrap(),
        &Job::produce("cut", 1, "none", 0)
            .with("timeout_ms=8000")
            .with("request_timeout_ms=2000"),
    );
    run.assert_error(&["KafkaConnectionError", "socket disconnected"]);
    // The exchange keeps the half that was sent, whose size prefix promises the whole.
    let all = until_noted(&mut b, "fault (rule 1): closed mid-response after ");
    let cut = all
        .iter()
        .find(|e| {
            noted(
                std::slice::from_ref(e),
                "fault (rule 1): closed mid-response",
            )
        })
        .unwrap();
    let note = notes(cut)
        .into_iter()
        .find(|n| n.starts_with("fault (rule 1): closed mid-response after "))
        .unwrap();
    let words: Vec<&str> = note.split_whitespace().collect();
    // "... after A of B bytes"
    let (sent, whole): (usize, usize) = (words[6].parse().unwrap(), words[8].parse().unwrap());
    assert_eq!(sent, whole / 2, "{note}");
    let hex = cut["response"]["frame_hex"].as_str().unwrap();
    assert_eq!(hex.len(), 2 * sent);
    let size = u32::from_str_radix(&hex[..8], 16).unwrap() as usize;
    assert_eq!(size + 4, whole);
    assert!(
        !cut["response"]["error"].is_null(),
        "a cut frame does not decode"
    );
}

#[test]
fn chunked_responses_still_serve_kcat() {
    let mut b = Broker::start(&["--json", "--fault", "chunk 7 bytes every 5ms"]);
    let boot = b.bootstrap();
    common::kcat(&["-b", &boot, "-P", "-t", "pieces"], Some("a\nb\n"));
    let got = common::kcat_group_consume(&boot, "pieces-group", "pieces");
    assert_eq!(got, "a\nb\n");
    let all = b.exchanges_until(Duration::from_secs(20), |all| {
        all.iter().any(|e| e["api_name"] == "Produce")
    });
    let produce = all
        .iter()
        .find(|e| e["api_name"] == "Produce")
        .expect("a Produce");
    let size = produce["response"]["frame_hex"].as_str().unwrap().len() / 2;
    assert!(
        notes(produce).contains(&format!(
            "fault (rule 1): sent in {} pieces of at most 7 bytes, 5 ms apart",
            size.div_ceil(7)
        )),
        "{produce}"
    );
}

/// Which of 40 FindCoordinator requests a seeded probability answers with an error, on a fresh
/// broker.
fn picked(seed: u64) -> Vec<bool> {
    let rule =
        format!("api=find_coordinator:error COORDINATOR_NOT_AVAILABLE probability 0.5 seed {seed}");
    let b = Broker::start(&["--fault", &rule]);
    let mut c = Raw::connect(b.addr, "seeded");
    let req = FindCoordinatorRequest::default().with_key("g".to_string().into());
    (0..40)
        .map(|_| {
            c.send(ApiKey::FindCoordinator, 1, &req);
            let frame = c.read_frame();
            let d = chronik_tui::protocol::dissect_response(&frame, 10, 1);
            let code = d
                .root
                .find("find_coordinator.response.error_code")
                .and_then(|f| f.as_int());
            match code {
                Some(15) => true,
                Some(0) => false,
                other => panic!("error code {other:?}"),
            }
        })
        .collect()
}

#[test]
fn a_seeded_probability_picks_the_same_requests_on_every_run() {
    let a = picked(42);
    assert_eq!(a, picked(42), "same seed, same requests, same choices");
    assert_ne!(a, picked(43), "another seed, other choices");
    assert!(a.iter().any(|x| *x) && a.iter().any(|x| !*x), "{a:?}");
}

#[test]
fn faults_change_at_runtime_from_the_control_input() {
    let mut b = Broker::start(&["--json"]);
    let boot = b.bootstrap();
    let reply: Json =
        serde_json::from_str(&b.command("Fault Add API=Produce:error INVALID_REQUIRED_ACKS"))
            .unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(
        reply["message"],
        "fault 1 added: api=produce:error INVALID_REQUIRED_ACKS"
    );
    assert_eq!(
        reply["state"]["faults"],
        serde_json::json!(["api=produce:error INVALID_REQUIRED_ACKS"])
    );
    let out = common::kcat_output(
        &[
            "-b",
            &boot,
            "-P",
            "-t",
            "runtime-fault",
            "-X",
            "message.timeout.ms=2000",
        ],
        Some("refused\n"),
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("Broker: Invalid required acks value"), "{err}");
    let reply: Json = serde_json::from_str(&b.command("fault clear")).unwrap();
    assert_eq!(reply["message"], "faults cleared (1 removed)");
    common::kcat(
        &["-b", &boot, "-P", "-t", "runtime-fault"],
        Some("served\n"),
    );
    let got = common::kcat(
        &["-b", &boot, "-C", "-t", "runtime-fault", "-e", "-q"],
        None,
    );
    assert_eq!(got, "served\n");
    // Refused rules leave the faults as they were.
    let reply: Json =
        serde_json::from_str(&b.command("fault add api=list_groups:error 15")).unwrap();
    assert_eq!(reply["ok"], false);
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("error answers Produce, Fetch, ListOffsets, Metadata"),
        "{reply}"
    );
    assert_eq!(reply["state"]["faults"], serde_json::json!([]));
}
