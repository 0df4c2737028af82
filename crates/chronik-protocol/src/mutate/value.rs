//! The VALUE of `set FIELD=VALUE`: read as the field's type says, written back in the field's
//! wire encoding at the response's version (compact or not, nullable or not).

use std::fmt;

use crate::errors;
use crate::schema::FieldType;

/// A value to write into a field, as typed for the field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum SetValue {
    /// Any integer field; `name` is set when an error code was given by name.
    Int {
        value: i64,
        name: Option<String>,
    },
    Bool(bool),
    Float(f64),
    Str(String),
    /// Bytes or a record set, as raw bytes.
    Bytes(Vec<u8>),
    Uuid([u8; 16]),
    /// A null string, bytes, records or array.
    Null,
    /// An array with no elements.
    EmptyArray,
}

/// What a field is, as far as writing a value into it goes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Slot {
    /// A field of the schema (or a header integer) of this type.
    Typed(FieldType),
    /// The element count of an array: an int32, or a compact length in flexible versions.
    Count,
}

impl SetValue {
    /// Reads `text` as a value for a field of this kind. `error_code` fields also take error
    /// names (`NOT_LEADER_OR_FOLLOWER`, any case).
    pub(crate) fn parse(text: &str, slot: &Slot, error_code: bool) -> Result<SetValue, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("no value after `=`".into());
        }
        let is_null = text.eq_ignore_ascii_case("null");
        let ty = match slot {
            Slot::Count => {
                let n = int(text, i32::MIN as i64, i32::MAX as i64, "an element count")?;
                if n < -1 {
                    return Err(format!("an element count is -1 (null) or more, not {n}"));
                }
                return Ok(SetValue::Int {
                    value: n,
                    name: None,
                });
            }
            Slot::Typed(ty) => ty,
        };
        Ok(match ty {
            FieldType::Int8 | FieldType::Int16 | FieldType::Int32 | FieldType::Int64
            | FieldType::Uint16 | FieldType::Uint32 => {
                let (lo, hi) = int_range(ty);
                if error_code {
                    if let Some(code) = errors::code_by_name(text) {
                        return Ok(SetValue::Int {
                            value: code as i64,
                            name: Some(errors::error_name(code).to_string()),
                        });
                    }
                }
                let what = if error_code {
                    "an error code (a number or a name such as NOT_LEADER_OR_FOLLOWER)".to_string()
                } else {
                    format!("an {}", ty.label())
                };
                SetValue::Int {
                    value: int(text, lo, hi, &what)?,
                    name: None,
                }
            }
            FieldType::Bool => match text.to_ascii_lowercase().as_str() {
                "true" | "1" => SetValue::Bool(true),
                "false" | "0" => SetValue::Bool(false),
                _ => return Err(format!("a bool is true or false, not {text:?}")),
            },
            FieldType::Float64 => SetValue::Float(
                text.parse::<f64>()
                    .map_err(|_| format!("{text:?} is not a number (float64)"))?,
            ),
            FieldType::String if is_null => SetValue::Null,
            FieldType::String => SetValue::Str(unquote(text)?),
            FieldType::Bytes | FieldType::Records if is_null => SetValue::Null,
            FieldType::Bytes | FieldType::Records => SetValue::Bytes(bytes(text)?),
            FieldType::Uuid => {
                let u = uuid::Uuid::parse_str(text)
                    .map_err(|_| format!("{text:?} is not a UUID"))?;
                SetValue::Uuid(*u.as_bytes())
            }
            FieldType::Array(_) if is_null => SetValue::Null,
            FieldType::Array(_) if text == "[]" => SetValue::EmptyArray,
            FieldType::Array(_) => {
                return Err(format!(
                    "an array can be set to null or [] only, not {text:?} (set its elements' fields instead)"
                ))
            }
            FieldType::Struct | FieldType::Group | FieldType::Varint | FieldType::Uvarint => {
                return Err(format!(
                    "a {} cannot be set (set the fields inside it)",
                    ty.label()
                ))
            }
        })
    }

    /// The value's bytes in the field's wire encoding.
    pub(crate) fn encode(
        &self,
        slot: &Slot,
        flexible: bool,
        nullable: bool,
    ) -> Result<Vec<u8>, String> {
        let ty = match slot {
            Slot::Count => {
                let SetValue::Int { value, .. } = self else {
                    return Err("an element count takes a number".into());
                };
                return Ok(length(*value, flexible, false));
            }
            Slot::Typed(ty) => ty,
        };
        let null_ok = |what: &str| {
            if nullable {
                Ok(())
            } else {
                Err(format!("{what} is not nullable at this version"))
            }
        };
        Ok(match (ty, self) {
            (FieldType::Int8, SetValue::Int { value, .. }) => (*value as i8).to_be_bytes().to_vec(),
            (FieldType::Int16, SetValue::Int { value, .. }) => {
                (*value as i16).to_be_bytes().to_vec()
            }
            (FieldType::Uint16, SetValue::Int { value, .. }) => {
                (*value as u16).to_be_bytes().to_vec()
            }
            (FieldType::Int32, SetValue::Int { value, .. }) => {
                (*value as i32).to_be_bytes().to_vec()
            }
            (FieldType::Uint32, SetValue::Int { value, .. }) => {
                (*value as u32).to_be_bytes().to_vec()
            }
            (FieldType::Int64, SetValue::Int { value, .. }) => value.to_be_bytes().to_vec(),
            (FieldType::Bool, SetValue::Bool(b)) => vec![*b as u8],
            (FieldType::Float64, SetValue::Float(f)) => f.to_bits().to_be_bytes().to_vec(),
            (FieldType::Uuid, SetValue::Uuid(u)) => u.to_vec(),
            (FieldType::String, SetValue::Str(s)) => {
                if !flexible && s.len() > i16::MAX as usize {
                    return Err(format!(
                        "a string of {} bytes does not fit an int16 length",
                        s.len()
                    ));
                }
                let mut out = length(s.len() as i64, flexible, true);
                out.extend_from_slice(s.as_bytes());
                out
            }
            (FieldType::Bytes | FieldType::Records, SetValue::Bytes(b)) => {
                let mut out = length(b.len() as i64, flexible, false);
                out.extend_from_slice(b);
                out
            }
            (FieldType::String, SetValue::Null) => {
                null_ok("the string")?;
                length(-1, flexible, true)
            }
            (FieldType::Bytes | FieldType::Records | FieldType::Array(_), SetValue::Null) => {
                null_ok("the field")?;
                length(-1, flexible, false)
            }
            (FieldType::Array(_), SetValue::EmptyArray) => length(0, flexible, false),
            (ty, v) => return Err(format!("{v} is not a value for a {} field", ty.label())),
        })
    }
}

