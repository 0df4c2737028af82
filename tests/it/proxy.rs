//! Proxy mode (`--proxy`) with real parts: a second `chronik-tui` process is the upstream
//! broker, the proxy is the real binary in front of it, and the real clients of the harness
//! talk to the proxy only. Every client produces and consumes through it in a consumer group
//! with payloads intact, across connections the proxy cuts mid-response (the client reconnects
//! within the run; upstream keeps its state), and again after the upstream is killed and
//! restarted (each client connects again through the same listeners); the Metadata, FindCoordinator and
//! DescribeCluster rewrites are checked field by field against what upstream sent; placement
//! `front` in the proxy stalls kafka-python 2.0.2 as the embedded broker's does; SASL/PLAIN
//! passes through; an unreachable, a silent and a vanishing upstream close the client's
//! connection and say why on the exchange.

use crate::common;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde_json::Value as Json;

use common::clients::{self, Client, Job, Produced, Watched};
use common::frame::Raw;
use common::Broker;

/// Messages per codec.
const PER_CODEC: u64 = 6;
/// Messages produced after the upstream restarted.
const MORE: u64 = 4;
/// How long a consumer lingers after its count to catch records that should not come.
const LINGER: &str = "idle_ms=1000";

/// An upstream chronik-tui (its partition logs and groups in `data`, so a restart keeps them)
/// and the proxy in front of it (`--json`, watched).
struct Pair {
    upstream: Broker,
    proxy: Watched,
    data: tempfile::TempDir,
}

impl Pair {
    fn start(test: &str, upstream_extra: &[&str], proxy_extra: &[&str]) -> Pair {
        let data = tempfile::tempdir().expect("tempdir");
        let upstream = start_upstream("127.0.0.1:0", data.path(), upstream_extra);
        let target = upstream.bootstrap();
        let mut args = vec!["--proxy", target.as_str()];
        args.extend_from_slice(proxy_extra);
        let proxy = Watched::start(test, &args);
        Pair {
            upstream,
            proxy,
            data,
        }
    }

    /// Kills the upstream with SIGKILL and starts it again on the same port and data.
    fn restart_upstream(&mut self, extra: &[&str]) {
        let addr = self.upstream.bootstrap();
        self.upstream.kill9();
        self.upstream = start_upstream(&addr, self.data.path(), extra);
    }
}

fn start_upstream(listen: &str, data: &std::path::Path, extra: &[&str]) -> Broker {
    let data = data.to_str().expect("a UTF-8 temp path");
    let mut args = vec!["--data-dir", data];
    args.extend_from_slice(extra);
    Broker::start_on(listen, &args, None)
}

/// A port nothing listens on (bound, then let go).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The faults the per-client runs meet in the proxy, each once over all connections: the first
/// ProduceResponse, FetchResponse and OffsetCommitResponse are cut in half and the client's
/// connection closed, so that one producer run and one consumer run each lose a connection
/// mid-session and must reconnect through the proxy to finish.
const RECONNECT_FAULTS: [&str; 6] = [
    "--fault",
    "api=produce:close mid-response first 1",
    "--fault",
    "api=fetch:close mid-response first 1",
    "--fault",
    "api=offset_commit:close mid-response first 1",
];

/// What a client's producer does when the proxy cuts the acknowledgement of a batch the
/// broker had stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Reconnects and sends the batch again; idempotent (by default), so the broker
    /// acknowledges the resent batch as a duplicate and stores it once.
    ResendsStoredOnce,
    /// Reconnects and sends the batch again, not idempotent: stored a second time.
    ResendsStoredTwice,
    /// Gives up, with an error holding these words. The run is then repeated, as a person
    /// would, so the batch the broker had stored is stored a second time.
    GivesUp(&'static [&'static str]),
}

