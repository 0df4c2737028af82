//! Transactions (exactly-once) against the real binary: transactional producers of
//! confluent-kafka (librdkafka), kafka-python 3.x, aiokafka and kafkajs commit one transaction and abort
//! another, and read_committed consumers see exactly the committed records while
//! read_uncommitted ones see both; a second confluent-kafka producer with the same
//! transactional.id fences the first; a consume-transform-produce loop (TxnOffsetCommit) is
//! killed with SIGKILL between and inside transactions and restarted, and every input record
//! is in the output exactly once for a read_committed consumer; the transaction state survives a
//! broker restart with --data-dir. Raw requests (kafka-protocol as the independent encoder)
//! check the coordinator's error codes per version and the admin APIs (DescribeTransactions,
//! ListTransactions, DescribeProducers). Every exchange must dissect cleanly, and the fetched
//! COMMIT and ABORT markers must show as control records in the field tree.

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::clients::{self, Client, Job, Produced, Watched};
use common::frame::Raw;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use serde_json::Value as Json;

/// Records per transaction.
const PER_TXN: u64 = 5;
/// How long a consumer lingers after its count to catch records that should not come.
const LINGER: &str = "idle_ms=1500";

/// The APIs of a transactional producer; their answers must carry no error code.
const TXN_APIS: &[&str] = &[
    "InitProducerId",
    "AddPartitionsToTxn",
    "AddOffsetsToTxn",
    "TxnOffsetCommit",
    "EndTxn",
    "Produce",
];

/// The acknowledged records of a `txn` run whose transaction had `outcome`.
fn by_outcome(run: &clients::Finished, outcome: &str) -> Vec<Produced> {
    run.of("produced")
        .into_iter()
        .filter(|e| e["outcome"] == outcome)
        .map(|e| Produced {
            index: e["index"].as_u64().expect("index"),
            partition: e["partition"].as_i64(),
            offset: e["offset"].as_i64(),
        })
        .collect()
}

/// Every exchange dissected (no undecodable frame); the transactional APIs answered without
/// an error code.
fn assert_clean(broker: &Watched, test: &str) {
    for s in &broker.seen {
        assert!(
            !s.trouble.iter().any(|t| t.contains("undecodable")),
            "{test}: {}",
            s.line
        );
        if TXN_APIS.contains(&s.api.as_str()) {
            assert!(s.errors.is_empty(), "{test}: {}", s.line);
        }
    }
}

/// A transactional producer commits a transaction of [`PER_TXN`] records and aborts the next;
/// read_committed sees the first only, read_uncommitted both, and the Fetch responses show
/// the COMMIT and ABORT markers as control records.
fn commit_and_abort(test: &str, client_name: &str) {
    let client = Client::find(client_name);
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = dir.path().join("session.pcapng");
    let recording_arg = recording.to_str().expect("a UTF-8 temp path");
    let mut broker = Watched::start(test, &["--record", recording_arg]);
    let bootstrap = broker.bootstrap();
    let topic = format!("{test}-topic");

    let mut job = Job::produce(&topic, PER_TXN, "none", 0)
        .with(format!("txn_id={test}-txn"))
        .with("plan=ca");
    job.mode = "txn";
    let run = clients::run(&client, &bootstrap, &job);
    clients::produced(&run, 0, 2 * PER_TXN);
    let committed = by_outcome(&run, "commit");
    let aborted = by_outcome(&run, "abort");
    assert_eq!(
        (committed.len(), aborted.len()),
        (PER_TXN as usize, PER_TXN as usize)
    );

    let group = format!("{test}-committed");
    let job = Job::consume(&topic, &group, PER_TXN)
        .with(LINGER)
        .with("isolation=read_committed");
    let got = clients::consumed(&clients::run(&client, &bootstrap, &job), client.headers);
    clients::assert_exactly(&format!("{test}: read_committed"), &got, &committed);

    let group = format!("{test}-uncommitted");
    let job = Job::consume(&topic, &group, 2 * PER_TXN)
        .with(LINGER)
        .with("isolation=read_uncommitted");
    let got = clients::consumed(&clients::run(&client, &bootstrap, &job), client.headers);
    let both: Vec<Produced> = committed.iter().chain(&aborted).copied().collect();
    clients::assert_exactly(&format!("{test}: read_uncommitted"), &got, &both);

    broker.drain();
    for api in ["InitProducerId", "AddPartitionsToTxn", "EndTxn"] {
        assert!(
            broker.seen.iter().any(|s| s.api == api),
            "{test}: the producer never sent {api}"
        );
    }
    let markers: Vec<&String> = broker
        .seen
        .iter()
        .filter(|s| s.api == "Fetch")
        .flat_map(|s| &s.markers)
        .collect();
    for kind in ["COMMIT marker", "ABORT marker"] {
        assert!(
            markers.iter().any(|m| m.contains(kind)),
            "{test}: no Fetch response showed a {kind} (saw {markers:?})"
        );
    }
    assert_clean(&broker, test);
    // The `clients` command (the clients view's table) lists the transactional client's
    // connections with the transaction APIs it negotiated.
    let reply = broker.broker.command("clients");
    let v: Json = serde_json::from_str(&reply).expect("a JSON control reply");
    let text = v.to_string();
    assert!(text.contains("EndTxn:v"), "{test}: {text}");
    // The session as recorded: `chronik-tui lint` finds nothing at warning or worse.
    std::thread::sleep(Duration::from_millis(500));
    let (code, findings) = crate::lint::lint_json(&recording, broker.broker.addr.port());
    assert_eq!(code, Some(0), "{test}: lint findings {findings:?}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chronik-tui"))
        .args(["decode", "--kafka-port"])
        .arg(broker.broker.addr.port().to_string())
        .arg(&recording)
        .output()
        .expect("chronik-tui decode");
    let decoded = String::from_utf8_lossy(&out.stdout);
    assert!(
        decoded.lines().filter(|l| l.contains(" EndTxn v")).count() >= 2,
        "{test}: the recording lacks the EndTxn exchanges:\n{decoded}"
    );
    broker.summary();
}

