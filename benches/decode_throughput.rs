//! `decode` against `cat` and tshark on the same files, in the same run.
//!
//! `cargo build --release && cargo bench --bench decode_throughput` makes three captures of real
//! traffic through the embedded broker (four connections, each pipelining Produce v7 requests
//! with acks=1), exported as pcapng, cached under `target/bench/` by their shape:
//! - **small**: `BENCH_SMALL` (default 1 000 000) Produce requests of one 100-byte record;
//! - **batches**: `BENCH_BATCHES` (default 6 000) Produce requests of 200 records of 100 bytes,
//!   the shape of librdkafka at full speed;
//! - **json**: the first `BENCH_JSON` (default 100 000) small exchanges, for `--json`.
//!
//! On each it times `cat FILE > /dev/null` (the floor: reading the file), the release
//! binary's `chronik-tui decode FILE > /dev/null` (one line per exchange; `--json` on the json
//! capture) and tshark's one line per packet (`-T json` on the json capture), best of
//! `BENCH_RUNS` (default 3; tshark once), and prints the figures and the ratios. Not a test:
//! figures only. `BENCH_TSHARK=0` leaves tshark out.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::records::{Record, TimestampType};

use chronik_tui::broker::{self, BrokerConfig};
use chronik_tui::capture::pcap::record;
use chronik_tui::capture::{Store, StoreLimits};
use chronik_tui::settings::{Knobs, Settings};

#[path = "../tests/it/common/frame.rs"]
mod frame;
#[path = "common/knobs.rs"]
mod knobs;
#[path = "common/proc_status.rs"]
mod proc_status;

const CONNECTIONS: usize = 4;
/// Requests written before their responses are read, per connection.
const WINDOW: usize = 32;

/// One uncompressed batch of `n` records of `value_len` bytes.
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
            key: None,
            value: Some(Bytes::from({
                let unit = format!("{seed}:{i}:");
                unit.repeat(value_len / unit.len() + 1)[..value_len].to_string()
            })),
            headers: Default::default(),
        })
        .collect();
    frame::encode_batch(&records, 2)
}

/// Sends `requests` Produce v7 requests of `records` records each on one connection, `WINDOW`
/// at a time, reading every response.
fn traffic(addr: SocketAddr, conn: usize, requests: usize, records: usize) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut corr = 0;
    let mut left = requests;
    while left > 0 {
        let n = left.min(WINDOW);
        let mut out = Vec::new();
        for _ in 0..n {
            corr += 1;
            let recs = batch(records, 100, conn * requests + corr as usize);
            let req = frame::produce_req("bench", conn as i32 % 2, 1, recs);
            out.extend(frame::request_frame(
                ApiKey::Produce,
                7,
                corr,
                "bench",
                &req,
            ));
        }
        s.write_all(&out).unwrap();
        for _ in 0..n {
            let mut len = [0u8; 4];
            s.read_exact(&mut len).unwrap();
            let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
            s.read_exact(&mut body).unwrap();
        }
        left -= n;
    }
}

/// The capture at `path` of `exchanges` Produce exchanges of `records` records each, made
/// unless a file of that shape is there already. Returns the broker's port.
fn capture(path: &Path, exchanges: usize, records: usize) -> u16 {
    let port_file = path.with_extension("port");
    if let (true, Ok(port)) = (path.exists(), std::fs::read_to_string(&port_file)) {
        if let Ok(port) = port.trim().parse() {
            return port;
        }
    }
    let t = Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Store::new(StoreLimits {
        max_exchanges: usize::MAX,
        max_bytes: usize::MAX,
    });
    let addr = rt.block_on(async {
        let h = broker::start(
            BrokerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                default_partitions: 2,
                ..BrokerConfig::default()
            },
            store.clone(),
            Settings::new(Knobs::default()),
        )
        .await
        .unwrap();
        let addr = h.local_addr;
        let per_conn = exchanges / CONNECTIONS;
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let n = per_conn + usize::from(c < exchanges % CONNECTIONS);
                tokio::task::spawn_blocking(move || traffic(addr, c, n, records))
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        while store.stats().0 < exchanges {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        addr
    });
    let written = record::export_store(&store, path, addr).unwrap();
    assert_eq!(written, exchanges);
    std::fs::write(&port_file, addr.port().to_string()).unwrap();
    println!(
        "made {} ({exchanges} exchanges) in {:.1} s",
        path.display(),
        t.elapsed().as_secs_f64()
    );
    addr.port()
}

