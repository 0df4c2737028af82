//! The client compatibility matrix: every real client found installed runs one short
//! produce-and-ack scenario against an embedded broker in each throttle placement mode, with a
//! bounded time per cell. Each cell says what the client reported (ack and latency, or its own
//! error or timeout), which API versions it used (from the store), what the broker saw, and
//! the stall detector's verdict ([`crate::diagnose`]) with its evidence, and whether the two
//! agree.
//!
//! The clients are the programs of the test harness (`tests/clients/`, installed by
//! `scripts/test.sh`), run in their `produce` mode with one message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use crate::broker::{self, BrokerConfig};
use crate::capture::{now_micros, ClosedBy, ConnEventKind, Exchange, Status, Store, StoreLimits};
use crate::diagnose::{self, Health, ThresholdsMs};
use crate::protocol::api_key;
use crate::protocol::registry::api_name;
use crate::settings::{Knobs, Settings, StallThresholds, ThrottlePlacement};

/// Most state changes a cell keeps (a client that reconnects in a loop makes hundreds).
pub const MAX_CHANGES: usize = 12;

/// Bytes of a client's stderr kept (the last ones).
const STDERR_KEPT: usize = 8192;

/// Which headers a client program's producer puts on every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    /// `idx` = the message number in ASCII decimal.
    Index,
    /// The same `name=value` on every message (kcat's `-H`).
    Fixed(&'static str, &'static str),
    /// None (legacy message sets, magic 0 and 1, have no headers).
    Absent,
}

/// Every compression codec.
const ALL_CODECS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];

/// One client program of `tests/clients/` (installed by `scripts/test.sh`): what the matrix
/// runs and what the tests drive. The one table of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKind {
    /// Short name, as in `--clients`.
    pub name: &'static str,
    /// What it is, for the table.
    pub label: &'static str,
    /// Compression codecs its producer supports.
    pub compressions: &'static [&'static str],
    /// Headers its producer writes.
    pub headers: Headers,
    /// Whether its consumer is a group member that commits (rskafka reads by offset only).
    pub groups: bool,
}

const fn client(name: &'static str, label: &'static str) -> ClientKind {
    ClientKind {
        name,
        label,
        compressions: ALL_CODECS,
        headers: Headers::Index,
        groups: true,
    }
}

/// Every client of the test harness, in table order.
pub const CLIENTS: [ClientKind; 8] = [
    client("kafka-python", "kafka-python 3.x"),
    client("kafka-python-2", "kafka-python 2.0.2"),
    client("confluent", "confluent-kafka (librdkafka)"),
    client("aiokafka", "aiokafka"),
    ClientKind {
        headers: Headers::Fixed("src", "kcat"),
        ..client("kcat", "kcat (librdkafka)")
    },
    ClientKind {
        compressions: &["none", "gzip", "snappy"],
        ..client("kafkajs", "kafkajs")
    },
    client("sarama", "Go Sarama"),
    ClientKind {
        groups: false,
        ..client("rskafka", "rskafka")
    },
];

/// The client of a name in [`CLIENTS`].
pub fn client_kind(name: &str) -> Option<ClientKind> {
    CLIENTS.iter().copied().find(|k| k.name == name)
}

/// A client found installed: the command line before the program's MODE argument.
#[derive(Debug, Clone)]
pub struct FoundClient {
    pub kind: ClientKind,
    pub argv: Vec<String>,
}

