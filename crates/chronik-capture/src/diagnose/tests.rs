//! Unit tests of the detector with synthetic exchanges and events (real frames, encoded with
//! the kafka-protocol crate; only the timing is made up).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiVersionsRequest, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::fixtures::every_state;
use super::*;
use crate::{Endpoints, PlacementUsed};
use chronik_protocol::batch;
use chronik_protocol::test_frames::request_frame;

const S: i64 = 1_000_000;
const T0: i64 = 1_700_000_000 * S;

fn thresholds() -> StallThresholds {
    StallThresholds::default()
}

/// A magic-2 batch of `n` one-byte records with a valid CRC.
fn batch_bytes(n: i32, producer: Option<(i64, i16, i32)>, ts: i64) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..n {
        // Distinct values for distinct (ts, i), so only real resends repeat a record.
        let value = b'a' + ((ts + i as i64).rem_euclid(26)) as u8;
        let body = [0u8, 0, (i as u8) << 1, 1, 2, value, 0];
        records.push((body.len() as u8) << 1);
        records.extend_from_slice(&body);
    }
    let mut b = vec![0u8; batch::BATCH_HEADER_LEN];
    let len = (batch::BATCH_HEADER_LEN - 12 + records.len()) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(n - 1).to_be_bytes());
    b[27..35].copy_from_slice(&ts.to_be_bytes());
    b[35..43].copy_from_slice(&ts.to_be_bytes());
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    b[57..61].copy_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&records);
    let crc = batch::batch_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn produce_request(version: i16, corr: i32, client: &str, batch: &[u8]) -> Vec<u8> {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::copy_from_slice(batch)))])]);
    request_frame(0, version, corr, Some(client), &req)
}

/// A ProduceResponse v1-v8 frame; `front` moves throttle_time_ms before the responses array,
/// as Chronik Stream 0.7.2 did.
fn produce_response(version: i16, corr: i32, front: bool) -> Vec<u8> {
    let resp = ProduceResponse::default()
        .with_responses(vec![TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_responses(vec![PartitionProduceResponse::default()
                .with_index(0)
                .with_base_offset(0)])])
        .with_throttle_time_ms(0);
    let mut body = BytesMut::new();
    resp.encode(&mut body, version).expect("response");
    let mut body = body.to_vec();
    if front {
        let at = body.len() - 4;
        let throttle: Vec<u8> = body.drain(at..).collect();
        body.splice(0..0, throttle);
    }
    let mut frame = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&corr.to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

#[allow(clippy::too_many_arguments)]
fn exchange(
    id: u64,
    conn: u64,
    port: u16,
    api_key: i16,
    version: i16,
    corr: i32,
    request: Vec<u8>,
    response: Option<Vec<u8>>,
    at: i64,
) -> Exchange {
    let status = if response.is_some() {
        Status::Answered
    } else {
        Status::Unanswered
    };
    let peer = SocketAddr::from(([127, 0, 0, 1], port));
    let mut ex = Exchange::new(conn, Endpoints::of(peer), at, status)
        .with_client_id(Some(Arc::new("app".into())))
        .with_frames(request, response);
    ex.id = id;
    ex.api_key = api_key;
    ex.api_version = version;
    ex.correlation_id = corr;
    ex.answered_at(at + 200)
}

trait AnsweredAt {
    fn answered_at(self, at: i64) -> Exchange;
}

impl AnsweredAt for Exchange {
    fn answered_at(mut self, at: i64) -> Exchange {
        if self.response().is_some() {
            self.set_response_at(Some(at));
        }
        self
    }
}

fn opened(conn: u64, port: u16, at: i64) -> ConnEvent {
    ConnEvent {
        conn,
        peer: SocketAddr::from(([127, 0, 0, 1], port)),
        at,
        kind: ConnEventKind::Opened,
    }
}

fn closed(conn: u64, port: u16, at: i64, by: ClosedBy) -> ConnEvent {
    ConnEvent {
        conn,
        peer: SocketAddr::from(([127, 0, 0, 1], port)),
        at,
        kind: ConnEventKind::Closed {
            by,
            reason: "test".into(),
        },
    }
}

#[test]
fn software_and_versions_from_api_versions_v3() {
    let mut d = Detector::new();
    let t = thresholds();
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("kafka-python"))
        .with_client_software_version(StrBytes::from_static_str("3.0.12"));
    let frame = request_frame(18, 3, 1, Some("app"), &req);
    let ex = exchange(
        1,
        1,
        5000,
        18,
        3,
        1,
        frame,
        Some(vec![0, 0, 0, 4, 0, 0, 0, 1]),
        T0,
    );
    assert!(d.on_exchange(&ex, t).is_empty());
    let c = d.connection(1).expect("conn 1");
    assert_eq!(c.software().as_deref(), Some("kafka-python 3.0.12"));
    assert_eq!(c.negotiated.get(&18), Some(&3));
    assert_eq!(c.requests, 1);
    assert!(d.render(t).contains("kafka-python 3.0.12"));
}

