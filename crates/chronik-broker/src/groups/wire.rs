//! The group coordinator's wire side: each group API's request is read at its version into
//! plain values for the state machine (`membership.rs`, `offsets.rs`), and what comes back is
//! written as that version's response. DescribeGroups and ListGroups read the groups directly.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::group::{ClientInfo, Group, GroupState, JoinOutcome, SyncOutcome};
use super::membership::{JoinParams, SyncParams};
use super::offset_log::CommittedOffset;
use super::offsets::{CommitParams, PartitionCommit};
use super::{ec, GroupCoordinator};

/// A wire string as a `String`.
fn str_of(s: &StrBytes) -> String {
    s.to_string()
}

/// A nullable wire string as an `Option<String>`.
fn opt_str(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(str_of)
}

impl GroupCoordinator {
    /// JoinGroup (v0-v9). v4+ members joining with an empty member id get MEMBER_ID_REQUIRED
    /// and a generated id (`client_id-uuid`) to rejoin with; the answer otherwise waits until
    /// the rebalance completes.
    pub async fn join_group_from(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client: ClientInfo,
    ) -> JoinGroupResponse {
        self.ensure_driver();
        let member_id = str_of(&req.member_id);
        let join = JoinParams {
            group_id: str_of(&req.group_id),
            member_id: member_id.clone(),
            instance_id: if version >= 5 {
                opt_str(&req.group_instance_id)
            } else {
                None
            },
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: (version >= 1).then_some(req.rebalance_timeout_ms),
            protocol_type: str_of(&req.protocol_type),
            protocols: req
                .protocols
                .iter()
                .map(|p| (str_of(&p.name), p.metadata.clone()))
                .collect(),
            reason: req.reason.as_ref().filter(|_| version >= 8).map(str_of),
            member_id_required: version >= 4,
            client,
        };
        let outcome = match self.inner.join(join) {
            Ok(outcome) => outcome,
            Err(rx) => rx
                .await
                .unwrap_or_else(|_| JoinOutcome::error(ec::COORDINATOR_NOT_AVAILABLE, &member_id)),
        };
        join_response(outcome, version)
    }

