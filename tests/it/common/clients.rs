//! Real Kafka clients as child processes (the programs in `tests/clients/`, installed by
//! `scripts/test.sh`), their JSON-line output, the payload formula they share, and a summary of
//! the API versions they used as the broker's headless output shows them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::Broker;

/// The repository root (where `target/venv` and `tests/clients` are).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Key of message number `i` (same formula in every client program).
pub fn key(i: u64) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

/// Value of message number `i`: distinct, not valid UTF-8, with a NUL, and compressible.
pub fn value(i: u64) -> Vec<u8> {
    let mut v = format!("chronik-{i:06}|").into_bytes();
    v.extend_from_slice(&[
        0x00,
        0xff,
        0xfe,
        0x80,
        0xc3,
        0x28,
        (i & 0xff) as u8,
        ((i * 7) & 0xff) as u8,
    ]);
    v.push(b'|');
    for _ in 0..(1 + i % 5) {
        v.extend_from_slice(b"compressible-");
    }
    v
}

pub use chronik_tui::matrix::Headers;

/// A client program and what it supports: one row of the matrix's table
/// ([`chronik_tui::matrix::CLIENTS`]) with its command line under this checkout.
#[derive(Debug, Clone)]
pub struct Client {
    /// Short name used in topic and group names.
    pub name: &'static str,
    /// Program and the arguments before MODE.
    pub argv: Vec<String>,
    /// Compression codecs its producer supports.
    pub compressions: &'static [&'static str],
    /// Headers its producer writes.
    pub headers: Headers,
    /// Whether its consumer is a group member that commits (rskafka reads by offset only).
    pub groups: bool,
}

impl Client {
    /// Finds a client by name; panics with a clear message when it is not installed.
    pub fn find(name: &str) -> Client {
        use chronik_tui::matrix;
        let kind =
            matrix::client_kind(name).unwrap_or_else(|| panic!("no such test client {name}"));
        let argv = matrix::locate(&root(), kind).unwrap_or_else(|why| {
            panic!(
                "{} is not installed: {why} (run scripts/test.sh, which installs every client)",
                kind.label
            )
        });
        Client {
            name: kind.name,
            argv,
            compressions: kind.compressions,
            headers: kind.headers,
            groups: kind.groups,
        }
    }
}

/// What one client run asks for.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    /// `produce` or `consume`.
    pub mode: &'a str,
    /// Topic.
    pub topic: &'a str,
    /// Consumer group (ignored by producers).
    pub group: &'a str,
    /// Messages to produce, or to consume (0: until idle or stop file).
    pub count: u64,
    /// Compression codec for producers.
    pub compression: &'a str,
    /// First message number.
    pub start: u64,
    /// Extra `key=value` arguments (idle_ms, stop_file, idempotent, from_offset, timeout_ms).
    pub extra: Vec<String>,
}

impl<'a> Job<'a> {
    /// A producer job.
    pub fn produce(topic: &'a str, count: u64, compression: &'a str, start: u64) -> Job<'a> {
        Job {
            mode: "produce",
            topic,
            group: "-",
            count,
            compression,
            start,
            extra: Vec::new(),
        }
    }

    /// A consumer job.
    pub fn consume(topic: &'a str, group: &'a str, count: u64) -> Job<'a> {
        Job {
            mode: "consume",
            topic,
            group,
            count,
            compression: "none",
            start: 0,
            extra: Vec::new(),
        }
    }

    /// Adds a `key=value` argument.
    pub fn with(mut self, kv: impl Into<String>) -> Job<'a> {
        self.extra.push(kv.into());
        self
    }
}

/// Client-side time limit (the clients stop themselves at `timeout_ms`; this kills them a little
/// later if they do not).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);

/// A running client whose output lines arrive on a channel.
pub struct Running {
    /// The process.
    pub child: Child,
    /// Parsed JSON lines (non-JSON lines come as `{"event":"raw","line":...}`).
    pub events: mpsc::Receiver<Json>,
    stderr: std::thread::JoinHandle<String>,
    /// What was run, for messages.
    pub describe: String,
}

