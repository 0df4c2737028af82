//! The group APIs' way in: FindCoordinator, and who is joining for JoinGroup; the group
//! coordinator (`broker::groups`) answers the group requests themselves.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, JoinGroupRequest, JoinGroupResponse,
    RequestHeader,
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
    let client = ClientInfo {
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: format!("/{}", conn.peer_ip),
    };
    shared.groups.join_group_from(req, version, client).await
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
