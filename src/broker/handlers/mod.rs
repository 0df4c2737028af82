//! One handler per API: decode with kafka-protocol (after the dissector has checked the frame),
//! act on the topics, logs, producer ids, fetch sessions and the group coordinator, encode.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

mod admin;
mod api_versions;
mod fetch;
mod group;
mod metadata;
mod offsets;
mod produce;
mod sasl;

pub(crate) use api_versions::api_versions_unsupported;
pub(crate) use sasl::check_plain;

use super::log::code;
use super::state::{Conn, Shared};

/// What a handler decided.
pub(crate) enum Outcome {
    /// Send this body (after the response header).
    Reply {
        body: BytesMut,
        notes: Vec<String>,
        close_after: bool,
    },
    /// By protocol no response (Produce acks=0).
    NoResponse {
        notes: Vec<String>,
        /// Close the connection afterwards (how acks=0 producers learn of an error).
        close_after: bool,
    },
    /// Close the connection, for this reason.
    Close(String),
}

/// (api key, min version, max version) for every API served. The maxima are kafka-protocol
/// 0.15.1's; the group APIs are served by the group coordinator.
pub(crate) const SUPPORTED: &[(i16, i16, i16)] = &[
    (0, 0, 11), // Produce
    (1, 0, 17), // Fetch
    (2, 0, 9),  // ListOffsets
    (3, 0, 12), // Metadata
    (8, 0, 9),  // OffsetCommit
    (9, 0, 9),  // OffsetFetch
    (10, 0, 6), // FindCoordinator
    (11, 0, 9), // JoinGroup
    (12, 0, 4), // Heartbeat
    (13, 0, 5), // LeaveGroup
    (14, 0, 5), // SyncGroup
    (15, 0, 5), // DescribeGroups
    (16, 0, 5), // ListGroups
    (17, 0, 1), // SaslHandshake
    (18, 0, 4), // ApiVersions
    (19, 0, 7), // CreateTopics
    (20, 0, 6), // DeleteTopics
    (21, 0, 2), // DeleteRecords
    (22, 0, 5), // InitProducerId
    (23, 0, 4), // OffsetForLeaderEpoch
    (32, 0, 4), // DescribeConfigs
    (36, 0, 2), // SaslAuthenticate
    (37, 0, 3), // CreatePartitions
    (42, 0, 2), // DeleteGroups
    (33, 0, 2), // AlterConfigs
    (60, 0, 1), // DescribeCluster
];

/// The version range served for an API key.
pub(crate) fn supported(key: i16) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, lo, hi)| (lo, hi))
}

fn s(x: impl Into<String>) -> StrBytes {
    StrBytes::from_string(x.into())
}

fn encode<T: Encodable>(msg: &T, version: i16) -> Result<BytesMut, String> {
    let mut b = BytesMut::new();
    msg.encode(&mut b, version)
        .map_err(|e| format!("encoding the response: {e}"))?;
    Ok(b)
}

fn reply<T: Encodable>(msg: &T, version: i16) -> Outcome {
    match encode(msg, version) {
        Ok(body) => Outcome::Reply {
            body,
            notes: Vec::new(),
            close_after: false,
        },
        Err(e) => {
            tracing::error!(error = %e, version, "cannot encode a response");
            Outcome::Close(e)
        }
    }
}

