//! One client connection through the proxy: each request is checked as the embedded broker
//! checks it, forwarded on this connection's own upstream connection (opened with the first
//! request), and its response read back, rewritten where it names brokers, and delivered as the
//! settings say (`inject::deliver`: placement, mutations, faults). Requests go one at a time,
//! as a Kafka broker serves a connection, so correlation ids pass through unchanged and a
//! Produce with acks=0 waits for nothing. Upstream failures close the client's connection and
//! are captured on the exchange they hit.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::listeners::Upstream;
use super::{Proxy, MAX_RESPONSE_BYTES};
use crate::frame::{read_frame, FrameError};
use crate::handlers::{self, Outcome};
use crate::inject::{self, peer_gone, CloseReason, FaultPlan, Response};
use crate::server::{check_request, conn_closed, conn_event, exchange, read_request};
use crate::state::Conn;
use chronik_capture::{now_micros, ClosedBy, ConnEventKind, Exchange, Framing, Status, Store};
use chronik_protocol::{api_key, Dissection, Field, Value};

/// Serves one client connection until it closes, its upstream connection ends, the proxy
/// shuts down or a frame is refused; its opening and closing are captured as connection events.
pub(super) async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    id: u64,
    upstream: Upstream,
    proxy: Arc<Proxy>,
) {
    let local = client.local_addr().ok();
    let listen = local.unwrap_or(proxy.config.listen);
    let advertised = (listen.ip().to_string(), listen.port());
    let mut conn = Conn::new(id, peer, local, advertised, true);
    conn_event(&proxy.store, &conn, ConnEventKind::Opened);
    let mut link = Link {
        upstream,
        stream: None,
    };
    let mut shutdown = proxy.shutdown.clone();
    let closed = loop {
        let next = tokio::select! {
            r = read_request(&mut client, &conn, &proxy.store, proxy.config.max_frame_bytes, &mut shutdown) => r,
            why = link.closed() => Err((ClosedBy::Broker, why)),
        };
        let frame = match next {
            Ok(f) => f,
            Err(why) => break why,
        };
        if let Err(why) = forward(&mut client, &mut conn, &mut link, &proxy, frame).await {
            break why;
        }
    };
    conn_closed(&proxy.store, &conn, closed);
}

/// A client connection's upstream side: where it goes, and the connection once opened.
struct Link {
    upstream: Upstream,
    stream: Option<TcpStream>,
}

impl Link {
    /// The upstream connection, opened on first use within `timeout`; `Err` says why it could
    /// not be (refused, unresolved, no answer).
    async fn open(&mut self, timeout: Duration) -> Result<&mut TcpStream, String> {
        if self.stream.is_none() {
            let target = (self.upstream.host.as_str(), self.upstream.port);
            let s = match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(format!("upstream {}: {e}", self.upstream)),
                Err(_) => {
                    return Err(format!(
                        "upstream {}: no connection within {} s",
                        self.upstream,
                        timeout.as_secs()
                    ))
                }
            };
            let _ = s.set_nodelay(true);
            tracing::debug!(upstream = %self.upstream, local = ?s.local_addr().ok(), "upstream connected");
            self.stream = Some(s);
        }
        self.stream
            .as_mut()
            .ok_or_else(|| format!("upstream {}: not connected", self.upstream))
    }

    /// Resolves when the open upstream connection ends between requests (never while none is
    /// open, nor when upstream sends something unasked).
    async fn closed(&self) -> String {
        let Some(s) = &self.stream else {
            return std::future::pending().await;
        };
        let mut one = [0u8; 1];
        match s.peek(&mut one).await {
            Ok(0) => format!("upstream {} closed the connection", self.upstream),
            Err(e) => format!("upstream {}: {e}", self.upstream),
            Ok(_) => std::future::pending().await,
        }
    }
}

/// What the request asks the broker to wait at most, in ms: its largest top-level
/// `*timeout_ms` or `max_wait_ms` (a Fetch's long poll, a JoinGroup's rebalance), so that
/// the proxy's own timeout counts from there.
fn requested_wait(d: &Dissection) -> Duration {
    let mut ms = 0i64;
    d.root.walk(0, &mut |f, _| {
        let name = f.name();
        if name.ends_with("timeout_ms") || name.ends_with("max_wait_ms") {
            ms = ms.max(f.as_int().unwrap_or(0));
        }
    });
    Duration::from_millis(ms.clamp(0, 3_600_000) as u64)
}

