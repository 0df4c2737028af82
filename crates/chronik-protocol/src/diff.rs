//! Two dissections of the same API and version compared field by field: what a replay shows
//! between a recorded response and a live one.
//!
//! Fields are aligned by registry name and position: the k-th child named `x` of a node on one
//! side is paired with the k-th child named `x` of the same node on the other side, so array
//! elements pair by index, record batches and records by their place in the record set. Each
//! pair (or field without a partner) gives at most one [`Difference`]:
//!
//! - [`Change::Changed`]: the value differs (for bytes: their content; a group: null on one
//!   side only);
//! - [`Change::Added`] / [`Change::Missing`]: the field (with everything under it) is only in the
//!   new / the old dissection;
//! - [`Change::Shifted`]: the same value at a different place in the frame, by more than the
//!   differences before it explain (a field that grew or appeared moves everything after it;
//!   that is said once, by that field, not by every field behind it).
//!
//! Sizes and checksums that follow from the bytes they cover (`kafka.length`,
//! `record_set.size`, `record_batch.batch_length`, `record.length`, `message.message_size`,
//! `kafka.tagged_field.size`, CRCs) are not compared by value: the fields they cover are. A CRC
//! is compared by whether it checks. A compressed batch is compared by its records once both
//! sides decompressed it, not by its compressed bytes.
//!
//! Fields the caller ignores (a predicate over registry ids; a group ignores everything under
//! it) are still compared and reported, marked [`Difference::ignored`], so a view can show them
//! dimmed; their size changes explain the shifts after them like any other difference.

use serde::Serialize;

use crate::registry::{self, FieldId};
use crate::schema::FieldType;
use crate::tree::{BufferId, DecodeError, Dissection, Field, Value, FRAME};

/// One frame and its dissection.
#[derive(Clone, Copy)]
pub struct Side<'a> {
    pub dissection: &'a Dissection,
    /// The frame the dissection was made from, size prefix included.
    pub frame: &'a [u8],
}

impl<'a> Side<'a> {
    pub fn new(dissection: &'a Dissection, frame: &'a [u8]) -> Side<'a> {
        Side { dissection, frame }
    }

    fn bytes(&self, f: &Field, start: u32, len: u32) -> &'a [u8] {
        let buf = self.dissection.buffer(self.frame, f.buffer);
        let s = start as usize;
        buf.get(s..s.saturating_add(len as usize)).unwrap_or(&[])
    }
}

/// How a field differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Present on both sides with different values.
    Changed,
    /// Only in the new dissection.
    Added,
    /// Only in the old dissection.
    Missing,
    /// The same value, at a place the differences before it do not explain.
    Shifted,
}

impl Change {
    pub fn word(self) -> &'static str {
        match self {
            Change::Changed => "changed",
            Change::Added => "added",
            Change::Missing => "missing",
            Change::Shifted => "shifted",
        }
    }
}

/// One side of a difference: where the field is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    /// Child indices from the dissection's root down to the field (for a view to select it).
    pub at: Vec<u32>,
    /// The buffer its span points into (0: the frame).
    pub buffer: BufferId,
    pub offset: u32,
    pub len: u32,
    /// The value as text: `3`, `"abc"`, `null`, bytes as text or hex, `2 elements` for an
    /// array, `{…}` for a struct.
    pub value: String,
}

impl Located {
    /// `@12+4`, with the buffer when it is not the frame (`@b1:12+4`).
    pub fn span(&self) -> String {
        if self.buffer == FRAME {
            format!("@{}+{}", self.offset, self.len)
        } else {
            format!("@b{}:{}+{}", self.buffer, self.offset, self.len)
        }
    }
}

/// One field that differs between the two dissections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The field's registry id (its dotted name in JSON).
    #[serde(serialize_with = "ser_id")]
    pub field: FieldId,
    /// Where it is, with element indices: `produce.response.responses[0].partition_responses[0].base_offset`.
    pub path: String,
    pub change: Change,
    pub old: Option<Located>,
    pub new: Option<Located>,
    /// The caller asked to ignore this field (or a group holding it).
    pub ignored: bool,
}

fn ser_id<S: serde::Serializer>(id: &FieldId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(registry::name(*id))
}

