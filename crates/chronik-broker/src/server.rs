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
use super::inject::{self, peer_gone, CloseReason, FaultPlan};
use super::state::{Conn, Shared};
use crate::frame::{read_frame_with_room, FrameError};
use chronik_capture::{
    now_micros, response_room, share_client_id, ClosedBy, ConnEvent, ConnEventKind, Exchange,
    Status, Store,
};
use chronik_protocol::dissect::peek_request_header;
use chronik_protocol::frame::with_size_prefix;
use chronik_protocol::{api_key, dissect_request_with, errors, DecodeError, Limits, Value};

/// Accepts connections until shutdown.
/// Every connection's task holds a clone of `serving_done` until it ends, so that whoever
/// holds its receiver learns when the last one has.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    serving_done: tokio::sync::mpsc::Sender<()>,
) {
    let store = shared.store.clone();
    let serving = shutdown.clone();
    accept_each(listener, &store, shutdown, |stream, peer, id| {
        let (shared, serving, done) = (shared.clone(), serving.clone(), serving_done.clone());
        tokio::spawn(async move {
            serve(stream, peer, id, shared, serving).await;
            drop(done);
        });
    })
    .await
}

/// Accepts connections until shutdown, handing each to `serve` with a new connection id from
/// the store (Nagle off); a failed accept is logged and retried after a pause.
pub(crate) async fn accept_each(
    listener: TcpListener,
    store: &Store,
    mut shutdown: watch::Receiver<bool>,
    serve: impl Fn(TcpStream, SocketAddr, u64),
) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let id = store.new_conn_id();
                    let _ = stream.set_nodelay(true);
                    tracing::debug!(conn = id, %peer, "accepted");
                    serve(stream, peer, id);
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
pub(crate) fn exchange(conn: &Conn, request: Vec<u8>, request_at: i64, status: Status) -> Exchange {
    Exchange::new(conn.id, conn.endpoints.clone(), request_at, status).with_frames(request, None)
}