/// A client that was asked for (or looked for) but is not installed.
#[derive(Debug, Clone, Serialize)]
pub struct MissingClient {
    pub client: String,
    pub reason: String,
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

fn need(path: PathBuf) -> Result<String, String> {
    if path.exists() {
        Ok(path.to_string_lossy().into_owned())
    } else {
        Err(format!("{} is missing", path.display()))
    }
}

fn python(root: &Path, venv: &str, script: &str) -> Result<Vec<String>, String> {
    Ok(vec![
        need(root.join("target").join(venv).join("bin/python"))?,
        need(root.join("tests/clients/python").join(script))?,
    ])
}

/// The command line of one client under `root` (the repository root), or why it is not there.
pub fn locate(root: &Path, kind: ClientKind) -> Result<Vec<String>, String> {
    match kind.name {
        "kafka-python" => python(root, "venv", "kafka_python_client.py"),
        "kafka-python-2" => python(root, "venv-kp2", "kafka_python_client.py"),
        "confluent" => python(root, "venv", "confluent_client.py"),
        "aiokafka" => python(root, "venv", "aiokafka_client.py"),
        "kcat" => {
            if !on_path("kcat") {
                return Err("kcat is not on PATH".into());
            }
            python(root, "venv", "kcat_client.py")
        }
        "kafkajs" => {
            if !on_path("node") {
                return Err("node is not on PATH".into());
            }
            need(root.join("tests/clients/node/node_modules/kafkajs/package.json"))?;
            Ok(vec![
                "node".into(),
                need(root.join("tests/clients/node/kafkajs_client.js"))?,
            ])
        }
        "sarama" => Ok(vec![need(root.join("target/clients/sarama-client"))?]),
        "rskafka" => Ok(vec![need(
            root.join("target/rust-client/debug/rskafka-client"),
        )?]),
        other => Err(format!("unknown client {other}")),
    }
}

/// Finds the clients named in `wanted` (all of [`CLIENTS`] when `None`); unknown names and
/// clients not installed come back as missing.
pub fn discover(root: &Path, wanted: Option<&[String]>) -> (Vec<FoundClient>, Vec<MissingClient>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let kinds: Vec<Result<ClientKind, String>> = match wanted {
        None => CLIENTS.iter().copied().map(Ok).collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                client_kind(n).ok_or_else(|| {
                    let known: Vec<&str> = CLIENTS.iter().map(|k| k.name).collect();
                    format!("unknown client {n:?} (known: {})", known.join(", "))
                })
            })
            .collect(),
    };
    for (i, kind) in kinds.into_iter().enumerate() {
        match kind.and_then(|k| locate(root, k).map(|argv| FoundClient { kind: k, argv })) {
            Ok(f) => found.push(f),
            Err(reason) => missing.push(MissingClient {
                client: match wanted {
                    Some(n) => n[i].clone(),
                    None => CLIENTS[i].name.to_string(),
                },
                reason,
            }),
        }
    }
    (found, missing)
}

/// Names the repository root for `chronik-tui matrix` when `--root` is not given.
pub const ROOT_ENV: &str = "CHRONIK_TUI_ROOT";

/// The repository root the clients are looked for under, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub dir: PathBuf,
    /// `--root`, `$CHRONIK_TUI_ROOT`, or the checkout around the current directory or around
    /// the executable.
    pub from: &'static str,
}

/// Whether `dir` is a chronik-tui checkout: it holds `tests/clients` and a Cargo.toml whose
/// package is chronik-tui.
fn is_checkout(dir: &Path) -> bool {
    dir.join("tests/clients").is_dir()
        && std::fs::read_to_string(dir.join("Cargo.toml"))
            .ok()
            .and_then(|s| s.parse::<toml::Table>().ok())
            .is_some_and(|t| {
                t.get("package")
                    .and_then(|p| p.get("name"))
                    .and_then(|n| n.as_str())
                    == Some("chronik-tui")
            })
}

/// Finds the repository root whose `target/` and `tests/clients/` hold the clients: `flag`
/// (`--root`), else `$CHRONIK_TUI_ROOT`, else the nearest chronik-tui checkout holding the
/// current directory, else the nearest one holding the executable (`target/debug/chronik-tui`,
/// `target/release/chronik-tui`, `cargo run`). Fails with a line naming where it looked.
pub fn resolve_root(flag: Option<&Path>) -> Result<Root, String> {
    find_root(
        flag,
        std::env::var_os(ROOT_ENV),
        std::env::current_dir().ok(),
        std::env::current_exe().ok(),
    )
}

