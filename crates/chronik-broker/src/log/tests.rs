//! Partition log tests: real record batches and legacy messages through append, read,
//! recovery from segment files and DeleteRecords.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use super::legacy::inflate_legacy;
use super::store::{segment_name, START_CHECKPOINT};
use super::*;

/// A magic-2 batch with `n` records, with a valid CRC.
pub(crate) fn batch(n: i32, producer: Option<(i64, i16, i32)>, ts: i64) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..n {
        // length, attributes, ts delta, offset delta, key len -1, value len 1, value, headers 0
        let body = [0u8, 0, (i as u8) << 1, 1, 2, b'x', 0];
        records.push((body.len() as u8) << 1);
        records.extend_from_slice(&body);
    }
    let mut b = vec![0u8; batch::BATCH_HEADER_LEN];
    let len = (batch::BATCH_HEADER_LEN - 12 + records.len()) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(n - 1).to_be_bytes());
    b[27..35].copy_from_slice(&ts.to_be_bytes());
    b[35..43].copy_from_slice(&ts.to_be_bytes());
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    b[57..61].copy_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&records);
    let crc = batch::batch_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn assigns_offsets_and_reads_back() {
    let mut log = PartitionLog::in_memory();
    let a = log.append(&batch(3, None, 100), None).unwrap();
    let b = log.append(&batch(2, None, 200), None).unwrap();
    assert_eq!((a.base_offset, b.base_offset, log.end_offset()), (0, 3, 5));
    let got = log.read(4, 1 << 20, true);
    assert_eq!(got.len(), 1);
    assert_eq!(BatchHeader::parse(&got[0]).unwrap().base_offset, 3);
    assert_eq!(log.offset_for_timestamp(150), Some((3, 200)));
    assert_eq!(log.offset_for_timestamp(201), None);
    let mut bad = batch(1, None, 1);
    bad[65] ^= 1;
    assert_eq!(
        log.append(&bad, None).unwrap_err().code,
        errors::CORRUPT_MESSAGE
    );
}

#[test]
fn idempotent_duplicates_gaps_and_old_epochs() {
    let mut log = PartitionLog::in_memory();
    let first = log.append(&batch(2, Some((7, 0, 0)), 1), None).unwrap();
    let dup = log.append(&batch(2, Some((7, 0, 0)), 1), None).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, first.base_offset);
    assert_eq!(log.end_offset(), 2, "duplicate not stored twice");
    let gap = log.append(&batch(1, Some((7, 0, 5)), 1), None).unwrap_err();
    assert_eq!(gap.code, errors::OUT_OF_ORDER_SEQUENCE_NUMBER);
    log.append(&batch(1, Some((7, 1, 0)), 1), None).unwrap();
    let old = log.append(&batch(1, Some((7, 0, 2)), 1), None).unwrap_err();
    assert_eq!(old.code, errors::INVALID_PRODUCER_EPOCH);
}

/// A legacy message (magic 0 or 1) with a value, as a producer writes it.
fn legacy(magic: u8, attributes: u8, offset: i64, value: &[u8]) -> Vec<u8> {
    let mut body = vec![magic, attributes];
    if magic == 1 {
        body.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    }
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&(value.len() as i32).to_be_bytes());
    body.extend_from_slice(value);
    let mut crc = flate2::Crc::new();
    crc.update(&body);
    let mut m = offset.to_be_bytes().to_vec();
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(&crc.sum().to_be_bytes());
    m.extend_from_slice(&body);
    m
}

fn inner_offsets(log: &PartitionLog, from: i64) -> Vec<i64> {
    let mut out = Vec::new();
    for e in log.read(from, usize::MAX, true) {
        let value_at = 22;
        let len = i32::from_be_bytes(e[value_at..value_at + 4].try_into().unwrap()) as usize;
        let inner = inflate_legacy(e[17] & 7, &e[value_at + 4..value_at + 4 + len]).unwrap();
        for x in batch::split(&inner) {
            if let Entry::Legacy { start, .. } = x {
                out.push(i64::from_be_bytes(
                    inner[start..start + 8].try_into().unwrap(),
                ));
            }
        }
    }
    out
}

#[test]
fn magic0_compressed_wrappers_are_renumbered() {
    let mut log = PartitionLog::in_memory();
    for round in 0..2 {
        for codec in [1u8, 2] {
            let inner: Vec<u8> = (0..3)
                .flat_map(|i| legacy(0, 0, i, format!("v{i}").as_bytes()))
                .collect();
            let packed = if codec == 1 {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(&inner).unwrap();
                enc.finish().unwrap()
            } else {
                snap::raw::Encoder::new().compress_vec(&inner).unwrap()
            };
            let wrapper = legacy(0, codec, 0, &packed);
            let base = log.end_offset();
            let a = log.append(&wrapper, None).unwrap();
            assert_eq!(a.base_offset, base, "round {round} codec {codec}");
            assert_eq!(log.end_offset(), base + 3);
            assert_eq!(inner_offsets(&log, base), vec![base, base + 1, base + 2]);
        }
    }
    // A magic-1 wrapper keeps relative inner offsets; the wrapper carries the last one.
    let inner: Vec<u8> = (0..4).flat_map(|i| legacy(1, 0, i, b"m1")).collect();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&inner).unwrap();
    let wrapper = legacy(1, 1, 0, &enc.finish().unwrap());
    let base = log.end_offset();
    log.append(&wrapper, None).unwrap();
    assert_eq!(log.end_offset(), base + 4);
    let stored = log.read(base, usize::MAX, true);
    assert_eq!(
        i64::from_be_bytes(stored[0][0..8].try_into().unwrap()),
        base + 3
    );
}

