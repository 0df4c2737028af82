//! Topic configs: the ones this broker acts on (with Kafka's types, defaults, validation and
//! broker-level synonyms), the other names Kafka accepts for a topic (stored and shown, without
//! effect here), validation of a set of configs, and IncrementalAlterConfigs' operations.

use std::collections::BTreeMap;

use crate::log::Retention;

/// A config's type as DescribeConfigs v3+ reports it (`config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int = 3,
    Long = 5,
    Str = 2,
    List = 7,
}

/// What values a config takes.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// A number of the config's kind, at least this.
    AtLeast(i64),
    /// A number of the config's kind.
    Number,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A comma-separated list of these strings.
    ListOf(&'static [&'static str]),
}

/// A topic config this broker acts on (or reports with Kafka's default).
#[derive(Debug, Clone, Copy)]
pub struct Def {
    pub name: &'static str,
    pub default: &'static str,
    pub kind: Kind,
    check: Check,
    /// The broker config it falls back to, with that config's default when Kafka has one (a
    /// synonym DescribeConfigs lists as DEFAULT_CONFIG); `None` when Kafka's broker default is
    /// unset, where Kafka lists no synonym.
    pub broker_synonym: Option<(&'static str, &'static str)>,
    pub doc: &'static str,
}

/// The topic configs known here with their defaults, by name.
pub const DEFS: &[Def] = &[
    Def {
        name: "cleanup.policy",
        default: "delete",
        kind: Kind::List,
        check: Check::ListOf(&["compact", "delete"]),
        broker_synonym: Some(("log.cleanup.policy", "delete")),
        doc: "delete: old segments are removed by retention.ms and retention.bytes; compact: \
              this broker keeps every record (it does not compact) and retention removes \
              nothing unless delete is listed too.",
    },
    Def {
        name: "compression.type",
        default: "producer",
        kind: Kind::Str,
        check: Check::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        broker_synonym: Some(("compression.type", "producer")),
        doc: "Stored and reported; this broker keeps batches as the producer compressed them.",
    },
    Def {
        name: "max.message.bytes",
        default: "1048588",
        kind: Kind::Int,
        check: Check::AtLeast(0),
        broker_synonym: Some(("message.max.bytes", "1048588")),
        doc: "Largest record batch accepted, in bytes; a larger one is refused with \
              MESSAGE_TOO_LARGE.",
    },
    Def {
        name: "message.timestamp.type",
        default: "CreateTime",
        kind: Kind::Str,
        check: Check::OneOf(&["CreateTime", "LogAppendTime"]),
        broker_synonym: Some(("log.message.timestamp.type", "CreateTime")),
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime writes the broker's \
              time into each batch as it is appended.",
    },
    Def {
        name: "min.insync.replicas",
        default: "1",
        kind: Kind::Int,
        check: Check::AtLeast(1),
        broker_synonym: Some(("min.insync.replicas", "1")),
        doc: "Stored and reported; this single broker is the only replica.",
    },
    Def {
        name: "retention.bytes",
        default: "-1",
        kind: Kind::Long,
        check: Check::Number,
        broker_synonym: Some(("log.retention.bytes", "-1")),
        doc: "Largest size of a partition's log, in bytes, before its oldest segments are \
              removed (-1: no limit).",
    },
    Def {
        name: "retention.ms",
        default: "604800000",
        kind: Kind::Long,
        check: Check::AtLeast(-1),
        broker_synonym: None,
        doc: "How long a segment is kept after its newest record's timestamp, in ms, before it \
              is removed (-1: forever).",
    },
    Def {
        name: "segment.bytes",
        default: "1073741824",
        kind: Kind::Int,
        check: Check::AtLeast(14),
        broker_synonym: Some(("log.segment.bytes", "1073741824")),
        doc: "Size at which a partition's active segment is closed and a new one started; \
              retention removes whole segments.",
    },
    Def {
        name: "segment.ms",
        default: "604800000",
        kind: Kind::Long,
        check: Check::AtLeast(1),
        broker_synonym: None,
        doc: "Age of its first record after which a segment is closed on the next append, in ms.",
    },
];

/// Topic config names Kafka accepts that this broker stores and reports without acting on them.
const OTHER_NAMES: &[&str] = &[
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "preallocate",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "segment.index.bytes",
    "segment.jitter.ms",
    "unclean.leader.election.enable",
];

/// The definition of a config this broker acts on.
pub fn def(name: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.name == name)
}

/// Whether Kafka knows `name` as a topic config.
pub fn is_topic_config(name: &str) -> bool {
    def(name).is_some() || OTHER_NAMES.contains(&name)
}

