//! What the mutation and fault rules do to one exchange, for the connection task: which faults
//! act on a request (decided when it arrives, so that `error` can stand in for the handler),
//! the mutations applied to its response frame, and writing the response the way the faults
//! say (late, not at all, in pieces, half of it). Every change is noted on the exchange.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::settings::{Action, ClientIdentity, Knobs, Settings};
use crate::state::Conn;
use chronik_capture::{now_micros, ClosedBy, Exchange, Status, Store};
use chronik_protocol::errors;
use chronik_protocol::mutate::Applied;

/// The faults acting on one request, each with the number (from 1) of the rule that asked.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    /// Answer with this error code instead of serving the request.
    pub error: Option<(usize, i16)>,
    /// Wait before writing the response (every delay rule that fired adds its own).
    pub delays: Vec<(usize, u64)>,
    /// Write no response.
    pub drop: Option<usize>,
    /// Write half the response, then close.
    pub mid_response: Option<usize>,
    /// Write the response this many bytes at a time, pausing this many ms between pieces.
    pub chunk: Option<(usize, usize, u64)>,
    /// Close once this response is written: this request is the connection's Nth matching one.
    pub close_after: Option<(usize, u64)>,
}

impl FaultPlan {
    /// Runs every fault rule that matches the request (each counts it, so `first N` and
    /// seeded probabilities see every matching request) and collects what they do. Of several
    /// rules that would each answer, drop, chunk or cut the response, the first wins.
    pub fn decide(knobs: &Knobs, conn: &mut Conn, api: i16, version: i16) -> FaultPlan {
        let mut plan = FaultPlan::default();
        for (i, rule) in knobs.faults.iter().enumerate() {
            if !rule.matches(api, version, &conn.identity) {
                continue;
            }
            let n = i + 1;
            match rule.next() {
                None => {}
                Some(Action::Delay { ms }) => plan.delays.push((n, ms)),
                Some(Action::Error { code }) => {
                    plan.error.get_or_insert((n, code));
                }
                Some(Action::Drop) => {
                    plan.drop.get_or_insert(n);
                }
                Some(Action::CloseMidResponse) => {
                    plan.mid_response.get_or_insert(n);
                }
                Some(Action::Chunk { bytes, every_ms }) => {
                    plan.chunk.get_or_insert((n, bytes, every_ms));
                }
                Some(Action::CloseAfter(limit)) => {
                    let seen = conn.fault_counts.entry(rule.id()).or_insert(0);
                    *seen += 1;
                    if *seen >= limit {
                        plan.close_after.get_or_insert((n, limit));
                    }
                }
            }
        }
        plan
    }

    /// The total delay.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delays.iter().map(|(_, ms)| ms).sum())
    }

    /// Notes the delays on the exchange.
    pub fn note_delays(&self, ex: &mut Exchange) {
        for (rule, ms) in &self.delays {
            ex.push_note(format!("fault (rule {rule}): delayed {ms} ms"));
        }
    }

    /// The note for an error answer.
    pub fn error_note(rule: usize, code: i16) -> String {
        format!(
            "fault (rule {rule}): answered {} ({code}) without serving the request",
            errors::error_name(code)
        )
    }

    /// The note and close reason when the connection closes after this exchange.
    pub fn close_after_note(&self) -> Option<String> {
        self.close_after.map(|(rule, n)| {
            format!(
                "fault (rule {rule}): connection closed after its {} matching request",
                ordinal(n)
            )
        })
    }
}

/// `1st`, `2nd`, `3rd`, `4th`, `11th`, `22nd`.
fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Applies the exchange's placement preset (a ProduceResponse's throttle_time_ms where the
/// placement puts it; noted by the Produce handler) and then every matching mutation rule, in
/// order, to the exchange's response frame, encoded at `version`; notes what each rule did or
/// why it could not.
pub(crate) fn mutate(
    knobs: &Knobs,
    who: &ClientIdentity,
    ex: &mut Exchange,
    mut frame: Vec<u8>,
    version: i16,
) -> Vec<u8> {
    let api = ex.api_key;
    let preset = ex
        .placement()
        .as_ref()
        .and_then(|p| p.placement.preset(version));
    if let Some(preset) = preset {
        match preset.apply(&frame, api, version) {
            Ok(Applied::Changed { frame: out, .. }) => frame = out,
            Ok(Applied::Unchanged(_)) => {}
            Err(e) => {
                tracing::error!(error = %e, "placement preset did not apply");
                ex.push_note(format!("throttle_time_ms placement not applied: {e}"));
            }
        }
    }
    for (i, rule) in knobs.mutations.iter().enumerate() {
        if !rule.matches(api, version, who) {
            continue;
        }
        let n = i + 1;
        match rule.mutation.apply(&frame, api, version) {
            Ok(Applied::Changed { frame: out, detail }) => {
                let detail = if detail == "1 occurrence" {
                    String::new()
                } else {
                    format!(" ({detail})")
                };
                ex.push_note(format!("mutated (rule {n}): {}{detail}", rule.mutation));
                frame = out;
            }
            Ok(Applied::Unchanged(why)) => {
                tracing::debug!(rule = n, reason = %why, "mutation had nothing to change");
            }
            Err(e) => ex.push_note(format!("mutation (rule {n}) not applied: {e}")),
        }
    }
    frame
}

