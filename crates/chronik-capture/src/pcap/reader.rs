//! Streaming reader for pcap and pcapng capture files.
//!
//! [`CaptureReader`] sniffs the file's magic number, then hands out one [`RawPacket`] per
//! record without ever holding more than the record being read. Both formats are parsed here
//! directly (they are small): pcap-file 2 keeps an 8 MB buffer, reports no file offsets and
//! cannot step past a bad block, all of which this reader needs.
//!
//! - pcap: either byte order, microsecond or nanosecond timestamps, the link type from the
//!   file header.
//! - pcapng: any number of sections (each with its own byte order) and interfaces; every
//!   Interface Description Block brings its link type, `if_tsresol` (powers of ten or of
//!   two) and `if_tsoffset`. Enhanced, Simple and (obsolete) Packet Blocks become packets;
//!   other blocks are skipped.
//!
//! Errors carry the file offset they concern. A packet that names an undescribed interface
//! or does not fit in its block is an error for that packet only; a file that ends in the
//! middle of a record, a block length over [`MAX_RECORD_LEN`] or an unreadable block frame
//! ends the stream after one error.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, ErrorKind, Read};
use std::path::Path;

use super::prefetch::Prefetch;
use super::{PacketRef, RawPacket};

/// The largest pcap record or pcapng block accepted; a longer one is taken as corruption.
pub const MAX_RECORD_LEN: u64 = 256 * 1024 * 1024;

/// The most interfaces one pcapng section may describe (each costs memory for the rest of
/// the section).
pub const MAX_INTERFACES: usize = 65_536;

const PCAP_MAGIC_MICROS: u32 = 0xA1B2_C3D4;
const PCAP_MAGIC_NANOS: u32 = 0xA1B2_3C4D;
const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_OBSOLETE_PACKET: u32 = 2;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;
const OPT_ENDOFOPT: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// libpcap's `LT_LINKTYPE`: the bits of a pcap header's link-type field that name the
/// link type (the upper bits carry FCS information).
const PCAP_LINKTYPE_MASK: u32 = 0x03FF_FFFF;

/// Which file format a [`CaptureReader`] is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic libpcap format; `nanos` when the timestamps are in nanoseconds.
    Pcap {
        /// Nanosecond timestamps (magic `a1b23c4d`) rather than microseconds.
        nanos: bool,
    },
    /// pcapng (sections, interfaces and blocks).
    PcapNg,
}

/// Something wrong with a capture file, at a byte offset in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureError {
    /// Byte offset in the file the problem concerns.
    pub offset: u64,
    /// What is wrong, for a person.
    pub message: String,
}

impl CaptureError {
    fn new(offset: u64, message: impl Into<String>) -> CaptureError {
        CaptureError {
            offset,
            message: message.into(),
        }
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for CaptureError {}

/// Byte order of the file (pcap) or of the current section (pcapng).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        }
    }

    fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }

    fn u64(self, b: [u8; 8]) -> u64 {
        match self {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        }
    }

    /// Reads a u16 at `at`; the caller has checked the length.
    fn u16_at(self, buf: &[u8], at: usize) -> u16 {
        self.u16([buf[at], buf[at + 1]])
    }

    /// Reads a u32 at `at`; the caller has checked the length.
    fn u32_at(self, buf: &[u8], at: usize) -> u32 {
        self.u32([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
    }
}

/// Timestamp resolution of a pcapng interface (`if_tsresol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsResolution {
    /// Units of 10^-n seconds.
    Decimal(u8),
    /// Units of 2^-n seconds.
    Binary(u8),
}

impl TsResolution {
    fn from_option(byte: u8) -> TsResolution {
        if byte & 0x80 == 0 {
            TsResolution::Decimal(byte)
        } else {
            TsResolution::Binary(byte & 0x7F)
        }
    }

    /// Converts a count of units to nanoseconds (saturating; sub-nanosecond parts dropped).
    fn to_nanos(self, ticks: u64) -> u64 {
        let nanos: u128 = match self {
            // Every packet's: from a table rather than a power computed each time.
            TsResolution::Decimal(n) if n <= 9 => {
                const NANOS_PER_TICK: [u64; 10] = [
                    1_000_000_000,
                    100_000_000,
                    10_000_000,
                    1_000_000,
                    100_000,
                    10_000,
                    1_000,
                    100,
                    10,
                    1,
                ];
                u128::from(ticks) * u128::from(NANOS_PER_TICK[usize::from(n)])
            }
            // ticks < 2^64 < 10^20, so anything finer than 10^-29 s is below a nanosecond.
            TsResolution::Decimal(n) if n >= 29 => 0,
            TsResolution::Decimal(n) => u128::from(ticks) / 10u128.pow(u32::from(n - 9)),
            TsResolution::Binary(n) => (u128::from(ticks) * 1_000_000_000) >> n,
        };
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }
}

/// One described pcapng interface.
#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: u32,
    snaplen: u32,
    resolution: TsResolution,
    /// `if_tsoffset`: seconds added to every timestamp.
    offset_secs: i64,
}

/// Per-format reading state.
#[derive(Debug)]
enum State {
    Pcap {
        endian: Endian,
        nanos: bool,
        linktype: u32,
    },
    PcapNg {
        endian: Endian,
        interfaces: Vec<Interface>,
    },
}

/// What one pcapng block turned out to be.
enum BlockOutcome {
    /// A packet, now in the caller's [`RawPacket`].
    Packet,
    /// A block that is not a packet (read and dropped).
    Skipped,
    /// A block that is framed correctly but whose packet cannot be used.
    BadPacket(CaptureError),
}

/// An Enhanced Packet Block found whole in the input buffer.
struct Epb {
    /// Its length, trailer included.
    total: usize,
    /// Bytes of packet data it holds (they start 28 bytes in).
    captured: usize,
    /// The packet, its data still to be taken from the buffer.
    packet: PacketRef<'static>,
}

/// What a [`CaptureReader`] reads from: any byte source through a buffer of its own, or a
/// regular file read ahead in chunks on another thread.
enum Buffered {
    Read(BufReader<Box<dyn Read + Send>>),
    Prefetched(Prefetch),
}

impl Buffered {
    /// What is buffered and not consumed yet.
    fn buffer(&self) -> &[u8] {
        match self {
            Buffered::Read(r) => r.buffer(),
            Buffered::Prefetched(p) => p.buffer(),
        }
    }
}

impl Read for Buffered {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Buffered::Read(r) => r.read(buf),
            Buffered::Prefetched(p) => p.read(buf),
        }
    }
}

impl BufRead for Buffered {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Buffered::Read(r) => r.fill_buf(),
            Buffered::Prefetched(p) => p.fill_buf(),
        }
    }

    fn consume(&mut self, n: usize) {
        match self {
            Buffered::Read(r) => r.consume(n),
            Buffered::Prefetched(p) => p.consume(n),
        }
    }
}

