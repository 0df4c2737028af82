//! The consumer group protocol of KIP-848 (`group.protocol=consumer`) with librdkafka 2.16
//! (confluent-kafka) against the real binary: two members share a four-partition topic, one
//! leaves and the other takes over, every message consumed exactly once (each record committed
//! before it is reported); a member killed with SIGKILL is removed when its session times out
//! and the other resumes from its commits; a classic member and a consumer-protocol member
//! cannot share a group id (Kafka's errors both ways); a regex subscription with the range
//! assignor, described by the admin client; a static member that comes back. Every frame must
//! dissect cleanly.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::clients::{self, Client, Consumed, Job, Members, Produced, Watched};
use serde_json::Value as Json;

/// Messages per produced batch.
const BATCH: u64 = 24;

/// Broker arguments: four partitions per topic, a heartbeat every 500 ms and a session timeout
/// short enough for the SIGKILL test.
const BROKER: [&str; 6] = [
    "--default-partitions",
    "4",
    "--consumer-heartbeat-interval-ms",
    "500",
    "--consumer-session-timeout-ms",
    "4000",
];

/// A consumer of the KIP-848 protocol that commits each record before reporting it.
fn kip848_member<'a>(topic: &'a str, group: &'a str, stop: &std::path::Path) -> Job<'a> {
    Job::consume(topic, group, 0)
        .with("group_protocol=consumer")
        .with("commit=each")
        .with(format!("stop_file={}", stop.display()))
}

/// What only these tests do with members.
trait Kill {
    fn kill(&mut self, i: usize) -> Vec<Json>;
}

impl Kill for Members {
    /// Kills member `i` with SIGKILL; what it printed.
    fn kill(&mut self, i: usize) -> Vec<Json> {
        let mut running = self.running[i].take().expect("member still running");
        running.child.kill().expect("SIGKILL");
        let _ = running.child.wait();
        let mut seen = std::mem::take(&mut self.seen[i]);
        seen.extend(running.events.try_iter());
        seen
    }
}

/// The `consumed` events among `events`, as [`clients::consumed`] reads them.
fn consumed_of(events: Vec<Json>, client: &Client) -> Vec<Consumed> {
    let run = clients::Finished {
        events,
        stderr: String::new(),
        describe: String::new(),
    };
    clients::consumed(&run, client.headers)
}

/// The broker saw the KIP-848 protocol (and no classic group request), and the dissector read
/// every frame.
fn check_exchanges(test: &str, broker: &mut Watched) {
    broker.drain();
    let versions = broker.api_versions();
    assert!(
        versions.contains_key(&("ConsumerGroupHeartbeat".to_string(), 1)),
        "{test}: no ConsumerGroupHeartbeat v1 seen: {versions:?}"
    );
    assert!(
        !versions.keys().any(|(api, _)| api == "JoinGroup"),
        "{test}: a classic JoinGroup was sent: {versions:?}"
    );
    let undecodable: Vec<&str> = broker
        .seen
        .iter()
        .filter(|s| s.trouble.iter().any(|t| t.contains("undecodable")))
        .map(|s| s.line.as_str())
        .collect();
    assert!(
        undecodable.is_empty(),
        "{test}: frames the dissector could not read: {undecodable:#?}"
    );
    broker.summary();
}

