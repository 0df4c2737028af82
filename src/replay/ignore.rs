//! Which response fields a replay does not count: those that differ by nature between two runs
//! of the same session (ids a broker makes up, where it listens, its clock), the default list,
//! plus what `--ignore` adds.

use std::collections::HashSet;

use crate::filter;
use crate::protocol::registry::{self, FieldId};

/// Fields that differ by nature, each with the reason. `*.NAME` is every field whose name ends
/// in `.NAME`; anything else is one registry name (a group: everything under it).
pub const DEFAULT: &[(&str, &str)] = &[
    (
        "*.cluster_id",
        "each cluster has its own id, and the replay's broker is another one",
    ),
    (
        "*.node_id",
        "node ids name the brokers of the cluster that answers",
    ),
    ("*.broker_id", "a node id (DescribeCluster)"),
    ("*.controller_id", "a node id"),
    ("*.leader_id", "a node id: the partition's leader"),
    ("*.replica_nodes", "node ids"),
    ("*.isr_nodes", "node ids"),
    ("*.offline_replicas", "node ids"),
    (
        "*.host",
        "where the broker listens: the replay's broker listens elsewhere",
    ),
    ("*.port", "where the broker listens"),
    ("*.topic_id", "made at random when a topic is created"),
    (
        "*.member_id",
        "made by the coordinator when a member joins (the client id and a random part)",
    ),
    ("join_group.response.leader", "the leader's member id"),
    (
        "*.client_host",
        "the address a group member connected from: where the replay runs",
    ),
    (
        "fetch.response.session_id",
        "fetch sessions are numbered by the broker",
    ),
    (
        "*.producer_id",
        "handed out by InitProducerId (in record batches too: replayed batches carry the \
         live broker's id)",
    ),
    ("*.producer_epoch", "handed out with the producer id"),
    (
        "*.log_append_time_ms",
        "the broker's clock when it appended (LogAppendTime topics)",
    ),
    (
        "*.client_instance_id",
        "made by the broker for a client's telemetry",
    ),
];

/// One `--ignore` value, checked against the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// One registry name (a group: everything under it).
    Name(FieldId),
    /// Every field whose name's last segment is this.
    Suffix(String),
}

impl Pattern {
    /// A registry name, or `*.NAME` for every field named NAME; an unknown name is refused
    /// with the closest known one (`--ignore X: unknown field `X`; did you mean `Y`?`).
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let text = text.trim();
        if let Some(id) = registry::catalog().id(text) {
            return Ok(Pattern::Name(id));
        }
        let shorts = || registry::catalog().entries.iter().map(|e| e.short);
        if let Some(short) = text.strip_prefix("*.") {
            if shorts().any(|s| s == short) {
                return Ok(Pattern::Suffix(short.to_string()));
            }
            let hint = filter::closest_name(short, shorts())
                .map(|s| format!("; did you mean `*.{s}`?"))
                .unwrap_or_default();
            return Err(format!(
                "--ignore {text}: no field is named `{short}`{hint}"
            ));
        }
        let hint = if !text.contains('.') && shorts().any(|s| s == text) {
            format!("; `*.{text}` ignores every field named `{text}`")
        } else {
            filter::registry_name_hint(text)
                .map(|h| format!("; {h}"))
                .unwrap_or_default()
        };
        Err(format!("--ignore {text}: unknown field `{text}`{hint}"))
    }

    fn matches(&self, id: FieldId) -> bool {
        match self {
            Pattern::Name(n) => *n == id,
            Pattern::Suffix(s) => registry::short_name(id) == s,
        }
    }
}

/// The fields a replay does not count.
#[derive(Debug, Clone, Default)]
pub struct IgnoreList {
    patterns: Vec<Pattern>,
    /// The registry ids the patterns match (they are checked once per field otherwise).
    ids: HashSet<FieldId>,
}

impl IgnoreList {
    /// The default list (unless `defaults` is false) and `extra`, each checked.
    pub fn new(defaults: bool, extra: &[String]) -> Result<IgnoreList, String> {
        let mut patterns = Vec::new();
        if defaults {
            for (p, _) in DEFAULT {
                patterns.push(Pattern::parse(p).expect("the default list names known fields"));
            }
        }
        for e in extra {
            patterns.push(Pattern::parse(e)?);
        }
        let ids = (0..registry::catalog().entries.len() as u32)
            .map(FieldId)
            .filter(|id| patterns.iter().any(|p| p.matches(*id)))
            .collect();
        Ok(IgnoreList { patterns, ids })
    }

    /// Whether the diff should not count this field (and what is under it).
    pub fn ignores(&self, id: FieldId) -> bool {
        self.ids.contains(&id)
    }

    /// The patterns as given, for the report.
    pub fn describe(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| match p {
                Pattern::Name(id) => registry::name(*id).to_string(),
                Pattern::Suffix(s) => format!("*.{s}"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_entry_names_response_fields() {
        for (p, why) in DEFAULT {
            assert!(!why.is_empty());
            let one = IgnoreList::new(false, &[p.to_string()]).unwrap();
            let names: Vec<&str> = one.ids.iter().map(|id| registry::name(*id)).collect();
            assert!(
                names
                    .iter()
                    .any(|n| n.contains(".response.") || n.starts_with("record_batch.")),
                "{p} matches no response field: {names:?}"
            );
        }
        let list = IgnoreList::new(true, &[]).unwrap();
        for name in [
            "metadata.response.brokers.port",
            "join_group.response.members.member_id",
            "record_batch.producer_id",
            "fetch.response.session_id",
            "produce.response.responses.partition_responses.log_append_time_ms",
        ] {
            assert!(list.ignores(registry::id(name)), "{name}");
        }
        for name in [
            "produce.response.throttle_time_ms",
            "produce.response.responses.partition_responses.base_offset",
            "join_group.response.generation_id",
            "fetch.response.responses.partitions.high_watermark",
        ] {
            assert!(!list.ignores(registry::id(name)), "{name}");
        }
    }

    #[test]
    fn ignore_names_are_checked_with_a_suggestion() {
        assert_eq!(
            Pattern::parse("produce.response.throttle_time_ms"),
            Ok(Pattern::Name(registry::id(
                "produce.response.throttle_time_ms"
            )))
        );
        assert_eq!(
            Pattern::parse("*.throttle_time_ms"),
            Ok(Pattern::Suffix("throttle_time_ms".into()))
        );
        assert_eq!(
            Pattern::parse("produce.response.throtle_time_ms").unwrap_err(),
            "--ignore produce.response.throtle_time_ms: unknown field \
             `produce.response.throtle_time_ms`; did you mean `produce.response.throttle_time_ms`?"
        );
        assert_eq!(
            Pattern::parse("*.throtle_time_ms").unwrap_err(),
            "--ignore *.throtle_time_ms: no field is named `throtle_time_ms`; did you mean \
             `*.throttle_time_ms`?"
        );
        assert_eq!(
            Pattern::parse("throttle_time_ms").unwrap_err(),
            "--ignore throttle_time_ms: unknown field `throttle_time_ms`; `*.throttle_time_ms` \
             ignores every field named `throttle_time_ms`"
        );
        assert!(IgnoreList::new(true, &["nonsense.x".into()]).is_err());
    }
}
