//! The field registry: every field the dissector can produce, registered once with a dotted name
//! (`produce.response.throttle_time_ms`), a type and a description. Decoding, display filters and
//! export all name fields through it.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use super::schema::{self, ApiSchema, FieldDef, FieldType};

/// Index of a registered field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub u32);

/// One registered field.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Dotted name, unique.
    pub name: &'static str,
    /// Last segment of the name.
    pub short: &'static str,
    /// Wire type (`FieldType::label` names it: `int32`, `array`, `records`, …).
    pub kind: FieldType,
    pub description: String,
    /// What the summary line and the lint look for in this field, decided once from its name.
    pub role: Role,
}

/// The part a field plays in an exchange's summary and checks, so that a walk over a tree
/// compares one byte per field instead of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    None,
    /// A request's `group_id`.
    GroupId,
    /// A topic's name (`name` or `topic` inside something about topics).
    TopicName,
    /// One record of a batch, or one legacy message.
    Record,
    /// A `throttle_time_ms`.
    ThrottleTime,
    /// An `error_code`.
    ErrorCode,
}

impl Role {
    fn of(name: &str, short: &str) -> Role {
        if name.ends_with("request.group_id") {
            Role::GroupId
        } else if (short == "name" || short == "topic") && name.contains("topic") {
            Role::TopicName
        } else if name == "record" || name == "message" {
            Role::Record
        } else if short == "throttle_time_ms" {
            Role::ThrottleTime
        } else if short == "error_code" {
            Role::ErrorCode
        } else {
            Role::None
        }
    }
}

/// The registry and the schema table it was built from.
pub struct Catalog {
    pub entries: Vec<Entry>,
    by_name: HashMap<&'static str, FieldId>,
    pub apis: BTreeMap<i16, ApiSchema>,
}

