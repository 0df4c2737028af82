//! Saved captures and live sniffing: packets in (pcap, pcapng, a live interface), Kafka
//! exchanges out, into the same store the embedded broker fills.
//!
//! The flow, one module per step:
//! - [`reader`]: pcap and pcapng files, streamed record by record ([`RawPacket`]); a regular
//!   file is read ahead in chunks on a thread of its own (`prefetch`).
//! - [`packet`]: link layer, IP and TCP headers parsed with `pnet` into [`Segment`]s.
//! - [`reassembly`]: per direction, TCP byte streams put back in order (out-of-order,
//!   retransmitted, overlapping, missing and truncated segments).
//! - [`kafka_stream`]: Kafka connections found by port or by a header heuristic, frames cut
//!   from the byte streams, requests paired with responses by correlation id, [`Exchange`]s
//!   and connection events out.
//! - [`source`]: the steps above as one pipeline into the store, from a file (plain, gzip or
//!   zstd, or standard input) or from [`sniff`], a live interface through `pnet`'s datalink
//!   channel.
//! - [`export`]: pcapng (with synthesised TCP/IP for the broker's own connections) and JSON
//!   lines, and [`parquet`]: a table of exchanges; [`record`] writes a store out with them, once
//!   or as it fills; [`jsonl`] reads the JSON lines back.
//!
//! [`Exchange`]: crate::Exchange

use std::net::SocketAddr;

/// One captured link-layer frame, as a file or an interface delivered it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawPacket {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_nanos: i64,
    /// The link type (a LINKTYPE_* number: 1 Ethernet, 113 Linux SLL, 276 SLL2, 0 BSD
    /// loopback/null, 101 raw IP, 228 raw IPv4, 229 raw IPv6, ...).
    pub linktype: u32,
    /// The bytes captured (at most the snapshot length).
    pub data: Vec<u8>,
    /// The frame's length on the wire (more than `data.len()` when the capture cut it).
    pub orig_len: u32,
    /// The pcapng interface it came from (0 for pcap files and live captures).
    pub interface: u32,
}

impl RawPacket {
    /// The packet, borrowed.
    pub fn borrow(&self) -> PacketRef<'_> {
        PacketRef {
            ts_nanos: self.ts_nanos,
            linktype: self.linktype,
            data: &self.data,
            orig_len: self.orig_len,
            interface: self.interface,
        }
    }
}

/// A captured frame borrowed from where it was read (a capture reader's buffer, an interface's
/// ring): the fields of [`RawPacket`], its bytes not copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketRef<'a> {
    pub ts_nanos: i64,
    pub linktype: u32,
    pub data: &'a [u8],
    pub orig_len: u32,
    pub interface: u32,
}

/// TCP flags that matter to reassembly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// One TCP segment, parsed out of a [`RawPacket`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_nanos: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Sequence number of the first payload byte (of the SYN itself when `flags.syn`).
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// The payload bytes captured.
    pub payload: Vec<u8>,
    /// The payload's length on the wire, from the IP and TCP headers; more than
    /// `payload.len()` when the snapshot length cut the packet (the rest is a gap).
    pub wire_len: u32,
}

impl Default for Segment {
    /// An empty segment between unspecified addresses (for [`packet::parse_into`] to fill).
    fn default() -> Self {
        let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
        Segment {
            ts_nanos: 0,
            src: nowhere,
            dst: nowhere,
            seq: 0,
            ack: 0,
            flags: TcpFlags::default(),
            payload: Vec::new(),
            wire_len: 0,
        }
    }
}

pub mod export;
pub mod jsonl;
pub mod kafka_stream;
pub mod packet;
pub mod parquet;
mod prefetch;
pub mod reader;
pub mod reassembly;
pub mod record;
pub mod sniff;
pub mod source;
