//! A capture read for replaying: its exchanges in the order `decode` lists them, each
//! connection's requests in the order they were sent, and what the session implies about the
//! broker it ran against (its topics, the SASL/PLAIN credentials that worked).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use crate::capture::pcap::jsonl;
use crate::capture::pcap::kafka_stream::StreamOptions;
use crate::capture::pcap::source::{self, Input};
use crate::capture::{ClosedBy, ConnEventKind, Exchange, Framing, Status, Store, StoreLimits};
use crate::protocol::{self, api_key, errors, Field, Value};

/// A capture, read.
pub struct Capture {
    /// Every exchange, in the store's order (as `decode` lists them).
    pub exchanges: Vec<Arc<Exchange>>,
    /// Connections by id.
    pub conns: BTreeMap<u64, ConnPlan>,
    /// What reading reported (a file cut short): the replay still runs on what was read.
    pub errors: Vec<String>,
}

impl Capture {
    /// Every request the capture holds, as indices into [`Capture::exchanges`], in the order
    /// its clients sent them (by time, then by the capture's own order).
    pub fn requests_in_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (self.conns.values())
            .flat_map(|c| c.steps.iter().copied())
            .collect();
        order.sort_by_key(|i| (self.exchanges[*i].request_at, self.exchanges[*i].id));
        order
    }
}

/// One connection of the capture.
#[derive(Debug, Clone, Default)]
pub struct ConnPlan {
    pub id: u64,
    /// When the capture saw it open (µs since the epoch), if it did.
    pub opened_at: Option<i64>,
    /// When and by whom it was closed, if the capture saw it.
    pub closed: Option<(i64, ClosedBy)>,
    /// Indices into [`Capture::exchanges`] of the exchanges whose request the capture holds,
    /// in the order the requests were sent.
    pub steps: Vec<usize>,
}

/// Reads a pcap, pcapng or chronik-tui JSON lines file (the last told by its first byte, `{`).
/// A file that cannot be read at all is an error naming it; one cut short is read as far as it
/// goes, with the reason in [`Capture::errors`].
pub fn read(path: &Path, stream: StreamOptions) -> Result<Capture, String> {
    let store = Store::new(StoreLimits {
        max_exchanges: usize::MAX,
        max_bytes: usize::MAX,
    });
    let mut errors = Vec::new();
    if path.as_os_str() != "-" && jsonl::looks_like_json_lines(path) {
        jsonl::read_file(path, &store)?;
    } else {
        let input = Input::open(path)?;
        let progress = input.progress();
        source::read_input(input, stream, store.clone(), progress.clone(), None);
        errors = progress.errors();
    }
    Ok(plan(&store, errors))
}

/// Orders a store's exchanges into connections.
pub fn plan(store: &Store, errors: Vec<String>) -> Capture {
    let exchanges = store.snapshot();
    let mut conns: BTreeMap<u64, ConnPlan> = BTreeMap::new();
    for ev in store.conn_events() {
        let c = conns.entry(ev.conn).or_insert_with(|| ConnPlan {
            id: ev.conn,
            ..ConnPlan::default()
        });
        match &ev.kind {
            ConnEventKind::Opened => c.opened_at = Some(ev.at),
            ConnEventKind::Closed { by, .. } => c.closed = Some((ev.at, *by)),
        }
    }
    for (i, ex) in exchanges.iter().enumerate() {
        if !ex.request_seen() {
            continue;
        }
        conns
            .entry(ex.conn)
            .or_insert_with(|| ConnPlan {
                id: ex.conn,
                ..ConnPlan::default()
            })
            .steps
            .push(i);
    }
    for c in conns.values_mut() {
        // Requests go out in the order they arrived; two in one packet keep the store's order.
        c.steps
            .sort_by_key(|i| (exchanges[*i].request_at, exchanges[*i].id));
    }
    conns.retain(|_, c| !c.steps.is_empty());
    Capture {
        exchanges,
        conns,
        errors,
    }
}

/// A topic the session used: its partition count (as far as the capture shows it) and the id
/// the capture's broker gave it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicSeen {
    pub partitions: i32,
    pub id: Option<String>,
}