/// Why `value` is not valid for `name` (None when it is, or when the name is not checked here).
pub fn invalid_value(name: &str, value: &str) -> Option<String> {
    let d = def(name)?;
    let bad = |why: String| {
        Some(format!(
            "Invalid value {value} for configuration {name}: {why}"
        ))
    };
    match d.check {
        Check::Number | Check::AtLeast(_) => {
            let n = match d.kind {
                Kind::Int => value.trim().parse::<i32>().map(i64::from).ok(),
                _ => value.trim().parse::<i64>().ok(),
            };
            let Some(n) = n else {
                let t = if d.kind == Kind::Int { "INT" } else { "LONG" };
                return bad(format!("Not a number of type {t}"));
            };
            match d.check {
                Check::AtLeast(min) if n < min => bad(format!("Value must be at least {min}")),
                _ => None,
            }
        }
        Check::OneOf(allowed) => (!allowed.contains(&value.trim()))
            .then(|| format!("String must be one of: {}", allowed.join(", ")))
            .and_then(bad),
        Check::ListOf(allowed) => {
            // An empty list is valid, as in Kafka (cleanup.policy: no cleanup at all).
            split_list(value)
                .iter()
                .find(|i| !allowed.contains(&i.as_str()))
                .map(|i| format!("{i:?} is not one of: {}", allowed.join(", ")))
                .and_then(bad)
        }
    }
}

/// The items of a list value (comma-separated, trimmed, empties dropped).
fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Checks a whole set of topic configs as CreateTopics and AlterConfigs take them: every name
/// a topic config, every value valid. The message says what is wrong.
pub fn validate(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in configs {
        if !is_topic_config(name) {
            return Err(format!("Unknown topic config name: {name}"));
        }
        if let Some(why) = invalid_value(name, value) {
            return Err(why);
        }
    }
    Ok(())
}

/// One IncrementalAlterConfigs operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Set,
    Delete,
    Append,
    Subtract,
}

impl Op {
    /// The wire's `config_operation` (0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT).
    pub fn from_wire(op: i8) -> Option<Op> {
        match op {
            0 => Some(Op::Set),
            1 => Some(Op::Delete),
            2 => Some(Op::Append),
            3 => Some(Op::Subtract),
            _ => None,
        }
    }
}

/// Why an incremental change was refused: INVALID_REQUEST or INVALID_CONFIG, with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Request(String),
    Config(String),
}