/// Runs a command to the end with stdout to /dev/null: its wall time and peak resident memory
/// (MiB, sampled from /proc every 5 ms); `None` if it cannot run or fails.
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
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The best of `runs` runs of a command.
fn best(runs: usize, make: impl Fn() -> Command) -> Option<(Duration, f64)> {
    (0..runs)
        .map(|_| time_command(make()))
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .min_by_key(|r| r.0)
}

fn show(what: &str, r: Option<(Duration, f64)>, mib: f64, exchanges: usize) -> Option<f64> {
    match r {
        Some((d, rss)) => {
            let s = d.as_secs_f64();
            println!(
                "  {what:<34} {s:>8.3} s {:>9.1} MiB/s {:>10.0} exchanges/s  peak RSS {rss:>5.0} MiB",
                mib / s,
                exchanges as f64 / s
            );
            Some(s)
        }
        None => {
            println!("  {what:<34} not run (missing or failed)");
            None
        }
    }
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/chronik-tui");
    if !bin.exists() {
        println!("build the release binary first: cargo build --release");
        return;
    }
    let runs = knobs::env_or::<usize>("BENCH_RUNS", 3).max(1);
    let tshark = std::env::var("BENCH_TSHARK").map_or(true, |v| v != "0");
    let small = knobs::env_or::<usize>("BENCH_SMALL", 1_000_000);
    let batches = knobs::env_or::<usize>("BENCH_BATCHES", 6_000);
    let json = knobs::env_or::<usize>("BENCH_JSON", 100_000);
    println!(
        "decode_throughput: {} cores; best of {runs} runs (tshark: one)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let shapes = [
        ("small", small, 1, false),
        ("batches", batches, 200, false),
        ("json", json, 1, true),
    ];
    for (name, exchanges, records, as_json) in shapes {
        let path = dir.join(format!("decode-{name}-{exchanges}x{records}.pcapng"));
        let port = capture(&path, exchanges, records).to_string();
        let mib = std::fs::metadata(&path).unwrap().len() as f64 / 1048576.0;
        println!(
            "{name}: {exchanges} Produce v7 exchanges of {records} x 100 B records, {mib:.1} MiB ({})",
            path.display()
        );
        let cat = show(
            "cat",
            best(runs, || {
                let mut c = Command::new("cat");
                c.arg(&path);
                c
            }),
            mib,
            exchanges,
        );
        let what = if as_json {
            "chronik-tui decode --json"
        } else {
            "chronik-tui decode"
        };
        let ours = show(
            what,
            best(runs, || {
                let mut c = Command::new(&bin);
                c.args(["decode", "--kafka-port", &port]);
                if as_json {
                    c.arg("--json");
                }
                c.arg(&path);
                c
            }),
            mib,
            exchanges,
        );
        let theirs = if tshark {
            let what = if as_json { "tshark -T json" } else { "tshark" };
            show(
                what,
                time_command({
                    let mut c = Command::new("tshark");
                    c.args(["-n", "-r"])
                        .arg(&path)
                        .args(["-d", &format!("tcp.port=={port},kafka")]);
                    if as_json {
                        c.args(["-T", "json"]);
                    }
                    c
                }),
                mib,
                exchanges,
            )
        } else {
            None
        };
        if let (Some(cat), Some(ours)) = (cat, ours) {
            print!("  ratio: decode / cat {:.1}x", ours / cat);
            if let Some(theirs) = theirs {
                print!(", tshark / decode {:.1}x", theirs / ours);
            }
            println!();
        }
    }
}
