//! What the cluster looks like: Metadata (this broker and the topics, creating unknown ones when
//! allowed) and DescribeCluster.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use uuid::Uuid;

use super::s;
use crate::log::LEADER_EPOCH;
use crate::state::Shared;
use crate::topics::{invalid_topic_name, Topic};
use chronik_protocol::errors;

/// One topic's entry: every partition led by this broker.
fn metadata_topic(shared: &Shared, t: &Topic, version: i16) -> MetadataResponseTopic {
    let node = BrokerId(shared.config.node_id);
    let partitions = (0..t.partition_count())
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(node)
                .with_leader_epoch(if version >= 7 { LEADER_EPOCH } else { -1 })
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(t.wire_name()))
        .with_topic_id(if version >= 10 { t.id } else { Uuid::nil() })
        .with_partitions(partitions)
}

/// Metadata: this broker and the topics asked for (all of them for null, or an empty list in
/// v0), creating unknown ones when auto-creation is on and the request allows it.
pub(super) fn metadata(
    shared: &Shared,
    advertised: &(String, u16),
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let allow_create =
        shared.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let topics = match req.topics {
        // v0: an empty list means all topics; v1+: null means all.
        None => shared
            .topics
            .all()
            .iter()
            .map(|t| metadata_topic(shared, t, version))
            .collect(),
        Some(list) if list.is_empty() && version == 0 => shared
            .topics
            .all()
            .iter()
            .map(|t| metadata_topic(shared, t, version))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|rt| {
                let name = rt.name.as_ref().map(|n| n.0.to_string());
                let found = match &name {
                    Some(n) => shared.topics.get(n),
                    None => shared.topics.by_id(rt.topic_id),
                };
                if let Some(t) = found {
                    return metadata_topic(shared, &t, version);
                }
                let Some(n) = name else {
                    return MetadataResponseTopic::default()
                        .with_error_code(errors::UNKNOWN_TOPIC_ID)
                        .with_name(None)
                        .with_topic_id(rt.topic_id);
                };
                let wire = TopicName(s(n.clone()));
                if let Some(why) = invalid_topic_name(&n) {
                    tracing::debug!(reason = %why, "metadata for an invalid topic name");
                    return MetadataResponseTopic::default()
                        .with_error_code(errors::INVALID_TOPIC_EXCEPTION)
                        .with_name(Some(wire));
                }
                if allow_create {
                    match shared.topics.create(
                        &n,
                        shared.config.default_partitions,
                        BTreeMap::new(),
                    ) {
                        Ok(Ok(t)) | Ok(Err(t)) => return metadata_topic(shared, &t, version),
                        Err(e) => tracing::error!(error = %e, topic = %n, "auto-create failed"),
                    }
                }
                MetadataResponseTopic::default()
                    .with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION)
                    .with_name(Some(wire))
            })
            .collect(),
    };
    cluster(shared, advertised, version).with_topics(topics)
}

/// A Metadata response without topics: this broker, the cluster id and the controller.
fn cluster(shared: &Shared, advertised: &(String, u16), version: i16) -> MetadataResponse {
    let (host, port) = advertised;
    let node = BrokerId(shared.config.node_id);
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(s(host.clone()))
            .with_port(*port as i32)])
        .with_cluster_id(if version >= 2 {
            Some(s(shared.cluster_id.clone()))
        } else {
            None
        })
        .with_controller_id(if version >= 1 { node } else { BrokerId(-1) })
}

/// Metadata answered with error `code` on every topic asked for (on every existing topic when
/// all are asked for), with no partitions; no topic is created. The brokers are listed as
/// usual, so the client keeps its connection and asks again.
pub(super) fn error_response(
    shared: &Shared,
    advertised: &(String, u16),
    req: MetadataRequest,
    version: i16,
    code: i16,
) -> MetadataResponse {
    let failed = |name: Option<TopicName>, id: Uuid| {
        MetadataResponseTopic::default()
            .with_error_code(code)
            .with_name(name)
            .with_topic_id(if version >= 10 { id } else { Uuid::nil() })
    };
    let topics = match req.topics {
        Some(list) if !(list.is_empty() && version == 0) => list
            .into_iter()
            .map(|rt| {
                let known = match &rt.name {
                    Some(n) => shared.topics.get(n.0.as_str()),
                    None => shared.topics.by_id(rt.topic_id),
                };
                let id = known.as_ref().map(|t| t.id).unwrap_or(rt.topic_id);
                let name = rt.name.or_else(|| known.map(|t| t.wire_name()));
                failed(name, id)
            })
            .collect(),
        _ => shared
            .topics
            .all()
            .iter()
            .map(|t| failed(Some(t.wire_name()), t.id))
            .collect(),
    };
    cluster(shared, advertised, version).with_topics(topics)
}

/// DescribeCluster: this one broker, which is also the controller.
pub(super) fn describe_cluster(
    shared: &Shared,
    advertised: &(String, u16),
    req: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let (host, port) = advertised;
    let node = BrokerId(shared.config.node_id);
    let resp = DescribeClusterResponse::default()
        .with_cluster_id(s(shared.cluster_id.clone()))
        .with_controller_id(node)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(node)
            .with_host(s(host.clone()))
            .with_port(*port as i32)]);
    // Only brokers are described here (endpoint type 1); controllers are not separate.
    if version >= 1 && req.endpoint_type != 1 {
        return resp
            .with_error_code(errors::UNSUPPORTED_ENDPOINT_TYPE)
            .with_error_message(Some(s("only broker endpoints are described")))
            .with_brokers(vec![]);
    }
    resp
}
