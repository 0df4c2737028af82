//! Seven real Kafka clients (and librdkafka twice: through confluent-kafka and kcat) against the
//! real `chronik-tui` binary: produce with acks=all in every codec each client supports, consume
//! back in a consumer group and commit, produce more and resume from the committed offset
//! (also idempotent, and with legacy message sets); groups of several members over four
//! partitions, one of which leaves; SASL/PLAIN with a right and a wrong password; and a
//! `--data-dir` broker killed with SIGKILL. Every payload is compared byte for byte. Each test
//! prints the (API, version) pairs the broker saw. The client programs are in `tests/clients/`;
//! `scripts/test.sh` installs them.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::clients::{self, Client, Job, Members, Produced, Seen, Watched};

/// Messages per codec.
const PER_CODEC: u64 = 8;
/// Messages produced after the first consumer committed.
const MORE: u64 = 5;
/// How long a consumer lingers after its count to catch records that should not come.
const LINGER: &str = "idle_ms=1000";

/// Produce in every codec, consume in a group and commit, produce more, consume again in the
/// same group: only the new messages arrive.
fn roundtrip(test: &str, client_name: &str, producer_extra: &[&str]) {
    roundtrip_with(test, Client::find(client_name), producer_extra, &[]);
}

/// [`roundtrip`] with a client adjusted by the caller and extra consumer arguments.
fn roundtrip_with(
    test: &str,
    client: Client,
    producer_extra: &[&str],
    consumer_extra: &[&str],
) -> Watched {
    let mut broker = Watched::start(test, &[]);
    let bootstrap = broker.bootstrap();
    let topic = format!("{test}-topic");
    let group = format!("{test}-group");

    let mut sent: Vec<Produced> = Vec::new();
    for codec in client.compressions {
        let mut job = Job::produce(&topic, PER_CODEC, codec, sent.len() as u64);
        for e in producer_extra {
            job = job.with(*e);
        }
        let run = clients::run(&client, &bootstrap, &job);
        sent.extend(clients::produced(&run, job.start, PER_CODEC));
    }
    broker.drain();
    let codecs = broker.produce_codecs();
    for codec in client.compressions {
        assert!(
            codecs.contains(*codec),
            "{test}: no Produce request carried a {codec} batch (saw {codecs:?})"
        );
    }
    if producer_extra.contains(&"idempotent=1") {
        assert!(
            broker.seen.iter().any(|s| s.api == "InitProducerId"),
            "{test}: the idempotent producer never asked for a producer id"
        );
    }

    let mut first_job = Job::consume(&topic, &group, sent.len() as u64).with(LINGER);
    for e in consumer_extra {
        first_job = first_job.with(*e);
    }
    let first = clients::run(&client, &bootstrap, &first_job);
    let got = clients::consumed(&first, client.headers);
    clients::assert_exactly(
        &format!(
            "{test}: first consume ({} codecs)",
            client.compressions.len()
        ),
        &got,
        &sent,
    );
    assert!(
        !client.groups || !first.of("committed").is_empty(),
        "{test}: the consumer did not report a commit\n{}",
        first.tail()
    );
    broker.drain();

    let start = sent.len() as u64;
    let mut job = Job::produce(&topic, MORE, "none", start);
    for e in producer_extra {
        job = job.with(*e);
    }
    let more_run = clients::run(&client, &bootstrap, &job);
    let more = clients::produced(&more_run, start, MORE);

    clients::consume_only_new(
        &client,
        &bootstrap,
        &topic,
        &group,
        &got,
        &more,
        consumer_extra,
        &format!("{test}: consume after the commit (only the {MORE} new messages)"),
    );
    broker.summary();
    broker
}

#[test]
fn kafka_python_3() {
    roundtrip("kafka_python_3", "kafka-python", &[]);
}

#[test]
fn kafka_python_2_0_2() {
    roundtrip("kafka_python_2_0_2", "kafka-python-2", &[]);
}

