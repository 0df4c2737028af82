//! `chronik-tui decode`: a capture's exchanges printed as they are read, the way tshark prints
//! packets: one line each, JSON lines, or chosen fields tab-separated; or written to a Parquet
//! file, one row each. A display filter and a count limit what is printed or written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use crate::capture::lint::{Facts, History, IdempotentBatches};
use crate::capture::pcap::kafka_stream::StreamOptions;
use crate::capture::pcap::parquet::ParquetExporter;
use crate::capture::pcap::source::{self, Fed, Input, Progress, Sink};
use crate::capture::render::{self, Clock, TimeFormat};
use crate::capture::{ConnEventKind, Exchange, Store, StoreLimits};
use crate::filter::{self, Column, Filter, Subject};

/// What to decode and how to print it.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// The capture (`-`: standard input).
    pub file: PathBuf,
    pub json: bool,
    pub filter: Option<String>,
    pub count: Option<u64>,
    /// Names printed tab-separated instead of the line; `time` is the exchange's time.
    pub fields: Vec<String>,
    pub time: TimeFormat,
    pub stream: StreamOptions,
    /// Write the exchanges to this Parquet file (`-`: standard output) instead of printing
    /// them.
    pub parquet: Option<PathBuf>,
}

/// Why decoding failed; `Usage` is the caller's mistake (a bad filter or field name).
#[derive(Debug)]
pub enum DecodeError {
    Usage(String),
    /// The capture could not be read (not found, not a capture, …), or was cut short after
    /// what could be read was printed.
    Input(String),
    /// Standard output could not be written.
    Output(std::io::Error),
    /// The Parquet file could not be created or written.
    Parquet(PathBuf, std::io::Error),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Usage(e) | DecodeError::Input(e) => f.write_str(e),
            DecodeError::Output(e) => write!(f, "writing standard output: {e}"),
            DecodeError::Parquet(path, e) => write!(f, "--parquet {}: {e}", path.display()),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A printed column: the exchange's time, or a filter name.
enum Col {
    Time,
    Name(Column),
}

/// Everything that turns an exchange into its printed text.
struct Printer {
    json: bool,
    filter: Option<Filter>,
    cols: Vec<Col>,
    clock: Clock,
}

impl Printer {
    fn new(opts: &DecodeOptions) -> Result<Printer, DecodeError> {
        let filter = match opts.filter.as_deref().map(filter::parse).transpose() {
            Ok(f) => f.filter(|f| !f.is_empty()),
            Err(e) => {
                return Err(DecodeError::Usage(format!(
                    "--filter {:?}: {e}",
                    opts.filter.as_deref().unwrap_or("")
                )))
            }
        };
        let cols = opts
            .fields
            .iter()
            .filter(|f| !f.trim().is_empty())
            .map(|f| match f.trim() {
                "time" => Ok(Col::Time),
                name => Column::parse(name)
                    .map(Col::Name)
                    .map_err(|e| DecodeError::Usage(format!("--fields {name}: {}", e.message))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Printer {
            json: opts.json,
            filter,
            cols,
            clock: Clock::new(opts.time),
        })
    }

    /// Whether the filter keeps the exchange.
    fn keeps(&self, ex: &Exchange) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| f.matches(&Subject::new(ex)))
    }

    /// [`Printer::write`], and what the exchange brings to the lint's history: read from the
    /// line's own walk of a Produce request when the line is made from one, so that the
    /// request is walked once.
    fn write_with_facts(&self, ex: &Exchange, out: &mut String) -> (bool, Facts) {
        if ex.api_key != crate::protocol::api_key::PRODUCE
            || !self.cols.is_empty()
            || self.json
            || !self.keeps(ex)
        {
            return (self.write(ex, out), History::facts(ex));
        }
        let mut batches = IdempotentBatches::new(ex.request());
        if render::push_line_seeing(out, ex, &self.clock, &mut |id, v| batches.visit(id, v)) {
            (true, batches.facts(ex))
        } else {
            (true, History::facts(ex))
        }
    }

