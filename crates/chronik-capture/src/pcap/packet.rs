//! From a captured frame to a TCP segment: link layer, IPv4 or IPv6, then TCP, with `pnet`'s
//! packet views reading the header fields (but an IPv4 header's addresses and fragment
//! offset, read from its bytes) and every length checked here before it is used.
//!
//! Link types: Ethernet (1) with any number of 802.1Q / 802.1ad VLAN tags, Linux cooked
//! capture v1 (113) and v2 (276), BSD null/loopback (0, address family in the capturing
//! host's byte order), OpenBSD loop (108, network order), raw IP (101, version from the first
//! nibble), raw IPv4 (228) and raw IPv6 (229).
//!
//! The payload handed out is what was captured of the TCP payload, never past the end the IP
//! header gives (Ethernet padding is not payload); [`Segment::wire_len`] is the payload length
//! the IP header claims, so a packet the snapshot length cut shows as a gap downstream.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use pnet::packet::ethernet::{EtherType, EtherTypes, EthernetPacket};
use pnet::packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet::packet::ipv4::Ipv4Packet;
use pnet::packet::ipv6::{ExtensionPacket, FragmentPacket, Ipv6Packet};
use pnet::packet::sll::SLLPacket;
use pnet::packet::sll2::SLL2Packet;
use pnet::packet::tcp::{TcpFlags as PnetTcpFlags, TcpPacket};
use pnet::packet::vlan::VlanPacket;

use super::{PacketRef, RawPacket, Segment, TcpFlags};

/// LINKTYPE_NULL: BSD loopback, a 4-byte address family in the capturing host's byte order.
pub const LINKTYPE_NULL: u32 = 0;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// LINKTYPE_RAW: an IP packet, version from its first nibble.
pub const LINKTYPE_RAW: u32 = 101;
/// LINKTYPE_LOOP: OpenBSD loopback, a 4-byte address family in network byte order.
pub const LINKTYPE_LOOP: u32 = 108;
/// LINKTYPE_LINUX_SLL: Linux cooked capture, 16-byte header.
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// LINKTYPE_IPV4: a raw IPv4 packet.
pub const LINKTYPE_IPV4: u32 = 228;
/// LINKTYPE_IPV6: a raw IPv6 packet.
pub const LINKTYPE_IPV6: u32 = 229;
/// LINKTYPE_LINUX_SLL2: Linux cooked capture v2, 20-byte header.
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// Old (pre-802.1ad) ethertype some switches use for the outer tag of QinQ.
const ETHERTYPE_QINQ_OLD: EtherType = EtherType(0x9100);
/// BSD address families that mean IPv6 (NetBSD/OpenBSD, FreeBSD, Darwin).
const AF_INET6_VALUES: [u32; 3] = [24, 28, 30];
const AF_INET: u32 = 2;
/// Linux cooked capture header length.
const SLL_HEADER_LEN: usize = 16;
/// Linux cooked capture v2 header length.
const SLL2_HEADER_LEN: usize = 20;

/// A frame whose headers are malformed or cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketError {
    /// What is wrong, e.g. "IPv4 header length 3 < 5".
    pub message: String,
}

impl PacketError {
    fn new(message: impl Into<String>) -> PacketError {
        PacketError {
            message: message.into(),
        }
    }
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PacketError {}

/// The network layer a link-layer header announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Network {
    V4,
    V6,
}

/// Parses a captured frame down to its TCP segment; `Ok(None)` when it is not TCP over IP
/// (ARP, UDP, a non-first IP fragment, ...).
pub fn parse(packet: &RawPacket) -> Result<Option<Segment>, PacketError> {
    let mut seg = Segment::default();
    Ok(parse_into(packet.borrow(), &mut seg)?.then_some(seg))
}