/// Starts a client job.
pub fn spawn(client: &Client, bootstrap: &str, job: &Job) -> Running {
    let mut cmd = Command::new(&client.argv[0]);
    cmd.args(&client.argv[1..])
        .arg(job.mode)
        .arg(bootstrap)
        .arg(job.topic)
        .arg(job.group)
        .arg(job.count.to_string())
        .arg(job.compression)
        .arg(job.start.to_string())
        .arg(format!(
            "timeout_ms={}",
            (CLIENT_TIMEOUT - Duration::from_secs(5)).as_millis()
        ))
        .args(&job.extra)
        .current_dir(root())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let describe = format!(
        "{} {} topic={} group={} count={} compression={} start={} {}",
        client.name,
        job.mode,
        job.topic,
        job.group,
        job.count,
        job.compression,
        job.start,
        job.extra.join(" ")
    );
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {describe}: {e} ({:?})", client.argv));
    let out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let ev = serde_json::from_str::<Json>(&line)
                .unwrap_or_else(|_| serde_json::json!({"event": "raw", "line": line}));
            if tx.send(ev).is_err() {
                break;
            }
        }
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    Running {
        child,
        events: rx,
        stderr,
        describe,
    }
}

/// A finished client run.
#[derive(Debug)]
pub struct Finished {
    /// Every line it printed.
    pub events: Vec<Json>,
    /// Its stderr.
    pub stderr: String,
    /// What was run.
    pub describe: String,
}

impl Running {
    /// Waits for the process to end (killing it after [`CLIENT_TIMEOUT`]) and panics unless it
    /// exited 0 without an error event.
    pub fn finish(self, already: Vec<Json>) -> Finished {
        let (status, finished) = self.outcome(already);
        let errors: Vec<&Json> = finished
            .events
            .iter()
            .filter(|e| e["event"] == "error")
            .collect();
        match status {
            None => panic!(
                "{} did not finish within {CLIENT_TIMEOUT:?}\n{}",
                finished.describe,
                finished.tail()
            ),
            Some(s) if !s.success() || !errors.is_empty() => panic!(
                "{} failed ({s}): {}\n{}",
                finished.describe,
                errors
                    .iter()
                    .map(|e| e["message"].as_str().unwrap_or("?"))
                    .collect::<Vec<_>>()
                    .join("; "),
                finished.tail()
            ),
            Some(_) => finished,
        }
    }

    /// Waits for the process to end (killing it after [`CLIENT_TIMEOUT`]): its exit status
    /// (None when it had to be killed) and everything it printed.
    pub fn outcome(mut self, already: Vec<Json>) -> (Option<std::process::ExitStatus>, Finished) {
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        let mut events = already;
        // The reader thread ends at EOF, which follows the exit.
        while let Ok(ev) = self.events.recv_timeout(Duration::from_secs(5)) {
            events.push(ev);
        }
        let stderr = self.stderr.join().unwrap_or_default();
        let finished = Finished {
            events,
            stderr,
            describe: self.describe,
        };
        (status, finished)
    }
}

impl Finished {
    /// The last lines of output and stderr, for failure messages.
    pub fn tail(&self) -> String {
        let out: Vec<String> = self
            .events
            .iter()
            .rev()
            .take(15)
            .rev()
            .map(|e| e.to_string())
            .collect();
        let err: String = self
            .stderr
            .lines()
            .rev()
            .take(25)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            "--- last output lines:\n{}\n--- last stderr lines:\n{err}",
            out.join("\n")
        )
    }

    /// Events of one kind.
    pub fn of(&self, kind: &str) -> Vec<&Json> {
        self.events.iter().filter(|e| e["event"] == kind).collect()
    }

    /// The messages of its `error` events: the client's own words.
    pub fn errors(&self) -> Vec<&str> {
        self.of("error")
            .into_iter()
            .filter_map(|e| e["message"].as_str())
            .collect()
    }

    /// Asserts that one of its error messages holds every one of `words`.
    pub fn assert_error(&self, words: &[&str]) {
        let errors = self.errors();
        assert!(
            errors.iter().any(|m| words.iter().all(|w| m.contains(w))),
            "{}: no error saying {words:?} in {errors:?}\n{}",
            self.describe,
            self.tail()
        );
    }
}