#[test]
fn confluent_kafka_commit_and_abort() {
    commit_and_abort("txn_confluent", "confluent");
}

#[test]
fn kafka_python_commit_and_abort() {
    commit_and_abort("txn_kafka_python", "kafka-python");
}

#[test]
fn aiokafka_commit_and_abort() {
    commit_and_abort("txn_aiokafka", "aiokafka");
}

#[test]
fn kafkajs_commit_and_abort() {
    commit_and_abort("txn_kafkajs", "kafkajs");
}

/// Waits for an event of `kind` from a running client (panicking after `within`).
fn wait_for(running: &mut clients::Running, seen: &mut Vec<Json>, kind: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match running.events.recv_timeout(left) {
            Ok(ev) => {
                let hit = ev["event"] == kind;
                let error = ev["event"] == "error";
                seen.push(ev);
                if hit {
                    return;
                }
                assert!(!error, "{}: {seen:?}", running.describe);
            }
            Err(_) => panic!("{}: no {kind} event; saw {seen:?}", running.describe),
        }
    }
}

/// A producer of `client` that opens a transaction on `topic` (with `extra` settings), sends
/// its records and holds the transaction open until `stop` exists; returned once it says it
/// holds, with what it printed so far.
fn hold_transaction(
    client: &Client,
    bootstrap: &str,
    topic: &str,
    extra: &[String],
    stop: &std::path::Path,
) -> (clients::Running, Vec<Json>) {
    let mut job =
        Job::produce(topic, PER_TXN, "none", 0).with(format!("stop_file={}", stop.display()));
    for e in extra {
        job = job.with(e.as_str());
    }
    job.mode = "txn_hold";
    let mut running = clients::spawn(client, bootstrap, &job);
    let mut early = Vec::new();
    wait_for(&mut running, &mut early, "holding", Duration::from_secs(30));
    (running, early)
}

