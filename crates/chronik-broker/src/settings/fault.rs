//! Fault rules: what the broker does wrong on purpose, per request it matches. The rules only
//! decide (what to do with the k-th request a rule matched); the connection task carries it
//! out. Random choices come from the rule's seed and the request's number, so the same seed
//! and the same requests give the same choices on every run.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use super::matcher::{join_rule, split_rule, RequestMatch};
use super::ClientIdentity;
use chronik_protocol::{api_key, errors, registry};

/// The APIs whose error responses the broker can build, Kafka's way (the error code where
/// Kafka's own broker puts it when it cannot serve the request).
pub const ERROR_FAULT_APIS: &[i16] = &[
    api_key::PRODUCE,
    api_key::FETCH,
    api_key::LIST_OFFSETS,
    api_key::METADATA,
    api_key::OFFSET_COMMIT,
    api_key::OFFSET_FETCH,
    api_key::FIND_COORDINATOR,
    api_key::JOIN_GROUP,
    api_key::HEARTBEAT,
    api_key::LEAVE_GROUP,
    api_key::SYNC_GROUP,
    api_key::INIT_PRODUCER_ID,
];

/// Which of the requests a rule matches it acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// Every one.
    Every,
    /// The first N (counted over every connection).
    First(u64),
    /// Each with probability P, drawn from the seed and the request's number.
    Probability { p: f64, seed: u64 },
}

/// One fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// `delay MS [jitter MS [seed S]]`: the response waits that long (± the jitter) before it
    /// is written.
    Delay { ms: u64, jitter: Option<(u64, u64)> },
    /// `error NAME|CODE [TRIGGER]`: the request is not carried out; the API's response says
    /// this error instead.
    Error { code: i16, when: Trigger },
    /// `drop [TRIGGER]`: the request is carried out and no response is written; the connection
    /// stays open.
    Drop { when: Trigger },
    /// `close after N`: the connection is closed after its Nth matching request is answered.
    CloseAfter(u64),
    /// `close mid-response [TRIGGER]`: half the response is written, then the connection is
    /// closed.
    CloseMidResponse { when: Trigger },
    /// `chunk N bytes every MS`: the response is written N bytes at a time with that pause.
    Chunk { bytes: usize, every_ms: u64 },
}

/// What a fault rule does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Delay {
        ms: u64,
    },
    Error {
        code: i16,
    },
    Drop,
    /// Counted per connection by the connection task: close once it has answered N.
    CloseAfter(u64),
    CloseMidResponse,
    Chunk {
        bytes: usize,
        every_ms: u64,
    },
}

/// A rule's counter, shared by every copy of the knobs; a new rule starts a new one.
#[derive(Debug)]
struct FaultState {
    /// Tells rules apart (the connection task counts `close after` per rule).
    id: u64,
    /// Requests matched so far.
    matched: AtomicU64,
}

static NEXT_RULE_ID: AtomicU64 = AtomicU64::new(1);

/// A fault and the requests it applies to. Text form `[MATCH:] FAULT`, e.g.
/// `api=find_coordinator:error COORDINATOR_NOT_AVAILABLE first 3`.
#[derive(Debug, Clone)]
pub struct FaultRule {
    pub matcher: RequestMatch,
    pub fault: Fault,
    state: Arc<FaultState>,
}

impl PartialEq for FaultRule {
    /// Rules are equal when they say the same; their counters are not compared.
    fn eq(&self, other: &Self) -> bool {
        self.matcher == other.matcher && self.fault == other.fault
    }
}

impl FaultRule {
    pub fn new(matcher: RequestMatch, fault: Fault) -> FaultRule {
        FaultRule {
            matcher,
            fault,
            state: Arc::new(FaultState {
                id: NEXT_RULE_ID.fetch_add(1, Ordering::Relaxed),
                matched: AtomicU64::new(0),
            }),
        }
    }

    /// This rule's identity (the same for every copy of it, new for a rule added again).
    pub fn id(&self) -> u64 {
        self.state.id
    }

    /// Whether the rule applies to a request of `api` at `version` from this client.
    pub fn matches(&self, api: i16, version: i16, who: &ClientIdentity) -> bool {
        self.matcher.matches(api, version, who)
    }

    /// Counts one more matching request and says what to do with it (`None`: this one passes).
    pub fn next(&self) -> Option<Action> {
        let k = self.state.matched.fetch_add(1, Ordering::Relaxed);
        self.fault.action(k)
    }
}

