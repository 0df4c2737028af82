//! Reading and checking scenario files: what is accepted, and where a mistake is reported.

use std::path::Path;
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Scenario, String> {
    Scenario::parse(Path::new("s.toml"), text).map_err(|e| e.to_string())
}

const GOOD: &str = r#"
name = "a scenario"

[broker]
placement = "front"
throttle_ms = 7
rules = ["client_id=app:omit"]
caps = ["produce=8"]
topics = [{ name = "orders", partitions = 2 }]
stall = { silence = "3s" }

[[step]]
client = "kafka-python-2"
action = "produce"
count = 2
timeout = "20s"
expect.outcome = "stalled"
expect.message = "Timeout"
expect.response = "api == Produce"
expect.health = { client = "kafka-python*", state = "stalled", within = "10s" }

[[step]]
set = ["placement spec", "throttle 0"]

[[step]]
send = { conn = "a", api = "Metadata", version = 1, fields = { topics = [{ name = "orders" }] } }
expect.response = "metadata.response.topics.name == orders"

[[step]]
send = { api = "ApiVersions", version = 0, hex = "0012 0000 0000 0009 ffff" }

[[step]]
wait = "250ms"
expect.malformed = false
"#;

#[test]
fn a_whole_scenario_is_read_and_checked() {
    let s = parse(GOOD).unwrap();
    assert_eq!(s.name, "a scenario");
    assert_eq!(
        s.setup,
        [
            "placement front",
            "throttle 7",
            "rule add client_id=app:omit",
            "cap produce=8"
        ]
    );
    assert_eq!(s.topics, [("orders".to_string(), 2)]);
    assert_eq!(s.stall.silence, Duration::from_secs(3));
    assert_eq!(s.steps.len(), 5);
    let Action::Client(c) = &s.steps[0].action else {
        panic!("a client step");
    };
    assert_eq!((c.count, c.timeout), (2, Duration::from_secs(20)));
    assert!(matches!(c.program, Program::Known(k) if k.name == "kafka-python-2"));
    let expected: Vec<String> = s.steps[0]
        .expect
        .iter()
        .map(Expectation::describe)
        .collect();
    assert_eq!(
        expected,
        [
            "outcome stalled",
            "message ~ /Timeout/",
            "response api == Produce",
            "health stalled for kafka-python* within 10.0 s"
        ]
    );
    assert!(matches!(&s.steps[1].action, Action::Set(l) if l.len() == 2));
    let Action::Send(send) = &s.steps[2].action else {
        panic!("a send step");
    };
    assert_eq!(
        (send.api_key, send.version, send.conn.as_str()),
        (3, 1, "a")
    );
    let Action::Send(raw) = &s.steps[3].action else {
        panic!("a send step");
    };
    assert!(matches!(&raw.body, SendBody::Hex(b) if b.len() == 10));
    assert!(matches!(s.steps[4].action, Action::Wait(d) if d == Duration::from_millis(250)));
}

