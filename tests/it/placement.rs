//! Throttle placement, per-client rules, version caps and the injected throttle, driven through
//! the real binary's command-line flags and its headless control input (stdin), with raw
//! sockets and real clients (kafka-python 3.x and confluent-kafka/librdkafka from target/venv).

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use serde_json::Value as Json;

use common::clients::{self, Client, Job};
use common::frame::Raw;
use common::Broker;

fn produce_v(topic: &str, value: &str) -> ProduceRequest {
    common::frame::produce_req(topic, 0, -1, common::frame::records(&[value], 2, None))
}

/// Every stdout line of the broker so far (held ones first), parsed as JSON.
fn collect(b: &mut Broker, wait: Duration) -> Vec<Json> {
    std::thread::sleep(wait);
    let mut lines = std::mem::take(&mut b.held);
    lines.extend(b.lines.try_iter());
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect()
}

/// Waits until an exchange of `api` from `conn_filter` shows in the broker's output; returns it
/// (other lines go to `held`).
fn wait_exchange(b: &mut Broker, timeout: Duration, pred: impl Fn(&Json) -> bool) -> Json {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = b
            .lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no matching exchange within {timeout:?}"));
        let v: Json = serde_json::from_str(&line).unwrap_or(Json::Null);
        if pred(&v) {
            b.held.push(line);
            return v;
        }
        b.held.push(line);
    }
}

fn produces<'a>(lines: &'a [Json], client_prefix: &str) -> Vec<&'a Json> {
    lines
        .iter()
        .filter(|v| {
            v["api_name"] == "Produce"
                && v["client_id"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(client_prefix))
        })
        .collect()
}

/// The value of the response field whose name ends with `suffix` (first in tree order).
fn response_field(ex: &Json, suffix: &str) -> Option<Json> {
    fn walk(f: &Json, suffix: &str) -> Option<Json> {
        if f["name"].as_str().is_some_and(|n| n.ends_with(suffix)) {
            return Some(f["value"].clone());
        }
        f["children"]
            .as_array()?
            .iter()
            .find_map(|c| walk(c, suffix))
    }
    walk(&ex["response"]["tree"], suffix)
}

const THROTTLE: i32 = 0x0102_0304;

