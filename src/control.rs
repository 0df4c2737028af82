//! The control language: short commands that change the shared settings while the broker runs
//! (the same words the terminal UI uses), and the headless control input that reads them from
//! stdin, one a line.
//!
//! Commands:
//!
//! | command | does |
//! |---|---|
//! | `placement` | shows the global throttle_time_ms placement |
//! | `placement spec\|front\|omit` | sets it |
//! | `rule add RULE` | appends a per-client rule (`software=kafka-python*:front`) |
//! | `rule del N` | removes rule N (numbered from 1, as `rules` shows them) |
//! | `rule clear` | removes every rule |
//! | `rules` | lists the rules |
//! | `throttle N` | sets the injected throttle_time_ms (`throttle` alone shows it) |
//! | `cap API=N` | caps the version ApiVersions advertises for API (new connections) |
//! | `cap clear [API]` | removes one cap, or all |
//! | `caps` | lists the caps |
//! | `mutate add RULE` | appends a response mutation (`api=produce:omit produce.response.throttle_time_ms`) |
//! | `mutate del N` / `mutate clear` | removes mutation N, or all |
//! | `mutations` | lists the mutations |
//! | `fault add RULE` | appends a fault (`api=metadata:delay 200ms`) |
//! | `fault del N` / `fault clear` | removes fault N, or all |
//! | `faults` | lists the faults |
//! | `clients` | what is known of each connected client |
//! | `help` | this list |
//!
//! Command words and enumerated values are case-insensitive (`Placement FRONT`, `Cap
//! Produce=8`); what is matched against clients (the globs of a rule) keeps its case. Blank
//! lines and lines starting with `#` are ignored. Parsing ([`parse`]) is pure; a [`Control`]
//! applies a command to the settings and says what it did.

use std::sync::Arc;

use serde_json::json;
use tokio::io::AsyncBufReadExt;

use crate::settings::{
    api_key_by_name, api_snake_name, FaultRule, Knobs, MutationRule, Settings, ThrottlePlacement,
    ThrottleRule, VersionCap,
};

/// A change to one of the settings' lists of rules: `WORD add RULE`, `WORD del N` (1-based, as
/// the list shows them), `WORD clear`.
#[derive(Debug, Clone, PartialEq)]
pub enum ListOp<T> {
    Add(T),
    Del(usize),
    Clear,
}

/// One command of the control language.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `placement` (None: show) or `placement MODE`.
    Placement(Option<ThrottlePlacement>),
    /// `rule add RULE`, `rule del N`, `rule clear`: per-client placement rules.
    Rule(ListOp<ThrottleRule>),
    /// `rules`.
    Rules,
    /// `mutate add RULE`, `mutate del N`, `mutate clear`: response mutations.
    Mutate(ListOp<MutationRule>),
    /// `mutations`.
    Mutations,
    /// `fault add RULE`, `fault del N`, `fault clear`: faults.
    Fault(ListOp<FaultRule>),
    /// `faults`.
    Faults,
    /// `throttle` (None: show) or `throttle N`.
    Throttle(Option<i32>),
    /// `cap API=N`.
    Cap(VersionCap),
    /// `cap clear` (None: all) or `cap clear API`.
    CapClear(Option<i16>),
    /// `caps`.
    Caps,
    /// `clients`.
    Clients,
    /// `help`.
    Help,
}

/// The command summary `help` prints.
pub const HELP: &str = "commands: placement [spec|front|omit] | rule add RULE | rule del N | \
rule clear | rules | throttle [N] | cap API=N | cap clear [API] | caps | mutate add RULE | \
mutate del N | mutate clear | mutations | fault add RULE | fault del N | fault clear | faults | \
clients | help (placement RULE: client_id=GLOB,software=GLOB,version=GLOB:MODE, e.g. \
software=kafka-python*:front; mutate and fault RULE: [MATCH:] ACTION, MATCH api=NAME, \
versions=A-B, client_id=GLOB, software=GLOB, version=GLOB, e.g. mutate add api=produce:omit \
produce.response.throttle_time_ms, fault add api=metadata:delay 200ms)";

