//! Carrying a scenario out: a fresh embedded broker with the scenario's settings, then each step
//! in order, each a marker in the store, each expectation checked with its evidence. Stops at
//! the first step whose expectations do not all hold (the rest are reported as not run).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::broker::{self, BrokerConfig, BrokerHandle};
use crate::capture::{Exchange, Status, Store, StoreLimits};
use crate::control::Control;
use crate::diagnose::{self, DiagnoseHandle, Health};
use crate::filter::Subject;
use crate::settings::{Knobs, Settings};

use super::{Action, ClientAction, ClientRun, Expectation, Program, Scenario, Send, SendBody};

/// What happened to one expectation.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// What was expected (`outcome stalled`, `response api == Produce`).
    pub expected: String,
    pub held: bool,
    /// What was seen.
    pub evidence: String,
}

/// One step's result.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// From 1.
    pub index: usize,
    pub name: String,
    /// What the step did, in a few words (`kafka-python-2 produce 1 to scenario`).
    pub did: String,
    /// `false` when a step before it failed.
    pub ran: bool,
    pub passed: bool,
    pub outcomes: Vec<Outcome>,
    pub elapsed_ms: f64,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub file: String,
    pub broker: String,
    pub passed: bool,
    pub steps: Vec<StepReport>,
}

impl StepReport {
    /// One line: `step 2/4 PASS  name: did · outcome stalled (evidence) · ...`.
    pub fn line(&self, total: usize) -> String {
        let verdict = match (self.ran, self.passed) {
            (false, _) => "SKIP",
            (true, true) => "PASS",
            (true, false) => "FAIL",
        };
        let mut s = format!("step {}/{total} {verdict} {}", self.index, self.name);
        if !self.did.is_empty() {
            s.push_str(&format!(": {}", self.did));
        }
        if !self.ran {
            s.push_str(" (not run: an earlier step failed)");
        }
        for o in &self.outcomes {
            s.push_str(&format!(
                " · {} {} ({})",
                if o.held { "ok" } else { "NOT" },
                o.expected,
                o.evidence
            ));
        }
        s
    }
}

/// Everything a run works on.
pub struct Runner {
    pub scenario: Scenario,
    pub store: Arc<Store>,
    pub settings: Arc<Settings>,
    pub detector: DiagnoseHandle,
    pub broker: Option<BrokerHandle>,
    pub control: Control,
    conns: HashMap<String, (TcpStream, i32)>,
    /// Where the client programs are (the repository).
    root: Option<std::path::PathBuf>,
}

impl Runner {
    /// A store, settings with the scenario's stall thresholds, the stall detector and the
    /// broker (started by [`Runner::start`]).
    pub fn new(scenario: Scenario, root: Option<std::path::PathBuf>) -> Runner {
        let store = Store::new(StoreLimits::default());
        let settings = Settings::new(Knobs {
            stall: scenario.stall,
            ..Knobs::default()
        });
        let detector = diagnose::spawn(&store, settings.stall_thresholds());
        let table = detector.clone();
        let control = Control::new(settings.clone())
            .with_clients_hook(Box::new(move || table.render()))
            .with_markers(store.clone(), "scenario");
        Runner {
            scenario,
            store,
            settings,
            detector,
            broker: None,
            control,
            conns: HashMap::new(),
            root,
        }
    }

    /// Starts the broker on 127.0.0.1:0 with the scenario's settings and topics.
    pub async fn start(&mut self) -> anyhow::Result<SocketAddr> {
        for line in &self.scenario.setup {
            if let Some(r) = self.control.run_line(line) {
                anyhow::ensure!(r.ok, "{line}: {}", r.message);
            }
        }
        self.start_broker().await
    }