/// A second confluent-kafka producer with the same transactional.id fences the first, whose
/// open transaction is aborted; the first's commit then fails with a fatal fenced error, and a
/// read_committed consumer sees only the second producer's records.
#[test]
fn confluent_kafka_second_producer_fences_the_first() {
    let test = "txn_fence";
    let client = Client::find("confluent");
    let mut broker = Watched::start(test, &[]);
    let bootstrap = broker.bootstrap();
    let topic = format!("{test}-topic");
    let dir = tempfile::tempdir().expect("tempdir");
    let stop = dir.path().join("stop");
    let txn_id = format!("txn_id={test}-txn");

    let (first, early) = hold_transaction(
        &client,
        &bootstrap,
        &topic,
        std::slice::from_ref(&txn_id),
        &stop,
    );

    let mut job = Job::produce(&topic, PER_TXN, "none", 100)
        .with(txn_id.as_str())
        .with("plan=c");
    job.mode = "txn";
    let second = clients::run(&client, &bootstrap, &job);
    let committed = by_outcome(&second, "commit");

    std::fs::write(&stop, b"").expect("stop file");
    let first = first.finish(early);
    let fenced = first.of("fenced");
    assert_eq!(
        fenced.len(),
        1,
        "{test}: the first producer was not fenced\n{}",
        first.tail()
    );
    assert_eq!(fenced[0]["fatal"], true, "{test}: {}", fenced[0]);
    assert_eq!(fenced[0]["name"], "_FENCED", "{test}: {}", fenced[0]);

    let group = format!("{test}-group");
    let job = Job::consume(&topic, &group, PER_TXN)
        .with(LINGER)
        .with("isolation=read_committed");
    let got = clients::consumed(&clients::run(&client, &bootstrap, &job), client.headers);
    clients::assert_exactly(&format!("{test}: read_committed"), &got, &committed);

    broker.drain();
    // The second producer's InitProducerId was told to retry while the first's transaction
    // was aborted; the first's EndTxn was refused as fenced.
    let errors = |api: &str| -> Vec<String> {
        broker
            .seen
            .iter()
            .filter(|s| s.api == api)
            .flat_map(|s| s.errors.clone())
            .collect()
    };
    assert!(
        errors("InitProducerId").contains(&"CONCURRENT_TRANSACTIONS".to_string()),
        "{test}: InitProducerId errors {:?}",
        errors("InitProducerId")
    );
    let end = errors("EndTxn");
    assert!(
        end.iter()
            .any(|e| e == "PRODUCER_FENCED" || e == "INVALID_PRODUCER_EPOCH"),
        "{test}: EndTxn errors {end:?}"
    );
    for s in &broker.seen {
        assert!(
            !s.trouble.iter().any(|t| t.contains("undecodable")),
            "{test}: {}",
            s.line
        );
    }
    broker.summary();
}

/// A transaction that runs past its transaction.timeout.ms is aborted by the broker, which
/// bumps the epoch: the producer's commit then fails as fenced, a read_committed consumer sees
/// none of its records, and the Fetch shows the ABORT marker.
#[test]
fn confluent_kafka_transaction_timeout_aborts() {
    let test = "txn_timeout";
    let client = Client::find("confluent");
    let mut broker = Watched::start(test, &[]);
    let bootstrap = broker.bootstrap();
    let topic = format!("{test}-topic");
    let dir = tempfile::tempdir().expect("tempdir");
    let stop = dir.path().join("stop");
    let tid = format!("{test}-txn");

    let extra = [format!("txn_id={tid}"), "txn_timeout_ms=1500".to_string()];
    let (held, early) = hold_transaction(&client, &bootstrap, &topic, &extra, &stop);
    // Wait (bounded) until the coordinator says the transaction was aborted.
    let mut raw = Raw::connect(broker.broker.addr, "raw-txn");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let req = DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s(&tid))]);
        let r: DescribeTransactionsResponse = ask(&mut raw, ApiKey::DescribeTransactions, 0, &req);
        let state = r.transaction_states[0].transaction_state.to_string();
        if state == "CompleteAbort" {
            assert_eq!(
                r.transaction_states[0].producer_epoch, 1,
                "the epoch was bumped"
            );
            break;
        }
        assert_eq!(state, "Ongoing", "{test}");
        assert!(Instant::now() < deadline, "{test}: never timed out");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&stop, b"").expect("stop file");
    let held = held.finish(early);
    let fenced = held.of("fenced");
    assert_eq!(
        fenced.len(),
        1,
        "{test}: the commit did not fail\n{}",
        held.tail()
    );

    // A plain record after it: read_committed sees that one only.
    let after = clients::produced(
        &clients::run(&client, &bootstrap, &Job::produce(&topic, 1, "none", 100)),
        100,
        1,
    );
    let group = format!("{test}-group");
    let job = Job::consume(&topic, &group, 1)
        .with(LINGER)
        .with("isolation=read_committed");
    let got = clients::consumed(&clients::run(&client, &bootstrap, &job), client.headers);
    clients::assert_exactly(&format!("{test}: read_committed"), &got, &after);
    let all_group = format!("{test}-all");
    let job = Job::consume(&topic, &all_group, PER_TXN + 1)
        .with(LINGER)
        .with("isolation=read_uncommitted");
    let got = clients::consumed(&clients::run(&client, &bootstrap, &job), client.headers);
    assert_eq!(got.len() as u64, PER_TXN + 1, "{test}: read_uncommitted");
    broker.drain();
    assert!(
        broker
            .seen
            .iter()
            .flat_map(|s| &s.markers)
            .any(|m| m.contains("ABORT marker")),
        "{test}: no ABORT marker fetched"
    );
    broker.summary();
}

