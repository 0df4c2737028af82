//! Record batches and legacy messages: CRCs, counts, and attributes that contradict the magic
//! or the producer fields.

use super::{Code, Finding, Level, Side};
use crate::api_key;
use crate::batch::Compression;
use crate::fid;
use crate::tree::{Dissection, Field, FRAME};

/// Checks every batch and message the dissection holds in the frame itself (those inside a
/// decompressed wrapper are covered by the wrapper's own CRC).
pub(super) fn check(d: &Dissection, side: Side, key: i16, out: &mut Vec<Finding>) {
    d.root.walk(0, &mut |f, _| {
        if f.buffer != FRAME {
            return;
        }
        if f.id == fid!("record_batch") {
            batch(f, side, key, out);
        } else if f.id == fid!("message") {
            message(f, side, out);
        }
    });
}

fn child(g: &Field, id: crate::registry::FieldId) -> Option<&Field> {
    g.children.iter().find(|c| c.id == id)
}

fn int(g: &Field, id: crate::registry::FieldId) -> Option<i64> {
    child(g, id).and_then(Field::as_int)
}

fn crc(g: &Field, id: crate::registry::FieldId, what: &str, side: Side, out: &mut Vec<Finding>) {
    if let Some(c) = child(g, id) {
        if let Some(note) = c.note.as_deref().filter(|n| n.starts_with("CRC mismatch")) {
            out.push(
                Finding::on(Code::CrcMismatch, side, format!("{what} {note}"), c)
                    .with_fix("a reader rejects the batch as corrupt (CORRUPT_MESSAGE)".into()),
            );
        }
    }
}

fn batch(g: &Field, side: Side, key: i16, out: &mut Vec<Finding>) {
    crc(g, fid!("record_batch.crc"), "record batch", side, out);
    let count = int(g, fid!("record_batch.records_count"));
    let delta = int(g, fid!("record_batch.last_offset_delta"));
    let at = |id| child(g, id).unwrap_or(g);
    if let Some(c) = child(g, fid!("record_batch.records_count")) {
        if let Some(note) = c.note.as_deref() {
            out.push(Finding::on(
                Code::RecordCount,
                side,
                format!("records_count {}: {note}", c.as_int().unwrap_or(0)),
                c,
            ));
        }
    }
    if let (Some(count), Some(delta)) = (count, delta) {
        if count > delta + 1 && count > 0 {
            out.push(Finding::on(
                Code::RecordCount,
                side,
                format!(
                    "records_count {count} but last_offset_delta {delta}: at most {} records \
                     have offsets in the batch",
                    delta + 1
                ),
                at(fid!("record_batch.last_offset_delta")),
            ));
        } else if key == api_key::PRODUCE
            && side == Side::Request
            && count > 0
            && delta != count - 1
        {
            // A producer's batch is never compacted: its offsets run 0..count-1.
            out.push(
                Finding::on(
                    Code::RecordCount,
                    side,
                    format!(
                        "a produced batch of {count} records with last_offset_delta {delta} \
                         (not {})",
                        count - 1
                    ),
                    at(fid!("record_batch.last_offset_delta")),
                )
                .at(Level::Warning),
            );
        }
    }
    let attributes = int(g, fid!("record_batch.attributes")).unwrap_or(0);
    let producer_id = int(g, fid!("record_batch.producer_id")).unwrap_or(-1);
    let sequence = int(g, fid!("record_batch.base_sequence")).unwrap_or(-1);
    let transactional = attributes & 0x10 != 0;
    let control = attributes & 0x20 != 0;
    let attr = at(fid!("record_batch.attributes"));
    let mut contradiction = |level: Level, message: String, f: &Field| {
        out.push(Finding::on(Code::BatchAttributes, side, message, f).at(level));
    };
    if let Compression::Unknown(n) = Compression::from_bits(attributes as i32) {
        contradiction(
            Level::Error,
            format!("compression codec {n} is none Kafka defines"),
            attr,
        );
    }
    if attributes & !0x7f != 0 {
        contradiction(
            Level::Warning,
            format!(
                "attribute bits 0x{:04x} are not defined",
                attributes & !0x7f
            ),
            attr,
        );
    }
    if control && !transactional {
        contradiction(
            Level::Warning,
            "a control batch not marked transactional".into(),
            attr,
        );
    }
    if transactional && producer_id < 0 {
        contradiction(
            Level::Error,
            format!("a transactional batch with producer_id {producer_id}"),
            attr,
        );
    }
    // A base_sequence without a producer id is not checked: aiokafka, kafkajs and Sarama
    // send 0 there, and Kafka ignores the sequence of a batch with no producer id.
    if producer_id >= 0 && sequence < 0 && !control && key == api_key::PRODUCE {
        contradiction(
            Level::Warning,
            format!("producer_id {producer_id} with base_sequence {sequence}"),
            at(fid!("record_batch.base_sequence")),
        );
    }
}

fn message(g: &Field, side: Side, out: &mut Vec<Finding>) {
    crc(g, fid!("message.crc"), "message", side, out);
    let magic = int(g, fid!("message.magic")).unwrap_or(0);
    let attributes = int(g, fid!("message.attributes")).unwrap_or(0);
    let Some(attr) = child(g, fid!("message.attributes")) else {
        return;
    };
    if let Compression::Unknown(n) = Compression::from_bits(attributes as i32) {
        out.push(Finding::on(
            Code::BatchAttributes,
            side,
            format!("compression codec {n} is none Kafka defines"),
            attr,
        ));
    }
    let defined = if magic == 0 { 0x07 } else { 0x0f };
    if attributes & !defined != 0 {
        out.push(
            Finding::on(
                Code::BatchAttributes,
                side,
                format!(
                    "attribute bits 0x{:02x} are not defined for magic {magic}{}",
                    attributes & !defined,
                    if magic == 0 && attributes & 0x08 != 0 {
                        " (a timestamp type, but magic 0 has no timestamp)"
                    } else {
                        ""
                    }
                ),
                attr,
            )
            .at(Level::Warning),
        );
    }
}
