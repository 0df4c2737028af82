//! The group APIs' way in: FindCoordinator here; the rest is answered by the group
//! coordinator (`broker::groups`).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::s;
use crate::broker::state::Shared;

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