/// [`parse`] into a segment the caller keeps and reuses (its payload buffer is refilled, so
/// parsing allocates nothing per packet); `Ok(false)` when the frame is not TCP over IP, and
/// then, as on an error, what `seg` holds is unspecified.
pub fn parse_into(packet: PacketRef<'_>, seg: &mut Segment) -> Result<bool, PacketError> {
    let data = packet.data;
    let Some((network, offset)) = link_layer(packet.linktype, data)? else {
        return Ok(false);
    };
    let ip = data.get(offset..).unwrap_or(&[]);
    // Bytes of the IP packet on the wire, for captures (TSO) whose IP length field is 0.
    let reported = (packet.orig_len as usize)
        .saturating_sub(offset)
        .max(ip.len());
    let Some(transport) = (match network {
        Network::V4 => ipv4(ip, reported)?,
        Network::V6 => ipv6(ip, reported)?,
    }) else {
        return Ok(false);
    };
    tcp(packet.ts_nanos, ip, transport, seg).map(|()| true)
}

/// Where the TCP header is inside an IP packet.
struct Transport {
    src: IpAddr,
    dst: IpAddr,
    /// Offset of the TCP header in the IP packet.
    start: usize,
    /// Length of the TCP header and payload, as the IP header gives it.
    claimed_len: usize,
}

/// Finds the network layer: which IP version and where it starts in `data`.
fn link_layer(linktype: u32, data: &[u8]) -> Result<Option<(Network, usize)>, PacketError> {
    match linktype {
        LINKTYPE_ETHERNET => {
            let eth = EthernetPacket::new(data).ok_or_else(|| {
                PacketError::new(format!("Ethernet frame of {} bytes < 14", data.len()))
            })?;
            ethertype_chain(
                eth.get_ethertype(),
                data,
                EthernetPacket::minimum_packet_size(),
            )
        }
        // pnet's minimum sizes for the cooked headers leave out their fixed 8-byte address
        // field, so the full header length is checked here.
        LINKTYPE_LINUX_SLL => {
            let sll = data
                .get(..SLL_HEADER_LEN)
                .and_then(SLLPacket::new)
                .ok_or_else(|| {
                    PacketError::new(format!(
                        "Linux cooked (SLL) header: {} bytes < {SLL_HEADER_LEN}",
                        data.len()
                    ))
                })?;
            ethertype_chain(sll.get_protocol(), data, SLL_HEADER_LEN)
        }
        LINKTYPE_LINUX_SLL2 => {
            let sll = data
                .get(..SLL2_HEADER_LEN)
                .and_then(SLL2Packet::new)
                .ok_or_else(|| {
                    PacketError::new(format!(
                        "Linux cooked v2 (SLL2) header: {} bytes < {SLL2_HEADER_LEN}",
                        data.len()
                    ))
                })?;
            ethertype_chain(sll.get_protocol_type(), data, SLL2_HEADER_LEN)
        }
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            let Some(&[a, b, c, d]) = data.get(..4) else {
                return Err(PacketError::new(format!(
                    "loopback header: {} bytes < 4",
                    data.len()
                )));
            };
            let family = if linktype == LINKTYPE_LOOP {
                u32::from_be_bytes([a, b, c, d])
            } else {
                // Host order of the capturing machine: families are small, so a value with
                // its high half set was written the other way round.
                let le = u32::from_le_bytes([a, b, c, d]);
                if le & 0xFFFF_0000 != 0 {
                    u32::from_be_bytes([a, b, c, d])
                } else {
                    le
                }
            };
            Ok(match family {
                AF_INET => Some((Network::V4, 4)),
                f if AF_INET6_VALUES.contains(&f) => Some((Network::V6, 4)),
                _ => None,
            })
        }
        LINKTYPE_RAW => match data.first().map(|b| b >> 4) {
            Some(4) => Ok(Some((Network::V4, 0))),
            Some(6) => Ok(Some((Network::V6, 0))),
            Some(v) => Err(PacketError::new(format!(
                "raw IP packet with IP version {v}"
            ))),
            None => Err(PacketError::new("raw IP packet of 0 bytes")),
        },
        LINKTYPE_IPV4 => Ok(Some((Network::V4, 0))),
        LINKTYPE_IPV6 => Ok(Some((Network::V6, 0))),
        other => Err(PacketError::new(format!(
            "link type {other} is not supported"
        ))),
    }
}

