//! The accept loop and the per-connection task: frames in, dissection first, then decoding with
//! kafka-protocol, a handler, the response out; every exchange captured in the store.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::handlers::{self, Outcome};
use super::inject::{self, FaultPlan};
use super::state::{Conn, Shared};
use crate::frame::{read_frame, FrameError};
use crate::settings::ClientIdentity;
use chronik_capture::{now_micros, ClosedBy, ConnEvent, ConnEventKind, Exchange, Status};
use chronik_protocol::dissect::peek_request_header;
use chronik_protocol::frame::with_size_prefix;
use chronik_protocol::{api_key, dissect_request_with, errors, DecodeError, Limits, Value};

/// Accepts connections until shutdown.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let id = shared.store.new_conn_id();
                    let _ = stream.set_nodelay(true);
                    tracing::debug!(conn = id, %peer, "accepted");
                    tokio::spawn(serve(stream, peer, id, shared.clone(), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

/// A new exchange on this connection, with the request bytes given.
fn exchange(conn: &Conn, request: Vec<u8>, request_at: i64, status: Status) -> Exchange {
    Exchange {
        server: conn.local,
        request,
        ..Exchange::new(conn.id, conn.peer, request_at, status)
    }
}

/// The status of a request that could not be read: where, which field, why.
fn malformed(offset: usize, path: &str, message: String) -> Status {
    Status::Malformed {
        error: DecodeError {
            offset,
            path: path.into(),
            message,
        },
    }
}

/// One connection: reads frames until the client goes, the broker shuts down or a frame is
/// refused, answering each in turn; its opening and closing are captured as connection events.
async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conn = Conn {
        id,
        peer,
        local: stream.local_addr().ok(),
        peer_ip: peer.ip().to_string(),
        client_software: None,
        authenticated: shared.config.sasl_plain.is_none(),
        advertised: shared.advertised.clone().unwrap_or_else(|| {
            let local = stream
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
            (local.ip().to_string(), local.port())
        }),
        raw_sasl_next: false,
        identity: ClientIdentity::default(),
        placement_used: None,
        advertised_caps: None,
        fault_counts: Default::default(),
    };
    shared.store.push_conn_event(ConnEvent {
        conn: id,
        peer: conn.peer,
        at: now_micros(),
        kind: ConnEventKind::Opened,
    });
    // Who ended the connection, and why; every `break` below sets it first.
    let mut closed = (ClosedBy::Broker, String::from("broker shutting down"));
    loop {
        let read = tokio::select! {
            r = read_frame(&mut stream, shared.config.max_frame_bytes) => r,
            _ = shutdown.changed() => break,
        };
        let frame = match read {
            Ok(Some(f)) => f,
            Ok(None) => {
                closed = (ClosedBy::Client, "closed by the client".into());
                break;
            }
            Err(FrameError::Io(e)) => {
                tracing::debug!(conn = id, %peer, error = %e, "read failed");
                closed = (ClosedBy::Client, format!("read failed: {e}"));
                break;
            }
            Err(e) => {
                let bytes = match &e {
                    FrameError::Negative(n) => n.to_be_bytes().to_vec(),
                    FrameError::TooLarge { size, .. } => (*size as u32).to_be_bytes().to_vec(),
                    FrameError::Truncated { partial, .. } => partial.clone(),
                    FrameError::Io(_) => Vec::new(),
                };
                tracing::warn!(conn = id, %peer, offset = 0, reason = %e, "bad frame; closing the connection");
                let mut ex = exchange(
                    &conn,
                    bytes,
                    now_micros(),
                    malformed(0, "kafka.length", e.to_string()),
                );
                ex.notes.push("connection closed".into());
                shared.store.push(ex);
                closed = (ClosedBy::Broker, format!("bad frame: {e}"));
                break;
            }
        };
        let request_at = now_micros();
        if conn.raw_sasl_next {
            conn.raw_sasl_next = false;
            let ok = handlers::check_plain(&shared, &frame[4..]);
            let mut ex = exchange(&conn, frame, request_at, Status::Answered);
            ex.api_key = api_key::SASL_AUTHENTICATE;
            ex.api_version = 0;
            ex.framing = chronik_capture::Framing::SaslToken;
            if !ok {
                tracing::warn!(conn = id, %peer, "SASL/PLAIN authentication failed; closing");
                ex.status = Status::Unanswered;
                ex.notes
                    .push("authentication failed; connection closed".into());
                shared.store.push(ex);
                closed = (ClosedBy::Broker, "SASL/PLAIN authentication failed".into());
                break;
            }
            conn.authenticated = true;
            let resp = with_size_prefix(&[]);
            let wrote = stream.write_all(&resp).await;
            ex.response = Some(resp);
            ex.response_at = Some(now_micros());
            shared.store.push(ex);
            if let Err(e) = wrote {
                closed = (ClosedBy::Client, format!("write failed: {e}"));
                break;
            }
            continue;
        }
        if let Some((api_key, api_version, correlation_id)) = frame
            .get(4..)
            .and_then(chronik_protocol::dissect::peek_request_header)
        {
            shared.store.begin_request(
                id,
                chronik_capture::InFlight {
                    api_key,
                    api_version,
                    correlation_id,
                    since: request_at,
                },
            );
        }
        let handled = handle_frame(
            &mut stream,
            &mut conn,
            &shared,
            frame,
            request_at,
            &mut shutdown,
        )
        .await;
        shared.store.end_request(id);
        if let Err(why) = handled {
            closed = why;
            break;
        }
    }
    tracing::debug!(conn = id, %peer, reason = %closed.1, "closed");
    shared.store.push_conn_event(ConnEvent {
        conn: id,
        peer: conn.peer,
        at: now_micros(),
        kind: ConnEventKind::Closed {
            by: closed.0,
            reason: closed.1,
        },
    });
}

/// Why a connection ends: who ended it and a reason for people.
type CloseReason = (ClosedBy, String);

/// Handles one request frame; `Err` when the connection must close, saying why.
async fn handle_frame(
    stream: &mut TcpStream,
    conn: &mut Conn,
    shared: &Arc<Shared>,
    frame: Vec<u8>,
    request_at: i64,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), CloseReason> {
    // Checked field by field, keeping no tree: its size would be the sender's choice.
    let dissection = dissect_request_with(&frame, Limits::CHECK_ONLY);
    let mut ex = exchange(conn, Vec::new(), request_at, Status::Answered);
    if let Some((key, version, corr)) = peek_request_header(&frame[4..]) {
        ex.api_key = key;
        ex.api_version = version;
        ex.correlation_id = corr;
    }
    if let Some(Value::Str(s)) = dissection.root.find("kafka.client_id").map(|f| &f.value) {
        ex.client_id = Some(s.clone());
    }
    if let Some(err) = dissection.error {
        tracing::warn!(conn = conn.id, peer = %conn.peer, offset = err.offset, path = %err.path,
            reason = %err.message, "malformed request; closing the connection");
        let why = format!("malformed request: {err}");
        ex.request = frame;
        ex.status = Status::Malformed { error: err };
        ex.notes.push("connection closed".into());
        shared.store.push(ex);
        return Err((ClosedBy::Broker, why));
    }
    let (key, version, corr) = (ex.api_key, ex.api_version, ex.correlation_id);
    conn.identity.client_id = ex.client_id.clone();
    let (conn_id, peer) = (conn.id, conn.peer);
    // Captures the request unanswered with this status and closes the connection.
    let end = |mut ex: Exchange, frame: Vec<u8>, status: Status, why: String| {
        tracing::warn!(conn = conn_id, peer = %peer, api_key = key, api_version = version,
            reason = %why, "refusing request; closing the connection");
        ex.request = frame;
        ex.status = status;
        ex.notes.push("connection closed".into());
        shared.store.push(ex);
        Err((ClosedBy::Broker, why))
    };
    let close = |ex: Exchange, frame: Vec<u8>, why: String| {
        end(
            ex,
            frame,
            malformed(4, "kafka.request_header", why.clone()),
            why,
        )
    };
    let supported = handlers::supported(key);
    let in_range = supported.is_some_and(|(lo, hi)| (lo..=hi).contains(&version));
    if key == api_key::API_VERSIONS && !in_range {
        // Kafka's answer to an ApiVersions version it does not know: v0, UNSUPPORTED_VERSION,
        // with the list so the client can pick a version.
        let knobs = shared.settings.get();
        let plan = FaultPlan::decide(&knobs, conn, key, version);
        let body = handlers::api_versions_unsupported(&knobs);
        ex.notes.push(format!(
            "ApiVersions v{version} unsupported: answered as v0 with error {}",
            errors::UNSUPPORTED_VERSION
        ));
        let reply = Reply {
            corr,
            header_version: 0,
            body,
            body_version: 0,
        };
        return respond(stream, shared, conn, ex, frame, reply, &plan, shutdown).await;
    }
    if !in_range {
        let why = match supported {
            None => format!("API key {key} is not supported"),
            Some((lo, hi)) => format!(
                "{} v{version} is outside the supported versions {lo}-{hi}",
                chronik_protocol::registry::api_name(key)
            ),
        };
        return close(ex, frame, why);
    }
    // Decode only what the dissector walked field by field: kafka-protocol pre-allocates from
    // wire counts, so a body the dissector could not check is never handed to it.
    if dissection
        .root
        .children
        .iter()
        .any(|c| c.name() == "kafka.body")
    {
        return close(
            ex,
            frame,
            format!(
                "no schema to validate {} v{version}; not decoding it",
                chronik_protocol::registry::api_name(key)
            ),
        );
    }
    if let Some(note) = above_cap(conn, shared, key, version) {
        ex.notes.push(note);
    }
    let Ok(api) = ApiKey::try_from(key) else {
        return close(ex, frame, format!("API key {key} is not supported"));
    };
    let mut buf = Bytes::copy_from_slice(&frame[4..]);
    let header = match RequestHeader::decode(&mut buf, api.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => return close(ex, frame, format!("request header: {e}")),
    };
    let before_auth = [
        api_key::API_VERSIONS,
        api_key::SASL_HANDSHAKE,
        api_key::SASL_AUTHENTICATE,
    ];
    if !conn.authenticated && !before_auth.contains(&key) {
        let reason = "SASL authentication required".to_string();
        let why = format!("refused: {reason}");
        return end(ex, frame, Status::Refused { reason }, why);
    }
    let knobs = shared.settings.get();
    let plan = FaultPlan::decide(&knobs, conn, key, version);
    // A fetch may wait (long poll): if the client goes away or the broker shuts down meanwhile,
    // the request is captured as unanswered. Other handlers run to completion (the group
    // coordinator's waits are its own business).
    let error_reply = plan.error.and_then(|(rule, code)| {
        handlers::error_reply(shared, conn, &knobs, api, version, buf.clone(), code)
            .map(|o| (rule, code, o))
    });
    let outcome = if let Some((rule, code, outcome)) = error_reply {
        ex.notes.push(FaultPlan::error_note(rule, code));
        outcome
    } else if api == ApiKey::Fetch {
        let handler = handlers::handle(shared, conn, api, version, &header, buf);
        tokio::select! {
            o = handler => o,
            why = peer_gone(stream, shutdown) => {
                tracing::debug!(conn = conn_id, peer = %peer, reason = why, "fetch abandoned");
                ex.request = frame;
                ex.status = Status::Unanswered;
                ex.notes.push(format!("{why} while the request was pending"));
                shared.store.push(ex);
                let by = if why == "broker shut down" { ClosedBy::Broker } else { ClosedBy::Client };
                return Err((by, format!("{why} while a Fetch was pending")));
            }
        }
    } else {
        handlers::handle(shared, conn, api, version, &header, buf).await
    };
    ex.placement = conn.placement_used.take();
    match outcome {
        Outcome::Reply {
            body,
            notes,
            close_after,
        } => {
            ex.notes.extend(notes);
            // ApiVersions answers with header v0 at every version, so any client can read it.
            let header_version = if key == api_key::API_VERSIONS {
                0
            } else {
                api.response_header_version(version)
            };
            let reply = Reply {
                corr,
                header_version,
                body,
                body_version: version,
            };
            respond(stream, shared, conn, ex, frame, reply, &plan, shutdown).await?;
            after_reply(close_after, key)
        }
        Outcome::NoResponse { notes, close_after } => {
            ex.notes.extend(notes);
            ex.request = frame;
            ex.status = Status::NoResponse;
            let fault_close = plan.close_after_note();
            ex.notes.extend(fault_close.clone());
            shared.store.push(ex);
            if let Some(why) = fault_close {
                return Err((ClosedBy::Broker, why));
            }
            after_reply(close_after, key)
        }
        Outcome::Close(why) => close(ex, frame, why),
    }
}

/// A note when a request's version is above the cap this connection was advertised (or, on a
/// connection that sent no ApiVersions, the cap in force now). Such requests are still served.
fn above_cap(conn: &Conn, shared: &Shared, key: i16, version: i16) -> Option<String> {
    let (cap, whose) = match &conn.advertised_caps {
        Some(caps) => (caps.get(&key).copied()?, "advertised to this connection"),
        None => (
            shared.settings.get().caps.get(&key).copied()?,
            "in force (no ApiVersions on this connection)",
        ),
    };
    (version > cap).then(|| {
        format!(
            "v{version} is above the version cap {} {whose}; served anyway",
            crate::settings::VersionCap {
                api_key: key,
                max_version: cap
            }
        )
    })
}

/// Resolves when the peer closes its side or the broker shuts down; never when the peer sends
/// more (pipelined requests wait their turn).
async fn peer_gone(stream: &TcpStream, shutdown: &mut watch::Receiver<bool>) -> &'static str {
    let mut one = [0u8; 1];
    tokio::select! {
        r = stream.peek(&mut one) => match r {
            Ok(0) | Err(_) => "connection closed",
            Ok(_) => std::future::pending().await,
        },
        _ = shutdown.changed() => "broker shut down",
    }
}