/// Input records for the consume-transform-produce test.
const CTP_INPUT: u64 = 60;

/// Consume-transform-produce with send_offsets_to_transaction: the loop is killed (SIGKILL)
/// right after a commit, then in the middle of a transaction (its records produced, not
/// committed), and restarted; in the end every input record is in the output exactly once for
/// a read_committed consumer.
#[test]
fn confluent_kafka_consume_transform_produce_survives_kills() {
    let test = "txn_ctp";
    let client = Client::find("confluent");
    let mut broker = Watched::start(test, &[]);
    let bootstrap = broker.bootstrap();
    let input = format!("{test}-in");
    let output = format!("{test}-out");
    let group = format!("{test}-group");

    let sent = clients::produced(
        &clients::run(
            &client,
            &bootstrap,
            &Job::produce(&input, CTP_INPUT, "none", 0),
        ),
        0,
        CTP_INPUT,
    );
    let ctp = |extra: &[&str]| {
        let mut job = Job::consume(&input, &group, 0)
            .with(format!("txn_id={test}-txn"))
            .with(format!("out={output}"))
            .with("batch=10")
            .with("idle_ms=3000");
        for e in extra {
            job = job.with(*e);
        }
        job.mode = "ctp";
        job
    };
    // 1: killed right after its second commit (between transactions).
    let mut run = clients::spawn(&client, &bootstrap, &ctp(&[]));
    let mut seen = Vec::new();
    wait_for(
        &mut run,
        &mut seen,
        "txn_committed",
        Duration::from_secs(40),
    );
    wait_for(
        &mut run,
        &mut seen,
        "txn_committed",
        Duration::from_secs(40),
    );
    run.child.kill().expect("SIGKILL");
    let _ = run.child.wait();
    // 2: killed inside its second transaction, records produced but not committed.
    let mut run = clients::spawn(&client, &bootstrap, &ctp(&["hang_in_txn=2"]));
    let mut seen = Vec::new();
    wait_for(&mut run, &mut seen, "in_txn", Duration::from_secs(40));
    run.child.kill().expect("SIGKILL");
    let _ = run.child.wait();
    // 3: runs until the input is drained.
    let last = clients::run(&client, &bootstrap, &ctp(&[]));
    assert!(
        !last.of("txn_committed").is_empty(),
        "{test}: the last run committed nothing\n{}",
        last.tail()
    );

    let expected: Vec<Produced> = sent
        .iter()
        .map(|p| Produced {
            index: p.index,
            partition: None,
            offset: None,
        })
        .collect();
    let check = format!("{test}-check");
    let job = Job::consume(&output, &check, CTP_INPUT)
        .with(LINGER)
        .with("isolation=read_committed");
    let got = clients::consumed(&clients::run(&client, &bootstrap, &job), client.headers);
    clients::assert_exactly(&format!("{test}: output, read_committed"), &got, &expected);
    // The killed transaction's records are in the log, aborted: read_uncommitted sees more.
    let check_all = format!("{test}-check-all");
    let job = Job::consume(&output, &check_all, CTP_INPUT + 10)
        .with(LINGER)
        .with("isolation=read_uncommitted");
    let all = clients::consumed(&clients::run(&client, &bootstrap, &job), client.headers);
    assert!(
        all.len() as u64 >= CTP_INPUT + 10,
        "{test}: read_uncommitted saw {} records",
        all.len()
    );

    broker.drain();
    for api in ["AddOffsetsToTxn", "TxnOffsetCommit", "EndTxn"] {
        assert!(broker.seen.iter().any(|s| s.api == api), "{test}: no {api}");
    }
    for s in &broker.seen {
        assert!(
            !s.trouble.iter().any(|t| t.contains("undecodable")),
            "{test}: {}",
            s.line
        );
    }
    broker.summary();
}