#[test]
fn clean_response_then_close_or_silence_stays_healthy() {
    let mut d = Detector::new();
    let t = thresholds();
    d.on_conn_event(&opened(1, 5000, T0), t);
    let b = batch_bytes(3, None, 1);
    let ex = exchange(
        1,
        1,
        5000,
        0,
        7,
        2,
        produce_request(7, 2, "app", &b),
        Some(produce_response(7, 2, false)),
        T0,
    );
    assert!(d.on_exchange(&ex, t).is_empty());
    assert!(d.tick(T0 + 60 * S, t).is_empty(), "idle is not stalled");
    assert!(d
        .on_conn_event(&closed(1, 5000, T0 + 1000, ClosedBy::Client), t)
        .is_empty());
    assert_eq!(d.connection(1).unwrap().health, Health::Healthy);
    assert_eq!(d.connection(1).unwrap().undecodable_responses, 0);
}

#[test]
fn close_soon_after_an_undecodable_response_is_disconnecting() {
    let mut d = Detector::new();
    let t = thresholds();
    let b = batch_bytes(3, None, 1);
    let ex = exchange(
        7,
        1,
        5000,
        0,
        7,
        2,
        produce_request(7, 2, "app", &b),
        Some(produce_response(7, 2, true)),
        T0,
    );
    let mut ex = ex;
    ex.set_placement(Some(PlacementUsed {
        placement: chronik_protocol::ThrottlePlacement::Front,
        rule: Some((0, "client_id=app:front".into())),
    }));
    let resp_len = ex.response().unwrap().len();
    assert!(d.on_exchange(&ex, t).is_empty());
    assert_eq!(
        d.connection(1).unwrap().placement.as_deref(),
        Some("front (rule 0: client_id=app:front)")
    );
    assert_eq!(d.connection(1).unwrap().undecodable_responses, 1);
    assert!(d.render(t).contains("0/0/1"), "{}", d.render(t));
    let ch = d.on_conn_event(&closed(1, 5000, T0 + 700, ClosedBy::Client), t);
    assert_eq!(ch.len(), 1, "{ch:?}");
    assert_eq!(
        (ch[0].from, ch[0].to),
        (Health::Healthy, Health::Disconnecting)
    );
    let text = &ch[0].evidence.text;
    assert!(text.contains("exchange #7"), "{text}");
    assert!(text.contains(&format!("{resp_len} B")), "{text}");
    assert!(text.contains("bytes left after the last field"), "{text}");
    assert!(text.contains("placement front (rule 0"), "{text}");
    assert!(
        ch[0].line().starts_with("# client conn=1 app ("),
        "{}",
        ch[0].line()
    );
    assert_eq!(ch[0].json()["kind"], "client_state");
}

#[test]
fn close_long_after_or_by_the_broker_is_not_disconnecting() {
    let mut d = Detector::new();
    let t = thresholds();
    let b = batch_bytes(1, None, 1);
    let req = produce_request(7, 2, "app", &b);
    let ex = exchange(
        1,
        1,
        5000,
        0,
        7,
        2,
        req.clone(),
        Some(produce_response(7, 2, true)),
        T0,
    );
    d.on_exchange(&ex, t);
    let late = T0 + t.close_after_response.as_micros() as i64 + 10_000;
    assert!(d
        .on_conn_event(&closed(1, 5000, late, ClosedBy::Client), t)
        .is_empty());
    let ex = exchange(
        2,
        2,
        5001,
        0,
        7,
        2,
        req,
        Some(produce_response(7, 2, true)),
        T0,
    );
    d.on_exchange(&ex, t);
    assert!(d
        .on_conn_event(&closed(2, 5001, T0 + 300, ClosedBy::Broker), t)
        .is_empty());
}

