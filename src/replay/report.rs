//! What a replay prints: one line (or JSON object) per exchange of the capture, in the order
//! `decode` lists them, each saying whether the live response was the same and if not, which
//! fields differ; then a summary.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;

use super::{Outcome, Replayed};
use crate::protocol::diff::{Diff, Difference};

/// Counts over the whole replay.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub exchanges: usize,
    /// Answered alike (or both without an answer, alike).
    pub same: usize,
    /// With differences outside the ignore list.
    pub differ: usize,
    /// Not compared (no request in the capture, unanswered in the capture).
    pub skipped: usize,
    /// Differing fields, counted and ignored.
    pub fields: usize,
    pub ignored_fields: usize,
}

/// Prints results in the capture's order as they complete.
pub struct Printer<W: Write> {
    out: W,
    json: bool,
    next: usize,
    waiting: BTreeMap<usize, Replayed>,
    pub tally: Tally,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, json: bool) -> Self {
        Printer {
            out,
            json,
            next: 0,
            waiting: BTreeMap::new(),
            tally: Tally::default(),
        }
    }

    /// Takes one result; prints it and whatever it let through.
    pub fn push(&mut self, r: Replayed) -> std::io::Result<()> {
        self.waiting.insert(r.index, r);
        while let Some(r) = self.waiting.remove(&self.next) {
            self.tally.add(&r);
            let text = if self.json {
                exchange_json(&r).to_string()
            } else {
                line(&r)
            };
            writeln!(self.out, "{text}")?;
            self.next += 1;
        }
        self.out.flush()
    }
}

impl Tally {
    /// Counts one result.
    pub fn add(&mut self, r: &Replayed) {
        self.exchanges += 1;
        match &r.outcome {
            Outcome::Compared(d) => {
                let counted = d.counted().count();
                self.fields += counted;
                self.ignored_fields += d.differences.len() - counted;
                if d.is_same() {
                    self.same += 1;
                } else {
                    self.differ += 1;
                }
            }
            Outcome::Alike(_) => self.same += 1,
            Outcome::Differs { .. } => self.differ += 1,
            Outcome::Skipped(_) => self.skipped += 1,
        }
    }
}

/// The summary: a line, or a `"kind":"summary"` JSON object. `against` names the broker.
pub fn summary(t: &Tally, against: &str, connections: usize, json: bool) -> String {
    if json {
        return json!({
            "kind": "summary",
            "against": against,
            "exchanges": t.exchanges,
            "connections": connections,
            "same": t.same,
            "differ": t.differ,
            "not_compared": t.skipped,
            "fields": t.fields,
            "ignored_fields": t.ignored_fields,
        })
        .to_string();
    }
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut s = format!(
        "replayed {} on {} against {against}: {} same, {} with differences ({})",
        plural(t.exchanges, "exchange"),
        plural(connections, "connection"),
        t.same,
        t.differ,
        plural(t.fields, "field"),
    );
    if t.ignored_fields > 0 {
        s.push_str(&format!(", {} ignored", plural(t.ignored_fields, "field")));
    }
    if t.skipped > 0 {
        s.push_str(&format!(", {} not compared", t.skipped));
    }
    s
}

/// `#5 conn=2 Produce v7 corr=2`.
fn head(r: &Replayed) -> String {
    r.exchange.label()
}

fn decode_text(e: &Option<crate::protocol::DecodeError>) -> String {
    e.as_ref().map_or("decodes".into(), |e| e.to_string())
}

/// What a compared exchange says: its counted differences, `; `-separated, or `same`; and how
/// many ignored fields differed.
fn compared_text(d: &Diff) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some((old, new)) = &d.decode {
        parts.push(format!(
            "response decoding: {} -> {}",
            decode_text(old),
            decode_text(new)
        ));
    }
    parts.extend(d.counted().map(Difference::describe));
    let ignored = d.differences.iter().filter(|x| x.ignored).count();
    let mut s = if parts.is_empty() {
        "same".to_string()
    } else {
        parts.join("; ")
    };
    if ignored > 0 {
        s.push_str(&format!(" ({ignored} ignored)"));
    }
    s
}

/// One exchange as a line: `#5 conn=2 Produce v7 corr=2: same`, or its differences.
pub fn line(r: &Replayed) -> String {
    let what = match &r.outcome {
        Outcome::Compared(d) => compared_text(d),
        Outcome::Alike(how) => format!("same ({how})"),
        Outcome::Differs { recorded, live } => format!("recorded: {recorded}; live: {live}"),
        Outcome::Skipped(why) => format!("not compared: {why}"),
    };
    format!("{}: {what}", head(r))
}

/// One exchange as a JSON object (`"kind":"exchange"`).
pub fn exchange_json(r: &Replayed) -> serde_json::Value {
    let ex = &r.exchange;
    let mut v = json!({
        "kind": "exchange",
        "id": ex.id,
        "conn": ex.conn,
        "api_key": ex.api_key,
        "api_version": ex.api_version,
        "api": ex.api_label(),
        "correlation_id": ex.correlation_id,
    });
    match &r.outcome {
        Outcome::Compared(d) => {
            v["result"] = json!(if d.is_same() { "same" } else { "differs" });
            v["differences"] = json!(d.counted().collect::<Vec<_>>());
            v["ignored"] = json!(d
                .differences
                .iter()
                .filter(|x| x.ignored)
                .collect::<Vec<_>>());
            if let Some((old, new)) = &d.decode {
                v["decode"] = json!({ "recorded": old, "live": new });
            }
        }
        Outcome::Alike(how) => {
            v["result"] = json!("same");
            v["how"] = json!(how);
        }
        Outcome::Differs { recorded, live } => {
            v["result"] = json!("differs");
            v["recorded"] = json!(recorded);
            v["live"] = json!(live);
        }
        Outcome::Skipped(why) => {
            v["result"] = json!("not_compared");
            v["why"] = json!(why);
        }
    }
    v
}