/// A Produce with acks=0: Kafka sends no response.
fn expects_no_response(d: &Dissection, key: i16) -> bool {
    key == api_key::PRODUCE
        && d.root.find("produce.request.acks").and_then(Field::as_int) == Some(0)
}

/// Sets the client's software from an ApiVersions v3+ request (placement and fault rules match
/// on it), as the embedded broker does.
fn learn_software(conn: &mut Conn, d: &Dissection) {
    let text = |name: &str| match d.root.find(name).map(|f| &f.value) {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    };
    if let Some(name) = text("api_versions.request.client_software_name") {
        conn.identity.software_name = Some(name);
        conn.identity.software_version = text("api_versions.request.client_software_version");
    }
}

/// Forwards one request frame and delivers its response. `Err` when the connection must close.
async fn forward(
    client: &mut TcpStream,
    conn: &mut Conn,
    link: &mut Link,
    proxy: &Arc<Proxy>,
    frame: Vec<u8>,
) -> Result<(), CloseReason> {
    let request_at = now_micros();
    if conn.raw_sasl_next {
        conn.raw_sasl_next = false;
        return forward_sasl_token(client, conn, link, proxy, frame, request_at).await;
    }
    let (mut ex, dissection) = check_request(conn, &proxy.store, &frame, request_at)?;
    let (key, version, corr) = (ex.api_key, ex.api_version, ex.correlation_id);
    if conn.identity.client_id.as_deref() != ex.client_id() {
        conn.identity.client_id = ex.client_id().map(str::to_string);
    }
    if key == api_key::API_VERSIONS {
        learn_software(conn, &dissection);
    }
    proxy.store.begin_request(
        conn.id,
        chronik_capture::InFlight {
            api_key: key,
            api_version: version,
            correlation_id: corr,
            since: request_at,
        },
    );
    let result = async {
        let knobs = proxy.settings.get();
        let plan = FaultPlan::decide(&knobs, conn, key, version);
        // The error fault on an API only upstream can answer: put into upstream's response.
        let mut error_in_response = None;
        if let Some((rule, code)) = plan.error {
            if key == api_key::METADATA {
                error_in_response = Some((rule, code));
            } else if let Some(answer) = error_answer(conn, &knobs, &frame, key, version, code) {
                ex.push_note(FaultPlan::error_note(rule, code));
                return match answer {
                    Answer::Frame(resp) => {
                        answer_client(client, conn, proxy, ex, frame, resp, &plan).await
                    }
                    Answer::None(why) => {
                        ex.set_request(frame);
                        ex.status = Status::NoResponse;
                        ex.push_note(why.clone());
                        proxy.store.push(ex);
                        Err((ClosedBy::Broker, why))
                    }
                };
            } else {
                ex.push_note(format!(
                    "fault (rule {rule}): no error answer for this {} request (its header does \
                     not decode); forwarded",
                    chronik_protocol::registry::api_name(key)
                ));
            }
        }
        let no_response = expects_no_response(&dissection, key);
        let wait = proxy.config.timeout + requested_wait(&dissection);
        let response =
            match exchange_upstream(client, link, proxy, &frame, !no_response, wait).await {
                Ok(r) => r,
                Err(failure) => {
                    ex.set_request(frame);
                    failure.record(ex, &proxy.store);
                    return Err(failure.close);
                }
            };
        let Some(mut resp) = response else {
            ex.set_request(frame);
            ex.status = Status::NoResponse;
            let close = plan.close_after_note();
            ex.extend_notes(close.clone());
            proxy.store.push(ex);
            return close.map_or(Ok(()), |why| Err((ClosedBy::Broker, why)));
        };
        if let Some((rule, code)) = error_in_response {
            match topic_errors(&resp, version, code) {
                Ok((out, topics)) => {
                    resp = out;
                    ex.push_note(format!(
                        "fault (rule {rule}): {} ({code}) set on {} of upstream's response, \
                         partitions left out (upstream served the request)",
                        chronik_protocol::errors::error_name(code),
                        topics_text(topics)
                    ));
                }
                Err(why) => ex.push_note(format!("fault (rule {rule}): error not applied: {why}")),
            }
        }
        answer_client(client, conn, proxy, ex, frame, resp, &plan).await
    }
    .await;
    proxy.store.end_request(conn.id);
    result
}

/// What the `error` fault answers in place of upstream.
enum Answer {
    /// This response frame.
    Frame(Vec<u8>),
    /// No response, and the connection closes for this reason (acks=0).
    None(String),
}

