//! Tests of the filter language against real frames: requests and responses encoded with the
//! kafka-protocol crate and dissected by this crate's dissector.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, BrokerId, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::*;
use crate::PlacementUsed;
use crate::{Dissected, Endpoints, Exchange, Status};
use chronik_protocol as protocol;
use chronik_protocol::test_frames::{record_batch, request_frame, response_frame};
use chronik_protocol::ThrottlePlacement;
use std::sync::Arc;

const T0: i64 = 1_700_000_000_000_000;

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A Produce v7 request with one record whose value is `value`.
fn produce_request(corr: i32, client: Option<&str>, value: &str) -> Vec<u8> {
    let batch = record_batch(&[value.as_bytes()]);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic("orders"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    request_frame(0, 7, corr, client, &req)
}

/// A ProduceResponse v7 for one partition.
fn produce_response(corr: i32, throttle_ms: i32, error: i16) -> Vec<u8> {
    let resp = ProduceResponse::default()
        .with_responses(vec![TopicProduceResponse::default()
            .with_name(topic("orders"))
            .with_partition_responses(vec![PartitionProduceResponse::default()
                .with_index(0)
                .with_error_code(error)
                .with_base_offset(42)])])
        .with_throttle_time_ms(throttle_ms);
    response_frame(7, corr, &resp)
}

fn exchange(id: u64, conn: u64, api_key: i16, api_version: i16, corr: i32) -> Exchange {
    let peer = format!("127.0.0.1:{}", 50000 + conn).parse().unwrap();
    let at = T0 + id as i64 * 10_000_000;
    let mut ex = Exchange::new(conn, Endpoints::of(peer), at, Status::Unanswered);
    ex.id = id;
    ex.api_key = api_key;
    ex.api_version = api_version;
    ex.correlation_id = corr;
    ex
}

/// An exchange with what the stall detector knows of its client, and its dissections.
struct Case {
    ex: Exchange,
    software: Option<&'static str>,
    health: Option<&'static str>,
    dissected: Dissected,
}

impl Case {
    fn new(
        mut ex: Exchange,
        client: Option<&str>,
        request: Vec<u8>,
        response: Option<(Vec<u8>, i64)>,
    ) -> Case {
        ex.set_client_id(client.map(|c| Arc::new(c.to_string())));
        ex.set_request(request);
        if let Some((frame, latency)) = response {
            ex.set_response(Some(frame));
            ex.set_response_at(Some(ex.request_at + latency));
            ex.status = Status::Answered;
        }
        let dissected = ex.dissect();
        Case {
            ex,
            software: None,
            health: None,
            dissected,
        }
    }

    fn client(mut self, software: &'static str, health: &'static str) -> Case {
        self.software = Some(software);
        self.health = Some(health);
        self
    }

    fn subject(&self) -> Subject<'_> {
        Subject {
            exchange: &self.ex,
            dissected: Some(&self.dissected),
            software: self.software,
            health: self.health,
        }
    }
}

