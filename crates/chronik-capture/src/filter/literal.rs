//! Values in a filter: what type each name compares with, and the conversion of a written value
//! (number, duration, size, word, quoted string) to that type, with the errors for values and
//! operators that cannot fit it.

use chronik_protocol::{errors, registry};

use super::ast::{Op, Rhs, Text};
use super::suggest;
use super::FilterError;

/// What the values of a name are, for checking comparisons when parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Float,
    Bool,
    /// Compared in µs; a bare number is milliseconds.
    Duration,
    /// Compared in bytes.
    Size,
    Text,
    Bytes,
    /// An API key, also written as the API's name.
    Api,
    /// An error code, also written as the error's name.
    Error,
    /// One of a fixed set of lower-case words.
    Enum(&'static [&'static str]),
    /// A struct or an array of structs: only presence and null.
    Group,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Int => "a number",
            Kind::Float => "a number",
            Kind::Bool => "a boolean",
            Kind::Duration => "a duration",
            Kind::Size => "a size",
            Kind::Text => "text",
            Kind::Bytes => "bytes",
            Kind::Api => "an API key",
            Kind::Error => "an error code",
            Kind::Enum(_) => "one of a set of words",
            Kind::Group => "a group of fields",
        }
    }

    /// Whether `<` `<=` `>` `>=` can apply.
    fn ordered(self) -> bool {
        matches!(
            self,
            Kind::Int | Kind::Float | Kind::Duration | Kind::Size | Kind::Api | Kind::Error
        )
    }

    /// Whether `~` `!~` can apply.
    fn textual(self) -> bool {
        matches!(
            self,
            Kind::Text | Kind::Bytes | Kind::Api | Kind::Error | Kind::Enum(_)
        )
    }
}

/// The type of a name: its kind and whether it can be null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ty {
    pub kind: Kind,
    pub nullable: bool,
}

/// The type of a registry entry, from its wire type; `None` for a wire type this module does
/// not know (a test checks that every registered one is known).
pub(crate) fn registry_ty(entry: &registry::Entry) -> Option<Ty> {
    use chronik_protocol::schema::FieldType as F;
    let wire = match &entry.kind {
        F::Array(inner) if **inner != F::Struct => inner,
        other => other,
    };
    let kind = match wire {
        F::Bool => Kind::Bool,
        F::Int8
        | F::Int16
        | F::Int32
        | F::Int64
        | F::Uint16
        | F::Uint32
        | F::Varint
        | F::Uvarint => match entry.short {
            "error_code" => Kind::Error,
            "api_key" => Kind::Api,
            _ => Kind::Int,
        },
        F::Float64 => Kind::Float,
        F::String | F::Uuid => Kind::Text,
        F::Bytes | F::Records => Kind::Bytes,
        F::Group | F::Struct | F::Array(_) => Kind::Group,
    };
    // Strings, bytes, arrays and record sets can be null on the wire. Integers and booleans
    // never are, but `== null` stays allowed on them (never true): one rule for every field.
    Some(Ty {
        kind,
        nullable: true,
    })
}

/// A value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Literal {
    /// The word, or the string's content without quotes and escapes.
    pub text: String,
    pub quoted: bool,
    /// Character offset of its first character.
    pub col: usize,
}

