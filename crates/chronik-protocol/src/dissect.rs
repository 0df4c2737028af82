//! The dissector: decodes any request or response frame into a [`Field`] tree whose leaves tile
//! the frame byte for byte, walking the schema table. Every count and length is checked against
//! the bytes that remain before anything is allocated, so hostile input costs at most its own size.
//!
//! A frame here is the whole thing on the wire, including its 4-byte size prefix.

use super::records;
use super::registry::{self, FieldId};
use super::schema::{ApiSchema, FieldDef, FieldType};
use super::tree::{DecodeError, Dissection, Field, Value, FRAME};
use crate::fid;

/// How much of a frame one dissection expands into fields. Decoding always reads the whole
/// frame (so errors are found either way); the limits only bound the tree kept, whatever the
/// frame claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most array elements and tagged fields kept, counted with their direct children; past
    /// it, elements are checked and summarised as one `kafka.elided` leaf.
    pub max_fields: usize,
    /// Expand record sets into batches and records (else one leaf).
    pub records: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::FULL
    }
}

/// The note on the one leaf that stands for a record set a dissection did not expand
/// ([`Limits::records`] off): its bytes are the record set as sent.
pub const RECORDS_NOT_EXPANDED: &str = "record set not expanded in this dissection";

impl Limits {
    /// Everything: every field up to 200 000 array elements, record sets down to each record.
    pub const FULL: Limits = Limits {
        max_fields: 200_000,
        records: true,
    };

    /// [`Limits::FULL`] without expanding record sets: every field of the API's schema, each
    /// record set one leaf (noted [`RECORDS_NOT_EXPANDED`]). What a view of live traffic
    /// needs (topics, partitions, error codes, what is wrong with a frame) at a cost that does
    /// not grow with the records carried.
    pub const WITHOUT_RECORDS: Limits = Limits {
        records: false,
        ..Limits::FULL
    };

    /// Only check that the frame decodes (what the broker runs on every request before
    /// anything else reads it): headers and top-level fields, no array elements, no
    /// decompression.
    pub const CHECK_ONLY: Limits = Limits {
        max_fields: 0,
        records: false,
    };
}

/// The note on a null field in a version where the field is not nullable.
pub const NOT_NULLABLE: &str = "null in a version where it is not nullable";

/// A way to read a frame other than the spec's: what the lint tries on a frame that does not
/// decode as the spec says, to name what the sender got wrong. The default is the spec's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// Read this field at this index among its struct's fields (the ones on the wire at that
    /// version, tagged fields aside) instead of its own place.
    pub moved: Option<(FieldId, usize)>,
    /// Read the struct holding this field as if it were not there.
    pub omitted: Option<FieldId>,
    /// Read the header in this header version instead of the one the API version implies.
    pub header_version: Option<i16>,
    /// Read a request's body in this version instead of its header's (responses take their
    /// version as an argument).
    pub body_version: Option<i16>,
}

/// Decodes a request frame.
pub fn dissect_request(frame: &[u8]) -> Dissection {
    dissect_request_with(frame, Limits::default())
}

/// Decodes a request frame within the given limits.
pub fn dissect_request_with(frame: &[u8], limits: Limits) -> Dissection {
    dissect_request_as(frame, Layout::default(), limits)
}

/// Decodes a request frame read with another [`Layout`].
pub fn dissect_request_as(frame: &[u8], layout: Layout, limits: Limits) -> Dissection {
    let mut d = Decoder::new(frame, limits);
    d.layout = layout;
    let mut root = Field::group(fid!("kafka.request"), 0, Value::Group);
    let result = d.request(&mut root);
    d.finish(root, result)
}

/// Decodes a response frame, given the api key and version of the request it answers.
pub fn dissect_response(frame: &[u8], api_key: i16, api_version: i16) -> Dissection {
    dissect_response_with(frame, api_key, api_version, Limits::default())
}