    /// SyncGroup (v0-v5): the leader's assignment is stored and handed to every member; members
    /// that sync before the leader wait for it.
    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        self.ensure_driver();
        let sync = SyncParams {
            group_id: str_of(&req.group_id),
            member_id: str_of(&req.member_id),
            instance_id: if version >= 3 {
                opt_str(&req.group_instance_id)
            } else {
                None
            },
            generation_id: req.generation_id,
            protocol_type: if version >= 5 {
                opt_str(&req.protocol_type)
            } else {
                None
            },
            protocol_name: if version >= 5 {
                opt_str(&req.protocol_name)
            } else {
                None
            },
            assignments: req
                .assignments
                .iter()
                .map(|a| (str_of(&a.member_id), a.assignment.clone()))
                .collect(),
        };
        let outcome = match self.inner.sync(sync) {
            Ok(outcome) => outcome,
            Err(rx) => rx
                .await
                .unwrap_or_else(|_| SyncOutcome::error(ec::COORDINATOR_NOT_AVAILABLE)),
        };
        sync_response(outcome, version)
    }

    /// Heartbeat (v0-v4): keeps the session alive; REBALANCE_IN_PROGRESS tells the member to
    /// rejoin.
    pub async fn heartbeat(&self, req: HeartbeatRequest, version: i16) -> HeartbeatResponse {
        self.ensure_driver();
        let instance_id = if version >= 3 {
            opt_str(&req.group_instance_id)
        } else {
            None
        };
        let mut r = HeartbeatResponse::default();
        r.error_code = self.inner.heartbeat(
            &str_of(&req.group_id),
            &str_of(&req.member_id),
            instance_id.as_deref(),
            req.generation_id,
        );
        r
    }

    /// LeaveGroup: v0-v2 one member id, v3+ a list of members (by id or, v4+, instance id)
    /// with an error each. Leaving triggers a rebalance.
    pub async fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        self.ensure_driver();
        let group_id = str_of(&req.group_id);
        if version >= 5 {
            for m in req.members.iter() {
                if let Some(reason) = &m.reason {
                    tracing::info!(group = %group_id, member = %m.member_id.as_str(), reason = %reason.as_str(), "group: leave reason");
                }
            }
        }
        let leaving: Vec<(String, Option<String>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| (str_of(&m.member_id), opt_str(&m.group_instance_id)))
                .collect()
        } else {
            vec![(str_of(&req.member_id), None)]
        };
        let (top_error, results) = self.inner.leave(&group_id, leaving);
        let mut r = LeaveGroupResponse::default();
        if version >= 3 {
            r.error_code = top_error;
            r.members = results
                .into_iter()
                .map(|(id, instance, error)| {
                    let mut m = MemberResponse::default();
                    m.member_id = StrBytes::from_string(id);
                    m.group_instance_id = instance.map(StrBytes::from_string);
                    m.error_code = error;
                    m
                })
                .collect();
        } else {
            r.error_code = if top_error != ec::NONE {
                top_error
            } else {
                results.first().map_or(ec::NONE, |(_, _, e)| *e)
            };
        }
        r
    }

    /// OffsetCommit (v0-v9). With generation_id >= 0 the member and generation are checked;
    /// a negative generation (simple commit, no group management) is always accepted.
    pub async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        self.ensure_driver();
        let commit = CommitParams {
            group_id: str_of(&req.group_id),
            generation: if version >= 1 {
                req.generation_id_or_member_epoch
            } else {
                -1
            },
            member_id: if version >= 1 {
                str_of(&req.member_id)
            } else {
                String::new()
            },
            instance_id: if version >= 7 {
                opt_str(&req.group_instance_id)
            } else {
                None
            },
            topics: req
                .topics
                .iter()
                .map(|topic| {
                    let partitions = topic
                        .partitions
                        .iter()
                        .map(|p| PartitionCommit {
                            partition: p.partition_index,
                            offset: p.committed_offset,
                            leader_epoch: if version >= 6 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            metadata: p
                                .committed_metadata
                                .as_ref()
                                .map(str_of)
                                .unwrap_or_default(),
                        })
                        .collect();
                    (str_of(&topic.name), partitions)
                })
                .collect(),
        };
        // A member of a consumer group (KIP-848) must commit with v9+ (its member epoch as the
        // generation), as Kafka requires.
        let decided = if (1..9).contains(&version)
            && commit.generation >= 0
            && self.inner.is_consumer_group(&commit.group_id)
        {
            commit
                .topics
                .into_iter()
                .map(|(name, parts)| {
                    let errors = parts
                        .iter()
                        .map(|p| (p.partition, ec::UNSUPPORTED_VERSION))
                        .collect();
                    (name, errors)
                })
                .collect()
        } else {
            self.inner.commit(commit)
        };
        let mut r = OffsetCommitResponse::default();
        r.topics = decided
            .into_iter()
            .map(|(name, partitions)| {
                let mut t = OffsetCommitResponseTopic::default();
                t.name = TopicName(StrBytes::from_string(name));
                t.partitions = partitions
                    .into_iter()
                    .map(|(index, error)| {
                        let mut p = OffsetCommitResponsePartition::default();
                        p.partition_index = index;
                        p.error_code = error;
                        p
                    })
                    .collect();
                t
            })
            .collect();
        r
    }

    /// OffsetFetch: v0-v7 one group, v8+ a list of groups.
    pub async fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        self.ensure_driver();
        let mut r = OffsetFetchResponse::default();
        if version >= 8 {
            r.groups = req
                .groups
                .iter()
                .map(|g| {
                    let topics = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (str_of(&t.name), t.partition_indexes.clone()))
                            .collect()
                    });
                    let mut out = OffsetFetchResponseGroup::default();
                    out.group_id = g.group_id.clone();
                    // v9+: a consumer group member's epoch is checked (KIP-848).
                    if version >= 9 {
                        if let Some(member) = &g.member_id {
                            let error = self.inner.consumer_fetch_error(
                                &str_of(&g.group_id),
                                &str_of(member),
                                g.member_epoch,
                            );
                            if error != ec::NONE {
                                out.error_code = error;
                                return out;
                            }
                        }
                    }
                    out.topics = self
                        .inner
                        .fetch_offsets(&str_of(&g.group_id), topics)
                        .into_iter()
                        .map(|(name, partitions)| {
                            let mut t = OffsetFetchResponseTopics::default();
                            t.name = TopicName(StrBytes::from_string(name));
                            t.partitions = partitions
                                .into_iter()
                                .map(|(index, c)| {
                                    let mut p = OffsetFetchResponsePartitions::default();
                                    p.partition_index = index;
                                    let c = c.unwrap_or(CommittedOffset {
                                        offset: -1,
                                        leader_epoch: -1,
                                        metadata: String::new(),
                                        commit_time_ms: -1,
                                    });
                                    p.committed_offset = c.offset;
                                    p.committed_leader_epoch = c.leader_epoch;
                                    p.metadata = Some(StrBytes::from_string(c.metadata));
                                    p.error_code = ec::NONE;
                                    p
                                })
                                .collect();
                            t
                        })
                        .collect();
                    out
                })
                .collect();
        } else {
            let topics = match &req.topics {
                Some(ts) => Some(
                    ts.iter()
                        .map(|t| (str_of(&t.name), t.partition_indexes.clone()))
                        .collect(),
                ),
                // Null means "all" only from v2; older requests cannot express it.
                None if version >= 2 => None,
                None => Some(Vec::new()),
            };
            r.topics = self
                .inner
                .fetch_offsets(&str_of(&req.group_id), topics)
                .into_iter()
                .map(|(name, partitions)| {
                    let mut t = OffsetFetchResponseTopic::default();
                    t.name = TopicName(StrBytes::from_string(name));
                    t.partitions = partitions
                        .into_iter()
                        .map(|(index, c)| {
                            let mut p = OffsetFetchResponsePartition::default();
                            p.partition_index = index;
                            let (offset, epoch, metadata) = match c {
                                Some(c) => (c.offset, c.leader_epoch, c.metadata),
                                None => (-1, -1, String::new()),
                            };
                            p.committed_offset = offset;
                            p.committed_leader_epoch = if version >= 5 { epoch } else { -1 };
                            p.metadata = Some(StrBytes::from_string(metadata));
                            p.error_code = ec::NONE;
                            p
                        })
                        .collect();
                    t
                })
                .collect();
            r.error_code = ec::NONE;
        }
        r
    }

    /// DescribeGroups: state names as Kafka's; members carry metadata and assignment when the
    /// group is Stable. Unknown groups are reported as "Dead" with no error, as Kafka does.
    pub async fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        self.ensure_driver();
        let groups = self.inner.groups();
        let mut r = DescribeGroupsResponse::default();
        r.groups = req
            .groups
            .iter()
            .map(|id| {
                let mut d = DescribedGroup::default();
                d.group_id = id.clone();
                d.error_code = ec::NONE;
                d.authorized_operations = if version >= 3 && req.include_authorized_operations {
                    // READ (3), DELETE (6), DESCRIBE (8): no ACLs here, everything is allowed.
                    (1 << 3) | (1 << 6) | (1 << 8)
                } else {
                    i32::MIN
                };
                match groups.get(id.as_str()) {
                    // A consumer group (KIP-848) is not a classic group: Kafka answers Dead
                    // (ConsumerGroupDescribe describes it).
                    None => {
                        d.group_state = StrBytes::from_static_str(GroupState::Dead.kafka_name());
                    }
                    Some(group) if group.consumer.is_some() => {
                        d.group_state = StrBytes::from_static_str(GroupState::Dead.kafka_name());
                    }
                    Some(group) => {
                        let stable = group.state == GroupState::Stable;
                        let protocol = group.protocol_name.clone().unwrap_or_default();
                        d.group_state = StrBytes::from_static_str(group.state.kafka_name());
                        d.protocol_type =
                            StrBytes::from_string(group.protocol_type.clone().unwrap_or_default());
                        d.protocol_data = if stable {
                            StrBytes::from_string(protocol.clone())
                        } else {
                            StrBytes::default()
                        };
                        d.members = group
                            .members
                            .iter()
                            .map(|m| {
                                let mut dm = DescribedGroupMember::default();
                                dm.member_id = StrBytes::from_string(m.id.clone());
                                dm.group_instance_id = if version >= 4 {
                                    m.instance_id.clone().map(StrBytes::from_string)
                                } else {
                                    None
                                };
                                dm.client_id = StrBytes::from_string(m.client.client_id.clone());
                                dm.client_host =
                                    StrBytes::from_string(m.client.client_host.clone());
                                if stable {
                                    dm.member_metadata = m.metadata_for(&protocol);
                                    dm.member_assignment = m.assignment.clone();
                                }
                                dm
                            })
                            .collect();
                    }
                }
                d
            })
            .collect();
        r
    }

    /// ListGroups: every group; v4+ filtered by state, v5 by type ("classic").
    pub async fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        self.ensure_driver();
        let states: Vec<String> = if version >= 4 {
            req.states_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            Vec::new()
        };
        let types: Vec<String> = if version >= 5 {
            req.types_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            Vec::new()
        };
        let groups = self.inner.groups();
        // (state, type) as ListGroups shows them: a consumer group (KIP-848) has its own states.
        let shown = |g: &Group| match g.consumer.as_deref() {
            Some(cg) => (cg.state_name(), "consumer"),
            None => (g.state.kafka_name(), "classic"),
        };
        let mut listed: Vec<&Group> = groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .filter(|g| states.is_empty() || states.contains(&shown(g).0.to_lowercase()))
            .filter(|g| types.is_empty() || types.iter().any(|t| t == shown(g).1))
            .collect();
        listed.sort_by(|a, b| a.id.cmp(&b.id));
        let mut r = ListGroupsResponse::default();
        r.error_code = ec::NONE;
        r.groups = listed
            .into_iter()
            .map(|g| {
                let mut l = ListedGroup::default();
                l.group_id = GroupId(StrBytes::from_string(g.id.clone()));
                l.protocol_type =
                    StrBytes::from_string(g.protocol_type.clone().unwrap_or_default());
                let (state, group_type) = shown(g);
                if version >= 4 {
                    l.group_state = StrBytes::from_static_str(state);
                }
                if version >= 5 {
                    l.group_type = StrBytes::from_static_str(group_type);
                }
                l
            })
            .collect();
        r
    }

    /// DeleteGroups: removes empty groups and their offsets; NON_EMPTY_GROUP while members
    /// remain, GROUP_ID_NOT_FOUND for unknown groups.
    pub async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        _version: i16,
    ) -> DeleteGroupsResponse {
        self.ensure_driver();
        let names: Vec<String> = req.groups_names.iter().map(|id| str_of(id)).collect();
        let errors = self.inner.delete_groups(&names);
        let mut r = DeleteGroupsResponse::default();
        for (id, error) in req.groups_names.iter().zip(errors) {
            let mut result = DeletableGroupResult::default();
            result.group_id = id.clone();
            result.error_code = error;
            r.results.push(result);
        }
        r
    }
}