/// The exchanges every test filters:
///
/// 1. Produce v7 from `rdkafka` (librdkafka, healthy), record value "hello world"; response
///    throttled 120 ms, no error, placement spec; latency 60 ms.
/// 2. Metadata v12 from `console-producer` (software unknown) for topic "missing"; response
///    UNKNOWN_TOPIC_OR_PARTITION for it and its one partition (replicas 1 and 2); latency 10 ms.
/// 3. ApiVersions v3 from `rdkafka` naming its software; response lists Produce and Fetch;
///    latency 250 µs.
/// 4. Produce v7 without a client id, never answered (client stalled).
/// 5. Produce v7 from `kafka-python` (disconnecting) whose response was cut short (placement
///    front); latency 2 s.
/// 6. A request the broker refused as malformed (status malformed, no response).
/// 7. Metadata v1 with an empty topic list; the response lists a broker and no topic (no error_code
///    field anywhere); latency 1 ms.
fn cases() -> Vec<Case> {
    let mut out = Vec::new();

    let mut ex = exchange(1, 1, 0, 7, 7);
    ex.set_placement(Some(PlacementUsed {
        placement: ThrottlePlacement::Spec,
        rule: None,
    }));
    out.push(
        Case::new(
            ex,
            Some("rdkafka"),
            produce_request(7, Some("rdkafka"), "hello world"),
            Some((produce_response(7, 120, 0), 60_000)),
        )
        .client("librdkafka 2.3.0", "healthy"),
    );

    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic("missing")))
        ]))
        .with_allow_auto_topic_creation(true);
    let resp = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(1))
            .with_host(StrBytes::from_static_str("localhost"))
            .with_port(9092)])
        .with_topics(vec![MetadataResponseTopic::default()
            .with_error_code(3)
            .with_name(Some(topic("missing")))
            .with_partitions(vec![MetadataResponsePartition::default()
                .with_error_code(3)
                .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])])]);
    out.push(Case::new(
        exchange(2, 2, 3, 12, 1),
        Some("console-producer"),
        request_frame(3, 12, 1, Some("console-producer"), &req),
        Some((response_frame(12, 1, &resp), 10_000)),
    ));

    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("librdkafka"))
        .with_client_software_version(StrBytes::from_static_str("2.3.0"));
    let resp = ApiVersionsResponse::default().with_api_keys(vec![
        ApiVersion::default().with_api_key(0).with_max_version(11),
        ApiVersion::default().with_api_key(1).with_max_version(16),
    ]);
    out.push(
        Case::new(
            exchange(3, 1, 18, 3, 0),
            Some("rdkafka"),
            request_frame(18, 3, 0, Some("rdkafka"), &req),
            Some((response_frame(3, 0, &resp), 250)),
        )
        .client("librdkafka 2.3.0", "healthy"),
    );

    let mut c = Case::new(
        exchange(4, 3, 0, 7, 9),
        None,
        produce_request(9, None, "never acknowledged"),
        None,
    );
    c.health = Some("stalled");
    out.push(c);

    let mut ex = exchange(5, 4, 0, 7, 3);
    ex.set_placement(Some(PlacementUsed {
        placement: ThrottlePlacement::Front,
        rule: Some((1, "software=kafka-python*:front".into())),
    }));
    let mut cut = produce_response(3, 0, 0);
    cut.truncate(cut.len() - 6);
    out.push(
        Case::new(
            ex,
            Some("kafka-python"),
            produce_request(3, Some("kafka-python"), "x"),
            Some((cut, 2_000_000)),
        )
        .client("kafka-python 2.0.2", "disconnecting"),
    );

    let mut ex = exchange(6, 5, 0, 7, 11);
    ex.set_client_id(Some(Arc::new("bad".into())));
    ex.set_request(vec![0, 0, 0, 6, 0, 0, 0, 7, 0, 0]);
    let error = protocol::dissect_request(ex.request())
        .error
        .expect("a 6-byte body is malformed");
    ex.status = Status::malformed(error);
    out.push(Case {
        dissected: ex.dissect(),
        ex,
        software: None,
        health: None,
    });

    let resp = MetadataResponse::default().with_brokers(vec![MetadataResponseBroker::default()
        .with_node_id(BrokerId(1))
        .with_host(StrBytes::from_static_str("localhost"))
        .with_port(9092)]);
    out.push(Case::new(
        exchange(7, 6, 3, 1, 2),
        Some("admin"),
        request_frame(3, 1, 2, Some("admin"), &MetadataRequest::default()),
        Some((response_frame(1, 2, &resp), 1_000)),
    ));
    out
}

/// Ids of the cases a filter keeps. Also checks that evaluating without dissections (so the
/// filter dissects by itself) keeps the same ones.
fn ids(filter: &str) -> Vec<u64> {
    let f = parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    let cases = cases();
    let kept: Vec<u64> = cases
        .iter()
        .filter(|c| f.matches(&c.subject()))
        .map(|c| c.ex.id)
        .collect();
    let lazily: Vec<u64> = cases
        .iter()
        .filter(|c| {
            f.matches(&Subject {
                dissected: None,
                ..c.subject()
            })
        })
        .map(|c| c.ex.id)
        .collect();
    assert_eq!(kept, lazily, "{filter}: with and without dissections");
    kept
}

/// The error a filter is refused with.
fn error(filter: &str) -> FilterError {
    match parse(filter) {
        Ok(f) => panic!("{filter} parsed: {f:?}"),
        Err(e) => e,
    }
}

#[test]
fn fixture_frames_dissect_as_described() {
    for c in cases() {
        let req_err = c.dissected.request.as_ref().and_then(|d| d.error.clone());
        let resp_err = c.dissected.response.as_ref().and_then(|d| d.error.clone());
        match c.ex.id {
            5 => assert!(resp_err.is_some(), "the cut response is malformed"),
            6 => assert!(req_err.is_some()),
            _ => assert!(
                req_err.is_none() && resp_err.is_none(),
                "{}: {req_err:?} {resp_err:?}",
                c.ex.id
            ),
        }
    }
}

