//! Evaluation of a parsed filter against one exchange.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Ordering;

use crate::{Exchange, Verdict};
use chronik_protocol::{errors, registry, Dissection, Field, Value};

use super::ast::{Codes, Expr, Op, Rhs, Side, Target};
use super::builtins::Builtin;
use super::Subject;

/// One evaluation: the subject, and the dissections and verdict made here when the subject has
/// none (each frame dissected only when a name needs it).
pub(crate) struct Ctx<'s, 'a> {
    s: &'s Subject<'a>,
    request: OnceCell<Option<Dissection>>,
    response: OnceCell<Option<Dissection>>,
    verdict: OnceCell<Verdict>,
}

/// A value read from an exchange, in the forms comparisons need.
#[derive(Debug, Clone, PartialEq)]
enum Val<'v> {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(&'v str),
    Bytes(&'v [u8]),
    /// An integer with a name (API key, error code); `~` looks at the name.
    Code(i64, Cow<'static, str>),
    Null,
    /// A struct, an array or an array element: only present or null.
    Group,
}

impl<'s, 'a> Ctx<'s, 'a> {
    pub(crate) fn new(s: &'s Subject<'a>) -> Self {
        Ctx {
            s,
            request: OnceCell::new(),
            response: OnceCell::new(),
            verdict: OnceCell::new(),
        }
    }

    fn exchange(&self) -> &'a Exchange {
        self.s.exchange
    }

    /// The request's dissection: the subject's, or made here (none when the request frame was
    /// not seen).
    fn request(&self) -> Option<&Dissection> {
        if let Some(d) = self.s.dissected {
            return d.request.as_ref();
        }
        self.request
            .get_or_init(|| self.exchange().dissect_request())
            .as_ref()
    }

    /// The response's dissection: the subject's, or made here (none without a response).
    fn response(&self) -> Option<&Dissection> {
        if let Some(d) = self.s.dissected {
            return d.response.as_ref();
        }
        self.response
            .get_or_init(|| self.exchange().dissect_response())
            .as_ref()
    }

    /// What is wrong with the exchange: the subject's verdict, or one made here.
    fn verdict(&self) -> &Verdict {
        if let Some(d) = self.s.dissected {
            return &d.verdict;
        }
        self.verdict
            .get_or_init(|| Verdict::of(self.exchange(), self.request(), self.response()))
    }

    /// The dissected frames that can hold fields of a side, with their frame bytes.
    fn trees(&self, side: Side) -> [Option<(&Dissection, &[u8])>; 2] {
        let ex = self.exchange();
        let req = matches!(side, Side::Request | Side::Both)
            .then(|| self.request().map(|d| (d, ex.request())))
            .flatten();
        let resp = matches!(side, Side::Response | Side::Both)
            .then(|| self.response().map(|d| (d, ex.response().unwrap_or(&[]))))
            .flatten();
        [req, resp]
    }

    /// Whether the filter keeps the exchange.
    pub(crate) fn eval(&self, e: &Expr) -> bool {
        match e {
            Expr::Or(v) => v.iter().any(|e| self.eval(e)),
            Expr::And(v) => v.iter().all(|e| self.eval(e)),
            Expr::Not(e) => !self.eval(e),
            Expr::Present(t) => self.present(t),
            Expr::Compare { target, op, rhs } => match *target {
                Target::Field { id, side, codes } => {
                    self.trees(side).into_iter().flatten().any(|(d, frame)| {
                        any_field(&d.root, &mut |f| {
                            f.id == id && test(&field_val(f, d, frame, codes), *op, rhs)
                        })
                    })
                }
                Target::Builtin(b) => self.builtin_any(b, &mut |v| test(&v, *op, rhs)),
            },
        }
    }

    /// A bare name.
    fn present(&self, t: &Target) -> bool {
        let ex = self.exchange();
        let b = match *t {
            Target::Field { id, side, .. } => {
                return self
                    .trees(side)
                    .into_iter()
                    .flatten()
                    .any(|(d, _)| any_field(&d.root, &mut |f| f.id == id))
            }
            Target::Builtin(b) => b,
        };
        match b {
            Builtin::Api
            | Builtin::Version
            | Builtin::Conn
            | Builtin::Id
            | Builtin::Corr
            | Builtin::Peer
            | Builtin::Size
            | Builtin::RequestSize
            | Builtin::Status => true,
            Builtin::Client => ex.client_id().is_some(),
            Builtin::Software => self.s.software.is_some(),
            Builtin::Health => self.s.health.is_some(),
            Builtin::Latency => ex.latency_micros().is_some(),
            Builtin::ResponseSize => ex.response().is_some(),
            Builtin::Placement => ex.placement().is_some(),
            Builtin::Malformed => self.malformed(),
            Builtin::Lint | Builtin::LintCode | Builtin::LintLevel | Builtin::LintMessage => {
                !self.verdict().findings.is_empty()
            }
            Builtin::Error => {
                self.builtin_any(Builtin::Error, &mut |v| test(&v, Op::Ne, &Rhs::Int(0)))
            }
            Builtin::Throttle => self.response().is_some_and(|d| {
                any_field(&d.root, &mut |f| f.role() == registry::Role::ThrottleTime)
            }),
        }
    }

    /// The exchange was refused as malformed, or a dissection stopped with an error.
    fn malformed(&self) -> bool {
        self.verdict().malformed()
    }

    /// Whether any value of a built-in satisfies `pred`; false when it has none.
    fn builtin_any(&self, b: Builtin, pred: &mut dyn FnMut(Val<'_>) -> bool) -> bool {
        let ex = self.exchange();
        let text = |s: Option<&'a str>| s.map_or(Val::Null, Val::Text);
        match b {
            Builtin::Api => pred(Val::Code(ex.api_key.into(), api_name(ex.api_key.into()))),
            Builtin::Version => pred(Val::Int(ex.api_version.into())),
            Builtin::Conn => pred(Val::Int(saturate(ex.conn))),
            Builtin::Id => pred(Val::Int(saturate(ex.id))),
            Builtin::Corr => pred(Val::Int(ex.correlation_id.into())),
            Builtin::Client => pred(text(ex.client_id())),
            Builtin::Peer => pred(Val::Text(&ex.peer().to_string())),
            Builtin::Software => pred(text(self.s.software)),
            Builtin::Health => pred(text(self.s.health)),
            Builtin::Latency => ex.latency_micros().is_some_and(|l| pred(Val::Int(l))),
            Builtin::Size => pred(Val::Int(saturate(ex.size() as u64))),
            Builtin::RequestSize => pred(Val::Int(saturate(ex.request().len() as u64))),
            Builtin::ResponseSize => ex
                .response()
                .as_ref()
                .is_some_and(|r| pred(Val::Int(saturate(r.len() as u64)))),
            Builtin::Status => pred(Val::Text(ex.status.word())),
            Builtin::Malformed => pred(Val::Bool(self.malformed())),
            Builtin::Placement => ex
                .placement()
                .as_ref()
                .is_some_and(|p| pred(Val::Text(p.placement.word()))),
            Builtin::Error => {
                // Every error_code of the response; none at all counts as 0 (NONE).
                if ex.response().is_none() {
                    return false;
                }
                let codes = &self.verdict().error_codes;
                let code = |c: i16| Val::Code(c.into(), Cow::Borrowed(errors::error_name(c)));
                let hit = codes.iter().any(|c| pred(code(*c)));
                hit || (codes.is_empty() && pred(code(0)))
            }
            Builtin::Throttle => self.response().is_some_and(|d| {
                any_field(&d.root, &mut |f| {
                    f.role() == registry::Role::ThrottleTime
                        && f.as_int().is_some_and(|v| pred(Val::Int(v)))
                })
            }),
            Builtin::Lint => pred(Val::Bool(!self.verdict().findings.is_empty())),
            Builtin::LintCode => {
                (self.verdict().findings.iter()).any(|f| pred(Val::Text(f.code.word())))
            }
            Builtin::LintLevel => {
                (self.verdict().findings.iter()).any(|f| pred(Val::Text(f.level.word())))
            }
            Builtin::LintMessage => {
                (self.verdict().findings.iter()).any(|f| pred(Val::Text(&f.message)))
            }
        }
    }
}

impl Ctx<'_, '_> {
    /// Every value of a name in this exchange, as text (a column of `decode --fields`): numbers
    /// as decimals, `api` and `error` by name, bytes in hex, latency in milliseconds, null as
    /// `null`; structs and array elements have no value of their own.
    pub(crate) fn texts(&self, target: &Target) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |v: Val<'_>| {
            if let Some(t) = val_text(&v) {
                out.push(t);
            }
            false
        };
        match *target {
            Target::Field { id, side, codes } => {
                for (d, frame) in self.trees(side).into_iter().flatten() {
                    any_field(&d.root, &mut |f| {
                        f.id == id && push(field_val(f, d, frame, codes))
                    });
                }
            }
            Target::Builtin(Builtin::Latency) => {
                if let Some(us) = self.exchange().latency_micros() {
                    out.push(format!("{:.3}", us as f64 / 1000.0));
                }
            }
            Target::Builtin(b @ (Builtin::Api | Builtin::Error)) => {
                self.builtin_any(b, &mut |v| {
                    if let Val::Code(_, name) = &v {
                        out.push(name.to_string());
                    }
                    false
                });
            }
            Target::Builtin(b) => {
                self.builtin_any(b, &mut push);
            }
        }
        out
    }
}

