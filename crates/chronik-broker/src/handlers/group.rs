//! The group APIs' way in: FindCoordinator, and who is joining for JoinGroup; the group
//! coordinator (`broker::groups`) answers the group requests themselves.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, JoinGroupRequest, JoinGroupResponse,
    OffsetDeleteRequest, OffsetDeleteResponse, RequestHeader, TopicName,
};

use super::s;
use crate::groups::ClientInfo;
use crate::state::{Conn, Shared};

/// JoinGroup: the coordinator is told who is joining (the header's client id, the peer's
/// address as Kafka shows it) for generated member ids and DescribeGroups.
pub(super) async fn join_group(
    shared: &Shared,
    conn: &Conn,
    header: &RequestHeader,
    req: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    shared
        .groups
        .join_group_from(req, version, client_info(conn, header))
        .await
}

/// Who is asking, as a group's member list shows it: the client id and `/IP`, as Kafka.
pub(super) fn client_info(conn: &Conn, header: &RequestHeader) -> ClientInfo {
    ClientInfo {
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: format!("/{}", conn.peer_ip),
    }
}

/// FindCoordinator: this broker coordinates every group (and transaction), at the address this
/// connection was given.
pub(super) fn find_coordinator(
    shared: &Shared,
    advertised: &(String, u16),
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let (host, port) = advertised;
    let node = BrokerId(shared.config.node_id);
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|k| {
                Coordinator::default()
                    .with_key(k)
                    .with_node_id(node)
                    .with_host(s(host.clone()))
                    .with_port(*port as i32)
                    .with_error_message(None)
            })
            .collect();
        FindCoordinatorResponse::default()
            .with_error_message(Some(s("")))
            .with_coordinators(coordinators)
    } else {
        FindCoordinatorResponse::default()
            .with_error_message(None)
            .with_node_id(node)
            .with_host(s(host.clone()))
            .with_port(*port as i32)
    }
}

/// OffsetDelete: unknown topics and partitions are answered here (UNKNOWN_TOPIC_OR_PARTITION,
/// as Kafka's broker does before asking the coordinator); the coordinator deletes the rest.
pub(super) fn offset_delete(shared: &Shared, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    use kafka_protocol::messages::offset_delete_response::{
        OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
    };
    let part = |p: i32, code: i16| {
        OffsetDeleteResponsePartition::default()
            .with_partition_index(p)
            .with_error_code(code)
    };
    let mut answered: Vec<OffsetDeleteResponseTopic> = Vec::new();
    let mut known: Vec<(String, Vec<i32>)> = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let count = shared.topics.get(&name).map(|t| t.partition_count());
        let mut unknown = Vec::new();
        let mut ok = Vec::new();
        for p in &t.partitions {
            match count {
                Some(n) if (0..n).contains(&p.partition_index) => ok.push(p.partition_index),
                _ => unknown.push(part(
                    p.partition_index,
                    chronik_protocol::errors::UNKNOWN_TOPIC_OR_PARTITION,
                )),
            }
        }
        if !unknown.is_empty() {
            answered.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(unknown),
            );
        }
        if !ok.is_empty() {
            known.push((name, ok));
        }
    }
    match shared.groups.delete_offsets(req.group_id.as_str(), known) {
        Err(code) => OffsetDeleteResponse::default().with_error_code(code),
        Ok(results) => {
            for (topic, parts) in results {
                let parts: Vec<_> = parts.into_iter().map(|(p, c)| part(p, c)).collect();
                match answered.iter_mut().find(|t| t.name.0.as_str() == topic) {
                    Some(t) => t.partitions.extend(parts),
                    None => answered.push(
                        OffsetDeleteResponseTopic::default()
                            .with_name(TopicName(s(topic)))
                            .with_partitions(parts),
                    ),
                }
            }
            OffsetDeleteResponse::default().with_topics(answered)
        }
    }
}
