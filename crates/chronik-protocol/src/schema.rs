//! The schema table: every API's request and response layout in every version, in the project's
//! own compact text form (`src/protocol/schema/*.schema`), parsed once at start-up.
//!
//! This is the one place that knows the wire layout. The dissector walks it to decode; the field
//! registry is built from it, so field names, filters and export all agree.
//!
//! # The schema language
//!
//! ```text
//! # comment
//! api 0 Produce 0-11 flexible 9+        key, name, versions, first flexible version (or `flexible none`)
//! request
//!   transactional_id  string  3+ null=3+
//!   acks              int16
//!   topic_data        []                 an array of structs; its fields follow, indented two more
//!     name            string
//!     partition_data  []
//!       index         int32
//!       records       records null=all
//! response
//!   throttle_time_ms  int32   1+
//!   current_leader    {}      10+ tag=0  a struct; a tagged field (only in flexible versions)
//!     leader_id       int32
//! ```
//!
//! A field line is `name type [versions] [null=versions] [tag=N]`. Types: `bool int8 int16
//! int32 int64 uint16 float64 string bytes records uuid`, `[T]` for an array of a primitive,
//! `[]` for an array of structs and `{}` for a struct. Versions: `N+`, `N-M`, `N`, `all` (the
//! default) or `none`. Strings, bytes, arrays and records switch to their compact encodings in
//! flexible versions, and every struct then ends with a tagged-field section.

use std::collections::BTreeMap;

/// An inclusive range of API versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub min: i16,
    pub max: i16,
}

impl Versions {
    pub const ALL: Versions = Versions {
        min: 0,
        max: i16::MAX,
    };
    pub const NONE: Versions = Versions { min: 1, max: 0 };

    pub fn contains(&self, v: i16) -> bool {
        self.min <= v && v <= self.max
    }

    fn parse(s: &str) -> Result<Versions, String> {
        let num = |t: &str| {
            t.parse::<i16>()
                .map_err(|_| format!("bad version number {t:?}"))
        };
        Ok(match s {
            "all" => Versions::ALL,
            "none" => Versions::NONE,
            _ if s.ends_with('+') => Versions {
                min: num(&s[..s.len() - 1])?,
                max: i16::MAX,
            },
            _ => match s.split_once('-') {
                Some((a, b)) => Versions {
                    min: num(a)?,
                    max: num(b)?,
                },
                None => {
                    let v = num(s)?;
                    Versions { min: v, max: v }
                }
            },
        })
    }
}

/// The wire type of a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint16,
    /// Only in fixed fields (record batch CRC), not in API schemas.
    Uint32,
    /// Zig-zag varint: only in fixed fields (records), not in API schemas.
    Varint,
    /// Unsigned varint: only in fixed fields (lengths, tag numbers), not in API schemas.
    Uvarint,
    Float64,
    String,
    Bytes,
    Records,
    Uuid,
    /// A struct; its fields are the `FieldDef`'s children.
    Struct,
    /// An array of the inner type (`Struct` for arrays of structs).
    Array(Box<FieldType>),
    /// A node that only groups other fields (a frame, a header, a record batch): in the
    /// registry's fixed fields, not in API schemas.
    Group,
}

impl FieldType {
    fn parse(s: &str) -> Result<FieldType, String> {
        Ok(match s {
            "bool" => FieldType::Bool,
            "int8" => FieldType::Int8,
            "int16" => FieldType::Int16,
            "int32" => FieldType::Int32,
            "int64" => FieldType::Int64,
            "uint16" => FieldType::Uint16,
            "float64" => FieldType::Float64,
            "string" => FieldType::String,
            "bytes" => FieldType::Bytes,
            "records" => FieldType::Records,
            "uuid" => FieldType::Uuid,
            "{}" => FieldType::Struct,
            "[]" => FieldType::Array(Box::new(FieldType::Struct)),
            _ if s.starts_with('[') && s.ends_with(']') => {
                let inner = FieldType::parse(&s[1..s.len() - 1])?;
                if matches!(inner, FieldType::Struct | FieldType::Array(_)) {
                    return Err(format!("unsupported array element type {s:?}"));
                }
                FieldType::Array(Box::new(inner))
            }
            _ => return Err(format!("unknown type {s:?}")),
        })
    }

