//! The record-set dissector against record sets built by kafka-protocol 0.15.1's own encoder
//! (magic 0, 1 and 2, every codec it offers for each), plus hand-built variants the crate cannot
//! write (xerial snappy, Kafka's magic-0 LZ4 header checksum), broken CRCs, partial batches,
//! garbage, truncations and decompression bombs.
//!
//! Each dissection is checked for exact tiling: the leaves in the frame tile the record set's
//! range with no gap or overlap, the leaves in each decompressed buffer tile that buffer, and
//! every group spans exactly its children in the same buffer.

use std::io::{Read, Write};

use bytes::{Bytes, BytesMut};
use chronik_tui::protocol::records::{dissect_record_set, MAX_DECOMPRESSED_BYTES};
use chronik_tui::protocol::{Field, Value};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_TIMESTAMP,
};
use proptest::prelude::*;

/// Bytes put before and after the record set in the "frame", so spans are checked to be
/// absolute and the dissector to stay inside its range.
const BEFORE: usize = 7;
const AFTER: usize = 5;

/// kafka-protocol's legacy encoder writes 0 as every message's offset. The tests patch the
/// offsets of top-level messages (not covered by the CRC) to the records' offsets; messages
/// inside a compressed wrapper keep the offset the encoder wrote.
const LEGACY_ENCODER_OFFSET: i64 = 0;

struct Dissected {
    frame: Vec<u8>,
    /// The range of the frame the leaves must tile.
    range: (usize, usize),
    fields: Vec<Field>,
    buffers: Vec<Vec<u8>>,
}

fn dissect(set: &[u8]) -> Dissected {
    let mut frame = vec![0xAA; BEFORE];
    frame.extend_from_slice(set);
    frame.extend_from_slice(&[0xBB; AFTER]);
    let mut buffers = Vec::new();
    let mut fields = Vec::new();
    dissect_record_set(
        &frame,
        BEFORE,
        BEFORE + set.len(),
        0,
        &mut buffers,
        &mut fields,
    );
    Dissected {
        range: (BEFORE, BEFORE + set.len()),
        frame,
        fields,
        buffers,
    }
}

impl Dissected {
    fn buffer(&self, id: u16) -> &[u8] {
        if id == 0 {
            &self.frame
        } else {
            &self.buffers[id as usize - 1]
        }
    }

    fn bytes(&self, f: &Field) -> Option<Vec<u8>> {
        match f.value {
            Value::Bytes { start, len } => {
                Some(self.buffer(f.buffer)[start as usize..(start + len) as usize].to_vec())
            }
            Value::Null => None,
            ref v => panic!("{} holds {v:?}, not bytes", f.name()),
        }
    }

    fn all(&self) -> Vec<&Field> {
        let mut out = Vec::new();
        for f in &self.fields {
            f.walk(0, &mut |f, _| out.push(f));
        }
        out
    }

    fn named(&self, name: &str) -> Vec<&Field> {
        self.all()
            .into_iter()
            .filter(|f| f.name() == name)
            .collect()
    }

    /// Checks tiling in every buffer and that groups span their children.
    fn check_tiling(&self) -> Result<(), String> {
        let mut leaves: Vec<Vec<&Field>> = vec![Vec::new(); self.buffers.len() + 1];
        for f in self.all() {
            let b = f.buffer as usize;
            if b > self.buffers.len() {
                return Err(format!(
                    "{} points into buffer {b}, which is not there",
                    f.name()
                ));
            }
            let buf_len = self.buffer(f.buffer).len();
            if (f.offset + f.len) as usize > buf_len {
                return Err(format!("{} ends past its buffer {b}", f.name()));
            }
            if let Value::Bytes { start, len } = f.value {
                if start < f.offset || start + len > f.offset + f.len {
                    return Err(format!("{}: bytes value outside its span", f.name()));
                }
            }
            let same: Vec<&Field> = f.children.iter().filter(|c| c.buffer == f.buffer).collect();
            if same.is_empty() {
                leaves[b].push(f);
            } else {
                let first = same[0].offset;
                let last = same[same.len() - 1];
                if first != f.offset || last.offset + last.len != f.offset + f.len {
                    return Err(format!(
                        "group {} spans {}+{} but its children {}..{}",
                        f.name(),
                        f.offset,
                        f.len,
                        first,
                        last.offset + last.len
                    ));
                }
            }
        }
        for (b, list) in leaves.iter().enumerate() {
            let (mut pos, end) = if b == 0 {
                (self.range.0 as u32, self.range.1 as u32)
            } else {
                (0, self.buffers[b - 1].len() as u32)
            };
            if b > 0 && list.is_empty() {
                return Err(format!("buffer {b} has no fields"));
            }
            for leaf in list {
                if leaf.offset != pos {
                    return Err(format!(
                        "buffer {b}: leaf {} at {} but the previous one ended at {pos}",
                        leaf.name(),
                        leaf.offset
                    ));
                }
                pos += leaf.len;
            }
            if pos != end {
                return Err(format!("buffer {b}: leaves end at {pos}, not {end}"));
            }
        }
        Ok(())
    }

    /// Notes that say something went wrong, and leaves for bytes that were not decoded.
    fn problems(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter_map(|f| {
                let bad_leaf = matches!(f.name(), "record_set.undecoded" | "record_set.partial");
                let bad_note = f.note.as_deref().is_some_and(|n| {
                    [
                        "mismatch",
                        "failed",
                        "cap",
                        "counts",
                        "not decompressed",
                        "after",
                    ]
                    .iter()
                    .any(|w| n.contains(w))
                });
                (bad_leaf || bad_note).then(|| format!("{}: {:?}", f.name(), f.note))
            })
            .collect()
    }

    /// Every record or message, flattened, as the dissector decoded it.
    fn records(&self) -> Vec<Got> {
        let mut out = Vec::new();
        for f in &self.fields {
            self.visit(f, &mut out);
        }
        out
    }

    fn visit(&self, f: &Field, out: &mut Vec<Got>) {
        match f.name() {
            "record_batch" => self.batch_records(f, out),
            "message" => self.messages(f, out),
            _ => f.children.iter().for_each(|c| self.visit(c, out)),
        }
    }