/// Two KIP-848 members share the four partitions (two each, the broker's uniform assignor);
/// one leaves (close()), the other takes over all four; every message is consumed exactly once
/// across the two, commits included.
#[test]
fn kip848_two_members_then_one_leaves() {
    let test = "kip848_two_members_then_one_leaves";
    let client = Client::find("confluent");
    let mut broker = Watched::start(test, &BROKER);
    let bootstrap = broker.bootstrap();
    let topic = format!("{test}-topic");
    let group = format!("{test}-group");

    let run = clients::run(&client, &bootstrap, &Job::produce(&topic, BATCH, "none", 0));
    let mut sent: Vec<Produced> = clients::produced(&run, 0, BATCH);

    let dir = tempfile::tempdir().expect("tempdir");
    let stops = [dir.path().join("stop-0"), dir.path().join("stop-1")];
    let mut members = Members::new(
        stops
            .iter()
            .map(|stop| clients::spawn(&client, &bootstrap, &kip848_member(&topic, &group, stop)))
            .collect(),
    );
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the two members never split the four partitions"),
        Members::split_four,
    );
    for i in 0..2 {
        assert_eq!(
            members.assignment(i).map(|a| a.len()),
            Some(2),
            "{test}: the uniform assignor gives two partitions each"
        );
    }
    let run = clients::run(
        &client,
        &bootstrap,
        &Job::produce(&topic, BATCH, "gzip", BATCH),
    );
    sent.extend(clients::produced(&run, BATCH, BATCH));
    members.until(
        Duration::from_secs(30),
        &format!(
            "{test}: not all of the first {} messages arrived",
            2 * BATCH
        ),
        |m| m.consumed_by(0) + m.consumed_by(1) >= 2 * BATCH,
    );
    members.linger(Duration::from_secs(1));
    let shares = [members.consumed_by(0), members.consumed_by(1)];
    // The clients table (as the TUI's clients view has it) lists the members' coordinator
    // connections with the heartbeat's version, and the stall detector finds them healthy.
    let reply: Json = serde_json::from_str(&broker.broker.command("clients")).expect("JSON reply");
    let table = reply["message"].as_str().unwrap_or_default();
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("ConsumerGroupHeartbeat:v1"))
        .collect();
    assert_eq!(
        rows.len(),
        2,
        "{test}: one heartbeating connection per member: {table}"
    );
    assert!(
        rows.iter().all(|r| r.contains(" healthy ")),
        "{test}: a member's connection is not healthy: {table}"
    );

    // Member 1 leaves; member 0 must take over all four partitions.
    std::fs::write(&stops[1], b"stop").expect("stop file");
    let leaver = members.finish(1);
    let mut all = clients::consumed(&leaver, client.headers);
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the remaining member did not take over all four partitions"),
        |m| m.assignment(0) == Some(BTreeSet::from([0, 1, 2, 3])),
    );
    let run = clients::run(
        &client,
        &bootstrap,
        &Job::produce(&topic, BATCH, "snappy", 2 * BATCH),
    );
    sent.extend(clients::produced(&run, 2 * BATCH, BATCH));
    let before = all.len() as u64;
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the third batch did not arrive"),
        |m| m.consumed_by(0) + before >= 3 * BATCH,
    );
    members.linger(Duration::from_secs(1));
    std::fs::write(&stops[0], b"stop").expect("stop file");
    let stayer = members.finish(0);
    all.extend(clients::consumed(&stayer, client.headers));

    eprintln!(
        "{test}: the two members consumed {shares:?} of the first {}",
        2 * BATCH
    );
    assert!(
        shares.iter().all(|s| *s > 0),
        "{test}: a member consumed nothing while both were in the group: {shares:?}"
    );
    clients::assert_exactly(&format!("{test}: two members, then one"), &all, &sent);
    check_exchanges(test, &mut broker);
}