    /// A broker on 127.0.0.1:0 with the scenario's topics, on this runner's store and settings.
    async fn start_broker(&mut self) -> anyhow::Result<SocketAddr> {
        let config = BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: self.scenario.advertise.clone(),
            ..BrokerConfig::default()
        };
        let handle = broker::start(config, self.store.clone(), self.settings.clone()).await?;
        for (name, partitions) in &self.scenario.topics {
            handle.create_topic(name, *partitions)?;
        }
        let addr = handle.local_addr;
        self.broker = Some(handle);
        Ok(addr)
    }

    fn bootstrap(&self) -> String {
        self.broker
            .as_ref()
            .map_or_else(String::new, |b| b.local_addr.to_string())
    }

    /// Runs step `i` (from 0) and checks its expectations.
    pub async fn step(&mut self, i: usize) -> StepReport {
        let total = self.scenario.steps.len();
        let step = self.scenario.steps[i].clone();
        let started = Instant::now();
        let started_us = crate::capture::now_micros();
        let marker =
            self.store
                .push_marker(format!("[scenario] step {}/{total}: {}", i + 1, step.name));
        let first_id = self.store.snapshot().last().map_or(0, |e| e.id) + 1;
        let mut changes = self.detector.subscribe();
        let mut outcomes = Vec::new();
        let did;
        let mut client: Option<crate::matrix::ProgramRun> = None;
        let mut sent: Option<Arc<Exchange>> = None;
        match &step.action {
            Action::Client(run) => {
                did = describe_client(run);
                match self.run_client(run).await {
                    Ok(r) => client = Some(r),
                    Err(e) => outcomes.push(Outcome {
                        expected: "the client to run".into(),
                        held: false,
                        evidence: e.to_string(),
                    }),
                }
            }
            Action::Send(send) => {
                did = format!(
                    "send {} v{} on {}",
                    crate::protocol::registry::api_name(send.api_key),
                    send.version,
                    send.conn
                );
                match self.send(send).await {
                    Ok(ex) => sent = Some(ex),
                    Err(e) => outcomes.push(Outcome {
                        expected: "the request to be answered".into(),
                        held: false,
                        evidence: e.to_string(),
                    }),
                }
            }
            Action::Set(lines) => {
                did = format!("set {}", lines.join("; "));
                for line in lines {
                    if let Some(r) = self.control.run_line(line) {
                        if !r.ok {
                            outcomes.push(Outcome {
                                expected: format!("`{line}` to apply"),
                                held: false,
                                evidence: r.message,
                            });
                        }
                    }
                }
            }
            Action::Wait(d) => {
                did = format!("wait {}", super::show_duration(*d));
                tokio::time::sleep(*d).await;
            }
            Action::Nothing => did = "check".into(),
        }
        // The step's exchanges: what the store took in since it started.
        let exchanges: Vec<Arc<Exchange>> = self
            .store
            .snapshot()
            .into_iter()
            .filter(|e| e.id >= first_id)
            .collect();
        for e in &step.expect {
            let o = match e {
                Expectation::Outcome(want) => match &client {
                    Some(r) => Outcome {
                        expected: e.describe(),
                        held: r.outcome == *want,
                        evidence: client_evidence(r),
                    },
                    None => not_seen(e, "the client did not run"),
                },
                Expectation::Message(re) => match &client {
                    Some(r) => {
                        let m = r.message.clone().unwrap_or_default();
                        Outcome {
                            expected: e.describe(),
                            held: re.is_match(&m),
                            evidence: if m.is_empty() {
                                "the client said nothing".into()
                            } else {
                                format!("the client said {m:?}")
                            },
                        }
                    }
                    None => not_seen(e, "the client did not run"),
                },
                Expectation::Response(f) => {
                    let pool: Vec<Arc<Exchange>> = match &sent {
                        Some(ex) => vec![ex.clone()],
                        None => exchanges.clone(),
                    };
                    match pool.iter().find(|ex| f.matches(&Subject::new(ex))) {
                        Some(ex) => Outcome {
                            expected: e.describe(),
                            held: true,
                            evidence: short(ex),
                        },
                        None => Outcome {
                            expected: e.describe(),
                            held: false,
                            evidence: match (&sent, pool.len()) {
                                (Some(ex), _) => format!("got {}", short(ex)),
                                (None, 0) => "no exchange in this step".into(),
                                (None, n) => format!("none of the step's {n} exchanges matched"),
                            },
                        },
                    }
                }
                Expectation::None(f) => {
                    match exchanges.iter().find(|ex| f.matches(&Subject::new(ex))) {
                        Some(ex) => Outcome {
                            expected: e.describe(),
                            held: false,
                            evidence: format!("matched {}", short(ex)),
                        },
                        None => Outcome {
                            expected: e.describe(),
                            held: true,
                            evidence: format!("none of {} exchanges", exchanges.len()),
                        },
                    }
                }
                Expectation::Health {
                    client: who,
                    state,
                    within,
                } => {
                    let deadline = started + *within;
                    self.health(
                        &mut changes,
                        who.as_deref(),
                        *state,
                        started_us,
                        deadline,
                        e,
                    )
                    .await
                }
                Expectation::Acked(want) => match &client {
                    Some(r) => {
                        let acked = produced(r).count() as u64;
                        Outcome {
                            expected: e.describe(),
                            held: acked == *want,
                            evidence: format!("the client reported {acked} acked"),
                        }
                    }
                    None => not_seen(e, "the client did not run"),
                },
                Expectation::Recorded { frame, ignore } => match &sent {
                    Some(ex) => recorded(e, ex, frame, ignore),
                    None => not_seen(e, "no request was sent"),
                },
                Expectation::Consumed(want) => match &client {
                    Some(r) => {
                        let consumed = events(r, "consumed").count() as u64;
                        Outcome {
                            expected: e.describe(),
                            held: consumed == *want,
                            evidence: format!("the client reported {consumed} consumed"),
                        }
                    }
                    None => not_seen(e, "the client did not run"),
                },
                Expectation::Offsets(want) => match &client {
                    Some(r) => {
                        let offsets: Vec<Option<i64>> =
                            produced(r).map(|j| j["offset"].as_i64()).collect();
                        let with = offsets.iter().filter(|o| o.is_some()).count();
                        Outcome {
                            expected: e.describe(),
                            held: !offsets.is_empty()
                                && if *want {
                                    with == offsets.len()
                                } else {
                                    with == 0
                                },
                            evidence: format!("{with} of {} acks carried an offset", offsets.len()),
                        }
                    }
                    None => not_seen(e, "the client did not run"),
                },
                Expectation::Lint {
                    code,
                    message,
                    want,
                } => {
                    let judged = exchanges.iter().flat_map(|ex| {
                        let findings = ex.dissect().verdict.findings;
                        findings.into_iter().map(move |f| (ex.clone(), f))
                    });
                    let hits: Vec<_> = judged
                        .filter(|(_, f)| match (code, message) {
                            (None, None) => f.level >= chronik_protocol::lint::Level::Warning,
                            _ => {
                                code.is_none_or(|c| f.code == c)
                                    && message.as_ref().is_none_or(|m| m.is_match(&f.message))
                            }
                        })
                        .collect();
                    Outcome {
                        expected: e.describe(),
                        held: hits.is_empty() != *want,
                        evidence: match hits.first() {
                            Some((ex, f)) => format!(
                                "{} found, e.g. on {}: {} {}: {}",
                                hits.len(),
                                ex.label(),
                                f.level,
                                f.code,
                                f.message
                            ),
                            None => format!("none among {} exchanges", exchanges.len()),
                        },
                    }
                }
                Expectation::Malformed(want) => {
                    let bad: Vec<&Arc<Exchange>> = exchanges
                        .iter()
                        .filter(|ex| {
                            matches!(ex.status, Status::Malformed { .. })
                                || ex.dissect().verdict.malformed()
                        })
                        .collect();
                    Outcome {
                        expected: e.describe(),
                        held: bad.is_empty() != *want,
                        evidence: match bad.first() {
                            Some(ex) => format!("{} malformed, e.g. {}", bad.len(), short(ex)),
                            None => format!("none of {} exchanges", exchanges.len()),
                        },
                    }
                }
            };
            outcomes.push(o);
        }
        let passed = outcomes.iter().all(|o| o.held);
        self.store.push_marker(format!(
            "[scenario] step {}/{total} {}",
            i + 1,
            if passed { "passed" } else { "FAILED" }
        ));
        let _ = marker;
        StepReport {
            index: i + 1,
            name: step.name,
            did,
            ran: true,
            passed,
            outcomes,
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        }
    }

    async fn run_client(&self, run: &ClientRun) -> anyhow::Result<crate::matrix::ProgramRun> {
        let bootstrap = self.bootstrap();
        let mut argv = match &run.program {
            Program::Known(kind) => {
                let root = self.root.clone().ok_or_else(|| {
                    anyhow::anyhow!(
                        "the client programs were not found (a chronik-tui checkout with \
                         scripts/test.sh --install-only run; or set CHRONIK_TUI_ROOT)"
                    )
                })?;
                crate::matrix::locate(&root, *kind).map_err(anyhow::Error::msg)?
            }
            Program::Command(argv) => argv
                .iter()
                .map(|a| a.replace("{bootstrap}", &bootstrap))
                .collect(),
        };
        if let Program::Known(_) = run.program {
            let mode = match run.action {
                ClientAction::Produce => "produce",
                ClientAction::Consume => "consume",
            };
            argv.extend(
                [
                    mode,
                    &bootstrap,
                    &run.topic,
                    &run.group,
                    &run.count.to_string(),
                    &run.compression,
                    "0",
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            argv.extend(run.args.iter().cloned());
        }
        crate::matrix::run_program(&argv, run.timeout).await
    }

    /// Sends a request on a named connection (opened on first use) and waits for its exchange
    /// to be captured: answered, or unanswered when the broker does not answer within 10 s.
    async fn send(&mut self, send: &Send) -> anyhow::Result<Arc<Exchange>> {
        let addr = self
            .broker
            .as_ref()
            .map(|b| b.local_addr)
            .ok_or_else(|| anyhow::anyhow!("no broker"))?;
        if !self.conns.contains_key(&send.conn) {
            let s = TcpStream::connect(addr).await?;
            self.conns.insert(send.conn.clone(), (s, 0));
        }
        let (stream, last_corr) = self.conns.get_mut(&send.conn).expect("opened above");
        // Hex carries its own header: its correlation id is the one the answer will have.
        let in_hex = match &send.body {
            SendBody::Hex(b) => b
                .get(4..8)
                .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]])),
            SendBody::Fields(_) => None,
        };
        let corr = send.correlation_id.or(in_hex).unwrap_or(*last_corr + 1);
        *last_corr = corr;
        let frame = match &send.body {
            SendBody::Fields(input) => chronik_protocol::encode::request(
                send.api_key,
                send.version,
                corr,
                send.client_id.as_deref(),
                input,
            )?,
            SendBody::Hex(bytes) => chronik_protocol::frame::with_size_prefix(bytes),
        };
        let local = stream.local_addr()?;
        stream.write_all(&frame).await?;
        // Read the answer (if any comes) so the connection stays usable.
        let mut len = [0u8; 4];
        let answered =
            tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut len)).await;
        if let Ok(Ok(_)) = answered {
            let n = i32::from_be_bytes(len).max(0) as usize;
            let mut rest = vec![0u8; n.min(64 << 20)];
            stream.read_exact(&mut rest).await?;
        }
        // The broker stores the exchange when it has written the answer.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let found = self
                .store
                .snapshot()
                .into_iter()
                .rev()
                .find(|e| e.peer() == local && e.correlation_id == corr);
            if let Some(ex) = found {
                return Ok(ex);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the broker recorded no exchange for correlation id {corr} on {}",
                send.conn
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether a connection of a client (client id glob) reached `state` by `deadline`: from
    /// the detector's changes since the step started, its table now, or by waiting.
    async fn health(
        &self,
        changes: &mut tokio::sync::broadcast::Receiver<diagnose::StateChange>,
        who: Option<&str>,
        state: Health,
        since_us: i64,
        deadline: Instant,
        e: &Expectation,
    ) -> Outcome {
        let matches = |client: Option<&str>| match who {
            None => true,
            Some(glob) => client.is_some_and(|c| crate::settings::glob_match(glob, c)),
        };
        loop {
            while let Ok(c) = changes.try_recv() {
                if c.to == state && matches(c.client_id.as_deref()) {
                    let after = (crate::capture::now_micros() - since_us).max(0) as f64 / 1e6;
                    return Outcome {
                        expected: e.describe(),
                        held: true,
                        evidence: format!("{} (seen {after:.1} s into the step)", c.line()),
                    };
                }
            }
            if let Some(c) = self
                .detector
                .connections()
                .into_iter()
                .find(|c| c.health == state && matches(c.client_id.as_deref()))
            {
                return Outcome {
                    expected: e.describe(),
                    held: true,
                    evidence: format!(
                        "conn {} {} is {state}",
                        c.conn,
                        c.client_id.as_deref().unwrap_or("-")
                    ),
                };
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = self
                    .detector
                    .connections()
                    .into_iter()
                    .filter(|c| matches(c.client_id.as_deref()))
                    .map(|c| format!("conn {} {}", c.conn, c.health))
                    .collect();
                return Outcome {
                    expected: e.describe(),
                    held: false,
                    evidence: if seen.is_empty() {
                        "no such client connected".into()
                    } else {
                        seen.join(", ")
                    },
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the broker and starts a fresh one (new partition logs, the scenario's topics) on
    /// the same store and settings; the settings stay as they are now.
    pub async fn restart(&mut self) -> anyhow::Result<SocketAddr> {
        self.stop().await;
        self.store
            .push_marker("[scenario] broker restarted".to_string());
        self.start_broker().await
    }

    /// Stops the broker (its open connections are captured as closed).
    pub async fn stop(&mut self) {
        self.conns.clear();
        if let Some(b) = self.broker.take() {
            b.shutdown().await;
        }
    }
}

/// The events of one kind a client program reported (`produced`, `consumed`).
fn events<'a>(
    r: &'a crate::matrix::ProgramRun,
    kind: &'a str,
) -> impl Iterator<Item = &'a serde_json::Value> {
    r.events
        .iter()
        .map(|(_, j)| j)
        .filter(move |j| j["event"] == kind)
}

/// The acknowledgements a client program reported.
fn produced(r: &crate::matrix::ProgramRun) -> impl Iterator<Item = &serde_json::Value> {
    events(r, "produced")
}

/// The live response against the recorded one, field by field (what `replay` does).
fn recorded(
    e: &Expectation,
    ex: &Exchange,
    frame: &[u8],
    ignore: &crate::replay::ignore::IgnoreList,
) -> Outcome {
    use chronik_protocol::diff::{self, Side};
    let Some(live) = ex.response() else {
        return not_seen(e, "no response came");
    };
    let old = chronik_protocol::dissect_response(frame, ex.api_key, ex.api_version);
    let new = chronik_protocol::dissect_response(live, ex.api_key, ex.api_version);
    let d = diff::diff(Side::new(&old, frame), Side::new(&new, live), &|id| {
        ignore.ignores(id)
    });
    let counted: Vec<String> = d.counted().map(|x| x.describe()).collect();
    Outcome {
        expected: e.describe(),
        held: counted.is_empty(),
        evidence: if counted.is_empty() {
            format!("the same outside the ignore list ({})", short(ex))
        } else {
            let more = counted.len().saturating_sub(3);
            let mut text = counted.into_iter().take(3).collect::<Vec<_>>().join("; ");
            if more > 0 {
                text.push_str(&format!("; and {more} more"));
            }
            text
        },
    }
}

fn not_seen(e: &Expectation, why: &str) -> Outcome {
    Outcome {
        expected: e.describe(),
        held: false,
        evidence: why.into(),
    }
}

fn describe_client(run: &ClientRun) -> String {
    let who = match &run.program {
        Program::Known(k) => k.name.to_string(),
        Program::Command(argv) => argv.join(" "),
    };
    match run.action {
        ClientAction::Produce => format!("{who} produces {} to {}", run.count, run.topic),
        ClientAction::Consume => format!(
            "{who} consumes {} from {} in group {}",
            run.count, run.topic, run.group
        ),
    }
}

fn client_evidence(r: &crate::matrix::ProgramRun) -> String {
    let mut s = format!("the client: {}", r.outcome.word());
    if let Some(m) = &r.message {
        s.push_str(&format!(", {m:?}"));
    }
    let produced = r
        .events
        .iter()
        .filter(|(_, j)| j["event"] == "produced")
        .count();
    let consumed = r
        .events
        .iter()
        .filter(|(_, j)| j["event"] == "consumed")
        .count();
    if produced > 0 {
        s.push_str(&format!(", {produced} acked"));
    }
    if consumed > 0 {
        s.push_str(&format!(", {consumed} consumed"));
    }
    s.push_str(&format!(" in {:.1} s", r.elapsed_ms / 1000.0));
    s
}

/// `#12 Produce v7 corr=2: topics=orders ... ok`.
fn short(ex: &Exchange) -> String {
    let d = ex.dissect();
    format!(
        "#{} {} v{} corr={}: {}",
        ex.id,
        crate::protocol::registry::api_name(ex.api_key),
        ex.api_version,
        ex.correlation_id,
        crate::capture::render::summarize(&d)
    )
}

/// Runs a whole scenario headless: every step in order until one fails (or every step, with
/// `keep_going`). `root` is where the client programs are.
pub async fn run(
    scenario: Scenario,
    root: Option<std::path::PathBuf>,
    keep_going: bool,
    mut each: impl FnMut(&StepReport, usize),
) -> anyhow::Result<ScenarioReport> {
    let total = scenario.steps.len();
    let name = scenario.name.clone();
    let file = scenario.file.display().to_string();
    let mut runner = Runner::new(scenario, root);
    let addr = runner.start().await?;
    let mut steps = Vec::new();
    let mut failed = false;
    for i in 0..total {
        let report = if failed && !keep_going {
            let s = &runner.scenario.steps[i];
            StepReport {
                index: i + 1,
                name: s.name.clone(),
                did: String::new(),
                ran: false,
                passed: false,
                outcomes: Vec::new(),
                elapsed_ms: 0.0,
            }
        } else {
            runner.step(i).await
        };
        failed |= !report.passed;
        each(&report, total);
        steps.push(report);
    }
    runner.stop().await;
    Ok(ScenarioReport {
        scenario: name,
        file,
        broker: addr.to_string(),
        passed: !failed,
        steps,
    })
}