    fn batch_records(&self, batch: &Field, out: &mut Vec<Got>) {
        let base_offset = int(batch, "record_batch.base_offset");
        let base_timestamp = int(batch, "record_batch.base_timestamp");
        let mut recs: Vec<&Field> = Vec::new();
        for c in &batch.children {
            match c.name() {
                "record" => recs.push(c),
                "record_batch.decompressed" => {
                    recs.extend(c.children.iter().filter(|r| r.name() == "record"))
                }
                _ => {}
            }
        }
        for r in recs {
            let headers = child(r, "record.headers")
                .map(|h| {
                    h.children
                        .iter()
                        .filter(|x| x.name() == "record.header")
                        .map(|x| {
                            let key = match &child(x, "record.header.key").expect("key").value {
                                Value::Str(s) => s.clone(),
                                v => panic!("header key {v:?}"),
                            };
                            (
                                key,
                                self.bytes(child(x, "record.header.value").expect("value")),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Got {
                offset: base_offset + int(r, "record.offset_delta"),
                timestamp: base_timestamp + int(r, "record.timestamp_delta"),
                key: self.bytes(child(r, "record.key").expect("key")),
                value: self.bytes(child(r, "record.value").expect("value")),
                headers,
            });
        }
    }

    fn messages(&self, m: &Field, out: &mut Vec<Got>) {
        if let Some(inner) = child(m, "message.decompressed") {
            for c in inner.children.iter().filter(|c| c.name() == "message") {
                self.messages(c, out);
            }
            return;
        }
        out.push(Got {
            offset: int(m, "message.offset"),
            timestamp: child(m, "message.timestamp")
                .and_then(Field::as_int)
                .unwrap_or(NO_TIMESTAMP),
            key: self.bytes(child(m, "message.key").expect("key")),
            value: self.bytes(child(m, "message.value").expect("value")),
            headers: Vec::new(),
        });
    }
}

fn child<'a>(f: &'a Field, name: &str) -> Option<&'a Field> {
    f.children.iter().find(|c| c.name() == name)
}

fn int(f: &Field, name: &str) -> i64 {
    child(f, name)
        .and_then(Field::as_int)
        .unwrap_or_else(|| panic!("{} has no integer {name}", f.name()))
}

#[derive(Debug, Clone, PartialEq)]
struct Got {
    offset: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// xorshift64*: deterministic test data from a seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, max: u64) -> Bytes {
        let n = self.below(max + 1) as usize;
        (0..n)
            .map(|_| self.next() as u8)
            .collect::<Vec<u8>>()
            .into()
    }
}

/// `n` records; magic 2 records get headers, and the second half another producer id when
/// `two_batches` (the encoder then writes two batches).
fn make_records(seed: u64, n: usize, version: i8, two_batches: bool) -> Vec<Record> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let base_offset = rng.below(1 << 40) as i64;
    let base_ts = 1_700_000_000_000 + rng.below(1 << 30) as i64;
    (0..n)
        .map(|i| {
            let mut headers = kafka_protocol::indexmap::IndexMap::new();
            if version == 2 {
                for j in 0..rng.below(4) {
                    let value = if rng.below(3) == 0 {
                        None
                    } else {
                        Some(rng.bytes(40))
                    };
                    headers.insert(
                        StrBytes::from_string(format!("h{j}-{}", rng.below(1000))),
                        value,
                    );
                }
            }
            let big = rng.below(8) == 0;
            Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 3,
                producer_id: if two_batches && i >= n / 2 {
                    2000
                } else {
                    1000
                },
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: base_offset + i as i64,
                sequence: i as i32,
                timestamp: base_ts + rng.below(100_000) as i64,
                key: (rng.below(4) != 0).then(|| rng.bytes(24)),
                value: (rng.below(5) != 0).then(|| rng.bytes(if big { 3000 } else { 200 })),
                headers,
            }
        })
        .collect()
}

fn encode(records: &[Record], version: i8, compression: Compression) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version,
            compression,
        },
    )
    .expect("kafka-protocol encodes");
    let mut set = buf.to_vec();
    if version < 2 {
        // Give top-level messages real offsets: one per record, or the last one for a wrapper.
        let offsets: Vec<i64> = if compression == Compression::None {
            records.iter().map(|r| r.offset).collect()
        } else {
            vec![records.last().expect("records").offset]
        };
        let mut pos = 0;
        for off in offsets {
            set[pos..pos + 8].copy_from_slice(&off.to_be_bytes());
            let size = i32::from_be_bytes(set[pos + 8..pos + 12].try_into().unwrap());
            pos += 12 + size as usize;
        }
        assert_eq!(pos, set.len());
    }
    set
}

fn expected(records: &[Record], version: i8, compression: Compression) -> Vec<Got> {
    records
        .iter()
        .map(|r| Got {
            offset: if version < 2 && compression != Compression::None {
                LEGACY_ENCODER_OFFSET
            } else {
                r.offset
            },
            timestamp: if version == 0 {
                NO_TIMESTAMP
            } else {
                r.timestamp
            },
            key: r.key.as_ref().map(|b| b.to_vec()),
            value: r.value.as_ref().map(|b| b.to_vec()),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.as_ref().map(|b| b.to_vec())))
                .collect(),
        })
        .collect()
}

/// Every (magic, codec) pair kafka-protocol 0.15.1 can encode: magic 0 has gzip and snappy,
/// magic 1 adds lz4, magic 2 adds zstd.
fn cases() -> Vec<(i8, Compression)> {
    use Compression::*;
    let mut v = Vec::new();
    for c in [None, Gzip, Snappy, Lz4, Zstd] {
        v.push((2, c));
    }
    for c in [None, Gzip, Snappy, Lz4] {
        v.push((1, c));
    }
    for c in [None, Gzip, Snappy] {
        v.push((0, c));
    }
    v
}

