//! Fuzzing on stable Rust: a bounded mutational fuzzer in the manner of libFuzzer, one test
//! per target, run by the ordinary test command.
//!
//! Targets: the dissector and the lint over every API key and version (`dissector`), record
//! sets in every compression and legacy message sets (`record_sets`), the Kafka stream framer
//! and sessions over one TCP connection (`streams`), TCP reassembly (`reassembly`), the pcap and
//! pcapng reader, plain, gzip or zstd (`capture_reader`), and the whole path of `decode` from a
//! capture file (`decode`).
//!
//! Every input must: not panic; not allocate more at once than its target's bound (an
//! attacker's length or count must not become an allocation); end within 30 s. The dissector
//! and record targets also check that every field's span lies in its buffer and that the
//! fields tile what was decoded; reassembly checks each byte delivered against the stream.
//!
//! `CHRONIK_FUZZ_SECS` (default 6) is each target's budget after its saved regressions
//! (`tests/fuzz/regressions/TARGET/`) and its seeds; `CHRONIK_FUZZ_SEED` replays a run. This
//! binary has its own global allocator, which counts (crate `cap`): the other test binaries
//! are not affected.

use std::alloc::System;

use cap::Cap;

use chronik_tui::capture::pcap::kafka_stream::{KafkaStreams, Output, StreamOptions};
use chronik_tui::capture::pcap::reader::MAX_RECORD_LEN;
use chronik_tui::capture::pcap::{packet, reader::CaptureReader};
use chronik_tui::protocol::records::MAX_DECOMPRESSED_BYTES;
use chronik_tui::protocol::registry::catalog;

mod engine;
mod seeds;
mod targets;

use engine::{fuzz, Rng, Target};

#[global_allocator]
pub static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const MIB: usize = 1 << 20;

/// Where frames are dissected: decompression may produce [`MAX_DECOMPRESSED_BYTES`] per frame,
/// held by vectors that may reserve twice what they hold while they grow, besides the field
/// tree; nothing else may grow with what a frame claims, only with its size.
fn dissector_bound(input: &[u8]) -> usize {
    4 * MAX_DECOMPRESSED_BYTES + 64 * input.len()
}

