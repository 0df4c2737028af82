//! Record-set structure without the field tree: splitting a record set into its batches (magic
//! 2) and legacy messages (magic 0/1), batch headers, CRCs and compression codecs. Shared by the
//! broker (offset assignment, validation) and the dissector.

/// Bytes of a magic-2 batch header, up to and including `records_count`.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before a batch's or message's `magic` byte (offset, length, epoch-or-crc).
pub const MAGIC_OFFSET: usize = 16;
/// Offset of the producer id in a magic-2 batch (-1, so its high byte's top bit set, for a
/// producer that is not idempotent).
pub const PRODUCER_ID_OFFSET: usize = 43;
/// Offset of the CRC field in a magic-2 batch; the CRC covers everything after it.
pub const BATCH_CRC_OFFSET: usize = 17;
/// Where the CRC-32C coverage of a magic-2 batch starts (the attributes field).
pub const BATCH_CRC_START: usize = 21;
/// Attributes bit of a transactional batch.
pub const TRANSACTIONAL: i16 = 0x10;
/// Attributes bit of a control batch (transaction markers).
pub const CONTROL: i16 = 0x20;
/// Control record types, the second int16 of a control record's key.
pub const CONTROL_ABORT: i16 = 0;
pub const CONTROL_COMMIT: i16 = 1;

/// The fixed header of a magic-2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

/// The `records_count` of the batch `b` starts, read alone (a summary line wants no more);
/// `None` if `b` is shorter than a batch header.
pub fn records_count(b: &[u8]) -> Option<i32> {
    (b.len() >= BATCH_HEADER_LEN).then(|| be_i32(b, 57))
}

impl BatchHeader {
    /// Parses the header from the start of a batch; `None` if fewer than 61 bytes.
    pub fn parse(b: &[u8]) -> Option<BatchHeader> {
        if b.len() < BATCH_HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: be_i64(b, 0),
            batch_length: be_i32(b, 8),
            partition_leader_epoch: be_i32(b, 12),
            magic: b[16] as i8,
            crc: be_i32(b, 17) as u32,
            attributes: be_i16(b, 21),
            last_offset_delta: be_i32(b, 23),
            base_timestamp: be_i64(b, 27),
            max_timestamp: be_i64(b, 35),
            producer_id: be_i64(b, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(b, 51),
            base_sequence: be_i32(b, 53),
            records_count: be_i32(b, 57),
        })
    }

    /// Compression codec (attributes bits 0-2).
    pub fn compression(&self) -> Compression {
        Compression::from_bits(self.attributes as i32)
    }
    /// Timestamp type bit: true for LogAppendTime.
    pub fn log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL != 0
    }
    /// Offset of the last record; `None` when base offset and delta (both the sender's
    /// numbers) add up past `i64::MAX` (or below `i64::MIN`).
    pub fn last_offset(&self) -> Option<i64> {
        self.base_offset
            .checked_add(i64::from(self.last_offset_delta))
    }
}

/// A compression codec as numbered in attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
    Unknown(u8),
}

impl Compression {
    pub fn from_bits(attributes: i32) -> Compression {
        match attributes & 0x07 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            n => Compression::Unknown(n as u8),
        }
    }
}

/// CRC-32C of a magic-2 batch as it should be (over attributes .. end).
pub fn batch_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[BATCH_CRC_START.min(batch.len())..])
}

/// Rewrites a magic-2 batch's base offset (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// One entry of a record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A complete magic-2 batch: `start..end` of the record set.
    Batch { start: usize, end: usize },
    /// A complete legacy message (magic 0 or 1) with its offset and size prefix.
    Legacy { start: usize, end: usize, magic: i8 },
    /// Trailing bytes too short for the entry they begin (fetch responses may end so).
    Partial { start: usize, end: usize },
    /// An entry with an impossible length or magic; the rest of the set cannot be split.
    Invalid {
        start: usize,
        end: usize,
        reason: &'static str,
    },
}

