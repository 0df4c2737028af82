//! Fields read from frame bytes without the dissector.

use super::*;

#[test]
fn acks_parsed_like_the_dissector() {
    for (version, acks) in [
        (0, 0),
        (2, 1),
        (3, 0),
        (3, -1),
        (8, 1),
        (9, 0),
        (9, -1),
        (11, 0),
    ] {
        let (req, _) = produce(5, version, acks);
        assert_eq!(produce_acks(&req[4..], version), Some(acks), "v{version}");
        let d = chronik_protocol::dissect_request(&req);
        assert_eq!(
            d.root.find("produce.request.acks").and_then(|f| f.as_int()),
            Some(i64::from(acks))
        );
    }
    assert_eq!(produce_acks(&[0, 0, 0, 9, 0, 0, 0, 1, 0, 3, b'a'], 9), None);
}

/// The request header versions taken from the schema table agree with kafka-protocol's on what
/// the capture reads from them: which requests have no client id (header version 0), and, for
/// the versions the table describes, which have header tagged fields (version 2).
#[test]
fn request_header_versions_agree_with_kafka_protocol() {
    let mut without_client_id = Vec::new();
    for key in 0..=100 {
        for version in 0..=20 {
            let ours = request_header_version(key, version);
            let theirs = ApiKey::try_from(key).map_or(1, |k| k.request_header_version(version));
            assert_eq!(ours == 0, theirs == 0, "key {key} v{version}");
            if ours == 0 {
                without_client_id.push((key, version));
            }
            let described = chronik_protocol::registry::api(key)
                .is_some_and(|api| api.versions.contains(version));
            if described {
                assert_eq!(ours >= 2, theirs >= 2, "key {key} v{version}");
            }
        }
    }
    assert_eq!(without_client_id, [(ApiKey::ControlledShutdown as i16, 0)]);
}

/// A Produce v7 request body (header v1) up to its client id.
fn client_id_body(id: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0, 7, 0, 0, 0, 9];
    b.extend_from_slice(&(id.len() as i16).to_be_bytes());
    b.extend_from_slice(id);
    b
}

/// A client id the connection's last request had is shared without being read again; a new
/// one replaces it; invalid UTF-8 is replaced as `from_utf8_lossy` does, every time.
#[test]
fn a_client_id_is_shared_while_its_bytes_stay_the_same() {
    let mut last = None;
    let a = client_id(&client_id_body(b"app"), 0, 7, &mut last).unwrap();
    assert_eq!(a.as_str(), "app");
    let again = client_id(&client_id_body(b"app"), 0, 7, &mut last).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &again));
    let b = client_id(&client_id_body(b"other"), 0, 7, &mut last).unwrap();
    assert_eq!(b.as_str(), "other");
    assert!(std::sync::Arc::ptr_eq(last.as_ref().unwrap(), &b));
    for _ in 0..2 {
        let bad = client_id(&client_id_body(b"a\xffb"), 0, 7, &mut last).unwrap();
        assert_eq!(bad.as_str(), "a\u{FFFD}b");
    }
    assert!(
        client_id(&client_id_body(b"app")[..11], 0, 7, &mut last).is_none(),
        "cut short"
    );
    // ControlledShutdown v0 has a header without a client id.
    assert!(client_id(&client_id_body(b"app"), 7, 0, &mut last).is_none());
}