#[test]
fn every_magic_and_codec_decodes_to_what_was_encoded() {
    for (version, codec) in cases() {
        for seed in 1..=5u64 {
            let n = 1 + (seed as usize * 13) % 60;
            let two = version == 2 && seed % 2 == 0;
            let recs = make_records(seed, n, version, two);
            let set = encode(&recs, version, codec);
            let d = dissect(&set);
            let what = format!("magic {version}, {codec:?}, seed {seed}");
            d.check_tiling().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(d.problems(), Vec::<String>::new(), "{what}");
            assert_eq!(d.records(), expected(&recs, version, codec), "{what}");
            let batches = d.named("record_batch").len();
            let top_messages = d.fields.iter().filter(|f| f.name() == "message").count();
            match (version, codec) {
                (2, _) => assert_eq!(batches, if two { 2 } else { 1 }, "{what}"),
                (_, Compression::None) => assert_eq!(top_messages, n, "{what}"),
                _ => assert_eq!(top_messages, 1, "{what}"),
            }
            // Compressed data went into buffers of its own, one per batch or wrapper.
            let expect_buffers = match codec {
                Compression::None => 0,
                _ if version == 2 => batches,
                _ => 1,
            };
            assert_eq!(d.buffers.len(), expect_buffers, "{what}");
            if codec != Compression::None {
                let attr_note = d
                    .all()
                    .into_iter()
                    .find(|f| matches!(f.name(), "record_batch.attributes" | "message.attributes"))
                    .and_then(|f| f.note.clone())
                    .unwrap_or_default();
                let name = format!("{codec:?}").to_lowercase();
                assert!(
                    attr_note.contains(&name),
                    "{what}: attributes note {attr_note:?}"
                );
            }
        }
    }
}

#[test]
fn batch_header_fields_match_the_encoder() {
    let recs = make_records(42, 10, 2, false);
    let set = encode(&recs, 2, Compression::None);
    let d = dissect(&set);
    let b = &d.named("record_batch")[0];
    let first = recs.iter().map(|r| r.offset).min().unwrap();
    let last = recs.iter().map(|r| r.offset).max().unwrap();
    assert_eq!(int(b, "record_batch.base_offset"), first);
    assert_eq!(int(b, "record_batch.last_offset_delta"), last - first);
    assert_eq!(int(b, "record_batch.records_count"), 10);
    assert_eq!(int(b, "record_batch.magic"), 2);
    assert_eq!(int(b, "record_batch.partition_leader_epoch"), 3);
    assert_eq!(int(b, "record_batch.producer_id"), 1000);
    assert_eq!(int(b, "record_batch.base_sequence"), 0);
    assert_eq!(
        int(b, "record_batch.max_timestamp"),
        recs.iter().map(|r| r.timestamp).max().unwrap()
    );
    assert_eq!(int(b, "record_batch.batch_length") as usize, set.len() - 12);
    let crc = child(b, "record_batch.crc").unwrap();
    assert_eq!(crc.note, None);
    assert_eq!(
        crc.as_int().unwrap() as u32,
        crc32c::crc32c(&set[21..]),
        "CRC value is the stored one"
    );
}

#[test]
fn crc_mismatch_is_noted_and_decoding_goes_on() {
    // Magic 2: change one byte of a record value (covered by the CRC-32C).
    let recs: Vec<Record> = make_records(7, 20, 2, false)
        .into_iter()
        .map(|mut r| {
            r.value = Some(Bytes::from_static(b"a value long enough to change"));
            r
        })
        .collect();
    let mut set = encode(&recs, 2, Compression::None);
    let clean = dissect(&set);
    let victim = clean.named("record.value")[5];
    let Value::Bytes { start, .. } = victim.value else {
        panic!("value is bytes")
    };
    let at = start as usize - BEFORE + 3;
    set[at] ^= 0x20;
    let d = dissect(&set);
    d.check_tiling().unwrap();
    let note = d.named("record_batch.crc")[0]
        .note
        .clone()
        .unwrap_or_default();
    assert!(note.starts_with("CRC mismatch: computed 0x"), "{note}");
    let mut want = expected(&recs, 2, Compression::None);
    let mut v = want[5].value.take().unwrap();
    v[3] ^= 0x20;
    want[5].value = Some(v);
    assert_eq!(d.records(), want);

    // Magic 1 message: CRC-32 (IEEE) over magic .. value.
    let recs = make_records(8, 4, 1, false);
    let mut set = encode(&recs, 1, Compression::None);
    let last = set.len() - 1;
    set[last] ^= 1; // the last byte of the last message's value (or its length, if empty)
    let d = dissect(&set);
    d.check_tiling().unwrap();
    let crcs = d.named("message.crc");
    assert_eq!(crcs.len(), 4);
    assert!(crcs[..3].iter().all(|c| c.note.is_none()));
    let note = crcs[3].note.clone().unwrap_or_default();
    assert!(note.starts_with("CRC mismatch: computed 0x"), "{note}");
}

#[test]
fn partial_trailing_batch_is_a_partial_leaf() {
    let recs = make_records(9, 30, 2, true);
    let set = encode(&recs, 2, Compression::Lz4);
    let full = dissect(&set);
    assert_eq!(full.named("record_batch").len(), 2);
    let first_end = {
        let b = full.named("record_batch")[0];
        (b.offset + b.len) as usize - BEFORE
    };
    for cut in [first_end + 1, first_end + 16, first_end + 61, set.len() - 1] {
        let d = dissect(&set[..cut]);
        d.check_tiling()
            .unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        assert_eq!(d.named("record_batch").len(), 1, "cut {cut}");
        let top: Vec<&str> = d.fields.iter().map(|f| f.name()).collect();
        assert_eq!(top, ["record_batch", "record_set.partial"], "cut {cut}");
        let p = &d.fields[1];
        assert_eq!(p.offset as usize, BEFORE + first_end);
        assert_eq!(p.len as usize, cut - first_end);
        assert!(p.note.as_deref().unwrap_or("").contains("incomplete"));
        let first_half = &expected(&recs, 2, Compression::Lz4)[..15];
        assert_eq!(d.records(), first_half, "cut {cut}");
    }
}