    /// Writes the text of an exchange at the end of `out`; false (and nothing written) when
    /// the filter drops it.
    fn write(&self, ex: &Exchange, out: &mut String) -> bool {
        if !self.keeps(ex) {
            return false;
        }
        if self.cols.is_empty() {
            if self.json {
                out.push_str(&crate::capture::render::json_line(ex));
            } else {
                crate::capture::render::push_line_with(out, ex, &self.clock);
            }
            return true;
        }
        let subject = Subject::new(ex);
        for (i, c) in self.cols.iter().enumerate() {
            if i > 0 {
                out.push('\t');
            }
            match c {
                Col::Time => self.clock.write(out, ex.request_at),
                Col::Name(c) => out.push_str(&c.values(&subject).join(",")),
            }
        }
        true
    }
}

/// Exchanges handed to a printing worker, with the connections that closed among them.
#[derive(Default)]
struct Job {
    exchanges: Vec<Arc<Exchange>>,
    /// Each closed connection with the number of the job's exchanges before its closing.
    closed: Vec<(usize, u64)>,
}

/// A printed job: the text of its exchanges, one after the other, and what the writer needs to
/// apply the lint's history to them in order.
struct Lines {
    text: String,
    /// Where each exchange's text ends (where the one before ends, for an exchange the filter
    /// drops).
    ends: Vec<usize>,
    /// The history's facts of the exchanges that have any, with their index.
    facts: Vec<(usize, Facts)>,
    job: Job,
}

/// Exchanges handed to a printing worker at a time when reading a file and printing lines
/// (from standard input, one at a time, so that each line is printed as soon as its exchange
/// is made). A line costs its worker less than reading its exchange costs this thread, so the
/// worker waits for each batch and this thread wakes it: a system call and, on a VM, a costly
/// interrupt. 1024 a batch woke it a quarter as often as 256, and the million small exchanges
/// took 0.59-0.60 s where they took 0.68-0.70 s (best of 6, alternating; 0.96-0.98 s of CPU
/// against 1.09-1.11 s).
const BATCH: usize = 1024;
/// Exchanges a JSON worker is handed at a time. Its text is several times a line's, so the
/// wake-ups matter less than the text held: 1024 held 47 MiB at peak for 100k exchanges where
/// 256 held 19 MiB, and was no faster.
const JSON_BATCH: usize = 256;
/// Frame bytes in a batch, at most (past them it is handed on whatever its count): the queues
/// hold a few batches per worker, so this bounds what they hold however large the frames.
const BATCH_BYTES: usize = 1 << 20;

/// Decodes `opts.file` and prints to standard output; the summary (`pcap FILE 12 packets, 3
/// exchanges (read)`) and any reading errors go to standard error. Fails on a capture that
/// cannot be opened, and on one cut short once what it held is printed.
///
/// The capture is read, reassembled and paired on this thread, which hands the exchanges in
/// batches to printing workers (their text is most of the work: dissection, filter, line or
/// JSON); batch `i` goes to worker `i % n`, and the writer takes the texts back in the same
/// turn, so the lines come out in the capture's order. A single worker is its own writer. The
/// lint's connection history is kept by the writer: the workers read what each exchange
/// brings to it (its [`Facts`]), and the writer applies them in order, printing again the rare
/// exchange the history has findings on. Every channel is bounded, so memory stays bounded
/// however large the capture.
pub fn run(opts: DecodeOptions) -> Result<(), DecodeError> {
    let printer = Printer::new(&opts)?;
    if let Some(path) = &opts.parquet {
        return write_parquet(&opts, printer, path);
    }
    let printer = Arc::new(printer);
    // `relative` times count from the first line printed: one worker keeps that order, and
    // the history stays with the store, so that no line is printed again out of turn.
    // Otherwise a worker per core, but one: a line costs its worker about what reading the
    // exchange costs this thread, so this thread keeps a core of its own (on two cores, one
    // worker: 0.70 s for the million small exchanges, 0.79 s with two sharing both cores).
    // A JSON line costs several times that, and its workers take every core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (workers, history) = match opts.time {
        TimeFormat::Relative => (1, None),
        _ if opts.json => (cores.clamp(1, 8), Some(History::default())),
        _ => ((cores - 1).clamp(1, 8), Some(History::default())),
    };
    let batch = if opts.file.as_os_str() == "-" {
        1
    } else if opts.json {
        JSON_BATCH
    } else {
        BATCH
    };
    let stop = Arc::new(AtomicBool::new(false));
    let limit = opts.count.unwrap_or(u64::MAX);
    let writer_keeps_history = history.is_some();
    let mut writer = Writer {
        printer: printer.clone(),
        history,
        limit,
        printed: 0,
    };
    let mut jobs = Vec::new();
    // One worker writes its own lines (no thread to hand them to, and wake, per batch);
    // several hand them to a writer that takes them in turn.
    let writer_stop = stop.clone();
    let writer = if workers == 1 {
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(2);
        jobs.push(job_tx);
        std::thread::Builder::new()
            .name("decode-print-0".into())
            .spawn(move || {
                let texts = job_rx
                    .into_iter()
                    .map(|job| print_job(&printer, job, writer_keeps_history));
                writer.write_all(texts, &writer_stop)
            })
    } else {
        let mut results = Vec::new();
        for i in 0..workers {
            let (job_tx, job_rx) = mpsc::sync_channel::<Job>(2);
            let (text_tx, text_rx) = mpsc::sync_channel::<Lines>(2);
            let printer = printer.clone();
            std::thread::Builder::new()
                .name(format!("decode-print-{i}"))
                .spawn(move || {
                    for job in job_rx {
                        let lines = print_job(&printer, job, writer_keeps_history);
                        if text_tx.send(lines).is_err() {
                            return; // the writer stopped
                        }
                    }
                })
                .map_err(DecodeError::Output)?;
            jobs.push(job_tx);
            results.push(text_rx);
        }
        std::thread::Builder::new()
            .name("decode-write".into())
            .spawn(move || {
                // Worker `i % n`'s texts for batch `i`, until the workers are done.
                let n = results.len();
                let texts = (0..).map_while(|turn| results[turn % n].recv().ok());
                writer.write_all(texts, &writer_stop)
            })
    }
    .map_err(DecodeError::Output)?;
    let sink = Batcher {
        jobs,
        next: 0,
        job: Job {
            exchanges: Vec::with_capacity(batch),
            closed: Vec::new(),
        },
        bytes: 0,
        size: batch,
    };
    let mut sink = Some(sink);
    let sink: Sink = Box::new(move |fed: Fed<'_>| {
        if let Some(s) = sink.as_mut() {
            if !s.push(fed) {
                sink = None; // every worker is gone: the writer stopped
            }
        }
    });
    let input = Input::open(&opts.file).map_err(DecodeError::Input)?;
    // The store holds more than the workers and the writer can (each worker's two queues of
    // two, the batch it prints, the writer's one and the batch being filled), so that the
    // last of an exchange's references is the store's, dropped on this thread: glibc frees
    // faster where it allocated, without taking another thread's arena lock.
    let in_flight = workers * 5 + 2;
    let limits = StoreLimits {
        max_exchanges: DECODE_STORE.max_exchanges.max(in_flight * batch),
        max_bytes: DECODE_STORE.max_bytes.max(in_flight * BATCH_BYTES * 2),
    };
    let store = if writer_keeps_history {
        Store::without_history(limits)
    } else {
        Store::new(limits)
    };
    let progress = read_input(input, opts.stream, store, sink, &stop);
    let written = writer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the writer thread panicked")));
    if let Err(e) = written {
        // A reader that went away (`decode … | head`) ends the output, as it ends tshark's.
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(());
        }
        return Err(DecodeError::Output(e));
    }
    report(&progress, "decode")
}

