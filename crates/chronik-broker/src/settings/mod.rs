//! Runtime-mutable knobs shared by the broker and the views (throttle placement, per-client
//! rules, version caps, response mutations, faults, stall thresholds). One object, read on
//! every response, changed from the command line, the headless control input or the UI; every
//! change is announced.
//!
//! The rules' matchers are one vocabulary (`matcher.rs`): placement rules match clients;
//! mutation and fault rules also match the API and its versions.

mod caps;
mod fault;
mod matcher;
mod mutation;
#[cfg(test)]
mod tests;
mod throttle;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::sync::watch;

// The placement modes are a fact of ProduceResponse layouts (protocol) and the placement a
// response was encoded with is recorded on its exchange (capture); the settings choose them.
pub use chronik_capture::PlacementUsed;
pub use chronik_protocol::ThrottlePlacement;

pub use caps::{api_key_by_name, api_snake_name, VersionCap};
pub use fault::{Action, Fault, FaultRule, Trigger, ERROR_FAULT_APIS};
pub use matcher::{glob_match, ClientMatch, RequestMatch, VersionRange};
pub use mutation::MutationRule;
pub use throttle::ThrottleRule;

/// What is known of a client when a response is encoded: the request header's client id and
/// the software name and version ApiVersions v3+ carried (when the client sent them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientIdentity {
    pub client_id: Option<String>,
    pub software_name: Option<String>,
    pub software_version: Option<String>,
}

/// Thresholds of the stall detector (it lives with the exchanges it reads; the knobs hold
/// them so that they change at runtime like the rest).
pub use chronik_capture::diagnose::StallThresholds;

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
    /// Response mutations, applied in order, every matching rule.
    pub mutations: Vec<MutationRule>,
    /// Faults, each matching rule acting on the request.
    pub faults: Vec<FaultRule>,
    pub stall: StallThresholds,
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

    /// The stall detector's thresholds as these settings hold them now, read at every use
    /// (`chronik_capture::diagnose::spawn` takes this).
    pub fn stall_thresholds(self: &Arc<Self>) -> chronik_capture::diagnose::ThresholdSource {
        let settings = self.clone();
        Arc::new(move || {
            settings
                .knobs
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .stall
        })
    }
}

impl Knobs {
    /// The placement for a client: the first rule that matches it, else the global mode.
    pub fn placement_for(&self, who: &ClientIdentity) -> PlacementUsed {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(who))
            .map(|(i, r)| PlacementUsed {
                placement: r.placement,
                rule: Some((i + 1, r.to_string())),
            })
            .unwrap_or(PlacementUsed {
                placement: self.placement,
                rule: None,
            })
    }

    /// The caps as `api=N` words, by key.
    pub fn caps_text(&self) -> Vec<String> {
        self.caps
            .iter()
            .map(|(k, v)| {
                VersionCap {
                    api_key: *k,
                    max_version: *v,
                }
                .to_string()
            })
            .collect()
    }

    /// The advertised range of an API under the caps: `(min, min(max, cap))`, never below min.
    pub fn capped(&self, api_key: i16, min: i16, max: i16) -> (i16, i16) {
        match self.caps.get(&api_key) {
            Some(cap) => (min, max.min(*cap).max(min)),
            None => (min, max),
        }
    }
}
