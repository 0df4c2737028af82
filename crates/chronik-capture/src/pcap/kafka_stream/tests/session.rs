//! Pairing beyond one response per request: SASL bare tokens and acks=0.

use super::*;

fn sasl_handshake_v0(corr: i32, mechanism: &'static str) -> Pair {
    let req = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    let resp = SaslHandshakeResponse::default()
        .with_mechanisms(vec![StrBytes::from_static_str(mechanism)]);
    (
        request(ApiKey::SaslHandshake, 0, corr, &req),
        test_frames::response_frame(0, corr, &resp),
    )
}

/// SaslHandshake v0, then a bare PLAIN token and the broker's empty answer (no headers, no
/// correlation ids), then Kafka again: every frame paired, the token shown as one.
#[test]
fn bare_sasl_plain_token_after_handshake_v0() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    tcp.handshake();
    let hs = sasl_handshake_v0(1, "PLAIN");
    assert_eq!(handshake_mechanism(&hs.0).as_deref(), Some("PLAIN"));
    let token = with_size_prefix(b"\0alice\0s3cret");
    let answer = with_size_prefix(b"");
    let md = metadata(2);
    tcp.send(true, &hs.0, 300);
    tcp.send(false, &hs.1, 300);
    tcp.send(true, &token, 300);
    tcp.send(false, &answer, 300);
    tcp.send(true, &md.0, 300);
    tcp.send(false, &md.1, 300);
    let (out, stats) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 3, "{exs:#?}");
    assert_answered(exs[0], &hs, 1);
    assert_eq!(exs[1].framing, Framing::SaslToken);
    assert_eq!(
        (exs[1].api_key, exs[1].api_version),
        (api_key::SASL_AUTHENTICATE, 0)
    );
    assert_eq!(exs[1].status, Status::Answered);
    assert_eq!(exs[1].request(), token);
    assert_eq!(exs[1].response(), Some(&answer[..]));
    let d = exs[1].dissect_request().expect("the token");
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!(
        d.root.find("sasl.plain.authcid").map(|f| f.value.clone()),
        Some(chronik_protocol::Value::Str("alice".into()))
    );
    assert_answered(exs[2], &md, 2);
    for ex in &exs {
        assert_dissects(ex);
    }
    assert_eq!(stats.frames, 6);
    assert_eq!(stats.unpaired, 0);
}

/// A mechanism that takes several round trips: tokens until the client sends a Kafka
/// request again. A token the broker never answers (it closed the connection: a failed
/// login) stays unanswered.
#[test]
fn bare_sasl_tokens_of_a_multi_step_mechanism_and_a_failed_login() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    tcp.handshake();
    let hs = sasl_handshake_v0(1, "SCRAM-SHA-256");
    let first = with_size_prefix(b"n,,n=alice,r=abc");
    let server_first = with_size_prefix(b"r=abcdef,s=c2FsdA==,i=4096");
    let last = with_size_prefix(b"c=biws,r=abcdef,p=cHJvb2Y=");
    let server_last = with_size_prefix(b"v=c2lnbmF0dXJl");
    let md = metadata(2);
    for (from_client, bytes) in [
        (true, &hs.0),
        (false, &hs.1),
        (true, &first),
        (false, &server_first),
        (true, &last),
        (false, &server_last),
        (true, &md.0),
        (false, &md.1),
    ] {
        tcp.send(from_client, bytes, 300);
    }
    let (out, _) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    let kinds: Vec<(Framing, i32)> = exs.iter().map(|e| (e.framing, e.correlation_id)).collect();
    assert_eq!(
        kinds,
        [
            (Framing::Kafka, 1),
            (Framing::SaslToken, -1),
            (Framing::SaslToken, -1),
            (Framing::Kafka, 2)
        ]
    );
    assert_eq!(exs[2].request(), last);
    assert_eq!(exs[2].response(), Some(&server_last[..]));

    let mut tcp = Tcp::new("10.0.0.1:51001", "10.0.0.2:9092", 1000, 5000);
    tcp.handshake();
    let hs = sasl_handshake_v0(1, "PLAIN");
    tcp.send(true, &hs.0, 300);
    tcp.send(false, &hs.1, 300);
    tcp.send(true, &with_size_prefix(b"\0alice\0wrong"), 300);
    tcp.fin(false);
    let (out, _) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 2);
    assert_eq!(
        (exs[1].framing, &exs[1].status),
        (Framing::SaslToken, &Status::Unanswered)
    );
}

#[test]
fn acks_zero_produce_gets_no_response() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    tcp.handshake();
    let fire = produce(1, 9, 0);
    let fire_v3 = produce(2, 3, 0);
    let acked = produce(3, 9, 1);
    let r1 = tcp.send(true, &fire.0, 300);
    tcp.send(true, &fire_v3.0, 300);
    tcp.send(true, &acked.0, 300);
    tcp.send(false, &acked.1, 300);
    let (out, _) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 3);
    assert_eq!(
        (exs[0].correlation_id, &exs[0].status),
        (1, &Status::NoResponse)
    );
    assert_eq!(exs[0].request(), fire.0);
    assert_eq!(exs[0].request_at, tcp.last_ts_us(&r1));
    assert_eq!(exs[0].response(), None);
    assert_eq!(
        (exs[1].correlation_id, &exs[1].status),
        (2, &Status::NoResponse)
    );
    assert_answered(exs[2], &acked, 3);
    for ex in &exs {
        assert_dissects(ex);
    }
}
