//! The schema table run the other way: a request or response built from named field values,
//! as a person writes them in a scenario (`{ topics = [{ name = "orders" }] }`), encoded at one
//! version with the layout the dissector reads. Fields left out take their zero value (0,
//! false, an empty string, an empty array; a null where only null makes sense: records); a
//! name the layout does not have at that version is an error that lists the names it has.

use std::collections::BTreeMap;

use crate::registry;
use crate::schema::{ApiSchema, FieldDef, FieldType};

/// A value as written: the shape of a TOML or JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Raw bytes (a BYTES or records field).
    Bytes(Vec<u8>),
    List(Vec<Input>),
    Map(BTreeMap<String, Input>),
}

/// Why a body could not be built: where (a dotted path of field names) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for EncodeError {}

type Res<T> = Result<T, EncodeError>;

/// A request frame (size prefix, header, body) of API `key` at `version`, built from `fields`
/// (a map of the body's top-level field names).
pub fn request(
    key: i16,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    fields: &Input,
) -> Result<Vec<u8>, EncodeError> {
    let api = api_at(key, version)?;
    let mut out = Vec::new();
    out.extend_from_slice(&key.to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    // client_id keeps its int16 length even in header v2.
    string(&mut out, client_id, false);
    if api.request_header_version(version) >= 2 {
        out.push(0); // no tagged fields in the header
    }
    let mut e = Encoder {
        api,
        version,
        flexible: api.is_flexible(version),
        path: Vec::new(),
    };
    e.fields(&mut out, &api.request, fields)?;
    Ok(frame(out))
}

/// A response frame (size prefix, header, body) of API `key` at `version`, built from `fields`.
pub fn response(
    key: i16,
    version: i16,
    correlation_id: i32,
    fields: &Input,
) -> Result<Vec<u8>, EncodeError> {
    let api = api_at(key, version)?;
    let mut out = Vec::new();
    out.extend_from_slice(&correlation_id.to_be_bytes());
    if api.response_header_version(version) >= 1 {
        out.push(0);
    }
    let mut e = Encoder {
        api,
        version,
        flexible: api.is_flexible(version),
        path: Vec::new(),
    };
    e.fields(&mut out, &api.response, fields)?;
    Ok(frame(out))
}

fn frame(body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn api_at(key: i16, version: i16) -> Res<&'static ApiSchema> {
    let fail = |message: String| EncodeError {
        path: String::new(),
        message,
    };
    let api = registry::api(key).ok_or_else(|| fail(format!("API key {key} has no schema")))?;
    if !api.versions.contains(version) {
        return Err(fail(format!(
            "{} has versions {}-{}, not {version}",
            api.name, api.versions.min, api.versions.max
        )));
    }
    Ok(api)
}

struct Encoder<'a> {
    api: &'a ApiSchema,
    version: i16,
    flexible: bool,
    /// Field names down to the one being written, for errors.
    path: Vec<String>,
}

