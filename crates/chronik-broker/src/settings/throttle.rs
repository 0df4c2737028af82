//! Per-client placement rules: which `throttle_time_ms` placement a client's ProduceResponses
//! get, over the global mode.

use std::fmt;

use serde::Serialize;

use super::matcher::ClientMatch;
use super::{ClientIdentity, ThrottlePlacement};

/// A per-client placement rule: every matcher must match; the first matching rule wins over
/// the global mode. Text form: `client_id=GLOB,software=GLOB,version=GLOB:MODE` (any non-empty
/// subset of the matchers; `*` and `?` wildcards), e.g. `software=kafka-python*:front`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThrottleRule {
    pub client: ClientMatch,
    pub placement: ThrottlePlacement,
}

impl ThrottleRule {
    /// Whether every matcher of the rule matches the client. A matcher on a property the client
    /// did not send (no client id, no ApiVersions v3+) does not match, not even `*`.
    pub fn matches(&self, who: &ClientIdentity) -> bool {
        self.client.matches(who)
    }
}

impl fmt::Display for ThrottleRule {
    /// The canonical text form (matchers in the order client_id, software, version).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.client, self.placement)
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
        if matchers.trim().is_empty() {
            return Err(bad("no matcher before the mode".into()));
        }
        let client = ClientMatch::parse(matchers).map_err(bad)?;
        Ok(ThrottleRule { client, placement })
    }
}