/// A pcap or pcapng file read one packet at a time.
pub struct CaptureReader {
    input: Buffered,
    /// Bytes consumed from the input so far.
    offset: u64,
    format: CaptureFormat,
    state: State,
    /// Set after an error the stream cannot continue from, or at the end of the input.
    finished: bool,
    /// Bytes of the input buffer the last [`CaptureReader::next_ref`] lent out, consumed when
    /// the next packet is asked for.
    lent: usize,
    /// The packet [`CaptureReader::next_ref`] lends when it had to be read out of the buffer.
    copied: RawPacket,
}

impl fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureReader")
            .field("offset", &self.offset)
            .field("format", &self.format)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl CaptureReader {
    /// Opens a capture file and reads its header; the format comes from the magic number. A
    /// regular file is read ahead (see [`CaptureReader::read_ahead`]).
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        let cannot =
            |e: io::Error| CaptureError::new(0, format!("cannot open {}: {e}", path.display()));
        let file = File::open(path).map_err(cannot)?;
        if file.metadata().map_err(cannot)?.is_file() {
            CaptureReader::read_ahead(file)
        } else {
            CaptureReader::new(file)
        }
    }

    /// Reads a capture from any byte source (it is buffered here), starting with its header.
    pub fn new<R: Read + Send + 'static>(reader: R) -> Result<CaptureReader, CaptureError> {
        let boxed: Box<dyn Read + Send> = Box::new(reader);
        CaptureReader::from_input(Buffered::Read(BufReader::with_capacity(64 * 1024, boxed)))
    }

    /// Reads a capture from a regular file, from where it stands, read ahead on a thread of
    /// its own (see [`super::prefetch`]); starts with the header.
    pub fn read_ahead(file: File) -> Result<CaptureReader, CaptureError> {
        let prefetch = Prefetch::spawn(file)
            .map_err(|e| CaptureError::new(0, format!("cannot start reading: {e}")))?;
        CaptureReader::from_input(Buffered::Prefetched(prefetch))
    }

    fn from_input(input: Buffered) -> Result<CaptureReader, CaptureError> {
        let mut this = CaptureReader {
            input,
            offset: 0,
            format: CaptureFormat::PcapNg,
            state: State::PcapNg {
                endian: Endian::Little,
                interfaces: Vec::new(),
            },
            finished: false,
            lent: 0,
            copied: RawPacket::default(),
        };
        let mut magic = [0u8; 4];
        let got = this.read_full(&mut magic)?;
        if got < magic.len() {
            return Err(CaptureError::new(
                this.offset,
                format!("not a capture file: {got} bytes, too short for a pcap or pcapng header"),
            ));
        }
        let as_le = u32::from_le_bytes(magic);
        let as_be = u32::from_be_bytes(magic);
        if as_be == PCAPNG_SHB {
            this.format = CaptureFormat::PcapNg;
            // The first block must be a section header; a broken one is an error of the file.
            this.read_block(Some(magic), &mut RawPacket::default())?;
            return Ok(this);
        }
        let (endian, nanos) = match (as_le, as_be) {
            (PCAP_MAGIC_MICROS, _) => (Endian::Little, false),
            (PCAP_MAGIC_NANOS, _) => (Endian::Little, true),
            (_, PCAP_MAGIC_MICROS) => (Endian::Big, false),
            (_, PCAP_MAGIC_NANOS) => (Endian::Big, true),
            _ => {
                return Err(CaptureError::new(
                    0,
                    format!("not a pcap or pcapng file: magic number {as_be:08x}"),
                ))
            }
        };
        let mut rest = [0u8; 20];
        let got = this.read_full(&mut rest)?;
        if got < rest.len() {
            return Err(CaptureError::new(
                this.offset,
                format!(
                    "file ends early: the pcap header needs 24 bytes, only {} present",
                    4 + got
                ),
            ));
        }
        // rest: version major, minor (2+2), thiszone (4), sigfigs (4), snaplen (4), linktype (4).
        let linktype = endian.u32_at(&rest, 16) & PCAP_LINKTYPE_MASK;
        this.format = CaptureFormat::Pcap { nanos };
        this.state = State::Pcap {
            endian,
            nanos,
            linktype,
        };
        Ok(this)
    }

    /// The file's format (and for pcap, its timestamp unit).
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// Bytes of the file consumed so far (for a progress bar).
    pub fn bytes_read(&self) -> u64 {
        self.offset
    }

    /// The next packet; `Some(Err)` for a packet (or a stretch of file) that cannot be read,
    /// `None` at the end of the file or after an error the file cannot be read past.
    pub fn next_packet(&mut self) -> Option<Result<RawPacket, CaptureError>> {
        let mut packet = RawPacket::default();
        self.next_into(&mut packet)
            .map(|result| result.map(|()| packet))
    }

    /// [`CaptureReader::next_packet`] into a packet the caller keeps (and reuses: its buffer
    /// is refilled, so reading a file allocates nothing per packet). After `Some(Ok(()))`,
    /// `packet` holds the next packet; otherwise what it holds is unspecified.
    pub fn next_into(&mut self, packet: &mut RawPacket) -> Option<Result<(), CaptureError>> {
        self.input.consume(std::mem::take(&mut self.lent));
        while !self.finished {
            let result = match self.state {
                State::Pcap { .. } => self.read_pcap_record(packet).map(|p| {
                    if p {
                        BlockOutcome::Packet
                    } else {
                        BlockOutcome::Skipped
                    }
                }),
                State::PcapNg { endian, .. } => match self.enhanced_in_buffer(endian, packet) {
                    true => Ok(BlockOutcome::Packet),
                    false => self.read_block(None, packet),
                },
            };
            match result {
                Ok(BlockOutcome::Packet) => return Some(Ok(())),
                Ok(BlockOutcome::BadPacket(e)) => return Some(Err(e)),
                Ok(BlockOutcome::Skipped) => {}
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }

    /// [`CaptureReader::next_packet`], borrowed until the next call: an Enhanced Packet Block
    /// whole in the input buffer is lent from there, copying nothing; any other packet from a
    /// copy the reader keeps.
    pub fn next_ref(&mut self) -> Option<Result<PacketRef<'_>, CaptureError>> {
        self.input.consume(std::mem::take(&mut self.lent));
        if let (State::PcapNg { endian, .. }, false) = (&self.state, self.finished) {
            if let Some(epb) = self.enhanced_at_front(*endian) {
                self.lent = epb.total;
                self.offset += epb.total as u64;
                return Some(Ok(PacketRef {
                    data: &self.input.buffer()[28..28 + epb.captured],
                    ..epb.packet
                }));
            }
        }
        let mut copied = std::mem::take(&mut self.copied);
        let next = self.next_into(&mut copied);
        self.copied = copied;
        next.map(|r| r.map(|()| self.copied.borrow()))
    }

    /// Reads one pcap record into `packet`; `Ok(false)` (and finished) at a clean end of file.
    fn read_pcap_record(&mut self, packet: &mut RawPacket) -> Result<bool, CaptureError> {
        let State::Pcap {
            endian,
            nanos,
            linktype,
        } = self.state
        else {
            return Ok(false);
        };
        let start = self.offset;
        let mut header = [0u8; 16];
        let got = self.read_full(&mut header)?;
        if got == 0 {
            self.finished = true;
            return Ok(false);
        }
        if got < header.len() {
            return Err(self.ends_early(start, "pcap record header", 16));
        }
        let secs = endian.u32_at(&header, 0);
        let frac = endian.u32_at(&header, 4);
        let incl_len = endian.u32_at(&header, 8);
        let orig_len = endian.u32_at(&header, 12);
        if u64::from(incl_len) > MAX_RECORD_LEN {
            return Err(CaptureError::new(
                start + 8,
                format!(
                    "pcap record length {incl_len} is over the {MAX_RECORD_LEN}-byte limit (corrupt file)"
                ),
            ));
        }
        if self.read_into(&mut packet.data, u64::from(incl_len))? < u64::from(incl_len) {
            return Err(self.ends_early(start, "pcap record", 16 + u64::from(incl_len)));
        }
        let frac_nanos = if nanos {
            i64::from(frac)
        } else {
            i64::from(frac) * 1_000
        };
        let ts_nanos = i64::from(secs)
            .saturating_mul(1_000_000_000)
            .saturating_add(frac_nanos);
        packet.ts_nanos = ts_nanos;
        packet.linktype = linktype;
        packet.orig_len = orig_len;
        packet.interface = 0;
        Ok(true)
    }

    /// Reads one pcapng block. `first_type` is the block type already read by [`Self::new`].
    fn read_block(
        &mut self,
        first_type: Option<[u8; 4]>,
        packet: &mut RawPacket,
    ) -> Result<BlockOutcome, CaptureError> {
        let State::PcapNg {
            endian: section_endian,
            ..
        } = self.state
        else {
            return Ok(BlockOutcome::Skipped);
        };
        let start = self.offset - if first_type.is_some() { 4 } else { 0 };
        let mut head = [0u8; 8];
        let head_start = match first_type {
            Some(t) => {
                head[..4].copy_from_slice(&t);
                4
            }
            None => 0,
        };
        let got = self.read_full(&mut head[head_start..])?;
        if got == 0 && head_start == 0 {
            self.finished = true;
            return Ok(BlockOutcome::Skipped);
        }
        if head_start + got < head.len() {
            return Err(self.ends_early(start, "pcapng block header", 8));
        }
        let type_bytes = [head[0], head[1], head[2], head[3]];
        let len_bytes = [head[4], head[5], head[6], head[7]];
        // The section header's type reads the same either way round; its byte-order magic
        // says how to read its length and everything up to the next section header.
        let (block_type, endian) = if u32::from_be_bytes(type_bytes) == PCAPNG_SHB {
            let mut bom = [0u8; 4];
            let got = self.read_full(&mut bom)?;
            if got < bom.len() {
                return Err(self.ends_early(start, "pcapng section header", 12));
            }
            let endian = if u32::from_le_bytes(bom) == PCAPNG_BYTE_ORDER_MAGIC {
                Endian::Little
            } else if u32::from_be_bytes(bom) == PCAPNG_BYTE_ORDER_MAGIC {
                Endian::Big
            } else {
                return Err(CaptureError::new(
                    start + 8,
                    format!(
                        "pcapng section header without its byte-order magic (found {:08x})",
                        u32::from_be_bytes(bom)
                    ),
                ));
            };
            (PCAPNG_SHB, endian)
        } else {
            (section_endian.u32(type_bytes), section_endian)
        };
        let total_len = u64::from(endian.u32(len_bytes));
        let min_len = if block_type == PCAPNG_SHB { 28 } else { 12 };
        if total_len > MAX_RECORD_LEN {
            return Err(CaptureError::new(
                start + 4,
                format!(
                    "pcapng block length {total_len} is over the {MAX_RECORD_LEN}-byte limit (corrupt file)"
                ),
            ));
        }
        if total_len < min_len || total_len % 4 != 0 {
            return Err(CaptureError::new(
                start + 4,
                format!(
                    "pcapng block of type {block_type:#x} has length {total_len}: \
                     must be a multiple of 4 and at least {min_len}"
                ),
            ));
        }
        // Body without the leading type and length and the trailing length.
        let body_len = total_len - 12;
        let outcome = match block_type {
            PCAPNG_SHB => {
                // The byte-order magic (4 bytes of the body) is already read.
                let body = self.read_block_body(start, total_len, body_len - 4)?;
                self.start_section(start, endian, &body)?;
                BlockOutcome::Skipped
            }
            PCAPNG_IDB => {
                let body = self.read_block_body(start, total_len, body_len)?;
                self.add_interface(start, endian, &body)
            }
            PCAPNG_EPB | PCAPNG_OBSOLETE_PACKET => {
                self.read_timestamped_packet(start, total_len, block_type, endian, packet)?
            }
            PCAPNG_SPB => self.read_simple_packet(start, total_len, endian, packet)?,
            _ => {
                self.skip(start, total_len, body_len)?;
                BlockOutcome::Skipped
            }
        };
        let mut trailer = [0u8; 4];
        if self.read_full(&mut trailer)? < trailer.len() {
            return Err(self.ends_early(start, "pcapng block", total_len));
        }
        let trailing_len = u64::from(endian.u32(trailer));
        if trailing_len != total_len {
            return Err(CaptureError::new(
                self.offset - 4,
                format!(
                    "pcapng block at byte {start} says its length is {total_len} at the start \
                     and {trailing_len} at the end (corrupt file)"
                ),
            ));
        }
        Ok(outcome)
    }

    /// The usual block, read where it lies in the input's buffer: an Enhanced Packet Block that
    /// is whole there and sound (its lengths agree, its interface is described). True when it
    /// was taken into `packet`; otherwise nothing is consumed, and [`Self::read_block`] reads
    /// the block (and says what is wrong with it, if anything).
    fn enhanced_in_buffer(&mut self, endian: Endian, packet: &mut RawPacket) -> bool {
        let Some(epb) = self.enhanced_at_front(endian) else {
            return false;
        };
        packet.data.clear();
        packet
            .data
            .extend_from_slice(&self.input.buffer()[28..28 + epb.captured]);
        packet.ts_nanos = epb.packet.ts_nanos;
        packet.linktype = epb.packet.linktype;
        packet.orig_len = epb.packet.orig_len;
        packet.interface = epb.packet.interface;
        self.input.consume(epb.total);
        self.offset += epb.total as u64;
        true
    }

    /// The Enhanced Packet Block at the front of the input buffer, when it is whole there and
    /// sound (see [`CaptureReader::enhanced_in_buffer`]); nothing is consumed.
    fn enhanced_at_front(&self, endian: Endian) -> Option<Epb> {
        let buf = self.input.buffer();
        // The block's seven header words (type, length, interface, timestamp high and low,
        // captured and original length), read in one go: this runs for every packet.
        let mut word = [0u32; 7];
        for (w, b) in word.iter_mut().zip(buf.get(..28)?.chunks_exact(4)) {
            *w = endian.u32([b[0], b[1], b[2], b[3]]);
        }
        let [kind, total, interface, ts_high, ts_low, captured, orig_len] = word;
        let (total, captured) = (total as usize, captured as usize);
        if kind != PCAPNG_EPB || total < 32 || !total.is_multiple_of(4) || total > buf.len() {
            return None;
        }
        if captured > total - 32 || endian.u32_at(buf, total - 4) as usize != total {
            return None;
        }
        let described = self.interface(interface)?;
        Some(Epb {
            total,
            captured,
            packet: PacketRef {
                ts_nanos: described.timestamp((u64::from(ts_high) << 32) | u64::from(ts_low)),
                linktype: described.linktype,
                data: &[],
                orig_len,
                interface,
            },
        })
    }

    /// Takes a section header's body (after the byte-order magic): a new section with no
    /// interfaces yet.
    fn start_section(
        &mut self,
        start: u64,
        endian: Endian,
        body: &[u8],
    ) -> Result<(), CaptureError> {
        // Version major and minor, then the section length (8 bytes), then options.
        let major = endian.u16_at(body, 0);
        if major != 1 {
            return Err(CaptureError::new(
                start + 12,
                format!(
                    "pcapng version {major}.{} is not supported (only 1.x)",
                    endian.u16_at(body, 2)
                ),
            ));
        }
        self.state = State::PcapNg {
            endian,
            interfaces: Vec::new(),
        };
        Ok(())
    }

    /// Takes an Interface Description Block's body.
    fn add_interface(&mut self, start: u64, endian: Endian, body: &[u8]) -> BlockOutcome {
        let State::PcapNg { interfaces, .. } = &mut self.state else {
            return BlockOutcome::Skipped;
        };
        if body.len() < 8 {
            return BlockOutcome::BadPacket(CaptureError::new(
                start,
                format!(
                    "interface description block too short ({} bytes of body, 8 needed)",
                    body.len()
                ),
            ));
        }
        if interfaces.len() >= MAX_INTERFACES {
            return BlockOutcome::BadPacket(CaptureError::new(
                start,
                format!(
                    "more than {MAX_INTERFACES} interfaces in one section; this one is ignored"
                ),
            ));
        }
        let mut interface = Interface {
            linktype: u32::from(endian.u16_at(body, 0)),
            snaplen: endian.u32_at(body, 4),
            resolution: TsResolution::Decimal(6),
            offset_secs: 0,
        };
        for (code, value) in Options::new(&body[8..], endian) {
            match (code, value.len()) {
                (OPT_IF_TSRESOL, 1) => interface.resolution = TsResolution::from_option(value[0]),
                (OPT_IF_TSOFFSET, 8) => {
                    let raw = [
                        value[0], value[1], value[2], value[3], value[4], value[5], value[6],
                        value[7],
                    ];
                    interface.offset_secs = endian.u64(raw) as i64;
                }
                _ => {}
            }
        }
        interfaces.push(interface);
        BlockOutcome::Skipped
    }

    /// Reads an Enhanced Packet Block or an obsolete Packet Block (after type and length).
    fn read_timestamped_packet(
        &mut self,
        start: u64,
        total_len: u64,
        block_type: u32,
        endian: Endian,
        packet: &mut RawPacket,
    ) -> Result<BlockOutcome, CaptureError> {
        let body_len = total_len - 12;
        let name = if block_type == PCAPNG_EPB {
            "enhanced packet block"
        } else {
            "packet block"
        };
        if body_len < 20 {
            self.skip(start, total_len, body_len)?;
            return Ok(BlockOutcome::BadPacket(CaptureError::new(
                start,
                format!("{name} too short ({body_len} bytes of body, 20 needed)"),
            )));
        }
        let mut fixed = [0u8; 20];
        if self.read_full(&mut fixed)? < fixed.len() {
            return Err(self.ends_early(start, name, total_len));
        }
        let interface_id = if block_type == PCAPNG_EPB {
            endian.u32_at(&fixed, 0)
        } else {
            // Obsolete Packet Block: a 16-bit interface id, then a 16-bit drop count.
            u32::from(endian.u16_at(&fixed, 0))
        };
        let ts_high = u64::from(endian.u32_at(&fixed, 4));
        let ts_low = u64::from(endian.u32_at(&fixed, 8));
        let captured = u64::from(endian.u32_at(&fixed, 12));
        let orig_len = endian.u32_at(&fixed, 16);
        let room = body_len - 20;
        if captured > room {
            self.skip(start, total_len, room)?;
            return Ok(BlockOutcome::BadPacket(CaptureError::new(
                start + 20,
                format!("{name} claims {captured} captured bytes but has room for {room}"),
            )));
        }
        if self.read_into(&mut packet.data, captured)? < captured {
            return Err(self.ends_early(start, name, total_len));
        }
        self.skip(start, total_len, room - captured)?;
        let Some(interface) = self.interface(interface_id) else {
            return Ok(BlockOutcome::BadPacket(
                self.undescribed(start, interface_id),
            ));
        };
        let ticks = (ts_high << 32) | ts_low;
        packet.ts_nanos = interface.timestamp(ticks);
        packet.linktype = interface.linktype;
        packet.orig_len = orig_len;
        packet.interface = interface_id;
        Ok(BlockOutcome::Packet)
    }

    /// Reads a Simple Packet Block (after type and length): interface 0, no timestamp.
    fn read_simple_packet(
        &mut self,
        start: u64,
        total_len: u64,
        endian: Endian,
        packet: &mut RawPacket,
    ) -> Result<BlockOutcome, CaptureError> {
        let body_len = total_len - 12;
        if body_len < 4 {
            self.skip(start, total_len, body_len)?;
            return Ok(BlockOutcome::BadPacket(CaptureError::new(
                start,
                format!("simple packet block too short ({body_len} bytes of body, 4 needed)"),
            )));
        }
        let mut fixed = [0u8; 4];
        if self.read_full(&mut fixed)? < fixed.len() {
            return Err(self.ends_early(start, "simple packet block", total_len));
        }
        let orig_len = endian.u32(fixed);
        let room = body_len - 4;
        let interface = self.interface(0);
        // The captured length is not stored: the original length, cut to the snapshot
        // length of interface 0 and to what the block holds.
        let snaplen = match interface {
            Some(i) if i.snaplen != 0 => u64::from(i.snaplen),
            _ => u64::MAX,
        };
        let captured = u64::from(orig_len).min(snaplen).min(room);
        if self.read_into(&mut packet.data, captured)? < captured {
            return Err(self.ends_early(start, "simple packet block", total_len));
        }
        self.skip(start, total_len, room - captured)?;
        let Some(interface) = interface else {
            return Ok(BlockOutcome::BadPacket(self.undescribed(start, 0)));
        };
        packet.ts_nanos = 0;
        packet.linktype = interface.linktype;
        packet.orig_len = orig_len;
        packet.interface = 0;
        Ok(BlockOutcome::Packet)
    }

    fn interface(&self, id: u32) -> Option<Interface> {
        match &self.state {
            State::PcapNg { interfaces, .. } => usize::try_from(id)
                .ok()
                .and_then(|i| interfaces.get(i))
                .copied(),
            State::Pcap { .. } => None,
        }
    }

    fn undescribed(&self, start: u64, id: u32) -> CaptureError {
        let count = match &self.state {
            State::PcapNg { interfaces, .. } => interfaces.len(),
            State::Pcap { .. } => 0,
        };
        CaptureError::new(
            start,
            format!(
                "packet from interface {id}, but this section describes {count} interface{}",
                if count == 1 { "" } else { "s" }
            ),
        )
    }

    /// Reads `len` bytes of a block body; the whole block must be present.
    fn read_block_body(
        &mut self,
        start: u64,
        total_len: u64,
        len: u64,
    ) -> Result<Vec<u8>, CaptureError> {
        let mut body = Vec::new();
        if self.read_into(&mut body, len)? < len {
            return Err(self.ends_early(start, "pcapng block", total_len));
        }
        Ok(body)
    }

    /// Skips `len` bytes of the block that starts at `start`.
    fn skip(&mut self, start: u64, total_len: u64, len: u64) -> Result<(), CaptureError> {
        if self.take_input(len, |_| {})? < len {
            return Err(self.ends_early(start, "pcapng block", total_len));
        }
        Ok(())
    }

    /// Replaces `data` with up to `len` bytes of the input (fewer only at its end); returns
    /// how many. Memory grows with the bytes actually read, not with the length a header
    /// claims; `data`'s buffer is reused.
    fn read_into(&mut self, data: &mut Vec<u8>, len: u64) -> Result<u64, CaptureError> {
        data.clear();
        self.take_input(len, |bytes| data.extend_from_slice(bytes))
    }

    /// Passes up to `len` bytes of the input to `each` as they lie in its buffer, consuming
    /// them (fewer only at its end); returns how many.
    fn take_input(&mut self, len: u64, mut each: impl FnMut(&[u8])) -> Result<u64, CaptureError> {
        let mut left = len;
        while left > 0 {
            let n = match self.input.fill_buf() {
                Ok([]) => break,
                Ok(buf) => {
                    let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    each(&buf[..n]);
                    n
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(CaptureError::new(self.offset, format!("read error: {e}"))),
            };
            self.input.consume(n);
            self.offset += n as u64;
            left -= n as u64;
        }
        Ok(len - left)
    }

    /// Fills `buf` as far as the input goes; returns how many bytes it got.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, CaptureError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.input.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(CaptureError::new(self.offset, format!("read error: {e}"))),
            }
        }
        Ok(filled)
    }

    /// The error for a file that ends inside the record starting at `start`.
    fn ends_early(&self, start: u64, what: &str, len: u64) -> CaptureError {
        CaptureError::new(
            self.offset,
            format!(
                "file ends early at byte {}: the {what} at byte {start} needs {len} bytes, only {} present",
                self.offset,
                self.offset - start
            ),
        )
    }
}

