//! The few fields the capture reads from frame bytes without the dissector, cheaply and before
//! a frame is whole: whether bytes start a plausible request, a request's client id, a Produce
//! request's `acks` (acks=0 gets no response), the mechanism a SaslHandshake request names.

use chronik_protocol::schema::Versions;
use chronik_protocol::{api_key, registry};
use std::borrow::Cow;
use std::sync::OnceLock;

use crate::{share_client_id, ClientId};

/// Longest client id believed when looking for a request start (real ones are short).
const MAX_CLIENT_ID: i16 = 1024;
/// Largest API key believed when looking for a request start.
const MAX_PLAUSIBLE_API_KEY: i16 = 100;
/// Largest API version believed when looking for a request start.
const MAX_PLAUSIBLE_API_VERSION: i16 = 20;
/// ControlledShutdown, an inter-broker API the schema table does not describe (so it has no
/// `protocol::api_key` constant): its version 0 request header is the only one without a
/// client id (header version 0).
const CONTROLLED_SHUTDOWN: i16 = 7;

/// Whether bytes look like the start of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Yes,
    No,
    NeedMore,
}

/// The mechanism a SaslHandshake request names.
pub(super) fn handshake_mechanism(frame: &[u8]) -> Option<String> {
    let d = chronik_protocol::dissect_request(frame);
    d.root
        .find("sasl_handshake.request.mechanism")
        .and_then(|f| match &f.value {
            chronik_protocol::Value::Str(s) => Some(s.clone()),
            _ => None,
        })
}

/// Whether `b` starts with a plausible request: size in 8..=max, api key in
/// 0..=[`MAX_PLAUSIBLE_API_KEY`], version in 0..=[`MAX_PLAUSIBLE_API_VERSION`]. `strict` (for
/// finding a frame start among unknown bytes) also wants a non-negative correlation id and a
/// client id of at most [`MAX_CLIENT_ID`] bytes that fits the frame and is text (UTF-8 without
/// control characters).
pub(super) fn request_verdict(b: &[u8], max: usize, strict: bool) -> Verdict {
    let Some(size) = be_i32(b, 0) else {
        return Verdict::NeedMore;
    };
    if size < 8 || size as u64 > max as u64 {
        return Verdict::No;
    }
    let (Some(key), Some(version), Some(corr)) = (be_i16(b, 4), be_i16(b, 6), be_i32(b, 8)) else {
        return Verdict::NeedMore;
    };
    if !(0..=MAX_PLAUSIBLE_API_KEY).contains(&key)
        || !(0..=MAX_PLAUSIBLE_API_VERSION).contains(&version)
    {
        return Verdict::No;
    }
    if !strict {
        return Verdict::Yes;
    }
    if corr < 0 {
        return Verdict::No;
    }
    if request_header_version(key, version) == 0 {
        return Verdict::Yes;
    }
    let Some(len) = be_i16(b, 12) else {
        return Verdict::NeedMore;
    };
    if !(-1..=MAX_CLIENT_ID).contains(&len) || 10 + i32::from(len.max(0)) > size {
        return Verdict::No;
    }
    let end = b.len().min(14 + len.max(0) as usize);
    let id = &b[14.min(end)..end];
    let text = match std::str::from_utf8(id) {
        Ok(t) => t,
        // Cut inside a character by the end of the bytes so far: judge what is whole.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&id[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return Verdict::No,
    };
    if text.chars().any(char::is_control) {
        return Verdict::No;
    }
    Verdict::Yes
}

/// The request header version of a request: the schema table's for the APIs it describes (2
/// for flexible versions, else 1); 1 for the others, except ControlledShutdown v0's 0.
pub(super) fn request_header_version(key: i16, version: i16) -> i16 {
    match registry::api(key) {
        Some(api) => api.request_header_version(version),
        None if key == CONTROLLED_SHUTDOWN && version == 0 => 0,
        None => 1,
    }
}

/// The client id of a request body (after the size prefix), shared with `last`, the one the
/// connection's request before it had, when its bytes are the same (most requests: then no
/// UTF-8 check); otherwise checked (invalid UTF-8 replaced, as `from_utf8_lossy` does) and
/// kept in `last` for the next request.
pub(super) fn client_id(
    body: &[u8],
    key: i16,
    version: i16,
    last: &mut Option<ClientId>,
) -> Option<ClientId> {
    if request_header_version(key, version) == 0 {
        return None;
    }
    let len = be_i16(body, 8)?;
    let len = usize::try_from(len).ok()?;
    let bytes = body.get(10..10 + len)?;
    if let Some(same) = last.as_ref().filter(|l| l.as_bytes() == bytes) {
        return Some(same.clone());
    }
    // Checked by `from_utf8` first: `from_utf8_lossy`'s chunking costs more.
    let id = match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    share_client_id(last, Some(&id))
}

/// A Produce request's `acks`, read from its body (after the size prefix): the header, then
/// the transactional id in the versions that have one, then acks. Versions, header and
/// encodings are the schema table's. `None` when the bytes end first.
pub(super) fn produce_acks(body: &[u8], version: i16) -> Option<i16> {
    // The versions that carry a transactional id, found by name once: every Produce request
    // asks.
    static TRANSACTIONAL_ID: OnceLock<Versions> = OnceLock::new();
    let produce = registry::api(api_key::PRODUCE)?;
    let flexible = produce.is_flexible(version);
    let has_transactional_id = TRANSACTIONAL_ID
        .get_or_init(|| {
            (produce.request.iter())
                .find(|f| f.name == "transactional_id")
                .map_or(Versions::NONE, |f| f.versions)
        })
        .contains(version);
    let mut c = Cursor { b: body, pos: 8 };
    let client_id_len = c.i16()?;
    c.skip(usize::try_from(client_id_len).unwrap_or(0))?;
    if produce.request_header_version(version) >= 2 {
        let tags = c.uvarint()?;
        for _ in 0..tags {
            c.uvarint()?;
            let size = c.uvarint()?;
            c.skip(usize::try_from(size).ok()?)?;
        }
    }
    if has_transactional_id {
        if flexible {
            let len = c.uvarint()?;
            c.skip(usize::try_from(len.saturating_sub(1)).ok()?)?;
        } else {
            let len = c.i16()?;
            c.skip(usize::try_from(len).unwrap_or(0))?;
        }
    }
    c.i16()
}

/// Reads big-endian integers and unsigned varints from a byte slice, never past its end.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        (end <= self.b.len()).then(|| self.pos = end)
    }

    fn i16(&mut self) -> Option<i16> {
        let v = be_i16(self.b, self.pos)?;
        self.pos += 2;
        Some(v)
    }

    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..35).step_by(7) {
            let byte = *self.b.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
}

pub(super) fn be_i16(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub(super) fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