    /// The name shown in the registry and the UI.
    pub fn label(&self) -> String {
        match self {
            FieldType::Bool => "bool".into(),
            FieldType::Int8 => "int8".into(),
            FieldType::Int16 => "int16".into(),
            FieldType::Int32 => "int32".into(),
            FieldType::Int64 => "int64".into(),
            FieldType::Uint16 => "uint16".into(),
            FieldType::Uint32 => "uint32".into(),
            FieldType::Varint => "varint".into(),
            FieldType::Uvarint => "uvarint".into(),
            FieldType::Float64 => "float64".into(),
            FieldType::String => "string".into(),
            FieldType::Bytes => "bytes".into(),
            FieldType::Records => "records".into(),
            FieldType::Uuid => "uuid".into(),
            FieldType::Struct => "struct".into(),
            FieldType::Array(inner) if **inner == FieldType::Struct => "array".into(),
            FieldType::Array(inner) => format!("array of {}", inner.label()),
            FieldType::Group => "group".into(),
        }
    }

    /// Whether fields of this type hold fields (structs, arrays of structs).
    pub fn has_children(&self) -> bool {
        match self {
            FieldType::Struct => true,
            FieldType::Array(inner) => **inner == FieldType::Struct,
            _ => false,
        }
    }
}

/// One field of a request or response body.
#[derive(Debug, Clone)]
pub struct FieldDef {
    pub name: String,
    pub ty: FieldType,
    /// Versions in which the field is on the wire (for a tagged field: may be sent as a tag).
    pub versions: Versions,
    /// Versions in which a null is allowed.
    pub nullable: Versions,
    /// Tag number for a tagged field.
    pub tag: Option<u32>,
    /// Fields of a struct or of an array's struct elements.
    pub children: Vec<FieldDef>,
    /// Registry id of this field (set when the registry is built).
    pub id: super::registry::FieldId,
    /// Registry id of the array-length prefix (arrays), or of the presence byte before a
    /// nullable struct (-1: null, 1: the struct follows).
    pub count_id: super::registry::FieldId,
}

/// One API: its key, name, version range, and the request and response layouts.
#[derive(Debug, Clone)]
pub struct ApiSchema {
    pub key: i16,
    /// CamelCase name as in the protocol guide, e.g. `ApiVersions`.
    pub name: String,
    /// snake_case name used as the registry prefix, e.g. `api_versions`.
    pub snake: String,
    pub versions: Versions,
    /// First flexible version, if any.
    pub flexible_from: Option<i16>,
    pub request: Vec<FieldDef>,
    pub response: Vec<FieldDef>,
    /// Registry ids of the request and response bodies (`produce.request`, …; set when the
    /// registry is built).
    pub body_ids: [super::registry::FieldId; 2],
}

impl ApiSchema {
    /// Whether a version uses the flexible (compact, tagged) encoding. Versions above the known
    /// range are taken as flexible when the API already is.
    pub fn is_flexible(&self, version: i16) -> bool {
        self.flexible_from.is_some_and(|f| version >= f)
    }

    /// Request header version: 2 for flexible versions, else 1.
    pub fn request_header_version(&self, version: i16) -> i16 {
        if self.is_flexible(version) {
            2
        } else {
            1
        }
    }

    /// Response header version: 1 for flexible versions, else 0; ApiVersions always 0.
    pub fn response_header_version(&self, version: i16) -> i16 {
        if self.key != 18 && self.is_flexible(version) {
            1
        } else {
            0
        }
    }
}