/// Decodes a response frame within the given limits.
pub fn dissect_response_with(
    frame: &[u8],
    api_key: i16,
    api_version: i16,
    limits: Limits,
) -> Dissection {
    dissect_response_as(frame, api_key, api_version, Layout::default(), limits)
}

/// Decodes a response frame read with another [`Layout`].
pub fn dissect_response_as(
    frame: &[u8],
    api_key: i16,
    api_version: i16,
    layout: Layout,
    limits: Limits,
) -> Dissection {
    let mut d = Decoder::new(frame, limits);
    d.layout = layout;
    let mut root = Field::group(fid!("kafka.response"), 0, Value::Group);
    let result = d.response(&mut root, api_key, api_version);
    d.finish(root, result)
}

/// The request header as read from the start of a frame (without the size prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

/// Reads the fixed part of a request header from a frame *body* (after the size prefix); `None`
/// when fewer than 8 bytes.
pub fn peek_request_header(body: &[u8]) -> Option<(i16, i16, i32)> {
    if body.len() < 8 {
        return None;
    }
    Some((
        i16::from_be_bytes([body[0], body[1]]),
        i16::from_be_bytes([body[2], body[3]]),
        i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
    ))
}

type Res<T> = Result<T, DecodeError>;

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    /// End of the frame as its size prefix says (never beyond the buffer).
    end: usize,
    /// Path of registry names being decoded, for error messages.
    path: Vec<FieldId>,
    buffers: Vec<Vec<u8>>,
    limits: Limits,
    /// Array elements and tagged fields that may still be kept (see [`Limits::max_fields`]).
    fields_left: usize,
    /// Batches, records and messages that may still be expanded.
    entries_left: usize,
    layout: Layout,
}

/// Array elements or tagged fields decoded but not kept: where they start and how many.
#[derive(Default)]
struct Elided {
    start: Option<usize>,
    count: usize,
}

impl<'a> Decoder<'a> {
    fn new(buf: &'a [u8], limits: Limits) -> Self {
        Decoder {
            buf,
            pos: 0,
            end: buf.len(),
            path: Vec::new(),
            buffers: Vec::new(),
            limits,
            fields_left: limits.max_fields,
            entries_left: records::MAX_ENTRIES_PER_DISSECTION,
            layout: Layout::default(),
        }
    }

    fn finish(self, mut root: Field, result: Res<()>) -> Dissection {
        root.close(self.pos.max(root.offset as usize));
        let error = result.err();
        Dissection {
            root,
            error,
            buffers: self.buffers,
        }
    }

    fn fail<T>(&self, at: usize, message: impl Into<String>) -> Res<T> {
        let path = self
            .path
            .last()
            .map(|id| registry::name(*id).to_string())
            .unwrap_or_else(|| "kafka".into());
        Err(DecodeError {
            offset: at,
            path,
            message: message.into(),
        })
    }

    fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &str) -> Res<&'a [u8]> {
        if self.remaining() < n {
            return self.fail(
                self.pos,
                format!(
                    "{what} needs {n} bytes, {} remain in the frame",
                    self.remaining()
                ),
            );
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// [`Decoder::take`] for the data of a length-prefixed field: a shortfall is reported at
    /// the field's start (its length prefix), where the wrong number is.
    fn take_at(&mut self, n: usize, what: &str, field_start: usize) -> Res<&'a [u8]> {
        self.take(n, what).map_err(|mut e| {
            e.offset = field_start;
            e
        })
    }

    fn i8(&mut self) -> Res<i8> {
        Ok(self.take(1, "int8")?[0] as i8)
    }
    fn i16(&mut self) -> Res<i16> {
        let b = self.take(2, "int16")?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Res<i32> {
        let b = self.take(4, "int32")?;
        Ok(i32::from_be_bytes(b.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Res<i64> {
        let b = self.take(8, "int64")?;
        Ok(i64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    fn uvarint(&mut self) -> Res<u32> {
        let start = self.pos;
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.take(1, "unsigned varint")?[0];
            v |= ((b & 0x7f) as u32) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.fail(start, "unsigned varint longer than 5 bytes")
    }

    /// Reads an int32 or compact length for an array/bytes/string; `None` for null.
    fn length(&mut self, compact: bool, short: bool) -> Res<Option<usize>> {
        let at = self.pos;
        let n: i64 = if compact {
            self.uvarint()? as i64 - 1
        } else if short {
            self.i16()? as i64
        } else {
            self.i32()? as i64
        };
        if n == -1 {
            return Ok(None);
        }
        if n < 0 {
            return self.fail(at, format!("negative length {n}"));
        }
        Ok(Some(n as usize))
    }

    fn request(&mut self, root: &mut Field) -> Res<()> {
        let body_end = self.size_prefix(root)?;
        let start = self.pos;
        let mut header = Field::group(fid!("kafka.request_header"), start, Value::Group);
        let r = self.request_header(&mut header);
        header.close(self.pos);
        root.children.push(header);
        let (key, version) = r?;
        let version = self.layout.body_version.unwrap_or(version);
        self.body(root, key, version, false, body_end)
    }

    fn request_header(&mut self, header: &mut Field) -> Res<(i16, i16)> {
        self.path.push(fid!("kafka.request_header"));
        let key = self.int_leaf(header, fid!("kafka.api_key"), 2)? as i16;
        let version = self.int_leaf(header, fid!("kafka.api_version"), 2)? as i16;
        self.int_leaf(header, fid!("kafka.correlation_id"), 4)?;
        // client_id is a nullable int16-length string even in header v2.
        self.string_leaf(header, fid!("kafka.client_id"), false, true)?;
        if let Some(api) = registry::api(key) {
            let header_version =
                (self.layout.header_version).unwrap_or_else(|| api.request_header_version(version));
            if header_version >= 2 {
                self.tagged_fields(header, &[], version)?;
            }
        }
        self.path.pop();
        Ok((key, version))
    }

    fn response(&mut self, root: &mut Field, key: i16, version: i16) -> Res<()> {
        let body_end = self.size_prefix(root)?;
        let start = self.pos;
        let mut header = Field::group(fid!("kafka.response_header"), start, Value::Group);
        self.path.push(fid!("kafka.response_header"));
        let r = self
            .int_leaf(&mut header, fid!("kafka.correlation_id"), 4)
            .and_then(|_| match registry::api(key) {
                Some(api)
                    if (self.layout.header_version)
                        .unwrap_or_else(|| api.response_header_version(version))
                        >= 1 =>
                {
                    self.tagged_fields(&mut header, &[], version)
                }
                _ => Ok(()),
            });
        self.path.pop();
        header.close(self.pos);
        root.children.push(header);
        r?;
        self.body(root, key, version, true, body_end)
    }

    /// Reads the size prefix; returns where the body ends.
    fn size_prefix(&mut self, root: &mut Field) -> Res<usize> {
        self.path.push(fid!("kafka.length"));
        let n = self.int_leaf(root, fid!("kafka.length"), 4)?;
        self.path.pop();
        if n < 0 {
            return self.fail(0, format!("negative frame size {n}"));
        }
        let declared = 4 + n as usize;
        if declared > self.buf.len() {
            // Decode what is there; the shortfall shows as an error where data runs out.
            self.end = self.buf.len();
        } else {
            self.end = declared;
        }
        Ok(declared)
    }

    fn body(
        &mut self,
        root: &mut Field,
        key: i16,
        version: i16,
        response: bool,
        declared_end: usize,
    ) -> Res<()> {
        let api = registry::api(key);
        // Kafka answers an ApiVersions request of a version it does not know in v0 (with
        // UNSUPPORTED_VERSION), so that any client can read the versions it does support.
        let asked = version;
        let v0_answer = response
            && key == crate::api_key::API_VERSIONS
            && api.is_some_and(|a| version > a.versions.max);
        let version = if v0_answer { 0 } else { version };
        let known = api.filter(|a| a.versions.contains(version));
        let Some(api) = known else {
            let note = match api {
                Some(a) => format!(
                    "{} v{version} is outside the schema's versions {}-{}; body shown raw",
                    a.name, a.versions.min, a.versions.max
                ),
                None => format!("API key {key} has no schema; body shown raw"),
            };
            let mut raw = self.raw_leaf(fid!("kafka.body"), self.remaining());
            raw.note = Some(note);
            root.children.push(raw);
            return self.check_end(declared_end);
        };
        let fields = if response {
            &api.response
        } else {
            &api.request
        };
        let body_id = api.body_ids[usize::from(response)];
        let mut body = Field::group(body_id, self.pos, Value::Group);
        if v0_answer {
            body.note = Some(format!(
                "read as v0: Kafka answers an ApiVersions v{asked} it does not support in v0"
            ));
        }
        self.path.push(body_id);
        let r = self.struct_fields(&mut body, fields, api, version);
        self.path.pop();
        body.close(self.pos);
        root.children.push(body);
        r?;
        if self.remaining() > 0 {
            let n = self.remaining();
            let mut t = self.raw_leaf(fid!("kafka.trailing_bytes"), n);
            t.note = Some(format!("{n} bytes after the end of the body"));
            root.children.push(t);
        }
        self.check_end(declared_end)
    }

    fn check_end(&self, declared_end: usize) -> Res<()> {
        if declared_end > self.buf.len() {
            return self.fail(
                self.buf.len(),
                format!(
                    "frame truncated: size prefix says {} bytes, {} present",
                    declared_end,
                    self.buf.len()
                ),
            );
        }
        Ok(())
    }

    fn struct_fields(
        &mut self,
        parent: &mut Field,
        fields: &[FieldDef],
        api: &ApiSchema,
        version: i16,
    ) -> Res<()> {
        let flexible = api.is_flexible(version);
        // Room for every field the schema has at this level (and the tagged-field section), so
        // the children are not moved as they are added.
        parent
            .children
            .reserve(fields.len() + usize::from(flexible));
        let on_wire = |f: &&FieldDef| f.versions.contains(version) && f.tag.is_none();
        let layout = self.layout;
        let tweaked =
            |f: &FieldDef| Some(f.id) == layout.omitted || Some(f.id) == layout.moved.map(|m| m.0);
        if fields.iter().filter(on_wire).any(tweaked) {
            let mut order: Vec<&FieldDef> = fields.iter().filter(on_wire).collect();
            if let Some(i) = order.iter().position(|f| Some(f.id) == layout.omitted) {
                order.remove(i);
            }
            if let Some((id, to)) = layout.moved {
                if let Some(i) = order.iter().position(|f| f.id == id) {
                    let f = order.remove(i);
                    order.insert(to.min(order.len()), f);
                }
            }
            for f in order {
                self.field(parent, f, api, version, flexible)?;
            }
        } else {
            for f in fields.iter().filter(on_wire) {
                self.field(parent, f, api, version, flexible)?;
            }
        }
        if flexible {
            let tagged: Vec<&FieldDef> = fields
                .iter()
                .filter(|f| f.tag.is_some() && f.versions.contains(version))
                .collect();
            self.tagged_fields_with(parent, &tagged, api, version)?;
        }
        Ok(())
    }

    fn field(
        &mut self,
        parent: &mut Field,
        f: &FieldDef,
        api: &ApiSchema,
        version: i16,
        flexible: bool,
    ) -> Res<()> {
        self.path.push(f.id);
        let start = self.pos;
        let nullable = f.nullable.contains(version);
        let r = match &f.ty {
            FieldType::Struct if nullable => {
                // A nullable struct: one presence byte (negative: null), then the struct.
                let mut node = Field::group(f.id, start, Value::Group);
                let r = match self.i8() {
                    Ok(marker) => {
                        node.children.push(Field::leaf(
                            f.count_id,
                            start,
                            self.pos - start,
                            Value::Int(i64::from(marker)),
                        ));
                        if marker < 0 {
                            node.value = Value::Null;
                            Ok(())
                        } else {
                            self.struct_fields(&mut node, &f.children, api, version)
                        }
                    }
                    Err(e) => Err(e),
                };
                node.close(self.pos);
                parent.children.push(node);
                r
            }
            FieldType::Struct => {
                let mut node = Field::group(f.id, start, Value::Group);
                let r = self.struct_fields(&mut node, &f.children, api, version);
                node.close(self.pos);
                parent.children.push(node);
                r
            }
            FieldType::Array(inner) => {
                let mut node = Field::group(f.id, start, Value::Group);
                let r = self.array(&mut node, f, inner, api, version, flexible, nullable);
                node.close(self.pos);
                parent.children.push(node);
                r
            }
            FieldType::Records => self.records(parent, f, flexible, nullable),
            ty => self.primitive(parent, f.id, ty, flexible, nullable),
        };
        self.path.pop();
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn array(
        &mut self,
        node: &mut Field,
        f: &FieldDef,
        inner: &FieldType,
        api: &ApiSchema,
        version: i16,
        flexible: bool,
        nullable: bool,
    ) -> Res<()> {
        let at = self.pos;
        let n = self.length(flexible, false)?;
        // The count and the first elements; a count is the sender's word, so no more than that.
        node.children.reserve(1 + n.unwrap_or(0).min(16));
        node.children.push(Field::leaf(
            f.count_id,
            at,
            self.pos - at,
            Value::Int(n.map(|n| n as i64).unwrap_or(-1)),
        ));
        let Some(n) = n else {
            node.value = Value::Null;
            if !nullable {
                node.note = Some(NOT_NULLABLE.into());
            }
            return Ok(());
        };
        // Every element takes at least one byte on the wire, except structs whose fields are all
        // absent in this version; either way the count cannot exceed the bytes left.
        if n > self.remaining() {
            return self.fail(
                at,
                format!(
                    "array count {n} exceeds the {} bytes left in the frame",
                    self.remaining()
                ),
            );
        }
        let mut elided = Elided::default();
        for i in 0..n {
            let start = self.pos;
            let (el, r) = if *inner == FieldType::Struct {
                let mut el = Field::group(f.id, start, Value::Element(i as u32));
                let r = self.struct_fields(&mut el, &f.children, api, version);
                el.close(self.pos);
                (Some(el), r)
            } else {
                let mut tmp = Field::group(f.id, start, Value::Group);
                let r = self.primitive(&mut tmp, f.id, inner, flexible, false);
                (tmp.children.pop(), r)
            };
            self.keep_or_elide(node, el, start, &mut elided);
            if r.is_err() {
                self.push_elided(node, elided);
                return r;
            }
        }
        self.push_elided(node, elided);
        Ok(())
    }

    /// Keeps a decoded array element or tagged field in the tree while the field budget lasts;
    /// after that the element was still decoded (so the frame is still checked) but only its
    /// span is remembered.
    fn keep_or_elide(
        &mut self,
        parent: &mut Field,
        el: Option<Field>,
        start: usize,
        elided: &mut Elided,
    ) {
        match el {
            Some(el) if self.fields_left > 0 => {
                self.fields_left = self.fields_left.saturating_sub(1 + el.children.len());
                parent.children.push(el);
            }
            _ => {
                elided.start.get_or_insert(start);
                elided.count += 1;
            }
        }
    }

    /// One leaf covering the elements not kept, so the leaves still tile the frame.
    fn push_elided(&mut self, parent: &mut Field, elided: Elided) {
        let Some(start) = elided.start else { return };
        let mut leaf = Field::leaf(
            fid!("kafka.elided"),
            start,
            self.pos - start,
            Value::Bytes {
                start: start as u32,
                len: (self.pos - start) as u32,
            },
        );
        leaf.note = Some(format!(
            "{} more elements decoded but not kept: this dissection keeps at most {} fields",
            elided.count, self.limits.max_fields
        ));
        parent.children.push(leaf);
    }

    fn records(
        &mut self,
        parent: &mut Field,
        f: &FieldDef,
        flexible: bool,
        nullable: bool,
    ) -> Res<()> {
        let start = self.pos;
        let n = self.length(flexible, false)?;
        let mut node = Field::group(f.id, start, Value::Group);
        node.children.push(Field::leaf(
            fid!("record_set.size"),
            start,
            self.pos - start,
            Value::Int(n.map(|n| n as i64).unwrap_or(-1)),
        ));
        match n {
            None => {
                node.value = Value::Null;
                if !nullable {
                    node.note = Some(NOT_NULLABLE.into());
                }
            }
            Some(n) => {
                let data_start = self.pos;
                self.take_at(n, "records", start)?;
                if self.limits.records {
                    records::dissect_record_set_limited(
                        self.buf,
                        data_start,
                        self.pos,
                        FRAME,
                        &mut self.buffers,
                        &mut node.children,
                        &mut self.entries_left,
                    );
                } else if n > 0 {
                    let mut raw = Field::leaf(
                        fid!("record_set.undecoded"),
                        data_start,
                        n,
                        Value::Bytes {
                            start: data_start as u32,
                            len: n as u32,
                        },
                    );
                    raw.note = Some(RECORDS_NOT_EXPANDED.into());
                    node.children.push(raw);
                }
            }
        }
        node.close(self.pos);
        parent.children.push(node);
        Ok(())
    }

    fn primitive(
        &mut self,
        parent: &mut Field,
        id: FieldId,
        ty: &FieldType,
        flexible: bool,
        nullable: bool,
    ) -> Res<()> {
        let start = self.pos;
        let value = match ty {
            FieldType::Bool => match self.i8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return self.fail(start, format!("boolean byte {b} is neither 0 nor 1")),
            },
            FieldType::Int8 => Value::Int(self.i8()? as i64),
            FieldType::Int16 => Value::Int(self.i16()? as i64),
            FieldType::Int32 => Value::Int(self.i32()? as i64),
            FieldType::Int64 => Value::Int(self.i64()?),
            FieldType::Uint16 => Value::Int(self.i16()? as u16 as i64),
            FieldType::Float64 => Value::Float(f64::from_bits(self.i64()? as u64)),
            FieldType::Uuid => {
                let b = self.take(16, "uuid")?;
                Value::Uuid(uuid::Uuid::from_slice(b).expect("16 bytes").to_string())
            }
            FieldType::String => {
                return self.string_leaf(parent, id, flexible, nullable).map(|_| ())
            }
            FieldType::Bytes => match self.length(flexible, false)? {
                None => Value::Null,
                Some(n) => {
                    let data = self.pos;
                    self.take_at(n, "bytes", start)?;
                    Value::Bytes {
                        start: data as u32,
                        len: n as u32,
                    }
                }
            },
            FieldType::Records | FieldType::Struct | FieldType::Array(_) => {
                unreachable!("composite types are decoded by field()")
            }
            // The schema parser never produces these: only the registry's fixed fields use
            // them, decoded by the record-batch and framing code.
            FieldType::Uint32 | FieldType::Varint | FieldType::Uvarint | FieldType::Group => {
                return self.fail(start, format!("{} is not an API schema type", ty.label()))
            }
        };
        let mut leaf = Field::leaf(id, start, self.pos - start, value);
        if leaf.value == Value::Null && !nullable {
            leaf.note = Some(NOT_NULLABLE.into());
        }
        parent.children.push(leaf);
        Ok(())
    }

    fn string_leaf(
        &mut self,
        parent: &mut Field,
        id: FieldId,
        compact: bool,
        nullable: bool,
    ) -> Res<()> {
        let start = self.pos;
        let value = match self.length(compact, true)? {
            None => Value::Null,
            Some(n) => {
                Value::Str(String::from_utf8_lossy(self.take_at(n, "string", start)?).into_owned())
            }
        };
        let mut leaf = Field::leaf(id, start, self.pos - start, value);
        if leaf.value == Value::Null && !nullable {
            leaf.note = Some(NOT_NULLABLE.into());
        }
        parent.children.push(leaf);
        Ok(())
    }

    fn int_leaf(&mut self, parent: &mut Field, id: FieldId, width: usize) -> Res<i64> {
        let start = self.pos;
        let v = match width {
            2 => self.i16()? as i64,
            _ => self.i32()? as i64,
        };
        parent
            .children
            .push(Field::leaf(id, start, width, Value::Int(v)));
        Ok(v)
    }

    fn raw_leaf(&mut self, id: FieldId, n: usize) -> Field {
        let start = self.pos;
        self.pos += n;
        Field::leaf(
            id,
            start,
            n,
            Value::Bytes {
                start: start as u32,
                len: n as u32,
            },
        )
    }

    /// A tagged-field section with no known tags (headers).
    fn tagged_fields(&mut self, parent: &mut Field, known: &[&FieldDef], version: i16) -> Res<()> {
        let api = registry::api(18).expect("ApiVersions schema");
        self.tagged_fields_with(parent, known, api, version)
    }

    fn tagged_fields_with(
        &mut self,
        parent: &mut Field,
        known: &[&FieldDef],
        api: &ApiSchema,
        version: i16,
    ) -> Res<()> {
        let start = self.pos;
        let mut node = Field::group(fid!("kafka.tagged_fields"), start, Value::Group);
        let r = self.tagged_body(&mut node, known, api, version);
        node.close(self.pos);
        parent.children.push(node);
        r
    }

    fn tagged_body(
        &mut self,
        node: &mut Field,
        known: &[&FieldDef],
        api: &ApiSchema,
        version: i16,
    ) -> Res<()> {
        let at = self.pos;
        let count = self.uvarint()? as usize;
        node.children.push(Field::leaf(
            fid!("kafka.tagged_fields.count"),
            at,
            self.pos - at,
            Value::Int(count as i64),
        ));
        if count > self.remaining() {
            return self.fail(
                at,
                format!(
                    "tagged field count {count} exceeds the {} bytes left",
                    self.remaining()
                ),
            );
        }
        let mut last_tag: Option<u32> = None;
        let mut elided = Elided::default();
        for _ in 0..count {
            let fstart = self.pos;
            let mut entry = Field::group(fid!("kafka.tagged_field"), fstart, Value::Group);
            let r = self.tagged_entry(&mut entry, known, api, version, &mut last_tag);
            entry.close(self.pos);
            self.keep_or_elide(node, Some(entry), fstart, &mut elided);
            if r.is_err() {
                self.push_elided(node, elided);
                return r;
            }
        }
        self.push_elided(node, elided);
        Ok(())
    }

    /// One entry of a tagged-field section: tag, size, and the field or its raw data.
    fn tagged_entry(
        &mut self,
        entry: &mut Field,
        known: &[&FieldDef],
        api: &ApiSchema,
        version: i16,
        last_tag: &mut Option<u32>,
    ) -> Res<()> {
        let fstart = self.pos;
        let tag = self.uvarint()?;
        entry.children.push(Field::leaf(
            fid!("kafka.tagged_field.tag"),
            fstart,
            self.pos - fstart,
            Value::Int(tag as i64),
        ));
        if last_tag.is_some_and(|t| tag <= t) {
            return self.fail(fstart, format!("tag {tag} out of ascending order"));
        }
        *last_tag = Some(tag);
        let sstart = self.pos;
        let size = self.uvarint()? as usize;
        entry.children.push(Field::leaf(
            fid!("kafka.tagged_field.size"),
            sstart,
            self.pos - sstart,
            Value::Int(size as i64),
        ));
        if size > self.remaining() {
            return self.fail(
                sstart,
                format!(
                    "tagged field size {size} exceeds the {} bytes left",
                    self.remaining()
                ),
            );
        }
        let data_start = self.pos;
        let data_end = data_start + size;
        match known.iter().find(|f| f.tag == Some(tag)) {
            Some(def) => {
                // Decode the known field inside a window of exactly `size` bytes.
                let saved_end = self.end;
                self.end = data_end;
                let r = self.field(entry, def, api, version, true);
                self.end = saved_end;
                r?;
                if self.pos != data_end {
                    let n = data_end - self.pos;
                    let mut t = self.raw_leaf(fid!("kafka.trailing_bytes"), n);
                    t.note = Some(format!("{n} bytes left inside tagged field {tag}"));
                    entry.children.push(t);
                }
            }
            None => {
                let mut raw = self.raw_leaf(fid!("kafka.tagged_field.data"), size);
                raw.note = Some(format!("unknown tag {tag}"));
                entry.children.push(raw);
            }
        }
        Ok(())
    }
}

/// What stopped a dissection, as the lint names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The size prefix promises more bytes than the frame has.
    Truncated,
    /// The frame ran out in the middle of a fixed-size field (a field missing, say).
    ShortRead,
    /// A length below -1.
    NegativeLength,
    /// A string, bytes, records or tagged field whose length runs past the frame.
    LengthOverrun,
    /// An array or tagged-field count larger than the bytes left could hold.
    CountOverrun,
    /// Tagged fields not in ascending tag order.
    TagOrder,
    /// A value no field of that type may hold (a boolean byte of 2, a 6-byte varint).
    BadValue,
}

/// The kind of an error this dissector reported (from the messages [`Decoder::fail`] writes).
pub fn fault_of(e: &DecodeError) -> Fault {
    let m = e.message.as_str();
    if m.starts_with("frame truncated") {
        Fault::Truncated
    } else if m.starts_with("negative") {
        Fault::NegativeLength
    } else if m.contains("out of ascending order") {
        Fault::TagOrder
    } else if m.starts_with("array count") || m.starts_with("tagged field count") {
        Fault::CountOverrun
    } else if [
        "string needs",
        "bytes needs",
        "records needs",
        "tagged field size",
    ]
    .iter()
    .any(|p| m.starts_with(p))
    {
        Fault::LengthOverrun
    } else if m.contains(" needs ") {
        Fault::ShortRead
    } else {
        Fault::BadValue
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiVersionsResponse;

    use super::*;
    use crate::test_frames::response_frame;

    /// An ApiVersions response to a version the broker does not know is Kafka's v0 answer with
    /// UNSUPPORTED_VERSION: read as v0, its error code shows, and the body says why.
    #[test]
    fn an_api_versions_answer_to_an_unknown_version_reads_as_v0() {
        let frame = response_frame(0, 7, &ApiVersionsResponse::default().with_error_code(35));
        let d = dissect_response(&frame, crate::api_key::API_VERSIONS, 99);
        assert!(d.error.is_none(), "{:?}", d.error);
        let code = d
            .root
            .find("api_versions.response.error_code")
            .expect("error_code");
        assert_eq!(code.as_int(), Some(35));
        let body = d.root.find("api_versions.response").expect("the v0 body");
        assert!(
            body.note.as_deref().unwrap_or("").contains("read as v0"),
            "{body:?}"
        );
        // A known version reads as itself.
        let v3 = dissect_response(&frame, crate::api_key::API_VERSIONS, 3);
        assert!(v3
            .root
            .find("api_versions.response")
            .unwrap()
            .note
            .is_none());
    }
}