/// Produce in every codec the client has and consume it all in a group (committing) through
/// the proxy, which cuts the first ProduceResponse, FetchResponse and OffsetCommitResponse in
/// half and closes the connection ([`RECONNECT_FAULTS`]): the client reconnects through the
/// proxy within the same run and finishes, every message acknowledged, then every one read
/// back byte for byte (twice where `cut` says the producer stores a resent batch again; a
/// client that gives up instead must say so in its own words, and is run again).
/// Then kill and restart the upstream, produce more and consume again in the same group
/// through the same proxy: only the new messages arrive.
fn through_proxy(test: &str, client_name: &str, cut: Cut) {
    let client = Client::find(client_name);
    let mut pair = Pair::start(test, &[], &RECONNECT_FAULTS);
    let bootstrap = pair.proxy.bootstrap();
    let topic = format!("{test}-topic");
    let group = format!("{test}-group");

    let mut sent: Vec<Produced> = Vec::new();
    let mut said = Vec::new();
    for codec in client.compressions {
        let job = Job::produce(&topic, PER_CODEC, codec, sent.len() as u64);
        if let (Cut::GivesUp(words), true) = (cut, sent.is_empty()) {
            let gave_up = clients::run_to_end(&client, &bootstrap, &job);
            gave_up.assert_error(words);
            said.extend(gave_up.errors().iter().map(|e| e.to_string()));
        }
        let run = clients::run(&client, &bootstrap, &job);
        sent.extend(clients::produced(&run, job.start, PER_CODEC));
        said.push(run.stderr);
    }
    let stored = end_offset(pair.upstream.addr, &topic);
    let twice = stored - sent.len() as i64;
    if cut == Cut::ResendsStoredOnce {
        assert_eq!(twice, 0, "{test}: {stored} records stored");
    } else {
        assert!(twice > 0, "{test}: nothing stored twice");
    }
    let first = clients::run(
        &client,
        &bootstrap,
        &Job::consume(&topic, &group, stored as u64).with(LINGER),
    );
    let got = clients::consumed(&first, client.headers);
    assert_each_stored(&format!("{test}: through the proxy"), &got, &sent, twice);
    assert!(
        !client.groups || !first.of("committed").is_empty(),
        "{test}: the consumer did not report a commit\n{}",
        first.tail()
    );
    said.push(first.stderr.clone());
    pair.proxy.drain();
    // Every exchange went through the proxy (a client that had the upstream's address from an
    // unrewritten Metadata would bypass it), and nothing went wrong on the way.
    let produced_through: usize = pair
        .proxy
        .seen
        .iter()
        .filter(|s| s.api == "Produce")
        .count();
    assert!(
        produced_through >= client.compressions.len(),
        "{test}: {produced_through} Produce exchanges through the proxy"
    );
    assert!(
        pair.proxy.seen.iter().any(|s| s.api == "Fetch"),
        "{test}: no Fetch went through the proxy"
    );
    // The cuts happened, each on the API it names (a consumer without a group commits nothing).
    let mut cut = vec![("Produce", 1), ("Fetch", 2)];
    if client.groups {
        cut.push(("OffsetCommit", 3));
    }
    for (api, rule) in cut {
        let note = format!("note: \"fault (rule {rule}): closed mid-response after ");
        assert!(
            pair.proxy
                .seen
                .iter()
                .any(|s| s.api == api && s.trouble.iter().any(|t| t.starts_with(&note))),
            "{test}: no {api} response was cut"
        );
    }
    eprintln!(
        "{test}: {twice} records stored twice; what the client said across the reconnects:\n{}",
        said.join("\n")
    );

    pair.restart_upstream(&[]);

    let start = sent.len() as u64;
    let run = clients::run(
        &client,
        &bootstrap,
        &Job::produce(&topic, MORE, "none", start),
    );
    let more = clients::produced(&run, start, MORE);
    clients::consume_only_new(
        &client,
        &bootstrap,
        &topic,
        &group,
        &got,
        &more,
        &[],
        &format!("{test}: after the upstream restarted (only the {MORE} new messages)"),
    );
    pair.proxy.summary();
}

/// Every message `expected` was consumed, byte for byte (checked by `consumed`), one of its
/// copies at the offset the producer had acknowledged (where it reported one), and `twice`
/// of them a second time (a resent batch stored again); nothing else.
fn assert_each_stored(what: &str, got: &[clients::Consumed], expected: &[Produced], twice: i64) {
    if twice == 0 {
        return clients::assert_exactly(what, got, expected);
    }
    let mut copies: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for c in got {
        copies.entry(c.index).or_default().push(c.offset);
    }
    let want: Vec<u64> = expected.iter().map(|p| p.index).collect();
    let have: Vec<u64> = copies.keys().copied().collect();
    assert_eq!(have, want, "{what}: the messages consumed");
    let again: usize = copies.values().map(|o| o.len() - 1).sum();
    assert_eq!(
        again as i64, twice,
        "{what}: records read twice: {copies:?}"
    );
    for p in expected {
        if let Some(off) = p.offset {
            assert!(
                copies[&p.index].contains(&off),
                "{what}: message {} acknowledged at {off}, consumed at {:?}",
                p.index,
                copies[&p.index]
            );
        }
    }
}

