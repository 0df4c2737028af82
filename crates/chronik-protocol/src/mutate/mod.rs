//! Response mutations: changes to the bytes of a response frame, made field by field with the
//! dissector's spans, so that a broker can send what a buggy one would (a field moved, left
//! out, set to another value, the frame cut short, a record batch's CRC broken). Pure: a frame
//! in, a frame out (its size prefix, and in flexible versions its tagged-field counts and
//! sizes, made to agree with what it holds) or the reason the mutation does not apply to it.
//!
//! Text forms (field names are registry names, e.g. `produce.response.throttle_time_ms`):
//!
//! | mutation | does |
//! |---|---|
//! | `move FIELD before\|after FIELD` | puts a field before or after a sibling, in every struct that has both |
//! | `omit FIELD` | leaves the field out, every occurrence |
//! | `set FIELD=VALUE` | writes VALUE, typed by the field's type, into every occurrence |
//! | `truncate N` | drops the frame's last N bytes (the size prefix says the shorter length) |
//! | `corrupt crc` | flips every bit of the CRC of every record batch (and legacy message) |

mod edit;
#[cfg(test)]
mod tests;
mod value;

use std::fmt;

pub use value::SetValue;

use crate::batch::{self, Entry};
use crate::dissect::{dissect_response_with, Limits};
use crate::registry::{self, FieldId};
use crate::schema::{ApiSchema, FieldDef, FieldType};
use crate::{fid, tree::Field};
use edit::Node;
use value::Slot;

/// One change to a response frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// `move FIELD before|after ANCHOR`: the two are siblings in the schema.
    Move {
        field: FieldId,
        anchor: FieldId,
        before: bool,
    },
    /// `omit FIELD`.
    Omit { field: FieldId },
    /// `set FIELD=VALUE`.
    Set { field: FieldId, value: SetValue },
    /// `truncate N`: the last N bytes are not sent.
    Truncate { bytes: usize },
    /// `corrupt crc`.
    CorruptCrc,
}

/// What applying a mutation to a frame did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The new frame, and what was done to it (`2 occurrences`, `74 -> 64 bytes`).
    Changed { frame: Vec<u8>, detail: String },
    /// The frame had nothing the mutation changes (no occurrence of the field in an empty
    /// array, no record batch), and why.
    Unchanged(String),
}

/// Where a field of a response schema is: its API and the chain of definitions from the body's
/// top level down to it.
struct Located {
    api: &'static ApiSchema,
    /// The field's definition and its ancestors, outermost first.
    chain: Vec<&'static FieldDef>,
    /// The field is the element count of the last definition in the chain (an array).
    count: bool,
}

impl Located {
    fn def(&self) -> &'static FieldDef {
        self.chain[self.chain.len() - 1]
    }

    /// Whether the field is on the wire at this version (it and every struct around it).
    fn present_at(&self, version: i16) -> bool {
        self.chain.iter().all(|d| d.versions.contains(version))
    }
}

/// Finds a response field of the schema table by registry id.
fn locate(id: FieldId) -> Option<Located> {
    fn walk(
        defs: &'static [FieldDef],
        id: FieldId,
        chain: &mut Vec<&'static FieldDef>,
    ) -> Option<bool> {
        for d in defs {
            chain.push(d);
            if d.id == id {
                return Some(false);
            }
            if matches!(d.ty, FieldType::Array(_)) && d.count_id == id {
                return Some(true);
            }
            if let Some(count) = walk(&d.children, id, chain) {
                return Some(count);
            }
            chain.pop();
        }
        None
    }
    let name = registry::name(id);
    let api = registry::catalog()
        .apis
        .values()
        .find(|a| name.starts_with(&format!("{}.response.", a.snake)))?;
    let mut chain = Vec::new();
    let count = walk(&api.response, id, &mut chain)?;
    Some(Located { api, chain, count })
}

/// The response header's correlation id: the one field outside the body a mutation may touch.
fn is_correlation_id(id: FieldId) -> bool {
    id == fid!("kafka.correlation_id")
}

