//! What a rule matches: a client (by client id, software name and version, with `*` and `?`
//! globs), and for mutation and fault rules also the API and its version. Every kind of rule
//! reads and writes its matchers here, so they all mean the same thing.

use std::fmt;

use serde::Serialize;

use super::caps::{api_key_by_name, api_snake_name};
use super::ClientIdentity;

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

/// Globs on what is known of a client; a missing one matches any client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientMatch {
    pub client_id: Option<String>,
    pub software: Option<String>,
    pub version: Option<String>,
}

impl ClientMatch {
    /// Whether every glob matches the client. A glob on a property the client did not send (no
    /// client id, no ApiVersions v3+) does not match, not even `*`.
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

    pub fn is_empty(&self) -> bool {
        self.client_id.is_none() && self.software.is_none() && self.version.is_none()
    }

    /// Takes one `key=GLOB` matcher if `key` (lower-cased) is a client matcher (`client_id`,
    /// `client`, `software`, `version`); `None` for other keys.
    fn take(&mut self, key: &str, pattern: &str) -> Option<Result<(), String>> {
        let slot = match key {
            "client_id" | "client" => &mut self.client_id,
            "software" => &mut self.software,
            "version" => &mut self.version,
            _ => return None,
        };
        Some(if slot.is_some() {
            Err(format!("{key} given twice"))
        } else {
            *slot = Some(pattern.to_string());
            Ok(())
        })
    }

    /// `client_id=GLOB,software=GLOB,version=GLOB` (only those given), in that order.
    fn parts(&self) -> Vec<String> {
        [
            ("client_id", &self.client_id),
            ("software", &self.software),
            ("version", &self.version),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect()
    }

    /// Parses a comma list of client matchers (`client_id=rdkafka*,software=librdkafka`), any
    /// order, matcher names in any case, the globs as typed; at least one.
    pub fn parse(text: &str) -> Result<ClientMatch, String> {
        let mut m = ClientMatch::default();
        for_each_matcher(text, |key, pattern| {
            m.take(key, pattern).unwrap_or_else(|| {
                Err(format!(
                    "unknown matcher {key:?}: expected client_id, software or version"
                ))
            })
        })?;
        Ok(m)
    }
}

impl fmt::Display for ClientMatch {
    /// The canonical text form (matchers in the order client_id, software, version).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.parts().join(","))
    }
}

/// Calls `take` with each `key=pattern` of a comma list (key lower-cased, both trimmed).
fn for_each_matcher(
    text: &str,
    mut take: impl FnMut(&str, &str) -> Result<(), String>,
) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("no matcher before the `:`".into());
    }
    for part in text.split(',') {
        let (key, pattern) = part
            .split_once('=')
            .ok_or_else(|| format!("matcher {:?} has no `=`", part.trim()))?;
        let (key, pattern) = (key.trim().to_ascii_lowercase(), pattern.trim());
        if pattern.is_empty() {
            return Err(format!("empty pattern for {key} (use * for any)"));
        }
        take(&key, pattern)?;
    }
    Ok(())
}

/// A range of API versions: `A-B`, `A` or `A+`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VersionRange {
    pub min: i16,
    pub max: i16,
}

impl VersionRange {
    pub fn contains(&self, v: i16) -> bool {
        (self.min..=self.max).contains(&v)
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (a, i16::MAX) => write!(f, "{a}+"),
            (a, b) if a == b => write!(f, "{a}"),
            (a, b) => write!(f, "{a}-{b}"),
        }
    }
}

impl std::str::FromStr for VersionRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |t: &str| {
            t.trim()
                .parse::<i16>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| format!("versions {s:?}: {t:?} is not a version number"))
        };
        let s = s.trim();
        let r = if let Some(a) = s.strip_suffix('+') {
            VersionRange {
                min: num(a)?,
                max: i16::MAX,
            }
        } else if let Some((a, b)) = s.split_once('-') {
            VersionRange {
                min: num(a)?,
                max: num(b)?,
            }
        } else {
            let v = num(s)?;
            VersionRange { min: v, max: v }
        };
        if r.min > r.max {
            return Err(format!("versions {s:?}: {} is above {}", r.min, r.max));
        }
        Ok(r)
    }
}

/// What a mutation or fault rule matches: an API, its versions and a client; what is not
/// given matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestMatch {
    pub api: Option<i16>,
    pub versions: Option<VersionRange>,
    pub client: ClientMatch,
}

impl RequestMatch {
    /// Whether a request of `api` at `version` from this client matches.
    pub fn matches(&self, api: i16, version: i16, who: &ClientIdentity) -> bool {
        self.api.is_none_or(|a| a == api)
            && self.versions.is_none_or(|r| r.contains(version))
            && self.client.matches(who)
    }

    pub fn is_empty(&self) -> bool {
        self.api.is_none() && self.versions.is_none() && self.client.is_empty()
    }

    /// Parses `api=NAME|KEY,versions=A-B|A|A+,client_id=GLOB,software=GLOB,version=GLOB` (any
    /// of them, any order).
    pub fn parse(text: &str) -> Result<RequestMatch, String> {
        let mut m = RequestMatch::default();
        for_each_matcher(text, |key, value| match key {
            "api" => {
                if m.api.is_some() {
                    return Err("api given twice".into());
                }
                m.api = Some(api_key_by_name(value).ok_or_else(|| {
                    format!(
                        "unknown API {value:?} (use a name such as produce or find_coordinator, \
                         or a key number)"
                    )
                })?);
                Ok(())
            }
            "versions" => {
                if m.versions.is_some() {
                    return Err("versions given twice".into());
                }
                m.versions = Some(value.parse()?);
                Ok(())
            }
            _ => m.client.take(key, value).unwrap_or_else(|| {
                Err(format!(
                    "unknown matcher {key:?}: expected api, versions, client_id, software or \
                     version"
                ))
            }),
        })?;
        Ok(m)
    }
}

impl fmt::Display for RequestMatch {
    /// `api=produce,versions=1-8,client_id=…` (only what is given; empty when nothing is).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(a) = self.api {
            parts.push(format!("api={}", api_snake_name(a)));
        }
        if let Some(v) = self.versions {
            parts.push(format!("versions={v}"));
        }
        parts.extend(self.client.parts());
        f.write_str(&parts.join(","))
    }
}

/// Splits a rule `[MATCH:] ACTION` where ACTION starts with one of `keywords` (any case): the
/// MATCH text (None without one) and the ACTION text. The action is found at the first `:`
/// followed by a keyword, so a glob may hold a `:` itself.
pub fn split_rule<'a>(text: &'a str, keywords: &[&str]) -> (Option<&'a str>, &'a str) {
    let starts_action = |s: &str| {
        let word = s.split_whitespace().next().unwrap_or("");
        keywords.iter().any(|k| k.eq_ignore_ascii_case(word))
    };
    let text = text.trim();
    if starts_action(text) {
        return (None, text);
    }
    for (i, _) in text.match_indices(':') {
        let rest = text[i + 1..].trim_start();
        if starts_action(rest) {
            return (Some(&text[..i]), rest);
        }
    }
    (None, text)
}

/// `MATCH:ACTION`, or `ACTION` alone when nothing is matched on.
pub fn join_rule(matcher: &RequestMatch, action: &dyn fmt::Display) -> String {
    if matcher.is_empty() {
        action.to_string()
    } else {
        format!("{matcher}:{action}")
    }
}
