//! Seven real Kafka clients (and librdkafka twice: through confluent-kafka and kcat) against the
//! real `chronik-tui` binary: produce with acks=all in every codec each client supports, consume
//! back in a consumer group and commit, produce more and resume from the committed offset; a
//! two-member group over four partitions; and a `--data-dir` broker killed with SIGKILL.
//! Every payload is compared byte for byte. Each test prints the (API, version) pairs the
//! broker saw. The client programs are in `tests/clients/`; `scripts/test.sh` installs them.

mod common;

use common::clients::{self, Client, Job, Produced, Watched};

/// Messages per codec.
const PER_CODEC: u64 = 8;
/// Messages produced after the first consumer committed.
const MORE: u64 = 5;
/// How long a consumer lingers after its count to catch records that should not come.
const LINGER: &str = "idle_ms=1000";

/// Produce in every codec, consume in a group and commit, produce more, consume again in the
/// same group: only the new messages arrive.
fn roundtrip(test: &str, client_name: &str, producer_extra: &[&str]) {
    let client = Client::find(client_name);
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

    let first = clients::run(
        &client,
        &bootstrap,
        &Job::consume(&topic, &group, sent.len() as u64).with(LINGER),
    );
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
    let job = Job::produce(&topic, MORE, "none", start);
    let more_run = clients::run(&client, &bootstrap, &job);
    let more = clients::produced(&more_run, start, MORE);

    let mut second_job = Job::consume(&topic, &group, MORE).with(LINGER);
    let next_offset;
    if !client.groups {
        // No group API in this client: resume from the offset after the last one consumed.
        next_offset = format!(
            "from_offset={}",
            got.iter().map(|c| c.offset).max().map_or(0, |o| o + 1)
        );
        second_job = second_job.with(next_offset.as_str());
    }
    let second = clients::run(&client, &bootstrap, &second_job);
    let got2 = clients::consumed(&second, client.headers);
    clients::assert_exactly(
        &format!("{test}: consume after the commit (only the {MORE} new messages)"),
        &got2,
        &more,
    );
    broker.summary();
}

#[test]
fn kafka_python_3() {
    roundtrip("kafka_python_3", "kafka-python", &[]);
}

#[test]
fn kafka_python_2_0_2() {
    roundtrip("kafka_python_2_0_2", "kafka-python-2", &[]);
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

/// Two members of one group on a four-partition topic: both get partitions, and every message
/// is consumed exactly once between them.
fn two_members(test: &str, client_name: &str) {
    let client = Client::find(client_name);
    let mut broker = Watched::start(test, &["--default-partitions", "4"]);
    let bootstrap = broker.bootstrap();
    let topic = format!("{test}-topic");
    let group = format!("{test}-group");
    const BATCH: u64 = 24;

    // The first batch creates the topic (four partitions); the members join after it.
    let run = clients::run(&client, &bootstrap, &Job::produce(&topic, BATCH, "none", 0));
    let mut sent = clients::produced(&run, 0, BATCH);
    let parts: std::collections::BTreeSet<i64> = sent.iter().filter_map(|p| p.partition).collect();
    assert!(
        parts.len() > 1 || sent.iter().all(|p| p.partition.is_none()),
        "{test}: all {BATCH} keyed messages went to one partition: {parts:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let stop = dir.path().join("stop");
    let stop_arg = format!("stop_file={}", stop.display());
    let job = Job::consume(&topic, &group, 0).with(stop_arg.as_str());
    let members = [
        clients::spawn(&client, &bootstrap, &job),
        clients::spawn(&client, &bootstrap, &job),
    ];
    let mut seen: Vec<Vec<serde_json::Value>> = vec![Vec::new(), Vec::new()];

    let latest_assignment = |events: &[serde_json::Value]| -> Option<Vec<i64>> {
        events
            .iter()
            .rev()
            .find(|e| e["event"] == "assigned")
            .map(|e| {
                e["partitions"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|p| p[1].as_i64()).collect())
                    .unwrap_or_default()
            })
    };
    let pump = |seen: &mut Vec<Vec<serde_json::Value>>, wait: std::time::Duration| {
        let deadline = std::time::Instant::now() + wait;
        for (m, s) in members.iter().zip(seen.iter_mut()) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if let Ok(ev) = m
                .events
                .recv_timeout(left.min(std::time::Duration::from_millis(100)))
            {
                s.push(ev);
                s.extend(m.events.try_iter());
            }
        }
    };

    // Wait until both members hold partitions and together hold all four.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        pump(&mut seen, std::time::Duration::from_millis(200));
        if let (Some(a), Some(b)) = (latest_assignment(&seen[0]), latest_assignment(&seen[1])) {
            let mut all: Vec<i64> = a.iter().chain(b.iter()).copied().collect();
            all.sort();
            if !a.is_empty() && !b.is_empty() && all == vec![0, 1, 2, 3] {
                break;
            }
        }
        for (m, s) in members.iter().zip(seen.iter()) {
            if s.iter().any(|e| e["event"] == "error") {
                panic!("{test}: {} failed: {:?}", m.describe, s.last());
            }
        }
        if std::time::Instant::now() > deadline {
            broker.drain();
            panic!(
                "{test}: the two members never split the four partitions between them; \
                 assignments: {:?} / {:?}",
                latest_assignment(&seen[0]),
                latest_assignment(&seen[1])
            );
        }
    }

    let run = clients::run(
        &client,
        &bootstrap,
        &Job::produce(&topic, BATCH, "gzip", BATCH),
    );
    sent.extend(clients::produced(&run, BATCH, BATCH));

    // Wait until every message arrived somewhere, then a little longer for duplicates.
    let count = |seen: &Vec<Vec<serde_json::Value>>| {
        seen.iter()
            .flatten()
            .filter(|e| e["event"] == "consumed")
            .count() as u64
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count(&seen) < 2 * BATCH && std::time::Instant::now() < deadline {
        pump(&mut seen, std::time::Duration::from_millis(200));
    }
    let linger = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while std::time::Instant::now() < linger {
        pump(&mut seen, std::time::Duration::from_millis(100));
    }
    std::fs::write(&stop, b"stop").expect("stop file");
    let [a, b] = members;
    let [seen_a, seen_b] = [seen.remove(0), seen.remove(0)];
    let (a, b) = (a.finish(seen_a), b.finish(seen_b));
    let got_a = clients::consumed(&a, client.headers);
    let got_b = clients::consumed(&b, client.headers);
    eprintln!(
        "{test}: member 1 consumed {} (partitions {:?}), member 2 consumed {} (partitions {:?})",
        got_a.len(),
        latest_assignment(&a.events),
        got_b.len(),
        latest_assignment(&b.events)
    );
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "{test}: one member consumed nothing: {} / {}",
        got_a.len(),
        got_b.len()
    );
    let all: Vec<_> = got_a.into_iter().chain(got_b).collect();
    clients::assert_exactly(&format!("{test}: two members"), &all, &sent);
    broker.summary();
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
