//! Wireshark as the oracle for the broker's own bytes: tshark captures a real client session on
//! loopback; every Kafka PDU in it must decode in our dissector without error and tile exactly,
//! tshark must report no malformed frame where it knows the API version, and both must agree on
//! api key, version, correlation id, error codes, throttle_time_ms, produce base offsets and the
//! byte offsets of those fields. The same frames are also in the broker's own capture
//! (`--headless --json`), which must hold exactly the bytes tshark saw.

use crate::common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{tshark, Broker};

/// tshark capturing loopback traffic on one port into a file; stopped with SIGINT.
struct Capture {
    child: Child,
}

impl Capture {
    fn start(port: u16, file: &Path) -> Capture {
        assert!(
            common::have("tshark"),
            "tshark is not installed (scripts/test.sh installs it)"
        );
        let mut child = Command::new("tshark")
            .args(["-i", "lo", "-f", &format!("tcp port {port}"), "-w"])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tshark");
        // tshark says "Capturing on 'Loopback: lo'" once the capture is live.
        let mut err = child.stderr.take().expect("stderr");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("Capturing on") {
            assert!(
                Instant::now() < deadline,
                "tshark did not start: {}",
                String::from_utf8_lossy(&seen)
            );
            let n = std::io::Read::read(&mut err, &mut buf).expect("tshark stderr");
            assert!(n > 0, "tshark exited: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut err, &mut std::io::sink());
        });
        // "Capturing on" comes a moment before the filter is live: wait until a probe
        // connection's packets reach the file.
        let before = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        while std::fs::metadata(file).map(|m| m.len()).unwrap_or(0) <= before {
            assert!(Instant::now() < deadline, "tshark captured nothing");
            let _ = std::net::TcpStream::connect(("127.0.0.1", port));
            std::thread::sleep(Duration::from_millis(200));
        }
        Capture { child }
    }