/// The schema files, in API key order.
const SOURCES: &[(&str, &str)] = &[
    ("produce", include_str!("schema/produce.schema")),
    ("fetch", include_str!("schema/fetch.schema")),
    ("list_offsets", include_str!("schema/list_offsets.schema")),
    ("metadata", include_str!("schema/metadata.schema")),
    ("offset_commit", include_str!("schema/offset_commit.schema")),
    ("offset_fetch", include_str!("schema/offset_fetch.schema")),
    (
        "find_coordinator",
        include_str!("schema/find_coordinator.schema"),
    ),
    ("join_group", include_str!("schema/join_group.schema")),
    ("heartbeat", include_str!("schema/heartbeat.schema")),
    ("leave_group", include_str!("schema/leave_group.schema")),
    ("sync_group", include_str!("schema/sync_group.schema")),
    (
        "describe_groups",
        include_str!("schema/describe_groups.schema"),
    ),
    ("list_groups", include_str!("schema/list_groups.schema")),
    (
        "sasl_handshake",
        include_str!("schema/sasl_handshake.schema"),
    ),
    ("api_versions", include_str!("schema/api_versions.schema")),
    ("create_topics", include_str!("schema/create_topics.schema")),
    ("delete_topics", include_str!("schema/delete_topics.schema")),
    (
        "delete_records",
        include_str!("schema/delete_records.schema"),
    ),
    (
        "init_producer_id",
        include_str!("schema/init_producer_id.schema"),
    ),
    (
        "offset_for_leader_epoch",
        include_str!("schema/offset_for_leader_epoch.schema"),
    ),
    (
        "add_partitions_to_txn",
        include_str!("schema/add_partitions_to_txn.schema"),
    ),
    (
        "add_offsets_to_txn",
        include_str!("schema/add_offsets_to_txn.schema"),
    ),
    ("end_txn", include_str!("schema/end_txn.schema")),
    (
        "txn_offset_commit",
        include_str!("schema/txn_offset_commit.schema"),
    ),
    (
        "describe_configs",
        include_str!("schema/describe_configs.schema"),
    ),
    ("alter_configs", include_str!("schema/alter_configs.schema")),
    (
        "sasl_authenticate",
        include_str!("schema/sasl_authenticate.schema"),
    ),
    (
        "create_partitions",
        include_str!("schema/create_partitions.schema"),
    ),
    ("delete_groups", include_str!("schema/delete_groups.schema")),
    (
        "incremental_alter_configs",
        include_str!("schema/incremental_alter_configs.schema"),
    ),
    ("offset_delete", include_str!("schema/offset_delete.schema")),
    (
        "describe_cluster",
        include_str!("schema/describe_cluster.schema"),
    ),
    (
        "describe_producers",
        include_str!("schema/describe_producers.schema"),
    ),
    (
        "describe_transactions",
        include_str!("schema/describe_transactions.schema"),
    ),
    (
        "list_transactions",
        include_str!("schema/list_transactions.schema"),
    ),
    (
        "consumer_group_heartbeat",
        include_str!("schema/consumer_group_heartbeat.schema"),
    ),
    (
        "consumer_group_describe",
        include_str!("schema/consumer_group_describe.schema"),
    ),
    (
        "get_telemetry_subscriptions",
        include_str!("schema/get_telemetry_subscriptions.schema"),
    ),
    (
        "push_telemetry",
        include_str!("schema/push_telemetry.schema"),
    ),
];

/// Parses every schema file. Errors name the file and line.
pub fn parse_all() -> Result<BTreeMap<i16, ApiSchema>, String> {
    let mut apis = BTreeMap::new();
    for (file, text) in SOURCES {
        if let Some(api) = parse(text).map_err(|e| format!("{file}.schema: {e}"))? {
            if apis.insert(api.key, api).is_some() {
                return Err(format!("{file}.schema: api key defined twice"));
            }
        }
    }
    Ok(apis)
}