#[test]
fn silence_after_an_undecodable_response_is_stalled_then_a_clean_one_recovers() {
    let mut d = Detector::new();
    let t = thresholds();
    let b = batch_bytes(2, Some((1000, 0, 0)), 1);
    let ex = exchange(
        3,
        1,
        5000,
        0,
        7,
        5,
        produce_request(7, 5, "app", &b),
        Some(produce_response(7, 5, true)),
        T0,
    );
    d.on_exchange(&ex, t);
    let silence = t.silence.as_micros() as i64;
    assert!(d.tick(T0 + silence - S, t).is_empty(), "not yet");
    let ch = d.tick(T0 + silence + S, t);
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].to, Health::Stalled);
    assert_eq!(ch[0].evidence.kind, EvidenceKind::SilenceAfterResponse);
    assert!(ch[0].evidence.text.contains("exchange #3"));
    assert!(d.tick(T0 + 2 * silence, t).is_empty(), "reported once");
    // The client's next batch gets a clean response.
    let b2 = batch_bytes(2, Some((1000, 0, 2)), 10);
    let at = T0 + 2 * silence;
    let ex = exchange(
        4,
        1,
        5000,
        0,
        7,
        6,
        produce_request(7, 6, "app", &b2),
        Some(produce_response(7, 6, false)),
        at,
    );
    let ch = d.on_exchange(&ex, t);
    assert_eq!(ch.len(), 1);
    assert_eq!((ch[0].from, ch[0].to), (Health::Stalled, Health::Healthy));
}

/// kafka-python 2.0.2 refreshes its metadata a moment after a Produce whose response it could
/// not read, and then still waits: the refresh does not count as acting on the response.
#[test]
fn a_metadata_refresh_while_waiting_for_an_ack_is_still_silence() {
    use kafka_protocol::messages::MetadataRequest;
    let mut d = Detector::new();
    let t = thresholds();
    let b = batch_bytes(2, None, 1);
    let produce = exchange(
        3,
        1,
        5000,
        0,
        7,
        5,
        produce_request(7, 5, "app", &b),
        Some(produce_response(7, 5, true)),
        T0,
    );
    d.on_exchange(&produce, t);
    let metadata = exchange(
        4,
        1,
        5000,
        3,
        1,
        6,
        request_frame(3, 1, 6, Some("app"), &MetadataRequest::default()),
        None,
        T0 + 100_000,
    );
    d.on_exchange(&metadata, t);
    let silence = t.silence.as_micros() as i64;
    let ch = d.tick(T0 + silence + S, t);
    assert_eq!(ch.len(), 1, "{ch:?}");
    assert_eq!(ch[0].to, Health::Stalled);
    assert!(ch[0].evidence.text.contains("exchange #3"));
}

#[test]
fn a_batch_resent_after_its_response_is_retrying_across_connections() {
    let mut d = Detector::new();
    let t = thresholds();
    for (producer, label) in [(None, "crc=0x"), (Some((42, 1, 7)), "producer_id=42")] {
        let b = batch_bytes(3, producer, 5);
        let first = exchange(
            10,
            1,
            5000,
            0,
            7,
            2,
            produce_request(7, 2, "app", &b),
            Some(produce_response(7, 2, true)),
            T0,
        );
        d.on_exchange(&first, t);
        // Same client (id and IP), new connection, same batch.
        let again = exchange(
            11,
            2,
            5002,
            0,
            7,
            2,
            produce_request(7, 2, "app", &b),
            Some(produce_response(7, 2, true)),
            T0 + 100_000,
        );
        let ch = d.on_exchange(&again, t);
        assert_eq!(ch.len(), 1, "{label}");
        assert_eq!(ch[0].to, Health::Retrying);
        assert_eq!(ch[0].evidence.earlier_exchange, Some(10));
        assert!(
            ch[0].evidence.text.contains(label),
            "{}",
            ch[0].evidence.text
        );
        // Another client sending the same bytes is not a retry.
        let mut other = again.clone();
        other.id = 12;
        other.conn = 3;
        other.set_client_id(Some(Arc::new("other".into())));
        let ch = d.on_exchange(&other, t);
        assert!(ch.is_empty(), "{ch:?}");
        d = Detector::new();
    }
}

