//! A program in a real terminal: a tmux session on a private server (its own socket, no user
//! configuration) that is killed when dropped, and the screen it shows, as text and as cells
//! with the colours and attributes tmux recorded (`capture-pane -e`, parsed SGR by SGR).

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Whether the `tmux` program is on PATH.
pub fn available() -> bool {
    super::have("tmux")
}

/// Whether a test that needs tmux can run: false (after saying it is skipped) when tmux is
/// missing, unless `CI` is set, where a missing tool is a failure.
pub fn usable() -> bool {
    if available() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "tmux is needed (CI is set, so this is a failure)"
    );
    eprintln!("SKIPPED: tmux missing");
    false
}

/// A detached tmux session of a fixed size running one program; the whole private tmux server
/// is killed on drop, also when the test fails.
pub struct Session {
    /// Holds the server's socket; removed on drop.
    dir: tempfile::TempDir,
    name: String,
}

impl Session {
    /// Starts `argv` in a new detached session of `cols`×`rows` cells, on a server of its own
    /// (its socket in a temporary directory). `tag` starts the session's name.
    pub fn start(tag: &str, cols: u16, rows: u16, argv: &[String]) -> Session {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{tag}-{}-{n}", std::process::id());
        let session = Session {
            dir: tempfile::tempdir().expect("tempdir for the tmux socket"),
            name,
        };
        let mut args: Vec<String> = [
            "new-session",
            "-d",
            "-s",
            &session.name,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            "--",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(argv.iter().cloned());
        let out = session.tmux(&args);
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        session
    }

    /// Runs a tmux command against this session's server.
    fn tmux<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        Command::new("tmux")
            // No user or system configuration: the defaults, the same everywhere.
            .env_remove("TMUX")
            .args(["-f", "/dev/null", "-S"])
            .arg(self.dir.path().join("tmux.sock"))
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// Sends key names as tmux knows them (`Enter`, `Escape`, `C-c`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.name];
        args.extend_from_slice(keys);
        let out = self.tmux(&args);
        assert!(
            out.status.success(),
            "tmux send-keys {keys:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Types `text` literally (every character as a key press).
    pub fn type_text(&self, text: &str) {
        let out = self.tmux(&["send-keys", "-t", &self.name, "-l", text]);
        assert!(
            out.status.success(),
            "tmux send-keys -l {text:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Whether the session still exists (its program has not exited).
    pub fn alive(&self) -> bool {
        self.tmux(&["has-session", "-t", &self.name])
            .status
            .success()
    }

    /// The visible screen as plain text, one string per row (empty when the session is gone).
    pub fn text(&self) -> Vec<String> {
        let out = self.tmux(&["capture-pane", "-p", "-t", &self.name]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The visible screen with each cell's style.
    pub fn screen(&self) -> Screen {
        let out = self.tmux(&["capture-pane", "-e", "-p", "-t", &self.name]);
        Screen::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// Polls the plain-text screen until `ready` accepts it; the screen that passed. Panics after
    /// `timeout` with `what` and the last screen.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.text();
            if ready(&screen) {
                return screen;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; the screen{}:\n{}",
                    if self.alive() { "" } else { " (session gone)" },
                    screen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls until the session has ended; false when it is still there after `timeout`.
    pub fn wait_gone(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.alive() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        !self.alive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The server is private to this session: killing it ends the program; the socket's
        // directory goes with `dir`.
        let _ = self.tmux(&["kill-server"]);
    }
}

/// A colour as a terminal is told it: the default, a palette index (the 16 basic colours are
/// indices 0-15) or 24-bit RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colour {
    #[default]
    Default,
    Indexed(u8),
    Rgb(u8, u8, u8),
}

/// The SGR state of one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub fg: Colour,
    pub bg: Colour,
    pub bold: bool,
    pub dim: bool,
    pub italic: bool,
    pub underlined: bool,
    pub reversed: bool,
}

impl Style {
    /// Applies one SGR sequence's parameters (`1;30;103`, `38;2;255;0;255`, `38:2::255:0:255`;
    /// empty = reset).
    pub fn apply(&mut self, params: &str) {
        let groups: Vec<&str> = params.split(';').collect();
        let num = |p: &str| p.parse::<u32>().unwrap_or(0);
        let mut i = 0;
        while i < groups.len() {
            let g = groups[i];
            i += 1;
            if g.contains(':') {
                // One parameter with its sub-parameters: 38:5:N, 38:2:[CS]:R:G:B (same for 48).
                let sub: Vec<u32> = g.split(':').map(num).collect();
                let colour = match sub.get(1) {
                    Some(5) => sub.get(2).map(|n| Colour::Indexed((*n).min(255) as u8)),
                    Some(2) if sub.len() >= 5 => {
                        let c = &sub[sub.len() - 3..];
                        let b = |v: u32| v.min(255) as u8;
                        Some(Colour::Rgb(b(c[0]), b(c[1]), b(c[2])))
                    }
                    _ => None,
                };
                match (sub[0], colour) {
                    (38, Some(c)) => self.fg = c,
                    (48, Some(c)) => self.bg = c,
                    (4, _) => self.underlined = sub.get(1) != Some(&0),
                    _ => {}
                }
                continue;
            }
            match num(g) {
                0 => *self = Style::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underlined = true,
                7 => self.reversed = true,
                22 => {
                    self.bold = false;
                    self.dim = false;
                }
                23 => self.italic = false,
                24 => self.underlined = false,
                27 => self.reversed = false,
                n @ 30..=37 => self.fg = Colour::Indexed((n - 30) as u8),
                n @ 90..=97 => self.fg = Colour::Indexed((n - 90 + 8) as u8),
                39 => self.fg = Colour::Default,
                n @ 40..=47 => self.bg = Colour::Indexed((n - 40) as u8),
                n @ 100..=107 => self.bg = Colour::Indexed((n - 100 + 8) as u8),
                49 => self.bg = Colour::Default,
                n @ (38 | 48) => {
                    let rest: Vec<u32> = groups[i..].iter().map(|p| num(p)).collect();
                    let (colour, used) = extended_colour(&rest);
                    if let Some(c) = colour {
                        if n == 38 {
                            self.fg = c;
                        } else {
                            self.bg = c;
                        }
                    }
                    i += used;
                }
                _ => {}
            }
        }
    }
}

/// `5;N` or `2;R;G;B` after a 38 or 48: the colour and how many parameters it took (all of them
/// when malformed, as a terminal would give up on the sequence).
fn extended_colour(rest: &[u32]) -> (Option<Colour>, usize) {
    let byte = |k: usize| rest.get(k).map(|v| (*v).min(255) as u8);
    match rest.first() {
        Some(5) => (byte(1).map(Colour::Indexed), 2),
        Some(2) => match (byte(1), byte(2), byte(3)) {
            (Some(r), Some(g), Some(b)) => (Some(Colour::Rgb(r, g, b)), 4),
            _ => (None, rest.len()),
        },
        _ => (None, rest.len()),
    }
}

/// One character cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub ch: char,
    pub style: Style,
}

/// A captured screen: rows of cells (a row ends at its last captured character).
#[derive(Debug, Clone, Default)]
pub struct Screen {
    pub rows: Vec<Vec<Cell>>,
}

impl Screen {
    /// Parses `capture-pane -e -p` output. SGR state carries from cell to cell and from row to
    /// row, as tmux writes only the changes; other escape sequences are skipped.
    pub fn parse(captured: &str) -> Screen {
        let mut style = Style::default();
        let mut rows = Vec::new();
        for line in captured.lines() {
            let mut row = Vec::new();
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                if c != '\x1b' {
                    row.push(Cell { ch: c, style });
                    continue;
                }
                match chars.next() {
                    // CSI: parameters, intermediates, one final byte in @..~.
                    Some('[') => {
                        let mut params = String::new();
                        let mut last = None;
                        for d in chars.by_ref() {
                            if ('@'..='~').contains(&d) {
                                last = Some(d);
                                break;
                            }
                            params.push(d);
                        }
                        if last == Some('m') {
                            style.apply(&params);
                        }
                    }
                    // OSC (hyperlinks, titles): up to BEL or ST.
                    Some(']') => {
                        while let Some(d) = chars.next() {
                            if d == '\x07' {
                                break;
                            }
                            if d == '\x1b' && chars.peek() == Some(&'\\') {
                                chars.next();
                                break;
                            }
                        }
                    }
                    _ => {}
                }
            }
            rows.push(row);
        }
        Screen { rows }
    }

    /// A row's characters.
    pub fn row_text(&self, row: usize) -> String {
        self.rows
            .get(row)
            .map(|r| r.iter().map(|c| c.ch).collect())
            .unwrap_or_default()
    }

    /// Every row's characters.
    pub fn text(&self) -> Vec<String> {
        (0..self.rows.len()).map(|r| self.row_text(r)).collect()
    }
}
