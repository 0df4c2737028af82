//! `chronik-tui repro`: the shipped scenarios pass against the real clients, a false expectation
//! fails naming its step, and a broken file is refused with its line and column.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_chronik-tui");

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/scenarios")
}

fn repro(file: &Path, extra: &[&str]) -> Output {
    let logs = tempfile::tempdir().unwrap();
    Command::new(BIN)
        .arg("repro")
        .arg(file)
        .args(["--headless", "--log-file"])
        .arg(logs.path().join("log"))
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every scenario shipped in captures/scenarios/, each run as a test of its own below.
const SHIPPED: &[&str] = &[
    "coordinator-not-available.toml",
    "dropped-produce-response.toml",
    "large-throttle-time.toml",
    "throttle-time-first.toml",
    "unreachable-advertised-address.toml",
];

#[test]
fn every_shipped_scenario_has_its_test() {
    let mut on_disk: Vec<String> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = SHIPPED.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

/// Runs a shipped scenario; it must pass, every step and every expectation.
fn shipped(name: &str) {
    let out = repro(&scenarios_dir().join(name), &[]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{name} failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("PASS: "), "{stdout}");
    assert!(
        !stdout.contains(" FAIL ") && !stdout.contains(" SKIP "),
        "{stdout}"
    );
}

#[test]
fn throttle_time_first() {
    shipped("throttle-time-first.toml");
}

#[test]
fn coordinator_not_available() {
    shipped("coordinator-not-available.toml");
}

#[test]
fn dropped_produce_response() {
    shipped("dropped-produce-response.toml");
}

#[test]
fn large_throttle_time() {
    shipped("large-throttle-time.toml");
}

#[test]
fn unreachable_advertised_address() {
    shipped("unreachable-advertised-address.toml");
}

#[test]
fn a_false_expectation_fails_and_names_its_step() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("false.toml");
    std::fs::write(
        &file,
        r#"
name = "a metadata request that does not get what it expects"

[broker]
topics = [{ name = "orders" }]

[[step]]
name = "ApiVersions answers"
send = { api = "ApiVersions", version = 3, fields = { client_software_name = "t", client_software_version = "1" } }
expect.response = "api == ApiVersions && error == 0"

[[step]]
name = "Metadata names a topic that is not there"
send = { api = "Metadata", version = 1, fields = { topics = [{ name = "orders" }] } }
expect.response = "metadata.response.topics.name == payments"

[[step]]
name = "never run"
wait = "10ms"
"#,
    )
    .unwrap();
    let out = repro(&file, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[1].starts_with("step 1/3 PASS ApiVersions answers"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("step 2/3 FAIL Metadata names a topic that is not there")
            && lines[2].contains("NOT response metadata.response.topics.name == payments")
            && lines[2].contains("Metadata v1"),
        "{stdout}"
    );
    assert!(lines[3].starts_with("step 3/3 SKIP never run"), "{stdout}");
    assert!(lines[4].starts_with("FAIL: 1/3 steps passed"), "{stdout}");
    // The same as one JSON report.
    let out = repro(&file, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["steps"][1]["passed"], false);
    assert_eq!(report["steps"][1]["outcomes"][0]["held"], false);
    assert_eq!(report["steps"][2]["ran"], false);
}

#[test]
fn a_broken_file_is_refused_with_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        "name = \"x\"\n[[step]]\nwait = \"1s\"\nexpect.response = \"produce.response.throttle_ms > 0\"\n",
    )
    .unwrap();
    let out = repro(&file, &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(&format!(
            "chronik-tui: {}:4:20: unknown field `produce.response.throttle_ms`; did you mean",
            file.display()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
    assert!(out.stdout.is_empty());
    // --check reads and checks only.
    let good = scenarios_dir().join(SHIPPED[0]);
    let out = repro(&good, &["--check"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("is well-formed"));
}

/// A newcomer's path: the shipped capture of Chronik Stream 0.7.2's layout becomes a scenario
/// (`replay --save-scenario`); it passes against a broker with that layout, and with the layout
/// Apache Kafka uses it fails at the Produce step, naming the fields that moved.
#[test]
fn a_capture_saved_as_a_scenario_shows_the_step_where_the_bug_is() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.toml");
    let capture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/kafka-python-2-front.pcapng");
    let out = Command::new(BIN)
        .arg("replay")
        .arg(&capture)
        .args([
            "--kafka-port",
            "19093",
            "--placement",
            "front",
            "--save-scenario",
        ])
        .arg(&saved)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("{}: 5 steps from {}", saved.display(), capture.display())
    );
    // The capture holds the ApiVersions list of the broker that recorded it, which grows with
    // every API served since: the ApiVersions step ignores it (the scenario's own edit).
    let toml = std::fs::read_to_string(&saved).unwrap();
    let step = toml
        .find("name = \"conn 1 ApiVersions v0 corr 1\"")
        .expect("the ApiVersions step");
    let line_end = step
        + toml[step..]
            .find("expect.recorded")
            .and_then(|at| toml[step + at..].find('\n').map(|n| at + n))
            .expect("its recorded response");
    let toml = format!(
        "{}\nexpect.ignore = [\"api_versions.response.api_keys\"]{}",
        &toml[..line_end],
        &toml[line_end..]
    );
    std::fs::write(&saved, &toml).unwrap();
    let out = repro(&saved, &[]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    // The same requests against Apache Kafka's layout: the Produce step is where they differ.
    assert!(toml.contains("\nplacement = \"front\"\n"), "{toml}");
    let spec = dir.path().join("spec.toml");
    std::fs::write(
        &spec,
        toml.replace("\nplacement = \"front\"\n", "\nplacement = \"spec\"\n"),
    )
    .unwrap();
    let out = repro(&spec, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    for l in &lines[1..5] {
        assert!(l.contains(" PASS "), "{stdout}");
    }
    assert!(
        lines[5].starts_with("step 5/5 FAIL conn 2 Produce v7 corr 2")
            && lines[5].contains("produce.response.throttle_time_ms 1 -> 0"),
        "{stdout}"
    );
}