/// A batch's lines, printed: with the facts each exchange brings to the lint's history when
/// the writer keeps it.
fn print_job(printer: &Printer, job: Job, with_facts: bool) -> Lines {
    let mut lines = Lines {
        text: String::with_capacity(job.exchanges.len() * 160),
        ends: Vec::with_capacity(job.exchanges.len()),
        facts: Vec::new(),
        job: Job::default(),
    };
    for (i, ex) in job.exchanges.iter().enumerate() {
        let kept = if with_facts {
            let (kept, facts) = printer.write_with_facts(ex, &mut lines.text);
            if !facts.is_empty() {
                lines.facts.push((i, facts));
            }
            kept
        } else {
            printer.write(ex, &mut lines.text)
        };
        if kept {
            lines.text.push('\n');
        }
        lines.ends.push(lines.text.len());
    }
    lines.job = job;
    lines
}

/// Gathers exchanges into batches and hands each to the next worker in turn; dropping it
/// hands on the last, partial batch and closes the workers' queues.
struct Batcher {
    jobs: Vec<mpsc::SyncSender<Job>>,
    next: usize,
    job: Job,
    /// Frame bytes in `job`.
    bytes: usize,
    size: usize,
}

impl Batcher {
    /// Adds an exchange or a connection's closing; false once the workers are gone.
    fn push(&mut self, fed: Fed<'_>) -> bool {
        match fed {
            Fed::Exchange(ex) => {
                self.bytes += ex.size();
                self.job.exchanges.push(ex.clone());
            }
            Fed::Conn(ev) => {
                if let ConnEventKind::Closed { .. } = ev.kind {
                    self.job.closed.push((self.job.exchanges.len(), ev.conn));
                }
                return true;
            }
        }
        (self.job.exchanges.len() < self.size && self.bytes < BATCH_BYTES) || self.hand_on()
    }

