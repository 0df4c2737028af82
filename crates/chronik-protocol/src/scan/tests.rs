use std::collections::{BTreeMap, HashSet};

use super::*;
use crate::dissect::{dissect_request_with, Limits};
use crate::encode::{self, Input};
use crate::schema::{FieldDef, FieldType};
use crate::tree::Value;

/// A value as both readers can say it: integers (booleans as 0/1), strings, data spans, nulls.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Int(i64),
    Str(String),
    Data(usize, usize),
    Null,
}

fn scanned(frame: &[u8]) -> (Vec<(FieldId, Seen)>, Result<(), usize>) {
    let mut out = Vec::new();
    let r = scan_request(frame, &mut |id, v| {
        let seen = match v {
            Scalar::Int(i) => Seen::Int(i),
            Scalar::Str(s) => Seen::Str(String::from_utf8_lossy(s).into_owned()),
            Scalar::Data { start, len } => Seen::Data(start, len),
            Scalar::Null => Seen::Null,
            Scalar::Uuid(_) | Scalar::Float => return,
        };
        out.push((id, seen));
    });
    (out, r)
}

/// Every schema field id of an API's request, and the ids of its arrays' counts.
fn schema_ids(fields: &[FieldDef], ids: &mut HashSet<FieldId>, counts: &mut HashSet<FieldId>) {
    for f in fields {
        ids.insert(f.id);
        if matches!(f.ty, FieldType::Array(_)) {
            counts.insert(f.count_id);
        }
        schema_ids(&f.children, ids, counts);
    }
}

/// The same values from a dissection (record sets not expanded): the schema's own leaves and
/// null arrays, in wire order.
fn dissected(frame: &[u8]) -> Vec<(FieldId, Seen)> {
    let d = dissect_request_with(frame, Limits::WITHOUT_RECORDS);
    let (key, _, _) = peek_request_header(&frame[4..]).expect("a header");
    let api = registry::api(key).expect("a schema");
    let (mut ids, mut counts) = (HashSet::new(), HashSet::new());
    schema_ids(&api.request, &mut ids, &mut counts);
    let mut out = Vec::new();
    d.root.walk(0, &mut |f, _| {
        if !ids.contains(&f.id) || counts.contains(&f.id) {
            return;
        }
        let seen = match &f.value {
            Value::Int(i) => Seen::Int(*i),
            Value::Bool(b) => Seen::Int(i64::from(*b)),
            Value::Str(s) => Seen::Str(s.clone()),
            Value::Null => Seen::Null,
            Value::Bytes { start, len } => Seen::Data(*start as usize, *len as usize),
            // A record set is a group holding its size and its bytes.
            Value::Group => match f
                .children
                .iter()
                .find(|c| c.name() == "record_set.undecoded")
            {
                Some(c) => Seen::Data(c.offset as usize, c.len as usize),
                None if f.children.iter().any(|c| c.name() == "record_set.size") => {
                    Seen::Data(f.offset as usize + f.len as usize, 0)
                }
                None => return,
            },
            Value::Element(_) | Value::Float(_) | Value::Uuid(_) => return,
        };
        out.push((f.id, seen));
    });
    out
}

