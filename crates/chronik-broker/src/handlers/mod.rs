//! The handlers, one module per API family: each request is decoded with kafka-protocol (after
//! the dissector has checked the frame), answered from the state it needs (topics, logs,
//! producer ids, fetch sessions, the group coordinator) and encoded. This module keeps the
//! table of APIs served and the dispatch.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

mod admin;
mod api_versions;
mod configs;
mod consumer;
mod fault;
mod fetch;
mod group;
mod metadata;
mod offsets;
mod produce;
mod sasl;
mod txn;

pub(crate) use api_versions::api_versions_unsupported;
pub(crate) use fault::error_reply;
pub(crate) use produce::place;
pub(crate) use sasl::check_plain;

use super::state::{Conn, Shared};
use chronik_protocol::api_key;

/// What a handler decided.
pub(crate) enum Outcome {
    /// Send this body (after the response header).
    Reply {
        body: BytesMut,
        notes: Vec<String>,
        close_after: bool,
    },
    /// No response, as the protocol has it (Produce with acks=0).
    NoResponse {
        notes: Vec<String>,
        /// Close the connection afterwards (how acks=0 producers learn of an error).
        close_after: bool,
    },
    /// Close the connection, for this reason.
    Close(String),
}

/// (api key, min version, max version) for every API served, in the order ApiVersions lists
/// them. The maxima are kafka-protocol 0.15.1's; the group APIs are served by the group
/// coordinator.
pub(crate) const SUPPORTED: &[(i16, i16, i16)] = &[
    (api_key::PRODUCE, 0, 11),
    (api_key::FETCH, 0, 17),
    (api_key::LIST_OFFSETS, 0, 9),
    (api_key::METADATA, 0, 12),
    (api_key::OFFSET_COMMIT, 0, 9),
    (api_key::OFFSET_FETCH, 0, 9),
    (api_key::FIND_COORDINATOR, 0, 6),
    (api_key::JOIN_GROUP, 0, 9),
    (api_key::HEARTBEAT, 0, 4),
    (api_key::LEAVE_GROUP, 0, 5),
    (api_key::SYNC_GROUP, 0, 5),
    (api_key::DESCRIBE_GROUPS, 0, 5),
    (api_key::LIST_GROUPS, 0, 5),
    (api_key::SASL_HANDSHAKE, 0, 1),
    (api_key::API_VERSIONS, 0, 4),
    (api_key::CREATE_TOPICS, 0, 7),
    (api_key::DELETE_TOPICS, 0, 6),
    (api_key::DELETE_RECORDS, 0, 2),
    (api_key::INIT_PRODUCER_ID, 0, 5),
    (api_key::OFFSET_FOR_LEADER_EPOCH, 0, 4),
    (api_key::DESCRIBE_CONFIGS, 0, 4),
    (api_key::SASL_AUTHENTICATE, 0, 2),
    (api_key::CREATE_PARTITIONS, 0, 3),
    (api_key::DELETE_GROUPS, 0, 2),
    (api_key::ALTER_CONFIGS, 0, 2),
    (api_key::DESCRIBE_CLUSTER, 0, 1),
    (api_key::INCREMENTAL_ALTER_CONFIGS, 0, 1),
    (api_key::OFFSET_DELETE, 0, 0),
    // KIP-848; v1 from kafka-protocol 0.18.0 (see `consumer.rs`).
    (api_key::CONSUMER_GROUP_HEARTBEAT, 0, 1),
    (api_key::CONSUMER_GROUP_DESCRIBE, 0, 1),
    // The transaction APIs, at the end so that the APIs advertised before keep their places.
    (api_key::ADD_PARTITIONS_TO_TXN, 0, 5),
    (api_key::ADD_OFFSETS_TO_TXN, 0, 4),
    (api_key::END_TXN, 0, 4),
    (api_key::TXN_OFFSET_COMMIT, 0, 4),
    (api_key::DESCRIBE_PRODUCERS, 0, 0),
    (api_key::DESCRIBE_TRANSACTIONS, 0, 0),
    (api_key::LIST_TRANSACTIONS, 0, 1),
];

/// The version range served for an API key.
pub(crate) fn supported(key: i16) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, lo, hi)| (lo, hi))
}

/// A string as kafka-protocol holds it.
fn s(x: impl Into<String>) -> StrBytes {
    StrBytes::from_string(x.into())
}

/// A response body encoded at `version`.
fn encode<T: Encodable>(msg: &T, version: i16) -> Result<BytesMut, String> {
    let mut b = BytesMut::new();
    msg.encode(&mut b, version)
        .map_err(|e| format!("encoding the response: {e}"))?;
    Ok(b)
}

