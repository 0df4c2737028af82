//! One direction of a TCP connection put back in order: captured [`Segment`]s in, the byte
//! stream out as [`Chunk`]s of data and of bytes known to be missing.
//!
//! Positions are kept as 64-bit offsets from the start of the stream, computed from 32-bit
//! sequence numbers with wrapping (RFC 1982) arithmetic: a sequence number up to 2^31 ahead of
//! the next expected byte is ahead of it, anything else behind it. So streams longer than 4 GiB
//! and initial sequence numbers near 2^32 need no special case.
//!
//! The rules:
//! - The stream starts after the SYN when the SYN is captured; otherwise at the first segment
//!   that carries data (a capture started mid-stream).
//! - Out-of-order segments wait for the hole before them to fill. A hole is given up on (and
//!   delivered as a [`Chunk::Gap`]) when the bytes waiting behind it exceed
//!   [`ReassemblyLimits::max_buffered_bytes`], when data keeps arriving more than
//!   [`ReassemblyLimits::max_hole_wait_bytes`] past it, or at [`Reassembler::flush`].
//! - Retransmissions and overlapping segments are delivered once: where two segments cover the
//!   same bytes, the first one captured wins (as most TCP stacks keep the data they already
//!   queued). This includes bytes a snapshot length cut off: once a segment said they were
//!   lost, a later copy does not bring them back.
//! - A segment whose wire length is more than its captured payload (snapshot length) delivers
//!   what was captured, then a gap for the missing tail.
//! - An acknowledgement from the other direction ([`Reassembler::acked`]) past a hole means
//!   the receiver got those bytes and the capture missed them: the hole is a gap at once,
//!   rather than after more data or at the end (the FIN's sequence number is not data).
//! - Zero-length segments (pure ACKs, keep-alives, window updates) carry no data and are
//!   ignored; FIN and RST are noted ([`Reassembler::closed`]).

use std::collections::BTreeMap;

use super::Segment;

/// Bounds on what one direction holds while waiting for missing segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Most out-of-order bytes held behind a hole (each held segment also counts a small
    /// fixed overhead, so many tiny segments are bounded too). Default 16 MiB.
    pub max_buffered_bytes: usize,
    /// How far past a hole data may arrive before the hole is declared lost. Default 1 MiB.
    pub max_hole_wait_bytes: u64,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            max_buffered_bytes: 16 * 1024 * 1024,
            max_hole_wait_bytes: 1024 * 1024,
        }
    }
}

/// A piece of the reassembled stream, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes that follow the previous chunk directly.
    Data {
        bytes: Vec<u8>,
        /// When these bytes became available in order (capture time, ns since the epoch).
        ts_nanos: i64,
    },
    /// Bytes that were on the wire but are not in the capture (lost segments, snapshot length).
    Gap {
        len: u64,
        /// When the gap was given up on (capture time, ns since the epoch).
        ts_nanos: i64,
    },
}

/// What one segment made available, from [`Reassembler::push_borrowed`].
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed<'s> {
    /// The segment's own captured bytes (from its first byte not yet delivered), which follow
    /// the previous chunk directly and became available at the segment's time.
    Next(&'s [u8]),
    /// Anything else, as [`Reassembler::push`] returns it (often nothing).
    Chunks(Vec<Chunk>),
}

/// Bytes accounted per held segment on top of its data, so that a flood of tiny segments is
/// bounded like a few big ones.
const PIECE_OVERHEAD: usize = 64;

/// A segment's worth of stream held until everything before it has arrived.
#[derive(Debug)]
struct Piece {
    len: u64,
    /// The bytes; `None` when they were on the wire but not captured.
    data: Option<Vec<u8>>,
    ts_nanos: i64,
}

impl Piece {
    fn cost(&self) -> usize {
        PIECE_OVERHEAD + self.data.as_ref().map_or(0, Vec::len)
    }
}

