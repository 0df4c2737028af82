//! Scenarios: a bug report as a file anyone can run. A small TOML format holds how the broker
//! answers (the knobs the control commands turn) and then steps, each one of: run a real client,
//! send a request on a named connection, change a setting, or just wait; each step may expect
//! things of what happened (a field in a response, the client's outcome, the stall detector's
//! verdict, no malformed frame). `chronik-tui repro FILE` runs it; the format is documented in
//! the README ("Scenarios").
//!
//! This module reads and checks a file ([`Scenario::load`]): every mistake is reported with the
//! file, line and column and what is wrong (a display-filter name the registry does not know
//! gets its closest names), before anything runs. [`run`] carries it out.

pub mod drive;
pub mod run;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use chronik_protocol::encode::Input;
use chronik_protocol::registry;

use crate::filter::{self, Filter};
use crate::matrix::{self, ClientKind};
use crate::settings::{Knobs, Settings};

pub use run::{run, Outcome, ScenarioReport, StepReport};

/// A scenario file that does not make sense: where and why, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ScenarioError {}

// ---- The file as written -----------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScenario {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    broker: FileBroker,
    #[serde(default, rename = "step")]
    steps: Vec<FileStep>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBroker {
    placement: Option<Spanned<String>>,
    throttle_ms: Option<Spanned<i64>>,
    #[serde(default)]
    rules: Vec<Spanned<String>>,
    #[serde(default)]
    caps: Vec<Spanned<String>>,
    #[serde(default)]
    mutations: Vec<Spanned<String>>,
    #[serde(default)]
    faults: Vec<Spanned<String>>,
    #[serde(default)]
    topics: Vec<FileTopic>,
    advertise: Option<Spanned<String>>,
    #[serde(default)]
    stall: FileStall,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTopic {
    name: String,
    #[serde(default = "one")]
    partitions: i32,
}

fn one() -> i32 {
    1
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStall {
    close_after: Option<Spanned<String>>,
    silence: Option<Spanned<String>>,
    unanswered: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStep {
    name: Option<String>,
    client: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    action: Option<Spanned<String>>,
    topic: Option<String>,
    group: Option<String>,
    count: Option<u64>,
    compression: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<String>,
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    set: Vec<Spanned<String>>,
    send: Option<Spanned<FileSend>>,
    wait: Option<Spanned<String>>,
    #[serde(default)]
    expect: FileExpect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSend {
    #[serde(default = "default_conn")]
    conn: String,
    api: Spanned<String>,
    version: i16,
    correlation_id: Option<i32>,
    client_id: Option<String>,
    fields: Option<Spanned<toml::Value>>,
    hex: Option<Spanned<String>>,
}

fn default_conn() -> String {
    "default".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileExpect {
    outcome: Option<Spanned<String>>,
    message: Option<Spanned<String>>,
    response: Option<Spanned<String>>,
    none: Option<Spanned<String>>,
    health: Option<Spanned<FileHealth>>,
    malformed: Option<bool>,
    acked: Option<Spanned<u64>>,
    consumed: Option<Spanned<u64>>,
    recorded: Option<Spanned<String>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
    offsets: Option<Spanned<bool>>,
    lint: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHealth {
    client: Option<String>,
    state: Spanned<String>,
    within: Option<Spanned<String>>,
}

// ---- The checked scenario ------------------------------------------------------------------

/// A scenario ready to run: every name, command, filter and duration checked.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// The file it came from.
    pub file: PathBuf,
    /// Control commands that set the broker up (`placement front`, `fault add ...`).
    pub setup: Vec<String>,
    pub topics: Vec<(String, i32)>,
    pub advertise: Option<(String, u16)>,
    pub stall: crate::settings::StallThresholds,
    pub steps: Vec<Step>,
}

/// One step: what it does and what it expects.
#[derive(Debug, Clone)]
pub struct Step {
    /// `step N` when the file gave no name.
    pub name: String,
    pub action: Action,
    pub expect: Vec<Expectation>,
}

/// What a client step asks the client program to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAction {
    /// Produce `count` messages with acks=all.
    Produce,
    /// Consume `count` messages in a consumer group, commit and leave.
    Consume,
}

/// A real client run.
#[derive(Debug, Clone)]
pub struct ClientRun {
    /// A client program of the matrix's table, or a command line.
    pub program: Program,
    pub action: ClientAction,
    pub topic: String,
    pub group: String,
    pub count: u64,
    pub compression: String,
    /// `key=value` extras for the client program (`request_timeout_ms=5000`, `idempotent=1`).
    pub args: Vec<String>,
    pub timeout: Duration,
}

/// Which program a client step runs.
#[derive(Debug, Clone)]
pub enum Program {
    /// A client of the matrix's table, by name.
    Known(ClientKind),
    /// A command line; `{bootstrap}` is replaced by the broker's address.
    Command(Vec<String>),
}

/// A request sent on a named connection.
#[derive(Debug, Clone)]
pub struct Send {
    pub conn: String,
    pub api_key: i16,
    pub version: i16,
    /// `None`: the connection's next (1, 2, 3, ...).
    pub correlation_id: Option<i32>,
    pub client_id: Option<String>,
    /// The request without its size prefix (header and body), or built from fields at run time.
    pub body: SendBody,
}

/// How a sent request is given.
#[derive(Debug, Clone)]
pub enum SendBody {
    /// Decoded fields (registry names below the request body).
    Fields(Input),
    /// Header and body in hex, as sent after the size prefix.
    Hex(Vec<u8>),
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    Client(ClientRun),
    Send(Send),
    /// Control commands, as typed at `:` or on stdin.
    Set(Vec<String>),
    Wait(Duration),
    /// Only expectations (about what happened so far, or within a time).
    Nothing,
}

/// What a client reported, in the matrix's words.
pub use crate::matrix::Outcome as ClientOutcome;

/// Something a step expects.
#[derive(Debug, Clone)]
pub enum Expectation {
    /// The client's own outcome: ok, stalled (gave up waiting) or error.
    Outcome(ClientOutcome),
    /// The client's message matches this regular expression.
    Message(regex::Regex),
    /// The response to the sent request, or some exchange of the step, matches this filter.
    Response(Filter),
    /// No exchange of the step matches this filter.
    None(Filter),
    /// A client (by client id glob; any when `None`) reaches this stall-detector state within
    /// this time of the step's start.
    Health {
        client: Option<String>,
        state: crate::diagnose::Health,
        within: Duration,
    },
    /// No malformed frame among the step's exchanges (`false`), or at least one (`true`).
    Malformed(bool),
    /// The client reported this many messages acknowledged.
    Acked(u64),
    /// The client reported this many records consumed.
    Consumed(u64),
    /// The sent request's response is this recorded response frame, field by field, outside
    /// the replay's ignore list (the default list and these names).
    Recorded {
        frame: Vec<u8>,
        ignore: crate::replay::ignore::IgnoreList,
    },
    /// Every acknowledgement the client reported carried an offset (`true`), or none did.
    Offsets(bool),
    /// Some exchange of the step has a lint finding with this code and a message matching
    /// this expression (`want`), or none has (`!want`); with neither given, a finding at
    /// warning or worse.
    Lint {
        code: Option<chronik_protocol::lint::Code>,
        message: Option<regex::Regex>,
        want: bool,
    },
}

impl Expectation {
    /// How the report names it: `outcome stalled`, `response api == Produce`, ...
    pub fn describe(&self) -> String {
        match self {
            Expectation::Outcome(o) => format!("outcome {}", o.word()),
            Expectation::Message(r) => format!("message ~ /{}/", r.as_str()),
            Expectation::Response(f) => format!("response {}", f.text()),
            Expectation::None(f) => format!("none {}", f.text()),
            Expectation::Health {
                client,
                state,
                within,
            } => format!(
                "health {state} for {} within {}",
                client.as_deref().unwrap_or("any client"),
                show_duration(*within)
            ),
            Expectation::Malformed(false) => "no malformed frame".into(),
            Expectation::Malformed(true) => "a malformed frame".into(),
            Expectation::Acked(n) => format!("{n} acked"),
            Expectation::Consumed(n) => format!("{n} consumed"),
            Expectation::Recorded { frame, .. } => {
                format!("the recorded response ({} bytes)", frame.len())
            }
            Expectation::Offsets(true) => "acks with offsets".into(),
            Expectation::Offsets(false) => "acks without offsets".into(),
            Expectation::Lint {
                code,
                message,
                want,
            } => {
                let what = match (code, message) {
                    (None, None) => "a lint finding at warning or worse".to_string(),
                    (Some(c), None) => format!("lint {c}"),
                    (None, Some(m)) => format!("a lint finding ~ /{}/", m.as_str()),
                    (Some(c), Some(m)) => format!("lint {c} ~ /{}/", m.as_str()),
                };
                if *want {
                    what
                } else {
                    format!("no {}", what.trim_start_matches("a "))
                }
            }
        }
    }
}

/// `1.5 s`, `250 ms`.
pub fn show_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// `15s`, `500ms`, `2m`, `1.5s`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 500ms, 15s, 2m)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("{text:?} is not a duration (e.g. 500ms, 15s, 2m)")),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{text:?} is out of range (at most a day)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Byte offset → (line, column), both from 1, columns in characters.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit_once('\n')
        .map_or(before, |(_, l)| l)
        .chars()
        .count()
        + 1;
    (line, col)
}

struct Checker<'a> {
    file: String,
    text: &'a str,
}

impl Checker<'_> {
    fn at(&self, offset: usize, message: impl Into<String>) -> ScenarioError {
        let (line, column) = line_col(self.text, offset);
        ScenarioError {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error about a string value: at its first character (after the quote).
    fn in_string<T>(
        &self,
        s: &Spanned<T>,
        within: usize,
        message: impl Into<String>,
    ) -> ScenarioError {
        self.at(s.span().start + 1 + within, message)
    }

    fn duration(&self, s: &Spanned<String>) -> Result<Duration, ScenarioError> {
        parse_duration(s.get_ref()).map_err(|e| self.in_string(s, 0, e))
    }

    /// A display-filter expression; its errors point at the character they concern.
    fn filter(&self, s: &Spanned<String>) -> Result<Filter, ScenarioError> {
        let text = s.get_ref();
        filter::parse(text).map_err(|e| {
            // The filter counts characters; the span counts bytes.
            let bytes: usize = text.chars().take(e.offset).map(char::len_utf8).sum();
            self.in_string(s, bytes, e.message.clone())
        })
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: e.to_string(),
        })?;
        Scenario::parse(path, &text)
    }

    /// Checks a scenario's text (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        let c = Checker {
            file: path.display().to_string(),
            text,
        };
        let file: FileScenario = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            // toml's message starts with a line of its own position; keep what it says.
            let message = e.message().trim().replace('\n', " ");
            c.at(at, message)
        })?;
        let mut setup = Vec::new();
        let b = &file.broker;
        // Every setting is a control command, checked on settings of its own.
        let scratch = crate::control::Control::new(Settings::new(Knobs::default()));
        let mut command = |s: &Spanned<String>, line: String| -> Result<(), ScenarioError> {
            match scratch.run_line(&line) {
                Some(r) if r.ok => {
                    setup.push(line);
                    Ok(())
                }
                Some(r) => Err(c.in_string(s, 0, r.message)),
                None => Err(c.in_string(s, 0, "empty setting")),
            }
        };
        if let Some(p) = &b.placement {
            command(p, format!("placement {}", p.get_ref()))?;
        }
        if let Some(t) = &b.throttle_ms {
            let s = Spanned::new(t.span(), t.get_ref().to_string());
            command(&s, format!("throttle {}", t.get_ref()))?;
        }
        for (list, verb) in [
            (&b.rules, "rule add"),
            (&b.caps, "cap"),
            (&b.mutations, "mutate add"),
            (&b.faults, "fault add"),
        ] {
            for s in list {
                command(s, format!("{verb} {}", s.get_ref()))?;
            }
        }
        let advertise = match &b.advertise {
            Some(a) => Some(
                crate::addr::parse_host_port(a.get_ref())
                    .map(|hp| (hp.host, hp.port))
                    .map_err(|e| c.in_string(a, 0, e.to_string()))?,
            ),
            None => None,
        };
        let mut stall = crate::settings::StallThresholds::default();
        if let Some(d) = &b.stall.close_after {
            stall.close_after_response = c.duration(d)?;
        }
        if let Some(d) = &b.stall.silence {
            stall.silence = c.duration(d)?;
        }
        if let Some(d) = &b.stall.unanswered {
            stall.unanswered = c.duration(d)?;
        }
        let topics = b
            .topics
            .iter()
            .map(|t| (t.name.clone(), t.partitions.max(1)))
            .collect();
        let mut steps = Vec::new();
        for (i, s) in file.steps.iter().enumerate() {
            steps.push(c.step(i + 1, s)?);
        }
        if steps.is_empty() {
            return Err(c.at(text.len(), "a scenario needs at least one [[step]]"));
        }
        Ok(Scenario {
            name: file.name,
            description: file.description,
            file: path.to_path_buf(),
            setup,
            topics,
            advertise,
            stall,
            steps,
        })
    }
}