// ---- Raw requests -------------------------------------------------------------------------

/// Sends a request and decodes its response.
fn ask<Req: Encodable, Resp: Decodable>(
    raw: &mut Raw,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    let corr = raw.send(key, version, req);
    let frame = raw.read_frame();
    let mut body = Bytes::copy_from_slice(&frame[4..]);
    let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
        .expect("response header");
    assert_eq!(header.correlation_id, corr);
    Resp::decode(&mut body, version).expect("response body")
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

/// A batch of one record from a transactional producer.
fn txn_records(pid: i64, epoch: i16, seq: i32) -> Bytes {
    let rec = kafka_protocol::records::Record {
        transactional: true,
        control: false,
        partition_leader_epoch: -1,
        producer_id: pid,
        producer_epoch: epoch,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset: 0,
        sequence: seq,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from_static(b"raw")),
        headers: Default::default(),
    };
    common::frame::encode_batch(&[rec], 2)
}

fn init(raw: &mut Raw, tid: &str, version: i16, expected: (i64, i16)) -> InitProducerIdResponse {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(tid))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(expected.0))
        .with_producer_epoch(expected.1);
    ask(raw, ApiKey::InitProducerId, version, &req)
}

fn add_partition(raw: &mut Raw, tid: &str, pid: i64, epoch: i16, topic: &str, version: i16) -> i16 {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    let topics = vec![AddPartitionsToTxnTopic::default()
        .with_name(TopicName(s(topic)))
        .with_partitions(vec![0])];
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(tid)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics);
    let resp: AddPartitionsToTxnResponse = ask(raw, ApiKey::AddPartitionsToTxn, version, &req);
    resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

fn produce(raw: &mut Raw, tid: &str, topic: &str, recs: Bytes, version: i16) -> i16 {
    let req = common::frame::produce_req(topic, 0, -1, recs)
        .with_transactional_id(Some(TransactionalId(s(tid))));
    let resp: ProduceResponse = ask(raw, ApiKey::Produce, version, &req);
    resp.responses[0].partition_responses[0].error_code
}

fn end(raw: &mut Raw, tid: &str, pid: i64, epoch: i16, commit: bool, version: i16) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(tid)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let resp: EndTxnResponse = ask(raw, ApiKey::EndTxn, version, &req);
    resp.error_code
}

fn create_topic(raw: &mut Raw, topic: &str) {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(topic)))
            .with_num_partitions(1)
            .with_replication_factor(1)])
        .with_timeout_ms(5000);
    let resp: CreateTopicsResponse = ask(raw, ApiKey::CreateTopics, 5, &req);
    assert_eq!(resp.topics[0].error_code, 0);
}