/// Reads a field name: a registry name of a response field (or `kafka.correlation_id`).
fn field_name(text: &str) -> Result<FieldId, String> {
    let text = text.trim();
    let Some(id) = registry::catalog().id(text) else {
        let short = text.rsplit('.').next().unwrap_or(text);
        let like: Vec<&str> = registry::catalog()
            .entries
            .iter()
            .filter(|e| e.short == short && e.name.contains(".response."))
            .map(|e| e.name)
            .take(3)
            .collect();
        return Err(if like.is_empty() {
            format!(
                "unknown field {text:?} (fields are registry names, e.g. \
                 produce.response.throttle_time_ms)"
            )
        } else {
            format!(
                "unknown field {text:?}; did you mean {}?",
                like.join(" or ")
            )
        });
    };
    if is_correlation_id(id) || locate(id).is_some() {
        return Ok(id);
    }
    let why = if text == "kafka.length" {
        "the size prefix is rewritten after every mutation (use truncate to send fewer bytes)"
    } else if text.contains(".request.") {
        "it is a request field; mutations change responses"
    } else {
        "only the fields of a response body and kafka.correlation_id can be changed"
    };
    Err(format!("{text} cannot be mutated: {why}"))
}

impl Mutation {
    /// The API whose responses the mutation can change: the API of its field, the APIs whose
    /// responses carry record sets for `corrupt crc`; `None` for any (truncate, the
    /// correlation id).
    pub fn apis(&self) -> Option<Vec<i16>> {
        match self {
            Mutation::Move { field, .. }
            | Mutation::Omit { field }
            | Mutation::Set { field, .. } => locate(*field).map(|l| vec![l.api.key]),
            Mutation::Truncate { .. } => None,
            Mutation::CorruptCrc => Some(
                registry::catalog()
                    .apis
                    .values()
                    .filter(|a| has_records(&a.response))
                    .map(|a| a.key)
                    .collect(),
            ),
        }
    }

    /// Whether the mutation is about responses of this API at all.
    pub fn concerns(&self, api_key: i16) -> bool {
        self.apis().is_none_or(|apis| apis.contains(&api_key))
    }

    /// Applies the mutation to a response frame (size prefix included) of `api_key` at
    /// `version`. Never panics, whatever the frame holds.
    pub fn apply(&self, frame: &[u8], api_key: i16, version: i16) -> Result<Applied, String> {
        if frame.len() < 4 {
            return Err(format!(
                "a frame of {} bytes has no size prefix",
                frame.len()
            ));
        }
        let api_label = format!("{} v{version}", registry::api_name(api_key));
        match self {
            Mutation::Truncate { bytes } => {
                let body = frame.len() - 4;
                if *bytes >= body {
                    return Err(format!(
                        "the response has {body} bytes after its size prefix; truncating {bytes} \
                         would leave none"
                    ));
                }
                let mut out = frame[..frame.len() - bytes].to_vec();
                out[..4].copy_from_slice(&((body - bytes) as i32).to_be_bytes());
                Ok(Applied::Changed {
                    detail: format!("{} -> {} bytes", frame.len(), out.len()),
                    frame: out,
                })
            }
            Mutation::CorruptCrc => Ok(corrupt_crc(frame, api_key, version)),
            Mutation::Move {
                field,
                anchor,
                before,
            } => {
                let (_, mut root) = self.prepare(*field, frame, api_key, version, &api_label)?;
                let anchor_loc = locate(*anchor).ok_or("the anchor is not a response field")?;
                if !anchor_loc.present_at(version) {
                    return Err(format!(
                        "{} is absent in {api_label}",
                        registry::name(*anchor)
                    ));
                }
                let parents: Vec<_> = root
                    .find(*field)
                    .into_iter()
                    .map(|mut p| {
                        p.pop();
                        p
                    })
                    .collect();
                if parents.is_empty() {
                    return Ok(Applied::Unchanged(format!(
                        "no {} in this response",
                        registry::name(*field)
                    )));
                }
                for parent in &parents {
                    let node = root.at_mut(parent);
                    let pos = |n: &Node, id: FieldId| {
                        n.children.iter().position(|c| c.id == id && !c.element)
                    };
                    let (Some(from), Some(_)) = (pos(node, *field), pos(node, *anchor)) else {
                        return Err(format!(
                            "{} and {} are not both in a {}",
                            registry::name(*field),
                            registry::name(*anchor),
                            registry::name(node.id)
                        ));
                    };
                    let moved = node.children.remove(from);
                    let to = pos(node, *anchor).unwrap_or(0) + usize::from(!before);
                    node.children.insert(to, moved);
                }
                Ok(changed(&root, frame, parents.len()))
            }
            Mutation::Omit { field } => {
                let (_, mut root) = self.prepare(*field, frame, api_key, version, &api_label)?;
                let paths = root.find(*field);
                if paths.is_empty() {
                    return Ok(Applied::Unchanged(format!(
                        "no {} in this response",
                        registry::name(*field)
                    )));
                }
                // Last first, so that the paths still to do stay valid.
                for path in paths.iter().rev() {
                    let (parent, i) = path.split_at(path.len() - 1);
                    if root.at(parent).id == fid!("kafka.tagged_field") {
                        // A tagged field goes with its tag and size.
                        let (section, entry) = parent.split_at(parent.len() - 1);
                        root.at_mut(section).children.remove(entry[0]);
                    } else {
                        root.at_mut(parent).children.remove(i[0]);
                    }
                }
                Ok(changed(&root, frame, paths.len()))
            }
            Mutation::Set { field, value } => {
                let (loc, mut root) = self.prepare(*field, frame, api_key, version, &api_label)?;
                let bytes = encode_value(*field, loc.as_ref(), value, version, &api_label)?;
                let paths = root.find(*field);
                if paths.is_empty() {
                    return Ok(Applied::Unchanged(format!(
                        "no {} in this response",
                        registry::name(*field)
                    )));
                }
                for path in &paths {
                    let node = root.at_mut(path);
                    node.bytes = Some(bytes.clone());
                    node.children.clear();
                }
                Ok(changed(&root, frame, paths.len()))
            }
        }
    }

