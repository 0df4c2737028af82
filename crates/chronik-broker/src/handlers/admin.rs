//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs and
//! AlterConfigs.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::s;
use crate::state::Shared;
use crate::topics::{invalid_topic_name, Topics, TOPIC_DEFAULTS};
use chronik_protocol::errors;

/// Checks topic configs given as (name, value) pairs; entries without a value are skipped.
fn parse_configs<'a>(
    configs: impl IntoIterator<Item = (&'a StrBytes, Option<&'a StrBytes>)>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (name, value) in configs {
        let key = name.to_string();
        let Some(value) = value.map(|v| v.to_string()) else {
            continue;
        };
        let numeric = [
            "max.message.bytes",
            "retention.bytes",
            "retention.ms",
            "segment.bytes",
        ];
        if numeric.contains(&key.as_str()) && value.parse::<i64>().is_err() {
            return Err(format!("{key} must be a number, not {value:?}"));
        }
        if key == "message.timestamp.type" && value != "CreateTime" && value != "LogAppendTime" {
            return Err(format!(
                "message.timestamp.type must be CreateTime or LogAppendTime, not {value:?}"
            ));
        }
        out.insert(key, value);
    }
    Ok(out)
}

/// CreateTopics: each topic is checked (name, partitions, replication factor 1, configs, the
/// broker's caps) and created unless `validate_only`; v5+ answers with the configs in force.
pub(super) fn create_topics(
    shared: &Shared,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let mut r = CreatableTopicResult::default().with_name(t.name.clone());
            let fail = |r: CreatableTopicResult, c: i16, m: String| {
                let r = r.with_error_code(c);
                if version >= 1 {
                    r.with_error_message(Some(s(m)))
                } else {
                    r
                }
            };
            if let Some(why) = invalid_topic_name(&name) {
                return fail(r, errors::INVALID_TOPIC_EXCEPTION, why);
            }
            let partitions = if !t.assignments.is_empty() {
                t.assignments.len() as i32
            } else if t.num_partitions == -1 {
                shared.config.default_partitions
            } else {
                t.num_partitions
            };
            if partitions <= 0 || partitions > 10_000 {
                return fail(
                    r,
                    errors::INVALID_PARTITIONS,
                    format!("{partitions} partitions"),
                );
            }
            if t.replication_factor > 1 || t.replication_factor == 0 || t.replication_factor < -1 {
                return fail(
                    r,
                    errors::INVALID_REPLICATION_FACTOR,
                    format!(
                        "replication factor {} (this is a single broker)",
                        t.replication_factor
                    ),
                );
            }
            let configs = match parse_configs(t.configs.iter().map(|c| (&c.name, c.value.as_ref())))
            {
                Ok(c) => c,
                Err(m) => return fail(r, errors::INVALID_CONFIG, m),
            };
            if shared.topics.get(&name).is_some() {
                return fail(
                    r,
                    errors::TOPIC_ALREADY_EXISTS,
                    format!("Topic '{name}' already exists."),
                );
            }
            if let Err(why) = shared.topics.room_for(1, partitions as i64) {
                return fail(r, errors::POLICY_VIOLATION, why);
            }
            let id = if req.validate_only {
                Uuid::nil()
            } else {
                match shared.topics.create(&name, partitions, configs.clone()) {
                    Ok(Ok(t)) => t.id,
                    Ok(Err(_)) => {
                        return fail(
                            r,
                            errors::TOPIC_ALREADY_EXISTS,
                            format!("Topic '{name}' already exists."),
                        )
                    }
                    Err(e) => return fail(r, errors::KAFKA_STORAGE_ERROR, e.to_string()),
                }
            };
            if version >= 1 {
                r.error_message = None;
            }
            if version >= 5 {
                r.num_partitions = partitions;
                r.replication_factor = 1;
                r.configs = Some(
                    TOPIC_DEFAULTS
                        .iter()
                        .map(|(k, v)| {
                            let set = configs.get(*k);
                            CreatableTopicConfigs::default()
                                .with_name(s(*k))
                                .with_value(Some(s(set.cloned().unwrap_or(v.to_string()))))
                                .with_config_source(if set.is_some() { 1 } else { 5 })
                        })
                        .collect(),
                );
            }
            if version >= 7 {
                r.topic_id = id;
            }
            r
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// DeleteTopics: by name, or by topic id (v6+).
pub(super) fn delete_topics(
    topics: &Topics,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<String>, Uuid)> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let topic = match &name {
                Some(n) => topics.get(n),
                None => topics.by_id(id),
            };
            let mut r =
                DeletableTopicResult::default().with_name(name.clone().map(|n| TopicName(s(n))));
            if version >= 6 {
                r.topic_id = topic.as_ref().map_or(id, |t| t.id);
            }
            let Some(t) = topic else {
                return r.with_error_code(if name.is_none() {
                    errors::UNKNOWN_TOPIC_ID
                } else {
                    errors::UNKNOWN_TOPIC_OR_PARTITION
                });
            };
            if version >= 6 {
                r.name = Some(t.wire_name());
            }
            match topics.delete(&t.name) {
                Ok(_) => r,
                Err(e) => {
                    let r = r.with_error_code(errors::KAFKA_STORAGE_ERROR);
                    if version >= 5 {
                        r.with_error_message(Some(s(e.to_string())))
                    } else {
                        r
                    }
                }
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// CreatePartitions: grows topics to the asked count, unless `validate_only`.
pub(super) fn create_partitions(
    topics: &Topics,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let Some(topic) = topics.get(t.name.0.as_str()) else {
                return r
                    .with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION)
                    .with_error_message(Some(s("unknown topic")));
            };
            let current = topic.partition_count();
            if t.count <= current || t.count > 10_000 {
                return r
                    .with_error_code(errors::INVALID_PARTITIONS)
                    .with_error_message(Some(s(format!(
                        "topic has {current} partitions; asked for {}",
                        t.count
                    ))));
            }
            if let Err(why) = topics.room_for(0, (t.count - current) as i64) {
                return r
                    .with_error_code(errors::POLICY_VIOLATION)
                    .with_error_message(Some(s(why)));
            }
            if req.validate_only {
                return r;
            }
            match topics.add_partitions(&topic, t.count) {
                Ok(()) => r,
                Err(e) => r
                    .with_error_code(errors::KAFKA_STORAGE_ERROR)
                    .with_error_message(Some(s(e.to_string()))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

/// AlterConfigs: a topic's configs are replaced by the given set; broker configs are fixed.
pub(super) fn alter_configs(topics: &Topics, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let r = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let fail = |r: alter_configs_response::AlterConfigsResourceResponse, c, m: String| {
                r.with_error_code(c).with_error_message(Some(s(m)))
            };
            if res.resource_type != 2 {
                return fail(
                    r,
                    errors::INVALID_REQUEST,
                    format!("resource type {} cannot be altered", res.resource_type),
                );
            }
            let Some(topic) = topics.get(res.resource_name.as_str()) else {
                return fail(
                    r,
                    errors::UNKNOWN_TOPIC_OR_PARTITION,
                    "unknown topic".into(),
                );
            };
            let configs =
                match parse_configs(res.configs.iter().map(|c| (&c.name, c.value.as_ref()))) {
                    Ok(c) => c,
                    Err(m) => return fail(r, errors::INVALID_CONFIG, m),
                };
            if req.validate_only {
                return r;
            }
            match topics.set_configs(&topic, configs) {
                Ok(()) => r,
                Err(e) => fail(r, errors::KAFKA_STORAGE_ERROR, e.to_string()),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// Broker configs reported by DescribeConfigs.
pub(super) const BROKER_CONFIGS: &[(&str, &str)] = &[
    ("auto.create.topics.enable", "true"),
    ("log.retention.hours", "168"),
    ("message.max.bytes", "1048588"),
    ("num.partitions", "1"),
    ("socket.request.max.bytes", "104857600"),
];

/// DescribeConfigs: a topic's configs (set and default) or the broker's fixed ones.
pub(super) fn describe_configs(
    shared: &Shared,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let mut r = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let entries: Vec<(String, String, bool)> = match res.resource_type {
                2 => {
                    let Some(t) = shared.topics.get(res.resource_name.as_str()) else {
                        return r
                            .with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(s("unknown topic")));
                    };
                    let mut keys: Vec<String> =
                        TOPIC_DEFAULTS.iter().map(|(k, _)| k.to_string()).collect();
                    let set_configs = t.configs();
                    keys.extend(
                        set_configs
                            .keys()
                            .filter(|k| !keys.contains(k))
                            .cloned()
                            .collect::<Vec<_>>(),
                    );
                    keys.into_iter()
                        .map(|k| {
                            let set = set_configs.contains_key(&k);
                            let v = t.config(&k).unwrap_or_default();
                            (k, v, !set)
                        })
                        .collect()
                }
                4 => {
                    let mut v: Vec<(String, String, bool)> = BROKER_CONFIGS
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string(), true))
                        .collect();
                    v.push(("broker.id".into(), shared.config.node_id.to_string(), false));
                    v
                }
                other => {
                    return r
                        .with_error_code(errors::INVALID_REQUEST)
                        .with_error_message(Some(s(format!(
                            "resource type {other} is not supported"
                        ))))
                }
            };
            let wanted = res.configuration_keys.as_ref();
            r.configs = entries
                .into_iter()
                .filter(|(k, _, _)| wanted.is_none_or(|w| w.iter().any(|x| x.as_str() == k)))
                .map(|(k, v, is_default)| {
                    let mut c = DescribeConfigsResourceResult::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)));
                    if version == 0 {
                        c.is_default = is_default;
                    } else {
                        c.config_source = match (is_default, res.resource_type) {
                            (true, _) => 5,
                            (false, 2) => 1,
                            (false, _) => 4,
                        };
                    }
                    if version >= 3 {
                        c.config_type = 2;
                    }
                    c
                })
                .collect();
            r
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
