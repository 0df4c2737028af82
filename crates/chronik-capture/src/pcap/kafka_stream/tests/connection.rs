//! Connections: TCP in order or not, several at once, opening, closing, reuse and the limit.

use super::*;

#[test]
fn clean_session_in_small_segments() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    let pairs = session_pairs();
    let ranges = clean_session(&mut tcp, &pairs, 7);
    let (out, stats) = run(&tcp.segs, StreamOptions::default());

    let exs = exchanges(&out);
    assert_eq!(exs.len(), 3);
    let keys: Vec<(i16, i16)> = exs.iter().map(|e| (e.api_key, e.api_version)).collect();
    assert_eq!(
        keys,
        vec![
            (api_key::API_VERSIONS, 3),
            (api_key::METADATA, 12),
            (api_key::PRODUCE, 9)
        ]
    );
    for (i, ex) in exs.iter().enumerate() {
        assert_answered(ex, &pairs[i], i as i32 + 1);
        assert_eq!(ex.id, 0);
        assert_eq!(ex.conn, 1);
        assert_eq!(ex.peer().to_string(), "10.0.0.1:51000");
        assert_eq!(ex.server(), Some("10.0.0.2:9092".parse().unwrap()));
        assert_eq!(ex.client_id(), Some(CLIENT_ID));
        assert_eq!(ex.request_at, tcp.last_ts_us(&ranges[i].0));
        assert_eq!(ex.response_at(), Some(tcp.last_ts_us(&ranges[i].1)));
        assert!(ex.notes().is_empty(), "{:?}", ex.notes());
    }
    // Opened first, Closed (by the client, who sent FIN first) last.
    assert!(matches!(
        &out[0],
        Output::Conn(ConnEvent {
            kind: ConnEventKind::Opened,
            conn: 1,
            ..
        })
    ));
    let Some(Output::Conn(closed)) = out.last() else {
        panic!("last output is not the close: {out:?}");
    };
    assert_eq!(
        closed.kind,
        ConnEventKind::Closed {
            by: ClosedBy::Client,
            reason: "client sent FIN".into()
        }
    );
    assert_eq!(events(&out)[0].at, tcp.segs[0].ts_nanos / 1000);
    assert_eq!(closed.peer.to_string(), "10.0.0.1:51000");
    assert_eq!(
        stats,
        StreamStats {
            connections: 1,
            kafka_connections: 1,
            frames: 6,
            ..StreamStats::default()
        }
    );
}

#[test]
fn reordered_segments() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    let pairs = session_pairs();
    let ranges = clean_session(&mut tcp, &pairs, 50);
    // Within each burst, reverse every run of three segments.
    for (req, resp) in &ranges {
        for r in [req, resp] {
            for start in (r.start..r.end).step_by(3) {
                tcp.segs[start..(start + 3).min(r.end)].reverse();
            }
        }
    }
    let (out, stats) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 3);
    for (i, ex) in exs.iter().enumerate() {
        assert_answered(ex, &pairs[i], i as i32 + 1);
        assert!(ex.notes().is_empty(), "{:?}", ex.notes());
    }
    assert_eq!((stats.gaps, stats.bytes_skipped), (0, 0));
}

#[test]
fn duplicated_and_overlapping_retransmissions() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    tcp.handshake();
    let pairs = session_pairs();
    for (req, resp) in &pairs {
        for (from_client, bytes) in [(true, req), (false, resp)] {
            let n = bytes.len();
            let mut pieces = Vec::new();
            let mut s = 0;
            while s < n {
                let e = (s + 40).min(n);
                pieces.push(s..e);
                pieces.push(s..e); // duplicate
                pieces.push(s / 2..(e + 20).min(n)); // overlaps what came before and after
                s = e;
            }
            tcp.send_pieces(from_client, bytes, &pieces);
        }
    }
    tcp.fin(true);
    tcp.fin(false);
    let (out, stats) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 3);
    for (i, ex) in exs.iter().enumerate() {
        assert_answered(ex, &pairs[i], i as i32 + 1);
    }
    assert_eq!((stats.gaps, stats.frames), (0, 6));
}

#[test]
fn sequence_numbers_wrap() {
    let mut tcp = Tcp::new(
        "10.0.0.1:51000",
        "10.0.0.2:9092",
        u32::MAX - 700,
        u32::MAX - 3,
    );
    let pairs = session_pairs();
    clean_session(&mut tcp, &pairs, 97);
    assert!(tcp
        .segs
        .iter()
        .any(|s| s.src == tcp.client && s.seq < 10_000));
    let (out, stats) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 3);
    for (i, ex) in exs.iter().enumerate() {
        assert_answered(ex, &pairs[i], i as i32 + 1);
    }
    assert_eq!(stats.gaps, 0);
}

