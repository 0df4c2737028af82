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
        let d = crate::protocol::dissect_request(&req);
        assert_eq!(
            d.root.find("produce.request.acks").and_then(|f| f.as_int()),
            Some(i64::from(acks))
        );
    }
    assert_eq!(produce_acks(&[0, 0, 0, 9, 0, 0, 0, 1, 0, 3, b'a'], 9), None);
}