/// The end offset (the next offset to be written) of partition 0 of `topic` on a broker.
fn end_offset(broker: SocketAddr, topic: &str) -> i64 {
    let (_, listed): (_, ListOffsetsResponse) = ask(
        broker,
        ApiKey::ListOffsets,
        1,
        &ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1)
                ]),
        ]),
    );
    listed.topics[0].partitions[0].offset
}

#[test]
fn kafka_python_3_through_the_proxy() {
    through_proxy(
        "proxy_kafka_python_3",
        "kafka-python",
        Cut::ResendsStoredOnce,
    );
}

#[test]
fn kafka_python_2_0_2_through_the_proxy() {
    through_proxy(
        "proxy_kafka_python_2_0_2",
        "kafka-python-2",
        Cut::ResendsStoredTwice,
    );
}

#[test]
fn confluent_kafka_through_the_proxy() {
    through_proxy(
        "proxy_confluent_kafka",
        "confluent",
        Cut::ResendsStoredTwice,
    );
}

#[test]
fn aiokafka_through_the_proxy() {
    through_proxy("proxy_aiokafka", "aiokafka", Cut::ResendsStoredTwice);
}

#[test]
fn kcat_through_the_proxy() {
    // kcat (not librdkafka: confluent-kafka's producer resends) ends its producer when its one
    // broker connection goes down.
    through_proxy(
        "proxy_kcat",
        "kcat",
        Cut::GivesUp(&["Local: All broker connections are down", "terminating"]),
    );
}

#[test]
fn kafkajs_through_the_proxy() {
    through_proxy("proxy_kafkajs", "kafkajs", Cut::ResendsStoredTwice);
}

#[test]
fn sarama_through_the_proxy() {
    through_proxy("proxy_sarama", "sarama", Cut::ResendsStoredTwice);
}

#[test]
fn rskafka_through_the_proxy() {
    through_proxy("proxy_rskafka", "rskafka", Cut::ResendsStoredTwice);
}

/// A consumer that stays connected while the upstream is killed and restarted: the proxy
/// closes its connections as upstream's go, the client reconnects through the same listeners
/// and goes on reading; every message produced before and after arrives, byte for byte (some
/// again, at least once, if the crash came before a commit, as with a Kafka broker).
fn consumer_across_an_upstream_restart(test: &str, client_name: &str) {
    let client = Client::find(client_name);
    let mut pair = Pair::start(test, &[], &[]);
    let bootstrap = pair.proxy.bootstrap();
    let topic = format!("{test}-topic");
    let dir = tempfile::tempdir().expect("tempdir");
    let stop = dir.path().join("stop");
    let stop_arg = format!("stop_file={}", stop.display());
    // The topic exists before the consumer subscribes (librdkafka fails a subscription to an
    // unknown topic).
    let run = clients::run(&client, &bootstrap, &Job::produce(&topic, MORE, "none", 0));
    let mut sent = clients::produced(&run, 0, MORE);
    let consumer = clients::spawn(
        &client,
        &bootstrap,
        &Job::consume(&topic, &format!("{test}-group"), 0).with(stop_arg.as_str()),
    );
    let mut events = Vec::new();
    // Waits until the consumer reported message `last`; the events seen so far are kept.
    let wait_for = |last: u64, events: &mut Vec<Json>| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !events.iter().any(|e: &Json| {
            e["event"] == "consumed"
                && e["value"].as_str().map(clients::unhex) == Some(clients::value(last))
        }) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match consumer.events.recv_timeout(left) {
                Ok(e) => events.push(e),
                Err(_) => panic!("{test}: message {last} never reached the consumer: {events:?}"),
            }
        }
    };
    wait_for(MORE - 1, &mut events);
    pair.proxy.drain();
    let conns_before: std::collections::BTreeSet<String> = pair
        .proxy
        .seen
        .iter()
        .map(|s| s.line.split(' ').next().unwrap_or("").to_string())
        .collect();

    pair.restart_upstream(&[]);
    let run = clients::run(
        &client,
        &bootstrap,
        &Job::produce(&topic, MORE, "none", MORE),
    );
    sent.extend(clients::produced(&run, MORE, MORE));
    wait_for(2 * MORE - 1, &mut events);
    std::fs::write(&stop, b"").expect("the stop file");
    let mut finished = consumer.finish(events);
    // A record read again after the crash counts once (its bytes are checked either way).
    let mut offsets = std::collections::BTreeSet::new();
    let mut again = 0;
    finished.events.retain(|e| {
        let first = e["event"] != "consumed"
            || offsets.insert((e["partition"].as_i64(), e["offset"].as_i64()));
        again += usize::from(!first);
        first
    });
    eprintln!("{test}: {again} records read again after the restart");
    let got = clients::consumed(&finished, client.headers);
    clients::assert_exactly(&format!("{test}: across the restart"), &got, &sent);
    // The consumer went on through new connections: exchanges after the restart on
    // connections the proxy had not seen before.
    pair.proxy.drain();
    let fetch_after = pair.proxy.seen.iter().any(|s| {
        s.api == "Fetch" && !conns_before.contains(s.line.split(' ').next().unwrap_or(""))
    });
    assert!(
        fetch_after,
        "{test}: no Fetch on a new connection after the restart"
    );
    // And the ones upstream's crash cut short say so.
    assert!(
        pair.proxy
            .seen
            .iter()
            .any(|s| s.trouble.iter().any(|t| t.contains("upstream"))),
        "{test}: no exchange says upstream went away"
    );
    pair.proxy.summary();
}