fn map(fields: Vec<(&str, Input)>) -> Input {
    Input::Map(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// A Produce request at `version` with two topics of two partitions each, every record set
/// different bytes.
fn produce(version: i16) -> Vec<u8> {
    let partition = |index: i64, fill: u8| {
        map(vec![
            ("index", Input::Int(index)),
            ("records", Input::Bytes(vec![fill; 20 + fill as usize])),
        ])
    };
    let topic = |name: &str, base: u8| {
        map(vec![
            ("name", Input::Str(name.into())),
            (
                "partition_data",
                Input::List(vec![partition(0, base), partition(7, base + 1)]),
            ),
        ])
    };
    let mut body = vec![
        ("acks", Input::Int(-1)),
        ("timeout_ms", Input::Int(30_000)),
        (
            "topic_data",
            Input::List(vec![topic("orders", 1), topic("payments", 3)]),
        ),
    ];
    if version >= 3 {
        body.push(("transactional_id", Input::Str("tx-1".into())));
    }
    if version >= 13 {
        // Topics by id from v13: no names on the wire.
        if let Some((_, Input::List(ts))) = body.iter_mut().find(|(k, _)| *k == "topic_data") {
            for t in ts {
                if let Input::Map(m) = t {
                    m.remove("name");
                }
            }
        }
    }
    encode::request(0, version, 42, Some("client-a"), &map(body)).expect("a Produce request")
}

#[test]
fn produce_reads_as_the_dissector_reads_it_in_every_version() {
    let api = registry::api(0).expect("Produce");
    for version in api.versions.min..=api.versions.max {
        let frame = produce(version);
        let (got, r) = scanned(&frame);
        assert_eq!(r, Ok(()), "v{version}");
        let want = dissected(&frame);
        assert_eq!(got, want, "v{version}");
        let sets = got
            .iter()
            .filter(|(_, v)| matches!(v, Seen::Data(_, n) if *n > 0))
            .count();
        assert_eq!(sets, 4, "v{version}: four record sets");
    }
}

/// Every API and version, with the encoder's defaults (empty arrays) and with every field
/// filled (one element in every array, so that elements of nullable arrays are read too).
#[test]
fn every_api_and_version_reads_as_the_dissector_reads_it() {
    let (mut compared, mut filled_in) = (0, 0);
    for (key, api) in &registry::catalog().apis {
        for version in api.versions.min..=api.versions.max {
            let filled = crate::test_frames::filled(&api.request, version);
            for (full, body) in [(false, map(vec![])), (true, filled)] {
                let Ok(frame) = encode::request(*key, version, 7, Some("c"), &body) else {
                    continue;
                };
                let (got, r) = scanned(&frame);
                let what = format!("{} v{version} filled {full}", api.name);
                assert_eq!(r, Ok(()), "{what}");
                assert_eq!(got, dissected(&frame), "{what}");
                compared += 1;
                filled_in += usize::from(full);
            }
        }
    }
    assert!(compared >= 400, "only {compared} requests compared");
    assert!(
        filled_in >= 200,
        "only {filled_in} filled requests compared"
    );
}

#[test]
fn a_frame_cut_anywhere_stops_with_the_values_before_the_cut() {
    let frame = produce(9);
    let (all, _) = scanned(&frame);
    for cut in 4..frame.len() {
        let mut short = frame[..cut].to_vec();
        short[..4].copy_from_slice(&((cut - 4) as i32).to_be_bytes());
        let (got, r) = scanned(&short);
        assert!(r.is_err(), "cut at {cut} reads whole");
        assert!(all.starts_with(&got), "cut at {cut}: {got:?}");
    }
    // A size prefix beyond the bytes there are, or negative, reads nothing.
    let mut long = frame.clone();
    long[..4].copy_from_slice(&(frame.len() as i32).to_be_bytes());
    assert_eq!(scanned(&long), (vec![], Err(0)));
    long[..4].copy_from_slice(&(-1i32).to_be_bytes());
    assert_eq!(scanned(&long), (vec![], Err(0)));
}

#[test]
fn a_count_larger_than_the_frame_is_refused_where_it_stands() {
    // Produce v3 with a topic array count of 1 000 000 and nothing after it.
    let mut frame = produce(3);
    let (all, _) = scanned(&frame);
    // The topic count follows transactional_id, acks and timeout_ms.
    let count_at = 4 + 8 + 2 + "client-a".len() + 2 + "tx-1".len() + 2 + 4;
    frame[count_at..count_at + 4].copy_from_slice(&1_000_000i32.to_be_bytes());
    let (got, r) = scanned(&frame);
    assert_eq!(r, Err(count_at));
    assert_eq!(
        got,
        all[..3].to_vec(),
        "transactional_id, acks and timeout_ms"
    );
}

#[test]
fn a_clean_walk_refuses_what_a_dissection_would_note() {
    let frame = encode::request(3, 9, 7, Some("c"), &map(vec![])).expect("Metadata v9");
    let visit = &mut |_: FieldId, _: Scalar| {};
    assert_eq!(scan_clean_request(&frame, visit), Ok(()));
    let resize = |mut f: Vec<u8>| {
        let len = (f.len() - 4) as i32;
        f[..4].copy_from_slice(&len.to_be_bytes());
        f
    };
    // A tagged field (tag 0, empty) where the body's tagged fields end: it reads, but is not
    // clean.
    let mut tagged = frame.clone();
    tagged.pop();
    tagged.extend_from_slice(&[1, 0, 0]);
    let tagged = resize(tagged);
    assert_eq!(scan_request(&tagged, visit), Ok(()));
    assert!(scan_clean_request(&tagged, visit).is_err());
    // A byte after the last field, counted by the size prefix; and a size prefix one short.
    let mut trailing = frame.clone();
    trailing.push(0);
    assert!(scan_clean_request(&resize(trailing), visit).is_err());
    let mut short = frame.clone();
    short[3] -= 1;
    assert!(scan_clean_request(&short, visit).is_err());
    // A null topic name in Metadata v1 (names are not nullable there).
    let topics = Input::List(vec![map(vec![("name", Input::Str("t".into()))])]);
    let v1 = encode::request(3, 1, 7, Some("c"), &map(vec![("topics", topics)])).unwrap();
    assert_eq!(scan_clean_request(&v1, visit), Ok(()));
    let at = v1.len() - 3;
    assert_eq!(&v1[at..], &[0, 1, b't']);
    let null = resize([&v1[..at], &[0xff, 0xff]].concat());
    assert!(scan_clean_request(&null, visit).is_err());
}
