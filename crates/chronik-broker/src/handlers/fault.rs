//! The `error` fault: answering a request with an error code instead of serving it. Nothing is
//! done (no records stored, no offsets committed, no topic created, no member joined); the
//! response carries the code where Kafka's own broker puts it when it cannot serve the
//! request, for every partition, topic, group or key the request named.

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use super::{metadata, produce, reply, s, Outcome};
use crate::settings::Knobs;
use crate::state::{Conn, Shared};

/// Decodes the request, or says why it cannot be.
fn decode<T: Decodable>(body: &mut Bytes, version: i16) -> Result<T, Outcome> {
    T::decode(body, version).map_err(|e| Outcome::Close(format!("decoding the request body: {e}")))
}

/// The API's response with error `code`, the request not carried out. `None` for an API this
/// cannot answer (fault rules refuse those: `settings::ERROR_FAULT_APIS`), and for Metadata
/// without a broker's state (`shared`: the proxy has none; its brokers and topics are
/// upstream's).
pub(crate) fn error_reply(
    shared: Option<&Shared>,
    conn: &mut Conn,
    knobs: &Knobs,
    api: ApiKey,
    version: i16,
    mut body: Bytes,
    code: i16,
) -> Option<Outcome> {
    let throttle = knobs.throttle_ms;
    macro_rules! req {
        ($t:ty) => {
            match decode::<$t>(&mut body, version) {
                Ok(r) => r,
                Err(o) => return Some(o),
            }
        };
    }
    Some(match api {
        ApiKey::Produce => {
            let req = req!(ProduceRequest);
            if req.acks == 0 {
                // As Kafka tells an acks=0 producer of any failure: by closing the connection.
                return Some(Outcome::NoResponse {
                    notes: vec!["acks=0: the error closes the connection".into()],
                    close_after: true,
                });
            }
            let responses = req
                .topic_data
                .into_iter()
                .map(|t| {
                    TopicProduceResponse::default()
                        .with_name(t.name)
                        .with_partition_responses(
                            t.partition_data
                                .iter()
                                .map(|p| {
                                    PartitionProduceResponse::default()
                                        .with_index(p.index)
                                        .with_error_code(code)
                                        .with_base_offset(-1)
                                })
                                .collect(),
                        )
                })
                .collect();
            let resp = ProduceResponse::default()
                .with_responses(responses)
                .with_throttle_time_ms(throttle);
            let mut out = reply(&resp, version);
            if let Outcome::Reply { notes, .. } = &mut out {
                produce::place(conn, knobs, version, notes);
            }
            out
        }
        ApiKey::Fetch => {
            let req = req!(FetchRequest);
            // Kafka: from v13 only the top-level code; before, also every partition's.
            let responses = if version >= 13 {
                Vec::new()
            } else {
                req.topics
                    .into_iter()
                    .map(|t| {
                        FetchableTopicResponse::default()
                            .with_topic(t.topic)
                            .with_topic_id(t.topic_id)
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        PartitionData::default()
                                            .with_partition_index(p.partition)
                                            .with_error_code(code)
                                            .with_high_watermark(-1)
                                            .with_last_stable_offset(-1)
                                            .with_log_start_offset(-1)
                                            .with_records(Some(Bytes::new()))
                                    })
                                    .collect(),
                            )
                    })
                    .collect()
            };
            let mut resp = FetchResponse::default()
                .with_throttle_time_ms(throttle)
                .with_responses(responses);
            if version >= 7 {
                resp = resp.with_error_code(code).with_session_id(0);
            }
            reply(&resp, version)
        }
        ApiKey::ListOffsets => {
            let req = req!(ListOffsetsRequest);
            let topics = req
                .topics
                .into_iter()
                .map(|t| {
                    ListOffsetsTopicResponse::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    ListOffsetsPartitionResponse::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
            let resp = ListOffsetsResponse::default()
                .with_throttle_time_ms(throttle)
                .with_topics(topics);
            reply(&resp, version)
        }
        ApiKey::Metadata => {
            let shared = shared?;
            let req = req!(MetadataRequest);
            let resp = metadata::error_response(shared, &conn.advertised, req, version, code);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::FindCoordinator => {
            let req = req!(FindCoordinatorRequest);
            let resp = if version >= 4 {
                FindCoordinatorResponse::default().with_coordinators(
                    req.coordinator_keys
                        .into_iter()
                        .map(|k| {
                            Coordinator::default()
                                .with_key(k)
                                .with_node_id(BrokerId(-1))
                                .with_host(s(""))
                                .with_port(-1)
                                .with_error_code(code)
                                .with_error_message(None)
                        })
                        .collect(),
                )
            } else {
                FindCoordinatorResponse::default()
                    .with_error_code(code)
                    .with_error_message(None)
                    .with_node_id(BrokerId(-1))
                    .with_host(s(""))
                    .with_port(-1)
            };
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::JoinGroup => {
            req!(JoinGroupRequest);
            let resp = JoinGroupResponse::default()
                .with_error_code(code)
                .with_generation_id(-1)
                .with_protocol_name(Some(s("")))
                .with_leader(s(""))
                .with_member_id(s(""));
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::SyncGroup => {
            req!(SyncGroupRequest);
            let resp = SyncGroupResponse::default()
                .with_error_code(code)
                .with_assignment(Bytes::new());
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::Heartbeat => {
            req!(HeartbeatRequest);
            let resp = HeartbeatResponse::default().with_error_code(code);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::LeaveGroup => {
            req!(LeaveGroupRequest);
            let resp = LeaveGroupResponse::default().with_error_code(code);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::OffsetCommit => {
            let req = req!(OffsetCommitRequest);
            let topics = req
                .topics
                .into_iter()
                .map(|t| {
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
            let resp = OffsetCommitResponse::default().with_topics(topics);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::OffsetFetch => {
            let req = req!(OffsetFetchRequest);
            // Kafka: v8+ per group; v2+ the top-level code; v0-1 every partition's.
            let resp = if version >= 8 {
                OffsetFetchResponse::default().with_groups(
                    req.groups
                        .into_iter()
                        .map(|g| {
                            OffsetFetchResponseGroup::default()
                                .with_group_id(g.group_id)
                                .with_error_code(code)
                        })
                        .collect(),
                )
            } else if version >= 2 {
                OffsetFetchResponse::default().with_error_code(code)
            } else {
                OffsetFetchResponse::default().with_topics(
                    req.topics
                        .unwrap_or_default()
                        .into_iter()
                        .map(|t| {
                            OffsetFetchResponseTopic::default()
                                .with_name(t.name)
                                .with_partitions(
                                    t.partition_indexes
                                        .iter()
                                        .map(|p| {
                                            OffsetFetchResponsePartition::default()
                                                .with_partition_index(*p)
                                                .with_committed_offset(-1)
                                                .with_metadata(Some(s("")))
                                                .with_error_code(code)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
            };
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        ApiKey::InitProducerId => {
            req!(InitProducerIdRequest);
            let resp = InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            reply(&resp.with_throttle_time_ms(throttle), version)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::BytesMut;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic,
    };
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::protocol::Encodable;

    use super::*;
    use crate::handlers::supported;
    use crate::settings::{Settings, ERROR_FAULT_APIS};
    use chronik_capture::{Store, StoreLimits};
    use chronik_protocol::frame::with_size_prefix;

    fn shared() -> Arc<Shared> {
        Shared::new(
            crate::BrokerConfig::default(),
            "127.0.0.1:9092".parse().unwrap(),
            Store::new(StoreLimits::default()),
            Settings::new(Knobs::default()),
        )
        .unwrap()
    }

    fn conn() -> Conn {
        let peer = "127.0.0.1:5000".parse().unwrap();
        Conn::new(1, peer, None, ("127.0.0.1".into(), 9092), true)
    }

    fn body<T: Encodable>(req: &T, version: i16) -> Bytes {
        let mut b = BytesMut::new();
        req.encode(&mut b, version).expect("the request encodes");
        b.freeze()
    }

    /// A request of `api` at `version` naming topic `t` partition 0, or group `g`.
    fn request(api: ApiKey, version: i16) -> Bytes {
        let topic = TopicName(s("t"));
        match api {
            ApiKey::Produce => body(
                &ProduceRequest::default()
                    .with_acks(-1)
                    .with_topic_data(vec![TopicProduceData::default()
                        .with_name(topic)
                        .with_partition_data(vec![PartitionProduceData::default()])]),
                version,
            ),
            ApiKey::Fetch => {
                let mut t = FetchTopic::default()
                    .with_partitions(vec![FetchPartition::default().with_partition(0)]);
                if version >= 13 {
                    t = t.with_topic_id(uuid::Uuid::from_u128(7));
                } else {
                    t = t.with_topic(topic);
                }
                body(&FetchRequest::default().with_topics(vec![t]), version)
            }
            ApiKey::ListOffsets => body(
                &ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic)
                    .with_partitions(vec![ListOffsetsPartition::default()])]),
                version,
            ),
            ApiKey::Metadata => body(
                &MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default(
                )
                .with_name(Some(topic))])),
                version,
            ),
            ApiKey::OffsetCommit => body(
                &OffsetCommitRequest::default()
                    .with_group_id(GroupId(s("g")))
                    .with_topics(vec![OffsetCommitRequestTopic::default()
                        .with_name(topic)
                        .with_partitions(vec![OffsetCommitRequestPartition::default()])]),
                version,
            ),
            ApiKey::OffsetFetch if version >= 8 => body(
                &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default(
                )
                .with_group_id(GroupId(s("g")))]),
                version,
            ),
            ApiKey::OffsetFetch => body(
                &OffsetFetchRequest::default()
                    .with_group_id(GroupId(s("g")))
                    .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                        .with_name(topic)
                        .with_partition_indexes(vec![0])])),
                version,
            ),
            ApiKey::FindCoordinator if version >= 4 => body(
                &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g")]),
                version,
            ),
            ApiKey::FindCoordinator => {
                body(&FindCoordinatorRequest::default().with_key(s("g")), version)
            }
            ApiKey::JoinGroup => body(
                &JoinGroupRequest::default()
                    .with_group_id(GroupId(s("g")))
                    .with_protocol_type(s("consumer")),
                version,
            ),
            ApiKey::SyncGroup => body(
                &SyncGroupRequest::default().with_group_id(GroupId(s("g"))),
                version,
            ),
            ApiKey::Heartbeat => body(
                &HeartbeatRequest::default().with_group_id(GroupId(s("g"))),
                version,
            ),
            ApiKey::LeaveGroup => body(
                &LeaveGroupRequest::default().with_group_id(GroupId(s("g"))),
                version,
            ),
            ApiKey::InitProducerId => body(&InitProducerIdRequest::default(), version),
            other => panic!("no request for {other:?}"),
        }
    }

    #[test]
    fn every_listed_api_answers_the_error_at_every_served_version_and_does_nothing() {
        let shared = shared();
        let code = chronik_protocol::errors::COORDINATOR_NOT_AVAILABLE;
        let mut answered = 0;
        for &key in ERROR_FAULT_APIS {
            let api = ApiKey::try_from(key).unwrap();
            let (lo, hi) = supported(key).unwrap();
            for version in lo..=hi {
                let mut c = conn();
                let knobs = Knobs::default();
                let out = error_reply(
                    Some(&shared),
                    &mut c,
                    &knobs,
                    api,
                    version,
                    request(api, version),
                    code,
                )
                .unwrap_or_else(|| panic!("{api:?} has an error answer"));
                let Outcome::Reply { body, .. } = out else {
                    panic!("{api:?} v{version}: a reply");
                };
                // Our dissector reads the response, and finds the code in it.
                let mut head = BytesMut::new();
                kafka_protocol::messages::ResponseHeader::default()
                    .encode(&mut head, api.response_header_version(version))
                    .unwrap();
                let frame = with_size_prefix(&[&head[..], &body[..]].concat());
                let d = chronik_protocol::dissect_response(&frame, key, version);
                assert!(d.error.is_none(), "{api:?} v{version}: {:?}", d.error);
                let mut codes = Vec::new();
                d.root.walk(0, &mut |f, _| {
                    if f.name().ends_with("error_code") {
                        codes.extend(f.as_int());
                    }
                });
                assert!(
                    codes.contains(&(code as i64)),
                    "{api:?} v{version}: error codes {codes:?}"
                );
                answered += 1;
            }
        }
        assert!(answered > 80, "{answered}");
        // Nothing was done: no topic created (Produce and Metadata name `t`), no group made
        // (JoinGroup and OffsetCommit name `g`).
        assert!(shared.topics.get("t").is_none());
        assert!(shared.topics.all().is_empty());
        assert!(shared.groups.snapshot().is_empty());
        // An API it cannot answer.
        assert!(error_reply(
            Some(&shared),
            &mut conn(),
            &Knobs::default(),
            ApiKey::DescribeGroups,
            0,
            Bytes::new(),
            code
        )
        .is_none());
    }

    #[test]
    fn acks_0_produce_gets_no_answer_and_a_closed_connection() {
        let req = body(&ProduceRequest::default().with_acks(0), 7);
        let out = error_reply(
            Some(&shared()),
            &mut conn(),
            &Knobs::default(),
            ApiKey::Produce,
            7,
            req,
            6,
        );
        assert!(matches!(
            out,
            Some(Outcome::NoResponse {
                close_after: true,
                ..
            })
        ));
    }
}