#[test]
fn confluent_consumer_across_an_upstream_restart() {
    consumer_across_an_upstream_restart("proxy_restart_confluent", "confluent");
}

/// The body of a response frame decoded by kafka-protocol, to its last byte.
fn decode<T: Decodable>(frame: &[u8], key: ApiKey, version: i16) -> (i32, T) {
    let mut b = Bytes::copy_from_slice(&frame[4..]);
    let header = ResponseHeader::decode(&mut b, key.response_header_version(version))
        .expect("response header");
    let body = T::decode(&mut b, version).expect("response body");
    assert!(
        b.is_empty(),
        "{key:?} v{version}: {} bytes left over",
        b.len()
    );
    (header.correlation_id, body)
}

/// Sends `req` to `addr` on a fresh connection and decodes the answer.
fn ask<Req, Resp>(addr: SocketAddr, key: ApiKey, version: i16, req: &Req) -> (i32, Resp)
where
    Req: kafka_protocol::protocol::Encodable,
    Resp: Decodable,
{
    let mut c = Raw::connect(addr, "proxy-test");
    let corr = c.send(key, version, req);
    let (got, resp) = decode::<Resp>(&c.read_frame(), key, version);
    assert_eq!(
        got, corr,
        "{key:?} v{version}: correlation id passed through"
    );
    (got, resp)
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// The proxy's `proxy rewrote ...` notes on the exchanges it printed so far.
fn rewrite_notes(proxy: &mut Broker) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(200));
    let mut lines = std::mem::take(&mut proxy.held);
    lines.extend(proxy.lines.try_iter());
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .flat_map(|ex| common::notes(&ex))
        .filter(|n| n.starts_with("proxy rewrote"))
        .collect()
}

