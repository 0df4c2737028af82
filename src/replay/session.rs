//! Sending a capture's requests and reading the answers: one task per connection, all at once,
//! each sending its requests in the order they were sent, at the capture's pace.
//!
//! A request waits for the responses that came before it in the capture (a client that waited
//! for an answer before asking again is replayed as waiting too; one that pipelined is
//! replayed pipelining), then keeps the gap the capture shows after the last of them, and is
//! never sent earlier than its own time since the capture's start (scaled by `--speed`). So a
//! JoinGroup that waited for the other members in the capture waits for them again, while the
//! other members' connections go on. Each live response is compared with the recorded one as
//! it arrives, and the identifiers the live broker handed out are learned before the next
//! request goes (see [`super::rewrite`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

use super::ignore::IgnoreList;
use super::load::ConnPlan;
use super::rewrite::Identities;
use super::{Outcome, Replayed};
use crate::broker::frame::read_frame;
use crate::capture::{ClosedBy, Exchange, Framing, Status};
use crate::protocol::diff::{self, Side};
use crate::protocol::{dissect_response, dissect_sasl_token};

/// What every connection shares.
pub struct Ctx {
    /// Where to connect (`HOST:PORT`).
    pub addr: String,
    /// When the replay started, and the capture's moment it stands for (µs since the epoch).
    pub start: Instant,
    pub t0: i64,
    /// How much faster than recorded; `None`: as fast as the responses allow.
    pub speed: Option<f64>,
    /// Longest a response may take beyond its recorded latency.
    pub timeout: Duration,
    pub max_frame: usize,
    pub exchanges: Vec<Arc<Exchange>>,
    pub ignore: IgnoreList,
    pub identities: Mutex<Identities>,
    pub results: mpsc::UnboundedSender<Replayed>,
    /// The order the capture's requests were sent in, across connections.
    pub order: SendOrder,
}

/// The order the capture's requests were sent in, across connections: each connection's task
/// takes its turn before sending, so that a request sent a moment after another one on
/// another connection (two members joining a group) is not overtaken when the replay runs
/// late. A request whose answer the capture shows before the next request (on any
/// connection) was sent gives up its turn only once answered: the next one then reaches a
/// broker that has done what the first asked (a topic the first created), as in the capture,
/// however the live broker schedules its connections. A turn not given within the patience is
/// taken anyway (a live broker that behaves otherwise must not stall the replay).
pub struct SendOrder {
    /// Each request's place in the order, by index into the capture's exchanges.
    rank: std::collections::HashMap<usize, usize>,
    /// By place: whether the turn passes on the answer rather than on sending.
    until_answered: Vec<bool>,
    /// Which places are done (sent, or given up), and how many leading ones.
    done: Mutex<Vec<bool>>,
    through: tokio::sync::watch::Sender<usize>,
}