impl Trigger {
    /// Whether the k-th matching request (from 0) is acted on.
    fn fires(&self, k: u64) -> bool {
        match self {
            Trigger::Every => true,
            Trigger::First(n) => k < *n,
            Trigger::Probability { p, seed } => unit(*seed, k) < *p,
        }
    }
}

impl Fault {
    /// What the fault does to the k-th request its rule matched (from 0); `None` when it lets
    /// that one pass. A pure function of the fault and k.
    pub fn action(&self, k: u64) -> Option<Action> {
        match self {
            Fault::Delay { ms, jitter: None } => Some(Action::Delay { ms: *ms }),
            Fault::Delay {
                ms,
                jitter: Some((j, seed)),
            } => {
                // Uniform over ms-j ..= ms+j, never below 0.
                let span = 2 * j + 1;
                let off = ((unit(*seed, k) * span as f64) as u64).min(span - 1);
                Some(Action::Delay {
                    ms: (ms + off).saturating_sub(*j),
                })
            }
            Fault::Error { code, when } => when.fires(k).then_some(Action::Error { code: *code }),
            Fault::Drop { when } => when.fires(k).then_some(Action::Drop),
            Fault::CloseAfter(n) => Some(Action::CloseAfter(*n)),
            Fault::CloseMidResponse { when } => when.fires(k).then_some(Action::CloseMidResponse),
            Fault::Chunk { bytes, every_ms } => Some(Action::Chunk {
                bytes: *bytes,
                every_ms: *every_ms,
            }),
        }
    }
}

/// A number in [0, 1) from a seed and an index (splitmix64 of both): the same pair always gives
/// the same number.
fn unit(seed: u64, k: u64) -> f64 {
    let mut z = seed ^ k.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// `COORDINATOR_NOT_AVAILABLE`, or the number for a code without a name.
fn code_text(code: i16) -> String {
    match errors::error_name(code) {
        "UNKNOWN_ERROR_CODE" => code.to_string(),
        name => name.to_string(),
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Every => Ok(()),
            Trigger::First(n) => write!(f, " first {n}"),
            Trigger::Probability { p, seed } => write!(f, " probability {p} seed {seed}"),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Delay { ms, jitter: None } => write!(f, "delay {ms}ms"),
            Fault::Delay {
                ms,
                jitter: Some((j, seed)),
            } => write!(f, "delay {ms}ms jitter {j}ms seed {seed}"),
            Fault::Error { code, when } => write!(f, "error {}{when}", code_text(*code)),
            Fault::Drop { when } => write!(f, "drop{when}"),
            Fault::CloseAfter(n) => write!(f, "close after {n}"),
            Fault::CloseMidResponse { when } => write!(f, "close mid-response{when}"),
            Fault::Chunk { bytes, every_ms } => write!(f, "chunk {bytes} bytes every {every_ms}ms"),
        }
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join_rule(&self.matcher, &self.fault))
    }
}

impl Serialize for FaultRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The words a fault starts with.
pub const KEYWORDS: [&str; 5] = ["delay", "error", "drop", "close", "chunk"];

/// The text forms, for error messages.
pub const SYNTAX: &str = "delay MS [jitter MS [seed S]], error NAME|CODE [first N | probability \
P [seed S]], drop [first N | probability P [seed S]], close after N, close mid-response [first N | \
probability P [seed S]], chunk N bytes every MS";

/// Milliseconds written `200ms`, `2s` or `1.5s`.
fn millis(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return Err(format!(
            "{text:?} is not a duration (write it with its unit: 200ms, 2s)"
        ));
    };
    num.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0 && *v * scale <= 86_400_000.0)
        .map(|v| (v * scale).round() as u64)
        .ok_or_else(|| format!("{text:?} is not a duration from 0 to a day"))
}

/// A count from 1.
fn count(text: &str, what: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("{what}: {text:?} is not a number from 1"))
}

fn seed(words: &[&str]) -> Result<u64, String> {
    match words {
        [] => Ok(0),
        [w, s] if w.eq_ignore_ascii_case("seed") => s
            .parse::<u64>()
            .map_err(|_| format!("seed {s:?} is not a whole number from 0")),
        _ => Err(format!("expected `seed S`, got {:?}", words.join(" "))),
    }
}

