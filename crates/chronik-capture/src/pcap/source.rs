//! The capture sources: a pcap/pcapng file or a live interface, read on their own thread and
//! turned into exchanges in a [`Store`], with progress a view can show.

use std::io::{BufRead, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::kafka_stream::{KafkaStreams, Output, StreamOptions};
use super::reader::CaptureReader;
use super::{packet, PacketRef, Segment};
use crate::Store;

/// How far a source has got; shared with the views.
#[derive(Debug, Default)]
pub struct Progress {
    /// What is read: `pcap FILE` or `sniff IFACE`.
    pub label: String,
    /// Bytes of the file read so far.
    pub bytes_read: AtomicU64,
    /// Size of the file (0 when unknown or endless: standard input, a named pipe, a live
    /// interface).
    pub total_bytes: u64,
    /// A live interface (it stops rather than ends).
    pub live: bool,
    pub packets: AtomicU64,
    pub segments: AtomicU64,
    pub exchanges: AtomicU64,
    /// Packets that were not TCP over IP or did not parse.
    pub skipped: AtomicU64,
    pub done: AtomicBool,
    /// Why reading stopped early (a truncated file, a permission error), or notes on the way.
    pub errors: Mutex<Vec<String>>,
    /// Wakes [`Progress::finished`].
    finished: tokio::sync::Notify,
}

impl Progress {
    /// Progress of reading something of `total_bytes` (0: unknown or endless).
    pub fn new(label: String, total_bytes: u64) -> Arc<Progress> {
        Arc::new(Progress {
            label,
            total_bytes,
            ..Progress::default()
        })
    }

    /// Progress of a live capture, which stops rather than ends.
    pub fn new_live(label: String) -> Arc<Progress> {
        Arc::new(Progress {
            label,
            live: true,
            ..Progress::default()
        })
    }

    /// Marks the source as read to its end (or stopped) and wakes who waits for that.
    pub fn mark_done(&self) {
        self.done.store(true, Ordering::Release);
        self.finished.notify_waiters();
    }

    /// Waits until the source is read to its end or stopped.
    pub async fn finished(&self) {
        loop {
            let woken = self.finished.notified();
            if self.done.load(Ordering::Acquire) {
                return;
            }
            woken.await;
        }
    }

    /// Records why reading stopped or what went wrong on the way (the first 100), and logs it.
    pub(crate) fn error(&self, e: String) {
        tracing::warn!(source = %self.label, error = %e, "capture source");
        let mut g = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() < 100 {
            g.push(e);
        }
    }

    /// The errors so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One line for a status bar: `pcap x.pcapng [########............] 42% 1234 packets, 56
    /// exchanges` while reading, `… (read)` once a file is read to its end (also one of unknown
    /// size, such as a named pipe), `… (stopped)` once a live capture stopped.
    pub fn status(&self) -> String {
        let read = self.bytes_read.load(Ordering::Relaxed);
        let mut s = self.label.clone();
        if self.total_bytes > 0 && !self.done.load(Ordering::Relaxed) {
            let share = (read as f64 / self.total_bytes as f64).clamp(0.0, 1.0);
            let filled = (share * 20.0).round() as usize;
            s.push_str(&format!(
                " [{}{}] {:.0}%",
                "#".repeat(filled),
                ".".repeat(20 - filled),
                share * 100.0
            ));
        }
        let count = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        s.push_str(&format!(
            " {}, {}",
            count(self.packets.load(Ordering::Relaxed), "packet"),
            count(self.exchanges.load(Ordering::Relaxed), "exchange")
        ));
        if self.done.load(Ordering::Relaxed) {
            s.push_str(if self.live { " (stopped)" } else { " (read)" });
        }
        let errors = self.errors.lock().map(|g| g.len()).unwrap_or(0);
        if errors > 0 {
            s.push_str(&format!(", {}", count(errors as u64, "error")));
        }
        s
    }
}

/// Packets a file's pipeline reads between additions to its progress counts.
const COUNTS_EVERY: u64 = 1024;

/// Called with every exchange and connection event as it enters the store, in order (`decode`
/// prints from it).
pub type Sink = Box<dyn FnMut(Fed<'_>) + Send>;

/// What a [`Sink`] is handed.
#[derive(Debug, Clone, Copy)]
pub enum Fed<'a> {
    Exchange(&'a Arc<crate::Exchange>),
    Conn(&'a Arc<crate::ConnEvent>),
}

/// Turns packets into exchanges in the store.
pub struct Pipeline {
    streams: KafkaStreams,
    /// The segment of the packet at hand, refilled for each.
    seg: Segment,
    /// Counts not yet added to the progress: packets, segments, skipped packets, exchanges.
    /// A file's are added every [`COUNTS_EVERY`] packets (an atomic add per packet and count
    /// costs a file of small packets a tenth of its reading), a live capture's or a pipe's at
    /// once.
    counts: [u64; 4],
    store: Arc<Store>,
    progress: Arc<Progress>,
    out: Vec<Output>,
    /// Outputs held before they go to the store: a file's are stored in runs of up to
    /// [`FILE_RUN`], a live capture's or a pipe's at once.
    hold: usize,
    /// A run of exchanges on its way to the store, and the same once stored (buffers kept).
    run: Vec<crate::Exchange>,
    stored: Vec<Arc<crate::Exchange>>,
    sink: Option<Sink>,
}

/// Outputs a file's pipeline holds before it stores them in one run (one lock of the store and
/// of its feed). Few: each exchange stored evicts the oldest, and glibc keeps only 7 freed
/// blocks of a size for the thread to take again at once; runs of 64 freed past that, and
/// the allocator's slow paths cost more than the locks saved.
const FILE_RUN: usize = 4;

impl Pipeline {
    pub fn new(opts: StreamOptions, store: Arc<Store>, progress: Arc<Progress>) -> Pipeline {
        Pipeline {
            streams: KafkaStreams::new(opts),
            seg: Segment::default(),
            counts: [0; 4],
            hold: if progress.live || progress.total_bytes == 0 {
                1
            } else {
                FILE_RUN
            },
            store,
            progress,
            out: Vec::new(),
            run: Vec::new(),
            stored: Vec::new(),
            sink: None,
        }
    }

    /// Also hands every exchange and connection event to `sink`, in order, as it is stored.
    pub fn with_sink(mut self, sink: Sink) -> Pipeline {
        self.sink = Some(sink);
        self
    }

    /// One captured frame.
    pub fn packet(&mut self, raw: PacketRef<'_>) {
        self.counts[0] += 1;
        match packet::parse_into(raw, &mut self.seg) {
            Ok(true) => {
                self.counts[1] += 1;
                self.streams.on_segment(&self.seg, &mut self.out);
                if self.out.len() >= self.hold {
                    self.drain();
                }
            }
            Ok(false) => {
                self.counts[2] += 1;
            }
            Err(e) => {
                self.counts[2] += 1;
                tracing::debug!(error = %e.message, "packet not parsed");
            }
        }
        // A live capture or a pipe (of unknown size) may pause at any packet: its counts stay
        // current.
        if self.progress.live || self.progress.total_bytes == 0 || self.counts[0] >= COUNTS_EVERY {
            self.add_counts();
        }
    }

    /// Adds the counts so far to the progress.
    fn add_counts(&mut self) {
        let p = &self.progress;
        let counters = [&p.packets, &p.segments, &p.skipped, &p.exchanges];
        for (counter, n) in counters.into_iter().zip(&mut self.counts) {
            if *n > 0 {
                counter.fetch_add(std::mem::take(n), Ordering::Relaxed);
            }
        }
    }

    /// Stores what is held and hands it to the sink, in order: each run of exchanges under
    /// one lock.
    fn drain(&mut self) {
        for o in self.out.drain(..) {
            match o {
                Output::Exchange(ex) => {
                    self.counts[3] += 1;
                    self.run.push(ex);
                }
                Output::Conn(ev) => {
                    Self::store_run(&self.store, &mut self.run, &mut self.stored, &mut self.sink);
                    let ev = self.store.push_conn_event(ev);
                    if let Some(sink) = &mut self.sink {
                        sink(Fed::Conn(&ev));
                    }
                }
            }
        }
        Self::store_run(&self.store, &mut self.run, &mut self.stored, &mut self.sink);
    }

    fn store_run(
        store: &Store,
        run: &mut Vec<crate::Exchange>,
        stored: &mut Vec<Arc<crate::Exchange>>,
        sink: &mut Option<Sink>,
    ) {
        if run.is_empty() {
            return;
        }
        store.push_all(run, stored);
        for ex in stored.drain(..) {
            if let Some(sink) = sink {
                sink(Fed::Exchange(&ex));
            }
        }
    }

    /// End of input: what is pending goes out.
    pub fn finish(mut self) {
        self.streams.finish(&mut self.out);
        self.drain();
        self.add_counts();
        self.progress.mark_done();
    }
}

/// A capture opened and its header read, ready to be read packet by packet.
pub struct Input {
    /// The file as named (`-` for standard input), for messages.
    pub name: String,
    reader: CaptureReader,
    /// Size of the file on disk (0: unknown, as for standard input).
    total: u64,
    /// Bytes taken from the file itself, when a decompressor stands between it and the reader.
    raw_read: Option<Arc<AtomicU64>>,
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Input {
    /// Opens a pcap or pcapng capture, gzip- or zstd-compressed or not (told by its first
    /// bytes, as Wireshark does), or standard input for `-`, and reads its header. The error
    /// is one line that names the file: not found, a directory, empty, unreadable, not a
    /// capture.
    pub fn open(path: &Path) -> Result<Input, String> {
        let name = path.display().to_string();
        let fail = |what: String| format!("{name}: {what}");
        let (raw, total): (Box<dyn Read + Send>, u64) = if path.as_os_str() == "-" {
            (Box::new(std::io::stdin()), 0)
        } else {
            let meta = std::fs::metadata(path).map_err(|e| fail(io_reason(&e)))?;
            if meta.is_dir() {
                return Err(fail("is a directory, not a capture file".into()));
            }
            let mut file = std::fs::File::open(path).map_err(|e| fail(io_reason(&e)))?;
            // A regular file of size 0 is empty; a named pipe reports 0 and is read anyway.
            if meta.is_file() && meta.len() == 0 {
                return Err(fail("empty file, not a capture".into()));
            }
            // A regular file not compressed is read ahead on a thread of its own.
            if meta.is_file() && !compressed(&mut file).map_err(|e| fail(io_reason(&e)))? {
                let reader = CaptureReader::read_ahead(file).map_err(|e| fail(e.to_string()))?;
                return Ok(Input {
                    name,
                    reader,
                    total: meta.len(),
                    raw_read: None,
                });
            }
            (Box::new(file), if meta.is_file() { meta.len() } else { 0 })
        };
        let mut input = std::io::BufReader::with_capacity(64 * 1024, raw);
        let head = input.fill_buf().map_err(|e| fail(io_reason(&e)))?;
        if head.is_empty() {
            return Err(fail("empty input, not a capture".into()));
        }
        let (gzip, zstd) = compression(head);
        let read = Arc::new(AtomicU64::new(0));
        let counted = Counting {
            inner: input,
            read: read.clone(),
        };
        let (reader, raw_read) = if gzip {
            let gz = flate2::read::MultiGzDecoder::new(counted);
            (CaptureReader::new(gz), Some(read))
        } else if zstd {
            let zst = zstd::stream::read::Decoder::new(counted).map_err(|e| fail(e.to_string()))?;
            (CaptureReader::new(zst), Some(read))
        } else {
            (CaptureReader::new(counted), None)
        };
        let reader = reader.map_err(|e| fail(e.to_string()))?;
        Ok(Input {
            name,
            reader,
            total,
            raw_read,
        })
    }

    /// A progress for reading this input (labelled `pcap NAME`).
    pub fn progress(&self) -> Arc<Progress> {
        Progress::new(format!("pcap {}", self.name), self.total)
    }

    /// Bytes of the file read so far.
    fn bytes_read(&self) -> u64 {
        match &self.raw_read {
            Some(n) => n.load(Ordering::Relaxed),
            None => self.reader.bytes_read(),
        }
    }
}

/// An I/O error as a person reads it: `no such file`, `permission denied`, ….
/// Whether `head`, the first bytes of an input, starts as gzip does, and as zstd does.
fn compression(head: &[u8]) -> (bool, bool) {
    (head.starts_with(&GZIP_MAGIC), head.starts_with(&ZSTD_MAGIC))
}

/// Whether a regular file starts as gzip or zstd does; it is left at its start.
fn compressed(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::Seek;
    let mut head = Vec::with_capacity(ZSTD_MAGIC.len());
    file.by_ref()
        .take(ZSTD_MAGIC.len() as u64)
        .read_to_end(&mut head)?;
    file.rewind()?;
    let (gzip, zstd) = compression(&head);
    Ok(gzip || zstd)
}

fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "no such file".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::IsADirectory => "is a directory, not a capture file".into(),
        _ => e.to_string(),
    }
}

/// Reads a whole capture file into the store on the calling thread; a file that cannot be
/// opened is the progress's error.
pub fn read_file(path: &Path, opts: StreamOptions, store: Arc<Store>, progress: Arc<Progress>) {
    match Input::open(path) {
        Ok(input) => read_input(input, opts, store, progress, None),
        Err(e) => {
            progress.error(e);
            progress.mark_done();
        }
    }
}

/// Reads an opened capture to its end into the store, handing each exchange to `sink` too.
/// What stops it early (a truncated file) is the progress's error.
pub fn read_input(
    input: Input,
    opts: StreamOptions,
    store: Arc<Store>,
    progress: Arc<Progress>,
    sink: Option<Sink>,
) {
    let mut pipeline = Pipeline::new(opts, store, progress.clone());
    if let Some(sink) = sink {
        pipeline = pipeline.with_sink(sink);
    }
    read_packets(input, pipeline, &progress, &AtomicBool::new(false));
}

/// [`read_input`] with a sink, stopping early (without the exchanges still pending) once `stop`
/// is set (`decode --count`).
pub fn read_input_until(
    input: Input,
    opts: StreamOptions,
    store: Arc<Store>,
    progress: Arc<Progress>,
    sink: Sink,
    stop: &AtomicBool,
) {
    let pipeline = Pipeline::new(opts, store, progress.clone()).with_sink(sink);
    read_packets(input, pipeline, &progress, stop);
}

fn read_packets(mut input: Input, mut pipeline: Pipeline, progress: &Progress, stop: &AtomicBool) {
    let mut read = 0u64;
    while let Some(next) = input.reader.next_ref() {
        if stop.load(Ordering::Relaxed) {
            pipeline.drain();
            pipeline.add_counts();
            progress.mark_done();
            return;
        }
        match next {
            Ok(raw) => pipeline.packet(raw),
            Err(e) => progress.error(format!("{}: {e}", input.name)),
        }
        read += 1;
        if progress.total_bytes == 0 || read.is_multiple_of(COUNTS_EVERY) {
            progress
                .bytes_read
                .store(input.bytes_read(), Ordering::Relaxed);
        }
    }
    progress
        .bytes_read
        .store(input.bytes_read(), Ordering::Relaxed);
    pipeline.finish();
}

/// Reads an opened capture on a thread of its own; rows appear in the store as it is read.
pub fn spawn_input(
    input: Input,
    opts: StreamOptions,
    store: Arc<Store>,
) -> std::io::Result<Arc<Progress>> {
    let progress = input.progress();
    let p = progress.clone();
    std::thread::Builder::new()
        .name("pcap-reader".into())
        .spawn(move || read_input(input, opts, store, p, None))?;
    Ok(progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a pipeline hands its sink from the shipped capture of two kafka-python
    /// connections, holding `hold` outputs at a time, each item as `exchange ID corr=N` or
    /// `conn ID Opened|Closed`.
    fn handed_on(hold: usize) -> Vec<String> {
        let capture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../captures/kafka-python-2-front.pcapng");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        let sink: Sink = Box::new(move |fed: Fed<'_>| {
            into.lock().unwrap().push(match fed {
                Fed::Exchange(ex) => format!("exchange {} corr={}", ex.id, ex.correlation_id),
                Fed::Conn(ev) => match ev.kind {
                    crate::ConnEventKind::Opened => format!("conn {} Opened", ev.conn),
                    crate::ConnEventKind::Closed { .. } => format!("conn {} Closed", ev.conn),
                },
            })
        });
        let store = Store::new(crate::StoreLimits::default());
        let progress = Progress::new("pcap test".into(), 1 << 20);
        let mut pipeline = Pipeline::new(StreamOptions::default(), store, progress).with_sink(sink);
        pipeline.hold = hold;
        let mut reader = CaptureReader::open(&capture).expect("the shipped capture");
        while let Some(packet) = reader.next_ref() {
            pipeline.packet(packet.expect("a sound capture"));
        }
        pipeline.finish();
        let seen = seen.lock().unwrap().clone();
        seen
    }

    /// A file's pipeline stores its exchanges in runs; its sink is handed what a pipe's (one
    /// at a time) is handed, in the same order, connection events in their place between
    /// exchanges.
    #[test]
    fn a_file_hands_on_what_a_pipe_does_in_the_same_order() {
        let file = |total| Progress::new("pcap test".into(), total);
        let pipeline = |p| Pipeline::new(StreamOptions::default(), Store::off(), p);
        assert_eq!(pipeline(file(1 << 20)).hold, FILE_RUN);
        assert_eq!(pipeline(file(0)).hold, 1, "a pipe's are handed on at once");
        assert_eq!(pipeline(Progress::new_live("sniff lo".into())).hold, 1);
        let one_at_a_time = handed_on(1);
        let exchanges = one_at_a_time.iter().filter(|s| s.starts_with("exchange"));
        assert_eq!(exchanges.count(), 5, "{one_at_a_time:?}");
        // 8 holds an exchange and a connection event after it in one run (and 4 does not).
        for hold in [FILE_RUN, 8, 64] {
            assert_eq!(handed_on(hold), one_at_a_time, "held {hold} at a time");
        }
    }

    #[test]
    fn status_shows_a_bar_while_reading_and_read_when_done() {
        let p = Progress::new("pcap big.pcapng".into(), 1000);
        p.bytes_read.store(420, Ordering::Relaxed);
        p.packets.store(12, Ordering::Relaxed);
        p.exchanges.store(3, Ordering::Relaxed);
        assert_eq!(
            p.status(),
            "pcap big.pcapng [########............] 42% 12 packets, 3 exchanges"
        );
        p.done.store(true, Ordering::Relaxed);
        p.error("file ends early".into());
        assert_eq!(
            p.status(),
            "pcap big.pcapng 12 packets, 3 exchanges (read), 1 error"
        );
        // A file of unknown size (a named pipe) is read too; a live capture stops.
        let pipe = Progress::new("pcap k.fifo".into(), 0);
        pipe.done.store(true, Ordering::Relaxed);
        assert_eq!(pipe.status(), "pcap k.fifo 0 packets, 0 exchanges (read)");
        let sniff = Progress {
            live: true,
            label: "sniff lo".into(),
            ..Progress::default()
        };
        assert_eq!(sniff.status(), "sniff lo 0 packets, 0 exchanges");
        sniff.done.store(true, Ordering::Relaxed);
        assert_eq!(sniff.status(), "sniff lo 0 packets, 0 exchanges (stopped)");
    }
}