/// Parses `add RULE`, `del N` or `clear` after the command word `word`; `list` is the command
/// that lists them, `example` a rule to show.
fn list_op<T: std::str::FromStr<Err = String>>(
    word: &str,
    rest: &str,
    list: &str,
    example: &str,
) -> Result<ListOp<T>, String> {
    let (sub, arg) = match rest.split_once(char::is_whitespace) {
        Some((s, a)) => (s, a.trim()),
        None => (rest, ""),
    };
    match (sub.to_ascii_lowercase().as_str(), arg.is_empty()) {
        ("add", false) => arg.parse().map(ListOp::Add),
        ("add", true) => Err(format!(
            "{word} add needs a rule, e.g. {word} add {example}"
        )),
        ("del" | "delete" | "rm", _) => arg
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .map(ListOp::Del)
            .ok_or_else(|| {
                format!("{word} del needs a rule number from 1 (see {list}), got {arg:?}")
            }),
        ("clear", true) => Ok(ListOp::Clear),
        ("clear", false) => Err(format!("{word} clear takes no arguments (got {arg:?})")),
        _ => Err(format!(
            "{word}: expected add RULE, del N or clear, got {rest:?}"
        )),
    }
}

/// Parses one input line: `Ok(None)` for a blank line or a `#` comment, an error that says
/// what was expected for anything else that is not a command.
pub fn parse(line: &str) -> Result<Option<Command>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (word, rest) = match line.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (line, ""),
    };
    let no_args = |cmd: Command| {
        if rest.is_empty() {
            Ok(Some(cmd))
        } else {
            Err(format!("{word} takes no arguments (got {rest:?})"))
        }
    };
    match word.to_ascii_lowercase().as_str() {
        "placement" => {
            if rest.is_empty() {
                Ok(Some(Command::Placement(None)))
            } else {
                rest.parse()
                    .map(|p| Some(Command::Placement(Some(p))))
                    .map_err(|e: String| format!("placement: {e}"))
            }
        }
        "rule" => list_op("rule", rest, "rules", "software=kafka-python*:front")
            .map(|op| Some(Command::Rule(op))),
        "mutate" => list_op(
            "mutate",
            rest,
            "mutations",
            "api=produce:omit produce.response.throttle_time_ms",
        )
        .map(|op| Some(Command::Mutate(op))),
        "mutations" => no_args(Command::Mutations),
        "fault" => list_op("fault", rest, "faults", "api=metadata:delay 200ms")
            .map(|op| Some(Command::Fault(op))),
        "faults" => no_args(Command::Faults),
        "rules" => no_args(Command::Rules),
        "throttle" => {
            if rest.is_empty() {
                return Ok(Some(Command::Throttle(None)));
            }
            rest.parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .map(|n| Some(Command::Throttle(Some(n))))
                .ok_or_else(|| {
                    format!(
                        "throttle: expected milliseconds from 0 to {}, got {rest:?}",
                        i32::MAX
                    )
                })
        }
        "cap" => {
            let (sub, api) = match rest.split_once(char::is_whitespace) {
                Some((s, a)) => (s, a.trim()),
                None => (rest, ""),
            };
            if sub.eq_ignore_ascii_case("clear") {
                if api.is_empty() {
                    return Ok(Some(Command::CapClear(None)));
                }
                return api_key_by_name(api)
                    .map(|k| Some(Command::CapClear(Some(k))))
                    .ok_or_else(|| format!("cap clear: unknown API {api:?}"));
            }
            if rest.is_empty() {
                return Err("cap needs API=N (e.g. cap produce=2) or clear [API]".into());
            }
            rest.parse().map(|c| Some(Command::Cap(c)))
        }
        "caps" => no_args(Command::Caps),
        "clients" => no_args(Command::Clients),
        "help" | "?" => no_args(Command::Help),
        _ => Err(format!("unknown command {word:?}; {HELP}")),
    }
}

/// One of the settings' lists of rules, as the commands name and show it.
struct RuleList<T: 'static> {
    /// One of them (`rule 2 deleted`).
    one: &'static str,
    /// Several (`rules cleared`).
    many: &'static str,
    /// How the list applies, after the count (`first match wins`).
    how: &'static str,
    /// What an empty list means.
    none: &'static str,
    of: fn(&mut Knobs) -> &mut Vec<T>,
    get: fn(&Knobs) -> &Vec<T>,
}