/// Metadata (an old and a flexible version), FindCoordinator (one coordinator, v0-v3, and a
/// list, v4+) and DescribeCluster through the proxy: each broker's host and port are a
/// listener of the proxy, every other field is what upstream sent, and the listener forwards
/// to that broker. `--proxy localhost:PORT` while upstream advertises 127.0.0.1:PORT: another
/// address, so the proxy binds a listener for it as it first appears.
#[test]
fn metadata_find_coordinator_and_describe_cluster_rewritten_field_by_field() {
    let upstream = Broker::start(&["--json"]);
    let port = upstream.addr.port();
    let target = format!("localhost:{port}");
    let mut proxy = Broker::start(&["--json", "--proxy", &target]);
    let topic = "rewrite-topic";
    let meta_req = |version: i16| {
        MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(TopicName(s(topic))))]))
            .with_allow_auto_topic_creation(true)
            .with_include_cluster_authorized_operations((8..=10).contains(&version))
    };
    let mut listener: Option<SocketAddr> = None;
    for version in [1i16, 4, 9, 12] {
        // Through the proxy first (it creates the topic upstream), then upstream directly.
        let (_, via): (_, MetadataResponse) =
            ask(proxy.addr, ApiKey::Metadata, version, &meta_req(version));
        let (_, direct): (_, MetadataResponse) =
            ask(upstream.addr, ApiKey::Metadata, version, &meta_req(version));
        assert_eq!(direct.brokers.len(), 1, "v{version}: {direct:?}");
        assert_eq!(direct.brokers[0].port, port as i32);
        assert_eq!(via.brokers.len(), direct.brokers.len(), "v{version}");
        let b = &via.brokers[0];
        assert_eq!(b.host.as_str(), "127.0.0.1", "v{version}");
        assert_ne!(b.port, port as i32, "v{version}: still upstream's port");
        assert_ne!(
            b.port,
            proxy.addr.port() as i32,
            "v{version}: not the bootstrap listener"
        );
        let here: SocketAddr = format!("127.0.0.1:{}", b.port).parse().unwrap();
        // One listener for the one upstream broker, the same in every answer.
        assert_eq!(*listener.get_or_insert(here), here, "v{version}");
        // Everything else is upstream's, field for field.
        let mut expected = direct.clone();
        expected.brokers[0].host = b.host.clone();
        expected.brokers[0].port = b.port;
        assert_eq!(via, expected, "v{version}: only host and port differ");
    }
    let listener = listener.expect("a listener");

    // FindCoordinator: the single coordinator (v0-v3) and the list (v4+).
    for version in [0i16, 2, 3] {
        let req = FindCoordinatorRequest::default().with_key(s("rewrite-group"));
        let (_, via): (_, FindCoordinatorResponse) =
            ask(proxy.addr, ApiKey::FindCoordinator, version, &req);
        let (_, direct): (_, FindCoordinatorResponse) =
            ask(upstream.addr, ApiKey::FindCoordinator, version, &req);
        assert_eq!(direct.port, port as i32);
        let expected = direct
            .clone()
            .with_host(s("127.0.0.1"))
            .with_port(listener.port() as i32);
        assert_eq!(via, expected, "FindCoordinator v{version}");
    }
    let req = FindCoordinatorRequest::default()
        .with_coordinator_keys(vec![s("rewrite-group"), s("other-group")]);
    let (_, via): (_, FindCoordinatorResponse) = ask(proxy.addr, ApiKey::FindCoordinator, 4, &req);
    let (_, direct): (_, FindCoordinatorResponse) =
        ask(upstream.addr, ApiKey::FindCoordinator, 4, &req);
    let mut expected = direct.clone();
    for c in &mut expected.coordinators {
        assert_eq!(c.port, port as i32);
        c.host = s("127.0.0.1");
        c.port = listener.port() as i32;
    }
    assert_eq!(via, expected, "FindCoordinator v4");

    // DescribeCluster.
    let (_, via): (_, DescribeClusterResponse) = ask(
        proxy.addr,
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    );
    let (_, direct): (_, DescribeClusterResponse) = ask(
        upstream.addr,
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    );
    let mut expected = direct.clone();
    for b in &mut expected.brokers {
        b.host = s("127.0.0.1");
        b.port = listener.port() as i32;
    }
    assert_eq!(via, expected, "DescribeCluster v0");

    // The rewrite is on the exchanges, as a note naming both addresses.
    let notes = rewrite_notes(&mut proxy);
    let both = format!("127.0.0.1:{port} -> {listener}");
    for what in [
        "metadata.response.brokers node 1",
        "find_coordinator.response node 1",
        "find_coordinator.response.coordinators node 1",
        "describe_cluster.response.brokers node 1",
    ] {
        assert!(
            notes.iter().any(|n| n.contains(what) && n.ends_with(&both)),
            "no note of {what}: {both} in {notes:?}"
        );
    }

    // The new listener forwards to upstream: a Metadata through it names itself.
    let (_, again): (_, MetadataResponse) = ask(listener, ApiKey::Metadata, 12, &meta_req(12));
    assert_eq!(again.brokers[0].port, listener.port() as i32);
    assert_eq!(again.topics.len(), 1);
}

