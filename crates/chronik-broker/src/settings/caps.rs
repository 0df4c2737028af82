//! Version caps: the highest version of an API that ApiVersions advertises, and the API names
//! every setting reads and writes.

use std::fmt;

use serde::Serialize;

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

/// An API's name in snake_case (`ApiVersions` → `api_versions`, the schema table's registry
/// prefix), as caps and rules are written; the key number for an API the table does not know.
pub fn api_snake_name(key: i16) -> String {
    match chronik_protocol::registry::api(key) {
        Some(api) => api.snake.clone(),
        None => key.to_string(),
    }
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
