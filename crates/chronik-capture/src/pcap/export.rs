//! Writing exchanges out: pcapng that Wireshark and tshark dissect as Kafka (with Ethernet,
//! IP and TCP synthesised around the frames), and JSON lines.
//!
//! The pcapng has one section and one Ethernet interface with microsecond timestamps. A TCP
//! connection is keyed by the exchange's connection id, client address and server address; at
//! its first exchange it gets a three-way handshake (at the source's `Opened` time when that is
//! known, else just before the first bytes). Requests go client to server at `request_at`,
//! responses back at `response_at`, cut into segments of at most [`MAX_SEGMENT`] bytes, with
//! sequence and acknowledgement numbers that follow from what was written, an ACK from the
//! receiving side after each frame that the other side does not answer and inside long frames,
//! and correct IPv4 header and TCP checksums. A `Closed` event, or [`PcapngExporter::finish`]
//! for connections still open, ends a connection with FIN, FIN and ACK.
//!
//! Each exchange's first packet carries a pcapng comment (`frame.comment` in Wireshark):
//! `chronik-tui #12 Produce v7 corr=4; throttle_time_ms placement front (rule 1: …); <notes>`.
//! A marker (a setting changed) becomes a comment on the next packet written; markers left when
//! the file ends ride on a small Ethernet frame of the local experimental EtherType 0x88B5, so
//! no note is lost.
//!
//! Items are written in the order they are given: exchanges come by response completion and
//! may interleave connections with times that go back and forth between them; within one
//! direction of one connection bytes keep the order they were given in.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

use serde_json::json;

use crate::render::{self, clock};
use crate::{ClosedBy, ConnEvent, ConnEventKind, Exchange, Marker, Status};
use chronik_protocol::registry;

/// Largest TCP payload per synthesised segment (an IPv4 total length is 16 bits).
pub const MAX_SEGMENT: usize = 65_000;

/// Bytes one side may have unacknowledged before the other side ACKs inside a long frame.
const ACK_EVERY: u32 = 4 * MAX_SEGMENT as u32;
/// The MSS advertised in the handshake (loopback's, 65535 minus IP and TCP headers).
const MSS: u16 = 65_495;
/// Window scale advertised in the handshake; with [`WINDOW`] that is an 8 MiB window.
const WINDOW_SHIFT: u8 = 7;
const WINDOW: u16 = 0xFFFF;
/// Longest comment written, in bytes (cut at a character boundary).
const MAX_COMMENT: usize = 4096;
/// Marker comments held for the next packet; more are counted, not kept.
const MAX_PENDING: usize = 64;
/// IEEE 802 local experimental EtherType, for the frame that carries markers left at the end.
const NOTE_ETHERTYPE: u16 = 0x88B5;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

// pcapng block types and option codes.
const SECTION_HEADER: u32 = 0x0A0D_0D0A;
const INTERFACE_DESCRIPTION: u32 = 1;
const ENHANCED_PACKET: u32 = 6;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const LINKTYPE_ETHERNET: u16 = 1;

/// Which end of a connection sends a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// One synthesised TCP connection.
#[derive(Debug, Clone)]
struct Flow {
    client: SocketAddr,
    server: SocketAddr,
    /// Next sequence number each side sends, by [`Side::index`].
    next_seq: [u32; 2],
    /// Bytes each side sent that the other has not acknowledged yet.
    unacked: [u32; 2],
    /// Time of this connection's newest packet.
    last_at: i64,
    /// Creation order, for closing leftovers in a stable order.
    order: u64,
}

/// Frames pcapng blocks and keeps what spans connections: the pending marker comments, the IP
/// identification counter, the newest time written.
struct Sink<W: Write> {
    out: W,
    ip_id: u16,
    pending: Vec<String>,
    /// Markers beyond [`MAX_PENDING`] not kept for the next packet.
    dropped: usize,
    last_at: i64,
}

impl<W: Write> Sink<W> {
    /// Holds a comment for the next packet (counts it instead past [`MAX_PENDING`]).
    fn push_pending(&mut self, comment: String) {
        if self.pending.len() >= MAX_PENDING {
            self.dropped += 1;
        } else {
            self.pending.push(bounded(comment));
        }
    }

    /// The pending marker comments, then `own`: what the next packet carries.
    fn take_comments(&mut self, own: Option<String>) -> Vec<String> {
        let mut all = std::mem::take(&mut self.pending);
        if self.dropped > 0 {
            all.push(format!(
                "chronik-tui: {} more markers not shown",
                std::mem::take(&mut self.dropped)
            ));
        }
        all.extend(own);
        all
    }

    fn frame(&mut self, at: i64, frame: &[u8], comments: &[String]) -> io::Result<()> {
        self.last_at = self.last_at.max(at);
        write_block(
            &mut self.out,
            ENHANCED_PACKET,
            &enhanced_packet(at, frame, comments),
        )
    }

    /// The one Ethernet frame that carries markers no packet followed.
    fn note_frame(&mut self) -> io::Result<()> {
        let comments = self.take_comments(None);
        let Some(first) = comments.first() else {
            return Ok(());
        };
        let mut frame = Vec::with_capacity(14 + first.len().min(1500));
        frame.extend_from_slice(&[0xFF; 6]);
        frame.extend_from_slice(&SERVER_MAC);
        frame.extend_from_slice(&NOTE_ETHERTYPE.to_be_bytes());
        frame.extend_from_slice(&first.as_bytes()[..first.len().min(1500)]);
        let at = self.last_at;
        self.frame(at, &frame, &comments)
    }
}