    /// Checks that `field` can be changed in this response and dissects it: the field's
    /// location in the schema (None for the correlation id) and the editable tree.
    fn prepare(
        &self,
        field: FieldId,
        frame: &[u8],
        api_key: i16,
        version: i16,
        api_label: &str,
    ) -> Result<(Option<Located>, Node), String> {
        let loc = check_field(field, api_key, version, api_label)?;
        Ok((loc, editable(frame, api_key, version, api_label)?))
    }
}

/// Checks that `field` can be changed in a response of this API and version: its location in
/// the schema (None for the correlation id).
fn check_field(
    field: FieldId,
    api_key: i16,
    version: i16,
    api_label: &str,
) -> Result<Option<Located>, String> {
    if is_correlation_id(field) {
        return Ok(None);
    }
    let loc = locate(field)
        .ok_or_else(|| format!("{} is not a response field", registry::name(field)))?;
    if loc.api.key != api_key {
        return Err(format!(
            "{} is a field of {} responses, not of {api_label}",
            registry::name(field),
            loc.api.name
        ));
    }
    if !loc.present_at(version) {
        return Err(format!(
            "{} is absent in {api_label}",
            registry::name(field)
        ));
    }
    Ok(Some(loc))
}

/// The frame dissected (every element kept, record sets as one leaf) as a tree to edit; an
/// error when it does not decode as the schema table has it.
fn editable(frame: &[u8], api_key: i16, version: i16, api_label: &str) -> Result<Node, String> {
    let limits = Limits {
        max_fields: usize::MAX,
        records: false,
    };
    let d = dissect_response_with(frame, api_key, version, limits);
    if let Some(e) = d.error {
        return Err(format!(
            "the response does not decode as {api_label} ({e}), so its fields cannot be found"
        ));
    }
    if d.root.children.iter().any(|c| c.name() == "kafka.body") {
        return Err(format!("the schema table does not describe {api_label}"));
    }
    Ok(Node::from_field(&d.root, None))
}

/// `value` in the wire encoding of `field` (located at `loc`; None: the correlation id) at
/// `version`.
fn encode_value(
    field: FieldId,
    loc: Option<&Located>,
    value: &SetValue,
    version: i16,
    api_label: &str,
) -> Result<Vec<u8>, String> {
    let (slot, nullable) = match loc {
        None => (Slot::Typed(FieldType::Int32), false),
        Some(l) if l.count => (Slot::Count, false),
        Some(l) => (
            Slot::Typed(l.def().ty.clone()),
            l.def().nullable.contains(version),
        ),
    };
    let flexible = loc.is_some_and(|l| l.api.is_flexible(version));
    value
        .encode(&slot, flexible, nullable)
        .map_err(|e| format!("{}: {e} ({api_label})", registry::name(field)))
}

/// One value to write into one occurrence of a response field: the occurrence that starts at
/// `offset` in the frame (as a dissection of that frame places it).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldEdit {
    pub field: FieldId,
    pub offset: usize,
    pub value: SetValue,
}

