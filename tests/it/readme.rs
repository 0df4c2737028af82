//! The README's claims about the program, checked against the program: the supported-API table
//! against what the broker advertises in ApiVersions, the command-line table against `--help`.

use crate::common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

const README: &str = include_str!("../../README.md");

/// Rows `| key | Name | lo–hi | … |` of the README's supported-API table.
fn readme_api_table() -> BTreeMap<i16, (String, i16, i16)> {
    let section = README
        .split("## Supported APIs")
        .nth(1)
        .expect("a Supported APIs section");
    let mut rows = BTreeMap::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 5 {
            continue;
        }
        let (Ok(key), Some((lo, hi))) = (cells[1].parse::<i16>(), cells[3].split_once('–'))
        else {
            continue;
        };
        rows.insert(
            key,
            (
                cells[2].to_string(),
                lo.parse().expect("min"),
                hi.parse().expect("max"),
            ),
        );
    }
    rows
}

#[test]
fn supported_api_table_matches_api_versions() {
    let b = common::Broker::start(&[]);
    let mut s = TcpStream::connect(b.addr).unwrap();
    let mut req = Vec::new();
    req.extend_from_slice(&18i16.to_be_bytes());
    req.extend_from_slice(&0i16.to_be_bytes());
    req.extend_from_slice(&9i32.to_be_bytes());
    req.extend_from_slice(&(-1i16).to_be_bytes());
    s.write_all(&(req.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&req).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).unwrap();
    let n = i32::from_be_bytes(resp[6..10].try_into().unwrap()) as usize;
    let mut advertised = BTreeMap::new();
    for i in 0..n {
        let e = &resp[10 + 6 * i..16 + 6 * i];
        let v = |j: usize| i16::from_be_bytes([e[j], e[j + 1]]);
        advertised.insert(v(0), (v(2), v(4)));
    }
    let table = readme_api_table();
    let claimed: BTreeMap<i16, (i16, i16)> = table
        .iter()
        .map(|(k, (_, lo, hi))| (*k, (*lo, *hi)))
        .collect();
    assert_eq!(claimed, advertised, "README table vs ApiVersions");
    for (key, (name, _, _)) in &table {
        assert_eq!(
            name,
            &chronik_tui::protocol::registry::api_name(*key),
            "name of key {key}"
        );
    }
}

#[test]
fn command_line_table_matches_help() {
    let help_of = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_chronik-tui"))
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let help = help_of(&[]);
    // The section names the subcommands' flags too.
    let any_help = ["decode", "matrix", "repro", "replay"]
        .iter()
        .fold(help.clone(), |all, sub| all + &help_of(&[sub]));
    let section = README.split("## Command line").nth(1).expect("section");
    let section = section.split("\n## ").next().unwrap();
    let mut flags = 0;
    for word in section.split(|c: char| c.is_whitespace() || c == '`' || c == '|' || c == '/') {
        if word.starts_with("--") && word[2..].starts_with(|c: char| c.is_ascii_lowercase()) {
            assert!(
                any_help.contains(word),
                "README mentions {word}, --help does not"
            );
            flags += 1;
        }
    }
    assert!(flags >= 10, "only {flags} flags found in the README table");
    // And the other way: every long flag --help lists is in the README.
    for word in help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']') {
        let word = word.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        if word.starts_with("--") && word[2..].starts_with(|c: char| c.is_ascii_lowercase()) {
            assert!(
                section.contains(&format!("`{word}")),
                "--help lists {word}, the README's Command line section does not"
            );
        }
    }
}

/// The commands of the README's `decode` examples (the sh block after "`decode` follows
/// tshark's conventions"), comments dropped.
fn decode_examples() -> Vec<String> {
    let section = README
        .split("`decode` follows tshark's conventions")
        .nth(1)
        .expect("the decode examples");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("an sh block");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// `sh -c LINE` in the repository, with the binary under test first on PATH as `chronik-tui`.
fn shell(line: &str) -> Command {
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_chronik-tui"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("sh");
    c.args(["-c", line])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", path);
    c
}

#[test]
fn decode_examples_run_as_written() {
    let examples = decode_examples();
    assert!(examples.len() >= 4, "{examples:?}");
    let mut live = 0;
    for line in &examples {
        assert!(line.starts_with("chronik-tui ") || line.contains("| chronik-tui "));
        if line.contains("--listen 9092") {
            live += 1;
            run_live_example(line);
            continue;
        }
        let out = shell(line).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.trim().is_empty(), "{line} printed nothing");
        if line.contains("-Y 'api == Produce' -c 1") {
            assert_eq!(stdout.lines().count(), 1, "{stdout}");
            assert!(stdout.contains(" Produce v7 "), "{stdout}");
        }
        if line.contains("--fields time,api,corr,produce.response.throttle_time_ms") {
            for row in stdout.lines() {
                assert_eq!(row.split('\t').count(), 4, "{row:?}");
            }
            assert!(stdout.contains("\tProduce\t2\t0"), "{stdout}");
        }
    }
    assert_eq!(live, 1, "one example streams a live session");
}

/// `chronik-tui --headless --listen 9092 --record - | tshark ...` on a free port: a kcat
/// message produced, the broker stopped with SIGTERM, tshark shows the session's Kafka PDUs.
fn run_live_example(line: &str) {
    if !common::have("tshark") {
        panic!("tshark is not installed (scripts/test.sh installs it)");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let line = line.replace("9092", &port.to_string());
    let sh = shell(&line)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{line}: nothing listens"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    common::kcat(
        &["-b", &addr.to_string(), "-P", "-t", "readme"],
        Some("hello\n"),
    );
    let stopped = Command::new("pkill")
        .args(["-TERM", "-P", &sh.id().to_string(), "-x", "chronik-tui"])
        .status()
        .unwrap();
    assert!(stopped.success(), "chronik-tui found under the shell");
    let out = sh.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for pdu in ["Kafka ApiVersions", "Kafka Produce"] {
        assert!(
            shown.contains(pdu),
            "{line}: tshark shows no {pdu}:\n{shown}"
        );
    }
    // The exchange lines went to stderr, not into the pcapng stream.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(" Produce v"),
        "the headless lines are on stderr"
    );
}