impl Difference {
    /// The registry name of the field.
    pub fn name(&self) -> &'static str {
        registry::name(self.field)
    }

    /// `PATH OLD -> NEW`, `PATH added VALUE @SPAN`, `PATH missing VALUE @SPAN` or `PATH VALUE
    /// shifted @A -> @B`.
    pub fn describe(&self) -> String {
        let value = |l: &Option<Located>| l.as_ref().map_or(String::new(), |l| l.value.clone());
        let span = |l: &Option<Located>| l.as_ref().map_or(String::new(), Located::span);
        let spaced = |v: String| if v.is_empty() { v } else { format!(" {v}") };
        match self.change {
            Change::Changed => {
                format!("{} {} -> {}", self.path, value(&self.old), value(&self.new))
            }
            Change::Added => format!(
                "{} added{} {}",
                self.path,
                spaced(value(&self.new)),
                span(&self.new)
            ),
            Change::Missing => format!(
                "{} missing{} {}",
                self.path,
                spaced(value(&self.old)),
                span(&self.old)
            ),
            Change::Shifted => format!(
                "{}{} shifted {} -> {}",
                self.path,
                spaced(value(&self.old)),
                span(&self.old),
                span(&self.new)
            ),
        }
    }
}

/// The comparison of two dissections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// Every differing field, ignored ones included, in frame order.
    pub differences: Vec<Difference>,
    /// Where decoding stopped on each side, when it did on either and not at the same place
    /// for the same reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode: Option<(Option<DecodeError>, Option<DecodeError>)>,
}

impl Diff {
    /// The differences that count: not ignored.
    pub fn counted(&self) -> impl Iterator<Item = &Difference> {
        self.differences.iter().filter(|d| !d.ignored)
    }

    /// Whether anything differs outside what is ignored.
    pub fn is_same(&self) -> bool {
        self.decode.is_none() && self.counted().next().is_none()
    }
}

/// Compares `old` with `new`; `ignore` says which registry ids the caller does not count.
pub fn diff(old: Side<'_>, new: Side<'_>, ignore: &dyn Fn(FieldId) -> bool) -> Diff {
    let mut w = Walker {
        old,
        new,
        ignore,
        shift: 0,
        out: Vec::new(),
    };
    let (o, n) = (&old.dissection.root, &new.dissection.root);
    let ignored = ignore(o.id);
    w.children(o, n, &mut Vec::new(), &mut Vec::new(), "", None, ignored);
    let decode = match (&old.dissection.error, &new.dissection.error) {
        (None, None) => None,
        (a, b) if a == b => None,
        (a, b) => Some((a.clone(), b.clone())),
    };
    Diff {
        differences: w.out,
        decode,
    }
}

/// Fields compared by what they cover, not by value.
fn derived(id: FieldId) -> bool {
    matches!(
        registry::name(id),
        "kafka.length"
            | "record_set.size"
            | "record_batch.batch_length"
            | "record.length"
            | "message.message_size"
            | "kafka.tagged_field.size"
    )
}

fn is_crc(id: FieldId) -> bool {
    matches!(registry::name(id), "record_batch.crc" | "message.crc")
}

/// Compressed bytes whose records a sibling `*.decompressed` group holds.
fn compressed_bytes(id: FieldId) -> bool {
    matches!(
        registry::name(id),
        "record_batch.compressed" | "message.value"
    )
}

fn crc_checks(f: &Field) -> bool {
    !f.note
        .as_deref()
        .is_some_and(|n| n.starts_with("CRC mismatch"))
}

fn is_decompressed(f: &Field) -> bool {
    f.name().ends_with(".decompressed")
}

/// The part of a field's name that its parent's name does not already say: the name without
/// the dotted segments both share (`produce.response.responses` under `produce.response` is
/// `responses`, `kafka.correlation_id` under `kafka.response_header` is `correlation_id`,
/// `record_batch` under a `records` field is `record_batch`); empty for an array element,
/// which has its array's name. At the root, the whole name.
fn segment<'n>(name: &'n str, parent: Option<&str>) -> &'n str {
    let Some(parent) = parent else { return name };
    if name == parent {
        return "";
    }
    let mut cut = 0;
    for (i, (a, b)) in name.split('.').zip(parent.split('.')).enumerate() {
        if a != b {
            break;
        }
        cut += a.len() + usize::from(i > 0);
    }
    name[cut..].trim_start_matches('.')
}

struct Walker<'a, 'i> {
    old: Side<'a>,
    new: Side<'a>,
    ignore: &'i dyn Fn(FieldId) -> bool,
    /// How far the new frame's fields sit behind the old one's, as the differences so far
    /// explain (new offset - old offset).
    shift: i64,
    out: Vec<Difference>,
}

