//! The terminal UI end to end in a real terminal: `chronik-tui` runs inside tmux, real
//! kafka-python 3 producers talk to its broker, and the test drives the UI only with key presses
//! (`tmux send-keys`) and reads only what is on the screen (`tmux capture-pane`, with colours).
//!
//! It checks that `:throttle 7` makes every response carry throttle_time_ms = 7, that the field
//! tree's `t` highlights exactly that field's four bytes in the hex pane at the offset the
//! protocol spec gives for the ProduceResponse version the client used, that `p` moves the
//! placement to `front`, and that a client which negotiated a version `front` applies to (after
//! `:cap produce=8`, with the throttle back at 0) is shown `stalled` in the clients view while the
//! first client is not, and that `q` ends the program. Over captures read with `--pcap`: rows
//! shown before the file is read, and a display filter with an error shown beside its text,
//! which stays editable.
//!
//! Without tmux or the Python venv (`scripts/test.sh --install-only` installs both) the test is
//! skipped with a printed reason, unless `CI` is set: then a missing tool is a failure.

use crate::common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::tmux::{Colour, Screen, Session, Style};
use serde_json::Value as Json;

/// Terminal size: wide enough for 16 hex bytes a row and every column of the exchange list.
const COLS: u16 = 120;
const ROWS: u16 = 36;

/// The hex highlight in the test's theme: a colour no other role of the default theme uses.
const HIGHLIGHT: Colour = Colour::Rgb(255, 0, 255);
/// The selected row in the test's theme, to tell which exchange is selected.
const SELECTED: Colour = Colour::Rgb(0, 160, 160);

/// How long the UI and the clients get for each step.
const STEP: Duration = Duration::from_secs(20);

/// Client ids of the two producers (short enough for the list's 12-column client cell).
const FIRST: &str = "tmux-first";
const SECOND: &str = "tmux-second";

/// A kafka-python producer that sends COUNT messages with acks=1 and says, one JSON line per
/// message, whether each was acknowledged. Arguments: BOOTSTRAP TOPIC CLIENT_ID COUNT
/// REQUEST_TIMEOUT_MS. No retries, so a lost ack is an error and not a resend.
const PRODUCER: &str = r#"
import json, sys
import kafka
from kafka import KafkaProducer

def emit(**f):
    sys.stdout.write(json.dumps(f) + "\n")
    sys.stdout.flush()

bootstrap, topic, client_id, count, timeout_ms = sys.argv[1:6]
count, timeout_ms = int(count), int(timeout_ms)
emit(event="version", version=kafka.__version__)
try:
    p = KafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, acks=1, linger_ms=5,
                      request_timeout_ms=timeout_ms, retries=0, bootstrap_timeout_ms=15000)
except Exception as e:
    emit(event="error", message="%s: %s" % (type(e).__name__, e))
    sys.exit(1)
futures = [p.send(topic, key=b"key-%d" % i, value=b"value-%d" % i) for i in range(count)]
try:
    p.flush(timeout=timeout_ms / 1000.0 + 3)
except Exception as e:
    emit(event="error", message="flush: %s: %s" % (type(e).__name__, e))
for i, f in enumerate(futures):
    if f.is_done and f.succeeded():
        emit(event="produced", index=i, offset=f.value.offset)
    elif f.is_done:
        emit(event="error", index=i, message="%s: %s" % (type(f.exception).__name__, f.exception))
    else:
        emit(event="error", index=i, message="no answer")
try:
    p.close(timeout=1)
except Exception as e:
    emit(event="error", message="close: %s: %s" % (type(e).__name__, e))
"#;

/// The venv's Python (kafka-python 3), where scripts/test.sh installs it.
fn python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/python")
}

/// Why the test cannot run here, if it cannot.
fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
    if !common::tmux::available() {
        missing.push("tmux is not installed".to_string());
    }
    if !python().exists() {
        missing.push(format!("{} is missing", python().display()));
    }
    missing
}

/// A free port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address").port()
}

/// A producer process; killed if still running when dropped.
struct Producer {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    describe: String,
}

/// What a producer printed.
struct ProducerRun {
    status: Option<ExitStatus>,
    events: Vec<Json>,
    stderr: String,
    describe: String,
}

impl ProducerRun {
    fn of(&self, kind: &str) -> Vec<&Json> {
        self.events.iter().filter(|e| e["event"] == kind).collect()
    }