fn find_root(
    flag: Option<&Path>,
    env: Option<std::ffi::OsString>,
    cwd: Option<PathBuf>,
    exe: Option<PathBuf>,
) -> Result<Root, String> {
    if let Some(dir) = flag {
        return Ok(Root {
            dir: dir.to_path_buf(),
            from: "--root",
        });
    }
    if let Some(dir) = env.filter(|v| !v.is_empty()) {
        return Ok(Root {
            dir: dir.into(),
            from: "$CHRONIK_TUI_ROOT",
        });
    }
    let mut looked = Vec::new();
    for (path, from) in [
        (cwd, "the checkout around the current directory"),
        (exe, "the checkout around the executable"),
    ] {
        let Some(path) = path else { continue };
        if let Some(dir) = path.ancestors().find(|d| is_checkout(d)) {
            return Ok(Root {
                dir: dir.to_path_buf(),
                from,
            });
        }
        looked.push(path.display().to_string());
    }
    Err(format!(
        "no chronik-tui checkout to find the clients in: no --root, no ${ROOT_ENV}, and no \
         directory holding {} has tests/clients and chronik-tui's Cargo.toml; pass --root DIR or \
         set {ROOT_ENV}=DIR",
        looked.join(" or ")
    ))
}

/// Fails, with one line naming where each client was looked for and how to install them, when
/// no client was found under `root`; clients missing next to ones that ran are no failure
/// ([`render_table`] lists them).
pub fn check_some_ran(m: &Matrix, root: &Root) -> Result<(), String> {
    if !m.clients.is_empty() {
        return Ok(());
    }
    let looked: Vec<String> = m
        .missing
        .iter()
        .map(|miss| format!("{}: {}", miss.client, miss.reason))
        .collect();
    Err(format!(
        "no client could run: looked under {} ({}): {}; install them with \
         scripts/test.sh --install-only (in the chronik-tui repository)",
        root.dir.display(),
        root.from,
        looked.join("; ")
    ))
}

/// What the matrix runs.
#[derive(Debug, Clone)]
pub struct MatrixOptions {
    /// Repository root (where `target/venv` and `tests/clients` are).
    pub root: PathBuf,
    /// Longest a cell may take; the client is killed after it.
    pub timeout: Duration,
    /// Client names (see [`CLIENTS`]); `None` for all.
    pub clients: Option<Vec<String>>,
    /// Placement modes, in column order.
    pub modes: Vec<ThrottlePlacement>,
    /// Cells run at the same time.
    pub jobs: usize,
    /// Address every cell's broker listens on (default 127.0.0.1:0, a free port per cell);
    /// with a fixed address, cells run one at a time. Useful for recording a capture.
    pub listen: Option<std::net::SocketAddr>,
    /// Highest version advertised per API key (e.g. Produce capped at 8, so that a client that
    /// would use a flexible version uses one where `front` applies: Chronik Stream 0.7.2 wrote
    /// `throttle_time_ms` before the responses in v1–v8).
    pub caps: BTreeMap<i16, i16>,
}

impl Default for MatrixOptions {
    fn default() -> Self {
        MatrixOptions {
            root: PathBuf::from("."),
            timeout: Duration::from_secs(15),
            clients: None,
            modes: ThrottlePlacement::ALL.to_vec(),
            jobs: 2,
            listen: None,
            caps: BTreeMap::new(),
        }
    }
}

/// How a cell ended, from the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The client reported its message acknowledged.
    Ok,
    /// The client gave up waiting (its own timeout) or was still waiting when the cell's time
    /// ran out.
    Stalled,
    /// The client reported another error (a parse error, a refused request, …).
    Error,
}

impl Outcome {
    /// The word used in the table.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Stalled => "stalled",
            Outcome::Error => "error",
        }
    }

    /// The outcome of a word ([`Outcome::word`]), any case.
    pub fn from_word(word: &str) -> Option<Outcome> {
        [Outcome::Ok, Outcome::Stalled, Outcome::Error]
            .into_iter()
            .find(|o| o.word().eq_ignore_ascii_case(word.trim()))
    }
}

/// What the broker saw during a cell, from the store.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BrokerView {
    /// Client ids seen in request headers.
    pub client_ids: Vec<String>,
    /// Client software `name version` from ApiVersions v3+, when sent.
    pub software: Vec<String>,
    /// Versions used, by API name.
    pub api_versions: BTreeMap<String, Vec<i16>>,
    /// Produce requests received.
    pub produce_requests: usize,
    /// Produce responses sent.
    pub produce_responses: usize,
    /// Connections opened.
    pub connections: usize,
    /// Connections the client closed (reason included).
    pub closed_by_client: Vec<String>,
    /// Notes the broker put on produce exchanges (placement used, …), deduplicated.
    pub produce_notes: Vec<String>,
}

