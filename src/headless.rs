//! The headless printers: exchanges as they arrive, one text line or one JSON object each (the
//! forms are [`crate::capture::render`]'s), and the stall detector's client state changes.

use std::io::Write;

use crate::capture::render::{self, Clock};
use crate::capture::Exchange;

/// One exchange as printed: its [`render::line_with`] (the time written by `clock`), or with
/// `as_json` its [`render::json`] object on one line.
pub fn render_with(ex: &Exchange, as_json: bool, clock: &Clock) -> String {
    if as_json {
        render::json(ex).to_string()
    } else {
        render::line_with(ex, clock)
    }
}

/// Where the headless printers write: standard output, or standard error when standard output
/// carries something else (`--record -`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    Stdout,
    Stderr,
}

impl Out {
    /// Writes one line and flushes it; an error means the reader went away.
    pub fn line(self, text: &str) -> std::io::Result<()> {
        match self {
            Out::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{text}").and_then(|_| out.flush())
            }
            Out::Stderr => {
                let mut out = std::io::stderr().lock();
                writeln!(out, "{text}").and_then(|_| out.flush())
            }
        }
    }
}

/// Prints exchanges from a subscription until it closes, or until `stop` fires and what had
/// arrived by then is printed.
pub async fn print_live(
    mut sub: crate::capture::Subscription,
    as_json: bool,
    clock: Clock,
    out: Out,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let text = tokio::select! {
            biased;
            r = sub.recv() => match r {
                Ok(ex) => render_with(&ex, as_json, &clock),
                Err(RecvError::Lagged(n)) => {
                    format!("# printer fell behind: {n} exchanges not printed (still in the store)")
                }
                Err(RecvError::Closed) => return,
            },
            _ = stop.changed() => break,
        };
        if out.line(&text).is_err() {
            return; // the reader went away
        }
    }
    while let Ok(ex) = sub.try_recv() {
        if out.line(&render_with(&ex, as_json, &clock)).is_err() {
            return;
        }
    }
}

/// Prints one line per client state change from the stall detector until its feed closes:
/// `# client conn=N <client id> (<software>) healthy -> retrying: <evidence>`, or with `as_json`
/// a `{"kind":"client_state", ...}` object.
pub async fn print_client_states(
    mut changes: tokio::sync::broadcast::Receiver<crate::diagnose::StateChange>,
    as_json: bool,
    out: Out,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let text = match changes.recv().await {
            Ok(c) if as_json => c.json().to_string(),
            Ok(c) => c.line(),
            Err(RecvError::Lagged(n)) => {
                format!("# client state printer fell behind: {n} changes not printed")
            }
            Err(RecvError::Closed) => return,
        };
        if out.line(&text).is_err() {
            return; // the reader went away
        }
    }
}
