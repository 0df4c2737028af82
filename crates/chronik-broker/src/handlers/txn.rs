//! The transaction APIs (the coordinator is `crate::txn`): InitProducerId with a transactional
//! id, AddPartitionsToTxn (v0-v3 one transaction, v4+ several and verify-only), AddOffsetsToTxn,
//! TxnOffsetCommit, EndTxn, DescribeTransactions, ListTransactions and DescribeProducers. Each
//! request at its version is turned into calls on the coordinator and the answers into
//! responses; PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH for the versions that predate it,
//! as Kafka does.

use std::collections::BTreeMap;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;

use super::s;
use crate::state::Shared;
use crate::txn::{now_ms, PendingOffset, TxnState, OFFSETS_TOPIC};
use chronik_protocol::errors as ec;

/// PRODUCER_FENCED as a version older than `since` knows it: INVALID_PRODUCER_EPOCH.
fn fenced_for(code: i16, version: i16, since: i16) -> i16 {
    if code == ec::PRODUCER_FENCED && version < since {
        ec::INVALID_PRODUCER_EPOCH
    } else {
        code
    }
}

/// InitProducerId for a transactional id (v3+ may name the producer id and epoch it had).
pub(super) fn init_producer_id(
    shared: &Shared,
    tid: &str,
    req: &InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    // v3+ may name the producer id and epoch it had: both or neither (-1, -1).
    let expected = match (req.producer_id.0, req.producer_epoch) {
        _ if version < 3 => None,
        (-1, -1) => None,
        (-1, _) | (_, -1) => {
            return InitProducerIdResponse::default()
                .with_error_code(ec::INVALID_REQUEST)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
        (pid, epoch) => Some((pid, epoch)),
    };
    match shared
        .txns
        .init_producer_id(shared, tid, req.transaction_timeout_ms, expected)
    {
        Ok((pid, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
        Err(code) => InitProducerIdResponse::default()
            .with_error_code(fenced_for(code, version, 4))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

/// One transaction of an AddPartitionsToTxn, answered: UNKNOWN_TOPIC_OR_PARTITION for
/// partitions that do not exist (and OPERATION_NOT_ATTEMPTED for the others), else the
/// coordinator's error for every partition, or (verify-only) each partition's own.
fn add_partitions_one(
    shared: &Shared,
    tid: &str,
    pid: i64,
    epoch: i16,
    verify_only: bool,
    topics: &[add_partitions_to_txn_request::AddPartitionsToTxnTopic],
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut wanted: Vec<(String, i32)> = Vec::new();
    let mut missing = false;
    for t in topics {
        for p in &t.partitions {
            let tp = (t.name.0.to_string(), *p);
            missing |= shared
                .topics
                .get(&tp.0)
                .and_then(|x| x.partition(*p))
                .is_none();
            wanted.push(tp);
        }
    }
    let errors: Vec<i16> = if missing {
        wanted
            .iter()
            .map(|(t, p)| {
                if shared.topics.get(t).and_then(|x| x.partition(*p)).is_none() {
                    ec::UNKNOWN_TOPIC_OR_PARTITION
                } else {
                    ec::OPERATION_NOT_ATTEMPTED
                }
            })
            .collect()
    } else if verify_only {
        match shared.txns.verify_partitions(tid, pid, epoch, &wanted) {
            Ok(v) => v,
            Err(code) => vec![code; wanted.len()],
        }
    } else {
        let code = match shared.txns.add_partitions(tid, pid, epoch, &wanted) {
            Ok(()) => ec::NONE,
            Err(code) => fenced_for(code, version, 2),
        };
        vec![code; wanted.len()]
    };
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, p), code) in wanted.into_iter().zip(errors) {
        let r = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(p)
            .with_partition_error_code(code);
        match out.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.results_by_partition.push(r),
            None => out.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(s(topic)))
                    .with_results_by_partition(vec![r]),
            ),
        }
    }
    out
}

