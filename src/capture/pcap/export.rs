//! Writing exchanges out: pcapng that Wireshark and tshark dissect as Kafka (with Ethernet,
//! IP and TCP framing synthesised around the frames), and JSON lines.
//!
//! The pcapng has one section and one Ethernet interface with microsecond timestamps. Each
//! connection gets a three-way handshake before its first bytes, its requests and responses as
//! TCP segments (at most 65,000 bytes each, so an IPv4 packet's 16-bit length holds) with
//! consistent sequence and acknowledgement numbers and correct checksums, and FINs when it
//! closes. The first packet of each exchange carries a comment (`frame.comment` in Wireshark)
//! naming the exchange, its API, the throttle placement it was encoded with and its notes;
//! markers (setting changes) are added to the comment of the next packet written.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde_json::json;

use crate::capture::{ConnEvent, ConnEventKind, Exchange, Marker};
use crate::protocol::registry;

/// Largest TCP payload per synthesised segment.
pub const MAX_SEGMENT: usize = 65_000;

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

#[derive(Clone, Copy)]
struct Conn {
    client: SocketAddr,
    server: SocketAddr,
    /// Next sequence number each side sends.
    client_seq: u32,
    server_seq: u32,
    closed: bool,
}

/// Writes a pcapng file from exchanges, connection events and markers, in the order given.
pub struct PcapngExporter<W: Write> {
    out: W,
    default_server: SocketAddr,
    conns: HashMap<u64, Conn>,
    ip_id: u16,
    /// Marker texts waiting for the next packet's comment.
    pending_comment: Vec<String>,
    /// Time of the last packet written (µs), for packets with no time of their own.
    last_ts: i64,
}

fn parse_addr(text: Option<&str>) -> Option<SocketAddr> {
    text.and_then(|t| t.parse().ok())
}