/// Runs a client job to the end.
pub fn run(client: &Client, bootstrap: &str, job: &Job) -> Finished {
    spawn(client, bootstrap, job).finish(Vec::new())
}

/// Runs a client job to the end, however it ends (an error, a kill at the time limit).
pub fn run_to_end(client: &Client, bootstrap: &str, job: &Job) -> Finished {
    spawn(client, bootstrap, job).outcome(Vec::new()).1
}

/// A produced message as the producer reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// Message number.
    pub index: u64,
    /// Partition, when the client reports it.
    pub partition: Option<i64>,
    /// Offset, when the client reports it.
    pub offset: Option<i64>,
}

/// Checks a producer run: one `produced` event for each message number asked for, offsets (when
/// reported) distinct per partition and increasing with the message number.
pub fn produced(run: &Finished, start: u64, count: u64) -> Vec<Produced> {
    let mut out: Vec<Produced> = run
        .of("produced")
        .iter()
        .map(|e| Produced {
            index: e["index"].as_u64().expect("produced.index"),
            partition: e["partition"].as_i64(),
            offset: e["offset"].as_i64(),
        })
        .collect();
    out.sort_by_key(|p| p.index);
    let indices: Vec<u64> = out.iter().map(|p| p.index).collect();
    assert_eq!(
        indices,
        (start..start + count).collect::<Vec<_>>(),
        "{}: acknowledged messages\n{}",
        run.describe,
        run.tail()
    );
    let mut last: BTreeMap<i64, (u64, i64)> = BTreeMap::new();
    for p in &out {
        if let (Some(part), Some(off)) = (p.partition, p.offset) {
            assert!(off >= 0, "{}: negative offset in {p:?}", run.describe);
            if let Some((i, prev)) = last.get(&part) {
                assert!(
                    off > *prev,
                    "{}: message {} got offset {off} but message {i} got {prev} in partition {part}",
                    run.describe,
                    p.index
                );
            }
            last.insert(part, (p.index, off));
        }
    }
    out
}

/// A consumed message, decoded from a `consumed` event and checked against the formula.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    /// Message number (from the payload), checked: key, value and headers are exactly the ones
    /// the producer sent for that number.
    pub index: u64,
    /// Partition.
    pub partition: i64,
    /// Offset.
    pub offset: i64,
}