impl<T: std::fmt::Display> RuleList<T> {
    /// `rules (2, first match wins):` and the numbered rules, or what none means.
    fn listing(&self, knobs: &Knobs) -> String {
        let rules = (self.get)(knobs);
        if rules.is_empty() {
            return format!("{}: none ({})", self.many, self.none);
        }
        let mut s = format!("{} ({}, {}):", self.many, rules.len(), self.how);
        for (i, r) in rules.iter().enumerate() {
            s.push_str(&format!("\n  {}: {r}", i + 1));
        }
        s
    }
}

const RULES: RuleList<ThrottleRule> = RuleList {
    one: "rule",
    many: "rules",
    how: "first match wins",
    none: "every client gets the global placement",
    of: |k| &mut k.rules,
    get: |k| &k.rules,
};

const MUTATIONS: RuleList<MutationRule> = RuleList {
    one: "mutation",
    many: "mutations",
    how: "every matching one applied, in order",
    none: "responses are sent as encoded",
    of: |k| &mut k.mutations,
    get: |k| &k.mutations,
};

const FAULTS: RuleList<FaultRule> = RuleList {
    one: "fault",
    many: "faults",
    how: "every matching one acts",
    none: "requests are served as they come",
    of: |k| &mut k.faults,
    get: |k| &k.faults,
};

/// What a command did: a message for people, whether it changed the settings, and whether it
/// failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The command as typed.
    pub input: String,
    /// False when the command could not be parsed or applied.
    pub ok: bool,
    /// Whether the settings changed.
    pub changed: bool,
    /// What happened (may hold several lines, e.g. `rules`, `clients`).
    pub message: String,
}

/// The hook `clients` calls: a description of every connected client.
pub type ClientsHook = Box<dyn Fn() -> String + Send + Sync>;

/// Applies commands to the shared settings.
pub struct Control {
    settings: Arc<Settings>,
    clients: Option<ClientsHook>,
    markers: Option<Arc<crate::capture::Store>>,
    source: String,
}

impl Control {
    /// A control over these settings, without client detection.
    pub fn new(settings: Arc<Settings>) -> Control {
        Control {
            settings,
            clients: None,
            markers: None,
            source: String::new(),
        }
    }

    /// Records every change in this store's timeline as a marker (`[source] message`), so a
    /// capture shows when the placement or a rule changed.
    pub fn with_markers(mut self, store: Arc<crate::capture::Store>, source: &str) -> Control {
        self.markers = Some(store);
        self.source = source.to_string();
        self
    }

    /// Sets what `clients` prints.
    pub fn with_clients_hook(mut self, hook: ClientsHook) -> Control {
        self.clients = Some(hook);
        self
    }

    /// The settings this control changes.
    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    /// Parses and applies one line; None for a blank line or a comment.
    pub fn run_line(&self, line: &str) -> Option<Reply> {
        let input = line.trim().to_string();
        match parse(line) {
            Ok(None) => None,
            Ok(Some(cmd)) => {
                let (ok, changed, message) = self.execute(cmd);
                if changed {
                    if let Some(store) = &self.markers {
                        store.push_marker(format!("[{}] {message}", self.source));
                    }
                }
                Some(Reply {
                    input,
                    ok,
                    changed,
                    message,
                })
            }
            Err(message) => Some(Reply {
                input,
                ok: false,
                changed: false,
                message,
            }),
        }
    }

