//! The decoded form of a frame: a tree of named fields, each with the exact bytes it came from.

use serde::Serialize;

use super::registry::{self, FieldId};

/// Which buffer a field's span points into: the frame itself, or a buffer that decoding made
/// (the decompressed payload of a record batch).
pub type BufferId = u16;

/// The raw frame: buffer 0.
pub const FRAME: BufferId = 0;

/// A value as decoded from the wire.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "v", rename_all = "snake_case")]
pub enum Value {
    /// A group of fields (struct, array, header, batch); its children hold the data.
    Group,
    /// One element of an array, by index.
    Element(u32),
    /// Any integer type (int8 … int64, uint16, varints).
    Int(i64),
    /// float64.
    Float(f64),
    /// boolean.
    Bool(bool),
    /// A string (invalid UTF-8 is replaced, the bytes stay in the span).
    Str(String),
    /// A null string, bytes, array or records field.
    Null,
    /// Raw bytes: where they sit in the field's buffer.
    Bytes { start: u32, len: u32 },
    /// A 16-byte UUID.
    Uuid(String),
}

/// One decoded field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    /// Index of this field's entry in the field registry (its dotted name, type, description).
    #[serde(serialize_with = "ser_id")]
    pub id: FieldId,
    /// Byte offset inside `buffer`.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
    /// The buffer the span points into ([`FRAME`] unless decompressed).
    pub buffer: BufferId,
    pub value: Value,
    /// A decoder's note about this field (CRC mismatch, trailing bytes, …); not an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Field>,
}

fn ser_id<S: serde::Serializer>(id: &FieldId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(registry::name(*id))
}

impl Field {
    /// A field with no children.
    pub fn leaf(id: FieldId, offset: usize, len: usize, value: Value) -> Self {
        Field {
            id,
            offset: offset as u32,
            len: len as u32,
            buffer: FRAME,
            value,
            note: None,
            children: Vec::new(),
        }
    }

    /// A group starting at `offset`; its length is set by [`Field::close`].
    pub fn group(id: FieldId, offset: usize, value: Value) -> Self {
        Field::leaf(id, offset, 0, value)
    }

    /// Sets a group's length so that it ends at `end`.
    pub fn close(&mut self, end: usize) {
        self.len = (end as u32).saturating_sub(self.offset);
    }

    /// The registry's dotted name of this field, e.g. `produce.response.throttle_time_ms`.
    pub fn name(&self) -> &'static str {
        registry::name(self.id)
    }

    /// The part this field plays in summaries and checks.
    pub fn role(&self) -> registry::Role {
        registry::role(self.id)
    }

    /// The last segment of the name, as shown in a tree.
    pub fn short_name(&self) -> &'static str {
        registry::short_name(self.id)
    }

    /// Depth-first search for the first field with this registry name (none for a name the
    /// registry does not have).
    pub fn find(&self, name: &str) -> Option<&Field> {
        self.find_id(registry::catalog().id(name)?)
    }

    /// Depth-first search for the first field with this registry id.
    pub fn find_id(&self, id: FieldId) -> Option<&Field> {
        if self.id == id {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find_id(id))
    }

    /// All fields with this registry name, depth first.
    pub fn find_all<'a>(&'a self, name: &str, out: &mut Vec<&'a Field>) {
        if let Some(id) = registry::catalog().id(name) {
            self.find_all_id(id, out);
        }
    }

    fn find_all_id<'a>(&'a self, id: FieldId, out: &mut Vec<&'a Field>) {
        if self.id == id {
            out.push(self);
        }
        for c in &self.children {
            c.find_all_id(id, out);
        }
    }

    /// The integer value, if this field holds one.
    pub fn as_int(&self) -> Option<i64> {
        match self.value {
            Value::Int(v) => Some(v),
            _ => None,
        }
    }

    /// Visits every field, depth first, with its depth.
    pub fn walk<'a>(&'a self, depth: usize, f: &mut impl FnMut(&'a Field, usize)) {
        f(self, depth);
        for c in &self.children {
            c.walk(depth + 1, f);
        }
    }

    /// Leaves (fields without children) that lie in the frame buffer, in order.
    pub fn frame_leaves(&self) -> Vec<&Field> {
        let mut out = Vec::new();
        self.walk(0, &mut |f, _| {
            if f.buffer == FRAME && f.children.iter().all(|c| c.buffer != FRAME) {
                out.push(f);
            }
        });
        out
    }

    /// The innermost field in the frame buffer whose span holds byte `pos`.
    pub fn field_at(&self, pos: usize) -> Option<&Field> {
        let inside = |f: &Field| {
            f.buffer == FRAME && (f.offset as usize) <= pos && pos < (f.offset + f.len) as usize
        };
        if !inside(self) {
            return None;
        }
        let mut cur = self;
        while let Some(next) = cur.children.iter().find(|c| inside(c)) {
            cur = next;
        }
        Some(cur)
    }
}

/// Where and why decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecodeError {
    /// Byte offset in the frame where the failing field starts or the data ran out.
    pub offset: usize,
    /// Dotted registry path of the field being decoded.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at byte {} ({})",
            self.message, self.offset, self.path
        )
    }
}

impl std::error::Error for DecodeError {}

/// A frame decoded as far as it would go.
#[derive(Debug, Clone, Serialize)]
pub struct Dissection {
    /// The tree: fields decoded so far, even when decoding failed.
    pub root: Field,
    /// Set when decoding stopped before the end of the frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<DecodeError>,
    /// Buffers made while decoding (decompressed record batches); index = BufferId - 1.
    #[serde(skip)]
    pub buffers: Vec<Vec<u8>>,
}

impl Dissection {
    /// The bytes a field's span points into.
    pub fn buffer<'a>(&'a self, frame: &'a [u8], id: BufferId) -> &'a [u8] {
        if id == FRAME {
            frame
        } else {
            self.buffers
                .get(id as usize - 1)
                .map(Vec::as_slice)
                .unwrap_or(&[])
        }
    }
}

/// UTF-8 text when the bytes are printable text, else hex (both cut at 64 characters).
pub fn bytes_text(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.is_empty() && s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t') {
            let shown: String = s.chars().take(64).collect();
            let more = if s.chars().count() > 64 { "…" } else { "" };
            return format!("{shown:?}{more} ({} bytes)", bytes.len());
        }
    }
    let hex: String = bytes.iter().take(32).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 32 { "…" } else { "" };
    format!("0x{hex}{more} ({} bytes)", bytes.len())
}
