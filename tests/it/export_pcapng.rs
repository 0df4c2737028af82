//! The pcapng export read back by tshark: real traffic through the embedded broker (kcat
//! producing with gzip and consuming in a group, a raw-socket client producing a 200 KiB record
//! and an acks=0 produce, on IPv4 and on an IPv6 listener) written out with the exchanges,
//! connection events and a marker, then checked with tshark's TCP checksum validation: nothing
//! malformed, no expert errors, no TCP analysis complaints, the Kafka PDUs exactly the exchanges
//! written (same bytes, api keys, versions and correlation ids, in order per connection), the
//! big record's frame reassembled whole, every exchange's comment on its connection. And the JSON
//! lines export: one object per exchange with the same ids.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use chronik_tui::broker::{self, BrokerConfig, BrokerHandle};
use chronik_tui::capture::pcap::export::{JsonLinesExporter, PcapngExporter};
use chronik_tui::capture::{ConnEventKind, Store, StoreLimits, TimelineItem};
use chronik_tui::settings::{Knobs, Settings};

/// The size of the big record's value.
const BIG: usize = 200 * 1024;

async fn start(listen: SocketAddr) -> std::io::Result<(BrokerHandle, Arc<Store>)> {
    let store = Store::new(StoreLimits::default());
    let config = BrokerConfig {
        listen,
        ..BrokerConfig::default()
    };
    let h = broker::start(config, store.clone(), Settings::new(Knobs::default()))
        .await
        .map_err(std::io::Error::other)?;
    Ok((h, store))
}

/// A client on a raw socket, encoding with kafka-protocol.
struct RawClient {
    s: TcpStream,
    corr: i32,
}

impl RawClient {
    async fn send<Req: Encodable>(&mut self, key: ApiKey, version: i16, req: &Req) {
        self.corr += 1;
        let frame = common::request_frame(key, version, self.corr, "export-test", req);
        self.s.write_all(&frame).await.unwrap();
    }

    /// Reads one response; returns its correlation id.
    async fn recv(&mut self) -> i32 {
        let mut len = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), self.s.read_exact(&mut len))
            .await
            .expect("a response within 10 s")
            .expect("response size");
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut body).await.unwrap();
        i32::from_be_bytes(body[..4].try_into().unwrap())
    }

    async fn call<Req: Encodable>(&mut self, key: ApiKey, version: i16, req: &Req) {
        self.send(key, version, req).await;
        assert_eq!(self.recv().await, self.corr, "{key:?} answered");
    }
}

/// A Produce of one record holding `value`.
fn produce(topic: &str, acks: i16, value: Vec<u8>) -> ProduceRequest {
    common::frame::produce_req(topic, 0, acks, common::frame::records(&[value], 2, None))
}

/// ApiVersions, Metadata (creating the topic), a Produce of one 200 KiB record, a Produce with
/// acks=0 (no response) and one more Metadata. The client stays connected (the export closes
/// its connection at the end).
async fn raw_session(addr: SocketAddr, topic: &str) -> RawClient {
    let mut c = RawClient {
        s: TcpStream::connect(addr).await.expect("connect"),
        corr: 0,
    };
    c.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
        .await;
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_string(topic.into()))))]))
        .with_allow_auto_topic_creation(true);
    c.call(ApiKey::Metadata, 4, &metadata).await;
    let big: Vec<u8> = (0..BIG).map(|i| (i * 7 % 251) as u8).collect();
    c.call(ApiKey::Produce, 7, &produce(topic, 1, big)).await;
    c.send(
        ApiKey::Produce,
        7,
        &produce(topic, 0, b"fire and forget".to_vec()),
    )
    .await;
    c.call(ApiKey::Metadata, 4, &metadata).await;
    c
}

