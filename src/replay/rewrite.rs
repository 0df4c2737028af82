//! Identifiers a broker hands out, carried from responses into later requests. A session goes
//! on with what its broker told it: the member id from JoinGroup, the generation, the fetch
//! session, the producer id, topic ids. The live broker hands out others; so each live response
//! is compared with the recorded one, and where such an identifier differs, the recorded value
//! is replaced by the live one in every request sent after (its size prefix fixed, and a
//! record batch's CRC recomputed when it covers the producer id).

use std::collections::HashMap;

use crate::protocol::batch::{self, BATCH_CRC_OFFSET};
use crate::protocol::diff::{Change, Diff};
use crate::protocol::registry;
use crate::protocol::{dissect_request, Dissection, Field, Value};

/// The kinds of identifiers carried from responses to requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    MemberId,
    Generation,
    FetchSession,
    ProducerId,
    ProducerEpoch,
    TopicId,
}

impl Kind {
    /// The kind of a response field that hands out an identifier.
    fn of_response(name: &str) -> Option<Kind> {
        let short = name.rsplit('.').next().unwrap_or(name);
        Some(match short {
            "member_id" => Kind::MemberId,
            "leader" if name == "join_group.response.leader" => Kind::MemberId,
            "generation_id" => Kind::Generation,
            "session_id" if name == "fetch.response.session_id" => Kind::FetchSession,
            "producer_id" => Kind::ProducerId,
            "producer_epoch" => Kind::ProducerEpoch,
            "topic_id" => Kind::TopicId,
            _ => return None,
        })
    }

    /// The kind of a request field that carries an identifier.
    fn of_request(name: &str) -> Option<Kind> {
        let short = name.rsplit('.').next().unwrap_or(name);
        Some(match short {
            "member_id" => Kind::MemberId,
            "generation_id" | "generation_id_or_member_epoch" => Kind::Generation,
            "session_id" if name == "fetch.request.session_id" => Kind::FetchSession,
            "producer_id" | "v3_and_below_producer_id" => Kind::ProducerId,
            "producer_epoch" | "v3_and_below_producer_epoch" => Kind::ProducerEpoch,
            "topic_id" => Kind::TopicId,
            _ => return None,
        })
    }
}

/// An identifier's value as the dissector reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    Int(i64),
    Str(String),
    Uuid(String),
}

impl Id {
    fn of(v: &Value) -> Option<Id> {
        match v {
            Value::Int(i) => Some(Id::Int(*i)),
            Value::Str(s) => Some(Id::Str(s.clone())),
            Value::Uuid(u) => Some(Id::Uuid(u.clone())),
            _ => None,
        }
    }
}

/// Recorded identifiers and the live ones that replace them.
#[derive(Debug, Default)]
pub struct Identities {
    map: HashMap<(Kind, Id), Id>,
}

impl Identities {
    /// Notes that the live broker said `live` where the capture's said `recorded`.
    pub fn learn(&mut self, kind: Kind, recorded: Id, live: Id) {
        if recorded != live {
            self.map.insert((kind, recorded), live);
        }
    }

    /// Learns from a recorded and a live response compared: every identifier that changed.
    pub fn learn_from(&mut self, diff: &Diff, recorded: &Dissection, live: &Dissection) {
        for d in &diff.differences {
            let (Change::Changed, Some(kind), Some(old), Some(new)) =
                (d.change, Kind::of_response(d.name()), &d.old, &d.new)
            else {
                continue;
            };
            let value = |root: &Field, at: &[u32]| {
                at.iter()
                    .try_fold(root, |f, i| f.children.get(*i as usize))
                    .and_then(|f| Id::of(&f.value))
            };
            if let (Some(a), Some(b)) = (value(&recorded.root, &old.at), value(&live.root, &new.at))
            {
                self.learn(kind, a, b);
            }
        }
    }