impl Flow {
    /// Writes one TCP packet from `from`: its sequence number is that side's next, its
    /// acknowledgement (with ACK set) everything the other side sent.
    fn packet<W: Write>(
        &mut self,
        sink: &mut Sink<W>,
        from: Side,
        at: i64,
        flags: u8,
        payload: &[u8],
        comment: Option<String>,
    ) -> io::Result<()> {
        let (me, peer) = (from.index(), from.other().index());
        let seq = self.next_seq[me];
        let ack = if flags & ACK != 0 {
            self.unacked[peer] = 0;
            self.next_seq[peer]
        } else {
            0
        };
        let (src, dst) = match from {
            Side::Client => (self.client, self.server),
            Side::Server => (self.server, self.client),
        };
        let segment = TcpSegment {
            src,
            dst,
            seq,
            ack,
            flags,
            payload,
        };
        let frame = ethernet_frame(&segment, from == Side::Client, sink.ip_id);
        sink.ip_id = sink.ip_id.wrapping_add(1);
        let len = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        self.next_seq[me] = seq.wrapping_add(len);
        self.unacked[me] = self.unacked[me].saturating_add(payload.len() as u32);
        self.last_at = self.last_at.max(at);
        let comments = sink.take_comments(comment);
        sink.frame(at, &frame, &comments)
    }

    fn handshake<W: Write>(&mut self, sink: &mut Sink<W>, at: i64) -> io::Result<()> {
        self.packet(sink, Side::Client, at, SYN, &[], None)?;
        self.packet(sink, Side::Server, at, SYN | ACK, &[], None)?;
        self.packet(sink, Side::Client, at, ACK, &[], None)
    }

    /// A frame's bytes from `from`, in segments; the first carries `comment`.
    fn send<W: Write>(
        &mut self,
        sink: &mut Sink<W>,
        from: Side,
        at: i64,
        bytes: &[u8],
        mut comment: Option<String>,
    ) -> io::Result<()> {
        let count = bytes.len().div_ceil(MAX_SEGMENT);
        for (i, chunk) in bytes.chunks(MAX_SEGMENT).enumerate() {
            if self.unacked[from.index()].saturating_add(chunk.len() as u32) > ACK_EVERY {
                self.ack(sink, from.other(), at)?;
            }
            let flags = if i + 1 == count { ACK | PSH } else { ACK };
            self.packet(sink, from, at, flags, chunk, comment.take())?;
        }
        Ok(())
    }

    /// A bare ACK from `by` when the other side has bytes it has not acknowledged.
    fn ack<W: Write>(&mut self, sink: &mut Sink<W>, by: Side, at: i64) -> io::Result<()> {
        if self.unacked[by.other().index()] == 0 {
            return Ok(());
        }
        self.packet(sink, by, at, ACK, &[], None)
    }

    /// FIN from the closer, FIN back, the last ACK.
    fn close<W: Write>(&mut self, sink: &mut Sink<W>, closer: Side, at: i64) -> io::Result<()> {
        let at = at.max(self.last_at);
        self.packet(sink, closer, at, FIN | ACK, &[], None)?;
        self.packet(sink, closer.other(), at, FIN | ACK, &[], None)?;
        self.packet(sink, closer, at, ACK, &[], None)
    }
}

/// Writes a pcapng file from exchanges, connection events and markers, in the order given.
pub struct PcapngExporter<W: Write> {
    sink: Sink<W>,
    default_server: SocketAddr,
    /// Open connections by (connection id, client address); one per server address.
    flows: HashMap<(u64, SocketAddr), Vec<Flow>>,
    /// `Opened` times of connections with nothing written yet.
    opened: HashMap<(u64, SocketAddr), i64>,
    /// Connections created so far (initial sequence numbers and order come from it).
    created: u64,
}

impl<W: Write> PcapngExporter<W> {
    /// Writes the section header and one Ethernet interface description (µs timestamps).
    /// `default_server` is the broker side for exchanges that do not name theirs.
    pub fn new(mut out: W, default_server: SocketAddr) -> io::Result<Self> {
        write_block(&mut out, SECTION_HEADER, &section_header())?;
        write_block(&mut out, INTERFACE_DESCRIPTION, &interface_description())?;
        Ok(PcapngExporter {
            sink: Sink {
                out,
                ip_id: 1,
                pending: Vec::new(),
                dropped: 0,
                last_at: 0,
            },
            default_server,
            flows: HashMap::new(),
            opened: HashMap::new(),
            created: 0,
        })
    }

    /// Writes one exchange: its request client to server, then its response back, on the
    /// exchange's connection (opened with a handshake if it is new). The first packet carries
    /// the exchange's comment; an exchange with no bytes at all passes it to the next packet.
    pub fn exchange(&mut self, ex: &Exchange) -> io::Result<()> {
        let response_at = ex.response_at().unwrap_or(if ex.request().is_empty() {
            ex.request_at
        } else {
            ex.request_at.saturating_add(1)
        });
        let first_at = match (ex.request(), ex.response()) {
            (req, _) if !req.is_empty() => ex.request_at,
            (_, Some(resp)) if !resp.is_empty() => response_at,
            _ => {
                self.sink.push_pending(exchange_comment(ex));
                return Ok(());
            }
        };
        let (client, server) = self.endpoints(ex.peer(), ex.server());
        let key = (ex.conn, ex.peer());
        let mut flow = self.take_flow(&key, client, server, first_at)?;
        let comment = Some(exchange_comment(ex));
        let result = write_exchange(&mut self.sink, &mut flow, ex, response_at, comment);
        self.flows.entry(key).or_default().push(flow);
        result
    }

