//! Admin APIs and log housekeeping through real clients (tests/clients/python/admin_client.py:
//! confluent-kafka's AdminClient, kafka-python 3.x's KafkaAdminClient, librdkafka producers and
//! consumers): OffsetDelete, IncrementalAlterConfigs, AlterConfigs and DescribeConfigs; retention
//! by time and size moving the log start (ListOffsets, consumers resetting or failing with
//! OFFSET_OUT_OF_RANGE, DeleteRecords); compact-only topics kept whole; max.message.bytes;
//! message.timestamp.type changed on a live topic; a --data-dir log many times the capture
//! store's cap read back whole, with the broker's peak RSS.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value as Json;

use crate::common::{self, Broker};

/// Runs admin_client.py MODE against the broker; returns its JSON lines by step name.
fn run(mode: &str, broker: &Broker, topic: &str, extra: &[&str]) -> BTreeMap<String, Json> {
    let root = common::clients::root();
    let py = root.join("target/venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/test.sh --install-only",
        py.display()
    );
    let out = Command::new(py)
        .arg(root.join("tests/clients/python/admin_client.py"))
        .args([mode, &broker.bootstrap(), topic])
        .args(extra)
        .output()
        .expect("run admin_client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("admin_client.py {mode}:\n{stdout}");
    assert!(
        out.status.success(),
        "admin_client.py {mode} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: BTreeMap<String, Json> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter_map(|j| Some((j["step"].as_str()?.to_string(), j)))
        .collect();
    assert!(steps.contains_key("done"), "the script did not finish");
    steps
}

/// The single result of a confluent futures dict (`{"resource": {...}}`).
fn only(result: &Json) -> &Json {
    let m = result.as_object().expect("a result map");
    assert_eq!(m.len(), 1, "{result}");
    m.values().next().unwrap()
}

#[test]
fn incremental_and_legacy_alter_configs_read_back() {
    let broker = Broker::start(&[]);
    let s = run("configs", &broker, "admin-configs", &[]);
    assert_eq!(only(&s["create"]["result"])["ok"], true);
    let c = &s["described_at_create"]["configs"];
    // Set at creation: TOPIC_CONFIG (1) with itself as the first synonym; the rest defaults (5).
    assert_eq!(c["retention.ms"]["value"], "86400000");
    assert_eq!(c["retention.ms"]["source"], 1);
    assert_eq!(c["retention.ms"]["synonyms"][0][0], "retention.ms");
    assert_eq!(c["segment.bytes"]["value"], "1073741824");
    assert_eq!(c["segment.bytes"]["source"], 5);
    assert_eq!(c["segment.bytes"]["synonyms"][0][0], "log.segment.bytes");
    assert_eq!(c["max.message.bytes"]["value"], "1048588");

    assert_eq!(only(&s["set_and_append"]["result"])["ok"], true);
    let c = &s["after_set_and_append"]["configs"];
    assert_eq!(c["retention.ms"]["value"], "3600000");
    assert_eq!(c["cleanup.policy"]["value"], "delete,compact");
    assert_eq!(c["cleanup.policy"]["source"], 1);

    assert_eq!(only(&s["subtract_and_delete"]["result"])["ok"], true);
    let c = &s["after_subtract_and_delete"]["configs"];
    assert_eq!(c["cleanup.policy"]["value"], "compact");
    assert_eq!(c["retention.ms"]["value"], "604800000");
    assert_eq!(
        c["retention.ms"]["source"], 5,
        "deleted: back to the default"
    );

    for step in ["bad_value", "append_to_number", "unknown_name"] {
        let r = only(&s[step]["result"]);
        assert_eq!(r["ok"], false, "{step}: {r}");
        assert_eq!(r["name"], "INVALID_CONFIG", "{step}: {r}");
    }
    assert_eq!(only(&s["validate_only"]["result"])["ok"], true);
    assert_eq!(
        s["after_validate_only"]["configs"]["segment.bytes"]["value"], "1073741824",
        "validate_only changed nothing"
    );
    let r = only(&s["broker_change"]["result"]);
    assert_eq!(r["name"], "INVALID_REQUEST", "{r}");

    // kafka-python's legacy AlterConfigs: the client re-sends the other overrides it read with
    // DescribeConfigs (AlterConfigs replaces them all), so cleanup.policy stays.
    assert!(s["kp_alter"].get("error").is_none(), "{}", s["kp_alter"]);
    let text = s["kp_described"]["result"].as_str().unwrap();
    assert!(text.contains("max.message.bytes"), "{text}");
    let c = &s["after_kp_alter"]["configs"];
    assert_eq!(c["max.message.bytes"]["value"], "2000");
    assert_eq!(c["max.message.bytes"]["source"], 1);
    assert_eq!(c["cleanup.policy"]["value"], "compact");
    assert_eq!(c["cleanup.policy"]["source"], 1);
    let bad = format!("{}", s["kp_alter_bad"]);
    assert!(
        bad.contains("InvalidConfig") || bad.contains("INVALID_CONFIG") || bad.contains("40"),
        "{bad}"
    );
}

#[test]
fn offset_delete_via_kafka_python_admin() {
    let broker = Broker::start(&[]);
    let s = run(
        "offsets",
        &broker,
        "admin-offsets",
        &["admin-offsets-group"],
    );
    assert_eq!(s["consumed"]["count"], 10);
    let r = s["while_subscribed"]["result"].to_string();
    assert!(r.contains("GroupSubscribedToTopic"), "{r}");
    let before = &s["committed_before"]["offsets"];
    assert_eq!(before["admin-offsets-0"], 5);
    assert_eq!(before["admin-offsets-1"], 5);
    let r = s["delete"]["result"].to_string();
    assert!(r.contains("NoError"), "{r}");
    let after = s["committed_after"]["offsets"].as_object().unwrap();
    assert!(!after.contains_key("admin-offsets-0"), "{after:?}");
    assert_eq!(after["admin-offsets-1"], 5, "partition 1 kept");
    // librdkafka: no committed offset is OFFSET_INVALID (-1001).
    let c = &s["confluent_committed_after"]["offsets"];
    assert_eq!(c["admin-offsets-0"], -1001);
    assert_eq!(c["admin-offsets-1"], 5);
    let r = s["unknown_group"]["result"].to_string();
    assert!(r.contains("GroupIdNotFound"), "{r}");
    let r = s["unknown_partition"]["result"].to_string();
    assert!(r.contains("UnknownTopicOrPartition"), "{r}");
}

#[test]
fn retention_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let broker = Broker::start(&[
        "--data-dir",
        &data,
        "--log-retention-check-interval-ms",
        "100",
        "--fsync",
        "interval",
        "--fsync-interval-ms",
        "50",
    ]);
    let s = run("retention", &broker, "admin-retention", &[]);
    assert_eq!(s["produced"]["errors"], serde_json::json!([]));
    assert_eq!(s["produced"]["offsets"], serde_json::json!([0, 30]));
    // The 20 old records (two hours old) went, one segment each; the 10 new ones stayed.
    assert_eq!(
        s["after_retention_ms"]["offsets"],
        serde_json::json!([20, 30])
    );
    let r = &s["read_earliest"];
    assert_eq!(r["error"], Json::Null, "{r}");
    assert_eq!(
        r["offsets"],
        serde_json::json!((20..30).collect::<Vec<_>>())
    );
    assert!(r["values"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v == "new-00" || v.as_str().unwrap().starts_with("new-")));
    let r = &s["read_error"];
    assert_eq!(r["offsets"], serde_json::json!([]));
    let text = r["error"].to_string();
    assert!(
        text.contains("Offset out of range") || text.contains("OFFSET_OUT_OF_RANGE"),
        "{text}"
    );
    // retention.bytes 2200: each segment is one batch of a ~610-byte record plus the batch and
    // segment framing (~680 bytes); as in Kafka, a segment goes only while the log without it
    // still holds at least retention.bytes, so the newest four stay (three would be < 2200).
    assert_eq!(
        s["after_retention_bytes"]["offsets"],
        serde_json::json!([26, 30])
    );
    assert_eq!(
        s["read_earliest_2"]["offsets"],
        serde_json::json!([26, 27, 28, 29])
    );
    assert_eq!(s["delete_records"]["low_watermark"], 27);
    drop(broker);
    // What is left on disk: the segments of offsets 27, 28 and 29 (DeleteRecords to 27
    // removed the segment of 26).
    let logs = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap();
    let files: Vec<String> = std::fs::read_dir(logs.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
}

#[test]
fn compact_only_topic_is_not_deleted_by_retention() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let broker = Broker::start(&[
        "--data-dir",
        &data,
        "--fsync",
        "always",
        "--log-retention-check-interval-ms",
        "100",
    ]);
    let s = run("compact", &broker, "admin-compact", &[]);
    assert_eq!(s["produced"]["errors"], serde_json::json!([]));
    assert_eq!(s["after_wait"]["offsets"], serde_json::json!([0, 5]));
}

#[test]
fn max_message_bytes_and_timestamp_type_follow_the_topic_config() {
    let broker = Broker::start(&[]);
    let s = run("limits", &broker, "admin-limits", &[]);
    assert_eq!(s["small"]["errors"], serde_json::json!([]));
    let e = &s["large"]["errors"][0];
    assert_eq!(e["name"], "MSG_SIZE_TOO_LARGE", "{e}");
    assert_eq!(s["large_again"]["errors"], serde_json::json!([]));
    let stamps = s["timestamps"]["stamps"].as_array().unwrap();
    assert_eq!(stamps.len(), 3, "{stamps:?}");
    // Before the change: CreateTime (1); after: LogAppendTime (2), not the producer's 1000000.
    assert_eq!(stamps[0][1], 1);
    assert_eq!(stamps[2][1], 2);
    assert!(stamps[2][2].as_i64().unwrap() > 1_000_000_000_000);
}

/// A field of /proc/PID/status in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn data_dir_log_larger_than_memory_is_read_whole() {
    const MB: u64 = 256;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let broker = Broker::start(&["--data-dir", &data, "--store-max-bytes", "4000000"]);
    let pid = broker.child.id();
    let s = run("big", &broker, "admin-big", &[&MB.to_string()]);
    let produced = s["produced"]["count"].as_u64().unwrap();
    assert_eq!(s["produced"]["errors"], serde_json::json!([]));
    assert_eq!(s["consumed"]["count"].as_u64().unwrap(), produced);
    assert_eq!(s["consumed"]["mismatched"], 0);
    let hwm = status_kb(pid, "VmHWM:");
    let rss = status_kb(pid, "VmRSS:");
    let bytes = s["consumed"]["bytes"].as_u64().unwrap();
    println!(
        "broker peak RSS (VmHWM) {} MiB, RSS now {} MiB, log data {} MiB ({} records), capture \
         store cap 4 MB",
        hwm / 1024,
        rss / 1024,
        bytes >> 20,
        produced
    );
    // Held in memory, the log alone would take its 250 MiB. Served from the files, the peak
    // does not grow with the log: 60-80 MiB in a debug build for 125 MiB of log, up to 105 MiB
    // with the machine's cores busy (the binary; the capture store's 4 MB; 1 MB produce
    // batches and 4 MB fetches in flight, each copied a few times; up to 16 MiB of the store's
    // feed waiting for a slow printer; what the allocator keeps of freed 4 MB buffers), so
    // three quarters of the log is a bound with room to spare.
    assert!(
        hwm > 0 && hwm * 1024 < bytes / 4 * 3,
        "peak RSS {hwm} kB for {bytes} bytes of log"
    );
}