fn ones_complement_sum(data: &[u8], mut sum: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl<W: Write> PcapngExporter<W> {
    /// Writes the section header and the interface description.
    pub fn new(mut out: W, default_server: SocketAddr) -> io::Result<Self> {
        // Section Header Block.
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        shb.extend_from_slice(&options(&[(4, b"chronik-tui".as_slice())]));
        write_block(&mut out, 0x0A0D_0D0A, &shb)?;
        // Interface Description Block: Ethernet, no snaplen limit, µs timestamps (default).
        let mut idb = Vec::new();
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&0u32.to_le_bytes());
        idb.extend_from_slice(&options(&[(2, b"chronik-tui".as_slice())]));
        write_block(&mut out, 1, &idb)?;
        Ok(PcapngExporter {
            out,
            default_server,
            conns: HashMap::new(),
            ip_id: 1,
            pending_comment: Vec::new(),
            last_ts: 0,
        })
    }

    fn conn_for(&mut self, conn: u64, peer: &str, server: Option<&str>, at: i64) -> io::Result<()> {
        if self.conns.get(&conn).is_some_and(|c| !c.closed) {
            return Ok(());
        }
        let client =
            parse_addr(Some(peer)).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 1)));
        let mut server = parse_addr(server).unwrap_or(self.default_server);
        if server.is_ipv4() != client.is_ipv4() {
            // One packet cannot mix families: put the server on the client's loopback.
            let ip = if client.is_ipv4() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            };
            server = SocketAddr::new(ip, server.port());
        }
        // Initial sequence numbers from the connection id, so files are reproducible.
        let isn_c = (conn as u32).wrapping_mul(0x9E37_79B9);
        let isn_s = isn_c ^ 0x5A5A_0000;
        let mut c = Conn {
            client,
            server,
            client_seq: isn_c,
            server_seq: isn_s,
            closed: false,
        };
        let t = at.saturating_sub(3);
        self.packet(&c, true, t, isn_c, 0, TCP_SYN, &[])?;
        self.packet(
            &c,
            false,
            t + 1,
            isn_s,
            isn_c.wrapping_add(1),
            TCP_SYN | TCP_ACK,
            &[],
        )?;
        c.client_seq = isn_c.wrapping_add(1);
        c.server_seq = isn_s.wrapping_add(1);
        self.packet(&c, true, t + 2, c.client_seq, c.server_seq, TCP_ACK, &[])?;
        self.conns.insert(conn, c);
        Ok(())
    }

    /// Writes one exchange: its request, then its response.
    pub fn exchange(&mut self, ex: &Exchange) -> io::Result<()> {
        self.conn_for(ex.conn, &ex.peer, ex.server.as_deref(), ex.request_at)?;
        let mut comment = format!(
            "chronik-tui #{} {} v{} corr={}",
            ex.id,
            registry::api_name(ex.api_key),
            ex.api_version,
            ex.correlation_id
        );
        if let Some(p) = &ex.placement {
            comment.push_str(&format!("; throttle_time_ms placement {p}"));
        }
        for n in &ex.notes {
            comment.push_str(&format!("; {n}"));
        }
        let mut comment = Some(comment);
        if !ex.request.is_empty() {
            self.data(ex.conn, true, ex.request_at, &ex.request, comment.take())?;
        }
        if let Some(resp) = &ex.response {
            let at = ex.response_at.unwrap_or(ex.request_at);
            self.data(ex.conn, false, at, resp, comment.take())?;
        }
        Ok(())
    }

    fn data(
        &mut self,
        conn: u64,
        from_client: bool,
        at: i64,
        bytes: &[u8],
        mut comment: Option<String>,
    ) -> io::Result<()> {
        for chunk in bytes.chunks(MAX_SEGMENT) {
            let Some(c) = self.conns.get(&conn) else {
                return Ok(());
            };
            let (seq, ack) = if from_client {
                (c.client_seq, c.server_seq)
            } else {
                (c.server_seq, c.client_seq)
            };
            let c = *c;
            self.packet_with_comment(
                &c,
                from_client,
                at,
                seq,
                ack,
                TCP_PSH | TCP_ACK,
                chunk,
                comment.take(),
            )?;
            if let Some(c) = self.conns.get_mut(&conn) {
                if from_client {
                    c.client_seq = c.client_seq.wrapping_add(chunk.len() as u32);
                } else {
                    c.server_seq = c.server_seq.wrapping_add(chunk.len() as u32);
                }
            }
        }
        Ok(())
    }

    /// A connection opened (handshake) or closed (FIN from the closer, FIN back, last ACK).
    pub fn conn_event(&mut self, ev: &ConnEvent) -> io::Result<()> {
        match &ev.kind {
            ConnEventKind::Opened => self.conn_for(ev.conn, &ev.peer, None, ev.at),
            ConnEventKind::Closed { by, .. } => {
                let from_client = *by == crate::capture::ClosedBy::Client;
                self.close(ev.conn, from_client, ev.at)
            }
        }
    }

    fn close(&mut self, conn: u64, from_client: bool, at: i64) -> io::Result<()> {
        let Some(c) = self.conns.get(&conn) else {
            return Ok(());
        };
        if c.closed {
            return Ok(());
        }
        let mut c = *c;
        let (a, b) = if from_client {
            (c.client_seq, c.server_seq)
        } else {
            (c.server_seq, c.client_seq)
        };
        self.packet(&c, from_client, at, a, b, TCP_FIN | TCP_ACK, &[])?;
        self.packet(
            &c,
            !from_client,
            at + 1,
            b,
            a.wrapping_add(1),
            TCP_FIN | TCP_ACK,
            &[],
        )?;
        self.packet(
            &c,
            from_client,
            at + 2,
            a.wrapping_add(1),
            b.wrapping_add(1),
            TCP_ACK,
            &[],
        )?;
        c.closed = true;
        self.conns.insert(conn, c);
        Ok(())
    }

    /// A marker: its text goes into the next packet's comment.
    pub fn marker(&mut self, m: &Marker) -> io::Result<()> {
        self.pending_comment
            .push(format!("chronik-tui marker: {}", m.text));
        Ok(())
    }

    /// Writes what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Closes the connections still open (FIN from the client) and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let mut open: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.closed)
            .map(|(k, _)| *k)
            .collect();
        open.sort_unstable();
        let at = self.last_ts + 1;
        for conn in open {
            self.close(conn, true, at)?;
        }
        self.out.flush()?;
        Ok(self.out)
    }

    #[allow(clippy::too_many_arguments)]
    fn packet(
        &mut self,
        c: &Conn,
        from_client: bool,
        at: i64,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> io::Result<()> {
        self.packet_with_comment(c, from_client, at, seq, ack, flags, payload, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn packet_with_comment(
        &mut self,
        c: &Conn,
        from_client: bool,
        at: i64,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
        comment: Option<String>,
    ) -> io::Result<()> {
        let (src, dst) = if from_client {
            (c.client, c.server)
        } else {
            (c.server, c.client)
        };
        let (smac, dmac) = if from_client {
            (CLIENT_MAC, SERVER_MAC)
        } else {
            (SERVER_MAC, CLIENT_MAC)
        };
        let mut tcp = Vec::with_capacity(20 + payload.len());
        tcp.extend_from_slice(&src.port().to_be_bytes());
        tcp.extend_from_slice(&dst.port().to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&(if flags & TCP_ACK != 0 { ack } else { 0 }).to_be_bytes());
        tcp.push(5 << 4);
        tcp.push(flags);
        tcp.extend_from_slice(&65535u16.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(payload);
        let mut frame = Vec::with_capacity(14 + 40 + tcp.len());
        frame.extend_from_slice(&dmac);
        frame.extend_from_slice(&smac);
        match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                frame.extend_from_slice(&0x0800u16.to_be_bytes());
                let mut pseudo = ones_complement_sum(&s.octets(), 0);
                pseudo = ones_complement_sum(&d.octets(), pseudo);
                pseudo += 6 + tcp.len() as u32;
                let sum = fold(ones_complement_sum(&tcp, pseudo));
                tcp[16..18].copy_from_slice(&sum.to_be_bytes());
                let mut ip = Vec::with_capacity(20);
                ip.push(0x45);
                ip.push(0);
                ip.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
                ip.extend_from_slice(&self.ip_id.to_be_bytes());
                self.ip_id = self.ip_id.wrapping_add(1);
                ip.extend_from_slice(&0x4000u16.to_be_bytes());
                ip.push(64);
                ip.push(6);
                ip.extend_from_slice(&[0, 0]);
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&d.octets());
                let sum = fold(ones_complement_sum(&ip, 0));
                ip[10..12].copy_from_slice(&sum.to_be_bytes());
                frame.extend_from_slice(&ip);
            }
            (s, d) => {
                let to6 = |a: IpAddr| match a {
                    IpAddr::V6(v) => v,
                    IpAddr::V4(v) => v.to_ipv6_mapped(),
                };
                let (s, d) = (to6(s), to6(d));
                frame.extend_from_slice(&0x86DDu16.to_be_bytes());
                let mut pseudo = ones_complement_sum(&s.octets(), 0);
                pseudo = ones_complement_sum(&d.octets(), pseudo);
                pseudo += tcp.len() as u32 + 6;
                let sum = fold(ones_complement_sum(&tcp, pseudo));
                tcp[16..18].copy_from_slice(&sum.to_be_bytes());
                frame.extend_from_slice(&0x6000_0000u32.to_be_bytes());
                frame.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
                frame.push(6);
                frame.push(64);
                frame.extend_from_slice(&s.octets());
                frame.extend_from_slice(&d.octets());
            }
        }
        frame.extend_from_slice(&tcp);
        let mut comments: Vec<String> = std::mem::take(&mut self.pending_comment);
        comments.extend(comment);
        self.last_ts = self.last_ts.max(at);
        self.epb(at, &frame, &comments)
    }

    fn epb(&mut self, at: i64, frame: &[u8], comments: &[String]) -> io::Result<()> {
        let ts = at.max(0) as u64;
        let mut body = Vec::with_capacity(20 + frame.len() + 64);
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(ts as u32).to_le_bytes());
        body.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        body.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        body.extend_from_slice(frame);
        pad4(&mut body);
        let opts: Vec<(u16, &[u8])> = comments.iter().map(|c| (1u16, c.as_bytes())).collect();
        if !opts.is_empty() {
            body.extend_from_slice(&options(&opts));
        }
        write_block(&mut self.out, 6, &body)
    }
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