    /// A connection event: `Opened` is remembered for the handshake's time; `Closed` ends the
    /// connection's TCP streams (FIN from the side that closed, FIN back, ACK). A connection
    /// that closes with nothing written shows as a handshake and its close, to the default
    /// server.
    pub fn conn_event(&mut self, ev: &ConnEvent) -> io::Result<()> {
        let key = (ev.conn, ev.peer);
        match &ev.kind {
            ConnEventKind::Opened => {
                if !self.flows.contains_key(&key) {
                    self.opened.insert(key, ev.at);
                }
                Ok(())
            }
            ConnEventKind::Closed { by, .. } => {
                let closer = match by {
                    ClosedBy::Client => Side::Client,
                    ClosedBy::Broker => Side::Server,
                };
                let mut flows = self.flows.remove(&key).unwrap_or_default();
                if flows.is_empty() && self.opened.contains_key(&key) {
                    let (client, server) = self.endpoints(ev.peer, None);
                    flows.push(self.take_flow(&key, client, server, ev.at)?);
                }
                for mut flow in flows {
                    flow.close(&mut self.sink, closer, ev.at)?;
                }
                Ok(())
            }
        }
    }

    /// A marker: its text (with its id and time) becomes a comment on the next packet.
    pub fn marker(&mut self, m: &Marker) -> io::Result<()> {
        self.sink.push_pending(format!(
            "chronik-tui marker #{} at {}: {}",
            m.id,
            clock(m.at),
            m.text
        ));
        Ok(())
    }

    /// Writes what is buffered in the writer (the file stays open).
    pub fn flush(&mut self) -> io::Result<()> {
        self.sink.out.flush()
    }

    /// Closes the connections still open (FIN from the client at each one's last packet
    /// time), writes markers no packet carried, flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let mut open: Vec<Flow> = self.flows.drain().flat_map(|(_, f)| f).collect();
        open.sort_by_key(|f| f.order);
        for mut flow in open {
            let at = flow.last_at;
            flow.close(&mut self.sink, Side::Client, at)?;
        }
        self.sink.note_frame()?;
        self.sink.out.flush()?;
        Ok(self.sink.out)
    }

    /// The client and server addresses of a connection, in one address family: the client
    /// `peer`, the server as the exchange names it (else the default). A mix of IPv4 and IPv6
    /// becomes IPv6 with the IPv4 side mapped, as a dual-stack socket reports it.
    fn endpoints(
        &self,
        client: SocketAddr,
        server: Option<SocketAddr>,
    ) -> (SocketAddr, SocketAddr) {
        let server = server.unwrap_or(self.default_server);
        if client.is_ipv4() == server.is_ipv4() {
            return (client, server);
        }
        let v6 = |a: SocketAddr| match a.ip() {
            IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
            IpAddr::V6(_) => a,
        };
        (v6(client), v6(server))
    }

    /// The open connection for `key` to `server`, taken out of the map; a new one, with its
    /// handshake written, when there is none.
    fn take_flow(
        &mut self,
        key: &(u64, SocketAddr),
        client: SocketAddr,
        server: SocketAddr,
        first_at: i64,
    ) -> io::Result<Flow> {
        if let Some(list) = self.flows.get_mut(key) {
            if let Some(i) = list.iter().position(|f| f.server == server) {
                let flow = list.swap_remove(i);
                if list.is_empty() {
                    self.flows.remove(key);
                }
                return Ok(flow);
            }
        }
        let at = match self.opened.remove(key) {
            Some(t) if t <= first_at => t,
            _ => first_at.saturating_sub(1),
        };
        self.created += 1;
        let isn = |salt: u64| {
            let x = (self.created ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x >> 32) as u32
        };
        let mut flow = Flow {
            client,
            server,
            next_seq: [isn(0), isn(0x5151_0000_0000)],
            unacked: [0, 0],
            last_at: at,
            order: self.created,
        };
        flow.handshake(&mut self.sink, at)?;
        Ok(flow)
    }
}

/// An exchange's frames on its connection: the request (ACKed by the server when no response
/// follows), then the response (ACKed by the client).
fn write_exchange<W: Write>(
    sink: &mut Sink<W>,
    flow: &mut Flow,
    ex: &Exchange,
    response_at: i64,
    mut comment: Option<String>,
) -> io::Result<()> {
    let response = ex.response().filter(|r| !r.is_empty());
    if !ex.request().is_empty() {
        flow.send(
            sink,
            Side::Client,
            ex.request_at,
            ex.request(),
            comment.take(),
        )?;
        if response.is_none() {
            flow.ack(sink, Side::Server, ex.request_at)?;
        }
    }
    if let Some(resp) = response {
        flow.send(sink, Side::Server, response_at, resp, comment.take())?;
        flow.ack(sink, Side::Client, response_at)?;
    }
    Ok(())
}

