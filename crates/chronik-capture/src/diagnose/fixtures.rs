//! Client tables for the tests of the views that show them (feature `test-fixtures`).

use super::{ClosedBy, ConnInfo, Health};

/// When the fixtures' closed connections closed, µs since the epoch.
const CLOSED_AT: i64 = 1_700_000_000_000_000;

/// A connection in each state there is, open and closed by either side, with peers, client ids
/// and software names of different lengths (an IPv6 peer, confluent-kafka's long names).
pub fn every_state() -> Vec<ConnInfo> {
    let mut v = Vec::new();
    let closes = [None, Some(ClosedBy::Client), Some(ClosedBy::Broker)];
    for (i, (health, closed)) in Health::ALL
        .iter()
        .flat_map(|h| closes.iter().map(move |c| (*h, *c)))
        .enumerate()
    {
        let conn = i as u64 + 1;
        let peer = if i % 2 == 0 {
            format!("127.0.0.1:{}", 50000 + i)
        } else {
            format!("[2001:db8::{i}]:{}", 40000 + i)
        };
        let mut c = ConnInfo::new(conn, peer.parse().unwrap());
        c.health = health;
        c.closed = closed.map(|by| (by, CLOSED_AT, "test".into()));
        if i % 3 == 0 {
            c.client_id = Some("confluent-kafka-2-librdkafka-2.16.0".into());
            c.software_name = Some("confluent-kafka-python".into());
            c.software_version = Some("2.16.1-rdkafka-2.16.0".into());
        } else if i % 3 == 1 {
            c.client_id = Some("app".into());
        }
        c.requests = 10u64.pow(i as u32 % 4);
        v.push(c);
    }
    v
}
