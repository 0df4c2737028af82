//! Capture files in the tests: every packet of a file, packets written back out as pcap, a file
//! decoded by chronik-tui's own pipeline, and a capture of the embedded broker with one request
//! left out (as a capture that lost it holds only its response).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chronik_tui::capture::pcap::kafka_stream::StreamOptions;
use chronik_tui::capture::pcap::reader::CaptureReader;
use chronik_tui::capture::pcap::{source, RawPacket};
use chronik_tui::capture::{Exchange, Store, StoreLimits};

/// captures/kafka-python-2-spec.pcapng (kafka-python 2.0.2 against the embedded broker) and the
/// port its broker listened on.
pub fn spec_capture() -> (PathBuf, u16) {
    (
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures/kafka-python-2-spec.pcapng"),
        19094,
    )
}

/// Every packet of a capture file.
pub fn packets(path: &Path) -> Vec<RawPacket> {
    read_all(path).0
}

/// Every packet of a capture, and the reader that read them (for its format and byte count).
pub fn read_all(path: &Path) -> (Vec<RawPacket>, CaptureReader) {
    let mut r = CaptureReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut v = Vec::new();
    while let Some(p) = r.next_packet() {
        v.push(p.unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
    (v, r)
}

/// A pcap file of these packets (the link type of the first).
pub fn write_pcap(path: &Path, packets: &[RawPacket]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes()); // nanosecond magic
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&packets[0].linktype.to_le_bytes());
    for p in packets {
        out.extend_from_slice(&((p.ts_nanos / 1_000_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((p.ts_nanos % 1_000_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&p.orig_len.to_le_bytes());
        out.extend_from_slice(&p.data);
    }
    std::fs::write(path, out).unwrap();
}

/// The exchanges of a capture file, as chronik-tui reads them (Kafka on `port`); a file it
/// reports errors on fails the test.
pub fn decode(path: &Path, port: u16) -> Vec<Arc<Exchange>> {
    let store = Store::new(StoreLimits::default());
    let progress = source::Progress::new("test".into(), 0);
    source::read_file(
        path,
        StreamOptions {
            kafka_ports: vec![port],
            ..StreamOptions::default()
        },
        store.clone(),
        progress.clone(),
    );
    assert!(
        progress.errors().is_empty(),
        "{}: {:?}",
        path.display(),
        progress.errors()
    );
    store.snapshot()
}

/// Writes to `out` the capture [`spec_capture`] without the one packet that carries the request
/// of its first exchange `pick` accepts; that exchange as the whole capture has it.
pub fn without_a_request(out: &Path, pick: impl Fn(&Exchange) -> bool) -> Arc<Exchange> {
    let (src, port) = spec_capture();
    let ex = decode(&src, port)
        .into_iter()
        .find(|e| pick(e))
        .expect("an exchange to drop the request of");
    let mut all = packets(&src);
    let carrying: Vec<usize> = (0..all.len())
        .filter(|i| all[*i].data.ends_with(ex.request()))
        .collect();
    assert_eq!(
        carrying.len(),
        1,
        "exchange {} ({} v{}): its request in one packet of its own",
        ex.id,
        ex.api_key,
        ex.api_version
    );
    all.remove(carrying[0]);
    write_pcap(out, &all);
    ex
}