/// With `--proxy` naming the very address upstream advertises, its brokers point at the
/// bootstrap listener: no second one.
#[test]
fn an_upstream_advertising_the_proxied_address_gets_the_bootstrap_listener() {
    let upstream = Broker::start(&[]);
    let target = upstream.bootstrap();
    let proxy = Broker::start(&["--json", "--proxy", &target]);
    let (_, via): (_, MetadataResponse) = ask(
        proxy.addr,
        ApiKey::Metadata,
        9,
        &MetadataRequest::default().with_topics(Some(Vec::new())),
    );
    assert_eq!(via.brokers.len(), 1);
    assert_eq!(via.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(via.brokers[0].port, proxy.addr.port() as i32);
}

/// `--placement front` in the proxy, upstream answering as the spec has it: kafka-python 2.0.2
/// (Produce v7) meets throttle_time_ms in front, and fares exactly as against an embedded
/// broker in `front`: the same outcome, and the stall detector's same verdict.
#[test]
fn placement_front_in_the_proxy_stalls_kafka_python_2_as_the_embedded_broker() {
    use crate::stall::{produce_and_watch, verdicts, ClientSaid};
    let client = "kafka-python-2";
    let stall = [
        "--json",
        "--stall-silence-ms",
        "3000",
        "--placement",
        "front",
    ];

    let mut embedded = Broker::start(&stall);
    let (said_embedded, _, states_embedded) = produce_and_watch(&mut embedded, client, 3);

    let upstream = Broker::start(&[]);
    let target = upstream.bootstrap();
    let mut args = stall.to_vec();
    args.extend(["--proxy", target.as_str()]);
    let mut proxy = Broker::start(&args);
    let (said_proxied, run, states_proxied) = produce_and_watch(&mut proxy, client, 3);

    assert_ne!(
        said_embedded,
        ClientSaid::Acked,
        "front must not ack kafka-python 2.0.2"
    );
    assert_eq!(
        said_proxied,
        said_embedded,
        "through the proxy the client said {said_proxied:?}, against the embedded broker \
         {said_embedded:?}\n{}",
        run.tail()
    );
    let (v_embedded, v_proxied) = (verdicts(&states_embedded), verdicts(&states_proxied));
    assert!(v_embedded.iter().any(|v| v == "stalled"), "{v_embedded:?}");
    assert_eq!(v_proxied, v_embedded, "the detector's verdicts");

    // What was sent: upstream's ProduceResponse with the field moved, and said so.
    let produce: Vec<Json> = proxy
        .held
        .iter()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|v| v["api_name"] == "Produce")
        .collect();
    assert!(!produce.is_empty(), "no Produce through the proxy");
    for ex in &produce {
        assert_eq!(ex["placement"]["placement"], "front", "{ex}");
        let notes = common::notes(ex);
        assert!(
            notes
                .iter()
                .any(|n| n == "throttle_time_ms placement: front"),
            "{notes:?}"
        );
        // The lint names it on the proxied bytes as on the embedded broker's.
        let lint = ex["lint"].as_array().expect("a lint array");
        let said: Vec<(&str, &str)> = lint
            .iter()
            .filter_map(|f| Some((f["code"].as_str()?, f["message"].as_str()?)))
            .collect();
        assert_eq!(
            said,
            [("field-misplaced", "throttle_time_ms sent before responses")],
            "{ex}"
        );
    }
}

/// `api=metadata:error TOPIC_AUTHORIZATION_FAILED` in the proxy: the request is forwarded and
/// upstream's response comes back with the error where the embedded broker's error answer has
/// it (every topic's error_code, no partitions), so kcat and kafka-python 3 say exactly what
/// they say to an embedded broker with the same fault; only what upstream did differs (it
/// served the request, creating the topic).
#[test]
fn the_metadata_error_fault_in_the_proxy_is_the_clients_error_as_from_the_embedded_broker() {
    let fault = ["--fault", "api=metadata:error TOPIC_AUTHORIZATION_FAILED"];
    let embedded = Broker::start(&fault);
    let upstream = Broker::start(&[]);
    let target = upstream.bootstrap();
    let mut args = vec!["--json", "--proxy", target.as_str()];
    args.extend(fault);
    let mut proxy = Broker::start(&args);
    let topic = "secret";

    // kcat's metadata listing: the topic line, word for word; the broker is the proxy's.
    let listing = |b: &Broker| {
        let out = common::kcat(&["-b", &b.bootstrap(), "-L", "-t", topic], None);
        let line = out
            .lines()
            .find(|l| l.contains("topic \"secret\""))
            .unwrap_or_else(|| panic!("no topic line in {out}"))
            .trim()
            .to_string();
        (line, out)
    };
    let (said_embedded, _) = listing(&embedded);
    let (said_proxied, out) = listing(&proxy);
    assert_eq!(
        said_embedded,
        "topic \"secret\" with 0 partitions: Broker: Topic authorization failed"
    );
    assert_eq!(said_proxied, said_embedded);
    assert!(
        out.contains(&format!("broker 1 at {}", proxy.addr)),
        "the brokers still point at the proxy: {out}"
    );

    // kafka-python 3's producer gives up with the same error.
    let client = Client::find("kafka-python");
    let job = Job::produce(topic, 1, "none", 0).with("timeout_ms=6000");
    let errors = |b: &Broker| {
        let run = clients::run_to_end(&client, &b.bootstrap(), &job);
        run.assert_error(&["TopicAuthorizationFailedError"]);
        run.errors()
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(errors(&proxy), errors(&embedded));

    // Field by field: upstream's answer with the error on the topic and no partitions (and the
    // broker rewritten); upstream itself says the topic is there.
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(s(topic))))]))
        .with_allow_auto_topic_creation(true);
    let (_, via): (_, MetadataResponse) = ask(proxy.addr, ApiKey::Metadata, 12, &req);
    let (_, direct): (_, MetadataResponse) = ask(upstream.addr, ApiKey::Metadata, 12, &req);
    assert_eq!(direct.topics.len(), 1);
    assert_eq!(direct.topics[0].error_code, 0, "{direct:?}");
    assert_eq!(direct.topics[0].partitions.len(), 1, "{direct:?}");
    let mut expected = direct.clone();
    expected.topics[0].error_code = 29;
    expected.topics[0].partitions.clear();
    expected.brokers[0].host = via.brokers[0].host.clone();
    expected.brokers[0].port = via.brokers[0].port;
    assert_eq!(via, expected);

    // Each exchange says what was done.
    let all = proxy.exchanges_until(Duration::from_secs(5), |all| {
        all.iter().filter(|e| e["api_name"] == "Metadata").count() >= 3
    });
    let faulted = all
        .iter()
        .filter(|e| e["api_name"] == "Metadata")
        .flat_map(common::notes)
        .filter(|n| n.starts_with("fault (rule 1): "))
        .collect::<Vec<_>>();
    assert!(
        faulted.iter().any(|n| n
            == "fault (rule 1): TOPIC_AUTHORIZATION_FAILED (29) set on 1 topic of upstream's \
                response, partitions left out (upstream served the request)"),
        "{faulted:?}"
    );
}

