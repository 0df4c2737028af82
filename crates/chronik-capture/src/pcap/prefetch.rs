//! A regular file read ahead on a thread of its own, in chunks that the capture reader lends
//! its packets from.
//!
//! Reading a capture of small packets is bound by the thread that parses it, and a sixth of
//! that thread's time was the kernel copying the file into its buffer. Here a second
//! thread makes those `read` calls into chunks of [`CHUNK`] bytes, a few chunks ahead, and
//! the reader takes each chunk whole: no byte is copied twice. Memory stays bounded: at most
//! [`AHEAD`] chunks wait, one is being read from and one filled, and spent chunks go back to
//! be filled again.
//!
//! A read error reaches the reader after the bytes read before it, as the error of the next
//! read; the end of the file is an empty buffer, as for any [`BufRead`]. Dropping the reader
//! ends the thread (its next hand-over fails).

use std::fs::File;
use std::io::{self, BufRead, ErrorKind, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};

/// Bytes a chunk holds (the last one of a file fewer).
pub(crate) const CHUNK: usize = 1 << 20;
/// Chunks read ahead and waiting for the reader.
pub(crate) const AHEAD: usize = 2;

/// The reading end: the chunk being read from, and where in it.
pub(crate) struct Prefetch {
    chunks: Receiver<io::Result<Vec<u8>>>,
    spent: SyncSender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Prefetch {
    /// Starts reading `file` from where it stands, on a thread of its own.
    pub(crate) fn spawn(file: File) -> io::Result<Prefetch> {
        Prefetch::with_chunks(file, CHUNK)
    }

    /// [`Prefetch::spawn`] with chunks of `size` bytes (tests use a few).
    pub(crate) fn with_chunks(file: File, size: usize) -> io::Result<Prefetch> {
        let (filled, chunks) = mpsc::sync_channel(AHEAD);
        let (spent, to_fill) = mpsc::sync_channel(AHEAD + 2);
        std::thread::Builder::new()
            .name("pcap-prefetch".into())
            .spawn(move || fill(file, size, &filled, &to_fill))?;
        Ok(Prefetch {
            chunks,
            spent,
            chunk: Vec::new(),
            pos: 0,
        })
    }

    /// What is buffered and not consumed yet (empty when the next chunk is still to be taken).
    pub(crate) fn buffer(&self) -> &[u8] {
        &self.chunk[self.pos..]
    }
}

/// The filling thread: reads `file` into chunks of `size` bytes and hands them over, until the
/// end of the file, an error (handed over after the bytes read before it), or a reader gone.
fn fill(
    mut file: File,
    size: usize,
    filled: &SyncSender<io::Result<Vec<u8>>>,
    to_fill: &Receiver<Vec<u8>>,
) {
    loop {
        let mut chunk = to_fill.try_recv().unwrap_or_default();
        // A chunk that comes back whole is refilled as it is; only new memory is zeroed.
        chunk.resize(size, 0);
        let mut got = 0;
        let result = loop {
            if got == size {
                break Ok(());
            }
            match file.read(&mut chunk[got..]) {
                Ok(0) => break Ok(()),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        chunk.truncate(got);
        if got > 0 && filled.send(Ok(chunk)).is_err() {
            return; // the reader is gone
        }
        if let Err(e) = result {
            let _ = filled.send(Err(e));
            return;
        }
        if got < size {
            return; // the end of the file
        }
    }
}

impl BufRead for Prefetch {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.chunk.len() {
            match self.chunks.recv() {
                Ok(Ok(next)) => {
                    let spent = std::mem::replace(&mut self.chunk, next);
                    self.pos = 0;
                    // Full when the filler has chunks enough: this one is then let go.
                    let _ = self.spent.try_send(spent);
                }
                Ok(Err(e)) => return Err(e),
                // The filler has ended: the end of the file, after every chunk.
                Err(mpsc::RecvError) => {}
            }
        }
        Ok(self.buffer())
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.chunk.len());
    }
}

impl Read for Prefetch {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let buffered = self.fill_buf()?;
        let n = buffered.len().min(out.len());
        out[..n].copy_from_slice(&buffered[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    fn file_of(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().expect("a temporary file");
        f.write_all(bytes).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f
    }

    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Every byte comes back once, in order, whether the file is empty, shorter than a chunk,
    /// a whole number of chunks or not, read through `fill_buf` or `read`, and after a seek.
    #[test]
    fn a_file_is_read_whole_in_order_however_it_falls_into_chunks() {
        for len in [0, 1, 99, 100, 101, 1000, 12_345] {
            let want = bytes(len);
            let mut p = Prefetch::with_chunks(file_of(&want), 100).unwrap();
            let mut got = Vec::new();
            loop {
                let buf = p.fill_buf().unwrap();
                if buf.is_empty() {
                    break;
                }
                // Part of what is there, so that chunks are also left part-way.
                let n = buf.len().min(37);
                got.extend_from_slice(&buf[..n]);
                p.consume(n);
            }
            assert_eq!(got, want, "{len} bytes by fill_buf");
            assert!(p.fill_buf().unwrap().is_empty(), "the end stays the end");

            let mut p = Prefetch::with_chunks(file_of(&want), 100).unwrap();
            let mut got = Vec::new();
            p.read_to_end(&mut got).unwrap();
            assert_eq!(got, want, "{len} bytes by read");
        }
        let want = bytes(500);
        let mut f = file_of(&want);
        f.seek(SeekFrom::Start(123)).unwrap();
        let mut got = Vec::new();
        Prefetch::with_chunks(f, 64)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, want[123..], "read from where the file stands");
    }

    /// A read error reaches the reader (here: a file opened for writing only), and a reader
    /// dropped part-way ends the filling thread instead of leaving it blocked.
    #[test]
    fn errors_reach_the_reader_and_a_dropped_reader_ends_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("write-only");
        std::fs::write(&path, bytes(10)).unwrap();
        let write_only = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mut p = Prefetch::with_chunks(write_only, 100).unwrap();
        assert!(p.fill_buf().is_err());

        let mut p = Prefetch::with_chunks(file_of(&bytes(100_000)), 100).unwrap();
        assert_eq!(p.fill_buf().unwrap().len(), 100);
        let Prefetch { chunks, spent, .. } = p;
        drop(chunks);
        // The thread's next hand-over fails and it ends, dropping its end of `spent`.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match spent.try_send(Vec::new()) {
                Err(mpsc::TrySendError::Disconnected(_)) => break,
                _ if std::time::Instant::now() > deadline => panic!("the thread still runs"),
                _ => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
    }
}