fn val_text(v: &Val<'_>) -> Option<String> {
    Some(match v {
        Val::Int(i) | Val::Code(i, _) => i.to_string(),
        Val::Float(x) => x.to_string(),
        Val::Bool(b) => b.to_string(),
        Val::Text(t) => t.to_string(),
        Val::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Val::Null => "null".into(),
        Val::Group => return None,
    })
}

/// Depth first: whether `pred` holds for a field or any field below it.
fn any_field<'f>(f: &'f Field, pred: &mut dyn FnMut(&'f Field) -> bool) -> bool {
    pred(f) || f.children.iter().any(|c| any_field(c, pred))
}

fn saturate(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn api_name(key: i64) -> Cow<'static, str> {
    match i16::try_from(key).ok().and_then(registry::api) {
        Some(a) => Cow::Borrowed(a.name.as_str()),
        None => Cow::Owned(format!("ApiKey({key})")),
    }
}

fn error_name(code: i64) -> &'static str {
    i16::try_from(code).map_or("UNKNOWN_ERROR_CODE", errors::error_name)
}

/// The value of a registry field, bytes looked up in the buffer they point into.
fn field_val<'v>(f: &'v Field, d: &'v Dissection, frame: &'v [u8], codes: Codes) -> Val<'v> {
    let bytes = |start: u32, len: u32| {
        let start = start as usize;
        let bytes = start
            .checked_add(len as usize)
            .and_then(|end| d.buffer(frame, f.buffer).get(start..end))
            .unwrap_or(&[]);
        Val::Bytes(bytes)
    };
    match &f.value {
        Value::Group if codes == Codes::Span => bytes(f.offset, f.len),
        Value::Group | Value::Element(_) => Val::Group,
        Value::Int(v) => match codes {
            Codes::Plain | Codes::Span => Val::Int(*v),
            Codes::Api => Val::Code(*v, api_name(*v)),
            Codes::Error => Val::Code(*v, Cow::Borrowed(error_name(*v))),
        },
        Value::Float(v) => Val::Float(*v),
        Value::Bool(b) => Val::Bool(*b),
        Value::Str(s) | Value::Uuid(s) => Val::Text(s),
        Value::Null => Val::Null,
        Value::Bytes { start, len } => bytes(*start, *len),
    }
}

