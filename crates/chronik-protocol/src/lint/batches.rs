//! Record batches and legacy messages: CRCs, counts, and attributes that contradict the magic
//! or the producer fields. Read from the frame's bytes, so a dissection that left its record
//! sets unexpanded (what live views share) is judged as a full one is; a full one adds what
//! only decoding the records shows (fewer records than the header counts).

use super::{Code, Finding, Level, Side};
use crate::api_key;
use crate::batch::{self, BatchHeader, Compression, Entry};
use crate::dissect::RECORDS_NOT_EXPANDED;
use crate::fid;
use crate::tree::{Dissection, Field, FRAME};

/// Checks every batch and message in the frame itself (those inside a decompressed wrapper
/// are covered by the wrapper's own CRC).
pub(super) fn check(frame: &[u8], d: &Dissection, side: Side, key: i16, out: &mut Vec<Finding>) {
    let cx = Cx { frame, side, key };
    d.root.walk(0, &mut |f, _| {
        if f.buffer != FRAME {
            return;
        }
        let (s, e) = (f.offset as usize, (f.offset + f.len) as usize);
        if e > frame.len() {
            return;
        }
        if f.id == fid!("record_batch") {
            cx.batch(s, e, out);
            counted(f, side, out);
        } else if f.id == fid!("message") {
            cx.message(s, e, out);
        } else if f.id == fid!("record_set.undecoded")
            && f.note.as_deref() == Some(RECORDS_NOT_EXPANDED)
        {
            cx.record_set(s, e, out);
        }
    });
}

/// Checks every batch and message of the record set at `s..e` of `frame` (its bytes, size
/// prefix excluded), as [`check`] does for a record set a dissection did not expand; returns
/// the records its batch headers count, `None` when it holds legacy messages.
pub(super) fn record_set(
    frame: &[u8],
    (s, e): (usize, usize),
    side: Side,
    key: i16,
    out: &mut Vec<Finding>,
) -> Option<usize> {
    if s <= e && e <= frame.len() {
        Cx { frame, side, key }.record_set(s, e, out)
    } else {
        Some(0)
    }
}

/// What a full dissection adds: a batch holding fewer records than its header counts.
fn counted(g: &Field, side: Side, out: &mut Vec<Finding>) {
    let count = g
        .children
        .iter()
        .find(|c| c.id == fid!("record_batch.records_count"));
    if let Some(c) = count {
        if let Some(note) = c.note.as_deref() {
            out.push(Finding::on(
                Code::RecordCount,
                side,
                format!("records_count {}: {note}", c.as_int().unwrap_or(0)),
                c,
            ));
        }
    }
}

struct Cx<'a> {
    frame: &'a [u8],
    side: Side,
    key: i16,
}