/// The status of a request that could not be read: where, which field, why.
fn malformed(offset: usize, path: &str, message: String) -> Status {
    Status::malformed(DecodeError {
        offset,
        path: path.into(),
        message,
    })
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
    let local = stream.local_addr().ok();
    let advertised = shared.advertised.clone().unwrap_or_else(|| {
        let local = local.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        (local.ip().to_string(), local.port())
    });
    let authenticated = shared.config.sasl_plain.is_none();
    let mut conn = Conn::new(id, peer, local, advertised, authenticated);
    conn_event(&shared.store, &conn, ConnEventKind::Opened);
    // Who ended the connection, and why; every `break` below sets it first.
    let closed: CloseReason;
    loop {
        let frame = match read_request(
            &mut stream,
            &conn,
            &shared.store,
            shared.config.max_frame_bytes,
            &mut shutdown,
        )
        .await
        {
            Ok(f) => f,
            Err(why) => {
                closed = why;
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
                ex.push_note("authentication failed; connection closed".into());
                shared.store.push(ex);
                closed = (ClosedBy::Broker, "SASL/PLAIN authentication failed".into());
                break;
            }
            conn.authenticated = true;
            let resp = with_size_prefix(&[]);
            let wrote = stream.write_all(&resp).await;
            ex.set_response(Some(resp));
            ex.set_response_at(Some(now_micros()));
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
    conn_closed(&shared.store, &conn, closed);
}

/// Captures a connection event of `conn`, now.
pub(crate) fn conn_event(store: &Store, conn: &Conn, kind: ConnEventKind) {
    store.push_conn_event(ConnEvent {
        conn: conn.id,
        peer: conn.peer,
        at: now_micros(),
        kind,
    });
}

/// Logs and captures the end of a connection: who closed it and why.
pub(crate) fn conn_closed(store: &Store, conn: &Conn, (by, reason): CloseReason) {
    tracing::debug!(conn = conn.id, peer = %conn.peer, %reason, "closed");
    conn_event(store, conn, ConnEventKind::Closed { by, reason });
}

/// Reads the connection's next request frame. `Err` says why the connection ends: the client
/// closed it, a read failed, the broker shuts down, or the frame is refused for its size prefix
/// (captured as a malformed exchange, logged with the offset, 0, and the reason).
pub(crate) async fn read_request(
    stream: &mut TcpStream,
    conn: &Conn,
    store: &Store,
    max_frame_bytes: usize,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Vec<u8>, CloseReason> {
    let read = tokio::select! {
        r = read_frame_with_room(stream, max_frame_bytes, response_room) => r,
        _ = shutdown.changed() => {
            return Err((ClosedBy::Broker, String::from("broker shutting down")));
        }
    };
    let (id, peer) = (conn.id, conn.peer);
    match read {
        Ok(Some(f)) => Ok(f),
        Ok(None) => Err((ClosedBy::Client, "closed by the client".into())),
        Err(FrameError::Io(e)) => {
            tracing::debug!(conn = id, %peer, error = %e, "read failed");
            Err((ClosedBy::Client, format!("read failed: {e}")))
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
                conn,
                bytes,
                now_micros(),
                malformed(0, "kafka.length", e.to_string()),
            );
            ex.push_note("connection closed".into());
            store.push(ex);
            Err((ClosedBy::Broker, format!("bad frame: {e}")))
        }
    }
}

/// A request frame checked field by field (keeping no tree but the top-level fields: its size
/// would be the sender's choice): the exchange it starts (API, version, correlation id and
/// client id filled in) and the dissection. A frame that does not decode is captured as
/// malformed, logged with its offset, and `Err` says the connection must close.
pub(crate) fn check_request(
    conn: &mut Conn,
    store: &Store,
    frame: &[u8],
    request_at: i64,
) -> Result<(Exchange, chronik_protocol::Dissection), CloseReason> {
    let dissection = dissect_request_with(frame, Limits::CHECK_ONLY);
    let mut ex = exchange(conn, Vec::new(), request_at, Status::Answered);
    if let Some((key, version, corr)) = frame.get(4..).and_then(peek_request_header) {
        ex.api_key = key;
        ex.api_version = version;
        ex.correlation_id = corr;
    }
    if let Some(Value::Str(s)) = dissection.root.find("kafka.client_id").map(|f| &f.value) {
        ex.set_client_id(share_client_id(&mut conn.client_id, Some(s)));
    }
    if let Some(err) = dissection.error.clone() {
        tracing::warn!(conn = conn.id, peer = %conn.peer, offset = err.offset, path = %err.path,
            reason = %err.message, "malformed request; closing the connection");
        let why = format!("malformed request: {err}");
        ex.set_request(frame.to_vec());
        ex.status = Status::malformed(err);
        ex.push_note("connection closed".into());
        store.push(ex);
        return Err((ClosedBy::Broker, why));
    }
    Ok((ex, dissection))
}

/// Handles one request frame; `Err` when the connection must close, saying why.
async fn handle_frame(
    stream: &mut TcpStream,
    conn: &mut Conn,
    shared: &Arc<Shared>,
    frame: Vec<u8>,
    request_at: i64,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), CloseReason> {
    let (mut ex, dissection) = check_request(conn, &shared.store, &frame, request_at)?;
    let (key, version, corr) = (ex.api_key, ex.api_version, ex.correlation_id);
    if conn.identity.client_id.as_deref() != ex.client_id() {
        conn.identity.client_id = ex.client_id().map(str::to_string);
    }
    let (conn_id, peer) = (conn.id, conn.peer);
    // Captures the request unanswered with this status and closes the connection.
    let end = |mut ex: Exchange, frame: Vec<u8>, status: Status, why: String| {
        tracing::warn!(conn = conn_id, peer = %peer, api_key = key, api_version = version,
            reason = %why, "refusing request; closing the connection");
        ex.set_request(frame);
        ex.status = status;
        ex.push_note("connection closed".into());
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
        ex.push_note(format!(
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
        ex.push_note(note);
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
        return end(ex, frame, Status::refused(reason), why);
    }
    let knobs = shared.settings.get();
    let plan = FaultPlan::decide(&knobs, conn, key, version);
    // A fetch may wait (long poll): if the client goes away or the broker shuts down meanwhile,
    // the request is captured as unanswered. Other handlers run to completion (the group
    // coordinator's waits are its own business).
    let error_reply = plan.error.and_then(|(rule, code)| {
        handlers::error_reply(Some(shared), conn, &knobs, api, version, buf.clone(), code)
            .map(|o| (rule, code, o))
    });
    let outcome = if let Some((rule, code, outcome)) = error_reply {
        ex.push_note(FaultPlan::error_note(rule, code));
        outcome
    } else if api == ApiKey::Fetch {
        let handler = handlers::handle(shared, conn, api, version, &header, buf);
        tokio::select! {
            o = handler => o,
            why = peer_gone(stream, shutdown) => {
                tracing::debug!(conn = conn_id, peer = %peer, reason = why, "fetch abandoned");
                ex.set_request(frame);
                ex.status = Status::Unanswered;
                ex.push_note(format!("{why} while the request was pending"));
                shared.store.push(ex);
                let by = if why == "broker shut down" { ClosedBy::Broker } else { ClosedBy::Client };
                return Err((by, format!("{why} while a Fetch was pending")));
            }
        }
    } else {
        handlers::handle(shared, conn, api, version, &header, buf).await
    };
    ex.set_placement(conn.placement_used.take());
    match outcome {
        Outcome::Reply {
            body,
            notes,
            close_after,
        } => {
            ex.extend_notes(notes);
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
            ex.extend_notes(notes);
            ex.set_request(frame);
            ex.status = Status::NoResponse;
            let fault_close = plan.close_after_note();
            ex.extend_notes(fault_close.clone());
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

/// Encodes a response (header + body) and hands it to [`inject::deliver`], which mutates,
/// writes and captures it as the rules say. `Err` when the connection must close.
#[allow(clippy::too_many_arguments)]
async fn respond(
    stream: &mut TcpStream,
    shared: &Shared,
    conn: &Conn,
    ex: Exchange,
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
    let response = inject::Response {
        frame: with_size_prefix(&out),
        version: reply.body_version,
    };
    inject::deliver(
        stream,
        (&shared.store, &shared.settings),
        conn,
        ex,
        frame,
        response,
        plan,
        shutdown,
    )
    .await
}
