//! A frame's size is the sender's choice; the tree the dissector keeps is not. Huge arrays and
//! record sets are still decoded to the last byte (so errors are found), but only a bounded
//! number of elements and records become fields, and the leaves still tile the frame.

use chronik_tui::protocol::batch::{batch_crc, BATCH_HEADER_LEN};
use chronik_tui::protocol::records::MAX_ENTRIES_PER_DISSECTION;
use chronik_tui::protocol::{dissect_request, dissect_request_with, Dissection, Limits};

fn frame(api_key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&api_key.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&1i32.to_be_bytes());
    h.extend_from_slice(&(-1i16).to_be_bytes());
    h.extend_from_slice(body);
    let mut f = (h.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&h);
    f
}

fn count_fields(d: &Dissection) -> usize {
    let mut n = 0;
    d.root.walk(0, &mut |_, _| n += 1);
    n
}

fn tiles(d: &Dissection, len: usize) {
    let mut pos = 0u32;
    for leaf in d.root.frame_leaves() {
        assert_eq!(leaf.offset, pos, "gap or overlap at {}", leaf.name());
        pos += leaf.len;
    }
    assert_eq!(pos as usize, len);
}

/// Metadata v1 asking for `n` one-letter topics: 3 bytes per element.
fn many_topics(n: usize) -> Vec<u8> {
    let mut body = (n as i32).to_be_bytes().to_vec();
    for _ in 0..n {
        body.extend_from_slice(&[0, 1, b'a']);
    }
    frame(3, 1, &body)
}

#[test]
fn huge_arrays_keep_a_bounded_tree_and_still_tile() {
    let n = 500_000;
    let f = many_topics(n);
    let d = dissect_request(&f);
    assert!(d.error.is_none(), "{:?}", d.error);
    tiles(&d, f.len());
    let fields = count_fields(&d);
    let limit = Limits::default().max_fields;
    assert!(
        fields <= limit + 100,
        "{fields} fields kept for {n} elements"
    );
    let elided = d.root.find("kafka.elided").expect("an elided leaf");
    assert!(elided
        .note
        .as_deref()
        .unwrap_or("")
        .contains("more elements decoded but not kept"));

    // The check-only mode keeps no element at all, and still finds an error in the last one.
    let d = dissect_request_with(&f, Limits::CHECK_ONLY);
    assert!(d.error.is_none());
    assert!(count_fields(&d) < 20);
    let mut bad = f.clone();
    let last = bad.len() - 2;
    bad[last] = 0x7f; // the last string now claims 0x7f61 bytes
    let d = dissect_request_with(&bad, Limits::CHECK_ONLY);
    let e = d.error.expect("error in the last element");
    assert_eq!(
        e.offset,
        f.len() - 3,
        "reported at the string's length prefix: {e}"
    );
}

/// Produce v3 carrying one uncompressed batch of `n` minimal records.
fn produce_with_records(n: usize) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..n {
        let mut body = vec![0u8, 0]; // attributes, timestamp delta 0
        let mut od = (i as u64) << 1; // zigzag of a non-negative offset delta
        while od >= 0x80 {
            body.push((od as u8) | 0x80);
            od >>= 7;
        }
        body.push(od as u8);
        body.extend_from_slice(&[1, 0, 0]); // key null, value empty, no headers
        records.push((body.len() as u8) << 1);
        records.extend_from_slice(&body);
    }
    let mut batch = vec![0u8; BATCH_HEADER_LEN];
    batch.extend_from_slice(&records);
    let len = batch.len() as i32 - 12;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    batch[16] = 2;
    batch[23..27].copy_from_slice(&(n as i32 - 1).to_be_bytes());
    batch[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    batch[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    batch[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    batch[57..61].copy_from_slice(&(n as i32).to_be_bytes());
    let crc = batch_crc(&batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());

    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&1000i32.to_be_bytes()); // timeout
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    body.extend_from_slice(&[0, 1, b't']);
    body.extend_from_slice(&1i32.to_be_bytes()); // one partition
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&(batch.len() as i32).to_be_bytes());
    body.extend_from_slice(&batch);
    frame(0, 3, &body)
}

#[test]
fn huge_record_sets_expand_a_bounded_number_of_records() {
    let n = MAX_ENTRIES_PER_DISSECTION + 20_000;
    let f = produce_with_records(n);
    let d = dissect_request(&f);
    assert!(d.error.is_none(), "{:?}", d.error);
    tiles(&d, f.len());
    let mut records = Vec::new();
    d.root.find_all("record", &mut records);
    assert!(
        records.len() < MAX_ENTRIES_PER_DISSECTION,
        "{} records expanded",
        records.len()
    );
    assert!(records.len() > MAX_ENTRIES_PER_DISSECTION - 10);
    let mut undecoded = Vec::new();
    d.root.find_all("record_set.undecoded", &mut undecoded);
    assert!(
        undecoded
            .iter()
            .any(|u| u.note.as_deref().unwrap_or("").contains("limit")),
        "no leaf says the limit was reached"
    );
    // Below the limit every record is there.
    let d = dissect_request(&produce_with_records(1000));
    let mut records = Vec::new();
    d.root.find_all("record", &mut records);
    assert_eq!(records.len(), 1000);
}
