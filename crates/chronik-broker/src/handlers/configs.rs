//! Configs: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs, on topics (the configs
//! of `topic_config`) and on this broker (reported, fixed: a change is refused as Kafka refuses
//! a config it cannot update dynamically).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::s;
use crate::state::Shared;
use crate::topic_config::{self, Refused};
use chronik_protocol::errors;

/// ConfigResource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// DescribeConfigs config sources.
const TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

/// DescribeConfigs config types.
const BOOLEAN: i8 = 1;
const STRING: i8 = 2;
const INT: i8 = 3;
const LONG: i8 = 5;
const LIST: i8 = 7;

/// One described config, before it is put on the wire.
struct Described {
    name: String,
    value: String,
    source: i8,
    read_only: bool,
    config_type: i8,
    synonyms: Vec<(String, String, i8)>,
    doc: Option<&'static str>,
}

/// A topic's configs: every config of [`topic_config::DEFS`] (the override or Kafka's
/// default) and any other override, as Kafka describes them (source TOPIC_CONFIG when set,
/// else DEFAULT_CONFIG; synonyms: the override, then the broker config with its default).
fn describe_topic(configs: &BTreeMap<String, String>) -> Vec<Described> {
    let mut out: Vec<Described> = topic_config::DEFS
        .iter()
        .map(|d| {
            let set = configs.get(d.name);
            let value = set.cloned().unwrap_or_else(|| d.default.to_string());
            let mut synonyms = Vec::new();
            if let Some(v) = set {
                synonyms.push((d.name.to_string(), v.clone(), TOPIC_CONFIG));
            }
            if let Some((b, v)) = d.broker_synonym {
                synonyms.push((b.to_string(), v.to_string(), DEFAULT_CONFIG));
            }
            Described {
                name: d.name.to_string(),
                value,
                source: if set.is_some() {
                    TOPIC_CONFIG
                } else {
                    DEFAULT_CONFIG
                },
                read_only: false,
                config_type: d.kind as i8,
                synonyms,
                doc: Some(d.doc),
            }
        })
        .collect();
    for (k, v) in configs {
        if topic_config::def(k).is_none() {
            out.push(Described {
                name: k.clone(),
                value: v.clone(),
                source: TOPIC_CONFIG,
                read_only: false,
                config_type: 0,
                synonyms: vec![(k.clone(), v.clone(), TOPIC_CONFIG)],
                doc: Some("Stored and reported; this broker does not act on it."),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// This broker's configs (read-only: none can be changed while it runs).
fn describe_broker(shared: &Shared) -> Vec<Described> {
    let c = &shared.config;
    let check_ms = c.retention_check_interval.as_millis().to_string();
    let entries: Vec<(&str, String, &str, i8)> = vec![
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            "true",
            BOOLEAN,
        ),
        ("broker.id", c.node_id.to_string(), "-1", INT),
        ("compression.type", "producer".into(), "producer", STRING),
        ("log.cleanup.policy", "delete".into(), "delete", LIST),
        (
            "log.message.timestamp.type",
            "CreateTime".into(),
            "CreateTime",
            STRING,
        ),
        ("log.retention.bytes", "-1".into(), "-1", LONG),
        ("log.retention.check.interval.ms", check_ms, "300000", LONG),
        ("log.retention.hours", "168".into(), "168", INT),
        ("log.segment.bytes", "1073741824".into(), "1073741824", INT),
        ("message.max.bytes", "1048588".into(), "1048588", INT),
        ("min.insync.replicas", "1".into(), "1", INT),
        ("node.id", c.node_id.to_string(), "-1", INT),
        ("num.partitions", c.default_partitions.to_string(), "1", INT),
        (
            "socket.request.max.bytes",
            c.max_frame_bytes.to_string(),
            "104857600",
            INT,
        ),
    ];
    entries
        .into_iter()
        .map(|(name, value, default, config_type)| {
            let source = if value == default {
                DEFAULT_CONFIG
            } else {
                STATIC_BROKER_CONFIG
            };
            let mut synonyms = vec![(name.to_string(), value.clone(), source)];
            if source != DEFAULT_CONFIG {
                synonyms.push((name.to_string(), default.to_string(), DEFAULT_CONFIG));
            }
            Described {
                name: name.to_string(),
                value,
                source,
                read_only: true,
                config_type,
                synonyms,
                doc: Some("A setting of this broker, fixed while it runs."),
            }
        })
        .collect()
}

/// Checks a BROKER resource's name as Kafka does: empty (the cluster default) or this node's id.
fn check_broker_name(shared: &Shared, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Ok(());
    }
    match name.parse::<i32>() {
        Err(_) => Err(format!("Node id must be an integer, but it is: {name}")),
        Ok(id) if id != shared.config.node_id => Err(format!(
            "Unexpected broker id, expected {}, but received {name}",
            shared.config.node_id
        )),
        Ok(_) => Ok(()),
    }
}

/// DescribeConfigs: a topic's configs (every known one, set or default) or this broker's.
pub(super) fn describe_configs(
    shared: &Shared,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let synonyms_wanted = version >= 1 && req.include_synonyms;
    let docs_wanted = version >= 3 && req.include_documentation;
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let r = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let fail = |r: DescribeConfigsResult, code, msg: Option<String>| {
                r.with_error_code(code).with_error_message(msg.map(s))
            };
            let entries = match res.resource_type {
                TOPIC => {
                    let Some(t) = shared.topics.get(res.resource_name.as_str()) else {
                        return fail(r, errors::UNKNOWN_TOPIC_OR_PARTITION, None);
                    };
                    describe_topic(&t.configs())
                }
                BROKER => {
                    if let Err(m) = check_broker_name(shared, res.resource_name.as_str()) {
                        return fail(r, errors::INVALID_REQUEST, Some(m));
                    }
                    if res.resource_name.is_empty() {
                        // The cluster-wide dynamic defaults: none are set here.
                        Vec::new()
                    } else {
                        describe_broker(shared)
                    }
                }
                other => {
                    return fail(
                        r,
                        errors::INVALID_REQUEST,
                        Some(format!("Unsupported resource type: {other}")),
                    )
                }
            };
            let wanted = res.configuration_keys.as_ref().filter(|k| !k.is_empty());
            let configs = entries
                .into_iter()
                .filter(|d| wanted.is_none_or(|w| w.iter().any(|x| x.as_str() == d.name)))
                .map(|d| {
                    let mut c = DescribeConfigsResourceResult::default()
                        .with_name(s(d.name))
                        .with_value(Some(s(d.value)))
                        .with_read_only(d.read_only);
                    if version == 0 {
                        c.is_default = d.source == DEFAULT_CONFIG;
                    } else {
                        c.config_source = d.source;
                    }
                    if synonyms_wanted {
                        c.synonyms = d
                            .synonyms
                            .into_iter()
                            .map(|(n, v, src)| {
                                DescribeConfigsSynonym::default()
                                    .with_name(s(n))
                                    .with_value(Some(s(v)))
                                    .with_source(src)
                            })
                            .collect();
                    }
                    if version >= 3 {
                        c.config_type = d.config_type;
                        c.documentation = if docs_wanted { d.doc.map(s) } else { None };
                    }
                    c
                })
                .collect();
            r.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// (type, name) pairs named more than once in a request: Kafka refuses each such resource.
fn duplicates<'a>(resources: impl Iterator<Item = (i8, &'a StrBytes)>) -> HashSet<(i8, String)> {
    let mut seen = HashSet::new();
    let mut dup = HashSet::new();
    for (t, n) in resources {
        if !seen.insert((t, n.to_string())) {
            dup.insert((t, n.to_string()));
        }
    }
    dup
}

/// The outcome of one resource's change: OK, or an error code and message.
type Change = Result<(), (i16, String)>;

/// A change to this broker's configs: a wrong broker id is INVALID_REQUEST; the configs named
/// cannot be changed while it runs (INVALID_REQUEST, as Kafka answers for a config that is not
/// dynamic); an empty change is accepted.
fn change_broker(shared: &Shared, name: &str, configs: &[String]) -> Change {
    check_broker_name(shared, name).map_err(|m| (errors::INVALID_REQUEST, m))?;
    if configs.is_empty() {
        return Ok(());
    }
    Err((
        errors::INVALID_REQUEST,
        format!(
            "Cannot update these configs dynamically: {}",
            configs.join(", ")
        ),
    ))
}

/// What AlterConfigs and IncrementalAlterConfigs do with one resource: a resource named twice
/// in the request is INVALID_REQUEST; a topic must exist, gets the overrides `next` makes of
/// its current ones, and keeps them unless `validate_only`; a broker's change is judged by
/// `broker`; other resource types are unsupported. A refusal is logged, as `what`.
#[allow(clippy::too_many_arguments)]
fn change_resource(
    shared: &Shared,
    what: &str,
    named_twice: bool,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    next: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, (i16, String)>,
    broker: impl FnOnce() -> Change,
) -> Change {
    let outcome = if named_twice {
        Err((
            errors::INVALID_REQUEST,
            "Each resource must appear at most once.".into(),
        ))
    } else {
        match resource_type {
            TOPIC => match shared.topics.get(name) {
                None => Err((
                    errors::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("Topic {name} does not exist."),
                )),
                Some(topic) => next(&topic.configs()).and_then(|configs| {
                    if validate_only {
                        return Ok(());
                    }
                    shared
                        .topics
                        .set_configs(&topic, configs)
                        .map_err(|e| (errors::KAFKA_STORAGE_ERROR, e.to_string()))
                }),
            },
            BROKER => broker(),
            other => Err((
                errors::INVALID_REQUEST,
                format!("Unsupported resource type: {other}"),
            )),
        }
    };
    if let Err((code, m)) = &outcome {
        tracing::info!(resource = %name, code, reason = %m, "{what} refused");
    }
    outcome
}

/// AlterConfigs: a topic's overrides are replaced by the given set (entries without a value are
/// left out), after every name and value is checked (INVALID_CONFIG); broker configs are fixed.
pub(super) fn alter_configs(shared: &Shared, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let dup = duplicates(
        req.resources
            .iter()
            .map(|r| (r.resource_type, &r.resource_name)),
    );
    let validate_only = req.validate_only;
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let outcome = change_resource(
                shared,
                "alter configs",
                dup.contains(&(res.resource_type, name.clone())),
                res.resource_type,
                &name,
                validate_only,
                |_| {
                    let configs: BTreeMap<String, String> = res
                        .configs
                        .iter()
                        .filter_map(|c| {
                            c.value
                                .as_ref()
                                .map(|v| (c.name.to_string(), v.to_string()))
                        })
                        .collect();
                    topic_config::validate(&configs)
                        .map(|()| configs)
                        .map_err(|m| (errors::INVALID_CONFIG, m))
                },
                || {
                    let names: Vec<String> =
                        res.configs.iter().map(|c| c.name.to_string()).collect();
                    change_broker(shared, &name, &names)
                },
            );
            let r = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name);
            match outcome {
                Ok(()) => r,
                Err((code, m)) => r.with_error_code(code).with_error_message(Some(s(m))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on a topic's overrides (APPEND and
/// SUBTRACT only on list configs), the result checked as AlterConfigs checks it and stored unless
/// `validate_only`; broker configs are fixed.
pub(super) fn incremental_alter_configs(
    shared: &Shared,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let dup = duplicates(
        req.resources
            .iter()
            .map(|r| (r.resource_type, &r.resource_name)),
    );
    let validate_only = req.validate_only;
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let ops: Vec<(String, i8, Option<String>)> = res
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect();
            let outcome = change_resource(
                shared,
                "incremental alter configs",
                dup.contains(&(res.resource_type, name.clone())),
                res.resource_type,
                &name,
                validate_only,
                |current| {
                    topic_config::apply_incremental(current, &ops).map_err(|r| match r {
                        Refused::Request(m) => (errors::INVALID_REQUEST, m),
                        Refused::Config(m) => (errors::INVALID_CONFIG, m),
                    })
                },
                || match ops.iter().find(|(_, op, _)| !(0..=3).contains(op)) {
                    Some((_, op, _)) => Err((
                        errors::INVALID_REQUEST,
                        format!("Unknown operations type {op}"),
                    )),
                    None => {
                        let names: Vec<String> = ops.iter().map(|(n, _, _)| n.clone()).collect();
                        change_broker(shared, &name, &names)
                    }
                },
            );
            let r = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name);
            match outcome {
                Ok(()) => r,
                Err((code, m)) => r.with_error_code(code).with_error_message(Some(s(m))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