/// The stall detector's view of a cell.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The most serious state any of the cell's connections reached (stalled, then retrying,
    /// then disconnecting, then healthy).
    pub health: Health,
    /// The first [`MAX_CHANGES`] state changes, as the headless view prints them
    /// (`# client conn=N ... -> ...: why`).
    pub changes: Vec<String>,
    /// How many state changes there were in all.
    pub changes_total: usize,
    /// The thresholds the detector used.
    pub thresholds_ms: ThresholdsMs,
}

fn severity(h: Health) -> u8 {
    match h {
        Health::Healthy => 0,
        Health::Disconnecting => 1,
        Health::Retrying => 2,
        Health::Stalled => 3,
    }
}

/// Whether the detector's verdict is the broker-side view of what the client reported: an ack
/// is healthy; a client that gave up waiting is stalled (or retrying, when it resent until its
/// timeout); a client that reported another error dropped the connection or resent.
pub fn agrees(outcome: Outcome, health: Health) -> bool {
    matches!(
        (outcome, health),
        (Outcome::Ok, Health::Healthy)
            | (Outcome::Stalled, Health::Stalled | Health::Retrying)
            | (Outcome::Error, Health::Disconnecting | Health::Retrying)
    )
}

/// One cell: one client in one placement mode.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// Client name (see [`CLIENTS`]).
    pub client: String,
    /// Placement mode the broker used.
    pub mode: ThrottlePlacement,
    pub outcome: Outcome,
    /// With `ok`: from the first Produce request reaching the broker to the client reporting
    /// the ack, in ms.
    pub ack_ms: Option<f64>,
    /// The offset the client reported for its message (`None`: it reported none; kcat never
    /// does, and a client that accepted a response without partition results cannot).
    pub acked_offset: Option<i64>,
    /// The client's own message (error, timeout), or why the cell was cut short.
    pub message: Option<String>,
    /// Whether the matrix killed the client at the cell's time limit.
    pub killed: bool,
    /// Whole cell, client start to end, in ms.
    pub elapsed_ms: f64,
    /// What the broker saw.
    pub broker: BrokerView,
    /// The stall detector's verdict.
    pub verdict: Verdict,
    /// Whether the verdict matches the client's own report (see [`agrees`]).
    pub agrees: bool,
}

impl Cell {
    /// Short text for the table: the client's outcome, then the detector's verdict, e.g.
    /// `ok 1.2 ms · healthy`, `stalled · stalled`, `error · disconnecting`.
    pub fn short(&self) -> String {
        format!(
            "{} · {}{}",
            self.client_short(),
            self.verdict.health,
            if self.agrees { "" } else { " (disagree)" }
        )
    }

    /// What the client reported: `ok 12.0 ms`, `stalled`, `error`.
    pub fn client_short(&self) -> String {
        match (self.outcome, self.ack_ms) {
            (Outcome::Ok, Some(ms)) if self.acked_offset.is_none() && self.client != "kcat" => {
                format!("ok {ms:.1} ms, no offset")
            }
            (Outcome::Ok, Some(ms)) => format!("ok {ms:.1} ms"),
            (o, _) => o.word().to_string(),
        }
    }
}

/// Whether a client's message says it gave up waiting.
pub fn is_timeout_message(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    ["timed out", "timeout", "time out", "timedout", "deadline"]
        .iter()
        .any(|w| m.contains(w))
}

fn tail(s: &str, n: usize) -> String {
    let s = s.trim();
    let start = s
        .char_indices()
        .rev()
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i);
    s[start..].to_string()
}

/// Summarises the store after a cell.
pub fn broker_view(exchanges: &[Arc<Exchange>], store: &Store) -> BrokerView {
    let mut v = BrokerView::default();
    for ex in exchanges {
        if let Some(id) = ex.client_id() {
            if !v.client_ids.iter().any(|c| c == id) {
                v.client_ids.push(id.to_string());
            }
        }
        let versions = v.api_versions.entry(api_name(ex.api_key)).or_default();
        if !versions.contains(&ex.api_version) {
            versions.push(ex.api_version);
            versions.sort_unstable();
        }
        if ex.api_key == api_key::PRODUCE {
            v.produce_requests += 1;
            if ex.status == Status::Answered {
                v.produce_responses += 1;
            }
            for n in ex.notes() {
                if !v.produce_notes.contains(n) {
                    v.produce_notes.push(n.clone());
                }
            }
        }
    }
    for ev in store.conn_events() {
        match &ev.kind {
            ConnEventKind::Opened => v.connections += 1,
            ConnEventKind::Closed {
                by: ClosedBy::Client,
                reason,
            } => v
                .closed_by_client
                .push(format!("conn {}: {reason}", ev.conn)),
            ConnEventKind::Closed { .. } => {}
        }
    }
    v
}

