//! The dissector against an independent oracle, the `kafka-protocol` crate.
//!
//! For every API in the schema table, every version, request and response: random messages with
//! non-default values (and unknown tagged fields) are generated from our schema, decoded by
//! kafka-protocol (which fails or reads other values if our schema is wrong), encoded again by
//! kafka-protocol, and the frame it wrote is dissected. Then:
//! - kafka-protocol's bytes equal ours (same layout both ways),
//! - the dissection has no error and its leaves tile the frame exactly,
//! - every decoded value equals kafka-protocol's value for the field of the same name.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use proptest::prelude::*;

use chronik_tui::protocol::registry::catalog;
use chronik_tui::protocol::schema::{ApiSchema, FieldDef, FieldType};
use chronik_tui::protocol::{dissect_request, dissect_response, Dissection, Field, Value};

/// A generic value, to compare the dissector's tree with kafka-protocol's Debug output.
#[derive(Debug, Clone, PartialEq)]
enum G {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Bytes(Vec<u8>),
    Null,
    List(Vec<G>),
    Map(BTreeMap<String, G>),
}

// ---------------------------------------------------------------------------------------------
// Random encoder driven by our schema.

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
    /// An integer that is never 0, -1 or 1, so it never equals a field's default.
    fn nondefault(&mut self, lo: i64, hi: i64) -> i64 {
        loop {
            let span = (hi as i128 - lo as i128 + 1) as u128;
            let v = (lo as i128 + (self.next() as u128 % span) as i128) as i64;
            if !(-1..=1).contains(&v) {
                return v;
            }
        }
    }
}

struct Gen<'a> {
    rng: &'a mut Rng,
    version: i16,
    flexible: bool,
    out: Vec<u8>,
    /// Inside a tagged field: never null (null is a tagged field's usual default, and a field
    /// at its default is left out rather than sent).
    in_tag: bool,
}