/// `--sasl-plain`: with the right password the client produces and consumes (in a group, and
/// commits); with a wrong one it fails, and the broker answered SASL_AUTHENTICATION_FAILED.
fn sasl_plain(test: &str, client_name: &str) {
    let client = Client::find(client_name);
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = dir.path().join("sasl.pcapng");
    let mut broker = Watched::start(
        test,
        &[
            "--sasl-plain",
            clients::SASL_USER_PASS,
            "--record",
            recording.to_str().expect("a UTF-8 temp path"),
        ],
    );
    let bootstrap = broker.bootstrap();
    clients::sasl_produce_consume(&client, &bootstrap, test, MORE);
    broker.drain();
    assert!(
        broker.seen.iter().any(|s| s.api.starts_with("Sasl")),
        "{test}: the client never authenticated"
    );
    // A client that authenticates with bare tokens after SaslHandshake v0 (kafka-python
    // 2.0.2): each token is dissected as one, with the PLAIN user name.
    let bare = broker.seen.iter().any(|s| s.framing == "sasl_token");
    for s in broker.seen.iter().filter(|s| s.framing == "sasl_token") {
        assert!(s.trouble.is_empty(), "{test}: {}", s.line);
        assert_eq!(s.plain_user.as_deref(), Some("alice"), "{test}: {}", s.line);
    }
    // The session as recorded (`--record`, pcapng) reads back with the same SASL exchanges,
    // bare tokens paired with their answers too.
    let sasl = |seen: &[Seen]| {
        let mut v: Vec<String> = seen
            .iter()
            .filter(|s| s.api.starts_with("Sasl"))
            .map(|s| format!("{} v{} {} {:?}", s.api, s.version, s.framing, s.trouble))
            .collect();
        v.sort();
        v
    };
    std::thread::sleep(Duration::from_millis(500));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chronik-tui"))
        .args(["decode", "--json", "--kafka-port"])
        .arg(broker.bootstrap().rsplit(':').next().expect("a port"))
        .arg(&recording)
        .output()
        .expect("chronik-tui decode");
    let decoded: Vec<Seen> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(Seen::parse)
        .collect();
    assert_eq!(
        sasl(&decoded),
        sasl(&broker.seen),
        "{test}: the recorded session's SASL exchanges differ"
    );

    let run = clients::sasl_wrong_password(&client, &bootstrap, test);
    eprintln!("{test}: wrong password: {}", run.of("error")[0]["message"]);
    broker.drain();
    // With bare tokens there is no error code to send: the broker closes the connection, as
    // Kafka does, and the token stays unanswered.
    let refused = |s: &Seen| {
        if bare {
            s.framing == "sasl_token"
                && s.trouble
                    .iter()
                    .any(|t| t.contains("authentication failed"))
        } else {
            s.errors.iter().any(|e| e == "SASL_AUTHENTICATION_FAILED")
        }
    };
    assert!(
        broker.seen.iter().any(refused),
        "{test}: the broker never refused the wrong password"
    );
    broker.summary();
}

#[test]
fn sasl_plain_kafka_python() {
    sasl_plain("sasl_plain_kafka_python", "kafka-python");
}

#[test]
fn sasl_plain_kafka_python_2_0_2() {
    sasl_plain("sasl_plain_kafka_python_2_0_2", "kafka-python-2");
}

#[test]
fn sasl_plain_confluent() {
    sasl_plain("sasl_plain_confluent", "confluent");
}

#[test]
fn sasl_plain_aiokafka() {
    sasl_plain("sasl_plain_aiokafka", "aiokafka");
}

#[test]
fn sasl_plain_kcat() {
    sasl_plain("sasl_plain_kcat", "kcat");
}

#[test]
fn sasl_plain_kafkajs() {
    sasl_plain("sasl_plain_kafkajs", "kafkajs");
}

#[test]
fn sasl_plain_sarama() {
    sasl_plain("sasl_plain_sarama", "sarama");
}

#[test]
fn sasl_plain_rskafka() {
    sasl_plain("sasl_plain_rskafka", "rskafka");
}

/// Asserts that every `api` exchange the broker saw used one of `versions` (and there was one).
fn assert_only_versions(broker: &Watched, api: &str, versions: &[i64]) {
    let used: Vec<i64> = broker
        .api_versions()
        .keys()
        .filter(|(a, _)| a == api)
        .map(|(_, v)| *v)
        .collect();
    assert!(
        !used.is_empty() && used.iter().all(|v| versions.contains(v)),
        "{}: {api} versions used {used:?}, expected only {versions:?}",
        broker.test
    );
}

/// kafka-python 2.0.2 pinned to Kafka 0.10 (no ApiVersions): Produce v2 / Fetch v2 with legacy
/// message sets of magic 1, which have no headers and no zstd.
#[test]
fn kafka_python_2_0_2_legacy_magic_1() {
    let mut client = Client::find("kafka-python-2");
    client.compressions = &["none", "gzip", "snappy", "lz4"];
    client.headers = clients::Headers::Absent;
    let pin = ["api_version=0.10.0"];
    let broker = roundtrip_with("kafka_python_2_0_2_legacy_magic_1", client, &pin, &pin);
    assert_only_versions(&broker, "Produce", &[2]);
    assert_only_versions(&broker, "Fetch", &[2]);
}

