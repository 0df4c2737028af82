//! Decode throughput on a large capture, against tshark on the same file, in the same run.
//!
//! `cargo bench --bench decode_throughput` (env `BENCH_CAPTURE_MB`, default 200) makes a capture
//! of real traffic: the embedded broker serves Produce and Fetch requests from a raw client,
//! and the store is exported as pcapng. Then it times, on that file:
//! - chronik-tui's pipeline (read, TCP reassembly, pairing, and a full dissection of every
//!   request and response) into a store capped at 64 MiB, with the peak memory of the process;
//! - `chronik-tui decode FILE > /dev/null` (the release binary, when built);
//! - `tshark -r FILE -d tcp.port==PORT,kafka > /dev/null` (one summary line per packet, every
//!   packet fully dissected) and the same with `-T json` (every field printed).
//!
//! It prints MB/s and exchanges/s for each and the ratios. Not a test: figures only.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{Record, TimestampType};

use chronik_tui::broker::{self, BrokerConfig};
use chronik_tui::capture::pcap::kafka_stream::StreamOptions;
use chronik_tui::capture::pcap::{record, source};
use chronik_tui::capture::{Store, StoreLimits};
use chronik_tui::settings::{Knobs, Settings};

#[path = "../tests/it/common/frame.rs"]
mod frame;
#[path = "common/proc_status.rs"]
mod proc_status;

/// A request frame from the benchmark's client.
fn frame<Req: Encodable>(key: ApiKey, version: i16, corr: i32, req: &Req) -> Vec<u8> {
    frame::request_frame(key, version, corr, "bench", req)
}

fn batch(n: usize, value_len: usize, seed: usize) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1_796_032_800_000 + (seed * n + i) as i64,
            key: Some(Bytes::from(format!("key-{seed}-{i}"))),
            value: Some(Bytes::from({
                let unit = format!("{seed}:{i}:");
                unit.repeat(value_len / unit.len() + 1)[..value_len].to_string()
            })),
            headers: Default::default(),
        })
        .collect();
    frame::encode_batch(&records, 2)
}

/// Sends requests on one connection, reading each response (blocking socket).
fn traffic(addr: SocketAddr, target_bytes: usize) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut corr = 0;
    let mut sent = 0usize;
    let call = |s: &mut std::net::TcpStream, f: Vec<u8>| {
        s.write_all(&f).unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        f.len() + 4 + body.len()
    };
    let mut i = 0;
    while sent < target_bytes {
        corr += 1;
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("bench")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch(10, 900, i))),
                ])]);
        sent += call(&mut s, frame(ApiKey::Produce, 7, corr, &req));
        if i % 10 == 9 {
            corr += 1;
            let fetch = FetchRequest::default()
                .with_max_wait_ms(0)
                .with_min_bytes(0)
                .with_max_bytes(1 << 20)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str("bench")))
                    .with_partitions(vec![fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset((i as i64 - 9) * 10)
                        .with_partition_max_bytes(1 << 20)])]);
            sent += call(&mut s, frame(ApiKey::Fetch, 11, corr, &fetch));
        }
        i += 1;
    }
}

fn make_capture(path: &Path, mb: usize) -> (u16, usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Store::new(StoreLimits {
        max_exchanges: usize::MAX,
        max_bytes: usize::MAX,
    });
    let (addr, n) = rt.block_on(async {
        let h = broker::start(
            BrokerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..BrokerConfig::default()
            },
            store.clone(),
            Settings::new(Knobs::default()),
        )
        .await
        .unwrap();
        let addr = h.local_addr;
        tokio::task::spawn_blocking(move || traffic(addr, mb << 20))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        (addr, store.snapshot().len())
    });
    let written = record::export_store(&store, path, addr).unwrap();
    assert_eq!(written, n);
    (addr.port(), n)
}