/// Sends one request and decodes the response body (after its header) at `version`.
fn call<Req, Resp>(
    addr: std::net::SocketAddr,
    key: kafka_protocol::messages::ApiKey,
    version: i16,
    req: &Req,
) -> Resp
where
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable,
{
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(&common::request_frame(key, version, 7, "admin-test", req))
        .unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let mut b = bytes::Bytes::from(body);
    <kafka_protocol::messages::ResponseHeader as kafka_protocol::protocol::Decodable>::decode(
        &mut b,
        key.response_header_version(version),
    )
    .unwrap();
    Resp::decode(&mut b, version).unwrap()
}

#[test]
fn describe_configs_per_version() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    let broker = Broker::start(&[]);
    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("dc")))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("retention.bytes"))
                .with_value(Some(StrBytes::from_static_str("5000")))]),
    ]);
    let r: CreateTopicsResponse = call(broker.addr, ApiKey::CreateTopics, 5, &create);
    assert_eq!(r.topics[0].error_code, 0);
    let req = |synonyms: bool, docs: bool, keys: &[&'static str]| {
        DescribeConfigsRequest::default()
            .with_include_synonyms(synonyms)
            .with_include_documentation(docs)
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("dc"))
                .with_configuration_keys(Some(
                    keys.iter().map(|k| StrBytes::from_static_str(k)).collect(),
                ))])
    };
    let keys = ["retention.bytes", "segment.bytes", "cleanup.policy"];
    // v0: is_default, no source, no synonyms.
    let r: DescribeConfigsResponse = call(
        broker.addr,
        ApiKey::DescribeConfigs,
        0,
        &req(false, false, &keys),
    );
    let c = &r.results[0].configs;
    assert_eq!(c.len(), 3);
    let by = |c: &[describe_configs_response::DescribeConfigsResourceResult], k: &str| {
        c.iter().find(|e| e.name.as_str() == k).cloned().unwrap()
    };
    assert!(!by(c, "retention.bytes").is_default);
    assert!(by(c, "segment.bytes").is_default);
    assert_eq!(
        by(c, "retention.bytes").value.as_ref().unwrap().as_str(),
        "5000"
    );
    // v1: sources and, when asked, synonyms (the override first, then the broker's default).
    let r: DescribeConfigsResponse = call(
        broker.addr,
        ApiKey::DescribeConfigs,
        1,
        &req(true, false, &keys),
    );
    let rb = by(&r.results[0].configs, "retention.bytes");
    assert_eq!(rb.config_source, 1);
    let syn: Vec<(String, i8)> = rb
        .synonyms
        .iter()
        .map(|s| (s.name.to_string(), s.source))
        .collect();
    assert_eq!(
        syn,
        vec![
            ("retention.bytes".into(), 1),
            ("log.retention.bytes".into(), 5)
        ]
    );
    assert_eq!(by(&r.results[0].configs, "cleanup.policy").config_source, 5);
    let r: DescribeConfigsResponse = call(
        broker.addr,
        ApiKey::DescribeConfigs,
        1,
        &req(false, false, &keys),
    );
    assert!(by(&r.results[0].configs, "retention.bytes")
        .synonyms
        .is_empty());
    // v3: types, and documentation only when asked.
    let r: DescribeConfigsResponse = call(
        broker.addr,
        ApiKey::DescribeConfigs,
        3,
        &req(false, true, &keys),
    );
    let c = &r.results[0].configs;
    assert_eq!(by(c, "retention.bytes").config_type, 5, "LONG");
    assert_eq!(by(c, "segment.bytes").config_type, 3, "INT");
    assert_eq!(by(c, "cleanup.policy").config_type, 7, "LIST");
    assert!(by(c, "retention.bytes").documentation.is_some());
    let r: DescribeConfigsResponse = call(
        broker.addr,
        ApiKey::DescribeConfigs,
        4,
        &req(false, false, &keys),
    );
    assert!(by(&r.results[0].configs, "retention.bytes")
        .documentation
        .is_none());
    // Every key when none are named; an unknown topic; the broker by id, a wrong id.
    let all = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("dc")),
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("nope")),
        DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1")),
        DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("2")),
    ]);
    let r: DescribeConfigsResponse = call(broker.addr, ApiKey::DescribeConfigs, 4, &all);
    assert!(r.results[0].configs.len() >= 9);
    assert_eq!(r.results[1].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert!(r.results[2]
        .configs
        .iter()
        .any(|c| c.name.as_str() == "log.retention.check.interval.ms" && c.read_only));
    assert_eq!(r.results[3].error_code, 42, "INVALID_REQUEST");
}
