//! A walk over a request's fields by the schema table, the dissector's own layouts (compiled
//! once into a list of steps for each API version, `plan`), without building a tree: for what
//! needs a few values from every frame of a busy stream (the lint's history of idempotent
//! sequences reads topic, partition and record set of every Produce) and would otherwise pay a
//! whole dissection for them.
//!
//! It checks what it reads as the dissector does (lengths and counts against the bytes left,
//! tags in order) and stops at the first field that does not read, having reported the values
//! before it, as a dissection keeps the fields before its error. Layout variants the lint tries
//! (a field moved or omitted) are the dissector's business; this reads the spec's layout.

use crate::dissect::peek_request_header;
use crate::registry::{self, FieldId};
use crate::schema::FieldType;

mod plan;
use plan::Step;

/// A value met on the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar<'a> {
    /// Any integer type, and booleans (0 or 1).
    Int(i64),
    /// A string's bytes as sent (not checked for UTF-8).
    Str(&'a [u8]),
    /// BYTES or RECORDS data: offset in the frame (size prefix included) and length.
    Data { start: usize, len: usize },
    /// A UUID's 16 bytes.
    Uuid(&'a [u8; 16]),
    /// A null string, bytes, records or array.
    Null,
    /// A float, whose value no reader of the walk needs.
    Float,
}

/// A UUID's text as the dissector writes it (`0b5f…-…`, lowercase, hyphenated).
pub fn uuid_text(u: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*u).to_string()
}

/// Walks the body of the request `frame` (size prefix included) in the spec's layout of its API
/// and version, calling `visit` with every value outside tagged fields, in wire order, with its
/// field's registry id (an array's elements each with the array's id). `Err` names the offset
/// where the frame stops reading; the values before it have been visited. An API or version
/// the schema table does not know is an error at the body's start.
pub fn scan_request<'a>(
    frame: &'a [u8],
    visit: &mut dyn FnMut(FieldId, Scalar<'a>),
) -> Result<(), usize> {
    let (key, version, _) = frame.get(4..).and_then(peek_request_header).ok_or(0usize)?;
    let declared = frame
        .get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(0usize)?;
    let end = usize::try_from(declared)
        .ok()
        .and_then(|n| n.checked_add(4))
        .filter(|e| *e <= frame.len())
        .ok_or(0usize)?;
    request(&frame[..end], (key, version), false, visit)
}

/// [`scan_request`] for a frame whose dissection would have nothing to say beyond its values:
/// `Err` (at the offset where it stands) also for what would make the dissector or the lint
/// note something, so that `Ok` means the frame reads in the spec's layout, whole and exactly.
/// Refused besides what does not read: a size prefix other than the frame's length, a null
/// where the version does not allow one, any tagged field (header or body), bytes after the
/// last field. What needs a tree (the note's wording, the field's span) is then the
/// dissector's to say.
pub fn scan_clean_request<'a>(
    frame: &'a [u8],
    visit: &mut dyn FnMut(FieldId, Scalar<'a>),
) -> Result<(), usize> {
    let (key, version, _) = frame.get(4..).and_then(peek_request_header).ok_or(0usize)?;
    exact_size(frame)?;
    request(frame, (key, version), true, visit)
}

/// The walk of a request `buf` (as far as its size prefix says) of API and version `header`,
/// from its client id on.
fn request<'a>(
    buf: &'a [u8],
    (key, version): (i16, i16),
    clean: bool,
    visit: &mut dyn FnMut(FieldId, Scalar<'a>),
) -> Result<(), usize> {
    let mut w = Walk {
        buf,
        pos: 12,
        visit,
        clean,
        flexible: false,
    };
    // client_id: a nullable int16-length string in every header version.
    w.string(false)?;
    let api = registry::api(key).ok_or(w.pos)?;
    let steps = plan::steps(api, version, false).ok_or(w.pos)?;
    w.flexible = api.is_flexible(version);
    if api.request_header_version(version) >= 2 {
        w.tagged_fields()?;
    }
    w.run(steps)?;
    if clean {
        w.at_end()?;
    }
    Ok(())
}

/// [`scan_clean_request`] for the response `frame` to a request of API `key` version
/// `version`. ApiVersions is refused: the dissector reads a version it does not know as v0, as
/// Kafka answers it, which this walk does not.
pub fn scan_clean_response<'a>(
    frame: &'a [u8],
    key: i16,
    version: i16,
    visit: &mut dyn FnMut(FieldId, Scalar<'a>),
) -> Result<(), usize> {
    exact_size(frame)?;
    let api = registry::api(key)
        .filter(|_| key != crate::api_key::API_VERSIONS)
        .ok_or(8usize)?;
    let steps = plan::steps(api, version, true).ok_or(8usize)?;
    let mut w = Walk {
        buf: frame,
        pos: 8,
        visit,
        clean: true,
        flexible: api.is_flexible(version),
    };
    if frame.len() < 8 {
        return Err(frame.len());
    }
    if api.response_header_version(version) >= 1 {
        w.tagged_fields()?;
    }
    w.run(steps)?;
    w.at_end()
}

/// A frame whose size prefix is exactly the bytes that follow it.
fn exact_size(frame: &[u8]) -> Res {
    let declared = frame
        .get(..4)
        .map(|b| i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        .ok_or(0usize)?;
    if declared != frame.len() as i64 - 4 {
        return Err(0);
    }
    Ok(())
}

struct Walk<'a, 'v> {
    buf: &'a [u8],
    pos: usize,
    visit: &'v mut dyn FnMut(FieldId, Scalar<'a>),
    /// Refuse what a dissection would note (see [`scan_clean_request`]).
    clean: bool,
    /// The version is flexible: compact lengths, tagged-field sections.
    flexible: bool,
}