/// What a client program did: its JSON-line events (with when each arrived), how it ended in
/// the matrix's words, and the evidence.
#[derive(Debug, Clone)]
pub struct ProgramRun {
    /// Every JSON line it printed, with the time it arrived (µs since the epoch).
    pub events: Vec<(i64, serde_json::Value)>,
    pub outcome: Outcome,
    /// The client's own message (error, timeout), or why the run was cut short.
    pub message: Option<String>,
    /// Killed at the time limit.
    pub killed: bool,
    pub exit: Option<std::process::ExitStatus>,
    pub elapsed_ms: f64,
}

/// Runs a client program of `tests/clients/` (`argv`: the program and every argument) until it
/// ends or `timeout` passes (then it is killed), reading its JSON lines as they come. The
/// outcome: `ok` when it said `done`, reported no `error` and exited 0; `stalled` when its error
/// says it gave up waiting, or it was killed; `error` otherwise, with its message (or the end
/// of its stderr).
pub async fn run_program(argv: &[String], timeout: Duration) -> anyhow::Result<ProgramRun> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting {}: {e}", argv.join(" ")))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // The end of the client's stderr (the part that says why it stopped), bounded.
    let stderr_task = tokio::spawn(async move {
        let mut kept: Vec<u8> = Vec::new();
        if let Some(mut s) = stderr {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = s.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > STDERR_KEPT {
                    kept.drain(..kept.len() - STDERR_KEPT);
                }
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    });
    let mut events = Vec::new();
    let read = async {
        if let Some(out) = stdout {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(j) = serde_json::from_str::<serde_json::Value>(&line) {
                    events.push((now_micros(), j));
                }
            }
        }
        child.wait().await
    };
    let waited = tokio::time::timeout(timeout, read).await;
    let killed = waited.is_err();
    let exit = match waited {
        Ok(Ok(status)) => Some(status),
        _ => {
            let _ = child.kill().await;
            None
        }
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let stderr_text = match tokio::time::timeout(Duration::from_secs(2), stderr_task).await {
        Ok(Ok(s)) => s,
        _ => String::new(),
    };
    let said = |kind: &str| {
        events
            .iter()
            .rev()
            .find(|(_, j)| j["event"] == kind)
            .and_then(|(_, j)| j["message"].as_str().map(str::to_string))
    };
    let done = events.iter().any(|(_, j)| j["event"] == "done");
    let error = events
        .iter()
        .find(|(_, j)| j["event"] == "error")
        .map(|(_, j)| j["message"].as_str().unwrap_or("").to_string());
    let ok = done && error.is_none() && exit.is_some_and(|s| s.success());
    let (outcome, message) = if ok {
        (Outcome::Ok, None)
    } else if let Some(msg) = error {
        let o = if is_timeout_message(&msg) {
            Outcome::Stalled
        } else {
            Outcome::Error
        };
        (o, Some(msg))
    } else if killed {
        let mut msg = format!(
            "no result within {:.0} s; the client was killed",
            timeout.as_secs_f64()
        );
        if let Some(l) = said("log") {
            msg.push_str(&format!("; its last log line: {l}"));
        }
        let e = tail(&stderr_text, 300);
        if !e.is_empty() {
            msg.push_str(&format!("; stderr: {e}"));
        }
        (Outcome::Stalled, Some(msg))
    } else {
        let e = tail(&stderr_text, 500);
        (
            Outcome::Error,
            Some(format!(
                "exited {} without finishing{}",
                exit.map_or("?".into(), |s| s.to_string()),
                if e.is_empty() {
                    String::new()
                } else {
                    format!("; stderr: {e}")
                }
            )),
        )
    };
    Ok(ProgramRun {
        events,
        outcome,
        message,
        killed,
        exit,
        elapsed_ms,
    })
}