/// Reassembles one direction of one TCP connection.
#[derive(Debug)]
pub struct Reassembler {
    limits: ReassemblyLimits,
    /// Sequence number of stream offset 0; `None` until the SYN or the first data.
    base_seq: Option<u32>,
    /// Offset of the next byte to deliver.
    next_off: u64,
    /// Held pieces by start offset; they never overlap and all start after `next_off`.
    pieces: BTreeMap<u64, Piece>,
    /// Sum of the held pieces' costs.
    buffered: usize,
    /// Offset just past the last byte, once a FIN said where the stream ends.
    fin_off: Option<u64>,
    saw_syn: bool,
    saw_fin: bool,
    saw_rst: bool,
}

impl Reassembler {
    /// An empty direction with the given bounds.
    pub fn new(limits: ReassemblyLimits) -> Self {
        Reassembler {
            limits,
            base_seq: None,
            next_off: 0,
            pieces: BTreeMap::new(),
            buffered: 0,
            fin_off: None,
            saw_syn: false,
            saw_fin: false,
            saw_rst: false,
        }
    }

    /// Takes one captured segment of this direction; returns the stream bytes (and gaps) that
    /// are now available in order.
    pub fn push(&mut self, seg: &Segment) -> Vec<Chunk> {
        match self.push_borrowed(seg) {
            Pushed::Next(bytes) => vec![Chunk::Data {
                bytes: bytes.to_vec(),
                ts_nanos: seg.ts_nanos,
            }],
            Pushed::Chunks(chunks) => chunks,
        }
    }

