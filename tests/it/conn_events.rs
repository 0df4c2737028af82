//! Connection events from the broker: who closed a connection and why.

use std::net::SocketAddr;
use std::time::Duration;

use chronik_tui::broker::{self, BrokerConfig};
use chronik_tui::capture::{ClosedBy, ConnEventKind, Store, StoreLimits};
use chronik_tui::settings::{Knobs, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn next(
    events: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<chronik_tui::capture::ConnEvent>>,
) -> std::sync::Arc<chronik_tui::capture::ConnEvent> {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("event in time")
        .expect("event")
}

#[tokio::test]
async fn opened_and_closed_by_whom() {
    let store = Store::new(StoreLimits::default());
    let mut events = store.subscribe_conn_events();
    let config = BrokerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..BrokerConfig::default()
    };
    let b = broker::start(config, store.clone(), Settings::new(Knobs::default()))
        .await
        .unwrap();

    // A client that asks ApiVersions v0 and hangs up.
    let mut s = TcpStream::connect(b.local_addr).await.unwrap();
    let req = [0u8, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
    s.write_all(&req).await.unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap();
    drop(s);
    let opened = next(&mut events).await;
    assert_eq!(opened.kind, ConnEventKind::Opened);
    let closed = next(&mut events).await;
    assert_eq!(closed.conn, opened.conn);
    match &closed.kind {
        ConnEventKind::Closed { by, .. } => assert_eq!(*by, ClosedBy::Client),
        other => panic!("expected a close, got {other:?}"),
    }

    // A client that sends garbage: the broker closes, and says why.
    let mut s = TcpStream::connect(b.local_addr).await.unwrap();
    s.write_all(&[0, 0, 0, 3, 1, 2, 3]).await.unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest).await;
    let opened = next(&mut events).await;
    assert_eq!(opened.kind, ConnEventKind::Opened);
    let closed = next(&mut events).await;
    match &closed.kind {
        ConnEventKind::Closed { by, reason } => {
            assert_eq!(*by, ClosedBy::Broker);
            assert!(reason.contains("malformed request"), "{reason}");
        }
        other => panic!("expected a close, got {other:?}"),
    }
    assert_eq!(store.conn_events().len(), 4);
}