#[test]
fn switching_the_mode_applies_to_the_next_response_on_an_existing_connection() {
    let throttle = THROTTLE.to_string();
    let mut b = Broker::start(&["--json", "--throttle-ms", &throttle]);
    let mut c = Raw::connect(b.addr, "placement-test");
    let tb = THROTTLE.to_be_bytes();

    // spec: kafka-protocol decodes it, the throttle is the last field.
    let spec_corr = c.send(ApiKey::Produce, 7, &produce_v("switch", "a"));
    let spec = c.read_frame();
    let mut body = Bytes::copy_from_slice(&spec[4..]);
    let header = ResponseHeader::decode(&mut body, 0).unwrap();
    assert_eq!(header.correlation_id, spec_corr);
    let decoded = ProduceResponse::decode(&mut body, 7).expect("spec decodes");
    assert_eq!(decoded.throttle_time_ms, THROTTLE);
    assert_eq!(decoded.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(&spec[spec.len() - 4..], &tb);
    assert!(chronik_tui::protocol::dissect_response(&spec, 0, 7)
        .error
        .is_none());

    // front, same connection: the throttle right after the correlation id, where a v7 client
    // reads the responses array's count; our dissector reads it that way and fails.
    let reply = b.command("placement front");
    let reply: Json = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["state"]["placement"], "front");
    let front_corr = c.send(ApiKey::Produce, 7, &produce_v("switch", "b"));
    let front = c.read_frame();
    assert_eq!(front.len(), spec.len());
    assert_eq!(&front[4..8], &front_corr.to_be_bytes());
    assert_eq!(&front[8..12], &tb, "throttle first");
    assert_eq!(&front[12..16], &1i32.to_be_bytes(), "then the array count");
    assert_ne!(&front[front.len() - 4..], &tb);
    let d = chronik_tui::protocol::dissect_response(&front, 0, 7);
    assert!(d.error.is_some(), "a v7 reader must trip over front");

    // omit: four bytes shorter, no throttle anywhere; a v7 reader runs out of bytes.
    assert_eq!(
        serde_json::from_str::<Json>(&b.command("placement omit")).unwrap()["state"]["placement"],
        "omit"
    );
    c.send(ApiKey::Produce, 7, &produce_v("switch", "c"));
    let omit = c.read_frame();
    assert_eq!(omit.len(), spec.len() - 4);
    assert!(!omit.windows(4).any(|w| w == tb));
    assert!(chronik_tui::protocol::dissect_response(&omit, 0, 7)
        .error
        .is_some());

    // Back to spec on the same connection.
    b.command("placement spec");
    c.send(ApiKey::Produce, 7, &produce_v("switch", "d"));
    let again = c.read_frame();
    let mut body = Bytes::copy_from_slice(&again[4..]);
    ResponseHeader::decode(&mut body, 0).unwrap();
    assert_eq!(
        ProduceResponse::decode(&mut body, 7)
            .unwrap()
            .throttle_time_ms,
        THROTTLE
    );

    // Each exchange records the placement it was encoded with, all on one connection.
    let lines = collect(&mut b, Duration::from_millis(300));
    let ps = produces(&lines, "placement-test");
    assert_eq!(ps.len(), 4, "{ps:?}");
    assert!(ps.iter().all(|p| p["conn"] == ps[0]["conn"]));
    let modes: Vec<&Json> = ps.iter().map(|p| &p["placement"]["placement"]).collect();
    assert_eq!(modes, ["spec", "front", "omit", "spec"]);
    assert!(ps.iter().all(|p| p["placement"]["rule"].is_null()));
    let notes = |p: &Json| p["notes"].to_string();
    assert!(notes(ps[1]).contains("throttle_time_ms placement: front"));
    assert!(notes(ps[2]).contains("throttle_time_ms placement: omitted"));
    // The broker's own dissection of the captured responses agrees with the bytes.
    assert!(ps[0]["response"]["error"].is_null());
    assert!(!ps[1]["response"]["error"].is_null());
    assert!(!ps[2]["response"]["error"].is_null());
    assert_eq!(
        response_field(ps[3], "produce.response.throttle_time_ms"),
        Some(Json::from(THROTTLE))
    );

    // A bad command is answered with an error, and the broker keeps serving.
    let bad: Json = serde_json::from_str(&b.command("placement sideways")).unwrap();
    assert_eq!(bad["ok"], false);
    assert!(bad["message"]
        .as_str()
        .unwrap()
        .contains("expected spec, front or omit"));
    c.send(ApiKey::Produce, 7, &produce_v("switch", "e"));
    assert_eq!(c.read_frame().len(), spec.len());
}

#[test]
fn front_on_flexible_versions_stays_where_the_spec_puts_it() {
    let throttle = THROTTLE.to_string();
    let mut b = Broker::start(&["--json", "--throttle-ms", &throttle, "--placement", "front"]);
    let mut c = Raw::connect(b.addr, "placement-test");
    c.send(ApiKey::Produce, 9, &produce_v("flex", "a"));
    let frame = c.read_frame();
    let mut body = Bytes::copy_from_slice(&frame[4..]);
    ResponseHeader::decode(&mut body, 1).unwrap();
    let r = ProduceResponse::decode(&mut body, 9).expect("v9 decodes under front");
    assert_eq!(r.throttle_time_ms, THROTTLE);
    let lines = collect(&mut b, Duration::from_millis(300));
    let ps = produces(&lines, "placement-test");
    assert_eq!(ps[0]["placement"]["placement"], "spec");
    assert!(ps[0]["notes"]
        .to_string()
        .contains("front applies to v1-v8"));
}

/// Waits for a client run, returning its exit status and events.
fn outcome(r: clients::Running) -> (Option<std::process::ExitStatus>, clients::Finished) {
    r.outcome(Vec::new())
}

