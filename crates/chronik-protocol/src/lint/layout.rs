//! The catalogue of plausible layouts: the ways a sender gets a frame's layout wrong, tried in
//! order of how often they happen, on a frame that leaves bytes over or falls short. The first
//! that reads the frame cleanly to its last byte is the finding.

use super::{Code, Finding, Side};
use crate::dissect::{dissect_request_as, dissect_response_as, Layout, Limits};
use crate::registry::{self, FieldId};
use crate::schema::{ApiSchema, FieldDef, FieldType};
use crate::tree::{Dissection, Field};

/// Frames larger than this are not read again (each trial may read the whole frame).
const MAX_FRAME: usize = 4 << 20;
/// Most layouts tried on one frame.
const MAX_TRIALS: usize = 400;
/// Most bytes all the trials on one frame may read together: a large frame gets fewer
/// trials, so a hostile one costs a bounded multiple of its size.
pub(super) const BUDGET_BYTES: usize = 32 << 20;

/// How many readings of a frame of `len` bytes the budget allows, at most `most`.
pub(super) fn trials_for(len: usize, most: usize) -> usize {
    (BUDGET_BYTES / len.max(1)).clamp(1, most)
}

/// One struct's fields on the wire at a version (tagged fields aside), in the spec's order.
struct List<'a> {
    depth: usize,
    fields: Vec<&'a FieldDef>,
}

#[derive(Clone, Copy)]
enum Trial {
    /// `lists[list].fields[from]` read at index `to`.
    Move { list: usize, from: usize, to: usize },
    /// `lists[list].fields[at]` not there.
    Omit { list: usize, at: usize },
    /// The body in another version.
    Version(i16),
    /// The header in another header version.
    Header(i16),
}

/// The layout that explains a frame the spec's layout does not read cleanly, as a finding and
/// the frame read that way (whole, for the value checks and the byte ranges).
pub(super) fn explain(
    frame: &[u8],
    side: Side,
    key: i16,
    version: i16,
) -> Option<(Finding, Dissection)> {
    let api = registry::api(key).filter(|a| a.versions.contains(version))?;
    if frame.len() > MAX_FRAME {
        return None;
    }
    let fields = match side {
        Side::Request => &api.request,
        Side::Response => &api.response,
    };
    let mut lists = Vec::new();
    collect(fields, version, 0, &mut lists);
    let trials = catalogue(api, side, version, &lists);
    let read = |t: Trial, limits: Limits| -> Dissection {
        let layout = layout_of(api, side, &lists, t);
        let v = match t {
            Trial::Version(w) => w,
            _ => version,
        };
        match side {
            Side::Request => dissect_request_as(frame, layout, limits),
            Side::Response => dissect_response_as(frame, key, v, layout, limits),
        }
    };
    let winner = trials
        .into_iter()
        .take(trials_for(frame.len(), MAX_TRIALS))
        .find(|t| clean(&read(*t, Limits::CHECK_ONLY)))?;
    let reading = read(winner, Limits::default());
    let finding = describe(api, side, version, &lists, winner, &reading);
    Some((finding, reading))
}

/// Whether a dissection read the frame to its last byte as a known layout.
pub(super) fn clean(d: &Dissection) -> bool {
    d.error.is_none() && super::leftovers(d) == (None, false)
}

fn collect<'a>(fields: &'a [FieldDef], version: i16, depth: usize, out: &mut Vec<List<'a>>) {
    let on_wire: Vec<&FieldDef> = fields
        .iter()
        .filter(|f| f.versions.contains(version) && f.tag.is_none())
        .collect();
    let nested: Vec<&FieldDef> = on_wire
        .iter()
        .copied()
        .filter(|f| f.ty.has_children())
        .collect();
    out.push(List {
        depth,
        fields: on_wire,
    });
    for f in nested {
        collect(&f.children, version, depth + 1, out);
    }
}

/// The trials in the order they are tried: the header version off by one; the body's own
/// fields moved to its front or end, then left out; the version off by one; the same inside nested
/// structs; then every other position.
fn catalogue(api: &ApiSchema, side: Side, version: i16, lists: &[List]) -> Vec<Trial> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut moves = |out: &mut Vec<Trial>, deep: bool, ends_only: bool| {
        for (li, l) in lists.iter().enumerate() {
            if (l.depth > 0) != deep {
                continue;
            }
            let n = l.fields.len();
            // Plain values first: a misplaced scalar is likelier than a misplaced array.
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&i| l.fields[i].ty.has_children() || is_array(l.fields[i]));
            for from in order {
                for to in 0..n {
                    let end = to == 0 || to + 1 == n;
                    if to == from || end != ends_only {
                        continue;
                    }
                    let mut ids: Vec<FieldId> = l.fields.iter().map(|f| f.id).collect();
                    let id = ids.remove(from);
                    ids.insert(to, id);
                    if seen.insert((li, ids)) {
                        out.push(Trial::Move { list: li, from, to });
                    }
                }
            }
        }
    };
    let omits = |out: &mut Vec<Trial>, deep: bool| {
        for (li, l) in lists.iter().enumerate() {
            if (l.depth > 0) == deep {
                out.extend((0..l.fields.len()).map(|at| Trial::Omit { list: li, at }));
            }
        }
    };
    // A header in the wrong version differs by one byte (the tagged-field count) from the
    // right one, as does leaving out an empty compact field: the known bug class goes first.
    let header = header_version(api, side, version);
    out.push(Trial::Header(match (side, header) {
        (Side::Request, 2) => 1,
        (Side::Request, _) => 2,
        (Side::Response, 0) => 1,
        (Side::Response, _) => 0,
    }));
    moves(&mut out, false, true);
    omits(&mut out, false);
    for w in [version - 1, version + 1] {
        if api.versions.contains(w) {
            out.push(Trial::Version(w));
        }
    }
    moves(&mut out, true, true);
    omits(&mut out, true);
    moves(&mut out, false, false);
    moves(&mut out, true, false);
    out
}