/// Whether the connection stays open after the answer: `Err` when the handler asked to close
/// it once answered.
fn after_reply(close_after: bool, key: i16) -> Result<(), CloseReason> {
    if close_after {
        Err((
            ClosedBy::Broker,
            format!(
                "closed after the {} exchange",
                chronik_protocol::registry::api_name(key)
            ),
        ))
    } else {
        Ok(())
    }
}

/// A response to write: the header's correlation id and version, and the body with the version
/// it is encoded at.
struct Reply {
    corr: i32,
    header_version: i16,
    body: BytesMut,
    body_version: i16,
}

/// Writes a response (header + body) and captures the exchange, after the mutation rules have
/// changed it and as the fault plan says (late, not at all, in pieces, half of it); the
/// exchange keeps the bytes that were sent. `Err` when the connection must close: a write
/// failed, the client left during a delay, or a fault closes it.
#[allow(clippy::too_many_arguments)]
async fn respond(
    stream: &mut TcpStream,
    shared: &Shared,
    conn: &Conn,
    mut ex: Exchange,
    frame: Vec<u8>,
    reply: Reply,
    plan: &FaultPlan,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), CloseReason> {
    let mut out = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(reply.corr);
    if let Err(e) = header.encode(&mut out, reply.header_version) {
        tracing::error!(error = %e, "encoding a response header");
        return Err((ClosedBy::Broker, format!("encoding a response header: {e}")));
    }
    out.extend_from_slice(&reply.body);
    ex.request = frame;
    let knobs = shared.settings.get();
    let resp = inject::mutate(
        &knobs,
        &conn.identity,
        &mut ex,
        with_size_prefix(&out),
        reply.body_version,
    );
    if !plan.delays.is_empty() {
        plan.note_delays(&mut ex);
        tokio::select! {
            _ = tokio::time::sleep(plan.delay()) => {}
            why = peer_gone(stream, shutdown) => {
                ex.status = Status::Unanswered;
                ex.notes.push(format!("{why} while the response was delayed"));
                shared.store.push(ex);
                let by = if why == "broker shut down" { ClosedBy::Broker } else { ClosedBy::Client };
                return Err((by, format!("{why} while a response was delayed")));
            }
        }
    }
    if let Some(rule) = plan.drop {
        ex.status = Status::Unanswered;
        ex.notes
            .push(format!("fault (rule {rule}): response dropped"));
        let close = plan.close_after_note();
        ex.notes.extend(close.clone());
        shared.store.push(ex);
        return close.map_or(Ok(()), |why| Err((ClosedBy::Broker, why)));
    }
    let written = inject::write(stream, &resp, plan, &mut ex).await;
    ex.response_at = Some(now_micros());
    let result = match written.error {
        Some(e) => {
            ex.status = Status::Unanswered;
            ex.notes
                .push("connection closed before the response was written".into());
            if written.bytes > 0 {
                ex.response = Some(resp[..written.bytes].to_vec());
            }
            Err((
                ClosedBy::Client,
                format!("writing the response failed: {e}"),
            ))
        }
        None if plan.mid_response.is_some() => {
            ex.response = Some(resp[..written.bytes].to_vec());
            Err((
                ClosedBy::Broker,
                format!(
                    "fault (rule {}): closed mid-response",
                    plan.mid_response.unwrap_or_default()
                ),
            ))
        }
        None => {
            ex.response = Some(resp);
            match plan.close_after_note() {
                Some(why) => {
                    ex.notes.push(why.clone());
                    Err((ClosedBy::Broker, why))
                }
                None => Ok(()),
            }
        }
    };
    shared.store.push(ex);
    result
}