/// Waits until every connection the store saw open, except `keep_open` of them, has closed.
async fn wait_for_closes(store: &Store, keep_open: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = store.conn_events();
        let opened = events
            .iter()
            .filter(|e| e.kind == ConnEventKind::Opened)
            .count();
        if opened - events.len().saturating_sub(opened) <= keep_open {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "connections still open after 10 s: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn export(store: &Store, server: SocketAddr, pcapng: &Path, jsonl: &Path) {
    let mut p = PcapngExporter::new(std::fs::File::create(pcapng).unwrap(), server).unwrap();
    let mut j = JsonLinesExporter::new(std::fs::File::create(jsonl).unwrap());
    for item in store.timeline() {
        match item {
            TimelineItem::Exchange(ex) => {
                p.exchange(&ex).unwrap();
                j.exchange(&ex).unwrap();
            }
            TimelineItem::ConnEvent(ev) => {
                p.conn_event(&ev).unwrap();
                j.conn_event(&ev).unwrap();
            }
            TimelineItem::Marker(m) => {
                p.marker(&m).unwrap();
                j.marker(&m).unwrap();
            }
        }
    }
    p.finish().unwrap();
    j.finish().unwrap();
}

/// One packet as tshark decoded it.
struct Packet {
    number: u64,
    stream: u64,
    src_port: u16,
    comments: Vec<String>,
    /// The Kafka PDUs that end in this packet: (bytes, decoded tree, its fields with offsets
    /// inside the PDU).
    pdus: Vec<(Vec<u8>, Json, Fields)>,
    layers: Json,
}

/// `(tshark name, offset inside the PDU, length, shown value)`.
type Fields = Vec<(String, usize, usize, String)>;

/// One value or a list of them (tshark's `--no-duplicate-keys` makes lists of repeated keys).
fn list(v: &Json) -> Vec<&Json> {
    match v {
        Json::Null => vec![],
        Json::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

fn str_field<'a>(v: &'a Json, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Json::as_str)
}

/// Runs tshark on the export with checksum validation on, decoding `port` as Kafka.
fn tshark(file: &Path, port: u16) -> Vec<Packet> {
    let json = common::tshark::json(
        file,
        port,
        &[
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
        ],
    );
    let mut packets = Vec::new();
    for p in json.as_array().expect("a list of packets") {
        let layers = p["_source"]["layers"].clone();
        let num = |v: Option<&str>| v.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        let mut comments = Vec::new();
        collect_comments(&layers, &mut comments);
        // kafka_raw is [hex, offset, length, mask, type], or a list of those.
        let raws: Vec<&Json> = match &layers["kafka_raw"] {
            Json::Array(a) if a.first().is_some_and(Json::is_array) => a.iter().collect(),
            Json::Null => vec![],
            one => vec![one],
        };
        let pdus = raws
            .into_iter()
            .zip(list(&layers["kafka"]))
            .map(|(raw, tree)| {
                let base = raw[1].as_u64().expect("kafka_raw position") as usize;
                (
                    common::tshark::hex(raw[0].as_str().expect("kafka_raw hex")),
                    tree.clone(),
                    common::tshark::fields_of(tree, base),
                )
            })
            .collect();
        packets.push(Packet {
            number: num(str_field(&layers["frame"], "frame.number")),
            stream: num(str_field(&layers["tcp"], "tcp.stream")),
            src_port: num(str_field(&layers["tcp"], "tcp.srcport")) as u16,
            comments,
            pdus,
            layers,
        });
    }
    packets
}

/// Every `frame.comment` under a packet's layers.
fn collect_comments(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::Object(m) => {
            for (k, x) in m {
                if k == "frame.comment" {
                    out.extend(list(x).iter().filter_map(|c| c.as_str()).map(String::from));
                } else {
                    collect_comments(x, out);
                }
            }
        }
        Json::Array(a) => a.iter().for_each(|x| collect_comments(x, out)),
        _ => {}
    }
}

/// Every (key path, value) under `v` whose key satisfies `pred`.
fn find_keys(v: &Json, pred: &dyn Fn(&str) -> bool, path: &str, out: &mut Vec<(String, Json)>) {
    match v {
        Json::Object(m) => {
            for (k, x) in m {
                let p = format!("{path}/{k}");
                if pred(k) {
                    out.push((p.clone(), x.clone()));
                }
                find_keys(x, pred, &p, out);
            }
        }
        Json::Array(a) => a.iter().for_each(|x| find_keys(x, pred, path, out)),
        _ => {}
    }
}

/// Wireshark's expert severities (epan/proto.h).
const PI_WARN: u64 = 0x0060_0000;
const PI_ERROR: u64 = 0x0080_0000;

/// A Kafka PDU's identity as tshark decoded it: (is request, api key, version, correlation id).
fn pdu_id(tree: &Json) -> (bool, i64, i64, i64) {
    let n = |k: &str| {
        str_field(tree, k)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(-99)
    };
    match str_field(tree, "kafka.request_key") {
        Some(_) => (
            true,
            n("kafka.request_key"),
            n("kafka.request.version"),
            n("kafka.correlation_id"),
        ),
        None => (
            false,
            n("kafka.response_key"),
            n("kafka.response.version"),
            n("kafka.correlation_id"),
        ),
    }
}