/// Bytes from lowercase or uppercase hex.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// Decodes and checks every `consumed` event: the bytes are exactly what was produced for the
/// number in the payload, with the producer's headers; offsets increase within a partition.
pub fn consumed(run: &Finished, headers: Headers) -> Vec<Consumed> {
    let mut out = Vec::new();
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    for e in run.of("consumed") {
        let v = unhex(
            e["value"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: record without a value: {e}", run.describe)),
        );
        let index: u64 = std::str::from_utf8(v.get(8..14).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{}: foreign payload {e}", run.describe));
        assert!(
            v == value(index),
            "{}: payload of message {index} differs: got {}, sent {}",
            run.describe,
            e["value"],
            hex(&value(index))
        );
        let k = e["key"].as_str().map(unhex);
        assert_eq!(
            k.as_deref(),
            Some(&key(index)[..]),
            "{}: key of message {index}",
            run.describe
        );
        let expected = match headers {
            Headers::Index => Some(("idx", index.to_string())),
            Headers::Fixed(n, v) => Some((n, v.to_string())),
            Headers::Absent => None,
        };
        match expected {
            Some((hname, hvalue)) => {
                let got = e["headers"][hname].as_str().map(unhex);
                assert_eq!(
                    got.as_deref(),
                    Some(hvalue.as_bytes()),
                    "{}: header {hname} of message {index}: {e}",
                    run.describe
                );
            }
            None => assert!(
                e["headers"].as_object().is_none_or(|h| h.is_empty()),
                "{}: headers on message {index}, which was sent without: {e}",
                run.describe
            ),
        }
        let partition = e["partition"].as_i64().expect("partition");
        let offset = e["offset"].as_i64().expect("offset");
        if let Some(prev) = last.get(&partition) {
            assert!(
                offset > *prev,
                "{}: offset {offset} after {prev} in partition {partition}",
                run.describe
            );
        }
        last.insert(partition, offset);
        out.push(Consumed {
            index,
            partition,
            offset,
        });
    }
    out
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Asserts that exactly the messages `expected` were consumed, each once, at the offsets the
/// producer reported (where it did).
pub fn assert_exactly(what: &str, got: &[Consumed], expected: &[Produced]) {
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for c in got {
        *seen.entry(c.index).or_default() += 1;
    }
    let dup: Vec<u64> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, _)| *i)
        .collect();
    let want: BTreeSet<u64> = expected.iter().map(|p| p.index).collect();
    let have: BTreeSet<u64> = seen.keys().copied().collect();
    let missing: Vec<&u64> = want.difference(&have).collect();
    let extra: Vec<&u64> = have.difference(&want).collect();
    assert!(
        dup.is_empty() && missing.is_empty() && extra.is_empty(),
        "{what}: duplicated {dup:?}, missing {missing:?}, unexpected {extra:?} (of {} expected)",
        want.len()
    );
    for p in expected {
        let c = got.iter().find(|c| c.index == p.index).expect("checked");
        if let Some(off) = p.offset {
            assert_eq!(
                c.offset, off,
                "{what}: message {} consumed at offset {} but acknowledged at {off}",
                p.index, c.offset
            );
        }
        if let Some(part) = p.partition {
            assert_eq!(
                c.partition, part,
                "{what}: message {} consumed from partition {} but acknowledged in {part}",
                p.index, c.partition
            );
        }
    }
}

/// Consumes again in `group` after a first consume that read `got` and committed: exactly the
/// messages `more` (produced since) must arrive. A client without a group API resumes from the
/// offset after the last one in `got`. `extra`: more consumer arguments; `what` names the check.
#[allow(clippy::too_many_arguments)]
pub fn consume_only_new(
    client: &Client,
    bootstrap: &str,
    topic: &str,
    group: &str,
    got: &[Consumed],
    more: &[Produced],
    extra: &[&str],
    what: &str,
) {
    let mut job = Job::consume(topic, group, more.len() as u64).with("idle_ms=1000");
    for e in extra {
        job = job.with(*e);
    }
    if !client.groups {
        let next = got.iter().map(|c| c.offset).max().map_or(0, |o| o + 1);
        job = job.with(format!("from_offset={next}"));
    }
    let run = run(client, bootstrap, &job);
    let got = consumed(&run, client.headers);
    assert_exactly(what, &got, more);
}

/// The credentials the SASL/PLAIN tests give the broker (`--sasl-plain`).
pub const SASL_USER_PASS: &str = "alice:s3cret";

/// With the right SASL/PLAIN password: produces `count` gzip messages to `{test}-topic` and
/// consumes them in `{test}-group`; exactly those arrive.
pub fn sasl_produce_consume(client: &Client, bootstrap: &str, test: &str, count: u64) {
    let topic = format!("{test}-topic");
    let good = format!("sasl={SASL_USER_PASS}");
    let job = Job::produce(&topic, count, "gzip", 0).with(good.as_str());
    let sent = produced(&run(client, bootstrap, &job), 0, count);
    let group = format!("{test}-group");
    let job = Job::consume(&topic, &group, count)
        .with(good.as_str())
        .with("idle_ms=1000");
    let got = consumed(&run(client, bootstrap, &job), client.headers);
    assert_exactly(&format!("{test}: with the password"), &got, &sent);
}

/// A producer with a wrong SASL/PLAIN password must fail with an error of its own; its run.
pub fn sasl_wrong_password(client: &Client, bootstrap: &str, test: &str) -> Finished {
    let topic = format!("{test}-topic");
    let job = Job::produce(&topic, 1, "none", 1000)
        .with("sasl=alice:wrong")
        .with("timeout_ms=6000");
    let (status, run) = spawn(client, bootstrap, &job).outcome(Vec::new());
    assert!(
        status.is_some_and(|s| !s.success()) && !run.of("error").is_empty(),
        "{test}: a producer with a wrong password did not fail ({status:?})\n{}",
        run.tail()
    );
    run
}

/// One exchange as the broker's `--headless --json` output describes it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// API name (`Produce`, …).
    pub api: String,
    /// API version.
    pub version: i64,
    /// The request's client id.
    pub client: String,
    /// Codecs of the record batches (or legacy messages) in the request, from the dissector's
    /// attribute notes (`compression: zstd, …`).
    pub codecs: Vec<String>,
    /// Non-zero error codes in the response, by name.
    pub errors: Vec<String>,
    /// The exchange's status when not answered, and decode errors of either frame.
    pub trouble: Vec<String>,
    /// `kafka`, or `sasl_token` for a bare SASL token after SaslHandshake v0.
    pub framing: String,
    /// The user name of a SASL/PLAIN token, as the dissector read it.
    pub plain_user: Option<String>,
    /// The control records (transaction markers) in the response, as the dissector names them
    /// (`control record: COMMIT marker`).
    pub markers: Vec<String>,
    /// A one-line summary.
    pub line: String,
}

