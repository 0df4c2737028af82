//! The capture sources: a pcap/pcapng file or a live interface, read on their own thread and
//! turned into exchanges in a [`Store`], with progress a view can show.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::kafka_stream::{KafkaStreams, Output, StreamOptions};
use super::reader::CaptureReader;
use super::{packet, RawPacket};
use crate::capture::Store;

/// How far a source has got; shared with the views.
#[derive(Debug, Default)]
pub struct Progress {
    /// What is read: `pcap FILE` or `sniff IFACE`.
    pub label: String,
    /// Bytes of the file read so far, and its size (0 for a live interface).
    pub bytes_read: AtomicU64,
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

/// Called with every exchange as it enters the store (`decode` prints from it).
pub type Sink = Box<dyn FnMut(&Arc<crate::capture::Exchange>) + Send>;

/// Turns packets into exchanges in the store.
pub struct Pipeline {
    streams: KafkaStreams,
    store: Arc<Store>,
    progress: Arc<Progress>,
    out: Vec<Output>,
    sink: Option<Sink>,
}

impl Pipeline {
    pub fn new(opts: StreamOptions, store: Arc<Store>, progress: Arc<Progress>) -> Pipeline {
        Pipeline {
            streams: KafkaStreams::new(opts),
            store,
            progress,
            out: Vec::new(),
            sink: None,
        }
    }

    /// Also hands every exchange to `sink`, in order, as it is stored.
    pub fn with_sink(mut self, sink: Sink) -> Pipeline {
        self.sink = Some(sink);
        self
    }

    /// One captured frame.
    pub fn packet(&mut self, raw: &RawPacket) {
        self.progress.packets.fetch_add(1, Ordering::Relaxed);
        match packet::parse(raw) {
            Ok(Some(seg)) => {
                self.progress.segments.fetch_add(1, Ordering::Relaxed);
                self.streams.on_segment(&seg, &mut self.out);
                self.drain();
            }
            Ok(None) => {
                self.progress.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.progress.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e.message, "packet not parsed");
            }
        }
    }

    fn drain(&mut self) {
        for o in self.out.drain(..) {
            match o {
                Output::Exchange(ex) => {
                    self.progress.exchanges.fetch_add(1, Ordering::Relaxed);
                    let ex = self.store.push(ex);
                    if let Some(sink) = &mut self.sink {
                        sink(&ex);
                    }
                }
                Output::Conn(ev) => {
                    self.store.push_conn_event(ev);
                }
            }
        }
    }

    /// End of input: what is pending goes out.
    pub fn finish(mut self) {
        self.streams.finish(&mut self.out);
        self.drain();
        self.progress.done.store(true, Ordering::Relaxed);
    }
}

/// Reads a whole capture file into the store on the calling thread.
pub fn read_file(path: &Path, opts: StreamOptions, store: Arc<Store>, progress: Arc<Progress>) {
    read_file_with(path, opts, store, progress, None)
}

/// [`read_file`], handing each exchange to `sink` too.
pub fn read_file_with(
    path: &Path,
    opts: StreamOptions,
    store: Arc<Store>,
    progress: Arc<Progress>,
    sink: Option<Sink>,
) {
    let mut reader = match CaptureReader::open(path) {
        Ok(r) => r,
        Err(e) => {
            progress.error(format!("{}: {e}", path.display()));
            progress.done.store(true, Ordering::Relaxed);
            return;
        }
    };
    let mut pipeline = Pipeline::new(opts, store, progress.clone());
    if let Some(sink) = sink {
        pipeline = pipeline.with_sink(sink);
    }
    while let Some(next) = reader.next_packet() {
        match next {
            Ok(raw) => pipeline.packet(&raw),
            Err(e) => progress.error(format!("{}: {e}", path.display())),
        }
        progress
            .bytes_read
            .store(reader.bytes_read(), Ordering::Relaxed);
    }
    pipeline.finish();
}

/// Opens a capture file and reads it on a thread of its own; rows appear in the store as the
/// file is read. Fails at once if the file cannot be opened.
pub fn spawn_file(
    path: PathBuf,
    opts: StreamOptions,
    store: Arc<Store>,
) -> std::io::Result<Arc<Progress>> {
    let total = std::fs::metadata(&path)?.len();
    let progress = Progress::new(format!("pcap {}", path.display()), total);
    let p = progress.clone();
    std::thread::Builder::new()
        .name("pcap-reader".into())
        .spawn(move || read_file(&path, opts, store, p))?;
    Ok(progress)
}

#[cfg(test)]
mod tests {
    use super::*;

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