#[test]
fn mistakes_are_named_with_their_line_and_column() {
    let cases: &[(&str, &str)] = &[
        // TOML itself.
        ("name = \"x\"\n[[step]\n", "s.toml:2:8: unclosed array table, expected `]`"),
        // A key the format does not have.
        (
            "name = \"x\"\n[[step]]\nclinet = \"kcat\"\n",
            "s.toml:3:1: unknown field `clinet`",
        ),
        // A display-filter name the registry does not know: its closest names.
        (
            "name = \"x\"\n[[step]]\nwait = \"1s\"\nexpect.response = \"produce.response.throttle_ms > 0\"\n",
            "s.toml:4:20: unknown field `produce.response.throttle_ms`; did you mean",
        ),
        (
            "name = \"x\"\n[[step]]\nclient = \"kafka-pyton\"\n",
            "s.toml:3:11: unknown client \"kafka-pyton\" (known: kafka-python, kafka-python-2,",
        ),
        (
            "name = \"x\"\n[[step]]\nwait = \"soon\"\n",
            "s.toml:3:9: \"soon\" is not a duration (e.g. 500ms, 15s, 2m)",
        ),
        (
            "name = \"x\"\n[broker]\nplacement = \"sideways\"\n[[step]]\nwait = \"1s\"\n",
            "s.toml:3:14: placement: unknown placement \"sideways\": expected spec, front or omit",
        ),
        (
            "name = \"x\"\n[[step]]\nset = [\"cap produce=x\"]\n",
            "s.toml:3:9: bad cap",
        ),
        (
            "name = \"x\"\n[[step]]\nwait = \"1s\"\nexpect.outcome = \"ok\"\n",
            "s.toml:4:19: outcome is expected of a client step",
        ),
        (
            "name = \"x\"\n[[step]]\nwait = \"1s\"\nset = [\"placement spec\"]\n",
            "a step does one thing",
        ),
        (
            "name = \"x\"\n[[step]]\nsend = { api = \"Metadata\", version = 1, fields = { topic = 1 } }\n",
            "Metadata v1 has no field \"topic\"; did you mean \"topics\"?",
        ),
        (
            "name = \"x\"\n[[step]]\nsend = { api = \"Metadata\", version = 99 }\n",
            "s.toml:3:8: Metadata has versions 0-13, not 99",
        ),
        ("name = \"x\"\n", "s.toml:2:1: a scenario needs at least one [[step]]"),
        (
            "name = \"x\"\n[[step]]\nwait = \"1s\"\nexpect.lint = \"misplaced\"\n",
            "s.toml:4:15: unknown lint code \"misplaced\"; the codes: field-misplaced, field-missing,",
        ),
        (
            "name = \"x\"\n[[step]]\nwait = \"1s\"\nexpect.lint = { level = \"error\" }\n",
            "lint takes code = \"CODE\", message = \"REGEX\" and absent = true|false, not level = \"error\"",
        ),
    ];
    for (text, want) in cases {
        let got = parse(text)
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"));
        assert!(got.contains(want), "{text:?}\n got: {got}\nwant: {want}");
        assert_eq!(got.lines().count(), 1, "{got}");
    }
}

#[test]
fn durations_and_hex() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("-1s").is_err());
    assert!(parse_duration("2d").is_err());
    assert_eq!(hex("00 0a:FF\n10"), Ok(vec![0, 10, 255, 16]));
    assert_eq!(hex("abc"), Err("an odd number of hex digits".into()));
    assert_eq!(hex("zz"), Err("\"zz\" is not hex".into()));
}

#[test]
fn line_and_column_count_characters() {
    assert_eq!(line_col("ab\ncdé\nf", 0), (1, 1));
    assert_eq!(line_col("ab\ncdé\nf", 3), (2, 1));
    assert_eq!(line_col("ab\ncdé\nf", 8), (3, 1));
    assert_eq!(line_col("ab\ncdé\nf", 7), (2, 4));
}

#[test]
fn lint_expectations_read_as_a_code_a_table_or_a_boolean() {
    let text = "name = \"x\"\n\
        [[step]]\nwait = \"1s\"\nexpect.lint = \"field-missing\"\n\
        [[step]]\nwait = \"1s\"\nexpect.lint = { code = \"trailing-bytes\", message = \"ApiVersions\" }\n\
        [[step]]\nwait = \"1s\"\nexpect.lint = { message = \"throttle\", absent = true }\n\
        [[step]]\nwait = \"1s\"\nexpect.lint = false\n\
        [[step]]\nwait = \"1s\"\nexpect.lint = true\n";
    let s = parse(text).unwrap();
    let described: Vec<String> = s.steps.iter().map(|st| st.expect[0].describe()).collect();
    assert_eq!(
        described,
        [
            "lint field-missing",
            "lint trailing-bytes ~ /ApiVersions/",
            "no lint finding ~ /throttle/",
            "no lint finding at warning or worse",
            "a lint finding at warning or worse",
        ]
    );
}
