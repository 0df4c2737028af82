//! Fetch: reading partition logs, long polling until min_bytes or max_wait, and incremental
//! fetch sessions (KIP-227). read_committed reads stop at the last stable offset and list the
//! aborted transactions of what they return.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use uuid::Uuid;

use super::s;
use crate::state::{FetchSession, SessionPartition, Shared, MAX_SESSION_PARTITIONS};
use chronik_protocol::errors;

/// One partition to read: where from and at most how much.
struct PlanItem {
    name: String,
    topic_id: Uuid,
    partition: i32,
    fetch_offset: i64,
    max_bytes: i32,
}

/// The partitions a request names (by topic id from v13), in request order.
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

/// Fetch: works out the session (KIP-227: none, new, or incremental with its epoch checked),
/// then reads until `min_bytes` are there, an error shows, or `max_wait_ms` passes, waking on
/// every append. An incremental response carries only partitions with news.
pub(super) async fn fetch(shared: &Shared, req: FetchRequest, version: i16) -> FetchResponse {
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
                return FetchResponse::default()
                    .with_error_code(errors::FETCH_SESSION_ID_NOT_FOUND);
            };
            if sess.next_epoch != epoch {
                return FetchResponse::default()
                    .with_error_code(errors::INVALID_FETCH_SESSION_EPOCH);
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
                return FetchResponse::default()
                    .with_error_code(errors::FETCH_SESSION_ID_NOT_FOUND);
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
    // read_committed (v4+): data only below the last stable offset, with the aborted
    // transactions of the range returned.
    let read_committed = version >= 4 && req.isolation_level == 1;
    let mut rx = shared.appended.subscribe();
    let gathered = loop {
        rx.borrow_and_update();
        let g = gather(shared, &plan, max_bytes, version, read_committed);
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
            break gather(shared, &plan, max_bytes, version, read_committed);
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

/// Reads every planned partition once, within `max_bytes` in all (the first records always
/// come, however large).
fn gather(
    shared: &Shared,
    plan: &[PlanItem],
    max_bytes: usize,
    version: i16,
    read_committed: bool,
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
                    errors::UNKNOWN_TOPIC_ID
                } else {
                    errors::UNKNOWN_TOPIC_OR_PARTITION
                };
                return pd;
            };
            let Some(p) = topic.partition(item.partition) else {
                pd.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION;
                return pd;
            };
            let log = p.lock().unwrap_or_else(|e| e.into_inner());
            let (start, end) = (log.start_offset(), log.end_offset());
            pd.high_watermark = end;
            let lso = log.last_stable_offset();
            if version >= 4 {
                pd.last_stable_offset = lso;
                pd.aborted_transactions = Some(Vec::new());
            }
            if version >= 5 {
                pd.log_start_offset = start;
            }
            if item.fetch_offset < start || item.fetch_offset > end {
                pd.error_code = errors::OFFSET_OUT_OF_RANGE;
                return pd;
            }
            let limit = (item.max_bytes.max(0) as usize).min(remaining);
            let read = if read_committed {
                log.try_read_below(item.fetch_offset, limit, !any, lso)
                    .map(|(chunks, last)| {
                        if !chunks.is_empty() {
                            let aborted = log
                                .aborted_between(item.fetch_offset, last)
                                .into_iter()
                                .map(|a| {
                                    AbortedTransaction::default()
                                        .with_producer_id(ProducerId(a.producer_id))
                                        .with_first_offset(a.first_offset)
                                })
                                .collect();
                            pd.aborted_transactions = Some(aborted);
                        }
                        chunks
                    })
            } else {
                log.try_read(item.fetch_offset, limit, !any)
            };
            let chunks = match read {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(topic = %topic.name, partition = item.partition, error = %e,
                        "reading a segment file failed");
                    pd.error_code = errors::KAFKA_STORAGE_ERROR;
                    return pd;
                }
            };
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