type Res = Result<(), usize>;

impl<'a> Walk<'a, '_> {
    /// In a clean walk, bytes left after the last field are refused.
    fn at_end(&self) -> Res {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(self.pos)
        }
    }

    /// A null of field `id` at `at`, refused by a clean walk where it is not `allowed` (the
    /// version's nullability; never for an array's element).
    fn null(&mut self, id: FieldId, allowed: bool, at: usize) -> Res {
        if self.clean && !allowed {
            return Err(at);
        }
        (self.visit)(id, Scalar::Null);
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], usize> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or(self.pos)?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn int(&mut self, width: usize) -> Result<i64, usize> {
        let b = self.take(width)?;
        Ok(b.iter()
            .fold(0i64, |v, x| (v << 8) | i64::from(*x))
            .wrapping_shl(64 - 8 * width as u32)
            .wrapping_shr(64 - 8 * width as u32))
    }

    fn uvarint(&mut self) -> Result<u32, usize> {
        let start = self.pos;
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.take(1)?[0];
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(start)
    }

    /// An array, string or bytes length: compact (unsigned varint, +1) or int16/int32; `None`
    /// for null.
    fn length(&mut self, compact: bool, short: bool) -> Result<Option<usize>, usize> {
        let at = self.pos;
        let n: i64 = if compact {
            i64::from(self.uvarint()?) - 1
        } else if short {
            self.int(2)?
        } else {
            self.int(4)?
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(at),
            n => Ok(Some(n as usize)),
        }
    }

    fn string(&mut self, compact: bool) -> Result<Option<&'a [u8]>, usize> {
        let at = self.pos;
        match self.length(compact, true)? {
            None => Ok(None),
            Some(n) => self.take(n).map(Some).map_err(|_| at),
        }
    }

    /// The steps of a body (or of an element, or a struct within it), in order.
    fn run(&mut self, steps: &[Step]) -> Res {
        let mut i = 0;
        while let Some(step) = steps.get(i) {
            i += 1;
            match *step {
                Step::Value { id, ty, nullable } => self.value(id, ty, nullable)?,
                Step::Array { id, nullable, body } => {
                    let at = self.pos;
                    let body = steps.get(i..i + body as usize).ok_or(at)?;
                    i += body.len();
                    let Some(n) = self.length(self.flexible, false)? else {
                        self.null(id, nullable, at)?;
                        continue;
                    };
                    if n > self.buf.len() - self.pos {
                        return Err(at);
                    }
                    for _ in 0..n {
                        self.run(body)?;
                    }
                }
                Step::Optional { id, body } => {
                    let body = steps.get(i..i + body as usize).ok_or(self.pos)?;
                    i += body.len();
                    if self.int(1)? < 0 {
                        (self.visit)(id, Scalar::Null);
                    } else {
                        self.run(body)?;
                    }
                }
                Step::Tags => self.tagged_fields()?,
            }
        }
        Ok(())
    }

    /// A value of field `id`; `nullable` as [`Step::Value`] says.
    #[inline(always)]
    fn value(&mut self, id: FieldId, ty: &FieldType, nullable: bool) -> Res {
        let at = self.pos;
        let value = match ty {
            FieldType::Bool => match self.int(1)? {
                b @ (0 | 1) => Scalar::Int(b),
                _ => return Err(at),
            },
            FieldType::Int8 => Scalar::Int(self.int(1)?),
            FieldType::Int16 => Scalar::Int(self.int(2)?),
            FieldType::Int32 => Scalar::Int(self.int(4)?),
            FieldType::Int64 => Scalar::Int(self.int(8)?),
            FieldType::Uint16 => Scalar::Int(self.int(2)? & 0xffff),
            FieldType::Float64 => {
                self.take(8)?;
                Scalar::Float
            }
            FieldType::Uuid => {
                let b = self.take(16)?;
                Scalar::Uuid(b.try_into().map_err(|_| at)?)
            }
            FieldType::String => match self.string(self.flexible)? {
                None => return self.null(id, nullable, at),
                Some(s) => Scalar::Str(s),
            },
            FieldType::Bytes | FieldType::Records => match self.length(self.flexible, false)? {
                None => return self.null(id, nullable, at),
                Some(len) => {
                    let start = self.pos;
                    self.take(len).map_err(|_| at)?;
                    Scalar::Data { start, len }
                }
            },
            // Types API schemas do not use (the walk stops at them).
            FieldType::Uint32
            | FieldType::Varint
            | FieldType::Uvarint
            | FieldType::Group
            | FieldType::Struct
            | FieldType::Array(_) => return Err(at),
        };
        (self.visit)(id, value);
        Ok(())
    }

    /// A tagged-field section, skipped: tags ascending, each size within the frame.
    fn tagged_fields(&mut self) -> Res {
        let at = self.pos;
        let count = self.uvarint()? as usize;
        if self.clean && count > 0 {
            return Err(at);
        }
        if count > self.buf.len() - self.pos {
            return Err(at);
        }
        let mut last: Option<u32> = None;
        for _ in 0..count {
            let tag_at = self.pos;
            let tag = self.uvarint()?;
            if last.is_some_and(|t| tag <= t) {
                return Err(tag_at);
            }
            last = Some(tag);
            let size_at = self.pos;
            let size = self.uvarint()? as usize;
            self.take(size).map_err(|_| size_at)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