/// The comment on an exchange's first packet.
fn exchange_comment(ex: &Exchange) -> String {
    let mut c = format!("chronik-tui #{}", ex.id);
    if ex.framing == crate::Framing::SaslToken {
        c.push_str(" bare SASL token after SaslHandshake v0 (no Kafka header)");
    } else if ex.api_key >= 0 {
        c.push_str(&format!(
            " {} v{} corr={}",
            registry::api_name(ex.api_key),
            ex.api_version,
            ex.correlation_id
        ));
    } else {
        c.push_str(" (no readable request header)");
    }
    if let Some(p) = ex.placement() {
        c.push_str(&format!("; throttle_time_ms placement {p}"));
    }
    match &ex.status {
        Status::Answered => {}
        Status::NoResponse => c.push_str("; no response (acks=0)"),
        Status::Unanswered => c.push_str("; unanswered"),
        Status::Malformed { error } => c.push_str(&format!("; malformed: {error}")),
        Status::Refused { reason } => c.push_str(&format!("; refused: {reason}")),
    }
    for n in ex.notes() {
        c.push_str("; ");
        c.push_str(n);
        if c.len() > MAX_COMMENT {
            break;
        }
    }
    bounded(c)
}

/// `s` cut to at most [`MAX_COMMENT`] bytes at a character boundary.
fn bounded(mut s: String) -> String {
    if s.len() > MAX_COMMENT {
        let mut end = MAX_COMMENT - '…'.len_utf8();
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// A TCP segment to frame.
struct TcpSegment<'a> {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &'a [u8],
}

/// The Ethernet frame of a segment: Ethernet II, IPv4 (with its header checksum) or IPv6 by
/// the addresses (which share a family), TCP with its checksum. A SYN carries MSS and window
/// scale options.
fn ethernet_frame(seg: &TcpSegment, from_client: bool, ip_id: u16) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(28 + seg.payload.len());
    tcp.extend_from_slice(&seg.src.port().to_be_bytes());
    tcp.extend_from_slice(&seg.dst.port().to_be_bytes());
    tcp.extend_from_slice(&seg.seq.to_be_bytes());
    tcp.extend_from_slice(&seg.ack.to_be_bytes());
    let syn = seg.flags & SYN != 0;
    tcp.push(if syn { 7 << 4 } else { 5 << 4 });
    tcp.push(seg.flags);
    // The window field of a SYN is never scaled.
    tcp.extend_from_slice(&WINDOW.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    if syn {
        tcp.extend_from_slice(&[2, 4]);
        tcp.extend_from_slice(&MSS.to_be_bytes());
        tcp.extend_from_slice(&[1, 3, 3, WINDOW_SHIFT]);
    }
    tcp.extend_from_slice(seg.payload);

    let (smac, dmac) = if from_client {
        (CLIENT_MAC, SERVER_MAC)
    } else {
        (SERVER_MAC, CLIENT_MAC)
    };
    let mut frame = Vec::with_capacity(14 + 40 + tcp.len());
    frame.extend_from_slice(&dmac);
    frame.extend_from_slice(&smac);
    let tcp_len = tcp.len() as u32;
    match (seg.src.ip(), seg.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let pseudo =
                sum_words(&s.octets(), 0) + sum_words(&d.octets(), 0) + 6 + u64::from(tcp_len);
            let sum = fold(sum_words(&tcp, pseudo));
            tcp[16..18].copy_from_slice(&sum.to_be_bytes());
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
            ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // don't fragment
            ip[8] = 64;
            ip[9] = 6;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let sum = fold(sum_words(&ip, 0));
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&0x0800u16.to_be_bytes());
            frame.extend_from_slice(&ip);
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(v) => v,
                IpAddr::V4(v) => v.to_ipv6_mapped(),
            };
            let (s, d) = (v6(s), v6(d));
            let pseudo =
                sum_words(&s.octets(), 0) + sum_words(&d.octets(), 0) + 6 + u64::from(tcp_len);
            let sum = fold(sum_words(&tcp, pseudo));
            tcp[16..18].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&0x86DDu16.to_be_bytes());
            frame.extend_from_slice(&0x6000_0000u32.to_be_bytes());
            frame.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            frame.push(6); // next header: TCP
            frame.push(64); // hop limit
            frame.extend_from_slice(&s.octets());
            frame.extend_from_slice(&d.octets());
        }
    }
    frame.extend_from_slice(&tcp);
    frame
}

/// Adds `data` as big-endian 16-bit words (an odd last byte padded with zero) to `sum`.
fn sum_words(data: &[u8], mut sum: u64) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// The Internet checksum of a word sum: folded to 16 bits, complemented.
fn fold(mut sum: u64) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Section Header Block body: little-endian, version 1.0, length unknown, our application.
fn section_header() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(-1i64).to_le_bytes());
    push_option(&mut b, SHB_USERAPPL, b"chronik-tui");
    b.extend_from_slice(&[0; 4]);
    b
}

/// Interface Description Block body: Ethernet, no snapshot length limit, default (µs)
/// timestamp resolution.
fn interface_description() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    push_option(&mut b, IF_NAME, b"chronik-tui");
    b.extend_from_slice(&[0; 4]);
    b
}

/// Enhanced Packet Block body: interface 0, the time in µs (0 before the epoch), the frame,
/// one `opt_comment` per comment.
fn enhanced_packet(at: i64, frame: &[u8], comments: &[String]) -> Vec<u8> {
    let ts = u64::try_from(at).unwrap_or(0);
    let mut b =
        Vec::with_capacity(28 + frame.len() + comments.iter().map(|c| c.len() + 8).sum::<usize>());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
    b.extend_from_slice(&(ts as u32).to_le_bytes());
    b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    b.extend_from_slice(frame);
    pad4(&mut b);
    if !comments.is_empty() {
        for c in comments {
            push_option(&mut b, OPT_COMMENT, bounded(c.clone()).as_bytes());
        }
        b.extend_from_slice(&[0; 4]);
    }
    b
}

fn pad4(v: &mut Vec<u8>) {
    v.resize(v.len().next_multiple_of(4), 0);
}

