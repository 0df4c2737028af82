//! Produce (appending to partition logs, with the throttle_time_ms placement knob) and
//! InitProducerId. The placement's bytes are the connection task's work: it applies the
//! placement's preset mutation (`ThrottlePlacement::preset`) to the response frame this
//! handler encodes as the spec has it.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;

use super::{encode, s, Outcome};
use crate::settings::{Knobs, PlacementUsed, ThrottlePlacement};
use crate::state::{Conn, Shared};
use crate::topics::{invalid_topic_name, Topic};
use chronik_capture::now_micros;
use chronik_protocol::batch::Entry;
use chronik_protocol::errors;

/// Finds a topic for produce, creating it when allowed.
fn topic_for_produce(shared: &Shared, name: &str) -> Result<Arc<Topic>, i16> {
    if let Some(t) = shared.topics.get(name) {
        return Ok(t);
    }
    if invalid_topic_name(name).is_some() {
        return Err(errors::INVALID_TOPIC_EXCEPTION);
    }
    if !shared.config.auto_create_topics {
        return Err(errors::UNKNOWN_TOPIC_OR_PARTITION);
    }
    if let Err(why) = shared
        .topics
        .room_for(1, shared.config.default_partitions.max(1) as i64)
    {
        tracing::warn!(topic = name, reason = %why, "not auto-creating");
        return Err(errors::UNKNOWN_TOPIC_OR_PARTITION);
    }
    match shared
        .topics
        .create(name, shared.config.default_partitions, BTreeMap::new())
    {
        Ok(Ok(t)) | Ok(Err(t)) => Ok(t),
        Err(e) => {
            tracing::error!(error = %e, topic = name, "auto-create failed");
            Err(errors::KAFKA_STORAGE_ERROR)
        }
    }
}

/// What a ProduceResponse of this version is actually encoded with: the placement where it has
/// a preset at this version (v0 has no throttle field, and `front` applies to v1-v8 only), else
/// spec.
fn effective_placement(used: PlacementUsed, version: i16) -> PlacementUsed {
    if used.placement.preset(version).is_some() {
        used
    } else {
        PlacementUsed {
            placement: ThrottlePlacement::Spec,
            ..used
        }
    }
}

/// Produce: the throttle_time_ms placement is chosen for this client (a rule or the global
/// knob), and the one the answer was encoded with is kept on the connection for the exchange.
pub(super) fn produce(
    shared: &Shared,
    conn: &mut Conn,
    knobs: &Knobs,
    req: ProduceRequest,
    version: i16,
) -> Outcome {
    let mut out = append(shared, req, version, knobs.throttle_ms);
    if let Outcome::Reply { notes, .. } = &mut out {
        place(conn, knobs, version, notes);
    }
    out
}

/// Chooses the placement of this client's ProduceResponse of `version` (a rule or the global
/// knob), keeps the one it is encoded with on the connection for the exchange, and notes it
/// whenever it differs from the default, so a capture explains itself.
pub(crate) fn place(conn: &mut Conn, knobs: &Knobs, version: i16, notes: &mut Vec<String>) {
    let used = knobs.placement_for(&conn.identity);
    let effective = effective_placement(used.clone(), version);
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
    conn.placement_used = Some(effective);
}