impl Cx<'_> {
    /// The record set at `s..e`; returns the records its batch headers count, `None` when it
    /// holds legacy messages.
    fn record_set(&self, s: usize, e: usize, out: &mut Vec<Finding>) -> Option<usize> {
        let mut records = Some(0);
        for entry in batch::split(&self.frame[s..e]) {
            match entry {
                Entry::Batch { start, end } => {
                    let counted = self.batch(s + start, s + end, out);
                    records = records.map(|n| n + counted);
                }
                Entry::Legacy { start, end, .. } => {
                    self.message(s + start, s + end, out);
                    records = None;
                }
                _ => {}
            }
        }
        records
    }

    fn push(
        &self,
        out: &mut Vec<Finding>,
        code: Code,
        level: Level,
        message: String,
        at: (usize, usize),
    ) {
        out.push(Finding::new(code, self.side, message, at.0, at.1).at(level));
    }

    /// A magic-2 batch at `s..e` of the frame; returns the records its header counts (none
    /// below zero).
    fn batch(&self, s: usize, e: usize, out: &mut Vec<Finding>) -> usize {
        let b = &self.frame[s..e];
        let Some(h) = BatchHeader::parse(b) else {
            return 0;
        };
        let field = |offset: usize, len: usize| (s + offset, s + offset + len);
        let computed = batch::batch_crc(b);
        if computed != h.crc {
            self.push(
                out,
                Code::CrcMismatch,
                Level::Error,
                format!(
                    "record batch CRC mismatch: computed 0x{computed:08x}, stored 0x{:08x}",
                    h.crc
                ),
                field(batch::BATCH_CRC_OFFSET, 4),
            );
        }
        let (count, delta) = (i64::from(h.records_count), i64::from(h.last_offset_delta));
        if count > delta + 1 && count > 0 {
            self.push(
                out,
                Code::RecordCount,
                Level::Error,
                format!(
                    "records_count {count} but last_offset_delta {delta}: at most {} records \
                     have offsets in the batch",
                    delta + 1
                ),
                field(23, 4),
            );
        } else if self.key == api_key::PRODUCE
            && self.side == Side::Request
            && count > 0
            && delta != count - 1
        {
            // A producer's batch is never compacted: its offsets run 0..count-1.
            self.push(
                out,
                Code::RecordCount,
                Level::Warning,
                format!(
                    "a produced batch of {count} records with last_offset_delta {delta} (not {})",
                    count - 1
                ),
                field(23, 4),
            );
        }
        let attributes = i32::from(h.attributes);
        let attr = field(21, 2);
        let mut contradiction = |level: Level, message: String, at: (usize, usize)| {
            self.push(out, Code::BatchAttributes, level, message, at);
        };
        if let Compression::Unknown(n) = Compression::from_bits(attributes) {
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
        if h.is_control() && !h.is_transactional() {
            contradiction(
                Level::Warning,
                "a control batch not marked transactional".into(),
                attr,
            );
        }
        if h.is_transactional() && h.producer_id < 0 {
            contradiction(
                Level::Error,
                format!("a transactional batch with producer_id {}", h.producer_id),
                attr,
            );
        }
        // A base_sequence without a producer id is not checked: aiokafka, kafkajs and Sarama
        // send 0 there, and Kafka ignores the sequence of a batch with no producer id.
        if h.producer_id >= 0
            && h.base_sequence < 0
            && !h.is_control()
            && self.key == api_key::PRODUCE
        {
            contradiction(
                Level::Warning,
                format!(
                    "producer_id {} with base_sequence {}",
                    h.producer_id, h.base_sequence
                ),
                field(53, 4),
            );
        }
        usize::try_from(h.records_count).unwrap_or(0)
    }

    /// A legacy message (magic 0 or 1) at `s..e` of the frame: offset, size, CRC, magic,
    /// attributes.
    fn message(&self, s: usize, e: usize, out: &mut Vec<Finding>) {
        let m = &self.frame[s..e];
        if m.len() < 18 {
            return;
        }
        let stored = u32::from_be_bytes([m[12], m[13], m[14], m[15]]);
        let mut crc = flate2::Crc::new();
        crc.update(&m[batch::MAGIC_OFFSET..]);
        if crc.sum() != stored {
            self.push(
                out,
                Code::CrcMismatch,
                Level::Error,
                format!(
                    "message CRC mismatch: computed 0x{:08x}, stored 0x{stored:08x}",
                    crc.sum()
                ),
                (s + 12, s + 16),
            );
        }
        let (magic, attributes) = (m[16] as i8, i32::from(m[17]));
        let attr = (s + 17, s + 18);
        if let Compression::Unknown(n) = Compression::from_bits(attributes) {
            self.push(
                out,
                Code::BatchAttributes,
                Level::Warning,
                format!("compression codec {n} is none Kafka defines"),
                attr,
            );
        }
        let defined = if magic == 0 { 0x07 } else { 0x0f };
        if attributes & !defined != 0 {
            self.push(
                out,
                Code::BatchAttributes,
                Level::Warning,
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
            );
        }
    }
}