fn walk(field: &Json, f: &mut dyn FnMut(&Json)) {
    f(field);
    if let Some(children) = field["children"].as_array() {
        for c in children {
            walk(c, f);
        }
    }
}

impl Seen {
    /// Parses one JSON line of `--headless --json` (None for anything else).
    pub fn parse(line: &str) -> Option<Seen> {
        let v: Json = serde_json::from_str(line).ok()?;
        let api = v["api_name"].as_str()?.to_string();
        let version = v["api_version"].as_i64()?;
        let client = v["client_id"].as_str().unwrap_or("-").to_string();
        let mut codecs = Vec::new();
        walk(&v["request"]["tree"], &mut |f| {
            if let Some(c) = f["note"]
                .as_str()
                .and_then(|n| n.strip_prefix("compression: "))
            {
                let c = c.split(',').next().unwrap_or(c).to_string();
                if !codecs.contains(&c) {
                    codecs.push(c);
                }
            }
        });
        let mut errors = Vec::new();
        walk(&v["response"]["tree"], &mut |f| {
            let is_code = f["name"]
                .as_str()
                .is_some_and(|n| n.ends_with(".error_code"));
            if let (true, Some(code)) = (is_code, f["value"].as_i64()) {
                let name = chronik_tui::protocol::errors::error_name(code as i16).to_string();
                if code != 0 && !errors.contains(&name) {
                    errors.push(name);
                }
            }
        });
        let mut trouble = Vec::new();
        let status = v["status"]["kind"].as_str().unwrap_or("?");
        if status != "answered" {
            trouble.push(format!("status {}", v["status"]));
        }
        for side in ["request", "response"] {
            let e = &v[side]["error"];
            if !e.is_null() {
                trouble.push(format!("{side} undecodable: {e}"));
            }
        }
        let mut markers = Vec::new();
        walk(&v["response"]["tree"], &mut |f| {
            if let Some(n) = f["note"]
                .as_str()
                .filter(|n| n.starts_with("control record:"))
            {
                markers.push(n.to_string());
            }
        });
        let framing = v["framing"].as_str().unwrap_or("kafka").to_string();
        let mut plain_user = None;
        walk(&v["request"]["tree"], &mut |f| {
            if f["name"] == "sasl.plain.authcid" {
                plain_user = f["value"].as_str().map(str::to_string);
            }
        });
        if let Some(notes) = v["notes"].as_array() {
            trouble.extend(notes.iter().map(|n| format!("note: {n}")));
        }
        let line = format!(
            "conn={} client={client} {api} v{version} corr={} codecs={codecs:?} errors={errors:?} {}",
            v["conn"],
            v["correlation_id"],
            trouble.join("; ")
        );
        Some(Seen {
            api,
            version,
            client,
            codecs,
            errors,
            trouble,
            framing,
            plain_user,
            markers,
            line,
        })
    }
}