/// Runs a command to the end: its wall time and its peak resident memory (MiB, sampled from
/// /proc every 10 ms).
fn time_command(mut cmd: Command) -> Option<(Duration, f64)> {
    let t = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let pid = child.id().to_string();
    let mut peak = 0.0f64;
    loop {
        peak = peak.max(proc_status::peak_rss_mib(&pid));
        if let Some(status) = child.try_wait().ok()? {
            return status.success().then(|| (t.elapsed(), peak));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() {
    let mb: usize = std::env::var("BENCH_CAPTURE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("decode-{mb}mb.pcapng"));
    let t = Instant::now();
    let (port, exchanges) = make_capture(&path, mb);
    let size = std::fs::metadata(&path).unwrap().len();
    let file_mb = size as f64 / 1048576.0;
    println!(
        "capture: {} ({file_mb:.1} MiB, {exchanges} exchanges, made in {:.1} s)",
        path.display(),
        t.elapsed().as_secs_f64()
    );
    let rss_before = proc_status::peak_rss_mib("self");

    // chronik-tui's pipeline in process, every frame dissected, store capped at 64 MiB.
    let store = Store::new(StoreLimits {
        max_exchanges: 100_000,
        max_bytes: 64 << 20,
    });
    let progress = source::Progress::new("bench".into(), size);
    let dissected = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let d = dissected.clone();
    let t = Instant::now();
    source::read_input(
        source::Input::open(&path).expect("the capture just written opens"),
        StreamOptions {
            kafka_ports: vec![port],
            ..StreamOptions::default()
        },
        store.clone(),
        progress.clone(),
        Some(Box::new(move |ex| {
            let req = ex.dissect_request();
            let resp = ex.dissect_response();
            let fields = req.map_or(0, |r| r.root.children.len())
                + resp.map_or(0, |r| r.root.children.len());
            d.fetch_add(fields as u64, std::sync::atomic::Ordering::Relaxed);
        })),
    );
    let ours = t.elapsed();
    let got = progress
        .exchanges
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(got as usize, exchanges, "every exchange decoded back");
    let (held, bytes, evicted) = store.stats();
    println!(
        "chronik-tui pipeline: {:.2} s, {:.1} MiB/s, {:.0} exchanges/s; store held {held} ({:.1} MiB, {evicted} evicted); peak RSS {:.0} MiB (before reading: {rss_before:.0} MiB)",
        ours.as_secs_f64(),
        file_mb / ours.as_secs_f64(),
        got as f64 / ours.as_secs_f64(),
        bytes as f64 / 1048576.0,
        proc_status::peak_rss_mib("self")
    );

    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/chronik-tui");
    let decode = bin.exists().then(|| {
        let mut c = Command::new(&bin);
        c.args(["decode", "--kafka-port", &port.to_string()])
            .arg(&path);
        time_command(c)
    });
    let decode = decode.flatten();
    if let Some((d, rss)) = decode {
        println!(
            "chronik-tui decode (line per exchange): {:.2} s, {:.1} MiB/s, peak RSS {rss:.0} MiB",
            d.as_secs_f64(),
            file_mb / d.as_secs_f64()
        );
    } else {
        println!(
            "chronik-tui decode: not timed (build the release binary first: cargo build --release)"
        );
    }
    let decode_as = format!("tcp.port=={port},kafka");
    let mut c = Command::new("tshark");
    c.args(["-n", "-r"]).arg(&path).args(["-d", &decode_as]);
    let tshark = time_command(c);
    let mut c = Command::new("tshark");
    c.args(["-n", "-r"])
        .arg(&path)
        .args(["-d", &decode_as, "-T", "json"]);
    let tshark_json = time_command(c);
    match (tshark, tshark_json) {
        (Some((a, a_rss)), Some((b, b_rss))) => {
            println!(
                "tshark (summary line per packet): {:.2} s, {:.1} MiB/s, peak RSS {a_rss:.0} MiB",
                a.as_secs_f64(),
                file_mb / a.as_secs_f64()
            );
            println!(
                "tshark -T json (every field): {:.2} s, {:.1} MiB/s, peak RSS {b_rss:.0} MiB",
                b.as_secs_f64(),
                file_mb / b.as_secs_f64()
            );
            println!(
                "ratio, tshark time / chronik-tui pipeline time: {:.1}x (summary), {:.1}x (json)",
                a.as_secs_f64() / ours.as_secs_f64(),
                b.as_secs_f64() / ours.as_secs_f64()
            );
            if let Some((d, _)) = decode {
                println!(
                    "ratio, tshark time / chronik-tui decode time: {:.1}x (summary lines both)",
                    a.as_secs_f64() / d.as_secs_f64()
                );
            }
        }
        _ => println!("tshark: not found or failed; no ratio"),
    }
}