/// Follows an ethertype through any VLAN tags to IPv4 or IPv6. `offset` is where the
/// bytes the ethertype describes start.
fn ethertype_chain(
    mut ethertype: EtherType,
    data: &[u8],
    mut offset: usize,
) -> Result<Option<(Network, usize)>, PacketError> {
    // Every tag consumes four bytes, so the loop ends with the data.
    loop {
        match ethertype {
            EtherTypes::Ipv4 => return Ok(Some((Network::V4, offset))),
            EtherTypes::Ipv6 => return Ok(Some((Network::V6, offset))),
            EtherTypes::Vlan | EtherTypes::PBridge | ETHERTYPE_QINQ_OLD => {
                let tag = data
                    .get(offset..)
                    .and_then(VlanPacket::new)
                    .ok_or_else(|| {
                        PacketError::new(format!("VLAN tag at byte {offset} cut short"))
                    })?;
                ethertype = tag.get_ethertype();
                offset += VlanPacket::minimum_packet_size();
            }
            _ => return Ok(None),
        }
    }
}

/// Checks an IPv4 header; `None` when it does not carry (the start of) a TCP segment.
fn ipv4(ip: &[u8], reported: usize) -> Result<Option<Transport>, PacketError> {
    let header = Ipv4Packet::new(ip).ok_or_else(|| {
        PacketError::new(format!("IPv4 header: {} bytes captured < 20", ip.len()))
    })?;
    if header.get_version() != 4 {
        return Err(PacketError::new(format!(
            "IPv4 header with version {}",
            header.get_version()
        )));
    }
    let ihl = header.get_header_length();
    if ihl < 5 {
        return Err(PacketError::new(format!("IPv4 header length {ihl} < 5")));
    }
    let header_len = usize::from(ihl) * 4;
    if header_len > ip.len() {
        return Err(PacketError::new(format!(
            "IPv4 header of {header_len} bytes, only {} captured",
            ip.len()
        )));
    }
    let total_len = match usize::from(header.get_total_length()) {
        // Captured before segmentation offload filled it in: the frame's length stands in.
        0 => reported,
        n => n,
    };
    if total_len < header_len {
        return Err(PacketError::new(format!(
            "IPv4 total length {total_len} < header length {header_len}"
        )));
    }
    // The fragment offset and the addresses are read from the header's bytes (there, as
    // `Ipv4Packet::new` found): pnet's getters for them took a fifth of parsing a packet.
    let word = |at: usize| -> [u8; 4] {
        (ip.get(at..at + 4))
            .and_then(|w| w.try_into().ok())
            .unwrap_or_default()
    };
    let [_, _, flags_and_offset @ ..] = word(4);
    if header.get_next_level_protocol() != IpNextHeaderProtocols::Tcp
        || u16::from_be_bytes(flags_and_offset) & 0x1fff != 0
    {
        return Ok(None);
    }
    Ok(Some(Transport {
        src: IpAddr::from(word(12)),
        dst: IpAddr::from(word(16)),
        start: header_len,
        claimed_len: total_len - header_len,
    }))
}

/// Checks an IPv6 header and walks its extension headers; `None` when it does not carry
/// (the start of) a TCP segment.
fn ipv6(ip: &[u8], reported: usize) -> Result<Option<Transport>, PacketError> {
    let header = Ipv6Packet::new(ip).ok_or_else(|| {
        PacketError::new(format!("IPv6 header: {} bytes captured < 40", ip.len()))
    })?;
    if header.get_version() != 6 {
        return Err(PacketError::new(format!(
            "IPv6 header with version {}",
            header.get_version()
        )));
    }
    let fixed = Ipv6Packet::minimum_packet_size();
    let end = match usize::from(header.get_payload_length()) {
        // Segmentation offload (or a jumbogram): the frame's length stands in.
        0 => reported,
        n => fixed + n,
    };
    let mut next = header.get_next_header();
    let mut offset = fixed;
    // Every extension header consumes at least eight bytes, so the walk ends with the data.
    loop {
        match next {
            IpNextHeaderProtocols::Tcp => break,
            IpNextHeaderProtocols::Hopopt
            | IpNextHeaderProtocols::Ipv6Route
            | IpNextHeaderProtocols::Ipv6Opts => {
                let ext = ip
                    .get(offset..)
                    .and_then(ExtensionPacket::new)
                    .ok_or_else(|| ext_cut(next, offset, ip.len()))?;
                let len = (usize::from(ext.get_hdr_ext_len()) + 1) * 8;
                if offset + len > ip.len() {
                    return Err(ext_cut(next, offset, ip.len()));
                }
                next = ext.get_next_header();
                offset += len;
            }
            IpNextHeaderProtocols::Ipv6Frag => {
                let frag = ip
                    .get(offset..)
                    .and_then(FragmentPacket::new)
                    .ok_or_else(|| ext_cut(next, offset, ip.len()))?;
                if frag.get_fragment_offset_with_flags() >> 3 != 0 {
                    return Ok(None);
                }
                next = frag.get_next_header();
                offset += FragmentPacket::minimum_packet_size();
            }
            _ => return Ok(None),
        }
    }
    if end < offset {
        return Err(PacketError::new(format!(
            "IPv6 payload length {} ends inside its extension headers ({} bytes)",
            end - fixed,
            offset - fixed
        )));
    }
    Ok(Some(Transport {
        src: IpAddr::V6(header.get_source()),
        dst: IpAddr::V6(header.get_destination()),
        start: offset,
        claimed_len: end - offset,
    }))
}

