//! Telling Kafka connections and their client from other traffic.

use super::*;

#[test]
fn kafka_found_by_heuristic_on_another_port() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:19092", 1000, 5000);
    let pairs = session_pairs();
    clean_session(&mut tcp, &pairs, 64);
    let (out, stats) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 3);
    for (i, ex) in exs.iter().enumerate() {
        assert_answered(ex, &pairs[i], i as i32 + 1);
        assert_eq!(ex.server(), Some("10.0.0.2:19092".parse().unwrap()));
    }
    assert_eq!(stats.kafka_connections, 1);

    // The same from the broker's side of a capture that begins with its first segment
    // (the SYN-ACK): roles come from the bytes, not from who was seen first.
    let segs: Vec<Segment> = tcp.segs[1..].to_vec();
    let (out, _) = run(&segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 3);
    assert!(exs.iter().all(|e| e.peer().to_string() == "10.0.0.1:51000"));
}

#[test]
fn heuristic_mid_stream_does_not_take_a_response_for_a_request() {
    // No Kafka port, no SYN, and the broker's bytes come first: the tail of a response
    // whose first bytes read as a plausible request header (Metadata v12, correlation id
    // 5, client id "x") but whose body does not decode as that request.
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:19092", 500, 900);
    let mut first = vec![0, 0, 0, 30, 0, 3, 0, 12, 0, 0, 0, 5, 0, 1, b'x'];
    first.extend([0xff; 19]);
    assert_eq!(
        request_verdict(&first, DEFAULT_MAX_FRAME_BYTES, true),
        Verdict::Yes
    );
    assert!(chronik_protocol::dissect_request(&first).error.is_some());
    tcp.send(false, &first, 1000);
    let pairs = vec![metadata(1), api_versions(2)];
    for p in &pairs {
        tcp.send(true, &p.0, 1000);
        tcp.send(false, &p.1, 1000);
    }
    let (out, _) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    let peer: std::net::SocketAddr = "10.0.0.1:51000".parse().unwrap();
    assert!(exs.iter().all(|e| e.peer() == peer), "{exs:#?}");
    let answered: Vec<&&Exchange> = exs.iter().filter(|e| e.api_key >= 0).collect();
    assert_eq!(answered.len(), 2);
    for (i, ex) in answered.iter().enumerate() {
        assert_answered(ex, &pairs[i], i as i32 + 1);
    }
}

#[test]
fn non_kafka_connections_ignored() {
    // HTTP on another port.
    let mut http = Tcp::new("10.0.0.1:51000", "10.0.0.2:8080", 1, 1);
    http.handshake();
    http.send(true, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n", 1400);
    http.send(false, &b"HTTP/1.1 200 OK\r\n\r\n".repeat(5000), 1400);
    http.fin(true);
    http.fin(false);
    // TLS on 9092: a ClientHello, the server's answer, lots of records.
    let mut tls = Tcp::new("10.0.0.1:52000", "10.0.0.2:9092", 1, 1);
    tls.handshake();
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    hello.extend((0..500).map(|i| (i * 31 % 256) as u8));
    tls.send(true, &hello, 1400);
    for i in 0..50u8 {
        let mut rec = vec![0x17, 0x03, 0x03, 0x40, 0x00];
        rec.extend(std::iter::repeat_n(i, 0x4000));
        tls.send(i % 2 == 0, &rec, 1400);
    }
    let mut segs = http.segs;
    segs.extend(tls.segs);
    let (out, stats) = run(&segs, StreamOptions::default());
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(stats.connections, 2);
    assert_eq!(stats.kafka_connections, 0);
    assert_eq!(stats.not_kafka_connections, 2);
    assert_eq!(stats.malformed, 0);
}

#[test]
fn tls_mid_stream_on_kafka_port_not_kafka() {
    let mut tls = Tcp::new("10.0.0.1:52000", "10.0.0.2:9092", 1, 1);
    for i in 0..40u8 {
        let mut rec = vec![0x17, 0x03, 0x03, 0x08, 0x00];
        rec.extend((0..0x800).map(|j| (j as u8).wrapping_mul(i | 1).wrapping_add(i)));
        tls.send(true, &rec, 1400);
        tls.send(false, &rec, 1400);
    }
    let (out, stats) = run(&tls.segs, StreamOptions::default());
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(stats.not_kafka_connections, 1);
}
