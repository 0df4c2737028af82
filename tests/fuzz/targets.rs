//! The fuzz targets: each reads one input (bytes, in a format of its own described at its
//! function) and drives one part of the code with it, checking what must hold of any input
//! besides "no panic".

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

use chronik_tui::capture::pcap::kafka_stream::{KafkaStreams, Output, StreamOptions};
use chronik_tui::capture::pcap::reassembly::{Chunk, Reassembler, ReassemblyLimits};
use chronik_tui::capture::pcap::{packet, reader::CaptureReader, Segment, TcpFlags};
use chronik_tui::capture::render::{self, Clock, TimeFormat};
use chronik_tui::capture::{Endpoints, Exchange, Status};
use chronik_tui::protocol::batch::{self, BatchHeader, Entry};
use chronik_tui::protocol::records::{self, MAX_DECOMPRESSED_BYTES};
use chronik_tui::protocol::registry::{self, FieldId};
use chronik_tui::protocol::schema::FieldDef;
use chronik_tui::protocol::tree::{Value, FRAME};
use chronik_tui::protocol::{
    dissect_request, dissect_request_as, dissect_request_with, dissect_response,
    dissect_response_as, dissect_response_with, dissect_sasl_token, lint, Dissection, Field,
    Layout, Limits,
};

use crate::engine::Rng;

// ---------------------------------------------------------------------------------------------
// Checks on a field tree

/// Every field's span, and every bytes value, lies inside the buffer it points into; the
/// views slice buffers with them.
fn check_spans(frame: &[u8], buffers: &[Vec<u8>], fields: &[Field]) {
    let buffer_len = |id: u16| {
        if id == FRAME {
            frame.len()
        } else {
            buffers
                .get(usize::from(id) - 1)
                .unwrap_or_else(|| panic!("a field in buffer {id} of {}", buffers.len()))
                .len()
        }
    };
    for top in fields {
        top.walk(0, &mut |f, _| {
            let len = buffer_len(f.buffer);
            let end = u64::from(f.offset) + u64::from(f.len);
            assert!(
                end <= len as u64,
                "{} spans {}..{end} of a {len}-byte buffer",
                f.name(),
                f.offset
            );
            if let Value::Bytes { start, len: n } = f.value {
                assert!(
                    u64::from(start) + u64::from(n) <= len as u64,
                    "{} holds bytes {start}+{n} of a {len}-byte buffer",
                    f.name()
                );
            }
        });
    }
}

/// Leaves of the frame buffer, in order, each starting where the previous ended, from
/// `start` to `end`.
fn check_tiling(fields: &[Field], start: usize, end: usize) {
    let mut pos = start;
    for top in fields {
        for leaf in top.frame_leaves() {
            assert_eq!(
                leaf.offset as usize,
                pos,
                "{} starts at {}, the previous field ended at {pos}",
                leaf.name(),
                leaf.offset
            );
            pos += leaf.len as usize;
        }
    }
    assert_eq!(pos, end, "the frame's fields end at {pos}, not at {end}");
}

fn check_dissection(frame: &[u8], d: &Dissection) {
    check_spans(frame, &d.buffers, std::slice::from_ref(&d.root));
    let decompressed: usize = d.buffers.iter().map(Vec::len).sum();
    assert!(
        decompressed <= MAX_DECOMPRESSED_BYTES,
        "{decompressed} bytes decompressed from one frame"
    );
    if d.error.is_none() {
        let end = (d.root.offset + d.root.len) as usize;
        check_tiling(std::slice::from_ref(&d.root), 0, end);
    }
}

