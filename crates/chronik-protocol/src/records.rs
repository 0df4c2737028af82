//! Record sets: record batches (magic 2) and legacy message sets (magic 0/1), decoded into
//! fields, after decompression (gzip, snappy, lz4, zstd).
//!
//! Decoding never fails: whatever cannot be decoded becomes a `record_set.undecoded` (or
//! `record_set.partial`) leaf with a note, so the leaves of a frame still tile it exactly.
//! Decompressed data lives in buffers of its own (see [`BufferId`]); the fields decoded from it
//! point into that buffer, and their leaves tile it.
//!
//! Every length and count read from the wire is checked against the bytes actually present
//! before it is used; decompression runs as a stream with a cap on the bytes it may produce
//! ([`MAX_DECOMPRESSED_BYTES`] per dissection), so a small hostile batch cannot make a big
//! allocation.

use std::io::Read;

use super::batch::{self, BatchHeader, Compression, Entry, BATCH_HEADER_LEN, MAGIC_OFFSET};
use super::registry::FieldId;
use super::tree::{BufferId, Field, Value};
use crate::fid;

/// Most bytes that decompression may produce in one dissection (all the record sets of a frame
/// together). A batch that would go over it keeps its compressed leaf, with a note.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// Most batches, records and legacy messages one dissection expands into fields; the rest of a
/// record set is one leaf with a note. Keeps the tree of a hostile or huge frame to a bounded
/// size (each entry is a handful of fields).
pub const MAX_ENTRIES_PER_DISSECTION: usize = 50_000;

/// Largest zstd window (log2 of bytes) accepted: matches the cap, so a frame header cannot make
/// the decoder reserve more than the cap allows anyway.
const ZSTD_WINDOW_LOG_MAX: u32 = 26;

/// Snappy cannot expand its input more than this: its densest element, a copy with a two-byte
/// offset, is 3 bytes for at most 64 bytes of output. A raw block declaring more is invalid, and
/// is rejected before anything is allocated for it.
const SNAPPY_MAX_EXPANSION: usize = 22;

/// The smallest record body (after its length): attributes, then one byte each for the
/// timestamp delta, offset delta, key length, value length and header count. A shorter length
/// means the batch is garbage from there on; stopping keeps the field tree proportional to
/// real records.
const MIN_RECORD_BODY: i64 = 6;

/// The header that starts xerial-framed snappy (Kafka's Java client, kafka-python).
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// xerial header: magic, version (int32), minimum compatible version (int32).
const XERIAL_HEADER_LEN: usize = 16;

/// The LZ4 frame format's magic number, as it appears on the wire (little endian).
const LZ4_FRAME_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];

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
    let mut left = MAX_ENTRIES_PER_DISSECTION;
    dissect_record_set_limited(buf, start, end, buffer, buffers, out, &mut left);
}

/// [`dissect_record_set`] sharing an entry budget with the other record sets of the same
/// dissection: at most `entries_left` batches, records and messages are expanded (the count is
/// decremented).
pub fn dissect_record_set_limited(
    buf: &[u8],
    start: usize,
    end: usize,
    buffer: BufferId,
    buffers: &mut Vec<Vec<u8>>,
    out: &mut Vec<Field>,
    entries_left: &mut usize,
) {
    let end = end.min(buf.len());
    let start = start.min(end);
    let used = buffers.iter().map(Vec::len).sum();
    let mut cx = Context {
        buffers,
        used,
        entries_left,
    };
    record_set(buf, start, end, buffer, &mut cx, true, out);
}

fn limit_note() -> String {
    format!(
        "not expanded: this dissection reached its limit of {MAX_ENTRIES_PER_DISSECTION} batches, \
         records and messages"
    )
}

/// What decoding one record set shares with the batches inside it.
struct Context<'b> {
    buffers: &'b mut Vec<Vec<u8>>,
    /// Bytes already in `buffers`: counts against [`MAX_DECOMPRESSED_BYTES`].
    used: usize,
    /// Batches, records and messages that may still be expanded.
    entries_left: &'b mut usize,
}

impl Context<'_> {
    /// Takes one entry from the budget; false when it is spent.
    fn take_entry(&mut self) -> bool {
        if *self.entries_left == 0 {
            return false;
        }
        *self.entries_left -= 1;
        true
    }
}