/// The JoinGroup response of this version for an outcome.
fn join_response(outcome: JoinOutcome, version: i16) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = outcome.error;
    r.generation_id = outcome.generation;
    if version >= 7 {
        r.protocol_type = outcome.protocol_type.map(StrBytes::from_string);
        r.protocol_name = outcome.protocol_name.map(StrBytes::from_string);
    } else {
        r.protocol_type = None;
        r.protocol_name = Some(StrBytes::from_string(
            outcome.protocol_name.unwrap_or_default(),
        ));
    }
    r.leader = StrBytes::from_string(outcome.leader);
    r.member_id = StrBytes::from_string(outcome.member_id);
    r.members = outcome
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let mut m = JoinGroupResponseMember::default();
            m.member_id = StrBytes::from_string(id);
            m.group_instance_id = if version >= 5 {
                instance.map(StrBytes::from_string)
            } else {
                None
            };
            m.metadata = metadata;
            m
        })
        .collect();
    r
}

/// The SyncGroup response of this version for an outcome.
fn sync_response(outcome: SyncOutcome, version: i16) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.error_code = outcome.error;
    r.assignment = outcome.assignment;
    if version >= 5 {
        r.protocol_type = outcome.protocol_type.map(StrBytes::from_string);
        r.protocol_name = outcome.protocol_name.map(StrBytes::from_string);
    }
    r
}
