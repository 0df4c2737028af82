//! Exchanges and the store that holds them. Every source (the embedded broker's tap, a pcap
//! file, a live sniff, a replay) produces [`Exchange`] records; views only read them: the
//! display filter (`filter`), client detection and the stall detector (`diagnose`), the shared
//! text forms (`render`), and the pcapng and JSON lines writers (`pcap::export`).
#![forbid(unsafe_code)]

mod connection;
pub mod diagnose;
mod exchange;
mod feed;
pub mod filter;
pub mod lint;
pub mod pcap;
pub mod render;
mod store;
mod verdict;

pub use connection::{ClosedBy, ConnEvent, ConnEventKind};
pub use exchange::{
    now_micros, response_room, share_client_id, ClientId, ConnShares, Endpoints, Exchange, Framing,
    PlacementUsed, Status,
};
pub use store::{InFlight, Marker, Store, StoreLimits, Subscription, TimelineItem};
pub use verdict::{Dissected, FrameFault, Severity, Verdict};