impl Context<'_> {
    /// Bytes decompression may still produce.
    fn budget(&self) -> usize {
        MAX_DECOMPRESSED_BYTES.saturating_sub(self.used)
    }

    /// The id the next pushed buffer will get, if there is room for one.
    fn next_id(&self) -> Option<BufferId> {
        BufferId::try_from(self.buffers.len() + 1).ok()
    }

    fn push(&mut self, data: Vec<u8>) {
        self.used += data.len();
        self.buffers.push(data);
    }
}

fn leaf_in(id: FieldId, buffer: BufferId, offset: usize, len: usize, value: Value) -> Field {
    let mut f = Field::leaf(id, offset, len, value);
    f.buffer = buffer;
    f
}

fn group_in(id: FieldId, buffer: BufferId, offset: usize, value: Value) -> Field {
    let mut f = Field::group(id, offset, value);
    f.buffer = buffer;
    f
}

/// A leaf of raw bytes `start..end`.
fn bytes_at(id: FieldId, buffer: BufferId, start: usize, end: usize) -> Field {
    leaf_in(
        id,
        buffer,
        start,
        end - start,
        Value::Bytes {
            start: start as u32,
            len: (end - start) as u32,
        },
    )
}

/// A leaf of raw bytes `start..end` with a note.
fn raw_leaf(id: FieldId, buffer: BufferId, start: usize, end: usize, note: String) -> Field {
    let mut f = bytes_at(id, buffer, start, end);
    f.note = Some(note);
    f
}

fn record_set(
    buf: &[u8],
    start: usize,
    end: usize,
    buffer: BufferId,
    cx: &mut Context,
    may_decompress: bool,
    out: &mut Vec<Field>,
) {
    let set = &buf[start..end];
    for entry in batch::split(set) {
        if let Entry::Batch { start: s, .. } | Entry::Legacy { start: s, .. } = entry {
            if !cx.take_entry() {
                out.push(raw_leaf(
                    fid!("record_set.undecoded"),
                    buffer,
                    start + s,
                    end,
                    limit_note(),
                ));
                break;
            }
        }
        match entry {
            Entry::Batch { start: s, end: e } => {
                record_batch(buf, start + s, start + e, buffer, cx, may_decompress, out)
            }
            Entry::Legacy {
                start: s,
                end: e,
                magic,
            } => message(
                buf,
                start + s,
                start + e,
                magic,
                buffer,
                cx,
                may_decompress,
                out,
            ),
            Entry::Partial { start: s, end: e } => {
                let present = e - s;
                let note = if present >= 12 {
                    let declared = 12 + i64::from(be_i32(&set[s + 8..s + 12]));
                    format!(
                        "incomplete entry: its header declares {declared} bytes, {present} present \
                         (normal at the end of a fetch response)"
                    )
                } else {
                    format!("incomplete entry: {present} bytes, too few for an entry header")
                };
                out.push(raw_leaf(
                    fid!("record_set.partial"),
                    buffer,
                    start + s,
                    start + e,
                    note,
                ));
            }
            Entry::Invalid {
                start: s,
                end: e,
                reason,
            } => {
                let magic = set.get(s + MAGIC_OFFSET).copied().unwrap_or(0) as i8;
                out.push(raw_leaf(
                    fid!("record_set.undecoded"),
                    buffer,
                    start + s,
                    start + e,
                    format!("{reason} (magic byte {magic}); the rest of the set is not decoded"),
                ));
            }
        }
    }
}

fn be_i32(b: &[u8]) -> i32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[..4]);
    i32::from_be_bytes(x)
}

fn codec_name(c: Compression) -> String {
    match c {
        Compression::None => "none".into(),
        Compression::Gzip => "gzip".into(),
        Compression::Snappy => "snappy".into(),
        Compression::Lz4 => "lz4".into(),
        Compression::Zstd => "zstd".into(),
        Compression::Unknown(n) => format!("unknown codec {n}"),
    }
}

fn batch_attributes_note(h: &BatchHeader) -> String {
    let mut s = format!(
        "compression: {}, timestamp type: {}",
        codec_name(h.compression()),
        if h.log_append_time() {
            "LogAppendTime (every record's timestamp is max_timestamp)"
        } else {
            "CreateTime"
        }
    );
    if h.is_transactional() {
        s.push_str(", transactional");
    }
    if h.is_control() {
        s.push_str(", control batch");
    }
    if h.attributes & 0x40 != 0 {
        s.push_str(", has delete horizon");
    }
    if h.attributes & !0x7f != 0 {
        s.push_str(&format!(", unknown bits 0x{:04x}", h.attributes & !0x7f));
    }
    s
}