impl Walker<'_, '_> {
    fn located(&self, side: Side<'_>, f: &Field, at: &[u32]) -> Located {
        Located {
            at: at.to_vec(),
            buffer: f.buffer,
            offset: f.offset,
            len: f.len,
            value: value_text(side, f),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        f: FieldId,
        path: &str,
        change: Change,
        old: Option<(&Field, &[u32])>,
        new: Option<(&Field, &[u32])>,
        ignored: bool,
    ) {
        let old = old.map(|(f, at)| self.located(self.old, f, at));
        let new = new.map(|(f, at)| self.located(self.new, f, at));
        self.out.push(Difference {
            field: f,
            path: path.to_string(),
            change,
            old,
            new,
            ignored,
        });
    }

    /// Moves the explained shift by how much longer the new field is than the old one (both
    /// in the frame).
    fn explain(&mut self, old: Option<&Field>, new: Option<&Field>) {
        let len = |f: Option<&Field>| {
            f.filter(|f| f.buffer == FRAME)
                .map_or(0, |f| i64::from(f.len))
        };
        // A field only on one side counts only when it lies in the frame.
        self.shift += len(new) - len(old);
    }

    /// Compares two fields aligned with each other (same registry id, same position).
    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        old: &Field,
        new: &Field,
        old_at: &mut Vec<u32>,
        new_at: &mut Vec<u32>,
        path: &str,
        ignored: bool,
    ) {
        let id = old.id;
        let leaf = old.children.is_empty() && new.children.is_empty();
        if derived(id) {
            self.explain(Some(old), Some(new));
            return;
        }
        if is_crc(id) {
            if crc_checks(old) != crc_checks(new) {
                self.push(
                    id,
                    path,
                    Change::Changed,
                    Some((old, old_at)),
                    Some((new, new_at)),
                    ignored,
                );
            }
            self.explain(Some(old), Some(new));
            return;
        }
        let null = |f: &Field| f.value == Value::Null;
        if !leaf && null(old) == null(new) {
            self.children(old, new, old_at, new_at, path, Some(old.name()), ignored);
            return;
        }
        let both_in_frame = old.buffer == FRAME && new.buffer == FRAME;
        let end_shift = i64::from(new.offset + new.len) - i64::from(old.offset + old.len);
        if null(old) != null(new) || !self.same_value(old, new) {
            self.push(
                id,
                path,
                Change::Changed,
                Some((old, old_at)),
                Some((new, new_at)),
                ignored,
            );
            if both_in_frame {
                // A changed field explains where the fields after it are.
                self.shift = end_shift;
            }
            return;
        }
        if both_in_frame {
            let moved = i64::from(new.offset) - i64::from(old.offset);
            if moved != self.shift || old.len != new.len {
                self.push(
                    id,
                    path,
                    Change::Shifted,
                    Some((old, old_at)),
                    Some((new, new_at)),
                    ignored,
                );
                // From here on, fields are expected where this one's end puts them.
                self.shift = end_shift;
            }
        }
    }

    fn same_value(&self, old: &Field, new: &Field) -> bool {
        match (&old.value, &new.value) {
            (Value::Bytes { start: a, len: la }, Value::Bytes { start: b, len: lb }) => {
                self.old.bytes(old, *a, *la) == self.new.bytes(new, *b, *lb)
            }
            (a, b) => a == b,
        }
    }