/// A broker under test (run with `--json`) that keeps every exchange it printed; on a failing
/// test it prints the last ones and the summary.
pub struct Watched {
    /// The broker.
    pub broker: Broker,
    /// Exchanges taken so far (see [`Watched::drain`]).
    pub seen: Vec<Seen>,
    /// The test's name, for the summary.
    pub test: String,
}

impl Watched {
    /// Starts a broker (see [`Broker::start`]) with `--json` for a test.
    pub fn start(test: &str, extra: &[&str]) -> Watched {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        Watched {
            broker: Broker::start(&args),
            seen: Vec::new(),
            test: test.to_string(),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        self.broker.bootstrap()
    }

    /// Takes the exchanges the broker printed since the last call.
    pub fn drain(&mut self) {
        // Give the printer a moment to catch up with the last exchanges.
        std::thread::sleep(Duration::from_millis(50));
        self.take();
    }

    fn take(&mut self) {
        let held = std::mem::take(&mut self.broker.held);
        for line in held.into_iter().chain(self.broker.lines.try_iter()) {
            // Control replies and client state changes are not exchanges.
            let not_exchange = line.starts_with("# ")
                || serde_json::from_str::<Json>(&line)
                    .is_ok_and(|v| v["kind"] == "control" || v["kind"] == "client_state");
            if not_exchange {
                continue;
            }
            match Seen::parse(&line) {
                Some(s) => self.seen.push(s),
                None => self.seen.push(Seen {
                    api: String::new(),
                    version: -1,
                    client: String::new(),
                    codecs: Vec::new(),
                    errors: Vec::new(),
                    trouble: vec![format!("unparsed output line: {line}")],
                    framing: String::new(),
                    plain_user: None,
                    markers: Vec::new(),
                    line: line.chars().take(300).collect(),
                }),
            }
        }
    }

    /// Kills the broker with SIGKILL and starts a new one with `extra` arguments (plus `--json`).
    pub fn kill9_and_restart(&mut self, extra: &[&str]) {
        self.drain();
        self.broker.kill9();
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        self.broker = Broker::start(&args);
    }

    /// (api, version) → count.
    pub fn api_versions(&self) -> BTreeMap<(String, i64), usize> {
        let mut out = BTreeMap::new();
        for s in self.seen.iter().filter(|s| !s.api.is_empty()) {
            *out.entry((s.api.clone(), s.version)).or_default() += 1;
        }
        out
    }

    /// Codecs seen in Produce requests so far.
    pub fn produce_codecs(&self) -> BTreeSet<String> {
        self.seen
            .iter()
            .filter(|s| s.api == "Produce")
            .flat_map(|s| s.codecs.iter().cloned())
            .collect()
    }

    /// Exchanges with error codes, undecodable frames or no answer.
    pub fn problems(&self) -> Vec<&Seen> {
        self.seen
            .iter()
            .filter(|s| !s.errors.is_empty() || !s.trouble.is_empty())
            .collect()
    }

    /// Prints the API versions the clients used (and writes them to
    /// `target/client-api-versions/TEST.txt` for the report), with the exchanges that carried
    /// error codes.
    pub fn summary(&mut self) {
        self.drain();
        let versions: Vec<String> = self
            .api_versions()
            .iter()
            .map(|((api, v), n)| format!("{api} v{v} x{n}"))
            .collect();
        let clients: BTreeSet<&str> = self.seen.iter().map(|s| s.client.as_str()).collect();
        let codecs: Vec<String> = self.produce_codecs().into_iter().collect();
        let mut report = format!(
            "{}: client ids {clients:?}; produce codecs {codecs:?}; API versions: {}\n",
            self.test,
            versions.join(", ")
        );
        let problems = self.problems();
        if !problems.is_empty() {
            report.push_str(&format!(
                "  {} exchanges with error codes or trouble (first 10):\n",
                problems.len()
            ));
            for p in problems.iter().take(10) {
                report.push_str(&format!("    {}\n", p.line));
            }
        }
        eprint!("{report}");
        let dir = root().join("target/client-api-versions");
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join(format!("{}.txt", self.test)), &report);
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.take();
            let n = self.seen.len();
            eprintln!(
                "--- {}: last {} of {n} exchanges the broker printed:",
                self.test,
                n.min(60)
            );
            for s in &self.seen[n.saturating_sub(60)..] {
                eprintln!("  {}", s.line);
            }
            self.summary();
        }
    }
}