    /// How many replacements are known.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The request with every identifier it carries that the live broker replaced put in its
    /// place; the frame unchanged when there is none.
    pub fn rewrite(&self, frame: &[u8]) -> Vec<u8> {
        if self.map.is_empty() {
            return frame.to_vec();
        }
        let d = dissect_request(frame);
        let mut edits: Vec<Edit> = Vec::new();
        let mut batches: Vec<(usize, usize)> = Vec::new();
        let flexible = request_is_flexible(frame);
        collect(
            &d.root,
            frame,
            flexible,
            false,
            &self.map,
            &mut edits,
            &mut batches,
        );
        if edits.is_empty() {
            return frame.to_vec();
        }
        edits.sort_by_key(|e| e.at);
        let mut out = Vec::with_capacity(frame.len() + 64);
        let mut pos = 0;
        for e in &edits {
            out.extend_from_slice(&frame[pos..e.at]);
            out.extend_from_slice(&e.bytes);
            pos = e.at + e.len;
        }
        out.extend_from_slice(&frame[pos..]);
        let size = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&size.to_be_bytes());
        for (start, len) in batches {
            // A batch header keeps its size; what came before the batch may not have.
            let shift: isize = edits
                .iter()
                .filter(|e| e.at < start)
                .map(|e| e.bytes.len() as isize - e.len as isize)
                .sum();
            let s = (start as isize + shift) as usize;
            if let Some(b) = out.get_mut(s..s + len) {
                let crc = batch::batch_crc(b);
                b[BATCH_CRC_OFFSET..BATCH_CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
            }
        }
        out
    }
}

/// Whether a request frame's API and version are flexible (compact strings).
fn request_is_flexible(frame: &[u8]) -> bool {
    let Some((key, version, _)) =
        crate::protocol::dissect::peek_request_header(&frame[4.min(frame.len())..])
    else {
        return false;
    };
    registry::api(key).is_some_and(|a| a.is_flexible(version))
}

/// One replacement in a frame.
struct Edit {
    at: usize,
    len: usize,
    bytes: Vec<u8>,
}

/// Finds the identifiers in a request's tree that have a replacement. `fixed` is set inside
/// structures whose size is written down (a tagged field): there only same-size replacements
/// are made. Record batches whose producer id or epoch changes are listed (start, length) for
/// their CRC to be recomputed, when it checked before.
#[allow(clippy::too_many_arguments)]
fn collect(
    f: &Field,
    frame: &[u8],
    flexible: bool,
    fixed: bool,
    map: &HashMap<(Kind, Id), Id>,
    edits: &mut Vec<Edit>,
    batches: &mut Vec<(usize, usize)>,
) {
    if f.buffer != crate::protocol::tree::FRAME {
        return;
    }
    if f.name() == "record_batch" {
        let before = edits.len();
        for c in &f.children {
            collect(c, frame, flexible, true, map, edits, batches);
        }
        let crc_checked = f
            .children
            .iter()
            .find(|c| c.name() == "record_batch.crc")
            .is_some_and(|c| c.note.is_none());
        if edits.len() > before && crc_checked {
            batches.push((f.offset as usize, f.len as usize));
        }
        return;
    }
    let fixed = fixed || f.name() == "kafka.tagged_field";
    if f.children.is_empty() {
        if let Some(e) = edit(f, frame, flexible, fixed, map) {
            edits.push(e);
        }
        return;
    }
    for c in &f.children {
        collect(c, frame, flexible, fixed, map, edits, batches);
    }
}