#[test]
fn control_markers_and_count_mismatches_are_noted() {
    // A transaction's COMMIT marker: a control batch whose record key is (version 0, type 1).
    let mut marker = make_records(30, 1, 2, false);
    marker[0].transactional = true;
    marker[0].control = true;
    marker[0].key = Some(Bytes::from_static(&[0, 0, 0, 1]));
    marker[0].value = Some(Bytes::from_static(&[0, 0, 0, 0, 0, 7]));
    let d = dissect(&encode(&marker, 2, Compression::None));
    d.check_tiling().unwrap();
    let attributes = d.named("record_batch.attributes")[0].note.clone().unwrap();
    assert!(
        attributes.contains("transactional") && attributes.contains("control batch"),
        "{attributes}"
    );
    let key = d.named("record.key")[0].note.clone().unwrap_or_default();
    assert!(key.contains("COMMIT"), "{key}");

    // The header counts more records than the batch holds, then fewer.
    let recs = make_records(31, 4, 2, false);
    let plain = encode(&recs, 2, Compression::None);
    for (count, note, decoded) in [
        (6i32, "header counts 6 records, 4 present", 4),
        (2, "after", 2),
    ] {
        let mut b = plain.clone();
        b[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let d = dissect(&b);
        d.check_tiling().unwrap();
        assert_eq!(d.named("record_batch.crc")[0].note, None);
        assert_eq!(
            d.records(),
            expected(&recs, 2, Compression::None)[..decoded]
        );
        let notes: Vec<String> = d.all().iter().filter_map(|f| f.note.clone()).collect();
        assert!(
            notes.iter().any(|n| n.contains(note)),
            "count {count}: {notes:?}"
        );
    }
}

/// Builds a magic-2 batch from an uncompressed one: new attributes and records area, with the
/// length and CRC fixed.
fn rebuild_batch(uncompressed: &[u8], codec: i16, area: &[u8]) -> Vec<u8> {
    let mut b = uncompressed[..61].to_vec();
    b[21..23].copy_from_slice(&codec.to_be_bytes());
    b.extend_from_slice(area);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A legacy message with the given attributes and value (null key), CRC filled in.
fn legacy_message(magic: i8, attributes: i8, offset: i64, value: &[u8]) -> Vec<u8> {
    let mut m = offset.to_be_bytes().to_vec();
    m.extend_from_slice(&[0; 8]); // size, crc
    m.push(magic as u8);
    m.push(attributes as u8);
    if magic >= 1 {
        m.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    }
    m.extend_from_slice(&(-1i32).to_be_bytes());
    m.extend_from_slice(&(value.len() as i32).to_be_bytes());
    m.extend_from_slice(value);
    let size = (m.len() - 12) as i32;
    m[8..12].copy_from_slice(&size.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&m[16..]);
    m[12..16].copy_from_slice(&crc.sum().to_be_bytes());
    m
}

/// Snappy in xerial framing, in chunks of `chunk` bytes, as Kafka's Java client writes it.
fn xerial(data: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = vec![0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    for c in data.chunks(chunk) {
        let block = snap::raw::Encoder::new().compress_vec(c).unwrap();
        out.extend_from_slice(&(block.len() as i32).to_be_bytes());
        out.extend_from_slice(&block);
    }
    out
}

#[test]
fn snappy_in_xerial_and_raw_framing() {
    let recs = make_records(11, 40, 2, false);
    let plain = encode(&recs, 2, Compression::None);
    let want = expected(&recs, 2, Compression::None);
    let area = &plain[61..];
    let raw_block = snap::raw::Encoder::new().compress_vec(area).unwrap();
    for (form, compressed) in [
        ("xerial, 3 chunks", xerial(area, area.len() / 3 + 1)),
        ("xerial, 1 chunk", xerial(area, area.len())),
        ("raw", raw_block),
    ] {
        let set = rebuild_batch(&plain, 2, &compressed);
        let d = dissect(&set);
        d.check_tiling().unwrap_or_else(|e| panic!("{form}: {e}"));
        assert_eq!(d.problems(), Vec::<String>::new(), "{form}");
        assert_eq!(d.records(), want, "{form}");
        assert_eq!(d.buffers, vec![area.to_vec()], "{form}");
        let note = d.named("record_batch.compressed")[0]
            .note
            .clone()
            .unwrap_or_default();
        assert!(
            note.contains(form.split(',').next().unwrap()),
            "{form}: {note}"
        );
    }

    // A magic-1 wrapper whose value is xerial snappy, as the Java client wrote before 0.11.
    let recs = make_records(12, 6, 1, false);
    let inner = encode(&recs, 1, Compression::None);
    let set = legacy_message(1, 2, 99, &xerial(&inner, 100));
    let d = dissect(&set);
    d.check_tiling().unwrap();
    assert_eq!(d.problems(), Vec::<String>::new());
    let got = d.records();
    assert_eq!(got.len(), 6);
    let want = expected(&recs, 1, Compression::None);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            (&g.key, &g.value, g.timestamp),
            (&w.key, &w.value, w.timestamp)
        );
    }
}

#[test]
fn lz4_with_kafkas_magic0_header_checksum() {
    let recs = make_records(13, 5, 0, false);
    let inner = encode(&recs, 0, Compression::None);
    let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
    enc.write_all(&inner).unwrap();
    let good = enc.finish().unwrap();
    // The header checksum byte follows FLG and BD (no content size, no dictionary id here).
    assert_eq!(good[4] & 0x09, 0);
    let hc_at = 6;
    let broken_hc = (twox_hash::XxHash32::oneshot(0, &good[..hc_at]) >> 8) as u8;
    assert_ne!(broken_hc, good[hc_at]);
    let mut broken = good.clone();
    broken[hc_at] = broken_hc;
    let mut garbled = good.clone();
    garbled[hc_at] = good[hc_at] ^ broken_hc ^ 0x5a;

    for (what, data, note_has) in [
        ("standard", &good, None),
        ("kafka magic-0", &broken, Some("quirk")),
        ("wrong checksum", &garbled, Some("mismatch")),
    ] {
        let set = legacy_message(0, 3, 4, data);
        let d = dissect(&set);
        d.check_tiling().unwrap_or_else(|e| panic!("{what}: {e}"));
        let got = d.records();
        // The inner set came from `encode` uncompressed, so its offsets are the records'.
        let want: Vec<Got> = expected(&recs, 0, Compression::None);
        assert_eq!(got, want, "{what}");
        let note = d.named("message.value")[0].note.clone();
        match note_has {
            None => assert_eq!(note, None, "{what}"),
            Some(w) => assert!(note.unwrap_or_default().contains(w), "{what}"),
        }
    }
}

#[test]
fn nested_compression_is_not_decompressed() {
    let recs = make_records(14, 3, 1, false);
    let inner_wrapper = encode(&recs, 1, Compression::Gzip);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&inner_wrapper).unwrap();
    let set = legacy_message(1, 1, 5, &gz.finish().unwrap());
    let d = dissect(&set);
    d.check_tiling().unwrap();
    assert_eq!(d.buffers.len(), 1, "only the outer level is decompressed");
    let values = d.named("message.value");
    assert_eq!(values.len(), 2);
    assert!(values[1]
        .note
        .as_deref()
        .unwrap_or("")
        .contains("not decompressed"));
}