impl Checker<'_> {
    fn step(&self, index: usize, s: &FileStep) -> Result<Step, ScenarioError> {
        let name = s.name.clone().unwrap_or_else(|| format!("step {index}"));
        let kinds = [
            s.client.as_ref().map(|x| x.span().start),
            s.command.as_ref().map(|x| x.span().start),
            s.send.as_ref().map(|x| x.span().start),
            s.wait.as_ref().map(|x| x.span().start),
            s.set.first().map(|x| x.span().start),
        ];
        let given: Vec<usize> = kinds.iter().flatten().copied().collect();
        if given.len() > 1 {
            return Err(self.at(
                given[1],
                format!(
                    "{name}: a step does one thing: client, command, send, set or wait, not two"
                ),
            ));
        }
        let is_client = s.client.is_some() || s.command.is_some();
        if !is_client {
            let client_only = [
                ("action", s.action.as_ref().map(|a| a.span().start)),
                (
                    "compression",
                    s.compression.as_ref().map(|a| a.span().start),
                ),
            ];
            for (what, at) in client_only {
                if let Some(at) = at {
                    return Err(self.at(at, format!("{what} belongs to a client step")));
                }
            }
        }
        let action = if is_client {
            Action::Client(self.client_run(s)?)
        } else if let Some(send) = &s.send {
            Action::Send(self.send(send)?)
        } else if let Some(w) = &s.wait {
            Action::Wait(self.duration(w)?)
        } else if !s.set.is_empty() {
            let scratch = crate::control::Control::new(Settings::new(Knobs::default()));
            let mut lines = Vec::new();
            for cmd in &s.set {
                match scratch.run_line(cmd.get_ref()) {
                    Some(r) if r.ok => lines.push(cmd.get_ref().trim().to_string()),
                    Some(r) => return Err(self.in_string(cmd, 0, r.message)),
                    None => return Err(self.in_string(cmd, 0, "empty command")),
                }
            }
            Action::Set(lines)
        } else {
            Action::Nothing
        };
        let expect = self.expectations(&s.expect, &action)?;
        Ok(Step {
            name,
            action,
            expect,
        })
    }

    fn client_run(&self, s: &FileStep) -> Result<ClientRun, ScenarioError> {
        let program = match (&s.client, &s.command) {
            (Some(name), _) => match matrix::client_kind(name.get_ref()) {
                Some(k) => Program::Known(k),
                None => {
                    let known: Vec<&str> = matrix::CLIENTS.iter().map(|k| k.name).collect();
                    return Err(self.in_string(
                        name,
                        0,
                        format!(
                            "unknown client {:?} (known: {})",
                            name.get_ref(),
                            known.join(", ")
                        ),
                    ));
                }
            },
            (None, Some(argv)) if argv.get_ref().is_empty() => {
                return Err(self.at(argv.span().start, "command is empty"))
            }
            (None, Some(argv)) => Program::Command(argv.get_ref().clone()),
            (None, None) => unreachable!("a client step has a client or a command"),
        };
        let action = match s.action.as_ref() {
            None => ClientAction::Produce,
            Some(a) => match a.get_ref().to_ascii_lowercase().as_str() {
                "produce" => ClientAction::Produce,
                "consume" | "group" => ClientAction::Consume,
                other => {
                    return Err(self.in_string(
                        a,
                        0,
                        format!("unknown action {other:?} (produce, consume or group)"),
                    ))
                }
            },
        };
        let compression = match &s.compression {
            None => "none".to_string(),
            Some(c) => {
                let word = c.get_ref().to_ascii_lowercase();
                let supported = match &program {
                    Program::Known(k) => k.compressions,
                    Program::Command(_) => &["none", "gzip", "snappy", "lz4", "zstd"][..],
                };
                if !supported.contains(&word.as_str()) {
                    return Err(self.in_string(
                        c,
                        0,
                        format!(
                            "compression {word:?} is not one this client has ({})",
                            supported.join(", ")
                        ),
                    ));
                }
                word
            }
        };
        let timeout = match &s.timeout {
            Some(t) => self.duration(t)?,
            None => Duration::from_secs(30),
        };
        Ok(ClientRun {
            program,
            action,
            topic: s.topic.clone().unwrap_or_else(|| "scenario".into()),
            group: s.group.clone().unwrap_or_else(|| "scenario-group".into()),
            count: s.count.unwrap_or(1),
            compression,
            args: s.args.clone(),
            timeout,
        })
    }

    fn send(&self, s: &Spanned<FileSend>) -> Result<Send, ScenarioError> {
        let f = s.get_ref();
        let api_key = registry::api_key_by_name(f.api.get_ref())
            .or_else(|| {
                f.api
                    .get_ref()
                    .parse::<i16>()
                    .ok()
                    .filter(|k| registry::api(*k).is_some())
            })
            .ok_or_else(|| {
                self.in_string(&f.api, 0, format!("unknown API {:?}", f.api.get_ref()))
            })?;
        let api = registry::api(api_key).expect("looked up above");
        if !api.versions.contains(f.version) {
            return Err(self.at(
                s.span().start,
                format!(
                    "{} has versions {}-{}, not {}",
                    api.name, api.versions.min, api.versions.max, f.version
                ),
            ));
        }
        let body = match (&f.fields, &f.hex) {
            (Some(_), Some(h)) => {
                return Err(self.at(h.span().start, "send takes fields or hex, not both"))
            }
            (None, Some(h)) => {
                SendBody::Hex(hex(h.get_ref()).map_err(|e| self.in_string(h, 0, e))?)
            }
            (fields, None) => {
                let input = match fields {
                    Some(v) => to_input(v.get_ref()),
                    None => Input::Null,
                };
                // Checked now (names, types); encoded again with the real correlation id.
                chronik_protocol::encode::request(api_key, f.version, 0, None, &input).map_err(
                    |e| {
                        let at = fields.as_ref().map_or(s.span().start, |v| v.span().start);
                        self.at(at, e.to_string())
                    },
                )?;
                SendBody::Fields(input)
            }
        };
        Ok(Send {
            conn: f.conn.clone(),
            api_key,
            version: f.version,
            correlation_id: f.correlation_id,
            client_id: f.client_id.clone(),
            body,
        })
    }

    fn expectations(
        &self,
        e: &FileExpect,
        action: &Action,
    ) -> Result<Vec<Expectation>, ScenarioError> {
        let mut out = Vec::new();
        let client = matches!(action, Action::Client(_));
        if let Some(o) = &e.outcome {
            if !client {
                return Err(self.in_string(o, 0, "outcome is expected of a client step"));
            }
            let outcome = ClientOutcome::from_word(o.get_ref()).ok_or_else(|| {
                self.in_string(
                    o,
                    0,
                    format!("unknown outcome {:?} (ok, stalled or error)", o.get_ref()),
                )
            })?;
            out.push(Expectation::Outcome(outcome));
        }
        if let Some(m) = &e.message {
            if !client {
                return Err(self.in_string(m, 0, "message is expected of a client step"));
            }
            let r = regex::Regex::new(m.get_ref())
                .map_err(|err| self.in_string(m, 0, format!("bad regular expression: {err}")))?;
            out.push(Expectation::Message(r));
        }
        if let Some(r) = &e.response {
            out.push(Expectation::Response(self.filter(r)?));
        }
        if let Some(r) = &e.none {
            out.push(Expectation::None(self.filter(r)?));
        }
        if let Some(h) = &e.health {
            let hv = h.get_ref();
            let state = crate::diagnose::Health::ALL
                .into_iter()
                .find(|s| s.to_string().eq_ignore_ascii_case(hv.state.get_ref()))
                .ok_or_else(|| {
                    self.in_string(
                        &hv.state,
                        0,
                        format!(
                            "unknown state {:?} (healthy, retrying, stalled, disconnecting)",
                            hv.state.get_ref()
                        ),
                    )
                })?;
            let within = match &hv.within {
                Some(w) => self.duration(w)?,
                None => Duration::from_secs(10),
            };
            out.push(Expectation::Health {
                client: hv.client.clone(),
                state,
                within,
            });
        }
        if let Some(m) = e.malformed {
            out.push(Expectation::Malformed(m));
        }
        for (what, at, exp) in [
            (
                "acked",
                e.acked.as_ref().map(|a| a.span().start),
                e.acked.as_ref().map(|a| Expectation::Acked(*a.get_ref())),
            ),
            (
                "consumed",
                e.consumed.as_ref().map(|a| a.span().start),
                e.consumed
                    .as_ref()
                    .map(|a| Expectation::Consumed(*a.get_ref())),
            ),
            (
                "offsets",
                e.offsets.as_ref().map(|a| a.span().start),
                e.offsets
                    .as_ref()
                    .map(|a| Expectation::Offsets(*a.get_ref())),
            ),
        ] {
            if let (Some(at), Some(exp)) = (at, exp) {
                if !client {
                    return Err(self.at(at, format!("{what} is expected of a client step")));
                }
                out.push(exp);
            }
        }
        if let Some(r) = &e.recorded {
            if !matches!(action, Action::Send(_)) {
                return Err(self.in_string(r, 0, "recorded is expected of a send step"));
            }
            let frame = hex(r.get_ref()).map_err(|err| self.in_string(r, 0, err))?;
            let names: Vec<String> = e.ignore.iter().map(|i| i.get_ref().clone()).collect();
            let ignore = crate::replay::ignore::IgnoreList::new(true, &names).map_err(|err| {
                let at = e
                    .ignore
                    .first()
                    .map_or(r.span().start, |i| i.span().start + 1);
                self.at(at, err)
            })?;
            out.push(Expectation::Recorded { frame, ignore });
        } else if let Some(i) = e.ignore.first() {
            return Err(self.at(i.span().start, "ignore goes with recorded"));
        }
        if let Some(l) = &e.lint {
            out.push(self.lint(l)?);
        }
        Ok(out)
    }
}