/// Dispatches one decoded request.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    conn: &mut Conn,
    api: ApiKey,
    version: i16,
    header: &RequestHeader,
    mut body: Bytes,
) -> Outcome {
    let knobs = shared.settings.get();
    let throttle = knobs.throttle_ms;
    macro_rules! decode {
        ($t:ty) => {
            match <$t>::decode(&mut body, version) {
                Ok(r) => r,
                Err(e) => return Outcome::Close(format!("decoding the request body: {e}")),
            }
        };
    }
    macro_rules! group {
        ($t:ty, $m:ident) => {{
            let req = decode!($t);
            let resp = shared.groups.$m(req, version).await;
            reply(&resp.with_throttle_time_ms(throttle), version)
        }};
    }
    match api {
        ApiKey::ApiVersions => {
            let req = decode!(ApiVersionsRequest);
            if version >= 3 {
                conn.client_software = Some((
                    req.client_software_name.to_string(),
                    req.client_software_version.to_string(),
                ));
                conn.identity.software_name = Some(req.client_software_name.to_string());
                conn.identity.software_version = Some(req.client_software_version.to_string());
                tracing::info!(conn = conn.id, name = %req.client_software_name,
                    version = %req.client_software_version, "client software");
            }
            conn.advertised_caps = Some(knobs.caps.clone());
            let mut out = reply(
                &api_versions::api_versions_body(0, &knobs).with_throttle_time_ms(throttle),
                version,
            );
            if let Outcome::Reply { notes, .. } = &mut out {
                if let Some((name, ver)) = &conn.client_software {
                    notes.push(format!("client software: {name} {ver}"));
                }
                let lowered: Vec<String> = knobs
                    .caps_text()
                    .into_iter()
                    .zip(knobs.caps.iter())
                    .filter(|(_, (k, cap))| supported(**k).is_some_and(|(_, hi)| hi > **cap))
                    .map(|(text, _)| text)
                    .collect();
                if !lowered.is_empty() {
                    notes.push(format!("version caps advertised: {}", lowered.join(", ")));
                }
            }
            out
        }
        ApiKey::Metadata => {
            let req = decode!(MetadataRequest);
            reply(
                &metadata::metadata(shared, &conn.advertised, req, version, throttle),
                version,
            )
        }
        ApiKey::Produce => {
            let req = decode!(ProduceRequest);
            let used = knobs.placement_for(&conn.identity);
            let out = produce::produce(shared, req, version, throttle, &used);
            if matches!(out, Outcome::Reply { .. }) {
                conn.placement_used = Some(produce::effective_placement(used, version));
            }
            out
        }
        ApiKey::Fetch => {
            let req = decode!(FetchRequest);
            let resp = fetch::fetch(shared, req, version).await;
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::ListOffsets => {
            let req = decode!(ListOffsetsRequest);
            reply(
                &offsets::list_offsets(shared, req, version).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::FindCoordinator => {
            let req = decode!(FindCoordinatorRequest);
            reply(
                &group::find_coordinator(shared, &conn.advertised, req, version)
                    .with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::JoinGroup => {
            let req = decode!(JoinGroupRequest);
            let client = super::groups::ClientInfo {
                client_id: header
                    .client_id
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                client_host: format!("/{}", conn.peer_ip),
            };
            let resp = shared.groups.join_group_from(req, version, client).await;
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::SyncGroup => group!(SyncGroupRequest, sync_group),
        ApiKey::Heartbeat => group!(HeartbeatRequest, heartbeat),
        ApiKey::LeaveGroup => group!(LeaveGroupRequest, leave_group),
        ApiKey::OffsetCommit => group!(OffsetCommitRequest, offset_commit),
        ApiKey::OffsetFetch => group!(OffsetFetchRequest, offset_fetch),
        ApiKey::DescribeGroups => group!(DescribeGroupsRequest, describe_groups),
        ApiKey::ListGroups => group!(ListGroupsRequest, list_groups),
        ApiKey::DeleteGroups => group!(DeleteGroupsRequest, delete_groups),
        ApiKey::InitProducerId => {
            let req = decode!(InitProducerIdRequest);
            reply(
                &produce::init_producer_id(shared, req).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::CreateTopics => {
            let req = decode!(CreateTopicsRequest);
            reply(
                &admin::create_topics(shared, req, version).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::DeleteTopics => {
            let req = decode!(DeleteTopicsRequest);
            reply(
                &admin::delete_topics(shared, req, version).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::CreatePartitions => {
            let req = decode!(CreatePartitionsRequest);
            reply(
                &admin::create_partitions(shared, req).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::DescribeConfigs => {
            let req = decode!(DescribeConfigsRequest);
            reply(
                &admin::describe_configs(shared, req, version).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::OffsetForLeaderEpoch => {
            let req = decode!(OffsetForLeaderEpochRequest);
            reply(
                &offsets::offset_for_leader_epoch(shared, req).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::SaslHandshake => {
            let req = decode!(SaslHandshakeRequest);
            let enabled = shared.config.sasl_plain.is_some();
            let ok = enabled && req.mechanism.as_str() == "PLAIN";
            let resp = SaslHandshakeResponse::default()
                .with_error_code(if ok {
                    0
                } else if enabled {
                    code::UNSUPPORTED_SASL_MECHANISM
                } else {
                    code::ILLEGAL_SASL_STATE
                })
                .with_mechanisms(if enabled { vec![s("PLAIN")] } else { vec![] });
            if ok && version == 0 {
                conn.raw_sasl_next = true;
            }
            reply(&resp, version)
        }
        ApiKey::SaslAuthenticate => {
            let req = decode!(SaslAuthenticateRequest);
            let ok = sasl::check_plain(shared, &req.auth_bytes);
            let resp = if ok {
                conn.authenticated = true;
                SaslAuthenticateResponse::default()
            } else {
                tracing::warn!(conn = conn.id, peer = %conn.peer, "SASL/PLAIN authentication failed");
                SaslAuthenticateResponse::default()
                    .with_error_code(code::SASL_AUTHENTICATION_FAILED)
                    .with_error_message(Some(s(
                        "Authentication failed: invalid username or password",
                    )))
            };
            match (reply(&resp, version), ok) {
                (Outcome::Reply { body, notes, .. }, false) => Outcome::Reply {
                    body,
                    notes,
                    close_after: true,
                },
                (o, _) => o,
            }
        }
        ApiKey::DeleteRecords => {
            let req = decode!(DeleteRecordsRequest);
            reply(
                &offsets::delete_records(shared, req).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::AlterConfigs => {
            let req = decode!(AlterConfigsRequest);
            reply(
                &admin::alter_configs(shared, req).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::DescribeCluster => {
            let req = decode!(DescribeClusterRequest);
            let (host, port) = &conn.advertised;
            let node = BrokerId(shared.config.node_id);
            let mut resp = DescribeClusterResponse::default()
                .with_throttle_time_ms(throttle)
                .with_cluster_id(s(shared.cluster_id.clone()))
                .with_controller_id(node)
                .with_brokers(vec![
                    describe_cluster_response::DescribeClusterBroker::default()
                        .with_broker_id(node)
                        .with_host(s(host.clone()))
                        .with_port(*port as i32),
                ]);
            // Only brokers are described here (endpoint type 1); controllers are not separate.
            if version >= 1 && req.endpoint_type != 1 {
                resp = resp
                    .with_error_code(code::UNSUPPORTED_ENDPOINT_TYPE)
                    .with_error_message(Some(s("only broker endpoints are described")))
                    .with_brokers(vec![]);
            }
            reply(&resp, version)
        }
        other => Outcome::Close(format!("API {other:?} is not supported")),
    }
}