/// The coordinator's answers as Kafka gives them, per version: timeouts past the maximum,
/// PRODUCER_FENCED (INVALID_PRODUCER_EPOCH for old versions), a transactional batch to a
/// partition not in the transaction (INVALID_TXN_STATE up to Produce v10,
/// TRANSACTION_ABORTABLE from v11), EndTxn with nothing open, a client's control batch; then
/// the admin APIs describe the open transaction and its producer, and a read_committed Fetch
/// stops at the last stable offset.
#[test]
fn raw_coordinator_errors_and_admin_apis() {
    use chronik_tui::protocol::errors as ec;
    let broker = common::Broker::start(&[]);
    let mut raw = Raw::connect(broker.addr, "raw-txn");
    let topic = "raw-txn-topic";
    create_topic(&mut raw, topic);

    // transaction.timeout.ms past transaction.max.timeout.ms (900000).
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s("t1"))))
        .with_transaction_timeout_ms(900_001)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r: InitProducerIdResponse = ask(&mut raw, ApiKey::InitProducerId, 4, &req);
    assert_eq!(r.error_code, ec::INVALID_TRANSACTION_TIMEOUT);

    let r = init(&mut raw, "t1", 4, (-1, -1));
    assert_eq!((r.error_code, r.producer_epoch), (0, 0));
    let pid = r.producer_id.0;
    let r = init(&mut raw, "t1", 4, (-1, -1));
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, pid, 1)
    );
    // Naming another producer id: fenced, as each version knows it.
    assert_eq!(
        init(&mut raw, "t1", 4, (pid + 77, 0)).error_code,
        ec::PRODUCER_FENCED
    );
    assert_eq!(
        init(&mut raw, "t1", 3, (pid + 77, 0)).error_code,
        ec::INVALID_PRODUCER_EPOCH
    );
    // The old epoch is fenced on AddPartitionsToTxn (v2+: PRODUCER_FENCED, before: the old code).
    assert_eq!(
        add_partition(&mut raw, "t1", pid, 0, topic, 3),
        ec::PRODUCER_FENCED
    );
    assert_eq!(
        add_partition(&mut raw, "t1", pid, 0, topic, 1),
        ec::INVALID_PRODUCER_EPOCH
    );
    // EndTxn with no transaction open.
    assert_eq!(end(&mut raw, "t1", pid, 1, true, 3), ec::INVALID_TXN_STATE);
    // A transactional batch to a partition not in the transaction.
    assert_eq!(
        produce(&mut raw, "t1", topic, txn_records(pid, 1, 0), 10),
        ec::INVALID_TXN_STATE
    );
    assert_eq!(
        produce(&mut raw, "t1", topic, txn_records(pid, 1, 0), 11),
        ec::TRANSACTION_ABORTABLE
    );
    // Now in the transaction: accepted; a client's control batch is not.
    assert_eq!(add_partition(&mut raw, "t1", pid, 1, topic, 3), 0);
    assert_eq!(produce(&mut raw, "t1", topic, txn_records(pid, 1, 0), 9), 0);
    let mut control = kafka_protocol::records::Record {
        transactional: true,
        control: true,
        partition_leader_epoch: -1,
        producer_id: pid,
        producer_epoch: 1,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: Some(Bytes::from_static(&[0, 0, 0, 1])),
        value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
        headers: Default::default(),
    };
    control.producer_epoch = 1;
    let recs = common::frame::encode_batch(&[control], 2);
    assert_eq!(produce(&mut raw, "t1", topic, recs, 9), ec::INVALID_RECORD);

    // DescribeTransactions: the open transaction and its partition; an unknown id.
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s("t1")), TransactionalId(s("nope"))]);
    let r: DescribeTransactionsResponse = ask(&mut raw, ApiKey::DescribeTransactions, 0, &req);
    let t = &r.transaction_states[0];
    assert_eq!(t.error_code, 0);
    assert_eq!(t.transaction_state.as_str(), "Ongoing");
    assert_eq!((t.producer_id.0, t.producer_epoch), (pid, 1));
    assert_eq!(t.transaction_timeout_ms, 60_000);
    assert!(t.transaction_start_time_ms > 0);
    assert_eq!(t.topics[0].topic.0.as_str(), topic);
    assert_eq!(t.topics[0].partitions, vec![0]);
    assert_eq!(
        r.transaction_states[1].error_code,
        ec::TRANSACTIONAL_ID_NOT_FOUND
    );

    // ListTransactions with state and producer id filters; an unknown state is listed back.
    assert_eq!(init(&mut raw, "t2", 4, (-1, -1)).error_code, 0);
    let list = |raw: &mut Raw, states: &[&str], pids: &[i64]| -> ListTransactionsResponse {
        let req = ListTransactionsRequest::default()
            .with_state_filters(states.iter().map(|x| s(x)).collect())
            .with_producer_id_filters(pids.iter().map(|p| ProducerId(*p)).collect())
            .with_duration_filter(-1);
        ask(raw, ApiKey::ListTransactions, 1, &req)
    };
    let ids = |r: &ListTransactionsResponse| -> Vec<String> {
        r.transaction_states
            .iter()
            .map(|t| format!("{}:{}", t.transactional_id.0, t.transaction_state))
            .collect()
    };
    assert_eq!(
        ids(&list(&mut raw, &[], &[])),
        vec!["t1:Ongoing", "t2:Empty"]
    );
    assert_eq!(ids(&list(&mut raw, &["Ongoing"], &[])), vec!["t1:Ongoing"]);
    assert_eq!(ids(&list(&mut raw, &[], &[pid])), vec!["t1:Ongoing"]);
    let r = list(&mut raw, &["Bogus", "Empty"], &[]);
    assert_eq!(ids(&r), vec!["t2:Empty"]);
    assert_eq!(r.unknown_state_filters, vec![s("Bogus")]);
    // v1's duration filter: transactions running longer than an hour. As in Kafka, an id
    // without a transaction (start time -1) passes it; t1's, just begun, does not.
    let req = ListTransactionsRequest::default().with_duration_filter(3_600_000);
    let r: ListTransactionsResponse = ask(&mut raw, ApiKey::ListTransactions, 1, &req);
    assert_eq!(ids(&r), vec!["t2:Empty"]);

    // DescribeProducers: the producer with its open transaction's first offset.
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(s(topic)))
        .with_partition_indexes(vec![0, 5])]);
    let r: DescribeProducersResponse = ask(&mut raw, ApiKey::DescribeProducers, 0, &req);
    let p = &r.topics[0].partitions;
    assert_eq!(p[0].error_code, 0);
    let st = &p[0].active_producers[0];
    assert_eq!(
        (st.producer_id.0, st.producer_epoch, st.last_sequence),
        (pid, 1, 0)
    );
    assert_eq!(st.current_txn_start_offset, 0);
    assert_eq!(p[1].error_code, ec::UNKNOWN_TOPIC_OR_PARTITION);

    // read_committed stops at the open transaction (LSO 0); ListOffsets latest is the LSO.
    let fetch = |raw: &mut Raw, isolation: i8| -> (i64, i64, usize) {
        use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_isolation_level(isolation)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let r: FetchResponse = ask(raw, ApiKey::Fetch, 11, &req);
        let pd = &r.responses[0].partitions[0];
        (
            pd.high_watermark,
            pd.last_stable_offset,
            pd.records.as_ref().map_or(0, |b| b.len()),
        )
    };
    let (hw, lso, n) = fetch(&mut raw, 1);
    assert_eq!((hw, lso, n), (1, 0, 0));
    assert!(
        fetch(&mut raw, 0).2 > 0,
        "read_uncommitted sees the open transaction"
    );
    let latest = |raw: &mut Raw, isolation: i8| -> i64 {
        use kafka_protocol::messages::list_offsets_request::{
            ListOffsetsPartition, ListOffsetsTopic,
        };
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])]);
        let r: ListOffsetsResponse = ask(raw, ApiKey::ListOffsets, 5, &req);
        r.topics[0].partitions[0].offset
    };
    assert_eq!((latest(&mut raw, 1), latest(&mut raw, 0)), (0, 1));

    // Offsets in the transaction: invisible (require_stable: UNSTABLE_OFFSET_COMMIT) until the
    // commit; an aborted transaction's offsets are discarded.
    let group = "raw-txn-group";
    let add = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s("t1")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(1)
        .with_group_id(GroupId(s(group)));
    let r: AddOffsetsToTxnResponse = ask(&mut raw, ApiKey::AddOffsetsToTxn, 3, &add);
    assert_eq!(r.error_code, 0);
    let stage = |raw: &mut Raw, offset: i64, version: i16| -> i16 {
        use kafka_protocol::messages::txn_offset_commit_request::{
            TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
        };
        let req = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s("t1")))
            .with_group_id(GroupId(s(group)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(1)
            .with_generation_id(-1)
            .with_member_id(s(""))
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset)
                    .with_committed_leader_epoch(-1)])]);
        let r: TxnOffsetCommitResponse = ask(raw, ApiKey::TxnOffsetCommit, version, &req);
        r.topics[0].partitions[0].error_code
    };
    assert_eq!(stage(&mut raw, 1, 3), 0);
    let committed = |raw: &mut Raw, stable: bool| -> (i16, i64) {
        use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_require_stable(stable)
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![0])]));
        let r: OffsetFetchResponse = ask(raw, ApiKey::OffsetFetch, 7, &req);
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.committed_offset)
    };
    assert_eq!(committed(&mut raw, true), (ec::UNSTABLE_OFFSET_COMMIT, -1));
    assert_eq!(committed(&mut raw, false), (0, -1));

    // Abort: the marker goes in, the LSO moves past it, and the aborted transaction is listed.
    assert_eq!(end(&mut raw, "t1", pid, 1, false, 3), 0);
    assert_eq!(end(&mut raw, "t1", pid, 1, false, 3), 0, "a retried EndTxn");
    assert_eq!(end(&mut raw, "t1", pid, 1, true, 3), ec::INVALID_TXN_STATE);
    let (hw, lso, n) = fetch(&mut raw, 1);
    assert_eq!((hw, lso), (2, 2));
    assert!(n > 0);
    assert_eq!(latest(&mut raw, 1), 2);
    assert_eq!(
        committed(&mut raw, true),
        (0, -1),
        "aborted offsets are discarded"
    );
    // A group not added to the transaction (a new one): the error as each version knows it.
    assert_eq!(stage(&mut raw, 1, 3), ec::INVALID_TXN_STATE);
    assert_eq!(stage(&mut raw, 1, 4), ec::TRANSACTION_ABORTABLE);

    // A committed transaction's offsets become the group's.
    assert_eq!(add_partition(&mut raw, "t1", pid, 1, topic, 3), 0);
    let r: AddOffsetsToTxnResponse = ask(&mut raw, ApiKey::AddOffsetsToTxn, 3, &add);
    assert_eq!(r.error_code, 0);
    assert_eq!(produce(&mut raw, "t1", topic, txn_records(pid, 1, 1), 9), 0);
    assert_eq!(stage(&mut raw, 3, 3), 0);
    assert_eq!(end(&mut raw, "t1", pid, 1, true, 3), 0);
    assert_eq!(committed(&mut raw, true), (0, 3));
    // The read_committed fetch from 0 lists the aborted transaction (its first offset 0).
    {
        use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_isolation_level(1)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let r: FetchResponse = ask(&mut raw, ApiKey::Fetch, 11, &req);
        let pd = &r.responses[0].partitions[0];
        let aborted: Vec<(i64, i64)> = pd
            .aborted_transactions
            .iter()
            .flatten()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect();
        assert_eq!(aborted, vec![(pid, 0)]);
        assert_eq!(pd.last_stable_offset, pd.high_watermark);
    }
}

