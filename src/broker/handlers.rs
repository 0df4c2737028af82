//! One handler per API: decode with kafka-protocol (after the dissector has checked the frame),
//! act on the topics, logs, producer ids, fetch sessions and the group coordinator, encode.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    self, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use uuid::Uuid;

use super::log::{code, LEADER_EPOCH};
use super::state::{Conn, FetchSession, SessionPartition, Shared, MAX_SESSION_PARTITIONS};
use super::topics::{invalid_topic_name, Topic, TOPIC_DEFAULTS};
use crate::capture::now_micros;
use crate::protocol::batch::Entry;
use crate::settings::{Knobs, PlacementUsed, ThrottlePlacement};

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

/// The advertised API list, each maximum lowered to its version cap.
fn api_versions_body(error_code: i16, knobs: &Knobs) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            SUPPORTED
                .iter()
                .map(|&(k, lo, hi)| {
                    let (lo, hi) = knobs.capped(k, lo, hi);
                    ApiVersion::default()
                        .with_api_key(k)
                        .with_min_version(lo)
                        .with_max_version(hi)
                })
                .collect(),
        )
}

/// ApiVersionsResponse v0 with UNSUPPORTED_VERSION and the supported list (caps applied).
pub(crate) fn api_versions_unsupported(knobs: &Knobs) -> BytesMut {
    encode(&api_versions_body(code::UNSUPPORTED_VERSION, knobs), 0).unwrap_or_default()
}