/// A KIP-848 member killed with SIGKILL never leaves: the broker removes it when its session
/// times out (4 s here) and the other member gets all four partitions, resuming from the killed
/// member's commits: it reads exactly the messages produced after the kill.
#[test]
fn kip848_killed_member_times_out() {
    let test = "kip848_killed_member_times_out";
    let client = Client::find("confluent");
    let mut broker = Watched::start(test, &BROKER);
    let bootstrap = broker.bootstrap();
    let topic = format!("{test}-topic");
    let group = format!("{test}-group");

    let run = clients::run(&client, &bootstrap, &Job::produce(&topic, BATCH, "none", 0));
    let first = clients::produced(&run, 0, BATCH);

    let dir = tempfile::tempdir().expect("tempdir");
    let stops = [dir.path().join("stop-0"), dir.path().join("stop-1")];
    // Member 0 alone reads (and commits) the first batch.
    let mut members = Members::new(vec![clients::spawn(
        &client,
        &bootstrap,
        &kip848_member(&topic, &group, &stops[0]),
    )]);
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the first member did not read the first batch"),
        |m| m.consumed_by(0) >= BATCH,
    );
    // Member 1 joins: the partitions are split.
    members.running.push(Some(clients::spawn(
        &client,
        &bootstrap,
        &kip848_member(&topic, &group, &stops[1]),
    )));
    members.seen.push(Vec::new());
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the two members never split the four partitions"),
        Members::split_four,
    );
    let killed = members.kill(0);
    let killed_at = Instant::now();

    let run = clients::run(
        &client,
        &bootstrap,
        &Job::produce(&topic, BATCH, "lz4", BATCH),
    );
    let second = clients::produced(&run, BATCH, BATCH);
    members.until(
        Duration::from_secs(40),
        &format!("{test}: the survivor did not get all four partitions after the kill"),
        |m| m.assignment(1) == Some(BTreeSet::from([0, 1, 2, 3])),
    );
    eprintln!(
        "{test}: the survivor held all four partitions {:?} after the kill",
        killed_at.elapsed()
    );
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the survivor did not read the second batch"),
        |m| m.consumed_by(1) >= BATCH,
    );
    members.linger(Duration::from_secs(1));
    std::fs::write(&stops[1], b"stop").expect("stop file");
    let survivor = members.finish(1);

    clients::assert_exactly(
        &format!("{test}: the killed member"),
        &consumed_of(killed, &client),
        &first,
    );
    clients::assert_exactly(
        &format!("{test}: the survivor (from the killed member's commits on)"),
        &clients::consumed(&survivor, client.headers),
        &second,
    );
    check_exchanges(test, &mut broker);
}

/// One group id cannot be both: a KIP-848 member joining a group with a classic member gets
/// GROUP_ID_NOT_FOUND (librdkafka takes it as fatal), a classic member joining a group with a
/// KIP-848 member gets INCONSISTENT_GROUP_PROTOCOL, as from Apache Kafka (without its migration
/// of non-empty groups).
#[test]
fn kip848_and_classic_members_cannot_share_a_group() {
    let test = "kip848_and_classic_members_cannot_share_a_group";
    let client = Client::find("confluent");
    let mut broker = Watched::start(test, &BROKER);
    let bootstrap = broker.bootstrap();
    let topic = format!("{test}-topic");
    clients::run(&client, &bootstrap, &Job::produce(&topic, 4, "none", 0));
    let dir = tempfile::tempdir().expect("tempdir");

    for (first_kip848, group, words) in [
        (
            false,
            "classic-first",
            ["Fatal error", "group id does not exist"],
        ),
        (
            true,
            "kip848-first",
            ["INCONSISTENT_GROUP_PROTOCOL", "JoinGroup"],
        ),
    ] {
        let stop = dir.path().join(group);
        let first_job = if first_kip848 {
            kip848_member(&topic, group, &stop)
        } else {
            Job::consume(&topic, group, 0).with(format!("stop_file={}", stop.display()))
        };
        let mut members = Members::new(vec![clients::spawn(&client, &bootstrap, &first_job)]);
        members.until(
            Duration::from_secs(30),
            &format!("{test}: the first member of {group} got no partitions"),
            |m| m.assignment(0).is_some_and(|a| !a.is_empty()),
        );
        let second_job = if first_kip848 {
            Job::consume(&topic, group, 0).with("timeout_ms=15000")
        } else {
            Job::consume(&topic, group, 0)
                .with("group_protocol=consumer")
                .with("timeout_ms=15000")
        };
        let second = clients::run_to_end(&client, &bootstrap, &second_job);
        second.assert_error(&words);
        std::fs::write(&stop, b"stop").expect("stop file");
        members.finish(0);
    }
    broker.drain();
    let errors: BTreeSet<&str> = broker
        .seen
        .iter()
        .flat_map(|s| s.errors.iter().map(String::as_str))
        .collect();
    for e in ["GROUP_ID_NOT_FOUND", "INCONSISTENT_GROUP_PROTOCOL"] {
        assert!(
            errors.contains(e),
            "{test}: the broker never answered {e}: {errors:?}"
        );
    }
    broker.summary();
}