impl Encoder<'_> {
    fn fail<T>(&self, message: impl Into<String>) -> Res<T> {
        Err(EncodeError {
            path: self.path.join("."),
            message: message.into(),
        })
    }

    /// The fields of a struct (or the body) from a map, then its tagged-field section.
    fn fields(&mut self, out: &mut Vec<u8>, defs: &[FieldDef], value: &Input) -> Res<()> {
        let empty = BTreeMap::new();
        let map = match value {
            Input::Map(m) => m,
            Input::Null => &empty,
            other => return self.fail(format!("expected a table of fields, got {}", what(other))),
        };
        let here: Vec<&FieldDef> = defs
            .iter()
            .filter(|f| f.versions.contains(self.version) && (f.tag.is_none() || self.flexible))
            .collect();
        for name in map.keys() {
            if !here.iter().any(|f| f.name == *name) {
                let known: Vec<&str> = here.iter().map(|f| f.name.as_str()).collect();
                let at = if self.path.is_empty() {
                    format!("{} v{}", self.api.name, self.version)
                } else {
                    self.path.join(".")
                };
                return Err(EncodeError {
                    path: self.path.join("."),
                    message: format!(
                        "{at} has no field {name:?}{} (it has: {})",
                        closest(name, &known)
                            .map(|c| format!("; did you mean {c:?}?"))
                            .unwrap_or_default(),
                        known.join(", ")
                    ),
                });
            }
        }
        for f in here.iter().filter(|f| f.tag.is_none()) {
            self.path.push(f.name.clone());
            self.field(out, f, map.get(&f.name).unwrap_or(&Input::Null))?;
            self.path.pop();
        }
        if self.flexible {
            let mut tagged: Vec<&&FieldDef> = here
                .iter()
                .filter(|f| f.tag.is_some() && map.contains_key(&f.name))
                .collect();
            tagged.sort_by_key(|f| f.tag);
            uvarint(out, tagged.len() as u64);
            for f in tagged {
                let mut data = Vec::new();
                self.path.push(f.name.clone());
                self.field(&mut data, f, &map[&f.name])?;
                self.path.pop();
                uvarint(out, u64::from(f.tag.unwrap_or(0)));
                uvarint(out, data.len() as u64);
                out.extend_from_slice(&data);
            }
        }
        Ok(())
    }

    fn field(&mut self, out: &mut Vec<u8>, f: &FieldDef, value: &Input) -> Res<()> {
        let nullable = f.nullable.contains(self.version);
        match &f.ty {
            FieldType::Struct if nullable => match value {
                Input::Null => {
                    out.push(0xff);
                    Ok(())
                }
                _ => {
                    out.push(1);
                    self.fields(out, &f.children, value)
                }
            },
            FieldType::Struct => self.fields(out, &f.children, value),
            FieldType::Array(inner) => {
                let items = match value {
                    Input::Null if nullable => {
                        length(out, None, self.flexible);
                        return Ok(());
                    }
                    Input::Null => {
                        length(out, Some(0), self.flexible);
                        return Ok(());
                    }
                    Input::List(items) => items,
                    other => return self.fail(format!("expected an array, got {}", what(other))),
                };
                length(out, Some(items.len()), self.flexible);
                for (i, item) in items.iter().enumerate() {
                    self.path.push(i.to_string());
                    let r = if **inner == FieldType::Struct {
                        self.fields(out, &f.children, item)
                    } else {
                        self.primitive(out, inner, item, false)
                    };
                    self.path.pop();
                    r?;
                }
                Ok(())
            }
            ty => self.primitive(out, ty, value, nullable),
        }
    }

    fn primitive(
        &mut self,
        out: &mut Vec<u8>,
        ty: &FieldType,
        value: &Input,
        nullable: bool,
    ) -> Res<()> {
        let int = |min: i64, max: i64| -> Res<i64> {
            match value {
                Input::Null => Ok(0),
                Input::Int(v) if (min..=max).contains(v) => Ok(*v),
                Input::Int(v) => self.fail(format!("{v} is out of range {min}..={max}")),
                Input::Str(s) => s
                    .parse::<i64>()
                    .ok()
                    .filter(|v| (min..=max).contains(v))
                    .map_or_else(|| self.fail(format!("{s:?} is not a number")), Ok),
                other => self.fail(format!("expected a number, got {}", what(other))),
            }
        };
        match ty {
            FieldType::Bool => match value {
                Input::Null => out.push(0),
                Input::Bool(b) => out.push(u8::from(*b)),
                other => return self.fail(format!("expected true or false, got {}", what(other))),
            },
            FieldType::Int8 => out.push(int(i8::MIN.into(), i8::MAX.into())? as i8 as u8),
            FieldType::Int16 => out
                .extend_from_slice(&(int(i16::MIN.into(), i16::MAX.into())? as i16).to_be_bytes()),
            FieldType::Uint16 => {
                out.extend_from_slice(&(int(0, u16::MAX.into())? as u16).to_be_bytes())
            }
            FieldType::Int32 => out
                .extend_from_slice(&(int(i32::MIN.into(), i32::MAX.into())? as i32).to_be_bytes()),
            FieldType::Uint32 => {
                out.extend_from_slice(&(int(0, u32::MAX.into())? as u32).to_be_bytes())
            }
            FieldType::Int64 => out.extend_from_slice(&int(i64::MIN, i64::MAX)?.to_be_bytes()),
            FieldType::Varint => varint(out, int(i32::MIN.into(), i32::MAX.into())?),
            FieldType::Uvarint => uvarint(out, int(0, u32::MAX.into())? as u64),
            FieldType::Float64 => {
                let x = match value {
                    Input::Null => 0.0,
                    Input::Float(x) => *x,
                    Input::Int(v) => *v as f64,
                    other => return self.fail(format!("expected a number, got {}", what(other))),
                };
                out.extend_from_slice(&x.to_bits().to_be_bytes());
            }
            FieldType::Uuid => {
                let bytes = match value {
                    Input::Null => [0u8; 16],
                    Input::Str(s) => match parse_uuid(s) {
                        Some(b) => b,
                        None => return self.fail(format!("{s:?} is not a UUID")),
                    },
                    other => return self.fail(format!("expected a UUID, got {}", what(other))),
                };
                out.extend_from_slice(&bytes);
            }
            FieldType::String => match value {
                Input::Null if nullable => string(out, None, self.flexible),
                Input::Null => string(out, Some(""), self.flexible),
                Input::Str(s) => string(out, Some(s), self.flexible),
                other => return self.fail(format!("expected a string, got {}", what(other))),
            },
            FieldType::Bytes | FieldType::Records => {
                let records = *ty == FieldType::Records;
                match value {
                    Input::Null if nullable || records => length(out, None, self.flexible),
                    Input::Null => length(out, Some(0), self.flexible),
                    Input::Bytes(b) => {
                        length(out, Some(b.len()), self.flexible);
                        out.extend_from_slice(b);
                    }
                    Input::Str(s) => {
                        length(out, Some(s.len()), self.flexible);
                        out.extend_from_slice(s.as_bytes());
                    }
                    other => return self.fail(format!("expected bytes, got {}", what(other))),
                }
            }
            FieldType::Struct | FieldType::Array(_) | FieldType::Group => {
                return self.fail(format!("{} cannot be a primitive", ty.label()))
            }
        }
        Ok(())
    }
}