/// Whether all tshark found wrong in a packet is the Kafka dissector's "does not end at the pdu
/// length offset", on PDUs that each prove it is tshark 4.0's misreading of the JoinGroup /
/// SyncGroup BYTES fields (see `tshark::misread_by_16_bit_bytes_length`).
fn tshark_misreads_group_frames(p: &Packet, hits: &[(String, Json)]) -> bool {
    hits.iter().all(|(path, _)| path == "/kafka/_ws.malformed")
        && p.pdus.iter().any(|(_, tree, _)| complains(tree))
        && p.pdus.iter().all(|(bytes, tree, fields)| {
            let (is_request, key, version, _) = pdu_id(tree);
            !complains(tree)
                || common::tshark::misread_by_16_bit_bytes_length(
                    bytes,
                    is_request,
                    key as i16,
                    version as i16,
                    fields,
                )
        })
}

/// Whether tshark put an expert note or a malformed mark in a PDU's tree.
fn complains(tree: &Json) -> bool {
    let text = tree.to_string();
    text.contains("_ws.malformed") || text.contains("_ws.expert")
}

/// Checks everything tshark says about an exported session.
fn check_pcapng(file: &Path, store: &Store, server: SocketAddr) {
    let packets = tshark(file, server.port());
    let exchanges = store.snapshot();
    let keep = std::env::temp_dir().join(format!("export-pcapng-{}.pcapng", server.port()));
    let fail = |what: String| -> ! {
        let _ = std::fs::copy(file, &keep);
        panic!("{what} (capture kept as {})", keep.display());
    };

    // Nothing malformed, no expert errors, checksums checked and good, and TCP analysis finds
    // nothing wrong (no lost or unseen segments, retransmissions, window trouble).
    for p in &packets {
        let mut hits = Vec::new();
        find_keys(
            &p.layers,
            &|k| {
                k == "_ws.malformed" || k.starts_with("tcp.analysis.") && k != "tcp.analysis.flags"
            },
            "",
            &mut hits,
        );
        let mut experts = Vec::new();
        find_keys(&p.layers, &|k| k == "_ws.expert", "", &mut experts);
        for (path, e) in &experts {
            for e in list(e) {
                let severity = str_field(e, "_ws.expert.severity")
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                let in_tcp = path.starts_with("/tcp");
                if severity >= PI_ERROR || (in_tcp && severity >= PI_WARN) {
                    hits.push((path.clone(), e.clone()));
                }
            }
        }
        // tcp.analysis.* keys that only describe (acks, bytes in flight, initial RTT) are fine.
        hits.retain(|(path, _)| {
            ![
                "tcp.analysis.acks_frame",
                "tcp.analysis.ack_rtt",
                "tcp.analysis.initial_rtt",
                "tcp.analysis.bytes_in_flight",
                "tcp.analysis.push_bytes_sent",
            ]
            .iter()
            .any(|k| path.ends_with(k))
        });
        if !hits.is_empty() && !tshark_misreads_group_frames(p, &hits) {
            fail(format!("frame {}: {hits:?}", p.number));
        }
        for (layer, key) in [
            ("ip", "ip.checksum.status"),
            ("ipv6", ""),
            ("tcp", "tcp.checksum.status"),
        ] {
            if key.is_empty() || p.layers.get(layer).is_none() {
                continue;
            }
            // PROTO_CHECKSUM_E_GOOD is 1 (0 bad, 2 unverified).
            if str_field(&p.layers[layer], key) != Some("1") {
                fail(format!(
                    "frame {}: {key} = {:?}",
                    p.number,
                    p.layers[layer].get(key)
                ));
            }
        }
    }

    // Streams by client port; the exchanges by client port.
    let client_port_of = |p: &Packet| -> u16 {
        if p.src_port == server.port() {
            str_field(&p.layers["tcp"], "tcp.dstport")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        } else {
            p.src_port
        }
    };
    let port_of = |peer: &SocketAddr| peer.port();
    type Pdus = (Vec<(i64, i64, i64, Vec<u8>)>, Vec<(i64, Vec<u8>)>);
    let mut seen: BTreeMap<u16, Pdus> = BTreeMap::new();
    let mut streams: HashMap<u64, u16> = HashMap::new();
    for p in &packets {
        streams.entry(p.stream).or_insert_with(|| client_port_of(p));
        for (bytes, tree, _) in &p.pdus {
            let (is_request, key, version, corr) = pdu_id(tree);
            let entry = seen.entry(client_port_of(p)).or_default();
            if is_request {
                entry.0.push((key, version, corr, bytes.clone()));
            } else {
                entry.1.push((corr, bytes.clone()));
            }
        }
    }
    let mut expected: BTreeMap<u16, Pdus> = BTreeMap::new();
    for ex in &exchanges {
        let entry = expected.entry(port_of(&ex.peer())).or_default();
        if !ex.request().is_empty() {
            entry.0.push((
                i64::from(ex.api_key),
                i64::from(ex.api_version),
                i64::from(ex.correlation_id),
                ex.request().to_vec(),
            ));
        }
        if let Some(r) = ex.response() {
            entry.1.push((i64::from(ex.correlation_id), r.to_vec()));
        }
    }
    // One TCP stream per connection.
    let mut ports: Vec<u16> = streams.values().copied().collect();
    ports.sort_unstable();
    let mut want_ports: Vec<u16> = store
        .conn_events()
        .iter()
        .filter(|e| e.kind == ConnEventKind::Opened)
        .map(|e| port_of(&e.peer))
        .collect();
    want_ports.sort_unstable();
    if ports != want_ports {
        fail(format!(
            "TCP streams for client ports {ports:?}, connections {want_ports:?}"
        ));
    }
    // The same PDUs, byte for byte, in the same order per connection.
    let ids = |p: &Pdus| -> (Vec<(i64, i64, i64)>, Vec<i64>) {
        (
            p.0.iter().map(|(k, v, c, _)| (*k, *v, *c)).collect(),
            p.1.iter().map(|(c, _)| *c).collect(),
        )
    };
    for (port, want) in &expected {
        let got = seen.get(port).cloned().unwrap_or_default();
        if ids(&got) != ids(want) {
            fail(format!(
                "client port {port}: tshark saw requests/responses {:?}, exported {:?}",
                ids(&got),
                ids(want)
            ));
        }
        for (i, (g, w)) in got.0.iter().zip(&want.0).enumerate() {
            if g.3 != w.3 {
                fail(format!(
                    "client port {port}: request {i} differs from the exchange's bytes"
                ));
            }
        }
        for (i, (g, w)) in got.1.iter().zip(&want.1).enumerate() {
            if g.1 != w.1 {
                fail(format!(
                    "client port {port}: response {i} differs from the exchange's bytes"
                ));
            }
        }
    }
    // The big record's frame, reassembled whole from its segments.
    let big = exchanges
        .iter()
        .find(|e| e.api_key == 0 && e.request().len() > BIG)
        .expect("the big produce was captured");
    let whole = packets
        .iter()
        .flat_map(|p| p.pdus.iter().map(move |(b, _, _)| (p, b)))
        .find(|(_, b)| **b == big.request());
    let Some((carrier, _)) = whole else {
        fail(format!(
            "no PDU of {} bytes equal to the big request",
            big.request().len()
        ))
    };
    let mut segments = Vec::new();
    find_keys(&carrier.layers, &|k| k == "tcp.segment", "", &mut segments);
    let count = segments.iter().map(|(_, v)| list(v).len()).sum::<usize>();
    assert!(
        count >= big.request().len().div_ceil(65_000),
        "the big request reassembled from {count} segments"
    );
    // Every exchange's comment, on a packet of its connection.
    for ex in &exchanges {
        let head = format!("chronik-tui #{} ", ex.id);
        let on = packets
            .iter()
            .find(|p| p.comments.iter().any(|c| c.starts_with(&head)));
        match on {
            Some(p) if client_port_of(p) == port_of(&ex.peer()) => {}
            Some(p) => fail(format!(
                "comment {head:?} on frame {} of another connection",
                p.number
            )),
            None => fail(format!("no comment for exchange #{}", ex.id)),
        }
    }
    for m in store.markers_since(0) {
        assert!(
            packets
                .iter()
                .any(|p| p.comments.iter().any(|c| c.ends_with(&m.text))),
            "marker {:?} in a comment",
            m.text
        );
    }
    let requests = exchanges.iter().filter(|e| !e.request().is_empty()).count();
    let responses = exchanges.iter().filter(|e| e.response().is_some()).count();
    let pdus: usize = packets.iter().map(|p| p.pdus.len()).sum();
    assert_eq!(pdus, requests + responses, "Kafka PDUs tshark found");
    eprintln!(
        "export: {} exchanges, {} packets, {pdus} Kafka PDUs, {} TCP streams",
        exchanges.len(),
        packets.len(),
        streams.len()
    );
}

