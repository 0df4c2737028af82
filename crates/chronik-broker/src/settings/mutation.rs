//! Mutation rules: which responses get which mutation (`chronik_protocol::mutate`). Every rule
//! that matches a response is applied to it, in the order of the rules.

use std::fmt;

use serde::Serialize;

use super::matcher::{join_rule, split_rule, RequestMatch};
use super::ClientIdentity;
use chronik_protocol::mutate::{self, Mutation};

/// A mutation and the responses it applies to. Text form `[MATCH:] MUTATION`, e.g.
/// `api=produce,versions=1-8:move produce.response.throttle_time_ms before
/// produce.response.responses`. A mutation of a field applies only to its API's responses (the
/// field says which); `corrupt crc` only to responses with record sets.
#[derive(Debug, Clone, PartialEq)]
pub struct MutationRule {
    pub matcher: RequestMatch,
    pub mutation: Mutation,
}

impl MutationRule {
    /// Whether the rule applies to a response to a request of `api` at `version` from this
    /// client.
    pub fn matches(&self, api: i16, version: i16, who: &ClientIdentity) -> bool {
        self.mutation.concerns(api) && self.matcher.matches(api, version, who)
    }
}

impl fmt::Display for MutationRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join_rule(&self.matcher, &self.mutation))
    }
}

impl Serialize for MutationRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for MutationRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: String| {
            format!(
                "bad mutation rule {:?}: {why} (expected [MATCH:] MUTATION; MATCH: api=NAME, \
                 versions=A-B, client_id=GLOB, software=GLOB, version=GLOB; MUTATION: {})",
                s.trim(),
                mutate::SYNTAX
            )
        };
        let (matcher, action) = split_rule(s, &mutate::KEYWORDS);
        let matcher = match matcher {
            Some(m) => RequestMatch::parse(m).map_err(bad)?,
            None => RequestMatch::default(),
        };
        let mutation: Mutation = action.parse().map_err(bad)?;
        if let (Some(api), Some(apis)) = (matcher.api, mutation.apis()) {
            if !apis.contains(&api) {
                let names: Vec<String> = apis
                    .iter()
                    .map(|k| chronik_protocol::registry::api_name(*k))
                    .collect();
                return Err(bad(format!(
                    "it changes {} responses only, and the rule matches {}",
                    names.join(", "),
                    chronik_protocol::registry::api_name(api)
                )));
            }
        }
        Ok(MutationRule { matcher, mutation })
    }
}