/// With --data-dir, a broker killed with SIGKILL while a transaction is open comes back with
/// the transactional id (the next InitProducerId bumps its epoch, fencing and aborting the
/// open transaction) and the partition's open transaction (its LSO) rebuilt from the log.
#[test]
fn transaction_state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8 path").to_string();
    let mut broker = common::Broker::start(&["--data-dir", &data]);
    let topic = "restart-txn-topic";
    let (pid, lso_before) = {
        let mut raw = Raw::connect(broker.addr, "raw-txn");
        create_topic(&mut raw, topic);
        let r = init(&mut raw, "tr", 4, (-1, -1));
        let pid = r.producer_id.0;
        assert_eq!(add_partition(&mut raw, "tr", pid, 0, topic, 3), 0);
        assert_eq!(produce(&mut raw, "tr", topic, txn_records(pid, 0, 0), 9), 0);
        (pid, 0)
    };
    broker.kill9();
    let broker = common::Broker::start(&["--data-dir", &data]);
    let mut raw = Raw::connect(broker.addr, "raw-txn");
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s("tr"))]);
    let r: DescribeTransactionsResponse = ask(&mut raw, ApiKey::DescribeTransactions, 0, &req);
    let t = &r.transaction_states[0];
    assert_eq!(
        (t.error_code, t.transaction_state.as_str(), t.producer_id.0),
        (0, "Ongoing", pid)
    );
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(s(topic)))
        .with_partition_indexes(vec![0])]);
    let r: DescribeProducersResponse = ask(&mut raw, ApiKey::DescribeProducers, 0, &req);
    assert_eq!(
        r.topics[0].partitions[0].active_producers[0].current_txn_start_offset,
        lso_before
    );
    // The producer restarts: its open transaction is aborted, then it gets the next epoch.
    assert_eq!(
        init(&mut raw, "tr", 4, (-1, -1)).error_code,
        chronik_tui::protocol::errors::CONCURRENT_TRANSACTIONS
    );
    let r = init(&mut raw, "tr", 4, (-1, -1));
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, pid, 2)
    );
    // The ABORT marker went into the partition the restored transaction held.
    let r: DescribeProducersResponse = ask(&mut raw, ApiKey::DescribeProducers, 0, &req);
    let st = &r.topics[0].partitions[0].active_producers[0];
    assert_eq!((st.current_txn_start_offset, st.producer_epoch), (-1, 1));
    // A producer id for a new producer is above every one handed out before.
    let r: InitProducerIdResponse = ask(
        &mut raw,
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert!(r.producer_id.0 > pid);
}