impl SendOrder {
    /// The order of these exchange indices (the capture's requests, by time) in `exchanges`.
    pub fn new(indices: Vec<usize>, exchanges: &[Arc<Exchange>]) -> SendOrder {
        let until_answered = indices
            .iter()
            .zip(indices.iter().skip(1))
            .map(|(&i, &next)| {
                exchanges[i]
                    .response_at()
                    .is_some_and(|r| r <= exchanges[next].request_at)
            })
            .chain(std::iter::once(false))
            .collect();
        SendOrder {
            until_answered,
            done: Mutex::new(vec![false; indices.len()]),
            rank: indices
                .into_iter()
                .enumerate()
                .map(|(r, i)| (i, r))
                .collect(),
            through: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Waits until every request before `index` is done, or `patience` has passed.
    async fn turn(&self, index: usize, patience: Duration) {
        let Some(&rank) = self.rank.get(&index) else {
            return;
        };
        let mut rx = self.through.subscribe();
        let _ = tokio::time::timeout(patience, rx.wait_for(|n| *n >= rank)).await;
    }

    /// `index` was sent: done, unless its turn passes on the answer.
    fn sent(&self, index: usize) {
        let answer_awaited = self
            .rank
            .get(&index)
            .is_some_and(|&rank| self.until_answered[rank]);
        if !answer_awaited {
            self.done(index);
        }
    }

    /// Marks `index` done (sent, answered, or never to be sent).
    fn done(&self, index: usize) {
        let Some(&rank) = self.rank.get(&index) else {
            return;
        };
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        done[rank] = true;
        let through = done.iter().position(|d| !d).unwrap_or(done.len());
        self.through.send_if_modified(|n| {
            let moved = *n != through;
            *n = through;
            moved
        });
    }
}

impl Ctx {
    /// A recorded span of time, as long as the replay makes it.
    fn scaled(&self, micros: i64) -> Duration {
        match self.speed {
            None => Duration::ZERO,
            Some(s) => Duration::from_micros((micros.max(0) as f64 / s) as u64),
        }
    }

    /// When the capture's moment `micros` comes in the replay.
    fn at(&self, micros: i64) -> Instant {
        self.start + self.scaled(micros - self.t0)
    }

    fn identities(&self) -> std::sync::MutexGuard<'_, Identities> {
        self.identities.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Compares what the live broker did with what the capture shows, learns the identifiers
    /// it handed out, and hands the result on.
    fn finish(&self, index: usize, sent: Option<Vec<u8>>, live: Live) {
        let ex = &self.exchanges[index];
        let (outcome, response) = self.compare(ex, live);
        let _ = self.results.send(Replayed {
            index,
            exchange: ex.clone(),
            sent,
            live: response,
            outcome,
        });
    }

    fn compare(&self, ex: &Exchange, live: Live) -> (Outcome, Option<Vec<u8>>) {
        let recorded = match &ex.status {
            Status::Answered => "answered",
            Status::NoResponse => "no response (acks=0)",
            Status::Malformed { .. } | Status::Refused { .. } => "the broker closed the connection",
            Status::Unanswered => {
                let why = "unanswered in the capture".to_string();
                let frame = match live {
                    Live::Response(f) => Some(f),
                    _ => None,
                };
                return (Outcome::Skipped(why), frame);
            }
        };
        match (&ex.status, live) {
            (Status::Answered, Live::Response(frame)) => {
                let Some(old_frame) = ex.response() else {
                    return (Outcome::Skipped("no response frame".into()), Some(frame));
                };
                let dissect = |f: &[u8]| match ex.framing {
                    Framing::Kafka => dissect_response(f, ex.api_key, ex.api_version),
                    Framing::SaslToken => dissect_sasl_token(f, false),
                };
                let (old, new) = (dissect(old_frame), dissect(&frame));
                let d = diff::diff(Side::new(&old, old_frame), Side::new(&new, &frame), &|id| {
                    self.ignore.ignores(id)
                });
                self.identities().learn_from(&d, &old, &new);
                (Outcome::Compared(d), Some(frame))
            }
            (Status::NoResponse, Live::Nothing) => (Outcome::Alike(recorded.into()), None),
            (Status::Malformed { .. } | Status::Refused { .. }, Live::Closed(_)) => {
                (Outcome::Alike(recorded.into()), None)
            }
            (_, live) => {
                let (text, frame) = live.describe();
                (
                    Outcome::Differs {
                        recorded: recorded.into(),
                        live: text,
                    },
                    frame,
                )
            }
        }
    }
}

/// What the live broker did with one request.
#[derive(Debug)]
pub enum Live {
    /// It answered with this frame.
    Response(Vec<u8>),
    /// Nothing came, as nothing was expected (acks=0).
    Nothing,
    /// It closed the connection before answering.
    Closed(String),
    /// No answer within the time allowed.
    TimedOut(Duration),
    /// A response came that answers another request.
    Misframed(Vec<u8>, String),
    /// The request was not sent, or the replay gave up on its connection first.
    NotSent(String),
}

impl Live {
    fn describe(self) -> (String, Option<Vec<u8>>) {
        match self {
            Live::Response(f) => ("answered".into(), Some(f)),
            Live::Nothing => ("no response".into(), None),
            Live::Closed(why) => (why, None),
            Live::TimedOut(d) => (format!("no response within {:.1} s", d.as_secs_f64()), None),
            Live::Misframed(f, why) => (why, Some(f)),
            Live::NotSent(why) => (format!("not sent: {why}"), None),
        }
    }
}

/// What a step expects of the live broker, from what the capture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A response.
    Response,
    /// None: Produce with acks=0.
    Nothing,
    /// The connection closed: the capture's broker closed it (a malformed or refused request).
    Close,
    /// The capture has none (the client closed first, or the capture ended): whatever comes.
    Maybe,
}

/// One request of a connection, in sending order.
struct Step {
    /// Index into the capture's exchanges.
    index: usize,
    expect: Expect,
    /// The step whose response the capture shows arriving last before this request was sent.
    after: Option<usize>,
}

fn steps(ctx: &Ctx, plan: &ConnPlan) -> Vec<Step> {
    let closed_by_broker = matches!(plan.closed, Some((_, ClosedBy::Broker)));
    let last = plan.steps.len().saturating_sub(1);
    plan.steps
        .iter()
        .enumerate()
        .map(|(j, &index)| {
            let ex = &ctx.exchanges[index];
            let expect = match ex.status {
                Status::Answered => Expect::Response,
                Status::NoResponse => Expect::Nothing,
                Status::Malformed { .. } | Status::Refused { .. } => Expect::Close,
                Status::Unanswered if closed_by_broker && j == last => Expect::Close,
                Status::Unanswered => Expect::Maybe,
            };
            let after = plan.steps[..j].iter().rposition(|&i| {
                ctx.exchanges[i]
                    .response_at()
                    .is_some_and(|r| r <= ex.request_at)
            });
            Step {
                index,
                expect,
                after,
            }
        })
        .collect()
}

/// A request waiting for its answer.
struct Pending {
    step: usize,
    /// When the replay stops waiting (none: whenever the connection ends).
    deadline: Option<Instant>,
    sent_at: Instant,
    sent: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    pending: VecDeque<Pending>,
    /// When each step was settled (answered, or known not to be).
    settled: Vec<Option<Instant>>,
    /// Why the connection can no longer be used.
    dead: Option<String>,
    /// The replay is closing it (answers still owed are not waited for).
    closing: bool,
}

/// One connection's state, shared by its writer and its reader.
struct Conn {
    ctx: Arc<Ctx>,
    steps: Vec<Step>,
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
}

impl Conn {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Settles step `j`: compares, then lets whoever waits for it go on.
    fn settle(&self, j: usize, sent: Option<Vec<u8>>, live: Live) {
        self.ctx.finish(self.steps[j].index, sent, live);
        self.lock().settled[j] = Some(Instant::now());
        self.changed.send_modify(|n| *n += 1);
        self.ctx.order.done(self.steps[j].index);
    }

