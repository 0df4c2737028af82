//! The walk's layouts, compiled: for every API, version and direction, the schema's fields
//! that version has on the wire, flattened into a list of steps, so that a walk of a frame
//! only reads (the versions, tags, nullability and flexibility of each field were decided
//! when the list was made, once, from the same schema table the dissector reads).

use std::sync::OnceLock;

use crate::registry::{self, FieldId};
use crate::schema::{ApiSchema, FieldDef, FieldType};

/// One step of a walk.
#[derive(Debug, Clone, Copy)]
pub(super) enum Step {
    /// A value. `nullable`: a null is allowed here in this version (never for an element of an
    /// array of values, which the dissector never takes as nullable).
    Value {
        id: FieldId,
        ty: &'static FieldType,
        nullable: bool,
    },
    /// An array's count, then the next `body` steps once per element.
    Array {
        id: FieldId,
        nullable: bool,
        body: u32,
    },
    /// A nullable struct's presence byte (negative: null), then the next `body` steps.
    Optional { id: FieldId, body: u32 },
    /// A tagged-field section (the end of a flexible version's struct).
    Tags,
}

/// The steps of one API version's request and response bodies.
struct Layouts {
    request: Box<[Step]>,
    response: Box<[Step]>,
}

/// By API key, then by version from the API's first.
type Table = Vec<Vec<Layouts>>;

/// The steps of the body of `api`'s version `version` (`response`: its response's); `None` for
/// a version the schema table does not have.
pub(super) fn steps(api: &ApiSchema, version: i16, response: bool) -> Option<&'static [Step]> {
    static TABLE: OnceLock<Table> = OnceLock::new();
    let layouts = TABLE
        .get_or_init(build)
        .get(usize::try_from(api.key).ok()?)?
        .get(usize::try_from(version.checked_sub(api.versions.min)?).ok()?)?;
    Some(if response {
        &layouts.response
    } else {
        &layouts.request
    })
}

fn build() -> Table {
    let mut table: Table = Vec::new();
    for (key, api) in &registry::catalog().apis {
        let Ok(key) = usize::try_from(*key) else {
            continue;
        };
        if table.len() <= key {
            table.resize_with(key + 1, Vec::new);
        }
        table[key] = (api.versions.min..=api.versions.max)
            .map(|version| Layouts {
                request: compile(&api.request, api, version),
                response: compile(&api.response, api, version),
            })
            .collect();
    }
    table
}

fn compile(fields: &'static [FieldDef], api: &ApiSchema, version: i16) -> Box<[Step]> {
    let mut steps = Vec::new();
    push_struct(&mut steps, fields, version, api.is_flexible(version));
    steps.into_boxed_slice()
}

/// The steps of a struct: its fields on the wire in `version` (tagged ones are in the section
/// at its end, which flexible versions have).
fn push_struct(steps: &mut Vec<Step>, fields: &'static [FieldDef], version: i16, flexible: bool) {
    for f in fields
        .iter()
        .filter(|f| f.versions.contains(version) && f.tag.is_none())
    {
        let nullable = f.nullable.contains(version);
        match &f.ty {
            FieldType::Struct if nullable => {
                let at = open(steps, Step::Optional { id: f.id, body: 0 });
                push_struct(steps, &f.children, version, flexible);
                close(steps, at);
            }
            FieldType::Struct => push_struct(steps, &f.children, version, flexible),
            FieldType::Array(inner) => {
                let at = open(
                    steps,
                    Step::Array {
                        id: f.id,
                        nullable,
                        body: 0,
                    },
                );
                match &**inner {
                    FieldType::Struct => push_struct(steps, &f.children, version, flexible),
                    ty => steps.push(Step::Value {
                        id: f.id,
                        ty,
                        nullable: false,
                    }),
                }
                close(steps, at);
            }
            ty => steps.push(Step::Value {
                id: f.id,
                ty,
                nullable,
            }),
        }
    }
    if flexible {
        steps.push(Step::Tags);
    }
}

/// Pushes a step that holds the steps after it; [`close`] says how many.
fn open(steps: &mut Vec<Step>, step: Step) -> usize {
    steps.push(step);
    steps.len() - 1
}

fn close(steps: &mut [Step], at: usize) {
    let n = u32::try_from(steps.len() - at - 1).unwrap_or(u32::MAX);
    if let Step::Array { body, .. } | Step::Optional { body, .. } = &mut steps[at] {
        *body = n;
    }
}