    /// Everything it said, for failure messages.
    fn report(&self) -> String {
        let err: Vec<&str> = self.stderr.lines().rev().take(20).collect();
        format!(
            "{} exited {:?}\n--- output:\n{}\n--- last stderr lines:\n{}",
            self.describe,
            self.status,
            self.events
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            err.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

fn read_all(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

impl Producer {
    fn spawn(bootstrap: &str, topic: &str, client_id: &str, count: u32, timeout_ms: u32) -> Self {
        let args = [
            bootstrap.to_string(),
            topic.to_string(),
            client_id.to_string(),
            count.to_string(),
            timeout_ms.to_string(),
        ];
        let mut child = Command::new(python())
            .arg("-c")
            .arg(PRODUCER)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the kafka-python producer");
        let stdout = child.stdout.take().map(read_all);
        let stderr = child.stderr.take().map(read_all);
        Producer {
            child,
            stdout,
            stderr,
            describe: format!("kafka-python producer {args:?}"),
        }
    }

    /// Waits for the end (killing it after `timeout`) and collects its output.
    fn finish(mut self, timeout: Duration) -> ProducerRun {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        let join = |h: Option<JoinHandle<String>>| {
            h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        let out = join(self.stdout.take());
        let stderr = join(self.stderr.take());
        let events = out
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|_| serde_json::json!({"event": "raw", "line": l}))
            })
            .collect();
        ProducerRun {
            status,
            events,
            stderr,
            describe: self.describe.clone(),
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Prints the UI's log when the test fails (what the broker and the UI said).
struct LogOnFailure(PathBuf);

impl Drop for LogOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- last lines of {}:\n{}",
                self.0.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// The theme the test gives `--theme`: the dark theme with two roles set to colours that are
/// unambiguous in the captured escapes.
fn write_theme(dir: &Path) -> PathBuf {
    let path = dir.join("tmux-test.toml");
    let (Colour::Rgb(hr, hg, hb), Colour::Rgb(sr, sg, sb)) = (HIGHLIGHT, SELECTED) else {
        unreachable!("both test colours are RGB")
    };
    let text = format!(
        "name = \"tmux-test\"\n[styles]\n\
         hex_highlight = {{ fg = \"black\", bg = \"#{hr:02x}{hg:02x}{hb:02x}\" }}\n\
         selected = {{ fg = \"black\", bg = \"#{sr:02x}{sg:02x}{sb:02x}\" }}\n"
    );
    std::fs::write(&path, text).expect("write the test theme");
    path
}

/// The status bar: the second row from the bottom.
fn status_bar(screen: &[String]) -> &str {
    screen
        .get(ROWS as usize - 2)
        .map(String::as_str)
        .unwrap_or("")
}

fn is_vertical_border(c: char) -> bool {
    matches!(c, '│' | '┃')
}

/// The inside of the rightmost pane on each row from `first` down, as long as the row ends with
/// a vertical border: the cells between the row's last two vertical borders.
fn right_pane_rows(screen: &Screen, first: usize) -> Vec<Vec<(char, Style)>> {
    let mut out = Vec::new();
    for row in screen.rows.iter().skip(first) {
        let Some(right) = row.iter().rposition(|c| is_vertical_border(c.ch)) else {
            break;
        };
        if right + 1 != row.len() {
            break;
        }
        let Some(left) = row[..right].iter().rposition(|c| is_vertical_border(c.ch)) else {
            break;
        };
        out.push(
            row[left + 1..right]
                .iter()
                .map(|c| (c.ch, c.style))
                .collect(),
        );
    }
    out
}

/// What the hex pane shows.
#[derive(Debug)]
struct HexPane {
    /// `N bytes` from the title.
    len: usize,
    /// `cursor @N` from the title.
    cursor: usize,
    /// Every byte on screen: (offset, value, drawn with the highlight).
    bytes: Vec<(usize, u8, bool)>,
    /// Bytes per row.
    per_row: usize,
}

/// Reads the hex pane (titled `Hex: response frame, …`) off a styled screen.
fn read_hex_pane(screen: &Screen) -> Result<HexPane, String> {
    let text = screen.text();
    let (title_row, title) = text
        .iter()
        .enumerate()
        .find(|(_, l)| l.contains("Hex: response frame"))
        .ok_or("no hex pane showing the response frame")?;
    let after = title
        .split("Hex: response frame, ")
        .nth(1)
        .ok_or("hex title")?;
    let len: usize = after
        .split(" bytes")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("no byte count in the hex title {title:?}"))?;
    let cursor: usize = after
        .split("cursor @")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no cursor in the hex title {title:?}"))?;
    // Offset column width: 4 hex digits up to 64 KiB, else 8.
    let ow = if len <= 0x1_0000 { 4 } else { 8 };
    let mut lines: Vec<(usize, Vec<(char, Style)>)> = Vec::new();
    for cells in right_pane_rows(screen, title_row + 1) {
        let s: String = cells.iter().map(|c| c.0).collect();
        let offset = s
            .get(..ow)
            .filter(|o| o.chars().all(|c| c.is_ascii_hexdigit()))
            .filter(|_| s.get(ow..ow + 2) == Some("  "))
            .and_then(|o| usize::from_str_radix(o, 16).ok());
        match offset {
            Some(o) => lines.push((o, cells)),
            None => break,
        }
    }
    if lines.is_empty() {
        return Err("no hex rows under the hex title".into());
    }
    let per_row = match lines.as_slice() {
        [(a, _), (b, _), ..] => b.checked_sub(*a).ok_or("hex row offsets go backwards")?,
        _ => len.max(1),
    };
    if ![4, 8, 16].contains(&per_row) && lines.len() > 1 {
        return Err(format!("{per_row} bytes per hex row"));
    }
    let mut bytes = Vec::new();
    for (row_offset, cells) in &lines {
        for i in 0..per_row {
            let offset = row_offset + i;
            if offset >= len {
                break;
            }
            // Two digits and a space per byte, one more space after each group of 8.
            let col = ow + 2 + i * 3 + i / 8;
            let (Some(hi), Some(lo)) = (cells.get(col), cells.get(col + 1)) else {
                return Err(format!("hex row {row_offset:x} is cut short at byte {i}"));
            };
            let digits: String = [hi.0, lo.0].iter().collect();
            let value = u8::from_str_radix(&digits, 16)
                .map_err(|_| format!("{digits:?} at offset {offset} is not a hex byte"))?;
            let (a, b) = (hi.1.bg == HIGHLIGHT, lo.1.bg == HIGHLIGHT);
            if a != b {
                return Err(format!(
                    "only one digit of the byte at offset {offset} is highlighted"
                ));
            }
            bytes.push((offset, value, a));
        }
    }
    Ok(HexPane {
        len,
        cursor,
        bytes,
        per_row,
    })
}

/// Where the protocol spec puts throttle_time_ms in a ProduceResponse of `version` that is
/// `len` bytes long (the 4-byte length prefix included): the byte range.
fn spec_throttle_range(version: u32, len: usize) -> std::ops::Range<usize> {
    match version {
        0 => panic!("ProduceResponse v0 has no throttle_time_ms"),
        // The last field of the body.
        1..=8 => len.saturating_sub(4)..len,
        // Flexible versions: the last field before the body's tagged-field section, which is
        // one byte (a zero count) when empty.
        _ => len.saturating_sub(5)..len.saturating_sub(1),
    }
}

/// The exchange list's selected row (drawn in the selected style, above the detail panes).
fn selected_list_row(screen: &Screen) -> Option<String> {
    let text = screen.text();
    let list_end = text.iter().position(|l| l.contains("Fields: "))?;
    screen.rows[..list_end]
        .iter()
        .enumerate()
        .filter(|(_, r)| r.get(1).is_some_and(|c| c.style.bg == SELECTED))
        .map(|(i, _)| text[i].clone())
        .next()
}

/// `Produce vN` in a list row.
fn produce_version(row: &str) -> Option<u32> {
    let rest = row.split("Produce v").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// One row of the clients view.
#[derive(Debug)]
struct ClientRow {
    client_id: String,
    versions: String,
    placement: String,
    health: String,
    line: String,
}

/// The clients table: columns found by the header's titles.
fn client_rows(screen: &[String]) -> Vec<ClientRow> {
    let Some(h) = screen
        .iter()
        .position(|l| l.contains("client id") && l.contains("health"))
    else {
        return Vec::new();
    };
    let header: Vec<char> = screen[h].chars().collect();
    let col = |title: &str| -> Option<usize> {
        let t: Vec<char> = title.chars().collect();
        header.windows(t.len()).position(|w| w == t.as_slice())
    };
    let cols = [
        "client id",
        "software",
        "versions",
        "reqs",
        "placement",
        "health",
    ]
    .map(col);
    let [Some(id), Some(sw), Some(ver), Some(reqs), Some(place), Some(health)] = cols else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for line in &screen[h + 1..] {
        let chars: Vec<char> = line.chars().collect();
        let cell = |from: usize, to: usize| -> String {
            let to = to.min(chars.len());
            chars
                .get(from..to)
                .map(|c| c.iter().collect::<String>())
                .unwrap_or_default()
                .trim_matches(|c: char| c.is_whitespace() || is_vertical_border(c))
                .to_string()
        };
        let client_id = cell(id, sw);
        if client_id.is_empty() {
            break;
        }
        rows.push(ClientRow {
            client_id,
            versions: cell(ver, reqs),
            placement: cell(place, health),
            health: cell(health, chars.len()),
            line: line.trim_end().to_string(),
        });
    }
    rows
}

#[test]
fn throttle_field_highlight_placement_and_stall_in_a_real_terminal() {
    let missing = missing_tools();
    if !missing.is_empty() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "{} (CI is set, so this is a failure; scripts/test.sh --install-only installs them)",
                missing.join("; ")
            );
        }
        // Straight to stderr, past the test harness's output capture, so the skip is seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED tui_tmux: {} (run scripts/test.sh --install-only)",
            missing.join("; ")
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let theme = write_theme(dir.path());
    let log = dir.path().join("chronik-tui.log");
    let _log_on_failure = LogOnFailure(log.clone());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let argv: Vec<String> = [
        "env",
        "-u",
        "NO_COLOR",
        env!("CARGO_BIN_EXE_chronik-tui"),
        "--listen",
        &listen,
        "--stall-silence-ms",
        "2000",
        "--theme",
        &theme.to_string_lossy(),
        "--log-file",
        &log.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let tui = Session::start("tui", COLS, ROWS, &argv);
    tui.wait_for("the UI to show the broker's address", STEP, |s| {
        status_bar(s).contains(&format!("broker {listen}"))
    });

    // 1. Inject throttle_time_ms = 7 in every response, through the command prompt.
    tui.type_text(":");
    tui.type_text("throttle 7");
    tui.keys(&["Enter"]);
    tui.wait_for("throttle=7ms in the status bar", STEP, |s| {
        status_bar(s).contains("throttle=7ms")
    });

    // 2. A kafka-python 3 producer gets its acks.
    let first =
        Producer::spawn(&listen, "tui-tmux", FIRST, 3, 10_000).finish(Duration::from_secs(40));
    let version = first
        .of("version")
        .first()
        .and_then(|e| e["version"].as_str().map(str::to_string))
        .unwrap_or_default();
    assert!(
        version.starts_with("3."),
        "the venv's kafka-python is {version:?}, not 3.x\n{}",
        first.report()
    );
    assert_eq!(
        first.of("produced").len(),
        3,
        "the first producer must get every ack\n{}",
        first.report()
    );
    tui.wait_for("the first producer's Produce rows", STEP, |s| {
        s.iter()
            .any(|l| l.contains(FIRST) && l.contains("Produce v"))
    });

    // 3. Filter the Produce exchanges, open the last one's tree, jump to throttle_time_ms.
    tui.type_text("/");
    tui.type_text("api == Produce");
    tui.keys(&["Enter"]);
    tui.wait_for("the filter in the list's title", STEP, |s| {
        s.iter().any(|l| l.contains("filter: api == Produce"))
    });
    tui.type_text("G");
    tui.keys(&["Enter"]);
    tui.type_text("t");
    tui.wait_for(
        "the throttle field selected and the response frame in hex",
        STEP,
        |s| {
            s.iter()
                .any(|l| l.contains("Fields: produce.response.throttle_time_ms"))
                && s.iter().any(|l| l.contains("Hex: response frame"))
        },
    );
    let screen = tui.screen();
    let shown = screen.text().join("\n");
    let row = selected_list_row(&screen)
        .unwrap_or_else(|| panic!("no selected row in the exchange list:\n{shown}"));
    let produce = produce_version(&row)
        .unwrap_or_else(|| panic!("the selected row is not a Produce exchange: {row:?}\n{shown}"));
    assert!(
        row.contains(FIRST),
        "the selected row is not the first producer's: {row:?}"
    );
    assert!(
        shown.contains("throttle_time_ms: 7"),
        "the field tree does not show throttle_time_ms: 7:\n{shown}"
    );
    let hex = read_hex_pane(&screen).unwrap_or_else(|e| panic!("{e}:\n{shown}"));
    let lit: Vec<(usize, u8)> = hex
        .bytes
        .iter()
        .filter(|b| b.2)
        .map(|b| (b.0, b.1))
        .collect();
    let expected = spec_throttle_range(produce, hex.len);
    eprintln!(
        "ProduceResponse v{produce}, {} bytes, {} bytes a hex row; highlighted {:?}; spec puts \
         throttle_time_ms at {expected:?}",
        hex.len, hex.per_row, lit
    );
    assert_eq!(
        hex.per_row, 16,
        "a {COLS}-column terminal has room for 16 hex bytes a row:\n{shown}"
    );
    // The pane shows the whole frame: it reads back as a frame (length prefix = size - 4).
    if hex.bytes.len() == hex.len {
        let prefix: Vec<u8> = hex.bytes.iter().take(4).map(|b| b.1).collect();
        assert_eq!(
            prefix,
            ((hex.len - 4) as u32).to_be_bytes(),
            "the hex pane's first four bytes are not the frame's length:\n{shown}"
        );
    }
    assert_eq!(
        lit.len(),
        4,
        "exactly the 4 bytes of throttle_time_ms must be highlighted, got {lit:?}:\n{shown}"
    );
    assert_eq!(
        lit.iter().map(|b| b.1).collect::<Vec<_>>(),
        [0, 0, 0, 7],
        "the highlighted bytes must read 00 00 00 07 (throttle 7):\n{shown}"
    );
    assert_eq!(
        lit.iter().map(|b| b.0).collect::<Vec<_>>(),
        expected.clone().collect::<Vec<_>>(),
        "the highlight is not where the spec puts throttle_time_ms in a v{produce} \
         ProduceResponse of {} bytes:\n{shown}",
        hex.len
    );
    assert_eq!(
        hex.cursor, expected.start,
        "the hex cursor must be on the field's first byte:\n{shown}"
    );

    // 4. `p` moves the placement from spec to front.
    tui.type_text("p");
    tui.wait_for("placement=front in the status bar", STEP, |s| {
        status_bar(s).contains("placement=front")
    });
    // New connections get Produce up to v8, a version `front` applies to.
    tui.type_text(":");
    tui.type_text("cap produce=8");
    tui.keys(&["Enter"]);
    tui.wait_for("caps=produce=8 in the status bar", STEP, |s| {
        status_bar(s).contains("caps=produce=8")
    });

    // Back to throttle_time_ms = 0, what a broker that does not throttle sends. Under front,
    // kafka-python 3 reads those four bytes at the front of a v8 response as the length of the
    // responses array: 0 is an empty answer it keeps waiting behind (a stall), while 7 is a
    // frame it cannot parse, so it hangs up at once (the detector then says `disconnecting`).
    tui.type_text(":");
    tui.type_text("throttle 0");
    tui.keys(&["Enter"]);
    tui.wait_for("no throttle in the status bar", STEP, |s| {
        status_bar(s).contains("placement=front") && !status_bar(s).contains("throttle=")
    });

    // 5. A second producer, waiting 3 s for each ack, cannot read its responses: stalled.
    let second = Producer::spawn(&listen, "tui-tmux", SECOND, 3, 3_000);
    tui.type_text("2");
    let clients = tui.wait_for("a stalled row of the second producer", STEP, |s| {
        client_rows(s)
            .iter()
            .any(|r| r.client_id == SECOND && r.health.contains("stalled"))
    });
    let rows = client_rows(&clients);
    let table = rows
        .iter()
        .map(|r| r.line.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let stalled: Vec<&ClientRow> = rows
        .iter()
        .filter(|r| r.client_id == SECOND && r.health.contains("stalled"))
        .collect();
    assert!(
        stalled
            .iter()
            .any(|r| r.placement == "front" && r.versions.contains("Prod8")),
        "the stalled connection must have used Produce v8 under front:\n{table}"
    );
    let first_rows: Vec<&ClientRow> = rows.iter().filter(|r| r.client_id == FIRST).collect();
    assert!(
        !first_rows.is_empty(),
        "the first producer's connections are not in the clients view:\n{table}"
    );
    assert!(
        first_rows.iter().all(|r| !r.health.contains("stalled")),
        "the first producer got its acks and must not be stalled:\n{table}"
    );
    let second = second.finish(Duration::from_secs(30));
    assert!(
        second.of("produced").is_empty(),
        "the second producer got acks it should not have been able to read\n{}",
        second.report()
    );
    assert!(
        !second.of("error").is_empty(),
        "the second producer must report its missing acks\n{}",
        second.report()
    );
    eprintln!("clients view:\n{table}");

    // 6. `q` quits: the program exits and its session ends.
    tui.type_text("q");
    assert!(
        tui.wait_gone(Duration::from_secs(5)),
        "chronik-tui still runs 5 s after q:\n{}",
        tui.text().join("\n")
    );
}

#[test]
fn sgr_state_follows_every_parameter_form() {
    let s = Screen::parse(
        "a\x1b[1;30;103mb\x1b[0mc\x1b[38;5;0m\x1b[48;2;255;0;255md\x1b[49me\n\
         f\x1b[mg\x1b[38:2::1:2:3mh\x1b[22;39mi",
    );
    let styles: Vec<Style> = s.rows.iter().flatten().map(|c| c.style).collect();
    assert_eq!(s.text(), vec!["abcde".to_string(), "fghi".to_string()]);
    assert_eq!(styles[0], Style::default());
    assert_eq!(
        styles[1],
        Style {
            fg: Colour::Indexed(0),
            bg: Colour::Indexed(11),
            bold: true,
            ..Style::default()
        }
    );
    assert_eq!(styles[2], Style::default());
    assert_eq!(styles[3].bg, Colour::Rgb(255, 0, 255));
    assert_eq!(styles[3].fg, Colour::Indexed(0));
    assert_eq!(styles[4].bg, Colour::Default);
    assert_eq!(styles[4].fg, Colour::Indexed(0));
    // The state carries over to the next row until a reset.
    assert_eq!(styles[5].fg, Colour::Indexed(0));
    assert_eq!(styles[6], Style::default());
    assert_eq!(styles[7].fg, Colour::Rgb(1, 2, 3));
    assert_eq!(styles[8], Style::default());
}

#[test]
fn spec_offsets_of_throttle_time_ms() {
    // v1-v8: the response body ends with throttle_time_ms.
    assert_eq!(spec_throttle_range(8, 54), 50..54);
    assert_eq!(spec_throttle_range(1, 30), 26..30);
    // v9+: then one byte of (empty) tagged fields.
    assert_eq!(spec_throttle_range(9, 53), 48..52);
}

/// Where the first exchange of a capture is complete: the bytes of the file up to the end of
/// the packet that completes it, and how many exchanges the whole file holds.
fn first_exchange_cut(capture: &[u8]) -> (usize, usize) {
    use chronik_tui::capture::pcap::reader::CaptureReader;
    use chronik_tui::capture::pcap::source::{Pipeline, Progress};
    use chronik_tui::capture::{Store, StoreLimits};
    let store = Store::new(StoreLimits::default());
    let progress = Progress::new("cut".into(), 0);
    let mut pipeline = Pipeline::new(Default::default(), store.clone(), progress);
    let mut reader =
        CaptureReader::new(std::io::Cursor::new(capture.to_vec())).expect("a capture file");
    let mut cut = None;
    while let Some(packet) = reader.next_packet() {
        pipeline.packet(packet.expect("a whole capture").borrow());
        if cut.is_none() && !store.snapshot().is_empty() {
            cut = Some(reader.bytes_read() as usize);
        }
    }
    pipeline.finish();
    (
        cut.expect("an exchange in the capture"),
        store.snapshot().len(),
    )
}

/// The UI over a capture file (or pipe) in a new tmux session, logging to `log`.
fn pcap_ui(tag: &str, capture: &Path, log: &Path) -> Session {
    let argv: Vec<String> = [
        env!("CARGO_BIN_EXE_chronik-tui"),
        "--pcap",
        &capture.to_string_lossy(),
        "--log-file",
        &log.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Session::start(tag, COLS, ROWS, &argv)
}

/// A capture opens streaming: `--pcap` on a named pipe, fed the capture up to the packet that
/// completes its first exchange and then held open, shows that exchange in the list while the
/// rest of the file has not been written (so it cannot have been read); the rest then arrives,
/// and the status line says the file is read with every exchange.
#[test]
fn a_capture_shows_its_first_rows_before_the_file_is_read() {
    if !common::tmux::available() || !common::have("mkfifo") {
        assert!(
            std::env::var_os("CI").is_none(),
            "tmux and mkfifo are needed (CI is set, so this is a failure)"
        );
        let _ = writeln!(std::io::stderr(), "SKIPPED: tmux or mkfifo missing");
        return;
    }
    let capture = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/kafka-python-2-spec.pcapng"),
    )
    .expect("captures/kafka-python-2-spec.pcapng");
    let (cut, total) = first_exchange_cut(&capture);
    assert!(
        cut < capture.len() && total > 1,
        "cut {cut}, {total} exchanges"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("k.fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let log = dir.path().join("chronik-tui.log");
    let _log_on_failure = LogOnFailure(log.clone());
    let tui = pcap_ui("pcap", &fifo, &log);

    // The writer: the first part, then the rest only when told.
    let (go_on, wait) = std::sync::mpsc::channel::<()>();
    let path = fifo.clone();
    let writer = std::thread::spawn(move || {
        // Opening a pipe for writing waits until the reader opens it.
        let mut pipe = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open the pipe");
        pipe.write_all(&capture[..cut])
            .expect("write the first part");
        pipe.flush().expect("flush");
        let _ = wait.recv_timeout(STEP * 2);
        let _ = pipe.write_all(&capture[cut..]);
    });

    let shown = tui.wait_for("the first exchange in the list", STEP, |s| {
        s.iter().any(|row| row.contains("ApiVersions v0")) && status_bar(s).contains(", 1 exchange")
    });
    assert!(
        !status_bar(&shown).contains("(read)"),
        "the file cannot be read yet: {}",
        status_bar(&shown)
    );
    go_on.send(()).expect("the writer waits");
    writer.join().expect("the writer");
    let want = format!("{total} exchanges (read)");
    tui.wait_for("the whole file read", STEP, |s| {
        status_bar(s).contains(&want)
    });
    tui.keys(&["q"]);
    assert!(tui.wait_gone(STEP), "q ends the program");
}

/// A display filter with an error, entered with Enter, shows the error at once on the bottom
/// line beside the text, which stays in the prompt and can be fixed and applied (a capture from
/// captures/, read with `--pcap`: no client needed).
#[test]
fn a_bad_filter_shows_its_error_and_stays_editable() {
    if !common::tmux::usable() {
        return;
    }
    let (capture, port) = common::capture::spec_capture();
    let produce = {
        let all = common::capture::decode(&capture, port);
        let n = all.iter().filter(|e| e.api_key == 0).count();
        assert!(n > 0 && n < all.len(), "{n} Produce of {}", all.len());
        (n, all.len())
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("chronik-tui.log");
    let _log_on_failure = LogOnFailure(log.clone());
    let tui = pcap_ui("filter", &capture, &log);
    let read = format!("{} exchanges (read)", produce.1);
    tui.wait_for("the whole file read", STEP, |s| {
        status_bar(s).contains(&read)
    });
    let bottom = |s: &[String]| s.get(ROWS as usize - 1).cloned().unwrap_or_default();

    tui.type_text("/");
    tui.type_text("api == Produse");
    tui.keys(&["Enter"]);
    let why = "✗ at column 8: unknown API `Produse`; did you mean `Produce`?";
    let want = format!("filter> api == Produse  {why}");
    tui.wait_for("the error beside the text", STEP, |s| bottom(s) == want);

    // Still the prompt: keys edit the text, the error stays until Enter.
    tui.keys(&["BSpace", "BSpace"]);
    tui.type_text("ce");
    let want = format!("filter> api == Produce  {why}");
    tui.wait_for("the fixed text in the prompt", STEP, |s| bottom(s) == want);
    tui.keys(&["Enter"]);
    let want = format!("filter api == Produce: {} rows", produce.0);
    let screen = tui.wait_for("the filter applied", STEP, |s| bottom(s) == want);
    let title = format!("Exchanges {}/{}", produce.0, produce.1);
    assert!(screen[0].contains(&title), "{}", screen.join("\n"));
    tui.keys(&["q"]);
    assert!(tui.wait_gone(STEP), "q ends the program");
}

/// `--listen` as typed: a bare port is loopback and the status bar says only where; every
/// interface (`0.0.0.0`) is said to be reachable beyond this machine. And `--record -` refuses
/// to write pcapng to the terminal.
#[test]
fn the_status_bar_says_where_the_broker_listens() {
    if !common::tmux::usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("chronik-tui.log");
    for (listen, shown) in [
        ("{p}", "broker 127.0.0.1:{p}  placement"),
        (
            "0.0.0.0:{p}",
            "broker 0.0.0.0:{p} (all interfaces: reachable beyond this machine)",
        ),
    ] {
        let p = free_port().to_string();
        let argv: Vec<String> = [
            env!("CARGO_BIN_EXE_chronik-tui"),
            "--listen",
            &listen.replace("{p}", &p),
            "--log-file",
            &log.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let tui = Session::start("listen", COLS, ROWS, &argv);
        let want = shown.replace("{p}", &p);
        tui.wait_for(&want, STEP, |s| status_bar(s).contains(&want));
        tui.keys(&["q"]);
        assert!(tui.wait_gone(STEP), "q ends the program");
    }
    let argv: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        format!(
            "{} --record - --log-file {}; echo exit=$?; sleep 60",
            env!("CARGO_BIN_EXE_chronik-tui"),
            log.display()
        ),
    ];
    let tui = Session::start("record", COLS, ROWS, &argv);
    let shown = tui.wait_for("the refusal", STEP, |s| {
        s.iter().any(|row| row.starts_with("exit="))
    });
    let text = shown.join("\n");
    assert!(
        text.contains(
            "chronik-tui: --record -: standard output is a terminal; pipe it to a program \
             (| wireshark -k -i -) or name a file"
        ) && text.contains("exit=2"),
        "{text}"
    );
}

/// `chronik-tui replay` in a real terminal: the shipped healthy capture against `--placement
/// front`; `d` goes to the ProduceResponse's first difference, selected in both trees, and the
/// differing bytes are drawn in the theme's colour in both hex views; `q` leaves the summary on
/// the terminal and exits 1 (a difference).
#[test]
fn replay_shows_the_differences_side_by_side_in_a_real_terminal() {
    if !common::tmux::usable() {
        return;
    }
    const CHANGED: Colour = Colour::Rgb(255, 136, 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let theme = dir.path().join("replay-test.toml");
    std::fs::write(
        &theme,
        "[styles]\ndiff_changed = { fg = \"black\", bg = \"#ff8800\" }\n",
    )
    .expect("write the test theme");
    let log = dir.path().join("chronik-tui.log");
    let _log_on_failure = LogOnFailure(log.clone());
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/kafka-python-2-spec.pcapng");
    // The capture holds the ApiVersions list of the broker that recorded it, which grows with
    // every API served since: left out of the comparison.
    let command = format!(
        "'{}' replay '{}' --kafka-port 19094 --placement front \
         --ignore api_versions.response.api_keys --theme '{}' --log-file '{}'; \
         echo EXIT=$?; sleep 60",
        env!("CARGO_BIN_EXE_chronik-tui"),
        capture.display(),
        theme.display(),
        log.display()
    );
    let tui = Session::start(
        "replay",
        COLS,
        ROWS,
        &["sh".to_string(), "-c".to_string(), command],
    );
    tui.wait_for("the replay's five exchanges", STEP, |s| {
        s.first()
            .is_some_and(|r| r.contains("4 same, 1 with differences"))
            && s.iter()
                .any(|r| r.contains("Produce v7") && r.contains("4 differences"))
    });
    tui.keys(&["d"]);
    // Recorded 1 and live 0, side by side on the selected line of both trees (waited for as a
    // whole: a screen read while the UI redraws can hold half a line).
    let shown = tui.wait_for("the first difference selected in both trees", STEP, |s| {
        s.iter().any(|r| r.contains("▶#5"))
            && s.iter()
                .filter(|r| r.contains("▶        ≠ array_length"))
                .count()
                == 1
            && s.iter().any(|r| {
                r.contains("▶        ≠ array_length: 1") && r.contains("▶        ≠ array_length: 0")
            })
    });
    // throttle_time_ms, the other changed field, in the theme's colour in each hex view.
    let screen = tui.screen();
    let half = COLS as usize / 2;
    let coloured = |left: bool| {
        screen
            .rows
            .iter()
            .flat_map(|r| r.iter().enumerate())
            .filter(|(x, c)| c.style.bg == CHANGED && (*x < half) == left)
            .count()
    };
    assert!(
        coloured(true) > 0 && coloured(false) > 0,
        "changed bytes on both sides ({} left, {} right):\n{}",
        coloured(true),
        coloured(false),
        shown.join("\n")
    );
    tui.keys(&["q"]);
    tui.wait_for("the summary and the exit status", STEP, |s| {
        s.iter().any(|r| r.contains("EXIT=1"))
            && s.iter()
                .any(|r| r.starts_with("replayed 5 exchanges on 2 connections"))
    });
}

/// `chronik-tui repro` in a real terminal: the step panel over the exchanges; `n` runs one step,
/// `r` runs on to the first failure, `b` restarts the broker and runs the steps before the
/// current one again. Requests sent by the scenario itself: no client program needed.
#[test]
fn repro_steps_through_a_scenario_in_the_terminal() {
    if !common::tmux::usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("chronik-tui.log");
    let scenario = dir.path().join("s.toml");
    std::fs::write(
        &scenario,
        r#"
name = "three requests"
[broker]
topics = [{ name = "orders" }]

[[step]]
name = "versions"
send = { api = "ApiVersions", version = 3, fields = { client_software_name = "t", client_software_version = "1" } }
expect.response = "api == ApiVersions && error == 0"

[[step]]
name = "metadata"
send = { api = "Metadata", version = 1, fields = { topics = [{ name = "orders" }] } }
expect.response = "metadata.response.topics.name == orders"

[[step]]
name = "wrong on purpose"
send = { api = "Metadata", version = 1, fields = { topics = [{ name = "orders" }] } }
expect.response = "metadata.response.topics.name == payments"

[[step]]
name = "after the failure"
wait = "10ms"
"#,
    )
    .unwrap();
    let argv: Vec<String> = [
        env!("CARGO_BIN_EXE_chronik-tui"),
        "repro",
        &scenario.to_string_lossy(),
        "--log-file",
        &log.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let tui = Session::start("repro", COLS, ROWS, &argv);
    let row = |s: &[String], n: usize| -> String {
        s.iter()
            .find(|r| r.contains(&format!("{n}. ")) && r.starts_with('│'))
            .cloned()
            .unwrap_or_default()
    };
    tui.wait_for("the step panel", STEP, |s| {
        s[0].contains("Steps 0/4 passed") && row(s, 1).contains("▶ 1.")
    });
    tui.keys(&["n"]);
    let shown = tui.wait_for("step 1 passed", STEP, |s| {
        row(s, 1).contains("PASS versions") && row(s, 2).contains("▶ 2.")
    });
    assert!(
        shown
            .iter()
            .any(|r| r.contains("ok  response api == ApiVersions && error == 0")),
        "{}",
        shown.join("\n")
    );
    // r runs on and stops at the failure.
    tui.keys(&["r"]);
    // The step panel and the list are drawn from different ticks: wait for both.
    let shown = tui.wait_for("step 3 failed, in the panel and the list", STEP, |s| {
        row(s, 3).contains("FAIL wrong on purpose")
            && s.iter().any(|r| r.contains("[scenario] step 3/4 FAILED"))
    });
    assert!(
        row(&shown, 2).contains("PASS metadata"),
        "{}",
        shown.join("\n")
    );
    assert!(row(&shown, 4).contains("▶ 4.") && !row(&shown, 4).contains("PASS"));
    assert!(
        shown
            .iter()
            .any(|r| r.contains("NOT response metadata.response.topics.name == payments")),
        "{}",
        shown.join("\n")
    );
    // Every step is a marker row in the list.
    assert!(
        shown
            .iter()
            .any(|r| r.contains("[scenario] step 3/4 FAILED")),
        "{}",
        shown.join("\n")
    );
    // b: a new broker, the steps before the one that failed run again; it is next again.
    tui.keys(&["b"]);
    let shown = tui.wait_for("the restart", STEP, |s| {
        s.iter().any(|r| {
            r.contains("broker restarted on 127.0.0.1:") && r.contains("replayed 2 step(s)")
        })
    });
    assert!(
        row(&shown, 2).contains("PASS metadata"),
        "{}",
        shown.join("\n")
    );
    assert!(
        row(&shown, 3).contains("▶ 3.") && !row(&shown, 3).contains("FAIL"),
        "{}",
        shown.join("\n")
    );
    tui.keys(&["n"]);
    tui.wait_for("step 3 run again", STEP, |s| {
        row(s, 3).contains("FAIL wrong on purpose")
    });
    tui.keys(&["q"]);
    assert!(tui.wait_gone(STEP), "q ends the program");
}