impl Checker<'_> {
    /// `expect.lint`: a code (`"field-misplaced"`), a table `{ code = ..., message = "regex",
    /// absent = true }`, or a boolean (a finding at warning or worse, or none).
    fn lint(&self, l: &Spanned<toml::Value>) -> Result<Expectation, ScenarioError> {
        use chronik_protocol::lint::Code;
        let at = l.span().start;
        let code = |text: &str| {
            text.parse::<Code>().map_err(|_| {
                self.at(
                    at,
                    format!(
                        "unknown lint code {text:?}; the codes: {}",
                        Code::WORDS.join(", ")
                    ),
                )
            })
        };
        match l.get_ref() {
            toml::Value::Boolean(want) => Ok(Expectation::Lint {
                code: None,
                message: None,
                want: *want,
            }),
            toml::Value::String(s) => Ok(Expectation::Lint {
                code: Some(code(s)?),
                message: None,
                want: true,
            }),
            toml::Value::Table(t) => {
                let mut lint = (None, None, true);
                for (k, v) in t {
                    match (k.as_str(), v) {
                        ("code", toml::Value::String(s)) => lint.0 = Some(code(s)?),
                        ("message", toml::Value::String(s)) => {
                            lint.1 = Some(regex::Regex::new(s).map_err(|e| {
                                self.at(at, format!("lint message: not a regular expression: {e}"))
                            })?)
                        }
                        ("absent", toml::Value::Boolean(b)) => lint.2 = !b,
                        _ => {
                            return Err(self.at(
                                at,
                                format!(
                                    "lint takes code = \"CODE\", message = \"REGEX\" and \
                                     absent = true|false, not {k} = {v}"
                                ),
                            ))
                        }
                    }
                }
                Ok(Expectation::Lint {
                    code: lint.0,
                    message: lint.1,
                    want: lint.2,
                })
            }
            other => Err(self.at(
                at,
                format!(
                    "lint is a code (\"field-misplaced\"), a table {{ code, message, absent }} \
                     or true/false, not {other}"
                ),
            )),
        }
    }
}

/// Hex digits, with spaces, colons and newlines allowed between bytes.
pub(crate) fn hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err("an odd number of hex digits".into());
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16)
                .map_err(|_| format!("{:?} is not hex", &digits[i..i + 2]))
        })
        .collect()
}

/// A TOML value as an encoder input.
fn to_input(v: &toml::Value) -> Input {
    match v {
        toml::Value::String(s) => Input::Str(s.clone()),
        toml::Value::Integer(i) => Input::Int(*i),
        toml::Value::Float(f) => Input::Float(*f),
        toml::Value::Boolean(b) => Input::Bool(*b),
        toml::Value::Datetime(d) => Input::Str(d.to_string()),
        toml::Value::Array(a) => Input::List(a.iter().map(to_input).collect()),
        toml::Value::Table(t) => {
            Input::Map(t.iter().map(|(k, v)| (k.clone(), to_input(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests;