/// Decodes a complete magic-2 batch `buf[s..e]` (`batch::split` checked its length).
fn record_batch(
    buf: &[u8],
    s: usize,
    e: usize,
    buffer: BufferId,
    cx: &mut Context,
    may_decompress: bool,
    out: &mut Vec<Field>,
) {
    let b = &buf[s..e];
    let Some(h) = BatchHeader::parse(b) else {
        out.push(raw_leaf(
            fid!("record_set.undecoded"),
            buffer,
            s,
            e,
            "record batch shorter than its header".into(),
        ));
        return;
    };
    let mut g = group_in(fid!("record_batch"), buffer, s, Value::Group);
    let kids = &mut g.children;
    let int = |id, at: usize, len: usize, v: i64| leaf_in(id, buffer, s + at, len, Value::Int(v));
    kids.push(int(fid!("record_batch.base_offset"), 0, 8, h.base_offset));
    kids.push(int(
        fid!("record_batch.batch_length"),
        8,
        4,
        h.batch_length.into(),
    ));
    kids.push(int(
        fid!("record_batch.partition_leader_epoch"),
        12,
        4,
        h.partition_leader_epoch.into(),
    ));
    kids.push(int(fid!("record_batch.magic"), 16, 1, h.magic.into()));
    let mut crc = int(fid!("record_batch.crc"), 17, 4, h.crc.into());
    let computed = batch::batch_crc(b);
    if computed != h.crc {
        crc.note = Some(format!(
            "CRC mismatch: computed 0x{computed:08x}, stored 0x{:08x}",
            h.crc
        ));
    }
    kids.push(crc);
    let mut attributes = int(fid!("record_batch.attributes"), 21, 2, h.attributes.into());
    attributes.note = Some(batch_attributes_note(&h));
    kids.push(attributes);
    kids.push(int(
        fid!("record_batch.last_offset_delta"),
        23,
        4,
        h.last_offset_delta.into(),
    ));
    kids.push(int(
        fid!("record_batch.base_timestamp"),
        27,
        8,
        h.base_timestamp,
    ));
    kids.push(int(
        fid!("record_batch.max_timestamp"),
        35,
        8,
        h.max_timestamp,
    ));
    kids.push(int(fid!("record_batch.producer_id"), 43, 8, h.producer_id));
    kids.push(int(
        fid!("record_batch.producer_epoch"),
        51,
        2,
        h.producer_epoch.into(),
    ));
    kids.push(int(
        fid!("record_batch.base_sequence"),
        53,
        4,
        h.base_sequence.into(),
    ));
    let count_index = kids.len();
    kids.push(int(
        fid!("record_batch.records_count"),
        57,
        4,
        h.records_count.into(),
    ));
    let area = s + BATCH_HEADER_LEN;
    let expected = usize::try_from(h.records_count).unwrap_or(0);
    let control = h.is_control();
    let decoded = match h.compression() {
        Compression::None => Some(records(
            buf,
            area,
            e,
            buffer,
            expected,
            control,
            cx.entries_left,
            kids,
        )),
        codec => {
            let mut compressed = bytes_at(fid!("record_batch.compressed"), buffer, area, e);
            match decompress_into(codec, &buf[area..e], 2, cx, may_decompress) {
                Err(why) => {
                    compressed.note = Some(why);
                    kids.push(compressed);
                    None
                }
                Ok((data, id, note)) => {
                    compressed.note = note;
                    kids.push(compressed);
                    let mut dg = group_in(fid!("record_batch.decompressed"), id, 0, Value::Group);
                    let n = records(
                        &data,
                        0,
                        data.len(),
                        id,
                        expected,
                        control,
                        cx.entries_left,
                        &mut dg.children,
                    );
                    dg.close(data.len());
                    kids.push(dg);
                    cx.push(data);
                    Some(n)
                }
            }
        }
    };
    if h.records_count < 0 {
        kids[count_index].note = Some("negative record count".into());
    } else if let Some(n) = decoded.filter(|n| *n < expected) {
        kids[count_index].note = Some(format!(
            "header counts {} records, {n} present",
            h.records_count
        ));
    }
    g.close(e);
    out.push(g);
}

/// Decompresses `data` if allowed and within the budget. On success: the bytes, the BufferId
/// they will get when pushed, and a note about the compressed data (if any).
fn decompress_into(
    codec: Compression,
    data: &[u8],
    magic: i8,
    cx: &Context,
    may_decompress: bool,
) -> Result<(Vec<u8>, BufferId, Option<String>), String> {
    if !may_decompress {
        return Err(format!(
            "{} data inside decompressed data: not decompressed (only one level is)",
            codec_name(codec)
        ));
    }
    let Some(id) = cx.next_id() else {
        return Err("too many decompressed buffers in one frame: not decompressed".into());
    };
    let (bytes, note) = decompress(codec, data, magic, cx.budget())?;
    Ok((bytes, id, note))
}