/// Upstream's Metadata response with the `error` fault's code where the embedded broker's error
/// answer has it: on every topic, with no partitions (`handlers::metadata::error_response`);
/// brokers, topic names and ids stay upstream's. Also how many topics it names. `Err` when the
/// response does not decode or cannot be re-encoded.
fn topic_errors(resp: &[u8], version: i16, code: i16) -> Result<(Vec<u8>, usize), String> {
    use chronik_protocol::fid;
    use chronik_protocol::mutate::{Applied, Mutation, SetValue};
    let key = api_key::METADATA;
    let d = chronik_protocol::dissect_response(resp, key, version);
    if let Some(e) = d.error {
        return Err(format!("upstream's response does not decode ({e})"));
    }
    let error_code = fid!("metadata.response.topics.error_code");
    let mut topics = 0;
    d.root
        .walk(0, &mut |f, _| topics += usize::from(f.id == error_code));
    let mut out = resp.to_vec();
    for m in [
        Mutation::Set {
            field: error_code,
            value: SetValue::Int {
                value: code.into(),
                name: None,
            },
        },
        Mutation::Set {
            field: fid!("metadata.response.topics.partitions"),
            value: SetValue::EmptyArray,
        },
    ] {
        if let Applied::Changed { frame, .. } = m.apply(&out, key, version)? {
            out = frame;
        }
    }
    Ok((out, topics))
}

/// `1 topic`, `2 topics`.
fn topics_text(n: usize) -> String {
    match n {
        1 => "1 topic".into(),
        n => format!("{n} topics"),
    }
}

/// The `error` fault's answer to a request, built as the embedded broker builds it, in place of
/// upstream's; `None` when it cannot be built (the request does not decode).
fn error_answer(
    conn: &mut Conn,
    knobs: &crate::settings::Knobs,
    frame: &[u8],
    key: i16,
    version: i16,
    code: i16,
) -> Option<Answer> {
    use kafka_protocol::messages::{ApiKey, RequestHeader};
    use kafka_protocol::protocol::{Decodable, Encodable};
    let api = ApiKey::try_from(key).ok()?;
    let mut body = bytes::Bytes::copy_from_slice(frame.get(4..)?);
    RequestHeader::decode(&mut body, api.request_header_version(version)).ok()?;
    match handlers::error_reply(None, conn, knobs, api, version, body, code)? {
        Outcome::Reply { body, .. } => {
            let corr = chronik_protocol::dissect::peek_request_header(frame.get(4..)?)?.2;
            let mut out = bytes::BytesMut::new();
            kafka_protocol::messages::ResponseHeader::default()
                .with_correlation_id(corr)
                .encode(&mut out, api.response_header_version(version))
                .ok()?;
            out.extend_from_slice(&body);
            Some(Answer::Frame(chronik_protocol::frame::with_size_prefix(
                &out,
            )))
        }
        Outcome::NoResponse { notes, .. } => Some(Answer::None(
            notes
                .into_iter()
                .next()
                .unwrap_or_else(|| "closed without a response".into()),
        )),
        Outcome::Close(why) => Some(Answer::None(why)),
    }
}

/// Rewrites broker addresses, chooses the ProduceResponse placement, and delivers the response
/// as the settings say.
#[allow(clippy::too_many_arguments)]
async fn answer_client(
    client: &mut TcpStream,
    conn: &mut Conn,
    proxy: &Arc<Proxy>,
    mut ex: Exchange,
    request: Vec<u8>,
    mut resp: Vec<u8>,
    plan: &FaultPlan,
) -> Result<(), CloseReason> {
    let (key, version) = (ex.api_key, ex.api_version);
    if key == api_key::SASL_HANDSHAKE && version == 0 {
        // After an accepted v0 handshake the client sends its token bare.
        let d = chronik_protocol::dissect_response(&resp, key, version);
        conn.raw_sasl_next = d
            .root
            .find("sasl_handshake.response.error_code")
            .and_then(Field::as_int)
            == Some(0);
    }
    let local_ip = conn
        .local
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let (rewritten, notes) = super::rewrite::rewrite(proxy, &resp, key, version, local_ip);
    ex.extend_notes(notes);
    if let Some(r) = rewritten {
        resp = r;
    }
    if key == api_key::PRODUCE {
        let knobs = proxy.settings.get();
        let mut notes = Vec::new();
        handlers::place(conn, &knobs, version, &mut notes);
        ex.extend_notes(notes);
        ex.set_placement(conn.placement_used.take());
    }
    let mut shutdown = proxy.shutdown.clone();
    inject::deliver(
        client,
        (&proxy.store, &proxy.settings),
        conn,
        ex,
        request,
        Response {
            frame: resp,
            version,
        },
        plan,
        &mut shutdown,
    )
    .await
}