    /// Hands the batch to the next worker; false once the workers are gone.
    fn hand_on(&mut self) -> bool {
        let job = Job {
            exchanges: Vec::with_capacity(self.size),
            closed: Vec::new(),
        };
        let job = std::mem::replace(&mut self.job, job);
        self.bytes = 0;
        let sent = self.jobs[self.next].send(job).is_ok();
        self.next = (self.next + 1) % self.jobs.len();
        sent
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        if !self.job.exchanges.is_empty() || !self.job.closed.is_empty() {
            self.hand_on();
        }
    }
}

/// The writing thread's part: the workers' texts written in turn, the lint's history applied
/// to their exchanges in order.
struct Writer {
    printer: Arc<Printer>,
    /// `None` when the store keeps it (`relative` times).
    history: Option<History>,
    limit: u64,
    printed: u64,
}

impl Writer {
    /// Writes the batches' texts to standard output, in the order given, until they end,
    /// `limit` lines are written, or writing fails; then sets `stop`.
    fn write_all(
        &mut self,
        texts: impl Iterator<Item = Lines>,
        stop: &AtomicBool,
    ) -> std::io::Result<()> {
        // Each text is a batch of whole lines: written as it comes (standard output's own
        // buffer passes text that ends a line straight through), so no copy into another
        // buffer.
        let mut out = std::io::stdout().lock();
        let written = (|| {
            for lines in texts {
                if !self.write_lines(lines, &mut out)? {
                    break;
                }
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        written.and_then(|()| out.flush())
    }

    /// Writes a job's text, each exchange the history has findings on printed again with
    /// them; false once `limit` lines are written.
    fn write_lines(&mut self, lines: Lines, out: &mut impl Write) -> std::io::Result<bool> {
        let Lines {
            text,
            ends,
            facts,
            job,
        } = lines;
        if self.printed >= self.limit {
            return Ok(false); // `--count 0`
        }
        let (mut facts, mut closed) = (facts.into_iter().peekable(), job.closed.iter().peekable());
        // Text before `from` is written; `start` is where the exchange at hand's text starts.
        let (mut from, mut start) = (0, 0);
        let mut again = String::new();
        for (i, ex) in job.exchanges.iter().enumerate() {
            // Without a history here (the store applied it), the text is final.
            let found = match self.history.as_mut() {
                Some(history) => {
                    while let Some((_, conn)) = closed.next_if(|(n, _)| *n <= i) {
                        history.closed(*conn);
                    }
                    let f = facts.next_if(|(j, _)| *j == i).map(|(_, f)| f);
                    history.apply(ex, f.unwrap_or_default())
                }
                None => Vec::new(),
            };
            let end = ends[i];
            let kept = if found.is_empty() {
                end > start
            } else {
                out.write_all(&text.as_bytes()[from..start])?;
                from = end;
                let mut ex = Exchange::clone(ex);
                ex.set_lint(found);
                again.clear();
                let kept = self.printer.write(&ex, &mut again);
                if kept {
                    again.push('\n');
                    out.write_all(again.as_bytes())?;
                }
                kept
            };
            start = end;
            if kept {
                self.printed += 1;
                if self.printed == self.limit {
                    out.write_all(&text.as_bytes()[from.min(end)..end])?;
                    return Ok(false);
                }
            }
        }
        if let Some(history) = self.history.as_mut() {
            for (_, conn) in closed {
                history.closed(*conn);
            }
        }
        out.write_all(&text.as_bytes()[from..])?;
        Ok(true)
    }
}

/// Decodes `opts.file` into the Parquet file `path` (`-`: standard output): a row for each
/// exchange the filter keeps, up to the count. The file is created once the capture opens, and
/// is complete (footer written) with what could be read even when the capture was cut short.
fn write_parquet(opts: &DecodeOptions, printer: Printer, path: &Path) -> Result<(), DecodeError> {
    let fail = |e: std::io::Error| DecodeError::Parquet(path.to_path_buf(), e);
    let input = Input::open(&opts.file).map_err(DecodeError::Input)?;
    let out: Box<dyn Write + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(std::fs::File::create(path).map_err(fail)?)
    };
    let exporter = ParquetExporter::new(std::io::BufWriter::new(out)).map_err(fail)?;
    let exporter = Arc::new(Mutex::new(exporter));
    let write_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let limit = opts.count.unwrap_or(u64::MAX);
    let sink = {
        let (exporter, write_error, stop) = (exporter.clone(), write_error.clone(), stop.clone());
        let mut written = 0u64;
        Box::new(move |fed: Fed<'_>| {
            let Fed::Exchange(ex) = fed else { return };
            if stop.load(Ordering::Relaxed) || !printer.keeps(ex) {
                return;
            }
            let mut w = exporter.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = w.exchange(ex) {
                stop.store(true, Ordering::Relaxed);
                *write_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                return;
            }
            written += 1;
            if written >= limit {
                stop.store(true, Ordering::Relaxed);
            }
        })
    };
    let progress = read_input(input, opts.stream.clone(), decode_store(), sink, &stop);
    if let Some(e) = write_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(fail(e));
    }
    // The sink (and its handle on the writer) went with the reader.
    let exporter = Arc::into_inner(exporter)
        .ok_or_else(|| fail(std::io::Error::other("the writer is still in use")))?
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let written = exporter.exchanges();
    exporter.finish().map_err(fail)?;
    eprintln!(
        "chronik-tui decode: {written} exchanges written to {}",
        path.display()
    );
    report(&progress, "decode")
}