/// Splits a record set into its entries, in order, without allocating. Every byte belongs
/// to exactly one entry.
pub fn split(set: &[u8]) -> Entries<'_> {
    Entries { set, pos: 0 }
}

/// The entries of a record set ([`split`]).
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    set: &'a [u8],
    /// Where the next entry begins; the set's length once an entry ended the split.
    pos: usize,
}

impl Iterator for Entries<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        let (set, pos) = (self.set, self.pos);
        if pos >= set.len() {
            return None;
        }
        // An entry that cannot be measured takes the rest of the set (and ends the split).
        self.pos = set.len();
        let rest = set.len() - pos;
        if rest < MAGIC_OFFSET + 1 {
            return Some(Entry::Partial {
                start: pos,
                end: set.len(),
            });
        }
        let len = be_i32(set, pos + 8);
        let magic = set[pos + MAGIC_OFFSET] as i8;
        let min_len = match magic {
            2 => (BATCH_HEADER_LEN - 12) as i32,
            0 => 14,
            1 => 22,
            _ => {
                return Some(Entry::Invalid {
                    start: pos,
                    end: set.len(),
                    reason: "unknown magic byte",
                })
            }
        };
        if len < min_len {
            return Some(Entry::Invalid {
                start: pos,
                end: set.len(),
                reason: "length shorter than the header",
            });
        }
        let total = 12 + len as usize;
        if total > rest {
            return Some(Entry::Partial {
                start: pos,
                end: set.len(),
            });
        }
        let end = pos + total;
        self.pos = end;
        Some(if magic == 2 {
            Entry::Batch { start: pos, end }
        } else {
            Entry::Legacy {
                start: pos,
                end,
                magic,
            }
        })
    }
}

/// A zigzag varint at `*pos`, moving past it; `None` when it runs off the end or past 64 bits.
fn read_varint(b: &[u8], pos: &mut usize) -> Option<i64> {
    let mut x: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        x |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((x >> 1) as i64) ^ -((x & 1) as i64));
        }
    }
    None
}

