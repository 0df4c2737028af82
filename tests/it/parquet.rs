//! The Parquet output read back by an independent reader, pyarrow (installed into target/venv by
//! scripts/test.sh): `decode --parquet` of the repository's captures and of one that lost a
//! request, with and without `-Y` and `-c`, and `--record FILE.parquet` of real traffic (kcat
//! producing and consuming in a group, a raw socket sending a request the broker answers with
//! an error and frames it cannot decode), complete after SIGTERM. Every row is checked against
//! the JSON object `decode --json` (or the broker's `--json` output) prints for the same
//! exchange: every column, both frames byte for byte, the column types too.

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value as Json};

use chronik_tui::protocol::errors::error_name;

/// Reads a Parquet file with pyarrow; prints its schema (column → type), its row-group count
/// and its rows, timestamps as µs since the epoch and binary as hex.
const READER: &str = r#"
import json, sys
import pyarrow as pa
import pyarrow.parquet as pq
f = pq.ParquetFile(sys.argv[1])
t = f.read()
cols = {}
for name in t.column_names:
    c = t.column(name)
    if pa.types.is_timestamp(c.type):
        c = c.cast(pa.int64())
    cols[name] = c.to_pylist()
rows = [
    {n: (v[i].hex() if isinstance(v[i], bytes) else v[i]) for n, v in cols.items()}
    for i in range(t.num_rows)
]
print(json.dumps({
    "schema": {f.name: str(f.type) for f in t.schema},
    "row_groups": f.num_row_groups,
    "rows": rows,
}))
"#;

/// The columns and the types pyarrow reads them as, in order.
const COLUMNS: &[(&str, &str)] = &[
    ("id", "int64"),
    ("time", "timestamp[us, tz=UTC]"),
    ("response_time", "timestamp[us, tz=UTC]"),
    ("conn", "int64"),
    ("client_addr", "string"),
    ("client_port", "uint16"),
    ("server_addr", "string"),
    ("server_port", "uint16"),
    ("client_id", "string"),
    ("api_key", "int16"),
    ("api", "string"),
    ("api_version", "int16"),
    ("correlation_id", "int32"),
    ("latency_us", "int64"),
    ("status", "string"),
    ("status_reason", "string"),
    ("verdict", "string"),
    ("error_code", "int16"),
    ("error", "string"),
    ("throttle_time_ms", "int32"),
    ("topics", "list<element: string not null>"),
    ("request_size", "int32"),
    ("response_size", "int32"),
    ("lint", "list<element: string not null>"),
    ("notes", "list<element: string not null>"),
    ("placement", "string"),
    ("request", "binary"),
    ("response", "binary"),
];

fn python() -> PathBuf {
    let py = common::clients::root().join("target/venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/test.sh --install-only (it installs pyarrow)",
        py.display()
    );
    py
}

/// The rows of a Parquet file as pyarrow reads them, after checking its columns and types.
fn read_parquet(path: &Path) -> Vec<Json> {
    let out = Command::new(python())
        .args(["-c", READER])
        .arg(path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "pyarrow could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Json = serde_json::from_slice(&out.stdout).expect("the reader's JSON");
    let schema: Vec<(String, String)> = v["schema"]
        .as_object()
        .expect("a schema")
        .iter()
        .map(|(k, t)| (k.clone(), t.as_str().unwrap_or_default().to_string()))
        .collect();
    let want: Vec<(String, String)> = COLUMNS
        .iter()
        .map(|(k, t)| (k.to_string(), t.to_string()))
        .collect();
    let mut sorted = want.clone();
    sorted.sort();
    // serde_json's map is sorted by name.
    assert_eq!(schema, sorted, "columns and types of {}", path.display());
    v["rows"].as_array().expect("rows").clone()
}

/// Every field of a decoded tree (the JSON's `tree`), depth first.
fn fields<'a>(tree: &'a Json, out: &mut Vec<&'a Json>) {
    if tree.is_null() {
        return;
    }
    out.push(tree);
    for c in tree["children"].as_array().into_iter().flatten() {
        fields(c, out);
    }
}

