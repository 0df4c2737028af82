//! `transactions.log` in the data directory: one JSON line per change of a transactional id's
//! state (the whole [`TxnMeta`]), the last line of an id winning on replay. A line that does
//! not parse ends the replay (a torn tail) and is cut off; the file is rewritten compacted
//! (one line per id) on open, and again whenever it holds many more lines than ids. Written with `write_all` before the request is answered, like the
//! partition logs: it survives a kill -9, not a power loss.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::state::TxnMeta;

/// The transaction log file.
pub(super) struct TxnStore {
    path: PathBuf,
    file: File,
    /// Lines in the file.
    lines: usize,
    /// `fdatasync` after every append (`--fsync` interval or always).
    sync: bool,
}

/// Lines beyond this many per id (plus a base) make the file be rewritten compacted.
const LINES_PER_ID: usize = 8;
const LINES_BASE: usize = 1024;

impl TxnStore {
    /// Opens (or creates) the file and replays it: the latest state of each transactional id.
    pub fn open(dir: &Path, sync: bool) -> std::io::Result<(TxnStore, HashMap<String, TxnMeta>)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("transactions.log");
        let text = match std::fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut metas: HashMap<String, TxnMeta> = HashMap::new();
        for line in text.lines() {
            match serde_json::from_str::<TxnMeta>(line) {
                Ok(m) => {
                    metas.insert(m.transactional_id.clone(), m);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e,
                        "transactions.log: cut at a line that does not parse");
                    break;
                }
            }
        }
        let file = compact(&path, &metas, sync)?;
        let lines = metas.len();
        Ok((
            TxnStore {
                path,
                file,
                lines,
                sync,
            },
            metas,
        ))
    }

    /// Appends a transactional id's new state (`all`: every id's state, the new one included,
    /// to rewrite the file compacted when it has grown long).
    pub fn append(
        &mut self,
        meta: &TxnMeta,
        all: &HashMap<String, TxnMeta>,
    ) -> std::io::Result<()> {
        self.file.write_all(line(meta).as_bytes()).inspect_err(|e| {
            tracing::error!(file = %self.path.display(), error = %e, "transactions.log: append failed");
        })?;
        if self.sync {
            self.file.sync_data()?;
        }
        self.lines += 1;
        if self.lines > LINES_BASE + LINES_PER_ID * all.len() {
            let mut metas = all.clone();
            metas.insert(meta.transactional_id.clone(), meta.clone());
            self.file = compact(&self.path, &metas, self.sync)?;
            self.lines = metas.len();
        }
        Ok(())
    }
}

/// Rewrites the file with one line per id (atomically, through a temporary file) and opens it
/// for appending.
fn compact(path: &Path, metas: &HashMap<String, TxnMeta>, sync: bool) -> std::io::Result<File> {
    let tmp = path.with_extension("log.tmp");
    {
        let mut f = File::create(&tmp)?;
        let mut ids: Vec<&String> = metas.keys().collect();
        ids.sort();
        for id in ids {
            f.write_all(line(&metas[id]).as_bytes())?;
        }
        // On disk before it replaces the old file, so a power loss leaves one or the other.
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if sync {
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
    }
    OpenOptions::new().append(true).open(path)
}

/// One JSON line.
fn line(meta: &TxnMeta) -> String {
    let mut s = serde_json::to_string(meta).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_the_latest_state_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut store, metas) = TxnStore::open(dir.path(), true).unwrap();
            assert!(metas.is_empty());
            let mut m = TxnMeta::new("a", 1000, 60_000, 0);
            store.append(&m, &metas).unwrap();
            m.epoch = 3;
            store.append(&m, &metas).unwrap();
            store
                .append(&TxnMeta::new("b", 1001, 60_000, 0), &metas)
                .unwrap();
        }
        let path = dir.path().join("transactions.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"transactional_id\":\"a\",\"produ").unwrap();
        drop(f);
        let (_store, metas) = TxnStore::open(dir.path(), true).unwrap();
        assert_eq!(metas.len(), 2);
        assert_eq!(metas["a"].epoch, 3);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "compacted, torn line gone");
    }

    #[test]
    fn a_long_file_is_compacted_while_appending() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, mut metas) = TxnStore::open(dir.path(), true).unwrap();
        let mut m = TxnMeta::new("a", 1000, 60_000, 0);
        for epoch in 0..(LINES_BASE as i16 + 20) {
            m.epoch = epoch;
            store.append(&m, &metas).unwrap();
            metas.insert("a".into(), m.clone());
        }
        let path = dir.path().join("transactions.log");
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 30, "{lines} lines");
        drop(store);
        let (_store, back) = TxnStore::open(dir.path(), true).unwrap();
        assert_eq!(back["a"].epoch, LINES_BASE as i16 + 19);
    }
}