/// The topics the session implies existed before it started: every topic a response names
/// without an error (Metadata with its partitions, Produce, Fetch and ListOffsets with the
/// partitions they served), less those the session made itself: created with CreateTopics, or
/// missing from a Metadata answer about every topic before the topic first appears (the
/// broker then created it on the way, as the live one will).
pub fn topics(capture: &Capture) -> BTreeMap<String, TopicSeen> {
    let mut seen: BTreeMap<String, TopicSeen> = BTreeMap::new();
    let mut by_id: BTreeMap<String, String> = BTreeMap::new();
    let mut created: BTreeSet<String> = BTreeSet::new();
    // When each topic first appears, and every answer listing all topics, with when.
    let mut first: BTreeMap<String, i64> = BTreeMap::new();
    let mut listings: Vec<(i64, BTreeSet<String>)> = Vec::new();
    let answered = capture
        .exchanges
        .iter()
        .filter(|e| e.framing == Framing::Kafka && e.status == Status::Answered);
    // Metadata first: it names topics by id too, which Fetch v13+ uses alone.
    let (meta, rest): (Vec<_>, Vec<_>) = answered.partition(|e| e.api_key == api_key::METADATA);
    for ex in meta.iter().chain(&rest) {
        let Some(resp) = ex.dissect_response() else {
            continue;
        };
        let body = resp
            .root
            .children
            .iter()
            .find(|f| f.name().ends_with(".response"));
        let Some(body) = body else { continue };
        let before: BTreeSet<String> = seen.keys().cloned().collect();
        match ex.api_key {
            api_key::METADATA => {
                if asks_for_every_topic(ex) {
                    let names = elements(body, "metadata.response.topics")
                        .filter_map(|t| text(t, "name"))
                        .collect();
                    listings.push((ex.request_at, names));
                }
                for t in elements(body, "metadata.response.topics") {
                    if int(t, "error_code") != Some(errors::NONE.into()) {
                        continue;
                    }
                    let Some(name) = text(t, "name") else {
                        continue;
                    };
                    let n = elements(t, "metadata.response.topics.partitions").count() as i32;
                    let entry = seen.entry(name.clone()).or_default();
                    entry.partitions = entry.partitions.max(n);
                    if let Some(id) = uuid(t, "topic_id") {
                        by_id.insert(id.clone(), name);
                        entry.id = Some(id);
                    }
                }
            }
            api_key::PRODUCE => served(
                body,
                "produce.response.responses",
                "partition_responses",
                "index",
                &by_id,
                &mut seen,
            ),
            api_key::FETCH => served(
                body,
                "fetch.response.responses",
                "partitions",
                "partition_index",
                &by_id,
                &mut seen,
            ),
            api_key::LIST_OFFSETS => served(
                body,
                "list_offsets.response.topics",
                "partitions",
                "partition_index",
                &by_id,
                &mut seen,
            ),
            api_key::CREATE_TOPICS => {
                for t in elements(body, "create_topics.response.topics") {
                    if int(t, "error_code") == Some(errors::NONE.into()) {
                        created.extend(text(t, "name"));
                    }
                }
            }
            _ => {}
        }
        for name in seen.keys().filter(|n| !before.contains(*n)) {
            first.insert(name.clone(), ex.request_at);
        }
    }
    seen.retain(|name, _| {
        let made_on_the_way = listings
            .iter()
            .any(|(at, names)| Some(at) < first.get(name) && !names.contains(name));
        !created.contains(name) && !made_on_the_way
    });
    seen
}

/// Whether a Metadata request asks about every topic: a null list (v1+), or an empty one (v0).
fn asks_for_every_topic(ex: &Exchange) -> bool {
    let Some(req) = ex.dissect_request() else {
        return false;
    };
    match req.root.find("metadata.request.topics") {
        Some(t) if t.value == Value::Null => true,
        Some(t) => ex.api_version == 0 && !t.children.iter().any(|c| c.id == t.id),
        None => false,
    }
}

/// Topics and partitions a Produce, Fetch or ListOffsets response served without an error.
fn served(
    body: &Field,
    topics: &str,
    partitions: &str,
    index: &str,
    by_id: &BTreeMap<String, String>,
    seen: &mut BTreeMap<String, TopicSeen>,
) {
    for t in elements(body, topics) {
        let name = text(t, "name")
            .or_else(|| text(t, "topic"))
            .or_else(|| uuid(t, "topic_id").and_then(|id| by_id.get(&id).cloned()));
        let Some(name) = name else { continue };
        let parts = format!("{topics}.{partitions}");
        let top = elements(t, &parts)
            .filter(|p| int(p, "error_code") == Some(errors::NONE.into()))
            .filter_map(|p| int(p, index))
            .max();
        if let Some(top) = top {
            let entry = seen.entry(name).or_default();
            entry.partitions = entry.partitions.max(top as i32 + 1);
        }
    }
}

/// The elements of the array field `name` among `parent`'s children.
fn elements<'a>(parent: &'a Field, name: &'a str) -> impl Iterator<Item = &'a Field> + 'a {
    parent
        .children
        .iter()
        .filter(move |f| f.name() == name)
        .flat_map(move |arr| arr.children.iter().filter(move |e| e.name() == name))
}

fn child<'a>(f: &'a Field, short: &str) -> Option<&'a Field> {
    f.children.iter().find(|c| c.short_name() == short)
}

fn int(f: &Field, short: &str) -> Option<i64> {
    child(f, short).and_then(Field::as_int)
}

fn text(f: &Field, short: &str) -> Option<String> {
    match &child(f, short)?.value {
        Value::Str(s) => Some(s.clone()),
        _ => None,
    }
}

fn uuid(f: &Field, short: &str) -> Option<String> {
    match &child(f, short)?.value {
        Value::Uuid(u) if u != "00000000-0000-0000-0000-000000000000" => Some(u.clone()),
        _ => None,
    }
}

/// The SASL/PLAIN user and password of the first authentication the capture's broker
/// accepted: a SaslAuthenticate answered without an error, or a bare token after SaslHandshake
/// v0 that was answered.
pub fn sasl_plain(capture: &Capture) -> Option<(String, String)> {
    capture.exchanges.iter().find_map(|ex| {
        if ex.status != Status::Answered {
            return None;
        }
        let token = match ex.framing {
            Framing::SaslToken => ex.request().get(4..)?.to_vec(),
            Framing::Kafka if ex.api_key == api_key::SASL_AUTHENTICATE => {
                let resp = ex.dissect_response()?;
                let ok = resp
                    .root
                    .find("sasl_authenticate.response.error_code")
                    .and_then(Field::as_int)
                    == Some(errors::NONE.into());
                if !ok {
                    return None;
                }
                let req = ex.dissect_request()?;
                let f = req.root.find("sasl_authenticate.request.auth_bytes")?;
                let Value::Bytes { start, len } = f.value else {
                    return None;
                };
                ex.request()
                    .get(start as usize..(start + len) as usize)?
                    .to_vec()
            }
            Framing::Kafka => return None,
        };
        let p = protocol::sasl::parse_plain(&token)?;
        Some((
            p.authcid.to_string(),
            String::from_utf8_lossy(p.password).into_owned(),
        ))
    })
}