/// Decodes records from `d[start..end]` (uncompressed records of a batch), at most `expected`
/// of them; bytes after them are a leaf with a note. Returns how many records were decoded, or
/// `expected` when the dissection's entry budget stopped decoding first (the leaf says so).
#[allow(clippy::too_many_arguments)]
fn records(
    d: &[u8],
    start: usize,
    end: usize,
    buffer: BufferId,
    expected: usize,
    control: bool,
    entries_left: &mut usize,
    out: &mut Vec<Field>,
) -> usize {
    let mut pos = start;
    let mut n = 0;
    while pos < end {
        if *entries_left == 0 && n < expected {
            out.push(raw_leaf(
                fid!("record_set.undecoded"),
                buffer,
                pos,
                end,
                limit_note(),
            ));
            return expected;
        }
        if n == expected {
            out.push(raw_leaf(
                fid!("record_set.undecoded"),
                buffer,
                pos,
                end,
                format!(
                    "{} bytes after the {expected} records the batch header counts",
                    end - pos
                ),
            ));
            break;
        }
        match record(d, pos, end, buffer, n, control, out) {
            Some(next) => pos = next,
            None => break,
        }
        *entries_left = entries_left.saturating_sub(1);
        n += 1;
    }
    n
}

/// Reads fields out of `d[pos..end]`; every read checks the bytes left first and moves on only
/// when it succeeds, so on an error `pos` is where the failed field starts.
struct Cursor<'d> {
    d: &'d [u8],
    pos: usize,
    end: usize,
    buffer: BufferId,
}

type Step<T> = Result<T, String>;

impl Cursor<'_> {
    fn left(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    /// Pushes a leaf of `n` bytes at the cursor and moves past it.
    fn push(&mut self, out: &mut Vec<Field>, id: FieldId, n: usize, value: Value) {
        out.push(leaf_in(id, self.buffer, self.pos, n, value));
        self.pos += n;
    }

    /// A big-endian signed integer of `n` bytes (1, 2, 4 or 8), not consumed.
    fn peek_int(&self, n: usize, what: &str) -> Step<i64> {
        if self.left() < n {
            return Err(format!(
                "{what} needs {n} bytes, {} left at byte {}",
                self.left(),
                self.pos
            ));
        }
        let b = &self.d[self.pos..self.pos + n];
        let mut v: i64 = if b[0] & 0x80 != 0 { -1 } else { 0 };
        for &x in b {
            v = (v << 8) | i64::from(x);
        }
        Ok(v)
    }

    fn int_leaf(&mut self, out: &mut Vec<Field>, id: FieldId, n: usize, what: &str) -> Step<i64> {
        let v = self.peek_int(n, what)?;
        self.push(out, id, n, Value::Int(v));
        Ok(v)
    }

    /// A zigzag varint of at most `max` bytes, not consumed: (value, bytes).
    fn peek_varint(&self, max: usize, what: &str) -> Step<(i64, usize)> {
        let mut raw: u64 = 0;
        for i in 0..max {
            let Some(&b) = self.d.get(self.pos + i).filter(|_| i < self.left()) else {
                return Err(format!(
                    "{what}: varint runs past the end at byte {}",
                    self.pos
                ));
            };
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if max <= 5 {
                    // A varint is 32 bits: bits a fifth byte carries beyond them are dropped.
                    raw &= 0xffff_ffff;
                }
                return Ok((((raw >> 1) as i64) ^ -((raw & 1) as i64), i + 1));
            }
        }
        Err(format!(
            "{what}: varint longer than {max} bytes at byte {}",
            self.pos
        ))
    }

    fn varint_leaf(
        &mut self,
        out: &mut Vec<Field>,
        id: FieldId,
        max: usize,
        what: &str,
    ) -> Step<i64> {
        let (v, n) = self.peek_varint(max, what)?;
        self.push(out, id, n, Value::Int(v));
        Ok(v)
    }

    /// A length-prefixed byte string (varint or int32 length, -1 for null) as one leaf covering
    /// length and data; `text` decodes it as a string. Returns the data's range, if not null.
    fn bytes_leaf(
        &mut self,
        out: &mut Vec<Field>,
        id: FieldId,
        varint: bool,
        text: bool,
        what: &str,
    ) -> Step<Option<(usize, usize)>> {
        let (len, prefix) = if varint {
            self.peek_varint(5, what)?
        } else {
            (self.peek_int(4, what)?, 4)
        };
        if len == -1 {
            self.push(out, id, prefix, Value::Null);
            return Ok(None);
        }
        let avail = self.left() - prefix;
        if len < 0 || len as u64 > avail as u64 {
            return Err(format!(
                "{what} length {len} at byte {}: {avail} bytes left",
                self.pos
            ));
        }
        let len = len as usize;
        let data = self.pos + prefix;
        let value = if text {
            Value::Str(String::from_utf8_lossy(&self.d[data..data + len]).into_owned())
        } else {
            Value::Bytes {
                start: data as u32,
                len: len as u32,
            }
        };
        self.push(out, id, prefix + len, value);
        Ok(Some((data, len)))
    }
}