#[test]
fn a_rule_by_software_name_hits_kafka_python_and_not_librdkafka() {
    let kp = Client::find("kafka-python");
    let cf = Client::find("confluent");
    // Produce is capped at v8 so the 0.7.2 layout applies to whoever the rule picks.
    let mut b = Broker::start(&[
        "--json",
        "--cap",
        "produce=8",
        "--throttle-rule",
        "software=kafka-python*:front",
    ]);
    let boot = b.bootstrap();
    let kp_run = clients::spawn(
        &kp,
        &boot,
        &Job::produce("rule-kp", 3, "none", 0)
            .with("request_timeout_ms=3000")
            .with("timeout_ms=12000"),
    );
    // kafka-python's first Produce is answered (under front) before confluent connects, so
    // both are connected at the same time.
    wait_exchange(&mut b, Duration::from_secs(20), |v| {
        v["api_name"] == "Produce"
            && v["client_id"]
                .as_str()
                .is_some_and(|c| c.starts_with("kafka-python"))
    });
    let cf_done = clients::run(&cf, &boot, &Job::produce("rule-cf", 3, "none", 0));
    let acks = clients::produced(&cf_done, 0, 3);
    assert_eq!(acks.len(), 3, "confluent acks");
    let (kp_status, kp_done) = outcome(kp_run);
    let lines = collect(&mut b, Duration::from_millis(300));
    let kp_produces = produces(&lines, "kafka-python");
    let cf_produces = produces(&lines, "confluent-kafka");
    assert!(!kp_produces.is_empty() && !cf_produces.is_empty());
    for p in &kp_produces {
        assert_eq!(p["api_version"], 8, "{p}");
        assert_eq!(p["placement"]["placement"], "front", "{}", p["notes"]);
        assert_eq!(
            p["placement"]["rule"],
            serde_json::json!([1, "software=kafka-python*:front"])
        );
    }
    for p in &cf_produces {
        assert_eq!(p["placement"]["placement"], "spec", "{}", p["notes"]);
        assert!(p["placement"]["rule"].is_null());
        assert!(p["response"]["error"].is_null());
    }
    // The ApiVersions of each client said who it is: confluent-kafka calls itself
    // "confluent-kafka-python", which the anchored glob `kafka-python*` does not match.
    assert!(lines.iter().any(|v| v["api_name"] == "ApiVersions"
        && v["notes"]
            .to_string()
            .contains("client software: kafka-python")));
    assert!(lines.iter().any(|v| v["api_name"] == "ApiVersions"
        && v["notes"]
            .to_string()
            .contains("client software: confluent-kafka-python")));
    eprintln!(
        "kafka-python 3 under front (Produce v8): exit {kp_status:?}, {} produced, errors {:?}, \
         {} Produce requests (confluent: {} requests, all acknowledged)",
        kp_done.of("produced").len(),
        kp_done
            .of("error")
            .iter()
            .map(|e| e["message"].to_string())
            .collect::<Vec<_>>(),
        kp_produces.len(),
        cf_produces.len()
    );
}