#[test]
fn a_request_unanswered_past_the_threshold_is_stalled() {
    let t = thresholds();
    let limit = t.unanswered.as_micros() as i64;
    // Exchange before the close event, and the other way round.
    for exchange_first in [true, false] {
        let mut d = Detector::new();
        let b = batch_bytes(1, None, 1);
        let ex = exchange(
            5,
            1,
            5000,
            0,
            7,
            9,
            produce_request(7, 9, "app", &b),
            None,
            T0,
        );
        let close = closed(1, 5000, T0 + limit + S, ClosedBy::Client);
        let ch = if exchange_first {
            d.on_exchange(&ex, t);
            d.on_conn_event(&close, t)
        } else {
            d.on_conn_event(&close, t);
            d.on_exchange(&ex, t)
        };
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].to, Health::Stalled);
        assert!(ch[0].evidence.text.contains("left unanswered"));
        assert_eq!(d.connection(1).unwrap().unanswered, 1);
    }
    // A long poll cut short by the client's close is not a stall.
    let mut d = Detector::new();
    let ex = exchange(6, 1, 5000, 1, 12, 3, vec![0, 0, 0, 0], None, T0);
    d.on_exchange(&ex, t);
    assert!(d
        .on_conn_event(&closed(1, 5000, T0 + S / 2, ClosedBy::Client), t)
        .is_empty());
}