impl Gen<'_> {
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }
    fn len_prefix(&mut self, n: Option<usize>, short: bool) {
        match (self.flexible, n) {
            (true, None) => self.uvarint(0),
            (true, Some(n)) => self.uvarint(n as u64 + 1),
            (false, None) if short => self.out.extend_from_slice(&(-1i16).to_be_bytes()),
            (false, None) => self.out.extend_from_slice(&(-1i32).to_be_bytes()),
            (false, Some(n)) if short => self.out.extend_from_slice(&(n as i16).to_be_bytes()),
            (false, Some(n)) => self.out.extend_from_slice(&(n as i32).to_be_bytes()),
        }
    }
    fn word(&mut self) -> String {
        let n = 1 + self.rng.below(8) as usize;
        (0..n)
            .map(|_| (b'a' + self.rng.below(26) as u8) as char)
            .collect()
    }

    fn fields(&mut self, fields: &[FieldDef], depth: usize) {
        for f in fields {
            if f.versions.contains(self.version) && f.tag.is_none() {
                self.field(f, depth);
            }
        }
        if self.flexible {
            self.tagged(fields, depth);
        }
    }

    fn tagged(&mut self, fields: &[FieldDef], depth: usize) {
        // Known tags (sent with a non-default value or left out), plus an unknown tag above them.
        let mut entries: Vec<(u32, Vec<u8>)> = Vec::new();
        for f in fields {
            let Some(tag) = f.tag else { continue };
            if !f.versions.contains(self.version) || self.rng.chance(3) {
                continue;
            }
            let saved = std::mem::take(&mut self.out);
            let was = std::mem::replace(&mut self.in_tag, true);
            self.field(f, depth);
            self.in_tag = was;
            let data = std::mem::replace(&mut self.out, saved);
            entries.push((tag, data));
        }
        if self.rng.chance(4) {
            let tag = 100 + self.rng.below(50) as u32;
            let n = self.rng.below(4) as usize;
            let data = (0..n).map(|_| self.rng.next() as u8).collect();
            entries.push((tag, data));
        }
        entries.sort_by_key(|e| e.0);
        self.uvarint(entries.len() as u64);
        for (tag, data) in entries {
            self.uvarint(tag as u64);
            self.uvarint(data.len() as u64);
            self.out.extend_from_slice(&data);
        }
    }

    fn field(&mut self, f: &FieldDef, depth: usize) {
        let nullable = f.nullable.contains(self.version) && !self.in_tag;
        match &f.ty {
            FieldType::Struct => self.fields(&f.children, depth + 1),
            FieldType::Array(inner) => {
                if nullable && self.rng.chance(5) {
                    self.len_prefix(None, false);
                    return;
                }
                // Tagged arrays are never empty (empty is their default and would be left out).
                let min = u64::from(f.tag.is_some());
                let n = if depth > 3 {
                    min
                } else {
                    min + self.rng.below(3)
                };
                self.len_prefix(Some(n as usize), false);
                for _ in 0..n {
                    if **inner == FieldType::Struct {
                        self.fields(&f.children, depth + 1);
                    } else {
                        self.primitive(inner, false);
                    }
                }
            }
            ty => self.primitive(ty, nullable),
        }
    }

    fn primitive(&mut self, ty: &FieldType, nullable: bool) {
        match ty {
            FieldType::Bool => self.out.push(1),
            FieldType::Int8 => {
                let v = self.rng.nondefault(-128, 127) as i8;
                self.out.push(v as u8)
            }
            FieldType::Int16 => {
                let v = self.rng.nondefault(-32768, 32767) as i16;
                self.out.extend_from_slice(&v.to_be_bytes())
            }
            FieldType::Int32 => {
                let v = self.rng.nondefault(i32::MIN as i64, i32::MAX as i64) as i32;
                self.out.extend_from_slice(&v.to_be_bytes())
            }
            FieldType::Int64 => {
                let v = self.rng.nondefault(i64::MIN, i64::MAX);
                self.out.extend_from_slice(&v.to_be_bytes())
            }
            FieldType::Uint16 => {
                let v = self.rng.nondefault(2, 65535) as u16;
                self.out.extend_from_slice(&v.to_be_bytes())
            }
            FieldType::Float64 => {
                let v = self.rng.nondefault(2, 1 << 40) as f64 / 8.0;
                self.out.extend_from_slice(&v.to_bits().to_be_bytes())
            }
            FieldType::Uuid => {
                for _ in 0..16 {
                    let b = self.rng.next() as u8;
                    self.out.push(b);
                }
            }
            FieldType::String => {
                if nullable && self.rng.chance(4) {
                    self.len_prefix(None, true);
                } else {
                    let s = self.word();
                    self.len_prefix(Some(s.len()), true);
                    self.out.extend_from_slice(s.as_bytes());
                }
            }
            FieldType::Bytes | FieldType::Records => {
                if nullable && self.rng.chance(4) {
                    self.len_prefix(None, false);
                } else {
                    let n = 1 + self.rng.below(6) as usize;
                    self.len_prefix(Some(n), false);
                    for _ in 0..n {
                        let b = self.rng.next() as u8;
                        self.out.push(b);
                    }
                }
            }
            FieldType::Struct | FieldType::Array(_) => unreachable!(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// kafka-protocol's Debug output parsed into G.

struct DebugParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl DebugParser<'_> {
    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos] == b' ' {
            self.pos += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn ident(&mut self) -> String {
        self.ws();
        let start = self.pos;
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_alphanumeric()
                || self.s[self.pos] == b'_'
                || self.s[self.pos] == b'-'
                || self.s[self.pos] == b'.')
        {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }
    fn quoted(&mut self) -> Vec<u8> {
        // After the opening quote; Rust Debug escapes.
        let mut out = Vec::new();
        loop {
            let c = self.s[self.pos];
            self.pos += 1;
            match c {
                b'"' => return out,
                b'\\' => {
                    let e = self.s[self.pos];
                    self.pos += 1;
                    match e {
                        b'x' => {
                            let h = std::str::from_utf8(&self.s[self.pos..self.pos + 2]).unwrap();
                            out.push(u8::from_str_radix(h, 16).unwrap());
                            self.pos += 2;
                        }
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'0' => out.push(0),
                        b'u' => {
                            // \u{XXXX}
                            let end = self.pos
                                + self.s[self.pos..].iter().position(|&c| c == b'}').unwrap();
                            let h = std::str::from_utf8(&self.s[self.pos + 1..end]).unwrap();
                            let ch = char::from_u32(u32::from_str_radix(h, 16).unwrap()).unwrap();
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                            self.pos = end + 1;
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }
    fn value(&mut self) -> G {
        self.ws();
        let c = self.s[self.pos];
        if c == b'"' {
            self.pos += 1;
            return G::Str(String::from_utf8_lossy(&self.quoted()).into_owned());
        }
        if c == b'b' && self.s.get(self.pos + 1) == Some(&b'"') {
            self.pos += 2;
            return G::Bytes(self.quoted());
        }
        if c == b'[' {
            self.pos += 1;
            let mut items = Vec::new();
            while !self.eat(b']') {
                items.push(self.value());
                self.eat(b',');
            }
            return G::List(items);
        }
        if c == b'{' {
            // A map (unknown_tagged_fields): key: value pairs.
            self.pos += 1;
            let mut m = BTreeMap::new();
            while !self.eat(b'}') {
                let k = match self.value() {
                    G::Int(i) => i.to_string(),
                    other => format!("{other:?}"),
                };
                assert!(self.eat(b':'));
                let v = self.value();
                m.insert(k, v);
                self.eat(b',');
            }
            return G::Map(m);
        }
        let word = self.ident();
        if self.eat(b'{') {
            let mut m = BTreeMap::new();
            while !self.eat(b'}') {
                let k = self.ident();
                assert!(self.eat(b':'), "expected ':' after {k}");
                let v = self.value();
                m.insert(k.trim_start_matches('_').to_string(), v);
                self.eat(b',');
            }
            return G::Map(m);
        }
        if self.eat(b'(') {
            // Some(x), TopicName(x), BrokerId(x): newtypes are transparent.
            let v = self.value();
            assert!(self.eat(b')'));
            return v;
        }
        match word.as_str() {
            "None" => G::Null,
            "true" => G::Bool(true),
            "false" => G::Bool(false),
            _ => {
                if let Ok(i) = word.parse::<i64>() {
                    G::Int(i)
                } else if let Ok(f) = word.parse::<f64>() {
                    G::Float(f)
                } else {
                    // A UUID prints bare.
                    G::Str(word)
                }
            }
        }
    }
}

fn parse_debug(s: &str) -> G {
    let mut p = DebugParser {
        s: s.as_bytes(),
        pos: 0,
    };
    // "Produce(ProduceRequest { .. })": the enum variant wraps the struct.
    p.value()
}

// ---------------------------------------------------------------------------------------------
// The dissection as G.

fn struct_map(d: &Dissection, frame: &[u8], node: &Field) -> G {
    let mut m = BTreeMap::new();
    for c in &node.children {
        if c.name() == "kafka.tagged_fields" {
            let mut unknown = BTreeMap::new();
            for entry in c
                .children
                .iter()
                .filter(|e| e.name() == "kafka.tagged_field")
            {
                let tag = entry.children[0].as_int().unwrap();
                let value = &entry.children[2];
                if value.name() == "kafka.tagged_field.data" {
                    unknown.insert(tag.to_string(), field_value(d, frame, value));
                } else {
                    m.insert(value.short_name().to_string(), field_value(d, frame, value));
                }
            }
            m.insert("unknown_tagged_fields".into(), G::Map(unknown));
            continue;
        }
        m.insert(c.short_name().to_string(), field_value(d, frame, c));
    }
    G::Map(m)
}

fn field_value(d: &Dissection, frame: &[u8], f: &Field) -> G {
    let kind = &catalog().entries[f.id.0 as usize].kind;
    match &f.value {
        Value::Null => G::Null,
        Value::Int(i) => G::Int(*i),
        Value::Float(x) => G::Float(*x),
        Value::Bool(b) => G::Bool(*b),
        Value::Str(s) => G::Str(s.clone()),
        Value::Uuid(u) => G::Str(u.clone()),
        Value::Bytes { start, len } => {
            G::Bytes(d.buffer(frame, f.buffer)[*start as usize..(*start + *len) as usize].to_vec())
        }
        Value::Element(_) => struct_map(d, frame, f),
        Value::Group if kind == "records" => {
            let size = &f.children[0];
            let s = (size.offset + size.len) as usize;
            G::Bytes(frame[s..(f.offset + f.len) as usize].to_vec())
        }
        Value::Group if kind == "struct" || !kind.starts_with("array") => struct_map(d, frame, f),
        Value::Group => G::List(
            f.children[1..]
                .iter()
                .map(|c| match c.value {
                    Value::Element(_) if !c.children.is_empty() || kind == "array" => {
                        struct_map(d, frame, c)
                    }
                    _ => field_value(d, frame, c),
                })
                .collect(),
        ),
    }
}

/// Every field the dissector decoded must equal kafka-protocol's field of the same name.
fn compare(ours: &G, theirs: &G, path: &str) -> Result<(), String> {
    match (ours, theirs) {
        (G::Map(a), G::Map(b)) => {
            for (k, v) in a {
                let Some(w) = b.get(k) else {
                    return Err(format!("{path}.{k}: kafka-protocol has no such field"));
                };
                compare(v, w, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (G::List(a), G::List(b)) => {
            if a.len() != b.len() {
                return Err(format!("{path}: {} elements vs {}", a.len(), b.len()));
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                compare(x, y, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        // kafka-protocol keeps a null array as an empty Vec only where it is not nullable.
        (G::Null, G::List(b)) if b.is_empty() => Ok(()),
        (G::Str(a), G::Bytes(b)) | (G::Bytes(b), G::Str(a)) if a.as_bytes() == b.as_slice() => {
            Ok(())
        }
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{path}: dissector {a:?} vs kafka-protocol {b:?}")),
    }
}

// ---------------------------------------------------------------------------------------------

fn tiles(d: &Dissection, frame: &[u8]) -> Result<(), String> {
    let mut pos = 0u32;
    for leaf in d.root.frame_leaves() {
        if leaf.offset != pos {
            return Err(format!(
                "leaf {} at {} but previous leaf ended at {}",
                leaf.name(),
                leaf.offset,
                pos
            ));
        }
        pos += leaf.len;
    }
    if pos as usize != frame.len() {
        return Err(format!("leaves end at {pos}, frame is {}", frame.len()));
    }
    Ok(())
}

fn frame(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut f = ((header.len() + body.len()) as i32).to_be_bytes().to_vec();
    f.extend_from_slice(header);
    f.extend_from_slice(body);
    f
}

/// One case: generate, round-trip through kafka-protocol, dissect, compare.
fn check_case(api: &ApiSchema, version: i16, response: bool, seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed | 1);
    let flexible = api.is_flexible(version);
    let mut g = Gen {
        rng: &mut rng,
        version,
        flexible,
        out: Vec::new(),
        in_tag: false,
    };
    let fields = if response {
        &api.response
    } else {
        &api.request
    };
    g.fields(fields, 0);
    let body = g.out;

    let key =
        ApiKey::try_from(api.key).map_err(|_| format!("kafka-protocol lacks key {}", api.key))?;
    let mut bytes = Bytes::from(body.clone());
    let mut re = BytesMut::new();
    let debug = if response {
        let m = ResponseKind::decode(key, &mut bytes, version)
            .map_err(|e| format!("kafka-protocol cannot decode our bytes: {e}"))?;
        m.encode(&mut re, version).map_err(|e| e.to_string())?;
        format!("{m:?}")
    } else {
        let m = RequestKind::decode(key, &mut bytes, version)
            .map_err(|e| format!("kafka-protocol cannot decode our bytes: {e}"))?;
        m.encode(&mut re, version).map_err(|e| e.to_string())?;
        format!("{m:?}")
    };
    if !bytes.is_empty() {
        return Err(format!("kafka-protocol left {} bytes unread", bytes.len()));
    }
    if re.as_ref() != body.as_slice() {
        return Err(format!(
            "kafka-protocol re-encoded differently:\n ours   {:02x?}\n theirs {:02x?}",
            body,
            re.as_ref()
        ));
    }

    let (frame_bytes, d) = if response {
        let mut header = 0x1234_5678i32.to_be_bytes().to_vec();
        if api.response_header_version(version) >= 1 {
            header.push(0);
        }
        let f = frame(&header, &re);
        let d = dissect_response(&f, api.key, version);
        (f, d)
    } else {
        let mut header = Vec::new();
        header.extend_from_slice(&api.key.to_be_bytes());
        header.extend_from_slice(&version.to_be_bytes());
        header.extend_from_slice(&7i32.to_be_bytes());
        header.extend_from_slice(&4i16.to_be_bytes());
        header.extend_from_slice(b"test");
        if api.request_header_version(version) >= 2 {
            header.push(0);
        }
        let f = frame(&header, &re);
        let d = dissect_request(&f);
        (f, d)
    };
    if let Some(e) = &d.error {
        return Err(format!("dissector error: {e}"));
    }
    tiles(&d, &frame_bytes)?;
    let body_node = d
        .root
        .children
        .iter()
        .find(|c| {
            c.name()
                .ends_with(if response { ".response" } else { ".request" })
        })
        .ok_or("no body node")?;
    let ours = struct_map(&d, &frame_bytes, body_node);
    let theirs = parse_debug(&debug);
    compare(
        &ours,
        &theirs,
        &format!(
            "{}.{}",
            api.snake,
            if response { "response" } else { "request" }
        ),
    )
}

#[test]
fn every_api_version_matches_kafka_protocol() {
    let cases = std::env::var("ORACLE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24u64);
    let mut failures = Vec::new();
    let mut checked = 0;
    for api in catalog().apis.values() {
        for version in api.versions.min..=api.versions.max {
            for response in [false, true] {
                for case in 0..cases {
                    let seed = (api.key as u64) << 40
                        | (version as u64) << 24
                        | (response as u64) << 20
                        | case;
                    checked += 1;
                    if let Err(e) = check_case(
                        api,
                        version,
                        response,
                        seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    ) {
                        failures.push(format!(
                            "{} v{version} {}: {e}",
                            api.name,
                            if response { "response" } else { "request" }
                        ));
                        break;
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The table must cover the APIs the broker serves and the clients send.
    for key in [
        0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 32, 36, 37,
    ] {
        assert!(
            catalog().apis.contains_key(&key),
            "no schema for API key {key}"
        );
    }
}

proptest! {
    /// Any truncation or corruption of a valid frame: no panic, and the leaves decoded so far
    /// never run past the bytes present.
    #[test]
    fn damaged_frames_never_panic(seed in any::<u64>(), cut in 0usize..400, flip in any::<(usize, u8)>()) {
        let apis: Vec<&ApiSchema> = catalog().apis.values().collect();
        let api = apis[(seed % apis.len() as u64) as usize];
        let version = api.versions.min + (seed >> 8) as i16 % (api.versions.max - api.versions.min + 1);
        let mut rng = Rng(seed | 1);
        let mut g = Gen { rng: &mut rng, version, flexible: api.is_flexible(version), out: Vec::new(), in_tag: false };
        g.fields(&api.request, 0);
        let mut header = Vec::new();
        header.extend_from_slice(&api.key.to_be_bytes());
        header.extend_from_slice(&version.to_be_bytes());
        header.extend_from_slice(&1i32.to_be_bytes());
        header.extend_from_slice(&(-1i16).to_be_bytes());
        if api.request_header_version(version) >= 2 {
            header.push(0);
        }
        let mut f = frame(&header, &g.out);
        if !f.is_empty() {
            let i = flip.0 % f.len();
            f[i] ^= flip.1;
        }
        f.truncate(cut.min(f.len()));
        let d = dissect_request(&f);
        for leaf in d.root.frame_leaves() {
            prop_assert!((leaf.offset + leaf.len) as usize <= f.len());
        }
        if d.error.is_none() {
            tiles(&d, &f).map_err(TestCaseError::fail)?;
        }
    }
}