#[test]
fn caps_pin_the_produce_version_and_change_at_runtime() {
    let kp = Client::find("kafka-python");
    let mut b = Broker::start(&["--json", "--cap", "produce=2"]);
    let boot = b.bootstrap();
    let run = clients::run(&kp, &boot, &Job::produce("capped", 3, "none", 0));
    assert_eq!(clients::produced(&run, 0, 3).len(), 3);
    let lines = collect(&mut b, Duration::from_millis(300));
    let versions: Vec<&Json> = produces(&lines, "kafka-python")
        .iter()
        .map(|p| &p["api_version"])
        .collect();
    assert!(!versions.is_empty());
    assert!(versions.iter().all(|v| **v == 2), "{versions:?}");
    assert!(lines.iter().any(|v| v["api_name"] == "ApiVersions"
        && v["notes"]
            .to_string()
            .contains("version caps advertised: produce=2")));

    let reply: Json = serde_json::from_str(&b.command("cap produce=3")).unwrap();
    assert_eq!(reply["state"]["caps"]["produce"], 3, "{reply}");
    let run = clients::run(&kp, &boot, &Job::produce("capped", 3, "none", 3));
    assert_eq!(clients::produced(&run, 3, 3).len(), 3);
    let lines = collect(&mut b, Duration::from_millis(300));
    let versions: Vec<&Json> = produces(&lines, "kafka-python")
        .iter()
        .map(|p| &p["api_version"])
        .collect();
    assert!(!versions.is_empty());
    assert!(versions.iter().all(|v| **v == 3), "{versions:?}");

    // A raw connection sees the capped range in ApiVersions; a request above it is served and
    // noted.
    let mut c = Raw::connect(b.addr, "placement-test");
    c.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let frame = c.read_frame();
    let mut body = Bytes::copy_from_slice(&frame[4..]);
    ResponseHeader::decode(&mut body, 0).unwrap();
    let av = ApiVersionsResponse::decode(&mut body, 3).unwrap();
    let produce = av.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 3));
    let fetch = av.api_keys.iter().find(|k| k.api_key == 1).unwrap();
    assert_eq!(fetch.max_version, 17, "uncapped APIs keep their range");
    c.send(ApiKey::Produce, 7, &produce_v("capped", "raw"));
    let frame = c.read_frame();
    let mut body = Bytes::copy_from_slice(&frame[4..]);
    ResponseHeader::decode(&mut body, 0).unwrap();
    let r = ProduceResponse::decode(&mut body, 7).unwrap();
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    let lines = collect(&mut b, Duration::from_millis(300));
    let raw = produces(&lines, "placement-test");
    assert!(raw[0]["notes"]
        .to_string()
        .contains("v7 is above the version cap produce=3"));

    // cap clear: new connections see the full range again.
    b.command("cap clear");
    let mut c = Raw::connect(b.addr, "placement-test");
    c.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let frame = c.read_frame();
    let mut body = Bytes::copy_from_slice(&frame[4..]);
    ResponseHeader::decode(&mut body, 0).unwrap();
    let av = ApiVersionsResponse::decode(&mut body, 3).unwrap();
    assert_eq!(
        av.api_keys
            .iter()
            .find(|k| k.api_key == 0)
            .unwrap()
            .max_version,
        11
    );
}

#[test]
fn an_injected_throttle_shows_and_clients_still_get_their_acks() {
    let mut b = Broker::start(&["--json", "--throttle-ms", "250"]);
    let boot = b.bootstrap();
    for (name, prefix) in [
        ("kafka-python", "kafka-python"),
        ("confluent", "confluent-kafka"),
    ] {
        let client = Client::find(name);
        let topic = format!("throttled-{name}");
        let run = clients::run(&client, &boot, &Job::produce(&topic, 3, "none", 0));
        assert_eq!(clients::produced(&run, 0, 3).len(), 3, "{name}");
        let lines = collect(&mut b, Duration::from_millis(300));
        let ps = produces(&lines, prefix);
        assert!(!ps.is_empty(), "{name}");
        for p in ps {
            assert_eq!(
                response_field(p, "produce.response.throttle_time_ms"),
                Some(Json::from(250)),
                "{name}"
            );
            assert_eq!(p["placement"]["placement"], "spec");
        }
    }
}

#[test]
fn end_of_stdin_ends_the_control_input_not_the_broker() {
    let mut b = Broker::start(&["--placement", "omit"]);
    let reply = b.command("placement");
    assert_eq!(reply, "# placement: omit");
    assert!(b
        .command("frobnicate")
        .starts_with("# error: unknown command"));
    drop(b.child.stdin.take());
    std::thread::sleep(Duration::from_millis(200));
    assert!(b.child.try_wait().unwrap().is_none(), "the broker exited");
    let mut c = Raw::connect(b.addr, "placement-test");
    c.send(ApiKey::Produce, 7, &produce_v("after-eof", "x"));
    let frame = c.read_frame();
    assert!(chronik_tui::protocol::dissect_response(&frame, 0, 7)
        .error
        .is_some());
    c.send(ApiKey::Metadata, 1, &MetadataRequest::default());
    assert!(c.read_frame().len() > 8);
}