/// One option: code, length, value padded to 4 bytes (values are bounded well below 64 KiB).
fn push_option(b: &mut Vec<u8>, code: u16, value: &[u8]) {
    let value = &value[..value.len().min(u16::MAX as usize)];
    b.extend_from_slice(&code.to_le_bytes());
    b.extend_from_slice(&(value.len() as u16).to_le_bytes());
    b.extend_from_slice(value);
    pad4(b);
}

/// A block: type, total length, body (padded to 4 bytes), total length again.
fn write_block<W: Write>(out: &mut W, kind: u32, body: &[u8]) -> io::Result<()> {
    let padded = body.len().next_multiple_of(4);
    let total = u32::try_from(12 + padded)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng block over 4 GiB"))?;
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&[0; 3][..padded - body.len()])?;
    out.write_all(&total.to_le_bytes())
}

/// Writes JSON lines: each exchange as the headless `--json` mode prints it
/// ([`render::json`]), connection events as `{"kind":"conn_event","event":"opened"|
/// "closed",…}` and markers as `{"kind":"marker",…}`.
pub struct JsonLinesExporter<W: Write> {
    out: W,
}

impl<W: Write> JsonLinesExporter<W> {
    /// A writer of JSON lines into `out`.
    pub fn new(out: W) -> Self {
        JsonLinesExporter { out }
    }

    /// One exchange, with both frames' hex and decoded trees.
    pub fn exchange(&mut self, ex: &Exchange) -> io::Result<()> {
        writeln!(self.out, "{}", render::json_line(ex))
    }

    /// `{"kind":"conn_event","conn":…,"peer":…,"at":…,"event":"opened"}`, or with
    /// `"event":"closed","by":"client"|"broker","reason":…`.
    pub fn conn_event(&mut self, ev: &ConnEvent) -> io::Result<()> {
        let mut v = json!({
            "kind": "conn_event",
            "conn": ev.conn,
            "peer": ev.peer,
            "at": ev.at,
        });
        match &ev.kind {
            ConnEventKind::Opened => v["event"] = json!("opened"),
            ConnEventKind::Closed { by, reason } => {
                v["event"] = json!("closed");
                v["by"] = json!(by);
                v["reason"] = json!(reason);
            }
        }
        writeln!(self.out, "{v}")
    }

    /// `{"kind":"marker","id":…,"at":…,"after_exchange":…,"text":…}`.
    pub fn marker(&mut self, m: &Marker) -> io::Result<()> {
        let v = json!({
            "kind": "marker",
            "id": m.id,
            "at": m.at,
            "after_exchange": m.after_exchange,
            "text": m.text,
        });
        writeln!(self.out, "{v}")
    }

    /// Writes what is buffered in the writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::{packet, reader::CaptureReader, Segment};

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    fn ex(
        id: u64,
        conn: u64,
        peer: &str,
        server: Option<&str>,
        req: usize,
        resp: Option<usize>,
    ) -> Exchange {
        let body = |n: usize, start: u8| -> Vec<u8> {
            frame(
                &(0..n)
                    .map(|i| (i as u8).wrapping_mul(31).wrapping_add(start))
                    .collect::<Vec<_>>(),
            )
        };
        let status = if resp.is_some() {
            Status::Answered
        } else {
            Status::NoResponse
        };
        let request_at = 1_700_000_000_000_000 + id as i64 * 1000;
        let endpoints =
            crate::Endpoints::shared(peer.parse().unwrap(), server.map(|s| s.parse().unwrap()));
        let request = if req == 0 {
            Vec::new()
        } else {
            body(req, id as u8)
        };
        let mut ex = Exchange::new(conn, endpoints, request_at, status)
            .with_frames(request, resp.map(|n| body(n, 100 + id as u8)))
            .with_response_at(resp.map(|_| request_at + 500));
        ex.id = id;
        ex.api_key = 0;
        ex.api_version = 7;
        ex.correlation_id = id as i32;
        ex
    }

    /// A written packet: its time, its frame and its comments.
    struct Written {
        at: u64,
        frame: Vec<u8>,
        comments: Vec<String>,
    }

    /// Walks the pcapng blocks by hand (independently of the crate's reader), checking each
    /// block's two length fields agree.
    fn blocks(file: &[u8]) -> (Vec<u32>, Vec<Written>) {
        let mut kinds = Vec::new();
        let mut packets = Vec::new();
        let mut pos = 0;
        let u32_at = |p: usize| u32::from_le_bytes(file[p..p + 4].try_into().unwrap());
        while pos < file.len() {
            let kind = u32_at(pos);
            let total = u32_at(pos + 4) as usize;
            assert_eq!(total % 4, 0, "block length {total} not a multiple of 4");
            assert_eq!(u32_at(pos + total - 4) as usize, total, "trailing length");
            kinds.push(kind);
            if kind == ENHANCED_PACKET {
                let body = &file[pos + 8..pos + total - 4];
                let at = (u64::from(u32_at(pos + 12)) << 32) | u64::from(u32_at(pos + 16));
                let caplen = u32_at(pos + 20) as usize;
                assert_eq!(caplen, u32_at(pos + 24) as usize);
                let frame = body[20..20 + caplen].to_vec();
                let mut o = 20 + caplen.next_multiple_of(4);
                let mut comments = Vec::new();
                while o + 4 <= body.len() {
                    let code = u16::from_le_bytes([body[o], body[o + 1]]);
                    let len = u16::from_le_bytes([body[o + 2], body[o + 3]]) as usize;
                    if code == 0 {
                        break;
                    }
                    assert_eq!(code, OPT_COMMENT);
                    let text =
                        std::str::from_utf8(&body[o + 4..o + 4 + len]).expect("UTF-8 comment");
                    comments.push(text.to_string());
                    o += 4 + len.next_multiple_of(4);
                }
                packets.push(Written {
                    at,
                    frame,
                    comments,
                });
            }
            pos += total;
        }
        (kinds, packets)
    }