fn ext_cut(next: IpNextHeaderProtocol, offset: usize, captured: usize) -> PacketError {
    PacketError::new(format!(
        "IPv6 extension header {} at byte {offset} cut short ({captured} bytes captured)",
        next.0
    ))
}

/// Reads the TCP header at `transport.start` in the IP packet `ip`.
fn tcp(
    ts_nanos: i64,
    ip: &[u8],
    transport: Transport,
    seg: &mut Segment,
) -> Result<(), PacketError> {
    let bytes = ip.get(transport.start..).unwrap_or(&[]);
    let header = TcpPacket::new(bytes).ok_or_else(|| {
        PacketError::new(format!("TCP header: {} bytes captured < 20", bytes.len()))
    })?;
    let data_offset = header.get_data_offset();
    if data_offset < 5 {
        return Err(PacketError::new(format!(
            "TCP data offset {data_offset} < 5"
        )));
    }
    let header_len = usize::from(data_offset) * 4;
    if header_len > transport.claimed_len {
        return Err(PacketError::new(format!(
            "TCP header of {header_len} bytes, but the IP header leaves {} for TCP",
            transport.claimed_len
        )));
    }
    if header_len > bytes.len() {
        return Err(PacketError::new(format!(
            "TCP header of {header_len} bytes, only {} captured",
            bytes.len()
        )));
    }
    let wire_len = transport.claimed_len - header_len;
    // What was captured of the payload, stopping where the IP packet ends.
    let captured_end = bytes.len().min(transport.claimed_len);
    seg.payload.clear();
    seg.payload
        .extend_from_slice(&bytes[header_len..captured_end]);
    let flags = header.get_flags();
    seg.ts_nanos = ts_nanos;
    seg.src = SocketAddr::new(transport.src, header.get_source());
    seg.dst = SocketAddr::new(transport.dst, header.get_destination());
    seg.seq = header.get_sequence();
    seg.ack = header.get_acknowledgement();
    seg.flags = TcpFlags {
        syn: flags & PnetTcpFlags::SYN != 0,
        ack: flags & PnetTcpFlags::ACK != 0,
        fin: flags & PnetTcpFlags::FIN != 0,
        rst: flags & PnetTcpFlags::RST != 0,
    };
    seg.wire_len = u32::try_from(wire_len).unwrap_or(u32::MAX);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    // ---- Building frames byte by byte ----

    const SRC4: [u8; 4] = [10, 0, 0, 1];
    const DST4: [u8; 4] = [192, 168, 7, 9];
    const SRC6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const DST6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0xbeef, 2);
    const PSH_ACK: u8 = 0x18;

    /// A TCP header (with `options`, padded to four bytes) and payload.
    fn tcp_bytes(
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        options: &[u8],
        payload: &[u8],
    ) -> Vec<u8> {
        let opt_len = options.len().div_ceil(4) * 4;
        let mut b = Vec::new();
        b.extend_from_slice(&sport.to_be_bytes());
        b.extend_from_slice(&dport.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&ack.to_be_bytes());
        b.push((((20 + opt_len) / 4) as u8) << 4);
        b.push(flags);
        b.extend_from_slice(&[0xFF, 0xFF, 0, 0, 0, 0]); // window, checksum, urgent
        b.extend_from_slice(options);
        b.resize(20 + opt_len, 1); // NOP padding
        b.extend_from_slice(payload);
        b
    }

    fn segment_bytes(payload: &[u8]) -> Vec<u8> {
        tcp_bytes(50_000, 9092, 1000, 2000, PSH_ACK, &[], payload)
    }

    /// An IPv4 packet; `options` must be a multiple of four bytes.
    fn ipv4_bytes(protocol: u8, frag: u16, options: &[u8], body: &[u8]) -> Vec<u8> {
        let header_len = 20 + options.len();
        let mut b = vec![0x40 | (header_len / 4) as u8, 0];
        b.extend_from_slice(&((header_len + body.len()) as u16).to_be_bytes());
        b.extend_from_slice(&[0x12, 0x34]);
        b.extend_from_slice(&frag.to_be_bytes());
        b.extend_from_slice(&[64, protocol, 0, 0]);
        b.extend_from_slice(&SRC4);
        b.extend_from_slice(&DST4);
        b.extend_from_slice(options);
        b.extend_from_slice(body);
        b
    }

    /// An IPv6 packet: the fixed header (its next header `first_next`), then `extensions`
    /// (extension headers' bytes, each naming the next), then `body`.
    fn ipv6_bytes(first_next: u8, extensions: &[u8], body: &[u8]) -> Vec<u8> {
        let mut b = vec![0x60, 0, 0, 0];
        b.extend_from_slice(&((extensions.len() + body.len()) as u16).to_be_bytes());
        b.push(first_next);
        b.push(64);
        b.extend_from_slice(&SRC6.octets());
        b.extend_from_slice(&DST6.octets());
        b.extend_from_slice(extensions);
        b.extend_from_slice(body);
        b
    }

    fn ethernet(ethertype: u16, tags: &[u16], body: &[u8]) -> Vec<u8> {
        let mut b = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        // Each tag: its TPID, then a TCI; the innermost is followed by the real ethertype.
        for (i, tpid) in tags.iter().enumerate() {
            b.extend_from_slice(&tpid.to_be_bytes());
            if i + 1 < tags.len() {
                b.extend_from_slice(&(100 + i as u16).to_be_bytes());
            }
        }
        if !tags.is_empty() {
            b.extend_from_slice(&200u16.to_be_bytes());
        }
        b.extend_from_slice(&ethertype.to_be_bytes());
        b.extend_from_slice(body);
        b
    }

    fn raw(linktype: u32, data: Vec<u8>) -> RawPacket {
        RawPacket {
            ts_nanos: 1_234_567_890_123_456_789,
            linktype,
            orig_len: data.len() as u32,
            data,
            interface: 0,
        }
    }

    fn expect_segment(packet: &RawPacket) -> Segment {
        parse(packet)
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("a TCP segment")
    }

    fn assert_v4_segment(seg: &Segment, payload: &[u8]) {
        assert_eq!(
            seg.src,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::from(SRC4)), 50_000)
        );
        assert_eq!(
            seg.dst,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::from(DST4)), 9092)
        );
        assert_eq!((seg.seq, seg.ack), (1000, 2000));
        assert_eq!(
            seg.flags,
            TcpFlags {
                syn: false,
                ack: true,
                fin: false,
                rst: false
            }
        );
        assert_eq!(seg.payload, payload);
        assert_eq!(seg.wire_len as usize, payload.len());
        assert_eq!(seg.ts_nanos, 1_234_567_890_123_456_789);
    }

    fn assert_v6_segment(seg: &Segment, payload: &[u8]) {
        assert_eq!(seg.src, SocketAddr::new(IpAddr::V6(SRC6), 50_000));
        assert_eq!(seg.dst, SocketAddr::new(IpAddr::V6(DST6), 9092));
        assert_eq!(seg.payload, payload);
        assert_eq!(seg.wire_len as usize, payload.len());
    }

    // ---- Link types ----

    #[test]
    fn ethernet_ipv4_and_ipv6() {
        let v4 = ethernet(
            0x0800,
            &[],
            &ipv4_bytes(6, 0, &[], &segment_bytes(b"hello")),
        );
        assert_v4_segment(&expect_segment(&raw(1, v4)), b"hello");
        let v6 = ethernet(0x86DD, &[], &ipv6_bytes(6, &[], &segment_bytes(b"six")));
        assert_v6_segment(&expect_segment(&raw(1, v6)), b"six");
    }

    #[test]
    fn ethernet_with_vlan_tags() {
        let ip = ipv4_bytes(6, 0, &[], &segment_bytes(b"tagged"));
        for tags in [&[0x8100][..], &[0x88A8, 0x8100], &[0x9100, 0x8100, 0x8100]] {
            let frame = ethernet(0x0800, tags, &ip);
            assert_v4_segment(&expect_segment(&raw(1, frame)), b"tagged");
        }
        // A tag cut short is an error, not a panic.
        let cut = ethernet(0x0800, &[0x8100], &[]);
        assert!(parse(&raw(1, cut[..16].to_vec())).is_err());
    }

    #[test]
    fn linux_cooked_v1_and_v2() {
        let ip = ipv4_bytes(6, 0, &[], &segment_bytes(b"sll"));
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
        sll.extend_from_slice(&0x0800u16.to_be_bytes());
        sll.extend_from_slice(&ip);
        assert_v4_segment(&expect_segment(&raw(113, sll)), b"sll");

        let ip6 = ipv6_bytes(6, &[], &segment_bytes(b"sll2"));
        let mut sll2 = 0x86DDu16.to_be_bytes().to_vec();
        sll2.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(sll2.len(), 20);
        sll2.extend_from_slice(&ip6);
        assert_v6_segment(&expect_segment(&raw(276, sll2)), b"sll2");

        // Headers shorter than their fixed length (pnet's minimum sizes would let these in).
        for len in [0, 8, 15] {
            assert!(
                parse(&raw(113, vec![0x08; len])).is_err(),
                "SLL of {len} bytes"
            );
        }
        for len in [0, 12, 19] {
            assert!(
                parse(&raw(276, vec![0x08; len])).is_err(),
                "SLL2 of {len} bytes"
            );
        }
    }

    #[test]
    fn bsd_null_and_openbsd_loop() {
        let ip4 = ipv4_bytes(6, 0, &[], &segment_bytes(b"lo"));
        let ip6 = ipv6_bytes(6, &[], &segment_bytes(b"lo6"));
        // Null: host order, either way round.
        for family in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
            let mut f = family.to_vec();
            f.extend_from_slice(&ip4);
            assert_v4_segment(&expect_segment(&raw(0, f)), b"lo");
        }
        for af6 in [24u32, 28, 30] {
            for family in [af6.to_le_bytes(), af6.to_be_bytes()] {
                let mut f = family.to_vec();
                f.extend_from_slice(&ip6);
                assert_v6_segment(&expect_segment(&raw(0, f)), b"lo6");
            }
        }
        // Loop: network order only.
        let mut f = 24u32.to_be_bytes().to_vec();
        f.extend_from_slice(&ip6);
        assert_v6_segment(&expect_segment(&raw(108, f)), b"lo6");
        let mut f = 2u32.to_be_bytes().to_vec();
        f.extend_from_slice(&ip4);
        assert_v4_segment(&expect_segment(&raw(108, f)), b"lo");
        // Another family (AppleTalk = 16): not IP.
        let mut f = 16u32.to_le_bytes().to_vec();
        f.extend_from_slice(&ip4);
        assert_eq!(parse(&raw(0, f)), Ok(None));
    }

    #[test]
    fn raw_ip_link_types() {
        let ip4 = ipv4_bytes(6, 0, &[], &segment_bytes(b"raw4"));
        let ip6 = ipv6_bytes(6, &[], &segment_bytes(b"raw6"));
        assert_v4_segment(&expect_segment(&raw(101, ip4.clone())), b"raw4");
        assert_v6_segment(&expect_segment(&raw(101, ip6.clone())), b"raw6");
        assert_v4_segment(&expect_segment(&raw(228, ip4.clone())), b"raw4");
        assert_v6_segment(&expect_segment(&raw(229, ip6.clone())), b"raw6");
        // The link type says IPv4 but the packet is IPv6: malformed.
        assert!(parse(&raw(228, ip6)).is_err());
        let mut v5 = ip4;
        v5[0] = 0x55;
        assert!(parse(&raw(101, v5))
            .unwrap_err()
            .message
            .contains("version 5"));
        assert!(parse(&raw(147, vec![0; 60]))
            .unwrap_err()
            .message
            .contains("147"));
    }

    // ---- IP ----

    #[test]
    fn ipv4_options_and_tcp_options() {
        // Router alert option (4 bytes); TCP MSS + SACK-permitted + window scale (12 bytes).
        let tcp = tcp_bytes(
            50_000,
            9092,
            1000,
            2000,
            PSH_ACK,
            &[2, 4, 5, 0xB4, 4, 2, 3, 3, 7, 1, 1, 1],
            b"opts",
        );
        let ip = ipv4_bytes(6, 0, &[148, 4, 0, 0], &tcp);
        assert_v4_segment(&expect_segment(&raw(228, ip)), b"opts");
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let tcp = segment_bytes(b"past extensions");
        // Hop-by-hop (8 bytes) -> routing (24 bytes) -> destination options (8) -> fragment
        // (offset 0, more fragments) -> TCP.
        let mut ext = vec![43, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[60, 2, 0, 0, 0, 0, 0, 0]);
        ext.extend_from_slice(&[0; 16]);
        ext.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]);
        ext.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 7]);
        let ip = ipv6_bytes(0, &ext, &tcp);
        assert_v6_segment(&expect_segment(&raw(229, ip)), b"past extensions");

        // A later fragment: not a segment.
        let frag = [6, 0, 0x05, 0x01, 0, 0, 0, 7];
        assert_eq!(parse(&raw(229, ipv6_bytes(44, &frag, &tcp))), Ok(None));
        // An extension header that runs past the data.
        let long = [6, 200, 0, 0, 0, 0, 0, 0];
        assert!(parse(&raw(229, ipv6_bytes(60, &long, &tcp))).is_err());
        // UDP (17) and No Next Header (59): not TCP.
        assert_eq!(parse(&raw(229, ipv6_bytes(17, &[], &tcp))), Ok(None));
        assert_eq!(parse(&raw(229, ipv6_bytes(59, &[], &[]))), Ok(None));
    }

    #[test]
    fn ipv4_fragments_and_other_protocols() {
        let tcp = segment_bytes(b"fragment one");
        // First fragment (more fragments set, offset 0): parsed.
        let first = ipv4_bytes(6, 0x2000, &[], &tcp);
        assert_v4_segment(&expect_segment(&raw(228, first)), b"fragment one");
        // Later fragment: not a segment.
        assert_eq!(
            parse(&raw(228, ipv4_bytes(6, 0x2000 | 3, &[], &tcp))),
            Ok(None)
        );
        assert_eq!(parse(&raw(228, ipv4_bytes(6, 185, &[], &tcp))), Ok(None));
        // UDP, and ARP over Ethernet.
        assert_eq!(parse(&raw(228, ipv4_bytes(17, 0, &[], &tcp))), Ok(None));
        assert_eq!(parse(&raw(1, ethernet(0x0806, &[], &[0; 28]))), Ok(None));
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let ip = ipv4_bytes(6, 0, &[], &segment_bytes(b""));
        let mut frame = ethernet(0x0800, &[], &ip);
        frame.extend_from_slice(&[0xEE; 6]); // pad to 60 bytes
        let seg = expect_segment(&raw(1, frame));
        assert!(seg.payload.is_empty());
        assert_eq!(seg.wire_len, 0);
    }

    #[test]
    fn snaplen_cut_packet_has_wire_len_beyond_payload() {
        let payload: Vec<u8> = (0..200u8).collect();
        let ip = ipv4_bytes(6, 0, &[], &segment_bytes(&payload));
        let frame = ethernet(0x0800, &[], &ip);
        let full_len = frame.len() as u32;
        let mut cut = raw(1, frame[..14 + 20 + 20 + 50].to_vec());
        cut.orig_len = full_len;
        let seg = expect_segment(&cut);
        assert_eq!(seg.payload, &payload[..50]);
        assert_eq!(seg.wire_len, 200);
    }

    #[test]
    fn segmentation_offload_zero_length_uses_frame_length() {
        let mut ip = ipv4_bytes(6, 0, &[], &segment_bytes(b"tso payload"));
        ip[2] = 0;
        ip[3] = 0;
        let seg = expect_segment(&raw(228, ip));
        assert_eq!(seg.payload, b"tso payload");
        assert_eq!(seg.wire_len, 11);
    }

    #[test]
    fn flags_seq_and_ack() {
        let tcp = tcp_bytes(1, 2, 0xFFFF_FFF0, 77, 0x02 | 0x01 | 0x04, &[], b"");
        let seg = expect_segment(&raw(228, ipv4_bytes(6, 0, &[], &tcp)));
        assert_eq!(
            seg.flags,
            TcpFlags {
                syn: true,
                ack: false,
                fin: true,
                rst: true
            }
        );
        assert_eq!((seg.seq, seg.ack), (0xFFFF_FFF0, 77));
        assert_eq!((seg.src.port(), seg.dst.port()), (1, 2));
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        let good = ipv4_bytes(6, 0, &[], &segment_bytes(b"x"));
        let mut ihl = good.clone();
        ihl[0] = 0x43;
        assert_eq!(
            parse(&raw(228, ihl)).unwrap_err().message,
            "IPv4 header length 3 < 5"
        );
        let mut ihl_long = good.clone();
        ihl_long[0] = 0x4F;
        assert!(parse(&raw(228, ihl_long))
            .unwrap_err()
            .message
            .contains("60 bytes"));
        let mut total = good.clone();
        total[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert!(parse(&raw(228, total))
            .unwrap_err()
            .message
            .contains("total length 10"));
        let mut offset = good.clone();
        offset[20 + 12] = 0x30;
        assert_eq!(
            parse(&raw(228, offset)).unwrap_err().message,
            "TCP data offset 3 < 5"
        );
        let mut tcp_long = good.clone();
        tcp_long[20 + 12] = 0xF0;
        assert!(parse(&raw(228, tcp_long)).is_err());
        assert!(parse(&raw(228, good[..30].to_vec())).is_err());
        assert!(parse(&raw(1, vec![0; 13])).is_err());
        assert!(parse(&raw(229, vec![0x60; 39])).is_err());
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const LINKTYPES: [u32; 10] = [0, 1, 101, 108, 113, 228, 229, 276, 12, 147];

        fn check(packet: &RawPacket) {
            if let Ok(Some(seg)) = parse(packet) {
                assert!(seg.payload.len() <= seg.wire_len as usize);
                assert!(seg.payload.len() <= packet.data.len());
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// Random bytes under every link type never panic.
            #[test]
            fn random_bytes(
                lt in 0usize..LINKTYPES.len(),
                data in proptest::collection::vec(any::<u8>(), 0..200),
                orig_len in any::<u32>(),
            ) {
                check(&RawPacket { ts_nanos: 0, linktype: LINKTYPES[lt], data, orig_len, interface: 0 });
            }

            /// Valid frames with a few bytes changed and cut never panic.
            #[test]
            fn mutated_frames(
                which in 0usize..4,
                edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
                cut in any::<usize>(),
            ) {
                let tcp = segment_bytes(b"some payload");
                let (linktype, mut data) = match which {
                    0 => (1, ethernet(0x0800, &[0x8100], &ipv4_bytes(6, 0, &[1, 1, 1, 0], &tcp))),
                    1 => (229, ipv6_bytes(0, &[44, 0, 1, 4, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 1], &tcp)),
                    2 => (0, [&2u32.to_le_bytes()[..], &ipv4_bytes(6, 0, &[], &tcp)].concat()),
                    _ => (276, [&[0x86, 0xDD][..], &[0; 18], &ipv6_bytes(6, &[], &tcp)].concat()),
                };
                for (at, v) in edits {
                    let i = at % data.len();
                    data[i] = v;
                }
                let keep = cut % (data.len() + 1);
                let orig_len = data.len() as u32;
                data.truncate(keep);
                check(&RawPacket { ts_nanos: 0, linktype, data, orig_len, interface: 0 });
            }
        }
    }
}
