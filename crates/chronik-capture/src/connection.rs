//! Connection lifecycle events: a client connecting, and who closed the connection and why.
//! Sources publish them next to exchanges (the broker from its sockets; a capture from SYN and
//! FIN/RST), so views can tell a client that hung up from one that is waiting.

use std::net::SocketAddr;

use serde::Serialize;

/// Who ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedBy {
    /// The client closed or reset it.
    Client,
    /// The broker closed it (bad frame, refused request, failed authentication, shutdown).
    Broker,
}

/// What happened to a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnEventKind {
    Opened,
    Closed { by: ClosedBy, reason: String },
}

/// One connection event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnEvent {
    /// Connection id, as in [`Exchange::conn`](super::Exchange::conn).
    pub conn: u64,
    /// Address of the client (`ip:port` in JSON).
    pub peer: SocketAddr,
    /// When it happened, µs since the epoch.
    pub at: i64,
    pub kind: ConnEventKind,
}