#[test]
fn recovers_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(segment_name(0));
    {
        let (mut log, rec) = PartitionLog::open_dir(dir.path(), 1 << 30).unwrap();
        assert_eq!(rec.entries, 0);
        log.append(&batch(2, None, 5), None).unwrap();
        log.append(&batch(3, None, 6), None).unwrap();
    }
    let good_len = std::fs::metadata(&path).unwrap().len();
    // A torn write: a frame header claiming more bytes than follow.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[0, 0, 1, 0, 9, 9, 9, 9, 0, 0, 0]).unwrap();
    drop(f);
    let (mut log, rec) = PartitionLog::open_dir(dir.path(), 1 << 30).unwrap();
    assert_eq!(rec.entries, 2);
    assert_eq!(rec.truncated_bytes, 11);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
    assert_eq!(log.end_offset(), 5);
    assert_eq!(log.append(&batch(1, None, 7), None).unwrap().base_offset, 5);
    drop(log);
    let (log, rec) = PartitionLog::open_dir(dir.path(), 1 << 30).unwrap();
    assert_eq!(
        (rec.entries, rec.truncated_bytes, log.end_offset()),
        (3, 0, 6)
    );
}

#[test]
fn delete_records_moves_the_start_and_drops_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = PartitionLog::open_dir(dir.path(), 250).unwrap();
        for i in 0..7 {
            log.append(&batch(1, None, i), None).unwrap();
        }
        assert_eq!(
            log.delete_records(99).unwrap_err().code,
            errors::OFFSET_OUT_OF_RANGE
        );
        assert_eq!(log.delete_records(5).unwrap(), 5);
        assert_eq!(log.start_offset(), 5);
        assert_eq!(
            log.read(0, usize::MAX, true).len(),
            2,
            "offsets 5 and 6 remain"
        );
        // Segments 0 and 2 hold only deleted records; 4 still holds offset 5.
        assert_eq!(
            segment_files(dir.path()),
            vec![
                segment_name(4),
                segment_name(6),
                START_CHECKPOINT.to_string()
            ]
        );
    }
    let (mut log, rec) = PartitionLog::open_dir(dir.path(), 250).unwrap();
    assert_eq!((log.start_offset(), log.end_offset()), (5, 7));
    assert_eq!(rec.truncated_bytes, 0);
    assert_eq!(log.append(&batch(1, None, 9), None).unwrap().base_offset, 7);
    assert_eq!(log.delete_records(-1).unwrap(), 8);
    assert!(log.read(0, usize::MAX, true).is_empty());
    drop(log);
    let (log, _) = PartitionLog::open_dir(dir.path(), 250).unwrap();
    assert_eq!((log.start_offset(), log.end_offset()), (8, 8));
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn rolls_segments_and_recovers_across_them() {
    let dir = tempfile::tempdir().unwrap();
    // Each entry frame is 32 + 69 bytes: two fit in 250, the third starts a new segment.
    {
        let (mut log, _) = PartitionLog::open_dir(dir.path(), 250).unwrap();
        for i in 0..7 {
            assert_eq!(log.append(&batch(1, None, i), None).unwrap().base_offset, i);
        }
    }
    assert_eq!(
        segment_files(dir.path()),
        vec![
            segment_name(0),
            segment_name(2),
            segment_name(4),
            segment_name(6)
        ]
    );
    let (mut log, rec) = PartitionLog::open_dir(dir.path(), 250).unwrap();
    assert_eq!((rec.entries, rec.truncated_bytes), (7, 0));
    assert_eq!(log.read(0, usize::MAX, true).len(), 7);
    log.append(&batch(1, None, 9), None).unwrap();
    assert_eq!(log.end_offset(), 8);
    drop(log);
    // Damage the second entry of the middle segment: the log ends before it and the later
    // segments go.
    let middle = dir.path().join(segment_name(2));
    let mut data = std::fs::read(&middle).unwrap();
    let at = data.len() - 10;
    data[at] ^= 0xff;
    std::fs::write(&middle, &data).unwrap();
    let (log, rec) = PartitionLog::open_dir(dir.path(), 250).unwrap();
    assert_eq!((rec.entries, log.end_offset()), (3, 3));
    assert!(rec.truncated_bytes > 0);
    assert_eq!(
        segment_files(dir.path()),
        vec![segment_name(0), segment_name(2)]
    );
}
