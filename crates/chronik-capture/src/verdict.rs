//! What is wrong with an exchange, decided once from its dissections. Every view reads this one
//! answer: the summary of the headless line and of the exchange list, the list's colours, the
//! display filter's `malformed` and `error`, and the stall detector's "a ProduceResponse the
//! client could not have read".

use super::{Exchange, Status};
use chronik_protocol::lint::{Finding, Level};
use chronik_protocol::{DecodeError, Dissection};

/// An exchange's two frames dissected, and what the dissections show.
#[derive(Debug, Clone)]
pub struct Dissected {
    /// The request's dissection; none when the request frame was not seen.
    pub request: Option<Dissection>,
    /// The response's dissection; none without a response.
    pub response: Option<Dissection>,
    pub verdict: Verdict,
}

/// What the dissector found wrong with one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameFault {
    /// Decoding stopped before the end: a length or count runs past the bytes there are, the
    /// frame is cut short, a value is impossible. The fields after the error are unknown.
    Undecodable(DecodeError),
    /// The spec's layout ended before the frame did: `len` bytes are left over from byte
    /// `offset`. The frame is not laid out as the spec says (a misplaced field, say), so in a
    /// response the values read are not what the broker meant.
    TrailingBytes { len: u32, offset: u32 },
}

impl FrameFault {
    /// What is wrong with a dissected frame; a decoding error before bytes left over, as a
    /// frame cut short can show both.
    fn of(d: &Dissection) -> Option<FrameFault> {
        if let Some(e) = &d.error {
            return Some(FrameFault::Undecodable(e.clone()));
        }
        d.root
            .children
            .iter()
            .find(|f| f.id == chronik_protocol::fid!("kafka.trailing_bytes"))
            .map(|f| FrameFault::TrailingBytes {
                len: f.len,
                offset: f.offset,
            })
    }
}

/// How bad an exchange is, as the exchange list colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Answered, and neither frame shows anything wrong.
    Ok,
    /// An error code in the response, a frame that does not decode or has bytes left over, or
    /// a request the broker refused.
    Error,
    /// A request frame the source could not frame or decode (the broker closed the connection;
    /// a capture skipped to the next plausible request).
    Malformed,
    /// Unanswered, or acks=0 (no response by protocol).
    Pending,
}

impl Severity {
    /// The severity as one word: `ok`, `error`, `malformed`, `pending`.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Error => "error",
            Severity::Malformed => "malformed",
            Severity::Pending => "pending",
        }
    }
}

/// What is wrong with an exchange: [`Verdict::of`] its dissections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The request frame was not seen (a capture that started after it, or lost it).
    pub request_missing: bool,
    /// What is wrong with the request frame; none when it is clean or was not seen.
    pub request: Option<FrameFault>,
    /// Whether the response's body was read as its API lays it out. A response whose request
    /// was not seen has a known API only when the capture kept the request's header; otherwise
    /// its body is shown raw and says nothing (no error codes, nothing left over).
    pub response_read: bool,
    /// What is wrong with the response frame; none when it is clean or there is none.
    pub response: Option<FrameFault>,
    /// The value of every `error_code` field of the response, in the order they appear, zeros
    /// included (empty without a response, or for an API that has none). Most responses
    /// have one to four: held inline, so that a line's verdict allocates nothing for them.
    pub error_codes: smallvec::SmallVec<[i16; 4]>,
    pub severity: Severity,
    /// What the lint names wrong with either frame, request first ([`crate::lint::findings`]).
    pub findings: Vec<Finding>,
}

impl Verdict {
    /// Judges an exchange from its dissections (`req` none when the request was not seen,
    /// `resp` none without a response).
    pub fn of(ex: &Exchange, req: Option<&Dissection>, resp: Option<&Dissection>) -> Verdict {
        let mut error_codes = smallvec::SmallVec::new();
        if let Some(d) = resp {
            d.root.walk(0, &mut |f, _| {
                if f.role() == chronik_protocol::registry::Role::ErrorCode {
                    error_codes.extend(f.as_int().and_then(|c| i16::try_from(c).ok()));
                }
            });
        }
        let mut v = Verdict {
            request_missing: req.is_none(),
            request: req.and_then(FrameFault::of),
            response_read: resp.is_some() && (req.is_some() || ex.api_key >= 0),
            response: resp.and_then(FrameFault::of),
            error_codes,
            severity: Severity::Ok,
            findings: crate::lint::findings(ex, req, resp),
        };
        v.severity = match &ex.status {
            Status::Malformed { .. } => Severity::Malformed,
            Status::Unanswered | Status::NoResponse => Severity::Pending,
            Status::Refused { .. } => Severity::Error,
            Status::Answered if v.trouble() => Severity::Error,
            Status::Answered => Severity::Ok,
        };
        v
    }

    /// The most severe level among the findings; none without findings.
    pub fn lint_level(&self) -> Option<Level> {
        self.findings.iter().map(|f| f.level).max()
    }

    /// The error codes of the response that are not zero, in order (repeats included).
    pub fn errors(&self) -> impl Iterator<Item = i16> + '_ {
        self.error_codes.iter().copied().filter(|c| *c != 0)
    }

    /// Whether the dissections show trouble: a request that does not decode or has bytes left
    /// over, or a response (whose body was read) that does not decode, has bytes left over or
    /// carries an error code other than zero.
    pub fn trouble(&self) -> bool {
        self.request.is_some()
            || (self.response_read && (self.response.is_some() || self.errors().next().is_some()))
    }

    /// Whether the exchange is malformed: the source closed the connection on a frame it could
    /// not decode, or a dissection of either frame stopped with an error.
    pub fn malformed(&self) -> bool {
        let undecodable = |f: &Option<FrameFault>| matches!(f, Some(FrameFault::Undecodable(_)));
        self.severity == Severity::Malformed
            || undecodable(&self.request)
            || undecodable(&self.response)
    }
}
