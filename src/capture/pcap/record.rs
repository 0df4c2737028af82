//! Writing a store out: at once (the UI's export key) or continuously while a source runs
//! (`--record FILE`). The file's extension picks the format: `.json`/`.jsonl` for JSON lines,
//! anything else pcapng.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::export::{JsonLinesExporter, PcapngExporter};
use crate::capture::{ConnEvent, Exchange, Marker, Store, TimelineItem};

/// A pcapng or JSON lines writer, chosen by file name.
pub enum Exporter {
    Pcapng(PcapngExporter<BufWriter<File>>),
    Json(JsonLinesExporter<BufWriter<File>>),
}

/// Whether a path names a JSON lines file.
pub fn is_json(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("json" | "jsonl" | "ndjson")
    )
}

impl Exporter {
    /// Creates the file; `server` is the broker address used for connections whose exchanges do
    /// not name one.
    pub fn create(path: &Path, server: SocketAddr) -> io::Result<Exporter> {
        let out = BufWriter::new(File::create(path)?);
        Ok(if is_json(path) {
            Exporter::Json(JsonLinesExporter::new(out))
        } else {
            Exporter::Pcapng(PcapngExporter::new(out, server)?)
        })
    }

    pub fn exchange(&mut self, ex: &Exchange) -> io::Result<()> {
        match self {
            Exporter::Pcapng(w) => w.exchange(ex),
            Exporter::Json(w) => w.exchange(ex),
        }
    }

    pub fn conn_event(&mut self, ev: &ConnEvent) -> io::Result<()> {
        match self {
            Exporter::Pcapng(w) => w.conn_event(ev),
            Exporter::Json(w) => w.conn_event(ev),
        }
    }

    pub fn marker(&mut self, m: &Marker) -> io::Result<()> {
        match self {
            Exporter::Pcapng(w) => w.marker(m),
            Exporter::Json(w) => w.marker(m),
        }
    }

    /// Writes what is buffered (the file stays open).
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Exporter::Pcapng(w) => w.flush(),
            Exporter::Json(w) => w.flush(),
        }
    }

    /// Ends the file (FIN for open connections) and closes it.
    pub fn finish(self) -> io::Result<()> {
        match self {
            Exporter::Pcapng(w) => w.finish()?.flush(),
            Exporter::Json(w) => w.finish()?.flush(),
        }
    }
}

/// Writes everything the store holds now, in its timeline order ([`Store::timeline`]).
/// Returns how many exchanges were written.
pub fn export_store(store: &Store, path: &Path, server: SocketAddr) -> io::Result<usize> {
    let mut w = Exporter::create(path, server)?;
    let mut exchanges = 0;
    for item in store.timeline() {
        match item {
            TimelineItem::Exchange(ex) => {
                exchanges += 1;
                w.exchange(&ex)?;
            }
            TimelineItem::ConnEvent(ev) => w.conn_event(&ev)?,
            TimelineItem::Marker(m) => w.marker(&m)?,
        }
    }
    w.finish()?;
    Ok(exchanges)
}

/// Records a store continuously into a file: every exchange, connection event and marker from
/// now on, flushed at least every 200 ms so a crash loses little. The task ends, finishing the
/// file, when `stop` fires or the store's feeds close.
pub fn spawn_recorder(
    store: Arc<Store>,
    path: PathBuf,
    server: SocketAddr,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> io::Result<tokio::task::JoinHandle<io::Result<()>>> {
    let mut w = Exporter::create(&path, server)?;
    let mut exchanges = store.subscribe();
    let mut events = store.subscribe_conn_events();
    Ok(tokio::spawn(async move {
        let mut last_marker = store.markers_since(0).last().map_or(0, |m| m.id);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let (mut ex_open, mut ev_open) = (true, true);
        while ex_open || ev_open {
            tokio::select! {
                biased;
                r = exchanges.recv(), if ex_open => match r {
                    Ok(ex) => {
                        for m in store.markers_since(last_marker) {
                            if m.after_exchange < ex.id {
                                w.marker(&m)?;
                                last_marker = m.id;
                            }
                        }
                        w.exchange(&ex)?;
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, path = %path.display(), "recorder fell behind; exchanges lost from the file");
                    }
                    Err(RecvError::Closed) => ex_open = false,
                },
                r = events.recv(), if ev_open => match r {
                    Ok(ev) => w.conn_event(&ev)?,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "recorder fell behind on connection events");
                    }
                    Err(RecvError::Closed) => ev_open = false,
                },
                _ = tick.tick() => {
                    for m in store.markers_since(last_marker) {
                        w.marker(&m)?;
                        last_marker = m.id;
                    }
                    w.flush()?;
                }
                _ = stop.changed() => break,
            }
        }
        // What arrived before the stop.
        while let Ok(ex) = exchanges.try_recv() {
            w.exchange(&ex)?;
        }
        while let Ok(ev) = events.try_recv() {
            w.conn_event(&ev)?;
        }
        w.finish()
    }))
}