#[test]
fn magic1_inner_offsets_are_resolved_to_absolute() {
    let recs = make_records(32, 6, 1, false);
    let mut inner = encode(&recs, 1, Compression::None);
    // Inner offsets relative to the first, as Kafka 0.10+ writes them.
    let mut pos = 0;
    for i in 0..recs.len() {
        inner[pos..pos + 8].copy_from_slice(&(i as i64).to_be_bytes());
        let size = i32::from_be_bytes(inner[pos + 8..pos + 12].try_into().unwrap());
        pos += 12 + size as usize;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&inner).unwrap();
    let last = recs.last().unwrap().offset;
    let d = dissect(&legacy_message(1, 1, last, &gz.finish().unwrap()));
    d.check_tiling().unwrap();
    let offsets = d.named("message.offset");
    assert_eq!(offsets.len(), 1 + recs.len());
    for (r, f) in recs.iter().zip(&offsets[1..]) {
        let note = f.note.clone().unwrap_or_default();
        assert_eq!(
            note,
            format!("relative offset; absolute offset {}", r.offset)
        );
    }
}

fn zeros(n: usize) -> impl Read {
    std::io::repeat(0).take(n as u64)
}

fn zstd_of_zeros(n: usize) -> Vec<u8> {
    zstd::stream::encode_all(zeros(n), 3).unwrap()
}

fn gzip_of_zeros(n: usize) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::copy(&mut zeros(n), &mut gz).unwrap();
    gz.finish().unwrap()
}

#[test]
fn decompression_bombs_are_capped() {
    let plain = encode(&make_records(15, 1, 2, false), 2, Compression::None);
    let over = MAX_DECOMPRESSED_BYTES + 1;
    for (what, codec, data) in [
        ("zstd", 4i16, zstd_of_zeros(over)),
        ("gzip", 1, gzip_of_zeros(over)),
    ] {
        assert!(data.len() < 1 << 20, "{what} bomb is small: {}", data.len());
        let set = rebuild_batch(&plain, codec, &data);
        let d = dissect(&set);
        d.check_tiling().unwrap();
        assert!(d.buffers.is_empty(), "{what}");
        assert!(d.named("record_batch.decompressed").is_empty(), "{what}");
        let note = d.named("record_batch.compressed")[0]
            .note
            .clone()
            .unwrap_or_default();
        assert!(note.contains("cap"), "{what}: {note}");
    }

    // The cap holds for a whole dissection: two partitions' record sets, each under the cap,
    // together over it.
    let part = MAX_DECOMPRESSED_BYTES / 2 + 1024;
    let set = rebuild_batch(&plain, 4, &zstd_of_zeros(part));
    let mut frame = set.clone();
    frame.extend_from_slice(&set);
    let mut buffers = Vec::new();
    let mut first = Vec::new();
    let mut second = Vec::new();
    dissect_record_set(&frame, 0, set.len(), 0, &mut buffers, &mut first);
    dissect_record_set(&frame, set.len(), frame.len(), 0, &mut buffers, &mut second);
    assert_eq!(buffers.len(), 1);
    assert_eq!(buffers[0].len(), part);
    let decompressed = first[0]
        .find("record_batch.decompressed")
        .expect("first decompressed");
    assert_eq!(decompressed.buffer, 1);
    assert!(second[0].find("record_batch.decompressed").is_none());
    let note = second[0]
        .find("record_batch.compressed")
        .and_then(|f| f.note.clone())
        .unwrap_or_default();
    assert!(note.contains("cap"), "{note}");

    // A raw snappy block that declares far more than its size could produce.
    let mut block = vec![0x80, 0x80, 0x80, 0x80, 0x04]; // varint 1 GiB
    block.extend_from_slice(&[0; 16]);
    let d = dissect(&rebuild_batch(&plain, 2, &block));
    d.check_tiling().unwrap();
    assert!(d.buffers.is_empty());
    let note = d.named("record_batch.compressed")[0]
        .note
        .clone()
        .unwrap_or_default();
    assert!(note.contains("snappy"), "{note}");
}

#[test]
fn many_records_are_decoded_quickly() {
    let recs = make_records(16, 5000, 2, false);
    let set = encode(&recs, 2, Compression::Zstd);
    let t = std::time::Instant::now();
    let d = dissect(&set);
    let took = t.elapsed();
    assert_eq!(d.records().len(), 5000);
    // Generous even for an unoptimised build on a shared 2-core machine.
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
}