/// Appends each partition's records and builds the answer (none for acks=0), encoded as the
/// spec has it.
fn append(shared: &Shared, req: ProduceRequest, version: i16, throttle: i32) -> Outcome {
    let acks = req.acks;
    let tid = req.transactional_id.as_ref().map(|t| t.0.to_string());
    let acks_ok = (-1..=1).contains(&acks);
    let mut appended_any = false;
    let mut notes = Vec::new();
    let mut responses = Vec::new();
    for td in req.topic_data {
        let name = td.name.0.to_string();
        let topic = if acks_ok {
            topic_for_produce(shared, &name)
        } else {
            Err(errors::INVALID_REQUIRED_ACKS)
        };
        let mut parts = Vec::new();
        for pd in td.partition_data {
            let mut r = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1);
            let result = topic.as_ref().map_err(|c| (*c, None)).and_then(|t| {
                let p = t
                    .partition(pd.index)
                    .ok_or((errors::UNKNOWN_TOPIC_OR_PARTITION, None))?;
                let records = pd.records.as_deref().unwrap_or(&[]);
                let limit = t
                    .config("max.message.bytes")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(usize::MAX);
                let biggest = chronik_protocol::batch::split(records)
                    .map(|e| match e {
                        Entry::Batch { start, end } | Entry::Legacy { start, end, .. } => {
                            end - start
                        }
                        _ => 0,
                    })
                    .max()
                    .unwrap_or(0);
                if biggest > limit {
                    return Err((
                        errors::MESSAGE_TOO_LARGE,
                        Some(format!(
                            "a batch of {biggest} bytes exceeds max.message.bytes {limit}"
                        )),
                    ));
                }
                let lat = t.log_append_time().then(|| now_micros() / 1000);
                // A transactional batch must belong to its producer's open transaction; the
                // coordinator stays locked until it is appended.
                let _txn = super::txn::check_produce(
                    shared,
                    tid.as_deref(),
                    &name,
                    pd.index,
                    records,
                    version,
                )?;
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
    match encode(&resp, version) {
        Ok(body) => Outcome::Reply {
            body,
            notes,
            close_after: false,
        },
        Err(e) => Outcome::Close(e),
    }
}

/// InitProducerId without a transactional id (the transactional ones are `txn.rs`'s): a new
/// producer id with epoch 0, or a producer that names its id keeps it with the epoch bumped.
pub(super) fn init_producer_id(
    shared: &Shared,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let (pid, epoch) = if req.producer_id.0 >= 0 {
        (req.producer_id.0, req.producer_epoch.wrapping_add(1).max(0))
    } else {
        (shared.next_producer_id.fetch_add(1, Ordering::Relaxed), 0)
    };
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::produce_response::{
        BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::{ProduceResponse, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use crate::settings::ThrottlePlacement;
    use chronik_protocol::frame::with_size_prefix;
    use chronik_protocol::mutate::Applied;

    /// How ProduceResponse's placements were made before they were mutations, kept here only
    /// to show that the presets send the same bytes: throttle_time_ms is the last field before
    /// the top-level tagged fields, the final 4 bytes up to v8 and in v9+ (no tagged fields
    /// written, so the tag section is the single count byte 0) the 4 bytes before that byte.
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

    fn name(s: &str) -> TopicName {
        TopicName(StrBytes::from_string(s.to_string()))
    }

    /// Responses of several shapes: none, one partition, several topics and partitions with
    /// errors, messages and record errors where the version has them, odd throttle values.
    fn shapes(version: i16) -> Vec<ProduceResponse> {
        let part = |i: i32, error: i16| {
            let mut p = PartitionProduceResponse::default()
                .with_index(i)
                .with_error_code(error)
                .with_base_offset(if error == 0 { 1000 + i as i64 } else { -1 });
            if version >= 2 {
                p = p.with_log_append_time_ms(1_700_000_000_000 + i as i64);
            }
            if version >= 5 {
                p = p.with_log_start_offset(7);
            }
            if version >= 8 && error != 0 {
                p = p
                    .with_error_message(Some(StrBytes::from_static_str("no leader here")))
                    .with_record_errors(vec![BatchIndexAndErrorMessage::default()
                        .with_batch_index(2)
                        .with_batch_index_error_message(None)]);
            }
            p
        };
        vec![
            ProduceResponse::default(),
            ProduceResponse::default()
                .with_responses(vec![TopicProduceResponse::default()
                    .with_name(name("orders"))
                    .with_partition_responses(vec![part(0, 0)])])
                .with_throttle_time_ms(250),
            ProduceResponse::default()
                .with_responses(vec![
                    TopicProduceResponse::default()
                        .with_name(name("a"))
                        .with_partition_responses(vec![part(0, 0), part(1, 6), part(2, 0)]),
                    TopicProduceResponse::default()
                        .with_name(name("a-much-longer-topic-name.with.dots"))
                        .with_partition_responses(vec![]),
                    TopicProduceResponse::default()
                        .with_name(name("z"))
                        .with_partition_responses(vec![part(9, 3)]),
                ])
                .with_throttle_time_ms(-1),
            ProduceResponse::default().with_throttle_time_ms(i32::MAX),
        ]
    }

    #[test]
    fn presets_send_the_bytes_the_old_placement_code_did() {
        let mut compared = 0;
        for version in 1..=11i16 {
            let header_version = if version >= 9 { 1 } else { 0 };
            for (n, resp) in shapes(version).into_iter().enumerate() {
                let mut body = BytesMut::new();
                resp.encode(&mut body, version).expect("encodes");
                let mut head = BytesMut::new();
                ResponseHeader::default()
                    .with_correlation_id(42)
                    .encode(&mut head, header_version)
                    .unwrap();
                let frame = with_size_prefix(&[&head[..], &body[..]].concat());
                for placement in [ThrottlePlacement::Front, ThrottlePlacement::Omit] {
                    // The old code ran for front on v1-v8 and omit on v1+.
                    let old_ran = match placement {
                        ThrottlePlacement::Front => version <= 8,
                        _ => true,
                    };
                    let Some(preset) = placement.preset(version) else {
                        assert!(
                            !old_ran,
                            "{placement} v{version}: no preset where the old code ran"
                        );
                        continue;
                    };
                    assert!(
                        old_ran,
                        "{placement} v{version}: a preset where the old code did not run"
                    );
                    let old = place_throttle(body.clone(), version, placement);
                    let old = with_size_prefix(&[&head[..], &old[..]].concat());
                    let new = match preset.apply(&frame, 0, version) {
                        Ok(Applied::Changed { frame, .. }) => frame,
                        other => panic!("{placement} v{version} shape {n}: {other:?}"),
                    };
                    assert_eq!(new, old, "{placement} v{version} shape {n}");
                    compared += 1;
                }
            }
        }
        // Front on v1-v8 and omit on v1-v11, four shapes each.
        assert_eq!(compared, 4 * (8 + 11));
    }
}
