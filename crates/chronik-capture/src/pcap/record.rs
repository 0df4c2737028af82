//! Writing a store out: at once (the UI's export key) or continuously while a source runs
//! (`--record FILE`). The file's extension picks the format: `.json`/`.jsonl` for JSON lines,
//! `.parquet` for a Parquet table of the exchanges, anything else pcapng.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::export::{JsonLinesExporter, PcapngExporter};
use super::parquet::ParquetExporter;
use crate::{ConnEvent, Exchange, Marker, Store, TimelineItem};

/// Where an exporter writes: a file, or standard output.
type Sink = BufWriter<Box<dyn Write + Send>>;

/// A pcapng, JSON lines or Parquet writer, chosen by file name.
pub enum Exporter {
    Pcapng(PcapngExporter<Sink>),
    Json(JsonLinesExporter<Sink>),
    /// Exchanges only: connection events and markers have no row.
    Parquet(ParquetExporter<Sink>),
}

/// Whether a path names a JSON lines file.
pub fn is_json(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("json" | "jsonl" | "ndjson")
    )
}

/// Whether a path names a Parquet file (`.parquet`).
pub fn is_parquet(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()) == Some("parquet")
}

impl Exporter {
    /// Creates the file (`-`: pcapng to standard output); `server` is the broker address used
    /// for connections whose exchanges do not name one.
    pub fn create(path: &Path, server: SocketAddr) -> io::Result<Exporter> {
        let file: Box<dyn Write + Send> = if path.as_os_str() == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(File::create(path)?)
        };
        let out = BufWriter::new(file);
        Ok(if is_json(path) {
            Exporter::Json(JsonLinesExporter::new(out))
        } else if is_parquet(path) {
            Exporter::Parquet(ParquetExporter::new(out)?)
        } else {
            Exporter::Pcapng(PcapngExporter::new(out, server)?)
        })
    }

    pub fn exchange(&mut self, ex: &Exchange) -> io::Result<()> {
        match self {
            Exporter::Pcapng(w) => w.exchange(ex),
            Exporter::Json(w) => w.exchange(ex),
            Exporter::Parquet(w) => w.exchange(ex),
        }
    }

    pub fn conn_event(&mut self, ev: &ConnEvent) -> io::Result<()> {
        match self {
            Exporter::Pcapng(w) => w.conn_event(ev),
            Exporter::Json(w) => w.conn_event(ev),
            Exporter::Parquet(_) => Ok(()),
        }
    }

    pub fn marker(&mut self, m: &Marker) -> io::Result<()> {
        match self {
            Exporter::Pcapng(w) => w.marker(m),
            Exporter::Json(w) => w.marker(m),
            Exporter::Parquet(_) => Ok(()),
        }
    }

    /// Writes what is buffered (the file stays open).
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Exporter::Pcapng(w) => w.flush(),
            Exporter::Json(w) => w.flush(),
            Exporter::Parquet(w) => w.flush(),
        }
    }

    /// Ends the file (FIN for open connections; Parquet's last row group and footer) and
    /// closes it.
    pub fn finish(self) -> io::Result<()> {
        match self {
            Exporter::Pcapng(w) => w.finish()?.flush(),
            Exporter::Json(w) => w.finish()?.flush(),
            Exporter::Parquet(w) => w.finish()?.flush(),
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
/// now on, flushed at least every 200 ms so a crash loses little (a Parquet file is readable
/// only once finished, its footer written). The task ends, finishing the file, when `stop`
/// fires or the store's feeds close.
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
        let mut markers = MarkerCursor {
            last: store.markers_since(0).last().map_or(0, |m| m.id),
        };
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let (mut ex_open, mut ev_open) = (true, true);
        while ex_open || ev_open {
            tokio::select! {
                biased;
                r = exchanges.recv(), if ex_open => match r {
                    Ok(ex) => {
                        markers.write(&store, &mut w, Some(ex.id))?;
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
                    markers.write(&store, &mut w, None)?;
                    w.flush()?;
                }
                _ = stop.changed() => break,
            }
        }
        // What arrived before the stop, markers included.
        while let Ok(ex) = exchanges.try_recv() {
            markers.write(&store, &mut w, Some(ex.id))?;
            w.exchange(&ex)?;
        }
        markers.write(&store, &mut w, None)?;
        while let Ok(ev) = events.try_recv() {
            w.conn_event(&ev)?;
        }
        w.finish()
    }))
}

/// The newest marker a recorder has written.
struct MarkerCursor {
    last: u64,
}

impl MarkerCursor {
    /// Writes the markers made since the last one written: those that precede exchange
    /// `before`, or all of them.
    fn write(&mut self, store: &Store, w: &mut Exporter, before: Option<u64>) -> io::Result<()> {
        for m in store.markers_since(self.last) {
            if before.is_some_and(|id| m.after_exchange >= id) {
                break;
            }
            w.marker(&m)?;
            self.last = m.id;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Status, StoreLimits};

    /// A marker made just before the recorder stops (well within its 200 ms flush tick) is in
    /// the file, after the exchange it follows.
    #[tokio::test]
    async fn markers_made_just_before_the_stop_are_recorded() {
        let store = Store::new(StoreLimits::default());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let rec = spawn_recorder(
            store.clone(),
            path.clone(),
            "127.0.0.1:9092".parse().unwrap(),
            stop_rx,
        )
        .unwrap();
        tokio::task::yield_now().await;
        store.push(Exchange::new(
            1,
            crate::Endpoints::of("127.0.0.1:5000".parse().unwrap()),
            1,
            Status::Unanswered,
        ));
        store.push_marker("placement: front (was spec)".into());
        stop_tx.send(true).unwrap();
        rec.await.unwrap().unwrap();
        let kinds: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                match v["kind"].as_str() {
                    Some(k) => k.to_string(),
                    None => "exchange".to_string(),
                }
            })
            .collect();
        assert!(
            kinds.ends_with(&["exchange".to_string(), "marker".to_string()]),
            "{kinds:?}"
        );
    }
}