/// Converts the value of `name OP value` to the type of `name`.
pub(crate) fn convert(
    name: &str,
    ty: Ty,
    op: Op,
    op_col: usize,
    lit: &Literal,
) -> Result<Rhs, FilterError> {
    let err = |msg: String| Err(FilterError::new(lit.col, msg));
    let is_null = !lit.quoted && lit.text.eq_ignore_ascii_case("null");
    if ty.kind == Kind::Group && !(is_null && matches!(op, Op::Eq | Op::Ne)) {
        return Err(FilterError::new(
            op_col,
            format!(
                "`{name}` is a group of fields: test it bare (`{name}`), compare it with null, \
                 or compare one of its fields"
            ),
        ));
    }
    if op.is_text() && !ty.kind.textual() {
        return Err(FilterError::new(
            op_col,
            format!(
                "`{}` needs text, but `{name}` is {}; use {}",
                op.symbol(),
                ty.kind.describe(),
                if ty.kind.ordered() {
                    "==, !=, <, <=, > or >="
                } else {
                    "== or !="
                }
            ),
        ));
    }
    if op.is_ordering() && !ty.kind.ordered() {
        return Err(FilterError::new(
            op_col,
            format!(
                "`{}` needs numbers, but `{name}` is {}; use {}",
                op.symbol(),
                ty.kind.describe(),
                if ty.kind.textual() {
                    "==, !=, ~ or !~"
                } else {
                    "== or !="
                }
            ),
        ));
    }
    if is_null {
        if !matches!(op, Op::Eq | Op::Ne) {
            return err(format!(
                "null can only be compared with == or !=; write \"null\" to {} the word",
                if op.is_text() {
                    "search for"
                } else {
                    "compare"
                }
            ));
        }
        if !ty.nullable {
            return err(format!("`{name}` is never null"));
        }
        return Ok(Rhs::Null);
    }
    if op.is_text() {
        return Ok(Rhs::Text(Text::new(&lit.text)));
    }
    let text = lit.text.as_str();
    match ty.kind {
        Kind::Text | Kind::Bytes => Ok(Rhs::Text(Text::new(text))),
        Kind::Int | Kind::Float => {
            not_quoted(name, ty.kind, lit)?;
            match number(text) {
                Ok(Num::Int(v)) => Ok(Rhs::Int(v)),
                Ok(Num::Float(v)) => Ok(Rhs::Float(v)),
                Err(e) => err(e.message(name, text, "a number")),
            }
        }
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Rhs::Bool(true)),
            "false" | "0" => Ok(Rhs::Bool(false)),
            _ => err(format!("`{name}` is true or false, not `{text}`")),
        },
        Kind::Duration => {
            not_quoted(name, ty.kind, lit)?;
            duration(text).map(Rhs::Int).or_else(err)
        }
        Kind::Size => {
            not_quoted(name, ty.kind, lit)?;
            size(text).map(Rhs::Int).or_else(err)
        }
        Kind::Api => named(text, lit, api_key).map(Rhs::Int).or_else(|m| {
            err(m.unwrap_or_else(|| {
                let names = registry::catalog().apis.values().map(|a| a.name.as_str());
                unknown("API", text, suggest::closest(text, names))
            }))
        }),
        Kind::Error => named(text, lit, error_code).map(Rhs::Int).or_else(|m| {
            err(m.unwrap_or_else(|| {
                let names = error_names().map(|(_, n)| n);
                unknown("error", text, suggest::closest(text, names))
            }))
        }),
        Kind::Enum(words) => {
            let lower = text.to_lowercase();
            if words.contains(&lower.as_str()) {
                Ok(Rhs::Text(Text::new(&lower)))
            } else {
                let hint = suggest::closest(text, words.iter().copied())
                    .map(|w| format!("; did you mean `{w}`?"))
                    .unwrap_or_default();
                err(format!(
                    "`{name}` is one of {}, not `{text}`{hint}",
                    words.join(", ")
                ))
            }
        }
        // Refused above for every operator and value but `== null`, `!= null`.
        Kind::Group => Ok(Rhs::Null),
    }
}

/// Refuses a quoted value for a numeric name.
fn not_quoted(name: &str, kind: Kind, lit: &Literal) -> Result<(), FilterError> {
    if lit.quoted {
        return Err(FilterError::new(
            lit.col,
            format!(
                "`{name}` is {}, not text: write the value without quotes",
                kind.describe()
            ),
        ));
    }
    Ok(())
}

/// A number, or a name that `lookup` turns into one. `Err(Some(message))` for a malformed
/// number, `Err(None)` for an unknown name.
fn named(
    text: &str,
    lit: &Literal,
    lookup: fn(&str) -> Option<i64>,
) -> Result<i64, Option<String>> {
    if !lit.quoted {
        match number(text) {
            Ok(Num::Int(v)) => return Ok(v),
            Ok(Num::Float(_)) => return Err(Some(format!("`{text}` is not a whole number"))),
            Err(NumError::NotNumber) => {}
            Err(e) => return Err(Some(e.message("", text, "a number"))),
        }
    }
    lookup(text).ok_or(None)
}

fn unknown(what: &str, text: &str, closest: Option<&str>) -> String {
    match closest {
        Some(c) => format!("unknown {what} `{text}`; did you mean `{c}`?"),
        None => format!("unknown {what} `{text}`"),
    }
}

/// The key of an API by name ([`registry::api_key_by_name`]).
fn api_key(name: &str) -> Option<i64> {
    registry::api_key_by_name(name).map(i64::from)
}

/// Every named error code.
fn error_names() -> impl Iterator<Item = (i16, &'static str)> {
    errors::ALL.iter().copied()
}

/// The code of an error named as in the protocol guide, any case.
fn error_code(name: &str) -> Option<i64> {
    errors::code_by_name(name).map(i64::from)
}

/// A number as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i64),
    Float(f64),
}

/// Why a word is not a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumError {
    /// Does not look like one at all.
    NotNumber,
    /// Starts like a number but is not one (`12ab`, `0xzz`, `1.2.3`).
    Bad,
    OutOfRange,
}

impl NumError {
    fn message(self, name: &str, text: &str, expected: &str) -> String {
        match self {
            NumError::NotNumber if name.is_empty() => format!("`{text}` is not {expected}"),
            NumError::NotNumber => format!("`{name}` is {expected}; `{text}` is not one"),
            NumError::Bad => format!("bad number `{text}`"),
            NumError::OutOfRange => format!("number `{text}` is out of range"),
        }
    }
}

