//! Runtime-mutable knobs shared by the broker and the views (throttle placement, per-client
//! rules, version caps, stall thresholds). One object, read on every response, changed from
//! the command line, the headless control input or the UI; every change is announced.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::sync::watch;

// The placement modes are a fact of ProduceResponse layouts (protocol) and the placement a
// response was encoded with is recorded on its exchange (capture); the settings choose them.
pub use chronik_capture::PlacementUsed;
pub use chronik_protocol::ThrottlePlacement;

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

/// Whether `text` matches `pattern`, where `*` stands for any run of characters (also none) and
/// `?` for exactly one; every other character stands for itself (case-sensitive).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and the text position it has absorbed up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl ThrottleRule {
    /// Whether every matcher of the rule matches the client. A matcher on a property the client
    /// did not send (no client id, no ApiVersions v3+) does not match, not even `*`.
    pub fn matches(&self, who: &ClientIdentity) -> bool {
        let one = |pattern: &Option<String>, value: &Option<String>| match (pattern, value) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(p), Some(v)) => glob_match(p, v),
        };
        one(&self.client_id, &who.client_id)
            && one(&self.software, &who.software_name)
            && one(&self.version, &who.software_version)
    }
}

impl fmt::Display for ThrottleRule {
    /// The canonical text form (matchers in the order client_id, software, version).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            ("client_id", &self.client_id),
            ("software", &self.software),
            ("version", &self.version),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
        write!(f, "{}:{}", parts.join(","), self.placement)
    }
}

impl std::str::FromStr for ThrottleRule {
    type Err = String;
    /// Parses `client_id=GLOB,software=GLOB,version=GLOB:MODE` (any non-empty subset of the
    /// matchers, in any order; `client` is accepted for `client_id`). The mode follows the last
    /// `:`, so a pattern may itself hold a `:`; a pattern may not hold `,`. Matcher names and
    /// the mode are read in any case; the patterns keep theirs.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = |why: String| {
            format!(
                "bad rule {s:?}: {why} (expected client_id=GLOB,software=GLOB,version=GLOB:MODE, \
                 e.g. software=kafka-python*:front)"
            )
        };
        let (matchers, mode) = s
            .rsplit_once(':')
            .ok_or_else(|| bad("no `:MODE` at the end".into()))?;
        let placement: ThrottlePlacement = mode.trim().parse().map_err(bad)?;
        let mut rule = ThrottleRule {
            client_id: None,
            software: None,
            version: None,
            placement,
        };
        if matchers.trim().is_empty() {
            return Err(bad("no matcher before the mode".into()));
        }
        for part in matchers.split(',') {
            let (key, pattern) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("matcher {:?} has no `=`", part.trim())))?;
            let (key, pattern) = (key.trim(), pattern.trim());
            if pattern.is_empty() {
                return Err(bad(format!("empty pattern for {key} (use * for any)")));
            }
            let slot = match key.to_ascii_lowercase().as_str() {
                "client_id" | "client" => &mut rule.client_id,
                "software" => &mut rule.software,
                "version" => &mut rule.version,
                _ => {
                    return Err(bad(format!(
                        "unknown matcher {key:?}: expected client_id, software or version"
                    )))
                }
            };
            if slot.is_some() {
                return Err(bad(format!("{key} given twice")));
            }
            *slot = Some(pattern.to_string());
        }
        Ok(rule)
    }
}

/// A version cap: the highest version of one API that ApiVersions advertises. Text form
/// `API=N`, where API is the API's name in snake_case or CamelCase (any case, `_` and `-`
/// ignored: `produce`, `api_versions`, `ApiVersions`) or its key number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VersionCap {
    pub api_key: i16,
    pub max_version: i16,
}

/// Looks up an API key by number or by name ([`registry::api_key_by_name`]).
///
/// [`registry::api_key_by_name`]: chronik_protocol::registry::api_key_by_name
pub fn api_key_by_name(name: &str) -> Option<i16> {
    let name = name.trim();
    if let Ok(k) = name.parse::<i16>() {
        return chronik_protocol::registry::api(k).map(|_| k);
    }
    chronik_protocol::registry::api_key_by_name(name)
}

/// An API's name in snake_case (`ApiVersions` → `api_versions`), as caps are written; the key
/// number for an API the schema table does not know.
pub fn api_snake_name(key: i16) -> String {
    if chronik_protocol::registry::api(key).is_none() {
        return key.to_string();
    }
    let camel = chronik_protocol::registry::api_name(key);
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl fmt::Display for VersionCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", api_snake_name(self.api_key), self.max_version)
    }
}