    /// Applies a command: (ok, changed, message).
    pub fn execute(&self, cmd: Command) -> (bool, bool, String) {
        let knobs = self.settings.get();
        let caps_text = |caps: Vec<String>| {
            if caps.is_empty() {
                "caps: none".to_string()
            } else {
                format!(
                    "caps: {} (for connections whose ApiVersions comes later)",
                    caps.join(", ")
                )
            }
        };
        match cmd {
            Command::Placement(None) => (true, false, format!("placement: {}", knobs.placement)),
            Command::Placement(Some(p)) => {
                self.settings.update(|k| k.placement = p);
                (
                    true,
                    p != knobs.placement,
                    format!("placement: {p} (was {})", knobs.placement),
                )
            }
            Command::Rule(op) => self.change_list(op, &RULES),
            Command::Rules => (true, false, RULES.listing(&knobs)),
            Command::Mutate(op) => self.change_list(op, &MUTATIONS),
            Command::Mutations => (true, false, MUTATIONS.listing(&knobs)),
            Command::Fault(op) => self.change_list(op, &FAULTS),
            Command::Faults => (true, false, FAULTS.listing(&knobs)),
            Command::Throttle(None) => (true, false, format!("throttle: {} ms", knobs.throttle_ms)),
            Command::Throttle(Some(ms)) => {
                self.settings.update(|k| k.throttle_ms = ms);
                (
                    true,
                    ms != knobs.throttle_ms,
                    format!("throttle: {ms} ms (was {} ms)", knobs.throttle_ms),
                )
            }
            Command::Cap(cap) => {
                let before = knobs.caps.get(&cap.api_key).copied();
                self.settings.update(|k| {
                    k.caps.insert(cap.api_key, cap.max_version);
                });
                let was = before
                    .map(|v| format!("was {v}"))
                    .unwrap_or_else(|| "was uncapped".into());
                (
                    true,
                    before != Some(cap.max_version),
                    format!(
                        "cap {cap} ({was}; applies to connections whose ApiVersions comes later)"
                    ),
                )
            }
            Command::CapClear(None) => {
                self.settings.update(|k| k.caps.clear());
                (
                    true,
                    !knobs.caps.is_empty(),
                    format!("caps cleared ({} removed)", knobs.caps.len()),
                )
            }
            Command::CapClear(Some(key)) => {
                let mut removed = None;
                self.settings.update(|k| removed = k.caps.remove(&key));
                match removed {
                    Some(v) => (
                        true,
                        true,
                        format!("cap {} cleared (was {v})", api_snake_name(key)),
                    ),
                    None => (true, false, format!("{} had no cap", api_snake_name(key))),
                }
            }
            Command::Caps => (true, false, caps_text(knobs.caps_text())),
            Command::Clients => match &self.clients {
                Some(hook) => (true, false, hook()),
                None => (false, false, "client detection not available".into()),
            },
            Command::Help => (true, false, HELP.into()),
        }
    }

    /// Adds to, deletes from or clears one of the lists of rules.
    fn change_list<T: std::fmt::Display>(
        &self,
        op: ListOp<T>,
        list: &RuleList<T>,
    ) -> (bool, bool, String) {
        let one = list.one;
        match op {
            ListOp::Add(rule) => {
                let text = rule.to_string();
                let mut n = 0;
                self.settings.update(|k| {
                    let rules = (list.of)(k);
                    rules.push(rule);
                    n = rules.len();
                });
                (true, true, format!("{one} {n} added: {text}"))
            }
            ListOp::Del(n) => {
                let mut removed = None;
                let mut len = 0;
                self.settings.update(|k| {
                    let rules = (list.of)(k);
                    len = rules.len();
                    if (1..=len).contains(&n) {
                        removed = Some(rules.remove(n - 1).to_string());
                    }
                });
                match removed {
                    Some(r) => (true, true, format!("{one} {n} deleted: {r}")),
                    None => (
                        false,
                        false,
                        format!("no {one} {n}: there are {len} {}", list.many),
                    ),
                }
            }
            ListOp::Clear => {
                let mut len = 0;
                self.settings.update(|k| {
                    let rules = (list.of)(k);
                    len = rules.len();
                    rules.clear();
                });
                (
                    true,
                    len > 0,
                    format!("{} cleared ({len} removed)", list.many),
                )
            }
        }
    }

    /// The settings as JSON: placement, rules, throttle, caps, mutations, faults.
    pub fn state_json(&self) -> serde_json::Value {
        let k = self.settings.get();
        json!({
            "placement": k.placement,
            "rules": k.rules.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "mutations": k.mutations.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "faults": k.faults.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "throttle_ms": k.throttle_ms,
            "caps": k.caps.iter().map(|(key, v)| (api_snake_name(*key), *v)).collect::<std::collections::BTreeMap<_, _>>(),
        })
    }