/// A bare SASL token after SaslHandshake v0: forwarded, and upstream's bare answer sent back
/// (no header, no mutation); upstream closes the connection when authentication fails.
async fn forward_sasl_token(
    client: &mut TcpStream,
    conn: &Conn,
    link: &mut Link,
    proxy: &Arc<Proxy>,
    frame: Vec<u8>,
    request_at: i64,
) -> Result<(), CloseReason> {
    let mut ex = exchange(conn, Vec::new(), request_at, Status::Answered);
    ex.api_key = api_key::SASL_AUTHENTICATE;
    ex.api_version = 0;
    ex.framing = Framing::SaslToken;
    let wait = proxy.config.timeout;
    let result = exchange_upstream(client, link, proxy, &frame, true, wait).await;
    ex.set_request(frame);
    let resp = match result {
        Ok(Some(resp)) => resp,
        Ok(None) => Vec::new(),
        Err(failure) => {
            failure.record(ex, &proxy.store);
            return Err(failure.close);
        }
    };
    let wrote = client.write_all(&resp).await;
    ex.set_response(Some(resp));
    ex.set_response_at(Some(now_micros()));
    proxy.store.push(ex);
    wrote.map_err(|e| (ClosedBy::Client, format!("write failed: {e}")))
}

/// Why a request got no response from upstream, for its exchange and the close.
struct Failure {
    status: Status,
    note: String,
    close: CloseReason,
}

impl Failure {
    /// Stores the exchange the failure left, and a marker row saying what upstream did (a
    /// failure is an event of the capture's timeline, as a setting changed is).
    fn record(&self, mut ex: Exchange, store: &Store) {
        ex.status = self.status.clone();
        ex.push_note(self.note.clone());
        let conn = ex.conn;
        store.push(ex);
        store.push_marker(format!("[proxy] conn {conn}: {}", self.close.1));
    }

    /// Upstream failed this request: the exchange is unanswered and the client's connection
    /// closes, as when a broker goes away.
    fn upstream(why: String) -> Failure {
        tracing::warn!(reason = %why, "upstream failed; closing the client connection");
        Failure {
            status: Status::Unanswered,
            note: format!("{why}; client connection closed"),
            close: (ClosedBy::Broker, why),
        }
    }
}

/// Sends a request frame upstream (connecting first if need be) and, when one is expected,
/// reads its response within `wait`, watching the client meanwhile. `Ok(None)`: no response
/// expected.
async fn exchange_upstream(
    client: &TcpStream,
    link: &mut Link,
    proxy: &Arc<Proxy>,
    frame: &[u8],
    expect_response: bool,
    wait: Duration,
) -> Result<Option<Vec<u8>>, Failure> {
    let connect_timeout = proxy.config.timeout;
    let upstream = link.upstream.to_string();
    let up = match link.open(connect_timeout).await {
        Ok(up) => up,
        Err(why) => {
            tracing::warn!(reason = %why, "upstream unreachable; closing the client connection");
            return Err(Failure {
                status: Status::refused(why.clone()),
                note: "proxy: upstream unreachable; client connection closed".into(),
                close: (ClosedBy::Broker, why),
            });
        }
    };
    if let Err(e) = up.write_all(frame).await {
        link.stream = None;
        return Err(Failure::upstream(format!(
            "upstream {upstream}: sending the request failed: {e}"
        )));
    }
    if !expect_response {
        return Ok(None);
    }
    let mut shutdown = proxy.shutdown.clone();
    let read = tokio::select! {
        r = tokio::time::timeout(wait, read_frame(up, MAX_RESPONSE_BYTES)) => r,
        why = peer_gone(client, &mut shutdown) => {
            let by = if why == "broker shut down" { ClosedBy::Broker } else { ClosedBy::Client };
            return Err(Failure {
                status: Status::Unanswered,
                note: format!("{why} while the request was pending upstream"),
                close: (by, format!("{why} while a request was pending upstream")),
            });
        }
    };
    let why = match read {
        Ok(Ok(Some(resp))) => return Ok(Some(resp)),
        Ok(Ok(None)) => format!("upstream {upstream} closed the connection before answering"),
        Ok(Err(FrameError::Io(e))) => format!("upstream {upstream}: {e}"),
        Ok(Err(e)) => format!("upstream {upstream}: bad response frame: {e}"),
        Err(_) => format!(
            "upstream {upstream}: no response within {} ms",
            wait.as_millis()
        ),
    };
    link.stream = None;
    Err(Failure::upstream(why))
}
