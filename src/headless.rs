//! The headless printers: exchanges as they arrive, one text line or one JSON object each (the
//! forms are [`crate::capture::render`]'s), and the stall detector's client state changes.

use std::io::Write;
use std::sync::{Arc, Weak};

use crate::capture::render::{self, Clock};
use crate::capture::{Exchange, Store};

/// Most bytes of lines [`print_live`] gathers before writing them out at once.
const WRITE_BATCH: usize = 64 * 1024;

/// One exchange as printed: its [`render::line_with`] (the time written by `clock`), or with
/// `as_json` its [`render::json`] object on one line.
pub fn render_with(ex: &Exchange, as_json: bool, clock: &Clock) -> String {
    if as_json {
        render::json_line(ex)
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
        self.lines(&format!("{text}\n"))
    }

    /// Writes lines (each ending in a newline) at once and flushes them; an error means the
    /// reader went away.
    pub fn lines(self, text: &str) -> std::io::Result<()> {
        match self {
            Out::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|_| out.flush())
            }
            Out::Stderr => {
                let mut out = std::io::stderr().lock();
                out.write_all(text.as_bytes()).and_then(|_| out.flush())
            }
        }
    }
}

/// One exchange as [`print_live`] prints it: the line from walks of its frames when both read
/// cleanly, else from the dissection the store shares with the other views (the stall detector
/// reads the same one); or the JSON object with the whole tree.
fn live_text(store: &Weak<Store>, ex: &Arc<Exchange>, as_json: bool, clock: &Clock) -> String {
    if as_json {
        return render::json_line(ex);
    }
    render::line_or_dissected(ex, clock, || match store.upgrade() {
        Some(s) => s.dissected(ex),
        None => Arc::new(ex.dissect_with(crate::protocol::Limits::WITHOUT_RECORDS)),
    })
}

/// Prints exchanges from a subscription of `store` until it closes, or until `stop` fires and
/// what had arrived by then is printed. Lines that arrived together are written together.
pub async fn print_live(
    store: Arc<Store>,
    mut sub: crate::capture::Subscription,
    as_json: bool,
    clock: Clock,
    out: Out,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    // Held weakly: the subscription closes when the store is dropped, and that ends this.
    let weak = Arc::downgrade(&store);
    drop(store);
    let store = weak;
    let lag = |n: u64| format!("# printer fell behind: {n} exchanges not printed");
    let mut text = String::new();
    loop {
        text.clear();
        let first = tokio::select! {
            biased;
            r = sub.recv() => match r {
                Ok(ex) => live_text(&store, &ex, as_json, &clock),
                Err(RecvError::Lagged(n)) => lag(n),
                Err(RecvError::Closed) => return,
            },
            _ = stop.changed() => break,
        };
        text.push_str(&first);
        text.push('\n');
        // And whatever else has arrived meanwhile, in one write.
        while text.len() < WRITE_BATCH {
            let next = match sub.try_recv() {
                Ok(ex) => live_text(&store, &ex, as_json, &clock),
                Err(TryRecvError::Lagged(n)) => lag(n),
                Err(_) => break,
            };
            text.push_str(&next);
            text.push('\n');
        }
        if out.lines(&text).is_err() {
            return; // the reader went away
        }
    }
    while let Ok(ex) = sub.try_recv() {
        if out.line(&live_text(&store, &ex, as_json, &clock)).is_err() {
            return;
        }
    }
}

/// Runs `main` and `companion` in the calling task, and `companion` on in a task of its own
/// once `main` has ended. For the printer of the store's feed and the stall detector: one
/// task for both means a new exchange wakes one task, not two (Tokio wakes another worker
/// thread for the second wake at once, a context switch for every exchange the broker serves).
pub async fn with_companion<F: std::future::Future>(
    main: F,
    companion: impl std::future::Future<Output = ()> + Send + 'static,
) -> F::Output {
    use futures_util::future::{select, Either};
    match select(std::pin::pin!(main), Box::pin(companion)).await {
        Either::Left((out, companion)) => {
            tokio::spawn(companion);
            out
        }
        Either::Right(((), main)) => main.await,
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