impl Interface {
    /// A packet's timestamp in nanoseconds since the epoch, from its raw tick count.
    fn timestamp(&self, ticks: u64) -> i64 {
        let nanos = i64::try_from(self.resolution.to_nanos(ticks)).unwrap_or(i64::MAX);
        nanos.saturating_add(self.offset_secs.saturating_mul(1_000_000_000))
    }
}

/// The options of a pcapng block: (code, value) pairs up to `opt_endofopt` or the end.
struct Options<'a> {
    rest: &'a [u8],
    endian: Endian,
}

impl<'a> Options<'a> {
    fn new(rest: &'a [u8], endian: Endian) -> Options<'a> {
        Options { rest, endian }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<(u16, &'a [u8])> {
        if self.rest.len() < 4 {
            return None;
        }
        let code = self.endian.u16_at(self.rest, 0);
        let len = usize::from(self.endian.u16_at(self.rest, 2));
        if code == OPT_ENDOFOPT {
            self.rest = &[];
            return None;
        }
        let padded = len.div_ceil(4) * 4;
        let value = self.rest.get(4..4 + len)?;
        self.rest = self.rest.get(4 + padded..).unwrap_or(&[]);
        Some((code, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    // ---- Building capture files byte by byte ----

    fn put_u16(buf: &mut Vec<u8>, endian: Endian, v: u16) {
        match endian {
            Endian::Little => buf.extend_from_slice(&v.to_le_bytes()),
            Endian::Big => buf.extend_from_slice(&v.to_be_bytes()),
        }
    }

    fn put_u32(buf: &mut Vec<u8>, endian: Endian, v: u32) {
        match endian {
            Endian::Little => buf.extend_from_slice(&v.to_le_bytes()),
            Endian::Big => buf.extend_from_slice(&v.to_be_bytes()),
        }
    }

    /// A pcap record: seconds, fraction (µs or ns), captured bytes, original length.
    struct Record<'a>(u32, u32, &'a [u8], u32);

    fn pcap_file(endian: Endian, nanos: bool, linktype: u32, records: &[Record<'_>]) -> Vec<u8> {
        let mut b = Vec::new();
        put_u32(
            &mut b,
            endian,
            if nanos {
                PCAP_MAGIC_NANOS
            } else {
                PCAP_MAGIC_MICROS
            },
        );
        put_u16(&mut b, endian, 2);
        put_u16(&mut b, endian, 4);
        put_u32(&mut b, endian, 0);
        put_u32(&mut b, endian, 0);
        put_u32(&mut b, endian, 65535);
        put_u32(&mut b, endian, linktype);
        for Record(secs, frac, data, orig) in records {
            put_u32(&mut b, endian, *secs);
            put_u32(&mut b, endian, *frac);
            put_u32(&mut b, endian, data.len() as u32);
            put_u32(&mut b, endian, *orig);
            b.extend_from_slice(data);
        }
        b
    }

    /// A pcapng file written block by block; `endian` is the current section's.
    struct Ng {
        bytes: Vec<u8>,
        endian: Endian,
    }

    impl Ng {
        fn new(endian: Endian) -> Ng {
            let mut ng = Ng {
                bytes: Vec::new(),
                endian,
            };
            ng.section(endian);
            ng
        }

        /// A block with its type, lengths and body padded to four bytes.
        fn block(&mut self, block_type: u32, body: &[u8]) -> &mut Ng {
            let padded = body.len().div_ceil(4) * 4;
            let total = (12 + padded) as u32;
            let e = self.endian;
            put_u32(&mut self.bytes, e, block_type);
            put_u32(&mut self.bytes, e, total);
            self.bytes.extend_from_slice(body);
            self.bytes.resize(self.bytes.len() + padded - body.len(), 0);
            put_u32(&mut self.bytes, e, total);
            self
        }

        fn section(&mut self, endian: Endian) -> &mut Ng {
            self.endian = endian;
            let mut body = Vec::new();
            put_u32(&mut body, endian, PCAPNG_BYTE_ORDER_MAGIC);
            put_u16(&mut body, endian, 1);
            put_u16(&mut body, endian, 0);
            body.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown (-1)
            self.block(PCAPNG_SHB, &body)
        }

        fn options(&self, options: &[(u16, Vec<u8>)]) -> Vec<u8> {
            let mut b = Vec::new();
            for (code, value) in options {
                put_u16(&mut b, self.endian, *code);
                put_u16(&mut b, self.endian, value.len() as u16);
                b.extend_from_slice(value);
                b.resize(b.len().div_ceil(4) * 4, 0);
            }
            if !options.is_empty() {
                b.extend_from_slice(&[0; 4]);
            }
            b
        }

        fn interface(
            &mut self,
            linktype: u16,
            snaplen: u32,
            options: &[(u16, Vec<u8>)],
        ) -> &mut Ng {
            let e = self.endian;
            let mut body = Vec::new();
            put_u16(&mut body, e, linktype);
            put_u16(&mut body, e, 0);
            put_u32(&mut body, e, snaplen);
            body.extend(self.options(options));
            self.block(PCAPNG_IDB, &body)
        }

        fn enhanced(&mut self, interface: u32, ticks: u64, data: &[u8], orig_len: u32) -> &mut Ng {
            let e = self.endian;
            let mut body = Vec::new();
            put_u32(&mut body, e, interface);
            put_u32(&mut body, e, (ticks >> 32) as u32);
            put_u32(&mut body, e, ticks as u32);
            put_u32(&mut body, e, data.len() as u32);
            put_u32(&mut body, e, orig_len);
            body.extend_from_slice(data);
            body.resize(body.len().div_ceil(4) * 4, 0);
            // An epb_flags option, to be skipped.
            body.extend(self.options(&[(2, vec![0, 0, 0, 1])]));
            self.block(PCAPNG_EPB, &body)
        }

        fn simple(&mut self, data: &[u8], orig_len: u32) -> &mut Ng {
            let e = self.endian;
            let mut body = Vec::new();
            put_u32(&mut body, e, orig_len);
            body.extend_from_slice(data);
            self.block(PCAPNG_SPB, &body)
        }
    }

    fn tsresol(byte: u8) -> (u16, Vec<u8>) {
        (OPT_IF_TSRESOL, vec![byte])
    }

    fn tsoffset(endian: Endian, secs: i64) -> (u16, Vec<u8>) {
        let v = match endian {
            Endian::Little => secs.to_le_bytes(),
            Endian::Big => secs.to_be_bytes(),
        };
        (OPT_IF_TSOFFSET, v.to_vec())
    }

    /// Every packet (or error) `next_packet` reads from `bytes`; `next_ref`, reading the same
    /// bytes, must lend the same ones and end at the same offset, and so must `next_ref`
    /// reading them from a file read ahead in chunks of 7 bytes (every block spans chunks).
    fn read_all(bytes: Vec<u8>) -> (CaptureReader, Vec<Result<RawPacket, CaptureError>>) {
        let mut lending = CaptureReader::new(io::Cursor::new(bytes.clone())).expect("header");
        let mut ahead = {
            use std::io::{Seek, Write};
            let mut file = tempfile::tempfile().expect("a temporary file");
            file.write_all(&bytes).unwrap();
            file.rewind().unwrap();
            let prefetch = Prefetch::with_chunks(file, 7).unwrap();
            CaptureReader::from_input(Buffered::Prefetched(prefetch)).expect("header")
        };
        let mut reader = CaptureReader::new(io::Cursor::new(bytes)).expect("header reads");
        let mut out = Vec::new();
        while let Some(item) = reader.next_packet() {
            for (how, other) in [("next_ref", &mut lending), ("read ahead", &mut ahead)] {
                let lent = other.next_ref().map(|r| r.map(|p| (p.data.to_vec(), p)));
                match (&item, lent) {
                    (Ok(p), Some(Ok((data, l)))) => assert_eq!(
                        (p.ts_nanos, p.linktype, &p.data, p.orig_len, p.interface),
                        (l.ts_nanos, l.linktype, &data, l.orig_len, l.interface)
                    ),
                    (Err(e), Some(Err(l))) => assert_eq!(e, &l),
                    (item, lent) => panic!("next_packet read {item:?}, {how} {lent:?}"),
                }
            }
            out.push(item);
            assert!(out.len() < 100_000, "reader does not end");
        }
        for (how, other) in [("next_ref", &mut lending), ("read ahead", &mut ahead)] {
            assert!(
                other.next_ref().is_none(),
                "{how} ends where next_packet does"
            );
            assert_eq!(other.bytes_read(), reader.bytes_read(), "{how}");
        }
        assert!(reader.next_packet().is_none(), "None stays None");
        (reader, out)
    }

    /// A byte source that hands out one byte per read call.
    struct Trickle(io::Cursor<Vec<u8>>);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }

    // ---- pcap ----

    #[test]
    fn pcap_both_byte_orders_and_units() {
        for endian in [Endian::Little, Endian::Big] {
            for nanos in [false, true] {
                let frac = if nanos { 123_456_789 } else { 654_321 };
                let bytes = pcap_file(
                    endian,
                    nanos,
                    228,
                    &[
                        Record(1_700_000_000, frac, b"abc", 60),
                        Record(4_000_000_000, 7, b"", 0),
                    ],
                );
                let len = bytes.len() as u64;
                let (reader, packets) = read_all(bytes);
                assert_eq!(reader.format(), CaptureFormat::Pcap { nanos });
                assert_eq!(reader.bytes_read(), len);
                let packets: Vec<RawPacket> = packets.into_iter().map(Result::unwrap).collect();
                assert_eq!(packets.len(), 2);
                let frac_ns = if nanos { 123_456_789 } else { 654_321_000 };
                assert_eq!(packets[0].ts_nanos, 1_700_000_000 * 1_000_000_000 + frac_ns);
                assert_eq!(packets[0].data, b"abc");
                assert_eq!(packets[0].orig_len, 60);
                assert_eq!(packets[0].linktype, 228);
                assert_eq!(packets[0].interface, 0);
                // Seconds are unsigned: past 2038 stays positive.
                let unit = if nanos { 1 } else { 1_000 };
                assert_eq!(
                    packets[1].ts_nanos,
                    4_000_000_000 * 1_000_000_000 + 7 * unit
                );
            }
        }
    }

    #[test]
    fn pcap_linktype_ignores_fcs_bits() {
        // Bit 28 set: FCS present; the link type is still Ethernet.
        let bytes = pcap_file(Endian::Little, false, 0x1000_0001, &[Record(1, 0, b"x", 1)]);
        let (_, packets) = read_all(bytes);
        assert_eq!(packets[0].as_ref().unwrap().linktype, 1);
    }

    #[test]
    fn pcap_truncated_mid_record_yields_complete_packets_then_one_error() {
        let full = pcap_file(
            Endian::Little,
            false,
            1,
            &[
                Record(1, 1, &[1; 40], 40),
                Record(2, 2, &[2; 40], 40),
                Record(3, 3, &[3; 40], 40),
            ],
        );
        // Cut inside the third record's data, then inside its header.
        for cut in [full.len() - 10, full.len() - 40 - 7] {
            let bytes = full[..cut].to_vec();
            let (_, packets) = read_all(bytes);
            assert_eq!(packets.len(), 3, "cut at {cut}");
            assert_eq!(packets[0].as_ref().unwrap().data, vec![1; 40]);
            assert_eq!(packets[1].as_ref().unwrap().data, vec![2; 40]);
            let err = packets[2].as_ref().unwrap_err();
            assert_eq!(err.offset, cut as u64);
            assert!(err.message.contains("ends early"), "{err}");
            assert!(
                err.message.contains(&format!("at byte {}", 24 + 2 * 56)),
                "{err}"
            );
        }
    }

    #[test]
    fn pcap_oversized_record_is_refused_at_its_offset() {
        let mut bytes = pcap_file(Endian::Big, false, 1, &[Record(1, 1, b"ok", 2)]);
        let second = bytes.len() as u64;
        bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        bytes.extend_from_slice(&(MAX_RECORD_LEN as u32 + 1).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 9]);
        bytes.extend_from_slice(&[0; 64]);
        let (_, packets) = read_all(bytes);
        assert_eq!(packets.len(), 2);
        assert!(packets[0].is_ok());
        let err = packets[1].as_ref().unwrap_err();
        assert_eq!(err.offset, second + 8);
        assert!(err.message.contains("limit"), "{err}");
    }

    #[test]
    fn header_errors() {
        assert!(CaptureReader::new(io::Cursor::new(Vec::new())).is_err());
        let err = CaptureReader::new(io::Cursor::new(
            b"GIF89a..........................".to_vec(),
        ))
        .unwrap_err();
        assert!(err.message.contains("not a pcap or pcapng"), "{err}");
        let pcap = pcap_file(Endian::Little, false, 1, &[]);
        let err = CaptureReader::new(io::Cursor::new(pcap[..10].to_vec())).unwrap_err();
        assert_eq!(err.offset, 10);
        let ng = Ng::new(Endian::Little).bytes.clone();
        let err = CaptureReader::new(io::Cursor::new(ng[..20].to_vec())).unwrap_err();
        assert_eq!(err.offset, 20);
        assert!(CaptureReader::open(Path::new("/nonexistent/capture.pcap")).is_err());
    }

    // ---- pcapng ----

    #[test]
    fn pcapng_interfaces_resolutions_and_sections() {
        let mut ng = Ng::new(Endian::Little);
        ng.interface(1, 65535, &[]) // Ethernet, default microseconds
            .interface(101, 0, &[tsresol(9), tsoffset(Endian::Little, 100)])
            .enhanced(0, 1_700_000_000_123_456, b"eth frame", 9)
            .enhanced(1, 1_700_000_000_987_654_321, b"raw ip", 1500)
            .block(0x0000_0BAD, b"custom block, skipped")
            .block(5, &[0; 16]) // interface statistics, skipped
            .simple(b"simple", 6)
            // A new section, big-endian: interface numbering starts again.
            .section(Endian::Big)
            .interface(113, 4, &[tsresol(0x80 | 20)])
            .interface(229, 0, &[tsresol(12), tsoffset(Endian::Big, -10)])
            .enhanced(0, (3 << 20) | (1 << 19), b"cooked", 200)
            .enhanced(1, 5_000_000_000_000_999, b"v6", 2)
            .enhanced(2, 0, b"nobody", 6)
            .simple(b"simple but long", 15);
        let len = ng.bytes.len() as u64;
        let (reader, packets) = read_all(ng.bytes.clone());
        assert_eq!(reader.format(), CaptureFormat::PcapNg);
        assert_eq!(reader.bytes_read(), len);
        assert_eq!(packets.len(), 7);
        let p = |i: usize| packets[i].as_ref().unwrap().clone();
        assert_eq!(
            p(0),
            RawPacket {
                ts_nanos: 1_700_000_000_123_456_000,
                linktype: 1,
                data: b"eth frame".to_vec(),
                orig_len: 9,
                interface: 0
            }
        );
        assert_eq!(p(1).ts_nanos, 1_700_000_100_987_654_321);
        assert_eq!(
            (p(1).linktype, p(1).interface, p(1).orig_len),
            (101, 1, 1500)
        );
        // Simple packet: interface 0, no timestamp.
        assert_eq!(
            (p(2).ts_nanos, p(2).linktype, p(2).data.as_slice()),
            (0, 1, &b"simple"[..])
        );
        // 2^-20 s units: 3.5 s.
        assert_eq!(p(3).ts_nanos, 3_500_000_000);
        assert_eq!((p(3).linktype, p(3).interface), (113, 0));
        // Picoseconds, minus ten seconds.
        assert_eq!(p(4).ts_nanos, 5_000_000_000_000 - 10_000_000_000);
        assert_eq!((p(4).linktype, p(4).interface), (229, 1));
        // Interface 2 is not described in this section: an error for that packet only.
        let err = packets[5].as_ref().unwrap_err();
        assert!(err.message.contains("interface 2"), "{err}");
        // The simple packet is cut to interface 0's snapshot length.
        assert_eq!(p(6).data, b"simp");
        assert_eq!(p(6).orig_len, 15);
    }

    #[test]
    fn pcapng_reads_the_same_one_byte_at_a_time() {
        let mut ng = Ng::new(Endian::Big);
        ng.interface(1, 0, &[tsresol(9)])
            .enhanced(0, 42, &[7; 1001], 1001)
            .simple(b"s", 1);
        let (_, whole) = read_all(ng.bytes.clone());
        let mut reader = CaptureReader::new(Trickle(io::Cursor::new(ng.bytes.clone()))).unwrap();
        let mut trickled = Vec::new();
        while let Some(p) = reader.next_packet() {
            trickled.push(p);
        }
        assert_eq!(trickled, whole);
        // Lent, as no block is ever whole in the buffer: each from the reader's own copy.
        let mut reader = CaptureReader::new(Trickle(io::Cursor::new(ng.bytes.clone()))).unwrap();
        let mut lent = Vec::new();
        while let Some(p) = reader.next_ref() {
            lent.push(p.map(|p| p.data.to_vec()));
        }
        let data = |p: &Result<RawPacket, CaptureError>| p.clone().map(|p| p.data);
        assert_eq!(lent, whole.iter().map(data).collect::<Vec<_>>());
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].as_ref().unwrap().ts_nanos, 42);
    }

    #[test]
    fn pcapng_undescribed_interface_is_a_packet_error() {
        let mut ng = Ng::new(Endian::Little);
        ng.enhanced(0, 1, b"before any interface", 20)
            .simple(b"also before", 11)
            .interface(1, 0, &[])
            .enhanced(0, 1, b"fine", 4);
        let (_, packets) = read_all(ng.bytes.clone());
        assert_eq!(packets.len(), 3);
        assert!(packets[0]
            .as_ref()
            .unwrap_err()
            .message
            .contains("interface 0"));
        assert!(packets[1].is_err());
        assert_eq!(packets[2].as_ref().unwrap().data, b"fine");
    }

    #[test]
    fn pcapng_packet_longer_than_its_block_is_a_packet_error() {
        let mut ng = Ng::new(Endian::Little);
        ng.interface(1, 0, &[]);
        let bad_at = ng.bytes.len();
        ng.enhanced(0, 1, b"12345678", 8).enhanced(0, 2, b"next", 4);
        // Claim 200 captured bytes in a block that holds 8 (+ options).
        ng.bytes[bad_at + 20..bad_at + 24].copy_from_slice(&200u32.to_le_bytes());
        let (_, packets) = read_all(ng.bytes.clone());
        assert_eq!(packets.len(), 2);
        let err = packets[0].as_ref().unwrap_err();
        assert!(err.message.contains("200"), "{err}");
        assert_eq!(packets[1].as_ref().unwrap().data, b"next");
    }

    #[test]
    fn pcapng_truncated_mid_block_yields_complete_packets_then_one_error() {
        let mut ng = Ng::new(Endian::Little);
        ng.interface(1, 0, &[]).enhanced(0, 1, &[1; 64], 64);
        let third = ng.bytes.len();
        ng.enhanced(0, 2, &[2; 64], 64);
        let full = ng.bytes.clone();
        for cut in [third + 3, third + 30, full.len() - 2] {
            let (reader, packets) = read_all(full[..cut].to_vec());
            assert_eq!(packets.len(), 2, "cut at {cut}");
            assert_eq!(packets[0].as_ref().unwrap().data, vec![1; 64]);
            let err = packets[1].as_ref().unwrap_err();
            assert_eq!(err.offset, cut as u64);
            assert!(err.message.contains(&format!("at byte {third}")), "{err}");
            assert_eq!(reader.bytes_read(), cut as u64);
        }
    }

    #[test]
    fn pcapng_oversized_or_malformed_block_length_ends_with_an_error_at_its_offset() {
        for (bad_len, word) in [
            (MAX_RECORD_LEN as u32 + 4, "limit"),
            (8, "multiple of 4"),
            (22, "multiple of 4"),
        ] {
            let mut ng = Ng::new(Endian::Little);
            ng.interface(1, 0, &[]).enhanced(0, 1, b"ok", 2);
            let at = ng.bytes.len() as u64;
            ng.enhanced(0, 2, b"never", 5)
                .enhanced(0, 3, b"nor this", 8);
            ng.bytes[at as usize + 4..at as usize + 8].copy_from_slice(&bad_len.to_le_bytes());
            let (_, packets) = read_all(ng.bytes.clone());
            assert_eq!(packets.len(), 2);
            assert!(packets[0].is_ok());
            let err = packets[1].as_ref().unwrap_err();
            assert_eq!(err.offset, at + 4, "{err}");
            assert!(err.message.contains(word), "{err}");
        }
    }

    #[test]
    fn pcapng_mismatched_trailing_length_is_an_error() {
        let mut ng = Ng::new(Endian::Little);
        ng.interface(1, 0, &[]).enhanced(0, 1, b"ok", 2);
        let end = ng.bytes.len();
        ng.bytes[end - 4..].copy_from_slice(&0xFFu32.to_le_bytes());
        let (_, packets) = read_all(ng.bytes.clone());
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].as_ref().unwrap_err().offset, end as u64 - 4);
    }

    #[test]
    fn tsresol_conversions() {
        assert_eq!(TsResolution::Decimal(6).to_nanos(1_500_000), 1_500_000_000);
        assert_eq!(TsResolution::Decimal(9).to_nanos(7), 7);
        assert_eq!(TsResolution::Decimal(0).to_nanos(3), 3_000_000_000);
        assert_eq!(TsResolution::Decimal(12).to_nanos(5_000), 5);
        assert_eq!(TsResolution::Decimal(127).to_nanos(u64::MAX), 0);
        assert_eq!(TsResolution::Decimal(0).to_nanos(u64::MAX), u64::MAX);
        assert_eq!(TsResolution::Binary(10).to_nanos(1024), 1_000_000_000);
        assert_eq!(TsResolution::Binary(30).to_nanos(1 << 29), 500_000_000);
        assert_eq!(TsResolution::Binary(127).to_nanos(u64::MAX), 0);
        assert_eq!(
            TsResolution::from_option(0x80 | 10),
            TsResolution::Binary(10)
        );
        assert_eq!(TsResolution::from_option(9), TsResolution::Decimal(9));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Reads everything; the reader must end, within one item per byte.
        fn drain(bytes: Vec<u8>) {
            let len = bytes.len() as u64;
            if let Ok(mut reader) = CaptureReader::new(io::Cursor::new(bytes)) {
                let mut items = 0;
                while reader.next_packet().is_some() {
                    items += 1;
                    assert!(items <= len, "more items than bytes");
                }
                assert!(reader.bytes_read() <= len);
            }
        }

        fn sample_pcapng() -> Vec<u8> {
            let mut ng = Ng::new(Endian::Little);
            ng.interface(1, 0, &[tsresol(9), tsoffset(Endian::Little, 5)])
                .enhanced(0, 99, &[0xAB; 70], 70)
                .simple(b"spb", 3)
                .section(Endian::Big)
                .interface(276, 0, &[])
                .enhanced(0, 1, b"x", 1);
            ng.bytes.clone()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// Random bytes after each magic never panic and end.
            #[test]
            fn random_bytes(magic in 0usize..5, rest in proptest::collection::vec(any::<u8>(), 0..600)) {
                let mut bytes = match magic {
                    0 => PCAP_MAGIC_MICROS.to_le_bytes().to_vec(),
                    1 => PCAP_MAGIC_NANOS.to_be_bytes().to_vec(),
                    2 => vec![0x0A, 0x0D, 0x0D, 0x0A],
                    3 => vec![0x0A, 0x0D, 0x0D, 0x0A, 28, 0, 0, 0, 0x4D, 0x3C, 0x2B, 0x1A],
                    _ => Vec::new(),
                };
                bytes.extend(rest);
                drain(bytes);
            }

            /// A valid pcapng with some bytes changed or cut never panics.
            #[test]
            fn mutated_pcapng(
                edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
                cut in any::<usize>(),
            ) {
                let mut bytes = sample_pcapng();
                for (at, v) in edits {
                    let i = at % bytes.len();
                    bytes[i] = v;
                }
                let keep = cut % (bytes.len() + 1);
                bytes.truncate(keep);
                // Read from a buffer holding whole blocks (each packet taken where it lies)
                // and one byte at a time (each block read field by field), the reader says
                // the same: packets, errors and their offsets.
                let whole = CaptureReader::new(io::Cursor::new(bytes.clone()));
                let trickled = CaptureReader::new(Trickle(io::Cursor::new(bytes.clone())));
                if let (Ok(mut whole), Ok(mut trickled)) = (whole, trickled) {
                    loop {
                        let (a, b) = (whole.next_packet(), trickled.next_packet());
                        prop_assert_eq!(&a, &b);
                        prop_assert_eq!(whole.bytes_read(), trickled.bytes_read());
                        if a.is_none() {
                            break;
                        }
                    }
                }
                drain(bytes);
            }
        }
    }
}