/// Applies IncrementalAlterConfigs operations to a topic's configs (the overrides), as Kafka
/// does: APPEND and SUBTRACT only on list configs, working on the current value (or the
/// default); then the result is validated. Returns the new overrides.
pub fn apply_incremental(
    current: &BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, Refused> {
    let mut seen = std::collections::HashSet::new();
    for (name, _, _) in ops {
        if !seen.insert(name.as_str()) {
            return Err(Refused::Request(
                "Error due to duplicate config keys".into(),
            ));
        }
    }
    let nulls: Vec<&str> = ops
        .iter()
        .filter(|(_, op, v)| *op != 1 && v.is_none())
        .map(|(n, _, _)| n.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(Refused::Request(format!(
            "Null value not supported for : {}",
            nulls.join(", ")
        )));
    }
    let mut out = current.clone();
    for (name, op, value) in ops {
        let op = Op::from_wire(*op)
            .ok_or_else(|| Refused::Request(format!("Unknown operations type {op}")))?;
        if !is_topic_config(name) {
            return Err(Refused::Config(format!(
                "Unknown topic config name: {name}"
            )));
        }
        let value = value.clone().unwrap_or_default();
        match op {
            Op::Set => {
                out.insert(name.clone(), value);
            }
            Op::Delete => {
                out.remove(name);
            }
            Op::Append | Op::Subtract => {
                let list = def(name).is_some_and(|d| d.kind == Kind::List);
                if !list {
                    let what = if op == Op::Append {
                        "APPEND to"
                    } else {
                        "SUBTRACT from"
                    };
                    return Err(Refused::Config(format!(
                        "Can't {what} key {name} because its type is not LIST."
                    )));
                }
                let old = out
                    .get(name)
                    .cloned()
                    .or_else(|| def(name).map(|d| d.default.to_string()))
                    .unwrap_or_default();
                let mut items = split_list(&old);
                let given = split_list(&value);
                if op == Op::Append {
                    for g in given {
                        if !items.contains(&g) {
                            items.push(g);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                out.insert(name.clone(), items.join(","));
            }
        }
    }
    validate(&out).map_err(Refused::Config)?;
    Ok(out)
}

/// A config's value for a topic with these overrides: the override or the default.
pub fn value_of(configs: &BTreeMap<String, String>, name: &str) -> Option<String> {
    configs
        .get(name)
        .cloned()
        .or_else(|| def(name).map(|d| d.default.to_string()))
}

/// A number-valued config for a topic, or its default.
fn number(configs: &BTreeMap<String, String>, name: &str) -> i64 {
    value_of(configs, name)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or_else(|| def(name).and_then(|d| d.default.parse().ok()))
        .unwrap_or(-1)
}

/// What the topic's configs say about retention.
pub fn retention(configs: &BTreeMap<String, String>) -> Retention {
    Retention {
        ms: number(configs, "retention.ms"),
        bytes: number(configs, "retention.bytes"),
        delete: value_of(configs, "cleanup.policy")
            .is_some_and(|v| split_list(&v).iter().any(|p| p == "delete")),
    }
}

/// `segment.bytes` and `segment.ms` for a topic.
pub fn segment_limits(configs: &BTreeMap<String, String>) -> (u64, i64) {
    (
        number(configs, "segment.bytes").max(1) as u64,
        number(configs, "segment.ms"),
    )
}

/// `max.message.bytes` for a topic.
pub fn max_message_bytes(configs: &BTreeMap<String, String>) -> usize {
    number(configs, "max.message.bytes").max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn validates_types_ranges_and_names() {
        assert!(validate(&map(&[
            ("retention.ms", "-1"),
            ("cleanup.policy", "compact,delete")
        ]))
        .is_ok());
        let bad = |k: &str, v: &str| validate(&map(&[(k, v)])).unwrap_err();
        assert!(bad("retention.ms", "-2").contains("at least -1"));
        assert!(bad("retention.ms", "soon").contains("LONG"));
        assert!(bad("segment.bytes", "13").contains("at least 14"));
        assert!(bad("segment.bytes", "4294967296").contains("INT"));
        assert!(bad("max.message.bytes", "-1").contains("at least 0"));
        assert!(bad("message.timestamp.type", "Now").contains("CreateTime, LogAppendTime"));
        assert!(bad("cleanup.policy", "delete,forever").contains("forever"));
        assert!(validate(&map(&[("cleanup.policy", "")])).is_ok());
        assert!(bad("no.such.config", "1").contains("Unknown topic config name"));
        // Known to Kafka but not acted on here: stored as given.
        assert!(validate(&map(&[("min.compaction.lag.ms", "5")])).is_ok());
    }

    #[test]
    fn incremental_operations() {
        let cur = map(&[("retention.ms", "1000")]);
        let op = |n: &str, o: i8, v: Option<&str>| (n.to_string(), o, v.map(String::from));
        let out = apply_incremental(
            &cur,
            &[
                op("retention.ms", 1, None),
                op("segment.bytes", 0, Some("1024")),
                op("cleanup.policy", 2, Some("compact")),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            map(&[
                ("cleanup.policy", "delete,compact"),
                ("segment.bytes", "1024")
            ])
        );
        let out = apply_incremental(&out, &[op("cleanup.policy", 3, Some("delete"))]).unwrap();
        assert_eq!(out.get("cleanup.policy").unwrap(), "compact");
        // Subtracting every item leaves an empty list: no cleanup (and no retention).
        let none = apply_incremental(&out, &[op("cleanup.policy", 3, Some("compact"))]).unwrap();
        assert_eq!(none.get("cleanup.policy").unwrap(), "");
        assert!(!retention(&none).delete);
        assert!(matches!(
            apply_incremental(&cur, &[op("retention.ms", 2, Some("5"))]),
            Err(Refused::Config(m)) if m.contains("not LIST")
        ));
        assert!(matches!(
            apply_incremental(&cur, &[op("retention.ms", 0, None)]),
            Err(Refused::Request(m)) if m.contains("Null value")
        ));
        assert!(matches!(
            apply_incremental(&cur, &[op("retention.ms", 7, Some("1"))]),
            Err(Refused::Request(_))
        ));
        assert!(matches!(
            apply_incremental(
                &cur,
                &[op("retention.ms", 0, Some("1")), op("retention.ms", 1, None)]
            ),
            Err(Refused::Request(m)) if m.contains("duplicate")
        ));
        assert!(matches!(
            apply_incremental(&cur, &[op("retention.ms", 0, Some("x"))]),
            Err(Refused::Config(_))
        ));
    }

    #[test]
    fn effective_settings() {
        let r = retention(&BTreeMap::new());
        assert_eq!((r.ms, r.bytes, r.delete), (604_800_000, -1, true));
        let r = retention(&map(&[("cleanup.policy", "compact")]));
        assert!(!r.delete);
        assert_eq!(
            segment_limits(&map(&[("segment.bytes", "100")])),
            (100, 604_800_000)
        );
        assert_eq!(max_message_bytes(&BTreeMap::new()), 1_048_588);
    }
}