/// Valid record sets of every kind, for the mutation tests.
fn samples() -> &'static [Vec<u8>] {
    static SAMPLES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SAMPLES.get_or_init(|| {
        cases()
            .into_iter()
            .enumerate()
            .map(|(i, (v, c))| encode(&make_records(100 + i as u64, 8, v, v == 2), v, c))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn garbage_never_panics_and_tiles(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let d = dissect(&data);
        d.check_tiling().map_err(TestCaseError::fail)?;
    }

    #[test]
    fn garbage_after_a_batch_header_tiles(tail in proptest::collection::vec(any::<u8>(), 0..400),
                                          codec in 0i16..8) {
        let plain = encode(&make_records(1, 1, 2, false), 2, Compression::None);
        let d = dissect(&rebuild_batch(&plain, codec, &tail));
        d.check_tiling().map_err(TestCaseError::fail)?;
    }

    #[test]
    fn truncated_and_mutated_sets_never_panic_and_tile(
        which in 0usize..12,
        cut in 0.0f64..=1.0,
        flips in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 0..6),
    ) {
        let samples = samples();
        let mut set = samples[which % samples.len()].clone();
        let keep = (set.len() as f64 * cut) as usize;
        set.truncate(keep);
        for (at, x) in flips {
            if !set.is_empty() {
                let i = (at * set.len() as f64) as usize % set.len();
                set[i] ^= x;
            }
        }
        let d = dissect(&set);
        d.check_tiling().map_err(TestCaseError::fail)?;
    }
}