/// How far writing a response got.
pub(crate) struct Written {
    /// Bytes written (all of them unless the plan cut the response or a write failed).
    pub bytes: usize,
    /// The write error, if one ended it.
    pub error: Option<std::io::Error>,
}

/// Writes `resp` as the plan says: all at once, or in pieces with pauses; only the first half
/// when the connection is to be closed mid-response. Notes chunking and cutting on `ex`.
pub(crate) async fn write(
    stream: &mut TcpStream,
    resp: &[u8],
    plan: &FaultPlan,
    ex: &mut Exchange,
) -> Written {
    let end = if plan.mid_response.is_some() {
        resp.len() / 2
    } else {
        resp.len()
    };
    let part = &resp[..end];
    let mut written = 0;
    let result = match plan.chunk {
        None => stream.write_all(part).await.map(|_| written = part.len()),
        Some((rule, size, every_ms)) => {
            let pieces = part.len().div_ceil(size.max(1));
            ex.push_note(format!(
                "fault (rule {rule}): sent in {pieces} pieces of at most {size} bytes, \
                 {every_ms} ms apart"
            ));
            let mut r = Ok(());
            for (i, piece) in part.chunks(size.max(1)).enumerate() {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(every_ms)).await;
                }
                r = stream.write_all(piece).await;
                if r.is_err() {
                    break;
                }
                written += piece.len();
            }
            r
        }
    };
    if let Some(rule) = plan.mid_response {
        ex.push_note(format!(
            "fault (rule {rule}): closed mid-response after {written} of {} bytes",
            resp.len()
        ));
    }
    Written {
        bytes: written,
        error: result.err(),
    }
}

/// Why a connection ends: who ended it and a reason for people.
pub(crate) type CloseReason = (ClosedBy, String);

/// A response frame (size prefix included) as the broker encoded it or an upstream broker sent
/// it, and the version its body is at.
pub(crate) struct Response {
    pub frame: Vec<u8>,
    pub version: i16,
}

/// Delivers a response to the client and captures the exchange: the mutation rules change it
/// first ([`mutate`]), then the fault plan says how it goes (late, not at all, in pieces, half
/// of it); the exchange keeps the request and the bytes that were sent. `Err` when the
/// connection must close: a write failed, the client left during a delay, or a fault closes
/// it. The embedded broker and the proxy both answer through this.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn deliver(
    stream: &mut TcpStream,
    (store, settings): (&Store, &Settings),
    conn: &Conn,
    mut ex: Exchange,
    request: Vec<u8>,
    response: Response,
    plan: &FaultPlan,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), CloseReason> {
    // The request joins the exchange at the end, with the response when one is kept: into the
    // room its buffer has after it (see `server::read_request`), not a copy.
    let knobs = settings.get();
    let resp = mutate(
        &knobs,
        &conn.identity,
        &mut ex,
        response.frame,
        response.version,
    );
    if !plan.delays.is_empty() {
        plan.note_delays(&mut ex);
        tokio::select! {
            _ = tokio::time::sleep(plan.delay()) => {}
            why = peer_gone(stream, shutdown) => {
                ex.set_request(request);
                ex.status = Status::Unanswered;
                ex.push_note(format!("{why} while the response was delayed"));
                store.push(ex);
                let by = if why == "broker shut down" { ClosedBy::Broker } else { ClosedBy::Client };
                return Err((by, format!("{why} while a response was delayed")));
            }
        }
    }
    if let Some(rule) = plan.drop {
        ex.set_request(request);
        ex.status = Status::Unanswered;
        ex.push_note(format!("fault (rule {rule}): response dropped"));
        let close = plan.close_after_note();
        ex.extend_notes(close.clone());
        store.push(ex);
        return close.map_or(Ok(()), |why| Err((ClosedBy::Broker, why)));
    }
    let written = write(stream, &resp, plan, &mut ex).await;
    ex.set_response_at(Some(now_micros()));
    let result = match written.error {
        Some(e) => {
            ex.status = Status::Unanswered;
            ex.push_note("connection closed before the response was written".into());
            let sent = (written.bytes > 0).then(|| resp[..written.bytes].to_vec());
            ex.set_frames(request, sent);
            Err((
                ClosedBy::Client,
                format!("writing the response failed: {e}"),
            ))
        }
        None if plan.mid_response.is_some() => {
            ex.set_frames(request, Some(resp[..written.bytes].to_vec()));
            Err((
                ClosedBy::Broker,
                format!(
                    "fault (rule {}): closed mid-response",
                    plan.mid_response.unwrap_or_default()
                ),
            ))
        }
        None => {
            ex.set_frames(request, Some(resp));
            match plan.close_after_note() {
                Some(why) => {
                    ex.push_note(why.clone());
                    Err((ClosedBy::Broker, why))
                }
                None => Ok(()),
            }
        }
    };
    store.push(ex);
    result
}

/// Resolves when the peer closes its side or the broker shuts down; never when the peer sends
/// more (pipelined requests wait their turn).
pub(crate) async fn peer_gone(
    stream: &TcpStream,
    shutdown: &mut watch::Receiver<bool>,
) -> &'static str {
    let mut one = [0u8; 1];
    tokio::select! {
        r = stream.peek(&mut one) => match r {
            Ok(0) | Err(_) => "connection closed",
            Ok(_) => std::future::pending().await,
        },
        _ = shutdown.changed() => "broker shut down",
    }
}
