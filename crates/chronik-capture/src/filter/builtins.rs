//! The built-in names: facts about an exchange that are not registry fields, or that summarise
//! several of them.

use super::literal::{Kind, Ty};
use chronik_protocol::lint::{Code, Level};

/// A built-in name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Api,
    Version,
    Conn,
    Id,
    Corr,
    Client,
    Peer,
    Software,
    Health,
    Latency,
    Size,
    RequestSize,
    ResponseSize,
    Status,
    Malformed,
    Placement,
    Error,
    Throttle,
    Lint,
    LintCode,
    LintLevel,
    LintMessage,
}

/// Words of `health`.
pub(crate) const HEALTH: &[&str] = &["healthy", "retrying", "stalled", "disconnecting"];
/// Words of `status`.
pub(crate) const STATUS: &[&str] = &[
    "answered",
    "no_response",
    "unanswered",
    "malformed",
    "refused",
];
/// Words of `placement`.
pub(crate) const PLACEMENT: &[&str] = &["spec", "front", "omit"];

/// Every built-in name with a one-line description, for help and completion.
pub const BUILTINS: &[(&str, &str)] = &[
    ("api", "API key, by number or name (api == Produce)"),
    ("version", "API version of the request"),
    ("conn", "connection id"),
    ("id", "sequence number of the exchange in the store"),
    ("corr", "correlation id"),
    ("client", "client id from the request header"),
    ("peer", "client address ip:port"),
    (
        "software",
        "client software \"name version\" (ApiVersions v3+)",
    ),
    (
        "health",
        "client state: healthy, retrying, stalled, disconnecting",
    ),
    (
        "latency",
        "request to response (250us, 50ms, 1.5s; a bare number is ms)",
    ),
    ("size", "bytes of both frames"),
    ("request.size", "bytes of the request frame"),
    ("response.size", "bytes of the response frame"),
    (
        "status",
        "answered, no_response, unanswered, malformed, refused",
    ),
    (
        "malformed",
        "the exchange or a dissection of it stopped with an error",
    ),
    (
        "placement",
        "throttle_time_ms placement of a ProduceResponse: spec, front, omit",
    ),
    (
        "error",
        "any error_code of the response, by number or name (0 when none)",
    ),
    ("throttle", "any throttle_time_ms of the response"),
    ("lint", "the lint names something wrong with either frame"),
    (
        "lint.code",
        "any lint finding's code (lint.code == field-misplaced)",
    ),
    (
        "lint.level",
        "any lint finding's level: info, warning, error",
    ),
    (
        "lint.message",
        "any lint finding's message (lint.message ~ throttle)",
    ),
];

impl Builtin {
    pub(crate) const ALL: [Builtin; 22] = [
        Builtin::Api,
        Builtin::Version,
        Builtin::Conn,
        Builtin::Id,
        Builtin::Corr,
        Builtin::Client,
        Builtin::Peer,
        Builtin::Software,
        Builtin::Health,
        Builtin::Latency,
        Builtin::Size,
        Builtin::RequestSize,
        Builtin::ResponseSize,
        Builtin::Status,
        Builtin::Malformed,
        Builtin::Placement,
        Builtin::Error,
        Builtin::Throttle,
        Builtin::Lint,
        Builtin::LintCode,
        Builtin::LintLevel,
        Builtin::LintMessage,
    ];

    /// The name as written in filters.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Builtin::Api => "api",
            Builtin::Version => "version",
            Builtin::Conn => "conn",
            Builtin::Id => "id",
            Builtin::Corr => "corr",
            Builtin::Client => "client",
            Builtin::Peer => "peer",
            Builtin::Software => "software",
            Builtin::Health => "health",
            Builtin::Latency => "latency",
            Builtin::Size => "size",
            Builtin::RequestSize => "request.size",
            Builtin::ResponseSize => "response.size",
            Builtin::Status => "status",
            Builtin::Malformed => "malformed",
            Builtin::Placement => "placement",
            Builtin::Error => "error",
            Builtin::Throttle => "throttle",
            Builtin::Lint => "lint",
            Builtin::LintCode => "lint.code",
            Builtin::LintLevel => "lint.level",
            Builtin::LintMessage => "lint.message",
        }
    }

    /// The built-in of a (lower-cased) name.
    pub(crate) fn lookup(name: &str) -> Option<Builtin> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// What its values are.
    pub(crate) fn ty(self) -> Ty {
        let (kind, nullable) = match self {
            Builtin::Api => (Kind::Api, false),
            Builtin::Version | Builtin::Conn | Builtin::Id | Builtin::Corr => (Kind::Int, false),
            Builtin::Client | Builtin::Software => (Kind::Text, true),
            Builtin::Peer => (Kind::Text, false),
            Builtin::Health => (Kind::Enum(HEALTH), true),
            Builtin::Latency => (Kind::Duration, false),
            Builtin::Size | Builtin::RequestSize | Builtin::ResponseSize => (Kind::Size, false),
            Builtin::Status => (Kind::Enum(STATUS), false),
            Builtin::Malformed => (Kind::Bool, false),
            Builtin::Placement => (Kind::Enum(PLACEMENT), false),
            Builtin::Error => (Kind::Error, false),
            Builtin::Throttle => (Kind::Int, false),
            Builtin::Lint => (Kind::Bool, false),
            Builtin::LintCode => (Kind::Enum(Code::WORDS), false),
            Builtin::LintLevel => (Kind::Enum(Level::WORDS), false),
            Builtin::LintMessage => (Kind::Text, false),
        };
        Ty { kind, nullable }
    }

    /// Whether it reads a dissection rather than the exchange alone.
    pub(crate) fn needs_dissection(self) -> bool {
        matches!(
            self,
            Builtin::Malformed
                | Builtin::Error
                | Builtin::Throttle
                | Builtin::Lint
                | Builtin::LintCode
                | Builtin::LintLevel
                | Builtin::LintMessage
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_table_agree() {
        assert_eq!(Builtin::ALL.len(), BUILTINS.len());
        for (i, b) in Builtin::ALL.into_iter().enumerate() {
            assert_eq!(b.name(), BUILTINS[i].0);
            assert_eq!(Builtin::lookup(BUILTINS[i].0), Some(b));
        }
    }
}