/// Record sets inside real Produce request frames, through the whole dissector: the frame
/// tiles, each partition's records are the ones encoded, and `Dissection::buffer` finds the
/// decompressed buffers the records point into.
#[test]
fn produce_requests_carry_decoded_record_sets() {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, RequestHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, HeaderVersion};

    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    for version in [3i16, 8, 9, 11] {
        let parts: Vec<Vec<Record>> = (0..codecs.len())
            .map(|i| make_records(200 + i as u64, 3 + i * 5, 2, i % 2 == 1))
            .collect();
        let partition_data = parts
            .iter()
            .zip(codecs)
            .enumerate()
            .map(|(i, (recs, codec))| {
                PartitionProduceData::default()
                    .with_index(i as i32)
                    .with_records(Some(Bytes::from(encode(recs, 2, codec))))
            })
            .collect();
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("records-test")))
                .with_partition_data(partition_data)]);
        let header = RequestHeader::default()
            .with_request_api_key(0)
            .with_request_api_version(version)
            .with_correlation_id(17)
            .with_client_id(Some(StrBytes::from_static_str("rec-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, ProduceRequest::header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);

        let d = chronik_tui::protocol::dissect_request(&frame);
        assert_eq!(d.error, None, "Produce v{version}");
        // One buffer per compressed batch; odd partitions have two batches (two producers).
        let batches: usize = (0..codecs.len())
            .filter(|i| codecs[*i] != Compression::None)
            .map(|i| if i % 2 == 1 { 2 } else { 1 })
            .sum();
        assert_eq!(d.buffers.len(), batches, "Produce v{version}");
        for (id, buf) in d.buffers.iter().enumerate() {
            assert_eq!(d.buffer(&frame, id as u16 + 1), buf.as_slice());
        }
        let whole = Dissected {
            range: (0, frame.len()),
            frame: frame.clone(),
            fields: vec![d.root.clone()],
            buffers: d.buffers.clone(),
        };
        whole
            .check_tiling()
            .unwrap_or_else(|e| panic!("Produce v{version}: {e}"));
        assert_eq!(whole.problems(), Vec::<String>::new(), "Produce v{version}");
        let want: Vec<Got> = parts
            .iter()
            .flat_map(|recs| expected(recs, 2, Compression::None))
            .collect();
        assert_eq!(whole.records(), want, "Produce v{version}");
    }
}

use crate::common;

/// Real clients' record sets in the third-party captures (see ../shared/captures/third-party):
/// every record set decodes without a problem note, and Wireshark's Kafka dissector agrees with
/// us on the spans and values of keys, values, headers, CRCs, sizes and counts.
#[test]
fn real_captures_agree_with_wireshark() {
    use common::tshark;
    let Some(dir) = tshark::third_party_dir() else {
        return;
    };
    let mut compared = 0;
    let mut record_sets = 0;
    for (file, port) in [
        ("deepflow-00-produce-v2.pcap", 9092),
        ("deepflow-00-produce-v7-sw8.pcap", 36333),
        ("deepflow-00-produce-v9.pcap", 36333),
        ("ndpi-kafka.pcapng", 9092),
    ] {
        let pdus = tshark::pdus(&dir.join(file), port);
        for (p, d) in pdus.iter().zip(tshark::dissect_all(&pdus)) {
            let Some(d) = d else { continue };
            let mut ours: Vec<&Field> = Vec::new();
            d.root.walk(0, &mut |f, _| {
                if f.name().starts_with("record") || f.name().starts_with("message") {
                    ours.push(f)
                }
            });
            record_sets += ours
                .iter()
                .filter(|f| f.name() == "record_set.size")
                .count();
            for f in &ours {
                let bad = matches!(f.name(), "record_set.undecoded" | "record_set.partial")
                    || f.note.as_deref().is_some_and(|n| n.contains("mismatch"));
                assert!(
                    !bad,
                    "{file} frame {}: {} {:?}",
                    p.frame_no,
                    f.name(),
                    f.note
                );
            }
            let at = |name: &str, off: usize, len: usize| {
                ours.iter()
                    .find(|f| f.name() == name && f.offset as usize == off && f.len as usize == len)
            };
            for (name, off, len, shown) in &p.fields {
                let (off, len) = (*off, *len);
                let what = format!("{file} frame {}: tshark {name} {off}+{len}", p.frame_no);
                match name.as_str() {
                    // tshark's spans of keys and values are the data, without the length.
                    "kafka.message_key" | "kafka.message_value" | "kafka.header_value" => {
                        let found = ours.iter().find(|f| {
                            f.value
                                == Value::Bytes {
                                    start: off as u32,
                                    len: len as u32,
                                }
                        });
                        // tshark shows a null message key as a span of its own making.
                        if found.is_none()
                            && name == "kafka.message_key"
                            && ours
                                .iter()
                                .any(|f| f.name() == "message.key" && f.value == Value::Null)
                        {
                            continue;
                        }
                        assert!(
                            found.is_some(),
                            "{what}: no field of ours holds those bytes"
                        );
                    }
                    "kafka.header_key" => {
                        let found = ours.iter().find(|f| {
                            f.name() == "record.header.key"
                                && (f.offset + f.len) as usize == off + len
                                && matches!(&f.value, Value::Str(s) if s.len() == len
                                    && s.as_bytes() == &p.bytes[off..off + len])
                        });
                        assert!(found.is_some(), "{what}: no header key of ours there");
                    }
                    "kafka.batch_crc" | "kafka.message_crc" => {
                        let f = at("record_batch.crc", off, len)
                            .or_else(|| at("message.crc", off, len))
                            .unwrap_or_else(|| panic!("{what}: no CRC of ours there"));
                        let v = u32::from_str_radix(shown.trim_start_matches("0x"), 16).unwrap();
                        assert_eq!(f.as_int(), Some(v as i64), "{what}");
                    }
                    "kafka.message_size" | "kafka.batch_size" => {
                        let f = at("record_batch.batch_length", off, len)
                            .or_else(|| at("message.message_size", off, len))
                            .or_else(|| at("record_batch.records_count", off, len))
                            .unwrap_or_else(|| panic!("{what}: no size or count of ours there"));
                        assert_eq!(f.as_int().map(|v| v.to_string()), Some(shown.clone()));
                    }
                    "kafka.message_magic" => {
                        let f = at("record_batch.magic", off, len)
                            .or_else(|| at("message.magic", off, len))
                            .unwrap_or_else(|| panic!("{what}: no magic of ours there"));
                        assert_eq!(f.as_int().map(|v| v.to_string()), Some(shown.clone()));
                    }
                    _ => continue,
                }
                compared += 1;
            }
        }
    }
    assert!(
        record_sets >= 5,
        "only {record_sets} record sets in the captures"
    );
    assert!(
        compared >= 20,
        "only {compared} fields compared with tshark"
    );
}

fn whole(frame: Vec<u8>, d: chronik_tui::protocol::Dissection) -> Dissected {
    Dissected {
        range: (0, frame.len()),
        frame,
        fields: vec![d.root],
        buffers: d.buffers,
    }
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// librdkafka (kcat) producing through the broker in every codec it has (its snappy is a raw
/// block, its lz4 the frame format): the Produce requests and Fetch responses the broker
/// captured tile, and hold exactly the keys, values and headers kcat sent.
#[test]
fn kcat_batches_in_every_codec_decode() {
    let b = common::Broker::start(&["--json"]);
    let boot = b.bootstrap();
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    /// (codec, [(key, value)]) as kcat was given them.
    type Sent<'a> = Vec<(&'a str, Vec<(Vec<u8>, Vec<u8>)>)>;
    let mut sent: Sent = Vec::new();
    for codec in codecs {
        let topic = format!("records-{codec}");
        let msgs: Vec<(Vec<u8>, Vec<u8>)> = (0..40)
            .map(|i| {
                let value = format!("{codec}-{i}-{}", "abc".repeat(i % 9 * 20));
                (format!("k{i}").into_bytes(), value.into_bytes())
            })
            .collect();
        let input: String = msgs
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}:{}\n",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                )
            })
            .collect();
        let run = common::kcat;
        run(
            &[
                "-b", &boot, "-P", "-t", &topic, "-z", codec, "-K", ":", "-H", "rec=hdr", "-X",
                "acks=all",
            ],
            Some(&input),
        );
        let got = run(
            &[
                "-b",
                &boot,
                "-C",
                "-t",
                &topic,
                "-o",
                "beginning",
                "-e",
                "-q",
                "-f",
                "%s\n",
            ],
            None,
        );
        assert_eq!(got.lines().count(), msgs.len(), "{codec}: consumed back");
        sent.push((codec, msgs));
    }

    let mut produced: Vec<Got> = Vec::new();
    let mut fetched: Vec<Got> = Vec::new();
    let mut codecs_seen: Vec<String> = Vec::new();
    let mut exchanges = 0;
    while let Ok(line) = b.lines.recv_timeout(std::time::Duration::from_millis(500)) {
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        if v.get("kind").is_some() {
            continue; // a control reply or a client state change, not an exchange
        }
        let key = v["api_key"].as_i64().expect("api_key") as i16;
        let version = v["api_version"].as_i64().expect("api_version") as i16;
        if key != 0 && key != 1 {
            continue;
        }
        exchanges += 1;
        let req = from_hex(v["request"]["frame_hex"].as_str().expect("request"));
        let rd = chronik_tui::protocol::dissect_request(&req);
        assert_eq!(rd.error, None, "api {key} v{version} request");
        let rd = whole(req, rd);
        rd.check_tiling().unwrap();
        assert_eq!(rd.problems(), Vec::<String>::new(), "api {key} v{version}");
        if key == 0 {
            produced.extend(rd.records());
            codecs_seen.extend(
                rd.named("record_batch.attributes")
                    .iter()
                    .filter_map(|f| f.note.clone()),
            );
        }
        let Some(hex) = v["response"]["frame_hex"].as_str() else {
            continue;
        };
        let resp = from_hex(hex);
        let sd = chronik_tui::protocol::dissect_response(&resp, key, version);
        assert_eq!(sd.error, None, "api {key} v{version} response");
        let sd = whole(resp, sd);
        sd.check_tiling().unwrap();
        // A fetch response may end in a partial batch; nothing else may be amiss.
        let problems: Vec<String> = sd
            .problems()
            .into_iter()
            .filter(|p| !p.starts_with("record_set.partial"))
            .collect();
        assert_eq!(problems, Vec::<String>::new(), "api {key} v{version}");
        if key == 1 {
            fetched.extend(sd.records());
        }
    }
    assert!(exchanges >= 10, "only {exchanges} produce/fetch exchanges");
    for (codec, msgs) in &sent {
        assert!(
            codecs_seen
                .iter()
                .any(|n| n.contains(&format!("compression: {codec}"))),
            "no {codec} batch in the produce requests: {codecs_seen:?}"
        );
        for (k, v) in msgs {
            let matches = |g: &Got| {
                g.key.as_deref() == Some(k)
                    && g.value.as_deref() == Some(v)
                    && g.headers == [("rec".to_string(), Some(b"hdr".to_vec()))]
            };
            assert!(
                produced.iter().any(matches),
                "{codec}: {} not in a produce request",
                String::from_utf8_lossy(v)
            );
            assert!(
                fetched.iter().any(matches),
                "{codec}: {} not in a fetch response",
                String::from_utf8_lossy(v)
            );
        }
    }
}