/// Options followed by opt_endofopt; each value padded to 4 bytes.
fn options(opts: &[(u16, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    for (code, value) in opts {
        let value = &value[..value.len().min(60_000)];
        v.extend_from_slice(&code.to_le_bytes());
        v.extend_from_slice(&(value.len() as u16).to_le_bytes());
        v.extend_from_slice(value);
        pad4(&mut v);
    }
    v.extend_from_slice(&[0, 0, 0, 0]);
    v
}

fn write_block<W: Write>(out: &mut W, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = (12 + body.len()) as u32;
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&total.to_le_bytes())
}

/// Writes JSON lines: each exchange as the headless `--json` mode prints it, connection events
/// as `{"kind":"conn_event",…}` and markers as `{"kind":"marker",…}`.
pub struct JsonLinesExporter<W: Write> {
    out: W,
}

impl<W: Write> JsonLinesExporter<W> {
    pub fn new(out: W) -> Self {
        JsonLinesExporter { out }
    }

    pub fn exchange(&mut self, ex: &Exchange) -> io::Result<()> {
        writeln!(self.out, "{}", crate::headless::json(ex))
    }

    pub fn conn_event(&mut self, ev: &ConnEvent) -> io::Result<()> {
        let mut v = serde_json::to_value(ev).map_err(io::Error::other)?;
        v["event"] = v["kind"].take();
        v["kind"] = json!("conn_event");
        writeln!(self.out, "{v}")
    }

    pub fn marker(&mut self, m: &Marker) -> io::Result<()> {
        let mut v = serde_json::to_value(m).map_err(io::Error::other)?;
        v["kind"] = json!("marker");
        writeln!(self.out, "{v}")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{ClosedBy, Status};

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    /// An ApiVersions v0 exchange (request header v1, response header v0, empty key list) and a
    /// Metadata v0 request for no topics, with their responses, on a v4 or v6 connection.
    fn exchanges(peer: &str, server: &str) -> Vec<Exchange> {
        let ex = |id: u64, key: i16, corr: i32, req: Vec<u8>, resp: Vec<u8>| Exchange {
            id,
            conn: 7,
            peer: peer.into(),
            server: Some(server.into()),
            client_id: Some("t".into()),
            api_key: key,
            api_version: 0,
            correlation_id: corr,
            request: req,
            response: Some(resp),
            request_at: 1_796_032_800_000_000 + id as i64 * 1000,
            response_at: Some(1_796_032_800_000_000 + id as i64 * 1000 + 200),
            status: Status::Answered,
            notes: vec!["a note".into()],
            placement: None,
        };
        let req = |key: i16, corr: i32, extra: &[u8]| {
            let mut b = key.to_be_bytes().to_vec();
            b.extend_from_slice(&0i16.to_be_bytes());
            b.extend_from_slice(&corr.to_be_bytes());
            b.extend_from_slice(&1i16.to_be_bytes());
            b.push(b't');
            b.extend_from_slice(extra);
            frame(&b)
        };
        let mut api_resp = 1i32.to_be_bytes().to_vec();
        api_resp.extend_from_slice(&0i16.to_be_bytes());
        api_resp.extend_from_slice(&0i32.to_be_bytes());
        let mut meta_resp = 2i32.to_be_bytes().to_vec();
        meta_resp.extend_from_slice(&0i32.to_be_bytes());
        meta_resp.extend_from_slice(&0i32.to_be_bytes());
        // A Metadata v0 request naming three topics of 32,767 bytes each: the frame needs two
        // segments.
        let mut big = 3i32.to_be_bytes().to_vec();
        for _ in 0..3 {
            big.extend_from_slice(&i16::MAX.to_be_bytes());
            big.extend(std::iter::repeat_n(b'x', i16::MAX as usize));
        }
        let mut big_resp = 3i32.to_be_bytes().to_vec();
        big_resp.extend_from_slice(&0i32.to_be_bytes());
        big_resp.extend_from_slice(&0i32.to_be_bytes());
        vec![
            ex(1, 18, 1, req(18, 1, &[]), frame(&api_resp)),
            ex(2, 3, 2, req(3, 2, &0i32.to_be_bytes()), frame(&meta_resp)),
            ex(3, 3, 3, req(3, 3, &big), frame(&big_resp)),
        ]
    }

    fn tshark(path: &std::path::Path, port: u16) -> Option<serde_json::Value> {
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(path)
            .args([
                "-d",
                &format!("tcp.port=={port},kafka"),
                "-o",
                "tcp.check_checksum:TRUE",
                "-o",
                "ip.check_checksum:TRUE",
                "-T",
                "json",
            ])
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(serde_json::from_slice(&out.stdout).unwrap())
    }

    #[test]
    fn tshark_reads_the_synthesised_connection_as_kafka() {
        for (peer, server) in [
            ("127.0.0.1:40000", "127.0.0.1:9092"),
            ("[::1]:40000", "[::1]:9092"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.pcapng");
            let mut w = PcapngExporter::new(
                std::fs::File::create(&path).unwrap(),
                "127.0.0.1:9092".parse().unwrap(),
            )
            .unwrap();
            w.marker(&Marker {
                id: 1,
                at: 0,
                after_exchange: 0,
                text: "placement: front (was spec)".into(),
            })
            .unwrap();
            for ex in exchanges(peer, server) {
                w.exchange(&ex).unwrap();
            }
            w.conn_event(&ConnEvent {
                conn: 7,
                peer: peer.into(),
                at: 1_796_032_800_010_000,
                kind: ConnEventKind::Closed {
                    by: ClosedBy::Client,
                    reason: "bye".into(),
                },
            })
            .unwrap();
            w.finish().unwrap();
            let Some(json) = tshark(&path, 9092) else {
                eprintln!("tshark not installed; skipped");
                return;
            };
            let text = json.to_string();
            if text.contains("_ws.malformed") {
                let _ = std::fs::copy(&path, "/tmp/export-malformed.pcapng");
                panic!("{peer}: malformed (copied to /tmp/export-malformed.pcapng)");
            }
            assert!(
                !text.contains("Bad checksum") && !text.contains("checksum.bad\":\"1"),
                "{peer}: bad checksum"
            );
            let mut keys = Vec::new();
            let mut comments = Vec::new();
            for p in json.as_array().unwrap() {
                let l = &p["_source"]["layers"];
                if let Some(k) = l["kafka"]["kafka.request_key"].as_str() {
                    keys.push(k.to_string());
                }
                if let Some(c) = l.get("frame").and_then(|f| f.get("frame.comment")) {
                    comments.push(c.to_string());
                }
                if let Some(c) = l.get("pkt_comment") {
                    comments.push(c.to_string());
                }
            }
            assert_eq!(keys, vec!["18", "3", "3"], "{peer}: {text:.2000}");
            let all = comments.join(" ");
            assert!(
                all.contains("chronik-tui #1 ApiVersions v0 corr=1; a note"),
                "{all}"
            );
            assert!(all.contains("placement: front (was spec)"), "{all}");
        }
    }
}