impl std::str::FromStr for VersionCap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (api, version) = s
            .split_once('=')
            .ok_or_else(|| format!("bad cap {s:?}: expected API=VERSION, e.g. produce=2"))?;
        let api_key = api_key_by_name(api).ok_or_else(|| {
            format!(
                "bad cap {s:?}: unknown API {:?} (use a name such as produce or api_versions, \
                 or a key number)",
                api.trim()
            )
        })?;
        let max_version = version
            .trim()
            .parse::<i16>()
            .ok()
            .filter(|v| *v >= 0)
            .ok_or_else(|| {
                format!(
                    "bad cap {s:?}: version {:?} is not a number from 0 to 32767",
                    version.trim()
                )
            })?;
        Ok(VersionCap {
            api_key,
            max_version,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn who(id: Option<&str>, sw: Option<&str>, ver: Option<&str>) -> ClientIdentity {
        ClientIdentity {
            client_id: id.map(String::from),
            software_name: sw.map(String::from),
            software_version: ver.map(String::from),
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("kafka-python*", "kafka-python"));
        assert!(glob_match("kafka-python*", "kafka-python-3.0.12"));
        assert!(!glob_match("kafka-python*", "apache-kafka-python"));
        assert!(glob_match("*python*", "apache-kafka-python"));
        assert!(glob_match("3.?.*", "3.0.12"));
        assert!(!glob_match("3.?.*", "3.10.1"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("?", ""));
        assert!(glob_match("a*b*c", "aXXbYYbc"));
        assert!(!glob_match("a*b*c", "aXXbYYbcd"));
        assert!(glob_match("librdkafka", "librdkafka"));
        assert!(!glob_match("librdkafka", "Librdkafka"));
    }

    #[test]
    fn rules_parse_and_print_back() {
        let r: ThrottleRule = "software=kafka-python*:front".parse().unwrap();
        assert_eq!(r.software.as_deref(), Some("kafka-python*"));
        assert_eq!(r.placement, ThrottlePlacement::Front);
        assert_eq!(r.to_string(), "software=kafka-python*:front");
        let r: ThrottleRule = " version=2.* , client=rdkafka:omit ".parse().unwrap();
        assert_eq!(r.to_string(), "client_id=rdkafka,version=2.*:omit");
        // Matcher names and the mode in any case; the pattern as written.
        let r: ThrottleRule = "Software=Kafka-Python*:FRONT".parse().unwrap();
        assert_eq!(r.to_string(), "software=Kafka-Python*:front");
        assert_eq!(
            "Spec".parse::<ThrottlePlacement>(),
            Ok(ThrottlePlacement::Spec)
        );
        // The mode follows the last colon.
        let r: ThrottleRule = "client_id=host:1:spec".parse().unwrap();
        assert_eq!(r.client_id.as_deref(), Some("host:1"));
        assert_eq!(r.placement, ThrottlePlacement::Spec);
        for (bad, says) in [
            ("software=x", "MODE"),
            ("software=x:sideways", "unknown placement"),
            (":front", "no matcher"),
            ("software:front", "no `=`"),
            ("colour=red:front", "unknown matcher"),
            ("software=:front", "empty pattern"),
            ("software=a,software=b:omit", "twice"),
        ] {
            let e = bad.parse::<ThrottleRule>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(e.contains("expected client_id=GLOB"), "{bad}: {e}");
        }
    }

    #[test]
    fn first_matching_rule_wins_else_global() {
        let knobs = Knobs {
            placement: ThrottlePlacement::Omit,
            rules: vec![
                "software=kafka-python,version=3.*:front".parse().unwrap(),
                "client_id=rdkafka*:spec".parse().unwrap(),
                "software=*:front".parse().unwrap(),
            ],
            ..Knobs::default()
        };
        let kp3 = who(
            Some("kafka-python-3.0.12"),
            Some("kafka-python"),
            Some("3.0.12"),
        );
        let used = knobs.placement_for(&kp3);
        assert_eq!(used.placement, ThrottlePlacement::Front);
        assert_eq!(
            used.to_string(),
            "front (rule 1: software=kafka-python,version=3.*:front)"
        );
        let rd = who(Some("rdkafka"), Some("librdkafka"), Some("2.16.1"));
        assert_eq!(knobs.placement_for(&rd).rule.map(|r| r.0), Some(2));
        // `software=*` needs a software name; a client without ApiVersions v3+ gets the global.
        let kp2 = who(Some("kafka-python-2.0.2"), None, None);
        let used = knobs.placement_for(&kp2);
        assert_eq!(used.placement, ThrottlePlacement::Omit);
        assert_eq!(used.rule, None);
        assert_eq!(used.to_string(), "omit");
        let other = who(Some("x"), Some("sarama"), Some("1"));
        assert_eq!(knobs.placement_for(&other).rule.map(|r| r.0), Some(3));
    }

    #[test]
    fn caps_parse_by_name_or_key_and_clamp() {
        for text in ["produce=2", "Produce=2", "0=2", " PRODUCE = 2 "] {
            let c: VersionCap = text.parse().unwrap();
            assert_eq!((c.api_key, c.max_version), (0, 2), "{text}");
            assert_eq!(c.to_string(), "produce=2");
        }
        let c: VersionCap = "api_versions=2".parse().unwrap();
        assert_eq!(c.api_key, 18);
        assert_eq!(c.to_string(), "api_versions=2");
        assert_eq!("ApiVersions=1".parse::<VersionCap>().unwrap().api_key, 18);
        assert_eq!(
            "init-producer-id=3".parse::<VersionCap>().unwrap().api_key,
            22
        );
        for (bad, says) in [
            ("produce", "expected API=VERSION"),
            ("nosuch=2", "unknown API"),
            ("9999=2", "unknown API"),
            ("produce=-1", "not a number"),
            ("produce=x", "not a number"),
        ] {
            let e = bad.parse::<VersionCap>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let mut knobs = Knobs::default();
        knobs.caps.insert(0, 2);
        assert_eq!(knobs.capped(0, 0, 11), (0, 2));
        assert_eq!(knobs.capped(1, 0, 17), (0, 17));
        knobs.caps.insert(3, 20);
        assert_eq!(knobs.capped(3, 0, 12), (0, 12));
        knobs.caps.insert(5, 0);
        assert_eq!(knobs.capped(5, 1, 4), (1, 1));
        assert_eq!(knobs.caps_text(), vec!["produce=2", "metadata=20", "5=0"]);
    }
}