#[test]
fn two_interleaved_connections() {
    let mut a = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 10, 20);
    let mut b = Tcp::new("10.0.0.3:42000", "10.0.0.2:9092", 30, 40);
    let pa = session_pairs();
    let pb = vec![metadata(100), api_versions(101)];
    clean_session(&mut a, &pa, 33);
    clean_session(&mut b, &pb, 45);
    // Interleave: b's SYN after a's, then alternate.
    let mut segs = Vec::new();
    let (mut ia, mut ib) = (a.segs.into_iter(), b.segs.into_iter());
    segs.push(ia.next().unwrap());
    loop {
        match (ib.next(), ia.next()) {
            (None, None) => break,
            (x, y) => segs.extend(x.into_iter().chain(y)),
        }
    }
    let (out, stats) = run(&segs, StreamOptions::default());
    let exs = exchanges(&out);
    let of = |conn| {
        exs.iter()
            .filter(move |e| e.conn == conn)
            .copied()
            .collect::<Vec<_>>()
    };
    let (ea, eb) = (of(1), of(2));
    assert_eq!((ea.len(), eb.len()), (3, 2));
    for (i, ex) in ea.iter().enumerate() {
        assert_answered(ex, &pa[i], i as i32 + 1);
        assert_eq!(ex.peer().to_string(), "10.0.0.1:51000");
    }
    for (i, ex) in eb.iter().enumerate() {
        assert_answered(ex, &pb[i], i as i32 + 100);
        assert_eq!(ex.peer().to_string(), "10.0.0.3:42000");
    }
    assert_eq!(stats.kafka_connections, 2);
    let ev = events(&out);
    assert_eq!(
        ev.iter()
            .filter(|e| e.kind == ConnEventKind::Opened)
            .count(),
        2
    );
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e.kind, ConnEventKind::Closed { .. }))
            .count(),
        2
    );
    // Exchanges come out in the order their last frame completed.
    let done: Vec<i64> = exs.iter().map(|e| e.response_at().unwrap()).collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
}

#[test]
fn unanswered_at_end_and_closed_by_broker_reset() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    tcp.handshake();
    let p = metadata(1);
    tcp.send(true, &p.0, 1000);
    tcp.rst(false);
    // A stray ACK after the reset does not start a new connection.
    tcp.seg_at(true, flags(false, true, false, false), 0, b"");
    let (out, stats) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 1);
    assert_eq!(exs[0].status, Status::Unanswered);
    assert_eq!(
        exs[0].notes(),
        vec!["connection closed before the response".to_string()]
    );
    let ev = events(&out);
    assert_eq!(ev.len(), 2);
    assert_eq!(
        ev[1].kind,
        ConnEventKind::Closed {
            by: ClosedBy::Broker,
            reason: "broker sent RST".into()
        }
    );
    assert_eq!(stats.connections, 1);

    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    tcp.handshake();
    tcp.send(true, &p.0, 1000);
    let (out, _) = run(&tcp.segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(
        exs[0].notes(),
        vec!["capture ended before the response".to_string()]
    );
    assert_eq!(events(&out).len(), 1, "no FIN or RST: no Closed event");
}

#[test]
fn new_syn_on_closed_tuple_is_a_new_connection() {
    let mut tcp = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 1000, 5000);
    let first = [metadata(1)];
    clean_session(&mut tcp, &first[..], 100);
    // The broker's FIN is not captured; the client later reuses the port.
    tcp.segs.pop();
    let mut again = Tcp::new("10.0.0.1:51000", "10.0.0.2:9092", 900_000, 700_000);
    again.ts = tcp.ts;
    let second = vec![api_versions(1)];
    clean_session(&mut again, &second, 100);
    let mut segs = tcp.segs;
    segs.extend(again.segs);
    let (out, stats) = run(&segs, StreamOptions::default());
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 2);
    assert_eq!((exs[0].conn, exs[0].api_key), (1, api_key::METADATA));
    assert_eq!((exs[1].conn, exs[1].api_key), (2, api_key::API_VERSIONS));
    assert_answered(exs[1], &second[0], 1);
    assert_eq!(stats.connections, 2);
    let closed: Vec<u64> = events(&out)
        .iter()
        .filter(|e| matches!(e.kind, ConnEventKind::Closed { .. }))
        .map(|e| e.conn)
        .collect();
    assert_eq!(closed, vec![1, 2]);
}

/// Three clients sending a request each to a capture that tracks two connections, in the
/// order `turns` gives (client index, correlation id): the exchanges and the stats.
fn over_the_connection_limit(turns: &[(usize, i32)]) -> (Vec<Output>, StreamStats) {
    let opts = StreamOptions {
        max_connections: 2,
        ..StreamOptions::default()
    };
    let mut conns: Vec<Tcp> = (0..3)
        .map(|i| Tcp::new(&format!("10.0.0.{}:5000", i + 1), "10.0.0.9:9092", 1, 1))
        .collect();
    let mut segs = Vec::new();
    for &(c, corr) in turns {
        conns[c].send(true, &metadata(corr).0, 1000);
        segs.push(conns[c].segs.last().unwrap().clone());
    }
    run(&segs, opts)
}

#[test]
fn connection_limit_drops_the_least_recently_active() {
    let (out, stats) = over_the_connection_limit(&[(0, 1), (1, 1), (2, 1)]);
    assert_eq!(stats.connections_evicted, 1);
    let exs = exchanges(&out);
    assert_eq!(exs.len(), 3);
    assert_eq!(exs[0].conn, 1);
    assert!(exs[0].notes()[0].contains("connection limit"));
}

#[test]
fn connection_limit_drops_the_one_idle_longest_not_the_oldest() {
    // Connection 1, then 2, then 1 again: 2 is the one idle longest when 3 arrives.
    let (out, stats) = over_the_connection_limit(&[(0, 1), (1, 1), (0, 2), (2, 1)]);
    assert_eq!(stats.connections_evicted, 1);
    let evicted: Vec<u64> = exchanges(&out)
        .iter()
        .filter(|e| e.notes().iter().any(|n| n.contains("connection limit")))
        .map(|e| e.conn)
        .collect();
    assert_eq!(evicted, vec![2]);
}