/// The JSON lines: one object per exchange, with the store's ids in its order, the events and
/// markers next to them.
fn check_json_lines(file: &Path, store: &Store) {
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<Json> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    let ids: Vec<u64> = lines
        .iter()
        .filter(|v| v.get("kind").is_none())
        .map(|v| v["id"].as_u64().expect("an exchange id"))
        .collect();
    let want: Vec<u64> = store.snapshot().iter().map(|e| e.id).collect();
    assert_eq!(ids, want);
    let events = lines.iter().filter(|v| v["kind"] == "conn_event").count();
    assert_eq!(events, store.conn_events().len());
    let markers = lines.iter().filter(|v| v["kind"] == "marker").count();
    assert_eq!(markers, store.markers_since(0).len());
    // Each exchange object is the headless one, with the frames' hex.
    for (line, ex) in lines
        .iter()
        .filter(|v| v.get("kind").is_none())
        .zip(store.snapshot())
    {
        assert_eq!(line["correlation_id"], ex.correlation_id);
        let hex: String = ex.request().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(line["request"]["frame_hex"], hex.as_str());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kcat_and_a_big_record_exported_read_back_by_tshark() {
    let (h, store) = start("127.0.0.1:0".parse().unwrap()).await.expect("broker");
    let addr = h.local_addr.to_string();
    let boot = addr.clone();
    tokio::task::spawn_blocking(move || {
        common::kcat(
            &["-P", "-b", &boot, "-t", "exported", "-z", "gzip", "-K:"],
            Some("k1:one\nk2:two\nk3:three\n"),
        );
        let out = common::kcat_group_consume(&boot, "export-group", "exported");
        assert!(out.contains("three"), "{out}");
    })
    .await
    .unwrap();
    store.push_marker("placement: front (was spec)".into());
    let raw = raw_session(h.local_addr, "big").await;
    wait_for_closes(&store, 1).await;

    let dir = tempfile::tempdir().unwrap();
    let (pcapng, jsonl) = (dir.path().join("s.pcapng"), dir.path().join("s.jsonl"));
    export(&store, h.local_addr, &pcapng, &jsonl);
    assert!(
        store
            .snapshot()
            .iter()
            .any(|e| e.client_id() == Some("rdkafka")),
        "kcat's exchanges captured"
    );
    check_pcapng(&pcapng, &store, h.local_addr);
    check_json_lines(&jsonl, &store);
    drop(raw);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ipv6_session_exported_read_back_by_tshark() {
    let (h, store) = match start("[::1]:0".parse().unwrap()).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("SKIPPED: no IPv6 loopback here ({e})");
            return;
        }
    };
    let addr = h.local_addr;
    let boot = addr.to_string();
    let listing = tokio::task::spawn_blocking(move || {
        common::kcat(
            &["-P", "-b", &boot, "-t", "six", "-z", "gzip"],
            Some("a\nb\n"),
        );
        common::kcat(&["-L", "-b", &boot, "-t", "six"], None)
    })
    .await
    .unwrap();
    assert!(listing.contains("\"six\""), "{listing}");
    let raw = raw_session(addr, "six-big").await;
    wait_for_closes(&store, 1).await;
    assert!(store
        .snapshot()
        .iter()
        .all(|e| e.peer().to_string().starts_with("[::1]:")));

    let dir = tempfile::tempdir().unwrap();
    let (pcapng, jsonl) = (dir.path().join("s.pcapng"), dir.path().join("s.jsonl"));
    export(&store, addr, &pcapng, &jsonl);
    check_pcapng(&pcapng, &store, addr);
    check_json_lines(&jsonl, &store);
    // Every packet is IPv6.
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcapng)
        .args(["-Y", "!ipv6", "-T", "fields", "-e", "frame.number"])
        .output()
        .expect("tshark");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "packets that are not IPv6"
    );
    drop(raw);
    h.shutdown().await;
}