/// An upstream nothing listens on: the client's request is refused with the reason, its
/// connection closed, and the client says it could not reach a broker.
#[test]
fn an_unreachable_upstream_is_a_refused_exchange_and_a_client_error() {
    let target = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("proxy.jsonl");
    let mut proxy = Broker::start(&[
        "--json",
        "--proxy",
        &target,
        "--record",
        record.to_str().unwrap(),
    ]);
    let client = Client::find("confluent");
    let job = Job::produce("unreachable", 1, "none", 0).with("timeout_ms=4000");
    let (status, run) = clients::spawn(&client, &proxy.bootstrap(), &job).outcome(Vec::new());
    assert!(
        !status.is_some_and(|s| s.success()) && !run.errors().is_empty(),
        "the producer should have failed\n{}",
        run.tail()
    );
    let refused = proxy.exchanges_until(Duration::from_secs(5), |seen| !seen.is_empty());
    let ex = &refused[0];
    assert_eq!(ex["status"]["kind"], "refused", "{ex}");
    let reason = ex["status"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&target) && reason.contains("refused"),
        "{reason}"
    );
    assert!(
        common::notes(ex)
            .iter()
            .any(|n| n.contains("upstream unreachable; client connection closed")),
        "{ex}"
    );
    // And a marker row in the capture's timeline, as the list shows it.
    proxy.terminate();
    let recorded = std::fs::read_to_string(&record).unwrap();
    let marker = recorded
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .find(|v| v["kind"] == "marker")
        .unwrap_or_else(|| panic!("no marker in\n{recorded}"));
    let text = marker["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with(&format!("[proxy] conn {}: upstream {target}", ex["conn"])),
        "{marker}"
    );
}

/// An upstream that takes a request and never answers: past --upstream-timeout the request is
/// unanswered and the client's connection closed; one that closes while a request is pending,
/// or resets the connection: the same at once, each saying so. (The upstream here is a bare
/// socket: no broker can be told to stay silent or to reset.)
#[test]
fn a_silent_closing_or_resetting_upstream_closes_the_client_connection() {
    #[derive(Clone, Copy)]
    enum Upstream {
        Silent,
        Closes,
        Resets,
    }
    for (how, want) in [
        (Upstream::Silent, "no response within 1"),
        (Upstream::Closes, "closed the connection before answering"),
        (Upstream::Resets, "Connection reset by peer"),
    ] {
        let upstream = TcpListener::bind("127.0.0.1:0").expect("bind");
        let target = upstream.local_addr().unwrap().to_string();
        let mut proxy = Broker::start(&["--json", "--proxy", &target, "--upstream-timeout", "1"]);
        let waiter = std::thread::spawn(move || {
            let (mut s, _) = upstream.accept().expect("the proxy connects");
            let mut size = [0u8; 4];
            s.read_exact(&mut size).expect("a request");
            if let Upstream::Resets = how {
                // Closing with the request unread sends a reset.
                return;
            }
            let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
            s.read_exact(&mut body).expect("the whole request");
            if let Upstream::Silent = how {
                std::thread::sleep(Duration::from_secs(4));
            }
        });
        let mut c = Raw::connect(proxy.addr, "silent-test");
        c.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let mut buf = [0u8; 1];
        let read = c.s.read(&mut buf);
        assert!(
            matches!(read, Ok(0)) || read.is_err(),
            "{want}: the proxy answered or kept the connection: {read:?}"
        );
        let seen = proxy.exchanges_until(Duration::from_secs(5), |seen| !seen.is_empty());
        let ex = &seen[0];
        assert_eq!(ex["status"]["kind"], "unanswered", "{ex}");
        assert!(
            common::notes(ex)
                .iter()
                .any(|n| n.contains(want) && n.ends_with("; client connection closed")),
            "{want}: {ex}"
        );
        let _ = waiter.join();
    }
}