fn short(f: &Json) -> &str {
    f["name"]
        .as_str()
        .unwrap_or("")
        .rsplit('.')
        .next()
        .unwrap_or("")
}

/// Whether a frame in the JSON did not decode, or has bytes after the spec's last field.
fn faulty(side: &Json) -> bool {
    !side["error"].is_null()
        || side["tree"]["children"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["name"] == "kafka.trailing_bytes")
}

fn frame_len(side: &Json) -> Json {
    match side["frame_hex"].as_str() {
        Some(h) => json!(h.len() / 2),
        None => Json::Null,
    }
}

/// The row the JSON object of an exchange (`decode --json`) says the Parquet file should hold.
fn expected_row(ex: &Json) -> Json {
    let req = &ex["request"];
    let resp = ex.get("response").unwrap_or(&Json::Null);
    let (mut req_fields, mut resp_fields) = (Vec::new(), Vec::new());
    fields(&req["tree"], &mut req_fields);
    fields(&resp["tree"], &mut resp_fields);
    let peer: SocketAddr = ex["peer"].as_str().unwrap().parse().unwrap();
    let server: Option<SocketAddr> = ex["server"].as_str().map(|s| s.parse().unwrap());
    let status = &ex["status"];
    let kind = status["kind"].as_str().unwrap();
    let reason = match kind {
        "malformed" => {
            let e = &status["error"];
            json!(format!(
                "{} at byte {} ({})",
                e["message"].as_str().unwrap(),
                e["offset"],
                e["path"].as_str().unwrap()
            ))
        }
        "refused" => status["reason"].clone(),
        _ => Json::Null,
    };
    let codes: Vec<i64> = resp_fields
        .iter()
        .filter(|f| short(f) == "error_code")
        .filter_map(|f| f["value"].as_i64())
        .collect();
    let first_error = codes.iter().copied().find(|c| *c != 0);
    let has_response = !resp.is_null();
    let error_code = has_response.then(|| first_error.unwrap_or(0));
    let response_read = has_response && (!req.is_null() || ex["api_key"].as_i64() >= Some(0));
    let throttle = response_read
        .then(|| {
            resp_fields
                .iter()
                .rfind(|f| short(f) == "throttle_time_ms")
                .map(|f| f["value"].clone())
        })
        .flatten();
    let verdict = match kind {
        "malformed" => "malformed",
        "unanswered" | "no_response" => "pending",
        "refused" => "error",
        _ if (!req.is_null() && faulty(req))
            || (response_read && (faulty(resp) || first_error.is_some())) =>
        {
            "error"
        }
        _ => "ok",
    };
    let mut topics: Vec<String> = Vec::new();
    for f in &req_fields {
        let name = f["name"].as_str().unwrap_or("");
        if (short(f) == "name" || short(f) == "topic") && name.contains("topic") {
            if let Some(s) = f["value"].as_str() {
                if !topics.iter().any(|t| t == s) {
                    topics.push(s.to_string());
                }
            }
        }
    }
    let lint: Vec<&Json> = ex["lint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["code"])
        .collect();
    json!({
        "id": ex["id"],
        "time": ex["request_at"],
        "response_time": ex["response_at"],
        "conn": ex["conn"],
        "client_addr": peer.ip().to_string(),
        "client_port": peer.port(),
        "server_addr": server.map(|s| s.ip().to_string()),
        "server_port": server.map(|s| s.port()),
        "client_id": ex["client_id"],
        "api_key": ex["api_key"],
        "api": ex["api_name"],
        "api_version": ex["api_version"],
        "correlation_id": ex["correlation_id"],
        "latency_us": ex["latency_us"],
        "status": kind,
        "status_reason": reason,
        "verdict": verdict,
        "error_code": error_code,
        "error": error_code.map(|c| error_name(c as i16)),
        "throttle_time_ms": throttle,
        "topics": topics,
        "request_size": frame_len(req),
        "response_size": frame_len(resp),
        "lint": lint,
        "notes": ex.get("notes").cloned().unwrap_or(json!([])),
        "placement": ex["placement"]["placement"],
        "request": req["frame_hex"],
        "response": resp["frame_hex"],
    })
}

/// Checks every row against the exchanges' JSON objects, in order, column by column.
fn check_rows(rows: &[Json], exchanges: &[Json], what: &str) {
    assert_eq!(
        rows.len(),
        exchanges.len(),
        "{what}: rows in the Parquet file, exchanges in the JSON"
    );
    for (row, ex) in rows.iter().zip(exchanges) {
        let want = expected_row(ex);
        for (col, _) in COLUMNS {
            assert_eq!(
                row[*col], want[*col],
                "{what}: exchange #{} column {col}",
                ex["id"]
            );
        }
    }
}

fn decode(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chronik-tui"))
        .arg("decode")
        .args(args)
        .output()
        .expect("run chronik-tui decode")
}

fn json_lines(out: &std::process::Output) -> Vec<Json> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// `decode --parquet` of a capture, with `extra` arguments (a filter, a count), against
/// `decode --json` with the same; returns the rows.
fn decode_both(capture: &Path, port: &str, extra: &[&str], out: &Path) -> Vec<Json> {
    let cap = capture.to_str().unwrap();
    let mut args = vec!["--kafka-port", port, cap];
    args.extend_from_slice(extra);
    let json = json_lines(&decode(&[&args[..], &["--json"]].concat()));
    let written = decode(&[&args[..], &["--parquet", out.to_str().unwrap()]].concat());
    let stderr = String::from_utf8_lossy(&written.stderr);
    assert!(written.status.success(), "{stderr}");
    assert!(written.stdout.is_empty(), "nothing printed with --parquet");
    assert!(
        stderr.contains(&format!("{} exchanges written to", json.len())),
        "{stderr}"
    );
    let rows = read_parquet(out);
    check_rows(&rows, &json, &format!("{cap} {extra:?}"));
    rows
}

#[test]
fn decode_parquet_holds_every_exchange_of_the_captures() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::clients::root().join("captures");
    let mut apis = BTreeMap::new();
    for (name, port) in [
        ("kafka-python-2-spec.pcapng", "19094"),
        ("kafka-python-2-front.pcapng", "19093"),
    ] {
        let out = dir.path().join(format!("{name}.parquet"));
        let rows = decode_both(&root.join(name), port, &[], &out);
        for r in &rows {
            *apis
                .entry(r["api"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
        // The filter and the count apply as they do to the printed output.
        let metadata = decode_both(
            &root.join(name),
            port,
            &["-Y", "api == Metadata", "-c", "2"],
            &out,
        );
        assert_eq!(metadata.len(), 2);
        assert!(metadata.iter().all(|r| r["api"] == "Metadata"));
    }
    // Both captures: ApiVersions, Metadata v0 and v1, Metadata v1 and Produce (README of
    // captures/).
    assert_eq!(apis.get("Produce"), Some(&2), "{apis:?}");
    assert_eq!(apis.get("ApiVersions"), Some(&2), "{apis:?}");

    // A response whose request the capture lost: no request frame, no API name.
    let lost = dir.path().join("lost.pcap");
    common::capture::without_a_request(&lost, |e| e.api_key == 0);
    let rows = decode_both(&lost, "19094", &[], &dir.path().join("lost.parquet"));
    let orphan: Vec<&Json> = rows.iter().filter(|r| r["request"].is_null()).collect();
    assert_eq!(orphan.len(), 1, "{rows:?}");
    assert!(orphan[0]["response"].is_string());
}

/// Waits until the broker has printed `n` exchanges more than `have`, or 10 s pass.
fn more_exchanges(b: &mut common::Broker, have: &mut Vec<Json>, n: usize) {
    let want = have.len() + n;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while have.len() < want {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match b.lines.recv_timeout(left) {
            Ok(l) => {
                let v: Json = match serde_json::from_str(&l) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                if v["kind"].is_null() && v["conn"].is_u64() {
                    have.push(v);
                }
            }
            Err(_) => panic!("{} exchanges printed, waited for {want}", have.len()),
        }
    }
}

/// Bytes of a request frame with a v1 header (client id `parquet-test`).
fn request(api_key: i16, version: i16, corr: i32, body: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&api_key.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&corr.to_be_bytes());
    h.extend_from_slice(&12i16.to_be_bytes());
    h.extend_from_slice(b"parquet-test");
    h.extend_from_slice(body);
    let mut f = (h.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&h);
    f
}

/// Writes a frame and waits until the broker answers or closes the connection.
fn send(addr: SocketAddr, frame: &[u8]) {
    use std::io::Read;
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(frame).unwrap();
    let mut buf = [0u8; 4];
    let _ = s.read(&mut buf);
}

#[test]
fn record_parquet_is_complete_after_sigterm() {
    if !common::have("kcat") {
        panic!("kcat is missing: run scripts/test.sh --install-only");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("live.parquet");
    let mut b = common::Broker::start(&["--json", "--record", file.to_str().unwrap()]);
    let addr = b.bootstrap();
    let mut printed = Vec::new();
    common::kcat(
        &["-P", "-b", &addr, "-t", "pq", "-K:", "-z", "gzip"],
        Some("k1:v1\nk2:v2\nk3:v3\n"),
    );
    let consumed = common::kcat_group_consume(&addr, "pq-group", "pq");
    assert!(consumed.contains("v3"), "{consumed}");
    // ApiVersions v99: answered as v0 (a note says so).
    send(b.addr, &request(18, 99, 42, &[0]));
    // Metadata v1 claiming 2^31-1 topics: malformed, the connection closed.
    send(b.addr, &request(3, 1, 7, &0x7fff_ffffi32.to_be_bytes()));
    // An unknown API key.
    send(b.addr, &request(9999, 0, 5, &[]));
    more_exchanges(&mut b, &mut printed, 3);
    // What else the clients did, printed before the broker stops.
    std::thread::sleep(Duration::from_millis(300));
    while let Ok(l) = b.lines.try_recv() {
        if let Ok(v) = serde_json::from_str::<Json>(&l) {
            if v["kind"].is_null() && v["conn"].is_u64() {
                printed.push(v);
            }
        }
    }
    b.terminate();
    // Lines printed while it stopped.
    while let Ok(l) = b.lines.recv_timeout(Duration::from_secs(1)) {
        if let Ok(v) = serde_json::from_str::<Json>(&l) {
            if v["kind"].is_null() && v["conn"].is_u64() {
                printed.push(v);
            }
        }
    }
    printed.sort_by_key(|v| v["id"].as_u64());
    let rows = read_parquet(&file);
    check_rows(&rows, &printed, "--record live.parquet");
    let count = |col: &str, v: &str| rows.iter().filter(|r| r[col] == v).count();
    assert!(count("api", "Produce") >= 1, "{rows:?}");
    assert!(count("api", "Fetch") >= 1, "{rows:?}");
    // librdkafka's first JoinGroup is answered MEMBER_ID_REQUIRED.
    assert!(count("error", "MEMBER_ID_REQUIRED") >= 1, "{rows:?}");
    assert!(count("verdict", "error") >= 1, "{rows:?}");
    assert_eq!(count("status", "malformed"), 2, "{rows:?}");
    assert!(
        rows.iter()
            .any(|r| r["notes"].to_string().contains("answered as v0")),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|r| r["topics"] == json!(["pq"])),
        "{rows:?}"
    );
}
