//! `replay CAPTURE --save-scenario FILE`: a capture turned into a scenario to edit: the topics
//! the session implies existed, then one step per request the capture holds, in the order they
//! were sent, each sent again as it was (hex) and expecting the response the capture holds, field
//! by field outside the replay's ignore list.

use std::fmt::Write as _;
use std::path::Path;

use super::load::{self, Capture};
use crate::capture::render::hex;
use crate::capture::{Framing, Status};
use crate::protocol::registry;

/// TOML's quoted form of a string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The scenario's text for a capture read from `source`; `setup` holds the broker settings
/// (control-command words as the scenario format takes them: `placement = "front"` ...).
pub fn scenario_text(source: &Path, capture: &Capture, setup: &[(String, String)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Made by `chronik-tui replay {} --save-scenario`: every request the capture holds, sent",
        source.display()
    );
    let _ = writeln!(
        s,
        "# again in the order it was sent, each expecting the response the capture holds (field by"
    );
    let _ = writeln!(
        s,
        "# field, outside replay's ignore list; `ignore = [...]` adds names). Steps run one at a"
    );
    let _ = writeln!(
        s,
        "# time: a request that waits for another connection (a group join of several members)"
    );
    let _ = writeln!(s, "# needs `chronik-tui replay`, or editing. Edit freely.");
    let _ = writeln!(
        s,
        "name = {}",
        quoted(&format!("replay of {}", source.display()))
    );
    let _ = writeln!(s, "\n[broker]");
    for (k, v) in setup {
        let _ = writeln!(s, "{k} = {v}");
    }
    let topics = load::topics(capture);
    if !topics.is_empty() {
        let list: Vec<String> = topics
            .iter()
            .map(|(name, t)| {
                format!(
                    "{{ name = {}, partitions = {} }}",
                    quoted(name),
                    t.partitions.max(1)
                )
            })
            .collect();
        let _ = writeln!(s, "topics = [{}]", list.join(", "));
    }
    // Every request, in the order the capture saw them sent.
    for i in capture.requests_in_order() {
        let ex = &capture.exchanges[i];
        let name = registry::api_name(ex.api_key);
        let _ = writeln!(s, "\n[[step]]");
        let _ = writeln!(
            s,
            "name = {}",
            quoted(&format!(
                "conn {} {name} v{} corr {}",
                ex.conn, ex.api_version, ex.correlation_id
            ))
        );
        // Header and body, without the size prefix (the runner adds it).
        let body = ex.request().get(4..).unwrap_or_default();
        if ex.framing == Framing::SaslToken || registry::api(ex.api_key).is_none() {
            let _ = writeln!(
                s,
                "# a bare SASL token or an API without a schema: sent as a {name} v{} request of these bytes",
                ex.api_version
            );
        }
        let _ = writeln!(
            s,
            "send = {{ conn = {}, api = {}, version = {}, correlation_id = {}, hex = {} }}",
            quoted(&format!("c{}", ex.conn)),
            quoted(&name),
            ex.api_version,
            ex.correlation_id,
            quoted(&hex(body))
        );
        match (&ex.status, &ex.response()) {
            (Status::Answered, Some(resp)) => {
                let _ = writeln!(s, "expect.recorded = {}", quoted(&hex(resp)));
            }
            (status, _) => {
                let _ = writeln!(
                    s,
                    "# the capture holds no response to this request ({status:?})"
                );
            }
        }
    }
    s
}
