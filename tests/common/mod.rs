//! Shared by the integration tests: runs the real `chronik-tui` binary as a child process.
#![allow(dead_code)]

pub mod clients;
pub mod tshark;

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
}

impl Broker {
    /// Starts `chronik-tui --headless --listen 127.0.0.1:0` plus `extra` arguments and waits
    /// until it says where it listens.
    pub fn start(extra: &[&str]) -> Broker {
        Self::start_in(extra, None)
    }

    /// Like [`Broker::start`], with the process's working directory set (its log file lands there).
    pub fn start_in(extra: &[&str], cwd: Option<&Path>) -> Broker {
        let log_dir = tempfile::tempdir().expect("tempdir").keep();
        let log = log_dir.join("chronik-tui.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chronik-tui"));
        cmd.args(["--headless", "--listen", "127.0.0.1:0", "--log-file"])
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
            if let Some(rest) = line
                .trim()
                .strip_prefix("chronik-tui: broker listening on ")
            {
                break rest.parse().expect("listen address");
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
        Broker { child, addr, lines }
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

/// Whether an executable is on PATH.
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