/// AddPartitionsToTxn: v0-v3 one transaction in the request's top-level fields, v4+ a list of
/// transactions (each possibly verify-only) answered one by one.
pub(super) fn add_partitions_to_txn(
    shared: &Shared,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version < 4 {
        let results = add_partitions_one(
            shared,
            req.v3_and_below_transactional_id.0.as_str(),
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            false,
            &req.v3_and_below_topics,
            version,
        );
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let results = req
        .transactions
        .iter()
        .map(|t| {
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(add_partitions_one(
                    shared,
                    t.transactional_id.0.as_str(),
                    t.producer_id.0,
                    t.producer_epoch,
                    t.verify_only,
                    &t.topics,
                    version,
                ))
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// AddOffsetsToTxn: the group's offsets join the transaction.
pub(super) fn add_offsets_to_txn(
    shared: &Shared,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let code = match shared.txns.add_offsets(
        req.transactional_id.0.as_str(),
        req.producer_id.0,
        req.producer_epoch,
        req.group_id.0.as_str(),
    ) {
        Ok(()) => ec::NONE,
        Err(code) => fenced_for(code, version, 2),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

/// TxnOffsetCommit: offsets staged in the transaction, committed to the group only when it
/// commits. v3+ carries the member and generation, checked as OffsetCommit checks them.
pub(super) fn txn_offset_commit(
    shared: &Shared,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let mut code = if version >= 3 {
        shared.groups.check_txn_member(
            &group,
            req.generation_id,
            req.member_id.as_str(),
            req.group_instance_id.as_deref(),
        )
    } else {
        ec::NONE
    };
    let unknown = |t: &str, p: i32| shared.topics.get(t).and_then(|x| x.partition(p)).is_none();
    let mut offsets = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            if !unknown(t.name.0.as_str(), p.partition_index) {
                offsets.push(PendingOffset {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 2 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p
                        .committed_metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                });
            }
        }
    }
    if offsets.iter().any(|o| o.metadata.len() > 4096) && code == ec::NONE {
        code = ec::OFFSET_METADATA_TOO_LARGE;
    }
    if code == ec::NONE {
        code = match shared.txns.stage_offsets(
            req.transactional_id.0.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            &group,
            offsets,
            version >= 4,
        ) {
            Ok(()) => ec::NONE,
            Err(c) => c,
        };
    }
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let c = if unknown(t.name.0.as_str(), p.partition_index) {
                        ec::UNKNOWN_TOPIC_OR_PARTITION
                    } else {
                        code
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(c)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// EndTxn: commit or abort, markers written before the answer.
pub(super) fn end_txn(shared: &Shared, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let code = match shared.txns.end_txn(
        shared,
        req.transactional_id.0.as_str(),
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
    ) {
        Ok(()) => ec::NONE,
        Err(code) => fenced_for(code, version, 2),
    };
    EndTxnResponse::default().with_error_code(code)
}

/// DescribeTransactions: each named id's state, or TRANSACTIONAL_ID_NOT_FOUND.
pub(super) fn describe_transactions(
    shared: &Shared,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
    let states = req
        .transactional_ids
        .into_iter()
        .map(|tid| {
            let r = TransactionState::default().with_transactional_id(tid.clone());
            if tid.0.is_empty() {
                return r.with_error_code(ec::INVALID_REQUEST);
            }
            let Some(m) = shared.txns.describe(tid.0.as_str()) else {
                return r.with_error_code(ec::TRANSACTIONAL_ID_NOT_FOUND);
            };
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (t, p) in &m.partitions {
                by_topic.entry(t.clone()).or_default().push(*p);
            }
            if !m.groups.is_empty() {
                by_topic.entry(OFFSETS_TOPIC.into()).or_default().push(0);
            }
            r.with_transaction_state(s(m.state.name()))
                .with_transaction_timeout_ms(m.timeout_ms)
                .with_transaction_start_time_ms(m.start_ms)
                .with_producer_id(ProducerId(m.producer_id))
                .with_producer_epoch(m.epoch)
                .with_topics(
                    by_topic
                        .into_iter()
                        .map(|(t, ps)| {
                            TopicData::default()
                                .with_topic(TopicName(s(t)))
                                .with_partitions(ps)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions: every transactional id, filtered by state and producer id (and, v1+, by
/// how long its transaction has run); state names this broker does not know are listed back.
pub(super) fn list_transactions(
    shared: &Shared,
    req: ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    use kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
    let mut states: Vec<TxnState> = Vec::new();
    let mut unknown = Vec::new();
    for f in &req.state_filters {
        match TxnState::parse(f.as_str()) {
            Some(st) => states.push(st),
            None => unknown.push(f.clone()),
        }
    }
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    let now = now_ms();
    let listed = shared
        .txns
        .list()
        .into_iter()
        .filter(|m| req.state_filters.is_empty() || states.contains(&m.state))
        .filter(|m| pids.is_empty() || pids.contains(&m.producer_id))
        // As Kafka: the time since the last transaction started (an id without one, start -1,
        // passes every duration).
        .filter(|m| duration < 0 || now - m.start_ms > duration)
        .map(|m| {
            Listed::default()
                .with_transactional_id(TransactionalId(s(m.transactional_id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(s(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}

/// DescribeProducers: the producers each partition's log knows, with their open transaction.
pub(super) fn describe_producers(
    shared: &Shared,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = shared.topics.get(t.name.0.as_str());
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&i| {
                    let r = PartitionResponse::default().with_partition_index(i);
                    let Some(part) = topic.as_ref().and_then(|x| x.partition(i)) else {
                        return r.with_error_code(ec::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let log = part.lock().unwrap_or_else(|e| e.into_inner());
                    let producers = log
                        .producer_views()
                        .into_iter()
                        .map(|v| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(v.producer_id))
                                .with_producer_epoch(i32::from(v.epoch))
                                .with_last_sequence(v.last_sequence)
                                .with_last_timestamp(v.last_timestamp)
                                .with_coordinator_epoch(v.coordinator_epoch)
                                .with_current_txn_start_offset(v.txn_start_offset)
                        })
                        .collect();
                    r.with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

/// Produce: a transactional batch is checked against its producer's open transaction (the
/// error codes as Kafka's verification gives them: TRANSACTION_ABORTABLE from Produce v11,
/// INVALID_TXN_STATE before it) and the returned guard holds the coordinator until the batch
/// is appended. A control batch from a client is refused (INVALID_RECORD), as Kafka does.
pub(super) fn check_produce<'a>(
    shared: &'a Shared,
    tid: Option<&str>,
    topic: &str,
    partition: i32,
    records: &[u8],
    version: i16,
) -> Result<Option<crate::txn::WriteGuard<'a>>, (i16, Option<String>)> {
    let Some(h) = chronik_protocol::batch::BatchHeader::parse(records) else {
        return Ok(None);
    };
    if h.magic != 2 || !h.is_transactional() {
        return Ok(None);
    }
    if h.is_control() {
        return Err((
            ec::INVALID_RECORD,
            Some("a client may not write control batches".into()),
        ));
    }
    shared
        .txns
        .check_write(
            tid,
            h.producer_id,
            h.producer_epoch,
            &(topic.to_string(), partition),
            version >= 11,
        )
        .map(Some)
        .map_err(|code| {
            (
                code,
                Some(format!(
                    "transactional batch of producer {} epoch {} refused: {}",
                    h.producer_id,
                    h.producer_epoch,
                    chronik_protocol::errors::error_name(code)
                )),
            )
        })
}

/// The groups of an OffsetFetch that asks for stable offsets only (require_stable, v7+).
pub(super) fn stable_groups(req: &OffsetFetchRequest, version: i16) -> Vec<String> {
    if version < 7 || !req.require_stable {
        Vec::new()
    } else if version >= 8 {
        req.groups
            .iter()
            .map(|g| g.group_id.0.to_string())
            .collect()
    } else {
        vec![req.group_id.0.to_string()]
    }
}

/// OffsetFetch with require_stable: a partition with offsets staged by an open transaction is
/// answered UNSTABLE_OFFSET_COMMIT with no offset, as Kafka does, so the consumer asks again
/// once the transaction has ended.
pub(super) fn mark_unstable(
    shared: &Shared,
    groups: Vec<String>,
    mut resp: OffsetFetchResponse,
    version: i16,
) -> OffsetFetchResponse {
    for group in groups {
        let pending = shared.txns.pending_offsets(&group);
        if pending.is_empty() {
            continue;
        }
        let hit = |t: &TopicName, p: i32| pending.contains(&(t.0.to_string(), p));
        if version >= 8 {
            for g in resp
                .groups
                .iter_mut()
                .filter(|g| g.group_id.0.as_str() == group)
            {
                for t in &mut g.topics {
                    for p in t
                        .partitions
                        .iter_mut()
                        .filter(|p| hit(&t.name, p.partition_index))
                    {
                        p.error_code = ec::UNSTABLE_OFFSET_COMMIT;
                        p.committed_offset = -1;
                        p.committed_leader_epoch = -1;
                        p.metadata = Some(s(""));
                    }
                }
            }
        } else {
            for t in &mut resp.topics {
                for p in t
                    .partitions
                    .iter_mut()
                    .filter(|p| hit(&t.name, p.partition_index))
                {
                    p.error_code = ec::UNSTABLE_OFFSET_COMMIT;
                    p.committed_offset = -1;
                    p.committed_leader_epoch = -1;
                    p.metadata = Some(s(""));
                }
            }
        }
    }
    resp
}