/// Decodes one record at `d[pos..]`, into a `record` group pushed to `out`. Returns where the
/// next record starts, or `None` when the rest of `d[pos..end]` could not be split into records
/// (it is then covered by a leaf with a note).
fn record(
    d: &[u8],
    pos: usize,
    end: usize,
    buffer: BufferId,
    index: usize,
    control: bool,
    out: &mut Vec<Field>,
) -> Option<usize> {
    let mut c = Cursor {
        d,
        pos,
        end,
        buffer,
    };
    let mut g = group_in(fid!("record"), buffer, pos, Value::Element(index as u32));
    let length = match c.varint_leaf(&mut g.children, fid!("record.length"), 5, "record length") {
        Ok(v) => v,
        Err(why) => {
            out.push(raw_leaf(
                fid!("record_set.undecoded"),
                buffer,
                pos,
                end,
                why,
            ));
            return None;
        }
    };
    if length < MIN_RECORD_BODY || length as u64 > c.left() as u64 {
        let why = if length < MIN_RECORD_BODY {
            format!(
                "record length {length} is shorter than the smallest record \
                 ({MIN_RECORD_BODY} bytes); the rest is not decoded"
            )
        } else {
            format!(
                "record length {length} but {} bytes left in the batch; the rest is not decoded",
                c.left()
            )
        };
        g.children.push(raw_leaf(
            fid!("record_set.undecoded"),
            buffer,
            c.pos,
            end,
            why,
        ));
        g.close(end);
        out.push(g);
        return None;
    }
    let record_end = c.pos + length as usize;
    c.end = record_end;
    match record_body(&mut c, &mut g.children, control) {
        Ok(()) if c.pos < record_end => {
            let n = record_end - c.pos;
            g.children.push(raw_leaf(
                fid!("record_set.undecoded"),
                buffer,
                c.pos,
                record_end,
                format!("{n} bytes after the record's headers, inside its length"),
            ));
        }
        Ok(()) => {}
        Err(why) if c.pos < record_end => {
            g.children.push(raw_leaf(
                fid!("record_set.undecoded"),
                buffer,
                c.pos,
                record_end,
                why,
            ));
        }
        Err(why) => g.note = Some(why),
    }
    g.close(record_end);
    out.push(g);
    Some(record_end)
}

fn record_body(c: &mut Cursor, out: &mut Vec<Field>, control: bool) -> Step<()> {
    c.int_leaf(out, fid!("record.attributes"), 1, "record attributes")?;
    c.varint_leaf(out, fid!("record.timestamp_delta"), 10, "timestamp delta")?;
    c.varint_leaf(out, fid!("record.offset_delta"), 5, "offset delta")?;
    let key = c.bytes_leaf(out, fid!("record.key"), true, false, "record key")?;
    if control {
        if let (Some((at, 4)), Some(last)) = (key, out.last_mut()) {
            let kind = i16::from_be_bytes([c.d[at + 2], c.d[at + 3]]);
            last.note = Some(match kind {
                batch::CONTROL_ABORT => "control record: ABORT marker".into(),
                batch::CONTROL_COMMIT => "control record: COMMIT marker".into(),
                k => format!("control record of type {k}"),
            });
        }
    }
    c.bytes_leaf(out, fid!("record.value"), true, false, "record value")?;
    let mut hg = group_in(fid!("record.headers"), c.buffer, c.pos, Value::Group);
    let r = headers(c, &mut hg.children);
    hg.close(c.pos);
    if !hg.children.is_empty() {
        out.push(hg);
    }
    r
}