/// Answers with `msg` encoded at `version` (closing the connection if it cannot be encoded).
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
    // Each arm decodes the request, calls its family's handler with the state it needs and
    // encodes the answer; throttle_time_ms is the knob's value wherever the response has it.
    match api {
        ApiKey::ApiVersions => {
            let req = decode!(ApiVersionsRequest);
            api_versions::api_versions(conn, &knobs, req, version)
        }
        ApiKey::Metadata => {
            let req = decode!(MetadataRequest);
            let resp = metadata::metadata(shared, &conn.advertised, req, version);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::DescribeCluster => {
            let req = decode!(DescribeClusterRequest);
            let resp = metadata::describe_cluster(shared, &conn.advertised, req, version);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::Produce => {
            let req = decode!(ProduceRequest);
            produce::produce(shared, conn, &knobs, req, version)
        }
        ApiKey::InitProducerId => {
            let req = decode!(InitProducerIdRequest);
            let resp = match req.transactional_id.clone() {
                Some(tid) => txn::init_producer_id(shared, tid.0.as_str(), &req, version),
                None => produce::init_producer_id(shared, req),
            };
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::Fetch => {
            let req = decode!(FetchRequest);
            let resp = fetch::fetch(shared, req, version).await;
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::ListOffsets => {
            let req = decode!(ListOffsetsRequest);
            let resp = offsets::list_offsets(&shared.topics, req, version);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::OffsetForLeaderEpoch => {
            let req = decode!(OffsetForLeaderEpochRequest);
            let resp = offsets::offset_for_leader_epoch(&shared.topics, req);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::DeleteRecords => {
            let req = decode!(DeleteRecordsRequest);
            let resp = offsets::delete_records(&shared.topics, req);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::CreateTopics => {
            let req = decode!(CreateTopicsRequest);
            let resp = admin::create_topics(shared, req, version);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::DeleteTopics => {
            let req = decode!(DeleteTopicsRequest);
            let resp = admin::delete_topics(&shared.topics, req, version);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::CreatePartitions => {
            let req = decode!(CreatePartitionsRequest);
            let resp = admin::create_partitions(&shared.topics, req);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::DescribeConfigs => {
            let req = decode!(DescribeConfigsRequest);
            let resp = configs::describe_configs(shared, req, version);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::AlterConfigs => {
            let req = decode!(AlterConfigsRequest);
            let resp = configs::alter_configs(shared, req);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::IncrementalAlterConfigs => {
            let req = decode!(IncrementalAlterConfigsRequest);
            let resp = configs::incremental_alter_configs(shared, req);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::FindCoordinator => {
            let req = decode!(FindCoordinatorRequest);
            let resp = group::find_coordinator(shared, &conn.advertised, req, version);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::JoinGroup => {
            let req = decode!(JoinGroupRequest);
            let resp = group::join_group(shared, conn, header, req, version).await;
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::SyncGroup => group!(SyncGroupRequest, sync_group),
        ApiKey::Heartbeat => group!(HeartbeatRequest, heartbeat),
        ApiKey::LeaveGroup => group!(LeaveGroupRequest, leave_group),
        ApiKey::OffsetCommit => group!(OffsetCommitRequest, offset_commit),
        ApiKey::OffsetFetch => {
            let req = decode!(OffsetFetchRequest);
            let stable = txn::stable_groups(&req, version);
            let resp = shared.groups.offset_fetch(req, version).await;
            let resp = txn::mark_unstable(shared, stable, resp, version);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::DescribeGroups => group!(DescribeGroupsRequest, describe_groups),
        ApiKey::ListGroups => group!(ListGroupsRequest, list_groups),
        ApiKey::DeleteGroups => group!(DeleteGroupsRequest, delete_groups),
        ApiKey::OffsetDelete => {
            let req = decode!(OffsetDeleteRequest);
            let resp = group::offset_delete(shared, req);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::ConsumerGroupHeartbeat => {
            consumer::heartbeat(shared, conn, header, body, version, throttle)
        }
        ApiKey::ConsumerGroupDescribe => consumer::describe(shared, body, version, throttle),
        ApiKey::AddPartitionsToTxn => {
            let req = decode!(AddPartitionsToTxnRequest);
            let resp = txn::add_partitions_to_txn(shared, req, version);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::AddOffsetsToTxn => {
            let req = decode!(AddOffsetsToTxnRequest);
            let resp = txn::add_offsets_to_txn(shared, req, version);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::TxnOffsetCommit => {
            let req = decode!(TxnOffsetCommitRequest);
            let resp = txn::txn_offset_commit(shared, req, version);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::EndTxn => {
            let req = decode!(EndTxnRequest);
            let resp = txn::end_txn(shared, req, version);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::DescribeTransactions => {
            let req = decode!(DescribeTransactionsRequest);
            let resp = txn::describe_transactions(shared, req);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::ListTransactions => {
            let req = decode!(ListTransactionsRequest);
            let resp = txn::list_transactions(shared, req, version);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::DescribeProducers => {
            let req = decode!(DescribeProducersRequest);
            let resp = txn::describe_producers(shared, req);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::SaslHandshake => {
            let req = decode!(SaslHandshakeRequest);
            sasl::sasl_handshake(shared, conn, req, version)
        }
        ApiKey::SaslAuthenticate => {
            let req = decode!(SaslAuthenticateRequest);
            sasl::sasl_authenticate(shared, conn, req, version)
        }
        other => Outcome::Close(format!("API {other:?} is not supported")),
    }
}
