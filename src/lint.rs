//! `chronik-tui lint`: what is wrong with a capture's frames, named. One line per finding
//! (or a JSON object with `--json`), the exchange it is on first; a summary on standard error.
//! Exits 0 when nothing is at warning or worse, 1 when something is, 2 when the capture could
//! not be read whole (or the command line is wrong).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::capture::pcap::jsonl;
use crate::capture::pcap::kafka_stream::StreamOptions;
use crate::capture::pcap::source::{Fed, Progress, Sink};
use crate::capture::{Exchange, Store, StoreLimits};
use crate::decode::{self, DecodeError};
use crate::protocol::lint::{Finding, Level};

/// What to lint and how to print it.
#[derive(Debug, Clone)]
pub struct LintOptions {
    /// The capture (`-`: standard input).
    pub file: PathBuf,
    pub json: bool,
    /// The least level printed (all levels count for the exit code from warning up).
    pub min_level: Level,
    pub stream: StreamOptions,
}

/// Counts of the findings printed, by level.
#[derive(Debug, Default)]
struct Tally {
    exchanges: u64,
    flagged: u64,
    /// Findings printed, by level.
    by_level: [u64; 3],
    /// The most severe finding seen, printed or not.
    worst: Option<Level>,
}

fn text(ex: &Exchange, f: &Finding) -> String {
    format!("{} {f}", ex.label())
}

fn object(ex: &Exchange, f: &Finding) -> serde_json::Value {
    let mut v = json!({
        "exchange": ex.id,
        "conn": ex.conn,
        "api_key": ex.api_key,
        "api_version": ex.api_version,
        "correlation_id": ex.correlation_id,
    });
    if let (Some(obj), Ok(serde_json::Value::Object(fields))) =
        (v.as_object_mut(), serde_json::to_value(f))
    {
        obj.extend(fields);
    }
    v
}

/// Reads chronik-tui's own JSON lines (`--record FILE.jsonl`), handing each exchange to
/// `sink` in the file's order. They are read whole first: the connection history the lint
/// keeps needs them in order, and such a file holds what one store held.
fn read_json_lines(file: &Path, mut sink: Sink) -> Result<Option<Arc<Progress>>, DecodeError> {
    let store = Store::new(StoreLimits {
        max_exchanges: usize::MAX,
        max_bytes: usize::MAX,
    });
    let got = jsonl::read_file(file, &store).map_err(DecodeError::Input)?;
    for ex in store.snapshot() {
        sink(Fed::Exchange(&ex));
    }
    eprintln!(
        "chronik-tui lint: {}: {} exchanges (JSON lines)",
        file.display(),
        got.exchanges
    );
    Ok(None)
}

/// Lints `opts.file`, printing to standard output; returns the exit code.
pub fn run(opts: LintOptions) -> ExitCode {
    let out = Arc::new(Mutex::new(std::io::BufWriter::new(std::io::stdout())));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let write_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sink = {
        let (out, tally, write_error, stop) = (
            out.clone(),
            tally.clone(),
            write_error.clone(),
            stop.clone(),
        );
        let (json, min) = (opts.json, opts.min_level);
        Box::new(move |fed: Fed<'_>| {
            let Fed::Exchange(ex) = fed else { return };
            let findings = ex.dissect().verdict.findings;
            let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
            t.exchanges += 1;
            t.worst = t.worst.max(findings.iter().map(|f| f.level).max());
            let shown: Vec<&Finding> = findings.iter().filter(|f| f.level >= min).collect();
            if shown.is_empty() {
                return;
            }
            t.flagged += 1;
            let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
            for f in shown {
                t.by_level[f.level as usize] += 1;
                let line = if json {
                    object(ex, f).to_string()
                } else {
                    text(ex, f)
                };
                if let Err(e) = writeln!(w, "{line}") {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    *write_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    return;
                }
            }
        })
    };
    let read = if opts.file.as_os_str() != "-" && jsonl::looks_like_json_lines(&opts.file) {
        read_json_lines(&opts.file, sink)
    } else {
        decode::read_capture(&opts.file, opts.stream, sink, &stop).map(Some)
    };
    let flushed = out.lock().unwrap_or_else(|p| p.into_inner()).flush();
    let write_error = write_error.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(e) = write_error.or(flushed.err()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::SUCCESS;
        }
        eprintln!("chronik-tui lint: writing standard output: {e}");
        return ExitCode::from(2);
    }
    let read_whole = match read {
        Ok(Some(progress)) => decode::report(&progress, "lint"),
        Ok(None) => Ok(()),
        Err(e) => {
            eprintln!("chronik-tui: {e}");
            return ExitCode::from(2);
        }
    };
    let t = tally.lock().unwrap_or_else(|p| p.into_inner());
    let [info, warnings, errors] = t.by_level;
    let shown = match opts.min_level {
        Level::Info => String::new(),
        l => format!(" at {l} or worse"),
    };
    eprintln!(
        "chronik-tui lint: {errors} errors, {warnings} warnings, {info} info{shown} on {} of {} exchanges",
        t.flagged, t.exchanges
    );
    if let Err(e) = read_whole {
        eprintln!("chronik-tui: {e}");
        return ExitCode::from(2);
    }
    if t.worst >= Some(Level::Warning) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