/// Fields that do not come from an API schema: framing, headers, raw bodies, tagged-field
/// sections, and everything inside record batches and legacy message sets.
const FIXED: &[(&str, FieldType, &str)] = &[
    ("kafka.request", FieldType::Group, "A request frame"),
    ("kafka.response", FieldType::Group, "A response frame"),
    (
        "kafka.length",
        FieldType::Int32,
        "Frame size prefix: bytes that follow",
    ),
    ("kafka.request_header", FieldType::Group, "Request header"),
    ("kafka.response_header", FieldType::Group, "Response header"),
    ("kafka.api_key", FieldType::Int16, "API key of the request"),
    ("kafka.api_version", FieldType::Int16, "API version of the request"),
    (
        "kafka.correlation_id",
        FieldType::Int32,
        "Correlation id pairing a response with its request",
    ),
    (
        "kafka.client_id",
        FieldType::String,
        "Client id from the request header",
    ),
    (
        "kafka.body",
        FieldType::Bytes,
        "A body this dissector has no schema for, shown raw",
    ),
    (
        "kafka.trailing_bytes",
        FieldType::Bytes,
        "Bytes after the end of the body",
    ),
    (
        "sasl.token",
        FieldType::Bytes,
        "A bare SASL token after SaslHandshake v0: the mechanism's bytes behind a size prefix, no Kafka header",
    ),
    (
        "sasl.plain.authzid",
        FieldType::String,
        "PLAIN authorization identity (empty: the same as authcid)",
    ),
    ("sasl.plain.authcid", FieldType::String, "PLAIN user name"),
    ("sasl.plain.password", FieldType::Bytes, "PLAIN password"),
    (
        "kafka.elided",
        FieldType::Bytes,
        "Array elements or tagged fields decoded but not kept in the tree (size limit)",
    ),
    (
        "kafka.tagged_fields",
        FieldType::Group,
        "Tagged-field section of a flexible struct",
    ),
    (
        "kafka.tagged_fields.count",
        FieldType::Uvarint,
        "Number of tagged fields",
    ),
    ("kafka.tagged_field", FieldType::Group, "One tagged field"),
    ("kafka.tagged_field.tag", FieldType::Uvarint, "Tag number"),
    (
        "kafka.tagged_field.size",
        FieldType::Uvarint,
        "Size of the tagged field's data",
    ),
    (
        "kafka.tagged_field.data",
        FieldType::Bytes,
        "Data of a tag this schema does not know",
    ),
    ("record_set.size", FieldType::Int32, "Size prefix of a record set"),
    (
        "record_set.partial",
        FieldType::Bytes,
        "Incomplete batch at the end of a record set (normal in fetch responses)",
    ),
    (
        "record_set.undecoded",
        FieldType::Bytes,
        "Bytes of a record set that could not be decoded",
    ),
    ("record_batch", FieldType::Group, "A record batch (magic 2)"),
    (
        "record_batch.base_offset",
        FieldType::Int64,
        "Offset of the first record",
    ),
    (
        "record_batch.batch_length",
        FieldType::Int32,
        "Bytes after this field",
    ),
    (
        "record_batch.partition_leader_epoch",
        FieldType::Int32,
        "Leader epoch",
    ),
    ("record_batch.magic", FieldType::Int8, "Format version"),
    (
        "record_batch.crc",
        FieldType::Uint32,
        "CRC-32C from attributes to the end of the batch",
    ),
    (
        "record_batch.attributes",
        FieldType::Int16,
        "Compression (bits 0-2), timestamp type (bit 3), transactional (bit 4), control (bit 5)",
    ),
    (
        "record_batch.last_offset_delta",
        FieldType::Int32,
        "Offset delta of the last record",
    ),
    (
        "record_batch.base_timestamp",
        FieldType::Int64,
        "Timestamp of the first record (ms)",
    ),
    (
        "record_batch.max_timestamp",
        FieldType::Int64,
        "Largest timestamp in the batch (ms)",
    ),
    (
        "record_batch.producer_id",
        FieldType::Int64,
        "Idempotent producer id, -1 if none",
    ),
    ("record_batch.producer_epoch", FieldType::Int16, "Producer epoch"),
    (
        "record_batch.base_sequence",
        FieldType::Int32,
        "Sequence number of the first record",
    ),
    ("record_batch.records_count", FieldType::Int32, "Number of records"),
    (
        "record_batch.compressed",
        FieldType::Bytes,
        "Compressed records as on the wire",
    ),
    (
        "record_batch.decompressed",
        FieldType::Group,
        "Records after decompression",
    ),
    ("record", FieldType::Group, "One record"),
    ("record.length", FieldType::Varint, "Bytes after this field"),
    ("record.attributes", FieldType::Int8, "Record attributes (unused)"),
    (
        "record.timestamp_delta",
        FieldType::Varint,
        "Timestamp minus the batch's base timestamp",
    ),
    (
        "record.offset_delta",
        FieldType::Varint,
        "Offset minus the batch's base offset",
    ),
    ("record.key", FieldType::Bytes, "Record key"),
    ("record.value", FieldType::Bytes, "Record value"),
    ("record.headers", FieldType::Group, "Record headers"),
    ("record.headers.count", FieldType::Varint, "Number of headers"),
    ("record.header", FieldType::Group, "One header"),
    ("record.header.key", FieldType::String, "Header key"),
    ("record.header.value", FieldType::Bytes, "Header value"),
    (
        "message",
        FieldType::Group,
        "A legacy message (magic 0 or 1) with its offset",
    ),
    (
        "message.offset",
        FieldType::Int64,
        "Offset (inner messages of a compressed v1 set: relative)",
    ),
    ("message.message_size", FieldType::Int32, "Bytes after this field"),
    (
        "message.crc",
        FieldType::Uint32,
        "CRC-32 (IEEE) from magic to the end",
    ),
    ("message.magic", FieldType::Int8, "Format version 0 or 1"),
    (
        "message.attributes",
        FieldType::Int8,
        "Compression (bits 0-2), timestamp type (bit 3)",
    ),
    ("message.timestamp", FieldType::Int64, "Timestamp (magic 1 only)"),
    ("message.key", FieldType::Bytes, "Message key"),
    (
        "message.value",
        FieldType::Bytes,
        "Message value (for a compressed wrapper: the inner set)",
    ),
    (
        "message.decompressed",
        FieldType::Group,
        "Inner messages after decompression",
    ),
];

static CATALOG: OnceLock<Catalog> = OnceLock::new();

/// The registry, built on first use from the schema files.
pub fn catalog() -> &'static Catalog {
    CATALOG.get_or_init(|| match build() {
        Ok(c) => c,
        // The schema files are compiled in: a broken one is a build defect caught by the tests.
        Err(e) => panic!("schema table is invalid: {e}"),
    })
}

/// Builds the catalog; a separate function so a test can report the error nicely.
pub fn build() -> Result<Catalog, String> {
    let mut cat = Catalog {
        entries: Vec::new(),
        by_name: HashMap::new(),
        apis: BTreeMap::new(),
    };
    for (name, kind, desc) in FIXED {
        cat.add(name.to_string(), kind.clone(), desc.to_string())?;
    }
    let mut apis = schema::parse_all()?;
    for api in apis.values_mut() {
        for (i, (dir, fields)) in [
            ("request", &mut api.request),
            ("response", &mut api.response),
        ]
        .into_iter()
        .enumerate()
        {
            let prefix = format!("{}.{}", api.snake, dir);
            api.body_ids[i] = cat.add(
                prefix.clone(),
                FieldType::Group,
                format!("{} {} body", api.name, dir),
            )?;
            cat.add_fields(&prefix, fields)?;
        }
    }
    cat.apis = apis;
    Ok(cat)
}