    /// The TCP segments as the capture reader and packet parser see them.
    fn segments(file: Vec<u8>) -> Vec<Segment> {
        let mut r = CaptureReader::new(std::io::Cursor::new(file)).expect("pcapng header");
        let mut out = Vec::new();
        while let Some(p) = r.next_packet() {
            if let Some(s) = packet::parse(&p.expect("packet")).expect("parses") {
                out.push(s);
            }
        }
        out
    }

    /// Checks the IPv4 header checksum and the TCP checksum of one Ethernet frame.
    fn checksums_hold(frame: &[u8]) {
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let (pseudo, tcp) = match ethertype {
            0x0800 => {
                let ip = &frame[14..34];
                assert_eq!(fold(sum_words(ip, 0)), 0, "IPv4 header checksum");
                let len = u16::from_be_bytes([ip[2], ip[3]]) as usize;
                let tcp = &frame[34..14 + len];
                let pseudo = sum_words(&ip[12..20], 0) + 6 + tcp.len() as u64;
                (pseudo, tcp)
            }
            0x86DD => {
                let ip = &frame[14..54];
                let tcp = &frame[54..];
                assert_eq!(u16::from_be_bytes([ip[4], ip[5]]) as usize, tcp.len());
                (sum_words(&ip[8..40], 0) + 6 + tcp.len() as u64, tcp)
            }
            other => panic!("ethertype {other:#x}"),
        };
        assert_eq!(fold(sum_words(tcp, pseudo)), 0, "TCP checksum");
    }

    /// Replays the segments of one connection as a receiver would: each side's sequence numbers
    /// follow on, every ACK acknowledges exactly what the other side sent so far, and the bytes
    /// each way are what was given.
    fn check_stream(segs: &[&Segment], client_bytes: &[u8], server_bytes: &[u8]) {
        let client = segs[0].src;
        assert!(segs[0].flags.syn && !segs[0].flags.ack, "starts with a SYN");
        assert!(segs[1].flags.syn && segs[1].flags.ack, "then SYN-ACK");
        let mut next: HashMap<SocketAddr, u32> = HashMap::new();
        let mut got: HashMap<SocketAddr, Vec<u8>> = HashMap::new();
        for s in segs {
            let other = if s.src == client { s.dst } else { client };
            if let Some(n) = next.get(&s.src) {
                assert_eq!(s.seq, *n, "sequence number of a segment from {}", s.src);
            }
            if s.flags.ack {
                assert_eq!(Some(&s.ack), next.get(&other), "ACK from {}", s.src);
            }
            assert!(s.payload.len() <= MAX_SEGMENT);
            let len = s.payload.len() as u32 + u32::from(s.flags.syn || s.flags.fin);
            next.insert(s.src, s.seq.wrapping_add(len));
            got.entry(s.src).or_default().extend_from_slice(&s.payload);
        }
        let server = segs[0].dst;
        assert_eq!(
            got.get(&client).map(Vec::as_slice).unwrap_or(&[]),
            client_bytes
        );
        assert_eq!(
            got.get(&server).map(Vec::as_slice).unwrap_or(&[]),
            server_bytes
        );
        let last = segs[segs.len() - 3..]
            .iter()
            .map(|s| (s.flags.fin, s.flags.ack))
            .collect::<Vec<_>>();
        assert_eq!(
            last,
            [(true, true), (true, true), (false, true)],
            "FIN, FIN, ACK"
        );
    }

    #[test]
    fn a_bare_sasl_token_says_so_in_its_comment() {
        let mut e = ex(3, 1, "127.0.0.1:5000", None, 20, Some(0));
        e.api_key = 36;
        e.api_version = 0;
        e.correlation_id = -1;
        e.framing = crate::Framing::SaslToken;
        assert_eq!(
            exchange_comment(&e),
            "chronik-tui #3 bare SASL token after SaslHandshake v0 (no Kafka header)"
        );
    }