/// Reads a capture (`-`: standard input), handing each exchange to `sink` as it is made, until
/// the end or `stop`. Fails only when the capture cannot be opened; what went wrong while
/// reading is in the progress, for [`report`].
pub fn read_capture(
    file: &Path,
    stream: StreamOptions,
    sink: Sink,
    stop: &AtomicBool,
) -> Result<Arc<Progress>, DecodeError> {
    let input = Input::open(file).map_err(DecodeError::Input)?;
    Ok(read_input(input, stream, decode_store(), sink, stop))
}

/// The store a capture is decoded through. Exchanges are handed on as they are made; the
/// store only numbers them (and keeps the lint's connection history, unless the caller keeps
/// it), so it stays small and a capture of any size is read in bounded memory.
const DECODE_STORE: StoreLimits = StoreLimits {
    max_exchanges: 1024,
    max_bytes: 16 << 20,
};

fn decode_store() -> Arc<Store> {
    Store::new(DECODE_STORE)
}

/// [`read_capture`] from a capture already opened, through `store`.
fn read_input(
    input: Input,
    stream: StreamOptions,
    store: Arc<Store>,
    sink: Sink,
    stop: &AtomicBool,
) -> Arc<Progress> {
    let progress = input.progress();
    source::read_input_until(input, stream, store, progress.clone(), sink, stop);
    progress
}

/// Writes the capture's summary (`pcap FILE 12 packets, 3 exchanges (read)`) and its reading
/// errors to standard error as `chronik-tui COMMAND: ...`; fails with the last error.
pub fn report(progress: &Progress, command: &str) -> Result<(), DecodeError> {
    let errors = progress.errors();
    eprintln!("chronik-tui {command}: {}", progress.status());
    match errors.split_last() {
        None => Ok(()),
        Some((last, earlier)) => {
            for e in earlier {
                eprintln!("chronik-tui {command}: {e}");
            }
            Err(DecodeError::Input(last.clone()))
        }
    }
}