fn headers(c: &mut Cursor, out: &mut Vec<Field>) -> Step<()> {
    let at = c.pos;
    let (count, n) = c.peek_varint(5, "header count")?;
    // A header takes at least two bytes (two varint lengths).
    if count < 0 || count as u64 > (c.left() - n) as u64 / 2 {
        return Err(format!(
            "header count {count} at byte {at}: {} bytes left in the record",
            c.left() - n
        ));
    }
    c.push(out, fid!("record.headers.count"), n, Value::Int(count));
    for i in 0..count as usize {
        let mut hg = group_in(
            fid!("record.header"),
            c.buffer,
            c.pos,
            Value::Element(i as u32),
        );
        let r = c
            .bytes_leaf(
                &mut hg.children,
                fid!("record.header.key"),
                true,
                true,
                "header key",
            )
            .and_then(|_| {
                c.bytes_leaf(
                    &mut hg.children,
                    fid!("record.header.value"),
                    true,
                    false,
                    "header value",
                )
            });
        hg.close(c.pos);
        if !hg.children.is_empty() {
            out.push(hg);
        }
        r?;
    }
    Ok(())
}

fn legacy_attributes_note(magic: i8, attributes: i64) -> String {
    let mut s = format!(
        "compression: {}",
        codec_name(Compression::from_bits(attributes as i32))
    );
    if magic >= 1 {
        s.push_str(if attributes & 0x08 != 0 {
            ", timestamp type: LogAppendTime"
        } else {
            ", timestamp type: CreateTime"
        });
    }
    s
}

/// Decodes one complete legacy message `buf[s..e]` (magic 0 or 1), with its offset and size.
#[allow(clippy::too_many_arguments)]
fn message(
    buf: &[u8],
    s: usize,
    e: usize,
    magic: i8,
    buffer: BufferId,
    cx: &mut Context,
    may_decompress: bool,
    out: &mut Vec<Field>,
) {
    let mut g = group_in(fid!("message"), buffer, s, Value::Group);
    let mut c = Cursor {
        d: buf,
        pos: s,
        end: e,
        buffer,
    };
    let r = message_body(&mut c, &mut g.children, magic, cx, may_decompress);
    if c.pos < e {
        let why = match r {
            Ok(()) => format!("{} bytes after the message's value", e - c.pos),
            Err(why) => why,
        };
        g.children.push(raw_leaf(
            fid!("record_set.undecoded"),
            buffer,
            c.pos,
            e,
            why,
        ));
    } else if let Err(why) = r {
        g.note = Some(why);
    }
    g.close(e);
    out.push(g);
}

fn message_body(
    c: &mut Cursor,
    out: &mut Vec<Field>,
    magic: i8,
    cx: &mut Context,
    may_decompress: bool,
) -> Step<()> {
    let start = c.pos;
    let offset = c.int_leaf(out, fid!("message.offset"), 8, "message offset")?;
    c.int_leaf(out, fid!("message.message_size"), 4, "message size")?;
    let stored = c.peek_int(4, "message crc")? as u32;
    let mut crc = flate2::Crc::new();
    crc.update(c.d.get(start + MAGIC_OFFSET..c.end).unwrap_or(&[]));
    c.push(out, fid!("message.crc"), 4, Value::Int(stored.into()));
    if crc.sum() != stored {
        if let Some(f) = out.last_mut() {
            f.note = Some(format!(
                "CRC mismatch: computed 0x{:08x}, stored 0x{stored:08x}",
                crc.sum()
            ));
        }
    }
    c.int_leaf(out, fid!("message.magic"), 1, "message magic")?;
    let attributes = c.int_leaf(out, fid!("message.attributes"), 1, "message attributes")?;
    if let Some(f) = out.last_mut() {
        f.note = Some(legacy_attributes_note(magic, attributes));
    }
    if magic >= 1 {
        c.int_leaf(out, fid!("message.timestamp"), 8, "message timestamp")?;
    }
    c.bytes_leaf(out, fid!("message.key"), false, false, "message key")?;
    let value = c.bytes_leaf(out, fid!("message.value"), false, false, "message value")?;
    let codec = Compression::from_bits(attributes as i32);
    let (Some((at, len)), true) = (value, codec != Compression::None) else {
        if codec != Compression::None {
            if let Some(f) = out.last_mut() {
                f.note = Some("compressed wrapper message with a null value".into());
            }
        }
        return Ok(());
    };
    match decompress_into(codec, &c.d[at..at + len], magic, cx, may_decompress) {
        Err(why) => {
            if let Some(f) = out.last_mut() {
                f.note = Some(why);
            }
        }
        Ok((data, id, note)) => {
            if let Some(f) = out.last_mut() {
                f.note = note;
            }
            let mut dg = group_in(fid!("message.decompressed"), id, 0, Value::Group);
            record_set(&data, 0, data.len(), id, cx, false, &mut dg.children);
            if magic >= 1 {
                note_absolute_offsets(offset, &mut dg.children);
            }
            dg.close(data.len());
            out.push(dg);
            cx.push(data);
        }
    }
    Ok(())
}

