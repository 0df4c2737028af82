//! ConsumerGroupHeartbeat (v0-v1) and ConsumerGroupDescribe (v0-v1) on the wire. kafka-protocol
//! 0.15.1 knows only v0 of both (librdkafka asks for ConsumerGroupHeartbeat v1 and nothing
//! else), so these two use kafka-protocol 0.18.0's types (Apache Kafka 4.x's definitions).

use std::collections::BTreeMap;

use kafka_protocol_0_18::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions as DescribedTopic,
};
use kafka_protocol_0_18::messages::consumer_group_heartbeat_response::{
    Assignment as HeartbeatAssignment, TopicPartitions,
};
use kafka_protocol_0_18::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use kafka_protocol_0_18::protocol::StrBytes;
use uuid::Uuid;

use super::assignor::Assignment;
use super::reconcile::assignment_of;
use super::{HeartbeatOutcome, HeartbeatParams, TopicImage};
use crate::groups::group::ClientInfo;
use crate::groups::{ec, GroupCoordinator};

fn text(s: &StrBytes) -> String {
    s.as_str().to_string()
}

fn wire(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat (v0-v1): join, heartbeat or leave a consumer group; `topics` is
    /// the broker's topics now, `client` who sends it.
    pub fn consumer_group_heartbeat(
        &self,
        req: ConsumerGroupHeartbeatRequest,
        version: i16,
        topics: &TopicImage,
        client: ClientInfo,
    ) -> ConsumerGroupHeartbeatResponse {
        self.ensure_driver();
        let params = HeartbeatParams {
            group_id: text(&req.group_id.0),
            member_id: text(&req.member_id),
            member_epoch: req.member_epoch,
            instance_id: req.instance_id.as_ref().map(text),
            rack_id: req.rack_id.as_ref().map(text),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            topic_names: req
                .subscribed_topic_names
                .as_ref()
                .map(|names| names.iter().map(|n| text(&n.0)).collect()),
            topic_regex: if version >= 1 {
                req.subscribed_topic_regex.as_ref().map(text)
            } else {
                None
            },
            server_assignor: req.server_assignor.as_ref().map(text),
            owned: req
                .topic_partitions
                .as_ref()
                .map(|tps| assignment_of(tps.iter().map(|t| (t.topic_id, t.partitions.clone())))),
            client,
            version,
        };
        let outcome = self.inner.consumer_heartbeat(params, topics);
        heartbeat_response(outcome)
    }

    /// ConsumerGroupDescribe (v0-v1): each group's state, epochs, assignor and members with
    /// their subscriptions and current and target assignments; GROUP_ID_NOT_FOUND for a group
    /// that does not exist or is a classic group.
    pub fn consumer_group_describe(
        &self,
        req: ConsumerGroupDescribeRequest,
        version: i16,
        topics: &TopicImage,
    ) -> ConsumerGroupDescribeResponse {
        self.ensure_driver();
        let names: BTreeMap<Uuid, String> =
            topics.values().map(|t| (t.id, t.name.clone())).collect();
        let described = |a: &Assignment| {
            DescribedAssignment::default().with_topic_partitions(
                a.iter()
                    .map(|(id, parts)| {
                        DescribedTopic::default()
                            .with_topic_id(*id)
                            .with_topic_name(TopicName(wire(
                                names.get(id).cloned().unwrap_or_default(),
                            )))
                            .with_partitions(parts.iter().copied().collect())
                    })
                    .collect(),
            )
        };
        let groups = self.inner.groups();
        let described_groups = req
            .group_ids
            .iter()
            .map(|id| {
                let group_id = text(&id.0);
                let base = DescribedGroup::default().with_group_id(GroupId(wire(group_id.clone())));
                let Some(group) = groups.get(&group_id) else {
                    return base
                        .with_error_code(ec::GROUP_ID_NOT_FOUND)
                        .with_error_message(Some(wire(format!("Group {group_id} not found."))));
                };
                let Some(cg) = group.consumer.as_deref() else {
                    return base
                        .with_error_code(ec::GROUP_ID_NOT_FOUND)
                        .with_error_message(Some(wire(format!(
                            "Group {group_id} is not a consumer group."
                        ))));
                };
                let members = cg
                    .members
                    .values()
                    .map(|m| {
                        let mut member = Member::default()
                            .with_member_id(wire(m.id.clone()))
                            .with_instance_id(m.instance_id.clone().map(wire))
                            .with_rack_id(m.rack_id.clone().map(wire))
                            .with_member_epoch(m.rec.epoch)
                            .with_client_id(wire(m.client.client_id.clone()))
                            .with_client_host(wire(m.client.client_host.clone()))
                            .with_subscribed_topic_names(
                                m.topic_names
                                    .iter()
                                    .map(|n| TopicName(wire(n.clone())))
                                    .collect(),
                            )
                            .with_subscribed_topic_regex(
                                m.regex.as_ref().map(|(s, _)| wire(s.clone())),
                            )
                            .with_assignment(described(&m.rec.assigned))
                            .with_target_assignment(described(
                                &cg.target.get(&m.id).cloned().unwrap_or_default(),
                            ));
                        if version >= 1 {
                            // 1: a member of the consumer protocol (0 would be a classic one).
                            member = member.with_member_type(1);
                        }
                        member
                    })
                    .collect();
                base.with_error_code(ec::NONE)
                    .with_group_state(StrBytes::from_static_str(cg.state_name()))
                    .with_group_epoch(cg.epoch)
                    .with_assignment_epoch(cg.target_epoch)
                    .with_assignor_name(wire(if cg.assignor.is_empty() {
                        "uniform"
                    } else {
                        cg.assignor
                    }))
                    .with_members(members)
                    .with_authorized_operations(if req.include_authorized_operations {
                        // READ (3), DELETE (6), DESCRIBE (8): no ACLs here.
                        (1 << 3) | (1 << 6) | (1 << 8)
                    } else {
                        i32::MIN
                    })
            })
            .collect();
        ConsumerGroupDescribeResponse::default().with_groups(described_groups)
    }
}

/// The heartbeat answer on the wire (v0 and v1 have the same response layout).
fn heartbeat_response(outcome: HeartbeatOutcome) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(outcome.error)
        .with_error_message(outcome.message.map(wire))
        .with_member_id(outcome.member_id.map(wire))
        .with_member_epoch(outcome.member_epoch)
        .with_heartbeat_interval_ms(outcome.heartbeat_interval_ms)
        .with_assignment(outcome.assignment.map(|a| {
            HeartbeatAssignment::default().with_topic_partitions(
                a.into_iter()
                    .map(|(id, parts)| {
                        TopicPartitions::default()
                            .with_topic_id(id)
                            .with_partitions(parts.into_iter().collect())
                    })
                    .collect(),
            )
        }))
}