/// Runs one cell: a fresh embedded broker on 127.0.0.1:0 in `mode`, the client producing one
/// message with acks=all, killed after `timeout`.
pub async fn run_cell(
    client: &FoundClient,
    mode: ThrottlePlacement,
    timeout: Duration,
    listen: Option<std::net::SocketAddr>,
    caps: &BTreeMap<i16, i16>,
) -> anyhow::Result<Cell> {
    // The client's own limits sit below the cell's so that it reports in its own words, and
    // the detector's below the client's so that it can see a stall before the client gives up.
    let total_ms = timeout.as_millis() as u64;
    let client_timeout_ms = (total_ms * 3 / 4).max(1000);
    let request_timeout_ms = (total_ms * 2 / 5).max(500);
    let defaults = StallThresholds::default();
    let half = Duration::from_millis(client_timeout_ms / 2);
    let stall = StallThresholds {
        silence: defaults.silence.min(half),
        unanswered: defaults.unanswered.min(half),
        ..defaults
    };
    let store = Store::new(StoreLimits::default());
    let settings = Settings::new(Knobs {
        placement: mode,
        stall,
        caps: caps.clone(),
        ..Knobs::default()
    });
    let detector = diagnose::spawn(&store, settings.stall_thresholds());
    let mut changes_rx = detector.subscribe();
    let config = BrokerConfig {
        listen: listen.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        ..BrokerConfig::default()
    };
    let handle = broker::start(config, store.clone(), settings).await?;
    let bootstrap = handle.local_addr.to_string();
    let topic = format!("matrix-{}-{}", client.kind.name, mode.word());
    let mut argv = client.argv.clone();
    argv.extend(
        ["produce", &bootstrap, &topic, "matrix", "1", "none", "0"]
            .iter()
            .map(|s| s.to_string()),
    );
    argv.push(format!("timeout_ms={client_timeout_ms}"));
    argv.push(format!("request_timeout_ms={request_timeout_ms}"));
    let run = run_program(&argv, timeout).await?;
    let (acked_at, acked_offset) = run
        .events
        .iter()
        .find(|(_, j)| j["event"] == "produced")
        .map_or((None, None), |(at, j)| (Some(*at), j["offset"].as_i64()));
    let (killed, elapsed_ms) = (run.killed, run.elapsed_ms);
    // Let the broker record the connections' ends, and the detector take them in, before
    // looking.
    tokio::time::sleep(Duration::from_millis(100)).await;
    handle.shutdown().await;
    tokio::time::sleep(diagnose::TICK * 2).await;
    let mut changes = Vec::new();
    let mut changes_total = 0;
    let mut worst = Health::Healthy;
    while let Ok(c) = changes_rx.try_recv() {
        if severity(c.to) > severity(worst) {
            worst = c.to;
        }
        changes_total += 1;
        if changes.len() < MAX_CHANGES {
            changes.push(c.line());
        }
    }
    let mut software = Vec::new();
    for c in detector.connections() {
        if severity(c.health) > severity(worst) {
            worst = c.health;
        }
        if let Some(s) = c.software() {
            if !software.contains(&s) {
                software.push(s);
            }
        }
    }
    let verdict = Verdict {
        health: worst,
        changes,
        changes_total,
        thresholds_ms: stall.into(),
    };
    let exchanges = store.snapshot();
    let mut view = broker_view(&exchanges, &store);
    view.software = software;
    let first_produce = exchanges
        .iter()
        .find(|e| e.api_key == api_key::PRODUCE)
        .map(|e| e.request_at);
    let (outcome, message) = (run.outcome, run.message.clone());
    let ack_ms = match (outcome, acked_at, first_produce) {
        (Outcome::Ok, Some(a), Some(p)) => Some((a - p) as f64 / 1000.0),
        _ => None,
    };
    Ok(Cell {
        agrees: agrees(outcome, verdict.health),
        verdict,
        client: client.kind.name.to_string(),
        mode,
        outcome,
        ack_ms,
        acked_offset,
        message,
        killed,
        elapsed_ms,
        broker: view,
    })
}

/// The matrix's result: the cells in client-then-mode order, and the clients not found.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub modes: Vec<ThrottlePlacement>,
    pub clients: Vec<String>,
    pub cells: Vec<Cell>,
    pub missing: Vec<MissingClient>,
}