fn is_array(f: &FieldDef) -> bool {
    matches!(f.ty, FieldType::Array(_) | FieldType::Records)
}

fn header_version(api: &ApiSchema, side: Side, version: i16) -> i16 {
    match side {
        Side::Request => api.request_header_version(version),
        Side::Response => api.response_header_version(version),
    }
}

fn layout_of(api: &ApiSchema, side: Side, lists: &[List], t: Trial) -> Layout {
    match t {
        Trial::Move { list, from, to } => Layout {
            moved: Some((lists[list].fields[from].id, to)),
            ..Layout::default()
        },
        Trial::Omit { list, at } => Layout {
            omitted: Some(lists[list].fields[at].id),
            ..Layout::default()
        },
        // A request's body in another version comes with that version's header.
        Trial::Version(w) if side == Side::Request => Layout {
            body_version: Some(w),
            header_version: Some(header_version(api, side, w)),
            ..Layout::default()
        },
        Trial::Version(_) => Layout::default(),
        Trial::Header(h) => Layout {
            header_version: Some(h),
            ..Layout::default()
        },
    }
}

/// Where the spec has a field among its siblings: `after responses`, `first, before acks`.
fn spec_place(l: &List, i: usize) -> String {
    match i {
        0 if l.fields.len() > 1 => format!("first, before {}", short(l.fields[1])),
        0 => "alone".into(),
        _ => format!("after {}", short(l.fields[i - 1])),
    }
}

fn short(f: &FieldDef) -> &'static str {
    registry::short_name(f.id)
}

/// The first field with this id in a reading, as a byte span.
fn span_of(reading: &Dissection, id: FieldId) -> Option<(usize, usize)> {
    let mut found = None;
    reading.root.walk(0, &mut |f: &Field, _| {
        if found.is_none() && f.id == id && f.buffer == crate::tree::FRAME {
            found = Some((f.offset as usize, (f.offset + f.len) as usize));
        }
    });
    found
}

fn describe(
    api: &ApiSchema,
    side: Side,
    version: i16,
    lists: &[List],
    t: Trial,
    reading: &Dissection,
) -> Finding {
    let whole = |name: &str| -> (usize, usize) {
        reading
            .root
            .children
            .iter()
            .find(|c| registry::name(c.id).ends_with(name))
            .map(|c| (c.offset as usize, (c.offset + c.len) as usize))
            .unwrap_or((0, 0))
    };
    let body = whole(side.word());
    match t {
        Trial::Move { list, from, to } => {
            let l = &lists[list];
            let mut order = l.fields.clone();
            let f = order.remove(from);
            order.insert(to, f);
            let (rel, nb) = if to < from {
                ("before", order[to + 1])
            } else {
                ("after", order[to - 1])
            };
            let (s, e) = span_of(reading, f.id).unwrap_or(body);
            Finding::new(
                Code::FieldMisplaced,
                side,
                format!("{} sent {rel} {}", short(f), short(nb)),
                s,
                e,
            )
            .with_fix(format!(
                "decodes cleanly, nothing left over, with {} read {rel} {}; {} v{version} has it {}",
                registry::name(f.id),
                short(nb),
                api.name,
                spec_place(l, from)
            ))
        }
        Trial::Omit { list, at } => {
            let l = &lists[list];
            let f = l.fields[at];
            let s = match at {
                0 => l
                    .fields
                    .get(1)
                    .and_then(|n| span_of(reading, n.id))
                    .map(|x| x.0),
                _ => span_of(reading, l.fields[at - 1].id).map(|x| x.1),
            }
            .unwrap_or(body.1);
            Finding::new(
                Code::FieldMissing,
                side,
                format!("{} missing", short(f)),
                s,
                s,
            )
            .with_fix(format!(
                "decodes cleanly, nothing left over, without {} ({}); {} v{version} has it {}",
                registry::name(f.id),
                f.ty.label(),
                api.name,
                spec_place(l, at)
            ))
        }
        Trial::Version(w) => {
            let said = match side {
                Side::Request => "its header says",
                Side::Response => "its request was",
            };
            Finding::new(
                Code::VersionMismatch,
                side,
                format!(
                    "{} {} laid out as v{w}; {said} v{version}",
                    api.name,
                    side.word()
                ),
                body.0,
                body.1,
            )
            .with_fix(format!(
                "decodes cleanly, nothing left over, as {} v{w}",
                api.name
            ))
        }
        Trial::Header(h) => {
            let due = header_version(api, side, version);
            let (s, e) = whole("_header");
            Finding::new(
                Code::HeaderVersion,
                side,
                format!(
                    "{} header v{h} where {} v{version} calls for v{due}",
                    side.word(),
                    api.name
                ),
                s,
                e,
            )
            .with_fix(format!(
                "decodes cleanly, nothing left over, with a v{h} header{}",
                if h > due || (side == Side::Request && h == 2) {
                    " (tagged fields after it)"
                } else {
                    " (no tagged fields)"
                }
            ))
        }
    }
}
