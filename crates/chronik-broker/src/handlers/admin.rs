//! Topic administration: CreateTopics, DeleteTopics and CreatePartitions (configs are in
//! `configs.rs`).

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::s;
use crate::state::Shared;
use crate::topic_config;
use crate::topics::{invalid_topic_name, Topics};
use chronik_protocol::errors;

/// Topic configs given as (name, value) pairs, checked as Kafka checks them (every name a topic
/// config, every value valid); entries without a value are skipped.
fn parse_configs<'a>(
    configs: impl IntoIterator<Item = (&'a StrBytes, Option<&'a StrBytes>)>,
) -> Result<BTreeMap<String, String>, String> {
    let out: BTreeMap<String, String> = configs
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name.to_string(), v.to_string())))
        .collect();
    topic_config::validate(&out)?;
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
                    topic_config::DEFS
                        .iter()
                        .map(|d| {
                            let set = configs.get(d.name);
                            CreatableTopicConfigs::default()
                                .with_name(s(d.name))
                                .with_value(Some(s(set
                                    .cloned()
                                    .unwrap_or_else(|| d.default.to_string()))))
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