    /// How a reply is printed: lines starting with `# `, or one JSON object
    /// `{"kind":"control", ...}` with the settings after the command.
    pub fn render(&self, reply: &Reply, as_json: bool) -> String {
        if as_json {
            json!({
                "kind": "control",
                "input": reply.input,
                "ok": reply.ok,
                "changed": reply.changed,
                "message": reply.message,
                "state": self.state_json(),
            })
            .to_string()
        } else {
            let mark = if reply.ok { "" } else { "error: " };
            reply
                .message
                .lines()
                .enumerate()
                .map(|(i, l)| {
                    if i == 0 {
                        format!("# {mark}{l}")
                    } else {
                        format!("# {l}")
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
}

/// Reads commands from stdin until it ends, printing every reply to `out` (see
/// [`Control::render`]) and logging it. End of input ends this task only.
pub async fn run_stdin(control: Control, as_json: bool, out: crate::headless::Out) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => {
                tracing::info!("control input: end of stdin; no more commands");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "control input: cannot read stdin; no more commands");
                return;
            }
        };
        let Some(reply) = control.run_line(&line) else {
            continue;
        };
        if reply.ok {
            tracing::info!(command = %reply.input, changed = reply.changed, reply = %reply.message, "control command");
        } else {
            tracing::warn!(command = %reply.input, error = %reply.message, "control command refused");
        }
        if out.line(&control.render(&reply, as_json)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Knobs;

    #[test]
    fn parses_every_command() {
        use Command::*;
        let cases: Vec<(&str, Command)> = vec![
            ("placement", Placement(None)),
            (
                "  placement   front ",
                Placement(Some(ThrottlePlacement::Front)),
            ),
            ("placement omit", Placement(Some(ThrottlePlacement::Omit))),
            (
                "rule add software=kafka-python*:front",
                Rule(ListOp::Add("software=kafka-python*:front".parse().unwrap())),
            ),
            ("rule del 2", Rule(ListOp::Del(2))),
            ("rule clear", Rule(ListOp::Clear)),
            ("rules", Rules),
            ("throttle 250", Throttle(Some(250))),
            ("throttle", Throttle(None)),
            (
                "cap produce=2",
                Cap(VersionCap {
                    api_key: 0,
                    max_version: 2,
                }),
            ),
            ("cap clear", CapClear(None)),
            ("cap clear Produce", CapClear(Some(0))),
            ("caps", Caps),
            ("clients", Clients),
            ("help", Help),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line), Ok(Some(want)), "{line}");
        }
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   # a comment"), Ok(None));
    }

    #[test]
    fn words_and_values_are_case_insensitive_patterns_keep_their_case() {
        use Command::*;
        let cases: Vec<(&str, Command)> = vec![
            ("PLACEMENT", Placement(None)),
            ("Placement Front", Placement(Some(ThrottlePlacement::Front))),
            ("placement OMIT", Placement(Some(ThrottlePlacement::Omit))),
            ("Rule Del 2", Rule(ListOp::Del(2))),
            ("RULE DELETE 1", Rule(ListOp::Del(1))),
            ("rule Rm 3", Rule(ListOp::Del(3))),
            ("Rule CLEAR", Rule(ListOp::Clear)),
            ("Rules", Rules),
            ("THROTTLE 250", Throttle(Some(250))),
            ("Throttle", Throttle(None)),
            (
                "Cap PRODUCE=8",
                Cap(VersionCap {
                    api_key: 0,
                    max_version: 8,
                }),
            ),
            ("CAP Clear", CapClear(None)),
            ("cap CLEAR Produce", CapClear(Some(0))),
            ("Caps", Caps),
            ("CLIENTS", Clients),
            ("Help", Help),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line), Ok(Some(want)), "{line}");
        }
        // Matcher names and the mode in any case; the globs as typed (they match client ids and
        // software names, which have a case).
        let Ok(Some(Rule(ListOp::Add(rule)))) =
            parse("Rule Add Client_ID=RdKafka*,SOFTWARE=LibRd?:Front")
        else {
            panic!("a rule")
        };
        assert_eq!(rule.to_string(), "client_id=RdKafka*,software=LibRd?:front");
        let who = |id: &str| crate::settings::ClientIdentity {
            client_id: Some(id.into()),
            software_name: Some("LibRdX".into()),
            software_version: None,
        };
        assert!(rule.matches(&who("RdKafka-1")));
        assert!(!rule.matches(&who("rdkafka-1")));
        // Errors quote the word as typed.
        assert_eq!(
            parse("Jump").unwrap_err(),
            format!("unknown command \"Jump\"; {HELP}")
        );
        assert_eq!(
            parse("CAPS 3").unwrap_err(),
            "CAPS takes no arguments (got \"3\")"
        );
        assert_eq!(
            parse("Placement Sideways").unwrap_err(),
            "placement: unknown placement \"Sideways\": expected spec, front or omit"
        );
        // Applied, the same as in lower case.
        let settings = Settings::new(Knobs::default());
        let control = Control::new(settings.clone());
        let r = control.run_line("PLACEMENT Front").unwrap();
        assert_eq!(control.render(&r, false), "# placement: front (was spec)");
        let r = control.run_line("Cap Produce=8").unwrap();
        assert!(r.ok && r.changed, "{r:?}");
        assert_eq!(settings.get().caps_text(), vec!["produce=8"]);
    }

    #[test]
    fn bad_commands_say_why() {
        for (line, says) in [
            ("jump", "unknown command"),
            ("placement sideways", "expected spec, front or omit"),
            ("rule add", "needs a rule"),
            ("rule add software=x", "MODE"),
            ("rule del 0", "from 1"),
            ("rule del x", "from 1"),
            ("rule frob", "expected add RULE"),
            ("rules 3", "no arguments"),
            ("throttle -5", "from 0"),
            ("throttle 1e9", "from 0"),
            ("cap produce", "API=VERSION"),
            ("cap nosuch=1", "unknown API"),
            ("cap clear nosuch", "unknown API"),
            ("cap", "needs API=N"),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn commands_change_the_settings() {
        let settings = Settings::new(Knobs::default());
        let control = Control::new(settings.clone());
        let run = |l: &str| control.run_line(l).unwrap();
        let r = run("placement front");
        assert!(r.ok && r.changed, "{r:?}");
        assert_eq!(settings.get().placement, ThrottlePlacement::Front);
        assert_eq!(control.render(&r, false), "# placement: front (was spec)");
        run("rule add software=kafka-python*:omit");
        run("rule add client_id=rdkafka:spec");
        assert_eq!(settings.get().rules.len(), 2);
        let listed = run("rules");
        assert_eq!(
            control.render(&listed, false),
            "# rules (2, first match wins):\n#   1: software=kafka-python*:omit\n#   2: client_id=rdkafka:spec"
        );
        let r = run("rule del 3");
        assert!(!r.ok);
        assert!(control.render(&r, false).starts_with("# error: no rule 3"));
        run("rule del 1");
        assert_eq!(
            settings.get().rules[0].to_string(),
            "client_id=rdkafka:spec"
        );
        run("throttle 250");
        assert_eq!(settings.get().throttle_ms, 250);
        run("cap produce=2");
        run("cap fetch=4");
        assert_eq!(settings.get().caps_text(), vec!["produce=2", "fetch=4"]);
        run("cap clear produce");
        assert_eq!(settings.get().caps_text(), vec!["fetch=4"]);
        let r = run("clients");
        assert!(!r.ok);
        assert_eq!(r.message, "client detection not available");
        let json: serde_json::Value =
            serde_json::from_str(&control.render(&run("caps"), true)).unwrap();
        assert_eq!(json["kind"], "control");
        assert_eq!(json["state"]["caps"]["fetch"], 4);
        assert_eq!(json["state"]["placement"], "front");
        assert_eq!(json["state"]["throttle_ms"], 250);
        let bad = control.run_line("frobnicate").unwrap();
        assert!(!bad.ok && !bad.changed);
        let control = Control::new(settings).with_clients_hook(Box::new(|| "conn 1: x".into()));
        assert_eq!(control.run_line("clients").unwrap().message, "conn 1: x");
    }

    #[test]
    fn mutation_and_fault_commands_change_the_settings_and_are_markers() {
        use crate::capture::{Store, StoreLimits};
        let settings = Settings::new(Knobs::default());
        let store = Store::new(StoreLimits::default());
        let control = Control::new(settings.clone()).with_markers(store.clone(), "test");
        let run = |l: &str| control.run_line(l).unwrap();
        let r = run("MUTATE ADD api=produce,versions=1-8:move produce.response.throttle_time_ms before produce.response.responses");
        assert!(r.ok && r.changed, "{r:?}");
        assert_eq!(
            r.message,
            "mutation 1 added: api=produce,versions=1-8:move produce.response.throttle_time_ms \
             before produce.response.responses"
        );
        run("mutate add truncate 2");
        let r = run("Fault Add api=find_coordinator:error COORDINATOR_NOT_AVAILABLE first 3");
        assert_eq!(
            r.message,
            "fault 1 added: api=find_coordinator:error COORDINATOR_NOT_AVAILABLE first 3"
        );
        run("fault add drop probability 0.5 seed 3");
        assert_eq!(
            control.render(&run("mutations"), false),
            "# mutations (2, every matching one applied, in order):\n#   1: \
             api=produce,versions=1-8:move produce.response.throttle_time_ms before \
             produce.response.responses\n#   2: truncate 2"
        );
        assert_eq!(
            run("faults").message,
            "faults (2, every matching one acts):\n  1: api=find_coordinator:error \
             COORDINATOR_NOT_AVAILABLE first 3\n  2: drop probability 0.5 seed 3"
        );
        let json: serde_json::Value =
            serde_json::from_str(&control.render(&run("faults"), true)).unwrap();
        assert_eq!(json["state"]["faults"][1], "drop probability 0.5 seed 3");
        assert_eq!(json["state"]["mutations"][1], "truncate 2");
        let r = run("fault del 1");
        assert_eq!(
            r.message,
            "fault 1 deleted: api=find_coordinator:error COORDINATOR_NOT_AVAILABLE first 3"
        );
        let r = run("mutate del 5");
        assert!(!r.ok && !r.changed);
        assert_eq!(r.message, "no mutation 5: there are 2 mutations");
        assert_eq!(run("mutate clear").message, "mutations cleared (2 removed)");
        assert_eq!(run("fault clear").message, "faults cleared (1 removed)");
        assert!(!run("fault clear").changed);
        assert_eq!(
            run("faults").message,
            "faults: none (requests are served as they come)"
        );
        assert_eq!(
            run("mutations").message,
            "mutations: none (responses are sent as encoded)"
        );
        assert!(settings.get().mutations.is_empty() && settings.get().faults.is_empty());
        // Each change is a marker in the capture; listing is not.
        let markers: Vec<String> = store
            .markers_since(0)
            .iter()
            .map(|m| m.text.clone())
            .collect();
        assert_eq!(markers.len(), 7, "{markers:?}");
        assert!(markers[0].starts_with("[test] mutation 1 added: api=produce"));
        assert_eq!(
            markers[3],
            "[test] fault 2 added: drop probability 0.5 seed 3"
        );
        assert_eq!(markers[6], "[test] faults cleared (1 removed)");
        // Refusals say why.
        for (line, says) in [
            ("mutate add", "needs a rule"),
            (
                "mutate add api=fetch:omit produce.response.throttle_time_ms",
                "Produce responses only",
            ),
            ("fault add error NOT_COORDINATOR", "needs api=NAME"),
            (
                "fault add api=describe_groups:error 16",
                "not DescribeGroups",
            ),
            ("fault del 0", "from 1 (see faults)"),
            ("mutate frob", "expected add RULE"),
            ("faults 2", "no arguments"),
        ] {
            let r = run(line);
            assert!(!r.ok, "{line}");
            assert!(r.message.contains(says), "{line}: {}", r.message);
        }
    }
}