impl fmt::Display for SetValue {
    /// As it would be typed back: error codes by name, strings quoted, bytes in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetValue::Int {
                name: Some(name), ..
            } => f.write_str(name),
            SetValue::Int { value, .. } => write!(f, "{value}"),
            SetValue::Bool(b) => write!(f, "{b}"),
            SetValue::Float(x) => write!(f, "{x}"),
            SetValue::Str(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
            SetValue::Bytes(b) => {
                f.write_str("0x")?;
                b.iter().try_for_each(|x| write!(f, "{x:02x}"))
            }
            SetValue::Uuid(u) => write!(f, "{}", uuid::Uuid::from_bytes(*u)),
            SetValue::Null => f.write_str("null"),
            SetValue::EmptyArray => f.write_str("[]"),
        }
    }
}

/// The range of an integer type.
fn int_range(ty: &FieldType) -> (i64, i64) {
    match ty {
        FieldType::Int8 => (i8::MIN as i64, i8::MAX as i64),
        FieldType::Int16 => (i16::MIN as i64, i16::MAX as i64),
        FieldType::Uint16 => (0, u16::MAX as i64),
        FieldType::Int32 => (i32::MIN as i64, i32::MAX as i64),
        FieldType::Uint32 => (0, u32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    }
}

/// A whole number in `lo..=hi`, decimal or 0x hex.
fn int(text: &str, lo: i64, hi: i64, what: &str) -> Result<i64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => text.parse::<i64>().ok(),
    };
    match parsed {
        Some(v) if (lo..=hi).contains(&v) => Ok(v),
        Some(v) => Err(format!("{v} is out of range for {what} ({lo} to {hi})")),
        None => Err(format!("{text:?} is not {what}")),
    }
}

/// A string value: `"..."` (with `\"` and `\\`), or the text as it is.
fn unquote(text: &str) -> Result<String, String> {
    let Some(inner) = text.strip_prefix('"') else {
        return Ok(text.to_string());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err(format!("unterminated string {text:?}"));
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\')) => out.push(e),
                Some(e) => return Err(format!("unknown escape \\{e} in {text:?}")),
                None => return Err(format!("a string may not end in \\: {text:?}")),
            },
            '"' => return Err(format!("an unescaped \" inside {text:?}")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A bytes value: `0x` and hex digits, or a quoted string's bytes.
fn bytes(text: &str) -> Result<Vec<u8>, String> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{text:?} is not an even number of hex digits after 0x"
            ));
        }
        return Ok((0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect());
    }
    if text.starts_with('"') {
        return unquote(text).map(String::into_bytes);
    }
    Err(format!(
        "bytes are written 0xHEX or \"text\" (or null), not {text:?}"
    ))
}

/// A length prefix: int16 (strings) or int32, or in flexible versions an unsigned varint of
/// length + 1 (0 for null). -1 is null.
pub(crate) fn length(n: i64, flexible: bool, short: bool) -> Vec<u8> {
    if flexible {
        uvarint((n + 1).max(0) as u64)
    } else if short {
        (n as i16).to_be_bytes().to_vec()
    } else {
        (n as i32).to_be_bytes().to_vec()
    }
}

/// An unsigned varint.
pub(crate) fn uvarint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(5);
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}