    /// A frame from the broker: the answer to the oldest request waiting.
    fn on_frame(&self, frame: Vec<u8>) {
        let Some(p) = self.lock().pending.pop_front() else {
            tracing::warn!(len = frame.len(), "replay: a frame that answers no request");
            return;
        };
        let ex = &self.ctx.exchanges[self.steps[p.step].index];
        let corr = frame
            .get(4..8)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let live = if ex.framing == Framing::Kafka && corr != Some(ex.correlation_id) {
            let why = format!(
                "a response with correlation id {}, {} expected",
                corr.map_or("?".into(), |c| c.to_string()),
                ex.correlation_id
            );
            Live::Misframed(frame, why)
        } else {
            Live::Response(frame)
        };
        self.settle(p.step, Some(p.sent), live);
    }

    /// The connection ended: what waits is settled with `why`.
    fn on_end(&self, why: String) {
        let (pending, closing) = {
            let mut g = self.lock();
            g.dead.get_or_insert(why.clone());
            (std::mem::take(&mut g.pending), g.closing)
        };
        for p in pending {
            let live = if closing {
                Live::NotSent("the replay closed the connection first".into())
            } else {
                Live::Closed(why.clone())
            };
            self.settle(p.step, Some(p.sent), live);
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// The oldest answer is overdue: it times out, and the connection is given up (later
    /// answers could no longer be told apart from it).
    fn time_out(&self) {
        let pending = {
            let mut g = self.lock();
            let p = std::mem::take(&mut g.pending);
            g.dead
                .get_or_insert("the replay gave up on the connection after a timeout".into());
            p
        };
        for (k, p) in pending.into_iter().enumerate() {
            let live = if k == 0 {
                Live::TimedOut(p.sent_at.elapsed())
            } else {
                Live::NotSent("the replay gave up on the connection after a timeout".into())
            };
            self.settle(p.step, Some(p.sent), live);
        }
    }

    /// Waits until `done` holds, the connection is dead, or `until` comes, timing out overdue
    /// answers meanwhile.
    async fn wait(&self, until: Option<Instant>, done: impl Fn(&Inner) -> bool) {
        let mut rx = self.changed.subscribe();
        loop {
            let deadline = {
                let g = self.lock();
                if done(&g) || g.dead.is_some() {
                    return;
                }
                g.pending.iter().filter_map(|p| p.deadline).min()
            };
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                self.time_out();
                continue;
            }
            if until.is_some_and(|u| u <= now) {
                return;
            }
            match [deadline, until].into_iter().flatten().min() {
                Some(t) => {
                    tokio::select! {
                        _ = rx.changed() => {}
                        _ = sleep_until(t) => {}
                    }
                }
                None => {
                    let _ = rx.changed().await;
                }
            }
        }
    }

    fn dead(&self) -> Option<String> {
        self.lock().dead.clone()
    }
}

/// Replays one connection of the capture.
pub async fn run(ctx: Arc<Ctx>, plan: ConnPlan) {
    let steps = steps(&ctx, &plan);
    let n = steps.len();
    let (changed, _) = watch::channel(0);
    let conn = Arc::new(Conn {
        ctx: ctx.clone(),
        steps,
        inner: Mutex::new(Inner {
            settled: vec![None; n],
            ..Inner::default()
        }),
        changed,
    });
    let first = ctx.exchanges[plan.steps[0]].request_at;
    sleep_until(ctx.at(plan.opened_at.unwrap_or(first).min(first))).await;
    let stream = match TcpStream::connect(&ctx.addr).await {
        Ok(s) => s,
        Err(e) => {
            let why = format!("cannot connect to {}: {e}", ctx.addr);
            for j in 0..n {
                conn.settle(j, None, Live::NotSent(why.clone()));
            }
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let reader = {
        let conn = conn.clone();
        let max = ctx.max_frame;
        tokio::spawn(async move {
            loop {
                match read_frame(&mut rd, max).await {
                    Ok(Some(frame)) => conn.on_frame(frame),
                    Ok(None) => return conn.on_end("the broker closed the connection".into()),
                    Err(e) => return conn.on_end(format!("reading the connection: {e}")),
                }
            }
        })
    };
    let mut next = 0;
    while next < n {
        let step = &conn.steps[next];
        let ex = ctx.exchanges[step.index].clone();
        if let Some(a) = step.after {
            conn.wait(None, |g| g.settled[a].is_some()).await;
        }
        // Its own time, and the capture's gap after the answer it waited for.
        let mut when = ctx.at(ex.request_at);
        if let Some(a) = step.after {
            let answered = conn.lock().settled[a];
            let recorded = ctx.exchanges[conn.steps[a].index].response_at();
            if let (Some(live), Some(rec)) = (answered, recorded) {
                when = when.max(live + ctx.scaled(ex.request_at - rec));
            }
        }
        conn.wait(Some(when), |_| false).await;
        ctx.order.turn(step.index, Duration::from_secs(2)).await;
        if conn.dead().is_some() {
            break;
        }
        let frame = match ex.framing {
            Framing::Kafka => ctx.identities().rewrite(ex.request()),
            Framing::SaslToken => ex.request().to_vec(),
        };
        let now = Instant::now();
        if step.expect != Expect::Nothing {
            let deadline = (step.expect != Expect::Maybe)
                .then(|| now + ctx.scaled(ex.latency_micros().unwrap_or(0)) + ctx.timeout);
            conn.lock().pending.push_back(Pending {
                step: next,
                deadline,
                sent_at: now,
                sent: frame.clone(),
            });
        }
        let written = wr.write_all(&frame).await;
        ctx.order.sent(step.index);
        if let Err(e) = written {
            let why = format!("writing to the connection: {e}");
            conn.on_end(why);
            next += 1;
            break;
        }
        if step.expect == Expect::Nothing {
            conn.settle(next, Some(frame), Live::Nothing);
        }
        next += 1;
    }
    // What could not be sent.
    let why = conn.dead().unwrap_or_else(|| "the connection ended".into());
    for j in next..n {
        ctx.order.done(conn.steps[j].index);
        let open = {
            let g = conn.lock();
            g.settled[j].is_none() && !g.pending.iter().any(|p| p.step == j)
        };
        if open {
            conn.settle(j, None, Live::NotSent(why.clone()));
        }
    }
    // The answers owed, then the close where the capture has it.
    let owed = |g: &Inner| {
        g.pending
            .iter()
            .all(|p| conn.steps[p.step].expect == Expect::Maybe)
    };
    conn.wait(None, owed).await;
    match plan.closed {
        // The capture's broker closed it: the live one is given a moment to do the same (a
        // request it should have closed on is waited for above, until its deadline).
        Some((at, ClosedBy::Broker)) => {
            let by = ctx.at(at).max(Instant::now()) + Duration::from_secs(1);
            conn.wait(Some(by), |_| false).await;
        }
        Some((at, ClosedBy::Client)) => conn.wait(Some(ctx.at(at)), |_| false).await,
        None => {}
    }
    conn.lock().closing = true;
    let _ = wr.shutdown().await;
    drop(wr);
    // The reader ends with the connection; give the broker a moment to close its side.
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        let mut rx = conn.changed.subscribe();
        while conn.dead().is_none() {
            if rx.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    if ended.is_err() || !reader.is_finished() {
        reader.abort();
        conn.on_end("the replay closed the connection".into());
    }
}
