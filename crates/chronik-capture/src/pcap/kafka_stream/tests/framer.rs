//! Frames across lost, cut and skipped bytes, and captures that start mid-stream.

use super::*;

#[test]
fn missing_segment_inside_a_request() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    let pairs = vec![
        api_versions(1),
        produce(2, 9, -1),
        metadata(3),
        api_versions(4),
    ];
    let ranges = clean_session(&mut tcp, &pairs, 100);
    // Lose the third segment of the produce request (well past its header).
    let lost = ranges[1].0.start + 2;
    let lost_len = tcp.segs[lost].payload.len();
    tcp.segs.remove(lost);
    let (out, stats) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 4, "{exs:#?}");
    assert_answered(exs[0], &pairs[0], 1);
    assert!(exs[0].notes().is_empty());
    // The produce request is lost; its header was seen, so its response is still paired
    // and decodes.
    let lost_ex = exs[1];
    assert_eq!(
        (lost_ex.api_key, lost_ex.api_version, lost_ex.correlation_id),
        (api_key::PRODUCE, 9, 2)
    );
    assert!(lost_ex.request().is_empty());
    assert_eq!(lost_ex.response(), Some(&pairs[1].1[..]));
    assert!(
        lost_ex
            .notes()
            .iter()
            .any(|n| n.contains("request frame lost")),
        "{:?}",
        lost_ex.notes()
    );
    assert_dissects(lost_ex);
    // The next exchange says what went missing before it; the rest decode.
    assert_answered(exs[2], &pairs[2], 3);
    let want = format!("{lost_len} bytes missing before this frame (lost segments)");
    assert!(exs[2].notes().contains(&want), "{:?}", exs[2].notes());
    assert_answered(exs[3], &pairs[3], 4);
    assert!(exs[3].notes().is_empty());
    assert_eq!((stats.gaps, stats.bytes_missing), (1, lost_len as u64));
    // The captured rest of the lost request: its first two segments and the ones after.
    assert_eq!(stats.bytes_skipped, (pairs[1].0.len() - lost_len) as u64);
}

#[test]
fn missing_segment_at_a_request_header_resynchronises() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    let pairs = [api_versions(1), metadata(2), produce(3, 9, -1)];
    tcp.handshake();
    let a = tcp.send(true, &pairs[0].0, 1000);
    tcp.send(false, &pairs[0].1, 1000);
    // The second and third requests go out back to back in one burst; the segment
    // holding the end of the first and the start of the second is lost.
    let mut burst = pairs[1].0.clone();
    burst.extend_from_slice(&pairs[2].0);
    let cut = pairs[1].0.len();
    let r = tcp.send_pieces(
        true,
        &burst,
        &[0..cut - 10, cut - 10..cut + 20, cut + 20..burst.len()],
    );
    tcp.segs.remove(r.start + 1);
    tcp.send(false, &pairs[1].1, 1000);
    tcp.send(false, &pairs[2].1, 1000);
    tcp.fin(true);
    tcp.fin(false);
    assert_eq!(a.len(), 1);
    let (out, stats) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    // Request 2 lost with its header captured: response paired. Request 3 lost (its
    // header was in the lost segment): its response is shown on its own.
    assert_eq!(exs.len(), 3, "{exs:#?}");
    assert_answered(exs[0], &pairs[0], 1);
    assert_eq!(
        (exs[1].api_key, exs[1].correlation_id),
        (api_key::METADATA, 2)
    );
    assert!(exs[1].request().is_empty());
    assert_dissects(exs[1]);
    assert_eq!((exs[2].api_key, exs[2].correlation_id), (-1, 3));
    assert_eq!(exs[2].response(), Some(&pairs[2].1[..]));
    assert!(exs[2]
        .notes()
        .iter()
        .any(|n| n.starts_with("response without its request")));
    assert_eq!(stats.unpaired, 1);
    assert_eq!(stats.bytes_missing, 30);
}

#[test]
fn capture_started_mid_stream() {
    // The client sent requests 1 and 2 back to back; the capture starts in the middle of
    // request 2. Responses 1 and 2 are captured, then request/response 3 and 4.
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 77_000, 3_000_000);
    let pairs = [metadata(1), produce(2, 9, -1), api_versions(3), metadata(4)];
    tcp.advance(true, pairs[0].0.len() as u32 + 100);
    let r2 = &pairs[1].0;
    tcp.send_pieces(true, r2, std::slice::from_ref(&(100..r2.len())));
    tcp.send(false, &pairs[0].1, 60);
    tcp.send(false, &pairs[1].1, 60);
    for p in &pairs[2..] {
        tcp.send(true, &p.0, 60);
        tcp.send(false, &p.1, 60);
    }
    let (out, stats) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 4, "{exs:#?}");
    for (i, ex) in exs[..2].iter().enumerate() {
        assert_eq!((ex.api_key, ex.api_version), (-1, -1));
        assert_eq!(ex.correlation_id, i as i32 + 1);
        assert!(ex.request().is_empty());
        assert_eq!(ex.response(), Some(&pairs[i].1[..]));
        assert_eq!(
            ex.notes()[0],
            "response without its request (capture started after it)"
        );
    }
    assert_answered(exs[2], &pairs[2], 3);
    let skipped = format!(
        "{} bytes skipped before the first whole frame (capture started mid-stream)",
        r2.len() - 100
    );
    assert!(exs[2].notes().contains(&skipped), "{:?}", exs[2].notes());
    assert_answered(exs[3], &pairs[3], 4);
    assert_eq!(stats.unpaired, 2);
    assert_eq!(stats.kafka_connections, 1);
    // No SYN, no FIN: opened at first sight, never closed.
    let ev = events(&out);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, ConnEventKind::Opened);
    assert_eq!(ev[0].at, tcp.segs[0].ts_nanos / 1000);
}