impl Matrix {
    /// The cell of one client in one mode.
    pub fn cell(&self, client: &str, mode: ThrottlePlacement) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.client == client && c.mode == mode)
    }
}

/// Runs every cell, `opts.jobs` at a time.
pub async fn run(opts: &MatrixOptions) -> anyhow::Result<Matrix> {
    let (found, missing) = discover(&opts.root, opts.clients.as_deref());
    let parallel = if opts.listen.is_some() {
        1
    } else {
        opts.jobs.max(1)
    };
    let jobs = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::new();
    for client in &found {
        for &mode in &opts.modes {
            let client = client.clone();
            let jobs = jobs.clone();
            let (timeout, listen, caps) = (opts.timeout, opts.listen, opts.caps.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = jobs.acquire_owned().await;
                run_cell(&client, mode, timeout, listen, &caps).await
            }));
        }
    }
    let mut cells = Vec::new();
    for t in tasks {
        cells.push(t.await??);
    }
    Ok(Matrix {
        modes: opts.modes.clone(),
        clients: found.iter().map(|f| f.kind.name.to_string()).collect(),
        cells,
        missing,
    })
}

/// The table, client × mode, then one detail line per cell that was not ok and the versions
/// each client used, then the clients not found.
pub fn render_table(m: &Matrix) -> String {
    let label = |name: &str| {
        CLIENTS
            .iter()
            .find(|k| k.name == name)
            .map_or(name.to_string(), |k| k.label.to_string())
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["client".to_string()];
    header.extend(m.modes.iter().map(|p| p.word().to_string()));
    header.push("Produce versions".to_string());
    rows.push(header);
    for c in &m.clients {
        let mut row = vec![label(c)];
        let mut versions: Vec<i16> = Vec::new();
        for &mode in &m.modes {
            let cell = m.cell(c, mode);
            row.push(cell.map_or("-".into(), Cell::short));
            if let Some(v) = cell.and_then(|c| c.broker.api_versions.get("Produce")) {
                for x in v {
                    if !versions.contains(x) {
                        versions.push(*x);
                    }
                }
            }
        }
        versions.sort_unstable();
        row.push(if versions.is_empty() {
            "-".into()
        } else {
            versions
                .iter()
                .map(|v| format!("v{v}"))
                .collect::<Vec<_>>()
                .join(",")
        });
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (n, r) in rows.iter().enumerate() {
        out.push_str("| ");
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(&cells.join(" | "));
        out.push_str(" |\n");
        if n == 0 {
            out.push('|');
            for w in &widths {
                out.push_str(&"-".repeat(w + 2));
                out.push('|');
            }
            out.push('\n');
        }
    }
    out.push('\n');
    for cell in &m.cells {
        let b = &cell.broker;
        out.push_str(&format!(
            "- {} / {}: {}{}; broker: {} produce request(s), {} response(s), {} connection(s){}\n",
            label(&cell.client),
            cell.mode,
            cell.client_short(),
            cell.message
                .as_deref()
                .map_or(String::new(), |m| format!(" — {}", tail(m, 300))),
            b.produce_requests,
            b.produce_responses,
            b.connections,
            if b.closed_by_client.is_empty() {
                String::new()
            } else {
                format!(", {} closed by the client", b.closed_by_client.len())
            },
        ));
        out.push_str(&format!(
            "  detector: {}{}\n",
            cell.verdict.health,
            if cell.agrees {
                ""
            } else {
                " (does not match the client's report)"
            }
        ));
        for ch in cell.verdict.changes.iter().take(4) {
            out.push_str(&format!("  {ch}\n"));
        }
        if cell.verdict.changes_total > 4 {
            out.push_str(&format!(
                "  … {} more state changes\n",
                cell.verdict.changes_total - 4
            ));
        }
    }
    if let Some(c) = m.cells.first() {
        out.push_str(&format!(
            "\ndetector thresholds: stall.close_after_response={}ms stall.silence={}ms \
             stall.unanswered={}ms\n",
            c.verdict.thresholds_ms.close_after_response,
            c.verdict.thresholds_ms.silence,
            c.verdict.thresholds_ms.unanswered
        ));
    }
    out.push('\n');
    for c in &m.clients {
        if let Some(cell) = m.cells.iter().find(|x| &x.client == c) {
            let v: Vec<String> = cell
                .broker
                .api_versions
                .iter()
                .map(|(api, vs)| {
                    format!(
                        "{api} {}",
                        vs.iter()
                            .map(|v| format!("v{v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                })
                .collect();
            out.push_str(&format!(
                "versions used by {} (client id {}; software {}): {}\n",
                label(c),
                cell.broker.client_ids.join(", "),
                if cell.broker.software.is_empty() {
                    "not sent".to_string()
                } else {
                    cell.broker.software.join(", ")
                },
                v.join("; ")
            ));
        }
    }
    for miss in &m.missing {
        out.push_str(&format!("not found: {}: {}\n", miss.client, miss.reason));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_words() {
        assert!(is_timeout_message(
            "KafkaTimeoutError: Timeout after waiting for 11.25 secs."
        ));
        assert!(is_timeout_message("Local: Message timed out"));
        assert!(!is_timeout_message("Buffer underrun decoding string"));
    }

    #[test]
    fn unknown_client_is_missing() {
        let (found, missing) = discover(Path::new("/nonexistent"), Some(&["nope".to_string()]));
        assert!(found.is_empty());
        assert_eq!(missing.len(), 1);
        assert!(missing[0].reason.contains("unknown client"));
    }

    #[test]
    fn agreement_table() {
        assert!(agrees(Outcome::Ok, Health::Healthy));
        assert!(!agrees(Outcome::Ok, Health::Disconnecting));
        assert!(agrees(Outcome::Stalled, Health::Stalled));
        assert!(!agrees(Outcome::Stalled, Health::Healthy));
        assert!(agrees(Outcome::Error, Health::Disconnecting));
        assert!(!agrees(Outcome::Error, Health::Healthy));
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 3), "ab");
        assert_eq!(tail("", 3), "");
    }

    /// A directory laid out as a checkout: tests/clients and a Cargo.toml naming `package`.
    fn checkout(package: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tests/clients/python")).unwrap();
        std::fs::create_dir_all(dir.path().join("target/debug")).unwrap();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            format!("[package]\nname = \"{package}\"\nversion = \"0.1.0\"\n"),
        )
        .unwrap();
        dir
    }

    #[test]
    fn root_from_flag_then_env_then_the_checkout_around_cwd_then_around_the_exe() {
        let ours = checkout("chronik-tui");
        let other = checkout("something-else");
        let deep = ours.path().join("tests/clients/python");
        let exe = ours.path().join("target/debug/chronik-tui");
        let elsewhere = other.path().join("tests/clients");
        let root = |flag: Option<&Path>, env: Option<&str>, cwd: &Path, exe: &Path| {
            find_root(
                flag,
                env.map(Into::into),
                Some(cwd.to_path_buf()),
                Some(exe.to_path_buf()),
            )
        };
        let found = |dir: &Path, from| {
            Ok(Root {
                dir: dir.to_path_buf(),
                from,
            })
        };
        let flag = Path::new("/from/flag");
        assert_eq!(
            root(Some(flag), Some("/from/env"), &deep, &exe),
            found(flag, "--root")
        );
        assert_eq!(
            root(None, Some("/from/env"), &deep, &exe),
            found(Path::new("/from/env"), "$CHRONIK_TUI_ROOT")
        );
        // An empty variable counts as unset.
        assert_eq!(
            root(None, Some(""), &deep, &exe),
            found(ours.path(), "the checkout around the current directory")
        );
        // A directory with tests/clients whose Cargo.toml is another package is no checkout.
        assert_eq!(
            root(None, None, &elsewhere, &exe),
            found(ours.path(), "the checkout around the executable")
        );
        let outside = other.path().join("target/debug/chronik-tui");
        assert_eq!(
            root(None, None, &elsewhere, &outside),
            Err(format!(
                "no chronik-tui checkout to find the clients in: no --root, no $CHRONIK_TUI_ROOT, \
                 and no directory holding {} or {} has tests/clients and chronik-tui's \
                 Cargo.toml; pass --root DIR or set CHRONIK_TUI_ROOT=DIR",
                elsewhere.display(),
                outside.display()
            ))
        );
    }
}