#[test]
fn hostile_frames_do_not_panic() {
    let mut d = Detector::new();
    let t = thresholds();
    for (i, req) in [
        vec![],
        vec![0, 0, 0, 1, 0],
        vec![0, 0, 0, 12, 0, 0, 0, 7, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
        vec![0xff; 64],
    ]
    .into_iter()
    .enumerate()
    {
        for key in [0, 18] {
            let ex = exchange(
                i as u64,
                1,
                5000,
                key,
                7,
                1,
                req.clone(),
                Some(vec![0, 0, 0, 2, 1]),
                T0,
            );
            d.on_exchange(&ex, t);
        }
    }
    d.tick(T0 + 100 * S, t);
    let _ = d.render(t);
}

#[test]
fn a_record_resent_in_a_new_batch_is_retrying() {
    let mut d = Detector::new();
    let t = thresholds();
    let first = batch_bytes(1, None, 5);
    let rebatched = batch_bytes(2, None, 5);
    assert_ne!(first[17..21], rebatched[17..21], "different CRCs");
    let ex = exchange(
        1,
        1,
        5000,
        0,
        3,
        0,
        produce_request(3, 0, "app", &first),
        Some(produce_response(3, 0, true)),
        T0,
    );
    assert!(d.on_exchange(&ex, t).is_empty());
    let ex = exchange(
        2,
        2,
        5001,
        0,
        3,
        1,
        produce_request(3, 1, "app", &rebatched),
        Some(produce_response(3, 1, true)),
        T0 + S / 10,
    );
    let ch = d.on_exchange(&ex, t);
    assert_eq!(ch.len(), 1, "{ch:?}");
    assert_eq!(ch[0].to, Health::Retrying);
    let text = &ch[0].evidence.text;
    assert!(text.contains("a record of t-0 (timestamp 5)"), "{text}");
    assert!(text.contains("1 of its 2 records"), "{text}");
    // A record never sent before, in a new batch, is not a retry.
    let fresh = batch_bytes(1, None, 99);
    let ex = exchange(
        3,
        3,
        5002,
        0,
        3,
        2,
        produce_request(3, 2, "app", &fresh),
        Some(produce_response(3, 2, false)),
        T0 + S,
    );
    assert!(d.on_exchange(&ex, t).is_empty());
    // The same record content again after a clean response: an application may send the same
    // record twice, so only a whole batch (CRC or sequence) would count.
    let again = batch_bytes(2, None, 98);
    let ex = exchange(
        4,
        3,
        5002,
        0,
        3,
        3,
        produce_request(3, 3, "app", &again),
        Some(produce_response(3, 3, false)),
        T0 + 2 * S,
    );
    assert!(d.on_exchange(&ex, t).is_empty());
}

/// The running detector: fed through a store, ticking on its own, thresholds read live from
/// their source (the broker's settings in a run).
#[tokio::test]
async fn spawned_detector_follows_the_store_and_the_settings() {
    use crate::{Store, StoreLimits};
    let store = Store::new(StoreLimits::default());
    let thresholds = Arc::new(std::sync::Mutex::new(StallThresholds::default()));
    let source = thresholds.clone();
    let handle = spawn(&store, Arc::new(move || *source.lock().unwrap()));
    let mut changes = handle.subscribe();
    let now = now_micros();
    store.push_conn_event(opened(1, 5000, now));
    let b = batch_bytes(1, None, 3);
    store.push(exchange(
        0,
        1,
        5000,
        0,
        7,
        2,
        produce_request(7, 2, "app", &b),
        Some(produce_response(7, 2, true)),
        now,
    ));
    // Default silence is 5 s: nothing within a second.
    let quiet = tokio::time::timeout(Duration::from_millis(800), changes.recv()).await;
    assert!(quiet.is_err(), "{quiet:?}");
    // Lowered at runtime, the next tick says stalled.
    thresholds.lock().unwrap().silence = Duration::from_millis(300);
    let change = tokio::time::timeout(Duration::from_secs(3), changes.recv())
        .await
        .expect("a change in time")
        .expect("a change");
    assert_eq!(change.to, Health::Stalled);
    assert_eq!(change.thresholds_ms.silence, 300);
    assert!(change.evidence.text.contains("stall.silence=300ms"));
    assert!(handle.render().contains("stalled"));
    assert_eq!(handle.connections().len(), 1);
}

#[test]
fn the_clients_table_stays_aligned_for_every_state() {
    let mut d = Detector::new();
    for c in every_state() {
        d.conns.insert(c.conn, c);
    }
    let text = d.render(thresholds());
    let lines: Vec<&str> = text.lines().skip(1).collect();
    let header = lines[0];
    let at = |name: &str| {
        header
            .find(name)
            .unwrap_or_else(|| panic!("{name} in {header}"))
    };
    let columns = [
        "conn",
        "peer",
        "client id",
        "software",
        "state",
        "last request",
        "last response",
        "noresp/un/bad",
        "throttle",
        "versions",
    ];
    let reqs_end = at("reqs") + "reqs".len();
    let rows: Vec<&str> = lines[1..].to_vec();
    let conns: Vec<&ConnInfo> = d.connections().collect();
    assert_eq!(rows.len(), conns.len(), "{text}");
    let mut states = Vec::new();
    for (row, c) in rows.iter().zip(conns) {
        let cells = [
            c.conn.to_string(),
            c.peer.to_string(),
            c.client_id.clone().unwrap_or_else(|| "-".into()),
            c.software().unwrap_or_else(|| "-".into()),
            c.state(),
            "-".into(),
            "-".into(),
            "0/0/0".into(),
            "-".into(),
        ];
        for (name, cell) in columns.iter().zip(&cells) {
            let x = at(name);
            let rest = row.get(x..).unwrap_or("");
            let after = rest.get(cell.len()..).unwrap_or("x");
            assert!(
                rest.starts_with(cell.as_str())
                    && (after.is_empty() || after.starts_with(' '))
                    && (x == 0 || &row[x - 1..x] == " "),
                "{name} {cell:?} at column {x}:\n{text}"
            );
        }
        let reqs = c.requests.to_string();
        assert_eq!(
            &row[reqs_end - reqs.len() - 1..=reqs_end],
            format!(" {reqs} "),
            "reqs right-aligned:\n{text}"
        );
        states.push(c.state());
    }
    for health in Health::ALL {
        for suffix in ["", ",closed", ",closed*"] {
            let state = format!("{health}{suffix}");
            assert!(states.contains(&state), "{state} in\n{text}");
            assert!(state.len() <= ConnInfo::state_width());
        }
    }
}

/// Single records are remembered only from Produce requests whose response was doubtful (the
/// only sends a record can be judged resent against); a clean stream leaves one entry per batch
/// and none per record, so what the detector keeps does not grow with the records carried.
#[test]
fn records_are_remembered_only_after_a_doubtful_response() {
    let mut d = Detector::new();
    let t = thresholds();
    for i in 0..20 {
        let ex = exchange(
            i + 1,
            1,
            5000,
            0,
            3,
            i as i32,
            produce_request(3, i as i32, "app", &batch_bytes(50, None, i as i64 * 100)),
            Some(produce_response(3, i as i32, false)),
            T0 + i as i64 * S,
        );
        assert!(d.on_exchange(&ex, t).is_empty());
    }
    let records = |d: &Detector| {
        d.batches
            .keys()
            .filter(|(_, k)| matches!(k, BatchKey::Record(_)))
            .count()
    };
    assert_eq!(d.batches.len(), 20, "one entry per batch");
    assert_eq!(records(&d), 0);
    assert!(d.record_clients.is_empty());
    // An undecodable response: its request's records are remembered.
    let doubtful = batch_bytes(3, None, 7_000);
    let ex = exchange(
        21,
        2,
        5001,
        0,
        3,
        0,
        produce_request(3, 0, "app", &doubtful),
        Some(produce_response(3, 0, true)),
        T0 + 30 * S,
    );
    d.on_exchange(&ex, t);
    assert_eq!(records(&d), 3);
    // One of them sent again with a clean answer: judged resent once, then forgotten (a later
    // send of the same record after that clean answer is an application's choice).
    let again = batch_bytes(1, None, 7_000);
    let ex = exchange(
        22,
        3,
        5002,
        0,
        3,
        0,
        produce_request(3, 0, "app", &again),
        Some(produce_response(3, 0, false)),
        T0 + 31 * S,
    );
    let ch = d.on_exchange(&ex, t);
    assert_eq!(ch.len(), 1, "{ch:?}");
    assert_eq!(ch[0].to, Health::Retrying);
    assert_eq!(records(&d), 2);
    // The same batch as #22 on another connection: a whole batch sent again after its clean
    // answer (by CRC); its record no longer counts, as #22's clean send replaced the doubtful one.
    let ex = exchange(
        23,
        4,
        5003,
        0,
        3,
        1,
        produce_request(3, 1, "app", &batch_bytes(1, None, 7_000)),
        Some(produce_response(3, 1, false)),
        T0 + 32 * S,
    );
    let ch = d.on_exchange(&ex, t);
    assert_eq!(ch.len(), 1, "{ch:?}");
    let text = &ch[0].evidence.text;
    assert!(text.contains("crc=0x"), "{text}");
    assert!(!text.contains("records were sent before"), "{text}");
    assert_eq!(ch[0].evidence.earlier_exchange, Some(22));
}

/// A Produce answered with frames that both read cleanly is read by walks of them, which read
/// what its dissection reads: the record sets with their topics and partitions (empty and null
/// sets left out), and whether the response carries an error code. One whose response does not
/// read cleanly (bytes left over, throttle_time_ms moved) is left to the dissection.
#[test]
fn a_clean_produce_is_walked_as_its_dissection_reads() {
    use chronik_protocol::test_frames::response_frame;
    let (one, two) = (
        batch_bytes(3, None, T0),
        batch_bytes(2, Some((7, 0, 4)), T0),
    );
    let partition = |index: i32, set: Option<&[u8]>| {
        PartitionProduceData::default()
            .with_index(index)
            .with_records(set.map(Bytes::copy_from_slice))
    };
    let topic = |name: &'static str, partitions| {
        TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(name)))
            .with_partition_data(partitions)
    };
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            topic(
                "a",
                vec![
                    partition(0, Some(&one)),
                    partition(1, Some(&[])),
                    partition(2, None),
                ],
            ),
            topic(
                "b",
                vec![partition(5, Some(&two)), partition(6, Some(&one))],
            ),
        ]);
    let resp = |error: i16| {
        ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("a")))
            .with_partition_responses(vec![
                PartitionProduceResponse::default().with_index(0),
                PartitionProduceResponse::default()
                    .with_index(1)
                    .with_error_code(error),
            ])])
    };
    let (mut walked, mut left) = (0, 0);
    for version in 3..=11 {
        let request = request_frame(0, version, 9, Some("app"), &req);
        let mut extra = response_frame(version, 9, &resp(0));
        extra.push(0);
        let size = (extra.len() - 4) as i32;
        extra[..4].copy_from_slice(&size.to_be_bytes());
        let mut responses = vec![
            (response_frame(version, 9, &resp(0)), true),
            (response_frame(version, 9, &resp(6)), true),
            (extra, false),
        ];
        if version <= 8 {
            responses.push((produce_response(version, 9, true), false));
        }
        for (response, clean) in responses {
            let ex = exchange(
                1,
                1,
                5000,
                0,
                version,
                9,
                request.clone(),
                Some(response),
                T0,
            );
            let d = ex.dissect_with(Limits::WITHOUT_RECORDS);
            let from_tree = ProduceRead::dissected(&ex, &d);
            assert_eq!(from_tree.sets.len(), 3, "v{version}");
            match ProduceRead::walked(&ex) {
                Some(read) => {
                    assert!(
                        clean,
                        "v{version}: walked a response that does not read cleanly"
                    );
                    assert_eq!(read, from_tree, "v{version}");
                    walked += 1;
                }
                None => {
                    assert!(!clean, "v{version}: a clean Produce not walked");
                    assert!(from_tree.fault.is_some(), "v{version}");
                    left += 1;
                }
            }
        }
    }
    assert_eq!((walked, left), (18, 15));
    // Not answered: left to the dissection.
    let request = request_frame(0, 9, 9, Some("app"), &req);
    let ex = exchange(1, 1, 5000, 0, 9, 9, request, None, T0);
    assert_eq!(ProduceRead::walked(&ex), None);
}