/// `first N`, `probability P [seed S]` or nothing.
fn trigger(words: &[&str]) -> Result<Trigger, String> {
    let Some((first, rest)) = words.split_first() else {
        return Ok(Trigger::Every);
    };
    match first.to_ascii_lowercase().as_str() {
        "first" => match rest {
            [n] => Ok(Trigger::First(count(n, "first")?)),
            _ => Err("expected first N".into()),
        },
        "probability" => {
            let Some((p, rest)) = rest.split_first() else {
                return Err("expected probability P (0 to 1, or a percentage)".into());
            };
            let value = match p.strip_suffix('%') {
                Some(pct) => pct.parse::<f64>().ok().map(|v| v / 100.0),
                None => p.parse::<f64>().ok(),
            }
            .filter(|v| *v > 0.0 && *v <= 1.0)
            .ok_or_else(|| format!("probability {p:?} is not above 0 and at most 1 (or 100%)"))?;
            Ok(Trigger::Probability {
                p: value,
                seed: seed(rest)?,
            })
        }
        _ => Err(format!(
            "expected first N or probability P [seed S], got {:?}",
            words.join(" ")
        )),
    }
}

impl std::str::FromStr for Fault {
    type Err = String;
    /// One of [`SYNTAX`]'s forms; keywords in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let Some((word, rest)) = words.split_first() else {
            return Err(format!("no fault (expected {SYNTAX})"));
        };
        let lower: Vec<String> = rest.iter().map(|w| w.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        match word.to_ascii_lowercase().as_str() {
            "delay" => match rest {
                [d] => Ok(Fault::Delay {
                    ms: millis(d)?,
                    jitter: None,
                }),
                [d, j, jitter, more @ ..] if j.eq_ignore_ascii_case("jitter") => {
                    let (ms, jitter) = (millis(d)?, millis(jitter)?);
                    Ok(Fault::Delay {
                        ms,
                        jitter: Some((jitter, seed(more)?)),
                    })
                }
                _ => Err("expected delay MS [jitter MS [seed S]], e.g. delay 200ms".into()),
            },
            "error" => {
                let Some((code, when)) = rest.split_first() else {
                    return Err(
                        "expected error NAME|CODE, e.g. error NOT_LEADER_OR_FOLLOWER".into(),
                    );
                };
                let code = errors::code_by_name(code)
                    .or_else(|| code.parse::<i16>().ok())
                    .ok_or_else(|| format!("{code:?} is not an error name or code"))?;
                if code == errors::NONE {
                    return Err("error NONE is no error; name the error to answer with".into());
                }
                Ok(Fault::Error {
                    code,
                    when: trigger(when)?,
                })
            }
            "drop" => Ok(Fault::Drop {
                when: trigger(rest)?,
            }),
            "close" => match lower[..] {
                ["after", n] => Ok(Fault::CloseAfter(count(n, "close after")?)),
                ["mid-response", ..] => Ok(Fault::CloseMidResponse {
                    when: trigger(&rest[1..])?,
                }),
                _ => Err(
                    "expected close after N or close mid-response [first N | probability P]".into(),
                ),
            },
            "chunk" => {
                let (n, every) = match lower[..] {
                    [n, "bytes", "every", every] | [n, "every", every] => (n, every),
                    _ => {
                        return Err(
                            "expected chunk N bytes every MS, e.g. chunk 16 bytes every 100ms"
                                .into(),
                        )
                    }
                };
                Ok(Fault::Chunk {
                    bytes: count(n, "chunk")? as usize,
                    every_ms: millis(every)?,
                })
            }
            _ => Err(format!("unknown fault {word:?} (expected {SYNTAX})")),
        }
    }
}

impl std::str::FromStr for FaultRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: String| {
            format!(
                "bad fault rule {:?}: {why} (expected [MATCH:] FAULT; MATCH: api=NAME, \
                 versions=A-B, client_id=GLOB, software=GLOB, version=GLOB; FAULT: {SYNTAX})",
                s.trim()
            )
        };
        let (matcher, action) = split_rule(s, &KEYWORDS);
        let matcher = match matcher {
            Some(m) => RequestMatch::parse(m).map_err(bad)?,
            None => RequestMatch::default(),
        };
        let fault: Fault = action.parse().map_err(bad)?;
        if let Fault::Error { .. } = fault {
            let names = ERROR_FAULT_APIS
                .iter()
                .map(|k| registry::api_name(*k))
                .collect::<Vec<_>>()
                .join(", ");
            match matcher.api {
                None => {
                    return Err(bad(format!(
                        "error needs api=NAME to know which response to build: one of {names}"
                    )))
                }
                Some(api) if !ERROR_FAULT_APIS.contains(&api) => {
                    return Err(bad(format!(
                        "error answers {names} only, not {}",
                        registry::api_name(api)
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(FaultRule::new(matcher, fault))
    }
}