impl Catalog {
    fn add(
        &mut self,
        name: String,
        kind: FieldType,
        description: String,
    ) -> Result<FieldId, String> {
        if self.by_name.contains_key(name.as_str()) {
            return Err(format!("field name {name} registered twice"));
        }
        // Names are written into JSON and filters as they stand.
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            return Err(format!(
                "field name {name:?}: only ASCII letters, digits, _ and ."
            ));
        }
        let name: &'static str = Box::leak(name.into_boxed_str());
        let short = name.rsplit('.').next().unwrap_or(name);
        let id = FieldId(self.entries.len() as u32);
        self.entries.push(Entry {
            name,
            short,
            kind,
            description,
            role: Role::of(name, short),
        });
        self.by_name.insert(name, id);
        Ok(id)
    }

    fn add_fields(&mut self, prefix: &str, fields: &mut [FieldDef]) -> Result<(), String> {
        for f in fields {
            let name = format!("{prefix}.{}", f.name);
            let mut desc = format!("{}, versions {}", f.ty.label(), show(f.versions));
            if f.nullable != schema::Versions::NONE {
                desc.push_str(&format!(", nullable {}", show(f.nullable)));
            }
            if let Some(t) = f.tag {
                desc.push_str(&format!(", tagged field {t}"));
            }
            f.id = self.add(name.clone(), f.ty.clone(), desc)?;
            if let FieldType::Array(_) = f.ty {
                f.count_id = self.add(
                    format!("{name}.array_length"),
                    FieldType::Int32,
                    format!("Number of elements of {}", f.name),
                )?;
            } else if f.ty == FieldType::Struct && f.nullable != schema::Versions::NONE {
                f.count_id = self.add(
                    format!("{name}.presence"),
                    FieldType::Int8,
                    format!("Whether {} follows (1) or is null (-1)", f.name),
                )?;
            }
            self.add_fields(&name, &mut f.children)?;
        }
        Ok(())
    }

    /// Looks a field up by its dotted name.
    pub fn id(&self, name: &str) -> Option<FieldId> {
        self.by_name.get(name).copied()
    }
}

fn show(v: schema::Versions) -> String {
    match (v.min, v.max) {
        (a, i16::MAX) => format!("{a}+"),
        (a, b) if a == b => a.to_string(),
        (a, b) => format!("{a}-{b}"),
    }
}

/// The dotted name of a field.
pub fn name(id: FieldId) -> &'static str {
    catalog().entries[id.0 as usize].name
}

/// The last segment of a field's name.
pub fn short_name(id: FieldId) -> &'static str {
    catalog().entries[id.0 as usize].short
}

/// The part a field plays in summaries and checks.
pub fn role(id: FieldId) -> Role {
    catalog().entries[id.0 as usize].role
}

/// The id of a registered name; panics on a name that is not registered (a programming error:
/// use the [`fid!`](crate::fid) macro for fixed names, which the tests exercise).
pub fn id(name: &str) -> FieldId {
    match catalog().id(name) {
        Some(id) => id,
        None => panic!("field {name} is not registered"),
    }
}

/// The schema of an API, if the table has it.
pub fn api(key: i16) -> Option<&'static ApiSchema> {
    // Looked up for every frame a capture reads and every line printed: by index, not by
    // a search of the map.
    static BY_KEY: OnceLock<Vec<Option<&'static ApiSchema>>> = OnceLock::new();
    let by_key = BY_KEY.get_or_init(|| {
        let apis = &catalog().apis;
        let len = apis
            .keys()
            .copied()
            .max()
            .map_or(0, |k| k.max(0) as usize + 1);
        let mut by_key = vec![None; len];
        for (k, a) in apis {
            if let Ok(k) = usize::try_from(*k) {
                by_key[k] = Some(a);
            }
        }
        by_key
    });
    match usize::try_from(key) {
        Ok(k) => by_key.get(k).copied().flatten(),
        // No API has a negative key; the map would say so too.
        Err(_) => catalog().apis.get(&key),
    }
}

/// The key of an API by name: CamelCase as the protocol guide writes it (`ApiVersions`) or
/// snake_case (`api_versions`), in any case, `_` and `-` ignored. The one lookup every place
/// that takes an API's name uses (caps, rules, the display filter).
pub fn api_key_by_name(name: &str) -> Option<i16> {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let wanted = norm(name.trim());
    if wanted.is_empty() {
        return None;
    }
    catalog()
        .apis
        .values()
        .find(|a| norm(&a.name) == wanted)
        .map(|a| a.key)
}

/// The protocol guide's name for an API key, or `ApiKey(N)`.
pub fn api_name(key: i16) -> String {
    api(key)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| format!("ApiKey({key})"))
}

/// Looks up a fixed field id once per call site.
#[macro_export]
macro_rules! fid {
    ($name:literal) => {{
        static ID: std::sync::OnceLock<$crate::registry::FieldId> = std::sync::OnceLock::new();
        *ID.get_or_init(|| $crate::registry::id($name))
    }};
}