/// A KIP-848 member subscribed by regex (librdkafka sends `^…` subscriptions as
/// ConsumerGroupHeartbeat v1's subscribed_topic_regex) with the `range` assignor gets the
/// partitions of every matching topic, and of a matching topic created while it runs; the admin
/// client describes the group with ConsumerGroupDescribe and lists it as a consumer group.
#[test]
fn kip848_regex_subscription_range_assignor_and_describe() {
    let test = "kip848_regex";
    let client = Client::find("confluent");
    let mut broker = Watched::start(test, &BROKER);
    let bootstrap = broker.bootstrap();
    let group = format!("{test}-group");
    let (topic_a, topic_b, topic_c) = (
        format!("{test}-a"),
        format!("{test}-b"),
        format!("{test}-c"),
    );
    let mut sent: Vec<Produced> = Vec::new();
    for (i, topic) in [&topic_a, &topic_b].into_iter().enumerate() {
        let start = i as u64 * 8;
        let run = clients::run(&client, &bootstrap, &Job::produce(topic, 8, "none", start));
        sent.extend(clients::produced(&run, start, 8));
    }
    // Another topic the regex does not match.
    clients::run(
        &client,
        &bootstrap,
        &Job::produce("unrelated-topic", 4, "none", 100),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let stop = dir.path().join("stop");
    let pattern = format!("^{test}-.*");
    let job = Job::consume(&pattern, &group, 0)
        .with("group_protocol=consumer")
        .with("assignor=range")
        .with("commit=each")
        .with(format!("stop_file={}", stop.display()));
    let mut members = Members::new(vec![clients::spawn(&client, &bootstrap, &job)]);
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the member did not read both matching topics"),
        |m| m.consumed_by(0) >= 16,
    );

    let run = clients::run(
        &client,
        &bootstrap,
        &Job {
            mode: "describe",
            ..Job::consume(&pattern, &group, 0)
        },
    );
    let d = run.of("described");
    let d = d.first().expect("a described event");
    assert_eq!(d["state"], "STABLE", "{d}");
    assert_eq!(d["type"], "CONSUMER", "{d}");
    assert_eq!(d["assignor"], "range", "{d}");
    let members_json = d["members"].as_array().expect("members");
    assert_eq!(members_json.len(), 1, "{d}");
    let assigned = members_json[0]["assignment"]
        .as_array()
        .expect("assignment");
    let topics: BTreeSet<&str> = assigned.iter().filter_map(|p| p[0].as_str()).collect();
    assert_eq!(assigned.len(), 8, "{d}");
    assert_eq!(
        topics,
        BTreeSet::from([topic_a.as_str(), topic_b.as_str()]),
        "{d}"
    );
    assert_eq!(
        members_json[0]["target_assignment"], members_json[0]["assignment"],
        "{d}"
    );
    let listed = run.of("listed");
    assert!(
        listed.iter().any(|l| l["group"] == group.as_str()
            && l["type"] == "CONSUMER"
            && l["state"] == "STABLE"),
        "{test}: ListGroups did not show the consumer group: {listed:?}"
    );

    // A matching topic created now is picked up.
    let run = clients::run(&client, &bootstrap, &Job::produce(&topic_c, 8, "none", 16));
    sent.extend(clients::produced(&run, 16, 8));
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the member did not read the new matching topic"),
        |m| m.consumed_by(0) >= 24,
    );
    members.linger(Duration::from_secs(1));
    std::fs::write(&stop, b"stop").expect("stop file");
    let run = members.finish(0);
    // Several topics: offsets repeat across them, so compare the payloads (each distinct).
    let mut got: Vec<Vec<u8>> = run
        .of("consumed")
        .iter()
        .map(|e| clients::unhex(e["value"].as_str().unwrap_or_default()))
        .collect();
    let mut want: Vec<Vec<u8>> = sent.iter().map(|p| clients::value(p.index)).collect();
    got.sort();
    want.sort();
    assert_eq!(
        got.len(),
        want.len(),
        "{test}: {} records consumed, {} produced to matching topics",
        got.len(),
        want.len()
    );
    assert!(
        got == want,
        "{test}: the payloads consumed are not the ones produced"
    );
    broker.drain();
    // librdkafka 2.16 describes with v0.
    assert!(
        broker
            .api_versions()
            .keys()
            .any(|(api, _)| api == "ConsumerGroupDescribe"),
        "{test}: the admin client did not use ConsumerGroupDescribe: {:?}",
        broker.api_versions()
    );
    check_exchanges(test, &mut broker);
}