/// kafka-python 2.0.2 pinned to Kafka 0.9: Produce / Fetch v0-v1 with magic 0 message sets.
#[test]
fn kafka_python_2_0_2_legacy_magic_0() {
    let mut client = Client::find("kafka-python-2");
    client.compressions = &["none", "gzip", "snappy"];
    client.headers = clients::Headers::Absent;
    let pin = ["api_version=0.9.0"];
    let broker = roundtrip_with("kafka_python_2_0_2_legacy_magic_0", client, &pin, &pin);
    assert_only_versions(&broker, "Produce", &[0, 1]);
    assert_only_versions(&broker, "Fetch", &[0, 1]);
}

#[test]
fn confluent_kafka() {
    roundtrip("confluent_kafka", "confluent", &[]);
}

#[test]
fn confluent_kafka_idempotent() {
    roundtrip("confluent_kafka_idempotent", "confluent", &["idempotent=1"]);
}

#[test]
fn aiokafka() {
    roundtrip("aiokafka", "aiokafka", &[]);
}

#[test]
fn kcat() {
    roundtrip("kcat", "kcat", &[]);
}

/// kcat's simple consumer (`-C -o beginning -e`, no group) over a four-partition topic.
#[test]
fn kcat_simple_consumer() {
    let test = "kcat_simple_consumer";
    let client = Client::find("kcat");
    let mut broker = Watched::start(test, &["--default-partitions", "4"]);
    let topic = format!("{test}-topic");
    let mut sent = Vec::new();
    for codec in ["none", "zstd"] {
        let start = sent.len() as u64;
        let job = Job::produce(&topic, PER_CODEC, codec, start);
        let run = clients::run(&client, &broker.bootstrap(), &job);
        sent.extend(clients::produced(&run, start, PER_CODEC));
    }
    let job = Job::consume(&topic, "-", sent.len() as u64).with("simple=1");
    let run = clients::run(&client, &broker.bootstrap(), &job);
    let got = clients::consumed(&run, client.headers);
    let partitions: BTreeSet<i64> = got.iter().map(|c| c.partition).collect();
    assert!(
        partitions.len() > 1,
        "{test}: everything came from partitions {partitions:?}"
    );
    clients::assert_exactly(&format!("{test}: kcat -C"), &got, &sent);
    broker.summary();
}

#[test]
fn kafkajs() {
    roundtrip("kafkajs", "kafkajs", &[]);
}

#[test]
fn sarama() {
    roundtrip("sarama", "sarama", &[]);
}

#[test]
fn rskafka() {
    roundtrip("rskafka", "rskafka", &[]);
}

/// Members of one group (one per client named, in that order) on a four-partition topic split
/// the partitions and consume every message exactly once; then the last member leaves
/// (committing) and the others take over its partitions and resume from its commits: still
/// every message exactly once. The first client produces.
fn group_members(test: &str, names: &[&str]) {
    group_members_with(test, names, &[]);
}