fn check_findings(frame: &[u8], findings: &[lint::Finding]) {
    for f in findings {
        let text = f.to_string();
        assert!(
            f.start <= f.end && f.end as usize <= frame.len(),
            "finding spans {}..{} of a {}-byte frame: {text}",
            f.start,
            f.end,
            frame.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Target: the dissector and the lint

/// Bytes before the frame in a dissector input.
pub const DISSECT_HEADER: usize = 9;

/// A dissector input: `[sel][api key: i16][version: i16][layout][field: u16][place][frame]`.
/// `sel` bit 0: a response (read as the key and version given); bits 1-2: the limits (full,
/// without records, check only, at most `sel >> 3` fields). `layout` (0: the spec's) reads
/// the frame another way, as the lint does: bit 0 moves the `field`-th field of the API to
/// `place`, bit 1 leaves it out, bit 2 reads the header in version `layout >> 4 & 3`, bit 3
/// the body one version up.
pub fn dissect_input(key: i16, version: i16, response: bool, frame: &[u8]) -> Vec<u8> {
    let mut input = vec![u8::from(response)];
    input.extend_from_slice(&key.to_be_bytes());
    input.extend_from_slice(&version.to_be_bytes());
    input.extend_from_slice(&[0, 0, 0, 0]);
    input.extend_from_slice(frame);
    input
}

/// Every field of an API's request or response, nested ones included.
fn all_fields(fields: &[FieldDef], out: &mut Vec<FieldId>) {
    for f in fields {
        out.push(f.id);
        all_fields(&f.children, out);
    }
}

pub fn dissect(input: &[u8]) {
    if input.len() < DISSECT_HEADER {
        check_dissection(input, &dissect_request(input));
        return;
    }
    let (head, frame) = input.split_at(DISSECT_HEADER);
    let sel = head[0];
    let response = sel & 1 == 1;
    let key = i16::from_be_bytes([head[1], head[2]]);
    let version = i16::from_be_bytes([head[3], head[4]]);
    let limits = match (sel >> 1) & 3 {
        0 => Limits::FULL,
        1 => Limits::WITHOUT_RECORDS,
        2 => Limits::CHECK_ONLY,
        _ => Limits {
            max_fields: usize::from(sel >> 3),
            records: true,
        },
    };
    let d = match (response, limits == Limits::FULL) {
        (false, true) => dissect_request(frame),
        (false, false) => dissect_request_with(frame, limits),
        (true, true) => dissect_response(frame, key, version),
        (true, false) => dissect_response_with(frame, key, version, limits),
    };
    check_dissection(frame, &d);
    // A bare SASL token (after SaslHandshake v0) arrives where a frame would. Its PLAIN parts
    // leave the NUL separators to the token itself: its leaves need not tile the frame.
    let token = dissect_sasl_token(frame, !response);
    check_spans(frame, &token.buffers, std::slice::from_ref(&token.root));
    // The lint reads the dissections the views make (every field, records or not).
    if limits == Limits::FULL || limits == Limits::WITHOUT_RECORDS {
        let findings = if response {
            lint::check_response(frame, &d, key, version)
        } else {
            lint::check_request(frame, &d)
        };
        check_findings(frame, &findings);
    }

    let lay = head[5];
    if lay == 0 {
        return;
    }
    let mut fields = Vec::new();
    if let Some(api) = registry::api(key) {
        all_fields(
            if response {
                &api.response
            } else {
                &api.request
            },
            &mut fields,
        );
    }
    let field = (!fields.is_empty())
        .then(|| fields[usize::from(u16::from_be_bytes([head[6], head[7]])) % fields.len()]);
    let layout = Layout {
        moved: field
            .filter(|_| lay & 1 != 0)
            .map(|f| (f, usize::from(head[8]))),
        omitted: field.filter(|_| lay & 2 != 0),
        header_version: (lay & 4 != 0).then_some(i16::from(lay >> 4 & 3)),
        body_version: (lay & 8 != 0).then_some(version.wrapping_add(1)),
    };
    let d = if response {
        dissect_response_as(frame, key, version, layout, limits)
    } else {
        dissect_request_as(frame, layout, limits)
    };
    check_dissection(frame, &d);
}

/// Points a dissector input at another API and version of the schema table (now and then one
/// outside it), or another direction, limits or layout.
pub fn dissect_tweak(rng: &mut Rng, input: &mut Vec<u8>) {
    if input.len() < DISSECT_HEADER {
        input.resize(DISSECT_HEADER, 0);
    }
    match rng.below(3) {
        0 => {
            let apis: Vec<_> = registry::catalog().apis.values().collect();
            let api = rng.pick(&apis);
            let span = (api.versions.max - api.versions.min + 1) as usize;
            let version = if rng.one_in(16) {
                api.versions.max + 1
            } else {
                api.versions.min + rng.below(span) as i16
            };
            input[1..3].copy_from_slice(&api.key.to_be_bytes());
            input[3..5].copy_from_slice(&version.to_be_bytes());
            // A request's own header says which API it is: keep them the same.
            if input[0] & 1 == 0 && input.len() >= DISSECT_HEADER + 8 {
                input[DISSECT_HEADER + 4..DISSECT_HEADER + 6]
                    .copy_from_slice(&api.key.to_be_bytes());
                input[DISSECT_HEADER + 6..DISSECT_HEADER + 8]
                    .copy_from_slice(&version.to_be_bytes());
            }
        }
        1 => input[0] = rng.byte(),
        _ => {
            for b in &mut input[5..DISSECT_HEADER] {
                *b = rng.byte();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Target: record sets

/// A record-set input: `[start][entries][record set]`: the set is dissected from byte
/// `start & 7` to its end, and again with an entry budget of `entries` (unless 255), then
/// split into batches as the broker splits it.
pub fn record_set(input: &[u8]) {
    let (start, entries, set) = match input {
        [s, e, rest @ ..] => (usize::from(s & 7).min(rest.len()), usize::from(*e), rest),
        _ => (0, 0, input),
    };
    let mut buffers = Vec::new();
    let mut out = Vec::new();
    records::dissect_record_set(set, start, set.len(), FRAME, &mut buffers, &mut out);
    check_spans(set, &buffers, &out);
    check_tiling(&out, start, set.len());
    let decompressed: usize = buffers.iter().map(Vec::len).sum();
    assert!(decompressed <= MAX_DECOMPRESSED_BYTES);

    // (`dissect_record_set` is the limited one with the full budget: 255 stands for that, and
    // the set is not decompressed a second time.)
    if entries == 255 {
        return check_split(set);
    }
    let (mut buffers, mut out, mut left) = (Vec::new(), Vec::new(), entries);
    records::dissect_record_set_limited(
        set,
        0,
        set.len(),
        FRAME,
        &mut buffers,
        &mut out,
        &mut left,
    );
    check_spans(set, &buffers, &out);
    check_tiling(&out, 0, set.len());
    assert!(left <= entries);
    check_split(set);
}

/// The structure the broker reads without the tree: entries that cover the set, batches
/// whose header parses.
fn check_split(set: &[u8]) {
    let mut pos = 0;
    for entry in batch::split(set) {
        let (s, e) = match entry {
            Entry::Batch { start, end }
            | Entry::Legacy { start, end, .. }
            | Entry::Partial { start, end }
            | Entry::Invalid { start, end, .. } => (start, end),
        };
        assert_eq!(s, pos, "entries of the set leave bytes {pos}..{s} out");
        assert!(
            e > s && e <= set.len(),
            "entry {s}..{e} of {} bytes",
            set.len()
        );
        pos = e;
        if let Entry::Batch { .. } = entry {
            let h = BatchHeader::parse(&set[s..e]).expect("a complete batch has a header");
            let _ = (
                h.compression(),
                h.log_append_time(),
                h.is_transactional(),
                h.is_control(),
                h.last_offset(),
                batch::batch_crc(&set[s..e]),
            );
        }
    }
    assert_eq!(pos, set.len(), "entries end at {pos} of {}", set.len());
}

// ---------------------------------------------------------------------------------------------
// Target: the Kafka streams (framer, sessions) over one TCP connection

const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40_000);

/// A stream script: `[options]`, then steps `[op][len: u16][len bytes]` (the last one may
/// be short). Options bit 0: the broker's port is not a Kafka port (roles are guessed from
/// the bytes); bits 1-2: the largest frame (100 MiB, 64 B, 1 KiB, 64 KiB); bit 3: the
/// connection opens with a SYN. A step's op bit 0: from the broker (else the client); bit 1:
/// FIN; bit 2: RST; bit 3: the bytes are lost (their sequence numbers are skipped); bit 4:
/// the snapshot length cut them (sent with a longer wire length); bit 5: sent again from
/// where the previous step of that direction started (a retransmission or overlap); bit 6:
/// a new SYN before it (the addresses reused).
pub fn streams(input: &[u8]) {
    let Some((&options, mut rest)) = input.split_first() else {
        return;
    };
    let server_port = if options & 1 == 0 { 9092 } else { 7777 };
    let max_frame_bytes = [100 << 20, 64, 1024, 1 << 16][usize::from(options >> 1 & 3)];
    let mut c = Connection {
        streams: KafkaStreams::new(StreamOptions {
            max_frame_bytes,
            ..StreamOptions::default()
        }),
        out: Vec::new(),
        ends: [
            CLIENT,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), server_port),
        ],
        next_seq: [1_000, 0xffff_f000],
        ts: 1_700_000_000_000_000_000,
    };
    let mut last_start = c.next_seq;
    let syn = TcpFlags {
        syn: true,
        ..TcpFlags::default()
    };
    if options & 8 != 0 {
        c.send(0, c.next_seq[0].wrapping_sub(1), syn, &[], 0);
    }
    while rest.len() >= 3 {
        let op = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let data = &rest[3..(3 + len).min(rest.len())];
        rest = &rest[(3 + len).min(rest.len())..];
        let dir = usize::from(op & 1);
        if op & 0x40 != 0 {
            c.next_seq[dir] = c.next_seq[dir].wrapping_add(1 << 20);
            let first = TcpFlags {
                ack: dir == 1,
                ..syn
            };
            c.send(dir, c.next_seq[dir].wrapping_sub(1), first, &[], 0);
        }
        let seq = if op & 0x20 != 0 {
            last_start[dir]
        } else {
            c.next_seq[dir]
        };
        let flags = TcpFlags {
            syn: false,
            ack: true,
            fin: op & 2 != 0,
            rst: op & 4 != 0,
        };
        let wire = data.len() as u32 + if op & 0x10 != 0 { 100 } else { 0 };
        if op & 8 == 0 {
            let captured = if op & 0x10 != 0 {
                &data[..data.len() / 2]
            } else {
                data
            };
            c.send(dir, seq, flags, captured, wire);
        }
        last_start[dir] = seq;
        let end = seq.wrapping_add(wire);
        // Sequence numbers compare modulo 2^32 (the broker's side starts near the wrap).
        if (end.wrapping_sub(c.next_seq[dir]) as i32) > 0 {
            c.next_seq[dir] = end;
        }
    }
    c.streams.finish(&mut c.out);
    let stats = c.streams.stats();
    assert!(stats.kafka_connections <= stats.connections);
    for o in &c.out {
        if let Output::Exchange(ex) = o {
            // What the views do with an exchange.
            drop(ex.dissect_with(Limits::FULL));
        }
    }
}

/// One TCP connection's segments, fed to the Kafka streams.
struct Connection {
    streams: KafkaStreams,
    out: Vec<Output>,
    /// The client's address, then the broker's.
    ends: [SocketAddr; 2],
    next_seq: [u32; 2],
    ts: i64,
}

impl Connection {
    fn send(&mut self, dir: usize, seq: u32, flags: TcpFlags, payload: &[u8], wire_len: u32) {
        self.ts += 1_000;
        let seg = Segment {
            ts_nanos: self.ts,
            src: self.ends[dir],
            dst: self.ends[1 - dir],
            seq,
            ack: self.next_seq[1 - dir],
            flags,
            payload: payload.to_vec(),
            wire_len,
        };
        self.streams.on_segment(&seg, &mut self.out);
    }
}

/// A stream script from request and response frames, cut into steps of random sizes.
pub fn streams_script(rng: &mut Rng, conversations: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
    let mut script = vec![rng.byte() & 0x0f];
    let step = [1usize, 3, 50, 1460, 65_535][rng.below(5)];
    for (request, response) in conversations {
        for (dir, bytes) in [(0u8, Some(*request)), (1, *response)] {
            for piece in bytes.unwrap_or(&[]).chunks(step.min(1 + rng.below(step))) {
                script.push(dir);
                script.extend_from_slice(&(piece.len() as u16).to_be_bytes());
                script.extend_from_slice(piece);
            }
        }
    }
    script
}

/// Splits one step of a stream script in two, or gives it other flags.
pub fn streams_tweak(rng: &mut Rng, script: &mut Vec<u8>) {
    let mut steps = Vec::new();
    let mut pos = 1;
    while pos + 3 <= script.len() {
        let len = usize::from(u16::from_be_bytes([script[pos + 1], script[pos + 2]]));
        let end = (pos + 3 + len).min(script.len());
        steps.push((pos, end));
        pos = end;
    }
    if steps.is_empty() {
        return;
    }
    let (at, end) = *rng.pick(&steps);
    if rng.one_in(2) {
        script[at] ^= 1 << (1 + rng.below(6));
        return;
    }
    let data = script[at + 3..end].to_vec();
    if data.len() < 2 {
        return;
    }
    let cut = 1 + rng.below(data.len() - 1);
    let op = script[at];
    let mut two = Vec::new();
    for piece in [&data[..cut], &data[cut..]] {
        two.push(op);
        two.extend_from_slice(&(piece.len() as u16).to_be_bytes());
        two.extend_from_slice(piece);
    }
    script.splice(at..end, two);
}

// ---------------------------------------------------------------------------------------------
// Target: TCP reassembly

/// The stream every reassembly input cuts its segments from (positions counted from the
/// byte after the SYN), long enough for any segment an input can describe and any gap
/// before it: every segment that covers a position carries the same byte, so what comes out
/// can be checked byte by byte.
fn stream() -> &'static [u8] {
    static STREAM: OnceLock<Vec<u8>> = OnceLock::new();
    STREAM.get_or_init(|| {
        (0..1u64 << 18)
            .map(|p| (p.wrapping_mul(7) ^ (p >> 8)) as u8)
            .collect()
    })
}

/// A reassembly input: `[isn: u32][limits]`, then segments `[start: u16][len: u16][flags]
/// [cut]` in capture order, `start` counted from the byte after the SYN. Flags bit 0: the SYN
/// (no data); bit 1: FIN; bit 2: RST; bit 3: not a segment but the other direction's
/// acknowledgement of everything before `start`; bit 4: the snapshot length kept only
/// `len - cut` bytes of it. `limits` chooses how much is held behind a hole and how far
/// data may run past one.
pub fn reassembly(input: &[u8]) {
    let Some((head, mut rest)) = input.split_first_chunk::<5>() else {
        return;
    };
    let isn = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let limits = ReassemblyLimits {
        max_buffered_bytes: [256, 4096, 1 << 16, 16 << 20][usize::from(head[4] & 3)],
        max_hole_wait_bytes: [512, 1 << 14, 1 << 20, u64::MAX][usize::from(head[4] >> 2 & 3)],
    };
    let mut r = Reassembler::new(limits);
    let mut chunks = Vec::new();
    // Stream position of the reassembler's offset 0, once known.
    let mut base: Option<u64> = None;
    let mut ts = 0i64;
    while let Some((d, tail)) = rest.split_first_chunk::<6>() {
        rest = tail;
        ts += 1;
        let start = u64::from(u16::from_be_bytes([d[0], d[1]]));
        let len = usize::from(u16::from_be_bytes([d[2], d[3]]));
        let flags = d[4];
        if flags & 8 != 0 {
            chunks.extend(r.acked(isn.wrapping_add(1).wrapping_add(start as u32), ts));
            continue;
        }
        let syn = flags & 1 != 0;
        let kept = if flags & 0x10 != 0 {
            len.saturating_sub(usize::from(d[5]))
        } else {
            len
        };
        let (seq, payload, wire_len) = if syn {
            (isn, Vec::new(), 0)
        } else {
            let payload = stream()[start as usize..start as usize + kept].to_vec();
            (
                isn.wrapping_add(1).wrapping_add(start as u32),
                payload,
                len as u32,
            )
        };
        if base.is_none() && (syn || wire_len > 0) {
            base = Some(if syn { 0 } else { start });
        }
        let seg = Segment {
            ts_nanos: ts,
            src: CLIENT,
            dst: CLIENT,
            seq,
            ack: 0,
            flags: TcpFlags {
                syn,
                ack: !syn,
                fin: flags & 2 != 0,
                rst: flags & 4 != 0,
            },
            payload,
            wire_len,
        };
        chunks.extend(r.push(&seg));
        assert!(
            r.buffered() <= limits.max_buffered_bytes + 64 * 2 + (1 << 16),
            "{} bytes held, limit {}",
            r.buffered(),
            limits.max_buffered_bytes
        );
    }
    chunks.extend(r.flush());
    assert_eq!(r.buffered(), 0, "bytes still held after the flush");
    let base = base.unwrap_or(0);
    let mut off = 0u64;
    for c in &chunks {
        match c {
            Chunk::Data { bytes, .. } => {
                let at = (base + off) as usize;
                let want = stream().get(at..at + bytes.len());
                assert!(
                    want == Some(bytes.as_slice()),
                    "stream bytes {at}..{} are not the ones sent",
                    at + bytes.len()
                );
                off += bytes.len() as u64;
            }
            Chunk::Gap { len, .. } => off += len,
        }
    }
    assert_eq!(off, r.delivered(), "chunks and the delivered count differ");
}

/// Reassembly inputs: a stream of `n` segments of `size` bytes, sent in a shuffled order,
/// some twice and some overlapping, after an ISN near the wrap.
pub fn reassembly_seed(rng: &mut Rng, isn: u32, syn: bool, n: usize, size: u16) -> Vec<u8> {
    let mut input = isn.to_be_bytes().to_vec();
    input.push(rng.byte() & 0x0f);
    let mut segs: Vec<(u16, u16, u8)> = (0..n as u16).map(|i| (i * size, size, 0)).collect();
    for _ in 0..n / 3 {
        let (s, l, _) = *rng.pick(&segs);
        segs.push((s.saturating_add(l / 2), l, 0));
    }
    for i in (1..segs.len()).rev() {
        if rng.one_in(2) {
            segs.swap(i, rng.below(i + 1));
        }
    }
    if syn {
        segs.insert(0, (0, 0, 1));
    }
    if let Some(last) = segs.last_mut() {
        last.2 |= 2;
    }
    for (s, l, f) in segs {
        input.extend_from_slice(&s.to_be_bytes());
        input.extend_from_slice(&l.to_be_bytes());
        input.extend_from_slice(&[f, 0]);
    }
    input
}

// ---------------------------------------------------------------------------------------------
// Target: pcap and pcapng files

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A capture file's bytes (plain, gzip or zstd, told by the first bytes as `decode` tells
/// them): every packet read, and parsed down to its TCP segment.
pub fn capture_reader(input: &[u8]) {
    let data = std::io::Cursor::new(input.to_vec());
    let reader = if input.starts_with(&GZIP_MAGIC) {
        CaptureReader::new(flate2::read::MultiGzDecoder::new(data))
    } else if input.starts_with(&ZSTD_MAGIC) {
        match zstd::stream::read::Decoder::new(data) {
            Ok(d) => CaptureReader::new(d),
            Err(_) => return,
        }
    } else {
        CaptureReader::new(data)
    };
    let Ok(mut reader) = reader else {
        return;
    };
    let _ = reader.format();
    let mut last = reader.bytes_read();
    while let Some(next) = reader.next_packet() {
        assert!(reader.bytes_read() >= last, "the reader went backwards");
        last = reader.bytes_read();
        if let Ok(raw) = next {
            let _ = packet::parse(&raw);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Target: the whole capture path of `decode`

/// A capture file run through `decode`'s own path (`decode::read_capture`, from a file),
/// each exchange printed both ways and dissected in full as the views would, and its lint
/// history read as decode's printers and writer read it (from the line's walk, then applied).
pub fn decode_capture(path: &std::path::Path, input: &[u8]) {
    use chronik_tui::capture::lint::{History, IdempotentBatches};
    use chronik_tui::capture::pcap::source::Fed;
    std::fs::write(path, input).expect("writing the input");
    let printed = Arc::new(Mutex::new(0usize));
    let counter = printed.clone();
    let clock = Clock::new(TimeFormat::default());
    let mut history = History::default();
    let sink = Box::new(move |fed: Fed<'_>| {
        let Fed::Exchange(ex) = fed else { return };
        let mut seen = String::new();
        let mut batches = IdempotentBatches::new(ex.request());
        let facts = if chronik_tui::capture::render::push_line_seeing(
            &mut seen,
            ex,
            &clock,
            &mut |id, v| batches.visit(id, v),
        ) {
            batches.facts(ex)
        } else {
            History::facts(ex)
        };
        let found = history.apply(ex, facts);
        let line = chronik_tui::headless::render_with(ex, false, &clock);
        let json = chronik_tui::headless::render_with(ex, true, &clock);
        let d = ex.dissect_with(Limits::FULL);
        drop(d);
        *counter.lock().unwrap_or_else(|p| p.into_inner()) +=
            line.len() + json.len() + seen.len() + found.len();
    });
    let stop = AtomicBool::new(false);
    match chronik_tui::decode::read_capture(path, StreamOptions::default(), sink, &stop) {
        Ok(progress) => {
            let _ = (progress.status(), progress.errors());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// decode's line without a tree

/// Input: two bytes giving the request frame's length, the request frame, the response frame.
/// decode's line for an answered exchange of the two, which comes from a walk of both frames
/// when they read cleanly, is the line the dissections give, byte for byte.
pub fn summary(input: &[u8]) {
    let Some((len, frames)) = input.split_first_chunk::<2>() else {
        return;
    };
    let (req, resp) = frames.split_at(usize::from(u16::from_be_bytes(*len)).min(frames.len()));
    let Some((key, version, corr)) = req
        .get(4..)
        .and_then(chronik_tui::protocol::dissect::peek_request_header)
    else {
        return;
    };
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);
    let mut ex = Exchange::new(1, Endpoints::of(peer), 0, Status::Answered)
        .with_frames(req.to_vec(), Some(resp.to_vec()))
        .with_response_at(Some(250));
    (ex.api_key, ex.api_version, ex.correlation_id) = (key, version, corr);
    let clock = Clock::new(TimeFormat::Utc);
    let tree = render::line_dissected(&ex, &ex.dissect_with(Limits::WITHOUT_RECORDS), &clock);
    assert_eq!(render::line_with(&ex, &clock), tree);
}

/// Seeds for [`summary`]: each request of the seed frames with a response of its API and
/// version.
pub fn summary_seeds(frames: &[crate::seeds::Frame]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .filter(|f| !f.response && f.bytes.len() <= usize::from(u16::MAX))
        .filter_map(|req| {
            let resp = frames
                .iter()
                .find(|f| f.response && f.key == req.key && f.version == req.version)?;
            let mut input = (req.bytes.len() as u16).to_be_bytes().to_vec();
            input.extend_from_slice(&req.bytes);
            input.extend_from_slice(&resp.bytes);
            Some(input)
        })
        .collect()
}