    #[test]
    fn connections_carry_the_frames_with_consistent_tcp() {
        let mut w = PcapngExporter::new(Vec::new(), "127.0.0.1:9092".parse().unwrap()).unwrap();
        // Two connections interleaved, one IPv6; a frame of three segments; a produce with no
        // response; a response whose request was never seen.
        let exs = [
            ex(
                1,
                1,
                "127.0.0.1:50001",
                Some("127.0.0.1:9092"),
                40,
                Some(30),
            ),
            ex(2, 2, "[::1]:50002", Some("[::1]:9092"), 50, Some(20)),
            ex(3, 1, "127.0.0.1:50001", None, 150_000, Some(60)),
            ex(4, 2, "[::1]:50002", Some("[::1]:9092"), 70, None),
            ex(5, 1, "127.0.0.1:50001", Some("127.0.0.1:9092"), 0, Some(25)),
            // A response long enough that the client ACKs inside it.
            ex(6, 2, "[::1]:50002", Some("[::1]:9092"), 10, Some(600_000)),
        ];
        w.conn_event(&ConnEvent {
            conn: 1,
            peer: "127.0.0.1:50001".parse().unwrap(),
            at: 1_699_999_999_000_000,
            kind: ConnEventKind::Opened,
        })
        .unwrap();
        for e in &exs {
            w.exchange(e).unwrap();
        }
        w.conn_event(&ConnEvent {
            conn: 2,
            peer: "[::1]:50002".parse().unwrap(),
            at: 1_700_000_000_009_000,
            kind: ConnEventKind::Closed {
                by: ClosedBy::Broker,
                reason: "bye".into(),
            },
        })
        .unwrap();
        let file = w.finish().unwrap();
        let (kinds, packets) = blocks(&file);
        assert_eq!(&kinds[..2], [SECTION_HEADER, INTERFACE_DESCRIPTION]);
        for p in &packets {
            checksums_hold(&p.frame);
        }
        let segs = segments(file);
        assert_eq!(segs.len(), packets.len());
        let of = |port: u16| -> Vec<&Segment> {
            segs.iter()
                .filter(|s| s.src.port() == port || s.dst.port() == port)
                .collect()
        };
        let cat = |ids: &[usize], req: bool| -> Vec<u8> {
            ids.iter()
                .flat_map(|&i| {
                    if req {
                        exs[i].request().to_vec()
                    } else {
                        exs[i].response().unwrap_or_default().to_vec()
                    }
                })
                .collect()
        };
        let one = of(50001);
        check_stream(&one, &cat(&[0, 2], true), &cat(&[0, 2, 4], false));
        let two = of(50002);
        check_stream(&two, &cat(&[1, 3, 5], true), &cat(&[1, 5], false));
        // Inside the 600,000-byte response (ten segments) the client ACKs twice, once
        // 260,000 bytes are outstanding; then once after it.
        let long = two
            .iter()
            .skip_while(|s| s.payload.len() != MAX_SEGMENT)
            .take_while(|s| !s.flags.fin)
            .map(|s| (s.src.port() == 9092, s.payload.len()))
            .collect::<Vec<_>>();
        let acks_inside = long[..long.len() - 1]
            .iter()
            .filter(|(from_server, len)| !from_server && *len == 0)
            .count();
        assert_eq!(acks_inside, 2, "{long:?}");
        assert_eq!(
            long.last(),
            Some(&(false, 0)),
            "the client ACKs the whole response"
        );
        assert!(two.iter().all(|s| s.src.is_ipv6()));
        // The handshake of connection 1 at its Opened time; the broker closed connection 2
        // (the server's FIN comes first); connection 1 closed at the end by the client.
        assert_eq!(one[0].ts_nanos, 1_699_999_999_000_000_000);
        assert_eq!(two[two.len() - 3].src.port(), 9092);
        assert_eq!(one[one.len() - 3].src.port(), 50001);
        // The 150,000-byte request: three segments, the receiver ACKs none in between.
        let big: Vec<usize> = one
            .iter()
            .filter(|s| s.payload.len() > 1000)
            .map(|s| s.payload.len())
            .collect();
        assert_eq!(big, [65_000, 65_000, 20_004]);
        // Times: each request at request_at, each response at response_at.
        let first_req = one
            .iter()
            .find(|s| s.src.port() == 50001 && !s.payload.is_empty())
            .unwrap();
        assert_eq!(first_req.ts_nanos, exs[0].request_at * 1000);
    }

