//! The conformance lint: what is wrong with a frame, named, from its bytes alone.
//!
//! A [`Finding`] has a [`Code`], a [`Level`], a one-line message, the byte range of the frame it
//! concerns and, where the lint can tell, the fix. This module judges one frame at a time (its
//! layout, lengths, tagged fields, record batches, error codes); what needs a connection's
//! history (versions advertised, sequence numbers) is judged where exchanges are collected.
//!
//! A frame that leaves bytes over or falls short is read again with the catalogue of plausible
//! layouts in [`layout`] (a field moved, a field left out, a version or header version off by
//! one); the first that reads the frame cleanly to its last byte names the fault.

mod batches;
mod infer;
mod layout;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::Serialize;

use crate::dissect::{fault_of, Fault};
use crate::errors;
use crate::tree::{Dissection, Field, FRAME};
use crate::{fid, registry};

pub use infer::candidates as infer_candidates;

/// How much a finding matters. `chronik-tui lint` exits non-zero from [`Level::Warning`] up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Worth knowing, not a fault of the sender (a capture that missed a request).
    Info,
    /// Allowed by the letter of the protocol but not what a correct peer sends, or a fault a
    /// reader survives.
    Warning,
    /// The frame is not what the protocol says; a reader misreads it or rejects it.
    Error,
}

impl Level {
    /// Every level's name, least severe first.
    pub const WORDS: &'static [&'static str] = &["info", "warning", "error"];

    pub fn word(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

macro_rules! codes {
    ($($variant:ident $word:literal $level:ident $what:literal),* $(,)?) => {
        /// What a finding is about: one code per kind of fault, stable across releases (the
        /// display filter and scenarios name them).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant),* }

        impl Code {
            /// Every code, in the order the README lists them.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// Every code's name, in the same order.
            pub const WORDS: &'static [&'static str] = &[$($word),*];

            /// The code's name, e.g. `field-misplaced`.
            pub fn word(self) -> &'static str {
                match self { $(Code::$variant => $word),* }
            }

            /// The level a finding of this code has unless its check says otherwise.
            pub fn level(self) -> Level {
                match self { $(Code::$variant => Level::$level),* }
            }

            /// What the code means, one line.
            pub fn describe(self) -> &'static str {
                match self { $(Code::$variant => $what),* }
            }
        }
    };
}

codes! {
    FieldMisplaced "field-misplaced" Error "a field sits elsewhere than the spec puts it; the frame reads cleanly with it moved",
    FieldMissing "field-missing" Error "a field the spec has at this version is not there; the frame reads cleanly without it",
    VersionMismatch "version-mismatch" Error "the body is laid out as another version of the API than the header says",
    HeaderVersion "header-version" Error "the header is laid out in another header version than the API version implies",
    TrailingBytes "trailing-bytes" Warning "bytes left after the spec's last field, and no layout in the catalogue reads them",
    Truncated "truncated" Error "the size prefix promises more bytes than the frame has",
    Undecodable "undecodable" Error "decoding stops: the frame ends inside a field, or a value is impossible",
    NegativeLength "negative-length" Error "a length or count below -1 (only -1, null, is allowed)",
    LengthOverrun "length-overrun" Error "a length or count runs past the end of the frame",
    TagOrder "tag-order" Error "tagged fields not in ascending tag order",
    TagUnknown "tag-unknown" Warning "a tagged field the spec does not define at this version",
    NullNotNullable "null-not-nullable" Error "a null where the field is not nullable at this version",
    ErrorCodeUnknown "error-code-unknown" Warning "an error code the protocol guide does not list",
    CrcMismatch "crc-mismatch" Error "a record batch or message whose stored CRC is not the one its bytes give",
    RecordCount "record-count" Error "a record batch's records_count disagrees with its last_offset_delta or its records",
    BatchAttributes "batch-attributes" Warning "a batch's magic, attributes and producer fields contradict each other",
    SequenceGap "sequence-gap" Warning "an idempotent producer's base_sequence skips numbers on a partition",
    SequenceRepeat "sequence-repeat" Info "an idempotent producer's base_sequence repeats on a partition (a resend)",
    VersionNotAdvertised "version-not-advertised" Warning "a request at an API or version the broker did not advertise to that connection",
    CorrelationMismatch "correlation-mismatch" Error "a response whose correlation id is not its request's",
    RequestNotCaptured "request-not-captured" Info "a response whose request is not in the capture; the APIs its body decodes as",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl std::str::FromStr for Code {
    type Err = String;
    fn from_str(s: &str) -> Result<Code, String> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.word().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown lint code {s:?}"))
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.word())
    }
}

/// Which frame of an exchange a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Request,
    Response,
}