/// Writes each edit's value into its one occurrence of a response frame of `api_key` at
/// `version`, lengths kept consistent as for `set`, which writes one value into every
/// occurrence; here each occurrence gets its own (a proxy pointing each broker of a Metadata
/// response at its own listener). Never panics; an edit naming no occurrence is an error.
pub fn set_at(
    frame: &[u8],
    api_key: i16,
    version: i16,
    edits: &[FieldEdit],
) -> Result<Vec<u8>, String> {
    let api_label = format!("{} v{version}", registry::api_name(api_key));
    let mut root = editable(frame, api_key, version, &api_label)?;
    for edit in edits {
        let loc = check_field(edit.field, api_key, version, &api_label)?;
        let bytes = encode_value(edit.field, loc.as_ref(), &edit.value, version, &api_label)?;
        let path = root
            .find(edit.field)
            .into_iter()
            .find(|p| root.at(p).start == edit.offset)
            .ok_or_else(|| {
                format!(
                    "no {} at offset {} of this {api_label} response",
                    registry::name(edit.field),
                    edit.offset
                )
            })?;
        let node = root.at_mut(&path);
        node.bytes = Some(bytes);
        node.children.clear();
    }
    let mut out = Vec::with_capacity(frame.len() + 64);
    root.write(frame, &mut out);
    Ok(out)
}

/// The frame written back from an edited tree.
fn changed(root: &Node, frame: &[u8], occurrences: usize) -> Applied {
    let mut out = Vec::with_capacity(frame.len() + 16);
    root.write(frame, &mut out);
    Applied::Changed {
        detail: plural(occurrences, "occurrence"),
        frame: out,
    }
}

/// `1 occurrence`, `2 occurrences`.
fn plural(n: usize, what: &str) -> String {
    match (n, what) {
        (1, _) => format!("1 {what}"),
        (_, "batch") => format!("{n} batches"),
        _ => format!("{n} {what}s"),
    }
}

/// Whether a body has a record set anywhere.
fn has_records(defs: &[FieldDef]) -> bool {
    defs.iter()
        .any(|d| d.ty == FieldType::Records || has_records(&d.children))
}

/// Flips every bit of the CRC of each record batch (magic 2) and legacy message (magic 0/1) in
/// the frame's record sets, as far as the frame decodes.
fn corrupt_crc(frame: &[u8], api_key: i16, version: i16) -> Applied {
    let limits = Limits {
        max_fields: usize::MAX,
        records: false,
    };
    let d = dissect_response_with(frame, api_key, version, limits);
    // The data of every record set: the leaf after its size.
    let mut sets = Vec::new();
    d.root.walk(0, &mut |f: &Field, _| {
        if registry::catalog().entries[f.id.0 as usize].kind == FieldType::Records {
            if let Some(data) = f.children.get(1) {
                sets.push((data.offset as usize, (data.offset + data.len) as usize));
            }
        }
    });
    let mut out = frame.to_vec();
    let (mut batches, mut messages) = (0, 0);
    for (start, end) in sets {
        let Some(set) = frame.get(start..end) else {
            continue;
        };
        for e in batch::split(set) {
            let crc_at = match e {
                Entry::Batch { start: s, .. } => {
                    batches += 1;
                    s + batch::BATCH_CRC_OFFSET
                }
                // offset (8) and size (4), then the CRC.
                Entry::Legacy { start: s, .. } => {
                    messages += 1;
                    s + 12
                }
                _ => continue,
            };
            for b in &mut out[start + crc_at..start + crc_at + 4] {
                *b = !*b;
            }
        }
    }
    match (batches, messages) {
        (0, 0) => Applied::Unchanged("no record batch in this response".into()),
        (b, 0) => Applied::Changed {
            frame: out,
            detail: plural(b, "batch"),
        },
        (0, m) => Applied::Changed {
            frame: out,
            detail: plural(m, "legacy message"),
        },
        (b, m) => Applied::Changed {
            frame: out,
            detail: format!("{}, {}", plural(b, "batch"), plural(m, "legacy message")),
        },
    }
}

impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mutation::Move {
                field,
                anchor,
                before,
            } => write!(
                f,
                "move {} {} {}",
                registry::name(*field),
                if *before { "before" } else { "after" },
                registry::name(*anchor)
            ),
            Mutation::Omit { field } => write!(f, "omit {}", registry::name(*field)),
            Mutation::Set { field, value } => write!(f, "set {}={value}", registry::name(*field)),
            Mutation::Truncate { bytes } => write!(f, "truncate {bytes}"),
            Mutation::CorruptCrc => f.write_str("corrupt crc"),
        }
    }
}

/// The words a mutation starts with.
pub const KEYWORDS: [&str; 5] = ["move", "omit", "set", "truncate", "corrupt"];

/// What the text forms are, for error messages.
pub const SYNTAX: &str = "move FIELD before|after FIELD, omit FIELD, set FIELD=VALUE, \
truncate N, corrupt crc";

impl std::str::FromStr for Mutation {
    type Err = String;

    /// One of the text forms in the module's table; keywords in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (word, rest) = match s.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (s, ""),
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        match word.to_ascii_lowercase().as_str() {
            "move" => {
                let [field, dir, anchor] = words[..] else {
                    return Err(format!("expected move FIELD before|after FIELD, got {s:?}"));
                };
                let before = match dir.to_ascii_lowercase().as_str() {
                    "before" => true,
                    "after" => false,
                    _ => return Err(format!("expected before or after, got {dir:?}")),
                };
                let (field, anchor) = (field_name(field)?, field_name(anchor)?);
                check_move(field, anchor)?;
                Ok(Mutation::Move {
                    field,
                    anchor,
                    before,
                })
            }
            "omit" => match words[..] {
                [field] => Ok(Mutation::Omit {
                    field: field_name(field)?,
                }),
                _ => Err(format!("expected omit FIELD, got {s:?}")),
            },
            "set" => {
                let Some((name, value)) = rest.split_once('=') else {
                    return Err(format!("expected set FIELD=VALUE, got {s:?}"));
                };
                let field = field_name(name)?;
                let (slot, error_code) = match locate(field) {
                    None => (Slot::Typed(FieldType::Int32), false),
                    Some(l) if l.count => (Slot::Count, false),
                    Some(l) => (
                        Slot::Typed(l.def().ty.clone()),
                        l.def().name.ends_with("error_code"),
                    ),
                };
                let value = SetValue::parse(value, &slot, error_code)
                    .map_err(|e| format!("set {}: {e}", name.trim()))?;
                Ok(Mutation::Set { field, value })
            }
            "truncate" => {
                let n = match words[..] {
                    [n] => n,
                    [n, unit] if unit.eq_ignore_ascii_case("bytes") => n,
                    _ => return Err(format!("expected truncate N (bytes), got {s:?}")),
                };
                n.parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .map(|bytes| Mutation::Truncate { bytes })
                    .ok_or_else(|| format!("truncate: {n:?} is not a number of bytes from 1"))
            }
            "corrupt" => match words[..] {
                [w] if w.eq_ignore_ascii_case("crc") => Ok(Mutation::CorruptCrc),
                _ => Err(format!("expected corrupt crc, got {s:?}")),
            },
            _ => Err(format!("unknown mutation {word:?} (expected {SYNTAX})")),
        }
    }
}

/// A move keeps a field among its siblings: both in the same struct, neither tagged nor an
/// element count (which belongs to its array), and not the same field.
fn check_move(field: FieldId, anchor: FieldId) -> Result<(), String> {
    let (f, a) = (registry::name(field), registry::name(anchor));
    if field == anchor {
        return Err(format!("cannot move {f} relative to itself"));
    }
    let (Some(lf), Some(la)) = (locate(field), locate(anchor)) else {
        return Err(format!(
            "move works on the fields of a response body; {} is not one",
            if locate(field).is_none() { f } else { a }
        ));
    };
    for (l, name) in [(&lf, f), (&la, a)] {
        if l.count {
            return Err(format!(
                "{name} is an element count; it cannot be moved apart from its array"
            ));
        }
        if l.def().tag.is_some() {
            return Err(format!(
                "{name} is a tagged field: its place is the struct's tagged-field section, by tag"
            ));
        }
    }
    let parent = |n: &str| n.rsplit_once('.').map(|(p, _)| p.to_string());
    if lf.api.key != la.api.key || parent(f) != parent(a) {
        return Err(format!(
            "{a} is not a sibling of {f} ({} holds one, {} the other); a field moves only \
             within its struct",
            parent(f).unwrap_or_default(),
            parent(a).unwrap_or_default()
        ));
    }
    Ok(())
}