    /// Aligns and compares the children of two aligned groups (`parent`: their name, none at
    /// the root).
    #[allow(clippy::too_many_arguments)]
    fn children(
        &mut self,
        old: &Field,
        new: &Field,
        old_at: &mut Vec<u32>,
        new_at: &mut Vec<u32>,
        path: &str,
        parent: Option<&str>,
        ignored: bool,
    ) {
        let both_decompressed =
            old.children.iter().any(is_decompressed) && new.children.iter().any(is_decompressed);
        let pairs = align(&old.children, &new.children);
        for p in pairs.iter() {
            let of = p.old.map(|i| &old.children[i]);
            let nf = p.new.map(|i| &new.children[i]);
            let Some(any) = of.or(nf) else { continue };
            if both_decompressed && compressed_bytes(any.id) {
                self.explain(of, nf);
                continue;
            }
            let child_ignored = ignored || (self.ignore)(any.id);
            let seg = segment(any.name(), parent);
            let mut child_path = match (path.is_empty(), seg.is_empty()) {
                (_, true) => path.to_string(),
                (true, false) => seg.to_string(),
                (false, false) => format!("{path}.{seg}"),
            };
            let element = seg.is_empty() || matches!(any.value, Value::Element(_));
            if element || p.repeated {
                child_path.push_str(&format!("[{}]", p.occurrence));
            }
            match (of, nf) {
                (Some(o), Some(n)) => {
                    old_at.push(p.old.unwrap_or_default() as u32);
                    new_at.push(p.new.unwrap_or_default() as u32);
                    self.node(o, n, old_at, new_at, &child_path, child_ignored);
                    old_at.pop();
                    new_at.pop();
                }
                (Some(o), None) => {
                    old_at.push(p.old.unwrap_or_default() as u32);
                    self.push(
                        o.id,
                        &child_path,
                        Change::Missing,
                        Some((o, old_at)),
                        None,
                        child_ignored,
                    );
                    old_at.pop();
                    self.explain(Some(o), None);
                }
                (None, Some(n)) => {
                    new_at.push(p.new.unwrap_or_default() as u32);
                    self.push(
                        n.id,
                        &child_path,
                        Change::Added,
                        None,
                        Some((n, new_at)),
                        child_ignored,
                    );
                    new_at.pop();
                    self.explain(None, Some(n));
                }
                (None, None) => {}
            }
        }
    }
}

/// Two children paired by [`align`]: their indices on each side, the occurrence of their
/// registry id among their siblings (an array element's index), and whether either side has
/// more than one child of that id.
struct Pair {
    old: Option<usize>,
    new: Option<usize>,
    occurrence: usize,
    repeated: bool,
}

/// Pairs two child lists: the k-th child of a registry id on one side with the k-th of that id
/// on the other. The pairs come in the order of the old side, each child found only on the new
/// side placed after the pair that precedes it there.
fn align(old: &[Field], new: &[Field]) -> Vec<Pair> {
    use std::collections::HashMap;
    let keys = |list: &[Field], counts: &mut HashMap<FieldId, usize>| {
        list.iter()
            .map(|f| {
                let k = counts.entry(f.id).or_default();
                *k += 1;
                (f.id, *k - 1)
            })
            .collect::<Vec<_>>()
    };
    let (mut co, mut cn) = (HashMap::new(), HashMap::new());
    let (ko, kn) = (keys(old, &mut co), keys(new, &mut cn));
    let repeated = |id: &FieldId| {
        co.get(id)
            .copied()
            .unwrap_or(0)
            .max(cn.get(id).copied().unwrap_or(0))
            > 1
    };
    let new_index: HashMap<(FieldId, usize), usize> =
        kn.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let old_index: HashMap<(FieldId, usize), usize> =
        ko.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let pair = |old: Option<usize>, new: Option<usize>, k: (FieldId, usize)| Pair {
        old,
        new,
        occurrence: k.1,
        repeated: repeated(&k.0),
    };
    let mut out = Vec::with_capacity(old.len().max(new.len()));
    let mut next_new = 0;
    // The children only on the new side before its position `upto`.
    let flush = |out: &mut Vec<Pair>, next_new: &mut usize, upto: usize| {
        while *next_new < upto {
            let k = kn[*next_new];
            if !old_index.contains_key(&k) {
                out.push(pair(None, Some(*next_new), k));
            }
            *next_new += 1;
        }
    };
    for (i, k) in ko.iter().enumerate() {
        match new_index.get(k) {
            Some(&j) => {
                flush(&mut out, &mut next_new, j);
                out.push(pair(Some(i), Some(j), *k));
                next_new = next_new.max(j + 1);
            }
            None => out.push(pair(Some(i), None, *k)),
        }
    }
    flush(&mut out, &mut next_new, new.len());
    out
}

/// A field's value as a difference shows it.
fn value_text(side: Side<'_>, f: &Field) -> String {
    match &f.value {
        Value::Group | Value::Element(_) => {
            let is_array = matches!(
                registry::catalog().entries[f.id.0 as usize].kind,
                FieldType::Array(_)
            ) && !matches!(f.value, Value::Element(_));
            if is_array {
                let n = f.children.iter().filter(|c| c.id == f.id).count();
                format!("{n} element{}", if n == 1 { "" } else { "s" })
            } else if f.children.is_empty() {
                String::new()
            } else {
                "{…}".into()
            }
        }
        Value::Int(v) => v.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Str(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        Value::Uuid(u) => u.clone(),
        Value::Bytes { start, len } => crate::tree::bytes_text(side.bytes(f, *start, *len)),
    }
}

#[cfg(test)]
mod tests;