/// The type ([`CONTROL_ABORT`], [`CONTROL_COMMIT`]) and coordinator epoch of a control batch's
/// first record (uncompressed, as control batches are): its key is `version i16, type i16`,
/// its value `version i16, coordinator epoch i32` (-1 when the value is shorter).
pub fn control_record(b: &[u8]) -> Option<(i16, i32)> {
    let mut pos = BATCH_HEADER_LEN;
    let _len = read_varint(b, &mut pos)?;
    pos += 1; // attributes
    read_varint(b, &mut pos)?; // timestamp delta
    read_varint(b, &mut pos)?; // offset delta
    let key_len = usize::try_from(read_varint(b, &mut pos)?).ok()?;
    let key = b.get(pos..pos.checked_add(key_len)?)?;
    pos += key_len;
    if key.len() < 4 {
        return None;
    }
    let kind = i16::from_be_bytes([key[2], key[3]]);
    let value_len = read_varint(b, &mut pos)?;
    let epoch = if value_len >= 6 {
        b.get(pos + 2..pos + 6)
            .map(|v| i32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            .unwrap_or(-1)
    } else {
        -1
    };
    Some((kind, epoch))
}

/// A COMMIT or ABORT marker as Kafka writes it: a control batch (transactional + control, base
/// offset 0 to be assigned on append, base sequence -1) of one record whose key is
/// `version 0, type` and whose value is `version 0, coordinator epoch`, CRC filled in.
pub fn marker_batch(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    partition_leader_epoch: i32,
    now_ms: i64,
) -> Vec<u8> {
    use crate::encode::varint;
    let mut record = Vec::with_capacity(24);
    record.push(0); // attributes
    varint(&mut record, 0); // timestamp delta
    varint(&mut record, 0); // offset delta
    varint(&mut record, 4);
    record.extend_from_slice(&0i16.to_be_bytes());
    let kind = if commit {
        CONTROL_COMMIT
    } else {
        CONTROL_ABORT
    };
    record.extend_from_slice(&kind.to_be_bytes());
    varint(&mut record, 6);
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&coordinator_epoch.to_be_bytes());
    varint(&mut record, 0); // headers
    let mut records = Vec::with_capacity(record.len() + 2);
    varint(&mut records, record.len() as i64);
    records.extend_from_slice(&record);

    let mut b = Vec::with_capacity(BATCH_HEADER_LEN + records.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    let batch_length = (BATCH_HEADER_LEN - 12 + records.len()) as i32;
    b.extend_from_slice(&batch_length.to_be_bytes());
    b.extend_from_slice(&partition_leader_epoch.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]); // crc, below
    b.extend_from_slice(&(TRANSACTIONAL | CONTROL).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&now_ms.to_be_bytes());
    b.extend_from_slice(&now_ms.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&1i32.to_be_bytes()); // records count
    b.extend_from_slice(&records);
    let crc = batch_crc(&b);
    b[BATCH_CRC_OFFSET..BATCH_CRC_START].copy_from_slice(&crc.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_count_reads_what_the_header_says() {
        let b = marker_batch(7, 3, false, 5, 0, 1000);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(records_count(&b), Some(h.records_count));
        assert_eq!(h.records_count, 1);
        assert_eq!(records_count(&b[..BATCH_HEADER_LEN - 1]), None);
    }

    #[test]
    fn a_marker_reads_back_as_a_control_record() {
        let b = marker_batch(7, 3, false, 5, 0, 1000);
        let h = BatchHeader::parse(&b).unwrap();
        assert!(h.is_control() && h.is_transactional());
        assert_eq!(batch_crc(&b), h.crc);
        assert_eq!(control_record(&b), Some((CONTROL_ABORT, 5)));
        let c = marker_batch(7, 3, true, 0, 0, 1000);
        assert_eq!(control_record(&c), Some((CONTROL_COMMIT, 0)));
    }

    #[test]
    fn splits_and_flags_partial_and_invalid() {
        // A minimal magic-2 batch with zero records: 61 bytes.
        let mut b = vec![0u8; BATCH_HEADER_LEN];
        b[8..12].copy_from_slice(&49i32.to_be_bytes());
        b[16] = 2;
        let crc = batch_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let mut set = b.clone();
        set.extend_from_slice(&b[..30]);
        let e: Vec<Entry> = split(&set).collect();
        assert_eq!(
            e,
            vec![
                Entry::Batch { start: 0, end: 61 },
                Entry::Partial { start: 61, end: 91 }
            ]
        );
        let h = BatchHeader::parse(&set).unwrap();
        assert_eq!(h.crc, batch_crc(&set[..61]));
        set[77] = 9;
        assert!(matches!(split(&set).nth(1), Some(Entry::Invalid { .. })));
    }

    #[test]
    fn last_offset_of_a_hostile_header_is_none_not_an_overflow() {
        // Found by the fuzzer (tests/fuzz/regressions/record_sets/): base offset i64::MAX
        // and a positive delta overflowed.
        let mut b = vec![0u8; BATCH_HEADER_LEN];
        b[0..8].copy_from_slice(&i64::MAX.to_be_bytes());
        b[23..27].copy_from_slice(&2i32.to_be_bytes());
        assert_eq!(BatchHeader::parse(&b).unwrap().last_offset(), None);
        b[0..8].copy_from_slice(&i64::MIN.to_be_bytes());
        b[23..27].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(BatchHeader::parse(&b).unwrap().last_offset(), None);
        b[0..8].copy_from_slice(&100i64.to_be_bytes());
        b[23..27].copy_from_slice(&4i32.to_be_bytes());
        assert_eq!(BatchHeader::parse(&b).unwrap().last_offset(), Some(104));
    }
}
