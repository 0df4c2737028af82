//! Runtime-mutable knobs shared by the broker and the views (throttle placement, per-client
//! rules, version caps, stall thresholds). One object, read on every response, changed from
//! the command line, the headless control input or the UI; every change is announced.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

/// Where ProduceResponse puts `throttle_time_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottlePlacement {
    /// Where Apache Kafka puts it: after the responses array (v1+).
    #[default]
    Spec,
    /// Before the responses array, as Chronik Stream 0.7.2 did for v1–v8.
    Front,
    /// Left out.
    Omit,
}

impl ThrottlePlacement {
    /// All modes, in the order a UI cycles through them.
    pub const ALL: [ThrottlePlacement; 3] = [
        ThrottlePlacement::Spec,
        ThrottlePlacement::Front,
        ThrottlePlacement::Omit,
    ];

    /// The word used on the command line, in commands and in the UI.
    pub fn word(self) -> &'static str {
        match self {
            ThrottlePlacement::Spec => "spec",
            ThrottlePlacement::Front => "front",
            ThrottlePlacement::Omit => "omit",
        }
    }

    /// The next mode in [`ThrottlePlacement::ALL`], wrapping.
    pub fn next(self) -> ThrottlePlacement {
        let i = Self::ALL.iter().position(|p| *p == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
}

impl fmt::Display for ThrottlePlacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl std::str::FromStr for ThrottlePlacement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.word() == s)
            .ok_or_else(|| format!("unknown placement {s:?}: expected spec, front or omit"))
    }
}

/// What is known of a client when a response is encoded: the request header's client id and
/// the software name and version ApiVersions v3+ carried (when the client sent them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientIdentity {
    pub client_id: Option<String>,
    pub software_name: Option<String>,
    pub software_version: Option<String>,
}

/// A per-client placement rule: every matcher must match; the first matching rule wins over
/// the global mode. Text form: `client_id=GLOB,software=GLOB,version=GLOB:MODE` (any non-empty
/// subset of the matchers; `*` and `?` wildcards), e.g. `software=kafka-python*:front`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThrottleRule {
    pub client_id: Option<String>,
    pub software: Option<String>,
    pub version: Option<String>,
    pub placement: ThrottlePlacement,
}

/// Thresholds of the stall detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StallThresholds {
    /// A client closing its connection within this time after a response is "disconnecting".
    pub close_after_response: Duration,
    /// A client silent this long after a response it should have acted on is "stalled".
    pub silence: Duration,
    /// A request unanswered this long is "stalled" (the broker's side of the same wait).
    pub unanswered: Duration,
}

impl Default for StallThresholds {
    fn default() -> Self {
        StallThresholds {
            close_after_response: Duration::from_millis(1000),
            silence: Duration::from_secs(5),
            unanswered: Duration::from_secs(5),
        }
    }
}

/// The knobs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Knobs {
    /// Global placement, unless a rule matches.
    pub placement: ThrottlePlacement,
    /// Per-client rules, first match wins.
    pub rules: Vec<ThrottleRule>,
    /// Value written into `throttle_time_ms` of every response that has one.
    pub throttle_ms: i32,
    /// Highest version advertised per API key, for connections whose ApiVersions arrives after
    /// the cap is set.
    pub caps: BTreeMap<i16, i16>,
    pub stall: StallThresholds,
}

/// The placement a response was encoded with, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlacementUsed {
    pub placement: ThrottlePlacement,
    /// Index and text of the rule that chose it; `None` for the global mode.
    pub rule: Option<(usize, String)>,
}

/// The shared settings object; subscribers see every change.
pub struct Settings {
    knobs: RwLock<Knobs>,
    tx: watch::Sender<u64>,
}

impl Settings {
    pub fn new(knobs: Knobs) -> Arc<Settings> {
        let (tx, _) = watch::channel(0);
        Arc::new(Settings {
            knobs: RwLock::new(knobs),
            tx,
        })
    }

    /// A copy of the current knobs.
    pub fn get(&self) -> Knobs {
        self.knobs.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the knobs and notifies subscribers.
    pub fn update(&self, f: impl FnOnce(&mut Knobs)) {
        {
            let mut k = self.knobs.write().unwrap_or_else(|e| e.into_inner());
            f(&mut k);
        }
        self.tx.send_modify(|n| *n += 1);
    }

    /// A receiver that changes whenever the knobs do.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}