    /// [`Reassembler::push`] without copying the usual case: a whole segment right where the
    /// stream is, with nothing held, is its own payload's bytes.
    pub fn push_borrowed<'s>(&mut self, seg: &'s Segment) -> Pushed<'s> {
        let mut out = Vec::new();
        self.saw_fin |= seg.flags.fin;
        self.saw_rst |= seg.flags.rst;
        let data_seq = if seg.flags.syn {
            if self.base_seq.is_none() {
                self.base_seq = Some(seg.seq.wrapping_add(1));
                self.saw_syn = true;
            }
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        // The packet parser never hands out more payload than the wire length; should a
        // segment say otherwise, what was captured is the truth.
        let wire = u64::from(seg.wire_len).max(seg.payload.len() as u64);
        if wire == 0 {
            if seg.flags.fin {
                if let Some(at) = self.offset_of(data_seq) {
                    self.fin_off = Some(at.max(0) as u64);
                }
            }
            return Pushed::Chunks(out);
        }
        self.base_seq.get_or_insert(data_seq);
        let start = self.offset_of(data_seq).unwrap_or(0);
        let end = start + wire as i64;
        if seg.flags.fin {
            self.fin_off = Some(end.max(0) as u64);
        }
        if end <= self.next_off as i64 {
            return Pushed::Chunks(out); // all of it delivered already (or from before the stream start)
        }
        let clip = (self.next_off as i64 - start).max(0) as u64;
        let start = start.max(self.next_off as i64) as u64;
        let end = end as u64;
        let captured = seg.payload.get(clip as usize..).unwrap_or(&[]);
        let captured_end = start + captured.len() as u64;
        // The usual case, a whole segment right where the stream is, with nothing held: it is
        // the next chunk as it stands.
        if start == self.next_off && captured_end == end && self.pieces.is_empty() {
            self.next_off = end;
            return Pushed::Next(captured);
        }
        if captured_end > start {
            self.insert(start, captured_end, Some(captured), seg.ts_nanos);
        }
        if end > captured_end {
            self.insert(captured_end, end, None, seg.ts_nanos);
        }
        self.deliver(seg.ts_nanos, &mut out);
        self.enforce_limits(seg.ts_nanos, &mut out);
        Pushed::Chunks(out)
    }

    /// The other direction acknowledged everything before sequence number `ack`: holes below
    /// it will not be filled (the receiver got those bytes; the capture did not), so they are
    /// delivered as gaps now, with what follows them.
    pub fn acked(&mut self, ack: u32, ts_nanos: i64) -> Vec<Chunk> {
        let mut out = Vec::new();
        let Some(ack_off) = self.offset_of(ack) else {
            return out;
        };
        let ack_off = match self.fin_off {
            Some(fin) => ack_off.min(fin as i64),
            None => ack_off,
        };
        while ack_off > self.next_off as i64 {
            let to = match self.pieces.first_key_value() {
                Some((&first, _)) if (first as i64) < ack_off => first,
                _ => ack_off as u64,
            };
            self.skip_hole(to, ts_nanos, &mut out);
            self.deliver(ts_nanos, &mut out);
        }
        out
    }

    /// End of the capture: everything held, in order, with the holes between as gaps.
    pub fn flush(&mut self) -> Vec<Chunk> {
        let mut out = Vec::new();
        while let Some((&first, piece)) = self.pieces.first_key_value() {
            let ts = piece.ts_nanos;
            self.skip_hole(first, ts, &mut out);
            self.deliver(i64::MIN, &mut out);
        }
        out
    }

    /// Whether a FIN or RST was seen in this direction.
    pub fn closed(&self) -> bool {
        self.saw_fin || self.saw_rst
    }

    /// Whether a FIN was seen in this direction.
    pub fn saw_fin(&self) -> bool {
        self.saw_fin
    }

    /// Whether a RST was seen in this direction.
    pub fn saw_rst(&self) -> bool {
        self.saw_rst
    }

    /// Whether the stream started at a captured SYN (so its first byte is the first byte the
    /// application sent), as opposed to mid-stream.
    pub fn saw_syn(&self) -> bool {
        self.saw_syn
    }

    /// Stream bytes delivered so far (data and gaps).
    pub fn delivered(&self) -> u64 {
        self.next_off
    }

    /// Bytes held waiting for a hole to fill, segment overhead included.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Stream offset of a sequence number (negative: before the stream start); `None` before
    /// the stream start is known.
    fn offset_of(&self, seq: u32) -> Option<i64> {
        let next_seq = self.base_seq?.wrapping_add(self.next_off as u32);
        Some(self.next_off as i64 + i64::from(seq.wrapping_sub(next_seq) as i32))
    }

    /// Holds `[start, end)` except where held pieces already cover it (first copy wins).
    /// `data`, when given, holds the bytes of `[start, end)`.
    fn insert(&mut self, start: u64, end: u64, data: Option<&[u8]>, ts_nanos: i64) {
        let mut covered = Vec::new();
        if let Some((&k, p)) = self.pieces.range(..start).next_back() {
            if k + p.len > start {
                covered.push((k, k + p.len));
            }
        }
        covered.extend(self.pieces.range(start..end).map(|(&k, p)| (k, k + p.len)));
        let mut free = Vec::new();
        let mut cur = start;
        for (cs, ce) in covered {
            if cs > cur {
                free.push((cur, cs.min(end)));
            }
            cur = cur.max(ce);
        }
        if cur < end {
            free.push((cur, end));
        }
        for (a, b) in free {
            let piece = Piece {
                len: b - a,
                data: data.map(|d| d[(a - start) as usize..(b - start) as usize].to_vec()),
                ts_nanos,
            };
            self.buffered += piece.cost();
            self.pieces.insert(a, piece);
        }
    }

    /// Delivers the held pieces that start at the next offset. `ts_nanos` is the time of the
    /// segment that made them available (`i64::MIN` to use each piece's own time).
    fn deliver(&mut self, ts_nanos: i64, out: &mut Vec<Chunk>) {
        while let Some(entry) = self.pieces.first_entry() {
            if *entry.key() != self.next_off {
                break;
            }
            let piece = entry.remove();
            self.buffered -= piece.cost();
            self.next_off += piece.len;
            let ts = ts_nanos.max(piece.ts_nanos);
            match (piece.data, out.last_mut()) {
                (
                    Some(bytes),
                    Some(Chunk::Data {
                        bytes: prev,
                        ts_nanos: prev_ts,
                    }),
                ) => {
                    prev.extend_from_slice(&bytes);
                    *prev_ts = (*prev_ts).max(ts);
                }
                (Some(bytes), _) => out.push(Chunk::Data {
                    bytes,
                    ts_nanos: ts,
                }),
                (None, _) => push_gap(out, piece.len, ts),
            }
        }
    }

    /// Gives up on the hole before offset `to`.
    fn skip_hole(&mut self, to: u64, ts_nanos: i64, out: &mut Vec<Chunk>) {
        if to > self.next_off {
            push_gap(out, to - self.next_off, ts_nanos);
            self.next_off = to;
        }
    }

    /// Declares holes lost while too much waits behind them or data runs too far ahead.
    fn enforce_limits(&mut self, ts_nanos: i64, out: &mut Vec<Chunk>) {
        loop {
            let (Some((&first, _)), Some((&last, last_piece))) =
                (self.pieces.first_key_value(), self.pieces.last_key_value())
            else {
                return;
            };
            let reach = last + last_piece.len - self.next_off;
            if self.buffered <= self.limits.max_buffered_bytes
                && reach <= self.limits.max_hole_wait_bytes
            {
                return;
            }
            self.skip_hole(first, ts_nanos, out);
            self.deliver(ts_nanos, out);
        }
    }
}

