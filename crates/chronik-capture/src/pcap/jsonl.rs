//! chronik-tui's own JSON lines read back: what `--record FILE.jsonl`, the UI's `w` and
//! `--headless --json` write ([`JsonLinesExporter`](super::export::JsonLinesExporter)). Each
//! exchange line carries both frames in hex (`request.frame_hex`, `response.frame_hex`) and what
//! the source knew (connection, peer, times, status, notes, placement, framing); connection
//! events come as `{"kind":"conn_event",…}` lines. Markers and the stall detector's
//! `client_state` lines are passed over, as are the decoded trees: the frames are dissected
//! again.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::Value as Json;

use crate::{
    ClosedBy, ConnEvent, ConnEventKind, ConnShares, Exchange, Framing, PlacementUsed, Status, Store,
};
use chronik_protocol::{DecodeError, ThrottlePlacement};

/// Whether a file looks like JSON lines rather than a capture: its first byte that is not
/// white space is `{`.
pub fn looks_like_json_lines(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 256];
    let n = f.read(&mut head).unwrap_or(0);
    head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// What a JSON lines file held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Contents {
    pub exchanges: usize,
    pub conn_events: usize,
    /// Lines passed over: markers, client states.
    pub skipped: usize,
}

/// Reads a JSON lines file into the store: every exchange and connection event, in the file's
/// order. A line that is not one of chronik-tui's stops reading with an error naming the file
/// and the line; what came before it is in the store.
pub fn read_file(path: &Path, store: &Store) -> Result<Contents, String> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
    read(std::io::BufReader::new(file), &name, store)
}