/// Consumer processes of one group whose output is collected while a test goes on: the
/// members, each running until it is finished, and the events each printed so far.
pub struct Members {
    pub running: Vec<Option<Running>>,
    pub seen: Vec<Vec<Json>>,
}

impl Members {
    pub fn new(running: Vec<Running>) -> Members {
        let n = running.len();
        Members {
            running: running.into_iter().map(Some).collect(),
            seen: vec![Vec::new(); n],
        }
    }

    /// Collects what the members printed (waiting a moment when there was nothing); a
    /// member's error event fails the test.
    pub fn pump(&mut self) {
        let mut any = false;
        for (m, s) in self.running.iter().zip(self.seen.iter_mut()) {
            if let Some(m) = m {
                for ev in m.events.try_iter() {
                    any = true;
                    if ev["event"] == "error" {
                        panic!("{} failed: {ev}", m.describe);
                    }
                    s.push(ev);
                }
            }
        }
        if !any {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pumps until `done` holds, or panics with `what`, the assignments and what each member
    /// consumed, after `limit`.
    pub fn until(&mut self, limit: Duration, what: &str, done: impl Fn(&Members) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what} (within {limit:?}); assignments: {:?}; consumed: {:?}",
                (0..self.seen.len())
                    .map(|i| self.assignment(i))
                    .collect::<Vec<_>>(),
                (0..self.seen.len())
                    .map(|i| self.consumed_by(i))
                    .collect::<Vec<_>>()
            );
            self.pump();
        }
    }

    /// Pumps for `wait` (duplicates would show up meanwhile).
    pub fn linger(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            self.pump();
        }
    }

    /// The partitions of member `i`'s latest `assigned` event.
    pub fn assignment(&self, i: usize) -> Option<BTreeSet<i64>> {
        self.seen[i]
            .iter()
            .rev()
            .find(|e| e["event"] == "assigned")
            .map(|e| {
                e["partitions"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|p| p[1].as_i64()).collect())
                    .unwrap_or_default()
            })
    }

    /// Records member `i` consumed so far.
    pub fn consumed_by(&self, i: usize) -> u64 {
        self.seen[i]
            .iter()
            .filter(|e| e["event"] == "consumed")
            .count() as u64
    }

    /// Records all members consumed so far.
    pub fn consumed(&self) -> u64 {
        (0..self.seen.len()).map(|i| self.consumed_by(i)).sum()
    }

    /// Whether the running members' assignments split four partitions: each holds some, none
    /// twice, all four held.
    pub fn split_four(&self) -> bool {
        let mut all: Vec<i64> = Vec::new();
        for i in 0..self.seen.len() {
            if self.running[i].is_none() {
                continue;
            }
            match self.assignment(i) {
                Some(a) if !a.is_empty() => all.extend(a),
                _ => return false,
            }
        }
        all.sort();
        all == [0, 1, 2, 3]
    }

    /// Waits for member `i` to exit (its stop file was written) and checks it.
    pub fn finish(&mut self, i: usize) -> Finished {
        let running = self.running[i].take().expect("member still running");
        running.finish(std::mem::take(&mut self.seen[i]))
    }
}