/// A static member (`group.instance.id`) that closes leaves with epoch -2: its partitions stay
/// reserved for it (the other member never gets all four) and a new process with the same
/// instance id takes them back, resuming from the commits; every message exactly once.
#[test]
fn kip848_static_member_comes_back() {
    let test = "kip848_static_member_comes_back";
    let client = Client::find("confluent");
    // A session long enough that the static member's partitions stay reserved while it restarts.
    let mut broker = Watched::start(
        test,
        &[
            "--default-partitions",
            "4",
            "--consumer-heartbeat-interval-ms",
            "500",
            "--consumer-session-timeout-ms",
            "30000",
        ],
    );
    let bootstrap = broker.bootstrap();
    let topic = format!("{test}-topic");
    let group = format!("{test}-group");
    let run = clients::run(&client, &bootstrap, &Job::produce(&topic, BATCH, "none", 0));
    let mut sent: Vec<Produced> = clients::produced(&run, 0, BATCH);

    let dir = tempfile::tempdir().expect("tempdir");
    let stops = [
        dir.path().join("stop-static"),
        dir.path().join("stop-dynamic"),
        dir.path().join("stop-static-again"),
    ];
    let static_job = |stop: &std::path::Path| {
        kip848_member(&topic, &group, stop).with("instance_id=chronik-static-1")
    };
    let mut members = Members::new(vec![
        clients::spawn(&client, &bootstrap, &static_job(&stops[0])),
        clients::spawn(
            &client,
            &bootstrap,
            &kip848_member(&topic, &group, &stops[1]),
        ),
    ]);
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the two members never split the four partitions"),
        Members::split_four,
    );
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the first batch did not arrive"),
        |m| m.consumed_by(0) + m.consumed_by(1) >= BATCH,
    );
    let reserved = members
        .assignment(0)
        .expect("the static member's partitions");

    // The static member closes (epoch -2) and a new process with its instance id comes back.
    let seen_before_leave = members.seen[1].len();
    std::fs::write(&stops[0], b"stop").expect("stop file");
    let first = members.finish(0);
    let mut all = clients::consumed(&first, client.headers);
    members.running.push(Some(clients::spawn(
        &client,
        &bootstrap,
        &static_job(&stops[2]),
    )));
    members.seen.push(Vec::new());
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the static member did not get its partitions back"),
        |m| m.assignment(2) == Some(reserved.clone()),
    );
    let run = clients::run(
        &client,
        &bootstrap,
        &Job::produce(&topic, BATCH, "zstd", BATCH),
    );
    sent.extend(clients::produced(&run, BATCH, BATCH));
    let before = all.len() as u64;
    members.until(
        Duration::from_secs(30),
        &format!("{test}: the second batch did not arrive"),
        |m| before + m.consumed_by(1) + m.consumed_by(2) >= 2 * BATCH,
    );
    members.linger(Duration::from_secs(1));
    let dynamic_assignments: Vec<usize> = members.seen[1][seen_before_leave..]
        .iter()
        .filter(|e| e["event"] == "assigned")
        .map(|e| e["partitions"].as_array().map_or(0, Vec::len))
        .collect();
    for i in [1, 2] {
        std::fs::write(&stops[i], b"stop").expect("stop file");
        let run = members.finish(i);
        all.extend(clients::consumed(&run, client.headers));
    }
    assert!(
        dynamic_assignments.iter().all(|n| *n < 4),
        "{test}: the other member got the static member's partitions while it was away: \
         {dynamic_assignments:?}"
    );
    clients::assert_exactly(&format!("{test}: static member back"), &all, &sent);
    check_exchanges(test, &mut broker);
}