/// Ids of the cases for which `pred` holds: the expectation computed from the fixture itself.
fn ids_where(pred: impl Fn(&Case) -> bool) -> Vec<u64> {
    cases()
        .iter()
        .filter(|c| pred(c))
        .map(|c| c.ex.id)
        .collect()
}

#[test]
fn the_briefs_examples() {
    assert_eq!(ids(r#"api == Produce && client ~ "rdkafka""#), [1]);
    assert_eq!(ids("produce.response.throttle_time_ms > 0"), [1]);
    assert_eq!(ids("error != 0"), [2]);
    assert_eq!(ids("latency > 50ms"), [1, 5]);
}

#[test]
fn every_operator_symbol_and_word() {
    assert_eq!(ids("version == 7"), [1, 4, 5, 6]);
    assert_eq!(ids("version eq 7"), [1, 4, 5, 6]);
    assert_eq!(ids("version != 7"), [2, 3, 7]);
    assert_eq!(ids("version ne 7"), [2, 3, 7]);
    assert_eq!(ids("version < 7"), [3, 7]);
    assert_eq!(ids("version lt 7"), [3, 7]);
    assert_eq!(ids("version <= 7"), [1, 3, 4, 5, 6, 7]);
    assert_eq!(ids("version LE 7"), [1, 3, 4, 5, 6, 7]);
    assert_eq!(ids("version > 7"), [2]);
    assert_eq!(ids("version gt 7"), [2]);
    assert_eq!(ids("version >= 12"), [2]);
    assert_eq!(ids("version ge 12"), [2]);
    assert_eq!(ids(r#"client ~ "PRODUCER""#), [2]);
    assert_eq!(ids("client contains python"), [5]);
    // A null client id contains nothing, so it does not contain "rd" either.
    assert_eq!(ids(r#"client !~ "rd""#), [2, 4, 5, 6, 7]);
    assert_eq!(ids("version==7&&conn>=4"), [5, 6], "no spaces needed");
}

#[test]
fn numbers_hex_and_negative() {
    assert_eq!(ids("version == 0x7"), ids("version == 7"));
    assert_eq!(ids("version > -1"), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(ids("corr == 0XB"), [6]);
    assert_eq!(ids("produce.request.acks == -1"), [1, 4, 5]);
    assert_eq!(ids("produce.request.acks == -0x1"), [1, 4, 5]);
    assert_eq!(ids("version > 6.5"), [1, 2, 4, 5, 6]);
}

#[test]
fn api_by_name_number_and_substring() {
    assert_eq!(ids("api == Produce"), [1, 4, 5, 6]);
    assert_eq!(ids("api == produce"), [1, 4, 5, 6]);
    assert_eq!(ids(r#"api == "Metadata""#), [2, 7]);
    assert_eq!(ids("api == api_versions"), [3]);
    assert_eq!(ids("api == 18"), [3]);
    assert_eq!(ids("api != Produce"), [2, 3, 7]);
    assert_eq!(ids("api ~ version"), [3]);
    assert_eq!(ids("api !~ data"), [1, 3, 4, 5, 6]);
    assert_eq!(ids("api > 1"), [2, 3, 7]);
}

#[test]
fn exchange_builtins() {
    assert_eq!(ids("conn == 1"), [1, 3]);
    assert_eq!(ids("id >= 6"), [6, 7]);
    assert_eq!(ids("corr == 9"), [4]);
    assert_eq!(ids(r#"client == "rdkafka""#), [1, 3]);
    assert_eq!(
        ids(r#"client == "RDKAFKA""#),
        Vec::<u64>::new(),
        "== is exact"
    );
    assert_eq!(ids("client == kafka-python"), [5]);
    assert_eq!(ids("peer == 127.0.0.1:50002"), [2]);
    assert_eq!(ids("peer ~ :50006"), [7]);
    assert_eq!(ids("peer !~ 127.0.0.1:5000"), Vec::<u64>::new());
    assert_eq!(ids("status == answered"), [1, 2, 3, 5, 7]);
    assert_eq!(ids("status == unanswered"), [4]);
    assert_eq!(ids("status == MALFORMED"), [6]);
    assert_eq!(ids("status == no_response"), Vec::<u64>::new());
    assert_eq!(ids("status ~ answer"), [1, 2, 3, 4, 5, 7]);
    assert_eq!(ids("placement == front"), [5]);
    assert_eq!(
        ids("placement != front"),
        [1],
        "no placement is missing, not different"
    );
    assert_eq!(ids("placement"), [1, 5]);
    assert_eq!(ids("!placement"), [2, 3, 4, 6, 7]);
}

#[test]
fn stall_detector_builtins() {
    assert_eq!(ids(r#"software ~ "librdkafka""#), [1, 3]);
    assert_eq!(ids(r#"software == "kafka-python 2.0.2""#), [5]);
    assert_eq!(ids("software"), [1, 3, 5]);
    assert_eq!(ids("software == null"), [2, 4, 6, 7]);
    assert_eq!(ids("health == healthy"), [1, 3]);
    assert_eq!(ids("health == Stalled"), [4]);
    assert_eq!(ids("health == disconnecting || health == retrying"), [5]);
    assert_eq!(ids("health"), [1, 3, 4, 5]);
    assert_eq!(
        ids("health != healthy"),
        [2, 4, 5, 6, 7],
        "unknown is null, not healthy"
    );
}

#[test]
fn latency_units_and_missing_latency() {
    assert_eq!(ids("latency == 60"), [1], "a bare number is milliseconds");
    assert_eq!(ids("latency == 60000us"), [1]);
    assert_eq!(ids("latency == 0.06s"), [1]);
    assert_eq!(ids("latency <= 250µs"), [3]);
    assert_eq!(ids("latency < 250us"), Vec::<u64>::new());
    assert_eq!(ids("latency >= 1.5s"), [5]);
    assert_eq!(ids("latency < 0.5"), [3], "half a millisecond");
    // Unanswered and malformed exchanges have no latency: no comparison matches them.
    assert_eq!(ids("latency != 0"), [1, 2, 3, 5, 7]);
    assert_eq!(ids("latency"), [1, 2, 3, 5, 7]);
    assert_eq!(ids("!latency"), [4, 6]);
}

#[test]
fn sizes_with_and_without_units() {
    assert_eq!(ids("size > 150"), ids_where(|c| c.ex.size() > 150));
    assert_eq!(ids("size > 0.15kB"), ids_where(|c| c.ex.size() > 150));
    assert_eq!(
        ids("request.size >= 0x80"),
        ids_where(|c| c.ex.request().len() >= 128)
    );
    assert_eq!(ids("request.size < 1KiB"), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(ids("request.size > 1MiB"), Vec::<u64>::new());
    assert_eq!(
        ids("response.size < 50B"),
        ids_where(|c| c.ex.response().is_some_and(|r| r.len() < 50))
    );
    let first = cases()[0].ex.response().map_or(0, <[u8]>::len);
    assert_eq!(ids(&format!("response.size == {first}")), [1]);
    assert_eq!(
        ids("response.size != 0"),
        [1, 2, 3, 5, 7],
        "no response: missing"
    );
    assert_eq!(ids("response.size"), [1, 2, 3, 5, 7]);
}

#[test]
fn malformed_from_status_and_from_dissection() {
    // 5: answered, but its response does not decode; 6: refused by the broker.
    assert_eq!(ids("malformed"), [5, 6]);
    assert_eq!(ids("malformed == true"), [5, 6]);
    assert_eq!(ids("malformed == 0"), [1, 2, 3, 4, 7]);
    assert_eq!(ids("not malformed"), [1, 2, 3, 4, 7]);
}

#[test]
fn error_codes_by_number_and_name() {
    assert_eq!(ids("error == 3"), [2]);
    assert_eq!(ids("error == UNKNOWN_TOPIC_OR_PARTITION"), [2]);
    assert_eq!(ids("error == unknown_topic_or_partition"), [2]);
    assert_eq!(ids(r#"error ~ "topic""#), [2]);
    assert_eq!(ids("error"), [2], "bare: some error code is not 0");
    // 7's response has no error_code field: it counts as 0. 4 and 6 have no response.
    assert_eq!(ids("error == 0"), [1, 3, 5, 7]);
    assert_eq!(ids("error == NONE"), [1, 3, 5, 7]);
    assert_eq!(ids("error >= -1"), [1, 2, 3, 5, 7]);
    assert_eq!(
        ids("metadata.response.topics.error_code == UNKNOWN_TOPIC_OR_PARTITION"),
        [2]
    );
    assert_eq!(ids("metadata.response.topics.error_code ~ unknown"), [2]);
}

#[test]
fn throttle_is_any_throttle_time_ms_of_the_response() {
    assert_eq!(ids("throttle > 0"), [1]);
    assert_eq!(ids("throttle == 120"), [1]);
    assert_eq!(ids("throttle == 0"), [2, 3]);
    // 5's response was cut before throttle_time_ms; 7 is Metadata v1, which has none.
    assert_eq!(ids("throttle"), [1, 2, 3]);
    assert_eq!(ids("!throttle"), [4, 5, 6, 7]);
}

#[test]
fn registry_fields_in_requests() {
    assert_eq!(ids(r#"kafka.client_id ~ "rd""#), [1, 3]);
    assert_eq!(ids("kafka.client_id == null"), [4]);
    assert_eq!(ids("metadata.request.topics.name == missing"), [2]);
    assert_eq!(
        ids("metadata.request.allow_auto_topic_creation == true"),
        [2]
    );
    assert_eq!(
        ids("api_versions.request.client_software_version ~ 2.3"),
        [3]
    );
    assert_eq!(ids("produce.request.transactional_id == null"), [1, 4, 5]);
    assert_eq!(
        ids("produce.request.transactional_id != null"),
        Vec::<u64>::new()
    );
    assert_eq!(ids("produce.request.timeout_ms"), [1, 4, 5]);
    assert_eq!(ids("kafka.api_key == Metadata"), [2, 7]);
    assert_eq!(
        ids("KAFKA.API_VERSION == 12"),
        [2],
        "names are case-insensitive"
    );
}

#[test]
fn registry_fields_in_responses() {
    assert_eq!(
        ids("produce.response.responses.partition_responses.base_offset == 42"),
        [1, 5]
    );
    assert_eq!(ids("metadata.response.brokers.host == localhost"), [2, 7]);
    assert_eq!(ids("metadata.response.brokers.port == 9092"), [2, 7]);
    assert_eq!(ids("metadata.response.topics.is_internal == false"), [2]);
    assert_eq!(ids("metadata.response.topics.topic_id ~ 0000-0000"), [2]);
    // v2+ only: absent from 7, null in 2.
    assert_eq!(ids("metadata.response.cluster_id == null"), [2]);
    // Any field: one of the two api_keys elements is Fetch.
    assert_eq!(ids("api_versions.response.api_keys.api_key == Fetch"), [3]);
    assert_eq!(ids("api_versions.response.api_keys.api_key != Fetch"), [3]);
    assert_eq!(ids("api_versions.response.api_keys.max_version > 15"), [3]);
    assert_eq!(
        ids("api_versions.response.api_keys.max_version > 16"),
        Vec::<u64>::new()
    );
    // Arrays of structs: presence and null only.
    assert_eq!(ids("metadata.response.topics"), [2, 7]);
    assert_eq!(ids("metadata.response.topics != null"), [2, 7]);
    assert_eq!(ids("metadata.response.topics.partitions"), [2]);
    // Arrays of integers: element by element.
    assert_eq!(
        ids("metadata.response.topics.partitions.replica_nodes == 2"),
        [2]
    );
    assert_eq!(
        ids("metadata.response.topics.partitions.replica_nodes > 2"),
        Vec::<u64>::new()
    );
    assert_eq!(
        ids("metadata.response.topics.partitions.isr_nodes == 2"),
        Vec::<u64>::new()
    );
    assert_eq!(ids("metadata.response.topics.partitions.isr_nodes"), [2]);
    assert_eq!(ids("kafka.response_header"), [1, 2, 3, 5, 7]);
}

#[test]
fn bytes_by_text_and_by_hex() {
    assert_eq!(ids(r#"record.value ~ "HELLO""#), [1]);
    assert_eq!(ids(r#"record.value == "hello world""#), [1]);
    assert_eq!(ids(r#"record.value ~ "68656c6c6f""#), [1], "hex of hello");
    assert_eq!(ids(r#"record.value ~ "68:65:6c""#), [1]);
    assert_eq!(ids(r#"record.value == "78""#), [5], "hex of x");
    assert_eq!(ids(r#"record.value !~ "hello""#), [4, 5]);
    assert_eq!(ids("record.key == null"), [1, 4, 5]);
    // A record set decoded into batches compares by the bytes it spans.
    assert_eq!(
        ids(r#"produce.request.topic_data.partition_data.records ~ "acknowledged""#),
        [4]
    );
}

#[test]
fn precedence_and_grouping() {
    // and binds tighter than or.
    assert_eq!(
        ids("api == Metadata or api == Produce and client ~ rdkafka"),
        [1, 2, 7]
    );
    assert_eq!(
        ids("(api == Metadata or api == Produce) and client ~ rdkafka"),
        [1]
    );
    assert_eq!(
        ids("api == Produce and client ~ rdkafka or api == Metadata"),
        [1, 2, 7]
    );
    // not binds tighter than and.
    assert_eq!(ids("not api == Produce and conn == 1"), [3]);
    assert_eq!(ids("!(api == Produce and conn == 1)"), [2, 3, 4, 5, 6, 7]);
    assert_eq!(ids("!!malformed"), [5, 6]);
    assert_eq!(ids("not not not malformed"), [1, 2, 3, 4, 7]);
    assert_eq!(ids("((conn == 1)) || (((id == 7)))"), [1, 3, 7]);
    assert_eq!(ids("conn == 1 AND api == 18 OR id == 4"), [3, 4]);
    // Any-field semantics: != is "some field differs", not the negation of ==.
    assert_eq!(
        ids("!(api_versions.response.api_keys.api_key == Fetch)"),
        [1, 2, 4, 5, 6, 7]
    );
}

#[test]
fn empty_filter_keeps_everything() {
    for text in ["", "   ", "\t"] {
        let f = parse(text).expect("empty");
        assert!(f.is_empty());
        assert!(!f.needs_dissection());
        assert_eq!(f.text(), text);
    }
    assert_eq!(ids(""), [1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn needs_dissection_only_for_what_the_exchange_lacks() {
    for text in [
        "api == Produce && latency > 5ms",
        "client ~ rd or peer ~ 127 or software or health == stalled",
        "status == answered and placement == front and size > 1kB and !response.size",
        "conn == 1 || id == 2 || corr == 3 || version == 4 || request.size > 5",
    ] {
        assert!(!parse(text).unwrap().needs_dissection(), "{text}");
    }
    for text in [
        "error != 0",
        "throttle",
        "malformed",
        "api == Produce && !(kafka.client_id ~ rd)",
        "not record.value",
    ] {
        assert!(parse(text).unwrap().needs_dissection(), "{text}");
    }
}

#[test]
fn filters_are_cheap_clones_that_keep_their_text() {
    let f = parse("  api == Produce ").unwrap();
    let g = f.clone();
    assert_eq!(g.text(), "  api == Produce ");
    let c = &cases()[0];
    assert!(f.matches(&c.subject()) && g.matches(&c.subject()));
    assert!(std::sync::Arc::ptr_eq(
        f.expr.as_ref().unwrap(),
        g.expr.as_ref().unwrap()
    ));
}

/// Asserts the error's column (from 0) and that its message contains every fragment.
fn assert_error(filter: &str, offset: usize, fragments: &[&str]) {
    let e = error(filter);
    assert_eq!(e.offset, offset, "{filter}: {e}");
    for f in fragments {
        assert!(e.message.contains(f), "{filter}: {e} lacks {f:?}");
    }
}

#[test]
fn unknown_names_are_named_with_a_suggestion() {
    assert_error("latncy > 5", 0, &["unknown field `latncy`", "`latency`"]);
    assert_error("api == 0 && helth", 12, &["`helth`", "`health`"]);
    assert_error(
        "produce.response.throttle_time > 0",
        0,
        &["`produce.response.throttle_time_ms`"],
    );
    assert_error(
        "produc.response.throttle_time_ms > 0",
        0,
        &["`produce.response.throttle_time_ms`"],
    );
    assert_error(
        "metadata.response.topic.error_code == 3",
        0,
        &["`metadata.response.topics.error_code`"],
    );
    // A last segment alone points at the dotted names.
    assert_error(
        "log_start_offset > 0",
        0,
        &["dotted in full", "log_start_offset"],
    );
    assert_error("zzzzzzzz", 0, &["unknown field `zzzzzzzz`"]);
}

#[test]
fn value_errors_point_at_the_value() {
    assert_error("api == Prodcue", 7, &["unknown API `Prodcue`", "`Produce`"]);
    assert_error(
        "error == UNKNOWN_TOPIC_OR_PARTITON",
        9,
        &["unknown error", "UNKNOWN_TOPIC_OR_PARTITION"],
    );
    assert_error(
        "health == stalld",
        10,
        &["healthy, retrying, stalled", "`stalled`"],
    );
    assert_error(
        "status == done",
        10,
        &["answered, no_response, unanswered, malformed, refused"],
    );
    assert_error("placement == back", 13, &["spec, front, omit"]);
    assert_error("version == 12ab", 11, &["bad number `12ab`"]);
    assert_error("version == 0xzz", 11, &["bad number `0xzz`"]);
    assert_error("version == 1.2.3", 11, &["bad number"]);
    assert_error("version == 99999999999999999999", 11, &["out of range"]);
    assert_error(
        "version == abc",
        11,
        &["`version` is a number; `abc` is not one"],
    );
    assert_error(r#"version == "3""#, 11, &["without quotes"]);
    assert_error("latency > 5xs", 10, &["unknown unit `xs`"]);
    assert_error("latency > fast", 10, &["not a duration"]);
    assert_error("size > 1.5", 7, &["whole number of bytes"]);
    assert_error("size > 2parsecs", 7, &["unknown unit `parsecs`"]);
    assert_error("malformed == maybe", 13, &["true or false"]);
    assert_error("latency == null", 11, &["never null"]);
    assert_error("client ~ null", 9, &["== or !="]);
}

#[test]
fn type_errors_point_at_the_operator() {
    assert_error(r#"latency ~ "x""#, 8, &["`~` needs text", "duration"]);
    assert_error("version !~ 3", 8, &["`!~` needs text"]);
    assert_error("peer > 5", 5, &["`>` needs numbers", "text", "~ or !~"]);
    assert_error("health <= stalled", 7, &["`<=` needs numbers"]);
    assert_error("malformed > 0", 10, &["needs numbers", "== or !="]);
    assert_error("metadata.response.topics == 5", 25, &["group of fields"]);
    assert_error("produce.response.responses ~ x", 27, &["group of fields"]);
}

#[test]
fn syntax_errors_with_their_column() {
    assert_error("api ==", 6, &["missing value after `==`"]);
    assert_error("api == and conn == 1", 7, &["missing value", "`and`"]);
    assert_error("api == )", 7, &["missing value", "`)`"]);
    assert_error("(api == 0", 0, &["unclosed parenthesis"]);
    assert_error("((api == 0) and (conn == 1)", 0, &["unclosed parenthesis"]);
    assert_error("(api == 0 conn == 1)", 10, &["expected `)`"]);
    assert_error(r#"client == "rd"#, 10, &["unclosed string"]);
    assert_error(r#"client == "a\qb""#, 12, &["unknown escape"]);
    assert_error("api == 0 conn == 1", 9, &["`conn`", "and`, `or`"]);
    assert_error("api == 0)", 8, &["without a matching `(`"]);
    assert_error("api Produce", 4, &["expected an operator", "`Produce`"]);
    assert_error("api == 0 and", 12, &["ends where a test is expected"]);
    assert_error("and api", 0, &["expected a test before `and`"]);
    assert_error(
        "api == 0 || || conn == 1",
        12,
        &["expected a test before `||`"],
    );
    assert_error("== 3", 0, &["field name before `==`"]);
    assert_error(r#""api" == 3"#, 0, &["only values are quoted"]);
    assert_error("()", 1, &["expected a test"]);
    assert_error("api = 0", 4, &["write `==`"]);
    assert_error("api == 0 & conn == 1", 9, &["`&&`"]);
    assert_error("api == 0 | conn == 1", 9, &["`||`"]);
    assert_error("api == $", 7, &["unexpected character `$`"]);
    // Columns count characters, not bytes.
    assert_error(r#"client == "é" && bogus"#, 17, &["`bogus`"]);
}

#[test]
fn error_display_counts_columns_from_one() {
    let e = error("latncy > 5");
    assert_eq!(e.to_string(), format!("at column 1: {}", e.message));
    let e = error("api ==");
    assert!(
        e.to_string().starts_with("at column 7: missing value"),
        "{e}"
    );
}

#[test]
fn length_is_bounded() {
    let padded = format!("{}api == 0", " ".repeat(MAX_LEN - 8));
    assert_eq!(padded.chars().count(), MAX_LEN);
    assert!(parse(&padded).is_ok());
    let long = format!(" {padded}");
    assert_error(&long, MAX_LEN, &["longer than 4096 characters"]);
    // Characters, not bytes: 4096 two-byte characters in a string are fine.
    let wide = format!(r#"client == "{}""#, "é".repeat(MAX_LEN - 12));
    assert_eq!(wide.chars().count(), MAX_LEN);
    assert!(parse(&wide).is_ok());
    // A huge input is refused without being read in full.
    let huge = "(".repeat(10_000_000);
    assert_error(&huge, MAX_LEN, &["longer than"]);
}

#[test]
fn nesting_is_bounded() {
    let nest = |n: usize| format!("{}api == 0{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(ids(&nest(MAX_DEPTH)), [1, 4, 5, 6]);
    assert_error(&nest(MAX_DEPTH + 1), MAX_DEPTH, &["nested deeper than 64"]);
    assert_error(&"(".repeat(4000), MAX_DEPTH, &["nested deeper than 64"]);
    let nots = |n: usize| format!("{}malformed", "!".repeat(n));
    assert_eq!(ids(&nots(MAX_DEPTH)), [5, 6]);
    assert_error(&nots(MAX_DEPTH + 1), MAX_DEPTH, &["nested deeper"]);
    assert_error(&"not ".repeat(1000), 4 * MAX_DEPTH, &["nested deeper"]);
    // Parentheses and negations count together.
    let mixed = "!(".repeat(MAX_DEPTH / 2) + "(malformed" + &")".repeat(MAX_DEPTH / 2 + 1);
    assert_error(&mixed, MAX_DEPTH, &["nested deeper"]);
    // Long flat chains are not nesting.
    let chain = vec!["id == 3"; 300].join(" or ");
    assert_eq!(ids(&chain), [3]);
}

#[test]
fn every_registered_wire_type_has_a_filter_type() {
    for e in &chronik_protocol::registry::catalog().entries {
        assert!(
            super::literal::registry_ty(e).is_some(),
            "{} has wire type {}",
            e.name,
            e.kind.label()
        );
        assert_eq!(
            e.name,
            e.name.to_lowercase(),
            "names are matched lower-cased"
        );
    }
}

#[test]
fn every_builtin_needs_no_registry_name_and_is_not_one() {
    for (name, _) in BUILTINS {
        assert!(
            chronik_protocol::registry::catalog().id(name).is_none(),
            "{name} would hide a registry name"
        );
        assert!(parse(name).is_ok(), "{name} bare");
    }
}

#[test]
fn sides_of_registry_names_match_the_frames_they_occur_in() {
    use super::ast::Side;
    use super::parse::side_of;
    let mut checked = 0;
    for c in cases() {
        let d = &c.dissected;
        for (d, wrong) in [(&d.request, Side::Response), (&d.response, Side::Request)] {
            if let Some(d) = d {
                d.root.walk(0, &mut |f, _| {
                    assert_ne!(side_of(f.name()), wrong, "{}", f.name());
                    checked += 1;
                });
            }
        }
    }
    assert!(checked > 100);
}

mod no_panics {
    use super::*;
    use proptest::prelude::*;

    const PIECES: &[&str] = &[
        "api",
        "latency",
        "error",
        "record.value",
        "metadata.response.topics",
        "client",
        "==",
        "!=",
        "<",
        ">=",
        "~",
        "!~",
        "&&",
        "||",
        "!",
        "and",
        "or",
        "not",
        "(",
        ")",
        "\"",
        "\\",
        "0x",
        "-",
        "1.5",
        "ms",
        "kB",
        "null",
        "Produce",
        " ",
        "é",
        "=",
        "&",
        "\"a\"",
        "µs",
        "health",
        "stalled",
        "99999999999999999999",
        "size",
        "contains",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any mix of filter pieces parses or fails with an offset inside the text, and a
        /// filter that parses evaluates on every fixture without panicking.
        #[test]
        fn pieces(idx in proptest::collection::vec(0..PIECES.len(), 0..24)) {
            let text: String = idx.iter().map(|i| PIECES[*i]).collect::<Vec<_>>().join(" ");
            check(&text);
            let tight: String = idx.iter().map(|i| PIECES[*i]).collect();
            check(&tight);
        }

        #[test]
        fn any_text(text in "\\PC{0,64}") {
            check(&text);
        }
    }

    fn check(text: &str) {
        match parse(text) {
            Err(e) => assert!(e.offset <= text.chars().count(), "{text}: {e}"),
            Ok(f) => {
                for c in cases() {
                    f.matches(&c.subject());
                    f.matches(&Subject::new(&c.ex));
                }
            }
        }
    }
}
