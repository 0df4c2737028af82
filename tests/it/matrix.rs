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
//! - The binary: `matrix --json` gives one object per cell and names clients not found; run
//!   from another directory it finds the clients through the checkout around its executable,
//!   run from outside the checkout through the one around the current directory; with no client
//!   to run it exits 1 with one line saying where it looked and how to install them.
//!
//! The clients are installed by scripts/test.sh; a missing one fails the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
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

/// `exe matrix ARGS` run in `cwd`, with `$CHRONIK_TUI_ROOT` set to `root_env` (unset when
/// `None`) and its log file in a tempdir.
fn run_matrix(exe: &Path, cwd: &Path, root_env: Option<&Path>, args: &[&str]) -> Output {
    let log = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(exe);
    cmd.current_dir(cwd)
        .env_remove(matrix::ROOT_ENV)
        .arg("--log-file")
        .arg(log.path().join("chronik-tui.log"))
        .arg("matrix")
        .args(args);
    if let Some(root) = root_env {
        cmd.env(matrix::ROOT_ENV, root);
    }
    cmd.output().expect("run chronik-tui matrix")
}

/// The one cell of a `--json` run of kafka-python-2 under `spec`, acked: the client was found.
fn one_cell_ok(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let mut cells: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(cells.len(), 1, "{stdout}\n{stderr}");
    let cell = cells.remove(0);
    assert_eq!(cell["client"], "kafka-python-2");
    assert_eq!(cell["mode"], "spec");
    assert_eq!(cell["outcome"], "ok", "{stdout}\n{stderr}");
    cell
}

/// The binary: `matrix --json` prints one object per cell on stdout and names the clients it
/// did not find on stderr; `--root` says where they are; the top-level flags still parse
/// without a subcommand.
#[test]
fn binary_json_and_missing_clients() {
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let out = run_matrix(
        Path::new(env!("CARGO_BIN_EXE_chronik-tui")),
        elsewhere.path(),
        None,
        &[
            "--json",
            "--clients",
            "kafka-python-2,no-such-client",
            "--modes",
            "spec",
            "--root",
            env!("CARGO_MANIFEST_DIR"),
        ],
    );
    let cell = one_cell_ok(&out);
    assert_eq!(cell["verdict"]["health"], "healthy", "{cell}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not found: no-such-client"),
        "stderr: {stderr}"
    );
    let help = Command::new(env!("CARGO_BIN_EXE_chronik-tui"))
        .args(["--headless", "--placement", "front", "--help"])
        .output()
        .expect("run chronik-tui --help");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("matrix"));
}

const ONE_CELL: [&str; 5] = ["--json", "--clients", "kafka-python-2", "--modes", "spec"];

/// A hard link to (or a copy of) the binary in `dir`.
fn binary_in(dir: &Path) -> PathBuf {
    let exe = dir.join("chronik-tui");
    let built = env!("CARGO_BIN_EXE_chronik-tui");
    std::fs::hard_link(built, &exe)
        .or_else(|_| std::fs::copy(built, &exe).map(drop))
        .expect("place the binary");
    exe
}

/// Run from a directory outside the checkout, the binary built in the checkout's target/ finds
/// the clients there. (When CARGO_TARGET_DIR builds it elsewhere, a link to it under target/
/// stands where `cargo build` puts it.)
#[test]
fn binary_in_the_checkout_finds_the_clients_from_another_directory() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Path::new(env!("CARGO_BIN_EXE_chronik-tui"));
    let linked = tempfile::tempdir_in(manifest.join("target")).expect("tempdir in target/");
    let exe = if built.starts_with(manifest) {
        built.to_path_buf()
    } else {
        binary_in(linked.path())
    };
    let elsewhere = tempfile::tempdir().expect("tempdir");
    one_cell_ok(&run_matrix(&exe, elsewhere.path(), None, &ONE_CELL));
}

/// A binary outside any checkout finds the clients through the current directory when that is
/// inside the checkout, and otherwise says where it looked and exits 1.
#[test]
fn binary_outside_the_checkout_finds_the_clients_from_the_current_directory() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let outside = tempfile::tempdir().expect("tempdir");
    let exe = binary_in(outside.path());
    let inside = manifest.join("tests/clients");
    one_cell_ok(&run_matrix(&exe, &inside, None, &ONE_CELL));

    let out = run_matrix(&exe, outside.path(), None, &ONE_CELL);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "chronik-tui matrix: no chronik-tui checkout to find the clients in: no --root, no \
             $CHRONIK_TUI_ROOT, and no directory holding {} or {} has tests/clients and \
             chronik-tui's Cargo.toml; pass --root DIR or set CHRONIK_TUI_ROOT=DIR\n",
            outside.path().display(),
            exe.display()
        )
    );
}

/// With no client under the root it is given (here by `$CHRONIK_TUI_ROOT`), `matrix` exits 1
/// with one line naming where it looked for each client and how to install them.
#[test]
fn no_client_to_run_exits_1_saying_where_it_looked() {
    let empty = tempfile::tempdir().expect("tempdir");
    let out = run_matrix(
        Path::new(env!("CARGO_BIN_EXE_chronik-tui")),
        empty.path(),
        Some(empty.path()),
        &["--clients", "kafka-python-2,rskafka", "--modes", "spec"],
    );
    let root = empty.path().display();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "chronik-tui matrix: no client could run: looked under {root} ($CHRONIK_TUI_ROOT): \
             kafka-python-2: {root}/target/venv-kp2/bin/python is missing; \
             rskafka: {root}/target/rust-client/debug/rskafka-client is missing; \
             install them with scripts/test.sh --install-only (in the chronik-tui repository)\n"
        )
    );
}