fn camel_to_snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses one schema file; an empty file (only comments) gives `None`.
pub fn parse(text: &str) -> Result<Option<ApiSchema>, String> {
    let mut api: Option<ApiSchema> = None;
    // Which body the field lines go to: None before `request`, Some(false) request, Some(true) response.
    let mut section: Option<bool> = None;
    // Stack of (indent, path into the current body) for nesting.
    let mut lines: Vec<(usize, usize, FieldDef)> = Vec::new(); // (line no, indent, def)
    let mut bodies: [Vec<(usize, usize, FieldDef)>; 2] = [Vec::new(), Vec::new()];

    for (no, raw) in text.lines().enumerate() {
        let no = no + 1;
        let line = raw.split('#').next().unwrap_or("").trim_end();
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let toks: Vec<&str> = line.split_whitespace().collect();
        let err = |m: String| format!("line {no}: {m}");
        match toks[0] {
            "api" if indent == 0 => {
                if toks.len() != 6 || toks[4] != "flexible" {
                    return Err(err(
                        "expected `api KEY Name MIN-MAX flexible N+|none`".into()
                    ));
                }
                let key: i16 = toks[1].parse().map_err(|_| err("bad api key".into()))?;
                let versions = Versions::parse(toks[3]).map_err(err)?;
                let flexible_from = match toks[5] {
                    "none" => None,
                    f => Some(Versions::parse(f).map_err(err)?.min),
                };
                api = Some(ApiSchema {
                    key,
                    name: toks[2].to_string(),
                    snake: camel_to_snake(toks[2]),
                    versions,
                    flexible_from,
                    request: Vec::new(),
                    response: Vec::new(),
                    body_ids: Default::default(),
                });
            }
            "request" if indent == 0 => section = Some(false),
            "response" if indent == 0 => {
                bodies[0].append(&mut lines);
                section = Some(true)
            }
            _ => {
                if section.is_none() || indent == 0 || indent % 2 != 0 {
                    return Err(err(
                        "field line outside a request/response section or odd indent".into(),
                    ));
                }
                if toks.len() < 2 {
                    return Err(err("expected `name type [versions] [options]`".into()));
                }
                let ty = FieldType::parse(toks[1]).map_err(err)?;
                let mut def = FieldDef {
                    name: toks[0].to_string(),
                    ty,
                    versions: Versions::ALL,
                    nullable: Versions::NONE,
                    tag: None,
                    children: Vec::new(),
                    id: Default::default(),
                    count_id: Default::default(),
                };
                for t in &toks[2..] {
                    if let Some(v) = t.strip_prefix("null=") {
                        def.nullable = Versions::parse(v).map_err(err)?;
                    } else if let Some(v) = t.strip_prefix("tag=") {
                        def.tag = Some(v.parse().map_err(|_| err("bad tag".into()))?);
                    } else {
                        def.versions = Versions::parse(t).map_err(err)?;
                    }
                }
                lines.push((no, indent / 2 - 1, def));
            }
        }
    }
    if section == Some(true) {
        bodies[1].append(&mut lines);
    }
    let Some(mut api) = api else {
        return Ok(None);
    };
    let [req, resp] = bodies;
    api.request = nest(req)?;
    api.response = nest(resp)?;
    Ok(Some(api))
}

/// Builds the field tree from (line, depth, def) rows.
fn nest(rows: Vec<(usize, usize, FieldDef)>) -> Result<Vec<FieldDef>, String> {
    let mut stack: Vec<FieldDef> = Vec::new(); // stack[d] is the open field at depth d
    let mut top: Vec<FieldDef> = Vec::new();
    fn pop_into(stack: &mut Vec<FieldDef>, top: &mut Vec<FieldDef>) {
        let f = stack.pop().expect("non-empty");
        match stack.last_mut() {
            Some(parent) => parent.children.push(f),
            None => top.push(f),
        }
    }
    for (no, depth, def) in rows {
        if depth > stack.len() {
            return Err(format!("line {no}: indented too far"));
        }
        if depth > 0 && !stack[depth - 1].ty.has_children() {
            return Err(format!(
                "line {no}: `{}` has no fields of its own",
                stack[depth - 1].name
            ));
        }
        while stack.len() > depth {
            pop_into(&mut stack, &mut top);
        }
        stack.push(def);
    }
    while !stack.is_empty() {
        pop_into(&mut stack, &mut top);
    }
    check_structs(&top)?;
    Ok(top)
}

fn check_structs(fields: &[FieldDef]) -> Result<(), String> {
    for f in fields {
        if f.ty.has_children() && f.children.is_empty() {
            return Err(format!("`{}` is a struct with no fields", f.name));
        }
        check_structs(&f.children)?;
    }
    Ok(())
}
