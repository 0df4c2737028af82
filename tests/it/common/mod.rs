//! Shared by the integration tests: runs the real `chronik-tui` binary as a child process.
#![allow(dead_code)]

pub mod capture;
pub mod clients;
pub mod frame;
pub mod tmux;
pub mod tshark;

#[allow(unused_imports)] // not every test binary sends frames
pub use frame::request_frame;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A broker process; killed when dropped.
pub struct Broker {
    pub child: Child,
    pub addr: SocketAddr,
    /// Lines the broker printed to stdout (headless exchange lines), received as they come.
    pub lines: mpsc::Receiver<String>,
    /// Lines taken off `lines` while [`Broker::command`] waited for its reply, in order.
    pub held: Vec<String>,
}

impl Broker {
    /// Starts `chronik-tui --headless --listen 127.0.0.1:0` plus `extra` arguments and waits
    /// until it says where it listens.
    pub fn start(extra: &[&str]) -> Broker {
        Self::start_in(extra, None)
    }

    /// Like [`Broker::start`], with the process's working directory set (its log file lands there).
    pub fn start_in(extra: &[&str], cwd: Option<&Path>) -> Broker {
        Self::start_on("127.0.0.1:0", extra, cwd)
    }

    /// Like [`Broker::start_in`], listening on `listen` (the same port again, after a restart).
    /// With `--proxy` in `extra` it is the proxy, and `addr` its bootstrap listener.
    pub fn start_on(listen: &str, extra: &[&str], cwd: Option<&Path>) -> Broker {
        let log_dir = tempfile::tempdir().expect("tempdir").keep();
        let log = log_dir.join("chronik-tui.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chronik-tui"));
        cmd.args(["--headless", "--listen", listen, "--log-file"])
            .arg(&log)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn().expect("spawn chronik-tui");
        let stderr = child.stderr.take().expect("stderr");
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        let addr = loop {
            line.clear();
            let n = reader.read_line(&mut line).expect("read stderr");
            assert!(n > 0, "chronik-tui exited before listening");
            let line = line.trim();
            let rest = line
                .strip_prefix("chronik-tui: broker listening on ")
                .or_else(|| line.strip_prefix("chronik-tui: proxy listening on "));
            if let Some(rest) = rest {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                break addr.parse().expect("listen address");
            }
        };
        // Keep draining stderr so the child never blocks on it.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                eprint!("[broker stderr] {sink}");
                sink.clear();
            }
        });
        let lines = forward_lines(child.stdout.take().expect("stdout"));
        Broker {
            child,
            addr,
            lines,
            held: Vec::new(),
        }
    }

    /// Writes a control command to the broker's stdin and returns its reply line (`# …`, or the
    /// `{"kind":"control",…}` object with `--json`); lines printed meanwhile go to `held`.
    pub fn command(&mut self, line: &str) -> String {
        use std::io::Write;
        let stdin = self
            .child
            .stdin
            .as_mut()
            .expect("the broker's stdin is piped");
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .expect("write a command to the broker");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if is_control_line(&l) => return l,
                Ok(l) => self.held.push(l),
                Err(_) => panic!("no reply to the command {line:?} within 10 s"),
            }
        }
    }

    /// `127.0.0.1:PORT` for clients' bootstrap setting.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Collects stdout lines until `pred` matches one or the timeout passes.
    pub fn wait_for_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return Some(l),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// With `--json`: every exchange the broker printed so far and until `done` holds for all
    /// of them (or the timeout passes), parsed, held lines first; control replies and client
    /// state lines are left out.
    pub fn exchanges_until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let exchange = |l: &str| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .filter(|v| v["kind"].is_null() && v["api_name"].is_string())
        };
        let mut out: Vec<serde_json::Value> =
            self.held.drain(..).filter_map(|l| exchange(&l)).collect();
        let deadline = std::time::Instant::now() + timeout;
        while !done(&out) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => out.extend(exchange(&l)),
                Err(_) => break,
            }
        }
        out
    }

    /// Stops the process with SIGTERM, as a person would, and waits for it to exit (a
    /// `--record` file is then complete); panics unless it exits 0 within 10 s.
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait for chronik-tui") {
                break st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chronik-tui did not exit within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "chronik-tui exited {status} after SIGTERM"
        );
    }

    /// Kills the process with SIGKILL (no clean shutdown).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn forward_lines(out: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The notes of an exchange as `--json` prints it.
pub fn notes(ex: &serde_json::Value) -> Vec<String> {
    ex["notes"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a stdout line is a control reply (`# …` other than a client state line, or a JSON
/// object of kind `control`).
pub fn is_control_line(line: &str) -> bool {
    (line.starts_with("# ") && !line.starts_with("# client conn="))
        || serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v["kind"] == "control")
}

/// `kcat` consuming `topic` in consumer group `group` from the earliest offset to the end (a
/// JoinGroup, SyncGroup and offset commit on the way); returns what it printed.
pub fn kcat_group_consume(bootstrap: &str, group: &str, topic: &str) -> String {
    kcat(
        &[
            "-b",
            bootstrap,
            "-G",
            group,
            "-X",
            "auto.offset.reset=earliest",
            "-e",
            "-q",
            topic,
        ],
        None,
    )
}

/// Runs kcat with `args`, feeding it `stdin`; its standard output. Fails the test when kcat is
/// missing or exits with an error.
pub fn kcat(args: &[&str], stdin: Option<&str>) -> String {
    let out = kcat_output(args, stdin);
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs kcat with `args`, feeding it `stdin`, whatever its exit status: its status, standard
/// output and standard error (where kcat and librdkafka write their errors). Fails the test
/// when kcat is missing.
pub fn kcat_output(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    assert!(
        have("kcat"),
        "kcat is not installed (scripts/test.sh installs it)"
    );
    let mut c = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat");
    if let Some(s) = stdin {
        c.stdin
            .as_mut()
            .expect("stdin")
            .write_all(s.as_bytes())
            .expect("kcat stdin");
    }
    drop(c.stdin.take());
    c.wait_with_output().expect("kcat")
}

/// Whether an executable is on PATH.
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