/// One comparison of one value.
fn test(v: &Val<'_>, op: Op, rhs: &Rhs) -> bool {
    match op {
        Op::Eq => equals(v, rhs),
        // A group is never equal to a value, but only its being null can be asked about.
        Op::Ne if *v == Val::Group => *rhs == Rhs::Null,
        Op::Ne => !equals(v, rhs),
        Op::Lt => order(v, rhs) == Some(Ordering::Less),
        Op::Le => matches!(order(v, rhs), Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => order(v, rhs) == Some(Ordering::Greater),
        Op::Ge => matches!(order(v, rhs), Some(Ordering::Greater | Ordering::Equal)),
        Op::Contains => contains(v, rhs),
        Op::NotContains => *v != Val::Group && !contains(v, rhs),
    }
}

fn equals(v: &Val<'_>, rhs: &Rhs) -> bool {
    match (v, rhs) {
        (Val::Null, Rhs::Null) => true,
        (Val::Int(a) | Val::Code(a, _), Rhs::Int(b)) => a == b,
        (Val::Int(a) | Val::Code(a, _), Rhs::Float(b)) => *a as f64 == *b,
        (Val::Float(a), Rhs::Int(b)) => *a == *b as f64,
        (Val::Float(a), Rhs::Float(b)) => a == b,
        (Val::Bool(a), Rhs::Bool(b)) => a == b,
        (Val::Text(a), Rhs::Text(t)) => *a == t.exact,
        (Val::Code(_, name), Rhs::Text(t)) => name.eq_ignore_ascii_case(&t.exact),
        (Val::Bytes(b), Rhs::Text(t)) => {
            t.hex.as_deref() == Some(*b) || String::from_utf8_lossy(b) == t.exact
        }
        _ => false,
    }
}

fn order(v: &Val<'_>, rhs: &Rhs) -> Option<Ordering> {
    match (v, rhs) {
        (Val::Int(a) | Val::Code(a, _), Rhs::Int(b)) => Some(a.cmp(b)),
        (Val::Int(a) | Val::Code(a, _), Rhs::Float(b)) => (*a as f64).partial_cmp(b),
        (Val::Float(a), Rhs::Int(b)) => a.partial_cmp(&(*b as f64)),
        (Val::Float(a), Rhs::Float(b)) => a.partial_cmp(b),
        _ => None,
    }
}

/// Case-insensitive substring of text, of a code's name, or of bytes (as lossy UTF-8, or as
/// bytes when the value is hex).
fn contains(v: &Val<'_>, rhs: &Rhs) -> bool {
    let Rhs::Text(t) = rhs else {
        return false;
    };
    match v {
        Val::Text(s) => s.to_lowercase().contains(&t.lower),
        Val::Code(_, name) => name.to_lowercase().contains(&t.lower),
        Val::Bytes(b) => {
            t.hex.as_deref().is_some_and(|h| contains_bytes(b, h))
                || String::from_utf8_lossy(b).to_lowercase().contains(&t.lower)
        }
        _ => false,
    }
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}
