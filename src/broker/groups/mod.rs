//! The group coordinator: consumer-group membership (join, sync, heartbeat, leave, session
//! expiry and rebalancing) and committed offsets.
//!
//! CONTRACT STUB: the connection handlers call exactly these methods; the implementation fills
//! them in.

use std::path::PathBuf;
use std::sync::Arc;

use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};

/// Consumer groups and their committed offsets.
pub struct GroupCoordinator {
    _data_dir: Option<PathBuf>,
}

impl GroupCoordinator {
    /// A coordinator; with a data directory, committed offsets survive a restart.
    pub fn new(data_dir: Option<PathBuf>) -> anyhow::Result<Arc<GroupCoordinator>> {
        Ok(Arc::new(GroupCoordinator {
            _data_dir: data_dir,
        }))
    }

    pub async fn join_group(&self, _req: JoinGroupRequest, _version: i16) -> JoinGroupResponse {
        JoinGroupResponse::default()
    }
    pub async fn sync_group(&self, _req: SyncGroupRequest, _version: i16) -> SyncGroupResponse {
        SyncGroupResponse::default()
    }
    pub async fn heartbeat(&self, _req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
        HeartbeatResponse::default()
    }
    pub async fn leave_group(&self, _req: LeaveGroupRequest, _version: i16) -> LeaveGroupResponse {
        LeaveGroupResponse::default()
    }
    pub async fn offset_commit(
        &self,
        _req: OffsetCommitRequest,
        _version: i16,
    ) -> OffsetCommitResponse {
        OffsetCommitResponse::default()
    }
    pub async fn offset_fetch(
        &self,
        _req: OffsetFetchRequest,
        _version: i16,
    ) -> OffsetFetchResponse {
        OffsetFetchResponse::default()
    }
    pub async fn describe_groups(
        &self,
        _req: DescribeGroupsRequest,
        _version: i16,
    ) -> DescribeGroupsResponse {
        DescribeGroupsResponse::default()
    }
    pub async fn list_groups(&self, _req: ListGroupsRequest, _version: i16) -> ListGroupsResponse {
        ListGroupsResponse::default()
    }
    pub async fn delete_groups(
        &self,
        _req: DeleteGroupsRequest,
        _version: i16,
    ) -> DeleteGroupsResponse {
        DeleteGroupsResponse::default()
    }
}
