//! The consumer group protocol's APIs (KIP-848): ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe, decoded and encoded with kafka-protocol 0.18.0 (the versions
//! librdkafka uses are newer than 0.15.1's); the group coordinator (`groups::consumer`) answers
//! them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::RequestHeader;
use kafka_protocol_0_18::messages::{ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest};
use kafka_protocol_0_18::protocol::{Decodable, Encodable};

use super::Outcome;
use crate::groups::{TopicImage, TopicMeta};
use crate::state::{Conn, Shared};

/// The broker's topics now, as the consumer protocol sees them.
fn topic_image(shared: &Shared) -> TopicImage {
    shared
        .topics
        .all()
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                TopicMeta {
                    id: t.id,
                    name: t.name.clone(),
                    partitions: t.partition_count(),
                },
            )
        })
        .collect()
}

/// Answers with `msg` (a kafka-protocol 0.18 message) encoded at `version`.
fn reply<T: Encodable>(msg: &T, version: i16) -> Outcome {
    let mut body = BytesMut::new();
    match msg.encode(&mut body, version) {
        Ok(()) => Outcome::Reply {
            body,
            notes: Vec::new(),
            close_after: false,
        },
        Err(e) => {
            tracing::error!(error = %e, version, "cannot encode a response");
            Outcome::Close(format!("encoding the response: {e}"))
        }
    }
}

/// ConsumerGroupHeartbeat (v0-v1).
pub(super) fn heartbeat(
    shared: &Shared,
    conn: &Conn,
    header: &RequestHeader,
    mut body: Bytes,
    version: i16,
    throttle: i32,
) -> Outcome {
    let req = match ConsumerGroupHeartbeatRequest::decode(&mut body, version) {
        Ok(r) => r,
        Err(e) => return Outcome::Close(format!("decoding the request body: {e}")),
    };
    let client = super::group::client_info(conn, header);
    let resp = shared
        .groups
        .consumer_group_heartbeat(req, version, &topic_image(shared), client);
    reply(&resp.with_throttle_time_ms(throttle), version)
}

/// ConsumerGroupDescribe (v0-v1).
pub(super) fn describe(shared: &Shared, mut body: Bytes, version: i16, throttle: i32) -> Outcome {
    let req = match ConsumerGroupDescribeRequest::decode(&mut body, version) {
        Ok(r) => r,
        Err(e) => return Outcome::Close(format!("decoding the request body: {e}")),
    };
    let resp = shared
        .groups
        .consumer_group_describe(req, version, &topic_image(shared));
    reply(&resp.with_throttle_time_ms(throttle), version)
}
