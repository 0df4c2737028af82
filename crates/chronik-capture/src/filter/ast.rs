//! The parsed form of a filter: tests combined with and, or, not; every value already checked
//! and converted to the type its name compares with.

use chronik_protocol::registry::FieldId;

use super::builtins::Builtin;

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    /// A bare name.
    Present(Target),
    Compare {
        target: Target,
        op: Op,
        rhs: Rhs,
    },
}

impl Expr {
    /// Whether evaluating this needs a dissection of the frames.
    pub(crate) fn needs_dissection(&self) -> bool {
        match self {
            Expr::Or(v) | Expr::And(v) => v.iter().any(Expr::needs_dissection),
            Expr::Not(e) => e.needs_dissection(),
            Expr::Present(t) | Expr::Compare { target: t, .. } => match t {
                Target::Builtin(b) => b.needs_dissection(),
                Target::Field { .. } => true,
            },
        }
    }
}

/// What a test reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Builtin(Builtin),
    /// Every field of one registry name.
    Field {
        id: FieldId,
        /// Which frames can hold it.
        side: Side,
        /// How its values are read.
        codes: Codes,
    },
}

/// Which frame of an exchange a registry name can occur in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
    Both,
}

/// How the values of a registry field are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codes {
    /// As decoded.
    Plain,
    /// Integers are API keys, with the names of `registry::api_name` for `~`.
    Api,
    /// Integers are error codes, with the names of `errors::error_name` for `~`.
    Error,
    /// Bytes and record sets: a record set decoded into batches compares by the bytes it spans.
    Span,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    NotContains,
}

impl Op {
    /// The symbol, for messages.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "~",
            Op::NotContains => "!~",
        }
    }

    /// The operator a word stands for (`eq`, `contains`, …), case-insensitively.
    pub(crate) fn from_word(w: &str) -> Option<Op> {
        Some(match w.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "contains" => Op::Contains,
            _ => return None,
        })
    }

    /// `<`, `<=`, `>`, `>=`.
    pub(crate) fn is_ordering(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }

    /// `~`, `!~`.
    pub(crate) fn is_text(self) -> bool {
        matches!(self, Op::Contains | Op::NotContains)
    }
}

/// The right-hand side of a comparison, converted at parse time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rhs {
    /// Integers; durations in µs, sizes in bytes, API keys, error codes.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    Bool(bool),
    Text(Text),
    /// The word `null`.
    Null,
}

/// A text value in the forms the comparisons use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Text {
    /// As written (for `==`).
    pub exact: String,
    /// Lower-cased (for `~`).
    pub lower: String,
    /// The bytes it spells when it is an even number of hex digits (for bytes fields).
    pub hex: Option<Vec<u8>>,
}

impl Text {
    pub(crate) fn new(s: &str) -> Text {
        Text {
            exact: s.to_string(),
            lower: s.to_lowercase(),
            hex: hex_bytes(s),
        }
    }
}

/// `"00ff"` or `"00:ff"` as bytes; `None` unless it is a non-empty even count of hex digits.
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_digit(16).map(|d| d as u8))
        .collect::<Option<_>>()?;
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    Some(digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
}
