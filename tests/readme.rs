//! The README's claims about the program, checked against the program: the supported-API table
//! against what the broker advertises in ApiVersions, the command-line table against `--help`.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

const README: &str = include_str!("../README.md");

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
    let out = Command::new(env!("CARGO_BIN_EXE_chronik-tui"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let section = README.split("## Command line").nth(1).expect("section");
    let section = section.split("\n## ").next().unwrap();
    let mut flags = 0;
    for word in section.split(|c: char| c.is_whitespace() || c == '`' || c == '|' || c == '/') {
        if word.starts_with("--") && word[2..].starts_with(|c: char| c.is_ascii_lowercase()) {
            assert!(
                help.contains(word),
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