impl Side {
    pub fn word(self) -> &'static str {
        match self {
            Side::Request => "request",
            Side::Response => "response",
        }
    }
}

/// One thing wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: Code,
    pub level: Level,
    pub side: Side,
    /// One line: what is wrong (`throttle_time_ms sent before responses`).
    pub message: String,
    /// The bytes of the frame it concerns, `start..end` (size prefix included, as in the hex
    /// view); empty where something is missing (`start` is where it belongs).
    pub start: u32,
    pub end: u32,
    /// How the frame would read cleanly, where the lint can tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    /// A finding at the code's own level.
    pub fn new(code: Code, side: Side, message: String, start: usize, end: usize) -> Finding {
        Finding {
            code,
            level: code.level(),
            side,
            message,
            start: start as u32,
            end: end.max(start) as u32,
            fix: None,
        }
    }

    /// The same finding with a fix.
    pub fn with_fix(mut self, fix: String) -> Finding {
        self.fix = Some(fix);
        self
    }

    /// The same finding at another level.
    pub fn at(mut self, level: Level) -> Finding {
        self.level = level;
        self
    }

    /// Over the field's span (in the frame buffer; else the span is unknown, empty at 0).
    fn on(code: Code, side: Side, message: String, f: &Field) -> Finding {
        let (s, e) = frame_span(f);
        Finding::new(code, side, message, s, e)
    }

    /// Whether the finding covers byte `pos` of its frame (an empty range covers its start).
    pub fn covers(&self, pos: usize) -> bool {
        let (s, e) = (self.start as usize, self.end as usize);
        (s..e.max(s + 1)).contains(&pos)
    }
}

impl fmt::Display for Finding {
    /// `error field-misplaced (response bytes 8-11): throttle_time_ms sent before responses`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({} ", self.level, self.code, self.side.word())?;
        if self.end > self.start {
            write!(f, "bytes {}-{}", self.start, self.end - 1)?;
        } else {
            write!(f, "at byte {}", self.start)?;
        }
        write!(f, "): {}", self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "; {fix}")?;
        }
        Ok(())
    }
}

/// Where the size prefix says the frame ends (prefix included); none without a prefix or with
/// a negative one.
fn declared_end(frame: &[u8]) -> Option<usize> {
    let prefix = i32::from_be_bytes(frame.get(..4)?.try_into().ok()?);
    usize::try_from(prefix).ok().map(|n| n + 4)
}

/// Where a field lies in the frame; a field inside a decompressed buffer has no span there.
fn frame_span(f: &Field) -> (usize, usize) {
    if f.buffer == FRAME {
        (f.offset as usize, (f.offset + f.len) as usize)
    } else {
        (0, 0)
    }
}

/// Findings on a request frame and its dissection.
pub fn check_request(frame: &[u8], d: &Dissection) -> Vec<Finding> {
    let header = |id| d.root.find_id(id).and_then(Field::as_int);
    let key = header(fid!("kafka.api_key")).unwrap_or(-1) as i16;
    let version = header(fid!("kafka.api_version")).unwrap_or(-1) as i16;
    check(frame, d, Side::Request, key, version)
}

/// Findings on a response frame and its dissection, read as `api_key` `api_version` (the
/// request's); a negative key means the request is unknown, and the lint lists what the body
/// could be instead.
pub fn check_response(
    frame: &[u8],
    d: &Dissection,
    api_key: i16,
    api_version: i16,
) -> Vec<Finding> {
    if api_key < 0 {
        return vec![infer::finding(frame)];
    }
    check(frame, d, Side::Response, api_key, api_version)
}

/// What [`check_clean`] finds, and what it counted on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clean {
    pub findings: Vec<Finding>,
    /// The records the record sets' batch headers count; `None` when a set holds legacy
    /// messages (whose records only expanding them counts).
    pub records: Option<usize>,
}

/// What the lint finds in a frame that reads cleanly in the spec's layout
/// ([`crate::scan::scan_clean_request`] or `_response` said so), given the spans of its record
/// sets and its error codes: the findings [`check_request`] or [`check_response`] would give,
/// or `None` when an error code is one the protocol does not list (that finding needs the
/// field's span, which only a dissection has).
pub fn check_clean(
    frame: &[u8],
    side: Side,
    key: i16,
    record_sets: &[(usize, usize)],
    error_codes: &[i64],
) -> Option<Clean> {
    let listed = |c: &i64| {
        i16::try_from(*c).map_or(true, |c| errors::ALL.iter().any(|(code, _)| *code == c))
    };
    if !error_codes.iter().all(listed) {
        return None;
    }
    let mut findings = Vec::new();
    let mut records = Some(0);
    for span in record_sets {
        let counted = batches::record_set(frame, *span, side, key, &mut findings);
        records = records.zip(counted).map(|(a, b)| a + b);
    }
    Some(Clean { findings, records })
}