fn what(v: &Input) -> &'static str {
    match v {
        Input::Null => "nothing",
        Input::Bool(_) => "a boolean",
        Input::Int(_) => "an integer",
        Input::Float(_) => "a float",
        Input::Str(_) => "a string",
        Input::Bytes(_) => "bytes",
        Input::List(_) => "an array",
        Input::Map(_) => "a table",
    }
}

/// The known name nearest to `name` (edit distance at most a third of its length), for "did
/// you mean".
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (distance(name, k), *k))
        .filter(|(d, _)| *d <= name.len().max(3) / 3)
        .min()
        .map(|(_, k)| k)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A zigzag varint (records' signed integers).
pub(crate) fn varint(out: &mut Vec<u8>, v: i64) {
    uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// An array, bytes or records length: int32 (-1 for null), or in flexible versions a compact
/// uvarint of length + 1 (0 for null).
fn length(out: &mut Vec<u8>, n: Option<usize>, compact: bool) {
    match (n, compact) {
        (None, false) => out.extend_from_slice(&(-1i32).to_be_bytes()),
        (Some(n), false) => out.extend_from_slice(&(n as i32).to_be_bytes()),
        (None, true) => out.push(0),
        (Some(n), true) => uvarint(out, n as u64 + 1),
    }
}

/// A string: int16 length (-1 for null), or compact in flexible versions.
fn string(out: &mut Vec<u8>, s: Option<&str>, compact: bool) {
    match (s, compact) {
        (None, false) => out.extend_from_slice(&(-1i16).to_be_bytes()),
        (Some(s), false) => {
            out.extend_from_slice(&(s.len() as i16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        (None, true) => out.push(0),
        (Some(s), true) => {
            uvarint(out, s.len() as u64 + 1);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_frames;
    use crate::{api_key, dissect_request, Value};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn map(pairs: &[(&str, Input)]) -> Input {
        Input::Map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn s(x: &str) -> Input {
        Input::Str(x.into())
    }

    #[test]
    fn the_same_bytes_as_kafka_protocol() {
        // ApiVersions v3 (flexible): client software name and version.
        let ours = request(
            api_key::API_VERSIONS,
            3,
            7,
            Some("scenario"),
            &map(&[
                ("client_software_name", s("chronik")),
                ("client_software_version", s("1.0")),
            ]),
        )
        .unwrap();
        let theirs = test_frames::request_frame(
            api_key::API_VERSIONS,
            3,
            7,
            Some("scenario"),
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("chronik"))
                .with_client_software_version(StrBytes::from_static_str("1.0")),
        );
        assert_eq!(ours, theirs);
        // Metadata v1 (array of structs) and v12 (flexible, nullable topic name, topic ids).
        for version in [1, 4, 9, 12] {
            let topics = Input::List(vec![map(&[("name", s("orders"))])]);
            let mut fields = vec![("topics", topics)];
            if version >= 4 {
                fields.push(("allow_auto_topic_creation", Input::Bool(true)));
            }
            let ours = request(api_key::METADATA, version, 2, None, &map(&fields)).unwrap();
            let theirs = test_frames::request_frame(
                api_key::METADATA,
                version,
                2,
                None,
                &MetadataRequest::default()
                    .with_topics(Some(vec![MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_static_str("orders"))))]))
                    .with_allow_auto_topic_creation(true),
            );
            assert_eq!(ours, theirs, "Metadata v{version}");
        }
    }

    #[test]
    fn what_is_encoded_dissects_to_the_values_given() {
        let frame = request(
            api_key::PRODUCE,
            7,
            9,
            Some("app"),
            &map(&[
                ("acks", Input::Int(-1)),
                ("timeout_ms", Input::Int(1500)),
                (
                    "topic_data",
                    Input::List(vec![map(&[
                        ("name", s("orders")),
                        (
                            "partition_data",
                            Input::List(vec![map(&[("index", Input::Int(3))])]),
                        ),
                    ])]),
                ),
            ]),
        )
        .unwrap();
        let d = dissect_request(&frame);
        assert!(d.error.is_none(), "{:?}", d.error);
        let value = |name: &str| d.root.find(name).map(|f| f.value.clone());
        assert_eq!(value("produce.request.acks"), Some(Value::Int(-1)));
        assert_eq!(value("produce.request.timeout_ms"), Some(Value::Int(1500)));
        assert_eq!(
            value("produce.request.topic_data.name"),
            Some(Value::Str("orders".into()))
        );
        assert_eq!(
            value("produce.request.topic_data.partition_data.index"),
            Some(Value::Int(3))
        );
        // Left out: transactional_id (nullable) is null, records null.
        assert_eq!(value("produce.request.transactional_id"), Some(Value::Null));
    }

    #[test]
    fn mistakes_name_the_field_and_what_it_has() {
        let e = request(api_key::METADATA, 1, 1, None, &map(&[("topic", s("x"))])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Metadata v1 has no field \"topic\"; did you mean \"topics\"? (it has: topics)"
        );
        let e = request(api_key::PRODUCE, 7, 1, None, &map(&[("acks", s("all"))])).unwrap_err();
        assert_eq!(e.to_string(), "acks: \"all\" is not a number");
        let e = request(
            api_key::PRODUCE,
            7,
            1,
            None,
            &map(&[("acks", Input::Int(1 << 20))]),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "acks: 1048576 is out of range -32768..=32767"
        );
        let e = request(api_key::PRODUCE, 99, 1, None, &Input::Null).unwrap_err();
        assert_eq!(e.to_string(), "Produce has versions 0-13, not 99");
    }
}