/// [`group_members`] with more arguments for the broker (`--record FILE`, say); returns it.
pub(crate) fn group_members_with(test: &str, names: &[&str], broker_args: &[&str]) -> Watched {
    let clients: Vec<Client> = names.iter().map(|n| Client::find(n)).collect();
    let producer = &clients[0];
    let mut args = vec!["--default-partitions", "4"];
    args.extend_from_slice(broker_args);
    let mut broker = Watched::start(test, &args);
    let bootstrap = broker.bootstrap();
    let topic = format!("{test}-topic");
    let group = format!("{test}-group");
    const BATCH: u64 = 24;
    let n = clients.len();

    // The first batch creates the topic (four partitions); the members join after it.
    let run = clients::run(
        producer,
        &bootstrap,
        &Job::produce(&topic, BATCH, "none", 0),
    );
    let mut sent = clients::produced(&run, 0, BATCH);
    let parts: BTreeSet<i64> = sent.iter().filter_map(|p| p.partition).collect();
    assert!(
        parts.len() > 1 || sent.iter().all(|p| p.partition.is_none()),
        "{test}: all {BATCH} keyed messages went to one partition: {parts:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let stops: Vec<_> = (0..n)
        .map(|i| dir.path().join(format!("stop-{i}")))
        .collect();
    let mut members = Members::new(
        clients
            .iter()
            .zip(&stops)
            .map(|(client, stop)| {
                let arg = format!("stop_file={}", stop.display());
                let job = Job::consume(&topic, &group, 0).with(arg);
                clients::spawn(client, &bootstrap, &job)
            })
            .collect(),
    );
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the {n} members never split the four partitions between them"),
        Members::split_four,
    );

    let run = clients::run(
        producer,
        &bootstrap,
        &Job::produce(&topic, BATCH, "gzip", BATCH),
    );
    sent.extend(clients::produced(&run, BATCH, BATCH));
    members.until(
        Duration::from_secs(30),
        &format!("{test}: not all of {} messages arrived", 2 * BATCH),
        |m| m.consumed() >= 2 * BATCH,
    );
    members.linger(Duration::from_secs(1)); // duplicates would show up now
    let shares: Vec<u64> = (0..n).map(|i| members.consumed_by(i)).collect();
    let assignments: Vec<_> = (0..n).map(|i| members.assignment(i)).collect();

    // The last member leaves; the others must take over all four partitions.
    std::fs::write(&stops[n - 1], b"stop").expect("stop file");
    let leaver = members.finish(n - 1);
    let got_leaver = clients::consumed(&leaver, producer.headers);
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the others did not take over all partitions after the last member left"),
        Members::split_four,
    );
    let run = clients::run(
        producer,
        &bootstrap,
        &Job::produce(&topic, BATCH, "snappy", 2 * BATCH),
    );
    sent.extend(clients::produced(&run, 2 * BATCH, BATCH));
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the third batch did not arrive"),
        |m| m.consumed() + got_leaver.len() as u64 >= 3 * BATCH,
    );
    members.linger(Duration::from_secs(1));
    let mut all = got_leaver;
    for (i, stop) in stops.iter().enumerate().take(n - 1) {
        std::fs::write(stop, b"stop").expect("stop file");
        let run = members.finish(i);
        all.extend(clients::consumed(&run, producer.headers));
    }
    eprintln!(
        "{test}: with {n} members, each consumed {shares:?} of the first {} (partitions \
         {assignments:?}); then member {n} left",
        2 * BATCH
    );
    assert!(
        shares.iter().all(|s| *s > 0),
        "{test}: a member consumed nothing while all were in the group: {shares:?}"
    );
    clients::assert_exactly(&format!("{test}: {n} members, then {}", n - 1), &all, &sent);
    broker.summary();
    broker
}

fn two_members(test: &str, client_name: &str) {
    group_members(test, &[client_name, client_name]);
}

/// One group of three different clients: the coordinator must pick an assignment protocol
/// they all support (range) and pass each member's subscription bytes (kafka-python sends
/// version 0, librdkafka version 3) to the leader untouched. Sarama 1.22 is left out: as leader
/// it rejects librdkafka's version 3 subscription ("error decoding packet: invalid length",
/// its decoder refuses trailing fields), which Apache Kafka would hand it just the same.
#[test]
fn group_mixed_clients() {
    group_members(
        "group_mixed_clients",
        &["kafka-python", "confluent", "aiokafka"],
    );
}

#[test]
fn group_two_members_kafka_python() {
    two_members("group_two_members_kafka_python", "kafka-python");
}

#[test]
fn group_two_members_confluent() {
    two_members("group_two_members_confluent", "confluent");
}

#[test]
fn group_two_members_aiokafka() {
    two_members("group_two_members_aiokafka", "aiokafka");
}

#[test]
fn group_two_members_kafkajs() {
    two_members("group_two_members_kafkajs", "kafkajs");
}

#[test]
fn group_two_members_sarama() {
    two_members("group_two_members_sarama", "sarama");
}

/// `--data-dir`: everything acknowledged with acks=all before a SIGKILL is there after a restart
/// on the same directory, and new messages continue after it.
#[test]
fn data_dir_survives_kill9() {
    let test = "data_dir_survives_kill9";
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_string_lossy().into_owned();
    let producer = Client::find("confluent");
    let consumer = Client::find("kafka-python");
    let mut broker = Watched::start(test, &["--data-dir", &data]);
    let topic = format!("{test}-topic");

    let mut sent = Vec::new();
    for codec in ["none", "zstd", "lz4"] {
        let start = sent.len() as u64;
        let run = clients::run(
            &producer,
            &broker.bootstrap(),
            &Job::produce(&topic, PER_CODEC, codec, start),
        );
        sent.extend(clients::produced(&run, start, PER_CODEC));
    }

    broker.kill9_and_restart(&["--data-dir", &data]);

    let start = sent.len() as u64;
    let run = clients::run(
        &producer,
        &broker.bootstrap(),
        &Job::produce(&topic, MORE, "gzip", start),
    );
    sent.extend(clients::produced(&run, start, MORE));

    let run = clients::run(
        &consumer,
        &broker.bootstrap(),
        &Job::consume(&topic, "after-restart", sent.len() as u64).with(LINGER),
    );
    let got = clients::consumed(&run, consumer.headers);
    clients::assert_exactly(&format!("{test}: after SIGKILL and restart"), &got, &sent);
    broker.summary();
}