/// In one walk: the first bytes the spec's layout left over, and whether the body has no
/// schema (shown raw).
fn leftovers(d: &Dissection) -> (Option<&Field>, bool) {
    let (mut trailing, mut raw_body) = (None, false);
    d.root.walk(0, &mut |f, _| {
        if f.id == fid!("kafka.trailing_bytes") {
            trailing = trailing.or(Some(f));
        } else if f.id == fid!("kafka.body") {
            raw_body = true;
        }
    });
    (trailing, raw_body)
}

fn check(frame: &[u8], d: &Dissection, side: Side, key: i16, version: i16) -> Vec<Finding> {
    let mut out = Vec::new();
    let (trailing, raw_body) = leftovers(d);
    if d.error.is_none() && trailing.is_none() {
        if !raw_body {
            values(frame, d, side, key, version, &mut out);
        }
        return out;
    }
    if let Some(declared) = declared_end(frame).filter(|e| *e > frame.len()) {
        // Cut short: whatever else fails is the missing bytes' doing.
        let message = format!(
            "the size prefix says {declared} bytes, {} present",
            frame.len()
        );
        out.push(Finding::new(Code::Truncated, side, message, 0, 4));
        batches::check(frame, d, side, key, &mut out);
        return out;
    }
    if let Some((finding, reading)) = layout::explain(frame, side, key, version) {
        out.push(finding);
        values(frame, &reading, side, key, version, &mut out);
        return out;
    }
    if let Some(e) = &d.error {
        let (code, what) = match fault_of(e) {
            Fault::Truncated => (Code::Truncated, "frame truncated"),
            Fault::NegativeLength => (Code::NegativeLength, "negative length"),
            Fault::LengthOverrun | Fault::CountOverrun => (Code::LengthOverrun, "overrun"),
            Fault::TagOrder => (Code::TagOrder, "tags out of order"),
            Fault::ShortRead | Fault::BadValue => (Code::Undecodable, "undecodable"),
        };
        let message = if code == Code::Undecodable || code == Code::LengthOverrun {
            format!("{}: {}", e.path, e.message)
        } else {
            format!("{what}: {} ({})", e.message, e.path)
        };
        let end = if code == Code::Truncated {
            frame.len()
        } else {
            e.offset
        };
        out.push(Finding::new(code, side, message, e.offset.min(end), end));
    } else if let Some(t) = trailing {
        let (s, e) = frame_span(t);
        out.push(
            Finding::new(
                Code::TrailingBytes,
                side,
                format!(
                    "{} bytes after the last field of {} v{version}",
                    e - s,
                    registry::api_name(key)
                ),
                s,
                e,
            )
            .with_fix(format!(
                "the spec's layout ends at byte {s}; no layout in the catalogue reads the rest"
            )),
        );
    }
    batches::check(frame, d, side, key, &mut out);
    out
}

/// Checks on the values of a frame that reads cleanly (as the spec has it, or in the layout
/// that explains it): nulls, tagged fields, error codes, record batches.
fn values(
    frame: &[u8],
    d: &Dissection,
    side: Side,
    key: i16,
    version: i16,
    out: &mut Vec<Finding>,
) {
    let api = registry::api_name(key);
    d.root.walk(0, &mut |f, _| {
        if f.note.as_deref() == Some(crate::dissect::NOT_NULLABLE) {
            out.push(Finding::on(
                Code::NullNotNullable,
                side,
                format!(
                    "{} is null, which {api} v{version} does not allow",
                    f.short_name()
                ),
                f,
            ));
        }
        if f.id == fid!("kafka.tagged_field.data") {
            let tag = f
                .note
                .as_deref()
                .and_then(|n| n.strip_prefix("unknown tag "));
            if let Some(tag) = tag {
                out.push(Finding::on(
                    Code::TagUnknown,
                    side,
                    format!("tagged field {tag} is not defined in {api} v{version}"),
                    f,
                ));
            }
        }
        if f.role() == registry::Role::ErrorCode {
            if let Some(c) = f.as_int().and_then(|c| i16::try_from(c).ok()) {
                if !errors::ALL.iter().any(|(code, _)| *code == c) {
                    out.push(Finding::on(
                        Code::ErrorCodeUnknown,
                        side,
                        format!(
                            "{} {c} is not an error code the protocol guide lists",
                            f.name()
                        ),
                        f,
                    ));
                }
            }
        }
    });
    batches::check(frame, d, side, key, out);
}