/// [`read_file`] from any reader; `name` names it in errors.
pub fn read(input: impl BufRead, name: &str, store: &Store) -> Result<Contents, String> {
    let mut got = Contents::default();
    let mut shares = ConnShares::default();
    for (i, line) in input.lines().enumerate() {
        let fail = |what: String| format!("{name}: line {}: {what}", i + 1);
        let line = line.map_err(|e| fail(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Json = serde_json::from_str(&line).map_err(|e| fail(format!("not JSON: {e}")))?;
        match v["kind"].as_str() {
            Some("conn_event") => {
                store.push_conn_event(conn_event(&v).map_err(fail)?);
                got.conn_events += 1;
            }
            Some("marker" | "client_state" | "control") => got.skipped += 1,
            Some(other) => {
                return Err(fail(format!(
                    "a {other:?} line is not one chronik-tui writes"
                )))
            }
            None => {
                store.push(
                    exchange(&v, &mut shares).map_err(|e| fail(format!("not an exchange: {e}")))?,
                );
                got.exchanges += 1;
            }
        }
    }
    if got.exchanges == 0 && got.conn_events == 0 {
        return Err(format!("{name}: no exchanges in this JSON lines file"));
    }
    Ok(got)
}

fn addr(v: &Json, key: &str) -> Result<SocketAddr, String> {
    v[key]
        .as_str()
        .ok_or_else(|| format!("no {key}"))?
        .parse()
        .map_err(|_| format!("{key} is not an address"))
}

fn int(v: &Json, key: &str) -> Result<i64, String> {
    v[key].as_i64().ok_or_else(|| format!("no {key}"))
}

fn text(v: &Json, key: &str) -> Option<String> {
    v[key].as_str().map(str::to_string)
}

fn conn_event(v: &Json) -> Result<ConnEvent, String> {
    let kind = match v["event"].as_str() {
        Some("opened") => ConnEventKind::Opened,
        Some("closed") => ConnEventKind::Closed {
            by: match v["by"].as_str() {
                Some("broker") => ClosedBy::Broker,
                _ => ClosedBy::Client,
            },
            reason: text(v, "reason").unwrap_or_default(),
        },
        _ => return Err("a conn_event without an event".into()),
    };
    Ok(ConnEvent {
        conn: int(v, "conn")? as u64,
        peer: addr(v, "peer")?,
        at: int(v, "at")?,
        kind,
    })
}

/// The frame of `side` (`request`/`response`) from its hex, if it is there.
fn frame(v: &Json, side: &str) -> Result<Option<Vec<u8>>, String> {
    let Some(hex) = v[side].get("frame_hex").and_then(Json::as_str) else {
        return Ok(None);
    };
    if hex.len() % 2 != 0 {
        return Err(format!("{side}.frame_hex has an odd length"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map(Some)
        .map_err(|_| format!("{side}.frame_hex is not hex"))
}

fn status(v: &Json) -> Result<Status, String> {
    let s = &v["status"];
    Ok(match s["kind"].as_str() {
        Some("answered") => Status::Answered,
        Some("no_response") => Status::NoResponse,
        Some("unanswered") => Status::Unanswered,
        Some("malformed") => {
            let e = &s["error"];
            Status::malformed(DecodeError {
                offset: e["offset"].as_u64().unwrap_or(0) as usize,
                path: text(e, "path").unwrap_or_default(),
                message: text(e, "message").unwrap_or_default(),
            })
        }
        Some("refused") => Status::refused(text(s, "reason").unwrap_or_default()),
        _ => return Err("no status".into()),
    })
}

fn placement(v: &Json) -> Option<PlacementUsed> {
    let p = v.get("placement")?;
    let placement: ThrottlePlacement = p["placement"].as_str()?.parse().ok()?;
    let rule = p["rule"].as_array().and_then(|r| {
        Some((
            r.first()?.as_u64()? as usize,
            r.get(1)?.as_str()?.to_string(),
        ))
    });
    Some(PlacementUsed { placement, rule })
}

/// The exchange of line `v`; its connection's addresses and client id shared through `shares`
/// with the connection's other exchanges.
fn exchange(v: &Json, shares: &mut ConnShares) -> Result<Exchange, String> {
    let conn = int(v, "conn")? as u64;
    let server = v.get("server").and_then(|_| addr(v, "server").ok());
    let endpoints = shares.endpoints(conn, addr(v, "peer")?, server);
    let mut ex = Exchange::new(conn, endpoints, int(v, "request_at")?, status(v)?);
    ex.set_client_id(shares.client_id(conn, v["client_id"].as_str()));
    ex.api_key = int(v, "api_key")? as i16;
    ex.api_version = int(v, "api_version")? as i16;
    ex.correlation_id = int(v, "correlation_id")? as i32;
    ex.set_frames(
        frame(v, "request")?.unwrap_or_default(),
        frame(v, "response")?,
    );
    ex.set_response_at(v["response_at"].as_i64());
    ex.set_notes(
        v["notes"]
            .as_array()
            .map(|n| {
                n.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    );
    ex.set_placement(placement(v));
    ex.framing = match v["framing"].as_str() {
        Some("sasl_token") => Framing::SaslToken,
        _ => Framing::Kafka,
    };
    Ok(ex)
}

#[cfg(test)]
mod tests {
    use super::super::export::JsonLinesExporter;
    use super::*;
    use crate::{Endpoints, StoreLimits, TimelineItem};
    use std::sync::Arc;

    use chronik_protocol::frame::with_size_prefix as frame;

    fn sample() -> Vec<Exchange> {
        let peer: SocketAddr = "127.0.0.1:50001".parse().unwrap();
        let server = Some("127.0.0.1:9092".parse().unwrap());
        let mut a = Exchange::new(1, Endpoints::shared(peer, server), 1_000, Status::Answered);
        a.set_client_id(Some(Arc::new("c".into())));
        a.api_key = 0;
        a.api_version = 7;
        a.correlation_id = 4;
        a.set_request(frame(&[0, 0, 0, 7, 0, 0, 0, 4, 0, 1, b'c', 1, 2, 3]));
        a.set_response(Some(frame(&[0, 0, 0, 4, 9, 9])));
        a.set_response_at(Some(1_500));
        a.set_notes(vec!["a note".into()]);
        a.set_placement(Some(PlacementUsed {
            placement: ThrottlePlacement::Front,
            rule: Some((1, "software=x*:front".into())),
        }));
        let mut b = Exchange::new(
            1,
            Endpoints::of(peer),
            2_000,
            Status::malformed(DecodeError {
                offset: 4,
                path: "kafka.request_header".into(),
                message: "short".into(),
            }),
        );
        b.set_request(frame(&[0, 1]));
        let mut c = Exchange::new(2, Endpoints::of(peer), 3_000, Status::Answered);
        c.framing = Framing::SaslToken;
        c.api_key = 36;
        c.set_request(frame(b"\0alice\0pw"));
        c.set_response(Some(frame(b"")));
        c.set_response_at(Some(3_100));
        vec![a, b, c]
    }

    #[test]
    fn what_the_exporter_writes_reads_back_the_same() {
        let mut w = JsonLinesExporter::new(Vec::new());
        w.conn_event(&ConnEvent {
            conn: 1,
            peer: "127.0.0.1:50001".parse().unwrap(),
            at: 900,
            kind: ConnEventKind::Opened,
        })
        .unwrap();
        for ex in sample() {
            w.exchange(&ex).unwrap();
        }
        w.marker(&crate::Marker {
            id: 1,
            at: 2_500,
            after_exchange: 2,
            text: "placement: front (was spec)".into(),
        })
        .unwrap();
        w.conn_event(&ConnEvent {
            conn: 1,
            peer: "127.0.0.1:50001".parse().unwrap(),
            at: 4_000,
            kind: ConnEventKind::Closed {
                by: ClosedBy::Broker,
                reason: "bad frame".into(),
            },
        })
        .unwrap();
        let text = w.finish().unwrap();
        let store = Store::new(StoreLimits::default());
        let got = read(&text[..], "x.jsonl", &store).unwrap();
        assert_eq!(
            got,
            Contents {
                exchanges: 3,
                conn_events: 2,
                skipped: 1
            }
        );
        let back: Vec<Exchange> = store.snapshot().iter().map(|e| (**e).clone()).collect();
        for (a, b) in sample().iter().zip(&back) {
            // Everything the exporter wrote, as it was (ids are the store's).
            assert_eq!(
                serde_json::to_value(a).unwrap(),
                serde_json::to_value({
                    let mut b = b.clone();
                    b.id = 0;
                    b
                })
                .unwrap()
            );
            assert_eq!(a.request(), b.request());
            assert_eq!(a.response(), b.response());
        }
        let events: Vec<ConnEvent> = store
            .timeline()
            .into_iter()
            .filter_map(|t| match t {
                TimelineItem::ConnEvent(e) => Some((*e).clone()),
                _ => None,
            })
            .collect();
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[1].kind,
            ConnEventKind::Closed {
                by: ClosedBy::Broker,
                reason: "bad frame".into()
            }
        );
    }

    #[test]
    fn lines_that_are_not_chronik_tuis_are_refused_with_their_number() {
        let store = Store::new(StoreLimits::default());
        let e = read(&b"\n{\"a\": 1}\n"[..], "x.jsonl", &store).unwrap_err();
        assert_eq!(e, "x.jsonl: line 2: not an exchange: no conn");
        let e = read(&b"{oops\n"[..], "x.jsonl", &store).unwrap_err();
        assert!(e.starts_with("x.jsonl: line 1: not JSON: "), "{e}");
        let e = read(&b"{\"kind\":\"packet\"}\n"[..], "x.jsonl", &store).unwrap_err();
        assert_eq!(
            e,
            "x.jsonl: line 1: a \"packet\" line is not one chronik-tui writes"
        );
        let e = read(&b"\n\n"[..], "x.jsonl", &store).unwrap_err();
        assert_eq!(e, "x.jsonl: no exchanges in this JSON lines file");
    }
}