/// Inner messages of a compressed magic-1 wrapper carry offsets relative to the first; the
/// wrapper carries the absolute offset of the last. Notes each inner offset's absolute value.
fn note_absolute_offsets(wrapper_offset: i64, inner: &mut [Field]) {
    let offset_of = |m: &Field| {
        m.children
            .first()
            .filter(|f| f.id == fid!("message.offset"))
            .and_then(Field::as_int)
    };
    let Some(last) = inner.iter().rev().find_map(offset_of) else {
        return;
    };
    for m in inner.iter_mut().filter(|m| m.id == fid!("message")) {
        if let Some(f) = m
            .children
            .first_mut()
            .filter(|f| f.id == fid!("message.offset"))
        {
            if let Some(relative) = f.as_int() {
                let absolute = wrapper_offset.wrapping_sub(last).wrapping_add(relative);
                f.note = Some(format!("relative offset; absolute offset {absolute}"));
            }
        }
    }
}

/// Decompresses `data` with `codec`, producing at most `budget` bytes. `magic` is the format
/// of the batch or message it came from (LZ4 in magic 0 has a known checksum quirk). Returns
/// the bytes and an optional note about the compressed data, or why it could not be done.
fn decompress(
    codec: Compression,
    data: &[u8],
    magic: i8,
    budget: usize,
) -> Result<(Vec<u8>, Option<String>), String> {
    match codec {
        Compression::None => Ok((data.to_vec(), None)),
        Compression::Gzip => {
            read_capped(flate2::read::MultiGzDecoder::new(data), budget, "gzip").map(|v| (v, None))
        }
        Compression::Snappy => snappy(data, budget),
        Compression::Lz4 => lz4(data, magic, budget),
        Compression::Zstd => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| format!("zstd decompression failed: {e}"))?;
            dec.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| format!("zstd decompression failed: {e}"))?;
            read_capped(dec, budget, "zstd").map(|v| (v, None))
        }
        Compression::Unknown(n) => Err(format!("unknown compression codec {n}: not decompressed")),
    }
}

fn over_cap(budget: usize) -> String {
    format!(
        "decompressed data exceeds the {budget} bytes left of the {} MiB decompression cap per \
         frame: not decompressed",
        MAX_DECOMPRESSED_BYTES >> 20
    )
}

