//! A frame's field tree as something to edit: fields can be removed, replaced by other bytes or
//! reordered among their siblings, and the tree is written back as a frame whose lengths agree
//! with what it now holds (the size prefix, and in flexible versions each tagged field's size
//! and each tagged-field section's count). Arrays carry element counts, not byte lengths, and
//! structs carry neither, so nothing else in a response depends on the bytes of a field.

use super::value::uvarint;
use crate::fid;
use crate::registry::FieldId;
use crate::tree::{Field, FRAME};

/// One field of the frame: its span, its children (which tile the span) and, once edited, the
/// bytes that replace it.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub id: FieldId,
    pub start: usize,
    pub end: usize,
    /// An element of an array: it carries the array's id.
    pub element: bool,
    /// Bytes written instead of the span (a `set`).
    pub bytes: Option<Vec<u8>>,
    pub children: Vec<Node>,
}

/// Where a node is: child indices from the root.
pub(crate) type Path = Vec<usize>;

impl Node {
    /// The editable form of a dissected field: fields in the frame buffer only; a group whose
    /// children do not tile its span exactly is kept as one opaque leaf (no edit reaches inside).
    pub fn from_field(f: &Field, parent: Option<FieldId>) -> Node {
        let start = f.offset as usize;
        let end = start + f.len as usize;
        let mut children: Vec<Node> = f
            .children
            .iter()
            .filter(|c| c.buffer == FRAME)
            .map(|c| Node::from_field(c, Some(f.id)))
            .collect();
        let mut pos = start;
        let tiles = children.iter().all(|c| {
            let ok = c.start == pos && c.end >= c.start;
            pos = c.end;
            ok
        }) && pos == end;
        if !tiles {
            children.clear();
        }
        Node {
            id: f.id,
            start,
            end,
            element: parent == Some(f.id),
            bytes: None,
            children,
        }
    }

    /// Paths of every occurrence of field `id` (not the elements of an array of that name),
    /// depth first.
    pub fn find(&self, id: FieldId) -> Vec<Path> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        self.find_into(id, &mut path, &mut out);
        out
    }

    fn find_into(&self, id: FieldId, path: &mut Path, out: &mut Vec<Path>) {
        for (i, c) in self.children.iter().enumerate() {
            path.push(i);
            if c.id == id && !c.element {
                out.push(path.clone());
            } else {
                c.find_into(id, path, out);
            }
            path.pop();
        }
    }

    pub fn at(&self, path: &[usize]) -> &Node {
        path.iter().fold(self, |n, i| &n.children[*i])
    }

    pub fn at_mut(&mut self, path: &[usize]) -> &mut Node {
        path.iter().fold(self, |n, i| &mut n.children[*i])
    }

    /// The node's bytes as they now are.
    pub fn write(&self, frame: &[u8], out: &mut Vec<u8>) {
        if let Some(b) = &self.bytes {
            out.extend_from_slice(b);
            return;
        }
        if self.children.is_empty() {
            out.extend_from_slice(frame.get(self.start..self.end).unwrap_or_default());
            return;
        }
        if self.id == fid!("kafka.tagged_fields")
            && self.children[0].id == fid!("kafka.tagged_fields.count")
        {
            let entries = &self.children[1..];
            out.extend_from_slice(&uvarint(entries.len() as u64));
            entries.iter().for_each(|c| c.write(frame, out));
        } else if self.id == fid!("kafka.tagged_field")
            && self.children.len() >= 2
            && self.children[1].id == fid!("kafka.tagged_field.size")
        {
            let mut data = Vec::new();
            self.children[2..]
                .iter()
                .for_each(|c| c.write(frame, &mut data));
            self.children[0].write(frame, out);
            out.extend_from_slice(&uvarint(data.len() as u64));
            out.extend_from_slice(&data);
        } else if self.id == fid!("kafka.response") && self.children[0].id == fid!("kafka.length") {
            let mut rest = Vec::new();
            self.children[1..]
                .iter()
                .for_each(|c| c.write(frame, &mut rest));
            out.extend_from_slice(&(rest.len() as i32).to_be_bytes());
            out.extend_from_slice(&rest);
        } else {
            self.children.iter().for_each(|c| c.write(frame, out));
        }
    }
}