/// Checks a SASL/PLAIN token (`authzid NUL user NUL password`) against the configured pair.
pub(crate) fn check_plain(shared: &Shared, token: &[u8]) -> bool {
    let Some((user, pass)) = &shared.config.sasl_plain else {
        return false;
    };
    let parts: Vec<&[u8]> = token.split(|b| *b == 0).collect();
    parts.len() == 3 && parts[1] == user.as_bytes() && parts[2] == pass.as_bytes()
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
                &api_versions_body(0, &knobs).with_throttle_time_ms(throttle),
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
                &metadata(shared, &conn.advertised, req, version, throttle),
                version,
            )
        }
        ApiKey::Produce => {
            let req = decode!(ProduceRequest);
            let used = knobs.placement_for(&conn.identity);
            let out = produce(shared, req, version, throttle, &used);
            if matches!(out, Outcome::Reply { .. }) {
                conn.placement_used = Some(effective_placement(used, version));
            }
            out
        }
        ApiKey::Fetch => {
            let req = decode!(FetchRequest);
            let resp = fetch(shared, req, version).await;
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::ListOffsets => {
            let req = decode!(ListOffsetsRequest);
            reply(
                &list_offsets(shared, req, version).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::FindCoordinator => {
            let req = decode!(FindCoordinatorRequest);
            reply(
                &find_coordinator(shared, &conn.advertised, req, version)
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
                &init_producer_id(shared, req).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::CreateTopics => {
            let req = decode!(CreateTopicsRequest);
            reply(
                &create_topics(shared, req, version).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::DeleteTopics => {
            let req = decode!(DeleteTopicsRequest);
            reply(
                &delete_topics(shared, req, version).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::CreatePartitions => {
            let req = decode!(CreatePartitionsRequest);
            reply(
                &create_partitions(shared, req).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::DescribeConfigs => {
            let req = decode!(DescribeConfigsRequest);
            reply(
                &describe_configs(shared, req, version).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::OffsetForLeaderEpoch => {
            let req = decode!(OffsetForLeaderEpochRequest);
            reply(
                &offset_for_leader_epoch(shared, req).with_throttle_time_ms(throttle),
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
            let ok = check_plain(shared, &req.auth_bytes);
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
                &delete_records(shared, req).with_throttle_time_ms(throttle),
                version,
            )
        }
        ApiKey::AlterConfigs => {
            let req = decode!(AlterConfigsRequest);
            reply(
                &alter_configs(shared, req).with_throttle_time_ms(throttle),
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

fn metadata(
    shared: &Shared,
    advertised: &(String, u16),
    req: MetadataRequest,
    version: i16,
    throttle: i32,
) -> MetadataResponse {
    let (host, port) = advertised;
    let node = BrokerId(shared.config.node_id);
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
                        .with_error_code(code::UNKNOWN_TOPIC_ID)
                        .with_name(None)
                        .with_topic_id(rt.topic_id);
                };
                let wire = TopicName(s(n.clone()));
                if let Some(why) = invalid_topic_name(&n) {
                    tracing::debug!(reason = %why, "metadata for an invalid topic name");
                    return MetadataResponseTopic::default()
                        .with_error_code(code::INVALID_TOPIC_EXCEPTION)
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
                    .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                    .with_name(Some(wire))
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_throttle_time_ms(throttle)
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
        .with_topics(topics)
}

/// Finds a topic for produce, creating it when allowed.
fn topic_for_produce(shared: &Shared, name: &str) -> Result<Arc<Topic>, i16> {
    if let Some(t) = shared.topics.get(name) {
        return Ok(t);
    }
    if invalid_topic_name(name).is_some() {
        return Err(code::INVALID_TOPIC_EXCEPTION);
    }
    if !shared.config.auto_create_topics {
        return Err(code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    if let Err(why) = shared
        .topics
        .room_for(1, shared.config.default_partitions.max(1) as i64)
    {
        tracing::warn!(topic = name, reason = %why, "not auto-creating");
        return Err(code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    match shared
        .topics
        .create(name, shared.config.default_partitions, BTreeMap::new())
    {
        Ok(Ok(t)) | Ok(Err(t)) => Ok(t),
        Err(e) => {
            tracing::error!(error = %e, topic = name, "auto-create failed");
            Err(code::KAFKA_STORAGE_ERROR)
        }
    }
}

/// What a ProduceResponse of this version is actually encoded with: v0 has no throttle field
/// (spec), and `front` applies to v1-v8 only (see [`place_throttle`]).
fn effective_placement(used: PlacementUsed, version: i16) -> PlacementUsed {
    let moves = match used.placement {
        ThrottlePlacement::Spec => false,
        ThrottlePlacement::Front => (1..=8).contains(&version),
        ThrottlePlacement::Omit => version >= 1,
    };
    if moves {
        used
    } else {
        PlacementUsed {
            placement: ThrottlePlacement::Spec,
            ..used
        }
    }
}

fn produce(
    shared: &Shared,
    req: ProduceRequest,
    version: i16,
    throttle: i32,
    used: &PlacementUsed,
) -> Outcome {
    let acks = req.acks;
    let acks_ok = (-1..=1).contains(&acks);
    let mut appended_any = false;
    let mut notes = Vec::new();
    let mut responses = Vec::new();
    for td in req.topic_data {
        let name = td.name.0.to_string();
        let topic = if acks_ok {
            topic_for_produce(shared, &name)
        } else {
            Err(code::INVALID_REQUIRED_ACKS)
        };
        let mut parts = Vec::new();
        for pd in td.partition_data {
            let mut r = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1);
            let result = topic.as_ref().map_err(|c| (*c, None)).and_then(|t| {
                let p = t
                    .partition(pd.index)
                    .ok_or((code::UNKNOWN_TOPIC_OR_PARTITION, None))?;
                let records = pd.records.as_deref().unwrap_or(&[]);
                let limit = t
                    .config("max.message.bytes")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(usize::MAX);
                let biggest = crate::protocol::batch::split(records)
                    .iter()
                    .map(|e| match *e {
                        Entry::Batch { start, end } | Entry::Legacy { start, end, .. } => {
                            end - start
                        }
                        _ => 0,
                    })
                    .max()
                    .unwrap_or(0);
                if biggest > limit {
                    return Err((
                        code::MESSAGE_TOO_LARGE,
                        Some(format!(
                            "a batch of {biggest} bytes exceeds max.message.bytes {limit}"
                        )),
                    ));
                }
                let lat = t.log_append_time().then(|| now_micros() / 1000);
                let mut log = p.lock().unwrap_or_else(|e| e.into_inner());
                let start = log.start_offset();
                log.append(records, lat)
                    .map(|a| (a, start))
                    .map_err(|e| (e.code, Some(e.message)))
            });
            match result {
                Ok((a, start)) => {
                    if a.duplicate {
                        notes.push(format!(
                            "{name}-{}: duplicate batch acknowledged with its original offset {}",
                            pd.index, a.base_offset
                        ));
                    } else {
                        appended_any = true;
                    }
                    r = r
                        .with_base_offset(a.base_offset)
                        .with_log_append_time_ms(a.log_append_time);
                    if version >= 5 {
                        r = r.with_log_start_offset(start);
                    }
                }
                Err((c, msg)) => {
                    tracing::info!(topic = %name, partition = pd.index, code = c,
                        message = msg.as_deref().unwrap_or(""), "produce refused");
                    r = r.with_error_code(c);
                    if version >= 8 {
                        r = r.with_error_message(msg.map(s));
                    }
                }
            }
            parts.push(r);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(td.name)
                .with_partition_responses(parts),
        );
    }
    if appended_any {
        shared.appended.send_modify(|n| *n += 1);
    }
    if acks == 0 {
        // As Kafka: an acks=0 producer hears of a failure only by the connection closing.
        let failed = responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .any(|p| p.error_code != 0);
        if failed {
            notes.push("acks=0 produce failed: connection closed".into());
        }
        return Outcome::NoResponse {
            notes,
            close_after: failed,
        };
    }
    let resp = ProduceResponse::default()
        .with_responses(responses)
        .with_throttle_time_ms(throttle);
    let mut body = match encode(&resp, version) {
        Ok(b) => b,
        Err(e) => return Outcome::Close(e),
    };
    let effective = effective_placement(used.clone(), version);
    if effective.placement != ThrottlePlacement::Spec {
        body = place_throttle(body, version, effective.placement);
    }
    // Noted whenever it differs from the default, so a capture explains itself.
    if used.placement != ThrottlePlacement::Spec || used.rule.is_some() {
        let word = match effective.placement {
            ThrottlePlacement::Front => "front",
            ThrottlePlacement::Omit => "omitted",
            ThrottlePlacement::Spec => "spec",
        };
        let why = match (&used.rule, used.placement != effective.placement) {
            (None, false) => String::new(),
            (Some((i, text)), false) => format!(" (rule {i}: {text})"),
            (rule, true) => format!(
                " ({} asked{}; {})",
                used.placement,
                rule.as_ref()
                    .map(|(i, text)| format!(" by rule {i}: {text}"))
                    .unwrap_or_default(),
                if version == 0 {
                    "v0 has no throttle_time_ms".to_string()
                } else {
                    format!(
                        "front applies to v1-v8 as in Chronik Stream 0.7.2; v{version} is a \
                         flexible version, encoded as spec"
                    )
                }
            ),
        };
        notes.push(format!("throttle_time_ms placement: {word}{why}"));
    }
    Outcome::Reply {
        body,
        notes,
        close_after: false,
    }
}

/// Moves or removes ProduceResponse's throttle_time_ms. It is the last field before the
/// top-level tagged fields: the final 4 bytes up to v8; in v9+ (no tagged fields written, so
/// the tag section is the single count byte 0) the 4 bytes before that byte. Callers ask for
/// `front` on v1-v8 only (see [`effective_placement`]); on v9+ it would put the int32 where the
/// client reads the compact array's varint length.
fn place_throttle(body: BytesMut, version: i16, placement: ThrottlePlacement) -> BytesMut {
    let tail = if version >= 9 { 1 } else { 0 };
    if body.len() < 4 + tail {
        return body;
    }
    let at = body.len() - tail - 4;
    let throttle = body[at..at + 4].to_vec();
    let mut out = BytesMut::with_capacity(body.len());
    if placement == ThrottlePlacement::Front {
        out.extend_from_slice(&throttle);
    }
    out.extend_from_slice(&body[..at]);
    out.extend_from_slice(&body[at + 4..]);
    out
}

struct PlanItem {
    name: String,
    topic_id: Uuid,
    partition: i32,
    fetch_offset: i64,
    max_bytes: i32,
}

fn request_partitions(shared: &Shared, req: &FetchRequest, version: i16) -> Vec<PlanItem> {
    let mut out = Vec::new();
    for t in &req.topics {
        let (name, id) = if version >= 13 {
            let name = shared
                .topics
                .by_id(t.topic_id)
                .map(|t| t.name.clone())
                .unwrap_or_default();
            (name, t.topic_id)
        } else {
            (t.topic.0.to_string(), Uuid::nil())
        };
        for p in &t.partitions {
            out.push(PlanItem {
                name: name.clone(),
                topic_id: id,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
            });
        }
    }
    out
}

async fn fetch(shared: &Shared, req: FetchRequest, version: i16) -> FetchResponse {
    let requested = request_partitions(shared, &req, version);
    // Work out the session and the partitions to read.
    let (session_id, incremental, plan) = {
        let mut sessions = shared.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let (sid, epoch) = if version >= 7 {
            (req.session_id, req.session_epoch)
        } else {
            (0, -1)
        };
        if sid != 0 && (epoch == -1 || epoch == 0) {
            sessions.map.remove(&sid);
        }
        if epoch == -1 {
            (0, false, requested)
        } else if epoch == 0 && requested.len() > MAX_SESSION_PARTITIONS {
            // Too big to cache: served without a session, as Kafka does when its cache is full.
            (0, false, requested)
        } else if epoch == 0 {
            let mut sess = FetchSession {
                next_epoch: 1,
                ..Default::default()
            };
            for p in &requested {
                sess.partitions.insert(
                    (p.name.clone(), p.partition),
                    SessionPartition {
                        topic_id: p.topic_id,
                        fetch_offset: p.fetch_offset,
                        max_bytes: p.max_bytes,
                        last_sent: None,
                    },
                );
            }
            let id = sessions.create(sess);
            (id, false, requested)
        } else {
            let Some(sess) = sessions.map.get_mut(&sid) else {
                return FetchResponse::default().with_error_code(code::FETCH_SESSION_ID_NOT_FOUND);
            };
            if sess.next_epoch != epoch {
                return FetchResponse::default().with_error_code(code::INVALID_FETCH_SESSION_EPOCH);
            }
            sess.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
            for f in &req.forgotten_topics_data {
                let name = if version >= 13 {
                    shared
                        .topics
                        .by_id(f.topic_id)
                        .map(|t| t.name.clone())
                        .unwrap_or_default()
                } else {
                    f.topic.0.to_string()
                };
                for p in &f.partitions {
                    sess.partitions.remove(&(name.clone(), *p));
                }
            }
            for p in &requested {
                let e = sess
                    .partitions
                    .entry((p.name.clone(), p.partition))
                    .or_insert(SessionPartition {
                        topic_id: p.topic_id,
                        fetch_offset: p.fetch_offset,
                        max_bytes: p.max_bytes,
                        last_sent: None,
                    });
                e.fetch_offset = p.fetch_offset;
                e.max_bytes = p.max_bytes;
            }
            if sess.partitions.len() > MAX_SESSION_PARTITIONS {
                sessions.map.remove(&sid);
                return FetchResponse::default().with_error_code(code::FETCH_SESSION_ID_NOT_FOUND);
            }
            let plan = sess
                .partitions
                .iter()
                .map(|((name, part), sp)| PlanItem {
                    name: name.clone(),
                    topic_id: sp.topic_id,
                    partition: *part,
                    fetch_offset: sp.fetch_offset,
                    max_bytes: sp.max_bytes,
                })
                .collect();
            (sid, true, plan)
        }
    };

    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + max_wait;
    let max_bytes = if version >= 3 {
        req.max_bytes.max(0) as usize
    } else {
        usize::MAX
    };
    let mut rx = shared.appended.subscribe();
    let gathered = loop {
        rx.borrow_and_update();
        let g = gather(shared, &plan, max_bytes, version);
        let has_error = g.iter().any(|pd| pd.error_code != 0);
        let total: usize = g
            .iter()
            .map(|pd| pd.records.as_ref().map_or(0, Bytes::len))
            .sum();
        if total as i64 >= req.min_bytes as i64
            || has_error
            || tokio::time::Instant::now() >= deadline
        {
            break g;
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            break gather(shared, &plan, max_bytes, version);
        }
    };

    // Build the response; an incremental one carries only partitions with news.
    let mut sessions = shared.sessions.lock().unwrap_or_else(|e| e.into_inner());
    let mut sess = if session_id != 0 {
        sessions.map.get_mut(&session_id)
    } else {
        None
    };
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for (item, pd) in plan.iter().zip(gathered) {
        let has_records = pd.records.as_ref().is_some_and(|r| !r.is_empty());
        let state = (pd.high_watermark, pd.log_start_offset);
        if let Some(sess) = sess.as_deref_mut() {
            if let Some(sp) = sess
                .partitions
                .get_mut(&(item.name.clone(), item.partition))
            {
                // As Kafka: a partition is in an incremental response when it has records, an
                // error, or its high watermark or log start moved since the last response.
                let news = has_records || pd.error_code != 0 || sp.last_sent != Some(state);
                sp.last_sent = Some(state);
                if incremental && !news {
                    continue;
                }
            }
        }
        let same = topics.last().is_some_and(|t| {
            if version >= 13 {
                t.topic_id == item.topic_id
            } else {
                t.topic.0.as_str() == item.name
            }
        });
        if !same {
            let mut t = FetchableTopicResponse::default();
            if version >= 13 {
                t.topic_id = item.topic_id;
            } else {
                t.topic = TopicName(s(item.name.clone()));
            }
            topics.push(t);
        }
        if let Some(t) = topics.last_mut() {
            t.partitions.push(pd);
        }
    }
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(topics)
}

fn gather(
    shared: &Shared,
    plan: &[PlanItem],
    max_bytes: usize,
    version: i16,
) -> Vec<PartitionData> {
    let mut remaining = max_bytes;
    let mut any = false;
    plan.iter()
        .map(|item| {
            let mut pd = PartitionData::default()
                .with_partition_index(item.partition)
                .with_high_watermark(-1);
            if version >= 4 {
                pd.last_stable_offset = -1;
                pd.aborted_transactions = None;
            }
            let topic = if version >= 13 {
                shared.topics.by_id(item.topic_id)
            } else {
                shared.topics.get(&item.name)
            };
            let Some(topic) = topic else {
                pd.error_code = if version >= 13 {
                    code::UNKNOWN_TOPIC_ID
                } else {
                    code::UNKNOWN_TOPIC_OR_PARTITION
                };
                return pd;
            };
            let Some(p) = topic.partition(item.partition) else {
                pd.error_code = code::UNKNOWN_TOPIC_OR_PARTITION;
                return pd;
            };
            let log = p.lock().unwrap_or_else(|e| e.into_inner());
            let (start, end) = (log.start_offset(), log.end_offset());
            pd.high_watermark = end;
            if version >= 4 {
                pd.last_stable_offset = end;
                pd.aborted_transactions = Some(Vec::new());
            }
            if version >= 5 {
                pd.log_start_offset = start;
            }
            if item.fetch_offset < start || item.fetch_offset > end {
                pd.error_code = code::OFFSET_OUT_OF_RANGE;
                return pd;
            }
            let limit = (item.max_bytes.max(0) as usize).min(remaining);
            let chunks = log.read(item.fetch_offset, limit, !any);
            let mut records = BytesMut::new();
            for c in chunks {
                records.extend_from_slice(&c);
            }
            remaining = remaining.saturating_sub(records.len());
            any |= !records.is_empty();
            pd.records = Some(records.freeze());
            pd
        })
        .collect()
}

fn list_offsets(shared: &Shared, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = shared.topics.get(t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let Some(part) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return r.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let log = part.lock().unwrap_or_else(|e| e.into_inner());
                    let (offset, ts) = match p.timestamp {
                        -1 => (log.end_offset(), -1),
                        // -4 / -5: earliest local / tiered offset; all of it is local here.
                        -2 | -4 | -5 => (log.start_offset(), -1),
                        -3 => log.max_timestamp_offset().unwrap_or((-1, -1)),
                        ts => log.offset_for_timestamp(ts).unwrap_or((-1, -1)),
                    };
                    if version == 0 {
                        r.old_style_offsets = if offset >= 0 { vec![offset] } else { vec![] };
                    } else {
                        r.offset = offset;
                        r.timestamp = ts;
                    }
                    if version >= 4 {
                        r.leader_epoch = LEADER_EPOCH;
                    }
                    r
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn find_coordinator(
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

fn init_producer_id(shared: &Shared, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let (pid, epoch) = match &req.transactional_id {
        Some(tid) => {
            let mut map = shared
                .transactional
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let e = map
                .entry(tid.0.to_string())
                .or_insert_with(|| (shared.next_producer_id.fetch_add(1, Ordering::Relaxed), -1));
            e.1 = e.1.wrapping_add(1).max(0);
            *e
        }
        None if req.producer_id.0 >= 0 => {
            (req.producer_id.0, req.producer_epoch.wrapping_add(1).max(0))
        }
        None => (shared.next_producer_id.fetch_add(1, Ordering::Relaxed), 0),
    };
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
}

/// Checks topic configs given as (name, value) pairs; entries without a value are skipped.
fn parse_configs<'a>(
    configs: impl IntoIterator<Item = (&'a StrBytes, Option<&'a StrBytes>)>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (name, value) in configs {
        let key = name.to_string();
        let Some(value) = value.map(|v| v.to_string()) else {
            continue;
        };
        let numeric = [
            "max.message.bytes",
            "retention.bytes",
            "retention.ms",
            "segment.bytes",
        ];
        if numeric.contains(&key.as_str()) && value.parse::<i64>().is_err() {
            return Err(format!("{key} must be a number, not {value:?}"));
        }
        if key == "message.timestamp.type" && value != "CreateTime" && value != "LogAppendTime" {
            return Err(format!(
                "message.timestamp.type must be CreateTime or LogAppendTime, not {value:?}"
            ));
        }
        out.insert(key, value);
    }
    Ok(out)
}

fn create_topics(shared: &Shared, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
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
                return fail(r, code::INVALID_TOPIC_EXCEPTION, why);
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
                    code::INVALID_PARTITIONS,
                    format!("{partitions} partitions"),
                );
            }
            if t.replication_factor > 1 || t.replication_factor == 0 || t.replication_factor < -1 {
                return fail(
                    r,
                    code::INVALID_REPLICATION_FACTOR,
                    format!(
                        "replication factor {} (this is a single broker)",
                        t.replication_factor
                    ),
                );
            }
            let configs = match parse_configs(t.configs.iter().map(|c| (&c.name, c.value.as_ref())))
            {
                Ok(c) => c,
                Err(m) => return fail(r, code::INVALID_CONFIG, m),
            };
            if shared.topics.get(&name).is_some() {
                return fail(
                    r,
                    code::TOPIC_ALREADY_EXISTS,
                    format!("Topic '{name}' already exists."),
                );
            }
            if let Err(why) = shared.topics.room_for(1, partitions as i64) {
                return fail(r, code::POLICY_VIOLATION, why);
            }
            let id = if req.validate_only {
                Uuid::nil()
            } else {
                match shared.topics.create(&name, partitions, configs.clone()) {
                    Ok(Ok(t)) => t.id,
                    Ok(Err(_)) => {
                        return fail(
                            r,
                            code::TOPIC_ALREADY_EXISTS,
                            format!("Topic '{name}' already exists."),
                        )
                    }
                    Err(e) => return fail(r, code::KAFKA_STORAGE_ERROR, e.to_string()),
                }
            };
            if version >= 1 {
                r.error_message = None;
            }
            if version >= 5 {
                r.num_partitions = partitions;
                r.replication_factor = 1;
                r.configs = Some(
                    TOPIC_DEFAULTS
                        .iter()
                        .map(|(k, v)| {
                            let set = configs.get(*k);
                            CreatableTopicConfigs::default()
                                .with_name(s(*k))
                                .with_value(Some(s(set.cloned().unwrap_or(v.to_string()))))
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

fn delete_topics(shared: &Shared, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
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
                Some(n) => shared.topics.get(n),
                None => shared.topics.by_id(id),
            };
            let mut r =
                DeletableTopicResult::default().with_name(name.clone().map(|n| TopicName(s(n))));
            if version >= 6 {
                r.topic_id = topic.as_ref().map_or(id, |t| t.id);
            }
            let Some(t) = topic else {
                return r.with_error_code(if name.is_none() {
                    code::UNKNOWN_TOPIC_ID
                } else {
                    code::UNKNOWN_TOPIC_OR_PARTITION
                });
            };
            if version >= 6 {
                r.name = Some(t.wire_name());
            }
            match shared.topics.delete(&t.name) {
                Ok(_) => r,
                Err(e) => {
                    let r = r.with_error_code(code::KAFKA_STORAGE_ERROR);
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

fn create_partitions(shared: &Shared, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let Some(topic) = shared.topics.get(t.name.0.as_str()) else {
                return r
                    .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                    .with_error_message(Some(s("unknown topic")));
            };
            let current = topic.partition_count();
            if t.count <= current || t.count > 10_000 {
                return r
                    .with_error_code(code::INVALID_PARTITIONS)
                    .with_error_message(Some(s(format!(
                        "topic has {current} partitions; asked for {}",
                        t.count
                    ))));
            }
            if let Err(why) = shared.topics.room_for(0, (t.count - current) as i64) {
                return r
                    .with_error_code(code::POLICY_VIOLATION)
                    .with_error_message(Some(s(why)));
            }
            if req.validate_only {
                return r;
            }
            match shared.topics.add_partitions(&topic, t.count) {
                Ok(()) => r,
                Err(e) => r
                    .with_error_code(code::KAFKA_STORAGE_ERROR)
                    .with_error_message(Some(s(e.to_string()))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

/// DeleteRecords: moves each partition's log start offset.
fn delete_records(shared: &Shared, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = shared.topics.get(t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = delete_records_response::DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let Some(part) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return r.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let mut log = part.lock().unwrap_or_else(|e| e.into_inner());
                    match log.delete_records(p.offset) {
                        Ok(low) => r.with_low_watermark(low),
                        Err(e) => {
                            tracing::info!(topic = %t.name.0, partition = p.partition_index,
                                reason = %e.message, "delete records refused");
                            r.with_error_code(e.code)
                        }
                    }
                })
                .collect();
            delete_records_response::DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// AlterConfigs: a topic's configs are replaced by the given set; broker configs are fixed.
fn alter_configs(shared: &Shared, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let r = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let fail = |r: alter_configs_response::AlterConfigsResourceResponse, c, m: String| {
                r.with_error_code(c).with_error_message(Some(s(m)))
            };
            if res.resource_type != 2 {
                return fail(
                    r,
                    code::INVALID_REQUEST,
                    format!("resource type {} cannot be altered", res.resource_type),
                );
            }
            let Some(topic) = shared.topics.get(res.resource_name.as_str()) else {
                return fail(r, code::UNKNOWN_TOPIC_OR_PARTITION, "unknown topic".into());
            };
            let configs =
                match parse_configs(res.configs.iter().map(|c| (&c.name, c.value.as_ref()))) {
                    Ok(c) => c,
                    Err(m) => return fail(r, code::INVALID_CONFIG, m),
                };
            if req.validate_only {
                return r;
            }
            match shared.topics.set_configs(&topic, configs) {
                Ok(()) => r,
                Err(e) => fail(r, code::KAFKA_STORAGE_ERROR, e.to_string()),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// Broker configs reported by DescribeConfigs.
const BROKER_CONFIGS: &[(&str, &str)] = &[
    ("auto.create.topics.enable", "true"),
    ("log.retention.hours", "168"),
    ("message.max.bytes", "1048588"),
    ("num.partitions", "1"),
    ("socket.request.max.bytes", "104857600"),
];

fn describe_configs(
    shared: &Shared,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let results =
        req.resources
            .into_iter()
            .map(|res| {
                let mut r = DescribeConfigsResult::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
                let entries: Vec<(String, String, bool)> =
                    match res.resource_type {
                        2 => {
                            let Some(t) = shared.topics.get(res.resource_name.as_str()) else {
                                return r
                                    .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                                    .with_error_message(Some(s("unknown topic")));
                            };
                            let mut keys: Vec<String> =
                                TOPIC_DEFAULTS.iter().map(|(k, _)| k.to_string()).collect();
                            let set_configs = t.configs();
                            keys.extend(
                                set_configs
                                    .keys()
                                    .filter(|k| !keys.contains(k))
                                    .cloned()
                                    .collect::<Vec<_>>(),
                            );
                            keys.into_iter()
                                .map(|k| {
                                    let set = set_configs.contains_key(&k);
                                    let v = t.config(&k).unwrap_or_default();
                                    (k, v, !set)
                                })
                                .collect()
                        }
                        4 => {
                            let mut v: Vec<(String, String, bool)> = BROKER_CONFIGS
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_string(), true))
                                .collect();
                            v.push(("broker.id".into(), shared.config.node_id.to_string(), false));
                            v
                        }
                        other => {
                            return r.with_error_code(code::INVALID_REQUEST).with_error_message(
                                Some(s(format!("resource type {other} is not supported"))),
                            )
                        }
                    };
                let wanted = res.configuration_keys.as_ref();
                r.configs = entries
                    .into_iter()
                    .filter(|(k, _, _)| wanted.is_none_or(|w| w.iter().any(|x| x.as_str() == k)))
                    .map(|(k, v, is_default)| {
                        let mut c = DescribeConfigsResourceResult::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)));
                        if version == 0 {
                            c.is_default = is_default;
                        } else {
                            c.config_source = match (is_default, res.resource_type) {
                                (true, _) => 5,
                                (false, 2) => 1,
                                (false, _) => 4,
                            };
                        }
                        if version >= 3 {
                            c.config_type = 2;
                        }
                        c
                    })
                    .collect();
                r
            })
            .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn offset_for_leader_epoch(
    shared: &Shared,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = shared.topics.get(t.topic.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = offset_for_leader_epoch_response::EpochEndOffset::default()
                        .with_partition(p.partition);
                    match topic.as_ref().and_then(|t| t.partition(p.partition)) {
                        None => r.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION),
                        Some(part) => {
                            let end = part.lock().unwrap_or_else(|e| e.into_inner()).end_offset();
                            r.with_leader_epoch(LEADER_EPOCH).with_end_offset(end)
                        }
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
