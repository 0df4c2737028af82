//! Offsets of partition logs: ListOffsets, OffsetForLeaderEpoch and DeleteRecords.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    self, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::*;

use crate::log::LEADER_EPOCH;
use crate::topics::Topics;
use chronik_protocol::errors;

/// ListOffsets: the latest (-1), earliest (-2, -4, -5), largest-timestamp (-3) or by-timestamp
/// offset of each partition.
pub(super) fn list_offsets(
    topics: &Topics,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    // read_committed (v2+): the latest offset is the last stable offset.
    let read_committed = version >= 2 && req.isolation_level == 1;
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = topics.get(t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let Some(part) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return r.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let log = part.lock().unwrap_or_else(|e| e.into_inner());
                    let (offset, ts) = match p.timestamp {
                        -1 if read_committed => (log.last_stable_offset(), -1),
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
    ListOffsetsResponse::default().with_topics(results)
}

/// DeleteRecords: moves each partition's log start offset.
pub(super) fn delete_records(topics: &Topics, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = topics.get(t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = delete_records_response::DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let Some(part) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return r.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION);
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
    DeleteRecordsResponse::default().with_topics(results)
}

/// OffsetForLeaderEpoch: the log end offset, as every epoch of this single broker is
/// [`LEADER_EPOCH`].
pub(super) fn offset_for_leader_epoch(
    topics: &Topics,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = topics.get(t.topic.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = offset_for_leader_epoch_response::EpochEndOffset::default()
                        .with_partition(p.partition);
                    match topic.as_ref().and_then(|t| t.partition(p.partition)) {
                        None => r.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION),
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
    OffsetForLeaderEpochResponse::default().with_topics(results)
}