/// Decimal or `0x` hex integers, optionally negative; decimal fractions (`1.5`).
pub(crate) fn number(text: &str) -> Result<Num, NumError> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if !digits.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(NumError::NotNumber);
    }
    let sign = if neg { -1 } else { 1 };
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(NumError::Bad);
        }
        u64::from_str_radix(hex, 16).map_err(|_| NumError::OutOfRange)?
    } else if digits.chars().all(|c| c.is_ascii_digit()) {
        digits.parse::<u64>().map_err(|_| NumError::OutOfRange)?
    } else {
        let mut parts = digits.split('.');
        let whole = parts.next().unwrap_or("");
        let frac = parts.next();
        let ok = parts.next().is_none()
            && frac.is_some_and(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
            && whole.chars().all(|c| c.is_ascii_digit());
        if !ok {
            return Err(NumError::Bad);
        }
        let v: f64 = digits.parse().map_err(|_| NumError::Bad)?;
        return if v.is_finite() {
            Ok(Num::Float(v * sign as f64))
        } else {
            Err(NumError::OutOfRange)
        };
    };
    let v = i128::from(magnitude) * sign;
    i64::try_from(v)
        .map(Num::Int)
        .map_err(|_| NumError::OutOfRange)
}

/// Splits `50ms` into `50` and `ms`: the unit starts at the first character that cannot be part
/// of a decimal number.
fn split_unit(text: &str) -> (&str, &str) {
    let start = usize::from(text.starts_with('-'));
    let end = text[start..]
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(text.len(), |i| i + start);
    text.split_at(end)
}

/// A decimal number (`num`, from `text`) times a unit's factor, rounded, as an integer.
fn scaled(text: &str, num: &str, factor: f64) -> Result<i64, String> {
    let v = match number(num) {
        Ok(Num::Int(v)) => v as f64,
        Ok(Num::Float(v)) => v,
        Err(NumError::OutOfRange) => return Err(NumError::OutOfRange.message("", text, "")),
        _ => return Err(NumError::Bad.message("", text, "")),
    };
    times(text, v, factor)
}

/// `v * factor`, rounded, when it fits an i64.
fn times(text: &str, v: f64, factor: f64) -> Result<i64, String> {
    let v = (v * factor).round();
    // i64::MAX is not exact in f64; stay clearly inside the range.
    if v.abs() < 9.0e18 {
        Ok(v as i64)
    } else {
        Err(NumError::OutOfRange.message("", text, ""))
    }
}

/// A duration in µs: `250us`, `250µs`, `50ms`, `1.5s`; a bare number is milliseconds.
pub(crate) fn duration(text: &str) -> Result<i64, String> {
    const HOW: &str = "write e.g. 250us, 50ms or 1.5s";
    match number(text) {
        Ok(Num::Int(v)) => {
            return v
                .checked_mul(1000)
                .ok_or_else(|| NumError::OutOfRange.message("", text, ""))
        }
        Ok(Num::Float(v)) => return times(text, v, 1000.0),
        Err(NumError::OutOfRange) => return Err(NumError::OutOfRange.message("", text, "")),
        Err(_) => {}
    }
    let (num, unit) = split_unit(text);
    if num.is_empty() || num == "-" {
        return Err(format!("`{text}` is not a duration; {HOW}"));
    }
    if unit.is_empty() {
        return Err(NumError::Bad.message("", text, ""));
    }
    let factor = match unit.to_lowercase().as_str() {
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`: durations take us, ms or s"
            ))
        }
    };
    scaled(text, num, factor)
}

/// A size in bytes: `512`, `0x200`, `10kB`, `1.5MB`, `1MiB` (units any case; k, M, G are powers
/// of 1000, Ki, Mi, Gi powers of 1024).
pub(crate) fn size(text: &str) -> Result<i64, String> {
    const HOW: &str = "write e.g. 512, 10kB or 1MiB";
    match number(text) {
        Ok(Num::Int(v)) => return Ok(v),
        Ok(Num::Float(_)) => {
            return Err(format!(
                "`{text}` is not a whole number of bytes; add a unit (kB, MiB, …)"
            ))
        }
        Err(NumError::OutOfRange) => return Err(NumError::OutOfRange.message("", text, "")),
        Err(_) => {}
    }
    let (num, unit) = split_unit(text);
    if num.is_empty() || num == "-" {
        return Err(format!("`{text}` is not a size; {HOW}"));
    }
    if unit.is_empty() {
        return Err(NumError::Bad.message("", text, ""));
    }
    let factor = match unit.to_lowercase().as_str() {
        "b" => 1.0,
        "kb" => 1e3,
        "kib" => 1024.0,
        "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`: sizes take B, kB, KiB, MB, MiB, GB or GiB"
            ))
        }
    };
    scaled(text, num, factor)
}