/// A Produce with acks=0 gets no response from Kafka: the proxy forwards it and waits for
/// nothing; the next request on the same connection is answered, correlation ids unchanged.
#[test]
fn acks_0_produce_is_forwarded_without_waiting() {
    let upstream = Broker::start(&[]);
    let target = upstream.bootstrap();
    let mut proxy = Broker::start(&["--json", "--proxy", &target]);
    let mut c = Raw::connect(proxy.addr, "acks0-test");
    let recs = common::frame::records(&["fire-and-forget"], 2, None);
    c.send(
        ApiKey::Produce,
        7,
        &common::frame::produce_req("acks0", 0, 0, recs),
    );
    let corr = c.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let frame = c.read_frame();
    assert_eq!(
        &frame[4..8],
        &corr.to_be_bytes(),
        "the ApiVersions answer comes next"
    );
    let seen = proxy.exchanges_until(Duration::from_secs(5), |seen| seen.len() >= 2);
    let kinds: BTreeMap<String, String> = seen
        .iter()
        .map(|ex| {
            (
                ex["api_name"].as_str().unwrap_or("?").to_string(),
                ex["status"]["kind"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    assert_eq!(kinds["Produce"], "no_response", "{seen:?}");
    assert_eq!(kinds["ApiVersions"], "answered", "{seen:?}");
    // Upstream stored it.
    assert_eq!(end_offset(upstream.addr, "acks0"), 1, "one record upstream");
}

/// SASL/PLAIN passes through: against an upstream that requires it, kafka-python 3
/// (SaslAuthenticate) and kafka-python 2.0.2 (bare tokens after SaslHandshake v0) produce and
/// consume through the proxy; a wrong password fails.
#[test]
fn sasl_plain_passes_through() {
    for (name, test) in [
        ("kafka-python", "proxy_sasl_kp3"),
        ("kafka-python-2", "proxy_sasl_kp2"),
    ] {
        let client = Client::find(name);
        let mut pair = Pair::start(test, &["--sasl-plain", clients::SASL_USER_PASS], &[]);
        let bootstrap = pair.proxy.bootstrap();
        clients::sasl_produce_consume(&client, &bootstrap, test, MORE);
        clients::sasl_wrong_password(&client, &bootstrap, test);
        pair.proxy.drain();
        let sasl: Vec<&clients::Seen> = pair
            .proxy
            .seen
            .iter()
            .filter(|s| s.api.starts_with("Sasl"))
            .collect();
        assert!(
            !sasl.is_empty(),
            "{test}: no SASL exchange through the proxy"
        );
        if name == "kafka-python-2" {
            let tokens: Vec<_> = sasl.iter().filter(|s| s.framing == "sasl_token").collect();
            assert!(!tokens.is_empty(), "{test}: no bare token");
            assert!(tokens
                .iter()
                .all(|s| s.plain_user.as_deref() == Some("alice")));
        }
        pair.proxy.summary();
    }
}

/// `--proxy` takes the addresses `--listen` does, and a bad one is a one-line usage error.
#[test]
fn a_bad_proxy_address_is_a_usage_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chronik-tui"))
        .args(["--headless", "--proxy", "broker:99999"])
        .output()
        .expect("run chronik-tui");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "chronik-tui: --proxy broker:99999: port out of range"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chronik-tui"))
        .args([
            "--headless",
            "--proxy",
            "localhost:9092",
            "--data-dir",
            "/tmp",
        ])
        .output()
        .expect("run chronik-tui");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
