//! rskafka test client for chronik-tui's tests/clients.rs.
//!
//! Usage: rskafka-client MODE BOOTSTRAP TOPIC GROUP COUNT COMPRESSION START [key=value ...]
//! MODE is produce or consume. rskafka has no consumer-group API, so GROUP is ignored and a
//! consumer reads partition 0 from `from_offset=N` (default 0). `sasl=USER:PASS` authenticates
//! with SASL/PLAIN. Output is one JSON object a line.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::{ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;
use serde_json::json;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The shared payload formula (same in every client; tests/clients.rs checks it).
fn key(i: u64) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

fn value(i: u64) -> Vec<u8> {
    let mut v = format!("chronik-{i:06}|").into_bytes();
    v.extend_from_slice(&[
        0x00,
        0xff,
        0xfe,
        0x80,
        0xc3,
        0x28,
        (i & 0xff) as u8,
        ((i * 7) & 0xff) as u8,
    ]);
    v.push(b'|');
    for _ in 0..(1 + i % 5) {
        v.extend_from_slice(b"compressible-");
    }
    v
}

fn emit(v: serde_json::Value) {
    println!("{v}");
}

fn fail(msg: String) -> ! {
    emit(json!({"event": "error", "message": msg}));
    std::process::exit(1);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 8 {
        fail("usage: MODE BOOTSTRAP TOPIC GROUP COUNT COMPRESSION START [key=value ...]".into());
    }
    let (mode, bootstrap, topic) = (&args[1], &args[2], &args[3]);
    let count: u64 = args[5].parse().unwrap_or_else(|_| fail("bad COUNT".into()));
    let compression = match args[6].as_str() {
        "none" => Compression::NoCompression,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => fail(format!("unknown compression {other}")),
    };
    let start: u64 = args[7].parse().unwrap_or_else(|_| fail("bad START".into()));
    let extra: HashMap<String, String> = args[8..]
        .iter()
        .filter_map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let timeout_ms: u64 = extra
        .get("timeout_ms")
        .and_then(|s| s.parse().ok())
        .unwrap_or(30_000);
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);

    let mut builder = ClientBuilder::new(vec![bootstrap.clone()]).client_id("rskafka-client");
    if let Some((user, pass)) = extra.get("sasl").and_then(|s| s.split_once(':')) {
        builder = builder.sasl_config(SaslConfig::Plain(Credentials::new(
            user.to_string(),
            pass.to_string(),
        )));
    }
    let client =
        match tokio::time::timeout(Duration::from_millis(timeout_ms), builder.build()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => fail(format!("connect: {e}")),
            Err(_) => fail("connect: timed out".into()),
        };
    let partition = match tokio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        client.partition_client(topic.as_str(), 0, UnknownTopicHandling::Retry),
    )
    .await
    {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => fail(format!("partition client: {e}")),
        Err(_) => fail("partition client: timed out".into()),
    };

    match mode.as_str() {
        "produce" => {
            let records: Vec<Record> = (start..start + count)
                .map(|i| Record {
                    key: Some(key(i)),
                    value: Some(value(i)),
                    headers: BTreeMap::from([("idx".to_string(), i.to_string().into_bytes())]),
                    timestamp: chrono::Utc::now(),
                })
                .collect();
            let offsets = match tokio::time::timeout(
                deadline.saturating_duration_since(Instant::now()),
                partition.produce(records, compression),
            )
            .await
            {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => fail(format!("produce: {e}")),
                Err(_) => fail("produce: timed out".into()),
            };
            for (n, off) in offsets.iter().enumerate() {
                emit(
                    json!({"event": "produced", "index": start + n as u64, "partition": 0, "offset": off}),
                );
            }
            emit(json!({"event": "done", "count": offsets.len()}));
        }
        "consume" => {
            let mut offset: i64 = extra
                .get("from_offset")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let mut got = 0u64;
            while got < count {
                if Instant::now() >= deadline {
                    fail(format!("consume: timed out after {got} of {count} records"));
                }
                let (records, _hw) = match tokio::time::timeout(
                    deadline.saturating_duration_since(Instant::now()),
                    partition.fetch_records(offset, 1..1_000_000, 200),
                )
                .await
                {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => fail(format!("fetch at offset {offset}: {e}")),
                    Err(_) => fail(format!("consume: timed out after {got} of {count} records")),
                };
                for r in records {
                    if got >= count {
                        break;
                    }
                    let headers: serde_json::Map<String, serde_json::Value> = r
                        .record
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(hex(v))))
                        .collect();
                    emit(json!({
                        "event": "consumed",
                        "partition": 0,
                        "offset": r.offset,
                        "key": r.record.key.as_deref().map(hex),
                        "value": r.record.value.as_deref().map(hex),
                        "headers": headers,
                    }));
                    offset = r.offset + 1;
                    got += 1;
                }
            }
            emit(json!({"event": "done", "count": got, "next_offset": offset}));
        }
        other => fail(format!("unknown mode {other}")),
    }
}