fn edit(
    f: &Field,
    frame: &[u8],
    flexible: bool,
    fixed: bool,
    map: &HashMap<(Kind, Id), Id>,
) -> Option<Edit> {
    let name = f.name();
    let kind = if name.starts_with("record_batch.") {
        match name {
            "record_batch.producer_id" => Kind::ProducerId,
            "record_batch.producer_epoch" => Kind::ProducerEpoch,
            _ => return None,
        }
    } else {
        Kind::of_request(name)?
    };
    let live = map.get(&(kind, Id::of(&f.value)?))?;
    let (at, len) = (f.offset as usize, f.len as usize);
    let bytes = match (live, &f.value) {
        (Id::Int(v), Value::Int(_)) => match len {
            2 => (*v as i16).to_be_bytes().to_vec(),
            4 => (*v as i32).to_be_bytes().to_vec(),
            8 => v.to_be_bytes().to_vec(),
            _ => return None,
        },
        (Id::Uuid(u), Value::Uuid(_)) if len == 16 => {
            uuid::Uuid::parse_str(u).ok()?.as_bytes().to_vec()
        }
        (Id::Str(s), Value::Str(old)) => {
            // A compact string in flexible versions, else an int16 length.
            len.checked_sub(old.len())?;
            let mut b = Vec::with_capacity(s.len() + 5);
            if flexible {
                let mut n = s.len() as u32 + 1;
                while n >= 0x80 {
                    b.push((n as u8 & 0x7f) | 0x80);
                    n >>= 7;
                }
                b.push(n as u8);
            } else {
                b.extend_from_slice(&(s.len() as i16).to_be_bytes());
            }
            b.extend_from_slice(s.as_bytes());
            b
        }
        _ => return None,
    };
    if fixed && bytes.len() != len {
        return None;
    }
    frame.get(at..at + len)?;
    Some(Edit { at, len, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::diff::{diff, Side};
    use crate::protocol::dissect_response;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    fn string(s: &str) -> Vec<u8> {
        let mut b = (s.len() as i16).to_be_bytes().to_vec();
        b.extend_from_slice(s.as_bytes());
        b
    }

    /// Heartbeat v1 (not flexible): group_id, generation_id, member_id.
    fn heartbeat(generation: i32, member: &str) -> Vec<u8> {
        let mut b = vec![0, 12, 0, 1, 0, 0, 0, 9];
        b.extend(string("kcat"));
        b.extend(string("g"));
        b.extend(generation.to_be_bytes());
        b.extend(string(member));
        frame(&b)
    }

    /// JoinGroup v2 response: throttle, error, generation, protocol, leader, member id, no
    /// members.
    fn join_response(generation: i32, member: &str) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 3, 0, 0, 0, 0, 0, 0];
        b.extend(generation.to_be_bytes());
        b.extend(string("range"));
        b.extend(string(member));
        b.extend(string(member));
        b.extend(0i32.to_be_bytes());
        frame(&b)
    }

    #[test]
    fn identifiers_learned_from_a_response_replace_the_recorded_ones_in_requests() {
        let (old, new) = (
            join_response(1, "kcat-1"),
            join_response(2, "kcat-longer-22"),
        );
        let (a, b) = (dissect_response(&old, 11, 2), dissect_response(&new, 11, 2));
        let d = diff(Side::new(&a, &old), Side::new(&b, &new), &|_| false);
        let mut ids = Identities::default();
        ids.learn_from(&d, &a, &b);
        assert_eq!(ids.len(), 2, "{:?}", ids.map);
        let sent = ids.rewrite(&heartbeat(1, "kcat-1"));
        assert_eq!(sent, heartbeat(2, "kcat-longer-22"));
        // What the live broker did not replace stays.
        assert_eq!(ids.rewrite(&heartbeat(5, "other")), heartbeat(5, "other"));
    }

    #[test]
    fn a_batch_with_a_replaced_producer_id_gets_its_crc_recomputed() {
        // Produce v3: transactional id null, acks, timeout, one topic, one partition, a batch.
        let mut batch = vec![0u8; 61];
        batch[8..12].copy_from_slice(&49i32.to_be_bytes()); // batch length
        batch[16] = 2; // magic
        batch[43..51].copy_from_slice(&1000i64.to_be_bytes()); // producer id
        batch[51..53].copy_from_slice(&0i16.to_be_bytes()); // producer epoch
        let crc = batch::batch_crc(&batch);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        let mut b = vec![
            0, 0, 0, 3, 0, 0, 0, 2, 0, 1, b'c', 0xff, 0xff, 0xff, 0xff, 0, 0, 0x75, 0x30,
        ];
        b.extend(1i32.to_be_bytes());
        b.extend(string("t"));
        b.extend(1i32.to_be_bytes());
        b.extend(0i32.to_be_bytes());
        b.extend((batch.len() as i32).to_be_bytes());
        b.extend(&batch);
        let request = frame(&b);
        let mut ids = Identities::default();
        ids.learn(Kind::ProducerId, Id::Int(1000), Id::Int(4242));
        let sent = ids.rewrite(&request);
        assert_eq!(sent.len(), request.len());
        let d = dissect_request(&sent);
        assert_eq!(
            d.root
                .find("record_batch.producer_id")
                .and_then(Field::as_int),
            Some(4242)
        );
        let crc = d.root.find("record_batch.crc").unwrap();
        assert!(crc.note.is_none(), "the CRC checks: {:?}", crc.note);
        assert_ne!(sent, request);
    }
}