    fn stop(mut self) {
        // Let the last packets reach the file, then ask tshark to finish writing.
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn python(venv: &str) -> String {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/{venv}/bin/python"));
    assert!(
        venv.exists(),
        "{} missing (scripts/test.sh creates it)",
        venv.display()
    );
    venv.to_string_lossy().into_owned()
}

/// A kafka-python session: produce three records with acks=all, read them back.
const KAFKA_PYTHON: &str = r#"
import sys
from kafka import KafkaProducer, KafkaConsumer
b, topic = sys.argv[1], sys.argv[2]
p = KafkaProducer(bootstrap_servers=b, acks='all', request_timeout_ms=10000)
for i in range(3):
    p.send(topic, key=b'k%d' % i, value=b'v%d' % i).get(timeout=10)
p.close()
c = KafkaConsumer(topic, bootstrap_servers=b, auto_offset_reset='earliest',
                  consumer_timeout_ms=3000, enable_auto_commit=False)
got = [m.value for m in c]
c.close()
assert got == [b'v0', b'v1', b'v2'], got
print('ok')
"#;

#[test]
fn tshark_agrees_with_the_dissector_on_a_live_session() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("session.pcapng");
    let b = Broker::start(&["--json"]);
    let port = b.addr.port();
    let cap = Capture::start(port, &file);

    let boot = b.bootstrap();
    common::kcat(
        &[
            "-b",
            &boot,
            "-P",
            "-t",
            "oracle-rd",
            "-z",
            "gzip",
            "-X",
            "acks=all",
        ],
        Some("one\ntwo\nthree\n"),
    );
    let got = common::kcat(
        &[
            "-b",
            &boot,
            "-C",
            "-t",
            "oracle-rd",
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        None,
    );
    assert_eq!(got.lines().collect::<Vec<_>>(), ["one", "two", "three"]);
    // kafka-python 3.x asks for recent versions; 2.0.2 (the seed's era) for older ones that
    // tshark 4.0 still decodes.
    for (venv, topic) in [("venv", "oracle-py3"), ("venv-kp2", "oracle-py2")] {
        let out = Command::new(python(venv))
            .args(["-c", KAFKA_PYTHON, &boot, topic])
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "kafka-python session ({venv}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    cap.stop();

    let pdus = tshark::pdus(&file, port);
    // chronik-tui's own capture pipeline (reader, reassembly, pairing) on the file tshark
    // recorded finds the same Kafka frames tshark does.
    {
        let store = chronik_tui::capture::Store::new(Default::default());
        chronik_tui::capture::pcap::source::read_file(
            &file,
            chronik_tui::capture::pcap::kafka_stream::StreamOptions {
                kafka_ports: vec![port],
                ..Default::default()
            },
            store.clone(),
            chronik_tui::capture::pcap::source::Progress::new("live".into(), 0),
        );
        let mut ours: Vec<Vec<u8>> = Vec::new();
        for ex in store.snapshot() {
            if !ex.request().is_empty() {
                ours.push(ex.request().to_vec());
            }
            ours.extend(ex.response().map(<[u8]>::to_vec));
        }
        let mut theirs: Vec<Vec<u8>> = pdus.iter().map(|p| p.bytes.clone()).collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours.len(), theirs.len(), "frames: ours vs tshark's");
        assert!(
            ours == theirs,
            "the capture pipeline's frames differ from tshark's PDUs"
        );
    }
    let ours = tshark::dissect_all(&pdus);
    let (mut compared, mut checked, mut beyond) = (0, 0, Vec::new());
    let mut failures = Vec::new();
    let mut versions: HashSet<String> = HashSet::new();
    for (p, d) in pdus.iter().zip(&ours) {
        let d = d.as_ref().unwrap_or_else(|| {
            panic!(
                "frame {}: a response whose request tshark did not see",
                p.frame_no
            )
        });
        if let Some(e) = &d.error {
            failures.push(format!("frame {}: our dissector: {e}", p.frame_no));
            continue;
        }
        if let Err(e) = tshark::tiles(d, &p.bytes) {
            failures.push(format!("frame {}: {e}", p.frame_no));
            continue;
        }
        checked += 1;
        let key = d.root.find("kafka.api_key").and_then(|f| f.as_int());
        let body = d.root.children.last().map(|f| f.name()).unwrap_or("");
        if let Some(k) = key {
            versions.insert(format!(
                "{} v{}",
                chronik_tui::protocol::registry::api_name(k as i16),
                d.root
                    .find("kafka.api_version")
                    .and_then(|f| f.as_int())
                    .unwrap_or(-1)
            ));
        }
        if p.unsupported_version {
            // tshark 4.0 stops at older versions; say which, so the gap is visible.
            beyond.push(format!("frame {} ({body})", p.frame_no));
            continue;
        }
        if p.malformed {
            failures.push(format!(
                "frame {} ({body}): tshark reports a malformed packet",
                p.frame_no
            ));
            continue;
        }
        let api_key = chronik_tui::protocol::registry::catalog()
            .apis
            .values()
            .find(|a| body.starts_with(&format!("{}.", a.snake)))
            .map(|a| a.key)
            .unwrap_or(-1);
        match tshark::compare(p, d, api_key) {
            Ok(n) => compared += n,
            Err(e) => failures.push(e),
        }
    }
    let mut v: Vec<_> = versions.into_iter().collect();
    v.sort();
    eprintln!("API versions in the session: {}", v.join(", "));
    eprintln!("{checked} PDUs decoded, {compared} fields compared with tshark; tshark could not decode: {beyond:?}");
    if !failures.is_empty() || std::env::var_os("KEEP_CAPTURE").is_some() {
        let kept = dir.keep();
        panic!(
            "{}\n(capture kept in {})",
            failures.join("\n"),
            kept.display()
        );
    }
    assert!(checked >= 20, "too few PDUs captured: {checked}");
    assert!(compared >= 60, "too few fields compared: {compared}");

    // The broker's own capture holds exactly the bytes that crossed the wire.
    let mut frames: HashSet<String> = HashSet::new();
    while let Ok(line) = b.lines.recv_timeout(Duration::from_millis(200)) {
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        for side in ["request", "response"] {
            if let Some(h) = v[side]["frame_hex"].as_str() {
                frames.insert(h.to_string());
            }
        }
    }
    for p in &pdus {
        let h: String = p.bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            frames.contains(&h),
            "frame {} is not in the broker's capture",
            p.frame_no
        );
    }
}