#[test]
fn capture_holding_only_a_response() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1, 2);
    let pair = metadata(9);
    // Mid-stream, the client's request was before the capture: only a request header
    // fragment (so the port side is known) and the response.
    let next = metadata(10);
    tcp.send(false, &pair.1, 40);
    tcp.send(true, &next.0, 40);
    let (out, _) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 2, "{exs:#?}");
    assert_eq!(exs[0].correlation_id, 9);
    assert_eq!(exs[0].response(), Some(&pair.1[..]));
    assert_eq!(exs[1].correlation_id, 10);
    assert_eq!(exs[1].status, Status::Unanswered);
    assert_eq!(
        exs[1].notes(),
        vec!["capture ended before the response".to_string()]
    );
    assert_dissects(exs[1]);
}

#[test]
fn snaplen_truncated_segment() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    let pairs = vec![metadata(1), produce(2, 9, -1), metadata(3)];
    let ranges = clean_session(&mut tcp, &pairs, 500);
    let cut = ranges[1].0.start + 1;
    let full = tcp.segs[cut].payload.len();
    tcp.segs[cut].payload.truncate(96);
    let (out, stats) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 3);
    assert_answered(exs[0], &pairs[0], 1);
    assert_eq!(
        (exs[1].api_key, exs[1].correlation_id),
        (api_key::PRODUCE, 2)
    );
    assert!(exs[1].request().is_empty(), "the cut request is lost");
    assert_dissects(exs[1]);
    assert_answered(exs[2], &pairs[2], 3);
    let want = format!(
        "{} bytes missing before this frame (lost segments)",
        full - 96
    );
    assert!(exs[2].notes().contains(&want), "{:?}", exs[2].notes());
    assert_eq!(stats.bytes_missing, (full - 96) as u64);
}

#[test]
fn snaplen_truncated_response_leaves_its_request_unanswered() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    let pairs = [produce(1, 9, -1), metadata(2)];
    tcp.handshake();
    tcp.send(true, &pairs[0].0, 5000);
    let r = tcp.send(false, &pairs[0].1, 5000);
    tcp.segs[r.start].payload.truncate(10);
    tcp.send(true, &pairs[1].0, 5000);
    tcp.send(false, &pairs[1].1, 5000);
    let (out, _) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 2, "{exs:#?}");
    assert_eq!(
        (exs[0].correlation_id, &exs[0].status),
        (1, &Status::Unanswered)
    );
    assert_eq!(exs[0].request(), pairs[0].0);
    assert!(exs[0].notes()[0].contains("answered a later request (correlation id 2)"));
    assert_answered(exs[1], &pairs[1], 2);
    assert!(
        exs[1].notes()[0].contains("missing before this response frame"),
        "{:?}",
        exs[1].notes()
    );
}

#[test]
fn hostile_size_prefix_malformed_once_without_big_allocation() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    tcp.handshake();
    let ok = api_versions(1);
    tcp.send(true, &ok.0, 1000);
    tcp.send(false, &ok.1, 1000);
    let mut hostile = vec![0x7f, 0xff, 0xff, 0xff, 0, 18, 0, 3, 0, 0, 0, 2];
    hostile.extend([0xee; 200]);
    tcp.send(true, &hostile, 50);
    // More garbage: no further rows.
    tcp.send(true, &[0x7f; 3000], 500);
    let mut streams = KafkaStreams::new(StreamOptions::default());
    let mut out = Vec::new();
    for s in &tcp.segs {
        streams.on_segment(s, &mut out);
        assert!(
            streams.framer_capacity() < 64 * 1024,
            "framer holds {}",
            streams.framer_capacity()
        );
    }
    // Then the client gets back on track: a valid request is found and answered.
    let again = metadata(2);
    tcp.segs.clear();
    tcp.send(true, &again.0, 100);
    tcp.send(false, &again.1, 100);
    for s in &tcp.segs {
        streams.on_segment(s, &mut out);
    }
    streams.finish(&mut out);
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 3, "{exs:#?}");
    assert_answered(exs[0], &ok, 1);
    let bad = exs[1];
    let Status::Malformed { error } = &bad.status else {
        panic!("not malformed: {bad:?}");
    };
    assert_eq!((error.offset, error.path.as_str()), (0, "kafka.length"));
    assert!(error.message.contains("2147483647"), "{}", error.message);
    assert_eq!(&bad.request()[..4], &[0x7f, 0xff, 0xff, 0xff]);
    assert!(bad.request().len() <= MALFORMED_KEEP);
    assert_answered(exs[2], &again, 2);
    assert!(exs[2]
        .notes()
        .iter()
        .any(|n| n.contains("captured bytes skipped")));
    assert_eq!(streams.stats().malformed, 1);
}

#[test]
fn large_but_allowed_size_prefix_buffers_only_what_arrived() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    tcp.handshake();
    // Claims 90 MiB (under the limit); only a header and a few bytes arrive.
    let mut head = (90 * 1024 * 1024i32).to_be_bytes().to_vec();
    head.extend([0, 0, 0, 9, 0, 0, 0, 1, 0, 1, b'x']);
    head.extend([0; 100]);
    tcp.send(true, &head, 1000);
    let mut streams = KafkaStreams::new(StreamOptions::default());
    let mut out = Vec::new();
    for s in &tcp.segs {
        streams.on_segment(s, &mut out);
    }
    assert!(
        streams.framer_capacity() < 4096,
        "{}",
        streams.framer_capacity()
    );
    streams.finish(&mut out);
    assert!(exchanges(&out).is_empty());
    assert_eq!(streams.stats().bytes_skipped, head.len() as u64);
}