/// A kafka-python producer: 30 records to one topic with a codec, optionally pinned to an old
/// protocol version (below 0.10: magic 0 message sets, below 0.11: magic 1).
const KAFKA_PYTHON_PRODUCER: &str = r#"
import sys
from kafka import KafkaProducer
boot, topic, codec, ver = sys.argv[1:5]
kw = dict(bootstrap_servers=boot, acks='all', linger_ms=100, batch_size=1 << 20,
          compression_type=None if codec == 'none' else codec)
api = tuple(int(x) for x in ver.split('.')) if ver != 'auto' else None
if api:
    kw['api_version'] = api
p = KafkaProducer(**kw)
for i in range(30):
    value = ('%s-%d-' % (topic, i) + 'xyz' * (i % 7 * 30)).encode()
    headers = [('h', b'v')] if api is None else None
    p.send(topic, key=b'k%d' % i, value=value, headers=headers)
p.flush()
p.close()
"#;

/// kafka-python (2.0.2 and 3.x, with python-snappy, lz4 and zstandard) through the broker:
/// xerial-framed snappy in magic 0, 1 and 2, and the other codecs, as a real client writes
/// them, decode to the records it sent. (kafka-python writes magic-0 LZ4 only with the
/// `xxhash` module, which the test venvs lack; `lz4_with_kafkas_magic0_header_checksum` builds
/// that format by hand.)
#[test]
fn kafka_python_batches_decode() {
    let python = |venv: &str| {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("target/{venv}/bin/python"));
        assert!(
            p.exists(),
            "{} missing (scripts/test.sh creates it)",
            p.display()
        );
        p
    };
    let b = common::Broker::start(&["--json"]);
    let boot = b.bootstrap();
    // (venv, api version, codec, expected magic, a note the compressed data must carry)
    let runs = [
        ("venv-kp2", "0.9", "gzip", 0, None),
        ("venv-kp2", "0.9", "snappy", 0, Some("xerial")),
        ("venv-kp2", "0.10", "snappy", 1, Some("xerial")),
        ("venv-kp2", "0.10", "lz4", 1, None),
        ("venv-kp2", "auto", "snappy", 2, Some("xerial")),
        ("venv", "auto", "lz4", 2, None),
        ("venv", "auto", "zstd", 2, None),
        ("venv", "auto", "gzip", 2, None),
    ];
    for (i, (venv, ver, codec, ..)) in runs.iter().enumerate() {
        let topic = format!("kp-{i}-{codec}");
        // A producer whose sender thread fails would wait in flush() forever.
        let out = std::process::Command::new("timeout")
            .arg("60")
            .arg(python(venv))
            .args(["-c", KAFKA_PYTHON_PRODUCER, &boot, &topic, codec, ver])
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "kafka-python ({venv}, {ver}, {codec}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Produce requests, each with the topics it writes to.
    let mut requests: Vec<(Vec<String>, Dissected)> = Vec::new();
    while let Ok(line) = b.lines.recv_timeout(std::time::Duration::from_millis(500)) {
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        if v["api_key"].as_i64() != Some(0) {
            continue;
        }
        let req = from_hex(v["request"]["frame_hex"].as_str().expect("request"));
        let d = chronik_tui::protocol::dissect_request(&req);
        assert_eq!(d.error, None);
        let d = whole(req, d);
        d.check_tiling().unwrap();
        let topics = d
            .named("produce.request.topic_data.name")
            .iter()
            .filter_map(|f| match &f.value {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        requests.push((topics, d));
    }
    for (i, (venv, ver, codec, magic, note)) in runs.iter().enumerate() {
        let topic = format!("kp-{i}-{codec}");
        let what = format!("{venv} api {ver} {codec}");
        let mine: Vec<&Dissected> = requests
            .iter()
            .filter(|(t, _)| t.contains(&topic))
            .map(|(_, d)| d)
            .collect();
        assert!(!mine.is_empty(), "{what}: no produce request");
        let mut got: Vec<Got> = Vec::new();
        for d in &mine {
            assert_eq!(d.problems(), Vec::<String>::new(), "{what}");
            let magics: Vec<i64> = d
                .named("record_batch.magic")
                .iter()
                .chain(&d.named("message.magic"))
                .filter_map(|f| f.as_int())
                .collect();
            assert!(
                magics.iter().all(|m| *m == *magic),
                "{what}: magics {magics:?}"
            );
            let notes: Vec<String> = d
                .named("record_batch.compressed")
                .iter()
                .chain(&d.named("message.value"))
                .filter(|f| f.buffer == 0)
                .filter_map(|f| f.note.clone())
                .collect();
            if let Some(n) = note {
                assert!(
                    notes.iter().any(|x| x.contains(n)),
                    "{what}: notes {notes:?}"
                );
            }
            assert!(!d.buffers.is_empty(), "{what}: nothing decompressed");
            got.extend(d.records());
        }
        for i in 0..30 {
            let value = format!("{topic}-{i}-{}", "xyz".repeat(i % 7 * 30)).into_bytes();
            let g = got
                .iter()
                .find(|g| g.value.as_deref() == Some(&value[..]))
                .unwrap_or_else(|| panic!("{what}: record {i} not decoded"));
            assert_eq!(g.key.as_deref(), Some(format!("k{i}").as_bytes()), "{what}");
            let headers = if *magic == 2 {
                vec![("h".to_string(), Some(b"v".to_vec()))]
            } else {
                vec![]
            };
            assert_eq!(g.headers, headers, "{what}");
        }
    }
}
