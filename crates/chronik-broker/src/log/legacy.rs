//! Legacy message sets (magic 0 and 1): offsets assigned per message, compressed wrappers
//! inflated to count (and, for magic 0, renumber) their inner messages.

use std::io::{Read, Write};

use chronik_protocol::batch::{self, Entry};

/// Assigns offsets to one legacy message (magic 0/1). An uncompressed message gets `base`; a
/// compressed wrapper gets the offset of its last inner message (magic 1: inner offsets are
/// relative and stay as the producer wrote them). Returns (last offset, max timestamp).
pub(super) fn legacy_assign(m: &mut [u8], base: i64, log_append_time: Option<i64>) -> (i64, i64) {
    let magic = m[16];
    let attributes = m[17];
    let timestamp = if magic == 1 && m.len() >= 26 {
        i64::from_be_bytes(m[18..26].try_into().unwrap_or([0; 8]))
    } else {
        -1
    };
    let inner = if attributes & 0x07 == 0 {
        1
    } else {
        count_inner_legacy(m, magic).unwrap_or_else(|| {
            tracing::warn!("could not inflate a compressed legacy message; counting it as one");
            1
        })
    };
    let last = base + inner as i64 - 1;
    m[0..8].copy_from_slice(&last.to_be_bytes());
    let mut ts = timestamp;
    if let (Some(now), 1) = (log_append_time, magic) {
        m[17] = attributes | 0x08;
        m[18..26].copy_from_slice(&now.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&m[16..]);
        m[12..16].copy_from_slice(&crc.sum().to_be_bytes());
        ts = now;
    }
    (last, ts)
}

/// Most bytes a compressed legacy wrapper may inflate to (so a hostile one cannot balloon).
const MAX_INFLATED: u64 = 64 * 1024 * 1024;

/// Inflates a legacy wrapper's value: gzip, snappy (plain or xerial-framed) or LZ4 frame.
pub(super) fn inflate_legacy(codec: u8, value: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match codec {
        1 => {
            flate2::read::GzDecoder::new(value)
                .take(MAX_INFLATED)
                .read_to_end(&mut out)
                .ok()?;
        }
        2 => {
            const XERIAL: &[u8] = b"\x82SNAPPY\x00";
            if value.starts_with(XERIAL) && value.len() >= 16 {
                let mut pos = 16;
                while pos + 4 <= value.len() {
                    let n = u32::from_be_bytes(value[pos..pos + 4].try_into().ok()?) as usize;
                    let block = value.get(pos + 4..pos + 4 + n)?;
                    let len = snap::raw::decompress_len(block).ok()?;
                    if (out.len() + len) as u64 > MAX_INFLATED {
                        return None;
                    }
                    out.extend(snap::raw::Decoder::new().decompress_vec(block).ok()?);
                    pos += 4 + n;
                }
            } else {
                let len = snap::raw::decompress_len(value).ok()?;
                if len as u64 > MAX_INFLATED {
                    return None;
                }
                out = snap::raw::Decoder::new().decompress_vec(value).ok()?;
            }
        }
        3 => {
            lz4_flex::frame::FrameDecoder::new(value)
                .take(MAX_INFLATED)
                .read_to_end(&mut out)
                .ok()?;
        }
        _ => return None,
    }
    Some(out)
}

/// Renumbers the inner messages of a magic-0 compressed wrapper from `base` (their offsets are
/// absolute, and Kafka renumbers them too) and recompresses the value with the same codec
/// (gzip, or snappy in the xerial framing). `None` when it cannot be done; the wrapper is then
/// stored as received.
pub(super) fn renumber_magic0_wrapper(m: &[u8], base: i64) -> Option<Vec<u8>> {
    let codec = m[17] & 0x07;
    let key_len = i32::from_be_bytes(m.get(18..22)?.try_into().ok()?);
    let value_at = 22 + key_len.max(0) as usize;
    let value_len = usize::try_from(i32::from_be_bytes(
        m.get(value_at..value_at + 4)?.try_into().ok()?,
    ))
    .ok()?;
    let value = m.get(value_at + 4..value_at + 4 + value_len)?;
    let mut inner = inflate_legacy(codec, value)?;
    let mut next = base;
    for e in batch::split(&inner).collect::<Vec<_>>() {
        match e {
            Entry::Legacy { start, .. } => {
                inner[start..start + 8].copy_from_slice(&next.to_be_bytes());
                next += 1;
            }
            _ => return None,
        }
    }
    let packed = match codec {
        1 => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&inner).ok()?;
            enc.finish().ok()?
        }
        2 => {
            let mut out = b"\x82SNAPPY\x00".to_vec();
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            for chunk in inner.chunks(32 * 1024) {
                let block = snap::raw::Encoder::new().compress_vec(chunk).ok()?;
                out.extend_from_slice(&(block.len() as i32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            out
        }
        _ => return None,
    };
    let mut out = m[..value_at].to_vec();
    out.extend_from_slice(&(packed.len() as i32).to_be_bytes());
    out.extend_from_slice(&packed);
    let size = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&size.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&out[16..]);
    out[12..16].copy_from_slice(&crc.sum().to_be_bytes());
    Some(out)
}

/// Counts the inner messages of a compressed legacy wrapper (`None` if it cannot be inflated).
fn count_inner_legacy(m: &[u8], magic: u8) -> Option<usize> {
    let key_at = if magic == 1 { 26 } else { 18 };
    let key_len = i32::from_be_bytes(m.get(key_at..key_at + 4)?.try_into().ok()?);
    let value_at = key_at + 4 + key_len.max(0) as usize;
    let value_len = i32::from_be_bytes(m.get(value_at..value_at + 4)?.try_into().ok()?);
    let value = m.get(value_at + 4..value_at + 4 + usize::try_from(value_len).ok()?)?;
    let out = inflate_legacy(m[17] & 0x07, value)?;
    let n = batch::split(&out)
        .filter(|e| matches!(e, Entry::Legacy { .. }))
        .count();
    (n > 0).then_some(n)
}