    #[test]
    fn each_exchange_has_its_comment_and_markers_ride_on_the_next_packet() {
        let mut w = PcapngExporter::new(Vec::new(), "127.0.0.1:9092".parse().unwrap()).unwrap();
        let mut a = ex(12, 1, "127.0.0.1:50001", None, 10, Some(10));
        a.set_placement(Some(crate::PlacementUsed {
            placement: chronik_protocol::ThrottlePlacement::Front,
            rule: Some((1, "software=kcat*:front".into())),
        }));
        a.set_notes(vec!["a note".into()]);
        w.marker(&Marker {
            id: 3,
            at: 0,
            after_exchange: 11,
            text: "placement: front (was spec)".into(),
        })
        .unwrap();
        w.exchange(&a).unwrap();
        // An exchange with no bytes at all: its comment goes to the next packet.
        w.exchange(&ex(13, 1, "127.0.0.1:50001", None, 0, None))
            .unwrap();
        w.exchange(&ex(14, 1, "127.0.0.1:50001", None, 10, None))
            .unwrap();
        w.marker(&Marker {
            id: 4,
            at: 0,
            after_exchange: 14,
            text: "caps: none".into(),
        })
        .unwrap();
        let file = w.finish().unwrap();
        let (_, packets) = blocks(&file);
        let placement = crate::PlacementUsed {
            placement: chronik_protocol::ThrottlePlacement::Front,
            rule: None,
        };
        let commented: Vec<(usize, &Vec<String>)> = packets
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.comments.is_empty())
            .map(|(i, p)| (i, &p.comments))
            .collect();
        // The marker on the SYN (the first packet after it).
        assert_eq!(commented[0].0, 0);
        assert_eq!(
            commented[0].1,
            &["chronik-tui marker #3 at 00:00:00.000000: placement: front (was spec)"]
        );
        // Exchange 12 on its request's first segment (after the 3 handshake packets).
        assert_eq!(commented[1].0, 3);
        assert_eq!(
            commented[1].1,
            &[format!("chronik-tui #12 Produce v7 corr=12; throttle_time_ms placement {} (rule 1: software=kcat*:front); a note", placement.placement)]
        );
        assert_eq!(
            commented[2].1,
            &[
                "chronik-tui #13 Produce v7 corr=13; no response (acks=0)".to_string(),
                "chronik-tui #14 Produce v7 corr=14; no response (acks=0)".to_string()
            ]
        );
        // The marker after the last exchange: on the client's FIN at the end.
        assert_eq!(
            commented[3].1,
            &["chronik-tui marker #4 at 00:00:00.000000: caps: none"]
        );
        assert_eq!(packets[commented[3].0].frame[47] & FIN, FIN, "a FIN");
        assert_eq!(commented.len(), 4);
    }

    #[test]
    fn markers_with_no_packet_after_them_get_a_note_frame() {
        let mut w = PcapngExporter::new(Vec::new(), "127.0.0.1:9092".parse().unwrap()).unwrap();
        w.marker(&Marker {
            id: 1,
            at: 5,
            after_exchange: 0,
            text: "throttle: 7ms".into(),
        })
        .unwrap();
        let (_, packets) = blocks(&w.finish().unwrap());
        assert_eq!(packets.len(), 1);
        assert_eq!(&packets[0].frame[12..14], &NOTE_ETHERTYPE.to_be_bytes());
        assert_eq!(
            packets[0].comments,
            ["chronik-tui marker #1 at 00:00:00.000005: throttle: 7ms"]
        );
        // No markers, no exchanges: the two header blocks alone.
        let w = PcapngExporter::new(Vec::new(), "127.0.0.1:9092".parse().unwrap()).unwrap();
        let (kinds, packets) = blocks(&w.finish().unwrap());
        assert_eq!((kinds.len(), packets.len()), (2, 0));
    }

    #[test]
    fn odd_input_is_written_without_panicking() {
        let mut w = PcapngExporter::new(Vec::new(), "[::1]:9092".parse().unwrap()).unwrap();
        // The oddest addresses there are: unspecified, port 0, and no server named.
        let mut odd = ex(1, u64::MAX, "0.0.0.0:0", None, 5, Some(5));
        odd.request_at = i64::MAX;
        odd.set_response_at(None);
        odd.api_key = -1;
        odd.set_notes(vec!["é".repeat(5000)]);
        w.exchange(&odd).unwrap();
        let mut early = ex(2, 0, "10.1.2.3:4", Some("[::1]:9092"), 3, Some(4));
        early.request_at = i64::MIN;
        early.set_response_at(Some(i64::MIN));
        w.exchange(&early).unwrap();
        for kind in [
            ConnEventKind::Closed {
                by: ClosedBy::Client,
                reason: String::new(),
            },
            ConnEventKind::Opened,
        ] {
            w.conn_event(&ConnEvent {
                conn: 9,
                peer: "0.0.0.0:0".parse().unwrap(),
                at: i64::MAX,
                kind,
            })
            .unwrap();
        }
        for i in 0..(MAX_PENDING as u64 + 5) {
            w.marker(&Marker {
                id: i,
                at: i64::MIN,
                after_exchange: 0,
                text: "x".repeat(10_000),
            })
            .unwrap();
        }
        let file = w.finish().unwrap();
        let (_, packets) = blocks(&file);
        for p in &packets {
            checksums_hold(&p.frame);
            assert!(p.comments.iter().all(|c| c.len() <= MAX_COMMENT));
        }
        // The IPv4 peers became mapped addresses (the default server is IPv6); times before the
        // epoch became 0.
        let segs = segments(file);
        assert!(segs
            .iter()
            .any(|s| s.src.ip().to_string() == "::ffff:0.0.0.0"));
        assert!(segs
            .iter()
            .any(|s| s.src.ip().to_string() == "::ffff:10.1.2.3"));
        assert!(packets.iter().any(|p| p.at == 0));
        // The markers ride on the first FIN written at the end.
        let last = &packets
            .iter()
            .find(|p| p.comments.len() > 1)
            .expect("a packet with the markers")
            .comments;
        assert_eq!(
            last.len(),
            MAX_PENDING + 1,
            "the rest counted: {:?}",
            last.last()
        );
        assert_eq!(last[MAX_PENDING], "chronik-tui: 5 more markers not shown");
    }

    #[test]
    fn json_lines_hold_exchanges_events_and_markers() {
        let mut w = JsonLinesExporter::new(Vec::new());
        w.conn_event(&ConnEvent {
            conn: 1,
            peer: "127.0.0.1:1".parse().unwrap(),
            at: 5,
            kind: ConnEventKind::Opened,
        })
        .unwrap();
        w.exchange(&ex(7, 1, "127.0.0.1:1", None, 10, Some(10)))
            .unwrap();
        w.marker(&Marker {
            id: 2,
            at: 6,
            after_exchange: 7,
            text: "t".into(),
        })
        .unwrap();
        w.conn_event(&ConnEvent {
            conn: 1,
            peer: "127.0.0.1:1".parse().unwrap(),
            at: 9,
            kind: ConnEventKind::Closed {
                by: ClosedBy::Broker,
                reason: "bad frame".into(),
            },
        })
        .unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            json!({"kind": "conn_event", "conn": 1, "peer": "127.0.0.1:1", "at": 5, "event": "opened"})
        );
        assert_eq!(
            lines[1],
            render::json(&ex(7, 1, "127.0.0.1:1", None, 10, Some(10)))
        );
        assert_eq!(
            lines[2],
            json!({"kind": "marker", "id": 2, "at": 6, "after_exchange": 7, "text": "t"})
        );
        assert_eq!(lines[3]["by"], "broker");
        assert_eq!(lines[3]["reason"], "bad frame");
    }
}
