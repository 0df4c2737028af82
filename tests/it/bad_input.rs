//! Hostile and broken input over raw sockets, while a real client (kcat, librdkafka) keeps
//! producing and consuming on the same broker.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Broker;

fn connect(b: &Broker) -> TcpStream {
    let s = TcpStream::connect(b.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends bytes and reports whether the broker closed the connection (EOF or reset) and what it
/// answered before that.
fn send_and_read(b: &Broker, bytes: &[u8], then_close_write: bool) -> (bool, Vec<u8>) {
    let mut s = connect(b);
    s.write_all(bytes).expect("write");
    if then_close_write {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (true, got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (true, got),
            Err(_) => return (false, got), // timed out: still open
        }
    }
}

fn request(api_key: i16, version: i16, corr: i32, body: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&api_key.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&corr.to_be_bytes());
    h.extend_from_slice(&4i16.to_be_bytes());
    h.extend_from_slice(b"evil");
    h.extend_from_slice(body);
    let mut f = (h.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&h);
    f
}

fn kcat_roundtrip(b: &Broker, topic: &str, payload: &str) {
    let boot = b.bootstrap();
    common::kcat(
        &["-b", &boot, "-P", "-t", topic, "-X", "acks=all", "-m", "10"],
        Some(&format!("{payload}\n")),
    );
    let text = common::kcat(
        &[
            "-b",
            &boot,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-m",
            "10",
        ],
        None,
    );
    assert!(
        text.lines().any(|l| l == payload),
        "kcat did not read back {payload:?}: {text:?}"
    );
}

#[test]
fn bad_frames_close_only_their_connection() {
    let b = Broker::start(&["--max-frame-bytes", "1048576"]);
    kcat_roundtrip(&b, "steady", "before");

    // A client that stays connected through everything below.
    let mut bystander = connect(&b);
    let api_versions = request(18, 0, 1, &[]);
    bystander.write_all(&api_versions).unwrap();
    let mut len = [0u8; 4];
    bystander.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    bystander.read_exact(&mut resp).unwrap();

    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "negative length",
            vec![0xff, 0xff, 0xff, 0xf0, 1, 2, 3],
            false,
        ),
        (
            "oversized length",
            (2_000_000i32).to_be_bytes().to_vec(),
            false,
        ),
        (
            "truncated frame",
            [&100i32.to_be_bytes()[..], &[0, 3, 0, 1]].concat(),
            true,
        ),
        ("garbage header", vec![0, 0, 0, 3, 0xde, 0xad, 0xbe], false),
        ("unknown api key", request(9999, 0, 5, &[]), false),
        ("unsupported produce version", request(0, 99, 6, &[]), false),
        // Metadata v1 claiming 2^31-1 topics in a 4-byte array: must not allocate for them.
        (
            "hostile array count",
            request(3, 1, 7, &0x7fff_ffffi32.to_be_bytes()),
            false,
        ),
        // Produce v3 whose string length runs past the frame.
        (
            "string past the end",
            request(0, 3, 8, &[0x7f, 0xff, 0, 1]),
            false,
        ),
    ];
    for (what, bytes, close_write) in &cases {
        let (closed, answer) = send_and_read(&b, bytes, *close_write);
        assert!(closed, "{what}: connection was not closed");
        assert!(answer.is_empty(), "{what}: unexpected answer {answer:02x?}");
    }

    // The broker says why, with the byte offset, in the captured exchange.
    let malformed = b.wait_for_line(Duration::from_secs(5), |l| {
        l.contains("MALFORMED") && l.contains("exceeds") && l.contains("at byte")
    });
    assert!(
        malformed.is_some(),
        "no MALFORMED line with a byte offset for the hostile count"
    );

    // The bystander connection still works, and so does a real client.
    bystander.write_all(&request(18, 0, 2, &[])).unwrap();
    bystander.read_exact(&mut len).unwrap();
    let mut resp2 = vec![0u8; i32::from_be_bytes(len) as usize];
    bystander.read_exact(&mut resp2).unwrap();
    assert_eq!(
        &resp2[..4],
        &2i32.to_be_bytes(),
        "bystander got its own correlation id"
    );
    kcat_roundtrip(&b, "steady", "after");
}

#[test]
fn unsupported_api_versions_version_is_answered_as_v0_with_error_35() {
    let b = Broker::start(&[]);
    let mut s = connect(&b);
    // ApiVersions v99 with a flexible-style header tail: the broker must still answer.
    s.write_all(&request(18, 99, 42, &[0])).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).unwrap();
    assert_eq!(&resp[..4], &42i32.to_be_bytes(), "correlation id");
    assert_eq!(&resp[4..6], &35i16.to_be_bytes(), "UNSUPPORTED_VERSION");
    let count = i32::from_be_bytes(resp[6..10].try_into().unwrap());
    assert!(count >= 10, "api key list filled in, got {count} entries");
    // v0 body: error_code, api_keys[count * 6 bytes], nothing else.
    assert_eq!(resp.len(), 4 + 2 + 4 + count as usize * 6);
    let d = chronik_tui::protocol::dissect_response(&[&len[..], &resp[..]].concat(), 18, 0);
    assert!(
        d.error.is_none(),
        "our dissector reads it as v0: {:?}",
        d.error
    );
}
