//! The compatibility matrix with real clients (kafka-python 3.x, kafka-python 2.0.2,
//! confluent-kafka) against the embedded broker in every throttle placement mode, through the
//! library function `chronik-tui matrix` uses.
//!
//! - Under `spec` every client gets its ack (with an offset), and the stall detector calls the
//!   connection healthy.
//! - Under `front` and `omit`, whatever the client reports (ack, its own timeout, its own parse
//!   error), the stall detector's verdict must be the broker-side view of the same thing
//!   (`matrix::agrees`); no verdict is written down here.
//! - The same with Produce capped at v8, so that clients that would use a flexible version
//!   (where `front` is encoded as `spec`) meet the misplaced field too.
//! - The binary: `matrix --json` gives one object per cell and names clients not found.
//!
//! The clients are installed by scripts/test.sh; a missing one fails the test.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chronik_tui::diagnose::Health;
use chronik_tui::matrix::{self, Matrix, MatrixOptions, Outcome};
use chronik_tui::settings::ThrottlePlacement;

const CLIENTS: [&str; 3] = ["kafka-python", "kafka-python-2", "confluent"];

fn options(modes: &[ThrottlePlacement], caps: &[(i16, i16)]) -> MatrixOptions {
    MatrixOptions {
        root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        timeout: Duration::from_secs(15),
        clients: Some(CLIENTS.iter().map(|c| c.to_string()).collect()),
        modes: modes.to_vec(),
        jobs: 2,
        listen: None,
        caps: caps.iter().copied().collect::<BTreeMap<_, _>>(),
    }
}

fn describe(m: &Matrix) -> String {
    format!(
        "{}\n{}",
        matrix::render_table(m),
        m.cells
            .iter()
            .map(|c| serde_json::to_string(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// Checks one run; returns how many non-spec cells had a response encoded with the field out
/// of place and how many of those the client did not take as a clean ack.
fn check(m: &Matrix) -> (usize, usize) {
    let all = describe(m);
    assert!(
        m.missing.is_empty(),
        "clients not installed (run scripts/test.sh): {:?}",
        m.missing
    );
    assert_eq!(m.cells.len(), CLIENTS.len() * m.modes.len(), "{all}");
    let (mut misplaced, mut not_ok) = (0, 0);
    for cell in &m.cells {
        let what = format!("{} / {}", cell.client, cell.mode);
        assert!(
            cell.broker.produce_requests >= 1,
            "{what}: no Produce reached the broker\n{all}"
        );
        assert!(
            cell.broker.api_versions.contains_key("Produce"),
            "{what}: no Produce version recorded\n{all}"
        );
        if cell.mode == ThrottlePlacement::Spec {
            assert_eq!(cell.outcome, Outcome::Ok, "{what}: no ack\n{all}");
            assert_eq!(
                cell.acked_offset,
                Some(0),
                "{what}: ack without offset 0\n{all}"
            );
            assert!(cell.ack_ms.is_some(), "{what}: no ack latency\n{all}");
            assert_eq!(cell.verdict.health, Health::Healthy, "{what}\n{all}");
            continue;
        }
        assert!(
            cell.agrees,
            "{what}: the client reported {:?} ({:?}) but the stall detector says {}\n{all}",
            cell.outcome, cell.message, cell.verdict.health
        );
        if cell.verdict.health != Health::Healthy {
            assert!(
                !cell.verdict.changes.is_empty(),
                "{what}: a verdict without evidence\n{all}"
            );
        }
        if cell.outcome != Outcome::Ok {
            assert!(
                cell.message.as_deref().is_some_and(|m| !m.is_empty()),
                "{what}: no message from the client\n{all}"
            );
        }
        // The broker notes a placement that is not the spec's on the exchange.
        let noted = cell.broker.produce_notes.iter().any(|n| {
            n.starts_with("throttle_time_ms placement: ")
                && !n.starts_with("throttle_time_ms placement: spec")
        });
        if noted {
            misplaced += 1;
            if cell.outcome != Outcome::Ok {
                not_ok += 1;
            }
        }
    }
    (misplaced, not_ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_client_and_detector_agree() {
    let m = matrix::run(&options(&ThrottlePlacement::ALL, &[]))
        .await
        .expect("matrix");
    let (misplaced, not_ok) = check(&m);
    // Guard against a vacuous pass: the modes must have changed the bytes, and changed bytes
    // must have hurt at least one of these clients.
    assert!(
        misplaced > 0,
        "no response was encoded out of place\n{}",
        describe(&m)
    );
    assert!(
        not_ok > 0,
        "every client acked a misplaced field\n{}",
        describe(&m)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_capped_at_v8_front_client_and_detector_agree() {
    let m = matrix::run(&options(&[ThrottlePlacement::Front], &[(0, 8)]))
        .await
        .expect("matrix");
    check(&m);
    for cell in &m.cells {
        let v = &cell.broker.api_versions["Produce"];
        assert!(
            v.iter().all(|v| *v <= 8),
            "{}: Produce {v:?} above the cap\n{}",
            cell.client,
            describe(&m)
        );
    }
}

/// The binary: `matrix --json` prints one object per cell on stdout and names the clients it
/// did not find on stderr; the top-level flags still parse without a subcommand.
#[test]
fn binary_json_and_missing_clients() {
    let log = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chronik-tui"))
        .arg("--log-file")
        .arg(log.path().join("chronik-tui.log"))
        .args([
            "matrix",
            "--json",
            "--clients",
            "kafka-python-2,no-such-client",
            "--modes",
            "spec",
            "--root",
            env!("CARGO_MANIFEST_DIR"),
        ])
        .output()
        .expect("run chronik-tui matrix");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let cells: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(cells.len(), 1, "{stdout}");
    assert_eq!(cells[0]["client"], "kafka-python-2");
    assert_eq!(cells[0]["mode"], "spec");
    assert_eq!(cells[0]["outcome"], "ok", "{stdout}");
    assert_eq!(cells[0]["verdict"]["health"], "healthy", "{stdout}");
    assert!(
        stderr.contains("not found: no-such-client"),
        "stderr: {stderr}"
    );
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_chronik-tui"))
        .args(["--headless", "--placement", "front", "--help"])
        .output()
        .expect("run chronik-tui --help");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("matrix"));
}