fn compressed(input: &[u8]) -> bool {
    input.starts_with(&[0x1f, 0x8b]) || input.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// The capture reader holds one record at a time: at most what the file holds, but a
/// compressed file may inflate to records up to [`MAX_RECORD_LEN`] (in a vector that may
/// reserve twice that).
fn reader_bound(input: &[u8]) -> usize {
    if compressed(input) {
        2 * MAX_RECORD_LEN as usize + 4 * MIB
    } else {
        4 * MIB + 4 * input.len()
    }
}

fn decode_bound(input: &[u8]) -> usize {
    reader_bound(input) + dissector_bound(input)
}

/// The reassembly input's segments are made by the harness (up to 64 KiB each); the
/// reassembler holds at most its limit (16 MiB at most here).
fn reassembly_bound(input: &[u8]) -> usize {
    32 * MIB + 64 * input.len()
}

#[test]
fn dissector() {
    let frames = seeds::all_frames();
    // Every API, version and direction of the schema table is among the seeds.
    let mut missing = Vec::new();
    for api in catalog().apis.values() {
        for version in api.versions.min..=api.versions.max {
            for response in [false, true] {
                let covered = frames
                    .iter()
                    .any(|f| f.key == api.key && f.version == version && f.response == response);
                if !covered {
                    missing.push(format!("{} v{version} response={response}", api.name));
                }
            }
        }
    }
    assert!(missing.is_empty(), "no seed for {missing:?}");
    let seeds = frames
        .iter()
        .map(|f| targets::dissect_input(f.key, f.version, f.response, &f.bytes))
        .collect();
    fuzz(Target {
        name: "dissector",
        seeds,
        run: &targets::dissect,
        alloc_bound: dissector_bound,
        tweak: Some(targets::dissect_tweak),
    });
}

#[test]
fn summary() {
    let seeds = targets::summary_seeds(&seeds::all_frames());
    assert!(
        seeds.len() >= 200,
        "only {} request and response pairs",
        seeds.len()
    );
    fuzz(Target {
        name: "summary",
        seeds,
        run: &targets::summary,
        alloc_bound: dissector_bound,
        tweak: None,
    });
}

#[test]
fn record_sets() {
    let seeds = seeds::record_sets();
    // A bomb takes a thousand times longer than a batch to decompress: the other seeds are
    // listed four times over, so that bombs are about one input in forty.
    let bombs = seeds::bombs().len();
    let (sets, bomb_sets) = seeds.split_at(seeds.len() - bombs);
    let seeds = (0..4)
        .flat_map(|_| sets.iter())
        .chain(bomb_sets)
        .map(|set| {
            let mut input = vec![0, 255];
            input.extend_from_slice(set);
            input
        })
        .collect();
    fuzz(Target {
        name: "record_sets",
        seeds,
        run: &targets::record_set,
        alloc_bound: dissector_bound,
        tweak: None,
    });
}

#[test]
fn streams() {
    let mut rng = Rng::new(0x5eed);
    let mut seeds = Vec::new();
    let convs: Vec<(&[u8], Option<&[u8]>)> = seeds::capture_conversations()
        .iter()
        .map(|(_, _, c)| (c.request.as_slice(), c.response.as_deref()))
        .collect();
    for _ in 0..8 {
        seeds.push(targets::streams_script(&mut rng, &convs));
    }
    // kafka-protocol's frames, each request followed by the response of its API and version.
    let frames = seeds::kafka_protocol_frames();
    let pairs: Vec<(&[u8], Option<&[u8]>)> = frames
        .iter()
        .filter(|f| !f.response)
        .map(|q| {
            let answer = frames
                .iter()
                .find(|s| s.response && s.key == q.key && s.version == q.version);
            (q.bytes.as_slice(), answer.map(|s| s.bytes.as_slice()))
        })
        .collect();
    for group in pairs.chunks(12) {
        seeds.push(targets::streams_script(&mut rng, group));
    }
    fuzz(Target {
        name: "streams",
        seeds,
        run: &targets::streams,
        alloc_bound: dissector_bound,
        tweak: Some(targets::streams_tweak),
    });
}

#[test]
fn reassembly() {
    let mut rng = Rng::new(0x5eed);
    let mut seeds = Vec::new();
    for isn in [0, 1000, 0xffff_ff00, 0xffff_ffff, 0x7fff_fff0] {
        for syn in [true, false] {
            seeds.push(targets::reassembly_seed(&mut rng, isn, syn, 12, 100));
            seeds.push(targets::reassembly_seed(&mut rng, isn, syn, 40, 1460));
        }
    }
    fuzz(Target {
        name: "reassembly",
        seeds,
        run: &targets::reassembly,
        alloc_bound: reassembly_bound,
        tweak: None,
    });
}

#[test]
fn capture_reader() {
    fuzz(Target {
        name: "capture_reader",
        seeds: seeds::capture_seeds(),
        run: &targets::capture_reader,
        alloc_bound: reader_bound,
        tweak: None,
    });
}

#[test]
fn decode() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("input.pcap");
    let run = |input: &[u8]| targets::decode_capture(&path, input);
    fuzz(Target {
        name: "decode",
        seeds: seeds::capture_seeds(),
        run: &run,
        alloc_bound: decode_bound,
        tweak: None,
    });
}

/// The synthesised pcaps among the seeds carry real exchanges: each request of the captures
/// comes out again, cut into 7-byte segments, with its response.
#[test]
fn synthesised_pcaps_hold_the_exchanges() {
    let convs: Vec<&seeds::Conversation> = seeds::capture_conversations()
        .iter()
        .map(|(_, _, c)| c)
        .collect();
    let file = seeds::pcap_of(&convs, 7);
    let mut reader = CaptureReader::new(std::io::Cursor::new(file)).expect("a pcap");
    let mut streams = KafkaStreams::new(StreamOptions::default());
    let mut out = Vec::new();
    while let Some(p) = reader.next_packet() {
        let seg = packet::parse(&p.expect("a packet")).expect("a TCP packet");
        streams.on_segment(&seg.expect("a TCP segment"), &mut out);
    }
    streams.finish(&mut out);
    let got: Vec<(Vec<u8>, Option<Vec<u8>>)> = out
        .into_iter()
        .filter_map(|o| match o {
            Output::Exchange(ex) => {
                Some((ex.request().to_vec(), ex.response().map(<[u8]>::to_vec)))
            }
            Output::Conn(_) => None,
        })
        .collect();
    let want: Vec<(Vec<u8>, Option<Vec<u8>>)> = convs
        .iter()
        .map(|c| (c.request.clone(), c.response.clone()))
        .collect();
    assert_eq!(got, want);
}