/// Reads a decompressing stream to its end, but never more than `budget` bytes.
fn read_capped(r: impl Read, budget: usize, what: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.take(budget as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{what} decompression failed: {e}"))?;
    if out.len() > budget {
        return Err(over_cap(budget));
    }
    Ok(out)
}

/// Snappy as Kafka clients write it: xerial framing (Java client, kafka-python) or one raw
/// block (librdkafka, kafka-protocol).
fn snappy(data: &[u8], budget: usize) -> Result<(Vec<u8>, Option<String>), String> {
    let mut out = Vec::new();
    if !data.starts_with(&XERIAL_MAGIC) {
        snappy_block(data, budget, &mut out)?;
        return Ok((out, Some("snappy: one raw block".into())));
    }
    if data.len() < XERIAL_HEADER_LEN {
        return Err("snappy: xerial header truncated".into());
    }
    let mut pos = XERIAL_HEADER_LEN;
    let mut chunks = 0;
    while pos < data.len() {
        if data.len() - pos < 4 {
            return Err(format!(
                "snappy: xerial chunk length truncated at byte {pos} of the compressed data"
            ));
        }
        let n = be_i32(&data[pos..]) as u32 as usize;
        pos += 4;
        if n > data.len() - pos {
            return Err(format!(
                "snappy: xerial chunk of {n} bytes, {} left",
                data.len() - pos
            ));
        }
        snappy_block(&data[pos..pos + n], budget, &mut out)?;
        pos += n;
        chunks += 1;
    }
    Ok((
        out,
        Some(format!("snappy: xerial framing, {chunks} chunk(s)")),
    ))
}

/// Appends one raw snappy block to `out`, within `budget` bytes in all.
fn snappy_block(block: &[u8], budget: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let declared = snap::raw::decompress_len(block)
        .map_err(|e| format!("snappy decompression failed: {e}"))?;
    if declared > block.len().saturating_mul(SNAPPY_MAX_EXPANSION) {
        return Err(format!(
            "snappy: block of {} bytes declares {declared} bytes, more than snappy can expand to",
            block.len()
        ));
    }
    let left = budget.saturating_sub(out.len());
    if declared > left {
        return Err(over_cap(left));
    }
    let at = out.len();
    out.resize(at + declared, 0);
    let n = snap::raw::Decoder::new()
        .decompress(block, &mut out[at..])
        .map_err(|e| format!("snappy decompression failed: {e}"))?;
    out.truncate(at + n);
    Ok(())
}

/// LZ4 frame format. Kafka's magic-0 messages computed the frame header checksum over the magic
/// number too (a bug Kafka kept for that format); such a header is repaired before decoding.
fn lz4(data: &[u8], magic: i8, budget: usize) -> Result<(Vec<u8>, Option<String>), String> {
    let decode = |d: &[u8]| read_capped(lz4_flex::frame::FrameDecoder::new(d), budget, "lz4");
    let Some((hc_at, correct, broken)) = lz4_header_checksums(data) else {
        return decode(data).map(|v| (v, None));
    };
    let stored = data[hc_at];
    if stored == correct {
        return decode(data).map(|v| (v, None));
    }
    let note = if stored == broken {
        format!(
            "lz4 frame header checksum computed over the magic number too (Kafka's magic-0 \
             LZ4 quirk{}); decoded anyway",
            if magic == 0 {
                ""
            } else {
                ", unexpected in this magic"
            }
        )
    } else {
        format!(
            "lz4 frame header checksum mismatch: computed 0x{correct:02x}, stored \
             0x{stored:02x}; decoded anyway"
        )
    };
    let mut fixed = data.to_vec();
    fixed[hc_at] = correct;
    decode(&fixed).map(|v| (v, Some(note)))
}

/// For an LZ4 frame header at the start of `data`: where its checksum byte is, the checksum as
/// the format defines it, and as Kafka's magic-0 writer computed it. `None` if it is not a
/// complete LZ4 frame header.
fn lz4_header_checksums(data: &[u8]) -> Option<(usize, u8, u8)> {
    if data.len() < 7 || data[..4] != LZ4_FRAME_MAGIC {
        return None;
    }
    let flags = data[4];
    let mut hc_at = 6;
    if flags & 0x08 != 0 {
        hc_at += 8; // content size
    }
    if flags & 0x01 != 0 {
        hc_at += 4; // dictionary id
    }
    if data.len() <= hc_at {
        return None;
    }
    let hash = |b: &[u8]| (twox_hash::XxHash32::oneshot(0, b) >> 8) as u8;
    Some((hc_at, hash(&data[4..hc_at]), hash(&data[..hc_at])))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Zigzag varint encoding, written independently of the decoder.
    fn zigzag(v: i64, out: &mut Vec<u8>) {
        let mut u = ((v << 1) ^ (v >> 63)) as u64;
        while u >= 0x80 {
            out.push((u as u8) | 0x80);
            u >>= 7;
        }
        out.push(u as u8);
    }

    fn peek(d: &[u8], max: usize) -> Step<(i64, usize)> {
        Cursor {
            d,
            pos: 0,
            end: d.len(),
            buffer: 0,
        }
        .peek_varint(max, "test")
    }

    #[test]
    fn varints_and_varlongs_decode_at_their_limits() {
        for v in [0, 1, -1, 63, -64, 64, 300, i32::MAX as i64, i32::MIN as i64] {
            let mut b = Vec::new();
            zigzag(v, &mut b);
            assert_eq!(peek(&b, 5), Ok((v, b.len())), "varint {v}");
        }
        for v in [i64::MAX, i64::MIN, 1 << 40, -(1 << 50)] {
            let mut b = Vec::new();
            zigzag(v, &mut b);
            assert_eq!(peek(&b, 10), Ok((v, b.len())), "varlong {v}");
        }
        // Too long, and cut short.
        assert!(peek(&[0x80; 6], 5).is_err());
        assert!(peek(&[0x80; 11], 10).is_err());
        assert!(peek(&[0x80, 0x80], 5).is_err());
        assert!(peek(&[], 5).is_err());
    }
}