/// Appends a gap, merging it into a gap just before it.
fn push_gap(out: &mut Vec<Chunk>, len: u64, ts_nanos: i64) {
    if let Some(Chunk::Gap {
        len: prev,
        ts_nanos: prev_ts,
    }) = out.last_mut()
    {
        *prev += len;
        *prev_ts = (*prev_ts).max(ts_nanos);
    } else {
        out.push(Chunk::Gap { len, ts_nanos });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::TcpFlags;

    fn seg(seq: u32, payload: &[u8], ts: i64) -> Segment {
        Segment {
            ts_nanos: ts,
            src: "10.0.0.1:40000".parse().unwrap(),
            dst: "10.0.0.2:9092".parse().unwrap(),
            seq,
            ack: 0,
            flags: TcpFlags {
                ack: true,
                ..TcpFlags::default()
            },
            payload: payload.to_vec(),
            wire_len: payload.len() as u32,
        }
    }

    fn syn(seq: u32) -> Segment {
        let mut s = seg(seq, b"", 0);
        s.flags = TcpFlags {
            syn: true,
            ..TcpFlags::default()
        };
        s
    }

    /// The data delivered, joined, and the lengths of the gaps, in order.
    fn collect(chunks: &[Chunk]) -> (Vec<u8>, Vec<u64>) {
        let mut data = Vec::new();
        let mut gaps = Vec::new();
        for c in chunks {
            match c {
                Chunk::Data { bytes, .. } => data.extend_from_slice(bytes),
                Chunk::Gap { len, .. } => gaps.push(*len),
            }
        }
        (data, gaps)
    }

    fn stream(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn in_order_after_syn() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        assert!(r.push(&syn(1000)).is_empty());
        assert!(r.saw_syn());
        let a = r.push(&seg(1001, b"hello ", 1));
        let b = r.push(&seg(1007, b"world", 2));
        assert_eq!(
            a,
            vec![Chunk::Data {
                bytes: b"hello ".to_vec(),
                ts_nanos: 1
            }]
        );
        assert_eq!(
            b,
            vec![Chunk::Data {
                bytes: b"world".to_vec(),
                ts_nanos: 2
            }]
        );
        assert_eq!(r.delivered(), 11);
        assert!(!r.closed());
    }

    #[test]
    fn data_before_the_syn_position_is_dropped() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.push(&syn(1000));
        // A segment claiming to start at the SYN's own sequence number overlaps it by one.
        let out = r.push(&seg(1000, b"xabc", 1));
        assert_eq!(collect(&out).0, b"abc");
    }

    #[test]
    fn mid_stream_starts_at_first_data_and_ignores_pure_acks() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        // A pure ACK (or keep-alive at next-1) must not fix the stream start.
        assert!(r.push(&seg(4999, b"", 0)).is_empty());
        let out = r.push(&seg(5000, b"abc", 1));
        assert_eq!(collect(&out).0, b"abc");
        assert!(!r.saw_syn());
        // Older bytes than the stream start are not delivered.
        assert!(r.push(&seg(4990, b"0123456789", 2)).is_empty());
        assert_eq!(collect(&r.push(&seg(5003, b"d", 3))).0, b"d");
    }

    #[test]
    fn reordered_segments_come_out_in_order_with_the_filling_segments_time() {
        let data = stream(1000);
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.push(&syn(0));
        let mut order: Vec<usize> = (0..10).collect();
        order.swap(0, 9);
        order.swap(3, 5);
        let mut out = Vec::new();
        for (t, &i) in order.iter().enumerate() {
            let chunks = r.push(&seg(
                1 + i as u32 * 100,
                &data[i * 100..(i + 1) * 100],
                t as i64,
            ));
            if i != 0 {
                // Nothing can come out before the first segment arrives (last here).
                assert!(chunks.is_empty(), "segment {i} delivered early");
            }
            out.extend(chunks);
        }
        assert_eq!(out.len(), 1, "contiguous bytes come out as one chunk");
        assert_eq!(collect(&out).0, data);
        assert!(matches!(out[0], Chunk::Data { ts_nanos: 9, .. }));
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn retransmissions_and_overlaps_delivered_once_first_copy_wins() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.push(&syn(99));
        let mut out = Vec::new();
        out.extend(r.push(&seg(100, b"abcdef", 1)));
        out.extend(r.push(&seg(100, b"abcdef", 2))); // exact duplicate
        out.extend(r.push(&seg(103, b"XYZghi", 3))); // overlaps the delivered tail
                                                     // Out of order: hold "mno", then a copy that overlaps it with other bytes.
        out.extend(r.push(&seg(112, b"mno", 4)));
        out.extend(r.push(&seg(110, b"KLMNOP", 5)));
        out.extend(r.push(&seg(109, b"j", 6)));
        assert_eq!(collect(&out).0, b"abcdefghijKLmnoP");
        assert!(collect(&out).1.is_empty());
    }

    #[test]
    fn snaplen_cut_segment_delivers_bytes_then_gap() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.push(&syn(0));
        let mut cut = seg(1, b"0123", 1);
        cut.wire_len = 10;
        let out = r.push(&cut);
        assert_eq!(
            out,
            vec![
                Chunk::Data {
                    bytes: b"0123".to_vec(),
                    ts_nanos: 1
                },
                Chunk::Gap {
                    len: 6,
                    ts_nanos: 1
                }
            ]
        );
        let out = r.push(&seg(11, b"next", 2));
        assert_eq!(collect(&out).0, b"next");
        // A later full copy of the cut bytes does not bring them back (first copy wins).
        assert!(r.push(&seg(1, b"0123456789", 3)).is_empty());
    }

    #[test]
    fn sequence_numbers_wrap() {
        let data = stream(300);
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let isn = u32::MAX - 150;
        r.push(&syn(isn));
        let mut out = Vec::new();
        // Second segment (crossing 2^32) first, then the first: order must still be found.
        out.extend(r.push(&seg(isn.wrapping_add(101), &data[100..200], 1)));
        out.extend(r.push(&seg(isn.wrapping_add(201), &data[200..], 2)));
        assert!(out.is_empty());
        out.extend(r.push(&seg(isn.wrapping_add(1), &data[..100], 3)));
        assert_eq!(collect(&out).0, data);
        // A retransmission from before the wrap is recognised as old.
        assert!(r
            .push(&seg(isn.wrapping_add(1), &data[..100], 4))
            .is_empty());
        assert_eq!(r.delivered(), 300);
    }

    #[test]
    fn hole_given_up_when_data_runs_far_ahead() {
        let limits = ReassemblyLimits {
            max_buffered_bytes: usize::MAX,
            max_hole_wait_bytes: 1000,
        };
        let mut r = Reassembler::new(limits);
        r.push(&syn(0));
        assert_eq!(collect(&r.push(&seg(1, &[1; 100], 1))).0.len(), 100);
        // Bytes 101..201 are lost; data keeps coming after the hole.
        let mut out = Vec::new();
        let mut seq = 201;
        while seq < 1301 {
            out.extend(r.push(&seg(seq, &[2; 100], 2)));
            seq += 100;
        }
        let (data, gaps) = collect(&out);
        assert_eq!(
            gaps,
            vec![100],
            "the hole is declared once data is 1000 bytes past it"
        );
        assert!(matches!(out[0], Chunk::Gap { len: 100, .. }));
        assert_eq!(data.len(), 1100);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn hole_given_up_when_buffer_bound_reached() {
        let limits = ReassemblyLimits {
            max_buffered_bytes: 1000,
            max_hole_wait_bytes: u64::MAX,
        };
        let mut r = Reassembler::new(limits);
        r.push(&seg(0, b"a", 0));
        let mut out = Vec::new();
        for i in 0..20u32 {
            out.extend(r.push(&seg(11 + i * 100, &[3; 100], 1)));
            assert!(r.buffered() <= 1000);
        }
        let (data, gaps) = collect(&out);
        assert_eq!(gaps, vec![10]);
        assert_eq!(data.len(), 2000);
    }

    #[test]
    fn flush_delivers_held_bytes_with_gaps() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.push(&syn(0));
        r.push(&seg(1, b"ab", 1));
        assert!(r.push(&seg(5, b"ef", 2)).is_empty());
        assert!(r.push(&seg(9, b"ij", 3)).is_empty());
        let out = r.flush();
        assert_eq!(
            out,
            vec![
                Chunk::Gap {
                    len: 2,
                    ts_nanos: 2
                },
                Chunk::Data {
                    bytes: b"ef".to_vec(),
                    ts_nanos: 2
                },
                Chunk::Gap {
                    len: 2,
                    ts_nanos: 3
                },
                Chunk::Data {
                    bytes: b"ij".to_vec(),
                    ts_nanos: 3
                },
            ]
        );
        assert!(r.flush().is_empty());
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn fin_and_rst_close() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.push(&syn(0));
        let mut fin = seg(1, b"bye", 1);
        fin.flags.fin = true;
        assert_eq!(
            collect(&r.push(&fin)).0,
            b"bye",
            "data on a FIN is delivered"
        );
        assert!(r.closed() && r.saw_fin() && !r.saw_rst());

        let mut r = Reassembler::new(ReassemblyLimits::default());
        let mut rst = seg(7, b"", 1);
        rst.flags.rst = true;
        assert!(r.push(&rst).is_empty());
        assert!(r.closed() && r.saw_rst());
    }

    #[test]
    fn acknowledged_hole_becomes_a_gap_at_once() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.push(&syn(0));
        r.push(&seg(1, b"abc", 1));
        // Bytes 4..7 never captured; 7.. held behind the hole.
        assert!(r.push(&seg(7, b"ghi", 2)).is_empty());
        // An ACK below the hole or of what was delivered changes nothing.
        assert!(r.acked(3, 3).is_empty());
        assert!(r.acked(4, 3).is_empty());
        let out = r.acked(8, 4);
        assert_eq!(
            out,
            vec![
                Chunk::Gap {
                    len: 3,
                    ts_nanos: 4
                },
                Chunk::Data {
                    bytes: b"ghi".to_vec(),
                    ts_nanos: 4
                }
            ]
        );
        // Acknowledged bytes never captured, with nothing after them, are a gap too.
        assert_eq!(
            r.acked(15, 5),
            vec![Chunk::Gap {
                len: 5,
                ts_nanos: 5
            }]
        );
        // The FIN takes a sequence number but is no data: its ACK is not a gap.
        let mut fin = seg(15, b"", 6);
        fin.flags.fin = true;
        r.push(&fin);
        assert!(r.acked(16, 7).is_empty());
        // Before the stream start is known, ACKs mean nothing.
        let mut fresh = Reassembler::new(ReassemblyLimits::default());
        assert!(fresh.acked(1000, 1).is_empty());
    }

    #[test]
    fn many_tiny_out_of_order_segments_stay_bounded() {
        let limits = ReassemblyLimits {
            max_buffered_bytes: 64 * 1024,
            max_hole_wait_bytes: u64::MAX,
        };
        let mut r = Reassembler::new(limits);
        r.push(&syn(0));
        // One-byte segments with one-byte holes between them: never contiguous.
        for i in 0..50_000u32 {
            r.push(&seg(2 + i * 2, b"x", 1));
            assert!(r.buffered() <= 64 * 1024);
        }
    }
}
